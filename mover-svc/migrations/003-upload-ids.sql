-- The id of the multipart upload a job's copy started last (S3), known
-- before its first part: an upload cut short by a crash is aborted when
-- the job resumes, rather than left for the bucket to bill.
ALTER TABLE ledger ADD COLUMN upload_id TEXT;
