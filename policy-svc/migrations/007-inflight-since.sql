-- When the object's job in flight was made (wall time, ms; 0: none), so
-- that a job whose outcome never comes (its message lost with the topic's
-- retention, say) is decided again (--job-timeout-hours). Jobs in flight
-- when this migration runs count from then.
ALTER TABLE objects ADD COLUMN inflight_since_ms INTEGER NOT NULL DEFAULT 0;
UPDATE objects SET inflight_since_ms = CAST(strftime('%s', 'now') AS INTEGER) * 1000
    WHERE inflight_job IS NOT NULL;
CREATE INDEX objects_inflight_since ON objects (inflight_since_ms) WHERE inflight_job IS NOT NULL;
