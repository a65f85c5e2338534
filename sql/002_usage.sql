-- 002_usage: the injectable clock, monthly usage counters with an
-- append-only log, and idempotency records for POST /api/usage.

-- One clock for everything time-dependent in SQL and for the programs,
-- which read licd_now() with the license. Production keeps offset 0;
-- tests move it to cross a month or an expiry without waiting.
CREATE TABLE licd_clock (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  offset_s  bigint NOT NULL DEFAULT 0
);
INSERT INTO licd_clock DEFAULT VALUES;

CREATE FUNCTION licd_now() RETURNS timestamptz
LANGUAGE sql STABLE AS $$
  SELECT now() + make_interval(secs => coalesce((SELECT offset_s FROM licd_clock), 0))
$$;

-- UTC calendar month of a time, as its first day.
CREATE FUNCTION licd_period(t timestamptz) RETURNS date
LANGUAGE sql IMMUTABLE AS $$
  SELECT date_trunc('month', t AT TIME ZONE 'UTC')::date
$$;

-- validate/heartbeat read the clock with the license (now_epoch).
DROP FUNCTION licd_license_state(uuid, text, int, text, jsonb);
CREATE FUNCTION licd_license_state(p_license uuid, p_iid text, p_touch_secs int,
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
         coalesce(i.last_seen < licd_now() - make_interval(secs => p_touch_secs)
                  OR (p_version IS NOT NULL AND i.version IS DISTINCT FROM p_version)
                  OR (p_metadata IS NOT NULL AND i.metadata IS DISTINCT FROM p_metadata),
                  false),
         extract(epoch FROM licd_now())::bigint
  FROM license_view v
  LEFT JOIN installations i ON i.license_id = v.id AND i.installation_id = p_iid
  WHERE v.id = p_license
$$;

CREATE OR REPLACE FUNCTION licd_touch(p_license uuid, p_iid text, p_version text,
                                      p_metadata jsonb, p_domain text)
RETURNS TABLE (first_seen bigint, last_seen bigint)
LANGUAGE sql AS $$
  UPDATE installations
     SET last_seen = licd_now(), version = coalesce(p_version, version),
         metadata = coalesce(p_metadata, metadata),
         domain = coalesce(p_domain, domain)
   WHERE license_id = p_license AND installation_id = p_iid AND status = 'active'
  RETURNING extract(epoch FROM first_seen)::bigint,
            extract(epoch FROM last_seen)::bigint
$$;

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

CREATE OR REPLACE FUNCTION licd_deactivate(p_license uuid, p_iid text)
RETURNS TABLE (license_found boolean, deactivated boolean)
LANGUAGE sql AS $$
  WITH l AS (SELECT id FROM licenses WHERE id = p_license),
       d AS (UPDATE installations i SET status = 'inactive', deactivated_at = licd_now()
               FROM l
              WHERE i.license_id = l.id AND i.installation_id = p_iid
                AND i.status = 'active'
             RETURNING 1)
  SELECT EXISTS (SELECT 1 FROM l), EXISTS (SELECT 1 FROM d)
$$;

-- Monthly counters: the number the limit is checked against.
CREATE TABLE usage_counters (
  license_id uuid NOT NULL REFERENCES licenses (id) ON DELETE CASCADE,
  feature    text NOT NULL CHECK (licd_slug_ok(feature)),
  period     date NOT NULL CHECK (extract(day FROM period) = 1),
  used       bigint NOT NULL CHECK (used >= 0),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (license_id, feature, period)
);

-- Append-only log of every accepted increment, for audit and analytics;
-- sum(quantity) per (license, feature, period) equals the counter.
CREATE TABLE usage_log (
  id              bigserial PRIMARY KEY,
  license_id      uuid NOT NULL REFERENCES licenses (id) ON DELETE CASCADE,
  installation_id text,
  feature         text NOT NULL,
  period          date NOT NULL,
  quantity        bigint NOT NULL CHECK (quantity > 0),
  at              timestamptz NOT NULL,
  idempotency_key text,
  request_id      text
);
CREATE INDEX usage_log_license ON usage_log (license_id, period, feature);
CREATE INDEX usage_log_at ON usage_log (at);

-- The first answer given for an idempotency key; retries get it again.
CREATE TABLE usage_requests (
  license_id      uuid NOT NULL REFERENCES licenses (id) ON DELETE CASCADE,
  idempotency_key text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 128),
  feature         text NOT NULL,
  quantity        bigint NOT NULL,
  accepted        boolean,
  period          date,
  used            bigint,
  lim             bigint,
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (license_id, idempotency_key)
);
CREATE INDEX usage_requests_created ON usage_requests (created_at);

-- Counts quantity against the monthly counter, in one transaction:
-- the idempotency row is claimed first (a racing retry waits on it, then
-- reads the answer), the counter moves only if it stays within p_limit
-- (NULL = unmetered), and an accepted increment is logged.
-- replayed = true when this is the stored answer to an earlier request,
-- whose feature and quantity come back so a reused key can be told apart.
CREATE FUNCTION licd_usage_add(p_license uuid, p_iid text, p_feature text,
                               p_qty bigint, p_limit bigint, p_idem text,
                               p_rid text)
RETURNS TABLE (accepted boolean, period text, used bigint, lim bigint,
               replayed boolean, req_feature text, req_quantity bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  t   timestamptz := licd_now();
  per date := licd_period(t);
  n   bigint;
  r   usage_requests%ROWTYPE;
BEGIN
  IF p_idem IS NOT NULL THEN
    INSERT INTO usage_requests (license_id, idempotency_key, feature, quantity)
    VALUES (p_license, p_idem, p_feature, p_qty)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
      SELECT * INTO r FROM usage_requests
       WHERE license_id = p_license AND idempotency_key = p_idem;
      accepted := r.accepted; period := to_char(r.period, 'YYYY-MM');
      used := r.used; lim := r.lim; replayed := true;
      req_feature := r.feature; req_quantity := r.quantity;
      RETURN NEXT; RETURN;
    END IF;
  END IF;

  IF p_limit IS NULL OR p_qty <= p_limit THEN
    INSERT INTO usage_counters AS c (license_id, feature, period, used, updated_at)
    VALUES (p_license, p_feature, per, p_qty, t)
    ON CONFLICT (license_id, feature, period) DO UPDATE
       SET used = c.used + EXCLUDED.used, updated_at = EXCLUDED.updated_at
     WHERE p_limit IS NULL OR c.used + EXCLUDED.used <= p_limit
    RETURNING c.used INTO n;
  END IF;

  IF n IS NOT NULL THEN
    INSERT INTO usage_log (license_id, installation_id, feature, period, quantity,
                           at, idempotency_key, request_id)
    VALUES (p_license, p_iid, p_feature, per, p_qty, t, p_idem, p_rid);
    accepted := true; used := n;
  ELSE
    SELECT c.used INTO n FROM usage_counters c
     WHERE c.license_id = p_license AND c.feature = p_feature AND c.period = per;
    accepted := false; used := coalesce(n, 0);
  END IF;
  period := to_char(per, 'YYYY-MM'); lim := p_limit; replayed := false;
  req_feature := p_feature; req_quantity := p_qty;

  IF p_idem IS NOT NULL THEN
    UPDATE usage_requests SET accepted = licd_usage_add.accepted, period = per,
           used = licd_usage_add.used, lim = p_limit
     WHERE license_id = p_license AND idempotency_key = p_idem;
  END IF;
  RETURN NEXT;
END
$$;

-- Counters of one license and month (GET /api/usage).
CREATE FUNCTION licd_usage_get(p_license uuid, p_period text)
RETURNS TABLE (feature text, used bigint, period text)
LANGUAGE sql STABLE AS $$
  SELECT c.feature, c.used, to_char(c.period, 'YYYY-MM')
    FROM usage_counters c
   WHERE c.license_id = p_license
     AND c.period = coalesce(to_date(p_period, 'YYYY-MM'), licd_period(licd_now()))
$$;
