-- One row per object the policy knows. Times are event time, in ms.
CREATE TABLE objects (
    object_key     TEXT PRIMARY KEY,
    size           INTEGER NOT NULL,
    tier           TEXT NOT NULL,
    generation     INTEGER NOT NULL DEFAULT 0,
    first_seen_ms  INTEGER NOT NULL,
    last_access_ms INTEGER NOT NULL,
    reads_total    INTEGER NOT NULL DEFAULT 0,
    bytes_read     INTEGER NOT NULL DEFAULT 0,
    -- Read counts decayed exponentially with half-lives of 1, 7 and 30 days,
    -- as of decay_ts_ms.
    decay_ts_ms    INTEGER NOT NULL DEFAULT 0,
    rate_1d        REAL NOT NULL DEFAULT 0,
    rate_7d        REAL NOT NULL DEFAULT 0,
    rate_30d       REAL NOT NULL DEFAULT 0,
    -- Event times of the latest reads (JSON array, newest last, bounded).
    recent_reads   TEXT NOT NULL DEFAULT '[]',
    tier_since_ms  INTEGER NOT NULL,
    inflight_job   TEXT,
    inflight_to    TEXT,
    last_move_ms   INTEGER,
    failures       INTEGER NOT NULL DEFAULT 0,
    pinned         TEXT,
    deleted        INTEGER NOT NULL DEFAULT 0,
    -- When a decision is next due (event time); i64::MAX for "only on news".
    due_ms         INTEGER NOT NULL
);
-- A cycle reads only the objects whose decision is due, never all of them.
CREATE INDEX objects_due ON objects (due_ms) WHERE inflight_job IS NULL AND deleted = 0;

-- Consumed offsets, committed with the state they produced (exactly-once).
CREATE TABLE offsets (
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);

-- Jobs decided but maybe not yet acknowledged by Kafka (outbox).
CREATE TABLE jobs (
    job_key     TEXT PRIMARY KEY,
    object_key  TEXT NOT NULL,
    payload     BLOB NOT NULL,
    published   INTEGER NOT NULL DEFAULT 0,
    created_ms  INTEGER NOT NULL
);
CREATE INDEX jobs_unpublished ON jobs (created_ms) WHERE published = 0;

-- The event-time clock: the newest event time seen, and the wall time then.
CREATE TABLE clock (
    id           INTEGER PRIMARY KEY CHECK (id = 0),
    max_event_ms INTEGER NOT NULL,
    wall_at_ms   INTEGER NOT NULL
);

-- Event ids already applied, for de-duplication of events that carry one.
CREATE TABLE seen_events (
    event_id TEXT PRIMARY KEY,
    ts_ms    INTEGER NOT NULL
);
