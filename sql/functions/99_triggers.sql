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

-- license_seats (45_installations.sql): each statement's moves into and
-- out of 'active', per license. Before they first exist, every license
-- is counted (licd_seats_recount), under a lock on installations held
-- until licctl migrate commits, so that the count and the triggers take
-- effect together; replacing them later never stops the counting, so
-- nothing is counted again then.
SELECT licd_seats_recount() WHERE NOT EXISTS (
  SELECT 1 FROM pg_trigger
   WHERE tgrelid = 'installations'::regclass
     AND tgname = 'installations_seats_update');
CREATE OR REPLACE TRIGGER installations_seats_insert AFTER INSERT ON installations
  REFERENCING NEW TABLE AS added
  FOR EACH STATEMENT EXECUTE FUNCTION licd_seats_added();
CREATE OR REPLACE TRIGGER installations_seats_update AFTER UPDATE ON installations
  REFERENCING OLD TABLE AS before NEW TABLE AS after
  FOR EACH STATEMENT EXECUTE FUNCTION licd_seats_moved();
CREATE OR REPLACE TRIGGER installations_seats_delete AFTER DELETE ON installations
  REFERENCING OLD TABLE AS removed
  FOR EACH STATEMENT EXECUTE FUNCTION licd_seats_removed();
CREATE OR REPLACE TRIGGER installations_seats_truncate AFTER TRUNCATE ON installations
  FOR EACH STATEMENT EXECUTE FUNCTION licd_seats_truncated();

-- The license cache (36_cache.sql): a change of anything an answer of
-- validate or heartbeat reads notifies licd_license with the license's
-- id, in the changing transaction. Not last_seen, version or metadata
-- (the refresh writer's), nor the lifecycle's bookkeeping columns.
CREATE OR REPLACE TRIGGER licenses_cache_update AFTER UPDATE OF
    customer_id, plan_code, status, features, limits, domains, expires_at,
    grace_until, license_key, seat_model, seat_ttl, max_borrow_days,
    overdraft, id ON licenses
  FOR EACH ROW WHEN (OLD.customer_id IS DISTINCT FROM NEW.customer_id
                     OR OLD.plan_code IS DISTINCT FROM NEW.plan_code
                     OR OLD.status IS DISTINCT FROM NEW.status
                     OR OLD.features IS DISTINCT FROM NEW.features
                     OR OLD.limits IS DISTINCT FROM NEW.limits
                     OR OLD.domains IS DISTINCT FROM NEW.domains
                     OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
                     OR OLD.grace_until IS DISTINCT FROM NEW.grace_until
                     OR OLD.license_key IS DISTINCT FROM NEW.license_key
                     OR OLD.seat_model IS DISTINCT FROM NEW.seat_model
                     OR OLD.seat_ttl IS DISTINCT FROM NEW.seat_ttl
                     OR OLD.max_borrow_days IS DISTINCT FROM NEW.max_borrow_days
                     OR OLD.overdraft IS DISTINCT FROM NEW.overdraft
                     OR OLD.id IS DISTINCT FROM NEW.id)
  EXECUTE FUNCTION licd_cache_license_changed();
CREATE OR REPLACE TRIGGER licenses_cache_delete AFTER DELETE ON licenses
  FOR EACH ROW EXECUTE FUNCTION licd_cache_license_changed();
-- Installations: an insert changes no answer the cache holds (it holds
-- active installations only, and reactivating an inactive one is an
-- update of status); the seat columns have their own trigger, below
-- (a renewal notifies nothing: licd_cache_seat_changed). last_seen
-- only when it moves back (an operator's or a test's update): the cache
-- judges whether a refresh is due by it, and a refresh written elsewhere
-- only moves it forward.
CREATE OR REPLACE TRIGGER installations_cache_update AFTER UPDATE OF
    status, domain, first_seen, last_seen, license_id, installation_id
    ON installations
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                     OR OLD.domain IS DISTINCT FROM NEW.domain
                     OR OLD.first_seen IS DISTINCT FROM NEW.first_seen
                     OR OLD.last_seen > NEW.last_seen
                     OR OLD.license_id IS DISTINCT FROM NEW.license_id
                     OR OLD.installation_id IS DISTINCT FROM NEW.installation_id)
  EXECUTE FUNCTION licd_cache_license_changed();
-- Not in the statement in which licd_seat_batch renews due seats
-- (licd.seat_renewal 'on'): each of those moves is one that
-- licd_cache_seat_changed lets pass, and a function call per renewed row
-- is a large part of a renewal's cost.
CREATE OR REPLACE TRIGGER installations_seat_cache AFTER UPDATE OF
    seat_expires_at, borrowed_until, seat_overdraft ON installations
  FOR EACH ROW WHEN ((OLD.seat_expires_at IS DISTINCT FROM NEW.seat_expires_at
                      OR OLD.borrowed_until IS DISTINCT FROM NEW.borrowed_until
                      OR OLD.seat_overdraft IS DISTINCT FROM NEW.seat_overdraft)
                     AND current_setting('licd.seat_renewal', true)
                         IS DISTINCT FROM 'on')
  EXECUTE FUNCTION licd_cache_seat_changed();
CREATE OR REPLACE TRIGGER installations_cache_delete AFTER DELETE ON installations
  FOR EACH ROW EXECUTE FUNCTION licd_cache_license_changed();
-- The test clock moves every answer's time, and a TRUNCATE changes every
-- license: '*'.
CREATE OR REPLACE TRIGGER licenses_cache_truncate AFTER TRUNCATE ON licenses
  FOR EACH STATEMENT EXECUTE FUNCTION licd_cache_all_changed();
CREATE OR REPLACE TRIGGER installations_cache_truncate AFTER TRUNCATE ON installations
  FOR EACH STATEMENT EXECUTE FUNCTION licd_cache_all_changed();
CREATE OR REPLACE TRIGGER licd_clock_cache AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
  ON licd_clock
  FOR EACH STATEMENT EXECUTE FUNCTION licd_cache_all_changed();
