-- Event ids are remembered for a week (wall time), then forgotten in
-- ts_ms order; published jobs leave the outbox.
CREATE INDEX seen_events_by_time ON seen_events (ts_ms);
DELETE FROM jobs WHERE published = 1;
