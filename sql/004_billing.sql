-- 004_billing: payment providers (Stripe, Paddle) linked to customers,
-- subscriptions and licenses; webhook events recorded once each; checkout
-- sessions so a buyer can fetch the key the webhook issued. Their
-- functions: sql/functions/70_billing.sql.

ALTER TABLE customers
  ADD COLUMN stripe_customer_id text UNIQUE,
  ADD COLUMN paddle_customer_id text UNIQUE;

ALTER TABLE plans
  ADD COLUMN paddle_price_id text UNIQUE;

CREATE TABLE subscriptions (
  id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  provider                 text NOT NULL CHECK (provider IN ('stripe', 'paddle')),
  provider_subscription_id text NOT NULL,
  customer_id              uuid NOT NULL REFERENCES customers (id),
  license_id               uuid UNIQUE REFERENCES licenses (id),
  plan_code                text REFERENCES plans (code),
  status                   text NOT NULL DEFAULT 'active'
                           CHECK (status IN ('active', 'trialing', 'past_due',
                                             'unpaid', 'canceled', 'incomplete')),
  current_period_end       timestamptz,
  cancel_at_period_end     boolean NOT NULL DEFAULT false,
  grace_until              timestamptz,   -- payment failed: licenses valid until then
  canceled_at              timestamptz,
  created_at               timestamptz NOT NULL DEFAULT now(),
  updated_at               timestamptz NOT NULL DEFAULT now(),
  UNIQUE (provider, provider_subscription_id)
);
CREATE INDEX subscriptions_grace ON subscriptions (grace_until) WHERE grace_until IS NOT NULL;

-- One row per provider event id: the unique key makes each event take
-- effect once however often or concurrently it is delivered. status
-- 'pending' keeps an event whose subject has not appeared yet (e.g.
-- invoice.paid before checkout.session.completed) to apply later.
CREATE TABLE webhook_events (
  provider     text NOT NULL CHECK (provider IN ('stripe', 'paddle')),
  event_id     text NOT NULL CHECK (length(event_id) BETWEEN 1 AND 255),
  type         text NOT NULL,
  status       text NOT NULL CHECK (status IN ('applied', 'pending', 'ignored')),
  subject      text,                    -- subscription/session id it waits on
  payload      jsonb NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now(),
  applied_at   timestamptz,
  request_id   text,
  PRIMARY KEY (provider, event_id)
);
CREATE INDEX webhook_events_pending ON webhook_events (provider, subject) WHERE status = 'pending';
CREATE INDEX webhook_events_received ON webhook_events (received_at);

CREATE TABLE checkout_sessions (
  id           text PRIMARY KEY,          -- provider's session id (cs_…)
  provider     text NOT NULL DEFAULT 'stripe',
  plan_code    text NOT NULL REFERENCES plans (code),
  email        text,
  mode         text NOT NULL CHECK (mode IN ('subscription', 'payment')),
  target_license_id uuid REFERENCES licenses (id),   -- add-on purchases
  status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'complete', 'expired')),
  license_id   uuid REFERENCES licenses (id),
  url          text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz
);

-- Add-on purchases per license, so a plan change keeps what was bought.
CREATE TABLE license_addons (
  license_id  uuid NOT NULL REFERENCES licenses (id) ON DELETE CASCADE,
  plan_code   text NOT NULL REFERENCES plans (code),
  session_id  text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (license_id, plan_code)
);

ALTER TABLE webhook_events ADD COLUMN action jsonb;
