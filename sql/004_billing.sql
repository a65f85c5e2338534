-- 004_billing: payment providers (Stripe, Paddle) linked to customers,
-- subscriptions and licenses; webhook events recorded once each; checkout
-- sessions so a buyer can fetch the key the webhook issued.

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

-- A provider timestamp (RFC 3339) or NULL when absent or unparsable:
-- a malformed field must not make the whole event fail forever.
CREATE FUNCTION licd_try_ts(t text) RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  RETURN t::timestamptz;
EXCEPTION WHEN others THEN
  RETURN NULL;
END
$$;

-- A license's features and limits: its plan's, plus every add-on's.
CREATE FUNCTION licd_recompute_entitlements(p_license uuid) RETURNS void
LANGUAGE sql AS $$
  UPDATE licenses l
     SET features = (SELECT coalesce(jsonb_agg(DISTINCT f ORDER BY f), '[]')
                       FROM (SELECT jsonb_array_elements_text(p.features) f
                               FROM plans p WHERE p.code = l.plan_code
                             UNION
                             SELECT jsonb_array_elements_text(ap.features)
                               FROM license_addons a JOIN plans ap ON ap.code = a.plan_code
                              WHERE a.license_id = l.id) x),
         limits = (SELECT p.limits FROM plans p WHERE p.code = l.plan_code)
                  || coalesce((SELECT jsonb_object_agg(k, v)
                                 FROM license_addons a JOIN plans ap ON ap.code = a.plan_code,
                                      jsonb_each(ap.limits) AS e(k, v)
                                WHERE a.license_id = l.id), '{}'),
         updated_at = licd_now()
   WHERE l.id = p_license
$$;

-- The plan an action names: by code, else by the provider's price id.
CREATE FUNCTION licd_action_plan(p_provider text, a jsonb) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    (SELECT code FROM plans WHERE code = a ->> 'plan'),
    (SELECT code FROM plans
      WHERE (p_provider = 'stripe' AND stripe_price_id = a ->> 'price')
         OR (p_provider = 'paddle' AND paddle_price_id = a ->> 'price')))
$$;

CREATE FUNCTION licd_interval_end(p_plan text, t timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
  SELECT CASE billing_interval WHEN 'year' THEN t + interval '1 year'
                               WHEN 'once' THEN NULL
                               ELSE t + interval '1 month' END
    FROM plans WHERE code = p_plan
$$;

-- Applies one provider-neutral billing action. Returns the outcome
-- ('applied', 'pending': its subscription/customer is not known yet,
-- 'ignored') and, for new licenses, their ids (the caller signs the keys).
--
-- Actions (built by the webhook program from Stripe or Paddle events):
--   issue          {sub, customer_ref, email, plan|price, period_end, session, mode}
--   addon          {target_license, plan|price, session}
--   renew          {sub, period_end}
--   payment_failed {sub}
--   update         {sub, plan|price, cancel_at_period_end, period_end, status}
--   cancel         {sub, ends_at}
--   customer       {customer_ref, email}
--   session_expired {session}
-- Times are epoch seconds (period_end, ends_at) or RFC 3339 strings
-- (period_end_at, ends_at_at).
CREATE FUNCTION licd_billing_apply(p_provider text, a jsonb, p_grace_days int,
                                   p_rid text)
RETURNS TABLE (outcome text, new_license uuid, subject text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  op   text := a ->> 'op';
  t    timestamptz := licd_now();
  s    subscriptions%ROWTYPE;
  plan text;
  cust uuid;
  lic  uuid;
  pend timestamptz := coalesce(to_timestamp((a ->> 'period_end')::double precision),
                               licd_try_ts(a ->> 'period_end_at'));
BEGIN
  subject := a ->> 'sub';
  IF op = 'customer' THEN
    IF a ->> 'email' IS NULL OR a ->> 'customer_ref' IS NULL THEN
      outcome := 'ignored'; RETURN NEXT; RETURN;
    END IF;
    INSERT INTO customers (email, name) VALUES (a ->> 'email', coalesce(a ->> 'name', ''))
    ON CONFLICT (lower(email)) DO NOTHING;
    UPDATE customers SET stripe_customer_id = CASE WHEN p_provider = 'stripe'
                           THEN a ->> 'customer_ref' ELSE stripe_customer_id END,
                         paddle_customer_id = CASE WHEN p_provider = 'paddle'
                           THEN a ->> 'customer_ref' ELSE paddle_customer_id END
     WHERE lower(email) = lower(a ->> 'email');
    subject := a ->> 'customer_ref';
    outcome := 'applied'; RETURN NEXT; RETURN;
  END IF;

  IF op = 'issue' THEN
    plan := licd_action_plan(p_provider, a);
    IF plan IS NULL THEN
      RAISE WARNING 'licd: % event names no known plan', p_provider;
      outcome := 'ignored'; RETURN NEXT; RETURN;
    END IF;
    -- Already issued for this subscription (Paddle sends two issuing events).
    IF a ->> 'sub' IS NOT NULL THEN
      SELECT * INTO s FROM subscriptions
       WHERE provider = p_provider AND provider_subscription_id = a ->> 'sub';
      IF FOUND AND s.license_id IS NOT NULL THEN
        IF pend IS NOT NULL THEN
          UPDATE licenses SET expires_at = greatest(expires_at, pend), updated_at = t
           WHERE id = s.license_id;
        END IF;
        UPDATE checkout_sessions SET status = 'complete', license_id = s.license_id,
               completed_at = coalesce(completed_at, t)
         WHERE id = a ->> 'session';
        outcome := 'applied'; RETURN NEXT; RETURN;
      END IF;
    END IF;
    -- The buyer: by provider customer id, else by e-mail.
    SELECT id INTO cust FROM customers
     WHERE (p_provider = 'stripe' AND stripe_customer_id = a ->> 'customer_ref')
        OR (p_provider = 'paddle' AND paddle_customer_id = a ->> 'customer_ref');
    IF cust IS NULL THEN
      IF a ->> 'email' IS NULL THEN
        outcome := 'pending'; subject := a ->> 'customer_ref'; RETURN NEXT; RETURN;
      END IF;
      INSERT INTO customers AS c (email) VALUES (a ->> 'email')
      ON CONFLICT (lower(email)) DO UPDATE SET email = c.email
      RETURNING id INTO cust;
      UPDATE customers SET stripe_customer_id = coalesce(stripe_customer_id,
                             CASE WHEN p_provider = 'stripe' THEN a ->> 'customer_ref' END),
                           paddle_customer_id = coalesce(paddle_customer_id,
                             CASE WHEN p_provider = 'paddle' THEN a ->> 'customer_ref' END)
       WHERE id = cust;
    END IF;
    INSERT INTO licenses (customer_id, plan_code, features, limits, expires_at)
    SELECT cust, p.code, p.features, p.limits,
           CASE WHEN a ->> 'sub' IS NULL AND p.billing_interval = 'once' THEN NULL
                ELSE coalesce(pend, licd_interval_end(p.code, t)) END
      FROM plans p WHERE p.code = plan
    RETURNING id INTO lic;
    IF a ->> 'sub' IS NOT NULL THEN
      INSERT INTO subscriptions AS x (provider, provider_subscription_id, customer_id,
                                      license_id, plan_code, status, current_period_end)
      VALUES (p_provider, a ->> 'sub', cust, lic, plan, 'active', pend)
      ON CONFLICT (provider, provider_subscription_id) DO UPDATE
         SET license_id = EXCLUDED.license_id, customer_id = EXCLUDED.customer_id,
             updated_at = t;
    END IF;
    IF a ->> 'session' IS NOT NULL THEN
      INSERT INTO checkout_sessions AS cs (id, provider, plan_code, email, mode, status,
                                           license_id, completed_at)
      VALUES (a ->> 'session', p_provider, plan, a ->> 'email',
              coalesce(a ->> 'mode', 'subscription'), 'complete', lic, t)
      ON CONFLICT (id) DO UPDATE SET status = 'complete', license_id = lic,
                                     completed_at = t;
    END IF;
    PERFORM licd_audit(p_provider, 'license.issue', 'license', lic::text, NULL, p_rid,
                       jsonb_build_object('subscription', a ->> 'sub',
                                          'session', a ->> 'session'));
    outcome := 'applied'; new_license := lic; RETURN NEXT;
    RETURN;
  END IF;

  IF op = 'session_expired' THEN
    UPDATE checkout_sessions SET status = 'expired'
     WHERE id = a ->> 'session' AND status = 'open';
    outcome := 'applied'; RETURN NEXT; RETURN;
  END IF;

  IF op = 'addon' THEN
    plan := licd_action_plan(p_provider, a);
    IF plan IS NULL OR (a ->> 'target_license') IS NULL
       OR NOT EXISTS (SELECT 1 FROM licenses WHERE id::text = a ->> 'target_license') THEN
      RAISE WARNING 'licd: add-on purchase with unknown plan or license';
      outcome := 'ignored'; RETURN NEXT; RETURN;
    END IF;
    lic := (a ->> 'target_license')::uuid;
    INSERT INTO license_addons (license_id, plan_code, session_id)
    VALUES (lic, plan, a ->> 'session') ON CONFLICT DO NOTHING;
    PERFORM licd_recompute_entitlements(lic);
    UPDATE checkout_sessions SET status = 'complete', license_id = lic,
           completed_at = coalesce(completed_at, t)
     WHERE id = a ->> 'session';
    PERFORM licd_audit(p_provider, 'license.addon', 'license', lic::text, NULL, p_rid,
                       jsonb_build_object('plan', plan, 'session', a ->> 'session'));
    outcome := 'applied'; RETURN NEXT; RETURN;
  END IF;

  -- Everything else acts on a known subscription.
  SELECT * INTO s FROM subscriptions
   WHERE provider = p_provider AND provider_subscription_id = a ->> 'sub' FOR UPDATE;
  IF NOT FOUND THEN
    outcome := CASE WHEN op IN ('renew', 'payment_failed', 'update', 'cancel')
                    THEN 'pending' ELSE 'ignored' END;
    RETURN NEXT; RETURN;
  END IF;

  IF op = 'renew' THEN
    UPDATE subscriptions SET status = 'active', grace_until = NULL,
           current_period_end = greatest(current_period_end, pend), updated_at = t
     WHERE id = s.id;
    UPDATE licenses
       SET expires_at = greatest(expires_at, pend), grace_until = NULL,
           status = CASE WHEN status = 'suspended' AND status_reason = 'non-payment'
                         THEN 'active'
                         WHEN status = 'expired' AND greatest(expires_at, pend) > t
                         THEN 'active' ELSE status END,
           status_reason = CASE WHEN status_reason = 'non-payment' THEN NULL
                                ELSE status_reason END,
           updated_at = t
     WHERE id = s.license_id;
  ELSIF op = 'payment_failed' THEN
    -- Stripe retries failed payments: the first failure starts the grace
    -- period, later ones do not extend it.
    UPDATE subscriptions
       SET status = 'past_due',
           grace_until = coalesce(grace_until, t + make_interval(days => p_grace_days)),
           updated_at = t
     WHERE id = s.id
    RETURNING * INTO s;
    UPDATE licenses SET grace_until = s.grace_until, updated_at = t
     WHERE id = s.license_id;
  ELSIF op = 'update' THEN
    plan := licd_action_plan(p_provider, a);
    UPDATE subscriptions
       SET plan_code = coalesce(plan, plan_code),
           cancel_at_period_end = coalesce((a ->> 'cancel_at_period_end')::boolean,
                                           cancel_at_period_end),
           current_period_end = coalesce(pend, current_period_end),
           status = CASE WHEN a ->> 'status' IN ('active', 'trialing', 'past_due',
                                                 'unpaid', 'canceled', 'incomplete')
                         THEN a ->> 'status' ELSE status END,
           updated_at = t
     WHERE id = s.id;
    IF plan IS NOT NULL AND s.license_id IS NOT NULL THEN
      UPDATE licenses SET plan_code = plan WHERE id = s.license_id;
      PERFORM licd_recompute_entitlements(s.license_id);
    END IF;
    IF pend IS NOT NULL THEN
      UPDATE licenses SET expires_at = greatest(expires_at, pend), updated_at = t
       WHERE id = s.license_id;
    END IF;
  ELSIF op = 'cancel' THEN
    -- Paid-up time is kept: the license runs to the end of the period.
    UPDATE subscriptions SET status = 'canceled', canceled_at = t, updated_at = t
     WHERE id = s.id;
    UPDATE licenses
       SET expires_at = coalesce(to_timestamp((a ->> 'ends_at')::double precision),
                                 licd_try_ts(a ->> 'ends_at_at'),
                                 s.current_period_end, expires_at),
           updated_at = t
     WHERE id = s.license_id;
  ELSE
    outcome := 'ignored'; RETURN NEXT; RETURN;
  END IF;
  PERFORM licd_audit(p_provider, 'subscription.' || op, 'license',
                     s.license_id::text, NULL, p_rid,
                     jsonb_build_object('subscription', s.provider_subscription_id));
  outcome := 'applied'; RETURN NEXT;
END
$$;

-- Records a provider event once (the primary key decides; a concurrent
-- duplicate waits for the first and then sees it) and applies its action.
-- When an event creates a subscription or customer, the events parked for
-- it are applied next, in the order the provider created them.
CREATE FUNCTION licd_webhook_event(p_provider text, p_event_id text, p_type text,
                                   p_payload jsonb, p_action jsonb, p_grace_days int,
                                   p_rid text)
RETURNS TABLE (outcome text, new_license uuid)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  r   record;
  ev  record;
  subj text;
  any_applied boolean := false;
BEGIN
  INSERT INTO webhook_events (provider, event_id, type, status, payload, action,
                              received_at, request_id)
  VALUES (p_provider, p_event_id, p_type, 'ignored', p_payload, p_action,
          licd_now(), p_rid)
  ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN
    outcome := 'duplicate'; RETURN NEXT; RETURN;
  END IF;
  IF p_action IS NULL THEN
    outcome := 'ignored'; RETURN NEXT; RETURN;
  END IF;
  FOR r IN SELECT * FROM licd_billing_apply(p_provider, p_action, p_grace_days, p_rid) LOOP
    UPDATE webhook_events
       SET status = CASE r.outcome WHEN 'pending' THEN 'pending'
                                   WHEN 'applied' THEN 'applied' ELSE 'ignored' END,
           subject = CASE WHEN r.outcome = 'pending' THEN r.subject END,
           applied_at = CASE WHEN r.outcome = 'applied' THEN licd_now() END
     WHERE provider = p_provider AND event_id = p_event_id;
    outcome := r.outcome; new_license := r.new_license; RETURN NEXT;
    IF r.outcome = 'applied' THEN
      any_applied := true;
      subj := coalesce(p_action ->> 'sub', p_action ->> 'customer_ref');
    END IF;
  END LOOP;
  IF NOT any_applied THEN
    RETURN;
  END IF;
  -- Replay what waited on this subscription or customer.
  FOR ev IN SELECT * FROM webhook_events
             WHERE provider = p_provider AND status = 'pending'
               AND subject IN (p_action ->> 'sub', p_action ->> 'customer_ref')
             ORDER BY (payload ->> 'created')::bigint NULLS LAST, received_at
             FOR UPDATE LOOP
    FOR r IN SELECT * FROM licd_billing_apply(p_provider, ev.action, p_grace_days,
                                               ev.request_id) LOOP
      UPDATE webhook_events
         SET status = CASE r.outcome WHEN 'pending' THEN 'pending'
                                     WHEN 'applied' THEN 'applied' ELSE 'ignored' END,
             subject = CASE WHEN r.outcome = 'pending' THEN r.subject END,
             applied_at = CASE WHEN r.outcome = 'applied' THEN licd_now() END
       WHERE provider = ev.provider AND event_id = ev.event_id;
      IF r.new_license IS NOT NULL THEN
        outcome := r.outcome; new_license := r.new_license; RETURN NEXT;
      END IF;
    END LOOP;
  END LOOP;
END
$$;
