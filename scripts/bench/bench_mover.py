#!/usr/bin/env python3
"""mover-svc benchmark (issue 3), driven by scripts/bench-mover.sh.

Contenders, at equal concurrency where they have one:
  mover   the real mover-svc daemon against a broker (librdkafka's mock
          cluster or tansu): jobs published on its jobs topic, timed from the
          first publish to the last COMPLETED status (the status's own `ts`);
          the statuses are read once the mover's job counters say all jobs
          ended, so that this script does not compete with it for the cores;
          peak RSS = VmHWM of the process.
  rclone  `rclone copy --checksum`; local->local also the same followed by
          `sync -f` of its destination ("copy+sync": its copies on the disk
          when the clock stops, as the mover's are before it switches); and
          `rclone move --checksum`, which also deletes the source as the
          mover does (local->local with its server-side moves disabled,
          `--disable Move,DirMove`: on one file system it would rename
          instead of copying); peak RSS from /usr/bin/time -v.
  cp      `cp` then `sha256sum` of both sides (local->local only).
  peer    optional (--peer-mover-bin, --peer-env): a second mover, another
          build or other settings, run beside the first in every
          local->local round (fsync on), for A/B comparisons: `mover/peer`.

Workloads: one large object (1 GiB random bytes) and many small ones
(10,000 x 4 KiB random bytes); paths local->local (two file:// folders on the
same disk) and local->S3 (a moto server on loopback). Optional: one 10 GiB
sparse object local->local through the mover, for its peak RSS. local->local
runs --rounds times, every contender once a round, in turn.

Everything it starts (broker, moto, daemons) it stops again; the shell script
removes the temp dir. The last line printed is

  mover/rclone 1GiB=X small=Y

with X, Y = mover throughput / rclone copy throughput, local->local, at the
mover's concurrency: the median of the rounds' own ratios.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

MIB = 1 << 20
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))
PROCS: list[subprocess.Popen] = []
# The contender name of the peer build or setting (--peer-mover-bin, --peer-env).
PEER = "mover-svc peer"


# A step's status, as mover-svc encodes it (JSON); such statuses are only
# read for the phases of a job, once the run is over.
STEP_MARKS = tuple(f'"state":"{st}"'.encode() for st in ("ACCEPTED", "COPYING", "VERIFYING", "SWITCHED"))


def log(msg: str) -> None:
    print(f"[bench] {time.strftime('%H:%M:%S')} {msg}", flush=True)


# ---------------------------------------------------------------- processes
def spawn(argv, logfile: Path, env=None, cwd=None) -> subprocess.Popen:
    with open(logfile, "ab") as out:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             env=env, cwd=cwd, start_new_session=True)
    PROCS.append(p)
    return p


def signal_group(p: subprocess.Popen, sig: int) -> None:
    """Signals the process group `spawn` made `p` the leader of: a wrapper
    (BENCH_MOVER_WRAP, `perf stat` say) and the mover-svc under it alike.
    Signalling the wrapper alone once left the mover running, holding its
    port, and every later run failed."""
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop(p: subprocess.Popen, grace: float = 20.0) -> int | None:
    if p.poll() is None:
        signal_group(p, signal.SIGTERM)
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            signal_group(p, signal.SIGKILL)
            p.wait(10)
    # Whatever of its group outlived it.
    signal_group(p, signal.SIGKILL)
    if p in PROCS:
        PROCS.remove(p)
    return p.returncode


def stop_all() -> None:
    for p in reversed(list(PROCS)):
        stop(p, 10)


def on_signal(signum, _frame):
    stop_all()
    sys.exit(128 + signum)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def pick_port(preferred: int) -> int:
    if preferred and not port_open(preferred):
        try:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, secs: float, what: str, proc: subprocess.Popen | None = None, logf: Path | None = None):
    deadline = time.monotonic() + secs
    while not pred():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited {proc.returncode}\n{tail(logf)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {secs}s\n{tail(logf)}")
        time.sleep(0.1)


def tail(path: Path | None, n: int = 30) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


def http_ok(url: str) -> bool:
    try:
        with _HTTP.open(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def proc_status(pid: int, field: str) -> int:
    """A kB field of /proc/<pid>/status (VmHWM, VmRSS), in bytes."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_secs(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError):
        return 0.0


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of `pid`'s live threads, summed by thread name."""
    by_name: dict[str, float] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return by_name
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        secs = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        by_name[name] = by_name.get(name, 0.0) + secs
    return by_name


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


# ---------------------------------------------------------------- data
def make_random_file(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    chunk = 64 * MIB
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(chunk, left)
            f.write(os.urandom(n))
            left -= n


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(8 * MIB):
            h.update(b)
    return h.hexdigest()


def link_tree(src: Path, dst: Path) -> None:
    """Hard-links every file of src under dst (the same bytes, new names:
    a contender that deletes its source leaves the golden copy alone)."""
    for root, _dirs, files in os.walk(src):
        rel = Path(root).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for f in files:
            os.link(Path(root) / f, dst / rel / f)


def free_space(root: Path) -> None:
    """Removes the large files of a finished run; its small ones stay until the
    script's cleanup. On ext4 without a journal (this machine's), inodes freed
    in the last minutes make every file create slower (ext4's
    recently_deleted()): removing 10,000 files would tax whichever contender
    runs next."""
    for r, _dirs, files in os.walk(root):
        for f in files:
            p = Path(r) / f
            try:
                if p.stat().st_size >= MIB:
                    p.unlink()
            except OSError:
                pass


def count_files(d: Path) -> int:
    return sum(len(files) for _r, _d, files in os.walk(d)) if d.exists() else 0


def trimmed_partitions(brokers: str, topic: str) -> list[int]:
    """The partitions of `topic` whose first offset is past 0: the broker
    dropped their oldest messages."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": brokers, "group.id": "bench-watermarks"})
    try:
        meta = c.list_topics(topic, timeout=10).topics.get(topic)
        parts = sorted(meta.partitions) if meta is not None else []
        return [p for p in parts if c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[0] > 0]
    finally:
        c.close()


# ---------------------------------------------------------------- S3 (moto)
class Moto:
    def __init__(self, root: Path, port: int):
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.logf = root / "logs" / "moto.log"
        exe = shutil.which("moto_server")
        argv = [exe, "-H", "127.0.0.1", "-p", str(port)] if exe else \
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        self.proc = spawn(argv, self.logf)
        wait_until(lambda: port_open(port), 60, "moto server", self.proc, self.logf)
        import boto3
        self.s3 = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                               aws_access_key_id="bench", aws_secret_access_key="bench")

    def make_bucket(self, name: str) -> None:
        self.s3.create_bucket(Bucket=name)

    def objects(self, bucket: str) -> list[tuple[str, int]]:
        out = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            out += [(o["Key"], o["Size"]) for o in page.get("Contents", [])]
        return out

    def empty(self, bucket: str) -> None:
        keys = [k for k, _ in self.objects(bucket)]
        for i in range(0, len(keys), 1000):
            self.s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]]})


# ---------------------------------------------------------------- results
class Result:
    def __init__(self, contender, workload, path, conc, secs, nbytes, nobjs, rss, ok, note=""):
        self.contender, self.workload, self.path, self.conc = contender, workload, path, conc
        self.secs, self.nbytes, self.nobjs, self.rss, self.ok, self.note = secs, nbytes, nobjs, rss, ok, note
        # Which of the interleaved rounds (--rounds) it belongs to, from 1.
        self.round = 1

    @property
    def mibps(self) -> float:
        return self.nbytes / MIB / self.secs if self.secs else 0.0

    @property
    def objps(self) -> float:
        return self.nobjs / self.secs if self.secs else 0.0


RESULTS: list[Result] = []


def record(r: Result) -> Result:
    RESULTS.append(r)
    log(f"{r.contender:<14} {r.workload:<6} {r.path:<12} c={r.conc} {r.secs:8.2f}s "
        f"{r.mibps:9.1f} MiB/s {r.objps:9.1f} obj/s  peakRSS {r.rss / MIB:7.1f} MiB  "
        f"{'ok' if r.ok else 'NOT OK'} {r.note}")
    return r


# ---------------------------------------------------------------- timed commands
# The golden source tree of the workload running (every contender's sources
# are hard links to it), read into the page cache before each contender:
# every contender starts with its sources cached, whatever the one before it
# left there (mover-svc releases the cached pages of what it has copied).
WARM_TREE: Path | None = None


def settle_disk(programs: tuple[str, ...] = ()) -> None:
    """Writes back what earlier steps left dirty (the data just made, the last
    contender's copies), so that no contender's fsyncs or writes queue behind
    another's, then reads the sources into the page cache, and the
    executables of `programs`: a timed contender starts with its code in
    memory. (Some machines page out file pages unread for a minute, as this
    one's kernel does: its DAMON scheme pages out unmapped page cache idle
    for 60 s. Run a round apart, rclone, 52 MiB, would otherwise start by
    reading itself from the disk inside its timing.)"""
    os.sync()
    files = [f for f in WARM_TREE.rglob("*") if f.is_file()] if WARM_TREE else []
    files += [Path(p) for p in (shutil.which(prog) for prog in programs) if p]
    for f in files:
        with open(f, "rb") as src:
            while src.read(MIB):
                pass



def timed(argv: list[str], programs: tuple[str, ...], env=None, cwd=None) -> tuple[float, int, str]:
    """Runs argv under /usr/bin/time -v: (wall seconds, max RSS bytes, output),
    `programs` (the executables it runs) read in first."""
    settle_disk(("/usr/bin/time", *programs))
    t0 = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-v", *argv], env=env, cwd=cwd, capture_output=True, text=True)
    secs = time.monotonic() - t0
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    rss = int(m.group(1)) * 1024 if m else 0
    if p.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    return secs, rss, p.stdout + p.stderr


# ---------------------------------------------------------------- the mover
class Broker:
    """A fresh broker for one mover run. `tansu`: the tansu broker with its own
    SQLite file (a broker that has already taken tens of thousands of records
    answers slower, and an earlier run must not weigh on a later one).
    `mock`: librdkafka's in-memory mock cluster in a process of its own
    (runtime/examples/mock_broker.rs), which measures the mover rather than a
    broker's storage."""

    def __init__(self, root: Path, port: int, name: str, kind: str, mock_bin: str | None):
        self.kind = kind
        d = root / f"broker-{name}"
        d.mkdir(parents=True)
        self.logf = root / "logs" / f"{kind}-{name}.log"
        if kind == "mock":
            self.proc = spawn([mock_bin], self.logf, cwd=d)

            def address() -> str:
                lines = self.logf.read_text().splitlines() if self.logf.exists() else []
                return lines[0].strip() if lines else ""
            wait_until(lambda: address() != "", 30, "mock broker", self.proc, self.logf)
            self.brokers = address()
            return
        self.port = port
        self.brokers = f"127.0.0.1:{port}"
        tansu = shutil.which("tansu") or str(Path.home() / ".cargo/bin/tansu")
        listen = f"tcp://{self.brokers}"
        self.proc = spawn([tansu, "broker", "--storage-engine", "sqlite://tansu.db",
                           "--listener-url", listen, "--advertised-listener-url", listen],
                          self.logf, env=dict(os.environ, RUST_LOG="warn", NO_COLOR="1"), cwd=d)
        wait_until(lambda: port_open(port), 30, "tansu", self.proc, self.logf)


def jobs_ended(port: int) -> int:
    """Jobs mover-svc has ended, any outcome, from its /metrics
    (`strata_mover_jobs_total`); -1 while it does not answer."""
    try:
        with _HTTP.open(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return -1
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("strata_mover_jobs_total{")))


def iso_ms(ts: str) -> float:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000.0


class MoverRun:
    """One fresh mover-svc (own data dir, catalog, topics, group) doing N jobs."""

    def __init__(self, a, moto: Moto | None, name: str, to_tier: str,
                 golden: Path, keys: list[str], nbytes: int, timeout: float, expect_sha: dict | None = None,
                 broker: str = "tansu", fsync: bool = True, peer: bool = False):
        self.a, self.moto, self.broker_kind = a, moto, broker
        self.name = f"{name}-{broker}" + ("" if fsync else "-nofsync") + ("-peer" if peer else "")
        # The peer (--peer-mover-bin, --peer-env): another build or setting
        # of the mover, run beside it in every round.
        self.bin = (a.peer_mover_bin or a.mover_bin) if peer else a.mover_bin
        self.contender = PEER if peer else f"mover-svc/{broker}" + ("" if fsync else " no fsync")
        self.extra_env = dict(a.peer_env) if peer else {}
        # fsync off: the destination file tier's option fsync = "false", so
        # the copy stays in the page cache as rclone's and cp's do.
        self.fsync = fsync
        self.to_tier, self.golden, self.keys, self.nbytes = to_tier, golden, keys, nbytes
        self.timeout, self.expect_sha = timeout, expect_sha or {}
        self.root = Path(a.tmp) / f"mover-{self.name}"
        self.data = self.root / "data"
        self.bucket = f"mover-{self.name}".replace("_", "-").lower()

    def tiers_file(self) -> Path:
        text = (f'[[tiers]]\nname = "src"\nurl = "file://{self.data}/src"\n\n'
                f'[[tiers]]\nname = "dst"\nurl = "file://{self.data}/dst"\n')
        if not self.fsync:
            text += '[tiers.options]\nfsync = "false"\n'
        if self.moto is not None:
            text += (f'\n[[tiers]]\nname = "s3"\nurl = "s3://{self.bucket}"\n'
                     f'[tiers.options]\nendpoint = "{self.moto.endpoint}"\nallow_http = "true"\n'
                     f'region = "us-east-1"\n')
        p = self.root / "tiers.toml"
        p.write_text(text)
        return p

    def run(self) -> Result:
        self.broker = Broker(Path(self.a.tmp), pick_port(self.a.broker_port), self.name,
                             self.broker_kind, self.a.mock_broker_bin)
        try:
            return self._run()
        finally:
            stop(self.broker.proc, 10)

    def _run(self) -> Result:
        from confluent_kafka import Consumer, Producer

        a = self.a
        (self.data / "dst").mkdir(parents=True)
        link_tree(self.golden, self.data / "src")
        # A warm-up job, done before the clock starts: the consumer group join
        # and the first connections are not part of the throughput.
        warm_key = f"warmup/{self.name}.bin"
        (self.data / "src" / "warmup").mkdir(parents=True)
        (self.data / "src" / warm_key).write_bytes(os.urandom(4096))
        if self.to_tier == "s3":
            self.moto.make_bucket(self.bucket)
        topic_jobs, topic_status = f"bench.{self.name}.jobs", f"bench.{self.name}.status"
        env = dict(os.environ,
                   KAFKA_BROKERS=self.broker.brokers, STRATA_TIERS=str(self.tiers_file()),
                   STRATA_DATA_DIR=str(self.data), STRATA_MOVER_ADDR=f"127.0.0.1:{a.mover_port}",
                   STRATA_TOPIC_MIGRATION_JOBS=topic_jobs, STRATA_TOPIC_MIGRATION_STATUS=topic_status,
                   STRATA_TOPIC_ACCESS_EVENTS=f"bench.{self.name}.events",
                   STRATA_MOVER_GROUP=f"bench-mover-{self.name}", RUST_LOG=a.rust_log, NO_COLOR="1",
                   AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1")
        for k in [k for k in env if k.startswith("STRATA_HTTP_TOKEN")]:
            del env[k]
        env.update(self.extra_env)
        if self.broker_kind == "mock":
            # librdkafka's mock broker answers a waiting fetch only when its
            # wait (500 ms by default) runs out, not when a record arrives,
            # which would add up to half a second to every run.
            env["STRATA_KAFKA_OPTIONS"] = "fetch.wait.max.ms=10"
        if a.mover_has_concurrency:
            env["STRATA_MOVER_CONCURRENCY"] = str(a.concurrency)
        logf = Path(a.tmp) / "logs" / f"mover-{self.name}.log"
        log(f"mover {self.name}: {self.broker_kind} broker on {self.broker.brokers}")
        proc = spawn(shlex.split(a.mover_wrap) + [self.bin], logf, env=env)
        wait_until(lambda: http_ok(f"http://127.0.0.1:{a.mover_port}/readyz"), 60,
                   f"mover-svc ({self.name}) /readyz", proc, logf)

        n = len(self.keys)
        states: dict[str, dict[str, dict]] = {}
        done = {"completed": 0, "bad": 0, "redelivered": 0, "last_ts": 0.0, "want": n}
        finished_keys: set[str] = set()
        steps: list[bytes] = []
        finished = threading.Event()
        warm_done = threading.Event()
        stop_consumer = threading.Event()
        peak = {"rss": 0}

        # The statuses are read twice from the start, by two consumer groups:
        # until the warm-up job completes, and after the timed jobs have
        # ended (the mover's job counters tell when). A consumer in this
        # script during the timed jobs would take a share of the two cores
        # from the mover that rclone does not lose. The run's end is the last
        # COMPLETED status's own `ts` either way.
        def consume(group: str, until: threading.Event):
            c = Consumer({"bootstrap.servers": self.broker.brokers, "group.id": f"bench-status-{self.name}-{group}",
                          "auto.offset.reset": "earliest", "enable.auto.commit": False})
            c.subscribe([topic_status])
            try:
                while not stop_consumer.is_set() and not until.is_set():
                    for m in c.consume(1000, 0.2):
                        if m.error():
                            continue
                        v = m.value()
                        # The statuses of steps are decoded after the run:
                        # this script shares the machine with the mover.
                        if any(mark in v for mark in STEP_MARKS):
                            steps.append(v)
                            continue
                        s = json.loads(v)
                        st = s.get("state")
                        if s.get("objectKey") == warm_key:
                            if st == "COMPLETED":
                                warm_done.set()
                            elif st in ("FAILED", "REJECTED"):
                                log(f"mover {self.name}: warm-up job {st}: {s.get('error')}")
                            continue
                        # The first status of each state (COPYING repeats as progress).
                        key = s.get("objectKey")
                        states.setdefault(key, {}).setdefault(st, s)
                        # A job the broker delivered again (after a rebalance)
                        # is answered DUPLICATE with its result: a COMPLETED
                        # one counts once, whichever status came first.
                        if st == "DUPLICATE" and s.get("result") == "COMPLETED":
                            done["redelivered"] += 1
                            st = "COMPLETED"
                        if st == "COMPLETED":
                            if key in finished_keys:
                                continue
                            finished_keys.add(key)
                            states[key].setdefault("COMPLETED", s)
                            done["completed"] += 1
                            done["last_ts"] = max(done["last_ts"], iso_ms(s["ts"]))
                        elif st in ("FAILED", "REJECTED", "DUPLICATE"):
                            done["bad"] += 1
                            if done["bad"] <= 10:
                                log(f"mover {self.name}: {st} {s.get('objectKey')} {s.get('error')}")
                        if done["completed"] + done["bad"] >= done["want"]:
                            finished.set()
            finally:
                c.close()

        def sample_rss():
            while not stop_consumer.is_set() and proc.poll() is None:
                peak["rss"] = max(peak["rss"], proc_status(proc.pid, "VmRSS"))
                time.sleep(0.1)

        th = threading.Thread(target=consume, args=("warm-up", warm_done), daemon=True)
        th.start()
        rs = threading.Thread(target=sample_rss, daemon=True)
        rs.start()
        p = Producer({"bootstrap.servers": self.broker.brokers, "linger.ms": 5})
        t_warm = time.monotonic()
        p.produce(topic_jobs, key=warm_key, headers={"content-type": "application/json"},
                  value=json.dumps({"objectKey": warm_key, "fromTier": "src", "toTier": self.to_tier,
                                    "generation": "0"}))
        p.flush(30)
        if not warm_done.wait(120):
            raise RuntimeError(f"mover {self.name}: warm-up job not COMPLETED within 120s\n{tail(logf)}")
        self.warmup_secs = time.monotonic() - t_warm
        th.join(10)
        ended0 = jobs_ended(a.mover_port)
        settle_disk()
        cpu0_m, cpu0_b = cpu_secs(proc.pid), cpu_secs(self.broker.proc.pid)
        threads0 = thread_cpu(proc.pid)
        cpu0_h = time.process_time()
        jobs = [(k, json.dumps({"objectKey": k, "fromTier": "src", "toTier": self.to_tier, "generation": "0"}))
                for k in self.keys]
        t0 = time.time() * 1000
        for k, job in jobs:
            while True:
                try:
                    p.produce(topic_jobs, key=k, value=job, headers={"content-type": "application/json"})
                    break
                except BufferError:
                    p.poll(0.05)
            p.poll(0)
        p.flush(30)
        t_published = time.time() * 1000
        # Every job's outcome counted once (a job the broker delivered again
        # may count twice; the statuses, read next, settle it).
        deadline = time.monotonic() + self.timeout
        while jobs_ended(a.mover_port) - ended0 < n and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        ended = jobs_ended(a.mover_port) - ended0
        capped = ended < n
        if capped:
            done["want"] = max(ended, 1)
        hwm = proc_status(proc.pid, "VmHWM")
        cpu_m, cpu_b = cpu_secs(proc.pid) - cpu0_m, cpu_secs(self.broker.proc.pid) - cpu0_b
        # The mover's CPU by thread name. Threads that ended during the run
        # (a large copy's reader, writer and verifier) are missing from it.
        threads = {name: secs - threads0.get(name, 0.0) for name, secs in thread_cpu(proc.pid).items()}
        threads_note = ", ".join(f"{name} {secs:.2f}s" for name, secs in
                                 sorted(threads.items(), key=lambda kv: -kv[1]) if secs >= 0.005)
        # This script's own share (publishing the jobs, polling the counters):
        # on a small machine it competes with the mover for the cores.
        cpu_h = time.process_time() - cpu0_h
        # librdkafka's mock broker keeps at most 100,000 messages or 5 MiB
        # per partition and drops the oldest beyond that: with five statuses
        # a job, a run of many tens of thousands of jobs loses its first
        # statuses, and waiting for them would only run into the time cap.
        trimmed = trimmed_partitions(self.broker.brokers, topic_status)
        reader = None
        if trimmed:
            log(f"mover {self.name}: the {self.broker_kind} broker dropped the oldest statuses "
                f"(partitions {trimmed} start past offset 0; the mock broker keeps 100,000 messages "
                f"or 5 MiB a partition): fewer jobs (--small-n) or BENCH_BROKERS=tansu")
            ok_wait = False
        else:
            reader = threading.Thread(target=consume, args=("after", finished), daemon=True)
            reader.start()
            ok_wait = finished.wait(max(deadline - time.monotonic(), 30.0))
        stop_consumer.set()  # ends the RSS sampler, and the consumer
        if reader is not None:
            reader.join(10)
        rc = stop(proc, 30)
        completed = done["completed"]
        end_ms = done["last_ts"] or time.time() * 1000
        secs = max(end_ms - t0, 1.0) / 1000.0
        # Checks: every object at the destination, none left at the source, digests.
        # A run cut by the time cap still counts: its rate is the jobs that
        # completed over the time to the last of them (marked "partial").
        ok = completed > 0 and done["bad"] == 0 and not trimmed
        left = count_files(self.data / "src")
        if self.to_tier == "dst":
            arrived = count_files(self.data / "dst")
        else:
            arrived = len(self.moto.objects(self.bucket))
        arrived -= 1  # the warm-up object
        # Jobs cut by the stop may leave their copies behind: up to the jobs
        # in flight, 64 per copy slot.
        in_flight = 64 * a.concurrency
        ok = ok and abs(left - (n - completed)) <= in_flight and abs(arrived - completed) <= in_flight
        self.partial = capped or not ok_wait
        for k, want in self.expect_sha.items():
            got = states.get(k, {}).get("COMPLETED", {}).get("sha256")
            if got != want:
                ok = False
                log(f"mover {self.name}: {k} sha256 {got} != {want}")
        for v in steps:
            s = json.loads(v)
            if s.get("objectKey") != warm_key:
                states.setdefault(s.get("objectKey"), {}).setdefault(s.get("state"), s)
        # Where the time went, from the statuses' elapsedMs.
        phases = {"copy": [], "verify": [], "switch": [], "finish": [], "job": [], "accept": []}
        for st in states.values():
            e = {k: int(v.get("elapsedMs", 0)) for k, v in st.items()}
            real = st.get("COMPLETED", {}).get("state") == "COMPLETED"
            if real and {"COPYING", "VERIFYING", "SWITCHED", "COMPLETED"} <= e.keys():
                phases["accept"].append(e["COPYING"])
                phases["copy"].append(e["VERIFYING"] - e["COPYING"])
                phases["verify"].append(e["SWITCHED"] - e["VERIFYING"])
                phases["finish"].append(e["COMPLETED"] - e["SWITCHED"])
                phases["job"].append(e["COMPLETED"])
        ph = {k: (sum(v) / len(v) if v else 0.0) for k, v in phases.items()}
        maxjob = max(phases["job"]) if phases["job"] else 0
        redelivered = (f"; {done['redelivered']} jobs delivered again by the broker and answered "
                       f"DUPLICATE(COMPLETED)" if done["redelivered"] else "")
        note = (f"jobs {completed}/{n}{redelivered}; per job avg {ph['job']:.1f} ms (to COPYING {ph['accept']:.1f}, "
                f"copy {ph['copy']:.1f}, verify {ph['verify']:.1f}, switch+delete {ph['finish']:.1f}), "
                f"max elapsedMs {maxjob}; publish took {(t_published - t0) / 1000:.2f}s; "
                f"CPU mover {cpu_m:.1f}s ({threads_note}) broker {cpu_b:.1f}s harness {cpu_h:.1f}s; sampled peak VmRSS {peak['rss'] / MIB:.1f} MiB; "
                f"warm-up job (group join etc., not timed) {self.warmup_secs:.1f}s; exit {rc}")
        if trimmed:
            note = "PARTIAL (the broker dropped the first statuses): " + note
        elif self.partial:
            note = f"PARTIAL (time cap {self.timeout:.0f}s): " + note
        if not ok:
            note += f"; NOT OK: src left {left}, arrived {arrived}, bad {done['bad']}"
            log(tail(logf, 20))
        self.extra = {"phases": ph, "maxjob": maxjob, "cpu_mover": cpu_m, "cpu_tansu": cpu_b}
        # Free the space for the next run.
        free_space(self.data / "dst")
        if self.to_tier == "s3":
            self.moto.empty(self.bucket)
        if completed == 0:
            secs = float("nan")
        r = Result(self.contender, "", "", a.mover_conc_label, secs,
                   self.nbytes * completed // n, completed, hwm, ok, note)
        r.partial = self.partial
        return r


# ---------------------------------------------------------------- rclone, cp
def rclone_run(a, moto: Moto | None, golden: Path, name: str, to_s3: bool, verb: str, conc: int,
               nbytes: int, nobjs: int) -> Result:
    root = Path(a.tmp) / f"rclone-{name}"
    src, dst = root / "src", root / "dst"
    link_tree(golden, src)
    env = dict(os.environ, RCLONE_CONFIG=str(Path(a.tmp) / "rclone.conf"))
    if to_s3:
        bucket = f"rclone-{name}".replace("_", "-").lower()
        moto.make_bucket(bucket)
        env.update(RCLONE_CONFIG_BENCHS3_TYPE="s3", RCLONE_CONFIG_BENCHS3_PROVIDER="Other",
                   RCLONE_CONFIG_BENCHS3_ENDPOINT=moto.endpoint, RCLONE_CONFIG_BENCHS3_ACCESS_KEY_ID="bench",
                   RCLONE_CONFIG_BENCHS3_SECRET_ACCESS_KEY="bench", RCLONE_CONFIG_BENCHS3_REGION="us-east-1",
                   RCLONE_CONFIG_BENCHS3_FORCE_PATH_STYLE="true")
        target = f"benchs3:{bucket}"
    else:
        dst.mkdir(parents=True)
        target = str(dst)
    durable = verb == "copy+sync"
    argv = ["rclone", "copy" if durable else verb, "--checksum", "--transfers", str(conc),
            "--checkers", str(conc), str(src), target]
    if verb == "move" and not to_s3:
        # Copy, check, delete: the mover's job, not a rename.
        argv[2:2] = ["--disable", "Move,DirMove"]
    if durable:
        # The copies on the disk before the clock stops, as the mover's are
        # before it switches: `sync -f` flushes the destination's file system.
        argv = ["sh", "-c", '"$@" && sync -f "$0"', target, *argv]
    secs, rss, out = timed(argv, ("rclone", "sh", "sync"), env=env)
    if to_s3:
        objs = moto.objects(bucket)
        ok = len(objs) == nobjs and sum(s for _, s in objs) == nbytes
        moto.empty(bucket)
    else:
        ok = count_files(dst) == nobjs
    if verb == "move":
        ok = ok and count_files(src) == 0
    free_space(root)
    note = {"move": "copies, deletes source", "copy+sync": "source kept; then sync -f of the destination"}.get(
        verb, "source kept")
    cpu = sum(float(m) for m in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", out))
    note += f"; CPU {cpu:.1f}s"
    return Result(f"rclone {verb}", "", "", str(conc), secs, nbytes, nobjs, rss, ok, note)


def cp_run(a, golden: Path, name: str, conc: int, nbytes: int, nobjs: int) -> Result:
    root = Path(a.tmp) / f"cp-{name}"
    src, dst = root / "src", root / "dst"
    link_tree(golden, src)
    dst.mkdir(parents=True)
    # cp, then sha256sum of both sides (in batches, `conc` at a time), compared.
    script = (
        'set -e; cp -r "$1"/. "$2"/; '
        'for side in "$1" "$2"; do (cd "$side" && find . -type f -print0 | '
        'xargs -0 -n 256 -P "$3" sha256sum | sort -k2) > "$side.sums"; done; '
        'cmp "$1.sums" "$2.sums"'
    )
    secs, rss, _ = timed(["sh", "-c", script, "sh", str(src), str(dst), str(conc)],
                         ("sh", "cp", "find", "xargs", "sha256sum", "sort", "cmp"))
    ok = count_files(dst) == nobjs
    free_space(root)
    return Result("cp+sha256sum", "", "", str(conc), secs, nbytes, nobjs, rss, ok, "source kept; cp is 1 process")


def file_work_run(a, golden: Path, name: str, conc: int, nbytes: int, nobjs: int) -> Result:
    """mover-svc's file operations alone (examples/small_rate.rs): each object
    copied with SHA-256, read back and linked (or renamed) into place, one syncfs per
    batch, then the sources unlinked; no Kafka, no SQLite, no hand-offs. What
    the mover reaches of it is what its coordination leaves."""
    root = Path(a.tmp) / f"filework-{name}"
    src, dst = root / "src", root / "dst"
    link_tree(golden, src)
    try:
        secs, rss, out = timed([a.file_work_bin, str(src), str(dst), str(conc)], (a.file_work_bin,))
    except RuntimeError as e:
        log(f"file work only {name} failed: {e}")
        free_space(root)
        return Result("file work only", "", "", str(conc), float("nan"), 0, 0, 0, False,
                      f"FAILED: {str(e).splitlines()[0]}")
    ok = count_files(dst) == nobjs and count_files(src) == 0
    free_space(root)
    # Its own line: "... objects/s, C s CPU (M ms an object), N threads".
    cpu = re.search(r"[0-9.]+ s CPU \([0-9.]+ ms an object\)", out)
    return Result("file work only", "", "", str(conc), secs, nbytes, nobjs, rss, ok,
                  "the mover's file operations, no Kafka or SQLite" + (f"; {cpu.group(0)}" if cpu else ""))


# ---------------------------------------------------------------- SHA-256 speed
def sha_speed(a) -> dict:
    out = {}
    p = subprocess.run(["openssl", "speed", "-evp", "sha256", "-bytes", "8192", "-seconds", "3"],
                       capture_output=True, text=True)
    m = re.search(r"^sha256\s+([\d.]+)k", p.stdout, re.M)
    if m:
        out["openssl"] = float(m.group(1)) * 1000 / MIB
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(a.tmp)
    f = shm / f"bench-sha-{os.getpid()}.bin"
    try:
        make_random_file(f, 512 * MIB)
        subprocess.run(["sha256sum", str(f)], capture_output=True)  # warm
        t0 = time.monotonic()
        subprocess.run(["sha256sum", str(f)], capture_output=True, check=True)
        out["sha256sum"] = 512 / (time.monotonic() - t0)
        t0 = time.monotonic()
        sha256_file(f)
        out["python hashlib"] = 512 / (time.monotonic() - t0)
    finally:
        f.unlink(missing_ok=True)
    return out


def disk_write_speed(tmp: Path, mib: int) -> float:
    """MiB/s of writing `mib` MiB of random bytes to a file beside the tiers
    and fdatasync-ing it, as `dd conv=fdatasync` would: the rate a copy that
    must be durable before its switch cannot beat on this disk."""
    block = os.urandom(8 * MIB)
    f = tmp / "disk-speed.bin"
    settle_disk()
    try:
        t0 = time.monotonic()
        with open(f, "wb") as out:
            for _ in range(max(1, mib // 8)):
                out.write(block)
            out.flush()
            os.fdatasync(out.fileno())
        return max(1, mib // 8) * 8 / (time.monotonic() - t0)
    finally:
        f.unlink(missing_ok=True)


# ---------------------------------------------------------------- main
def main() -> int:
    global WARM_TREE
    ap = argparse.ArgumentParser()
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--mover-bin", required=True)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--mover-has-concurrency", action="store_true")
    ap.add_argument("--large-mib", type=int, default=1024)
    ap.add_argument("--small-n", type=int, default=10000)
    ap.add_argument("--small-kib", type=int, default=4)
    ap.add_argument("--big-gib", type=int, default=0, help="sparse object for the RSS run; 0: skip")
    ap.add_argument("--broker-port", type=int, default=39092)
    ap.add_argument("--mover-port", type=int, default=39083)
    ap.add_argument("--moto-port", type=int, default=39000)
    ap.add_argument("--only-big", action="store_true", help="only the --big-gib run (and SHA speed)")
    ap.add_argument("--no-s3", action="store_true")
    ap.add_argument("--no-move", action="store_true", help="skip the rclone move rows")
    ap.add_argument("--mover-timeout", type=float, default=600)
    ap.add_argument("--brokers", default="mock,tansu",
                    help="comma-separated broker kinds for the mover runs (mock, tansu); the first one "
                         "gives the last line's ratios")
    ap.add_argument("--mock-broker-bin", default=None)
    ap.add_argument("--file-work-bin", default=None,
                    help="examples/small_rate: adds a row of the mover's file operations alone")
    ap.add_argument("--rust-log", default="info")
    ap.add_argument("--mover-wrap", default="", help="a command put before mover-svc (profiling)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="local->local: every contender this many times, in interleaved rounds; "
                         "each ratio is the median of the rounds' own ratios")
    ap.add_argument("--peer-mover-bin", default=None,
                    help="another mover-svc build, run beside --mover-bin in every local->local round "
                         "(fsync on, the first broker): prints mover/peer, the median of the rounds' ratios")
    ap.add_argument("--peer-env", action="append", default=[], metavar="NAME=VALUE",
                    help="an environment variable for the peer only (repeatable); without "
                         "--peer-mover-bin the peer is --mover-bin with these variables")
    a = ap.parse_args()
    peer_env = []
    for kv in a.peer_env:
        name, eq, value = kv.partition("=")
        if not name or not eq:
            ap.error(f"--peer-env: NAME=VALUE, not {kv!r}")
        peer_env.append((name, value))
    a.peer_env = peer_env
    a.has_peer = bool(a.peer_mover_bin or a.peer_env)
    if a.rounds < 1:
        ap.error(f"--rounds: at least 1, not {a.rounds}")
    a.brokers = [b.strip() for b in a.brokers.split(",") if b.strip()]
    if not a.brokers or any(b not in ("mock", "tansu") for b in a.brokers):
        ap.error(f"--brokers: mock and/or tansu, not {a.brokers}")
    if "mock" in a.brokers and not a.mock_broker_bin:
        ap.error("--brokers mock needs --mock-broker-bin")
    # Everything is on loopback over plain HTTP: no proxy, no CA bundle (rclone
    # refuses to start with AWS_CA_BUNDLE set: "unsupported transport").
    os.environ.pop("AWS_CA_BUNDLE", None)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    atexit.register(stop_all)
    tmp = Path(a.tmp)
    (tmp / "logs").mkdir(parents=True, exist_ok=True)
    (tmp / "rclone.conf").write_text("")
    a.broker_port, a.mover_port = pick_port(a.broker_port), pick_port(a.mover_port)
    conc = a.concurrency
    mover_conc = conc if a.mover_has_concurrency else 1
    a.mover_conc_label = str(mover_conc) if a.mover_has_concurrency else "1*"
    started = time.monotonic()
    loads = [("start", loadavg())]

    log(f"load average at start {loadavg()}; {os.cpu_count()} CPUs; temp dir {tmp}")
    log("SHA-256 on one core ...")
    sha = sha_speed(a)
    log("SHA-256 one core: " + ", ".join(f"{k} {v:.0f} MiB/s" for k, v in sha.items()))
    disk_mib = min(max(a.large_mib, 64), 1024)
    disk = disk_write_speed(tmp, disk_mib)
    log(f"disk: {disk_mib} MiB written and fdatasync'd at {disk:.0f} MiB/s")

    if a.only_big:
        a.small_n, a.large_mib = 0, 0
    large_bytes = a.large_mib * MIB
    large_name = f"{a.large_mib}MiB" if a.large_mib != 1024 else "1GiB"
    small_bytes = a.small_kib * 1024
    log(f"making the data: one {large_name} random object, {a.small_n} x {a.small_kib} KiB random objects")
    g_large, g_small = tmp / "golden-large", tmp / "golden-small"
    (g_large / "large").mkdir(parents=True)
    make_random_file(g_large / "large" / "object.bin", large_bytes)
    large_sha = sha256_file(g_large / "large" / "object.bin")
    width = len(str(a.small_n - 1))
    small_keys = []
    for i in range(a.small_n):
        k = f"small/{i // 1000:03d}/{i:0{width}d}.bin"
        p = g_small / k
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(small_bytes))
        small_keys.append(k)
    workloads = [
        (large_name, g_large, ["large/object.bin"], large_bytes, 1, {"large/object.bin": large_sha}),
        ("small", g_small, small_keys, small_bytes * a.small_n, a.small_n, {}),
    ]

    moto = None
    if not a.no_s3 and not a.only_big:
        moto = Moto(tmp, pick_port(a.moto_port))
        log(f"moto S3 server on {moto.endpoint}")
    paths = [("local->local", False)] + ([("local->S3", True)] if moto else [])
    rclone_concs = [mover_conc] if a.mover_has_concurrency or conc == 1 else [mover_conc, conc]

    # local->local runs in rounds (the figures of one run move by a factor of
    # two or more on a shared machine, "Why the figures move" in
    # docs/performance.md): every contender once a round, so that a slow
    # minute weighs on all of one round rather than on one contender.
    # local->S3 runs once (moto's pace, not the disk's, sets it).
    runs = [(path, to_s3, wl, rnd)
            for path, to_s3 in ([] if a.only_big else paths)
            for wl in workloads
            for rnd in range(1, (1 if to_s3 else a.rounds) + 1)]
    for path, to_s3, (wname, golden, keys, nbytes, nobjs, shas), rnd in runs:
        WARM_TREE = golden
        tag = f"{wname}-{'s3' if to_s3 else 'local'}".lower() + (f"-r{rnd}" if rnd > 1 else "")
        loads.append((f"{tag} begin", loadavg()))
        log(f"--- {wname} {path}" + (f" round {rnd}/{a.rounds}" if a.rounds > 1 and not to_s3 else "")
            + f"; load {loadavg()}")

        def place(r: Result) -> None:
            r.workload, r.path, r.round = wname, path, rnd
            record(r)

        def mover_row(kind: str, fsync: bool = True, peer: bool = False) -> None:
            """One mover run; a run that fails is a FAILED row, not the end."""
            run = MoverRun(a, moto, tag, "s3" if to_s3 else "dst", golden, keys, nbytes,
                           a.mover_timeout, shas, kind, fsync=fsync, peer=peer)
            try:
                r = run.run()
            except RuntimeError as e:
                log(f"{run.contender} {tag} failed: {e}")
                r = Result(run.contender, "", "", a.mover_conc_label, float("nan"), 0, 0, 0,
                           False, f"FAILED: {str(e).splitlines()[0]}")
            place(r)

        # The peer goes before the mover in even rounds, after it in odd
        # ones, so that neither always follows the same contender.
        peer_first = a.has_peer and not to_s3 and rnd % 2 == 0
        if peer_first:
            mover_row(a.brokers[0], peer=True)
        for kind in a.brokers:
            mover_row(kind)
        if a.has_peer and not to_s3 and not peer_first:
            mover_row(a.brokers[0], peer=True)
        if not to_s3:
            # Like for like with rclone and cp, which leave their copies
            # in the page cache: the mover with its file tier's fsync off.
            mover_row(a.brokers[0], fsync=False)
        for c in rclone_concs:
            verbs = ["copy"] + ([] if to_s3 else ["copy+sync"]) + ([] if a.no_move else ["move"])
            for verb in verbs:
                place(rclone_run(a, moto, golden, f"{tag}-{verb.replace('+', '-')}-{c}", to_s3, verb, c,
                                 nbytes, nobjs))
        if not to_s3:
            place(cp_run(a, golden, tag, mover_conc, nbytes, nobjs))
            if a.file_work_bin:
                place(file_work_run(a, golden, tag, mover_conc, nbytes, nobjs))
    loads.append(("after main runs", loadavg()))

    big = None
    # The sparse object is not read in ahead: it is mostly holes.
    WARM_TREE = None
    if a.big_gib:
        log(f"--- bounded memory: one {a.big_gib} GiB sparse object local->local; load {loadavg()}")
        g_big = tmp / "golden-big"
        (g_big / "big").mkdir(parents=True)
        with open(g_big / "big" / "sparse.bin", "wb") as f:
            f.truncate(a.big_gib << 30)
        big = MoverRun(a, None, "big-local", "dst", g_big, ["big/sparse.bin"], a.big_gib << 30,
                       max(a.mover_timeout, 1800), None, a.brokers[0]).run()
        big.workload, big.path = f"{a.big_gib}GiB sparse", "local->local"
        record(big)
        shutil.rmtree(g_big, ignore_errors=True)
        loads.append(("after big run", loadavg()))

    stop_all()

    # ------------------------------------------------------------ report
    one_core = sha.get("openssl", 0.0)
    print()
    print(f"mover-svc benchmark  {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%SZ}  "
          f"{os.cpu_count()} CPUs  run took {time.monotonic() - started:.0f}s")
    print("load averages (1/5/15 min): " + "; ".join(f"{w} {l}" for w, l in loads))
    print("SHA-256, one core: " + ", ".join(f"{k} {v:.0f} MiB/s" for k, v in sha.items()))
    print(f"disk (temp dir): {disk_mib} MiB written and fdatasync'd at {disk:.0f} MiB/s, the bound of "
          "any copy made durable before it counts (mover-svc's); rclone and cp leave theirs in the page cache")
    if not a.mover_has_concurrency:
        print("mover-svc has no STRATA_MOVER_CONCURRENCY yet: it runs jobs one at a time (c=1*); "
              f"rclone is shown at c=1 (equal) and c={conc}.")
    print(f"mover: STRATA_MOVER_PART_MIB={os.environ.get('STRATA_MOVER_PART_MIB', '8')} "
          f"PARTS_IN_FLIGHT={os.environ.get('STRATA_MOVER_PARTS_IN_FLIGHT', '4')}; "
          "page cache warm (sources read before each contender), mover-svc fsyncs what it writes to file tiers, rclone and cp do not")
    print()
    rounds = a.rounds > 1
    hdr = f"{'workload':<14} {'path':<13} {'contender':<23} {'c':>3} " + (f"{'rnd':>3} " if rounds else "") + \
          f"{'seconds':>9} {'MiB/s':>9} {'obj/s':>9} {'peak RSS MiB':>12} {'SHA frac':>8} {'ok':>4}"
    print(hdr)
    print("-" * len(hdr))
    def okcol(r: Result) -> str:
        return ("cap" if getattr(r, "partial", False) else "yes") if r.ok else "NO"

    for r in RESULTS:
        frac = f"{r.mibps / (one_core / 2):.2f}" if r.contender.startswith("mover-svc") and one_core else ""
        print(f"{r.workload:<14} {r.path:<13} {r.contender:<23} {r.conc:>3} "
              + (f"{r.round:>3} " if rounds else "")
              + f"{r.secs:9.2f} {r.mibps:9.1f} {r.objps:9.1f} {r.rss / MIB:12.1f} {frac:>8} {okcol(r):>4}")
    print()
    print("SHA frac = mover MiB/s / (one-core openssl SHA-256 / 2): the mover hashes every byte twice "
          "(copy, then read-back verify), so 1.00 = as fast as one core can hash twice.")
    print("rclone --checksum verifies with MD5 (local, S3 ETag/Content-MD5), not SHA-256, and does not read "
          "the destination back; rclone copy and cp keep the source, mover-svc and rclone move delete it.")
    print()
    if any(getattr(r, "partial", False) for r in RESULTS):
        print("ok = cap: the mover run hit its time cap (BENCH_MOVER_TIMEOUT); its rate is the jobs completed "
              "by then over the time to the last COMPLETED.")
    print("mover-svc details:")
    for r in RESULTS:
        if r.contender.startswith("mover-svc"):
            print(f"  {r.workload} {r.path} {r.contender}" + (f" round {r.round}" if rounds else "")
                  + f": {r.note}")
    print()

    def round_ratios(wname: str, contender: str, verb: str = "copy", base: str | None = None) -> list[float]:
        """contender's throughput over rclone `verb`'s (or over contender
        `base`'s), local->local, for each round that has both (a failed run
        has none)."""
        def one(name: str, rnd: int, conc: str | None = None) -> Result | None:
            return next((r for r in RESULTS if r.contender == name and r.workload == wname
                         and r.path == "local->local" and r.round == rnd
                         and (conc is None or r.conc == conc)), None)
        out = []
        for rnd in range(1, a.rounds + 1):
            m = one(contender, rnd)
            rc = one(base, rnd) if base else one(f"rclone {verb}", rnd, str(mover_conc))
            # A failed run's rate is NaN, and NaN is truthy: compared to itself.
            if m and rc and rc.mibps and rc.mibps == rc.mibps and m.mibps == m.mibps:
                out.append(m.mibps / rc.mibps)
        return out

    def ratio(wname: str, contender: str, verb: str = "copy", base: str | None = None) -> str:
        """The median of the rounds' ratios (the one ratio with one round)."""
        each = round_ratios(wname, contender, verb, base)
        return f"{statistics.median(each):.2f}" if each else "nan"

    first = f"mover-svc/{a.brokers[0]}"
    all_ok = all(r.ok for r in RESULTS)
    if not all_ok:
        print("WARNING: some runs did not check out (ok = NO above)")
    for kind in a.brokers[1:]:
        print(f"with the {kind} broker: mover/rclone 1GiB={ratio(large_name, f'mover-svc/{kind}')} "
              f"small={ratio('small', f'mover-svc/{kind}')}")
    nofsync = f"mover-svc/{a.brokers[0]} no fsync"
    print(f"with the file tier's fsync off (page cache only, as rclone): mover/rclone "
          f"1GiB={ratio(large_name, nofsync)} small={ratio('small', nofsync)}")
    if not a.no_move:
        print(f"against rclone doing the mover's whole job (copy, check, delete the source; "
              f"`rclone move --disable Move,DirMove`): mover/rclone-move "
              f"1GiB={ratio(large_name, first, 'move')} small={ratio('small', first, 'move')}")
    if a.file_work_bin:
        print(f"the mover's file operations alone (copy, read-back, link into place, syncfs, unlink; no Kafka or SQLite): "
              f"file-work/rclone 1GiB={ratio(large_name, 'file work only')} small={ratio('small', 'file work only')}"
              + ("" if a.no_move else
                 f"; against rclone move, which deletes its sources as they do: "
                 f"1GiB={ratio(large_name, 'file work only', 'move')} small={ratio('small', 'file work only', 'move')}"))
    print(f"against rclone copy followed by `sync -f` of its destination (its copies on the disk, as the "
          f"mover's are): mover/rclone-copy+sync 1GiB={ratio(large_name, first, 'copy+sync')} "
          f"small={ratio('small', first, 'copy+sync')}")
    def each(wname: str, base: str | None = None) -> str:
        """The mover's ratio of each round, against rclone copy or `base`."""
        return " ".join(f"{x:.2f}" for x in round_ratios(wname, first, base=base)) or "none"

    if a.has_peer:
        print(f"against the peer ({a.peer_mover_bin or a.mover_bin}"
              + "".join(f" {k}={v}" for k, v in a.peer_env) + f"): mover/peer "
              f"1GiB={ratio(large_name, first, base=PEER)} small={ratio('small', first, base=PEER)}; "
              f"round by round: 1GiB {each(large_name, PEER)}; small {each('small', PEER)}")
    if rounds:
        print(f"each ratio here is the median of {a.rounds} rounds'; the last line's, round by round: "
              f"1GiB {each(large_name)}; small {each('small')}")
    print(f"the last line is with the {a.brokers[0]} broker (BENCH_BROKERS={','.join(a.brokers)}), "
          f"fsync on (mover-svc's default)")
    print(f"mover/rclone 1GiB={ratio(large_name, first)} small={ratio('small', first)}",
          flush=True)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
