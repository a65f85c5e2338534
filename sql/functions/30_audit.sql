-- functions/30_audit.sql: the audit log.

-- Appends one audit_log row at licd_now(): actor (an admin token's name,
-- 'licctl', 'lifecycle', 'stripe', 'paddle'), action ('license.revoke', ...),
-- target type and id, reason, request id, details. Returns nothing. Called
-- in the transaction of the change it records: by the admin, billing,
-- floating-seat, console and lifecycle functions here, by the admin API
-- (offline leases) and by licctl.
CREATE OR REPLACE FUNCTION licd_audit(p_actor text, p_action text, p_type text, p_id text,
                                      p_reason text, p_rid text, p_details jsonb)
RETURNS void LANGUAGE sql AS $$
  INSERT INTO audit_log (at, actor, action, target_type, target_id, reason,
                         request_id, details)
  VALUES (licd_now(), p_actor, p_action, p_type, p_id, p_reason, p_rid, p_details)
$$;
