-- Per-prefix statistics behind the prediction's prior (src/prefix.rs), as
-- JSON, written in the same transactions as the objects they count. A
-- database from before this migration starts them empty.
CREATE TABLE prefixes (
    prefix TEXT PRIMARY KEY,
    stats  TEXT NOT NULL
);
