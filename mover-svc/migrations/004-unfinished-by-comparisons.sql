-- The index of unfinished jobs, its condition written as comparisons. With
-- `NOT IN (...)` SQLite built a temporary b-tree of the three states each
-- time it checked the condition: on every write of a ledger row (twice on
-- an UPDATE, for the old row and the new), four writes a job. Same rows,
-- same use (`Db::unfinished`, whose WHERE repeats this one so that the
-- planner can use the index).
DROP INDEX ledger_unfinished;
CREATE INDEX ledger_unfinished ON ledger (state)
    WHERE state <> 'COMPLETED' AND state <> 'FAILED' AND state <> 'REJECTED';
