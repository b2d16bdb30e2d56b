-- What the mover said when the object's last job failed or was refused
-- ("FAILED transient: ..."), until the object moves; shown
-- by GET /v1/objects/{key}/explain.
ALTER TABLE objects ADD COLUMN last_failure TEXT;
