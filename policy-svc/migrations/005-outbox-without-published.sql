-- A job leaves the outbox once Kafka acknowledged it (since 004), so every
-- row is unpublished: the flag column and its partial index go.
DROP INDEX jobs_unpublished;
ALTER TABLE jobs DROP COLUMN published;
CREATE INDEX jobs_by_created ON jobs (created_ms);
