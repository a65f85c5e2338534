-- functions/94_license_counts.sql: licenses per plan and status, kept in
-- license_counts (026_console_speed.sql) for the admin API's plans and
-- overview (licd_admin_plans, licd_admin_overview sum it).
--
-- Every insert, delete and change of a license's plan or status adds rows
-- (plan, status, +n/-n) in the writer's transaction: appended, never
-- updated in place, so concurrent writers never wait on one another and a
-- rolled-back write leaves nothing. licd-lifecycle's figures task
-- (licd_lc_figures) replaces them with a fresh count. Validate, heartbeat
-- and usage never write licenses, so none of this is on their path. The
-- triggers that call these functions are in 99_triggers.sql.

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
