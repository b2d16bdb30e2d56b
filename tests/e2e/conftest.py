"""Fixtures of the end-to-end test: a real broker and the three daemons.

The pipeline runs as it would on a user's machine: tansu (a Kafka-API broker,
SQLite storage in a temp dir) on a free loopback port, then mover-svc,
policy-svc and ingest-svc as separate processes from ``target/debug/`` (or
``$STRATA_BIN_DIR``), each with its own free HTTP port, the file tiers of
``deploy/strata.local.toml`` under a temp ``STRATA_DATA_DIR``. Tests talk to
the pipeline only with non-Strata clients: confluent-kafka, urllib and the
file system.

Build the daemons first: ``cargo build --workspace --bins`` (scripts/test.sh
does). The broker comes from ``scripts/ensure-broker.sh``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("STRATA_BIN_DIR") or REPO / "target" / "debug")
TIERS_FILE = REPO / "deploy" / "strata.local.toml"
TIERS = ("hot", "warm", "cold", "archive")
# Start order; stopped in reverse.
DAEMONS = ("mover-svc", "policy-svc", "ingest-svc")
ADDR_ENV = {
    "ingest-svc": "STRATA_INGEST_ADDR",
    "policy-svc": "STRATA_POLICY_ADDR",
    "mover-svc": "STRATA_MOVER_ADDR",
}
TOPICS = ("access_events", "migration_jobs", "migration_status")
ALL_TOPICS = TOPICS + tuple(f"{t}.dlq" for t in TOPICS)

BROKER_START_SECS = 30
READY_SECS = 60
TOPICS_SECS = 20
SHUTDOWN_SECS = 30

# Loopback HTTP must never go through a proxy from the environment.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET url: (status, body). Connection errors raise OSError."""
    try:
        with _HTTP.open(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def find_tansu() -> str | None:
    found = shutil.which("tansu")
    if found:
        return found
    candidate = Path.home() / ".cargo" / "bin" / "tansu"
    return str(candidate) if candidate.exists() else None


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class Proc:
    """One process the fixture started, with its log file."""

    def __init__(self, name: str, popen: subprocess.Popen, log: Path):
        self.name = name
        self.popen = popen
        self.log = log

    def alive(self) -> bool:
        return self.popen.poll() is None

    def terminate(self, timeout: float) -> int | None:
        """SIGTERM, wait up to timeout; SIGKILL after. The exit code, or
        None when it had to be killed."""
        if self.popen.poll() is not None:
            return self.popen.returncode
        self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
            return None


class Pipeline:
    """The broker and the three daemons; see the module docstring."""

    def __init__(self, root: Path):
        self.root = root
        self.data_dir = root / "data"
        self.log_dir = root / "logs"
        self.broker_port = free_port()
        self.brokers = f"127.0.0.1:{self.broker_port}"
        self.ports = {name: free_port() for name in DAEMONS}
        self.broker: Proc | None = None
        self.daemons: dict[str, Proc] = {}
        self.exit_codes: dict[str, int | None] | None = None

    # -- addresses -------------------------------------------------------
    def url(self, daemon: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[daemon]}{path}"

    def tier_dir(self, tier: str) -> Path:
        return self.data_dir / tier

    def object_path(self, tier: str, key: str) -> Path:
        return self.tier_dir(tier) / key

    # -- diagnostics -----------------------------------------------------
    def log_tails(self, lines: int = 40) -> str:
        parts = [f"data dir: {self.data_dir}  logs: {self.log_dir}"]
        for proc in ([self.broker] if self.broker else []) + list(self.daemons.values()):
            state = "running" if proc.alive() else f"exited {proc.popen.returncode}"
            parts.append(f"----- {proc.name} ({state}), last {lines} lines of {proc.log} -----")
            parts.append(tail(proc.log, lines))
        return "\n".join(parts)

    # -- life cycle ------------------------------------------------------
    def env(self) -> dict[str, str]:
        # Nothing Strata- or Kafka-related leaks in from the caller's shell
        # (a STRATA_HTTP_TOKEN would turn on auth, for instance).
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("STRATA_", "KAFKA_")) and k != "RUST_LOG"
        }
        env.update(
            KAFKA_BROKERS=self.brokers,
            STRATA_TIERS=str(TIERS_FILE),
            STRATA_DATA_DIR=str(self.data_dir),
            RUST_LOG="info",
            STRATA_TOPIC_PARTITIONS="3",
            STRATA_DECIDE_INTERVAL_SECS="1",
            STRATA_INVENTORY_INTERVAL_SECS="0",
            NO_COLOR="1",
        )
        for name, var in ADDR_ENV.items():
            env[var] = f"127.0.0.1:{self.ports[name]}"
        return env

    def _spawn(self, name: str, argv: list[str], cwd: Path, env: dict[str, str]) -> Proc:
        log = self.log_dir / f"{name}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return Proc(name, popen, log)

    def start(self) -> None:
        tansu = find_tansu()
        if tansu is None:
            pytest.fail("tansu not found on PATH or in ~/.cargo/bin: run scripts/ensure-broker.sh")
        missing = [d for d in DAEMONS if not (BIN_DIR / d).is_file()]
        if missing:
            pytest.fail(
                f"daemon binaries missing in {BIN_DIR}: {', '.join(missing)}; "
                "run `cargo build --workspace --bins` (or set STRATA_BIN_DIR)"
            )
        if not TIERS_FILE.is_file():
            pytest.fail(f"tier file {TIERS_FILE} missing")

        for d in [*(self.tier_dir(t) for t in TIERS), self.data_dir / "state", self.root / "broker", self.log_dir]:
            d.mkdir(parents=True, exist_ok=True)

        # The broker: a sqlite:// path is relative to its working directory.
        broker_env = dict(os.environ, RUST_LOG="warn", NO_COLOR="1")
        listen = f"tcp://{self.brokers}"
        started = time.monotonic()
        self.broker = self._spawn(
            "tansu",
            [tansu, "broker", "--storage-engine", "sqlite://tansu.db",
             "--listener-url", listen, "--advertised-listener-url", listen],
            cwd=self.root / "broker",
            env=broker_env,
        )
        while not port_open(self.broker_port):
            if not self.broker.alive():
                raise RuntimeError(f"tansu exited at start-up\n{self.log_tails()}")
            if time.monotonic() - started > BROKER_START_SECS:
                raise RuntimeError(f"tansu not listening within {BROKER_START_SECS}s\n{self.log_tails()}")
            time.sleep(0.05)
        print(f"tansu listening on {self.brokers} after {time.monotonic() - started:.2f}s")

        env = self.env()
        for name in DAEMONS:
            self.daemons[name] = self._spawn(name, [str(BIN_DIR / name)], cwd=REPO, env=env)
        for name in DAEMONS:
            self._wait_ready(name)
        self._wait_topics()

    def _wait_ready(self, name: str) -> None:
        proc = self.daemons[name]
        url = self.url(name, "/readyz")
        started = time.monotonic()
        last = "no answer"
        while True:
            if not proc.alive():
                raise RuntimeError(f"{name} exited with {proc.popen.returncode} before ready\n{self.log_tails()}")
            try:
                status, body = http_get(url, timeout=2)
                if status == 200:
                    print(f"{name} ready after {time.monotonic() - started:.1f}s")
                    return
                last = f"{status} {body[:200]!r}"
            except OSError as e:
                last = str(e)
            if time.monotonic() - started > READY_SECS:
                raise RuntimeError(f"{name}: {url} not 200 within {READY_SECS}s (last: {last})\n{self.log_tails()}")
            time.sleep(0.25)

    def _wait_topics(self) -> None:
        """The daemons create the topics at start (design §1); tansu does not
        auto-create topics on produce, so publishing before would fail."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.brokers})
        started = time.monotonic()
        while True:
            topics = set(admin.list_topics(timeout=10).topics)
            missing = [t for t in ALL_TOPICS if t not in topics]
            if not missing:
                return
            if time.monotonic() - started > TOPICS_SECS:
                raise RuntimeError(
                    f"topics not created by the daemons within {TOPICS_SECS}s: {missing}\n{self.log_tails()}"
                )
            time.sleep(0.5)

    def stop_daemons(self) -> dict[str, int | None]:
        """SIGTERM every daemon at once, each may take SHUTDOWN_SECS. Exit
        codes by name (None: had to be killed). Idempotent."""
        if self.exit_codes is None:
            for name in reversed(DAEMONS):
                proc = self.daemons.get(name)
                if proc and proc.alive():
                    proc.popen.send_signal(signal.SIGTERM)
            codes: dict[str, int | None] = {}
            deadline = time.monotonic() + SHUTDOWN_SECS
            for name in reversed(DAEMONS):
                proc = self.daemons.get(name)
                if proc is None:
                    continue
                try:
                    codes[name] = proc.popen.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.popen.kill()
                    proc.popen.wait(10)
                    codes[name] = None
            self.exit_codes = codes
        return self.exit_codes

    def stop_all(self) -> dict[str, int | None]:
        codes = self.stop_daemons()
        if self.broker is not None:
            self.broker.terminate(10)
        return codes


_ACTIVE: list[Pipeline] = []


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """The running pipeline. At teardown every daemon must exit 0 on SIGTERM
    within 30 s (clean shutdown, design §8); test_pipeline.py checks it
    explicitly too, so this only fails when that test did not run."""
    root = tmp_path_factory.mktemp("strata-e2e")
    pipe = Pipeline(root)
    _ACTIVE.append(pipe)
    try:
        pipe.start()
    except BaseException:
        pipe.stop_all()
        _ACTIVE.remove(pipe)
        raise
    try:
        yield pipe
    finally:
        already_checked = pipe.exit_codes is not None
        codes = pipe.stop_all()
        tails = pipe.log_tails()
        _ACTIVE.remove(pipe)
        if not already_checked:
            bad = {n: c for n, c in codes.items() if c != 0}
            assert not bad, f"unclean shutdown (None = killed after {SHUTDOWN_SECS}s): {bad}\n{tails}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On any failure, attach the tails of the broker's and daemons' logs."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for pipe in _ACTIVE:
            report.sections.append(("strata logs", pipe.log_tails()))
