-- 011_check_in: validate and heartbeat in one round trip. They used to
-- read (licd_license_state) and then, when last_seen was older than
-- touch_interval or version/metadata changed, call licd_touch: a second
-- round trip on ~1 call in 40 at 10k installations, which made up the p99,
-- and on nearly every call at a million. licd_check_in reads the same row
-- and refreshes the installation in the same statement, committed without
-- waiting for the WAL flush (as licd_touch since 008).
--
-- It refreshes only an active installation of a license whose status is
-- active, which every VALID answer has (lic_state). What the C side still
-- decides stays there: when the client reports another domain than
-- inst_domain (recorded only once the domain is allowed), validate calls
-- licd_touch as before; an inactive installation goes through
-- licd_activate.

CREATE FUNCTION licd_check_in(p_license uuid, p_iid text, p_touch_secs int,
                              p_version text, p_metadata jsonb)
RETURNS TABLE (id uuid, customer_id uuid, plan_code text, status text,
               expires_epoch bigint, grace_epoch bigint, features text,
               limits text, domains text, inst_status text,
               first_seen bigint, last_seen bigint, now_epoch bigint,
               inst_domain text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  s     record;
  seen  timestamptz;
BEGIN
  SELECT v.*, i.status AS i_status, i.first_seen AS i_first,
         i.last_seen AS i_last, i.version AS i_version,
         i.metadata AS i_metadata, i.domain AS i_domain, c.t AS t
    INTO s
    FROM license_view v
   CROSS JOIN (SELECT licd_now() AS t OFFSET 0) c
    LEFT JOIN installations i ON i.license_id = v.id AND i.installation_id = p_iid
   WHERE v.id = p_license;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  seen := s.i_last;
  IF s.status = 'active' AND s.i_status = 'active' AND
     (s.i_last < s.t - make_interval(secs => p_touch_secs)
      OR (p_version IS NOT NULL AND s.i_version IS DISTINCT FROM p_version)
      OR (p_metadata IS NOT NULL AND s.i_metadata IS DISTINCT FROM p_metadata)) THEN
    PERFORM set_config('synchronous_commit', 'off', true);
    UPDATE installations i
       SET last_seen = s.t, version = coalesce(p_version, i.version),
           metadata = coalesce(p_metadata, i.metadata)
     WHERE i.license_id = p_license AND i.installation_id = p_iid
       AND i.status = 'active'
    RETURNING i.last_seen INTO seen;
    IF NOT FOUND THEN
      -- Deactivated since the read: the handler activates it again.
      s.i_status := 'inactive';
    END IF;
  END IF;
  RETURN QUERY SELECT s.id, s.customer_id, s.plan_code, s.status,
         s.expires_epoch, s.grace_epoch, s.features, s.limits, s.domains,
         s.i_status, extract(epoch FROM s.i_first)::bigint,
         extract(epoch FROM seen)::bigint, extract(epoch FROM s.t)::bigint,
         s.i_domain;
END
$$;
