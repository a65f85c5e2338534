-- functions/45_installations.sql: a node-locked installation's seat, its
-- refresh, and the validation counters the refresh writer flushes.

-- Locks the licenses of a batch's items (p_items: [{"l": license, ...}])
-- FOR UPDATE until the transaction ends, in id order so that concurrent
-- batches cannot deadlock, and returns the ids locked (unknown licenses
-- are not among them). Items marked "w": false (a batch's: it must
-- never wait for one license while holding others) lock only the
-- licenses free now (SKIP LOCKED), and the caller answers the others'
-- items BUSY at once; they then wait alone, unmarked (fcgi/lib/batch.h).
-- Called by licd_activate_batch and licd_seat_batch.
CREATE OR REPLACE FUNCTION licd_lock_items(p_items jsonb) RETURNS uuid[]
LANGUAGE plpgsql AS $$
DECLARE
  locked uuid[];
BEGIN
  IF p_items @> '[{"w": false}]' THEN
    SELECT coalesce(array_agg(z.id), '{}') INTO locked FROM (
      SELECT l.id FROM licenses l
       WHERE l.id IN (SELECT x.l FROM jsonb_to_recordset(p_items) AS x(l uuid))
       ORDER BY l.id FOR UPDATE SKIP LOCKED) z;
  ELSE
    SELECT coalesce(array_agg(z.id), '{}') INTO locked FROM (
      SELECT l.id FROM licenses l
       WHERE l.id IN (SELECT x.l FROM jsonb_to_recordset(p_items) AS x(l uuid))
       ORDER BY l.id FOR UPDATE) z;
  END IF;
  RETURN locked;
END
$$;

-- license_seats (031_license_seats.sql): each license's active
-- installations, counted by these trigger functions in every writer's
-- transaction (the triggers are in 99_triggers.sql): an insert or delete
-- statement adds or takes its active rows, an update statement its rows'
-- moves into and out of 'active' (a refresh moves none: a sum of zero
-- writes nothing). One row per license a statement changes, in license
-- order, so that two statements that change the same licenses lock their
-- rows in the same order. Whoever adds an active installation holds its
-- license's lock (licd_activate_batch, licd_seat, licd_seat_batch), so
-- under that lock the row is exact for every writer that committed before
-- and can only fall meanwhile (a deactivation does not take the lock). A
-- delete only updates (a license's rows go with it: ON DELETE CASCADE).
CREATE OR REPLACE FUNCTION licd_seats_added() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO license_seats AS s (license_id, active)
  SELECT a.license_id, count(*) FROM added a WHERE a.status = 'active'
   GROUP BY a.license_id ORDER BY a.license_id
  ON CONFLICT (license_id) DO UPDATE SET active = s.active + EXCLUDED.active;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION licd_seats_moved() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO license_seats AS s (license_id, active)
  SELECT m.license_id, sum(m.n) FROM (
      SELECT a.license_id, 1 AS n FROM after a WHERE a.status = 'active'
      UNION ALL
      SELECT b.license_id, -1 FROM before b WHERE b.status = 'active') m
   GROUP BY m.license_id HAVING sum(m.n) <> 0 ORDER BY m.license_id
  ON CONFLICT (license_id) DO UPDATE SET active = s.active + EXCLUDED.active;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION licd_seats_removed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE license_seats s SET active = s.active - r.n
    FROM (SELECT r.license_id, count(*) AS n FROM removed r
           WHERE r.status = 'active' GROUP BY r.license_id) r
   WHERE s.license_id = r.license_id;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION licd_seats_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM license_seats;
  RETURN NULL;
END
$$;

-- Counts every license's active installations afresh into license_seats,
-- holding up every writer of installations until the caller's transaction
-- ends (SHARE ROW EXCLUSIVE). Writes only the rows that differ. Called by
-- 99_triggers.sql before it first creates the triggers that keep the
-- rows, in licctl migrate's transaction, so that the count and the
-- triggers take effect together whatever was written before them; by an
-- operator, as a repair (docs/OPERATIONS.md).
CREATE OR REPLACE FUNCTION licd_seats_recount() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  LOCK TABLE installations IN SHARE ROW EXCLUSIVE MODE;
  UPDATE license_seats s SET active = 0
   WHERE s.active <> 0 AND NOT EXISTS (
     SELECT 1 FROM installations i
      WHERE i.license_id = s.license_id AND i.status = 'active');
  INSERT INTO license_seats AS s (license_id, active)
  SELECT i.license_id, count(*) FROM installations i WHERE i.status = 'active'
   GROUP BY i.license_id ORDER BY i.license_id
  ON CONFLICT (license_id) DO UPDATE SET active = EXCLUDED.active
   WHERE s.active <> EXCLUDED.active;
END
$$;

-- Activates the installations of many validate calls in one transaction
-- (group commit: one WAL flush for all of them), each with the result it
-- would have alone. p_items: [{"o": ordinal, "l": license, "i":
-- installation, "v": version or null, "m": metadata as a JSON string or
-- null, "d": domain or null, "f": feature or null, "c": true to apply the
-- request's rules (domain restrictions; "f" licensed), "w": false on every
-- item to skip licenses held elsewhere instead of waiting for them (a
-- batch of several items does), "h": true when the caller did not read
-- the installation first (validate sending a call of an installation it
-- does not hold in memory straight here, its license's state from
-- memory): an installation found active then keeps its seat whatever
-- the count, as the lookup would have answered it, and answers KEPT
-- instead of VALID}]. One
-- row per item, ord = its "o": code VALID, KEPT, INVALID_KEY (no such license),
-- BUSY (only with "w": false: its license is held elsewhere), REVOKED /
-- SUSPENDED / EXPIRED (the license's status, or its end and grace passed),
-- NOT_FLOATING (the license is floating: its seats are licd_seat's),
-- DOMAIN_NOT_ALLOWED, FEATURE_NOT_LICENSED or TOO_MANY_INSTALLATIONS, with
-- first_seen, last_seen in epoch seconds for VALID.
-- Two statements. The first locks the items' license rows (FOR UPDATE),
-- in id order so that concurrent batches cannot deadlock. The second,
-- whose snapshot is taken once those locks are held, decides every item
-- and writes every seat at once: no other writer can change a locked
-- license or take a seat of it until the commit (a deactivation, which
-- takes no lock, can only free one), and every one that did before has
-- committed and is seen, so the seats in use (the license's
-- license_seats row) are exact under any concurrency, or high by the
-- deactivations still running, and a change acknowledged before the lock
-- was taken is applied. The result is that of the items taken one by one
-- in (license, installation, ordinal) order: a license's new
-- installations (none active, at least one item passing the license's
-- rules) take the seats left in installation order, an active one keeps
-- its seat unless the seats taken by those before it overfill the
-- license (with "h": always), and items of one installation share its fate, the last
-- version, metadata and domain given winning. Rows are written in
-- (license, installation) order, the order licd_touch_batch locks them
-- in: new ones inserted, those there already (reactivated or kept)
-- updated through ON CONFLICT. Every check is a comparison that cannot raise, so one item's
-- refusal never fails the others (an item that still fails the
-- statement, say a constraint, makes the caller retry the items one by
-- one; a batch is sent with "w": false, so that it never waits for one
-- license while holding others, and the held license's items wait alone). Called by validate
-- (fcgi/lib/activate.c collects the items of a process's resume threads)
-- and through licd_activate.
CREATE OR REPLACE FUNCTION licd_activate_batch(p_items jsonb)
RETURNS TABLE (ord int, code text, first_seen bigint, last_seen bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  t       timestamptz := licd_now();
  locked  uuid[];
BEGIN
  locked := licd_lock_items(p_items);
  RETURN QUERY
  WITH r AS (
    -- each item with its license's verdict: NULL when it may take a seat
    SELECT x.o, x.l, x.i, x.v, x.m, x.d, coalesce(x.h, false) AS h,
           (l.limits ->> 'installations')::numeric::bigint AS seats,
           CASE
             WHEN l.id IS NULL THEN 'INVALID_KEY'
             WHEN NOT l.id = ANY (locked) THEN 'BUSY'
             WHEN l.status <> 'active' THEN upper(l.status)
             WHEN l.expires_at IS NOT NULL AND
                  greatest(l.expires_at, l.grace_until) <= t THEN 'EXPIRED'
             WHEN l.seat_model <> 'node' THEN 'NOT_FLOATING'
             WHEN x.c AND l.domains <> '[]' AND
                  NOT licd_domain_allowed(l.domains, x.d) THEN 'DOMAIN_NOT_ALLOWED'
             WHEN x.c AND x.f IS NOT NULL AND
                  NOT coalesce(l.features ? x.f, false) THEN 'FEATURE_NOT_LICENSED'
           END AS refused
      FROM jsonb_to_recordset(p_items)
        AS x(o int, l uuid, i text, v text, m text, d text, f text, c boolean,
             h boolean)
      LEFT JOIN licenses l ON l.id = x.l
  ), p AS (
    -- the installations that may take or keep a seat, with what each
    -- writes, whether its row is there (found: NULL if not, else whether
    -- it holds a seat) and, for a limited license, the seats in use
    SELECT r.l, r.i, r.seats,
           (array_agg(r.v ORDER BY r.o DESC) FILTER (WHERE r.v IS NOT NULL))[1] AS v,
           (array_agg(r.m ORDER BY r.o DESC) FILTER (WHERE r.m IS NOT NULL))[1] AS m,
           (array_agg(r.d ORDER BY r.o DESC) FILTER (WHERE r.d IS NOT NULL))[1] AS d,
           bool_or(r.h) AS h,
           (SELECT s.status = 'active' FROM installations s
             WHERE s.license_id = r.l AND s.installation_id = r.i) AS found,
           CASE WHEN r.seats IS NOT NULL THEN
             coalesce((SELECT s.active FROM license_seats s
                        WHERE s.license_id = r.l), 0) END AS used
      FROM r
     WHERE r.refused IS NULL
     GROUP BY r.l, r.i, r.seats
  ), q AS (
    -- k: the license's new installations up to this one, in order
    SELECT p.*, count(*) FILTER (WHERE NOT p.held)
                  OVER (PARTITION BY p.l ORDER BY p.i) AS k
      FROM (SELECT p.*, coalesce(p.found, false) AS held FROM p) p
  ), g AS (
    -- the installations that take or keep a seat
    SELECT q.* FROM q
     WHERE q.seats IS NULL OR (q.held AND q.h) OR
           CASE WHEN q.held
                THEN q.used - 1 + least(q.k, greatest(q.seats - q.used, 0)) < q.seats
                ELSE q.used + q.k - 1 < q.seats END
  ), wn AS (
    -- rows not there: every writer that inserts an installation holds
    -- its license's lock (here, licd_seat, licd_seat_batch), so none
    -- appears before the commit, and a plain insert spares ON
    -- CONFLICT's speculative insertion; should one appear all the same
    -- (a statement that skipped the lock), the statement fails and the
    -- caller's retry finds the row
    INSERT INTO installations AS s (license_id, installation_id, status, version,
                                    metadata, domain, first_seen, last_seen,
                                    activated_at)
    SELECT g.l, g.i, 'active', g.v, g.m::jsonb, g.d, t, t, t
      FROM g
     WHERE g.found IS NULL
     ORDER BY g.l, g.i
    RETURNING s.license_id, s.installation_id,
              extract(epoch FROM s.first_seen)::bigint AS fs,
              extract(epoch FROM s.last_seen)::bigint AS ls,
              false AS kept
  ), wo AS (
    -- rows there: reactivated or kept
    INSERT INTO installations AS s (license_id, installation_id, status, version,
                                    metadata, domain, first_seen, last_seen,
                                    activated_at)
    SELECT g.l, g.i, 'active', g.v, g.m::jsonb, g.d, t, t, t
      FROM g
     WHERE g.found IS NOT NULL
     ORDER BY g.l, g.i
    ON CONFLICT (license_id, installation_id) DO UPDATE
       SET status = 'active', last_seen = t,
           activated_at = CASE WHEN s.status = 'active' THEN s.activated_at ELSE t END,
           deactivated_at = NULL,
           version = coalesce(EXCLUDED.version, s.version),
           metadata = coalesce(EXCLUDED.metadata, s.metadata),
           domain = coalesce(EXCLUDED.domain, s.domain)
    RETURNING s.license_id, s.installation_id,
              extract(epoch FROM s.first_seen)::bigint AS fs,
              extract(epoch FROM s.last_seen)::bigint AS ls,
              s.activated_at <> t AS kept
  ), w AS (
    SELECT * FROM wn UNION ALL SELECT * FROM wo
  )
  SELECT r.o, coalesce(r.refused, CASE WHEN w.license_id IS NULL
                                       THEN 'TOO_MANY_INSTALLATIONS'
                                       WHEN r.h AND w.kept THEN 'KEPT'
                                       ELSE 'VALID' END),
         w.fs, w.ls
    FROM r LEFT JOIN w ON r.refused IS NULL AND w.license_id = r.l
                      AND w.installation_id = r.i;
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
-- order of the sorted batch (a nested loop over it, each row found
-- through installations_id_hash, 035); should two processes'
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
     AND s.license_id::text || s.installation_id = x.l::text || x.i
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
