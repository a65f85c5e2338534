-- functions/94_license_counts.sql: licenses per plan and status, kept in
-- license_counts (026_console_speed.sql) for the admin API's plans and
-- overview (licd_admin_plans, licd_admin_overview sum it).
--
-- Every insert, delete and change of a license's plan or status adds rows
-- (plan, status, +n/-n) in the writer's transaction: appended, never
-- updated in place, so concurrent writers never wait on one another and a
-- rolled-back write leaves nothing. licd-lifecycle's figures task
-- (licd_lc_figures) replaces them with a fresh count. Validate, heartbeat
-- and usage never write licenses, so none of this is on their path.

CREATE OR REPLACE FUNCTION licd_license_counts_added() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO license_counts (plan_code, status, n)
  SELECT plan_code, status, count(*) FROM added GROUP BY 1, 2;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION licd_license_counts_removed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO license_counts (plan_code, status, n)
  SELECT plan_code, status, -count(*) FROM removed GROUP BY 1, 2;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION licd_license_counts_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO license_counts (plan_code, status, n)
  VALUES (OLD.plan_code, OLD.status, -1), (NEW.plan_code, NEW.status, 1);
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION licd_license_counts_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM license_counts;
  RETURN NULL;
END
$$;

-- A statement's inserts and deletes as one row per plan and status (a bulk
-- import adds a handful of rows, not one per license); an update only when
-- it changes the plan or the status.
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
