-- 013_touch_behind: validate and heartbeat no longer write in the request.
--
-- licd_check_in (011) refreshed last_seen in the statement that reads the
-- license: one write transaction per call whenever the installation's
-- last_seen was older than touch_interval, which at a million
-- installations is nearly every call and cost more than the rest of the
-- call. licd_lookup reads the same row and only says whether it is due
-- (needs_touch); the program queues the refresh and a writer thread of
-- each process sends the queue every touch_flush_ms in one transaction
-- (licd_touch_batch; fcgi/lib/touch.h).
--
-- licd_lookup also returns the key as issued, so that the program can
-- accept a key it has not verified before by comparing it with that one
-- instead of checking its signature (fcgi/lib/lic.h, lic_key_confirm).
-- usage reads its license with it as well (with p_touch_secs 0; it never
-- refreshes an installation).
--
-- licd_check_in stays for programs of the previous release during an
-- upgrade; nothing of this release calls it.

-- needs_touch: the license is active, the installation is active, and its
-- last_seen is older than p_touch_secs or the client reports another
-- version or metadata. The same rule as licd_check_in's.
--
-- license_key: the key as issued. The caller names the license from a key
-- it has not verified yet and accepts the key when it is this one
-- (lic_key_confirm in fcgi/lib/lic.c), so that a call needs no signature
-- verify. The first nine columns are license_view's, read from licenses
-- directly to get the key in the same index lookup.
CREATE FUNCTION licd_lookup(p_license uuid, p_iid text, p_touch_secs int,
                            p_version text, p_metadata jsonb)
RETURNS TABLE (id uuid, customer_id uuid, plan_code text, status text,
               expires_epoch bigint, grace_epoch bigint, features text,
               limits text, domains text, inst_status text,
               first_seen bigint, last_seen bigint, now_epoch bigint,
               inst_domain text, needs_touch boolean, license_key text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  SELECT l.id, l.customer_id, l.plan_code, l.status,
         extract(epoch FROM l.expires_at)::bigint,
         extract(epoch FROM l.grace_until)::bigint,
         l.features::text, l.limits::text, l.domains::text, i.status,
         extract(epoch FROM i.first_seen)::bigint,
         extract(epoch FROM i.last_seen)::bigint,
         extract(epoch FROM c.t)::bigint, i.domain,
         coalesce(l.status = 'active' AND i.status = 'active' AND
                  (i.last_seen < c.t - make_interval(secs => p_touch_secs)
                   OR (p_version IS NOT NULL AND i.version IS DISTINCT FROM p_version)
                   OR (p_metadata IS NOT NULL AND i.metadata IS DISTINCT FROM p_metadata)),
                  false),
         l.license_key
    FROM licenses l
   CROSS JOIN (SELECT licd_now() AS t OFFSET 0) c
    LEFT JOIN installations i ON i.license_id = l.id AND i.installation_id = p_iid
   WHERE l.id = p_license;
END
$$;

-- p_items: [{"l": license, "i": installation, "t": epoch seconds,
-- "v": version or absent, "m": metadata as a JSON string or absent}].
-- Only active installations are refreshed (one deactivated meanwhile stays
-- as it is) and last_seen never moves back. One set-based UPDATE: about a
-- fifth cheaper per row than a loop of single-row ones at a million
-- installations. Its rows are locked in the order of the sorted batch (a
-- nested loop over it); should two processes' batches still deadlock, the
-- writer retries once (fcgi/lib/touch.c), off any request's path.
-- Committed without waiting for the WAL flush, as licd_touch (008).
CREATE FUNCTION licd_touch_batch(p_items jsonb) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
  n int;
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  UPDATE installations s
     SET last_seen = greatest(s.last_seen, x.t),
         version = coalesce(x.v, s.version),
         metadata = coalesce(x.m, s.metadata)
    FROM (SELECT DISTINCT ON (x.l, x.i) x.l, x.i, x.v, x.m::jsonb AS m,
                 to_timestamp(x.t) AS t
            FROM jsonb_to_recordset(p_items) AS x(l uuid, i text, t bigint,
                                                  v text, m text)
           ORDER BY x.l, x.i, x.t DESC) x
   WHERE s.license_id = x.l AND s.installation_id = x.i
     AND s.status = 'active';
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;
