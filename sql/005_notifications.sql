-- 005_notifications: the outbox. Anything that must tell a customer or the
-- vendor something inserts a row here in the same transaction as the change
-- it reports; licd-lifecycle delivers it (SMTP and/or a signed webhook),
-- retrying with backoff until it is delivered. dedupe_key makes "once per
-- license and expiry date"-style rules a unique constraint
-- (sql/functions/35_notify.sql).
CREATE TABLE notifications (
  id              bigserial PRIMARY KEY,
  kind            text NOT NULL CHECK (kind ~ '^[a-z0-9_.]{1,64}$'),
  license_id      uuid REFERENCES licenses (id) ON DELETE CASCADE,
  customer_id     uuid REFERENCES customers (id) ON DELETE CASCADE,
  recipient       text,                   -- e-mail address; NULL: webhook only
  payload         jsonb NOT NULL DEFAULT '{}',
  dedupe_key      text UNIQUE,
  status          text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'delivered')),
  attempts        integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  locked_until    timestamptz,            -- a delivery run holds it until then
  last_error      text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  delivered_at    timestamptz
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'pending';
