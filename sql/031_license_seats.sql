-- 031_license_seats: the number of each license's active installations,
-- kept by triggers on installations in the writer's transaction
-- (sql/functions/45_installations.sql), so that an activation reads its
-- license's seats in use as one row instead of counting them: the count
-- visits every active installation, in the heap for those written since
-- the last vacuum, and grows with the license. A license without a row
-- has none. The rows are counted where the triggers are first created
-- (licd_seats_recount, called by 99_triggers.sql under a lock that holds
-- up every writer of installations until the triggers exist), so the
-- installations written between this migration and then are counted too.
CREATE TABLE license_seats (
  license_id uuid PRIMARY KEY REFERENCES licenses (id) ON DELETE CASCADE,
  active     bigint NOT NULL
);
