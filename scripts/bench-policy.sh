#!/usr/bin/env bash
# policy-svc benchmark (issue 1, item 7), one run, two parts:
#
#   scripts/bench-policy.sh [--quick] [--no-kafka] [--no-sim]
#
# 1. Kafka to durable state: N access events (default 200,000) are produced
#    to a fresh topic on a local tansu broker; then, on the same broker and
#    topic, (a) the raw consume rate of the same client library with a
#    fresh group (`policy-svc bench-kafka --consume N`), and (b) policy-svc
#    itself with a fresh group and database, until its metric
#    strata_policy_events_applied_total reaches N (every event applied with
#    its offset in the same SQLite transaction). Both are timed the same
#    way, from process start (so both include joining the group). Default N = 8,000:
#    tansu 0.6 here stopped serving fetches to new consumer groups on
#    topics of about 10,000 messages and more (BENCH_EVENTS overrides).
#    Prints both rates and policy/raw (goal: >= 0.50).
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
# Environment: BENCH_EVENTS (N), BENCH_SIM_SCALE (default 250),
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

N="${BENCH_EVENTS:-$([ "$QUICK" = 1 ] && echo 3000 || echo 8000)}"
SCALE="${BENCH_SIM_SCALE:-$([ "$QUICK" = 1 ] && echo 25 || echo 250)}"
BROKER_PORT="${BENCH_BROKER_PORT:-39192}"
POLICY_PORT="${BENCH_POLICY_PORT:-39182}"

if [ -n "${BENCH_BIN:-}" ]; then
    BIN="$(abs_path "$BENCH_BIN")"
else
    say "building target/release/policy-svc"
    cargo build --release -p policy-svc >/dev/null
    BIN="$STRATA_ROOT/target/release/policy-svc"
fi
[ -x "$BIN" ] || die "no policy-svc binary at $BIN"

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

RESULTS=()
if [ "$KAFKA" = 1 ]; then
    "$STRATA_ROOT/scripts/ensure-broker.sh" >/dev/null
    TANSU="$(command -v tansu)" || die "tansu not on PATH"
    port_open 127.0.0.1 "$BROKER_PORT" && die "port $BROKER_PORT is busy (BENCH_BROKER_PORT)"
    mkdir -p "$TMP/broker" "$TMP/data"
    (cd "$TMP/broker" && exec "$TANSU" broker --storage-engine sqlite://tansu.db \
        --listener-url "tcp://127.0.0.1:$BROKER_PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$BROKER_PORT") >"$TMP/tansu.log" 2>&1 &
    PIDS+=($!)
    wait_port 127.0.0.1 "$BROKER_PORT" 30 "${PIDS[-1]}" || die "tansu did not start (see $TMP/tansu.log)"
    export KAFKA_BROKERS="127.0.0.1:$BROKER_PORT" STRATA_TIERS="$STRATA_ROOT/deploy/strata.local.toml"
    export STRATA_DATA_DIR="$TMP/data"
    TOPIC="bench_access_$$"
    say "producing $N access events to $TOPIC"
    "$BIN" bench-kafka --topic "$TOPIC" --produce "$N"
    say "raw consume of $TOPIC"
    start_ns=$(date +%s%N)
    "$BIN" bench-kafka --topic "$TOPIC" --consume "$N"
    secs="$(awk -v a="$start_ns" -v b="$(date +%s%N)" 'BEGIN {printf "%.2f", (b - a) / 1e9}')"
    raw_rate="$(awk -v n="$N" -v s="$secs" 'BEGIN {printf "%.0f", n / s}')"
    say "raw consume: $N messages in $secs s (process start included) = $raw_rate msg/s"
    say "policy-svc on $TOPIC (fresh group and database)"
    start_ns=$(date +%s%N)
    STRATA_TOPIC_ACCESS_EVENTS="$TOPIC" STRATA_POLICY_GROUP="bench-policy-$$" \
        STRATA_POLICY_ADDR="127.0.0.1:$POLICY_PORT" STRATA_DECIDE_INTERVAL_SECS=3600 \
        STRATA_POLICY_DB="$TMP/policy.db" RUST_LOG=warn "$BIN" >"$TMP/policy.log" 2>&1 &
    PIDS+=($!)
    applied=0
    deadline=$(($(date +%s) + 600))
    while [ "$applied" -lt "$N" ]; do
        kill -0 "${PIDS[-1]}" 2>/dev/null || { tail -20 "$TMP/policy.log"; die "policy-svc exited"; }
        [ "$(date +%s)" -lt "$deadline" ] || die "policy-svc applied $applied of $N in 600 s"
        sleep 0.05
        applied="$(curl -s --noproxy '*' "http://127.0.0.1:$POLICY_PORT/metrics" 2>/dev/null |
            awk '/^strata_policy_events_applied_total/ {print int($2)}' | head -1)"
        applied="${applied:-0}"
    done
    secs="$(awk -v a="$start_ns" -v b="$(date +%s%N)" 'BEGIN {printf "%.2f", (b - a) / 1e9}')"
    policy_rate="$(awk -v n="$N" -v s="$secs" 'BEGIN {printf "%.0f", n / s}')"
    ratio="$(awk -v p="$policy_rate" -v r="$raw_rate" 'BEGIN {printf "%.2f", p / r}')"
    say "policy-svc: $N events applied in $secs s (process start included) = $policy_rate events/s"
    RESULTS+=("kafka: raw consume $raw_rate msg/s, policy-svc $policy_rate events/s, policy/raw = $ratio (goal >= 0.50)")
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
