-- 023_floating: floating seats, held as short leases.
--
-- A license's seat model is `node` (an installation holds its seat until
-- it is deactivated or the lifecycle job frees it as stale) or `floating`
-- (a seat is held only while its seat lease runs: seat_expires_at, renewed
-- by validate and heartbeat, taken for days by a borrow, released by a
-- check-in). Plans carry the model and its parameters; a license copies
-- them when it is issued (as it copies features and limits) and may be
-- changed on its own afterwards (licctl license update).
--
-- Exactness (docs/DESIGN.md, "Floating seats"): every write of a floating
-- seat (take, renew, borrow, check-in) is licd_seat / licd_seat_checkin,
-- which hold the license row lock and read the clock only once they hold
-- it (licd_clock_now). The writes of one license are therefore a sequence
-- in clock order, each of which sees every earlier one, and a seat is live
-- at time t when it is active and seat_expires_at > t. A take counts the
-- live seats at its own t and adds one only below the limit (+ overdraft);
-- a renewal extends only a seat live at its t; a seat that lapsed is taken
-- again only through the count. Between two writes the live count can
-- only fall (seats lapse), so it never exceeds the limit plus overdraft,
-- and no sweeper is involved.

ALTER TABLE plans
  ADD COLUMN seat_model text NOT NULL DEFAULT 'node'
    CHECK (seat_model IN ('node', 'floating')),
  ADD COLUMN seat_ttl int NOT NULL DEFAULT 900
    CHECK (seat_ttl BETWEEN 30 AND 86400),
  ADD COLUMN max_borrow_days int NOT NULL DEFAULT 0
    CHECK (max_borrow_days BETWEEN 0 AND 366),
  ADD COLUMN overdraft int NOT NULL DEFAULT 0
    CHECK (overdraft BETWEEN 0 AND 1000000);

-- The license's own copy. The defaults fill the rows that exist and are
-- dropped after: an INSERT that does not name these columns gets its
-- plan's values (licd_license_seat_defaults), whoever inserts it (licctl,
-- the billing webhooks).
ALTER TABLE licenses
  ADD COLUMN seat_model text NOT NULL DEFAULT 'node'
    CHECK (seat_model IN ('node', 'floating')),
  ADD COLUMN seat_ttl int NOT NULL DEFAULT 900
    CHECK (seat_ttl BETWEEN 30 AND 86400),
  ADD COLUMN max_borrow_days int NOT NULL DEFAULT 0
    CHECK (max_borrow_days BETWEEN 0 AND 366),
  ADD COLUMN overdraft int NOT NULL DEFAULT 0
    CHECK (overdraft BETWEEN 0 AND 1000000);
ALTER TABLE licenses
  ALTER COLUMN seat_model DROP DEFAULT,
  ALTER COLUMN seat_ttl DROP DEFAULT,
  ALTER COLUMN max_borrow_days DROP DEFAULT,
  ALTER COLUMN overdraft DROP DEFAULT;

CREATE FUNCTION licd_license_seat_defaults() RETURNS trigger
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
CREATE TRIGGER licenses_seat_defaults BEFORE INSERT ON licenses
  FOR EACH ROW EXECUTE FUNCTION licd_license_seat_defaults();

-- The seat of an installation of a floating license. seat_expires_at:
-- live while later than now (NULL: none). borrowed_until: the end of a
-- borrow. seat_overdraft: taken beyond the limit. None is indexed, so a
-- renewal is a heap-only update like a last_seen refresh.
ALTER TABLE installations
  ADD COLUMN seat_since timestamptz,
  ADD COLUMN seat_expires_at timestamptz,
  ADD COLUMN borrowed_until timestamptz,
  ADD COLUMN seat_overdraft boolean NOT NULL DEFAULT false;

-- Peak concurrent live seats per license and UTC day (billing true-ups).
CREATE TABLE seat_peaks (
  license_id uuid NOT NULL REFERENCES licenses (id) ON DELETE CASCADE,
  day        date NOT NULL,
  peak       int NOT NULL CHECK (peak >= 0),
  PRIMARY KEY (license_id, day)
);

-- Every seat granted beyond the limit, for the vendor to bill or warn.
CREATE TABLE seat_overdrafts (
  id              bigserial PRIMARY KEY,
  license_id      uuid NOT NULL REFERENCES licenses (id) ON DELETE CASCADE,
  installation_id text NOT NULL,
  at              timestamptz NOT NULL,
  seats_in_use    int NOT NULL,
  seat_limit      bigint NOT NULL
);
CREATE INDEX seat_overdrafts_license ON seat_overdrafts (license_id, at);

-- The clock as read now, not at the start of the transaction (licd_now):
-- a seat write reads it once it holds the license lock, so that the
-- writes of one license see the clock in the order they run.
CREATE FUNCTION licd_clock_now() RETURNS timestamptz
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  RETURN clock_timestamp() +
         make_interval(secs => coalesce((SELECT offset_s FROM licd_clock), 0));
END
$$;

-- Start of a UTC day as a timestamptz.
CREATE FUNCTION licd_day_start(d date) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
  SELECT d::timestamp AT TIME ZONE 'UTC'
$$;

-- Seats live at the start of day d, from the rows as they are now: right
-- only while no seat write of the license happened since d began (the
-- first write of a day, or a day after the license's last write).
CREATE FUNCTION licd_seats_at_start(p_license uuid, d date) RETURNS int
LANGUAGE sql STABLE AS $$
  SELECT count(*)::int FROM installations i
   WHERE i.license_id = p_license AND i.status = 'active'
     AND i.seat_expires_at > licd_day_start(d)
$$;

-- Called by every seat write, under the license lock, before it writes:
-- the first write of t's day records the seats live when the day began,
-- and those of the days since the license's last write that had any (no
-- write in them, so the peak of each is its start).
CREATE FUNCTION licd_seat_day(p_license uuid, t timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  d    date := (t AT TIME ZONE 'UTC')::date;
  prev date;
BEGIN
  PERFORM 1 FROM seat_peaks WHERE license_id = p_license AND day = d;
  IF FOUND THEN
    RETURN;
  END IF;
  SELECT max(day) INTO prev FROM seat_peaks
   WHERE license_id = p_license AND day < d;
  INSERT INTO seat_peaks (license_id, day, peak)
  SELECT p_license, g.day, g.n
    FROM (SELECT s::date AS day, licd_seats_at_start(p_license, s::date) AS n
            FROM generate_series(greatest(coalesce(prev + 1, d), d - 366)::timestamp,
                                 d::timestamp, interval '1 day') s) g
   WHERE g.day = d OR g.n > 0
  ON CONFLICT DO NOTHING;
END
$$;

-- Daily peaks of a license from p_from to p_to: the recorded days, and
-- after the license's last recorded day (no seat write since) each day's
-- start. Days with no live seat at all are absent.
CREATE FUNCTION licd_seat_peaks(p_license uuid, p_from date, p_to date)
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

-- Takes, renews or borrows the seat of installation p_iid.
-- p_mode: 'take' (validate: renew a live seat, else take one if the count
-- allows), 'renew' (heartbeat: only a live seat, else
-- INSTALLATION_NOT_ACTIVE), 'borrow' (hold it p_days days: renewed, or
-- taken as by 'take').
-- code: VALID, TOO_MANY_INSTALLATIONS, INSTALLATION_NOT_ACTIVE,
-- BORROW_LIMIT_EXCEEDED, NOT_FLOATING, INVALID_KEY, REVOKED, SUSPENDED,
-- EXPIRED. Epoch seconds; overdraft: the seat is beyond the limit.
CREATE FUNCTION licd_seat(p_license uuid, p_iid text, p_mode text, p_days int,
                          p_version text, p_metadata jsonb, p_domain text)
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
  borrow boolean := p_mode = 'borrow';
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
  -- licd_touch_batch locks rows, so that the two cannot deadlock.
  UPDATE installations i
     SET status = 'inactive', deactivated_at = coalesce(i.seat_expires_at, t)
   WHERE (i.license_id, i.installation_id) IN (
           SELECT x.license_id, x.installation_id FROM installations x
            WHERE x.license_id = p_license AND x.status = 'active'
              AND coalesce(x.seat_expires_at, '-infinity') <= t
            ORDER BY x.installation_id FOR UPDATE);
  SELECT count(*) INTO used FROM installations i
   WHERE i.license_id = p_license AND i.status = 'active'
     AND i.installation_id <> p_iid;
  seats := (lic.limits ->> 'installations')::bigint;
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

-- Releases the seat of p_iid at once (a borrowed one too); idempotent.
-- code: OK, NOT_FLOATING, INVALID_KEY. released: a live seat was freed.
CREATE FUNCTION licd_seat_checkin(p_license uuid, p_iid text)
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

-- A deactivation of a floating license's installation is a check-in.
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

-- Resetting a floating license's activations releases its seats as
-- check-ins do (peaks recorded first, seats marked released).
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

-- Stale-seat culling is for node-locked licenses only: a floating seat
-- ends by itself when its lease lapses.
CREATE OR REPLACE FUNCTION licd_lc_stale_installations(p_stale_secs bigint) RETURNS bigint
LANGUAGE sql AS $$
  WITH d AS (
    UPDATE installations i
       SET status = 'inactive', deactivated_at = licd_now()
      FROM licenses l
     WHERE l.id = i.license_id AND l.seat_model = 'node'
       AND i.status = 'active'
       AND i.last_seen < licd_now() - make_interval(secs => p_stale_secs)
       AND (i.offline_until IS NULL OR i.offline_until <= licd_now())
    RETURNING i.license_id
  )
  SELECT count(*) FROM d
$$;

-- Changes a license's seat model or its parameters (NULL: unchanged).
-- Switching to node ends the lapsed floating seats and makes the live
-- ones node seats; switching to floating leaves the node seats without a
-- seat lease: each takes one on its next validate.
CREATE FUNCTION licd_license_seats_set(p_license uuid, p_model text, p_ttl int,
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
  END IF;
  PERFORM licd_audit(p_actor, 'license.seats', 'license', p_license::text, NULL,
                     p_rid, jsonb_build_object('seat_model', p_model,
                       'seat_ttl', p_ttl, 'max_borrow_days', p_borrow,
                       'overdraft', p_overdraft));
  RETURN 'ok';
END
$$;

-- licd_lookup and licd_lookup_batch (013, 014) gain the seat: seat_ttl
-- (NULL for a node-locked license, which reads nothing else new),
-- seat_expires, borrowed_until and seat_overdraft of the installation.
-- Both keep their other columns in order; n stays the batch's last.
DROP FUNCTION licd_lookup(uuid, text, int, text, jsonb);
CREATE FUNCTION licd_lookup(p_license uuid, p_iid text, p_touch_secs int,
                            p_version text, p_metadata jsonb)
RETURNS TABLE (id uuid, customer_id uuid, plan_code text, status text,
               expires_epoch bigint, grace_epoch bigint, features text,
               limits text, domains text, inst_status text,
               first_seen bigint, last_seen bigint, now_epoch bigint,
               inst_domain text, needs_touch boolean, license_key text,
               seat_ttl int, seat_expires bigint, borrowed_until bigint,
               seat_overdraft boolean)
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
         l.license_key,
         CASE WHEN l.seat_model = 'floating' THEN l.seat_ttl END,
         extract(epoch FROM i.seat_expires_at)::bigint,
         extract(epoch FROM i.borrowed_until)::bigint, i.seat_overdraft
    FROM licenses l
   CROSS JOIN (SELECT licd_now() AS t OFFSET 0) c
    LEFT JOIN installations i ON i.license_id = l.id AND i.installation_id = p_iid
   WHERE l.id = p_license;
END
$$;

DROP FUNCTION licd_lookup_batch(jsonb);
CREATE FUNCTION licd_lookup_batch(p_items jsonb)
RETURNS TABLE (id uuid, customer_id uuid, plan_code text, status text,
               expires_epoch bigint, grace_epoch bigint, features text,
               limits text, domains text, inst_status text,
               first_seen bigint, last_seen bigint, now_epoch bigint,
               inst_domain text, needs_touch boolean, license_key text,
               seat_ttl int, seat_expires bigint, borrowed_until bigint,
               seat_overdraft boolean, n int)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  SELECT r.*, x.n
    FROM jsonb_to_recordset(p_items) AS x(n int, l uuid, i text, s int,
                                          v text, m text)
   CROSS JOIN (SELECT licd_now() AS t OFFSET 0) c
   CROSS JOIN LATERAL (
    SELECT l.id, l.customer_id, l.plan_code, l.status,
           extract(epoch FROM l.expires_at)::bigint,
           extract(epoch FROM l.grace_until)::bigint,
           l.features::text, l.limits::text, l.domains::text, i.status,
           extract(epoch FROM i.first_seen)::bigint,
           extract(epoch FROM i.last_seen)::bigint,
           extract(epoch FROM c.t)::bigint, i.domain,
           coalesce(l.status = 'active' AND i.status = 'active' AND
                    (i.last_seen < c.t - make_interval(secs => x.s)
                     OR (x.v IS NOT NULL AND i.version IS DISTINCT FROM x.v)
                     OR (x.m IS NOT NULL AND
                         i.metadata IS DISTINCT FROM x.m::jsonb)),
                    false),
           l.license_key,
           CASE WHEN l.seat_model = 'floating' THEN l.seat_ttl END,
           extract(epoch FROM i.seat_expires_at)::bigint,
           extract(epoch FROM i.borrowed_until)::bigint, i.seat_overdraft
      FROM licenses l
      LEFT JOIN installations i ON i.license_id = l.id
                               AND i.installation_id = x.i
     WHERE l.id = x.l
    OFFSET 0) r;
END
$$;

-- What operators see (license_admin_view, licd_admin_license): the seat
-- model and, for a floating license, each installation's seat state
-- (live, borrowed, lapsed, released), the counts and the last 31 days'
-- peaks.
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
         'active_installations', (SELECT count(*) FROM installations i
                                   WHERE i.license_id = l.id AND i.status = 'active'
                                     AND (l.seat_model = 'node' OR
                                          i.seat_expires_at > licd_now())),
         'seat_model', l.seat_model, 'seat_ttl', l.seat_ttl,
         'max_borrow_days', l.max_borrow_days, 'overdraft', l.overdraft
       )::text AS doc
FROM licenses l JOIN customers c ON c.id = l.customer_id;

CREATE FUNCTION licd_seat_state(i installations) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT CASE
    WHEN i.status = 'active' AND i.seat_expires_at > licd_now() THEN
      CASE WHEN i.borrowed_until > licd_now() THEN 'borrowed' ELSE 'live' END
    WHEN i.seat_expires_at <= licd_now() THEN 'lapsed'
    ELSE 'released' END
$$;

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
      'limit', (l.limits ->> 'installations')::bigint,
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
