-- 019_console: the admin API's reads and writes behind the vendor's
-- console (program `revoke`), console sign-in sessions, and the daily
-- validation counters the validate processes flush with their batched
-- last_seen refreshes.
--
-- Every admin function takes its arguments as one jsonb object (the
-- query string or request body, as strings or JSON values) and returns
-- the response document as JSON text. A bad argument raises SQLSTATE
-- 22023 with the message the API answers (400 INVALID_FIELD); 22004 is
-- MISSING_FIELD, P0002 NOT_FOUND, 55000 CONFLICT (fcgi/revoke.c maps them).
-- Lists are keyset-paginated: `cursor` is the opaque `next_cursor` of the
-- previous page; filters are added to the statement only when given, so
-- each query is planned for the indexes its filters can use.

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

-- ---- helpers ------------------------------------------------------------

CREATE FUNCTION licd_iso(t timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;

CREATE FUNCTION licd_bad(p_msg text, p_code text DEFAULT '22023') RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = p_code, MESSAGE = p_msg;
END
$$;

-- An integer argument given as a JSON number or a string of digits.
CREATE FUNCTION licd_arg_int(p jsonb, k text, lo bigint, hi bigint, def bigint)
RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  v jsonb := p -> k;
  s text;
BEGIN
  IF v IS NULL OR v = 'null' THEN RETURN def; END IF;
  s := CASE jsonb_typeof(v) WHEN 'string' THEN v #>> '{}'
                            WHEN 'number' THEN v::text END;
  IF s IS NULL OR s !~ '^-?[0-9]{1,18}$' OR s::bigint < lo OR s::bigint > hi THEN
    PERFORM licd_bad(format('field ''%s'' must be an integer %s..%s', k, lo, hi));
  END IF;
  RETURN s::bigint;
END
$$;

CREATE FUNCTION licd_arg_bool(p jsonb, k text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  v jsonb := p -> k;
BEGIN
  IF v IS NULL OR v = 'null' THEN RETURN NULL; END IF;
  IF jsonb_typeof(v) = 'boolean' THEN RETURN v::text::boolean; END IF;
  IF v #>> '{}' IN ('true', '1') THEN RETURN true; END IF;
  IF v #>> '{}' IN ('false', '0') THEN RETURN false; END IF;
  PERFORM licd_bad(format('field ''%s'' must be true or false', k));
END
$$;

-- A text argument: NULL when absent or empty, else a string of at most
-- maxlen characters matching re (when given).
CREATE FUNCTION licd_arg_text(p jsonb, k text, maxlen int, re text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  v jsonb := p -> k;
  s text;
BEGIN
  IF v IS NULL OR v = 'null' THEN RETURN NULL; END IF;
  IF jsonb_typeof(v) <> 'string' THEN
    PERFORM licd_bad(format('field ''%s'' must be a string', k));
  END IF;
  s := v #>> '{}';
  IF s = '' THEN RETURN NULL; END IF;
  IF length(s) > maxlen OR (re IS NOT NULL AND s !~ re) THEN
    PERFORM licd_bad(format('field ''%s'' is not valid', k));
  END IF;
  RETURN s;
END
$$;

CREATE FUNCTION licd_arg_ts(p jsonb, k text) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
  s text := licd_arg_text(p, k, 40,
    '^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?)?$');
BEGIN
  IF s IS NULL THEN RETURN NULL; END IF;
  IF s ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN
    s := s || 'T00:00:00Z';
  ELSIF s !~ '(Z|[+-][0-9]{2}(:?[0-9]{2})?)$' THEN
    s := s || 'Z';
  END IF;
  BEGIN
    RETURN s::timestamptz;
  EXCEPTION WHEN OTHERS THEN
    PERFORM licd_bad(format('field ''%s'' must be an RFC 3339 time', k));
  END;
  RETURN NULL;
END
$$;

-- Opaque page cursors: base64url of a JSON array of the last row's keys.
CREATE FUNCTION licd_cursor_enc(v jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT rtrim(translate(encode(convert_to(v::text, 'UTF8'), 'base64'),
                         E'+/\n', '-_'), '=')
$$;

CREATE FUNCTION licd_cursor_dec(p jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  s text := licd_arg_text(p, 'cursor', 512, '^[A-Za-z0-9_-]+$');
  v jsonb;
BEGIN
  IF s IS NULL THEN RETURN NULL; END IF;
  s := translate(s, '-_', '+/');
  s := s || repeat('=', (4 - length(s) % 4) % 4);
  v := convert_from(decode(s, 'base64'), 'UTF8')::jsonb;
  IF jsonb_typeof(v) <> 'array' THEN RAISE invalid_parameter_value; END IF;
  RETURN v;
EXCEPTION WHEN OTHERS THEN
  PERFORM licd_bad('field ''cursor'' is not a cursor this server gave');
  RETURN NULL;
END
$$;

-- A license as the lists show it.
CREATE FUNCTION licd_admin_license_row(l licenses, c customers) RETURNS json
LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'id', l.id, 'customer_id', l.customer_id, 'email', c.email,
    'customer_name', c.name, 'plan', l.plan_code, 'status', l.status,
    'issued_at', licd_iso(l.issued_at), 'expires_at', licd_iso(l.expires_at),
    'grace_until', licd_iso(l.grace_until),
    'domain_restrictions', l.domains, 'limits', l.limits,
    'active_installations', (SELECT count(*) FROM installations i
                              WHERE i.license_id = l.id AND i.status = 'active'),
    'created_at', licd_iso(l.created_at))
$$;

-- ---- reads --------------------------------------------------------------

-- GET /api/admin/licenses: q (license id, customer e-mail or name prefix,
-- domain, installation id; fcgi/revoke.c turns a license key into its id),
-- status, plan, expiring_days, in_grace, past_due, cursor, limit.
CREATE FUNCTION licd_admin_licenses(p jsonb) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
  lim   int := licd_arg_int(p, 'limit', 1, 200, 50);
  q     text := licd_arg_text(p, 'q', 254);
  st    text := licd_arg_text(p, 'status', 16, '^(active|suspended|revoked|expired)$');
  pl    text := licd_arg_text(p, 'plan', 64);
  expd  int := licd_arg_int(p, 'expiring_days', 0, 36500, NULL);
  grace boolean := licd_arg_bool(p, 'in_grace');
  pdue  boolean := licd_arg_bool(p, 'past_due');
  cur   jsonb := licd_cursor_dec(p);
  c_at  timestamptz;
  c_id  uuid;
  qs    text;
  pat   text;
  w     text := '';
  ids   uuid[];
  ats   timestamptz[];
  cands uuid[];
  ncand bigint;
  src   text := 'licenses l';
  nxt   text;
  docs  json;
BEGIN
  IF cur IS NOT NULL THEN
    BEGIN
      c_at := (cur ->> 0)::timestamptz; c_id := (cur ->> 1)::uuid;
    EXCEPTION WHEN OTHERS THEN
      PERFORM licd_bad('field ''cursor'' is not a cursor this server gave');
    END;
    w := w || ' AND (l.created_at, l.id) < ($6, $7)';
  END IF;
  q := btrim(q);
  IF q <> '' THEN
    -- Every license the value can name, each source by its own index.
    pat := replace(replace(replace(lower(q), '\', '\\'), '%', '\%'), '_', '\_') || '%';
    qs := 'SELECT l2.id FROM customers c CROSS JOIN LATERAL'
       || ' (SELECT x.id FROM licenses x WHERE x.customer_id = c.id OFFSET 0) l2'
       || ' WHERE lower(c.email) LIKE $2 OR lower(c.name) LIKE $2'
       || ' UNION ALL SELECT i.license_id FROM installations i WHERE i.installation_id = $1'
       || ' UNION ALL SELECT i.license_id FROM installations i'
       || '  WHERE lower(i.domain) = lower($1) AND i.domain IS NOT NULL'
       || ' UNION ALL SELECT l3.id FROM licenses l3 WHERE l3.domains @> jsonb_build_array(lower($1))';
    IF q ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
      qs := qs || ' UNION ALL SELECT $1::uuid'
               || ' UNION ALL SELECT l4.id FROM licenses l4 WHERE l4.customer_id = $1::uuid';
    END IF;
    -- A narrow search (the usual: an e-mail, a key, an installation) is
    -- answered from its candidates; a broad prefix ("a") walks the newest
    -- licenses instead, where its matches are dense.
    EXECUTE 'SELECT count(*), array_agg(DISTINCT id) FROM (SELECT id FROM (' || qs
         || ') u(id) LIMIT 2001) x' INTO ncand, cands USING q, pat;
    IF ncand <= 2000 THEN
      src := 'unnest($9::uuid[]) cand(id) JOIN licenses l ON l.id = cand.id';
    ELSE
      w := w || ' AND l.id IN (' || qs || ')';
    END IF;
  END IF;
  IF st IS NOT NULL THEN w := w || ' AND l.status = $3'; END IF;
  IF pl IS NOT NULL THEN w := w || ' AND l.plan_code = $4'; END IF;
  IF expd IS NOT NULL THEN
    w := w || ' AND l.status = ''active'' AND l.expires_at IS NOT NULL'
           || ' AND l.expires_at > licd_now() AND l.expires_at <= licd_now() + make_interval(days => $5)';
  END IF;
  IF grace IS TRUE THEN
    w := w || ' AND l.grace_until IS NOT NULL AND l.grace_until > licd_now()';
  ELSIF grace IS FALSE THEN
    w := w || ' AND (l.grace_until IS NULL OR l.grace_until <= licd_now())';
  END IF;
  IF pdue IS NOT NULL THEN
    w := w || CASE WHEN pdue THEN ' AND' ELSE ' AND NOT' END
           || ' l.id IN (SELECT s.license_id FROM subscriptions s'
           || ' WHERE s.status IN (''past_due'', ''unpaid'') AND s.license_id IS NOT NULL)';
  END IF;
  EXECUTE 'SELECT array_agg(id), array_agg(created_at) FROM (SELECT l.id, l.created_at'
       || ' FROM ' || src || ' WHERE true' || w
       || ' ORDER BY l.created_at DESC, l.id DESC LIMIT $8) s'
     INTO ids, ats USING q, pat, st, pl, expd, c_at, c_id, lim + 1, coalesce(cands, '{}');
  IF coalesce(array_length(ids, 1), 0) > lim THEN
    nxt := licd_cursor_enc(jsonb_build_array(ats[lim], ids[lim]));
    ids := ids[1:lim];
  END IF;
  SELECT coalesce(json_agg(licd_admin_license_row(l, c) ORDER BY u.ord), '[]')
    INTO docs
    FROM unnest(ids) WITH ORDINALITY u(id, ord)
    JOIN licenses l ON l.id = u.id JOIN customers c ON c.id = l.customer_id;
  RETURN json_build_object('licenses', docs, 'next_cursor', nxt)::text;
END
$$;

-- GET /api/admin/licenses/{id}: the license (as licd_admin_license), its
-- installations, this month's usage, plus its audit timeline (newest 200)
-- and usage by month for the last 12 months.
CREATE FUNCTION licd_admin_license_full(p_license uuid) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT (d::jsonb || jsonb_build_object(
    'customer', (SELECT jsonb_build_object('id', c.id, 'email', c.email, 'name', c.name)
                   FROM licenses l JOIN customers c ON c.id = l.customer_id
                  WHERE l.id = p_license),
    'audit', coalesce((
      SELECT jsonb_agg(jsonb_build_object('id', a.id, 'at', licd_iso(a.at),
               'actor', a.actor, 'action', a.action, 'reason', a.reason,
               'request_id', a.request_id, 'details', a.details) ORDER BY a.at DESC, a.id DESC)
        FROM (SELECT * FROM audit_log WHERE target_id = p_license::text
               ORDER BY at DESC LIMIT 200) a), '[]'),
    'usage_by_month', coalesce((
      SELECT jsonb_agg(jsonb_build_object('period', to_char(m, 'YYYY-MM'),
               'features', coalesce((SELECT jsonb_object_agg(u.feature, u.used)
                                       FROM usage_counters u
                                      WHERE u.license_id = p_license AND u.period = m::date), '{}'))
               ORDER BY m)
        FROM generate_series(licd_period(licd_now()) - interval '11 months',
                             licd_period(licd_now()), interval '1 month') m), '[]')))::text
  FROM licd_admin_license(p_license) d WHERE d IS NOT NULL
$$;

-- GET /api/admin/customers: q (e-mail or name prefix, or id), cursor, limit.
CREATE FUNCTION licd_admin_customers(p jsonb) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
  lim  int := licd_arg_int(p, 'limit', 1, 200, 50);
  q    text := btrim(licd_arg_text(p, 'q', 254));
  cur  jsonb := licd_cursor_dec(p);
  c_at timestamptz;
  c_id uuid;
  pat  text;
  w    text := '';
  ids  uuid[];
  ats  timestamptz[];
  nxt  text;
  docs json;
BEGIN
  IF cur IS NOT NULL THEN
    BEGIN
      c_at := (cur ->> 0)::timestamptz; c_id := (cur ->> 1)::uuid;
    EXCEPTION WHEN OTHERS THEN
      PERFORM licd_bad('field ''cursor'' is not a cursor this server gave');
    END;
    w := w || ' AND (c.created_at, c.id) < ($3, $4)';
  END IF;
  IF q <> '' THEN
    pat := replace(replace(replace(lower(q), '\', '\\'), '%', '\%'), '_', '\_') || '%';
    w := w || ' AND (lower(c.email) LIKE $2 OR lower(c.name) LIKE $2'
           || CASE WHEN q ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                   THEN ' OR c.id = $1::uuid' ELSE '' END || ')';
  END IF;
  EXECUTE 'SELECT array_agg(id), array_agg(created_at) FROM (SELECT c.id, c.created_at'
       || ' FROM customers c WHERE true' || w
       || ' ORDER BY c.created_at DESC, c.id DESC LIMIT $5) s'
     INTO ids, ats USING q, pat, c_at, c_id, lim + 1;
  IF coalesce(array_length(ids, 1), 0) > lim THEN
    nxt := licd_cursor_enc(jsonb_build_array(ats[lim], ids[lim]));
    ids := ids[1:lim];
  END IF;
  SELECT coalesce(json_agg(json_build_object('id', c.id, 'email', c.email,
           'name', c.name, 'created_at', licd_iso(c.created_at),
           'licenses', (SELECT count(*) FROM licenses l WHERE l.customer_id = c.id))
           ORDER BY u.ord), '[]')
    INTO docs FROM unnest(ids) WITH ORDINALITY u(id, ord) JOIN customers c ON c.id = u.id;
  RETURN json_build_object('customers', docs, 'next_cursor', nxt)::text;
END
$$;

-- GET /api/admin/installations: version, seen_within_days (last seen at
-- most that long ago), not_seen_days (last seen longer ago), status,
-- cursor, limit; most recently seen first.
CREATE FUNCTION licd_admin_installations(p jsonb) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
  lim  int := licd_arg_int(p, 'limit', 1, 200, 50);
  ver  text := licd_arg_text(p, 'version', 64);
  win  int := licd_arg_int(p, 'seen_within_days', 0, 36500, NULL);
  gone int := licd_arg_int(p, 'not_seen_days', 0, 36500, NULL);
  st   text := licd_arg_text(p, 'status', 16, '^(active|inactive)$');
  cur  jsonb := licd_cursor_dec(p);
  c_at timestamptz;
  c_l  uuid;
  c_i  text;
  w    text := '';
  rows jsonb;
  n    int;
  nxt  text;
BEGIN
  IF cur IS NOT NULL THEN
    BEGIN
      c_at := (cur ->> 0)::timestamptz; c_l := (cur ->> 1)::uuid; c_i := cur ->> 2;
    EXCEPTION WHEN OTHERS THEN
      PERFORM licd_bad('field ''cursor'' is not a cursor this server gave');
    END;
    w := w || ' AND (i.last_seen, i.license_id, i.installation_id) < ($4, $5, $6)';
  END IF;
  IF ver IS NOT NULL THEN w := w || ' AND i.version = $1'; END IF;
  IF win IS NOT NULL THEN w := w || ' AND i.last_seen >= licd_now() - make_interval(days => $2)'; END IF;
  IF gone IS NOT NULL THEN w := w || ' AND i.last_seen < licd_now() - make_interval(days => $3)'; END IF;
  IF st IS NOT NULL THEN w := w || ' AND i.status = $8'; END IF;
  EXECUTE 'SELECT jsonb_agg(jsonb_build_object(''license_id'', i.license_id,'
       || ' ''id'', i.installation_id, ''status'', i.status, ''version'', i.version,'
       || ' ''domain'', i.domain, ''metadata'', i.metadata,'
       || ' ''first_seen'', licd_iso(i.first_seen), ''last_seen'', licd_iso(i.last_seen),'
       || ' ''_c'', jsonb_build_array(i.last_seen, i.license_id, i.installation_id))'
       || ' ORDER BY i.last_seen DESC, i.license_id DESC, i.installation_id DESC)'
       || ' FROM (SELECT * FROM installations i WHERE true' || w
       || ' ORDER BY i.last_seen DESC, i.license_id DESC, i.installation_id DESC LIMIT $7) i'
     INTO rows USING ver, win, gone, c_at, c_l, c_i, lim + 1, st;
  n := coalesce(jsonb_array_length(rows), 0);
  IF n > lim THEN
    nxt := licd_cursor_enc(rows -> (lim - 1) -> '_c');
    rows := rows - lim;
  END IF;
  RETURN json_build_object('installations', coalesce((
    SELECT jsonb_agg(e - '_c' ORDER BY o) FROM jsonb_array_elements(rows) WITH ORDINALITY x(e, o)), '[]'),
    'next_cursor', nxt)::text;
END
$$;

-- GET /api/admin/plans: every plan, active or not.
CREATE FUNCTION licd_admin_plans(p jsonb) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT json_build_object('plans', coalesce(json_agg(json_build_object(
           'code', code, 'name', name, 'features', features, 'limits', limits,
           'interval', billing_interval, 'price_cents', price_cents,
           'currency', currency, 'stripe_price_id', stripe_price_id,
           'paddle_price_id', paddle_price_id, 'addon', is_addon,
           'active', active, 'licenses', (SELECT count(*) FROM licenses l WHERE l.plan_code = plans.code),
           'updated_at', licd_iso(updated_at)) ORDER BY code), '[]'))::text
    FROM plans
$$;

-- A keyset page over a table whose newest rows have the largest bigint id.
-- GET /api/admin/audit: actor, action, target, since, until, cursor, limit.
CREATE FUNCTION licd_admin_audit(p jsonb) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
  lim   int := licd_arg_int(p, 'limit', 1, 200, 50);
  act   text := licd_arg_text(p, 'actor', 200);
  acn   text := licd_arg_text(p, 'action', 100);
  tgt   text := licd_arg_text(p, 'target', 200);
  since timestamptz := licd_arg_ts(p, 'since');
  upto  timestamptz := licd_arg_ts(p, 'until');
  cur   jsonb := licd_cursor_dec(p);
  c_id  bigint;
  w     text := '';
  rows  jsonb;
  nxt   text;
BEGIN
  IF cur IS NOT NULL THEN
    BEGIN c_id := (cur ->> 0)::bigint;
    EXCEPTION WHEN OTHERS THEN
      PERFORM licd_bad('field ''cursor'' is not a cursor this server gave');
    END;
    w := w || ' AND a.id < $6';
  END IF;
  IF act IS NOT NULL THEN w := w || ' AND a.actor = $1'; END IF;
  IF acn IS NOT NULL THEN w := w || ' AND a.action = $2'; END IF;
  IF tgt IS NOT NULL THEN w := w || ' AND a.target_id = $3'; END IF;
  IF since IS NOT NULL THEN w := w || ' AND a.at >= $4'; END IF;
  IF upto IS NOT NULL THEN w := w || ' AND a.at < $5'; END IF;
  EXECUTE 'SELECT jsonb_agg(jsonb_build_object(''id'', a.id, ''at'', licd_iso(a.at),'
       || ' ''actor'', a.actor, ''action'', a.action, ''target_type'', a.target_type,'
       || ' ''target_id'', a.target_id, ''reason'', a.reason, ''request_id'', a.request_id,'
       || ' ''details'', a.details) ORDER BY a.id DESC)'
       || ' FROM (SELECT * FROM audit_log a WHERE true' || w
       || ' ORDER BY a.id DESC LIMIT $7) a'
     INTO rows USING act, acn, tgt, since, upto, c_id, lim + 1;
  IF coalesce(jsonb_array_length(rows), 0) > lim THEN
    rows := rows - lim;
    nxt := licd_cursor_enc(jsonb_build_array(rows -> (lim - 1) -> 'id'));
  END IF;
  RETURN json_build_object('entries', coalesce(rows, '[]'), 'next_cursor', nxt)::text;
END
$$;

-- GET /api/admin/notifications: status (pending, delivered), license,
-- cursor, limit; newest first, with attempts and the last error.
CREATE FUNCTION licd_admin_notifications(p jsonb) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
  lim  int := licd_arg_int(p, 'limit', 1, 200, 50);
  st   text := licd_arg_text(p, 'status', 16, '^(pending|delivered)$');
  lic  text := licd_arg_text(p, 'license', 36,
                 '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$');
  cur  jsonb := licd_cursor_dec(p);
  c_id bigint;
  w    text := '';
  rows jsonb;
  nxt  text;
BEGIN
  IF cur IS NOT NULL THEN
    BEGIN c_id := (cur ->> 0)::bigint;
    EXCEPTION WHEN OTHERS THEN
      PERFORM licd_bad('field ''cursor'' is not a cursor this server gave');
    END;
    w := w || ' AND n.id < $3';
  END IF;
  IF st IS NOT NULL THEN w := w || ' AND n.status = $1'; END IF;
  IF lic IS NOT NULL THEN w := w || ' AND n.license_id = $2::uuid'; END IF;
  EXECUTE 'SELECT jsonb_agg(jsonb_build_object(''id'', n.id, ''kind'', n.kind,'
       || ' ''license_id'', n.license_id, ''recipient'', n.recipient, ''status'', n.status,'
       || ' ''attempts'', n.attempts, ''last_error'', n.last_error,'
       || ' ''next_attempt_at'', licd_iso(n.next_attempt_at),'
       || ' ''created_at'', licd_iso(n.created_at), ''delivered_at'', licd_iso(n.delivered_at))'
       || ' ORDER BY n.id DESC)'
       || ' FROM (SELECT * FROM notifications n WHERE true' || w
       || ' ORDER BY n.id DESC LIMIT $4) n'
     INTO rows USING st, lic, c_id, lim + 1;
  IF coalesce(jsonb_array_length(rows), 0) > lim THEN
    rows := rows - lim;
    nxt := licd_cursor_enc(jsonb_build_array(rows -> (lim - 1) -> 'id'));
  END IF;
  RETURN json_build_object('notifications', coalesce(rows, '[]'), 'next_cursor', nxt)::text;
END
$$;

-- GET /api/admin/webhook-events: status (applied, pending, ignored, or any
-- later state), provider, cursor, limit; newest first. The payload is left
-- out (it can be large); the type, subject and times are shown.
CREATE FUNCTION licd_admin_webhook_events(p jsonb) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
  lim  int := licd_arg_int(p, 'limit', 1, 200, 50);
  st   text := licd_arg_text(p, 'status', 32, '^[a-z_]+$');
  pv   text := licd_arg_text(p, 'provider', 16, '^(stripe|paddle)$');
  cur  jsonb := licd_cursor_dec(p);
  c_at timestamptz;
  c_p  text;
  c_e  text;
  w    text := '';
  rows jsonb;
  nxt  text;
BEGIN
  IF cur IS NOT NULL THEN
    BEGIN c_at := (cur ->> 0)::timestamptz; c_p := cur ->> 1; c_e := cur ->> 2;
    EXCEPTION WHEN OTHERS THEN
      PERFORM licd_bad('field ''cursor'' is not a cursor this server gave');
    END;
    w := w || ' AND (e.received_at, e.provider, e.event_id) < ($3, $4, $5)';
  END IF;
  IF st IS NOT NULL THEN w := w || ' AND e.status = $1'; END IF;
  IF pv IS NOT NULL THEN w := w || ' AND e.provider = $2'; END IF;
  EXECUTE 'SELECT jsonb_agg(jsonb_build_object(''provider'', e.provider,'
       || ' ''event_id'', e.event_id, ''type'', e.type, ''status'', e.status,'
       || ' ''subject'', e.subject, ''received_at'', licd_iso(e.received_at),'
       || ' ''applied_at'', licd_iso(e.applied_at), ''request_id'', e.request_id,'
       || ' ''_c'', jsonb_build_array(e.received_at, e.provider, e.event_id))'
       || ' ORDER BY e.received_at DESC, e.provider DESC, e.event_id DESC)'
       || ' FROM (SELECT * FROM webhook_events e WHERE true' || w
       || ' ORDER BY e.received_at DESC, e.provider DESC, e.event_id DESC LIMIT $6) e'
     INTO rows USING st, pv, c_at, c_p, c_e, lim + 1;
  IF coalesce(jsonb_array_length(rows), 0) > lim THEN
    nxt := licd_cursor_enc(rows -> (lim - 1) -> '_c');
    rows := rows - lim;
  END IF;
  RETURN json_build_object('events', coalesce((
    SELECT jsonb_agg(x - '_c' ORDER BY o) FROM jsonb_array_elements(rows) WITH ORDINALITY t(x, o)), '[]'),
    'next_cursor', nxt)::text;
END
$$;

-- GET /api/admin/overview: the console's first page.
CREATE FUNCTION licd_admin_overview(p jsonb) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'generated_at', licd_iso(licd_now()),
    'licenses_by_status', (SELECT json_build_object(
        'active', count(*) FILTER (WHERE status = 'active'),
        'suspended', count(*) FILTER (WHERE status = 'suspended'),
        'revoked', count(*) FILTER (WHERE status = 'revoked'),
        'expired', count(*) FILTER (WHERE status = 'expired')) FROM licenses),
    'installations_seen', json_build_object(
        '24h', (SELECT count(*) FROM installations WHERE status = 'active'
                  AND last_seen >= licd_now() - interval '24 hours'),
        '7d', (SELECT count(*) FROM installations WHERE status = 'active'
                  AND last_seen >= licd_now() - interval '7 days')),
    'versions', coalesce((SELECT json_agg(json_build_object('version', v, 'installations', n)
                                          ORDER BY n DESC, v)
        FROM (SELECT coalesce(version, '') AS v, count(*) AS n FROM installations
               WHERE status = 'active' AND last_seen >= licd_now() - interval '30 days'
               GROUP BY 1 ORDER BY 2 DESC LIMIT 20) x), '[]'),
    'validations', (SELECT json_agg(json_build_object('day', to_char(d, 'YYYY-MM-DD'),
                       'codes', coalesce((SELECT json_object_agg(code, n) FROM validation_counts vc
                                           WHERE vc.day = d::date), '{}')) ORDER BY d)
        FROM generate_series((licd_now() AT TIME ZONE 'UTC')::date - 29,
                             (licd_now() AT TIME ZONE 'UTC')::date, interval '1 day') d),
    'usage_near_limits', coalesce((SELECT json_agg(json_build_object(
          'license_id', x.license_id, 'email', x.email, 'feature', x.feature,
          'used', x.used, 'limit', x.lim) ORDER BY x.ratio DESC, x.used DESC)
        FROM (SELECT u.license_id, c.email, u.feature, u.used, (l.limits ->> (u.feature || '_per_month'))::bigint AS lim,
                     u.used::numeric / greatest((l.limits ->> (u.feature || '_per_month'))::numeric, 1) AS ratio
                FROM usage_counters u JOIN licenses l ON l.id = u.license_id
                JOIN customers c ON c.id = l.customer_id
               WHERE u.period = licd_period(licd_now()) AND l.status = 'active'
                 AND l.limits ? (u.feature || '_per_month')
               ORDER BY 6 DESC, u.used DESC LIMIT 10) x), '[]'),
    'expiring_30d', json_build_object(
        'count', (SELECT count(*) FROM licenses WHERE status = 'active'
                   AND expires_at > licd_now() AND expires_at <= licd_now() + interval '30 days'),
        'licenses', coalesce((SELECT json_agg(json_build_object('id', l.id, 'email', c.email,
                     'plan', l.plan_code, 'expires_at', licd_iso(l.expires_at)) ORDER BY l.expires_at)
          FROM (SELECT * FROM licenses WHERE status = 'active' AND expires_at > licd_now()
                   AND expires_at <= licd_now() + interval '30 days'
                 ORDER BY expires_at LIMIT 10) l JOIN customers c ON c.id = l.customer_id), '[]'))
  )::text
$$;

-- ---- writes (each audited with the acting token's name) ---------------

-- POST /api/admin/customers {email, name?}: idempotent per e-mail address.
CREATE FUNCTION licd_admin_customer_create(p jsonb, p_actor text, p_rid text)
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

CREATE FUNCTION licd_arg_json(p jsonb, k text, typ text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF NOT p ? k OR p -> k = 'null' THEN RETURN NULL; END IF;
  IF jsonb_typeof(p -> k) <> typ THEN
    PERFORM licd_bad(format('field ''%s'' must be an %s', k, typ));
  END IF;
  RETURN p -> k;
END
$$;

-- Domain restrictions as stored: lower case, no trailing dot, each once.
CREATE FUNCTION licd_norm_domains(d jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN d IS NULL OR jsonb_typeof(d) <> 'array'
              OR EXISTS (SELECT 1 FROM jsonb_array_elements(d) e WHERE jsonb_typeof(e) <> 'string')
              THEN d
              ELSE (SELECT coalesce(jsonb_agg(DISTINCT rtrim(lower(e #>> '{}'), '.')), '[]')
                      FROM jsonb_array_elements(d) e) END
$$;

CREATE FUNCTION licd_check_entitlements(f jsonb, l jsonb, d jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF f IS NOT NULL AND NOT licd_features_ok(f) THEN
    PERFORM licd_bad('field ''features'' must be an array of names [a-z0-9_.-]');
  END IF;
  IF l IS NOT NULL AND NOT licd_limits_ok(l) THEN
    PERFORM licd_bad('field ''limits'' must map names to non-negative integers');
  END IF;
  IF d IS NOT NULL AND NOT licd_domains_ok(d) THEN
    PERFORM licd_bad('field ''domain_restrictions'' must be an array of lower-case host names or *.host patterns');
  END IF;
END
$$;

-- POST /api/admin/licenses {customer (id or e-mail), plan, expires_at |
-- days | perpetual, features?, limits?, domain_restrictions?}: the row; the
-- caller signs the key and stores it with licd_admin_license_keyed in the
-- same transaction. Returns the new id.
CREATE FUNCTION licd_admin_license_issue(p jsonb, p_actor text, p_rid text)
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
-- fields given change. The signed key keeps its claims as issued; the
-- database is what validate checks (docs/API.md).
CREATE FUNCTION licd_admin_license_edit(p_license uuid, p jsonb, p_actor text, p_rid text)
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

-- POST …/{id}/installations/{iid}/deactivate {reason?}
CREATE FUNCTION licd_admin_deactivate(p_license uuid, p_iid text, p_reason text,
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
-- currency?, interval?, addon?, active?}: creates, or changes only the
-- fields given (like licctl plan set). Licenses issued later copy it.
CREATE FUNCTION licd_admin_plan_set(p jsonb, p_actor text, p_rid text)
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
-- now (its attempts are kept); a delivered one is 409.
CREATE FUNCTION licd_admin_notification_retry(p_id bigint, p_actor text, p_rid text)
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

-- ---- console sessions ---------------------------------------------------

CREATE FUNCTION licd_session_open(p_hash bytea, p_csrf text, p_actor text,
                                  p_ttl int, p_rid text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  exp timestamptz := now() + make_interval(secs => p_ttl);
BEGIN
  DELETE FROM admin_sessions WHERE expires_at < now() - interval '1 day';
  INSERT INTO admin_sessions (id_hash, csrf, actor, expires_at)
  VALUES (p_hash, p_csrf, p_actor, exp);
  PERFORM licd_audit(p_actor, 'session.open', 'session', encode(substr(p_hash, 1, 8), 'hex'),
                     NULL, p_rid, NULL);
  RETURN licd_iso(exp);
END
$$;

-- The live session of a cookie's hash: actor, csrf, expires_at.
CREATE FUNCTION licd_session_get(p_hash bytea)
RETURNS TABLE (actor text, csrf text, expires_at text)
LANGUAGE sql STABLE AS $$
  SELECT s.actor, s.csrf, licd_iso(s.expires_at) FROM admin_sessions s
   WHERE s.id_hash = p_hash AND s.ended_at IS NULL AND s.expires_at > now()
$$;

CREATE FUNCTION licd_session_end(p_hash bytea, p_rid text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  who text;
BEGIN
  UPDATE admin_sessions SET ended_at = now()
   WHERE id_hash = p_hash AND ended_at IS NULL RETURNING actor INTO who;
  IF who IS NULL THEN RETURN false; END IF;
  PERFORM licd_audit(who, 'session.end', 'session', encode(substr(p_hash, 1, 8), 'hex'),
                     NULL, p_rid, NULL);
  RETURN true;
END
$$;

-- ---- validation counters ------------------------------------------------

-- p: {"CODE": n, ...} counted by one process since its last flush.
CREATE FUNCTION licd_count_validations(p jsonb) RETURNS void
LANGUAGE sql AS $$
  INSERT INTO validation_counts AS v (day, code, n)
  SELECT (licd_now() AT TIME ZONE 'UTC')::date, e.key, (e.value #>> '{}')::bigint
    FROM jsonb_each(p) e
   WHERE e.key ~ '^[A-Z_]{1,40}$' AND (e.value #>> '{}')::bigint > 0
  ON CONFLICT (day, code) DO UPDATE SET n = v.n + EXCLUDED.n
$$;
