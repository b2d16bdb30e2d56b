#!/usr/bin/env bash
# All of Strata's tests: unit and integration tests of the workspace, then the
# end-to-end test (tests/e2e) against a real broker and the three daemons.
#
#   scripts/test.sh
#
# Stages:
#   1. broker        scripts/ensure-broker.sh (installs tansu once, ~12 min)
#   2. test deps     confluent-kafka, pytest and moto (pip), Azurite (npm),
#                    installed only when missing
#   3. build         cargo build --workspace --bins
#   4. rust tests    cargo nextest run --workspace (+ doc tests), or
#                    cargo test --workspace without nextest
#   5. end to end    python3 -m pytest -q tests/e2e
#   6. crash harness mover-svc built with fault points, killed at every step
#                    and at random over 200 jobs on file tiers, 100 on S3
#                    (moto) and 100 on Azure (Azurite) (a few minutes)
# Stops at the first failing stage and exits non-zero.
# Environment: PYTHON (default python3); STRATA_TEST_AZURITE (the
# azurite-blob command; default: installed, then found on PATH);
# CARGO_TARGET_DIR is honoured (the e2e test then runs the daemons from
# $CARGO_TARGET_DIR/debug).

set -euo pipefail
STRATA_SCRIPT="test"
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$STRATA_ROOT"

PYTHON="${PYTHON:-python3}"
STAGE=
STAGE_START=
ALL_START=$(date +%s)

stage() {
    STAGE=$1
    STAGE_START=$(date +%s)
    printf '\n==> %s\n' "$STAGE"
}
stage_done() {
    printf '==> %s: ok (%ss)\n' "$STAGE" "$(($(date +%s) - STAGE_START))"
}
on_exit() {
    local rc=$?
    if [ "$rc" != 0 ] && [ -n "$STAGE" ]; then
        printf '\n==> FAILED at stage "%s" (exit status %s)\n' "$STAGE" "$rc" >&2
    fi
}
trap on_exit EXIT

stage "1/6 broker (tansu)"
scripts/ensure-broker.sh
stage_done

stage "2/6 test deps (tests/e2e/requirements.txt, azurite)"
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found: install Python 3"
if "$PYTHON" -c 'import confluent_kafka, pytest, moto.server' 2>/dev/null; then
    say "confluent-kafka, pytest and moto present"
else
    "$PYTHON" -m pip --version >/dev/null 2>&1 ||
        die "pip missing for $PYTHON (Debian: apt-get install python3-pip)"
    say "installing: $PYTHON -m pip install -q -r tests/e2e/requirements.txt"
    if ! "$PYTHON" -m pip install -q -r tests/e2e/requirements.txt; then
        # A distribution's Python refuses system-wide installs (PEP 668):
        # install for this user instead.
        say "retrying as a user install"
        "$PYTHON" -m pip install -q --user --break-system-packages -r tests/e2e/requirements.txt
    fi
    "$PYTHON" -c 'import confluent_kafka, pytest, moto.server' ||
        die "confluent-kafka, pytest or moto still not importable by $PYTHON"
fi
# Azurite, the Azure Blob server the mover's Azure tests start.
if [ -z "${STRATA_TEST_AZURITE:-}" ]; then
    # A user install (below) lands here.
    case ":$PATH:" in
        *":$HOME/.local/bin:"*) ;;
        *) export PATH="$HOME/.local/bin:$PATH" ;;
    esac
    if ! command -v azurite-blob >/dev/null 2>&1; then
        command -v npm >/dev/null 2>&1 ||
            die "azurite-blob missing and npm not found (Debian: apt-get install nodejs npm)"
        say "installing: npm install -g azurite@3"
        if ! npm install -g --no-fund --no-audit azurite@3 >/dev/null; then
            # Not root, and npm's global folder is the system's: install
            # for this user instead.
            say "retrying as a user install (npm install -g --prefix ~/.local)"
            npm install -g --prefix "$HOME/.local" --no-fund --no-audit azurite@3 >/dev/null
        fi
    fi
    STRATA_TEST_AZURITE="$(command -v azurite-blob)" ||
        die "azurite-blob still not on PATH after npm install -g azurite"
fi
export STRATA_TEST_AZURITE
say "azurite: $STRATA_TEST_AZURITE"
stage_done

stage "3/6 build (cargo build --workspace --bins)"
ensure_build_deps
cargo build --workspace --bins
stage_done

export STRATA_TEST_PYTHON="$PYTHON"  # mover-svc's S3 tests start moto with it
stage "4/6 rust tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace
    # nextest does not run doc tests.
    cargo test --workspace --doc
else
    say "cargo-nextest not installed: using cargo test"
    cargo test --workspace
fi
stage_done

stage "5/6 end to end (pytest tests/e2e)"
if [ -n "${CARGO_TARGET_DIR:-}" ] && [ -z "${STRATA_BIN_DIR:-}" ]; then
    export STRATA_BIN_DIR
    STRATA_BIN_DIR="$(abs_path "$CARGO_TARGET_DIR")/debug"
fi
"$PYTHON" -m pytest -q tests/e2e
stage_done

# Last: it rebuilds mover-svc with its fault points compiled in.
stage "6/6 crash harness (mover-svc killed at every step and at random)"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run -p mover-svc --features fault-injection --test crash --no-capture
else
    cargo test -p mover-svc --features fault-injection --test crash -- --nocapture
fi
stage_done

STAGE=
printf '\n==> all tests passed in %ss\n' "$(($(date +%s) - ALL_START))"
