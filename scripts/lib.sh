# Helpers shared by the scripts in this folder. Source it, don't run it:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Sets STRATA_ROOT (the repository root) and puts ~/.cargo/bin on PATH.
# Needs bash 4+; uses curl when present, else bash's /dev/tcp.

# shellcheck shell=bash

STRATA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export STRATA_ROOT

case ":$PATH:" in
    *":$HOME/.cargo/bin:"*) ;;
    *) export PATH="$HOME/.cargo/bin:$PATH" ;;
esac

# say MSG...: a line for people, prefixed with the script's name.
say() { printf '[%s] %s\n' "${STRATA_SCRIPT:-strata}" "$*"; }
# warn MSG...: the same, on stderr.
warn() { printf '[%s] warning: %s\n' "${STRATA_SCRIPT:-strata}" "$*" >&2; }
# die MSG...: an error on stderr, then exit 1 (EXIT traps still run).
die() {
    printf '[%s] error: %s\n' "${STRATA_SCRIPT:-strata}" "$*" >&2
    exit 1
}

# abs_path PATH: PATH made absolute against the current directory (the path
# need not exist yet).
abs_path() {
    case "$1" in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s/%s\n' "$(pwd)" "${1#./}" ;;
    esac
}

# host_of HOST:PORT / port_of HOST:PORT (also takes tcp://HOST:PORT and the
# first entry of a comma separated list).
host_of() {
    local a="${1%%,*}"
    a="${a#*://}"
    printf '%s\n' "${a%:*}"
}
port_of() {
    local a="${1%%,*}"
    a="${a#*://}"
    printf '%s\n' "${a##*:}"
}

# port_open HOST PORT: true when something accepts TCP connections there.
port_open() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# wait_port HOST PORT SECONDS [PID]: waits until HOST:PORT accepts
# connections; fails after SECONDS, or at once when process PID has died.
wait_port() {
    local host=$1 port=$2 secs=$3 pid=${4:-} deadline
    deadline=$(($(date +%s) + secs))
    until port_open "$host" "$port"; do
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

# http_status URL: prints the HTTP status code of a GET of URL (000 when no
# answer). Only http://HOST:PORT/PATH URLs.
http_status() {
    local url=$1
    if command -v curl >/dev/null 2>&1; then
        curl -s --noproxy '*' -o /dev/null -m 2 -w '%{http_code}' "$url" 2>/dev/null || true
        return 0
    fi
    local rest=${url#http://} hostport path host port line
    hostport=${rest%%/*}
    path=/${rest#*/}
    [ "$rest" = "$hostport" ] && path=/
    host=${hostport%:*}
    port=${hostport##*:}
    line=$(
        exec 3<>"/dev/tcp/$host/$port" || exit 0
        printf 'GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$hostport" >&3
        timeout 2 head -n 1 <&3
    ) 2>/dev/null || true
    line=${line#HTTP/* }
    printf '%s\n' "${line:0:3}" | grep -E '^[0-9]{3}$' || printf '000\n'
}

# wait_http URL SECONDS [PID]: waits until a GET of URL answers 200; fails
# after SECONDS, or at once when process PID has died.
wait_http() {
    local url=$1 secs=$2 pid=${3:-} deadline
    deadline=$(($(date +%s) + secs))
    until [ "$(http_status "$url")" = 200 ]; do
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.25
    done
}

# stop_pid NAME PID [GRACE]: SIGTERM, waits up to GRACE seconds (default 20),
# then SIGKILL. Reaps PID when it is a child of this shell. Prints what it did.
stop_pid() {
    local name=$1 pid=$2 grace=${3:-20} i rc
    if ! kill -0 "$pid" 2>/dev/null; then
        rc=0
        wait "$pid" 2>/dev/null || rc=$?
        if [ "$rc" = 127 ]; then
            say "$name (pid $pid) had already exited"
        else
            say "$name (pid $pid) had already exited (status $rc)"
        fi
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        warn "$name (pid $pid) still running after ${grace}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rc=0
    wait "$pid" 2>/dev/null || rc=$?
    say "stopped $name (pid $pid, exit status $rc)"
}

# run_stoppable COMMAND...: runs a long command (a build, an install) in a
# process group of its own and waits for it. A TERM, INT or HUP sent to the
# script then stops the whole group, the compilers a cargo started included,
# and the script exits (143, 130, 129) without running its own handlers; a
# command run in the foreground would go on alone after a TERM to the
# script, and one in a session of its own after a hang-up. The caller's
# TERM, INT and HUP traps are put back when the command ends. Returns the
# command's status.
run_stoppable() {
    local pid rc=0 stop callers_traps
    callers_traps="$(trap -p TERM INT HUP)"
    if command -v setsid >/dev/null 2>&1; then
        setsid "$@" &
    else
        "$@" &
    fi
    pid=$!
    stop="kill -TERM -- -$pid 2>/dev/null || kill -TERM $pid 2>/dev/null; wait $pid || true"
    # shellcheck disable=SC2064 # the pid is fixed now
    trap "$stop; exit 143" TERM
    # shellcheck disable=SC2064
    trap "$stop; exit 130" INT
    # shellcheck disable=SC2064
    trap "$stop; exit 129" HUP
    wait "$pid" || rc=$?
    trap - TERM INT HUP
    eval "$callers_traps"
    return "$rc"
}

# apt_install PACKAGE...: installs Debian packages with apt-get (through
# sudo unless root), updating
# the package lists once if the first try fails.
apt_install() {
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    say "installing Debian package(s) $* (apt-get)"
    "${sudo[@]}" apt-get install -y "$@" >/dev/null 2>&1 ||
        { "${sudo[@]}" apt-get update >/dev/null && "${sudo[@]}" apt-get install -y "$@" >/dev/null; } ||
        die "apt-get install $* failed"
}

# ensure_build_deps: what building the workspace needs besides Rust and a C
# compiler: OpenSSL's headers, which librdkafka links for TLS and SASL/SCRAM
# to the brokers, found through pkg-config. Installed when missing.
ensure_build_deps() {
    pkg-config --exists openssl 2>/dev/null || apt_install pkg-config libssl-dev
}

# log_tail FILE [LINES]: the last lines of a log, indented, for error reports.
log_tail() {
    local file=$1 lines=${2:-30}
    [ -f "$file" ] || return 0
    printf -- '--- last %s lines of %s ---\n' "$lines" "$file" >&2
    tail -n "$lines" "$file" | sed 's/^/    /' >&2
    printf -- '---\n' >&2
}
