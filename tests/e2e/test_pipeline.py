"""End to end: access events in, verified moves out (design §1, §2, §5, §8).

Only non-Strata clients touch the pipeline: confluent-kafka publishes and
consumes, urllib asks mover-svc, the file system is checked directly.

The scenario, in the order the tests of this module run (they share one
pipeline and one published workload, see ``workload``):

a. files in the tiers: ``hot/reports/2026/q1.csv`` (1 MiB),
   ``cold/datasets/popular.parquet`` (300 KiB), ``hot/manual/handmade.bin``
   (64 KiB);
b. poison first: undecodable bytes on each of the three topics, and an access
   event whose key tries to leave its tier (``../../etc/passwd``);
c. a PUT of q1.csv 60 days ago, never read since, and five GETs of
   popular.parquet within the last day;
d. the policy's cost model (deploy/strata.local.toml's prices) moves q1.csv
   hot -> archive (unread: the cheapest tier) and popular.parquet cold -> hot
   (ten reads a month predicted: the slow tiers' reads cost more than NVMe's
   storage); the mover reports ACCEPTED..COMPLETED, the bytes arrive intact,
   the sources go;
e. every poison is in ``<topic>.dlq`` with headers naming where it came from;
f. an operator's job published twice: one COMPLETED, one DUPLICATE;
g. a trace file replayed by ``ingest-svc replay``: an object it shows
   written 90 days before the trace's end, and never read, leaves hot;
h. SIGTERM: every daemon exits 0 within 30 s.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import time
import urllib.parse
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer

from conftest import BIN_DIR, SHUTDOWN_SECS, TIERS, TOPICS, Pipeline, http_get

Q1 = "reports/2026/q1.csv"
POPULAR = "datasets/popular.parquet"
MANUAL = "manual/handmade.bin"
HOSTILE = "../../etc/passwd"
# Neither JSON (no '{') nor protobuf (0xff 0x00 is field 15 with wire type 7,
# which does not exist).
POISON = b"\xff\x00garbage"

MOVE_STATES = ["ACCEPTED", "COPYING", "VERIFYING", "SWITCHED", "COMPLETED"]
STATE_NAMES = [
    "STATE_UNSPECIFIED", "ACCEPTED", "COPYING", "VERIFYING", "SWITCHED",
    "COMPLETED", "FAILED", "REJECTED", "DUPLICATE",
]
MOVES_TIMEOUT = 90
DLQ_TIMEOUT = 30
DUPLICATE_TIMEOUT = 60
SETTLE_SECS = 5

JSON_HEADERS = [("content-type", b"application/json")]


# -- helpers ----------------------------------------------------------------


def rfc3339(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def job_key(object_key: str, from_tier: str, to_tier: str, generation: int) -> str:
    """Design §3: hex SHA-256 of (object_key, from_tier, to_tier, generation),
    each string prefixed with its length as u64 big-endian, then the
    generation as u64 big-endian (proto/src/job.rs)."""
    h = hashlib.sha256()
    for part in (object_key, from_tier, to_tier):
        b = part.encode()
        h.update(struct.pack(">Q", len(b)))
        h.update(b)
    h.update(struct.pack(">Q", generation))
    return h.hexdigest()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _int(value, default: int = 0) -> int:
    # proto3 JSON writes 64-bit integers as strings; accept numbers too.
    return default if value is None or value == "" else int(value)


def normalize_status(raw: dict) -> dict:
    """A MigrationStatus from proto3 JSON, with defaults for omitted fields
    (proto3 JSON leaves out zero values), snake_case keys accepted, 64-bit
    integers as ints and enums as names."""
    d = {_camel(k): v for k, v in raw.items()}
    for enum_field in ("state", "result"):
        if isinstance(d.get(enum_field), int):
            d[enum_field] = STATE_NAMES[d[enum_field]]
    for field in ("generation", "bytes", "attempt", "elapsedMs"):
        d[field] = _int(d.get(field))
    for field in ("jobKey", "objectKey", "state", "fromTier", "toTier", "sha256", "currentTier", "result"):
        d.setdefault(field, "")
    return d


def header(msg, name: str) -> bytes | None:
    for key, value in msg.headers() or []:
        if key.lower() == name:
            return value
    return None


class Publisher:
    """A confluent-kafka producer that waits for every ack and returns where
    each record landed (partition, offset)."""

    def __init__(self, brokers: str):
        self.producer = Producer({"bootstrap.servers": brokers, "acks": "all"})

    def send(self, topic: str, key: bytes | None, value: bytes, headers=None) -> tuple[int, int]:
        result: dict = {}

        def on_delivery(err, msg):
            result["err"] = err
            if msg is not None and err is None:
                result["at"] = (msg.partition(), msg.offset())

        self.producer.produce(topic, key=key, value=value, headers=headers or [], on_delivery=on_delivery)
        left = self.producer.flush(30)
        assert left == 0 and "err" in result, f"produce to {topic}: not acknowledged within 30s"
        assert result["err"] is None, f"produce to {topic}: {result['err']}"
        return result["at"]

    def send_json(self, topic: str, key: str, value: dict) -> tuple[int, int]:
        return self.send(topic, key.encode(), json.dumps(value).encode(), JSON_HEADERS)


def consumer(brokers: str, topics: list[str]) -> Consumer:
    c = Consumer({
        "bootstrap.servers": brokers,
        "group.id": f"e2e-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    c.subscribe(topics)
    return c


class StatusLog:
    """Every record on migration_status, in consumption order (one object's
    statuses share a partition, so they are in order among themselves)."""

    def __init__(self, brokers: str):
        self.consumer = consumer(brokers, ["migration_status"])
        self.statuses: list[dict] = []
        self.undecodable: list[tuple[bytes | None, bytes]] = []

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            msg = self.consumer.poll(min(left, 0.5))
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    print(f"consumer error: {msg.error()}")
                continue
            value = msg.value() or b""
            if value == POISON:
                continue  # our own poison (b)
            content_type = header(msg, "content-type")
            if content_type not in (None, b"application/json"):
                self.undecodable.append((msg.key(), value[:200]))
                continue
            try:
                self.statuses.append(normalize_status(json.loads(value)))
            except (ValueError, TypeError, IndexError, AttributeError):
                self.undecodable.append((msg.key(), value[:200]))

    def wait_for(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.statuses):
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout}s waiting for {what}; statuses so far:\n{self.dump()}")
            self.poll(1.0)

    def for_key(self, key: str) -> list[dict]:
        return [s for s in self.statuses if s["objectKey"] == key]

    def for_job(self, job: str) -> list[dict]:
        return [s for s in self.statuses if s["jobKey"] == job]

    def dump(self, key: str | None = None) -> str:
        rows = self.for_key(key) if key else self.statuses
        lines = [
            f"  {s['state']:<10} {s['objectKey']} {s['fromTier']}->{s['toTier']} "
            f"job={s['jobKey'][:12]} gen={s['generation']} attempt={s['attempt']} "
            f"sha={s['sha256'][:12]} result={s['result']} error={s.get('error')}"
            for s in rows
        ]
        if self.undecodable:
            lines.append(f"  undecodable: {self.undecodable}")
        return "\n".join(lines) or "  (none)"

    def close(self) -> None:
        self.consumer.close()


def completed(statuses: list[dict], key: str) -> list[dict]:
    return [s for s in statuses if s["objectKey"] == key and s["state"] == "COMPLETED"]


def collapse(states: list[str]) -> list[str]:
    """Repeats in a row counted once (COPYING may report progress)."""
    return [st for i, st in enumerate(states) if i == 0 or states[i - 1] != st]


def tier_files(pipe: Pipeline) -> dict[str, list[str]]:
    """Every file under the tier folders, as key -> [tier, ...]."""
    files: dict[str, list[str]] = {}
    for tier in TIERS:
        base = pipe.tier_dir(tier)
        for path in sorted(base.rglob("*")):
            if path.is_file():
                files.setdefault(path.relative_to(base).as_posix(), []).append(tier)
    return files


def mover_object(pipe: Pipeline, key: str) -> tuple[int, dict | bytes]:
    status, body = http_get(pipe.url("mover-svc", "/v1/objects/" + urllib.parse.quote(key, safe="/")))
    if status == 200:
        return status, json.loads(body)
    return status, body


def find_dead_letters(pipe: Pipeline, dlq: str, wanted: set[bytes], source: str) -> dict[bytes, dict]:
    """Reads dlq from the start until a record with each wanted key and
    x-strata-source-topic = source is found: key -> {value, headers}."""
    c = consumer(pipe.brokers, [dlq])
    found: dict[bytes, dict] = {}
    seen: list[tuple] = []
    deadline = time.monotonic() + DLQ_TIMEOUT
    try:
        while wanted - set(found):
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{dlq}: {sorted(wanted - set(found))} with x-strata-source-topic={source} "
                    f"not found within {DLQ_TIMEOUT}s; records seen (key, headers): {seen}"
                )
            msg = c.poll(0.5)
            if msg is None or msg.error():
                continue
            seen.append((msg.key(), msg.headers()))
            if msg.key() in wanted and header(msg, "x-strata-source-topic") == source.encode():
                found[msg.key()] = {"value": msg.value(), "headers": dict(msg.headers() or [])}
    finally:
        c.close()
    return found


# -- fixtures ---------------------------------------------------------------


@pytest.fixture(scope="module")
def publisher(pipeline):
    return Publisher(pipeline.brokers)


@pytest.fixture(scope="module")
def statuses(pipeline):
    log = StatusLog(pipeline.brokers)
    yield log
    log.close()


@pytest.fixture(scope="module")
def workload(pipeline, publisher):
    """Steps a, b, c: the files, the poison (first), then the events."""
    sizes = {
        ("hot", Q1): 1024 * 1024,
        ("cold", POPULAR): 300 * 1024,
        ("hot", MANUAL): 64 * 1024,
    }
    files = {}
    for (tier, key), size in sizes.items():
        path = pipeline.object_path(tier, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
        files[key] = {"tier": tier, "size": size, "sha256": sha256_file(path)}

    now = datetime.now(timezone.utc)
    poison_at = {}
    for topic in TOPICS:
        poison_at[topic] = publisher.send(topic, f"poison/{topic}".encode(), POISON)
    hostile_at = publisher.send_json("access_events", HOSTILE, {
        "objectKey": HOSTILE, "op": "GET", "sizeBytes": "1", "ts": rfc3339(now), "tier": "hot", "source": "e2e",
    })

    publisher.send_json("access_events", Q1, {
        "objectKey": Q1, "op": "PUT", "sizeBytes": str(files[Q1]["size"]),
        "ts": rfc3339(now - timedelta(days=60)), "tier": "hot", "source": "e2e",
    })
    for hours_ago in (20, 15, 10, 5, 1):
        publisher.send_json("access_events", POPULAR, {
            "objectKey": POPULAR, "op": "GET", "sizeBytes": str(files[POPULAR]["size"]),
            "ts": rfc3339(now - timedelta(hours=hours_ago)), "tier": "cold", "source": "e2e",
        })
    return {"files": files, "poison_at": poison_at, "hostile_at": hostile_at}


# -- tests, in scenario order -------------------------------------------------


@pytest.mark.parametrize(
    "key, from_tier, to_tier",
    [(Q1, "hot", "archive"), (POPULAR, "cold", "hot")],
    ids=["idle-q1-demoted", "popular-promoted"],
)
def test_policy_moves_objects(pipeline, workload, statuses, key, from_tier, to_tier):
    """d: both keys reach COMPLETED, through every step, bytes intact."""
    statuses.wait_for(
        lambda s: completed(s, Q1) and completed(s, POPULAR),
        MOVES_TIMEOUT,
        f"COMPLETED for {Q1} and {POPULAR}",
    )
    assert not statuses.undecodable, f"migration_status values that are not proto3 JSON: {statuses.undecodable}"
    original = workload["files"][key]
    done = completed(statuses.statuses, key)
    assert len(done) == 1, f"{key}: expected one completed move:\n{statuses.dump(key)}"
    final = done[0]
    assert (final["fromTier"], final["toTier"]) == (from_tier, to_tier), statuses.dump(key)
    assert final["jobKey"] == job_key(key, from_tier, to_tier, 0), (
        f"{key}: jobKey {final['jobKey']!r} is not job_key(key, {from_tier}, {to_tier}, 0) (design §3)"
    )

    states = [s["state"] for s in statuses.for_job(final["jobKey"])]
    assert collapse(states) == MOVE_STATES, f"{key}: states {states}, expected {MOVE_STATES} in order"
    bad = [s for s in statuses.for_key(key) if s["state"] in ("FAILED", "REJECTED")]
    assert not bad, f"{key}: unexpected failures:\n{statuses.dump(key)}"

    assert final["sha256"] == original["sha256"], f"{key}: status sha256 differs from the file's"
    assert final["bytes"] == original["size"], f"{key}: status bytes {final['bytes']} != {original['size']}"
    assert final["generation"] == 1, f"{key}: generation after the first switch should be 1"
    if final["currentTier"]:
        assert final["currentTier"] == to_tier

    new_path = pipeline.object_path(to_tier, key)
    old_path = pipeline.object_path(from_tier, key)
    assert new_path.is_file(), f"{new_path} missing"
    assert sha256_file(new_path) == original["sha256"], f"{new_path}: content changed"
    assert not old_path.exists(), f"{old_path}: source not deleted after COMPLETED"

    code, obj = mover_object(pipeline, key)
    assert code == 200, f"GET /v1/objects/{key}: {code} {obj!r}"
    assert obj.get("key") == key, obj
    assert obj.get("tier") == to_tier, obj
    assert obj.get("sha256") == original["sha256"], obj
    assert _int(obj.get("size")) == original["size"], obj
    assert _int(obj.get("generation")) == 1, obj


def test_mover_catalog_unknown_key_is_404(pipeline):
    code, _ = mover_object(pipeline, "no/such/object.bin")
    assert code == 404


@pytest.mark.parametrize("topic", TOPICS)
def test_dead_letters(pipeline, workload, topic):
    """e: undecodable input goes to <topic>.dlq, untouched, with headers
    naming the error and where it came from; the daemons went on (the moves
    above were published after the poison)."""
    poison_key = f"poison/{topic}".encode()
    wanted = {poison_key: workload["poison_at"][topic]}
    if topic == "access_events":
        wanted[HOSTILE.encode()] = workload["hostile_at"]
    found = find_dead_letters(pipeline, f"{topic}.dlq", set(wanted), topic)

    for key, (partition, offset) in wanted.items():
        dead = found[key]
        h = dead["headers"]
        assert h.get("x-strata-source-partition") == str(partition).encode(), h
        assert h.get("x-strata-source-offset") == str(offset).encode(), h
        assert h.get("x-strata-error"), f"{key!r}: no x-strata-error header: {h}"
        assert h.get("x-strata-error-class"), f"{key!r}: no x-strata-error-class header: {h}"
        if key == poison_key:
            assert dead["value"] == POISON, "the dead letter must carry the original bytes"
            assert h["x-strata-error-class"] == b"decode", h
        else:
            assert json.loads(dead["value"])["objectKey"] == HOSTILE
            assert h["x-strata-error-class"] == b"validate", h
            # ... and it named no file outside the tiers.
            escaped = (pipeline.tier_dir("hot") / HOSTILE).resolve()
            assert not escaped.exists(), f"{escaped} exists"


def test_duplicate_job_is_done_once(pipeline, workload, publisher, statuses):
    """f: the same operator job twice: one COMPLETED, one DUPLICATE."""
    original = workload["files"][MANUAL]
    job = {"objectKey": MANUAL, "fromTier": "hot", "toTier": "cold", "generation": "0",
           "sizeBytes": str(original["size"])}
    expected_key = job_key(MANUAL, "hot", "cold", 0)
    for _ in range(2):
        publisher.send_json("migration_jobs", MANUAL, job)

    def both(_):
        states = [s["state"] for s in statuses.for_key(MANUAL)]
        return "COMPLETED" in states and "DUPLICATE" in states

    statuses.wait_for(both, DUPLICATE_TIMEOUT, f"COMPLETED and DUPLICATE for {MANUAL}")
    statuses.poll(SETTLE_SECS)  # catch any extra status

    mine = statuses.for_key(MANUAL)
    assert {s["jobKey"] for s in mine} == {expected_key}, (
        f"every status must carry jobKey = job_key(...) = {expected_key[:12]}..:\n{statuses.dump(MANUAL)}"
    )
    states = [s["state"] for s in mine]
    assert states.count("COMPLETED") == 1, statuses.dump(MANUAL)
    assert states.count("DUPLICATE") == 1, statuses.dump(MANUAL)
    assert not {"FAILED", "REJECTED"} & set(states), statuses.dump(MANUAL)
    assert states.index("DUPLICATE") > states.index("COMPLETED"), statuses.dump(MANUAL)
    assert collapse(states[: states.index("COMPLETED") + 1]) == MOVE_STATES, f"states {states}"
    dup = next(s for s in mine if s["state"] == "DUPLICATE")
    assert dup["result"] == "COMPLETED", f"DUPLICATE must carry the first result: {dup}"

    done = next(s for s in mine if s["state"] == "COMPLETED")
    assert done["sha256"] == original["sha256"]
    path = pipeline.object_path("cold", MANUAL)
    assert path.is_file() and sha256_file(path) == original["sha256"]
    assert not pipeline.object_path("hot", MANUAL).exists(), "source left in hot"

    code, obj = mover_object(pipeline, MANUAL)
    assert code == 200 and obj.get("tier") == "cold" and obj.get("sha256") == original["sha256"], obj


def test_tiers_hold_each_object_once(pipeline, workload):
    """No orphan copy, no temp file, no lost object: after the moves, the
    tier folders hold exactly the three objects, each in its new tier."""
    assert tier_files(pipeline) == {Q1: ["archive"], POPULAR: ["hot"], MANUAL: ["cold"]}


def test_policy_explains_and_sums_up(pipeline, workload, statuses):
    """The policy's view after the moves: each object where the mover put
    it, explained with the cost model's figures; the summary's bytes per
    tier and its cost against all-hot."""
    statuses.wait_for(
        lambda s: completed(s, Q1) and completed(s, POPULAR), MOVES_TIMEOUT, "both moves COMPLETED",
    )

    def policy_json(path: str) -> dict:
        deadline = time.monotonic() + 30
        while True:
            code, body = http_get(pipeline.url("policy-svc", path))
            assert code == 200, f"GET {path}: {code} {body!r}"
            doc = json.loads(body)
            # The COMPLETED statuses reach the policy within a batch or two.
            if doc.get("inflightJob") is None or time.monotonic() > deadline:
                return doc
            time.sleep(0.5)

    q1 = policy_json("/v1/objects/" + urllib.parse.quote(Q1, safe="/") + "/explain")
    assert q1["tier"] == "archive", q1
    assert q1["decision"]["action"] == "stay", q1
    assert q1["predictedReads30d"] < 0.1, q1
    assert set(q1["monthlyCostUsd"]) == set(TIERS), q1
    assert q1["monthlyCostUsd"]["archive"] < q1["monthlyCostUsd"]["hot"], q1
    popular = policy_json("/v1/objects/" + urllib.parse.quote(POPULAR, safe="/") + "/explain")
    assert popular["tier"] == "hot" and popular["predictedReads30d"] > 1.0, popular

    code, body = http_get(pipeline.url("policy-svc", "/v1/summary"))
    assert code == 200, body
    summary = json.loads(body)
    by_tier = {t["tier"]: t for t in summary["tiers"]}
    assert by_tier["archive"]["bytes"] >= workload["files"][Q1]["size"], summary
    assert by_tier["hot"]["bytes"] >= workload["files"][POPULAR]["size"], summary
    assert summary["monthlyStorageUsd"] < summary["monthlyStorageUsdAllHot"], summary
    assert summary["monthlySavingsUsd"] > 0, summary
    # Jobs in flight move bytes between tiers; they neither add nor lose any.
    assert sum(t["projectedBytes"] for t in summary["tiers"]) == \
        sum(t["bytes"] for t in summary["tiers"]), summary
    assert summary["projectedMonthlyStorageUsd"] <= summary["monthlyStorageUsdAllHot"], summary


def test_a_replayed_trace_moves_what_it_shows_idle(pipeline, statuses):
    """g: a CSV trace in the simulator's format, published by the real
    `ingest-svc replay` (its last event at the time of the replay): the
    object written 90 days before that end and never read leaves hot,
    bytes intact; the busy one, read daily, stays."""
    idle, busy = "replayed/idle.bin", "replayed/busy.bin"
    files = {}
    for key in (idle, busy):
        path = pipeline.object_path("hot", key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(256 * 1024))
        files[key] = sha256_file(path)
    start = datetime(2021, 3, 1, tzinfo=timezone.utc)
    rows = ["ts,key,op,size", f"{rfc3339(start)},idle.bin,PUT,262144", f"{rfc3339(start)},busy.bin,PUT,262144"]
    rows += [f"{rfc3339(start + timedelta(days=d))},busy.bin,GET,262144" for d in range(1, 91)]
    trace = pipeline.root / "trace.csv"
    trace.write_text("\n".join(rows) + "\n")

    run = subprocess.run(
        [str(BIN_DIR / "ingest-svc"), "replay", "--trace", str(trace), "--prefix", "replayed"],
        env=pipeline.env(), capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, f"replay failed ({run.returncode}):\n{run.stdout}\n{run.stderr}"
    assert f"published {len(rows) - 1} access events" in run.stdout, run.stdout

    statuses.wait_for(lambda s: completed(s, idle), MOVES_TIMEOUT, f"COMPLETED for {idle}")
    done = completed(statuses.statuses, idle)[-1]
    assert done["fromTier"] == "hot" and done["toTier"] != "hot", statuses.dump(idle)
    moved = pipeline.object_path(done["toTier"], idle)
    assert moved.is_file() and sha256_file(moved) == files[idle], moved
    assert not pipeline.object_path("hot", idle).exists(), "source left in hot"
    assert not completed(statuses.statuses, busy), statuses.dump(busy)
    assert sha256_file(pipeline.object_path("hot", busy)) == files[busy]


def test_health_and_metrics(pipeline):
    for name in ("ingest-svc", "policy-svc", "mover-svc"):
        for path in ("/healthz", "/readyz", "/metrics"):
            code, _ = http_get(pipeline.url(name, path))
            assert code == 200, f"{name} {path}: {code}"


def test_clean_shutdown(pipeline):
    """h: SIGTERM; each daemon finishes, commits and exits 0 within 30 s."""
    codes = pipeline.stop_daemons()
    bad = {name: code for name, code in codes.items() if code != 0}
    assert not bad, f"exit codes (None = killed after {SHUTDOWN_SECS}s): {codes}"
    for name, proc in pipeline.daemons.items():
        log = proc.log.read_text(errors="replace")
        assert "panicked" not in log, f"{name} panicked:\n{log[-3000:]}"
