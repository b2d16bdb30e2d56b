-- The source as the switched copy read it (size, ETag, modification
-- time), recorded with the switch: the source is deleted only if its key
-- still holds that object, on the first try and on a resume alike, so a
-- version written there after the copy is never deleted.
ALTER TABLE ledger ADD COLUMN source_size INTEGER;
ALTER TABLE ledger ADD COLUMN source_e_tag TEXT;
ALTER TABLE ledger ADD COLUMN source_modified_ms INTEGER;
