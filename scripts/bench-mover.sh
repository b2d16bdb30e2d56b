#!/usr/bin/env bash
# mover-svc benchmark (issue 3): the real daemon against rclone and cp.
#
#   scripts/bench-mover.sh [--big] [--quick]
#
# From one run, prints throughput (MiB/s, objects/s) and peak RSS of:
#   - mover-svc, the real daemon, once per broker in BENCH_BROKERS: the jobs
#     are published on its jobs topic, timed from the first publish to the
#     last COMPLETED status; peak RSS is the process's VmHWM. Brokers:
#     `mock` (librdkafka's in-memory mock cluster in its own process,
#     runtime/examples/mock_broker.rs: measures the mover, not a broker's
#     storage) and `tansu` (SQLite storage; on two cores its CPU competes
#     with the mover's);
#   - `rclone copy --checksum` with --transfers N --checkers N equal to the
#     mover's concurrency; the same followed by `sync -f` of its destination
#     (local->local: its copies on the disk when the clock stops, as the
#     mover's are before it switches); and `rclone move --checksum`, which
#     deletes the source as the mover does (local->local with `--disable
#     Move,DirMove`, so that it copies rather than renames on one file
#     system);
#   - `cp` then `sha256sum` of both sides (local->local only);
#   - "file work only": the mover's own file operations without Kafka or
#     SQLite (mover-svc/examples/small_rate.rs: copy with SHA-256, read
#     back, link into place, one syncfs per batch, unlink the source), local->local
#     only: the bound the daemon's coordination leaves it below;
# for (a) one 1 GiB object and (b) 10,000 objects of 4 KiB, on two paths:
# local->local (two file:// folders on one disk) and local->S3 (a moto S3
# server on loopback). local->local runs BENCH_ROUNDS rounds, each contender
# once a round, and each ratio is the median of the rounds' own: on a shared
# machine the figures move by a factor of two or more from run to run.
# Also the one-core SHA-256 rate (openssl, sha256sum), and the mover's
# "fraction of SHA-256 speed" (it hashes each byte twice).
# rclone and cp peak RSS come from /usr/bin/time -v.
#
#   --big     also move one 10 GiB sparse object local->local and report the
#             mover's peak RSS (bounded memory); same as BENCH_BIG=1
#   --big-only  only the --big run (and the SHA-256 rate)
#   --quick   small sizes to try the script out (64 MiB, 500 objects)
#
# The last line is exactly
#   mover/rclone 1GiB=X small=Y
# X, Y = mover-svc throughput / rclone copy throughput, local->local, at equal
# concurrency, with the first broker of BENCH_BROKERS (a line before it
# gives the others), the median over the rounds.
#
# Installs what is missing: tansu when asked for (scripts/ensure-broker.sh), the Debian
# packages rclone and time (apt-get), moto[server], boto3 and confluent-kafka
# (pip). Builds target/release/mover-svc. Everything runs in a temp dir
# (under BENCH_TMPDIR or $TMPDIR) that is removed at the end, with everything
# the script started stopped.
#
# Environment (all optional):
#   BENCH_CONCURRENCY   N, default 4: STRATA_MOVER_CONCURRENCY when mover-svc
#                       has it (`mover-svc --help`), and rclone's --transfers
#   BENCH_BROKERS       brokers for the mover runs, default mock; mock,tansu
#                       adds runs on tansu (10,000 small jobs overload it:
#                       those runs hit BENCH_MOVER_TIMEOUT)
#   BENCH_SMALL_N       small objects, default 10000; the mock broker keeps
#                       5 MiB or 100,000 messages of each status partition
#                       and drops the oldest, and a job sends five
#                       statuses: 30,000 overflow it (the run then says so)
#   BENCH_LARGE_MIB     large object in MiB, default 1024
#   BENCH_ROUNDS        local->local rounds, default 3 (--quick: 1); each
#                       adds about two minutes
#   BENCH_BIG_GIB       the sparse object of --big in GiB, default 10
#   BENCH_MOVER_TIMEOUT seconds one mover run may take, default 600; a run
#                       cut there reports the rate of the jobs done (ok=cap)
#   BENCH_NO_S3=1       skip the local->S3 path
#   BENCH_NO_MOVE=1     skip the rclone move rows
#   BENCH_BROKER_PORT / BENCH_MOVER_PORT / BENCH_MOTO_PORT
#                       default 39092 / 39083 / 39000 (a free port is
#                       taken instead when busy)
#   BENCH_KEEP=1        keep the temp dir (logs) at the end
#   BENCH_MOVER_WRAP    a command put before mover-svc, for profiling, e.g.
#                       "perf record -g -o /tmp/mover.perf --"; peak RSS is
#                       then the wrapper's
#   BENCH_PEER_MOVER_BIN, BENCH_PEER_ENV
#                       an A/B: a second mover-svc (another build, or this
#                       one with BENCH_PEER_ENV's space-separated NAME=VALUE
#                       variables) run beside it in every local->local round,
#                       fsync on, and a line `mover/peer ...`, the median of
#                       the rounds' ratios; e.g. BENCH_ROUNDS=6
#                       BENCH_PEER_MOVER_BIN=/tmp/mover-svc.old (copy the old
#                       build out of target/ first: the script rebuilds it;
#                       build it in a worktree with a target folder of its
#                       own: one shared with this checkout leaves cargo
#                       taking the old build's library for this one's). On
#                       a noisy machine run it both ways round (the old
#                       build as the mover, the new as the peer): one
#                       orientation alone has shown 0.79 where the other
#                       showed 1.03 (docs/performance.md, 2026-12-07)
#   STRATA_MOVER_PART_MIB, STRATA_MOVER_PARTS_IN_FLIGHT, RUST_LOG  passed on

set -euo pipefail
STRATA_SCRIPT=bench-mover
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

BIG="${BENCH_BIG:-0}"
QUICK=0
BIG_ONLY=0
for arg in "$@"; do
    case "$arg" in
        --big) BIG=1 ;;
        --quick) QUICK=1 ;;
        --big-only) BIG=1 BIG_ONLY=1 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $arg" ;;
    esac
done
# A peer binary named relative to where the script was started.
PEER_BIN="${BENCH_PEER_MOVER_BIN:+$(abs_path "$BENCH_PEER_MOVER_BIN")}"
cd "$STRATA_ROOT"

# ---- what it needs
command -v rclone >/dev/null 2>&1 || apt_install rclone
[ -x /usr/bin/time ] || apt_install time
command -v openssl >/dev/null 2>&1 || apt_install openssl
command -v python3 >/dev/null 2>&1 || die "python3 is needed"
if ! python3 -c 'import confluent_kafka, boto3, moto.server' >/dev/null 2>&1; then
    say "installing Python packages: moto[server] boto3 confluent-kafka (pip)"
    # A distribution's Python refuses system-wide installs (PEP 668): then
    # into the user's site-packages.
    python3 -m pip install --quiet 'moto[server]' boto3 confluent-kafka ||
        python3 -m pip install --quiet --user --break-system-packages 'moto[server]' boto3 confluent-kafka ||
        die "pip install 'moto[server]' boto3 confluent-kafka failed"
fi
case ",${BENCH_BROKERS:-mock}," in *,tansu,*) run_stoppable "$STRATA_ROOT/scripts/ensure-broker.sh" ;; esac

say "building mover-svc and the mock broker (cargo build --release)"
ensure_build_deps
run_stoppable cargo build --release -p mover-svc
run_stoppable cargo build --release -p strata-runtime --example mock_broker
run_stoppable cargo build --release -p mover-svc --example small_rate
BIN_DIR="$(abs_path "${CARGO_TARGET_DIR:-target}")/release"
MOVER_BIN="$BIN_DIR/mover-svc"
MOCK_BROKER_BIN="$BIN_DIR/examples/mock_broker"
FILE_WORK_BIN="$BIN_DIR/examples/small_rate"
[ -x "$MOVER_BIN" ] || die "$MOVER_BIN missing after the build"
[ -x "$MOCK_BROKER_BIN" ] || die "$MOCK_BROKER_BIN missing after the build"
[ -x "$FILE_WORK_BIN" ] || die "$FILE_WORK_BIN missing after the build"

CONC="${BENCH_CONCURRENCY:-4}"
HAS_CONC=()
if "$MOVER_BIN" --help 2>/dev/null | grep -q STRATA_MOVER_CONCURRENCY; then
    HAS_CONC=(--mover-has-concurrency)
    say "mover-svc has STRATA_MOVER_CONCURRENCY: all contenders at concurrency $CONC"
else
    warn "mover-svc has no STRATA_MOVER_CONCURRENCY (one job at a time): rclone is run at 1 (equal) and at $CONC"
fi

# ---- temp dir, cleanup
TMP="$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/strata-bench.XXXXXX")"
# Each contender's folders go to block groups of their own (ext4's "top
# directory" flag spreads the subfolders of $TMP), as tiers on separate disks
# would be. Without it they share the groups near /tmp, and on an ext4 without
# a journal (this machine's) every file create first skips the inodes freed
# there in the last minutes (ext4's recently_deleted()): after one run removed
# its 20,000 files, the next run's creates cost several times more, whichever
# contender ran next. Elsewhere this is a no-op.
chattr +T "$TMP" 2>/dev/null || true
HELPER_PID=
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$HELPER_PID" ] && kill -0 "$HELPER_PID" 2>/dev/null; then
        kill -TERM "$HELPER_PID" 2>/dev/null || true
        for _ in $(seq 1 300); do kill -0 "$HELPER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$HELPER_PID" 2>/dev/null || true
        wait "$HELPER_PID" 2>/dev/null || true
    fi
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        say "kept $TMP (logs in $TMP/logs)"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ARGS=(--tmp "$TMP" --mover-bin "$MOVER_BIN" --mock-broker-bin "$MOCK_BROKER_BIN"
    --file-work-bin "$FILE_WORK_BIN"
    --brokers "${BENCH_BROKERS:-mock}" --concurrency "$CONC" "${HAS_CONC[@]}"
    --broker-port "${BENCH_BROKER_PORT:-39092}" --mover-port "${BENCH_MOVER_PORT:-39083}"
    --moto-port "${BENCH_MOTO_PORT:-39000}" --rust-log "${RUST_LOG:-info}" --mover-timeout "${BENCH_MOVER_TIMEOUT:-600}"
    --mover-wrap "${BENCH_MOVER_WRAP:-}")
if [ "$QUICK" = 1 ]; then
    ARGS+=(--large-mib 64 --small-n 500 --rounds "${BENCH_ROUNDS:-1}")
else
    ARGS+=(--large-mib "${BENCH_LARGE_MIB:-1024}" --small-n "${BENCH_SMALL_N:-10000}"
        --rounds "${BENCH_ROUNDS:-3}")
fi
[ "$BIG" = 1 ] && ARGS+=(--big-gib "${BENCH_BIG_GIB:-10}")
[ "$BIG_ONLY" = 1 ] && ARGS+=(--only-big)
[ "${BENCH_NO_S3:-0}" = 1 ] && ARGS+=(--no-s3)
[ "${BENCH_NO_MOVE:-0}" = 1 ] && ARGS+=(--no-move)
if [ -n "$PEER_BIN" ]; then
    [ -x "$PEER_BIN" ] || die "BENCH_PEER_MOVER_BIN: $PEER_BIN is not an executable"
    ARGS+=(--peer-mover-bin "$PEER_BIN")
fi
read -r -a PEER_ENV <<< "${BENCH_PEER_ENV:-}"
for kv in "${PEER_ENV[@]}"; do
    ARGS+=(--peer-env "$kv")
done

say "uptime: $(uptime)"
# In the background and waited for, so that a signal reaches the trap at once.
python3 -u "$STRATA_ROOT/scripts/bench/bench_mover.py" "${ARGS[@]}" &
HELPER_PID=$!
rc=0
wait "$HELPER_PID" || rc=$?
HELPER_PID=
exit "$rc"
