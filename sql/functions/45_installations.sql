-- functions/45_installations.sql: a node-locked installation's seat, its
-- refresh, and the validation counters the refresh writer flushes.

-- Activates the installations of many validate calls in one transaction
-- (group commit: one WAL flush for all of them), each with the result it
-- would have alone. p_items: [{"o": ordinal, "l": license, "i":
-- installation, "v": version or null, "m": metadata as a JSON string or
-- null, "d": domain or null, "f": feature or null, "c": true to apply the
-- request's rules (domain restrictions; "f" licensed), "w": false on every
-- item to skip licenses held elsewhere instead of waiting for them}]. One
-- row per item, ord = its "o": code VALID, INVALID_KEY (no such license),
-- BUSY (only with "w": false: its license is held elsewhere), REVOKED /
-- SUSPENDED / EXPIRED (the license's status, or its end and grace passed),
-- NOT_FLOATING (the license is floating: its seats are licd_seat's),
-- DOMAIN_NOT_ALLOWED, FEATURE_NOT_LICENSED or TOO_MANY_INSTALLATIONS, with
-- first_seen, last_seen in epoch seconds for VALID.
-- The items are read with their licenses in one statement that locks each
-- license row (FOR UPDATE) as it returns it, in id order so that
-- concurrent batches cannot deadlock; each item is decided from the
-- locked row (PostgreSQL reads it again if it changed while we waited),
-- which no other writer can change until the commit: the seat count and
-- the upsert of one license serialise with every other activation, seat
-- write and status change of it, so limits.installations holds under any
-- concurrency and a change acknowledged before the lock was taken is
-- applied. Items go in (license, installation) order, the order
-- licd_touch_batch locks installation rows in. Every check is a
-- comparison that cannot raise, so one item's refusal never fails the
-- others (an item that still fails the statement, say a constraint, makes
-- the caller retry the items one by one; a batch that waited lock_timeout
-- is sent again with "w": false, so that only the held license's items
-- answer busy). Called by validate
-- (fcgi/lib/activate.c collects the items of a process's resume threads)
-- and through licd_activate.
CREATE OR REPLACE FUNCTION licd_activate_batch(p_items jsonb)
RETURNS TABLE (ord int, code text, first_seen bigint, last_seen bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  t     timestamptz := licd_now();
  it    record;
  seen  int[] := '{}';
  held  uuid[];
  used  bigint;
BEGIN
  -- Items marked "w": false come again after their batch waited
  -- lock_timeout on a license held elsewhere: only the licenses free now
  -- are locked (held), the others' items answer BUSY at once.
  IF p_items @> '[{"w": false}]' THEN
    SELECT coalesce(array_agg(z.id), '{}') INTO held FROM (
      SELECT l.id FROM licenses l
       WHERE l.id IN (SELECT x.l FROM jsonb_to_recordset(p_items) AS x(l uuid))
       ORDER BY l.id FOR UPDATE SKIP LOCKED) z;
  END IF;
  -- One statement reads each item with its license, locking the license
  -- rows as it goes, in id order (the sort is below the lock).
  FOR it IN
    SELECT x.o, x.i, x.v, x.m, x.d, x.f, x.c, l.id, l.status, l.expires_at,
           l.grace_until, l.seat_model, l.domains, l.features,
           (l.limits ->> 'installations')::numeric::bigint AS seats
      FROM jsonb_to_recordset(p_items)
        AS x(o int, l uuid, i text, v text, m text, d text, f text, c boolean)
      JOIN licenses l ON l.id = x.l
     WHERE held IS NULL OR x.l = ANY (held)
     ORDER BY x.l, x.i, x.o
       FOR UPDATE OF l
  LOOP
    ord := it.o; code := NULL; first_seen := NULL; last_seen := NULL;
    seen := seen || it.o;
    IF it.status <> 'active' THEN
      code := upper(it.status);
    ELSIF it.expires_at IS NOT NULL AND
          greatest(it.expires_at, it.grace_until) <= t THEN
      code := 'EXPIRED';
    ELSIF it.seat_model <> 'node' THEN
      code := 'NOT_FLOATING';
    ELSIF it.c AND it.domains <> '[]' AND NOT licd_domain_allowed(it.domains, it.d) THEN
      code := 'DOMAIN_NOT_ALLOWED';
    ELSIF it.c AND it.f IS NOT NULL AND NOT coalesce(it.features ? it.f, false) THEN
      code := 'FEATURE_NOT_LICENSED';
    ELSIF it.seats IS NOT NULL THEN
      SELECT count(*) INTO used FROM installations i
       WHERE i.license_id = it.id AND i.status = 'active'
         AND i.installation_id <> it.i;
      IF used >= it.seats THEN
        code := 'TOO_MANY_INSTALLATIONS';
      END IF;
    END IF;
    IF code IS NULL THEN
      INSERT INTO installations AS i (license_id, installation_id, status, version,
                                      metadata, domain, first_seen, last_seen,
                                      activated_at)
      VALUES (it.id, it.i, 'active', it.v, it.m::jsonb, it.d, t, t, t)
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
    END IF;
    RETURN NEXT;
  END LOOP;
  -- Items whose license does not exist, or was held elsewhere.
  FOR it IN
    SELECT x.o, x.l FROM jsonb_to_recordset(p_items) AS x(o int, l uuid)
     WHERE NOT x.o = ANY (seen)
  LOOP
    ord := it.o; first_seen := NULL; last_seen := NULL;
    code := CASE WHEN held IS NOT NULL AND
                      EXISTS (SELECT 1 FROM licenses l WHERE l.id = it.l)
                 THEN 'BUSY' ELSE 'INVALID_KEY' END;
    RETURN NEXT;
  END LOOP;
END
$$;

-- Activates installation p_iid of license p_license when a seat is free,
-- or reactivates it; records version, metadata and domain when given. One
-- item of licd_activate_batch, without the request's domain and feature
-- rules (an operator's offline lease); the same codes. Called for offline
-- leases by the admin API and licctl.
CREATE OR REPLACE FUNCTION licd_activate(p_license uuid, p_iid text, p_version text,
                                         p_metadata jsonb, p_domain text)
RETURNS TABLE (code text, first_seen bigint, last_seen bigint)
LANGUAGE sql AS $$
  SELECT b.code, b.first_seen, b.last_seen
    FROM licd_activate_batch(jsonb_build_array(jsonb_build_object(
           'o', 0, 'l', p_license, 'i', p_iid, 'v', p_version,
           'm', p_metadata::text, 'd', p_domain, 'c', false))) b
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
