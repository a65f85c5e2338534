-- 009_usage_batch: group commit for usage increments. Each accepted
-- increment must be on disk before it is answered, so a usage call used to
-- be one transaction waiting for one WAL flush, and increments of one hot
-- license queued on its counter row for a flush each. The usage program
-- now hands the increments that arrive while one is being written to a
-- single call of licd_usage_add_batch (fcgi/lib/batch.c;
-- sql/functions/55_usage.sql): one transaction, one flush, one lock of a
-- hot counter for all of them.

-- Cheaper rows to write: usage_log_at only serves the retention job's cut-off on an append-only,
-- time-ordered table, which a BRIN index does at a fraction of a btree's
-- insert cost.
DROP INDEX usage_log_at;
CREATE INDEX usage_log_at ON usage_log USING brin (at);
-- Room on each counter page for the next version of a row, so that an
-- increment is a HOT update (no index entry) and a hot counter's page is
-- pruned in place. Applies to pages written from now on.
ALTER TABLE usage_counters SET (fillfactor = 70);
