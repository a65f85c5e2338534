-- functions/99_triggers.sql: the triggers, in a file of their own.
--
-- CREATE OR REPLACE TRIGGER locks its table in SHARE ROW EXCLUSIVE mode,
-- which waits for the table's writers and holds up those that come after
-- until licctl migrate commits. Here, a trigger is created again only
-- when this file changes (or after a numbered migration), not whenever
-- the function it calls does: a function is replaced without locking
-- any table.

-- BEFORE INSERT ON licenses: a new license's seat settings from its plan
-- (licd_license_seat_defaults, 50_floating.sql).
CREATE OR REPLACE TRIGGER licenses_seat_defaults BEFORE INSERT ON licenses
  FOR EACH ROW EXECUTE FUNCTION licd_license_seat_defaults();

-- license_counts (94_license_counts.sql): a statement's inserts and
-- deletes as one row per plan and status (a bulk import adds a handful of
-- rows, not one per license); an update only when it changes the plan or
-- the status.
CREATE OR REPLACE TRIGGER licenses_count_insert AFTER INSERT ON licenses
  REFERENCING NEW TABLE AS added
  FOR EACH STATEMENT EXECUTE FUNCTION licd_license_counts_added();
CREATE OR REPLACE TRIGGER licenses_count_delete AFTER DELETE ON licenses
  REFERENCING OLD TABLE AS removed
  FOR EACH STATEMENT EXECUTE FUNCTION licd_license_counts_removed();
CREATE OR REPLACE TRIGGER licenses_count_update AFTER UPDATE OF status, plan_code ON licenses
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                     OR OLD.plan_code IS DISTINCT FROM NEW.plan_code)
  EXECUTE FUNCTION licd_license_counts_changed();
CREATE OR REPLACE TRIGGER licenses_count_truncate AFTER TRUNCATE ON licenses
  FOR EACH STATEMENT EXECUTE FUNCTION licd_license_counts_truncated();
