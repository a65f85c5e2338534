-- 001_core: customers, plans, licenses, installations, audit log.
-- Invariants live in constraints so no caller can write a bad row.
--
-- Every function, view and trigger is defined in sql/functions/, which
-- licctl migrate applies after the numbered migrations. The CHECKs below
-- call four of them, which must exist before the tables: they are created
-- here with a placeholder body that sql/functions/10_checks.sql replaces
-- with the rule, before anything is written.

CREATE FUNCTION licd_slug_ok(s text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT AS 'SELECT true';
CREATE FUNCTION licd_features_ok(f jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT AS 'SELECT true';
CREATE FUNCTION licd_limits_ok(l jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT AS 'SELECT true';
CREATE FUNCTION licd_domains_ok(d jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT AS 'SELECT true';

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
