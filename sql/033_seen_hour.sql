-- 033_seen_hour: the installation list orders by last_seen to within an
-- hour, and the refresh of last_seen is a HOT update again.
--
-- Since 019 the console's installation list (GET /api/admin/installations)
-- ordered by an index on last_seen, so every refresh was a non-HOT update:
-- a new entry in each of the table's indexes, and at a large fleet pages
-- spread over all of them written whole after each checkpoint
-- (docs/PERFORMANCE.md). The list and its filters now read seen_hour: the
-- start of the hour-long span last_seen falls in, which a refresh changes
-- at most once an hour. PostgreSQL makes an update heap-only when no
-- indexed column's value changed and the page has room (fillfactor 80,
-- 012). last_seen itself stays exact and unindexed.
--
-- Each installation's spans start at its own minute and second past the
-- hour (from a hash of its id): were they all to start on the hour, a
-- whole fleet's refreshes would leave the heap-only path together in the
-- first touch_interval of every hour. seen_hour is in
-- (last_seen - 1 hour, last_seen], so the list is most recently seen
-- first to within an hour.
--
-- A generated column, so that no writer can set one without the other.
-- Adding it rewrites the table, which is locked while it runs (as 012's
-- CLUSTER): run this migration when validates waiting that long are
-- acceptable.
-- 946684800: 2000-01-01 00:00 UTC.
ALTER TABLE installations ADD COLUMN seen_hour timestamptz NOT NULL
  GENERATED ALWAYS AS (date_bin('1 hour', last_seen,
    to_timestamp(946684800 + abs(hashtext(installation_id) % 3600)))) STORED;

DROP INDEX installations_seen;
DROP INDEX installations_version_seen;
CREATE INDEX installations_seen ON installations (seen_hour, license_id, installation_id);
CREATE INDEX installations_version_seen
  ON installations (version, seen_hour, license_id, installation_id);
