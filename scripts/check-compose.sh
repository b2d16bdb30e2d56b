#!/usr/bin/env bash
# Static check of the docker compose stack in deploy/, for CI machines without
# a Docker engine (nothing is built, pulled or started).
#
#   scripts/check-compose.sh
#
# 1. The Compose file is loaded by a real Compose implementation with every
#    variable at its default (an empty environment): `docker compose config`
#    when the Compose v2 plugin is present, and/or Debian's `docker-compose`
#    1.29 (`docker-compose config`, which needs no engine). Both validate
#    against the Compose specification JSON schema, interpolate variables,
#    and check service references and build contexts. An unset variable
#    without a default is an error here.
#    docker-compose 1.29's schema is the 2021 Compose spec: keys added later
#    (top-level `name`, healthcheck `start_interval`, `develop`, ...) are
#    rejected, so deploy/ sticks to the older, portable subset.
# 2. Our own checks (Python, below) of what a schema cannot see: images pinned
#    to a tag, depends_on targets and conditions, bind-mounted files, the
#    Dockerfile, host ports, the three daemons' settings and healthchecks,
#    Kafka's listeners, the tier file deploy/strata.compose.toml against the
#    buckets minio-init creates, Prometheus targets, Grafana provisioning.
#
# Missing tools are installed from Debian/Ubuntu packages (docker-compose,
# python3-yaml; needs root or password-less sudo): about 15-25 s on a fresh
# machine, once. After that the whole check takes about a second.
# Exits non-zero on any problem.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
COMPOSE_FILE=deploy/docker-compose.yml
START=$(date +%s)

say() { printf '%s\n' "$*"; }
die() { printf 'check-compose: %s\n' "$*" >&2; exit 1; }

[ -f "$COMPOSE_FILE" ] || die "$COMPOSE_FILE not found"

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "need root (or sudo) to install: ${*: -1}"
    fi
}

APT_UPDATED=
apt_install() {
    command -v apt-get >/dev/null 2>&1 ||
        die "apt-get not available; install by hand: $*"
    say "installing Debian packages: $* ..."
    local log
    log="$(mktemp)"
    if [ -z "$APT_UPDATED" ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1 ||
            { cat "$log" >&2; die "apt-get update failed"; }
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" >"$log" 2>&1 ||
        { cat "$log" >&2; die "apt-get install $* failed"; }
    rm -f "$log"
}

# --- tools ------------------------------------------------------------------

HAVE_V2=
if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
    HAVE_V2=1
fi
if ! command -v docker-compose >/dev/null 2>&1 && [ -z "$HAVE_V2" ]; then
    apt_install docker-compose
fi

# A Python >= 3.11 (tomllib) with PyYAML. Debian's python3 is the one the
# docker-compose package brings PyYAML to.
find_python() {
    local py
    for py in /usr/bin/python3 python3; do
        if command -v "$py" >/dev/null 2>&1 &&
            "$py" -c 'import sys, yaml; assert sys.version_info >= (3, 11)' 2>/dev/null; then
            command -v "$py"
            return 0
        fi
    done
    return 1
}
PY="$(find_python)" || { apt_install python3-yaml && PY="$(find_python)"; } ||
    die "need Python >= 3.11 with PyYAML (python3-yaml)"

# --- 1. a Compose implementation loads the file ------------------------------

# An empty environment, so every ${VAR:-default} takes its default and an
# unset variable without one shows up as a warning (which fails the check).
clean_env=(env -i "PATH=$PATH" "HOME=${HOME:-/tmp}")
run_loader() {
    local name="$1"; shift
    local err
    err="$(mktemp)"
    if ! "${clean_env[@]}" "$@" -f "$COMPOSE_FILE" config -q 2>"$err"; then
        cat "$err" >&2
        rm -f "$err"
        die "$name rejects $COMPOSE_FILE"
    fi
    if grep -qiE 'variable is not set|warn' "$err"; then
        cat "$err" >&2
        rm -f "$err"
        die "$name warns about $COMPOSE_FILE"
    fi
    rm -f "$err"
    say "ok    $name config: schema, interpolation, references, build contexts"
}

say "== $COMPOSE_FILE loaded by Compose"
LOADED=
if [ -n "$HAVE_V2" ]; then
    run_loader "docker compose ($(docker compose version --short 2>/dev/null))" docker compose
    LOADED=1
fi
if command -v docker-compose >/dev/null 2>&1; then
    run_loader "docker-compose $(docker-compose version --short 2>/dev/null)" docker-compose
    LOADED=1
fi
[ -n "$LOADED" ] || die "no Compose implementation available"

# --- 2. our own checks ---------------------------------------------------------

"$PY" - "$ROOT" <<'PYTHON'
import json
import os
import re
import shlex
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import yaml

ROOT = Path(sys.argv[1])
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
TIER_FILE = DEPLOY / "strata.compose.toml"

DAEMONS = {  # service -> (HTTP port, its address variable)
    "ingest-svc": (8081, "STRATA_INGEST_ADDR"),
    "policy-svc": (8082, "STRATA_POLICY_ADDR"),
    "mover-svc": (8083, "STRATA_MOVER_ADDR"),
}
EXPECTED_SERVICES = ["kafka", "minio", "minio-init", *DAEMONS, "prometheus", "grafana"]
TIERS = ["hot", "warm", "cold", "archive"]
TIER_NUMBERS = {  # the numeric fields of runtime::tiers::Tier
    "idle_days", "storage_usd_per_gb_month", "retrieval_usd_per_gb", "put_usd_per_1k",
    "get_usd_per_1k", "min_storage_days", "first_byte_ms", "max_ops_per_sec", "max_bytes_per_sec",
    "egress_usd_per_gb", "min_billable_bytes", "overhead_bytes", "restore_days",
}
TIER_KEYS = {"name", "url", "options", "preset", "provider", "storage_class", "restore_tier", *TIER_NUMBERS}  # Tier denies unknown fields
METRICS = [
    "strata_ingest_events_total", "strata_dead_letters_total", "strata_policy_events_applied_total",
    "strata_policy_jobs_emitted_total", "strata_mover_jobs_total", "strata_mover_bytes_copied_total",
    "strata_mover_job_seconds",
]

failures = []
warnings = []


def section(title):
    print(f"== {title}")


def check(ok, what, detail=""):
    if ok:
        print(f"ok    {what}")
    else:
        print(f"FAIL  {what}" + (f": {detail}" if detail else ""))
        failures.append(what)
    return ok


def warn(what):
    print(f"warn  {what}")
    warnings.append(what)


# --- load and interpolate as Compose does, every variable at its default ---

VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")
unset_vars = set()


def interpolate(value):
    if isinstance(value, str):
        def sub(m):
            if m.group(1):
                return "$"
            name = m.group(2) or m.group(5)
            op, default = m.group(3), m.group(4)
            if op in (":-", "-"):
                return default
            unset_vars.add(name)
            return ""
        return VAR.sub(sub, value)
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


raw = yaml.safe_load(COMPOSE.read_text())
doc = interpolate(raw)
services = doc.get("services") or {}


def env_of(svc):
    env = services.get(svc, {}).get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def as_list(v):
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def command_text(svc):
    s = services.get(svc, {})
    parts = []
    for key in ("entrypoint", "command"):
        v = s.get(key)
        parts.extend(v if isinstance(v, list) else [v] if v else [])
    return "\n".join(str(p) for p in parts)


def depends(svc):
    d = services.get(svc, {}).get("depends_on") or {}
    if isinstance(d, list):
        return {n: "service_started" for n in d}
    return {n: (c or {}).get("condition", "service_started") for n, c in d.items()}


def has_healthcheck(svc):
    hc = services.get(svc, {}).get("healthcheck")
    return bool(hc) and not hc.get("disable") and hc.get("test") not in (None, ["NONE"], "NONE")


def healthcheck_text(svc):
    test = (services.get(svc, {}).get("healthcheck") or {}).get("test")
    return " ".join(test) if isinstance(test, list) else str(test or "")


def duration_s(text):
    total, found = 0.0, False
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)", str(text)):
        found = True
        total += float(num) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6}[unit]
    return total if found else None


def ports_of(svc):
    """(host_ip, published, target, protocol) of each published port."""
    out = []
    for p in as_list(services.get(svc, {}).get("ports")):
        if isinstance(p, dict):
            if p.get("published") is not None:
                out.append((p.get("host_ip", ""), int(p["published"]), int(p["target"]), p.get("protocol", "tcp")))
            continue
        spec, _, proto = str(p).partition("/")
        bits = spec.rsplit(":", 2)
        if len(bits) == 1:
            continue  # container port only: an ephemeral host port
        host_ip = bits[0] if len(bits) == 3 else ""
        published, target = bits[-2], bits[-1]
        pr, tr = published.split("-"), target.split("-")
        for i in range(int(pr[-1]) - int(pr[0]) + 1):
            out.append((host_ip, int(pr[0]) + i, int(tr[0]) + i, proto or "tcp"))
    return out


def mounts_of(svc):
    """(type, source, target, read_only) of each volume entry."""
    out = []
    for v in as_list(services.get(svc, {}).get("volumes")):
        if isinstance(v, dict):
            out.append((v.get("type", "volume"), v.get("source"), v.get("target"), bool(v.get("read_only"))))
            continue
        bits = str(v).split(":")
        if len(bits) == 1:
            out.append(("volume", None, bits[0], False))
            continue
        src, dst, mode = bits[0], bits[1], bits[2] if len(bits) > 2 else ""
        kind = "bind" if src.startswith((".", "/", "~")) else "volume"
        out.append((kind, src, dst, "ro" in mode.split(",")))
    return out


def repo_path(source):
    return (DEPLOY / os.path.expanduser(source)).resolve()


# ============================================================================
section("compose file: structure")
check("version" not in raw, "no obsolete top-level `version:` key")
check(list(raw) and set(raw) <= {"services", "volumes", "networks", "configs", "secrets"} | {k for k in raw if str(k).startswith("x-")},
      "top-level keys are compose-spec keys", ", ".join(map(str, raw)))
missing = [s for s in EXPECTED_SERVICES if s not in services]
check(not missing, f"services present: {', '.join(EXPECTED_SERVICES)}", f"missing {missing}")
check(not unset_vars, "every ${VAR} has a default", ", ".join(sorted(unset_vars)))

# ============================================================================
section("images")
for name, s in services.items():
    image = s.get("image")
    if not check(bool(image), f"{name}: has an image name", "no `image:`"):
        continue
    ref = image.split("@", 1)
    last = ref[0].rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else None
    pinned = len(ref) == 2 or (tag is not None and tag != "latest" and tag != "")
    check(pinned, f"{name}: image {image} pinned to a tag", "no tag, or :latest")
built = {n for n, s in services.items() if "build" in s}
check(built == set(DAEMONS), "only the three daemons are built here", f"built: {sorted(built)}")
check(len({services[n].get("image") for n in built}) == 1,
      "the daemons share one image (one Dockerfile)", str({n: services[n].get("image") for n in built}))

# ============================================================================
section("depends_on")
for name in services:
    for dep, cond in depends(name).items():
        if not check(dep in services, f"{name} -> {dep}: service exists"):
            continue
        if cond == "service_healthy":
            check(has_healthcheck(dep), f"{name} -> {dep} (healthy): {dep} has a healthcheck")
        elif cond == "service_completed_successfully":
            restart = str(services[dep].get("restart", "no"))
            check(restart in ("no", "False", "false"), f"{name} -> {dep} (completed): {dep} is one-shot",
                  f"restart: {restart}")
        else:
            check(cond == "service_started", f"{name} -> {dep}: known condition {cond}")


def cycle():
    state = {}

    def visit(n, path):
        if state.get(n) == 1:
            return path[path.index(n):] + [n]
        if state.get(n) == 2:
            return None
        state[n] = 1
        for d in depends(n):
            if d in services and (c := visit(d, path + [n])):
                return c
        state[n] = 2
        return None

    for n in services:
        if c := visit(n, []):
            return c
    return None


c = cycle()
check(c is None, "no dependency cycle", " -> ".join(c or []))

# ============================================================================
section("build, bind mounts, volumes")
for name in sorted(built):
    b = services[name]["build"]
    b = {"context": b} if isinstance(b, str) else b
    ctx = repo_path(b.get("context", "."))
    check(ctx == ROOT, f"{name}: build context is the repository root", str(ctx))
    dockerfile = ctx / b.get("dockerfile", "Dockerfile")
    check(dockerfile.is_file(), f"{name}: Dockerfile {dockerfile.relative_to(ROOT) if dockerfile.is_relative_to(ROOT) else dockerfile} exists")
ignore = ROOT / ".dockerignore"
if check(ignore.is_file(), ".dockerignore at the build context root"):
    patterns = {l.strip().strip("/") for l in ignore.read_text().splitlines() if l.strip() and not l.startswith("#")}
    for p in (".git", "target", "data"):
        check(any(x in (p, f"**/{p}") for x in patterns), f".dockerignore excludes {p}")

declared_volumes = set((doc.get("volumes") or {}).keys())
used_volumes = set()
for name in services:
    for kind, src, dst, ro in mounts_of(name):
        if kind == "bind":
            path = repo_path(src)
            rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            check(path.exists(), f"{name}: bind-mounted {rel} exists")
            check(ro, f"{name}: {rel} mounted read-only")
        elif kind == "volume" and src:
            used_volumes.add(src)
            check(src in declared_volumes, f"{name}: volume {src} declared at top level")
check(not (declared_volumes - used_volumes), "every declared volume is used", ", ".join(sorted(declared_volumes - used_volumes)))

# ============================================================================
section("host ports")
# Conservative: the same port on two host addresses counts as a collision too.
published = {}
for name in services:
    for host_ip, port, target, proto in ports_of(name):
        published.setdefault((port, proto), []).append(name)
clash = {f"{p}/{pr}": names for (p, pr), names in published.items() if len(names) > 1}
check(not clash, "no host port published twice", str(clash))
print("      published: " + ", ".join(f"{p}->{names[0]}" for (p, _), names in sorted(published.items())))

# ============================================================================
section("kafka listeners")
kenv = env_of("kafka")
listeners = dict(re.match(r"([A-Za-z_]+)://[^:]*:(\d+)", l).groups() for l in kenv.get("KAFKA_LISTENERS", "").split(",") if l)
advertised = dict(re.match(r"([A-Za-z_]+)://(.+)", l).groups() for l in kenv.get("KAFKA_ADVERTISED_LISTENERS", "").split(",") if l)
check(kenv.get("KAFKA_PROCESS_ROLES", "").replace(" ", "") in ("broker,controller", "controller,broker"),
      "kafka: KRaft, one node is broker and controller")
for key in ("KAFKA_NODE_ID", "KAFKA_CONTROLLER_QUORUM_VOTERS", "KAFKA_CONTROLLER_LISTENER_NAMES",
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "KAFKA_INTER_BROKER_LISTENER_NAME"):
    check(bool(kenv.get(key)), f"kafka: {key} set")
check(kenv.get("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR") == "1", "kafka: single-node replication factor 1 for internal topics")
check(has_healthcheck("kafka") and "kafka-broker-api-versions" in healthcheck_text("kafka"),
      "kafka: healthcheck with kafka-broker-api-versions.sh")
brokers = {env_of(d).get("KAFKA_BROKERS") for d in DAEMONS}
check(brokers == {"kafka:9092"}, "daemons bootstrap from kafka:9092", str(brokers))
check("kafka:9092" in advertised.values(), "kafka:9092 is an advertised listener (containers)", str(advertised))
host_side = [(pub, tgt) for _, pub, tgt, _ in ports_of("kafka")]
ok = False
for pub, tgt in host_side:
    for lname, lport in listeners.items():
        if int(lport) == tgt and advertised.get(lname) == f"localhost:{pub}":
            ok = True
            print(f"      host clients: localhost:{pub} -> container :{tgt} ({lname}, advertised localhost:{pub})")
check(ok, "a published Kafka port reaches a listener advertised as localhost:<that port>", f"{host_side} {advertised}")
check(any(pub == 9092 for pub, _ in host_side), "host clients use localhost:9092 by default (design §2)")

# ============================================================================
section("minio")
menv = env_of("minio")
check(menv.get("MINIO_ROOT_USER") and menv.get("MINIO_ROOT_PASSWORD"), "minio: root user and password set")
check("server" in command_text("minio") and "/data" in command_text("minio"), "minio: `server /data`")
check(has_healthcheck("minio"), "minio: healthcheck")
init = command_text("minio-init")
mb_buckets = []
for line in init.splitlines():
    words = shlex.split(line) if line.strip() else []
    if len(words) >= 2 and words[0] == "mc" and words[1] == "mb":
        check("--ignore-existing" in words or "-p" in words, "minio-init: `mc mb` is idempotent (--ignore-existing)")
        mb_buckets += [w.split("/", 1)[1] for w in words[2:] if not w.startswith("-") and "/" in w]
check(bool(mb_buckets), "minio-init creates buckets", init)
check(depends("minio-init").get("minio") == "service_healthy", "minio-init waits for minio to be healthy")

# ============================================================================
section("daemons")
dockerfile_text = (ROOT / "deploy/Dockerfile").read_text()
final_stage = dockerfile_text.rsplit("\nFROM ", 1)[-1]
styles = set()
for name, (port, addr_var) in DAEMONS.items():
    s = services.get(name)
    if s is None:
        continue
    env = env_of(name)
    cmd = s.get("command")
    cmd = shlex.split(cmd) if isinstance(cmd, str) else (cmd or [])
    check(cmd[:1] == [name], f"{name}: command runs {name}", str(cmd))
    check(env.get(addr_var, "").rsplit(":", 1)[-1] == str(port) and env.get(addr_var, "").startswith("0.0.0.0:"),
          f"{name}: {addr_var}=0.0.0.0:{port}", env.get(addr_var, "unset"))
    check(any(t == port and p == port for _, p, t, _ in ports_of(name)), f"{name}: port {port} published as {port}")
    hc = healthcheck_text(name)
    check(has_healthcheck(name) and f"127.0.0.1:{port}/healthz" in hc, f"{name}: healthcheck on http://127.0.0.1:{port}/healthz", hc)
    styles.add(next((tool for tool in ("curl", "wget", "/dev/tcp") if tool in hc), hc))
    want = {
        "STRATA_TIERS": "/etc/strata/strata.toml", "STRATA_DATA_DIR": "/var/lib/strata", "STRATA_LOG_FORMAT": "json",
        "AWS_REGION": "us-east-1",
    }
    for k, v in want.items():
        check(env.get(k) == v, f"{name}: {k}={v}", env.get(k, "unset"))
    check(bool(env.get("STRATA_HTTP_TOKEN")), f"{name}: STRATA_HTTP_TOKEN set (the stack requires auth)")
    check(env.get("AWS_ACCESS_KEY_ID") == menv.get("MINIO_ROOT_USER") and env.get("AWS_SECRET_ACCESS_KEY") == menv.get("MINIO_ROOT_PASSWORD"),
          f"{name}: AWS_* credentials are MinIO's root user")
    check(s.get("restart") == "unless-stopped", f"{name}: restart unless-stopped")
    grace = duration_s(s.get("stop_grace_period", "10s"))
    drain = float(env.get("STRATA_SHUTDOWN_GRACE_SECS", 30))
    check(grace is not None and grace > drain, f"{name}: stop_grace_period ({grace:.0f}s) > drain time ({drain:.0f}s)")
    d = depends(name)
    check(d.get("kafka") == "service_healthy", f"{name}: waits for kafka healthy")
    check(d.get("minio-init") == "service_completed_successfully", f"{name}: waits for minio-init to complete")
    data = [src for kind, src, dst, _ in mounts_of(name) if dst == "/var/lib/strata"]
    check(len(data) == 1 and data[0] and not data[0].startswith((".", "/")), f"{name}: named volume at /var/lib/strata", str(data))
owners = {}
for name in DAEMONS:
    for kind, src, dst, _ in mounts_of(name):
        if kind == "volume" and dst == "/var/lib/strata":
            owners.setdefault(src, []).append(name)
check(all(len(v) == 1 for v in owners.values()), "each daemon has its own data volume (own SQLite)", str(owners))
check(len(styles) == 1, "daemon healthchecks all use one method", str(styles))
if "curl" in styles:
    check(re.search(r"apt-get install[^\n]*\bcurl\b", final_stage) is not None,
          "healthchecks use curl, and the runtime image installs it")

# ============================================================================
section("deploy/Dockerfile")
lines = [l for l in re.sub(r"\\\n", " ", dockerfile_text).splitlines() if l.strip() and not l.lstrip().startswith("#")]
froms = [l.split()[1:] for l in lines if l.split()[0].upper() == "FROM"]
for f in froms:
    image = f[0]
    check(":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), f"FROM {image} pinned to a tag")
check([f[0] for f in froms] == ["rust:1-bookworm", "debian:bookworm-slim"], "builder rust:1-bookworm, runtime debian:bookworm-slim")
cargo = next((l for l in lines if "cargo build" in l), "")
for d in DAEMONS:
    check(f"-p {d}" in cargo, f"cargo build -p {d}")
check("--release" in cargo and "--locked" in cargo, "cargo build --release --locked")
check("type=cache" in cargo and "cargo/registry" in cargo and "target" in cargo, "BuildKit cache mounts for the registry and target/")
users = re.findall(r"^USER\s+(\S+)", final_stage, re.M)
check(bool(users) and users[-1].split(":")[0] not in ("root", "0"), "runtime stage runs as a non-root user", str(users))
check(re.search(r"^WORKDIR\s+/var/lib/strata\s*$", final_stage, re.M) is not None, "runtime WORKDIR /var/lib/strata")
for d in DAEMONS:
    check(re.search(rf"^COPY\s+--from=\S+\s+.*\b{d}\b.*\s/usr/local/bin/?\s*$", final_stage, re.M) is not None,
          f"runtime has /usr/local/bin/{d}")
for l in lines:
    words = l.split()
    if words[0].upper() in ("COPY", "ADD") and not any(w.startswith("--from") for w in words):
        srcs = [w for w in words[1:-1] if not w.startswith("--")]
        for src in srcs:
            if src == ".":
                continue
            check((ROOT / src).exists(), f"COPY source {src} exists in the build context")
check(re.search(r"^COPY\s+deploy/strata\.compose\.toml\s+/etc/strata/strata\.toml\s*$", final_stage, re.M) is not None,
      "tier file copied to /etc/strata/strata.toml")
ignored = {l.strip().strip("/").removeprefix("**/") for l in ignore.read_text().splitlines() if l.strip() and not l.startswith("#")} if ignore.is_file() else set()
check(not any(src.split("/")[0] in ignored for l in lines if l.split()[0].upper() == "COPY" for src in l.split()[1:-1] if not src.startswith("--")),
      "no COPY source is excluded by .dockerignore")
# The daemon crates are being written alongside; check them when present.
workspace = tomllib.loads((ROOT / "Cargo.toml").read_text()).get("workspace", {})
for d in DAEMONS:
    manifest = ROOT / d / "Cargo.toml"
    if not manifest.is_file():
        warn(f"{d}/Cargo.toml not there yet: `cargo build -p {d}` cannot succeed until it is")
        continue
    pkg = tomllib.loads(manifest.read_text()).get("package", {})
    check(pkg.get("name") == d, f"{d}/Cargo.toml names package {d}", str(pkg.get("name")))
    check(d in workspace.get("members", []), f"{d} is a workspace member")
    bins = tomllib.loads(manifest.read_text()).get("bin", [])
    check(not bins or any(b.get("name") == d for b in bins), f"{d} builds a binary named {d}")

# ============================================================================
section("tier file deploy/strata.compose.toml")
tiers_doc = tomllib.loads(TIER_FILE.read_text())
tiers = tiers_doc.get("tiers", [])
check(set(tiers_doc) == {"tiers"}, "only [[tiers]] at top level", str(list(tiers_doc)))
check([t.get("name") for t in tiers] == TIERS, f"tiers {', '.join(TIERS)}, fastest first", str([t.get("name") for t in tiers]))
for t in tiers:
    extra = set(t) - TIER_KEYS
    check(not extra, f"tier {t.get('name')}: only known keys (the daemons deny unknown fields)", str(sorted(extra)))
    url = urlparse(t.get("url", ""))
    check(url.scheme == "s3" and bool(url.netloc), f"tier {t.get('name')}: s3:// URL", t.get("url"))
    check(url.netloc in mb_buckets, f"tier {t.get('name')}: bucket {url.netloc} created by minio-init", str(mb_buckets))
    opts = t.get("options", {})
    check(all(isinstance(v, str) for v in opts.values()), f"tier {t.get('name')}: options are strings")
    check(not any(re.search(r"key|secret|token|password|credential", k, re.I) for k in opts),
          f"tier {t.get('name')}: no credentials in the file", str(sorted(opts)))
    ep = urlparse(opts.get("endpoint", ""))
    check(ep.hostname == "minio" and ep.port == 9000,
          f"tier {t.get('name')}: endpoint {opts.get('endpoint')} is the minio service's S3 port")
    if ep.scheme == "http":
        check(opts.get("allow_http") == "true", f"tier {t.get('name')}: allow_http for an http:// endpoint")
    bad = {k: t.get(k) for k in sorted(TIER_NUMBERS)
           if not isinstance(t.get(k, 0), (int, float)) or t.get(k, 0) < 0}
    check(not bad, f"tier {t.get('name')}: prices, days and latency are numbers >= 0", str(bad))
check(set(mb_buckets) == {urlparse(t["url"]).netloc for t in tiers}, "minio-init creates exactly the tiers' buckets")
idle = [t.get("idle_days", 0) for t in tiers]
price = [t.get("storage_usd_per_gb_month", 0) for t in tiers]
check(all(a < b for a, b in zip(idle, idle[1:])), "idle_days rise tier by tier", str(idle))
check(all(a > b for a, b in zip(price, price[1:])), "storage price falls tier by tier", str(price))
# The daemons expand ${NAME} and ${NAME:-default} over the whole text, comments
# included, before parsing; a ${NAME} without default must be set for them.
refs = re.findall(r"\$\{([^}]*)\}", TIER_FILE.read_text())
needed = sorted({r for r in refs if ":-" not in r})
unset = [v for v in needed if not all(v in env_of(d) or v == "STRATA_DATA_DIR" for d in DAEMONS)]
check(not unset, "every ${NAME} in the tier file (comments too) has a default or is set for the daemons", str(unset))
check(TIER_FILE.read_text().count("${") == len(refs), "no unclosed ${ in the tier file")
for d in DAEMONS:
    binds = [src for kind, src, dst, _ in mounts_of(d) if dst == env_of(d).get("STRATA_TIERS")]
    check(all(repo_path(b) == TIER_FILE for b in binds), f"{d}: STRATA_TIERS is this file (image copy{', bind mount' if binds else ''})")

# ============================================================================
section("prometheus")
prom_mount = [src for kind, src, dst, _ in mounts_of("prometheus") if dst == "/etc/prometheus/prometheus.yml"]
if check(len(prom_mount) == 1 and repo_path(prom_mount[0]).is_file(),
         "prometheus: config mounted at /etc/prometheus/prometheus.yml from a repo file"):
    prom = yaml.safe_load(repo_path(prom_mount[0]).read_text())
    check(prom.get("global", {}).get("scrape_interval") == "5s", "scrape interval 5s")
    targets = {}
    for job in prom.get("scrape_configs", []):
        for sc in job.get("static_configs", []):
            for tgt in sc.get("targets", []):
                targets[tgt] = (job.get("metrics_path", "/metrics"), job.get("scrape_interval"))
    for d, (port, _) in DAEMONS.items():
        t = targets.get(f"{d}:{port}")
        check(t is not None and t[0] == "/metrics" and t[1] in (None, "5s"), f"scrapes {d}:{port}/metrics every 5s")

# ============================================================================
section("grafana")
genv = env_of("grafana")
check(genv.get("GF_AUTH_ANONYMOUS_ENABLED") == "true" and genv.get("GF_AUTH_ANONYMOUS_ORG_ROLE") == "Viewer",
      "grafana: anonymous viewers")
check(bool(genv.get("GF_SECURITY_ADMIN_PASSWORD")), "grafana: admin password set (from env, default admin)")
gmounts = {dst: repo_path(src) for kind, src, dst, _ in mounts_of("grafana") if kind == "bind"}


def in_container(path):
    """The repo file behind a container path of the grafana service."""
    for dst, src in sorted(gmounts.items(), key=lambda kv: -len(kv[0])):
        if path == dst or path.startswith(dst.rstrip("/") + "/"):
            return src / path[len(dst):].lstrip("/")
    return None


prov = gmounts.get("/etc/grafana/provisioning")
uids = set()
if check(prov is not None, "grafana: provisioning mounted at /etc/grafana/provisioning"):
    for f in sorted((prov / "datasources").glob("*.y*ml")):
        for ds in yaml.safe_load(f.read_text()).get("datasources", []):
            uids.add(ds.get("uid"))
            u = urlparse(ds.get("url", ""))
            check(u.hostname in services and u.port == 9090, f"datasource {ds.get('name')} -> {ds.get('url')} is the prometheus service")
    check(bool(uids), "grafana: a provisioned data source with a uid")
    dash_files = []
    for f in sorted((prov / "dashboards").glob("*.y*ml")):
        for p in yaml.safe_load(f.read_text()).get("providers", []):
            path = (p.get("options") or {}).get("path", "")
            host = in_container(path)
            if check(host is not None and host.is_dir(), f"dashboard provider path {path} is mounted from the repo", str(host)):
                dash_files += sorted(host.glob("*.json"))
    check(bool(dash_files), "grafana: dashboard files found")
    for f in dash_files:
        dash = json.loads(f.read_text())
        panels = []
        stack = list(dash.get("panels", []))
        while stack:
            p = stack.pop(0)
            panels.append(p)
            stack += p.get("panels", [])
        ids = [p.get("id") for p in panels]
        check(len(ids) == len(set(ids)), f"{f.name}: panel ids unique")
        bad = {((p.get("datasource") or {}).get("uid")) for p in panels if p.get("type") != "row"} - uids
        check(not bad, f"{f.name}: panels use the provisioned data source", str(bad))
        exprs = " ".join(t.get("expr", "") for p in panels for t in p.get("targets", []))
        for m in METRICS:
            check(re.search(rf"\b{m}", exprs) is not None, f"{f.name}: a panel shows {m}")
home = genv.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
if home:
    h = in_container(home)
    check(h is not None and h.is_file(), f"grafana: home dashboard {home} is a repo file", str(h))

# ============================================================================
print()
for w in warnings:
    print(f"warning: {w}")
if failures:
    print(f"check-compose: {len(failures)} problem(s)")
    sys.exit(1)
print(f"check-compose: all checks passed ({len(warnings)} warning(s))")
PYTHON

say "done in $(( $(date +%s) - START ))s"
