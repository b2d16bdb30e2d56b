-- Copies the mover left behind because their store refused to delete them
-- for good (Object Lock, no delete permission), after the catalog had moved
-- the object elsewhere. The mover tries each delete again at every start
-- and when `next_at_ms` comes, and forgets the row once the copy is gone
-- or the catalog names its tier again (then it is the live copy). The
-- copy's size, ETag and modification time, from a HEAD when it was left,
-- tell it from an object written at the key since: that one is never
-- deleted.
CREATE TABLE orphans (
    object_key    TEXT NOT NULL,
    tier          TEXT NOT NULL,
    job_key       TEXT NOT NULL,
    size          INTEGER NOT NULL,
    e_tag         TEXT,
    modified_ms   INTEGER NOT NULL,
    error_class   TEXT NOT NULL,
    error_message TEXT NOT NULL,
    attempts      INTEGER NOT NULL,
    since_ms      INTEGER NOT NULL,
    next_at_ms    INTEGER NOT NULL,
    PRIMARY KEY (object_key, tier)
);
