#!/usr/bin/env bash
# policy-svc benchmark (issue 4, item 7), one run, two parts:
#
#   scripts/bench-policy.sh [--quick] [--no-kafka] [--no-sim]
#
# 1. Kafka to durable state: N access events are produced to a fresh topic
#    on a local broker; then, on the same broker and topic, (a) the raw
#    consume rate of the same client library with a fresh group
#    (`policy-svc bench-kafka --consume N`) and of `kcat` to /dev/null (the
#    issue's yardstick; Debian's package, installed when missing), and (b)
#    policy-svc itself with a
#    fresh group and database, until its metric
#    strata_policy_events_applied_total reaches N (every event applied with
#    its offset in the same SQLite transaction). Both rates are timed from
#    the first message consumed (resp. applied) to the last, so joining the
#    group is not part of either. Prints the rates, policy/raw and
#    policy/kcat (goal >= 0.50).
#    BENCH_BROKER picks the broker: `mock` (default; librdkafka's in-memory
#    mock cluster in its own process, runtime/examples/mock_broker.rs,
#    N = 100,000: it keeps at most 5 MiB per partition, so more events on
#    the topic's 3 partitions would drop the oldest) or `tansu` (N = 8,000: tansu 0.6 here stopped serving
#    fetches to new consumer groups on topics of about 10,000 messages and
#    more). BENCH_EVENTS overrides N.
# 2. simulate: a synthetic trace of about 10^7 events (`policy-svc synth
#    --scale 250`), replayed by `policy-svc simulate --quiet` under all five
#    policies. Prints events per second (goal: 10^7 events in <= 60 s).
#
#   --quick     N = 3,000 and a 10^6-event trace
#   --no-kafka  skip part 1;  --no-sim  skip part 2
#
# Builds target/release/policy-svc (BENCH_BIN overrides the binary). Installs
# tansu when missing (scripts/ensure-broker.sh). Runs in a temp dir that is
# removed at the end, with everything it started stopped.
#
# Environment: BENCH_BROKER (mock or tansu), BENCH_EVENTS (N),
# BENCH_SIM_SCALE (default 250),
# BENCH_BROKER_PORT (default 39192), BENCH_POLICY_PORT (default 39182),
# BENCH_KEEP=1 keeps the temp dir.

set -euo pipefail
STRATA_SCRIPT=bench-policy
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

QUICK=0 KAFKA=1 SIM=1
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        --no-kafka) KAFKA=0 ;;
        --no-sim) SIM=0 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $arg" ;;
    esac
done
cd "$STRATA_ROOT"

BROKER="${BENCH_BROKER:-mock}"
case "$BROKER" in
    mock) DEFAULT_N=100000 ;;
    tansu) DEFAULT_N=8000 ;;
    *) die "BENCH_BROKER: mock or tansu, not $BROKER" ;;
esac
N="${BENCH_EVENTS:-$([ "$QUICK" = 1 ] && echo 3000 || echo "$DEFAULT_N")}"
SCALE="${BENCH_SIM_SCALE:-$([ "$QUICK" = 1 ] && echo 25 || echo 250)}"
BROKER_PORT="${BENCH_BROKER_PORT:-39192}"
POLICY_PORT="${BENCH_POLICY_PORT:-39182}"

if [ -n "${BENCH_BIN:-}" ]; then
    BIN="$(abs_path "$BENCH_BIN")"
else
    say "building target/release/policy-svc"
    ensure_build_deps
    run_stoppable cargo build --release -p policy-svc >/dev/null
    BIN="$(abs_path "${CARGO_TARGET_DIR:-target}")/release/policy-svc"
fi
if [ "$KAFKA" = 1 ] && [ "$BROKER" = mock ]; then
    say "building the mock broker (runtime/examples/mock_broker.rs)"
    run_stoppable cargo build --release -p strata-runtime --example mock_broker >/dev/null
    MOCK_BROKER="$(abs_path "${CARGO_TARGET_DIR:-target}")/release/examples/mock_broker"
fi
[ -x "$BIN" ] || die "no policy-svc binary at $BIN"
if [ "$KAFKA" = 1 ]; then
    command -v kcat >/dev/null 2>&1 || apt_install kcat
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/bench-policy.XXXXXX")"
PIDS=()
cleanup() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "process" "${PIDS[$i]}" 10 >/dev/null 2>&1 || true
    done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then say "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

# Seconds `kcat -C` takes on the whole topic with the extra flags given.
kcat_secs() {
    local start
    start=$(date +%s%N)
    timeout 120 kcat -C -b "$BROKERS" -t "$TOPIC" -o beginning -q "$@" >/dev/null 2>>"$TMP/kcat.log" ||
        return 1
    awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN {printf "%.3f", (b - a) / 1e9}'
}

RESULTS=()
if [ "$KAFKA" = 1 ]; then
    mkdir -p "$TMP/broker" "$TMP/data"
    if [ "$BROKER" = mock ]; then
        "$MOCK_BROKER" >"$TMP/broker/address" 2>"$TMP/broker.log" &
        PIDS+=($!)
        for _ in $(seq 1 100); do [ -s "$TMP/broker/address" ] && break; sleep 0.1; done
        BROKERS="$(head -1 "$TMP/broker/address")"
        [ -n "$BROKERS" ] || die "the mock broker did not start (see $TMP/broker.log)"
    else
        run_stoppable "$STRATA_ROOT/scripts/ensure-broker.sh" >/dev/null
        TANSU="$(command -v tansu)" || die "tansu not on PATH"
        port_open 127.0.0.1 "$BROKER_PORT" && die "port $BROKER_PORT is busy (BENCH_BROKER_PORT)"
        (cd "$TMP/broker" && exec "$TANSU" broker --storage-engine sqlite://tansu.db \
            --listener-url "tcp://127.0.0.1:$BROKER_PORT" \
            --advertised-listener-url "tcp://127.0.0.1:$BROKER_PORT") >"$TMP/tansu.log" 2>&1 &
        PIDS+=($!)
        wait_port 127.0.0.1 "$BROKER_PORT" 30 "${PIDS[-1]}" || die "tansu did not start (see $TMP/tansu.log)"
        BROKERS="127.0.0.1:$BROKER_PORT"
    fi
    say "$BROKER broker on $BROKERS"
    export KAFKA_BROKERS="$BROKERS" STRATA_TIERS="$STRATA_ROOT/deploy/strata.local.toml"
    export STRATA_DATA_DIR="$TMP/data"
    TOPIC="bench_access_$$"
    say "producing $N access events to $TOPIC"
    "$BIN" bench-kafka --topic "$TOPIC" --produce "$N"
    say "raw consume of $TOPIC"
    raw_line="$("$BIN" bench-kafka --topic "$TOPIC" --consume "$N" | tail -1)"
    say "$raw_line (from the first message)"
    raw_rate="$(awk '{print $(NF-1)}' <<<"$raw_line")"
    # kcat, as the issue names it: the whole topic to /dev/null, timed from
    # its first message (a run that stops after one message gives the
    # start-up to take off).
    kcat_rate=
    if kcat_all="$(kcat_secs -e)" && kcat_one="$(kcat_secs -c 1)"; then
        kcat_rate="$(awk -v n="$((N - 1))" -v a="$kcat_all" -v b="$kcat_one" \
            'BEGIN {d = a - b; printf "%.0f", n / (d > 0 ? d : 1e-9)}')"
        say "kcat: $N messages to /dev/null in $kcat_all s, $kcat_one s to the first = $kcat_rate msg/s"
    else
        warn "kcat could not consume $TOPIC from $BROKERS (Debian's kcat fails tansu's handshake)"
    fi
    say "policy-svc on $TOPIC (fresh group and database)"
    STRATA_TOPIC_ACCESS_EVENTS="$TOPIC" STRATA_POLICY_GROUP="bench-policy-$$" \
        STRATA_POLICY_ADDR="127.0.0.1:$POLICY_PORT" STRATA_DECIDE_INTERVAL_SECS=3600 \
        STRATA_POLICY_DB="$TMP/policy.db" RUST_LOG=warn "$BIN" >"$TMP/policy.log" 2>&1 &
    PIDS+=($!)
    applied=0
    first_ns=
    first_applied=0
    deadline=$(($(date +%s) + 600))
    while [ "$applied" -lt "$N" ]; do
        kill -0 "${PIDS[-1]}" 2>/dev/null || { tail -20 "$TMP/policy.log"; die "policy-svc exited"; }
        [ "$(date +%s)" -lt "$deadline" ] || die "policy-svc applied $applied of $N in 600 s"
        sleep 0.05
        # Not listening yet (curl exits 7) counts as nothing applied yet.
        applied="$({ curl -s --noproxy '*' "http://127.0.0.1:$POLICY_PORT/metrics" 2>/dev/null || true; } |
            awk '/^strata_policy_events_applied_total/ {print int($2)}' | head -1)"
        applied="${applied:-0}"
        if [ -z "$first_ns" ] && [ "$applied" -gt 0 ]; then
            first_ns=$(date +%s%N)
            first_applied=$applied
        fi
    done
    secs="$(awk -v a="$first_ns" -v b="$(date +%s%N)" 'BEGIN {printf "%.2f", (b - a) / 1e9}')"
    policy_rate="$(awk -v n="$((N - first_applied))" -v s="$secs" 'BEGIN {printf "%.0f", n / (s > 0 ? s : 1e-9)}')"
    ratio="$(awk -v p="$policy_rate" -v r="$raw_rate" 'BEGIN {printf "%.2f", p / r}')"
    say "policy-svc: $((N - first_applied)) events applied in $secs s after the first = $policy_rate events/s"
    RESULTS+=("kafka ($BROKER broker, $N events): raw consume (rdkafka, the daemons' client) $raw_rate msg/s, policy-svc $policy_rate events/s, policy/raw = $ratio")
    if [ -n "$kcat_rate" ]; then
        kratio="$(awk -v p="$policy_rate" -v r="$kcat_rate" 'BEGIN {printf "%.2f", p / r}')"
        RESULTS+=("kafka ($BROKER broker, $N events): raw consume (kcat to /dev/null) $kcat_rate msg/s, policy-svc $policy_rate events/s, policy/kcat = $kratio (goal >= 0.50)")
    fi
fi

if [ "$SIM" = 1 ]; then
    say "generating a synthetic trace (scale $SCALE)"
    "$BIN" synth --out "$TMP/trace.csv" --scale "$SCALE"
    events=$(($(wc -l <"$TMP/trace.csv") - 1))
    say "simulate over $events events (five policies)"
    start_ns=$(date +%s%N)
    "$BIN" simulate --trace "$TMP/trace.csv" --default-slo-ms 1000 --quiet >"$TMP/sim.txt"
    secs="$(awk -v a="$start_ns" -v b="$(date +%s%N)" 'BEGIN {printf "%.2f", (b - a) / 1e9}')"
    cat "$TMP/sim.txt"
    rate="$(awk -v n="$events" -v s="$secs" 'BEGIN {printf "%.0f", n / s}')"
    RESULTS+=("simulate: $events events in $secs s = $rate events/s (goal: 10^7 in <= 60 s)")
fi

for line in "${RESULTS[@]}"; do say "$line"; done
