-- When a failed job's backoff ends (ms since the epoch; 0: none). A new
-- access event makes an object due at once, but never before this.
ALTER TABLE objects ADD COLUMN retry_after_ms INTEGER NOT NULL DEFAULT 0;
