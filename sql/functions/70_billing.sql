-- functions/70_billing.sql: payments (Stripe, Paddle) turned into licenses.
--
-- The webhook program turns each provider event into one provider-neutral
-- action (fcgi/lib/billmap.c) and calls licd_webhook_event, which records
-- the event once and applies it. What is issued follows what was paid, once:
-- - One purchase, one license: licenses.purchase names the purchase that
--   issued it ('stripe:sub:sub_...', 'paddle:session:txn_...'), unique, so
--   concurrent deliveries of the events of one purchase issue one license
--   whatever the interleaving.
-- - The plan is the one whose provider price was paid, or the one of the
--   checkout session licd itself created; nothing the buyer sets (Paddle
--   custom_data, Stripe client_reference_id, metadata) is read.
-- - Add-ons only through a licd session (which required the license key);
--   one row per purchase; their limits add to, never replace, the license's.
-- - A provider customer id is bound once and never re-pointed.
-- - Events that wait (subscription, customer or plan not known yet) stay
--   'pending' with what they wait for in reason, and are applied when it
--   appears.

-- A provider timestamp (RFC 3339) or NULL when absent or unparsable: a
-- malformed field must not make the whole event fail forever.
CREATE OR REPLACE FUNCTION licd_try_ts(t text) RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  RETURN t::timestamptz;
EXCEPTION WHEN others THEN
  RETURN NULL;
END
$$;

-- Limits after an add-on: 'installations' and every '*_per_month' add up
-- (capped at 2^63-1); any other limit takes the larger value. A limit the
-- license does not have is unlimited and stays absent, so an add-on never
-- lowers anything. Called by licd_billing_apply and
-- licd_recompute_entitlements.
CREATE OR REPLACE FUNCTION licd_limits_add(base jsonb, extra jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(base, '{}') || coalesce((
    SELECT jsonb_object_agg(e.key, to_jsonb(
             CASE WHEN e.key = 'installations' OR e.key LIKE '%\_per\_month'
                  THEN least((base ->> e.key)::numeric + (e.value #>> '{}')::numeric,
                             9223372036854775807)
                  ELSE greatest((base ->> e.key)::numeric, (e.value #>> '{}')::numeric)
             END))
      FROM jsonb_each(coalesce(extra, '{}')) e
     WHERE jsonb_typeof(base -> e.key) = 'number' AND jsonb_typeof(e.value) = 'number'),
    '{}')
$$;

-- Sets license p_license's features and limits from its plan, then each
-- add-on bought for it in purchase order. Called by licd_billing_apply
-- when a subscription changes plan.
CREATE OR REPLACE FUNCTION licd_recompute_entitlements(p_license uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  f  jsonb;
  li jsonb;
  r  record;
BEGIN
  SELECT p.features, p.limits INTO f, li
    FROM licenses l JOIN plans p ON p.code = l.plan_code WHERE l.id = p_license;
  FOR r IN SELECT ap.features, ap.limits FROM license_addons a
             JOIN plans ap ON ap.code = a.plan_code
            WHERE a.license_id = p_license ORDER BY a.id LOOP
    f := f || r.features;
    li := licd_limits_add(li, r.limits);
  END LOOP;
  UPDATE licenses
     SET features = (SELECT coalesce(jsonb_agg(DISTINCT x ORDER BY x), '[]')
                       FROM jsonb_array_elements_text(f) x),
         limits = li, updated_at = licd_now()
   WHERE id = p_license;
END
$$;

-- The plan paid for: the first of the provider's price ids (in the order
-- the provider lists them) that a plan sells, a plan before an add-on.
-- NULL when none does.
CREATE OR REPLACE FUNCTION licd_price_plan(p_provider text, prices jsonb) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT p.code FROM jsonb_array_elements_text(
           CASE WHEN jsonb_typeof(prices) = 'array' THEN prices ELSE '[]' END)
         WITH ORDINALITY AS x(price, n)
    JOIN plans p ON (p_provider = 'stripe' AND p.stripe_price_id = x.price)
                 OR (p_provider = 'paddle' AND p.paddle_price_id = x.price)
   ORDER BY p.is_addon, x.n LIMIT 1
$$;

-- t plus plan p_plan's billing interval (a month, a year; NULL for 'once'):
-- the end of a new license that the event gives no period end for.
CREATE OR REPLACE FUNCTION licd_interval_end(p_plan text, t timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
  SELECT CASE billing_interval WHEN 'year' THEN t + interval '1 year'
                               WHEN 'once' THEN NULL
                               ELSE t + interval '1 month' END
    FROM plans WHERE code = p_plan
$$;

-- License p_license is paid until p_until (at time t): its end moves out
-- to p_until, never in, any grace ends, and a license suspended for
-- non-payment, or expired and now paid past t, is active again. With
-- p_term_only a license without an end (a one-time purchase) stays
-- perpetual. Called by licd_billing_apply (a renewal; a later payment of a
-- purchase).
CREATE OR REPLACE FUNCTION licd_license_paid(p_license uuid, p_until timestamptz,
                                             t timestamptz, p_term_only boolean)
RETURNS void LANGUAGE sql AS $$
  UPDATE licenses
     SET expires_at = greatest(expires_at, p_until), grace_until = NULL,
         status = CASE WHEN status = 'suspended' AND status_reason = 'non-payment'
                       THEN 'active'
                       WHEN status = 'expired' AND greatest(expires_at, p_until) > t
                       THEN 'active' ELSE status END,
         status_reason = CASE WHEN status_reason = 'non-payment' THEN NULL
                              ELSE status_reason END,
         updated_at = t
   WHERE id = p_license AND (NOT p_term_only OR expires_at IS NOT NULL);
$$;

-- Subscription p_sub of p_provider is paid until p_until (at time t): active
-- again, any grace ended, its period end moved out to p_until, never in.
-- Called by licd_billing_apply with licd_license_paid for its license (a
-- renewal; a later payment of a purchase).
CREATE OR REPLACE FUNCTION licd_subscription_paid(p_provider text, p_sub text,
                                                  p_until timestamptz, t timestamptz)
RETURNS void LANGUAGE sql AS $$
  UPDATE subscriptions
     SET status = 'active', grace_until = NULL,
         current_period_end = greatest(current_period_end, p_until), updated_at = t
   WHERE provider = p_provider AND provider_subscription_id = p_sub;
$$;

-- Applies one provider-neutral billing action a of provider p_provider,
-- audited with request id p_rid. Returns one row: outcome 'applied',
-- 'pending' (waiting for a subscription, customer or plan, named by
-- subject and reason) or 'ignored', and for a new license its id (the
-- caller signs the key). Locks the subscription row of the actions that
-- act on one.
-- Actions (fcgi/lib/billmap.c builds them from the providers' events):
--   issue           {session, sub, customer_ref, email, prices, period_end|period_end_at}
--   renew           {sub, period_end}
--   payment_failed  {sub}
--   update          {sub, prices, cancel_at_period_end, period_end|period_end_at, status}
--   cancel          {sub, ends_at|ends_at_at}
--   customer        {customer_ref, email, name}
--   session_expired {session}
-- Times are epoch seconds (period_end, ends_at) or RFC 3339 strings
-- (period_end_at, ends_at_at). p_grace_days: how long a failed payment
-- leaves the license valid. Called by licd_webhook_apply.
CREATE OR REPLACE FUNCTION licd_billing_apply(p_provider text, a jsonb, p_grace_days int,
                                              p_rid text)
RETURNS TABLE (outcome text, new_license uuid, subject text, reason text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  op    text := a ->> 'op';
  t     timestamptz := licd_now();
  s     subscriptions%ROWTYPE;
  cs    checkout_sessions%ROWTYPE;
  plan  text;
  addon boolean;
  cust  uuid;
  lic   uuid;
  ref   text;
  em    text;
  pend  timestamptz := coalesce(to_timestamp((a ->> 'period_end')::double precision),
                                licd_try_ts(a ->> 'period_end_at'));
BEGIN
  subject := a ->> 'sub';
  IF op = 'customer' THEN
    -- The provider's own customer record. An id already bound stays bound
    -- (customer.updated never re-points it); a new one is bound to the
    -- customer with that e-mail unless that customer has one already.
    subject := a ->> 'customer_ref';
    IF a ->> 'email' IS NULL OR a ->> 'customer_ref' IS NULL THEN
      outcome := 'ignored'; RETURN NEXT; RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM customers
                    WHERE (p_provider = 'stripe' AND stripe_customer_id = a ->> 'customer_ref')
                       OR (p_provider = 'paddle' AND paddle_customer_id = a ->> 'customer_ref')) THEN
      INSERT INTO customers AS c (email, name)
      VALUES (a ->> 'email', left(coalesce(a ->> 'name', ''), 200))
      ON CONFLICT (lower(email)) DO UPDATE SET email = c.email
      RETURNING id INTO cust;
      UPDATE customers
         SET stripe_customer_id = CASE WHEN p_provider = 'stripe'
               THEN coalesce(stripe_customer_id, a ->> 'customer_ref') ELSE stripe_customer_id END,
             paddle_customer_id = CASE WHEN p_provider = 'paddle'
               THEN coalesce(paddle_customer_id, a ->> 'customer_ref') ELSE paddle_customer_id END
       WHERE id = cust;
    END IF;
    outcome := 'applied'; RETURN NEXT; RETURN;
  END IF;

  IF op = 'issue' THEN
    -- What was bought: licd's own session decides (plan, add-on target);
    -- otherwise the price paid.
    SELECT * INTO cs FROM checkout_sessions
     WHERE id = a ->> 'session' AND created_by = 'licd';
    IF FOUND THEN
      plan := cs.plan_code;
    ELSE
      plan := licd_price_plan(p_provider, a -> 'prices');
    END IF;
    IF plan IS NULL THEN
      subject := 'price:' || coalesce(a -> 'prices' ->> 0, '');
      reason := 'no plan sells the price paid';
      outcome := 'pending'; RETURN NEXT; RETURN;
    END IF;
    SELECT is_addon INTO addon FROM plans WHERE code = plan;

    IF addon THEN
      IF cs.target_license_id IS NULL THEN
        subject := 'session:' || coalesce(a ->> 'session', '');
        reason := 'add-on bought without a licd checkout session naming the license';
        outcome := 'pending'; RETURN NEXT; RETURN;
      END IF;
      lic := cs.target_license_id;
      INSERT INTO license_addons (license_id, plan_code, session_id)
      VALUES (lic, plan, cs.id) ON CONFLICT (session_id) DO NOTHING;
      IF FOUND THEN
        UPDATE licenses l
           SET features = (SELECT coalesce(jsonb_agg(DISTINCT x ORDER BY x), '[]')
                             FROM jsonb_array_elements_text(l.features || p.features) x),
               limits = licd_limits_add(l.limits, p.limits), updated_at = t
          FROM plans p WHERE p.code = plan AND l.id = lic;
        PERFORM licd_audit(p_provider, 'license.addon', 'license', lic::text, NULL, p_rid,
                           jsonb_build_object('plan', plan, 'session', cs.id));
      END IF;
      UPDATE checkout_sessions SET status = 'complete',
             completed_at = coalesce(completed_at, t)
       WHERE id = cs.id;
      subject := NULL; outcome := 'applied'; RETURN NEXT; RETURN;
    END IF;

    ref := p_provider || CASE WHEN a ->> 'sub' IS NOT NULL THEN ':sub:' || (a ->> 'sub')
                              ELSE ':session:' || (a ->> 'session') END;
    IF ref IS NULL THEN
      outcome := 'ignored'; RETURN NEXT; RETURN;
    END IF;
    SELECT id INTO lic FROM licenses WHERE purchase = ref;
    IF lic IS NULL THEN
      -- The buyer: the customer the provider's id is bound to; else the
      -- e-mail licd's own session recorded, or the provider's session
      -- record's.
      SELECT id INTO cust FROM customers
       WHERE (p_provider = 'stripe' AND stripe_customer_id = a ->> 'customer_ref')
          OR (p_provider = 'paddle' AND paddle_customer_id = a ->> 'customer_ref');
      IF cust IS NULL THEN
        em := coalesce(cs.email, a ->> 'email');
        IF em IS NULL THEN
          subject := a ->> 'customer_ref';
          reason := 'customer not known yet';
          outcome := 'pending'; RETURN NEXT; RETURN;
        END IF;
        INSERT INTO customers AS c (email) VALUES (em)
        ON CONFLICT (lower(email)) DO UPDATE SET email = c.email
        RETURNING id INTO cust;
        IF a ->> 'customer_ref' IS NOT NULL THEN
          UPDATE customers
             SET stripe_customer_id = CASE WHEN p_provider = 'stripe'
                   THEN coalesce(stripe_customer_id, a ->> 'customer_ref') ELSE stripe_customer_id END,
                 paddle_customer_id = CASE WHEN p_provider = 'paddle'
                   THEN coalesce(paddle_customer_id, a ->> 'customer_ref') ELSE paddle_customer_id END
           WHERE id = cust
             AND NOT EXISTS (SELECT 1 FROM customers o
                              WHERE (p_provider = 'stripe' AND o.stripe_customer_id = a ->> 'customer_ref')
                                 OR (p_provider = 'paddle' AND o.paddle_customer_id = a ->> 'customer_ref'));
        END IF;
      END IF;
      INSERT INTO licenses (customer_id, plan_code, features, limits, expires_at, purchase)
      SELECT cust, p.code, p.features, p.limits,
             CASE WHEN a ->> 'sub' IS NULL AND p.billing_interval = 'once' THEN NULL
                  ELSE coalesce(pend, licd_interval_end(p.code, t)) END, ref
        FROM plans p WHERE p.code = plan
      ON CONFLICT (purchase) DO NOTHING
      RETURNING id INTO lic;
      IF lic IS NOT NULL THEN
        new_license := lic;
        PERFORM licd_audit(p_provider, 'license.issue', 'license', lic::text, NULL, p_rid,
                           jsonb_build_object('subscription', a ->> 'sub',
                                              'session', a ->> 'session', 'plan', plan));
      ELSE
        -- A concurrent delivery of the same purchase issued it first.
        SELECT id INTO lic FROM licenses WHERE purchase = ref;
      END IF;
    END IF;
    IF new_license IS NULL AND pend IS NOT NULL THEN
      -- A later payment of the purchase (Paddle's renewal transactions):
      -- as a paid invoice, it extends and ends any grace.
      PERFORM licd_license_paid(lic, pend, t, true);
      PERFORM licd_subscription_paid(p_provider, a ->> 'sub', pend, t);
    END IF;
    IF a ->> 'sub' IS NOT NULL THEN
      INSERT INTO subscriptions AS x (provider, provider_subscription_id, customer_id,
                                      license_id, plan_code, status, current_period_end)
      SELECT p_provider, a ->> 'sub', l.customer_id, l.id, l.plan_code, 'active', pend
        FROM licenses l WHERE l.id = lic
      ON CONFLICT (provider, provider_subscription_id) DO UPDATE
         SET license_id = coalesce(x.license_id, EXCLUDED.license_id),
             current_period_end = greatest(x.current_period_end, EXCLUDED.current_period_end),
             updated_at = t;
    END IF;
    IF a ->> 'session' IS NOT NULL THEN
      INSERT INTO checkout_sessions AS c (id, provider, plan_code, email, mode, status,
                                          license_id, completed_at, created_by)
      VALUES (a ->> 'session', p_provider, plan, a ->> 'email',
              CASE WHEN a ->> 'sub' IS NULL THEN 'payment' ELSE 'subscription' END,
              'complete', lic, t, 'provider')
      ON CONFLICT (id) DO UPDATE SET status = 'complete',
             license_id = coalesce(c.license_id, EXCLUDED.license_id),
             completed_at = coalesce(c.completed_at, EXCLUDED.completed_at);
    END IF;
    outcome := 'applied'; RETURN NEXT;
    RETURN;
  END IF;

  IF op = 'session_expired' THEN
    UPDATE checkout_sessions SET status = 'expired'
     WHERE id = a ->> 'session' AND status = 'open';
    outcome := 'applied'; RETURN NEXT; RETURN;
  END IF;

  -- Everything else acts on a known subscription.
  SELECT * INTO s FROM subscriptions
   WHERE provider = p_provider AND provider_subscription_id = a ->> 'sub' FOR UPDATE;
  IF NOT FOUND THEN
    IF op IN ('renew', 'payment_failed', 'update', 'cancel') THEN
      reason := 'subscription not known yet';
      outcome := 'pending';
    ELSE
      outcome := 'ignored';
    END IF;
    RETURN NEXT; RETURN;
  END IF;

  IF op = 'renew' THEN
    PERFORM licd_subscription_paid(p_provider, s.provider_subscription_id, pend, t);
    PERFORM licd_license_paid(s.license_id, pend, t, false);
  ELSIF op = 'payment_failed' THEN
    -- Providers retry failed payments: the first failure starts the grace
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
    plan := licd_price_plan(p_provider, a -> 'prices');
    IF plan IS NOT NULL AND (SELECT is_addon FROM plans WHERE code = plan) THEN
      plan := NULL;
    END IF;
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

-- Stores the outcome of applying event p_event_id's action (status,
-- subject and reason while pending, applied_at). Called by
-- licd_webhook_apply.
CREATE OR REPLACE FUNCTION licd_webhook_mark(p_provider text, p_event_id text, p_outcome text,
                                             p_subject text, p_reason text)
RETURNS void LANGUAGE sql AS $$
  UPDATE webhook_events
     SET status = CASE p_outcome WHEN 'pending' THEN 'pending'
                                 WHEN 'applied' THEN 'applied' ELSE 'ignored' END,
         subject = CASE WHEN p_outcome = 'pending' THEN p_subject END,
         reason = CASE WHEN p_outcome = 'pending' THEN p_reason END,
         applied_at = CASE WHEN p_outcome = 'applied' THEN licd_now() END
   WHERE provider = p_provider AND event_id = p_event_id
$$;

-- Applies recorded event p_event_id, then what waited on its subscription
-- or customer, in the order the provider created them. Locks the event's
-- row and those of the waiting events. Rows: the outcome of the event
-- itself first, then one row per license a replay issued. Called by
-- licd_webhook_event and licctl webhook replay.
CREATE OR REPLACE FUNCTION licd_webhook_apply(p_provider text, p_event_id text, p_grace_days int)
RETURNS TABLE (outcome text, new_license uuid)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  e  webhook_events%ROWTYPE;
  r  record;
  ev record;
BEGIN
  SELECT * INTO e FROM webhook_events
   WHERE provider = p_provider AND event_id = p_event_id FOR UPDATE;
  IF e.action IS NULL THEN
    outcome := 'ignored'; RETURN NEXT; RETURN;
  END IF;
  SELECT * INTO r FROM licd_billing_apply(p_provider, e.action, p_grace_days, e.request_id);
  PERFORM licd_webhook_mark(p_provider, p_event_id, r.outcome, r.subject, r.reason);
  outcome := r.outcome; new_license := r.new_license; RETURN NEXT;
  IF r.outcome <> 'applied' THEN
    RETURN;
  END IF;
  FOR ev IN SELECT * FROM webhook_events
             WHERE provider = p_provider AND status = 'pending'
               AND subject IN (e.action ->> 'sub', e.action ->> 'customer_ref')
             ORDER BY (payload ->> 'created')::bigint NULLS LAST,
                      licd_try_ts(payload ->> 'occurred_at') NULLS LAST, received_at
             FOR UPDATE LOOP
    SELECT * INTO r FROM licd_billing_apply(p_provider, ev.action, p_grace_days,
                                             ev.request_id);
    PERFORM licd_webhook_mark(ev.provider, ev.event_id, r.outcome, r.subject, r.reason);
    IF r.new_license IS NOT NULL THEN
      outcome := r.outcome; new_license := r.new_license; RETURN NEXT;
    END IF;
  END LOOP;
END
$$;

-- Records provider event p_event_id once (the primary key decides; a
-- concurrent duplicate waits for the first and then sees it) with its
-- payload and action, and applies it (licd_webhook_apply). Returns
-- outcome 'duplicate' for an event seen before, else licd_webhook_apply's
-- rows. Called by the webhook program, in one transaction with signing
-- the keys of the licenses it issued.
CREATE OR REPLACE FUNCTION licd_webhook_event(p_provider text, p_event_id text, p_type text,
                                              p_payload jsonb, p_action jsonb, p_grace_days int,
                                              p_rid text)
RETURNS TABLE (outcome text, new_license uuid)
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO webhook_events (provider, event_id, type, status, payload, action,
                              received_at, request_id)
  VALUES (p_provider, p_event_id, p_type, 'ignored', p_payload, p_action,
          licd_now(), p_rid)
  ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN
    outcome := 'duplicate'; RETURN NEXT; RETURN;
  END IF;
  RETURN QUERY SELECT * FROM licd_webhook_apply(p_provider, p_event_id, p_grace_days);
END
$$;
