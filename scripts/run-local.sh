#!/usr/bin/env bash
# Strata on one machine, no container engine needed (design §8).
#
#   scripts/run-local.sh [--no-demo]
#
# 1. Installs the broker when missing (scripts/ensure-broker.sh: tansu 0.6,
#    a Kafka-API broker in one binary; ~12 minutes once on a fresh machine).
# 2. Builds the three daemons (cargo build --release).
# 3. Starts tansu on 127.0.0.1:9092 with its SQLite file under
#    $STRATA_DATA_DIR/broker/, then mover-svc, policy-svc and ingest-svc, each
#    waited for on its /readyz. File tiers hot, warm, cold and archive are
#    folders under $STRATA_DATA_DIR (deploy/strata.local.toml).
# 4. Unless --no-demo: `ingest-svc demo` creates objects in the hot tier and
#    publishes a skewed read stream, once per data folder: a demo stopped
#    before it published everything goes on at the next start (--resume).
# 5. Prints the migrations as they happen (`mover-svc tail-status`) until
#    Ctrl-C or SIGTERM, then stops everything it started (SIGTERM, up to 20 s,
#    then SIGKILL) and exits 0.
#
# Environment (all optional):
#   STRATA_DATA_DIR     data root, default ./data in the repository; a
#                       relative path is taken from where you run the script
#   KAFKA_BROKERS       where the broker listens, default 127.0.0.1:9092;
#                       when something already listens there, the script stops
#   STRATA_INGEST_ADDR  default 127.0.0.1:8081
#   STRATA_POLICY_ADDR  default 127.0.0.1:8082
#   STRATA_MOVER_ADDR   default 127.0.0.1:8083
#   STRATA_TIERS        default deploy/strata.local.toml
#   RUST_LOG            daemons' log filter, default info
#   TANSU_RUST_LOG      the broker's log filter, default warn
#
# Logs: $STRATA_DATA_DIR/logs/<name>.log (overwritten on each run).

set -euo pipefail
STRATA_SCRIPT=run-local
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

DEMO=1
for arg in "$@"; do
    case "$arg" in
        --no-demo) DEMO=0 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $arg" ;;
    esac
done

# A relative STRATA_DATA_DIR is relative to where the user stands; resolve it
# before moving to the repository root.
if [ -n "${STRATA_DATA_DIR:-}" ]; then
    STRATA_DATA_DIR="$(abs_path "$STRATA_DATA_DIR")"
else
    STRATA_DATA_DIR="$STRATA_ROOT/data"
fi
if [ -n "${STRATA_TIERS:-}" ]; then
    STRATA_TIERS="$(abs_path "$STRATA_TIERS")"
else
    STRATA_TIERS="$STRATA_ROOT/deploy/strata.local.toml"
fi
cd "$STRATA_ROOT"

export STRATA_DATA_DIR STRATA_TIERS
export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:9092}"
export STRATA_INGEST_ADDR="${STRATA_INGEST_ADDR:-127.0.0.1:8081}"
export STRATA_POLICY_ADDR="${STRATA_POLICY_ADDR:-127.0.0.1:8082}"
export STRATA_MOVER_ADDR="${STRATA_MOVER_ADDR:-127.0.0.1:8083}"
export RUST_LOG="${RUST_LOG:-info}"
# The logs go to files: no terminal colour codes in them.
export NO_COLOR=1
TANSU_RUST_LOG="${TANSU_RUST_LOG:-warn}"

BROKER_HOST="$(host_of "$KAFKA_BROKERS")"
BROKER_PORT="$(port_of "$KAFKA_BROKERS")"
case "$BROKER_PORT" in
    '' | *[!0-9]*) die "KAFKA_BROKERS=$KAFKA_BROKERS: expected HOST:PORT" ;;
esac
LOG_DIR="$STRATA_DATA_DIR/logs"
BIN_DIR="$(abs_path "${CARGO_TARGET_DIR:-target}")/release"

# HTTP address of a daemon as a URL (a wildcard listen address is reached on
# loopback).
url_of() {
    local host port
    host="$(host_of "$1")"
    port="$(port_of "$1")"
    case "$host" in '' | 0.0.0.0 | '[::]' | '::') host=127.0.0.1 ;; esac
    printf 'http://%s:%s\n' "$host" "$port"
}
INGEST_URL="$(url_of "$STRATA_INGEST_ADDR")"
POLICY_URL="$(url_of "$STRATA_POLICY_ADDR")"
MOVER_URL="$(url_of "$STRATA_MOVER_ADDR")"

cat <<EOF
Strata, local run
  broker      $BROKER_HOST:$BROKER_PORT  (tansu, SQLite at $STRATA_DATA_DIR/broker/tansu.db)
  ingest-svc  $INGEST_URL   POST /v1/events, /metrics, /readyz
  policy-svc  $POLICY_URL   GET /v1/objects/{key}/explain, /metrics, /readyz
  mover-svc   $MOVER_URL   GET /v1/objects/{key}, /metrics, /readyz
  tiers       $STRATA_DATA_DIR/{hot,warm,cold,archive}  ($STRATA_TIERS)
  logs        $LOG_DIR/
Publish an access event by hand, e.g. with Python's confluent-kafka:
  python3 -c 'from confluent_kafka import Producer; p=Producer({"bootstrap.servers":"$BROKER_HOST:$BROKER_PORT"}); p.produce("access_events", key="logs/app.log", value="{\"objectKey\":\"logs/app.log\",\"op\":\"GET\"}"); p.flush()'
EOF

# Refuses to start over something that already listens on our ports: the
# broker would not bind, and a readiness check could be answered by another
# (older) instance.
check_ports_free() {
    if port_open "$BROKER_HOST" "$BROKER_PORT"; then
        die "something already listens on $BROKER_HOST:$BROKER_PORT (KAFKA_BROKERS): another broker or an earlier run-local.sh? Stop it, or set KAFKA_BROKERS=127.0.0.1:<free port>"
    fi
    local name addr
    for name in INGEST POLICY MOVER; do
        addr="STRATA_${name}_ADDR"
        addr="${!addr}"
        if port_open "$(host_of "$(url_of "$addr")")" "$(port_of "$addr")"; then
            die "something already listens on $addr (STRATA_${name}_ADDR): an earlier run-local.sh? Stop it, or set STRATA_${name}_ADDR"
        fi
    done
}
check_ports_free

say "step 1/5: broker"
run_stoppable "$STRATA_ROOT/scripts/ensure-broker.sh"
TANSU="$(command -v tansu)" || die "tansu not on PATH after ensure-broker.sh"

say "step 2/5: build (cargo build --release -p ingest-svc -p policy-svc -p mover-svc)"
ensure_build_deps
run_stoppable cargo build --release -p ingest-svc -p policy-svc -p mover-svc
for bin in ingest-svc policy-svc mover-svc; do
    [ -x "$BIN_DIR/$bin" ] || die "$BIN_DIR/$bin missing after the build"
done

mkdir -p "$STRATA_DATA_DIR"/{hot,warm,cold,archive,state,broker} "$LOG_DIR"

# Everything this script started, in start order; stopped in reverse.
NAMES=()
PIDS=()
TAIL_PID=
DEMO_PID=
CLEANED=

# A second Ctrl-C while cleanup stops things in order: kill the rest at once,
# rather than leave them running in their own sessions.
hard_stop() {
    printf '\n'
    warn "second signal: killing what is still running"
    local pid
    for pid in "$DEMO_PID" "${PIDS[@]}"; do
        if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
    done
    exit 130
}
cleanup() {
    [ -z "$CLEANED" ] || return 0
    CLEANED=1
    # Nothing may cut the clean-up short: not a line written to a terminal
    # that is gone (EIO after a hangup, or SIGPIPE on a closed pipe), not a
    # failed kill. The children run in sessions of their own, so no one
    # else stops them.
    set +e
    trap '' PIPE HUP
    trap hard_stop INT TERM
    if [ -n "$DEMO_PID" ] && kill -0 "$DEMO_PID" 2>/dev/null; then
        stop_pid demo "$DEMO_PID" 20
    fi
    [ "${#PIDS[@]}" -gt 0 ] || return 0
    say "stopping what this script started ..."
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${NAMES[$i]}" "${PIDS[$i]}" 20
    done
    say "all stopped; data and logs kept in $STRATA_DATA_DIR"
}
on_signal() {
    printf '\n'
    say "signal received"
    cleanup
    exit 0
}
trap cleanup EXIT
trap on_signal INT TERM HUP

# In its own session, a child gets no Ctrl-C from the terminal: only this
# script does, and it then stops everything in order (daemons before broker).
SETSID=()
if command -v setsid >/dev/null 2>&1; then SETSID=(setsid); fi

# spawn LOG CMD...: runs CMD in the background, stdin from /dev/null, stdout
# and stderr to LOG (LOG "-": stdout stays on the terminal). Sets SPAWNED.
spawn() {
    local log=$1
    shift
    if [ "$log" = - ]; then
        "${SETSID[@]}" "$@" </dev/null &
    else
        "${SETSID[@]}" "$@" </dev/null >"$log" 2>&1 &
    fi
    SPAWNED=$!
}
# track NAME PID: stop PID on exit.
track() {
    NAMES+=("$1")
    PIDS+=("$2")
}

say "step 3/5: start the broker and the daemons"
# A sqlite:// path is relative to tansu's working directory: run it in broker/.
# shellcheck disable=SC2016 # expanded by the inner sh
spawn "$LOG_DIR/tansu.log" env RUST_LOG="$TANSU_RUST_LOG" sh -c 'cd "$1" && shift && exec "$@"' sh \
    "$STRATA_DATA_DIR/broker" "$TANSU" broker \
    --storage-engine sqlite://tansu.db \
    --listener-url "tcp://$BROKER_HOST:$BROKER_PORT" \
    --advertised-listener-url "tcp://$BROKER_HOST:$BROKER_PORT"
track tansu "$SPAWNED"
if ! wait_port "$BROKER_HOST" "$BROKER_PORT" 30 "${PIDS[-1]}"; then
    log_tail "$LOG_DIR/tansu.log"
    die "tansu did not accept connections on $BROKER_HOST:$BROKER_PORT within 30 s"
fi
say "tansu up on $BROKER_HOST:$BROKER_PORT (pid ${PIDS[-1]})"

for svc in mover-svc policy-svc ingest-svc; do
    case "$svc" in
        mover-svc) url=$MOVER_URL ;;
        policy-svc) url=$POLICY_URL ;;
        ingest-svc) url=$INGEST_URL ;;
    esac
    spawn "$LOG_DIR/$svc.log" "$BIN_DIR/$svc"
    track "$svc" "$SPAWNED"
    if ! wait_http "$url/readyz" 60 "${PIDS[-1]}"; then
        log_tail "$LOG_DIR/$svc.log"
        if kill -0 "${PIDS[-1]}" 2>/dev/null; then
            die "$svc not ready ($url/readyz) within 60 s"
        fi
        die "$svc exited during start-up"
    fi
    say "$svc ready at $url (pid ${PIDS[-1]})"
done

# Follow migration_status from now on, before the demo publishes anything.
say "step 4/5: migrations as they happen (mover-svc tail-status; its own log: $LOG_DIR/tail-status.log)"
: >"$LOG_DIR/tail-status.log"
# shellcheck disable=SC2016 # expanded by the inner sh
spawn - sh -c 'exec "$0" tail-status 2>>"$1"' "$BIN_DIR/mover-svc" "$LOG_DIR/tail-status.log"
TAIL_PID=$SPAWNED
track tail-status "$TAIL_PID"

# The demo runs once per data folder: started (demo.started) and over
# once it has published all of its events (demo.published). One stopped
# before that (Ctrl-C, a broker that went away) goes on at the next start
# (--resume), its events published again under the same ids, which
# policy-svc counts once (it remembers ids for seven days). A data folder
# of a version without these files runs the plain demo, which publishes
# nothing over objects it finds there.
DEMO_STARTED="$STRATA_DATA_DIR/demo.started"
DEMO_DONE="$STRATA_DATA_DIR/demo.published"
if [ "$DEMO" = 1 ] && [ -e "$DEMO_DONE" ]; then
    say "step 5/5: the demo workload was published by an earlier run (remove $STRATA_DATA_DIR for a new demo)"
elif [ "$DEMO" = 1 ]; then
    demo_args=(demo)
    if [ -e "$DEMO_STARTED" ]; then
        demo_args+=(--resume)
    else
        date -u +%FT%TZ >"$DEMO_STARTED"
    fi
    say "step 5/5: demo workload (ingest-svc ${demo_args[*]}; log: $LOG_DIR/demo.log)"
    spawn "$LOG_DIR/demo.log" "$BIN_DIR/ingest-svc" "${demo_args[@]}"
    DEMO_PID=$SPAWNED
    demo_rc=0
    wait "$DEMO_PID" || demo_rc=$?
    DEMO_PID=
    if [ "$demo_rc" = 0 ]; then
        date -u +%FT%TZ >"$DEMO_DONE"
        if grep -q "there already from an earlier run" "$LOG_DIR/demo.log"; then
            say "the demo's objects are there from an earlier run: nothing published again (remove $STRATA_DATA_DIR for a new demo)"
        else
            say "demo published its workload; the policy decides as event time passes"
        fi
    else
        log_tail "$LOG_DIR/demo.log"
        warn "the demo failed (exit status $demo_rc); the daemons keep running"
    fi
else
    say "step 5/5: no demo (--no-demo): publish your own access events"
fi
say "running; Ctrl-C stops everything"

# Wait for a signal; notice a daemon or the broker dying on its own.
TAIL_REPORTED=
while :; do
    for ((i = 0; i < ${#PIDS[@]}; i++)); do
        name="${NAMES[$i]}"
        pid="${PIDS[$i]}"
        kill -0 "$pid" 2>/dev/null && continue
        if [ "$pid" = "$TAIL_PID" ]; then
            if [ -z "$TAIL_REPORTED" ]; then
                TAIL_REPORTED=1
                rc=0
                wait "$pid" 2>/dev/null || rc=$?
                log_tail "$LOG_DIR/tail-status.log" 10
                warn "mover-svc tail-status exited (status $rc); the pipeline keeps running, Ctrl-C stops it"
            fi
            continue
        fi
        log_tail "$LOG_DIR/$name.log"
        die "$name (pid $pid) exited on its own; stopping the rest"
    done
    sleep 1 &
    wait $! || true
done
