-- functions/45_installations.sql: a node-locked installation's seat, its
-- refresh, and the validation counters the refresh writer flushes.

-- Activates installation p_iid of license p_license when a seat is free,
-- or reactivates it; records version, metadata and domain when given.
-- Locks the license row (FOR UPDATE): activations of one license
-- serialise, so concurrent new installations can never pass
-- limits.installations (the count and the upsert are one transaction);
-- other licenses are not blocked. Returns one row: code VALID,
-- INVALID_KEY (no such license), REVOKED / SUSPENDED / EXPIRED (the
-- license's status) or TOO_MANY_INSTALLATIONS, and first_seen, last_seen
-- in epoch seconds. Called by validate for an installation that is not
-- active (on a resume thread, synchronously committed), and for offline
-- leases by the admin API and licctl.
CREATE OR REPLACE FUNCTION licd_activate(p_license uuid, p_iid text, p_version text,
                                         p_metadata jsonb, p_domain text)
RETURNS TABLE (code text, first_seen bigint, last_seen bigint)
LANGUAGE plpgsql AS $$
DECLARE
  lic   licenses%ROWTYPE;
  seats bigint;
  used  bigint;
  t     timestamptz := licd_now();
BEGIN
  SELECT * INTO lic FROM licenses WHERE licenses.id = p_license FOR UPDATE;
  IF NOT FOUND THEN
    code := 'INVALID_KEY'; RETURN NEXT; RETURN;
  END IF;
  IF lic.status <> 'active' THEN
    code := upper(lic.status); RETURN NEXT; RETURN;
  END IF;
  seats := (lic.limits ->> 'installations')::bigint;
  IF seats IS NOT NULL THEN
    SELECT count(*) INTO used FROM installations i
     WHERE i.license_id = p_license AND i.status = 'active'
       AND i.installation_id <> p_iid;
    IF used >= seats THEN
      code := 'TOO_MANY_INSTALLATIONS'; RETURN NEXT; RETURN;
    END IF;
  END IF;
  INSERT INTO installations AS i (license_id, installation_id, status, version,
                                  metadata, domain, first_seen, last_seen,
                                  activated_at)
  VALUES (p_license, p_iid, 'active', p_version, p_metadata, p_domain, t, t, t)
  ON CONFLICT (license_id, installation_id) DO UPDATE
     SET status = 'active', last_seen = t,
         activated_at = CASE WHEN i.status = 'active' THEN i.activated_at ELSE t END,
         deactivated_at = NULL,
         version = coalesce(EXCLUDED.version, i.version),
         metadata = coalesce(EXCLUDED.metadata, i.metadata),
         domain = coalesce(EXCLUDED.domain, i.domain)
  RETURNING 'VALID', extract(epoch FROM i.first_seen)::bigint,
            extract(epoch FROM i.last_seen)::bigint
       INTO code, first_seen, last_seen;
  RETURN NEXT;
END
$$;

-- Records that active installation p_iid was seen now, with its version,
-- metadata and domain when given (NULL: unchanged). Returns first_seen,
-- last_seen (epoch seconds); no row when the installation is not active.
-- Its transaction commits without waiting for the WAL flush
-- (synchronous_commit off, for that transaction only): a lost refresh is
-- repaired by the installation's next call. Called by validate when a
-- newly allowed domain must be recorded in the request.
CREATE OR REPLACE FUNCTION licd_touch(p_license uuid, p_iid text, p_version text,
                                      p_metadata jsonb, p_domain text)
RETURNS TABLE (first_seen bigint, last_seen bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  -- is_local: for this transaction only (the statement's own, since
  -- validate and heartbeat call licd_touch on its own).
  PERFORM set_config('synchronous_commit', 'off', true);
  RETURN QUERY
  UPDATE installations
     SET last_seen = licd_now(), version = coalesce(p_version, version),
         metadata = coalesce(p_metadata, metadata),
         domain = coalesce(p_domain, domain)
   WHERE license_id = p_license AND installation_id = p_iid AND status = 'active'
  RETURNING extract(epoch FROM installations.first_seen)::bigint,
            extract(epoch FROM installations.last_seen)::bigint;
END
$$;

-- The queued last_seen / version / metadata refreshes of one process, in
-- one transaction. p_items: [{"l": license, "i": installation, "t": epoch
-- seconds, "v": version or absent, "m": metadata as a JSON string or
-- absent}]. Only active installations are refreshed (one deactivated
-- meanwhile stays as it is) and last_seen never moves back. Returns the
-- number of rows updated. One set-based UPDATE; its rows are locked in the
-- order of the sorted batch (a nested loop over it); should two processes'
-- batches still deadlock, the writer retries once, off any request's path.
-- Committed without waiting for the WAL flush, as licd_touch. Called by
-- each program's touch writer thread (fcgi/lib/touch.c) every
-- touch_flush_ms.
CREATE OR REPLACE FUNCTION licd_touch_batch(p_items jsonb) RETURNS int
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

-- Frees the seat of installation p_iid; idempotent. For a floating license
-- it is a check-in (licd_seat_checkin, which locks the license row).
-- Returns license_found (false: no such license) and deactivated (a seat
-- was freed by this call). Called by validate (POST /api/deactivate) and
-- licd_admin_deactivate.
CREATE OR REPLACE FUNCTION licd_deactivate(p_license uuid, p_iid text)
RETURNS TABLE (license_found boolean, deactivated boolean)
LANGUAGE plpgsql AS $$
DECLARE
  model text;
BEGIN
  SELECT seat_model INTO model FROM licenses WHERE id = p_license;
  license_found := FOUND;
  deactivated := false;
  IF model = 'floating' THEN
    SELECT c.released INTO deactivated FROM licd_seat_checkin(p_license, p_iid) c;
  ELSIF license_found THEN
    UPDATE installations i SET status = 'inactive', deactivated_at = licd_now()
     WHERE i.license_id = p_license AND i.installation_id = p_iid
       AND i.status = 'active';
    deactivated := FOUND;
  END IF;
  RETURN NEXT;
END
$$;

-- Adds one process's validation counts to today's (UTC, licd_now)
-- validation_counts. p: {"CODE": n, ...}, counted since its last flush;
-- keys that are not result codes and counts below 1 are ignored. Called by
-- the touch writer of validate (fcgi/lib/touch.c); read by
-- licd_admin_overview.
CREATE OR REPLACE FUNCTION licd_count_validations(p jsonb) RETURNS void
LANGUAGE sql AS $$
  INSERT INTO validation_counts AS v (day, code, n)
  SELECT (licd_now() AT TIME ZONE 'UTC')::date, e.key, (e.value #>> '{}')::bigint
    FROM jsonb_each(p) e
   WHERE e.key ~ '^[A-Z_]{1,40}$' AND (e.value #>> '{}')::bigint > 0
  ON CONFLICT (day, code) DO UPDATE SET n = v.n + EXCLUDED.n
$$;
