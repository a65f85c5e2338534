-- 012_hot_touch: refreshing last_seen without touching an index.
--
-- At a million installations nearly every validate and heartbeat is its
-- installation's first within touch_interval and so updates last_seen
-- (docs/PERFORMANCE.md). last_seen was indexed (installations_stale, for
-- the lifecycle job), which made every such update a non-HOT one: a new
-- entry in each of the table's three indexes and three more WAL records.
-- Without an index on any column the refresh writes (last_seen, version,
-- metadata) and with free space on the page, it is a heap-only update.
--
-- The lifecycle job's stale scan (licd_lc_stale_installations, daily or
-- hourly) reads the whole table instead, a sequential scan.
DROP INDEX IF EXISTS installations_stale;

-- Room on each page for the new row versions of HOT updates. Applies to
-- pages written from now on; CLUSTER (below) rewrites the existing ones.
ALTER TABLE installations SET (fillfactor = 80);

-- Rewritten in license order: an installation's row is found next to the
-- license's others, and the pages get the free space above. The rewrite
-- locks the table while it runs, which grows with the table: run this
-- migration when validates waiting that long are acceptable.
CLUSTER installations USING installations_pkey;
