#!/usr/bin/env bash
# Makes sure the local Kafka-API broker, tansu 0.6 (crates.io), is installed.
#
#   scripts/ensure-broker.sh
#
# When `tansu` is on PATH (or in ~/.cargo/bin), prints where and does nothing
# else. Otherwise installs it into ~/.cargo/bin with
#
#   cargo install tansu --version '~0.6' --locked --features dynostore,libsql
#
# (the SQLite storage engine run-local.sh uses needs `libsql`). That build
# takes about 12 minutes on two cores, once. Needs a Rust toolchain (rustup);
# TANSU_VERSION overrides the version requirement.
# Idempotent: run it as often as you like.

set -euo pipefail
STRATA_SCRIPT=ensure-broker
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TANSU_VERSION="${TANSU_VERSION:-~0.6}"
TANSU_FEATURES="dynostore,libsql"

if tansu_bin="$(command -v tansu 2>/dev/null)"; then
    version="$("$tansu_bin" --version 2>/dev/null || echo 'tansu (unknown version)')"
    say "broker present: $version at $tansu_bin; nothing to do"
    case "$version" in
        "tansu 0.6."*) ;;
        *) warn "Strata is tested with tansu 0.6.x; found '$version'" ;;
    esac
    exit 0
fi

command -v cargo >/dev/null 2>&1 ||
    die "tansu is not installed and cargo is not on PATH: install Rust (https://rustup.rs), then run this again"

start=$(date +%s)
say "tansu not found: installing it into ~/.cargo/bin (cargo install tansu --version '$TANSU_VERSION' --locked --features $TANSU_FEATURES)"
say "this compiles tansu from source and takes about 12 minutes on two cores, once"
run_stoppable cargo install tansu --version "$TANSU_VERSION" --locked --features "$TANSU_FEATURES"

tansu_bin="$(command -v tansu 2>/dev/null)" || die "cargo install finished but tansu is not on PATH (looked in $HOME/.cargo/bin)"
say "installed $("$tansu_bin" --version 2>/dev/null) at $tansu_bin in $(($(date +%s) - start))s"
