-- 010_state_once: licd_license_state read the clock (licd_now(), a
-- plpgsql call with its own query) twice per call; once is enough, and it
-- is on every validate, heartbeat and usage. OFFSET 0 keeps the planner
-- from folding the subquery back into two calls. Same signature, same rows.

CREATE OR REPLACE FUNCTION licd_license_state(p_license uuid, p_iid text, p_touch_secs int,
                                              p_version text, p_metadata jsonb)
RETURNS TABLE (id uuid, customer_id uuid, plan_code text, status text,
               expires_epoch bigint, grace_epoch bigint, features text,
               limits text, domains text, inst_status text,
               first_seen bigint, last_seen bigint, needs_touch boolean,
               now_epoch bigint)
LANGUAGE sql STABLE AS $$
  SELECT v.*, i.status,
         extract(epoch FROM i.first_seen)::bigint,
         extract(epoch FROM i.last_seen)::bigint,
         coalesce(i.last_seen < c.t - make_interval(secs => p_touch_secs)
                  OR (p_version IS NOT NULL AND i.version IS DISTINCT FROM p_version)
                  OR (p_metadata IS NOT NULL AND i.metadata IS DISTINCT FROM p_metadata),
                  false),
         extract(epoch FROM c.t)::bigint
  FROM license_view v
  CROSS JOIN (SELECT licd_now() AS t OFFSET 0) c
  LEFT JOIN installations i ON i.license_id = v.id AND i.installation_id = p_iid
  WHERE v.id = p_license
$$;
