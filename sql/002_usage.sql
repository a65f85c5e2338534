-- 002_usage: the injectable clock, monthly usage counters with an
-- append-only log, and idempotency records for POST /api/usage (their
-- functions: sql/functions/20_clock.sql, 55_usage.sql).

-- One clock for everything time-dependent in SQL and for the programs,
-- which read licd_now() with the license. Production keeps offset 0;
-- tests move it to cross a month or an expiry without waiting.
CREATE TABLE licd_clock (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  offset_s  bigint NOT NULL DEFAULT 0
);
INSERT INTO licd_clock DEFAULT VALUES;

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
