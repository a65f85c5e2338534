-- 003_admin: license administration (revoke, suspend, reinstate, reset
-- activations) for the revoke program and licctl. Each function changes
-- the license and writes its audit row in one transaction.

CREATE FUNCTION licd_audit(p_actor text, p_action text, p_type text, p_id text,
                           p_reason text, p_rid text, p_details jsonb)
RETURNS void LANGUAGE sql AS $$
  INSERT INTO audit_log (at, actor, action, target_type, target_id, reason,
                         request_id, details)
  VALUES (licd_now(), p_actor, p_action, p_type, p_id, p_reason, p_rid, p_details)
$$;

-- Revocation is final and idempotent: a repeat keeps the first revoked_at.
-- result: ok | not_found
CREATE FUNCTION licd_revoke(p_license uuid, p_reason text, p_actor text, p_rid text)
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

-- suspend: active -> suspended; reinstate: suspended -> active (also clears
-- an expired grace period's suspension). Repeats are no-ops; a revoked or
-- expired license cannot be suspended or reinstated.
-- result: ok | not_found | conflict
CREATE FUNCTION licd_set_status(p_license uuid, p_action text, p_reason text,
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

-- Frees every seat of a license. result: ok | not_found
CREATE FUNCTION licd_reset_activations(p_license uuid, p_reason text,
                                       p_actor text, p_rid text)
RETURNS TABLE (result text, freed bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  PERFORM 1 FROM licenses WHERE id = p_license FOR UPDATE;
  IF NOT FOUND THEN
    result := 'not_found'; RETURN NEXT; RETURN;
  END IF;
  UPDATE installations SET status = 'inactive', deactivated_at = licd_now()
   WHERE license_id = p_license AND status = 'active';
  GET DIAGNOSTICS freed = ROW_COUNT;
  PERFORM licd_audit(p_actor, 'license.reset_activations', 'license',
                     p_license::text, p_reason, p_rid,
                     jsonb_build_object('freed', freed));
  result := 'ok';
  RETURN NEXT;
END
$$;

-- Everything an operator wants to see about one license, as JSON text:
-- the license, its installations, and this month's usage counters.
CREATE FUNCTION licd_admin_license(p_license uuid) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'license', v.doc::json,
    'installations', coalesce((
      SELECT json_agg(json_build_object(
               'id', i.installation_id, 'status', i.status,
               'first_seen', to_char(i.first_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
               'last_seen', to_char(i.last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
               'version', i.version, 'domain', i.domain, 'metadata', i.metadata)
             ORDER BY i.first_seen)
        FROM installations i WHERE i.license_id = v.id), '[]'::json),
    'usage', json_build_object(
      'period', to_char(licd_period(licd_now()), 'YYYY-MM'),
      'features', coalesce((
        SELECT json_object_agg(c.feature, json_build_object('used', c.used))
          FROM usage_counters c
         WHERE c.license_id = v.id AND c.period = licd_period(licd_now())),
        '{}'::json)))::text
  FROM license_admin_view v WHERE v.id = p_license
$$;
