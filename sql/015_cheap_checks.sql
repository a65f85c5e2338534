-- 015_cheap_checks: the same CHECK rules without bounded regex repeats.
--
-- PostgreSQL checks every CHECK constraint of a row on every UPDATE, not
-- only those of the columns it sets, so installations' checks run again on
-- each last_seen refresh (licd_touch_batch, 013), which at a million
-- installations is nearly every validate and heartbeat. A repeat bound in
-- a regex ({1,128}) is compiled into one automaton state per repetition
-- and the automaton's state cache is rebuilt on each match, which made
-- these checks a large part of the refresh's statement; the same rule
-- written as a length test and an unbounded class is a fraction of it.
-- The slug rule is checked on each usage counter update.
--
-- The rules accept and refuse exactly what they did (length() counts
-- characters, as the repeat did); tests/integration/test_schema.py holds
-- both sides of each boundary. licd_slug_ok's rule is in
-- sql/functions/10_checks.sql.

-- One statement: the table is scanned once to validate the new rule (no
-- rewrite; writes are blocked while it runs).
ALTER TABLE installations
  DROP CONSTRAINT installations_installation_id_check,
  ADD CONSTRAINT installations_installation_id_check
    CHECK (length(installation_id) BETWEEN 1 AND 128 AND
           installation_id ~ '^[A-Za-z0-9._:-]+$');
