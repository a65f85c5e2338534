-- 026_console_speed: what keeps the admin API's plans, overview and license
-- filters fast with a million licenses (the functions that use them are
-- in sql/functions/: 91_console_reads.sql, 94_license_counts.sql and
-- 80_lifecycle.sql's licd_lc_figures).
--
-- license_counts: licenses per plan and stored status, as rows to be
-- summed. Triggers on licenses add a row for every change in the writer's
-- transaction (inserts only, so concurrent writers never wait on one
-- another), and licd-lifecycle's figures task replaces them with a fresh
-- count, which also folds them up. console_figures: the overview's figures
-- that change with every heartbeat and with time alone, as of that task's
-- last run.
CREATE TABLE license_counts (
  plan_code text NOT NULL,
  status    text NOT NULL,
  n         bigint NOT NULL
);

CREATE TABLE console_figures (
  one                boolean PRIMARY KEY DEFAULT true CHECK (one),
  as_of              timestamptz NOT NULL,
  installations_seen json NOT NULL,
  versions           json NOT NULL,
  usage_near_limits  json NOT NULL
);

-- The count the triggers (sql/functions/94_license_counts.sql, created
-- right after the migrations) go on from. A license written by another
-- session in between is counted at the next licd-lifecycle run, which
-- counts afresh.
INSERT INTO license_counts (plan_code, status, n)
  SELECT plan_code, status, count(*) FROM licenses GROUP BY 1, 2;

-- expiring_days and the overview's expiring_30d: the active licenses ending
-- in a range with the keys the list orders by, read from the index alone
-- (the lifecycle's expiry tasks use it as they used licenses_expiry).
CREATE INDEX licenses_expiry_created ON licenses (expires_at) INCLUDE (created_at, id)
  WHERE status = 'active';
DROP INDEX licenses_expiry;

-- past_due: a license's unpaid subscription, probed per license.
CREATE INDEX subscriptions_unpaid_license ON subscriptions (license_id)
  WHERE status IN ('past_due', 'unpaid') AND license_id IS NOT NULL;
