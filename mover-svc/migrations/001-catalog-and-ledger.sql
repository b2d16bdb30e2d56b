-- The catalog: where each object lives now. I1: the row always names a tier
-- holding the whole object with this sha256 (NULL until first verified).
CREATE TABLE catalog (
    object_key    TEXT PRIMARY KEY,
    tier          TEXT NOT NULL,
    generation    INTEGER NOT NULL,
    sha256        TEXT,
    size          INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

-- The ledger: one row per job key, written before each step begins, so a
-- restart resumes every unfinished job and a repeated key is a DUPLICATE.
CREATE TABLE ledger (
    job_key        TEXT PRIMARY KEY,
    object_key     TEXT NOT NULL,
    from_tier      TEXT NOT NULL,
    to_tier        TEXT NOT NULL,
    generation     INTEGER NOT NULL,
    size_bytes     INTEGER NOT NULL,
    state          TEXT NOT NULL,
    attempt        INTEGER NOT NULL DEFAULT 0,
    sha256         TEXT,
    bytes          INTEGER,
    new_generation INTEGER,
    error_class    TEXT,
    error_message  TEXT,
    created_at_ms  INTEGER NOT NULL,
    updated_at_ms  INTEGER NOT NULL
);

CREATE INDEX ledger_unfinished ON ledger (state)
    WHERE state NOT IN ('COMPLETED', 'FAILED', 'REJECTED');
