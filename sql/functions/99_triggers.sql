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
