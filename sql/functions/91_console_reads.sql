-- functions/91_console_reads.sql: the admin API's lists and pages (GET
-- /api/admin/..., program revoke). Filters are added to a list's statement
-- only when given, so that each query is planned for the indexes its
-- filters can use (tests/integration/test_console_explain.py proves every
-- list and search uses them). All read only.

-- A license as the lists show it, with its customer's e-mail and name and
-- its count of active installations (as the license document counts them:
-- licd_active_installations).
CREATE OR REPLACE FUNCTION licd_admin_license_row(l licenses, c customers) RETURNS json
LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'id', l.id, 'customer_id', l.customer_id, 'email', c.email,
    'customer_name', c.name, 'plan', l.plan_code, 'status', l.status,
    'issued_at', licd_iso(l.issued_at), 'expires_at', licd_iso(l.expires_at),
    'grace_until', licd_iso(l.grace_until),
    'domain_restrictions', l.domains, 'limits', l.limits,
    'active_installations', licd_active_installations(l),
    'created_at', licd_iso(l.created_at))
$$;

-- GET /api/admin/licenses (and POST .../licenses/search): q (license id,
-- customer id, e-mail or name prefix, domain, installation id; the admin
-- program turns a license key into its id), status, plan, expiring_days,
-- in_grace, past_due, cursor, limit; newest first. Returns {"licenses",
-- "next_cursor"}.
CREATE OR REPLACE FUNCTION licd_admin_licenses(p jsonb) RETURNS text
LANGUAGE plpgsql STABLE
SET max_parallel_workers_per_gather = 0 SET jit = off AS $$
DECLARE
  lim   int := licd_arg_int(p, 'limit', 1, 200, 50);
  q     text := licd_arg_text(p, 'q', 254);
  st    text := licd_arg_text(p, 'status', 16, '^(active|suspended|revoked|expired)$');
  pl    text := licd_arg_text(p, 'plan', 64);
  expd  int := licd_arg_int(p, 'expiring_days', 0, 36500, NULL);
  grace boolean := licd_arg_bool(p, 'in_grace');
  pdue  boolean := licd_arg_bool(p, 'past_due');
  cur   jsonb := licd_cursor_dec(p);
  c_at  timestamptz := licd_cursor_key(cur, 0, NULL::timestamptz);
  c_id  uuid := licd_cursor_key(cur, 1, NULL::uuid);
  is_id boolean;
  qs    text;
  pat   text;
  w     text := '';
  ids   uuid[];
  ats   timestamptz[];
  cands uuid[];
  n     bigint;
  nlic  float8;
  per   float8;
  k     bigint;
  src   text := 'licenses l';
  join_c text;
  nxt   text;
  docs  json;
BEGIN
  IF cur IS NOT NULL THEN w := w || ' AND (l.created_at, l.id) < ($6, $7)'; END IF;
  -- A selective filter (a search, past_due) is answered from the licenses
  -- it names, looked up by their own indexes and sorted; a broad one walks
  -- the newest licenses and tests each until the page is full. Either way
  -- the answer is exact; the cheaper depends on how many licenses the
  -- filter names: with K of N evenly spread, sorting them costs K lookups
  -- and walking N * (limit + 1) / K tests, each a fraction of a lookup
  -- (a third for a search, which reads the license's customer; a
  -- sixteenth for past_due, a probe of a small hashed set).
  SELECT greatest(reltuples, 1000) INTO nlic FROM pg_class WHERE oid = 'licenses'::regclass;
  k := ceil(sqrt(nlic * (lim + 1) / 3));
  q := btrim(q);
  IF q <> '' THEN
    pat := replace(replace(replace(lower(q), '\', '\\'), '%', '\%'), '_', '\_') || '%';
    is_id := q ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
    -- How many licenses the customer prefix names, estimated from the
    -- customers it names (counted in the indexes, at most what decides).
    SELECT greatest(reltuples, 1) INTO per FROM pg_class WHERE oid = 'customers'::regclass;
    per := greatest(nlic / per, 1);
    SELECT (SELECT count(*) FROM (SELECT 1 FROM customers c WHERE lower(c.email) LIKE pat
                                   LIMIT ceil(k / per) + 1) a)
         + (SELECT count(*) FROM (SELECT 1 FROM customers c WHERE lower(c.name) LIKE pat
                                   LIMIT ceil(k / per) + 1) b)
      INTO n;
    IF n * per <= k THEN
      -- Every license the value can name, each source by its own index,
      -- read once with the columns the other filters and the order need.
      qs := 'SELECT x.* FROM customers c CROSS JOIN LATERAL'
         || ' (SELECT x.* FROM licenses x WHERE x.customer_id = c.id OFFSET 0) x'
         || ' WHERE lower(c.email) LIKE $2 OR lower(c.name) LIKE $2'
         || ' UNION ALL SELECT x.* FROM licenses x WHERE x.id = ANY (ARRAY(SELECT i.license_id'
         || ' FROM installations i WHERE i.installation_id = $1'
         || ' OR (lower(i.domain) = lower($1) AND i.domain IS NOT NULL)))'
         || ' UNION ALL SELECT x.* FROM licenses x WHERE x.domains @> jsonb_build_array(lower($1))';
      IF is_id THEN
        qs := qs || ' UNION ALL SELECT x.* FROM licenses x'
                 || ' WHERE x.id = $1::uuid OR x.customer_id = $1::uuid';
      END IF;
      src := '(SELECT DISTINCT ON (u.id) u.* FROM (' || qs || ') u) l';
    ELSE
      join_c := ' CROSS JOIN LATERAL (SELECT c.email, c.name FROM customers c'
             || ' WHERE c.id = l.customer_id OFFSET 0) c';
      w := w || ' AND (lower(c.email) LIKE $2 OR lower(c.name) LIKE $2'
             || ' OR l.domains @> jsonb_build_array(lower($1))'
             || ' OR l.id IN (SELECT i.license_id FROM installations i WHERE i.installation_id = $1'
             || ' OR (lower(i.domain) = lower($1) AND i.domain IS NOT NULL))'
             || CASE WHEN is_id THEN ' OR l.id = $1::uuid OR l.customer_id = $1::uuid' ELSE '' END
             || ')';
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
  IF pdue IS TRUE AND src = 'licenses l' THEN
    k := ceil(sqrt(nlic * (lim + 1) / 16));
    SELECT count(*) INTO n FROM (SELECT 1 FROM subscriptions s
      WHERE s.status IN ('past_due', 'unpaid') AND s.license_id IS NOT NULL LIMIT k + 1) x;
    IF n <= k THEN
      cands := ARRAY(SELECT s.license_id FROM subscriptions s
                      WHERE s.status IN ('past_due', 'unpaid') AND s.license_id IS NOT NULL);
      src := 'unnest($9::uuid[]) cand(id) JOIN licenses l ON l.id = cand.id';
      pdue := NULL;
    END IF;
  END IF;
  IF pdue IS TRUE THEN
    -- tested against the hashed set, not joined (a join would probe the
    -- index once per license walked)
    w := w || ' AND (l.id IN (SELECT s.license_id FROM subscriptions s'
           || ' WHERE s.status IN (''past_due'', ''unpaid'') AND s.license_id IS NOT NULL)) IS TRUE';
  ELSIF pdue IS FALSE THEN
    w := w || ' AND NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.license_id = l.id'
           || ' AND s.status IN (''past_due'', ''unpaid''))';
  END IF;
  EXECUTE 'SELECT array_agg(id), array_agg(created_at) FROM (SELECT l.id, l.created_at'
       || ' FROM ' || src || coalesce(join_c, '') || ' WHERE true' || w
       || ' ORDER BY l.created_at DESC, l.id DESC LIMIT $8) s'
     INTO ids, ats USING q, pat, st, pl, expd, c_at, c_id, lim + 1, cands;
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

-- GET /api/admin/licenses/{id}: licd_admin_license's document plus the
-- customer, the audit timeline (newest 200) and usage by month for the
-- last 12 months. NULL for an unknown license.
CREATE OR REPLACE FUNCTION licd_admin_license_full(p_license uuid) RETURNS text
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

-- GET /api/admin/customers: q (e-mail or name prefix, or id), cursor,
-- limit; newest first, each with its number of licenses. Returns
-- {"customers", "next_cursor"}.
CREATE OR REPLACE FUNCTION licd_admin_customers(p jsonb) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
  lim  int := licd_arg_int(p, 'limit', 1, 200, 50);
  q    text := btrim(licd_arg_text(p, 'q', 254));
  cur  jsonb := licd_cursor_dec(p);
  c_at timestamptz := licd_cursor_key(cur, 0, NULL::timestamptz);
  c_id uuid := licd_cursor_key(cur, 1, NULL::uuid);
  pat  text;
  w    text := '';
  ids  uuid[];
  ats  timestamptz[];
  nxt  text;
  docs json;
BEGIN
  IF cur IS NOT NULL THEN w := w || ' AND (c.created_at, c.id) < ($3, $4)'; END IF;
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
-- cursor, limit; by seen_hour (033: the start of the hour-long span
-- last_seen falls in), the latest first, then by license and installation
-- id, descending. The filters compare last_seen and bound seen_hour with
-- it (seen_hour is in (last_seen - 1 hour, last_seen]), so that the index
-- on it serves. Returns {"installations", "next_cursor"}.
CREATE OR REPLACE FUNCTION licd_admin_installations(p jsonb) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
  lim  int := licd_arg_int(p, 'limit', 1, 200, 50);
  ver  text := licd_arg_text(p, 'version', 64);
  win  int := licd_arg_int(p, 'seen_within_days', 0, 36500, NULL);
  gone int := licd_arg_int(p, 'not_seen_days', 0, 36500, NULL);
  st   text := licd_arg_text(p, 'status', 16, '^(active|inactive)$');
  cur  jsonb := licd_cursor_dec(p);
  c_at timestamptz := licd_cursor_key(cur, 0, NULL::timestamptz);
  c_l  uuid := licd_cursor_key(cur, 1, NULL::uuid);
  c_i  text := licd_cursor_key(cur, 2, NULL::text);
  w    text := '';
  rows jsonb;
  nxt  text;
BEGIN
  IF cur IS NOT NULL THEN
    w := w || ' AND (i.seen_hour, i.license_id, i.installation_id) < ($4, $5, $6)';
  END IF;
  IF ver IS NOT NULL THEN w := w || ' AND i.version = $1'; END IF;
  IF win IS NOT NULL THEN
    w := w || ' AND i.last_seen >= licd_now() - make_interval(days => $2)'
           || ' AND i.seen_hour > licd_now() - make_interval(days => $2, hours => 1)';
  END IF;
  IF gone IS NOT NULL THEN
    w := w || ' AND i.last_seen < licd_now() - make_interval(days => $3)'
           || ' AND i.seen_hour < licd_now() - make_interval(days => $3)';
  END IF;
  IF st IS NOT NULL THEN w := w || ' AND i.status = $8'; END IF;
  EXECUTE 'SELECT jsonb_agg(jsonb_build_object(''license_id'', i.license_id,'
       || ' ''id'', i.installation_id, ''status'', i.status, ''version'', i.version,'
       || ' ''domain'', i.domain, ''metadata'', i.metadata,'
       || ' ''first_seen'', licd_iso(i.first_seen), ''last_seen'', licd_iso(i.last_seen),'
       || ' ''_c'', jsonb_build_array(i.seen_hour, i.license_id, i.installation_id))'
       || ' ORDER BY i.seen_hour DESC, i.license_id DESC, i.installation_id DESC)'
       || ' FROM (SELECT * FROM installations i WHERE true' || w
       || ' ORDER BY i.seen_hour DESC, i.license_id DESC, i.installation_id DESC LIMIT $7) i'
     INTO rows USING ver, win, gone, c_at, c_l, c_i, lim + 1, st;
  SELECT * INTO rows, nxt FROM licd_page(rows, lim, '_c');
  RETURN json_build_object('installations', rows, 'next_cursor', nxt)::text;
END
$$;

-- GET /api/admin/plans: every plan, active or not, with its number of
-- licenses (summed from license_counts, 94_license_counts.sql). Returns
-- {"plans"}.
CREATE OR REPLACE FUNCTION licd_admin_plans(p jsonb) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT json_build_object('plans', coalesce(json_agg(json_build_object(
           'code', code, 'name', name, 'features', features, 'limits', limits,
           'interval', billing_interval, 'price_cents', price_cents,
           'currency', currency, 'stripe_price_id', stripe_price_id,
           'paddle_price_id', paddle_price_id, 'addon', is_addon,
           'active', active, 'licenses', coalesce(k.n, 0),
           'updated_at', licd_iso(updated_at)) ORDER BY code), '[]'))::text
    FROM plans LEFT JOIN (SELECT plan_code, sum(n) AS n FROM license_counts GROUP BY 1) k
      ON k.plan_code = plans.code
$$;

-- GET /api/admin/audit: actor, action, target, since, until, cursor, limit;
-- newest first. Returns {"entries", "next_cursor"}.
CREATE OR REPLACE FUNCTION licd_admin_audit(p jsonb) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
  lim   int := licd_arg_int(p, 'limit', 1, 200, 50);
  act   text := licd_arg_text(p, 'actor', 200);
  acn   text := licd_arg_text(p, 'action', 100);
  tgt   text := licd_arg_text(p, 'target', 200);
  since timestamptz := licd_arg_ts(p, 'since');
  upto  timestamptz := licd_arg_ts(p, 'until');
  c_id  bigint := licd_cursor_id(p);
  w     text := '';
  rows  jsonb;
  nxt   text;
BEGIN
  IF c_id IS NOT NULL THEN w := w || ' AND a.id < $6'; END IF;
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
  SELECT * INTO rows, nxt FROM licd_page(rows, lim, 'id');
  RETURN json_build_object('entries', rows, 'next_cursor', nxt)::text;
END
$$;

-- GET /api/admin/notifications: status (pending, delivered), license,
-- cursor, limit; newest first, with attempts and the last error. Returns
-- {"notifications", "next_cursor"}.
CREATE OR REPLACE FUNCTION licd_admin_notifications(p jsonb) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
  lim  int := licd_arg_int(p, 'limit', 1, 200, 50);
  st   text := licd_arg_text(p, 'status', 16, '^(pending|delivered)$');
  lic  text := licd_arg_text(p, 'license', 36,
                 '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$');
  c_id bigint := licd_cursor_id(p);
  w    text := '';
  rows jsonb;
  nxt  text;
BEGIN
  IF c_id IS NOT NULL THEN w := w || ' AND n.id < $3'; END IF;
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
  SELECT * INTO rows, nxt FROM licd_page(rows, lim, 'id');
  RETURN json_build_object('notifications', rows, 'next_cursor', nxt)::text;
END
$$;

-- GET /api/admin/webhook-events: status (applied, pending, ignored, or any
-- later state), provider, cursor, limit; newest first. The payload is left
-- out (it can be large); the type, subject and times are shown. Returns
-- {"events", "next_cursor"}.
CREATE OR REPLACE FUNCTION licd_admin_webhook_events(p jsonb) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
  lim  int := licd_arg_int(p, 'limit', 1, 200, 50);
  st   text := licd_arg_text(p, 'status', 32, '^[a-z_]+$');
  pv   text := licd_arg_text(p, 'provider', 16, '^(stripe|paddle)$');
  cur  jsonb := licd_cursor_dec(p);
  c_at timestamptz := licd_cursor_key(cur, 0, NULL::timestamptz);
  c_p  text := licd_cursor_key(cur, 1, NULL::text);
  c_e  text := licd_cursor_key(cur, 2, NULL::text);
  w    text := '';
  rows jsonb;
  nxt  text;
BEGIN
  IF cur IS NOT NULL THEN
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
  SELECT * INTO rows, nxt FROM licd_page(rows, lim, '_c');
  RETURN json_build_object('events', rows, 'next_cursor', nxt)::text;
END
$$;

-- GET /api/admin/overview: the console's first page (licenses by status,
-- installations seen, versions, 30 days of validation counts, usage near
-- its limits, licenses expiring within 30 days). Reads no whole table:
-- licenses by status from license_counts; installations, versions and
-- usage as licd-lifecycle last counted them (console_figures, with its
-- as_of; zeros and empty lists before its first run); validations from
-- the daily counters; expiring licenses from licenses_expiry_created.
CREATE OR REPLACE FUNCTION licd_admin_overview(p jsonb) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT json_build_object(
    'generated_at', licd_iso(licd_now()),
    'licenses_by_status', (SELECT json_build_object(
        'active', coalesce(sum(n) FILTER (WHERE status = 'active'), 0),
        'suspended', coalesce(sum(n) FILTER (WHERE status = 'suspended'), 0),
        'revoked', coalesce(sum(n) FILTER (WHERE status = 'revoked'), 0),
        'expired', coalesce(sum(n) FILTER (WHERE status = 'expired'), 0)) FROM license_counts),
    'as_of', licd_iso(f.as_of),
    'installations_seen', coalesce(f.installations_seen, json_build_object('24h', 0, '7d', 0)),
    'versions', coalesce(f.versions, '[]'),
    'validations', (SELECT json_agg(json_build_object('day', to_char(d, 'YYYY-MM-DD'),
                       'codes', coalesce((SELECT json_object_agg(code, n) FROM validation_counts vc
                                           WHERE vc.day = d::date), '{}')) ORDER BY d)
        FROM generate_series((licd_now() AT TIME ZONE 'UTC')::date - 29,
                             (licd_now() AT TIME ZONE 'UTC')::date, interval '1 day') d),
    'usage_near_limits', coalesce(f.usage_near_limits, '[]'),
    'expiring_30d', json_build_object(
        'count', (SELECT count(*) FROM licenses WHERE status = 'active'
                   AND expires_at > licd_now() AND expires_at <= licd_now() + interval '30 days'),
        'licenses', coalesce((SELECT json_agg(json_build_object('id', l.id, 'email', c.email,
                     'plan', l.plan_code, 'expires_at', licd_iso(l.expires_at)) ORDER BY l.expires_at)
          FROM (SELECT * FROM licenses WHERE status = 'active' AND expires_at > licd_now()
                   AND expires_at <= licd_now() + interval '30 days'
                 ORDER BY expires_at LIMIT 10) l JOIN customers c ON c.id = l.customer_id), '[]'))
  )::text
  FROM (SELECT 1) one LEFT JOIN console_figures f ON true
$$;
