-- functions/50_floating.sql: floating seats, held as short leases.
--
-- A license's seat model is 'node' (an installation holds its seat until it
-- is deactivated or the lifecycle job frees it as stale) or 'floating' (a
-- seat is held only while its seat lease runs: seat_expires_at, renewed by
-- validate and heartbeat, taken for days by a borrow, released by a
-- check-in). Plans carry the model and its parameters; a license copies
-- them when it is issued (licd_license_seat_defaults) and may be changed on
-- its own afterwards (licd_license_seats_set).
--
-- Exactness (docs/DESIGN.md, "Floating seats"): every write of a floating
-- seat (take, renew, borrow, check-in) is licd_seat or licd_seat_checkin,
-- which hold the license row lock and read the clock only once they hold it
-- (licd_clock_now). The writes of one license are therefore a sequence in
-- clock order, each of which sees every earlier one, and a seat is live at
-- time t when it is active and seat_expires_at > t. A take counts the live
-- seats at its own t and adds one only below the limit (+ overdraft); a
-- renewal extends only a seat live at its t; a seat that lapsed is taken
-- again only through the count. Between two writes the live count can only
-- fall (seats lapse), so it never exceeds the limit plus overdraft, and no
-- sweeper is involved.

-- Trigger function of licenses_seat_defaults (99_triggers.sql, BEFORE
-- INSERT ON licenses): a license whose insert does not name seat_model,
-- seat_ttl, max_borrow_days or overdraft gets its plan's, whoever inserts
-- it (licctl, the admin API, the billing webhooks).
CREATE OR REPLACE FUNCTION licd_license_seat_defaults() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  p plans%ROWTYPE;
BEGIN
  SELECT * INTO p FROM plans WHERE code = NEW.plan_code;
  NEW.seat_model := coalesce(NEW.seat_model, p.seat_model, 'node');
  NEW.seat_ttl := coalesce(NEW.seat_ttl, p.seat_ttl, 900);
  NEW.max_borrow_days := coalesce(NEW.max_borrow_days, p.max_borrow_days, 0);
  NEW.overdraft := coalesce(NEW.overdraft, p.overdraft, 0);
  RETURN NEW;
END
$$;

-- Seats of license p_license live at the start of UTC day d, counted from
-- the rows as they are now: right only while no seat write of the license
-- happened since d began (the first write of a day, or a day after the
-- license's last write). Called by licd_seat_day and licd_seat_peaks.
CREATE OR REPLACE FUNCTION licd_seats_at_start(p_license uuid, d date) RETURNS int
LANGUAGE sql STABLE AS $$
  SELECT count(*)::int FROM installations i
   WHERE i.license_id = p_license AND i.status = 'active'
     AND i.seat_since IS NOT NULL AND i.seat_expires_at > licd_day_start(d)
$$;

-- Called by every seat write, under the license lock, before it writes
-- (a renewal of a live seat may write first: it changes no count below):
-- the first write of t's UTC day records the seats live when the day began
-- in seat_peaks, and so does each day since the license's last write that
-- had any (no write in them, so the peak of each is its start). For each
-- license of p_licenses, in one statement (a seat batch's licenses).
-- Returns nothing. Called by licd_seat_day and licd_seat_batch.
CREATE OR REPLACE FUNCTION licd_seat_days(p_licenses uuid[], t timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  d date := (t AT TIME ZONE 'UTC')::date;
BEGIN
  INSERT INTO seat_peaks (license_id, day, peak)
  SELECT x.l, g.day, g.n
    FROM (SELECT DISTINCT u.l FROM unnest(p_licenses) AS u(l)) x
   CROSS JOIN LATERAL (SELECT max(p.day) AS prev FROM seat_peaks p
                        WHERE p.license_id = x.l AND p.day < d) pr
   CROSS JOIN LATERAL (
     SELECT s::date AS day, licd_seats_at_start(x.l, s::date) AS n
       FROM generate_series(greatest(coalesce(pr.prev + 1, d), d - 366)::timestamp,
                            d::timestamp, interval '1 day') s) g
   WHERE NOT EXISTS (SELECT 1 FROM seat_peaks p
                      WHERE p.license_id = x.l AND p.day = d)
     AND (g.day = d OR g.n > 0)
  ON CONFLICT DO NOTHING;
END
$$;

-- licd_seat_days for one license. Called by licd_seat, licd_seat_checkin,
-- licd_reset_activations.
CREATE OR REPLACE FUNCTION licd_seat_day(p_license uuid, t timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM licd_seat_days(ARRAY[p_license], t);
END
$$;

-- Daily peaks of concurrent live seats of license p_license from p_from to
-- p_to: the recorded days, and after the license's last recorded day (no
-- seat write since) each day's start. Days with no live seat are absent.
-- Reads only. Called by licd_admin_license and licctl usage.
CREATE OR REPLACE FUNCTION licd_seat_peaks(p_license uuid, p_from date, p_to date)
RETURNS TABLE (day date, peak int)
LANGUAGE sql STABLE AS $$
  WITH prev AS (SELECT max(day) AS d FROM seat_peaks WHERE license_id = p_license)
  SELECT s.day, s.peak FROM seat_peaks s
   WHERE s.license_id = p_license AND s.day BETWEEN p_from AND p_to AND s.peak > 0
  UNION ALL
  SELECT g.day, g.n
    FROM prev, LATERAL (
      SELECT s::date AS day, licd_seats_at_start(p_license, s::date) AS n
        FROM generate_series(greatest(prev.d + 1, p_from)::timestamp,
                             least(p_to, (licd_now() AT TIME ZONE 'UTC')::date)::timestamp,
                             interval '1 day') s) g
   WHERE prev.d IS NOT NULL AND g.n > 0
  ORDER BY 1
$$;

-- Takes, renews or borrows the seat of installation p_iid of floating
-- license p_license, recording version, metadata and domain when given.
-- p_mode: 'take' (validate: renew a live seat, else take one if the count
-- allows), 'renew' (heartbeat: only a live seat, else
-- INSTALLATION_NOT_ACTIVE), 'borrow' (POST /api/borrow: hold it p_days
-- days: renewed, or taken as by 'take'), 'offline' (an operator's offline
-- lease: a borrow without the domain rule). 'take' and 'borrow' apply the
-- license's domain restrictions to p_domain under the lock
-- (licd_domain_allowed), and 'take' requires feature p_feature (when not
-- NULL) to be licensed: the caller checked both on the row it read
-- before, which a change acknowledged meanwhile may have made stale.
-- Locks the license row first, then reads the clock (licd_clock_now); a
-- take first marks the license's lapsed seats inactive (rows locked in
-- key order). Returns one row: code VALID, TOO_MANY_INSTALLATIONS,
-- INSTALLATION_NOT_ACTIVE, BORROW_LIMIT_EXCEEDED, NOT_FLOATING,
-- DOMAIN_NOT_ALLOWED, FEATURE_NOT_LICENSED, INVALID_KEY, REVOKED, SUSPENDED or EXPIRED; first_seen,
-- last_seen, seat_expires, borrowed_until in epoch seconds; overdraft (the
-- seat is beyond the limit); the license's max_borrow_days. Called by
-- licd_seat_batch (validate's 'take', heartbeat's 'renew'), validate
-- (POST /api/borrow 'borrow'), the admin API's and licctl's offline lease
-- ('offline', without p_feature), on a resume thread where a request
-- writes.
CREATE OR REPLACE FUNCTION licd_seat(p_license uuid, p_iid text, p_mode text, p_days int,
                                     p_version text, p_metadata jsonb, p_domain text,
                                     p_feature text DEFAULT NULL)
RETURNS TABLE (code text, first_seen bigint, last_seen bigint,
               seat_expires bigint, borrowed_until bigint, overdraft boolean,
               max_borrow_days int)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  lic    licenses%ROWTYPE;
  inst   installations%ROWTYPE;
  t      timestamptz;
  live   boolean;
  seats  bigint;
  used   bigint;
  over   boolean;
  span   interval;
  borrow boolean := p_mode IN ('borrow', 'offline');
BEGIN
  SELECT * INTO lic FROM licenses l WHERE l.id = p_license FOR UPDATE;
  IF NOT FOUND THEN
    code := 'INVALID_KEY'; RETURN NEXT; RETURN;
  END IF;
  t := licd_clock_now();
  max_borrow_days := lic.max_borrow_days;
  IF lic.status <> 'active' THEN
    code := upper(lic.status); RETURN NEXT; RETURN;
  END IF;
  IF lic.expires_at IS NOT NULL AND
     greatest(lic.expires_at, lic.grace_until) <= t THEN
    code := 'EXPIRED'; RETURN NEXT; RETURN;
  END IF;
  IF lic.seat_model <> 'floating' THEN
    code := 'NOT_FLOATING'; RETURN NEXT; RETURN;
  END IF;
  IF p_mode IN ('take', 'borrow') AND NOT licd_domain_allowed(lic.domains, p_domain) THEN
    code := 'DOMAIN_NOT_ALLOWED'; RETURN NEXT; RETURN;
  END IF;
  IF p_mode = 'take' AND p_feature IS NOT NULL AND
     NOT (jsonb_typeof(lic.features) = 'array' AND lic.features ? p_feature) THEN
    code := 'FEATURE_NOT_LICENSED'; RETURN NEXT; RETURN;
  END IF;
  IF borrow AND (p_days IS NULL OR p_days < 1 OR p_days > lic.max_borrow_days) THEN
    code := 'BORROW_LIMIT_EXCEEDED'; RETURN NEXT; RETURN;
  END IF;
  PERFORM licd_seat_day(p_license, t);
  SELECT * INTO inst FROM installations i
   WHERE i.license_id = p_license AND i.installation_id = p_iid;
  live := FOUND AND inst.status = 'active' AND inst.seat_expires_at > t;
  IF p_mode = 'renew' AND NOT live THEN
    code := 'INSTALLATION_NOT_ACTIVE'; RETURN NEXT; RETURN;
  END IF;
  span := CASE WHEN borrow THEN make_interval(days => p_days)
               ELSE make_interval(secs => lic.seat_ttl) END;
  IF live THEN
    -- Never shortens it (a borrowed seat stays borrowed).
    UPDATE installations i
       SET seat_expires_at = greatest(i.seat_expires_at, t + span),
           borrowed_until = CASE WHEN borrow
                                 THEN greatest(i.borrowed_until, t + span)
                                 ELSE i.borrowed_until END,
           last_seen = greatest(i.last_seen, t),
           version = coalesce(p_version, i.version),
           metadata = coalesce(p_metadata, i.metadata),
           domain = coalesce(p_domain, i.domain)
     WHERE i.license_id = p_license AND i.installation_id = p_iid
    RETURNING 'VALID', extract(epoch FROM i.first_seen)::bigint,
              extract(epoch FROM i.last_seen)::bigint,
              extract(epoch FROM i.seat_expires_at)::bigint,
              extract(epoch FROM i.borrowed_until)::bigint, i.seat_overdraft
         INTO code, first_seen, last_seen, seat_expires, borrowed_until,
              overdraft;
    RETURN NEXT;
    RETURN;
  END IF;
  -- Lapsed seats stop being active, so that the count below reads only
  -- live ones and the license's active rows stay few. In key order, as
  -- licd_touch_batch locks rows, so that the two cannot deadlock. Both
  -- read the license's active installations by installations_seated:
  -- each of a floating license's has a seat expiry
  -- (licd_license_seats_set), and so a seat_since (034).
  UPDATE installations i
     SET status = 'inactive', deactivated_at = i.seat_expires_at
   WHERE (i.license_id, i.installation_id) IN (
           SELECT x.license_id, x.installation_id FROM installations x
            WHERE x.license_id = p_license AND x.status = 'active'
              AND x.seat_since IS NOT NULL AND x.seat_expires_at <= t
            ORDER BY x.installation_id FOR UPDATE);
  SELECT count(*) INTO used FROM installations i
   WHERE i.license_id = p_license AND i.status = 'active'
     AND i.seat_since IS NOT NULL AND i.seat_expires_at > t
     AND i.installation_id <> p_iid;
  seats := (lic.limits ->> 'installations')::numeric::bigint;
  IF seats IS NOT NULL AND used >= seats + lic.overdraft THEN
    code := 'TOO_MANY_INSTALLATIONS'; RETURN NEXT; RETURN;
  END IF;
  over := seats IS NOT NULL AND used >= seats;
  INSERT INTO installations AS i (license_id, installation_id, status, version,
                                  metadata, domain, first_seen, last_seen,
                                  activated_at, seat_since, seat_expires_at,
                                  borrowed_until, seat_overdraft)
  VALUES (p_license, p_iid, 'active', p_version, p_metadata, p_domain, t, t, t,
          t, t + span, CASE WHEN borrow THEN t + span END, over)
  ON CONFLICT (license_id, installation_id) DO UPDATE
     SET status = 'active', last_seen = greatest(i.last_seen, t),
         activated_at = t, deactivated_at = NULL, seat_since = t,
         seat_expires_at = t + span,
         borrowed_until = CASE WHEN borrow THEN t + span END,
         seat_overdraft = over,
         version = coalesce(EXCLUDED.version, i.version),
         metadata = coalesce(EXCLUDED.metadata, i.metadata),
         domain = coalesce(EXCLUDED.domain, i.domain)
  RETURNING 'VALID', extract(epoch FROM i.first_seen)::bigint,
            extract(epoch FROM i.last_seen)::bigint,
            extract(epoch FROM i.seat_expires_at)::bigint,
            extract(epoch FROM i.borrowed_until)::bigint, i.seat_overdraft
       INTO code, first_seen, last_seen, seat_expires, borrowed_until,
            overdraft;
  IF over THEN
    INSERT INTO seat_overdrafts (license_id, installation_id, at, seats_in_use,
                                 seat_limit)
    VALUES (p_license, p_iid, t, used + 1, seats);
  END IF;
  INSERT INTO seat_peaks AS s (license_id, day, peak)
  VALUES (p_license, (t AT TIME ZONE 'UTC')::date, used + 1)
  ON CONFLICT (license_id, day) DO UPDATE SET peak = greatest(s.peak, EXCLUDED.peak);
  RETURN NEXT;
END
$$;

-- The floating seat writes of validate and heartbeat calls that arrived
-- together, in one transaction (group commit, as licd_activate_batch):
-- each item is licd_seat(l, i, s, NULL, v, m, d, f) with the answer it would
-- have alone. p_items: [{"o": ordinal, "l": license, "i": installation,
-- "s": "take" or "renew", "v", "m" (metadata as JSON text), "d", "f": or
-- null}]. The batch locks its licenses first, in id order (so two batches
-- cannot deadlock), then reads the clock once. Items marked "w": false
-- (a batch's) lock only the licenses free now; the others' items answer
-- BUSY at once and then wait alone. An item of a license that does not
-- exist is licd_seat's INVALID_KEY. The renewals of live seats due at t
-- (less than three quarters of seat_ttl left), the common case, are one
-- UPDATE, with licd_seat's checks and writes for a live seat (license
-- active, not expired, floating; a take's domain and feature rules; the
-- seat extended to t + seat_ttl, with last_seen, version, metadata and
-- domain), so each answers as licd_seat would, and without the seat
-- trigger (the move it would let pass unnotified); every other item (a
-- seat to take, a seat not due, a refusal, an installation named twice)
-- is licd_seat's, after them, in license order: a renewal
-- changes no live count, so the order gives the same answers. Returns one
-- row per item: ord and licd_seat's columns (code BUSY: not run). Called
-- by validate and heartbeat (fcgi/lib/seat.c).
CREATE OR REPLACE FUNCTION licd_seat_batch(p_items jsonb)
RETURNS TABLE (ord int, code text, first_seen bigint, last_seen bigint,
               seat_expires bigint, borrowed_until bigint, overdraft boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  it     record;
  locked uuid[];
  t      timestamptz;
  fast   int[] := '{}';
  lics   uuid[] := '{}';
BEGIN
  locked := licd_lock_items(p_items);
  t := licd_clock_now();
  -- The renewals first: a renewal changes no live count, so
  -- licd_seat_days reads the same counts after it as before. Only seats
  -- due at t: each moves forward by more than a quarter of seat_ttl,
  -- which licd_cache_seat_changed lets pass unnotified, so the seat
  -- trigger is skipped for them (licd.seat_renewal, 99_triggers.sql),
  -- for this statement only.
  PERFORM set_config('licd.seat_renewal', 'on', true);
  FOR it IN
    UPDATE installations i
       SET seat_expires_at = greatest(i.seat_expires_at,
                                      t + make_interval(secs => l.seat_ttl)),
           last_seen = greatest(i.last_seen, t),
           version = coalesce(x.v, i.version),
           metadata = coalesce(x.m::jsonb, i.metadata),
           domain = coalesce(x.d, i.domain)
      FROM (SELECT y.*, count(*) OVER (PARTITION BY y.l, y.i) AS n
              FROM jsonb_to_recordset(p_items)
                AS y(o int, l uuid, i text, s text, v text, m text, d text,
                     f text)) x,
           licenses l
     WHERE l.id = x.l AND l.id = ANY (locked) AND x.n = 1
       AND x.s IN ('take', 'renew')
       AND l.status = 'active' AND l.seat_model = 'floating'
       AND NOT (l.expires_at IS NOT NULL AND
                greatest(l.expires_at, l.grace_until) <= t)
       AND (x.s = 'renew' OR
            ((l.domains = '[]' OR licd_domain_allowed(l.domains, x.d)) AND
             (x.f IS NULL OR (jsonb_typeof(l.features) = 'array' AND
                              l.features ? x.f))))
       AND i.license_id = x.l AND i.installation_id = x.i
       AND i.status = 'active' AND i.seat_expires_at > t
       AND t + make_interval(secs => l.seat_ttl) - i.seat_expires_at >
           make_interval(secs => l.seat_ttl / 4)
    RETURNING x.o, x.l, extract(epoch FROM i.first_seen)::bigint AS f,
              extract(epoch FROM i.last_seen)::bigint AS s,
              extract(epoch FROM i.seat_expires_at)::bigint AS e,
              extract(epoch FROM i.borrowed_until)::bigint AS b,
              i.seat_overdraft AS od
  LOOP
    fast := fast || it.o;
    lics := lics || it.l;
    ord := it.o; code := 'VALID'; first_seen := it.f; last_seen := it.s;
    seat_expires := it.e; borrowed_until := it.b; overdraft := it.od;
    RETURN NEXT;
  END LOOP;
  PERFORM set_config('licd.seat_renewal', 'off', true);
  -- Mostly not a day's first write: only the licenses that have no
  -- seat_peaks row for t's day yet.
  lics := ARRAY(SELECT DISTINCT u.l FROM unnest(lics) AS u(l)
                 WHERE NOT EXISTS (SELECT 1 FROM seat_peaks p
                                    WHERE p.license_id = u.l
                                      AND p.day = (t AT TIME ZONE 'UTC')::date));
  IF cardinality(lics) > 0 THEN
    PERFORM licd_seat_days(lics, t);
  END IF;
  IF cardinality(fast) = jsonb_array_length(p_items) THEN
    RETURN;
  END IF;
  FOR it IN
    SELECT x.* FROM jsonb_to_recordset(p_items)
      AS x(o int, l uuid, i text, s text, v text, m text, d text, f text)
     WHERE NOT x.o = ANY (fast)
     ORDER BY x.l, x.i, x.o
  LOOP
    ord := it.o;
    IF NOT it.l = ANY (locked) AND
       EXISTS (SELECT 1 FROM licenses l WHERE l.id = it.l) THEN
      code := 'BUSY'; first_seen := NULL; last_seen := NULL;
      seat_expires := NULL; borrowed_until := NULL; overdraft := NULL;
    ELSE
      SELECT r.code, r.first_seen, r.last_seen, r.seat_expires,
             r.borrowed_until, r.overdraft
        INTO code, first_seen, last_seen, seat_expires, borrowed_until,
             overdraft
        FROM licd_seat(it.l, it.i, it.s, NULL, it.v, it.m::jsonb, it.d,
                       it.f) r;
    END IF;
    RETURN NEXT;
  END LOOP;
END
$$;

-- Releases the seat of installation p_iid of license p_license at once (a
-- borrowed one too); idempotent. Locks the license row, then reads the
-- clock. Returns code OK, NOT_FLOATING or INVALID_KEY, and released (a live
-- seat was freed). Called by validate (POST /api/checkin) and
-- licd_deactivate.
CREATE OR REPLACE FUNCTION licd_seat_checkin(p_license uuid, p_iid text)
RETURNS TABLE (code text, released boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  lic licenses%ROWTYPE;
  t   timestamptz;
BEGIN
  SELECT * INTO lic FROM licenses l WHERE l.id = p_license FOR UPDATE;
  IF NOT FOUND THEN
    code := 'INVALID_KEY'; released := false; RETURN NEXT; RETURN;
  END IF;
  t := licd_clock_now();
  IF lic.seat_model <> 'floating' THEN
    code := 'NOT_FLOATING'; released := false; RETURN NEXT; RETURN;
  END IF;
  PERFORM licd_seat_day(p_license, t);
  released := EXISTS (SELECT 1 FROM installations i
                       WHERE i.license_id = p_license AND i.installation_id = p_iid
                         AND i.status = 'active' AND i.seat_expires_at > t);
  -- seat_expires_at NULL: released, not lapsed (licd_admin_license).
  UPDATE installations i
     SET status = 'inactive', deactivated_at = t, seat_expires_at = NULL,
         borrowed_until = NULL
   WHERE i.license_id = p_license AND i.installation_id = p_iid
     AND (i.status = 'active' OR i.seat_expires_at > t);
  code := 'OK';
  RETURN NEXT;
END
$$;

-- Changes license p_license's seat model or its parameters (NULL:
-- unchanged) and audits it as p_actor. Switching to node ends the lapsed
-- floating seats and makes the live ones node seats; switching to
-- floating ends the node seats (inactive, as a lapsed seat: every active
-- installation of a floating license holds a seat expiry, which the index
-- installations_seated relies on): each takes a seat on its next
-- validate. Locks the license row. Returns 'ok' or 'not_found'.
-- Called by licctl license update.
CREATE OR REPLACE FUNCTION licd_license_seats_set(p_license uuid, p_model text, p_ttl int,
                                                  p_borrow int, p_overdraft int,
                                                  p_actor text, p_rid text)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  lic licenses%ROWTYPE;
  t   timestamptz;
BEGIN
  SELECT * INTO lic FROM licenses WHERE id = p_license FOR UPDATE;
  IF NOT FOUND THEN
    RETURN 'not_found';
  END IF;
  t := licd_clock_now();
  UPDATE licenses
     SET seat_model = coalesce(p_model, seat_model),
         seat_ttl = coalesce(p_ttl, seat_ttl),
         max_borrow_days = coalesce(p_borrow, max_borrow_days),
         overdraft = coalesce(p_overdraft, overdraft), updated_at = t
   WHERE id = p_license;
  IF lic.seat_model = 'floating' AND p_model = 'node' THEN
    UPDATE installations
       SET status = CASE WHEN seat_expires_at > t THEN status ELSE 'inactive' END,
           deactivated_at = CASE WHEN seat_expires_at > t THEN deactivated_at
                                 ELSE coalesce(seat_expires_at, t) END,
           seat_expires_at = NULL, borrowed_until = NULL
     WHERE license_id = p_license AND status = 'active';
  ELSIF lic.seat_model = 'node' AND p_model = 'floating' THEN
    UPDATE installations
       SET status = 'inactive', deactivated_at = t
     WHERE license_id = p_license AND status = 'active';
  END IF;
  PERFORM licd_audit(p_actor, 'license.seats', 'license', p_license::text, NULL,
                     p_rid, jsonb_build_object('seat_model', p_model,
                       'seat_ttl', p_ttl, 'max_borrow_days', p_borrow,
                       'overdraft', p_overdraft));
  RETURN 'ok';
END
$$;

-- An installation's seat as operators see it: 'live', 'borrowed', 'lapsed'
-- or 'released' (seat_expires_at NULL after a check-in). Called by
-- licd_admin_license.
CREATE OR REPLACE FUNCTION licd_seat_state(i installations) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT CASE
    WHEN i.status = 'active' AND i.seat_expires_at > licd_now() THEN
      CASE WHEN i.borrowed_until > licd_now() THEN 'borrowed' ELSE 'live' END
    WHEN i.seat_expires_at <= licd_now() THEN 'lapsed'
    ELSE 'released' END
$$;

-- The installations of license l that hold a seat: a node-locked license's
-- active installations (its license_seats row, kept by the installations'
-- triggers), a floating license's live seats (live or borrowed:
-- licd_seat_state, read by index installations_seated). The one
-- definition of active_installations for the license document
-- (license_admin_view: detail, licctl) and the console's lists
-- (licd_admin_license_row).
CREATE OR REPLACE FUNCTION licd_active_installations(l licenses) RETURNS bigint
LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN l.seat_model = 'node' THEN
           coalesce((SELECT s.active FROM license_seats s
                      WHERE s.license_id = l.id), 0)
         ELSE (SELECT count(*) FROM installations i
                WHERE i.license_id = l.id AND i.status = 'active'
                  AND i.seat_since IS NOT NULL
                  AND i.seat_expires_at > licd_now()) END
$$;
