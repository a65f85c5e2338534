-- functions/92_console_writes.sql: the admin API's writes (POST
-- /api/admin/..., program revoke), each audited with the acting token's
-- name (p_actor) and the request id (p_rid) in its transaction.

-- POST /api/admin/customers {email, name?}: creates the customer, or
-- renames the one with that e-mail (case-insensitive). Returns {"customer",
-- "created"}.
CREATE OR REPLACE FUNCTION licd_admin_customer_create(p jsonb, p_actor text, p_rid text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  em  text := licd_arg_text(p, 'email', 254, '^[^@\s]+@[^@\s]+$');
  nm  text := licd_arg_text(p, 'name', 200, '^[^[:cntrl:]]*$');
  cid uuid;
  cem text;
  cnm text;
  cat timestamptz;
  new boolean;
BEGIN
  IF em IS NULL THEN PERFORM licd_bad('field ''email'' is required', '22004'); END IF;
  INSERT INTO customers AS c (email, name) VALUES (em, coalesce(nm, ''))
  ON CONFLICT (lower(email)) DO UPDATE SET name = coalesce(nm, c.name)
  RETURNING c.id, c.email, c.name, c.created_at, (xmax = 0) INTO cid, cem, cnm, cat, new;
  PERFORM licd_audit(p_actor, CASE WHEN new THEN 'customer.create' ELSE 'customer.update' END,
                     'customer', cid::text, NULL, p_rid, jsonb_build_object('email', cem));
  RETURN json_build_object('customer', json_build_object('id', cid, 'email', cem,
           'name', cnm, 'created_at', licd_iso(cat)), 'created', new)::text;
END
$$;

-- POST /api/admin/licenses {customer (id or e-mail), plan, exactly one of
-- expires_at, days or perpetual, features?, limits?,
-- domain_restrictions?}: inserts the license (features replace the plan's,
-- limits are merged over them) and returns its id; the caller signs the
-- key and stores it in the same transaction.
CREATE OR REPLACE FUNCTION licd_admin_license_issue(p jsonb, p_actor text, p_rid text)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
  cu   text := licd_arg_text(p, 'customer', 254);
  pl   text := licd_arg_text(p, 'plan', 64);
  days int := licd_arg_int(p, 'days', 1, 36500, NULL);
  exp  timestamptz := licd_arg_ts(p, 'expires_at');
  perp boolean := licd_arg_bool(p, 'perpetual');
  f    jsonb := licd_arg_json(p, 'features', 'array');
  l    jsonb := licd_arg_json(p, 'limits', 'object');
  d    jsonb := licd_norm_domains(licd_arg_json(p, 'domain_restrictions', 'array'));
  cid  uuid;
  id   uuid;
BEGIN
  IF cu IS NULL THEN PERFORM licd_bad('field ''customer'' is required', '22004'); END IF;
  IF pl IS NULL THEN PERFORM licd_bad('field ''plan'' is required', '22004'); END IF;
  IF (days IS NOT NULL)::int + (exp IS NOT NULL)::int + coalesce(perp, false)::int <> 1 THEN
    PERFORM licd_bad('give exactly one of ''expires_at'', ''days'' or ''perpetual''');
  END IF;
  IF days IS NOT NULL THEN exp := licd_now() + make_interval(days => days); END IF;
  IF exp IS NOT NULL AND exp <= licd_now() THEN
    PERFORM licd_bad('field ''expires_at'' must be in the future');
  END IF;
  PERFORM licd_check_entitlements(f, l, d);
  SELECT c.id INTO cid FROM customers c
   WHERE lower(c.email) = lower(cu)
      OR c.id = CASE WHEN cu ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                   THEN cu::uuid END;
  IF cid IS NULL THEN PERFORM licd_bad('field ''customer'': no such customer'); END IF;
  IF NOT EXISTS (SELECT 1 FROM plans WHERE code = pl) THEN
    PERFORM licd_bad('field ''plan'': no such plan');
  END IF;
  INSERT INTO licenses (customer_id, plan_code, features, limits, domains, expires_at)
  SELECT cid, pp.code, coalesce(f, pp.features), pp.limits || coalesce(l, '{}'),
         coalesce(d, '[]'), exp
    FROM plans pp WHERE pp.code = pl
  RETURNING licenses.id INTO id;
  PERFORM licd_audit(p_actor, 'license.issue', 'license', id::text, NULL, p_rid,
                     jsonb_build_object('plan', pl, 'customer_id', cid));
  RETURN id;
END
$$;

-- POST /api/admin/licenses/{id}/edit {expires_at (null: perpetual)?,
-- domain_restrictions?, limits? (replace), features?, reason?}: only the
-- fields given change; a license expired only by its end comes back when
-- the end moves on; a revoked one is 55000. Locks the license row. The
-- signed key keeps its claims as issued; the database is what validate
-- checks (docs/API.md). Returns licd_admin_license's document.
CREATE OR REPLACE FUNCTION licd_admin_license_edit(p_license uuid, p jsonb, p_actor text, p_rid text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  has_exp boolean := p ? 'expires_at';
  exp  timestamptz := licd_arg_ts(p, 'expires_at');
  f    jsonb := licd_arg_json(p, 'features', 'array');
  l    jsonb := licd_arg_json(p, 'limits', 'object');
  d    jsonb := licd_norm_domains(licd_arg_json(p, 'domain_restrictions', 'array'));
  rsn  text := licd_arg_text(p, 'reason', 500, '^[^[:cntrl:]]*$');
  old  licenses%ROWTYPE;
BEGIN
  PERFORM licd_check_entitlements(f, l, d);
  IF NOT has_exp AND f IS NULL AND l IS NULL AND d IS NULL THEN
    PERFORM licd_bad('nothing to change: give expires_at, features, limits or domain_restrictions');
  END IF;
  SELECT * INTO old FROM licenses WHERE id = p_license FOR UPDATE;
  IF NOT FOUND THEN PERFORM licd_bad('no such license', 'P0002'); END IF;
  IF old.status = 'revoked' THEN
    PERFORM licd_bad('cannot edit a license that is revoked', '55000');
  END IF;
  UPDATE licenses SET
    expires_at = CASE WHEN has_exp THEN exp ELSE expires_at END,
    -- a license that was expired only by its end comes back when the end moves on
    status = CASE WHEN has_exp AND status = 'expired' AND (exp IS NULL OR exp > licd_now())
                  THEN 'active' ELSE status END,
    features = coalesce(f, features), limits = coalesce(l, limits),
    domains = coalesce(d, domains), updated_at = licd_now()
   WHERE id = p_license;
  PERFORM licd_audit(p_actor, 'license.edit', 'license', p_license::text, rsn, p_rid,
    jsonb_strip_nulls(jsonb_build_object(
      'expires_at', CASE WHEN has_exp THEN jsonb_build_array(licd_iso(old.expires_at), licd_iso(exp)) END,
      'features', CASE WHEN f IS NOT NULL THEN jsonb_build_array(old.features, f) END,
      'limits', CASE WHEN l IS NOT NULL THEN jsonb_build_array(old.limits, l) END,
      'domain_restrictions', CASE WHEN d IS NOT NULL THEN jsonb_build_array(old.domains, d) END)));
  RETURN licd_admin_license(p_license);
END
$$;

-- POST /api/admin/licenses/{id}/installations/{iid}/deactivate {reason?}:
-- licd_deactivate, audited; P0002 for an unknown license or installation.
-- Returns {"license_id", "installation_id", "deactivated"}.
CREATE OR REPLACE FUNCTION licd_admin_deactivate(p_license uuid, p_iid text, p_reason text,
                                                 p_actor text, p_rid text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  r record;
BEGIN
  SELECT * INTO r FROM licd_deactivate(p_license, p_iid);
  IF NOT r.license_found THEN PERFORM licd_bad('no such license', 'P0002'); END IF;
  IF NOT r.deactivated AND NOT EXISTS (SELECT 1 FROM installations
       WHERE license_id = p_license AND installation_id = p_iid) THEN
    PERFORM licd_bad('no such installation', 'P0002');
  END IF;
  PERFORM licd_audit(p_actor, 'installation.deactivate', 'license', p_license::text,
                     p_reason, p_rid, jsonb_build_object('installation_id', p_iid,
                                                         'changed', r.deactivated));
  RETURN json_build_object('license_id', p_license, 'installation_id', p_iid,
                           'deactivated', r.deactivated)::text;
END
$$;

-- POST /api/admin/plans {code, name?, features?, limits?, price_cents?,
-- currency?, interval?, addon?, active?}: creates the plan, or changes only
-- the fields given (as licctl plan set). Licenses issued later copy it.
-- Returns {"plan", "created"}.
CREATE OR REPLACE FUNCTION licd_admin_plan_set(p jsonb, p_actor text, p_rid text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  cd  text := licd_arg_text(p, 'code', 64, '^[a-z0-9][a-z0-9_.-]{0,63}$');
  nm  text := licd_arg_text(p, 'name', 200, '^[^[:cntrl:]]*$');
  f   jsonb := licd_arg_json(p, 'features', 'array');
  l   jsonb := licd_arg_json(p, 'limits', 'object');
  pc  bigint := licd_arg_int(p, 'price_cents', 0, 100000000000, NULL);
  cy  text := lower(licd_arg_text(p, 'currency', 3, '^[A-Za-z]{3}$'));
  iv  text := licd_arg_text(p, 'interval', 8, '^(month|year|once)$');
  ad  boolean := licd_arg_bool(p, 'addon');
  ac  boolean := licd_arg_bool(p, 'active');
  new boolean;
  doc text;
BEGIN
  IF cd IS NULL THEN PERFORM licd_bad('field ''code'' is required', '22004'); END IF;
  PERFORM licd_check_entitlements(f, l, NULL);
  INSERT INTO plans AS x (code, name, features, limits, billing_interval, price_cents,
                          currency, is_addon, active)
  VALUES (cd, coalesce(nm, cd), coalesce(f, '[]'), coalesce(l, '{}'), iv, pc, cy,
          coalesce(ad, false), coalesce(ac, true))
  ON CONFLICT (code) DO UPDATE SET
    name = coalesce(nm, x.name), features = coalesce(f, x.features),
    limits = coalesce(l, x.limits), billing_interval = coalesce(iv, x.billing_interval),
    price_cents = coalesce(pc, x.price_cents), currency = coalesce(cy, x.currency),
    is_addon = coalesce(ad, x.is_addon), active = coalesce(ac, x.active),
    updated_at = licd_now()
  RETURNING (xmax = 0), json_build_object('code', x.code, 'name', x.name,
    'features', x.features, 'limits', x.limits, 'interval', x.billing_interval,
    'price_cents', x.price_cents, 'currency', x.currency, 'addon', x.is_addon,
    'active', x.active)::text INTO new, doc;
  PERFORM licd_audit(p_actor, 'plan.set', 'plan', cd, NULL, p_rid, doc::jsonb);
  RETURN json_build_object('plan', doc::json, 'created', new)::text;
END
$$;

-- POST /api/admin/notifications/{id}/retry: a pending notification is due
-- now (its attempts are kept); a delivered one is 55000. Locks its row.
CREATE OR REPLACE FUNCTION licd_admin_notification_retry(p_id bigint, p_actor text, p_rid text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  st text;
BEGIN
  SELECT status INTO st FROM notifications WHERE id = p_id FOR UPDATE;
  IF NOT FOUND THEN PERFORM licd_bad('no such notification', 'P0002'); END IF;
  IF st <> 'pending' THEN
    PERFORM licd_bad('the notification was delivered already', '55000');
  END IF;
  UPDATE notifications SET next_attempt_at = licd_now(), locked_until = NULL WHERE id = p_id;
  PERFORM licd_audit(p_actor, 'notification.retry', 'notification', p_id::text, NULL, p_rid, NULL);
  RETURN json_build_object('id', p_id, 'status', 'pending',
                           'next_attempt_at', licd_iso(licd_now()))::text;
END
$$;
