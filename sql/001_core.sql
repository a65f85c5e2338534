-- 001_core: customers, plans, licenses, installations, audit log, and the
-- functions validate/heartbeat/deactivate call (one round trip each).
-- Invariants live in constraints so no caller can write a bad row.

CREATE FUNCTION licd_slug_ok(s text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT s ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'
$$;

-- features: array of slugs
CREATE FUNCTION licd_features_ok(f jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT jsonb_typeof(f) = 'array' AND NOT EXISTS (
    SELECT 1 FROM jsonb_array_elements(f) e
    WHERE jsonb_typeof(e) <> 'string' OR NOT licd_slug_ok(e #>> '{}'))
$$;

-- limits: object of slug -> non-negative integer
CREATE FUNCTION licd_limits_ok(l jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT jsonb_typeof(l) = 'object' AND NOT EXISTS (
    SELECT 1 FROM jsonb_each(l) e
    WHERE NOT licd_slug_ok(e.key) OR jsonb_typeof(e.value) <> 'number'
       OR (e.value::text)::numeric <> trunc((e.value::text)::numeric)
       OR (e.value::text)::numeric < 0
       OR (e.value::text)::numeric > 9223372036854775807)
$$;

-- domain restrictions: array of lower-case host patterns, exact or "*.x"
CREATE FUNCTION licd_domains_ok(d jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT jsonb_typeof(d) = 'array' AND NOT EXISTS (
    SELECT 1 FROM jsonb_array_elements(d) e
    WHERE jsonb_typeof(e) <> 'string'
       OR NOT (e #>> '{}') ~ '^(\*\.)?[a-z0-9-]{1,63}(\.[a-z0-9-]{1,63})*$'
       OR length(e #>> '{}') > 253)
$$;

CREATE TABLE customers (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email       text NOT NULL CHECK (email ~ '^[^@\s]+@[^@\s]+$' AND length(email) <= 254),
  name        text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX customers_email_key ON customers (lower(email));

CREATE TABLE plans (
  code             text PRIMARY KEY CHECK (licd_slug_ok(code)),
  name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  features         jsonb NOT NULL DEFAULT '[]' CHECK (licd_features_ok(features)),
  limits           jsonb NOT NULL DEFAULT '{}' CHECK (licd_limits_ok(limits)),
  billing_interval text CHECK (billing_interval IN ('month', 'year', 'once')),
  price_cents      bigint CHECK (price_cents >= 0),
  currency         text CHECK (currency ~ '^[a-z]{3}$'),
  stripe_price_id  text UNIQUE,
  is_addon         boolean NOT NULL DEFAULT false,
  active           boolean NOT NULL DEFAULT true,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE licenses (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  customer_id    uuid NOT NULL REFERENCES customers (id),
  plan_code      text NOT NULL REFERENCES plans (code),
  status         text NOT NULL DEFAULT 'active'
                 CHECK (status IN ('active', 'suspended', 'revoked', 'expired')),
  features       jsonb NOT NULL DEFAULT '[]' CHECK (licd_features_ok(features)),
  limits         jsonb NOT NULL DEFAULT '{}' CHECK (licd_limits_ok(limits)),
  domains        jsonb NOT NULL DEFAULT '[]' CHECK (licd_domains_ok(domains)),
  issued_at      timestamptz NOT NULL DEFAULT now(),
  expires_at     timestamptz,                 -- NULL: perpetual
  grace_until    timestamptz,                 -- payment failed: valid until then
  suspended_at   timestamptz,
  revoked_at     timestamptz,
  status_reason  text CHECK (length(status_reason) <= 500),
  key_kid        text,
  license_key    text,                        -- as issued, for licctl/checkout
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX licenses_customer ON licenses (customer_id);
CREATE INDEX licenses_expiry ON licenses (expires_at) WHERE status = 'active';

CREATE TABLE installations (
  license_id      uuid NOT NULL REFERENCES licenses (id) ON DELETE CASCADE,
  installation_id text NOT NULL CHECK (installation_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
  status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
  first_seen      timestamptz NOT NULL DEFAULT now(),
  last_seen       timestamptz NOT NULL DEFAULT now(),
  activated_at    timestamptz NOT NULL DEFAULT now(),
  deactivated_at  timestamptz,
  version         text CHECK (length(version) <= 64),
  domain          text CHECK (length(domain) <= 253),
  metadata        jsonb CHECK (metadata IS NULL OR
                    (jsonb_typeof(metadata) = 'object' AND length(metadata::text) <= 4096)),
  PRIMARY KEY (license_id, installation_id)
);
CREATE INDEX installations_active ON installations (license_id) WHERE status = 'active';
CREATE INDEX installations_stale ON installations (last_seen) WHERE status = 'active';

CREATE TABLE audit_log (
  id          bigserial PRIMARY KEY,
  at          timestamptz NOT NULL DEFAULT now(),
  actor       text NOT NULL,
  action      text NOT NULL,
  target_type text NOT NULL,
  target_id   text,
  reason      text,
  request_id  text,
  details     jsonb
);
CREATE INDEX audit_log_target ON audit_log (target_id, at);

-- The columns the C side reads for a license (lic_from_row), in order.
CREATE VIEW license_view AS
SELECT l.id, l.customer_id, l.plan_code, l.status,
       extract(epoch FROM l.expires_at)::bigint  AS expires_epoch,
       extract(epoch FROM l.grace_until)::bigint AS grace_epoch,
       l.features::text AS features, l.limits::text AS limits,
       l.domains::text AS domains
FROM licenses l;

-- A license and this installation's row in one read. needs_touch says
-- whether last_seen is older than p_touch_secs or the client reports a
-- new version/metadata: only then does the caller write.
CREATE FUNCTION licd_license_state(p_license uuid, p_iid text, p_touch_secs int,
                                   p_version text, p_metadata jsonb)
RETURNS TABLE (id uuid, customer_id uuid, plan_code text, status text,
               expires_epoch bigint, grace_epoch bigint, features text,
               limits text, domains text, inst_status text,
               first_seen bigint, last_seen bigint, needs_touch boolean)
LANGUAGE sql STABLE AS $$
  SELECT v.*, i.status,
         extract(epoch FROM i.first_seen)::bigint,
         extract(epoch FROM i.last_seen)::bigint,
         coalesce(i.last_seen < now() - make_interval(secs => p_touch_secs)
                  OR (p_version IS NOT NULL AND i.version IS DISTINCT FROM p_version)
                  OR (p_metadata IS NOT NULL AND i.metadata IS DISTINCT FROM p_metadata),
                  false)
  FROM license_view v
  LEFT JOIN installations i ON i.license_id = v.id AND i.installation_id = p_iid
  WHERE v.id = p_license
$$;

-- Records that an active installation was seen; no row if it is not active.
CREATE FUNCTION licd_touch(p_license uuid, p_iid text, p_version text,
                           p_metadata jsonb, p_domain text)
RETURNS TABLE (first_seen bigint, last_seen bigint)
LANGUAGE sql AS $$
  UPDATE installations
     SET last_seen = now(), version = coalesce(p_version, version),
         metadata = coalesce(p_metadata, metadata),
         domain = coalesce(p_domain, domain)
   WHERE license_id = p_license AND installation_id = p_iid AND status = 'active'
  RETURNING extract(epoch FROM first_seen)::bigint,
            extract(epoch FROM last_seen)::bigint
$$;

-- Activates an installation if a seat is free. The license row lock
-- serialises activations of one license, so concurrent new installations
-- can never pass limits.installations; other licenses are not blocked.
CREATE FUNCTION licd_activate(p_license uuid, p_iid text, p_version text,
                              p_metadata jsonb, p_domain text)
RETURNS TABLE (code text, first_seen bigint, last_seen bigint)
LANGUAGE plpgsql AS $$
DECLARE
  lic   licenses%ROWTYPE;
  seats bigint;
  used  bigint;
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
                                  metadata, domain)
  VALUES (p_license, p_iid, 'active', p_version, p_metadata, p_domain)
  ON CONFLICT (license_id, installation_id) DO UPDATE
     SET status = 'active', last_seen = now(),
         activated_at = CASE WHEN i.status = 'active' THEN i.activated_at ELSE now() END,
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

-- Frees a seat; idempotent. license_found is false for an unknown license.
CREATE FUNCTION licd_deactivate(p_license uuid, p_iid text)
RETURNS TABLE (license_found boolean, deactivated boolean)
LANGUAGE sql AS $$
  WITH l AS (SELECT id FROM licenses WHERE id = p_license),
       d AS (UPDATE installations i SET status = 'inactive', deactivated_at = now()
               FROM l
              WHERE i.license_id = l.id AND i.installation_id = p_iid
                AND i.status = 'active'
             RETURNING 1)
  SELECT EXISTS (SELECT 1 FROM l), EXISTS (SELECT 1 FROM d)
$$;

-- A license as operators see it (licctl show/list, admin API).
CREATE VIEW license_admin_view AS
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
                                   WHERE i.license_id = l.id AND i.status = 'active')
       )::text AS doc
FROM licenses l JOIN customers c ON c.id = l.customer_id;
