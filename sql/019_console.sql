-- 019_console: the tables and indexes behind the vendor's console:
-- console sign-in sessions, the daily validation counters the validate
-- processes flush with their batched last_seen refreshes, and the indexes
-- of the admin API's lists and searches (its functions:
-- sql/functions/90_console_args.sql to 93_console_sessions.sql).

CREATE TABLE admin_sessions (
  id_hash     bytea PRIMARY KEY,            -- SHA-256 of the cookie value
  csrf        text NOT NULL,
  actor       text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  ended_at    timestamptz
);
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);

CREATE TABLE validation_counts (
  day   date NOT NULL,
  code  text NOT NULL CHECK (code ~ '^[A-Z_]{1,40}$'),
  n     bigint NOT NULL CHECK (n >= 0),
  PRIMARY KEY (day, code)
);

-- Search and list indexes (each list orders newest first).
CREATE INDEX licenses_created ON licenses (created_at, id);
CREATE INDEX licenses_status_created ON licenses (status, created_at, id);
CREATE INDEX licenses_plan_created ON licenses (plan_code, created_at, id);
CREATE INDEX licenses_grace ON licenses (grace_until) WHERE grace_until IS NOT NULL;
CREATE INDEX licenses_domains ON licenses USING gin (domains jsonb_path_ops);
CREATE INDEX customers_email_prefix ON customers (lower(email) text_pattern_ops);
CREATE INDEX customers_name_prefix ON customers (lower(name) text_pattern_ops);
CREATE INDEX customers_created ON customers (created_at, id);
CREATE INDEX installations_iid ON installations (installation_id);
CREATE INDEX installations_domain ON installations (lower(domain)) WHERE domain IS NOT NULL;
CREATE INDEX installations_seen ON installations (last_seen, license_id, installation_id);
CREATE INDEX installations_version_seen ON installations (version, last_seen);
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX notifications_status_id ON notifications (status, id);
CREATE INDEX webhook_events_status ON webhook_events (status, received_at);
CREATE INDEX subscriptions_status ON subscriptions (status) WHERE status IN ('past_due', 'unpaid');
