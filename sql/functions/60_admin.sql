-- functions/60_admin.sql: license administration for the admin API (program
-- revoke) and licctl. Each function that changes a license writes its
-- audit row in the same transaction.

-- A license as operators see it: its id, customer, lower-case e-mail,
-- status and creation time for filtering, and doc, the JSON document
-- licctl license list/show and the admin API print (active_installations
-- counts only live seats of a floating license: licd_active_installations).
CREATE OR REPLACE VIEW license_admin_view AS
SELECT l.id, l.customer_id, lower(c.email) AS email, l.status, l.created_at,
       json_build_object(
         'id', l.id, 'customer_id', l.customer_id, 'email', c.email,
         'plan', l.plan_code, 'status', l.status, 'status_reason', l.status_reason,
         'features', l.features, 'limits', l.limits,
         'domain_restrictions', l.domains,
         'issued_at', to_char(l.issued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
         'expires_at', to_char(l.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
         'grace_until', to_char(l.grace_until AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
         'kid', l.key_kid, 'key', l.license_key,
         'active_installations', licd_active_installations(l),
         'seat_model', l.seat_model, 'seat_ttl', l.seat_ttl,
         'max_borrow_days', l.max_borrow_days, 'overdraft', l.overdraft
       )::text AS doc
FROM licenses l JOIN customers c ON c.id = l.customer_id;

-- Revokes license p_license: final and idempotent (a repeat keeps the first
-- revoked_at), audited as p_actor with p_reason and request id p_rid.
-- Returns result 'ok' or 'not_found', revoked_at (epoch seconds) and
-- changed (false for a repeat). Row lock of the license by its UPDATE.
-- Called by the admin API (POST /api/revoke, .../revoke) and licctl
-- license revoke.
CREATE OR REPLACE FUNCTION licd_revoke(p_license uuid, p_reason text, p_actor text, p_rid text)
RETURNS TABLE (result text, revoked_at bigint, changed boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  t timestamptz;
BEGIN
  UPDATE licenses SET status = 'revoked', revoked_at = licd_now(),
         status_reason = p_reason, updated_at = licd_now()
   WHERE id = p_license AND status <> 'revoked'
  RETURNING licenses.revoked_at INTO t;
  changed := FOUND;
  IF NOT changed THEN
    SELECT l.revoked_at INTO t FROM licenses l WHERE l.id = p_license;
    IF NOT FOUND THEN
      result := 'not_found'; RETURN NEXT; RETURN;
    END IF;
    t := coalesce(t, licd_now());
  END IF;
  PERFORM licd_audit(p_actor, 'license.revoke', 'license', p_license::text,
                     p_reason, p_rid, jsonb_build_object('changed', changed));
  result := 'ok'; revoked_at := extract(epoch FROM t)::bigint;
  RETURN NEXT;
END
$$;

-- p_action 'suspend' (active -> suspended) or 'reinstate' (suspended ->
-- active, which also ends a non-payment suspension); repeats are no-ops, a
-- revoked or expired license cannot be suspended or reinstated. Locks the
-- license row. Returns result 'ok', 'not_found' or 'conflict', the status,
-- changed_at (epoch seconds) and changed. Called by the admin API and
-- licctl license suspend/reinstate.
CREATE OR REPLACE FUNCTION licd_set_status(p_license uuid, p_action text, p_reason text,
                                           p_actor text, p_rid text)
RETURNS TABLE (result text, status text, changed_at bigint, changed boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  cur  text;
  want text := CASE p_action WHEN 'suspend' THEN 'suspended' ELSE 'active' END;
  src  text := CASE p_action WHEN 'suspend' THEN 'active' ELSE 'suspended' END;
BEGIN
  IF p_action NOT IN ('suspend', 'reinstate') THEN
    RAISE EXCEPTION 'bad action %', p_action;
  END IF;
  SELECT l.status INTO cur FROM licenses l WHERE l.id = p_license FOR UPDATE;
  IF NOT FOUND THEN
    result := 'not_found'; RETURN NEXT; RETURN;
  END IF;
  status := cur; changed := false;
  IF cur = src THEN
    UPDATE licenses SET status = want, status_reason = p_reason,
           suspended_at = CASE WHEN want = 'suspended' THEN licd_now() END,
           updated_at = licd_now()
     WHERE id = p_license;
    status := want; changed := true;
  ELSIF cur <> want THEN
    result := 'conflict'; RETURN NEXT; RETURN;
  END IF;
  PERFORM licd_audit(p_actor, 'license.' || p_action, 'license', p_license::text,
                     p_reason, p_rid, jsonb_build_object('changed', changed));
  result := 'ok'; changed_at := extract(epoch FROM licd_now())::bigint;
  RETURN NEXT;
END
$$;

-- Frees every seat of license p_license (a floating license's as
-- check-ins do: peaks recorded first, live seats marked released) and
-- audits it. Locks the license row. Returns result 'ok' or 'not_found' and
-- freed, the number of installations deactivated. Called by the admin API
-- and licctl license reset-activations.
CREATE OR REPLACE FUNCTION licd_reset_activations(p_license uuid, p_reason text,
                                                  p_actor text, p_rid text)
RETURNS TABLE (result text, freed bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  lic licenses%ROWTYPE;
  t   timestamptz;
BEGIN
  SELECT * INTO lic FROM licenses WHERE id = p_license FOR UPDATE;
  IF NOT FOUND THEN
    result := 'not_found'; RETURN NEXT; RETURN;
  END IF;
  t := licd_clock_now();
  IF lic.seat_model = 'floating' THEN
    PERFORM licd_seat_day(p_license, t);
  END IF;
  UPDATE installations
     SET status = 'inactive', deactivated_at = licd_now(),
         seat_expires_at = CASE WHEN seat_expires_at > t THEN NULL
                                ELSE seat_expires_at END,
         borrowed_until = NULL
   WHERE license_id = p_license AND status = 'active';
  GET DIAGNOSTICS freed = ROW_COUNT;
  PERFORM licd_audit(p_actor, 'license.reset_activations', 'license',
                     p_license::text, p_reason, p_rid,
                     jsonb_build_object('freed', freed));
  result := 'ok';
  RETURN NEXT;
END
$$;

-- Everything about license p_license as JSON text: license_admin_view's
-- document, its installations (with each one's seat state for a floating
-- license), this month's usage counters, and for a floating license the
-- seat counts and the last 31 days' peaks. NULL for an unknown license.
-- Reads only. Called by the admin API (GET .../licenses/{id}, and the
-- answer of an edit), licd_admin_license_full and licctl license show.
CREATE OR REPLACE FUNCTION licd_admin_license(p_license uuid) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'license', v.doc::json,
    'installations', coalesce((
      SELECT json_agg(json_build_object(
               'id', i.installation_id, 'status', i.status,
               'first_seen', to_char(i.first_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
               'last_seen', to_char(i.last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
               'version', i.version, 'domain', i.domain, 'metadata', i.metadata,
               'seat', CASE WHEN l.seat_model = 'floating' THEN json_build_object(
                 'state', licd_seat_state(i),
                 'expires_at', to_char(i.seat_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                 'borrowed_until', to_char(i.borrowed_until AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                 'overdraft', i.seat_overdraft) END)
             ORDER BY i.first_seen)
        FROM installations i WHERE i.license_id = v.id), '[]'::json),
    'usage', json_build_object(
      'period', to_char(licd_period(licd_now()), 'YYYY-MM'),
      'features', coalesce((
        SELECT json_object_agg(c.feature, json_build_object('used', c.used))
          FROM usage_counters c
         WHERE c.license_id = v.id AND c.period = licd_period(licd_now())),
        '{}'::json)),
    'seats', CASE WHEN l.seat_model = 'floating' THEN json_build_object(
      'model', l.seat_model, 'ttl', l.seat_ttl,
      'max_borrow_days', l.max_borrow_days, 'overdraft', l.overdraft,
      'limit', (l.limits ->> 'installations')::numeric::bigint,
      'live', (SELECT count(*) FROM installations i WHERE i.license_id = l.id
                AND licd_seat_state(i) IN ('live', 'borrowed')),
      'borrowed', (SELECT count(*) FROM installations i WHERE i.license_id = l.id
                    AND licd_seat_state(i) = 'borrowed'),
      'lapsed', (SELECT count(*) FROM installations i WHERE i.license_id = l.id
                  AND licd_seat_state(i) = 'lapsed'),
      'overdrafts', (SELECT count(*) FROM seat_overdrafts o WHERE o.license_id = l.id),
      'peaks', coalesce((
        SELECT json_agg(json_build_object('day', p.day, 'peak', p.peak) ORDER BY p.day)
          FROM licd_seat_peaks(l.id, (licd_now() AT TIME ZONE 'UTC')::date - 30,
                               (licd_now() AT TIME ZONE 'UTC')::date) p), '[]'::json))
      ELSE json_build_object('model', l.seat_model) END)::text
  FROM license_admin_view v JOIN licenses l ON l.id = v.id WHERE v.id = p_license
$$;

-- Stores the license keys the caller signed: p_keys[i] for license
-- p_ids[i], under the signing key p_kid. The keys are signed outside the
-- database (it never holds a private key), in the caller's transaction;
-- an id with no license is passed over. Called by the webhook (a license
-- an event issued), the admin API (POST /api/admin/licenses) and licctl
-- (license issue, one or in bulk, and a replayed event's license).
CREATE OR REPLACE FUNCTION licd_license_keys_store(p_ids uuid[], p_keys text[],
                                                   p_kid text) RETURNS void
LANGUAGE sql AS $$
  UPDATE licenses l SET license_key = k.key, key_kid = p_kid
    FROM unnest(p_ids, p_keys) AS k(id, key)
   WHERE l.id = k.id;
$$;
