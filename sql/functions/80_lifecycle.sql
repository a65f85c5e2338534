-- functions/80_lifecycle.sql: what licd-lifecycle runs.
--
-- Every task is one function, idempotent, one short transaction per call,
-- reading the SQL clock (licd_now) so that tests move time instead of
-- waiting. "Once" rules are the unique dedupe_key of the notifications
-- outbox (licd_notify). The job orders the tasks, loops the batches and
-- talks SMTP and HTTP; it returns the count each task reports.

-- Expiry warnings: for each active license expiring within the largest of
-- p_days, the most urgent threshold it has reached (30, 7, 1 ...) is queued
-- once per license, expiry date and threshold. A renewal moves expires_at
-- and so earns new warnings; thresholds already passed when the license
-- was first seen are not sent late (only the nearest one is). Returns the
-- number of licenses considered.
CREATE OR REPLACE FUNCTION licd_lc_expiry_warnings(p_days int[]) RETURNS bigint
LANGUAGE sql AS $$
  WITH due AS (
    SELECT l.id, l.expires_at,
           (SELECT min(d) FROM unnest(p_days) d
             WHERE l.expires_at <= licd_now() + make_interval(days => d)) AS d
      FROM licenses l
     WHERE l.status = 'active' AND l.expires_at IS NOT NULL
       AND l.expires_at > licd_now()
       AND l.expires_at <= licd_now() + make_interval(days => (SELECT max(d) FROM unnest(p_days) d))
  )
  SELECT count(licd_notify('expiry_warning', id,
           format('expiry:%s:%s:%s', id, extract(epoch FROM expires_at)::bigint, d),
           jsonb_build_object('days', d, 'expires_at',
             to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))))
    FROM due WHERE d IS NOT NULL
$$;

-- Subscriptions whose grace period is over without a payment: their active
-- licenses are suspended for non-payment (a later paid invoice
-- reinstates), audited and notified. Returns the number suspended.
CREATE OR REPLACE FUNCTION licd_lc_suspend_unpaid() RETURNS bigint
LANGUAGE sql AS $$
  WITH s AS (
    UPDATE licenses l
       SET status = 'suspended', status_reason = 'non-payment',
           suspended_at = licd_now(), updated_at = licd_now()
      FROM subscriptions sub
     WHERE sub.license_id = l.id AND l.status = 'active'
       AND sub.grace_until IS NOT NULL AND sub.grace_until <= licd_now()
       AND sub.status IN ('past_due', 'unpaid')
    RETURNING l.id
  ), a AS (
    SELECT licd_audit('lifecycle', 'license.suspend', 'license', id::text,
                      'non-payment', NULL, NULL) FROM s
  ), n AS (
    SELECT licd_notify('license_suspended', id, 'suspended:' || id || ':' ||
                       extract(epoch FROM licd_now())::bigint,
                       jsonb_build_object('reason', 'non-payment')) FROM s
  )
  SELECT (SELECT count(*) FROM s) + 0 * (SELECT count(*) FROM a) + 0 * (SELECT count(*) FROM n)
$$;

-- Licenses past their end (expiry, or grace if later) become expired,
-- audited and notified. Returns the number expired.
CREATE OR REPLACE FUNCTION licd_lc_expire() RETURNS bigint
LANGUAGE sql AS $$
  WITH e AS (
    UPDATE licenses l
       SET status = 'expired', updated_at = licd_now()
     WHERE l.status = 'active' AND l.expires_at IS NOT NULL
       AND greatest(l.expires_at, coalesce(l.grace_until, l.expires_at)) <= licd_now()
    RETURNING l.id, l.expires_at
  ), a AS (
    SELECT licd_audit('lifecycle', 'license.expire', 'license', id::text,
                      NULL, NULL, NULL) FROM e
  ), n AS (
    SELECT licd_notify('license_expired', id,
                       format('expired:%s:%s', id, extract(epoch FROM expires_at)::bigint),
                       '{}'::jsonb) FROM e
  )
  SELECT (SELECT count(*) FROM e) + 0 * (SELECT count(*) FROM a) + 0 * (SELECT count(*) FROM n)
$$;

-- Usage warnings at each of p_percents of a monthly limit, once per
-- license, feature, month and threshold (the highest one reached). Returns
-- the number of counters considered.
CREATE OR REPLACE FUNCTION licd_lc_usage_warnings(p_percents int[]) RETURNS bigint
LANGUAGE sql AS $$
  WITH c AS (
    SELECT u.license_id, u.feature, u.period, u.used,
           (l.limits ->> (u.feature || '_per_month'))::numeric::bigint AS lim
      FROM usage_counters u JOIN licenses l ON l.id = u.license_id
     WHERE u.period = licd_period(licd_now()) AND l.status = 'active'
       AND jsonb_typeof(l.limits -> (u.feature || '_per_month')) = 'number'
  ), due AS (
    SELECT c.*, (SELECT max(p) FROM unnest(p_percents) p
                  WHERE c.used * 100 >= c.lim * p) AS pct
      FROM c WHERE c.lim > 0
  )
  SELECT count(licd_notify('usage_warning', license_id,
           format('usage:%s:%s:%s:%s', license_id, feature, to_char(period, 'YYYY-MM'), pct),
           jsonb_build_object('feature', feature, 'period', to_char(period, 'YYYY-MM'),
                              'used', used, 'limit', lim, 'percent', pct)))
    FROM due WHERE pct IS NOT NULL
$$;

-- Installations of node-locked licenses silent for longer than
-- p_stale_secs free their seat (validate activates one again when it comes
-- back and a seat is free); an offline lease holds its seat until it ends.
-- A floating seat ends by itself when its lease lapses. The bound on
-- seen_hour (never after last_seen, 033) lets its index find them. Returns
-- the number freed.
CREATE OR REPLACE FUNCTION licd_lc_stale_installations(p_stale_secs bigint) RETURNS bigint
LANGUAGE sql AS $$
  WITH d AS (
    UPDATE installations i
       SET status = 'inactive', deactivated_at = licd_now()
      FROM licenses l
     WHERE l.id = i.license_id AND l.seat_model = 'node'
       AND i.status = 'active'
       AND i.last_seen < licd_now() - make_interval(secs => p_stale_secs)
       AND i.seen_hour < licd_now() - make_interval(secs => p_stale_secs)
       AND (i.offline_until IS NULL OR i.offline_until <= licd_now())
    RETURNING i.license_id
  )
  SELECT count(*) FROM d
$$;

-- Retention, one batch of at most p_batch rows per table per call (the job
-- loops until 0): the usage log, answered idempotency records, processed
-- webhook events and delivered notifications older than p_days. Counters
-- are never touched. Returns the number of rows deleted.
CREATE OR REPLACE FUNCTION licd_lc_retention(p_days int, p_batch int) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  cutoff timestamptz := licd_now() - make_interval(days => p_days);
  n bigint; total bigint := 0;
BEGIN
  DELETE FROM usage_log WHERE id IN
    (SELECT id FROM usage_log WHERE at < cutoff ORDER BY id LIMIT p_batch);
  GET DIAGNOSTICS n = ROW_COUNT; total := total + n;
  DELETE FROM usage_requests WHERE ctid IN
    (SELECT ctid FROM usage_requests WHERE created_at < cutoff LIMIT p_batch);
  GET DIAGNOSTICS n = ROW_COUNT; total := total + n;
  DELETE FROM webhook_events WHERE (provider, event_id) IN
    (SELECT provider, event_id FROM webhook_events
      WHERE received_at < cutoff AND status <> 'pending' LIMIT p_batch);
  GET DIAGNOSTICS n = ROW_COUNT; total := total + n;
  DELETE FROM notifications WHERE id IN
    (SELECT id FROM notifications WHERE status = 'delivered'
        AND delivered_at < cutoff ORDER BY id LIMIT p_batch);
  GET DIAGNOSTICS n = ROW_COUNT; total := total + n;
  RETURN total;
END
$$;

-- Claims up to p_limit due notifications for one delivery run: a claimed
-- row is invisible to other runs until p_lock_secs pass (a run killed
-- mid-way leaves its claims to expire; nothing is lost), and its attempts
-- count one more. Rows locked FOR UPDATE SKIP LOCKED, so concurrent runs
-- take different rows. Returns the rows to deliver, with which channels
-- already went out.
CREATE OR REPLACE FUNCTION licd_lc_claim(p_limit int, p_lock_secs int)
RETURNS TABLE (id bigint, kind text, recipient text, payload text,
               license_id uuid, attempts int, created_at text,
               email_sent boolean, webhook_sent boolean)
LANGUAGE sql AS $$
  UPDATE notifications n
     SET locked_until = licd_now() + make_interval(secs => p_lock_secs),
         attempts = n.attempts + 1
   WHERE n.id IN (SELECT x.id FROM notifications x
                   WHERE x.status = 'pending' AND x.next_attempt_at <= licd_now()
                     AND (x.locked_until IS NULL OR x.locked_until <= licd_now())
                   ORDER BY x.next_attempt_at, x.id
                   LIMIT p_limit FOR UPDATE SKIP LOCKED)
  RETURNING n.id, n.kind, n.recipient, n.payload::text, n.license_id, n.attempts,
            to_char(n.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
            n.email_sent_at IS NOT NULL, n.webhook_sent_at IS NOT NULL
$$;

-- One channel ('email' or 'webhook') of notification p_id went out:
-- recorded at once, so that a retry never repeats it.
CREATE OR REPLACE FUNCTION licd_lc_sent(p_id bigint, p_channel text) RETURNS void
LANGUAGE sql AS $$
  UPDATE notifications
     SET email_sent_at = CASE WHEN p_channel = 'email'
                              THEN coalesce(email_sent_at, licd_now()) ELSE email_sent_at END,
         webhook_sent_at = CASE WHEN p_channel = 'webhook'
                                THEN coalesce(webhook_sent_at, licd_now()) ELSE webhook_sent_at END
   WHERE id = p_id
$$;

-- Outcome of a delivery attempt of notification p_id: delivered, or back
-- off exponentially (1 min, 2, 4 ... capped at 6 h) and keep it pending
-- with p_error. Never dropped.
CREATE OR REPLACE FUNCTION licd_lc_done(p_id bigint, p_ok boolean, p_error text) RETURNS void
LANGUAGE sql AS $$
  UPDATE notifications
     SET status = CASE WHEN p_ok THEN 'delivered' ELSE 'pending' END,
         delivered_at = CASE WHEN p_ok THEN licd_now() END,
         locked_until = NULL,
         last_error = CASE WHEN p_ok THEN last_error ELSE left(p_error, 500) END,
         next_attempt_at = CASE WHEN p_ok THEN next_attempt_at
                           ELSE licd_now() + make_interval(secs =>
                                  least(21600, 60 * power(2, least(attempts - 1, 20))::bigint))
                           END
   WHERE id = p_id AND status = 'pending'
$$;

-- figures: licenses per plan and status counted afresh (replacing the
-- rows the triggers of 94_license_counts.sql added since the last run, so
-- the sum stays short and any drift is repaired: one statement, one
-- snapshot, so a row a concurrent writer adds is neither deleted nor
-- counted twice), and the admin overview's figures that change with every
-- heartbeat and with time alone, stored with the time they were counted
-- (console_figures, read by licd_admin_overview). Reads every license,
-- installation and this month's usage counter: seconds with a million
-- licenses, off every request. Returns the number of licenses counted.
CREATE OR REPLACE FUNCTION licd_lc_figures() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  total bigint;
BEGIN
  -- One recount at a time (a second run's snapshot would miss the first's
  -- rows and add its count to theirs); writers never wait for it.
  PERFORM pg_advisory_xact_lock(hashtext('licd_lc_figures'));
  WITH gone AS (DELETE FROM license_counts RETURNING 1)
  INSERT INTO license_counts (plan_code, status, n)
  SELECT plan_code, status, count(*) FROM licenses GROUP BY 1, 2;
  SELECT coalesce(sum(n), 0) INTO total FROM license_counts;
  INSERT INTO console_figures AS f (one, as_of, installations_seen, versions, usage_near_limits)
  SELECT true, licd_now(),
    (SELECT json_build_object(
        '24h', count(*) FILTER (WHERE last_seen >= licd_now() - interval '24 hours'),
        '7d', count(*))
       FROM installations WHERE status = 'active' AND last_seen >= licd_now() - interval '7 days'
        AND seen_hour > licd_now() - interval '7 days 1 hour'),
    coalesce((SELECT json_agg(json_build_object('version', v, 'installations', n)
                                          ORDER BY n DESC, v)
        FROM (SELECT coalesce(version, '') AS v, count(*) AS n FROM installations
               WHERE status = 'active' AND last_seen >= licd_now() - interval '30 days'
                 AND seen_hour > licd_now() - interval '30 days 1 hour'
               GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20) x), '[]'),
    coalesce((SELECT json_agg(json_build_object(
          'license_id', x.license_id, 'email', x.email, 'feature', x.feature,
          'used', x.used, 'limit', x.lim) ORDER BY x.ratio DESC, x.used DESC)
        FROM (SELECT u.license_id, c.email, u.feature, u.used, (l.limits ->> (u.feature || '_per_month'))::numeric::bigint AS lim,
                     u.used::numeric / greatest((l.limits ->> (u.feature || '_per_month'))::numeric, 1) AS ratio
                FROM usage_counters u JOIN licenses l ON l.id = u.license_id
                JOIN customers c ON c.id = l.customer_id
               WHERE u.period = licd_period(licd_now()) AND l.status = 'active'
                 AND l.limits ? (u.feature || '_per_month')
               ORDER BY 6 DESC, u.used DESC LIMIT 10) x), '[]')
  ON CONFLICT (one) DO UPDATE SET as_of = EXCLUDED.as_of,
    installations_seen = EXCLUDED.installations_seen, versions = EXCLUDED.versions,
    usage_near_limits = EXCLUDED.usage_near_limits;
  RETURN total;
END
$$;
