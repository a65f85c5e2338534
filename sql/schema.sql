-- Name: licd_activate(uuid, text, text, jsonb, text); Type: FUNCTION

CREATE FUNCTION public.licd_activate(p_license uuid, p_iid text, p_version text, p_metadata jsonb, p_domain text) RETURNS TABLE(code text, first_seen bigint, last_seen bigint)
    LANGUAGE sql
    AS $$
  SELECT b.code, b.first_seen, b.last_seen
    FROM licd_activate_batch(jsonb_build_array(jsonb_build_object(
           'o', 0, 'l', p_license, 'i', p_iid, 'v', p_version,
           'm', p_metadata::text, 'd', p_domain, 'c', false))) b
$$;

-- Name: licd_activate_batch(jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_activate_batch(p_items jsonb) RETURNS TABLE(ord integer, code text, first_seen bigint, last_seen bigint)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
DECLARE
  t       timestamptz := licd_now();
  locked  uuid[];
BEGIN
  locked := licd_lock_items(p_items);
  RETURN QUERY
  WITH r AS (
    -- each item with its license's verdict: NULL when it may take a seat
    SELECT x.o, x.l, x.i, x.v, x.m, x.d, coalesce(x.h, false) AS h,
           (l.limits ->> 'installations')::numeric::bigint AS seats,
           CASE
             WHEN l.id IS NULL THEN 'INVALID_KEY'
             WHEN NOT l.id = ANY (locked) THEN 'BUSY'
             WHEN l.status <> 'active' THEN upper(l.status)
             WHEN l.expires_at IS NOT NULL AND
                  greatest(l.expires_at, l.grace_until) <= t THEN 'EXPIRED'
             WHEN l.seat_model <> 'node' THEN 'NOT_FLOATING'
             WHEN x.c AND l.domains <> '[]' AND
                  NOT licd_domain_allowed(l.domains, x.d) THEN 'DOMAIN_NOT_ALLOWED'
             WHEN x.c AND x.f IS NOT NULL AND
                  NOT coalesce(l.features ? x.f, false) THEN 'FEATURE_NOT_LICENSED'
           END AS refused
      FROM jsonb_to_recordset(p_items)
        AS x(o int, l uuid, i text, v text, m text, d text, f text, c boolean,
             h boolean)
      LEFT JOIN licenses l ON l.id = x.l
  ), p AS (
    -- the installations that may take or keep a seat, with what each
    -- writes, whether its row is there (found: NULL if not, else whether
    -- it holds a seat) and, for a limited license, the seats in use
    SELECT r.l, r.i, r.seats,
           (array_agg(r.v ORDER BY r.o DESC) FILTER (WHERE r.v IS NOT NULL))[1] AS v,
           (array_agg(r.m ORDER BY r.o DESC) FILTER (WHERE r.m IS NOT NULL))[1] AS m,
           (array_agg(r.d ORDER BY r.o DESC) FILTER (WHERE r.d IS NOT NULL))[1] AS d,
           bool_or(r.h) AS h,
           (SELECT s.status = 'active' FROM installations s
             WHERE s.license_id = r.l AND s.installation_id = r.i) AS found,
           CASE WHEN r.seats IS NOT NULL THEN
             coalesce((SELECT s.active FROM license_seats s
                        WHERE s.license_id = r.l), 0) END AS used
      FROM r
     WHERE r.refused IS NULL
     GROUP BY r.l, r.i, r.seats
  ), q AS (
    -- k: the license's new installations up to this one, in order
    SELECT p.*, count(*) FILTER (WHERE NOT p.held)
                  OVER (PARTITION BY p.l ORDER BY p.i) AS k
      FROM (SELECT p.*, coalesce(p.found, false) AS held FROM p) p
  ), g AS (
    -- the installations that take or keep a seat
    SELECT q.* FROM q
     WHERE q.seats IS NULL OR (q.held AND q.h) OR
           CASE WHEN q.held
                THEN q.used - 1 + least(q.k, greatest(q.seats - q.used, 0)) < q.seats
                ELSE q.used + q.k - 1 < q.seats END
  ), wn AS (
    -- rows not there: every writer that inserts an installation holds
    -- its license's lock (here, licd_seat, licd_seat_batch), so none
    -- appears before the commit, and a plain insert spares ON
    -- CONFLICT's speculative insertion; should one appear all the same
    -- (a statement that skipped the lock), the statement fails and the
    -- caller's retry finds the row
    INSERT INTO installations AS s (license_id, installation_id, status, version,
                                    metadata, domain, first_seen, last_seen,
                                    activated_at)
    SELECT g.l, g.i, 'active', g.v, g.m::jsonb, g.d, t, t, t
      FROM g
     WHERE g.found IS NULL
     ORDER BY g.l, g.i
    RETURNING s.license_id, s.installation_id,
              extract(epoch FROM s.first_seen)::bigint AS fs,
              extract(epoch FROM s.last_seen)::bigint AS ls,
              false AS kept
  ), wo AS (
    -- rows there: reactivated or kept
    INSERT INTO installations AS s (license_id, installation_id, status, version,
                                    metadata, domain, first_seen, last_seen,
                                    activated_at)
    SELECT g.l, g.i, 'active', g.v, g.m::jsonb, g.d, t, t, t
      FROM g
     WHERE g.found IS NOT NULL
     ORDER BY g.l, g.i
    ON CONFLICT (license_id, installation_id) DO UPDATE
       SET status = 'active', last_seen = t,
           activated_at = CASE WHEN s.status = 'active' THEN s.activated_at ELSE t END,
           deactivated_at = NULL,
           version = coalesce(EXCLUDED.version, s.version),
           metadata = coalesce(EXCLUDED.metadata, s.metadata),
           domain = coalesce(EXCLUDED.domain, s.domain)
    RETURNING s.license_id, s.installation_id,
              extract(epoch FROM s.first_seen)::bigint AS fs,
              extract(epoch FROM s.last_seen)::bigint AS ls,
              s.activated_at <> t AS kept
  ), w AS (
    SELECT * FROM wn UNION ALL SELECT * FROM wo
  )
  SELECT r.o, coalesce(r.refused, CASE WHEN w.license_id IS NULL
                                       THEN 'TOO_MANY_INSTALLATIONS'
                                       WHEN r.h AND w.kept THEN 'KEPT'
                                       ELSE 'VALID' END),
         w.fs, w.ls
    FROM r LEFT JOIN w ON r.refused IS NULL AND w.license_id = r.l
                      AND w.installation_id = r.i;
END
$$;

-- Name: licd_domains_ok(jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_domains_ok(d jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT
    AS $_$
  SELECT jsonb_typeof(d) = 'array' AND NOT EXISTS (
    SELECT 1 FROM jsonb_array_elements(d) e
    WHERE jsonb_typeof(e) <> 'string'
       OR NOT (e #>> '{}') ~ '^(\*\.)?[a-z0-9-]{1,63}(\.[a-z0-9-]{1,63})*$'
       OR length(e #>> '{}') > 253)
$_$;

-- Name: licd_features_ok(jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_features_ok(f jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT
    AS $$
  SELECT jsonb_typeof(f) = 'array' AND NOT EXISTS (
    SELECT 1 FROM jsonb_array_elements(f) e
    WHERE jsonb_typeof(e) <> 'string' OR NOT licd_slug_ok(e #>> '{}'))
$$;

-- Name: licd_limits_ok(jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_limits_ok(l jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT
    AS $$
  SELECT jsonb_typeof(l) = 'object' AND NOT EXISTS (
    SELECT 1 FROM jsonb_each(l) e
    WHERE NOT licd_slug_ok(e.key) OR jsonb_typeof(e.value) <> 'number'
       OR (e.value::text)::numeric <> trunc((e.value::text)::numeric)
       OR (e.value::text)::numeric < 0
       OR (e.value::text)::numeric > 9223372036854775807)
$$;

-- Name: licenses; Type: TABLE

CREATE TABLE public.licenses (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    customer_id uuid NOT NULL,
    plan_code text NOT NULL,
    status text DEFAULT 'active'::text NOT NULL,
    features jsonb DEFAULT '[]'::jsonb NOT NULL,
    limits jsonb DEFAULT '{}'::jsonb NOT NULL,
    domains jsonb DEFAULT '[]'::jsonb NOT NULL,
    issued_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone,
    grace_until timestamp with time zone,
    suspended_at timestamp with time zone,
    revoked_at timestamp with time zone,
    status_reason text,
    key_kid text,
    license_key text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    purchase text,
    seat_model text NOT NULL,
    seat_ttl integer NOT NULL,
    max_borrow_days integer NOT NULL,
    overdraft integer NOT NULL,
    CONSTRAINT licenses_domains_check CHECK (public.licd_domains_ok(domains)),
    CONSTRAINT licenses_features_check CHECK (public.licd_features_ok(features)),
    CONSTRAINT licenses_limits_check CHECK (public.licd_limits_ok(limits)),
    CONSTRAINT licenses_max_borrow_days_check CHECK (((max_borrow_days >= 0) AND (max_borrow_days <= 366))),
    CONSTRAINT licenses_overdraft_check CHECK (((overdraft >= 0) AND (overdraft <= 1000000))),
    CONSTRAINT licenses_seat_model_check CHECK ((seat_model = ANY (ARRAY['node'::text, 'floating'::text]))),
    CONSTRAINT licenses_seat_ttl_check CHECK (((seat_ttl >= 30) AND (seat_ttl <= 86400))),
    CONSTRAINT licenses_status_check CHECK ((status = ANY (ARRAY['active'::text, 'suspended'::text, 'revoked'::text, 'expired'::text]))),
    CONSTRAINT licenses_status_reason_check CHECK ((length(status_reason) <= 500))
);

-- Name: licd_active_installations(public.licenses); Type: FUNCTION

CREATE FUNCTION public.licd_active_installations(l public.licenses) RETURNS bigint
    LANGUAGE sql STABLE
    AS $$
  SELECT CASE WHEN l.seat_model = 'node' THEN
           coalesce((SELECT s.active FROM license_seats s
                      WHERE s.license_id = l.id), 0)
         ELSE (SELECT count(*) FROM installations i
                WHERE i.license_id = l.id AND i.status = 'active'
                  AND i.seat_since IS NOT NULL
                  AND i.seat_expires_at > licd_now()) END
$$;

-- Name: licd_admin_audit(jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_admin_audit(p jsonb) RETURNS text
    LANGUAGE plpgsql STABLE
    AS $_$
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
$_$;

-- Name: licd_admin_customer_create(jsonb, text, text); Type: FUNCTION

CREATE FUNCTION public.licd_admin_customer_create(p jsonb, p_actor text, p_rid text) RETURNS text
    LANGUAGE plpgsql
    AS $_$
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
$_$;

-- Name: licd_admin_customers(jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_admin_customers(p jsonb) RETURNS text
    LANGUAGE plpgsql STABLE
    AS $_$
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
$_$;

-- Name: licd_admin_deactivate(uuid, text, text, text, text); Type: FUNCTION

CREATE FUNCTION public.licd_admin_deactivate(p_license uuid, p_iid text, p_reason text, p_actor text, p_rid text) RETURNS text
    LANGUAGE plpgsql
    AS $$
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

-- Name: licd_admin_installations(jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_admin_installations(p jsonb) RETURNS text
    LANGUAGE plpgsql STABLE
    AS $_$
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
$_$;

-- Name: licd_admin_license(uuid); Type: FUNCTION

CREATE FUNCTION public.licd_admin_license(p_license uuid) RETURNS text
    LANGUAGE sql STABLE
    AS $$
  SELECT json_build_object(
    'license', v.doc::json,
    'installations', coalesce((
      SELECT json_agg(json_build_object(
               'id', i.installation_id, 'status', i.status,
               'first_seen', to_char(i.first_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
               'last_seen', to_char(i.last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
               'version', i.version, 'domain', i.domain, 'metadata', i.metadata,
               'seat', CASE WHEN l.seat_model = 'floating' THEN json_build_object(
                 'state', licd_seat_state(i),
                 'expires_at', to_char(i.seat_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                 'borrowed_until', to_char(i.borrowed_until AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                 'overdraft', i.seat_overdraft) END)
             ORDER BY i.first_seen)
        FROM installations i WHERE i.license_id = v.id), '[]'::json),
    'usage', json_build_object(
      'period', to_char(licd_period(licd_now()), 'YYYY-MM'),
      'features', coalesce((
        SELECT json_object_agg(c.feature, json_build_object('used', c.used))
          FROM usage_counters c
         WHERE c.license_id = v.id AND c.period = licd_period(licd_now())),
        '{}'::json)),
    'seats', CASE WHEN l.seat_model = 'floating' THEN json_build_object(
      'model', l.seat_model, 'ttl', l.seat_ttl,
      'max_borrow_days', l.max_borrow_days, 'overdraft', l.overdraft,
      'limit', (l.limits ->> 'installations')::numeric::bigint,
      'live', (SELECT count(*) FROM installations i WHERE i.license_id = l.id
                AND licd_seat_state(i) IN ('live', 'borrowed')),
      'borrowed', (SELECT count(*) FROM installations i WHERE i.license_id = l.id
                    AND licd_seat_state(i) = 'borrowed'),
      'lapsed', (SELECT count(*) FROM installations i WHERE i.license_id = l.id
                  AND licd_seat_state(i) = 'lapsed'),
      'overdrafts', (SELECT count(*) FROM seat_overdrafts o WHERE o.license_id = l.id),
      'peaks', coalesce((
        SELECT json_agg(json_build_object('day', p.day, 'peak', p.peak) ORDER BY p.day)
          FROM licd_seat_peaks(l.id, (licd_now() AT TIME ZONE 'UTC')::date - 30,
                               (licd_now() AT TIME ZONE 'UTC')::date) p), '[]'::json))
      ELSE json_build_object('model', l.seat_model) END)::text
  FROM license_admin_view v JOIN licenses l ON l.id = v.id WHERE v.id = p_license
$$;

-- Name: licd_admin_license_edit(uuid, jsonb, text, text); Type: FUNCTION

CREATE FUNCTION public.licd_admin_license_edit(p_license uuid, p jsonb, p_actor text, p_rid text) RETURNS text
    LANGUAGE plpgsql
    AS $_$
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
$_$;

-- Name: licd_admin_license_full(uuid); Type: FUNCTION

CREATE FUNCTION public.licd_admin_license_full(p_license uuid) RETURNS text
    LANGUAGE sql STABLE
    AS $$
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

-- Name: licd_admin_license_issue(jsonb, text, text); Type: FUNCTION

CREATE FUNCTION public.licd_admin_license_issue(p jsonb, p_actor text, p_rid text) RETURNS uuid
    LANGUAGE plpgsql
    AS $_$
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
$_$;

-- Name: customers; Type: TABLE

CREATE TABLE public.customers (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    email text NOT NULL,
    name text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    stripe_customer_id text,
    paddle_customer_id text,
    CONSTRAINT customers_email_check CHECK (((email ~ '^[^@\s]+@[^@\s]+$'::text) AND (length(email) <= 254))),
    CONSTRAINT customers_name_check CHECK ((length(name) <= 200))
);

-- Name: licd_admin_license_row(public.licenses, public.customers); Type: FUNCTION

CREATE FUNCTION public.licd_admin_license_row(l public.licenses, c public.customers) RETURNS json
    LANGUAGE sql STABLE
    AS $$
  SELECT json_build_object(
    'id', l.id, 'customer_id', l.customer_id, 'email', c.email,
    'customer_name', c.name, 'plan', l.plan_code, 'status', l.status,
    'issued_at', licd_iso(l.issued_at), 'expires_at', licd_iso(l.expires_at),
    'grace_until', licd_iso(l.grace_until),
    'domain_restrictions', l.domains, 'limits', l.limits,
    'active_installations', licd_active_installations(l),
    'created_at', licd_iso(l.created_at))
$$;

-- Name: licd_admin_licenses(jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_admin_licenses(p jsonb) RETURNS text
    LANGUAGE plpgsql STABLE
    SET max_parallel_workers_per_gather TO '0'
    SET jit TO 'off'
    AS $_$
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
$_$;

-- Name: licd_admin_notification_retry(bigint, text, text); Type: FUNCTION

CREATE FUNCTION public.licd_admin_notification_retry(p_id bigint, p_actor text, p_rid text) RETURNS text
    LANGUAGE plpgsql
    AS $$
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

-- Name: licd_admin_notifications(jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_admin_notifications(p jsonb) RETURNS text
    LANGUAGE plpgsql STABLE
    AS $_$
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
$_$;

-- Name: licd_admin_overview(jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_admin_overview(p jsonb) RETURNS text
    LANGUAGE sql STABLE
    AS $$
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

-- Name: licd_admin_plan_set(jsonb, text, text); Type: FUNCTION

CREATE FUNCTION public.licd_admin_plan_set(p jsonb, p_actor text, p_rid text) RETURNS text
    LANGUAGE plpgsql
    AS $_$
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
$_$;

-- Name: licd_admin_plans(jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_admin_plans(p jsonb) RETURNS text
    LANGUAGE sql STABLE
    AS $$
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

-- Name: licd_admin_webhook_events(jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_admin_webhook_events(p jsonb) RETURNS text
    LANGUAGE plpgsql STABLE
    AS $_$
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
$_$;

-- Name: licd_arg_bool(jsonb, text); Type: FUNCTION

CREATE FUNCTION public.licd_arg_bool(p jsonb, k text) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE
    AS $$
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

-- Name: licd_arg_int(jsonb, text, bigint, bigint, bigint); Type: FUNCTION

CREATE FUNCTION public.licd_arg_int(p jsonb, k text, lo bigint, hi bigint, def bigint) RETURNS bigint
    LANGUAGE plpgsql IMMUTABLE
    AS $_$
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
$_$;

-- Name: licd_arg_json(jsonb, text, text); Type: FUNCTION

CREATE FUNCTION public.licd_arg_json(p jsonb, k text, typ text) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
    AS $$
BEGIN
  IF NOT p ? k OR p -> k = 'null' THEN RETURN NULL; END IF;
  IF jsonb_typeof(p -> k) <> typ THEN
    PERFORM licd_bad(format('field ''%s'' must be an %s', k, typ));
  END IF;
  RETURN p -> k;
END
$$;

-- Name: licd_arg_text(jsonb, text, integer, text); Type: FUNCTION

CREATE FUNCTION public.licd_arg_text(p jsonb, k text, maxlen integer, re text DEFAULT NULL::text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE
    AS $$
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

-- Name: licd_arg_ts(jsonb, text); Type: FUNCTION

CREATE FUNCTION public.licd_arg_ts(p jsonb, k text) RETURNS timestamp with time zone
    LANGUAGE plpgsql STABLE
    AS $_$
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
$_$;

-- Name: licd_audit(text, text, text, text, text, text, jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_audit(p_actor text, p_action text, p_type text, p_id text, p_reason text, p_rid text, p_details jsonb) RETURNS void
    LANGUAGE sql
    AS $$
  INSERT INTO audit_log (at, actor, action, target_type, target_id, reason,
                         request_id, details)
  VALUES (licd_now(), p_actor, p_action, p_type, p_id, p_reason, p_rid, p_details)
$$;

-- Name: licd_bad(text, text); Type: FUNCTION

CREATE FUNCTION public.licd_bad(p_msg text, p_code text DEFAULT '22023'::text) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = p_code, MESSAGE = p_msg;
END
$$;

-- Name: licd_billing_apply(text, jsonb, integer, text); Type: FUNCTION

CREATE FUNCTION public.licd_billing_apply(p_provider text, a jsonb, p_grace_days integer, p_rid text) RETURNS TABLE(outcome text, new_license uuid, subject text, reason text)
    LANGUAGE plpgsql
    AS $$
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

-- Name: licd_cache_ack(bigint, bigint); Type: FUNCTION

CREATE FUNCTION public.licd_cache_ack(p_id bigint, p_acked bigint) RETURNS boolean
    LANGUAGE plpgsql
    AS $$
BEGIN
  UPDATE cache_listeners
     SET acked = greatest(acked, p_acked),
         alive_until = clock_timestamp() + licd_cache_lease()
   WHERE id = p_id AND NOT doomed;
  RETURN FOUND;
END
$$;

-- Name: licd_cache_all_changed(); Type: FUNCTION

CREATE FUNCTION public.licd_cache_all_changed() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  PERFORM pg_notify('licd_license', '*');
  RETURN NULL;
END
$$;

-- Name: licd_cache_clock(); Type: FUNCTION

CREATE FUNCTION public.licd_cache_clock() RETURNS bigint
    LANGUAGE sql STABLE
    AS $$
  SELECT coalesce((SELECT offset_s FROM licd_clock), 0)::bigint
$$;

-- Name: licd_cache_lease(); Type: FUNCTION

CREATE FUNCTION public.licd_cache_lease() RETURNS interval
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT interval '2 s' $$;

-- Name: licd_cache_license_changed(); Type: FUNCTION

CREATE FUNCTION public.licd_cache_license_changed() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  IF TG_TABLE_NAME = 'installations' THEN
    IF TG_OP <> 'INSERT' THEN
      PERFORM pg_notify('licd_license', OLD.license_id::text);
    END IF;
    IF TG_OP <> 'DELETE' THEN
      PERFORM pg_notify('licd_license', NEW.license_id::text);
    END IF;
  ELSE
    IF TG_OP <> 'INSERT' THEN
      PERFORM pg_notify('licd_license', OLD.id::text);
    END IF;
    IF TG_OP <> 'DELETE' THEN
      PERFORM pg_notify('licd_license', NEW.id::text);
    END IF;
  END IF;
  RETURN NULL;
END
$$;

-- Name: licd_cache_register(text, integer, text); Type: FUNCTION

CREATE FUNCTION public.licd_cache_register(p_host text, p_pid integer, p_program text) RETURNS TABLE(id bigint, offset_s bigint)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  INSERT INTO cache_listeners (host, pid, program, acked, alive_until)
  SELECT p_host, p_pid, p_program,
         (SELECT CASE WHEN is_called THEN last_value ELSE 0 END
            FROM cache_barrier_seq),
         clock_timestamp() + licd_cache_lease()
  RETURNING cache_listeners.id,
            coalesce((SELECT c.offset_s FROM licd_clock c), 0)::bigint;
END
$$;

-- Name: licd_cache_seat_changed(); Type: FUNCTION

CREATE FUNCTION public.licd_cache_seat_changed() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  IF OLD.borrowed_until IS NOT DISTINCT FROM NEW.borrowed_until
     AND OLD.seat_overdraft IS NOT DISTINCT FROM NEW.seat_overdraft
     AND OLD.license_id = NEW.license_id
     AND NEW.seat_expires_at - OLD.seat_expires_at >
         (SELECT make_interval(secs => l.seat_ttl / 4)
            FROM licenses l WHERE l.id = NEW.license_id) THEN
    RETURN NULL;
  END IF;
  PERFORM pg_notify('licd_license', NEW.license_id::text);
  RETURN NULL;
END
$$;

-- Name: licd_cache_sync(integer); Type: PROCEDURE

CREATE PROCEDURE public.licd_cache_sync(IN p_timeout_ms integer DEFAULT 1000)
    LANGUAGE plpgsql
    AS $$
DECLARE
  s      bigint;
  t0     timestamptz := clock_timestamp();
  doomed boolean := false;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM cache_listeners) THEN
    RETURN;
  END IF;
  SET LOCAL synchronous_commit = off;
  s := nextval('cache_barrier_seq');
  PERFORM pg_notify('licd_license', 'b ' || s);
  COMMIT;
  LOOP
    DELETE FROM cache_listeners
     WHERE id IN (SELECT id FROM cache_listeners
                   WHERE alive_until < clock_timestamp()
                     FOR UPDATE SKIP LOCKED);
    EXIT WHEN NOT EXISTS (SELECT 1 FROM cache_listeners WHERE acked < s);
    IF NOT doomed AND clock_timestamp() > t0 + make_interval(secs => p_timeout_ms / 1000.0) THEN
      UPDATE cache_listeners SET doomed = true WHERE acked < s;
      doomed := true;
    END IF;
    PERFORM pg_sleep(0.001);
  END LOOP;
  COMMIT;
END
$$;

-- Name: licd_cache_unregister(bigint); Type: FUNCTION

CREATE FUNCTION public.licd_cache_unregister(p_id bigint) RETURNS void
    LANGUAGE sql
    AS $$
  DELETE FROM cache_listeners WHERE id = p_id
$$;

-- Name: licd_check_entitlements(jsonb, jsonb, jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_check_entitlements(f jsonb, l jsonb, d jsonb) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    AS $$
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

-- Name: licd_clock_now(); Type: FUNCTION

CREATE FUNCTION public.licd_clock_now() RETURNS timestamp with time zone
    LANGUAGE plpgsql
    AS $$
BEGIN
  RETURN clock_timestamp() +
         make_interval(secs => coalesce((SELECT offset_s FROM licd_clock), 0));
END
$$;

-- Name: licd_count_validations(jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_count_validations(p jsonb) RETURNS void
    LANGUAGE sql
    AS $_$
  INSERT INTO validation_counts AS v (day, code, n)
  SELECT (licd_now() AT TIME ZONE 'UTC')::date, e.key, (e.value #>> '{}')::bigint
    FROM jsonb_each(p) e
   WHERE e.key ~ '^[A-Z_]{1,40}$' AND (e.value #>> '{}')::bigint > 0
  ON CONFLICT (day, code) DO UPDATE SET n = v.n + EXCLUDED.n
$_$;

-- Name: licd_cursor_dec(jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_cursor_dec(p jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
    AS $_$
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
$_$;

-- Name: licd_cursor_enc(jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_cursor_enc(v jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $$
  SELECT rtrim(translate(encode(convert_to(v::text, 'UTF8'), 'base64'),
                         E'+/\n', '-_'), '=')
$$;

-- Name: licd_cursor_id(jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_cursor_id(p jsonb) RETURNS bigint
    LANGUAGE sql IMMUTABLE
    AS $$
  SELECT licd_cursor_key(licd_cursor_dec(p), 0, NULL::bigint)
$$;

-- Name: licd_cursor_key(jsonb, integer, anyelement); Type: FUNCTION

CREATE FUNCTION public.licd_cursor_key(cur jsonb, i integer, t anyelement) RETURNS anyelement
    LANGUAGE plpgsql IMMUTABLE
    AS $$
BEGIN
  IF cur IS NULL THEN RETURN NULL; END IF;
  BEGIN
    t := cur ->> i;
  EXCEPTION WHEN OTHERS THEN
    t := NULL;
  END;
  IF t IS NULL THEN
    PERFORM licd_bad('field ''cursor'' is not a cursor this server gave');
  END IF;
  RETURN t;
END
$$;

-- Name: licd_day_start(date); Type: FUNCTION

CREATE FUNCTION public.licd_day_start(d date) RETURNS timestamp with time zone
    LANGUAGE sql IMMUTABLE
    AS $$
  SELECT d::timestamp AT TIME ZONE 'UTC'
$$;

-- Name: licd_deactivate(uuid, text); Type: FUNCTION

CREATE FUNCTION public.licd_deactivate(p_license uuid, p_iid text) RETURNS TABLE(license_found boolean, deactivated boolean)
    LANGUAGE plpgsql
    AS $$
DECLARE
  model text;
BEGIN
  SELECT seat_model INTO model FROM licenses WHERE id = p_license;
  license_found := FOUND;
  deactivated := false;
  IF model = 'floating' THEN
    SELECT c.released INTO deactivated FROM licd_seat_checkin(p_license, p_iid) c;
  ELSIF license_found THEN
    UPDATE installations i SET status = 'inactive', deactivated_at = licd_now()
     WHERE i.license_id = p_license AND i.installation_id = p_iid
       AND i.status = 'active';
    deactivated := FOUND;
  END IF;
  RETURN NEXT;
END
$$;

-- Name: licd_domain_allowed(jsonb, text); Type: FUNCTION

CREATE FUNCTION public.licd_domain_allowed(d jsonb, p_host text) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    AS $$
  SELECT coalesce(jsonb_array_length(d) = 0, false) OR (p_host IS NOT NULL AND EXISTS (
    SELECT 1 FROM jsonb_array_elements_text(d) p
     WHERE p = p_host
        OR (left(p, 2) = '*.' AND length(p_host) > length(p) - 1
            AND right(p_host, length(p) - 1) = substr(p, 2))))
$$;

-- Name: licd_interval_end(text, timestamp with time zone); Type: FUNCTION

CREATE FUNCTION public.licd_interval_end(p_plan text, t timestamp with time zone) RETURNS timestamp with time zone
    LANGUAGE sql STABLE
    AS $$
  SELECT CASE billing_interval WHEN 'year' THEN t + interval '1 year'
                               WHEN 'once' THEN NULL
                               ELSE t + interval '1 month' END
    FROM plans WHERE code = p_plan
$$;

-- Name: licd_iso(timestamp with time zone); Type: FUNCTION

CREATE FUNCTION public.licd_iso(t timestamp with time zone) RETURNS text
    LANGUAGE sql STABLE
    AS $$
  SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;

-- Name: licd_lc_claim(integer, integer); Type: FUNCTION

CREATE FUNCTION public.licd_lc_claim(p_limit integer, p_lock_secs integer) RETURNS TABLE(id bigint, kind text, recipient text, payload text, license_id uuid, attempts integer, created_at text, email_sent boolean, webhook_sent boolean)
    LANGUAGE sql
    AS $$
  UPDATE notifications n
     SET locked_until = licd_now() + make_interval(secs => p_lock_secs),
         attempts = n.attempts + 1
   WHERE n.id IN (SELECT x.id FROM notifications x
                   WHERE x.status = 'pending' AND x.next_attempt_at <= licd_now()
                     AND (x.locked_until IS NULL OR x.locked_until <= licd_now())
                   ORDER BY x.next_attempt_at, x.id
                   LIMIT p_limit FOR UPDATE SKIP LOCKED)
  RETURNING n.id, n.kind, n.recipient, n.payload::text, n.license_id, n.attempts,
            to_char(n.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
            n.email_sent_at IS NOT NULL, n.webhook_sent_at IS NOT NULL
$$;

-- Name: licd_lc_done(bigint, boolean, text); Type: FUNCTION

CREATE FUNCTION public.licd_lc_done(p_id bigint, p_ok boolean, p_error text) RETURNS void
    LANGUAGE sql
    AS $$
  UPDATE notifications
     SET status = CASE WHEN p_ok THEN 'delivered' ELSE 'pending' END,
         delivered_at = CASE WHEN p_ok THEN licd_now() END,
         locked_until = NULL,
         last_error = CASE WHEN p_ok THEN last_error ELSE left(p_error, 500) END,
         next_attempt_at = CASE WHEN p_ok THEN next_attempt_at
                           ELSE licd_now() + make_interval(secs =>
                                  least(21600, 60 * power(2, least(attempts - 1, 20))::bigint))
                           END
   WHERE id = p_id AND status = 'pending'
$$;

-- Name: licd_lc_expire(); Type: FUNCTION

CREATE FUNCTION public.licd_lc_expire() RETURNS bigint
    LANGUAGE sql
    AS $$
  WITH e AS (
    UPDATE licenses l
       SET status = 'expired', updated_at = licd_now()
     WHERE l.status = 'active' AND l.expires_at IS NOT NULL
       AND greatest(l.expires_at, coalesce(l.grace_until, l.expires_at)) <= licd_now()
    RETURNING l.id, l.expires_at
  ), a AS (
    SELECT licd_audit('lifecycle', 'license.expire', 'license', id::text,
                      NULL, NULL, NULL) FROM e
  ), n AS (
    SELECT licd_notify('license_expired', id,
                       format('expired:%s:%s', id, extract(epoch FROM expires_at)::bigint),
                       '{}'::jsonb) FROM e
  )
  SELECT (SELECT count(*) FROM e) + 0 * (SELECT count(*) FROM a) + 0 * (SELECT count(*) FROM n)
$$;

-- Name: licd_lc_expiry_warnings(integer[]); Type: FUNCTION

CREATE FUNCTION public.licd_lc_expiry_warnings(p_days integer[]) RETURNS bigint
    LANGUAGE sql
    AS $$
  WITH due AS (
    SELECT l.id, l.expires_at,
           (SELECT min(d) FROM unnest(p_days) d
             WHERE l.expires_at <= licd_now() + make_interval(days => d)) AS d
      FROM licenses l
     WHERE l.status = 'active' AND l.expires_at IS NOT NULL
       AND l.expires_at > licd_now()
       AND l.expires_at <= licd_now() + make_interval(days => (SELECT max(d) FROM unnest(p_days) d))
  )
  SELECT count(licd_notify('expiry_warning', id,
           format('expiry:%s:%s:%s', id, extract(epoch FROM expires_at)::bigint, d),
           jsonb_build_object('days', d, 'expires_at',
             to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))))
    FROM due WHERE d IS NOT NULL
$$;

-- Name: licd_lc_figures(); Type: FUNCTION

CREATE FUNCTION public.licd_lc_figures() RETURNS bigint
    LANGUAGE plpgsql
    AS $$
DECLARE
  total bigint;
BEGIN
  -- One recount at a time (a second run's snapshot would miss the first's
  -- rows and add its count to theirs); writers never wait for it.
  PERFORM pg_advisory_xact_lock(hashtext('licd_lc_figures'));
  WITH gone AS (DELETE FROM license_counts RETURNING 1)
  INSERT INTO license_counts (plan_code, status, n)
  SELECT plan_code, status, count(*) FROM licenses GROUP BY 1, 2;
  SELECT coalesce(sum(n), 0) INTO total FROM license_counts;
  INSERT INTO console_figures AS f (one, as_of, installations_seen, versions, usage_near_limits)
  SELECT true, licd_now(),
    (SELECT json_build_object(
        '24h', count(*) FILTER (WHERE last_seen >= licd_now() - interval '24 hours'),
        '7d', count(*))
       FROM installations WHERE status = 'active' AND last_seen >= licd_now() - interval '7 days'
        AND seen_hour > licd_now() - interval '7 days 1 hour'),
    coalesce((SELECT json_agg(json_build_object('version', v, 'installations', n)
                                          ORDER BY n DESC, v)
        FROM (SELECT coalesce(version, '') AS v, count(*) AS n FROM installations
               WHERE status = 'active' AND last_seen >= licd_now() - interval '30 days'
                 AND seen_hour > licd_now() - interval '30 days 1 hour'
               GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20) x), '[]'),
    coalesce((SELECT json_agg(json_build_object(
          'license_id', x.license_id, 'email', x.email, 'feature', x.feature,
          'used', x.used, 'limit', x.lim) ORDER BY x.ratio DESC, x.used DESC)
        FROM (SELECT u.license_id, c.email, u.feature, u.used, (l.limits ->> (u.feature || '_per_month'))::numeric::bigint AS lim,
                     u.used::numeric / greatest((l.limits ->> (u.feature || '_per_month'))::numeric, 1) AS ratio
                FROM usage_counters u JOIN licenses l ON l.id = u.license_id
                JOIN customers c ON c.id = l.customer_id
               WHERE u.period = licd_period(licd_now()) AND l.status = 'active'
                 AND l.limits ? (u.feature || '_per_month')
               ORDER BY 6 DESC, u.used DESC LIMIT 10) x), '[]')
  ON CONFLICT (one) DO UPDATE SET as_of = EXCLUDED.as_of,
    installations_seen = EXCLUDED.installations_seen, versions = EXCLUDED.versions,
    usage_near_limits = EXCLUDED.usage_near_limits;
  RETURN total;
END
$$;

-- Name: licd_lc_retention(integer, integer); Type: FUNCTION

CREATE FUNCTION public.licd_lc_retention(p_days integer, p_batch integer) RETURNS bigint
    LANGUAGE plpgsql
    AS $$
DECLARE
  cutoff timestamptz := licd_now() - make_interval(days => p_days);
  n bigint; total bigint := 0;
BEGIN
  DELETE FROM usage_log WHERE id IN
    (SELECT id FROM usage_log WHERE at < cutoff ORDER BY id LIMIT p_batch);
  GET DIAGNOSTICS n = ROW_COUNT; total := total + n;
  DELETE FROM usage_requests WHERE ctid IN
    (SELECT ctid FROM usage_requests WHERE created_at < cutoff LIMIT p_batch);
  GET DIAGNOSTICS n = ROW_COUNT; total := total + n;
  DELETE FROM webhook_events WHERE (provider, event_id) IN
    (SELECT provider, event_id FROM webhook_events
      WHERE received_at < cutoff AND status <> 'pending' LIMIT p_batch);
  GET DIAGNOSTICS n = ROW_COUNT; total := total + n;
  DELETE FROM notifications WHERE id IN
    (SELECT id FROM notifications WHERE status = 'delivered'
        AND delivered_at < cutoff ORDER BY id LIMIT p_batch);
  GET DIAGNOSTICS n = ROW_COUNT; total := total + n;
  RETURN total;
END
$$;

-- Name: licd_lc_sent(bigint, text); Type: FUNCTION

CREATE FUNCTION public.licd_lc_sent(p_id bigint, p_channel text) RETURNS void
    LANGUAGE sql
    AS $$
  UPDATE notifications
     SET email_sent_at = CASE WHEN p_channel = 'email'
                              THEN coalesce(email_sent_at, licd_now()) ELSE email_sent_at END,
         webhook_sent_at = CASE WHEN p_channel = 'webhook'
                                THEN coalesce(webhook_sent_at, licd_now()) ELSE webhook_sent_at END
   WHERE id = p_id
$$;

-- Name: licd_lc_stale_installations(bigint); Type: FUNCTION

CREATE FUNCTION public.licd_lc_stale_installations(p_stale_secs bigint) RETURNS bigint
    LANGUAGE sql
    AS $$
  WITH d AS (
    UPDATE installations i
       SET status = 'inactive', deactivated_at = licd_now()
      FROM licenses l
     WHERE l.id = i.license_id AND l.seat_model = 'node'
       AND i.status = 'active'
       AND i.last_seen < licd_now() - make_interval(secs => p_stale_secs)
       AND i.seen_hour < licd_now() - make_interval(secs => p_stale_secs)
       AND (i.offline_until IS NULL OR i.offline_until <= licd_now())
    RETURNING i.license_id
  )
  SELECT count(*) FROM d
$$;

-- Name: licd_lc_suspend_unpaid(); Type: FUNCTION

CREATE FUNCTION public.licd_lc_suspend_unpaid() RETURNS bigint
    LANGUAGE sql
    AS $$
  WITH s AS (
    UPDATE licenses l
       SET status = 'suspended', status_reason = 'non-payment',
           suspended_at = licd_now(), updated_at = licd_now()
      FROM subscriptions sub
     WHERE sub.license_id = l.id AND l.status = 'active'
       AND sub.grace_until IS NOT NULL AND sub.grace_until <= licd_now()
       AND sub.status IN ('past_due', 'unpaid')
    RETURNING l.id
  ), a AS (
    SELECT licd_audit('lifecycle', 'license.suspend', 'license', id::text,
                      'non-payment', NULL, NULL) FROM s
  ), n AS (
    SELECT licd_notify('license_suspended', id, 'suspended:' || id || ':' ||
                       extract(epoch FROM licd_now())::bigint,
                       jsonb_build_object('reason', 'non-payment')) FROM s
  )
  SELECT (SELECT count(*) FROM s) + 0 * (SELECT count(*) FROM a) + 0 * (SELECT count(*) FROM n)
$$;

-- Name: licd_lc_usage_warnings(integer[]); Type: FUNCTION

CREATE FUNCTION public.licd_lc_usage_warnings(p_percents integer[]) RETURNS bigint
    LANGUAGE sql
    AS $$
  WITH c AS (
    SELECT u.license_id, u.feature, u.period, u.used,
           (l.limits ->> (u.feature || '_per_month'))::numeric::bigint AS lim
      FROM usage_counters u JOIN licenses l ON l.id = u.license_id
     WHERE u.period = licd_period(licd_now()) AND l.status = 'active'
       AND jsonb_typeof(l.limits -> (u.feature || '_per_month')) = 'number'
  ), due AS (
    SELECT c.*, (SELECT max(p) FROM unnest(p_percents) p
                  WHERE c.used * 100 >= c.lim * p) AS pct
      FROM c WHERE c.lim > 0
  )
  SELECT count(licd_notify('usage_warning', license_id,
           format('usage:%s:%s:%s:%s', license_id, feature, to_char(period, 'YYYY-MM'), pct),
           jsonb_build_object('feature', feature, 'period', to_char(period, 'YYYY-MM'),
                              'used', used, 'limit', lim, 'percent', pct)))
    FROM due WHERE pct IS NOT NULL
$$;

-- Name: licd_license_counts_added(); Type: FUNCTION

CREATE FUNCTION public.licd_license_counts_added() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  INSERT INTO license_counts (plan_code, status, n)
  SELECT plan_code, status, count(*) FROM added GROUP BY 1, 2;
  RETURN NULL;
END
$$;

-- Name: licd_license_counts_changed(); Type: FUNCTION

CREATE FUNCTION public.licd_license_counts_changed() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  INSERT INTO license_counts (plan_code, status, n)
  VALUES (OLD.plan_code, OLD.status, -1), (NEW.plan_code, NEW.status, 1);
  RETURN NULL;
END
$$;

-- Name: licd_license_counts_removed(); Type: FUNCTION

CREATE FUNCTION public.licd_license_counts_removed() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  INSERT INTO license_counts (plan_code, status, n)
  SELECT plan_code, status, -count(*) FROM removed GROUP BY 1, 2;
  RETURN NULL;
END
$$;

-- Name: licd_license_counts_truncated(); Type: FUNCTION

CREATE FUNCTION public.licd_license_counts_truncated() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  DELETE FROM license_counts;
  RETURN NULL;
END
$$;

-- Name: licd_license_keys_store(uuid[], text[], text); Type: FUNCTION

CREATE FUNCTION public.licd_license_keys_store(p_ids uuid[], p_keys text[], p_kid text) RETURNS void
    LANGUAGE sql
    AS $$
  UPDATE licenses l SET license_key = k.key, key_kid = p_kid
    FROM unnest(p_ids, p_keys) AS k(id, key)
   WHERE l.id = k.id;
$$;

-- Name: licd_license_paid(uuid, timestamp with time zone, timestamp with time zone, boolean); Type: FUNCTION

CREATE FUNCTION public.licd_license_paid(p_license uuid, p_until timestamp with time zone, t timestamp with time zone, p_term_only boolean) RETURNS void
    LANGUAGE sql
    AS $$
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

-- Name: licd_license_seat_defaults(); Type: FUNCTION

CREATE FUNCTION public.licd_license_seat_defaults() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
  p plans%ROWTYPE;
BEGIN
  SELECT * INTO p FROM plans WHERE code = NEW.plan_code;
  NEW.seat_model := coalesce(NEW.seat_model, p.seat_model, 'node');
  NEW.seat_ttl := coalesce(NEW.seat_ttl, p.seat_ttl, 900);
  NEW.max_borrow_days := coalesce(NEW.max_borrow_days, p.max_borrow_days, 0);
  NEW.overdraft := coalesce(NEW.overdraft, p.overdraft, 0);
  RETURN NEW;
END
$$;

-- Name: licd_license_seats_set(uuid, text, integer, integer, integer, text, text); Type: FUNCTION

CREATE FUNCTION public.licd_license_seats_set(p_license uuid, p_model text, p_ttl integer, p_borrow integer, p_overdraft integer, p_actor text, p_rid text) RETURNS text
    LANGUAGE plpgsql
    AS $$
DECLARE
  lic licenses%ROWTYPE;
  t   timestamptz;
BEGIN
  SELECT * INTO lic FROM licenses WHERE id = p_license FOR UPDATE;
  IF NOT FOUND THEN
    RETURN 'not_found';
  END IF;
  t := licd_clock_now();
  UPDATE licenses
     SET seat_model = coalesce(p_model, seat_model),
         seat_ttl = coalesce(p_ttl, seat_ttl),
         max_borrow_days = coalesce(p_borrow, max_borrow_days),
         overdraft = coalesce(p_overdraft, overdraft), updated_at = t
   WHERE id = p_license;
  IF lic.seat_model = 'floating' AND p_model = 'node' THEN
    UPDATE installations
       SET status = CASE WHEN seat_expires_at > t THEN status ELSE 'inactive' END,
           deactivated_at = CASE WHEN seat_expires_at > t THEN deactivated_at
                                 ELSE coalesce(seat_expires_at, t) END,
           seat_expires_at = NULL, borrowed_until = NULL
     WHERE license_id = p_license AND status = 'active';
  ELSIF lic.seat_model = 'node' AND p_model = 'floating' THEN
    UPDATE installations
       SET status = 'inactive', deactivated_at = t
     WHERE license_id = p_license AND status = 'active';
  END IF;
  PERFORM licd_audit(p_actor, 'license.seats', 'license', p_license::text, NULL,
                     p_rid, jsonb_build_object('seat_model', p_model,
                       'seat_ttl', p_ttl, 'max_borrow_days', p_borrow,
                       'overdraft', p_overdraft));
  RETURN 'ok';
END
$$;

-- Name: licd_limits_add(jsonb, jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_limits_add(base jsonb, extra jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    AS $$
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

-- Name: licd_lock_items(jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_lock_items(p_items jsonb) RETURNS uuid[]
    LANGUAGE plpgsql
    AS $$
DECLARE
  locked uuid[];
BEGIN
  IF p_items @> '[{"w": false}]' THEN
    SELECT coalesce(array_agg(z.id), '{}') INTO locked FROM (
      SELECT l.id FROM licenses l
       WHERE l.id IN (SELECT x.l FROM jsonb_to_recordset(p_items) AS x(l uuid))
       ORDER BY l.id FOR UPDATE SKIP LOCKED) z;
  ELSE
    SELECT coalesce(array_agg(z.id), '{}') INTO locked FROM (
      SELECT l.id FROM licenses l
       WHERE l.id IN (SELECT x.l FROM jsonb_to_recordset(p_items) AS x(l uuid))
       ORDER BY l.id FOR UPDATE) z;
  END IF;
  RETURN locked;
END
$$;

-- Name: licd_lookup(uuid, text, integer, text, jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_lookup(p_license uuid, p_iid text, p_touch_secs integer, p_version text, p_metadata jsonb) RETURNS TABLE(id uuid, customer_id uuid, plan_code text, status text, expires_epoch bigint, grace_epoch bigint, features text, limits text, domains text, inst_status text, first_seen bigint, last_seen bigint, now_epoch bigint, inst_domain text, needs_touch boolean, license_key text, seat_ttl integer, seat_expires bigint, borrowed_until bigint, seat_overdraft boolean)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  SELECT l.id, l.customer_id, l.plan_code, l.status,
         extract(epoch FROM l.expires_at)::bigint,
         extract(epoch FROM l.grace_until)::bigint,
         l.features::text, l.limits::text, l.domains::text, i.status,
         extract(epoch FROM i.first_seen)::bigint,
         extract(epoch FROM i.last_seen)::bigint,
         extract(epoch FROM c.t)::bigint, i.domain,
         coalesce(l.status = 'active' AND i.status = 'active' AND
                  (i.last_seen < c.t - make_interval(secs => p_touch_secs)
                   OR (p_version IS NOT NULL AND i.version IS DISTINCT FROM p_version)
                   OR (p_metadata IS NOT NULL AND i.metadata IS DISTINCT FROM p_metadata)),
                  false),
         l.license_key,
         CASE WHEN l.seat_model = 'floating' THEN l.seat_ttl END,
         extract(epoch FROM i.seat_expires_at)::bigint,
         extract(epoch FROM i.borrowed_until)::bigint, i.seat_overdraft
    FROM licenses l
   CROSS JOIN (SELECT licd_now() AS t OFFSET 0) c
    LEFT JOIN installations i ON i.license_id = l.id AND i.installation_id = p_iid
                             AND i.license_id::text || i.installation_id
                                 = p_license::text || p_iid
   WHERE l.id = p_license;
END
$$;

-- Name: licd_lookup_batch(jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_lookup_batch(p_items jsonb) RETURNS TABLE(id uuid, customer_id uuid, plan_code text, status text, expires_epoch bigint, grace_epoch bigint, features text, limits text, domains text, inst_status text, first_seen bigint, last_seen bigint, now_epoch bigint, inst_domain text, needs_touch boolean, license_key text, seat_ttl integer, seat_expires bigint, borrowed_until bigint, seat_overdraft boolean, n integer)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  SELECT r.*, x.n
    FROM jsonb_to_recordset(p_items) AS x(n int, l uuid, i text, s int,
                                          v text, m text)
   CROSS JOIN (SELECT licd_now() AS t OFFSET 0) c
   CROSS JOIN LATERAL (
    SELECT l.id, l.customer_id, l.plan_code, l.status,
           extract(epoch FROM l.expires_at)::bigint,
           extract(epoch FROM l.grace_until)::bigint,
           l.features::text, l.limits::text, l.domains::text, i.status,
           extract(epoch FROM i.first_seen)::bigint,
           extract(epoch FROM i.last_seen)::bigint,
           extract(epoch FROM c.t)::bigint, i.domain,
           coalesce(l.status = 'active' AND i.status = 'active' AND
                    (i.last_seen < c.t - make_interval(secs => x.s)
                     OR (x.v IS NOT NULL AND i.version IS DISTINCT FROM x.v)
                     OR (x.m IS NOT NULL AND
                         i.metadata IS DISTINCT FROM x.m::jsonb)),
                    false),
           l.license_key,
           CASE WHEN l.seat_model = 'floating' THEN l.seat_ttl END,
           extract(epoch FROM i.seat_expires_at)::bigint,
           extract(epoch FROM i.borrowed_until)::bigint, i.seat_overdraft
      FROM licenses l
      LEFT JOIN installations i ON i.license_id = l.id
                               AND i.installation_id = x.i
                               AND i.license_id::text || i.installation_id
                                   = x.l::text || x.i
     WHERE l.id = x.l
    OFFSET 0) r;
END
$$;

-- Name: licd_norm_domains(jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_norm_domains(d jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    AS $$
  SELECT CASE WHEN d IS NULL OR jsonb_typeof(d) <> 'array'
              OR EXISTS (SELECT 1 FROM jsonb_array_elements(d) e WHERE jsonb_typeof(e) <> 'string')
              THEN d
              ELSE (SELECT coalesce(jsonb_agg(DISTINCT rtrim(lower(e #>> '{}'), '.')), '[]')
                      FROM jsonb_array_elements(d) e) END
$$;

-- Name: licd_notify(text, uuid, text, jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_notify(p_kind text, p_license uuid, p_dedupe text, p_payload jsonb) RETURNS bigint
    LANGUAGE sql
    AS $$
  INSERT INTO notifications (kind, license_id, customer_id, recipient, payload,
                             dedupe_key, next_attempt_at, created_at)
  SELECT p_kind, l.id, l.customer_id, c.email, coalesce(p_payload, '{}'),
         p_dedupe, licd_now(), licd_now()
    FROM licenses l JOIN customers c ON c.id = l.customer_id
   WHERE l.id = p_license
  ON CONFLICT (dedupe_key) DO NOTHING
  RETURNING id
$$;

-- Name: licd_now(); Type: FUNCTION

CREATE FUNCTION public.licd_now() RETURNS timestamp with time zone
    LANGUAGE plpgsql STABLE
    AS $$
BEGIN
  RETURN now() + make_interval(secs => coalesce((SELECT offset_s FROM licd_clock), 0));
END
$$;

-- Name: licd_page(jsonb, integer, text); Type: FUNCTION

CREATE FUNCTION public.licd_page(p_rows jsonb, p_lim integer, p_key text, OUT page jsonb, OUT next_cursor text) RETURNS record
    LANGUAGE sql IMMUTABLE
    AS $$
  SELECT coalesce((SELECT jsonb_agg(CASE WHEN p_key = '_c' THEN e - '_c' ELSE e END ORDER BY o)
                     FROM jsonb_array_elements(p_rows) WITH ORDINALITY x(e, o)
                    WHERE o <= p_lim), '[]'),
         CASE WHEN jsonb_array_length(p_rows) > p_lim THEN licd_cursor_enc(
           CASE jsonb_typeof(p_rows -> (p_lim - 1) -> p_key)
             WHEN 'array' THEN p_rows -> (p_lim - 1) -> p_key
             ELSE jsonb_build_array(p_rows -> (p_lim - 1) -> p_key) END) END
$$;

-- Name: licd_period(timestamp with time zone); Type: FUNCTION

CREATE FUNCTION public.licd_period(t timestamp with time zone) RETURNS date
    LANGUAGE sql IMMUTABLE
    AS $$
  SELECT date_trunc('month', t AT TIME ZONE 'UTC')::date
$$;

-- Name: licd_price_plan(text, jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_price_plan(p_provider text, prices jsonb) RETURNS text
    LANGUAGE sql STABLE
    AS $$
  SELECT p.code FROM jsonb_array_elements_text(
           CASE WHEN jsonb_typeof(prices) = 'array' THEN prices ELSE '[]' END)
         WITH ORDINALITY AS x(price, n)
    JOIN plans p ON (p_provider = 'stripe' AND p.stripe_price_id = x.price)
                 OR (p_provider = 'paddle' AND p.paddle_price_id = x.price)
   ORDER BY p.is_addon, x.n LIMIT 1
$$;

-- Name: licd_recompute_entitlements(uuid); Type: FUNCTION

CREATE FUNCTION public.licd_recompute_entitlements(p_license uuid) RETURNS void
    LANGUAGE plpgsql
    AS $$
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

-- Name: licd_reset_activations(uuid, text, text, text); Type: FUNCTION

CREATE FUNCTION public.licd_reset_activations(p_license uuid, p_reason text, p_actor text, p_rid text) RETURNS TABLE(result text, freed bigint)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
DECLARE
  lic licenses%ROWTYPE;
  t   timestamptz;
BEGIN
  SELECT * INTO lic FROM licenses WHERE id = p_license FOR UPDATE;
  IF NOT FOUND THEN
    result := 'not_found'; RETURN NEXT; RETURN;
  END IF;
  t := licd_clock_now();
  IF lic.seat_model = 'floating' THEN
    PERFORM licd_seat_day(p_license, t);
  END IF;
  UPDATE installations
     SET status = 'inactive', deactivated_at = licd_now(),
         seat_expires_at = CASE WHEN seat_expires_at > t THEN NULL
                                ELSE seat_expires_at END,
         borrowed_until = NULL
   WHERE license_id = p_license AND status = 'active';
  GET DIAGNOSTICS freed = ROW_COUNT;
  PERFORM licd_audit(p_actor, 'license.reset_activations', 'license',
                     p_license::text, p_reason, p_rid,
                     jsonb_build_object('freed', freed));
  result := 'ok';
  RETURN NEXT;
END
$$;

-- Name: licd_revoke(uuid, text, text, text); Type: FUNCTION

CREATE FUNCTION public.licd_revoke(p_license uuid, p_reason text, p_actor text, p_rid text) RETURNS TABLE(result text, revoked_at bigint, changed boolean)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
DECLARE
  t timestamptz;
BEGIN
  UPDATE licenses SET status = 'revoked', revoked_at = licd_now(),
         status_reason = p_reason, updated_at = licd_now()
   WHERE id = p_license AND status <> 'revoked'
  RETURNING licenses.revoked_at INTO t;
  changed := FOUND;
  IF NOT changed THEN
    SELECT l.revoked_at INTO t FROM licenses l WHERE l.id = p_license;
    IF NOT FOUND THEN
      result := 'not_found'; RETURN NEXT; RETURN;
    END IF;
    t := coalesce(t, licd_now());
  END IF;
  PERFORM licd_audit(p_actor, 'license.revoke', 'license', p_license::text,
                     p_reason, p_rid, jsonb_build_object('changed', changed));
  result := 'ok'; revoked_at := extract(epoch FROM t)::bigint;
  RETURN NEXT;
END
$$;

-- Name: licd_seat(uuid, text, text, integer, text, jsonb, text, text); Type: FUNCTION

CREATE FUNCTION public.licd_seat(p_license uuid, p_iid text, p_mode text, p_days integer, p_version text, p_metadata jsonb, p_domain text, p_feature text DEFAULT NULL::text) RETURNS TABLE(code text, first_seen bigint, last_seen bigint, seat_expires bigint, borrowed_until bigint, overdraft boolean, max_borrow_days integer)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
DECLARE
  lic    licenses%ROWTYPE;
  inst   installations%ROWTYPE;
  t      timestamptz;
  live   boolean;
  seats  bigint;
  used   bigint;
  over   boolean;
  span   interval;
  borrow boolean := p_mode IN ('borrow', 'offline');
BEGIN
  SELECT * INTO lic FROM licenses l WHERE l.id = p_license FOR UPDATE;
  IF NOT FOUND THEN
    code := 'INVALID_KEY'; RETURN NEXT; RETURN;
  END IF;
  t := licd_clock_now();
  max_borrow_days := lic.max_borrow_days;
  IF lic.status <> 'active' THEN
    code := upper(lic.status); RETURN NEXT; RETURN;
  END IF;
  IF lic.expires_at IS NOT NULL AND
     greatest(lic.expires_at, lic.grace_until) <= t THEN
    code := 'EXPIRED'; RETURN NEXT; RETURN;
  END IF;
  IF lic.seat_model <> 'floating' THEN
    code := 'NOT_FLOATING'; RETURN NEXT; RETURN;
  END IF;
  IF p_mode IN ('take', 'borrow') AND NOT licd_domain_allowed(lic.domains, p_domain) THEN
    code := 'DOMAIN_NOT_ALLOWED'; RETURN NEXT; RETURN;
  END IF;
  IF p_mode = 'take' AND p_feature IS NOT NULL AND
     NOT (jsonb_typeof(lic.features) = 'array' AND lic.features ? p_feature) THEN
    code := 'FEATURE_NOT_LICENSED'; RETURN NEXT; RETURN;
  END IF;
  IF borrow AND (p_days IS NULL OR p_days < 1 OR p_days > lic.max_borrow_days) THEN
    code := 'BORROW_LIMIT_EXCEEDED'; RETURN NEXT; RETURN;
  END IF;
  PERFORM licd_seat_day(p_license, t);
  SELECT * INTO inst FROM installations i
   WHERE i.license_id = p_license AND i.installation_id = p_iid;
  live := FOUND AND inst.status = 'active' AND inst.seat_expires_at > t;
  IF p_mode = 'renew' AND NOT live THEN
    code := 'INSTALLATION_NOT_ACTIVE'; RETURN NEXT; RETURN;
  END IF;
  span := CASE WHEN borrow THEN make_interval(days => p_days)
               ELSE make_interval(secs => lic.seat_ttl) END;
  IF live THEN
    -- Never shortens it (a borrowed seat stays borrowed).
    UPDATE installations i
       SET seat_expires_at = greatest(i.seat_expires_at, t + span),
           borrowed_until = CASE WHEN borrow
                                 THEN greatest(i.borrowed_until, t + span)
                                 ELSE i.borrowed_until END,
           last_seen = greatest(i.last_seen, t),
           version = coalesce(p_version, i.version),
           metadata = coalesce(p_metadata, i.metadata),
           domain = coalesce(p_domain, i.domain)
     WHERE i.license_id = p_license AND i.installation_id = p_iid
    RETURNING 'VALID', extract(epoch FROM i.first_seen)::bigint,
              extract(epoch FROM i.last_seen)::bigint,
              extract(epoch FROM i.seat_expires_at)::bigint,
              extract(epoch FROM i.borrowed_until)::bigint, i.seat_overdraft
         INTO code, first_seen, last_seen, seat_expires, borrowed_until,
              overdraft;
    RETURN NEXT;
    RETURN;
  END IF;
  -- Lapsed seats stop being active, so that the count below reads only
  -- live ones and the license's active rows stay few. In key order, as
  -- licd_touch_batch locks rows, so that the two cannot deadlock. Both
  -- read the license's active installations by installations_seated:
  -- each of a floating license's has a seat expiry
  -- (licd_license_seats_set), and so a seat_since (034).
  UPDATE installations i
     SET status = 'inactive', deactivated_at = i.seat_expires_at
   WHERE (i.license_id, i.installation_id) IN (
           SELECT x.license_id, x.installation_id FROM installations x
            WHERE x.license_id = p_license AND x.status = 'active'
              AND x.seat_since IS NOT NULL AND x.seat_expires_at <= t
            ORDER BY x.installation_id FOR UPDATE);
  SELECT count(*) INTO used FROM installations i
   WHERE i.license_id = p_license AND i.status = 'active'
     AND i.seat_since IS NOT NULL AND i.seat_expires_at > t
     AND i.installation_id <> p_iid;
  seats := (lic.limits ->> 'installations')::numeric::bigint;
  IF seats IS NOT NULL AND used >= seats + lic.overdraft THEN
    code := 'TOO_MANY_INSTALLATIONS'; RETURN NEXT; RETURN;
  END IF;
  over := seats IS NOT NULL AND used >= seats;
  INSERT INTO installations AS i (license_id, installation_id, status, version,
                                  metadata, domain, first_seen, last_seen,
                                  activated_at, seat_since, seat_expires_at,
                                  borrowed_until, seat_overdraft)
  VALUES (p_license, p_iid, 'active', p_version, p_metadata, p_domain, t, t, t,
          t, t + span, CASE WHEN borrow THEN t + span END, over)
  ON CONFLICT (license_id, installation_id) DO UPDATE
     SET status = 'active', last_seen = greatest(i.last_seen, t),
         activated_at = t, deactivated_at = NULL, seat_since = t,
         seat_expires_at = t + span,
         borrowed_until = CASE WHEN borrow THEN t + span END,
         seat_overdraft = over,
         version = coalesce(EXCLUDED.version, i.version),
         metadata = coalesce(EXCLUDED.metadata, i.metadata),
         domain = coalesce(EXCLUDED.domain, i.domain)
  RETURNING 'VALID', extract(epoch FROM i.first_seen)::bigint,
            extract(epoch FROM i.last_seen)::bigint,
            extract(epoch FROM i.seat_expires_at)::bigint,
            extract(epoch FROM i.borrowed_until)::bigint, i.seat_overdraft
       INTO code, first_seen, last_seen, seat_expires, borrowed_until,
            overdraft;
  IF over THEN
    INSERT INTO seat_overdrafts (license_id, installation_id, at, seats_in_use,
                                 seat_limit)
    VALUES (p_license, p_iid, t, used + 1, seats);
  END IF;
  INSERT INTO seat_peaks AS s (license_id, day, peak)
  VALUES (p_license, (t AT TIME ZONE 'UTC')::date, used + 1)
  ON CONFLICT (license_id, day) DO UPDATE SET peak = greatest(s.peak, EXCLUDED.peak);
  RETURN NEXT;
END
$$;

-- Name: licd_seat_batch(jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_seat_batch(p_items jsonb) RETURNS TABLE(ord integer, code text, first_seen bigint, last_seen bigint, seat_expires bigint, borrowed_until bigint, overdraft boolean)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
DECLARE
  it     record;
  locked uuid[];
  t      timestamptz;
  fast   int[] := '{}';
  lics   uuid[] := '{}';
BEGIN
  locked := licd_lock_items(p_items);
  t := licd_clock_now();
  -- The renewals first: a renewal changes no live count, so
  -- licd_seat_days reads the same counts after it as before. Only seats
  -- due at t: each moves forward by more than a quarter of seat_ttl,
  -- which licd_cache_seat_changed lets pass unnotified, so the seat
  -- trigger is skipped for them (licd.seat_renewal, 99_triggers.sql),
  -- for this statement only.
  PERFORM set_config('licd.seat_renewal', 'on', true);
  FOR it IN
    UPDATE installations i
       SET seat_expires_at = greatest(i.seat_expires_at,
                                      t + make_interval(secs => l.seat_ttl)),
           last_seen = greatest(i.last_seen, t),
           version = coalesce(x.v, i.version),
           metadata = coalesce(x.m::jsonb, i.metadata),
           domain = coalesce(x.d, i.domain)
      FROM (SELECT y.*, count(*) OVER (PARTITION BY y.l, y.i) AS n
              FROM jsonb_to_recordset(p_items)
                AS y(o int, l uuid, i text, s text, v text, m text, d text,
                     f text)) x,
           licenses l
     WHERE l.id = x.l AND l.id = ANY (locked) AND x.n = 1
       AND x.s IN ('take', 'renew')
       AND l.status = 'active' AND l.seat_model = 'floating'
       AND NOT (l.expires_at IS NOT NULL AND
                greatest(l.expires_at, l.grace_until) <= t)
       AND (x.s = 'renew' OR
            ((l.domains = '[]' OR licd_domain_allowed(l.domains, x.d)) AND
             (x.f IS NULL OR (jsonb_typeof(l.features) = 'array' AND
                              l.features ? x.f))))
       AND i.license_id = x.l AND i.installation_id = x.i
       AND i.status = 'active' AND i.seat_expires_at > t
       AND t + make_interval(secs => l.seat_ttl) - i.seat_expires_at >
           make_interval(secs => l.seat_ttl / 4)
    RETURNING x.o, x.l, extract(epoch FROM i.first_seen)::bigint AS f,
              extract(epoch FROM i.last_seen)::bigint AS s,
              extract(epoch FROM i.seat_expires_at)::bigint AS e,
              extract(epoch FROM i.borrowed_until)::bigint AS b,
              i.seat_overdraft AS od
  LOOP
    fast := fast || it.o;
    lics := lics || it.l;
    ord := it.o; code := 'VALID'; first_seen := it.f; last_seen := it.s;
    seat_expires := it.e; borrowed_until := it.b; overdraft := it.od;
    RETURN NEXT;
  END LOOP;
  PERFORM set_config('licd.seat_renewal', 'off', true);
  -- Mostly not a day's first write: only the licenses that have no
  -- seat_peaks row for t's day yet.
  lics := ARRAY(SELECT DISTINCT u.l FROM unnest(lics) AS u(l)
                 WHERE NOT EXISTS (SELECT 1 FROM seat_peaks p
                                    WHERE p.license_id = u.l
                                      AND p.day = (t AT TIME ZONE 'UTC')::date));
  IF cardinality(lics) > 0 THEN
    PERFORM licd_seat_days(lics, t);
  END IF;
  IF cardinality(fast) = jsonb_array_length(p_items) THEN
    RETURN;
  END IF;
  FOR it IN
    SELECT x.* FROM jsonb_to_recordset(p_items)
      AS x(o int, l uuid, i text, s text, v text, m text, d text, f text)
     WHERE NOT x.o = ANY (fast)
     ORDER BY x.l, x.i, x.o
  LOOP
    ord := it.o;
    IF NOT it.l = ANY (locked) AND
       EXISTS (SELECT 1 FROM licenses l WHERE l.id = it.l) THEN
      code := 'BUSY'; first_seen := NULL; last_seen := NULL;
      seat_expires := NULL; borrowed_until := NULL; overdraft := NULL;
    ELSE
      SELECT r.code, r.first_seen, r.last_seen, r.seat_expires,
             r.borrowed_until, r.overdraft
        INTO code, first_seen, last_seen, seat_expires, borrowed_until,
             overdraft
        FROM licd_seat(it.l, it.i, it.s, NULL, it.v, it.m::jsonb, it.d,
                       it.f) r;
    END IF;
    RETURN NEXT;
  END LOOP;
END
$$;

-- Name: licd_seat_checkin(uuid, text); Type: FUNCTION

CREATE FUNCTION public.licd_seat_checkin(p_license uuid, p_iid text) RETURNS TABLE(code text, released boolean)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
DECLARE
  lic licenses%ROWTYPE;
  t   timestamptz;
BEGIN
  SELECT * INTO lic FROM licenses l WHERE l.id = p_license FOR UPDATE;
  IF NOT FOUND THEN
    code := 'INVALID_KEY'; released := false; RETURN NEXT; RETURN;
  END IF;
  t := licd_clock_now();
  IF lic.seat_model <> 'floating' THEN
    code := 'NOT_FLOATING'; released := false; RETURN NEXT; RETURN;
  END IF;
  PERFORM licd_seat_day(p_license, t);
  released := EXISTS (SELECT 1 FROM installations i
                       WHERE i.license_id = p_license AND i.installation_id = p_iid
                         AND i.status = 'active' AND i.seat_expires_at > t);
  -- seat_expires_at NULL: released, not lapsed (licd_admin_license).
  UPDATE installations i
     SET status = 'inactive', deactivated_at = t, seat_expires_at = NULL,
         borrowed_until = NULL
   WHERE i.license_id = p_license AND i.installation_id = p_iid
     AND (i.status = 'active' OR i.seat_expires_at > t);
  code := 'OK';
  RETURN NEXT;
END
$$;

-- Name: licd_seat_day(uuid, timestamp with time zone); Type: FUNCTION

CREATE FUNCTION public.licd_seat_day(p_license uuid, t timestamp with time zone) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
  PERFORM licd_seat_days(ARRAY[p_license], t);
END
$$;

-- Name: licd_seat_days(uuid[], timestamp with time zone); Type: FUNCTION

CREATE FUNCTION public.licd_seat_days(p_licenses uuid[], t timestamp with time zone) RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
  d date := (t AT TIME ZONE 'UTC')::date;
BEGIN
  INSERT INTO seat_peaks (license_id, day, peak)
  SELECT x.l, g.day, g.n
    FROM (SELECT DISTINCT u.l FROM unnest(p_licenses) AS u(l)) x
   CROSS JOIN LATERAL (SELECT max(p.day) AS prev FROM seat_peaks p
                        WHERE p.license_id = x.l AND p.day < d) pr
   CROSS JOIN LATERAL (
     SELECT s::date AS day, licd_seats_at_start(x.l, s::date) AS n
       FROM generate_series(greatest(coalesce(pr.prev + 1, d), d - 366)::timestamp,
                            d::timestamp, interval '1 day') s) g
   WHERE NOT EXISTS (SELECT 1 FROM seat_peaks p
                      WHERE p.license_id = x.l AND p.day = d)
     AND (g.day = d OR g.n > 0)
  ON CONFLICT DO NOTHING;
END
$$;

-- Name: licd_seat_peaks(uuid, date, date); Type: FUNCTION

CREATE FUNCTION public.licd_seat_peaks(p_license uuid, p_from date, p_to date) RETURNS TABLE(day date, peak integer)
    LANGUAGE sql STABLE
    AS $$
  WITH prev AS (SELECT max(day) AS d FROM seat_peaks WHERE license_id = p_license)
  SELECT s.day, s.peak FROM seat_peaks s
   WHERE s.license_id = p_license AND s.day BETWEEN p_from AND p_to AND s.peak > 0
  UNION ALL
  SELECT g.day, g.n
    FROM prev, LATERAL (
      SELECT s::date AS day, licd_seats_at_start(p_license, s::date) AS n
        FROM generate_series(greatest(prev.d + 1, p_from)::timestamp,
                             least(p_to, (licd_now() AT TIME ZONE 'UTC')::date)::timestamp,
                             interval '1 day') s) g
   WHERE prev.d IS NOT NULL AND g.n > 0
  ORDER BY 1
$$;

-- Name: installations; Type: TABLE

CREATE TABLE public.installations (
    license_id uuid NOT NULL,
    installation_id text NOT NULL,
    status text DEFAULT 'active'::text NOT NULL,
    first_seen timestamp with time zone DEFAULT now() NOT NULL,
    last_seen timestamp with time zone DEFAULT now() NOT NULL,
    activated_at timestamp with time zone DEFAULT now() NOT NULL,
    deactivated_at timestamp with time zone,
    version text,
    domain text,
    metadata jsonb,
    offline_until timestamp with time zone,
    seat_since timestamp with time zone,
    seat_expires_at timestamp with time zone,
    borrowed_until timestamp with time zone,
    seat_overdraft boolean DEFAULT false NOT NULL,
    seen_hour timestamp with time zone GENERATED ALWAYS AS (date_bin('01:00:00'::interval, last_seen, to_timestamp(((946684800 + abs((hashtext(installation_id) % 3600))))::double precision))) STORED NOT NULL,
    CONSTRAINT installations_domain_check CHECK ((length(domain) <= 253)),
    CONSTRAINT installations_installation_id_check CHECK ((((length(installation_id) >= 1) AND (length(installation_id) <= 128)) AND (installation_id ~ '^[A-Za-z0-9._:-]+$'::text))),
    CONSTRAINT installations_metadata_check CHECK (((metadata IS NULL) OR ((jsonb_typeof(metadata) = 'object'::text) AND (length((metadata)::text) <= 4096)))),
    CONSTRAINT installations_seat_since CHECK (((seat_expires_at IS NULL) OR (seat_since IS NOT NULL))),
    CONSTRAINT installations_status_check CHECK ((status = ANY (ARRAY['active'::text, 'inactive'::text]))),
    CONSTRAINT installations_version_check CHECK ((length(version) <= 64))
)
WITH (fillfactor='80');

-- Name: licd_seat_state(public.installations); Type: FUNCTION

CREATE FUNCTION public.licd_seat_state(i public.installations) RETURNS text
    LANGUAGE sql STABLE
    AS $$
  SELECT CASE
    WHEN i.status = 'active' AND i.seat_expires_at > licd_now() THEN
      CASE WHEN i.borrowed_until > licd_now() THEN 'borrowed' ELSE 'live' END
    WHEN i.seat_expires_at <= licd_now() THEN 'lapsed'
    ELSE 'released' END
$$;

-- Name: licd_seats_added(); Type: FUNCTION

CREATE FUNCTION public.licd_seats_added() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  INSERT INTO license_seats AS s (license_id, active)
  SELECT a.license_id, count(*) FROM added a WHERE a.status = 'active'
   GROUP BY a.license_id ORDER BY a.license_id
  ON CONFLICT (license_id) DO UPDATE SET active = s.active + EXCLUDED.active;
  RETURN NULL;
END
$$;

-- Name: licd_seats_at_start(uuid, date); Type: FUNCTION

CREATE FUNCTION public.licd_seats_at_start(p_license uuid, d date) RETURNS integer
    LANGUAGE sql STABLE
    AS $$
  SELECT count(*)::int FROM installations i
   WHERE i.license_id = p_license AND i.status = 'active'
     AND i.seat_since IS NOT NULL AND i.seat_expires_at > licd_day_start(d)
$$;

-- Name: licd_seats_moved(); Type: FUNCTION

CREATE FUNCTION public.licd_seats_moved() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  INSERT INTO license_seats AS s (license_id, active)
  SELECT m.license_id, sum(m.n) FROM (
      SELECT a.license_id, 1 AS n FROM after a WHERE a.status = 'active'
      UNION ALL
      SELECT b.license_id, -1 FROM before b WHERE b.status = 'active') m
   GROUP BY m.license_id HAVING sum(m.n) <> 0 ORDER BY m.license_id
  ON CONFLICT (license_id) DO UPDATE SET active = s.active + EXCLUDED.active;
  RETURN NULL;
END
$$;

-- Name: licd_seats_recount(); Type: FUNCTION

CREATE FUNCTION public.licd_seats_recount() RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
  LOCK TABLE installations IN SHARE ROW EXCLUSIVE MODE;
  UPDATE license_seats s SET active = 0
   WHERE s.active <> 0 AND NOT EXISTS (
     SELECT 1 FROM installations i
      WHERE i.license_id = s.license_id AND i.status = 'active');
  INSERT INTO license_seats AS s (license_id, active)
  SELECT i.license_id, count(*) FROM installations i WHERE i.status = 'active'
   GROUP BY i.license_id ORDER BY i.license_id
  ON CONFLICT (license_id) DO UPDATE SET active = EXCLUDED.active
   WHERE s.active <> EXCLUDED.active;
END
$$;

-- Name: licd_seats_removed(); Type: FUNCTION

CREATE FUNCTION public.licd_seats_removed() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  UPDATE license_seats s SET active = s.active - r.n
    FROM (SELECT r.license_id, count(*) AS n FROM removed r
           WHERE r.status = 'active' GROUP BY r.license_id) r
   WHERE s.license_id = r.license_id;
  RETURN NULL;
END
$$;

-- Name: licd_seats_truncated(); Type: FUNCTION

CREATE FUNCTION public.licd_seats_truncated() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  DELETE FROM license_seats;
  RETURN NULL;
END
$$;

-- Name: licd_session_end(bytea, text); Type: FUNCTION

CREATE FUNCTION public.licd_session_end(p_hash bytea, p_rid text) RETURNS boolean
    LANGUAGE plpgsql
    AS $$
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

-- Name: licd_session_get(bytea); Type: FUNCTION

CREATE FUNCTION public.licd_session_get(p_hash bytea) RETURNS TABLE(actor text, csrf text, expires_at text, token_hash text)
    LANGUAGE sql STABLE
    AS $$
  SELECT s.actor, s.csrf, licd_iso(s.expires_at), s.token_hash FROM admin_sessions s
   WHERE s.id_hash = p_hash AND s.ended_at IS NULL AND s.expires_at > now()
     AND s.token_hash IS NOT NULL
$$;

-- Name: licd_session_open(bytea, text, text, text, integer, text); Type: FUNCTION

CREATE FUNCTION public.licd_session_open(p_hash bytea, p_csrf text, p_actor text, p_token_hash text, p_ttl integer, p_rid text) RETURNS text
    LANGUAGE plpgsql
    AS $$
DECLARE
  exp timestamptz := now() + make_interval(secs => p_ttl);
BEGIN
  DELETE FROM admin_sessions WHERE expires_at < now() - interval '1 day';
  INSERT INTO admin_sessions (id_hash, csrf, actor, token_hash, expires_at)
  VALUES (p_hash, p_csrf, p_actor, p_token_hash, exp);
  PERFORM licd_audit(p_actor, 'session.open', 'session', encode(substr(p_hash, 1, 8), 'hex'),
                     NULL, p_rid, NULL);
  RETURN licd_iso(exp);
END
$$;

-- Name: licd_set_status(uuid, text, text, text, text); Type: FUNCTION

CREATE FUNCTION public.licd_set_status(p_license uuid, p_action text, p_reason text, p_actor text, p_rid text) RETURNS TABLE(result text, status text, changed_at bigint, changed boolean)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
DECLARE
  cur  text;
  want text := CASE p_action WHEN 'suspend' THEN 'suspended' ELSE 'active' END;
  src  text := CASE p_action WHEN 'suspend' THEN 'active' ELSE 'suspended' END;
BEGIN
  IF p_action NOT IN ('suspend', 'reinstate') THEN
    RAISE EXCEPTION 'bad action %', p_action;
  END IF;
  SELECT l.status INTO cur FROM licenses l WHERE l.id = p_license FOR UPDATE;
  IF NOT FOUND THEN
    result := 'not_found'; RETURN NEXT; RETURN;
  END IF;
  status := cur; changed := false;
  IF cur = src THEN
    UPDATE licenses SET status = want, status_reason = p_reason,
           suspended_at = CASE WHEN want = 'suspended' THEN licd_now() END,
           updated_at = licd_now()
     WHERE id = p_license;
    status := want; changed := true;
  ELSIF cur <> want THEN
    result := 'conflict'; RETURN NEXT; RETURN;
  END IF;
  PERFORM licd_audit(p_actor, 'license.' || p_action, 'license', p_license::text,
                     p_reason, p_rid, jsonb_build_object('changed', changed));
  result := 'ok'; changed_at := extract(epoch FROM licd_now())::bigint;
  RETURN NEXT;
END
$$;

-- Name: licd_slug_ok(text); Type: FUNCTION

CREATE FUNCTION public.licd_slug_ok(s text) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    AS $_$
  SELECT length(s) <= 64 AND s ~ '^[a-z0-9][a-z0-9_.-]*$'
$_$;

-- Name: licd_subscription_paid(text, text, timestamp with time zone, timestamp with time zone); Type: FUNCTION

CREATE FUNCTION public.licd_subscription_paid(p_provider text, p_sub text, p_until timestamp with time zone, t timestamp with time zone) RETURNS void
    LANGUAGE sql
    AS $$
  UPDATE subscriptions
     SET status = 'active', grace_until = NULL,
         current_period_end = greatest(current_period_end, p_until), updated_at = t
   WHERE provider = p_provider AND provider_subscription_id = p_sub;
$$;

-- Name: licd_touch(uuid, text, text, jsonb, text); Type: FUNCTION

CREATE FUNCTION public.licd_touch(p_license uuid, p_iid text, p_version text, p_metadata jsonb, p_domain text) RETURNS TABLE(first_seen bigint, last_seen bigint)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
BEGIN
  -- is_local: for this transaction only (the statement's own, since
  -- validate and heartbeat call licd_touch on its own).
  PERFORM set_config('synchronous_commit', 'off', true);
  RETURN QUERY
  UPDATE installations
     SET last_seen = licd_now(), version = coalesce(p_version, version),
         metadata = coalesce(p_metadata, metadata),
         domain = coalesce(p_domain, domain)
   WHERE license_id = p_license AND installation_id = p_iid AND status = 'active'
  RETURNING extract(epoch FROM installations.first_seen)::bigint,
            extract(epoch FROM installations.last_seen)::bigint;
END
$$;

-- Name: licd_touch_batch(jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_touch_batch(p_items jsonb) RETURNS integer
    LANGUAGE plpgsql
    AS $$
DECLARE
  n int;
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  UPDATE installations s
     SET last_seen = greatest(s.last_seen, x.t),
         version = coalesce(x.v, s.version),
         metadata = coalesce(x.m, s.metadata)
    FROM (SELECT DISTINCT ON (x.l, x.i) x.l, x.i, x.v, x.m::jsonb AS m,
                 to_timestamp(x.t) AS t
            FROM jsonb_to_recordset(p_items) AS x(l uuid, i text, t bigint,
                                                  v text, m text)
           ORDER BY x.l, x.i, x.t DESC) x
   WHERE s.license_id = x.l AND s.installation_id = x.i
     AND s.license_id::text || s.installation_id = x.l::text || x.i
     AND s.status = 'active';
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;

-- Name: licd_try_ts(text); Type: FUNCTION

CREATE FUNCTION public.licd_try_ts(t text) RETURNS timestamp with time zone
    LANGUAGE plpgsql IMMUTABLE
    AS $$
BEGIN
  RETURN t::timestamptz;
EXCEPTION WHEN others THEN
  RETURN NULL;
END
$$;

-- Name: licd_usage_add_batch(jsonb); Type: FUNCTION

CREATE FUNCTION public.licd_usage_add_batch(p_items jsonb) RETURNS TABLE(ord integer, code text, accepted boolean, period text, used bigint, lim bigint, replayed boolean, req_feature text, req_quantity bigint, license_key text)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
DECLARE
  t       timestamptz := licd_now();
  now_s   bigint := extract(epoch FROM t)::bigint;
  per     date := licd_period(t);
  v       jsonb;
  it      record;
  n       bigint;
  r       usage_requests%ROWTYPE;
  claimed int[] := '{}';
  done    jsonb;
  done_o  int[];
BEGIN
  -- 0. The licenses, locked; each item with its refusal ("c") or its
  -- limit ("m"). Waiting ("w"), the licenses are locked first, in id
  -- order; the statement below then holds them already and skips none.
  IF p_items @> '[{"w": true}]' THEN
    PERFORM 1 FROM licenses l
     WHERE l.id IN (SELECT (e ->> 'l')::uuid FROM jsonb_array_elements(p_items) e)
     ORDER BY l.id
       FOR SHARE;
  END IF;
  WITH lic AS MATERIALIZED (
    SELECT l.id, l.status, l.expires_at, l.grace_until, l.features,
           l.limits, l.license_key
      FROM licenses l
     WHERE l.id IN (SELECT (e ->> 'l')::uuid FROM jsonb_array_elements(p_items) e)
     ORDER BY l.id
       FOR SHARE SKIP LOCKED)
  SELECT coalesce(jsonb_agg(x.e || jsonb_build_object(
           'c', y.c,
           'm', CASE WHEN y.c IS NULL AND jsonb_typeof(lic.limits -> y.lname) = 'number'
                     THEN (lic.limits ->> y.lname)::numeric::bigint END,
           's', CASE WHEN y.c = 'UNVOUCHED' THEN lic.license_key END)), '[]')
    INTO v
    FROM jsonb_array_elements(p_items) AS x(e)
    LEFT JOIN lic ON lic.id = (x.e ->> 'l')::uuid
   CROSS JOIN LATERAL (SELECT
      CASE WHEN lic.id IS NULL THEN
             CASE WHEN EXISTS (SELECT 1 FROM licenses z
                                WHERE z.id = (x.e ->> 'l')::uuid)
                  THEN 'BUSY' ELSE 'UNKNOWN' END
           WHEN x.e ->> 'key' IS NOT NULL
                AND lic.license_key IS DISTINCT FROM x.e ->> 'key' THEN 'UNVOUCHED'
           WHEN lic.status = 'revoked' THEN 'REVOKED'
           WHEN lic.status = 'suspended' THEN 'SUSPENDED'
           WHEN lic.status = 'expired'
                OR (lic.expires_at IS NOT NULL AND now_s >= extract(epoch FROM
                    greatest(lic.expires_at, lic.grace_until))::bigint)
             THEN 'EXPIRED'
           WHEN NOT (jsonb_typeof(lic.features) = 'array'
                     AND lic.features ? (x.e ->> 'f'))
             THEN 'FEATURE_NOT_LICENSED'
      END AS c,
      (x.e ->> 'f') || '_per_month' AS lname) y;

  RETURN QUERY
  SELECT x.o, x.c, NULL::boolean, NULL::text, NULL::bigint, NULL::bigint,
         false, x.f, x.q, x.s
    FROM jsonb_to_recordset(v) AS x(o int, c text, f text, q bigint, s text)
   WHERE x.c IS NOT NULL;

  -- 1. Claim the idempotency keys. A key claimed by a concurrent
  -- transaction waits for it; a key seen before (in this batch too) is a
  -- replay, answered in step 3.
  FOR it IN
    SELECT x.* FROM jsonb_to_recordset(v)
      AS x(o int, l uuid, f text, q bigint, k text, c text)
     WHERE x.k IS NOT NULL AND x.c IS NULL ORDER BY x.l, x.k, x.o
  LOOP
    INSERT INTO usage_requests (license_id, idempotency_key, feature, quantity)
    VALUES (it.l, it.k, it.f, it.q)
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
      claimed := claimed || it.o;
    END IF;
  END LOOP;

  -- 2. Count. The new increments of one counter go in together, one
  -- upsert for all of them, when their sum stays within the limit: each
  -- would then be accepted alone too, in arrival order, and its count is
  -- the counter before the batch plus the increments up to its own. Then
  -- all are logged in one insert. The counters locked, in (license,
  -- feature) order, by that upsert.
  WITH todo AS (
    SELECT x.o, x.l, x.i, x.f, x.q, x.m, x.k, x.r
      FROM jsonb_to_recordset(v)
        AS x(o int, l uuid, i text, f text, q bigint, m bigint, k text,
             r text, c text)
     WHERE x.c IS NULL AND (x.k IS NULL OR x.o = ANY (claimed))),
  g AS (
    SELECT todo.l, todo.f, max(todo.m) AS m, sum(todo.q)::bigint AS q
      FROM todo GROUP BY todo.l, todo.f),
  up AS (
    INSERT INTO usage_counters AS c (license_id, feature, period, used, updated_at)
    SELECT g.l, g.f, per, g.q, t FROM g
     WHERE g.m IS NULL OR g.q <= g.m
     ORDER BY g.l, g.f
    ON CONFLICT (license_id, feature, period) DO UPDATE
       SET used = c.used + EXCLUDED.used, updated_at = EXCLUDED.updated_at
     WHERE NOT EXISTS (SELECT 1 FROM g
                        WHERE g.l = c.license_id AND g.f = c.feature
                          AND g.m IS NOT NULL AND c.used > g.m - EXCLUDED.used)
    RETURNING c.license_id, c.feature, c.used),
  acc AS (
    SELECT todo.*, (up.used - g.q + sum(todo.q) OVER (PARTITION BY todo.l, todo.f
                                                  ORDER BY todo.o))::bigint AS n
      FROM todo
      JOIN g ON g.l = todo.l AND g.f = todo.f
      JOIN up ON up.license_id = todo.l AND up.feature = todo.f),
  lg AS (
    INSERT INTO usage_log (license_id, installation_id, feature, period, quantity,
                           at, idempotency_key, request_id)
    SELECT acc.l, acc.i, acc.f, per, acc.q, t, acc.k, acc.r FROM acc ORDER BY acc.o),
  rq AS (
    UPDATE usage_requests u SET accepted = true, period = per, used = acc.n,
           lim = acc.m
      FROM acc
     WHERE acc.k IS NOT NULL AND u.license_id = acc.l
       AND u.idempotency_key = acc.k)
  SELECT coalesce(jsonb_agg(jsonb_build_object('o', acc.o, 'n', acc.n, 'm', acc.m,
                                               'f', acc.f, 'q', acc.q)), '[]'),
         coalesce(array_agg(acc.o), '{}')
    INTO done, done_o
    FROM acc;

  RETURN QUERY
  SELECT x.o, NULL::text, true, to_char(per, 'YYYY-MM'), x.n, x.m, false,
         x.f, x.q, NULL::text
    FROM jsonb_to_recordset(done) AS x(o int, n bigint, m bigint, f text, q bigint);

  -- 2b. The counters whose increments together would pass the limit:
  -- item by item, in counter and arrival order, each counted only if it
  -- stays within the limit.
  FOR it IN
    SELECT x.* FROM jsonb_to_recordset(v)
      AS x(o int, l uuid, i text, f text, q bigint, m bigint, k text, r text,
           c text)
     WHERE x.c IS NULL AND (x.k IS NULL OR x.o = ANY (claimed))
       AND NOT (x.o = ANY (done_o))
     ORDER BY x.l, x.f, x.o
  LOOP
    n := NULL;
    IF it.m IS NULL OR it.q <= it.m THEN
      INSERT INTO usage_counters AS c (license_id, feature, period, used, updated_at)
      VALUES (it.l, it.f, per, it.q, t)
      ON CONFLICT (license_id, feature, period) DO UPDATE
         SET used = c.used + EXCLUDED.used, updated_at = EXCLUDED.updated_at
       WHERE it.m IS NULL OR c.used <= it.m - EXCLUDED.used
      RETURNING c.used INTO n;
    END IF;
    IF n IS NOT NULL THEN
      INSERT INTO usage_log (license_id, installation_id, feature, period, quantity,
                             at, idempotency_key, request_id)
      VALUES (it.l, it.i, it.f, per, it.q, t, it.k, it.r);
      accepted := true; used := n;
    ELSE
      SELECT c.used INTO n FROM usage_counters c
       WHERE c.license_id = it.l AND c.feature = it.f AND c.period = per;
      accepted := false; used := coalesce(n, 0);
    END IF;
    IF it.k IS NOT NULL THEN
      UPDATE usage_requests SET accepted = licd_usage_add_batch.accepted,
             period = per, used = licd_usage_add_batch.used, lim = it.m
       WHERE license_id = it.l AND idempotency_key = it.k;
    END IF;
    ord := it.o; code := NULL; period := to_char(per, 'YYYY-MM'); lim := it.m;
    replayed := false; req_feature := it.f; req_quantity := it.q;
    license_key := NULL;
    RETURN NEXT;
  END LOOP;

  -- 3. Replays: the stored answer (written in step 2 for a key first seen
  -- in this batch).
  FOR it IN
    SELECT x.* FROM jsonb_to_recordset(v) AS x(o int, l uuid, k text, c text)
     WHERE x.k IS NOT NULL AND x.c IS NULL AND NOT (x.o = ANY (claimed))
     ORDER BY x.o
  LOOP
    SELECT * INTO r FROM usage_requests
     WHERE license_id = it.l AND idempotency_key = it.k;
    ord := it.o; code := NULL; accepted := r.accepted;
    period := to_char(r.period, 'YYYY-MM');
    used := r.used; lim := r.lim; replayed := true;
    req_feature := r.feature; req_quantity := r.quantity; license_key := NULL;
    RETURN NEXT;
  END LOOP;
END
$$;

-- Name: licd_usage_get(uuid, text); Type: FUNCTION

CREATE FUNCTION public.licd_usage_get(p_license uuid, p_period text) RETURNS TABLE(feature text, used bigint, period text)
    LANGUAGE sql STABLE
    AS $$
  SELECT c.feature, c.used, to_char(c.period, 'YYYY-MM')
    FROM usage_counters c
   WHERE c.license_id = p_license
     AND c.period = coalesce(to_date(p_period, 'YYYY-MM'), licd_period(licd_now()))
$$;

-- Name: licd_webhook_apply(text, text, integer); Type: FUNCTION

CREATE FUNCTION public.licd_webhook_apply(p_provider text, p_event_id text, p_grace_days integer) RETURNS TABLE(outcome text, new_license uuid)
    LANGUAGE plpgsql
    AS $$
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

-- Name: licd_webhook_event(text, text, text, jsonb, jsonb, integer, text); Type: FUNCTION

CREATE FUNCTION public.licd_webhook_event(p_provider text, p_event_id text, p_type text, p_payload jsonb, p_action jsonb, p_grace_days integer, p_rid text) RETURNS TABLE(outcome text, new_license uuid)
    LANGUAGE plpgsql
    AS $$
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

-- Name: licd_webhook_mark(text, text, text, text, text); Type: FUNCTION

CREATE FUNCTION public.licd_webhook_mark(p_provider text, p_event_id text, p_outcome text, p_subject text, p_reason text) RETURNS void
    LANGUAGE sql
    AS $$
  UPDATE webhook_events
     SET status = CASE p_outcome WHEN 'pending' THEN 'pending'
                                 WHEN 'applied' THEN 'applied' ELSE 'ignored' END,
         subject = CASE WHEN p_outcome = 'pending' THEN p_subject END,
         reason = CASE WHEN p_outcome = 'pending' THEN p_reason END,
         applied_at = CASE WHEN p_outcome = 'applied' THEN licd_now() END
   WHERE provider = p_provider AND event_id = p_event_id
$$;

-- Name: admin_sessions; Type: TABLE

CREATE TABLE public.admin_sessions (
    id_hash bytea NOT NULL,
    csrf text NOT NULL,
    actor text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    ended_at timestamp with time zone,
    token_hash text,
    CONSTRAINT admin_sessions_token_hash CHECK (((token_hash IS NOT NULL) OR (ended_at IS NOT NULL))),
    CONSTRAINT admin_sessions_token_hash_check CHECK ((token_hash ~ '^[0-9a-f]{64}$'::text))
);

-- Name: audit_log; Type: TABLE

CREATE TABLE public.audit_log (
    id bigint NOT NULL,
    at timestamp with time zone DEFAULT now() NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    target_type text NOT NULL,
    target_id text,
    reason text,
    request_id text,
    details jsonb
);

-- Name: audit_log_id_seq; Type: SEQUENCE

CREATE SEQUENCE public.audit_log_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

-- Name: audit_log_id_seq; Type: SEQUENCE OWNED BY

ALTER SEQUENCE public.audit_log_id_seq OWNED BY public.audit_log.id;

-- Name: cache_barrier_seq; Type: SEQUENCE

CREATE SEQUENCE public.cache_barrier_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

-- Name: cache_listeners; Type: TABLE

CREATE TABLE public.cache_listeners (
    id bigint NOT NULL,
    host text NOT NULL,
    pid integer NOT NULL,
    program text NOT NULL,
    acked bigint DEFAULT 0 NOT NULL,
    alive_until timestamp with time zone NOT NULL,
    doomed boolean DEFAULT false NOT NULL,
    registered_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT cache_listeners_host_check CHECK ((length(host) <= 255)),
    CONSTRAINT cache_listeners_program_check CHECK ((length(program) <= 32))
);

-- Name: cache_listeners_id_seq; Type: SEQUENCE

CREATE SEQUENCE public.cache_listeners_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

-- Name: cache_listeners_id_seq; Type: SEQUENCE OWNED BY

ALTER SEQUENCE public.cache_listeners_id_seq OWNED BY public.cache_listeners.id;

-- Name: checkout_sessions; Type: TABLE

CREATE TABLE public.checkout_sessions (
    id text NOT NULL,
    provider text DEFAULT 'stripe'::text NOT NULL,
    plan_code text NOT NULL,
    email text,
    mode text NOT NULL,
    target_license_id uuid,
    status text DEFAULT 'open'::text NOT NULL,
    license_id uuid,
    url text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    completed_at timestamp with time zone,
    created_by text DEFAULT 'licd'::text NOT NULL,
    CONSTRAINT checkout_sessions_created_by_check CHECK ((created_by = ANY (ARRAY['licd'::text, 'provider'::text]))),
    CONSTRAINT checkout_sessions_mode_check CHECK ((mode = ANY (ARRAY['subscription'::text, 'payment'::text]))),
    CONSTRAINT checkout_sessions_status_check CHECK ((status = ANY (ARRAY['open'::text, 'complete'::text, 'expired'::text])))
);

-- Name: console_figures; Type: TABLE

CREATE TABLE public.console_figures (
    one boolean DEFAULT true NOT NULL,
    as_of timestamp with time zone NOT NULL,
    installations_seen json NOT NULL,
    versions json NOT NULL,
    usage_near_limits json NOT NULL,
    CONSTRAINT console_figures_one_check CHECK (one)
);

-- Name: licd_clock; Type: TABLE

CREATE TABLE public.licd_clock (
    singleton boolean DEFAULT true NOT NULL,
    offset_s bigint DEFAULT 0 NOT NULL,
    CONSTRAINT licd_clock_singleton_check CHECK (singleton)
);

-- Name: license_addons; Type: TABLE

CREATE TABLE public.license_addons (
    license_id uuid NOT NULL,
    plan_code text NOT NULL,
    session_id text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    id bigint NOT NULL
);

-- Name: license_addons_id_seq; Type: SEQUENCE

CREATE SEQUENCE public.license_addons_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

-- Name: license_addons_id_seq; Type: SEQUENCE OWNED BY

ALTER SEQUENCE public.license_addons_id_seq OWNED BY public.license_addons.id;

-- Name: license_admin_view; Type: VIEW

CREATE VIEW public.license_admin_view AS
 SELECT l.id,
    l.customer_id,
    lower(c.email) AS email,
    l.status,
    l.created_at,
    (json_build_object('id', l.id, 'customer_id', l.customer_id, 'email', c.email, 'plan', l.plan_code, 'status', l.status, 'status_reason', l.status_reason, 'features', l.features, 'limits', l.limits, 'domain_restrictions', l.domains, 'issued_at', to_char((l.issued_at AT TIME ZONE 'UTC'::text), 'YYYY-MM-DD"T"HH24:MI:SS"Z"'::text), 'expires_at', to_char((l.expires_at AT TIME ZONE 'UTC'::text), 'YYYY-MM-DD"T"HH24:MI:SS"Z"'::text), 'grace_until', to_char((l.grace_until AT TIME ZONE 'UTC'::text), 'YYYY-MM-DD"T"HH24:MI:SS"Z"'::text), 'kid', l.key_kid, 'key', l.license_key, 'active_installations', public.licd_active_installations(l.*), 'seat_model', l.seat_model, 'seat_ttl', l.seat_ttl, 'max_borrow_days', l.max_borrow_days, 'overdraft', l.overdraft))::text AS doc
   FROM (public.licenses l
     JOIN public.customers c ON ((c.id = l.customer_id)));

-- Name: license_counts; Type: TABLE

CREATE TABLE public.license_counts (
    plan_code text NOT NULL,
    status text NOT NULL,
    n bigint NOT NULL
);

-- Name: license_seats; Type: TABLE

CREATE TABLE public.license_seats (
    license_id uuid NOT NULL,
    active bigint NOT NULL
);

-- Name: license_view; Type: VIEW

CREATE VIEW public.license_view AS
 SELECT l.id,
    l.customer_id,
    l.plan_code,
    l.status,
    (EXTRACT(epoch FROM l.expires_at))::bigint AS expires_epoch,
    (EXTRACT(epoch FROM l.grace_until))::bigint AS grace_epoch,
    (l.features)::text AS features,
    (l.limits)::text AS limits,
    (l.domains)::text AS domains
   FROM public.licenses l;

-- Name: notifications; Type: TABLE

CREATE TABLE public.notifications (
    id bigint NOT NULL,
    kind text NOT NULL,
    license_id uuid,
    customer_id uuid,
    recipient text,
    payload jsonb DEFAULT '{}'::jsonb NOT NULL,
    dedupe_key text,
    status text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    locked_until timestamp with time zone,
    last_error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    delivered_at timestamp with time zone,
    email_sent_at timestamp with time zone,
    webhook_sent_at timestamp with time zone,
    CONSTRAINT notifications_kind_check CHECK ((kind ~ '^[a-z0-9_.]{1,64}$'::text)),
    CONSTRAINT notifications_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'delivered'::text])))
);

-- Name: notifications_id_seq; Type: SEQUENCE

CREATE SEQUENCE public.notifications_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

-- Name: notifications_id_seq; Type: SEQUENCE OWNED BY

ALTER SEQUENCE public.notifications_id_seq OWNED BY public.notifications.id;

-- Name: plans; Type: TABLE

CREATE TABLE public.plans (
    code text NOT NULL,
    name text NOT NULL,
    features jsonb DEFAULT '[]'::jsonb NOT NULL,
    limits jsonb DEFAULT '{}'::jsonb NOT NULL,
    billing_interval text,
    price_cents bigint,
    currency text,
    stripe_price_id text,
    is_addon boolean DEFAULT false NOT NULL,
    active boolean DEFAULT true NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    paddle_price_id text,
    seat_model text DEFAULT 'node'::text NOT NULL,
    seat_ttl integer DEFAULT 900 NOT NULL,
    max_borrow_days integer DEFAULT 0 NOT NULL,
    overdraft integer DEFAULT 0 NOT NULL,
    CONSTRAINT plans_billing_interval_check CHECK ((billing_interval = ANY (ARRAY['month'::text, 'year'::text, 'once'::text]))),
    CONSTRAINT plans_code_check CHECK (public.licd_slug_ok(code)),
    CONSTRAINT plans_currency_check CHECK ((currency ~ '^[a-z]{3}$'::text)),
    CONSTRAINT plans_features_check CHECK (public.licd_features_ok(features)),
    CONSTRAINT plans_limits_check CHECK (public.licd_limits_ok(limits)),
    CONSTRAINT plans_max_borrow_days_check CHECK (((max_borrow_days >= 0) AND (max_borrow_days <= 366))),
    CONSTRAINT plans_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200))),
    CONSTRAINT plans_overdraft_check CHECK (((overdraft >= 0) AND (overdraft <= 1000000))),
    CONSTRAINT plans_price_cents_check CHECK ((price_cents >= 0)),
    CONSTRAINT plans_seat_model_check CHECK ((seat_model = ANY (ARRAY['node'::text, 'floating'::text]))),
    CONSTRAINT plans_seat_ttl_check CHECK (((seat_ttl >= 30) AND (seat_ttl <= 86400)))
);

-- Name: schema_functions; Type: TABLE

CREATE TABLE public.schema_functions (
    file text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

-- Name: schema_migrations; Type: TABLE

CREATE TABLE public.schema_migrations (
    version text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL,
    checksum text
);

-- Name: seat_overdrafts; Type: TABLE

CREATE TABLE public.seat_overdrafts (
    id bigint NOT NULL,
    license_id uuid NOT NULL,
    installation_id text NOT NULL,
    at timestamp with time zone NOT NULL,
    seats_in_use integer NOT NULL,
    seat_limit bigint NOT NULL
);

-- Name: seat_overdrafts_id_seq; Type: SEQUENCE

CREATE SEQUENCE public.seat_overdrafts_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

-- Name: seat_overdrafts_id_seq; Type: SEQUENCE OWNED BY

ALTER SEQUENCE public.seat_overdrafts_id_seq OWNED BY public.seat_overdrafts.id;

-- Name: seat_peaks; Type: TABLE

CREATE TABLE public.seat_peaks (
    license_id uuid NOT NULL,
    day date NOT NULL,
    peak integer NOT NULL,
    CONSTRAINT seat_peaks_peak_check CHECK ((peak >= 0))
);

-- Name: subscriptions; Type: TABLE

CREATE TABLE public.subscriptions (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    provider text NOT NULL,
    provider_subscription_id text NOT NULL,
    customer_id uuid NOT NULL,
    license_id uuid,
    plan_code text,
    status text DEFAULT 'active'::text NOT NULL,
    current_period_end timestamp with time zone,
    cancel_at_period_end boolean DEFAULT false NOT NULL,
    grace_until timestamp with time zone,
    canceled_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT subscriptions_provider_check CHECK ((provider = ANY (ARRAY['stripe'::text, 'paddle'::text]))),
    CONSTRAINT subscriptions_status_check CHECK ((status = ANY (ARRAY['active'::text, 'trialing'::text, 'past_due'::text, 'unpaid'::text, 'canceled'::text, 'incomplete'::text])))
);

-- Name: usage_counters; Type: TABLE

CREATE TABLE public.usage_counters (
    license_id uuid NOT NULL,
    feature text NOT NULL,
    period date NOT NULL,
    used bigint NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT usage_counters_feature_check CHECK (public.licd_slug_ok(feature)),
    CONSTRAINT usage_counters_period_check CHECK ((EXTRACT(day FROM period) = (1)::numeric)),
    CONSTRAINT usage_counters_used_check CHECK ((used >= 0))
)
WITH (fillfactor='70');

-- Name: usage_log; Type: TABLE

CREATE TABLE public.usage_log (
    id bigint NOT NULL,
    license_id uuid NOT NULL,
    installation_id text,
    feature text NOT NULL,
    period date NOT NULL,
    quantity bigint NOT NULL,
    at timestamp with time zone NOT NULL,
    idempotency_key text,
    request_id text,
    CONSTRAINT usage_log_quantity_check CHECK ((quantity > 0))
);

-- Name: usage_log_id_seq; Type: SEQUENCE

CREATE SEQUENCE public.usage_log_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

-- Name: usage_log_id_seq; Type: SEQUENCE OWNED BY

ALTER SEQUENCE public.usage_log_id_seq OWNED BY public.usage_log.id;

-- Name: usage_requests; Type: TABLE

CREATE TABLE public.usage_requests (
    license_id uuid NOT NULL,
    idempotency_key text NOT NULL,
    feature text NOT NULL,
    quantity bigint NOT NULL,
    accepted boolean,
    period date,
    used bigint,
    lim bigint,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT usage_requests_idempotency_key_check CHECK (((length(idempotency_key) >= 1) AND (length(idempotency_key) <= 128)))
);

-- Name: validation_counts; Type: TABLE

CREATE TABLE public.validation_counts (
    day date NOT NULL,
    code text NOT NULL,
    n bigint NOT NULL,
    CONSTRAINT validation_counts_code_check CHECK ((code ~ '^[A-Z_]{1,40}$'::text)),
    CONSTRAINT validation_counts_n_check CHECK ((n >= 0))
);

-- Name: webhook_events; Type: TABLE

CREATE TABLE public.webhook_events (
    provider text NOT NULL,
    event_id text NOT NULL,
    type text NOT NULL,
    status text NOT NULL,
    subject text,
    payload jsonb NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL,
    applied_at timestamp with time zone,
    request_id text,
    action jsonb,
    reason text,
    CONSTRAINT webhook_events_event_id_check CHECK (((length(event_id) >= 1) AND (length(event_id) <= 255))),
    CONSTRAINT webhook_events_provider_check CHECK ((provider = ANY (ARRAY['stripe'::text, 'paddle'::text]))),
    CONSTRAINT webhook_events_status_check CHECK ((status = ANY (ARRAY['applied'::text, 'pending'::text, 'ignored'::text])))
);

-- Name: audit_log id; Type: DEFAULT

ALTER TABLE ONLY public.audit_log ALTER COLUMN id SET DEFAULT nextval('public.audit_log_id_seq'::regclass);

-- Name: cache_listeners id; Type: DEFAULT

ALTER TABLE ONLY public.cache_listeners ALTER COLUMN id SET DEFAULT nextval('public.cache_listeners_id_seq'::regclass);

-- Name: license_addons id; Type: DEFAULT

ALTER TABLE ONLY public.license_addons ALTER COLUMN id SET DEFAULT nextval('public.license_addons_id_seq'::regclass);

-- Name: notifications id; Type: DEFAULT

ALTER TABLE ONLY public.notifications ALTER COLUMN id SET DEFAULT nextval('public.notifications_id_seq'::regclass);

-- Name: seat_overdrafts id; Type: DEFAULT

ALTER TABLE ONLY public.seat_overdrafts ALTER COLUMN id SET DEFAULT nextval('public.seat_overdrafts_id_seq'::regclass);

-- Name: usage_log id; Type: DEFAULT

ALTER TABLE ONLY public.usage_log ALTER COLUMN id SET DEFAULT nextval('public.usage_log_id_seq'::regclass);

-- Name: admin_sessions admin_sessions_pkey; Type: CONSTRAINT

ALTER TABLE ONLY public.admin_sessions
    ADD CONSTRAINT admin_sessions_pkey PRIMARY KEY (id_hash);

-- Name: audit_log audit_log_pkey; Type: CONSTRAINT

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id);

-- Name: cache_listeners cache_listeners_pkey; Type: CONSTRAINT

ALTER TABLE ONLY public.cache_listeners
    ADD CONSTRAINT cache_listeners_pkey PRIMARY KEY (id);

-- Name: checkout_sessions checkout_sessions_pkey; Type: CONSTRAINT

ALTER TABLE ONLY public.checkout_sessions
    ADD CONSTRAINT checkout_sessions_pkey PRIMARY KEY (id);

-- Name: console_figures console_figures_pkey; Type: CONSTRAINT

ALTER TABLE ONLY public.console_figures
    ADD CONSTRAINT console_figures_pkey PRIMARY KEY (one);

-- Name: customers customers_paddle_customer_id_key; Type: CONSTRAINT

ALTER TABLE ONLY public.customers
    ADD CONSTRAINT customers_paddle_customer_id_key UNIQUE (paddle_customer_id);

-- Name: customers customers_pkey; Type: CONSTRAINT

ALTER TABLE ONLY public.customers
    ADD CONSTRAINT customers_pkey PRIMARY KEY (id);

-- Name: customers customers_stripe_customer_id_key; Type: CONSTRAINT

ALTER TABLE ONLY public.customers
    ADD CONSTRAINT customers_stripe_customer_id_key UNIQUE (stripe_customer_id);

-- Name: installations installations_pkey; Type: CONSTRAINT

ALTER TABLE ONLY public.installations
    ADD CONSTRAINT installations_pkey PRIMARY KEY (license_id, installation_id);

ALTER TABLE public.installations CLUSTER ON installations_pkey;

-- Name: licd_clock licd_clock_pkey; Type: CONSTRAINT

ALTER TABLE ONLY public.licd_clock
    ADD CONSTRAINT licd_clock_pkey PRIMARY KEY (singleton);

-- Name: license_addons license_addons_pkey; Type: CONSTRAINT

ALTER TABLE ONLY public.license_addons
    ADD CONSTRAINT license_addons_pkey PRIMARY KEY (id);

-- Name: license_seats license_seats_pkey; Type: CONSTRAINT

ALTER TABLE ONLY public.license_seats
    ADD CONSTRAINT license_seats_pkey PRIMARY KEY (license_id);

-- Name: licenses licenses_pkey; Type: CONSTRAINT

ALTER TABLE ONLY public.licenses
    ADD CONSTRAINT licenses_pkey PRIMARY KEY (id);

-- Name: notifications notifications_dedupe_key_key; Type: CONSTRAINT

ALTER TABLE ONLY public.notifications
    ADD CONSTRAINT notifications_dedupe_key_key UNIQUE (dedupe_key);

-- Name: notifications notifications_pkey; Type: CONSTRAINT

ALTER TABLE ONLY public.notifications
    ADD CONSTRAINT notifications_pkey PRIMARY KEY (id);

-- Name: plans plans_paddle_price_id_key; Type: CONSTRAINT

ALTER TABLE ONLY public.plans
    ADD CONSTRAINT plans_paddle_price_id_key UNIQUE (paddle_price_id);

-- Name: plans plans_pkey; Type: CONSTRAINT

ALTER TABLE ONLY public.plans
    ADD CONSTRAINT plans_pkey PRIMARY KEY (code);

-- Name: plans plans_stripe_price_id_key; Type: CONSTRAINT

ALTER TABLE ONLY public.plans
    ADD CONSTRAINT plans_stripe_price_id_key UNIQUE (stripe_price_id);

-- Name: schema_functions schema_functions_pkey; Type: CONSTRAINT

ALTER TABLE ONLY public.schema_functions
    ADD CONSTRAINT schema_functions_pkey PRIMARY KEY (file);

-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);

-- Name: seat_overdrafts seat_overdrafts_pkey; Type: CONSTRAINT

ALTER TABLE ONLY public.seat_overdrafts
    ADD CONSTRAINT seat_overdrafts_pkey PRIMARY KEY (id);

-- Name: seat_peaks seat_peaks_pkey; Type: CONSTRAINT

ALTER TABLE ONLY public.seat_peaks
    ADD CONSTRAINT seat_peaks_pkey PRIMARY KEY (license_id, day);

-- Name: subscriptions subscriptions_license_id_key; Type: CONSTRAINT

ALTER TABLE ONLY public.subscriptions
    ADD CONSTRAINT subscriptions_license_id_key UNIQUE (license_id);

-- Name: subscriptions subscriptions_pkey; Type: CONSTRAINT

ALTER TABLE ONLY public.subscriptions
    ADD CONSTRAINT subscriptions_pkey PRIMARY KEY (id);

-- Name: subscriptions subscriptions_provider_provider_subscription_id_key; Type: CONSTRAINT

ALTER TABLE ONLY public.subscriptions
    ADD CONSTRAINT subscriptions_provider_provider_subscription_id_key UNIQUE (provider, provider_subscription_id);

-- Name: usage_counters usage_counters_pkey; Type: CONSTRAINT

ALTER TABLE ONLY public.usage_counters
    ADD CONSTRAINT usage_counters_pkey PRIMARY KEY (license_id, feature, period);

-- Name: usage_log usage_log_pkey; Type: CONSTRAINT

ALTER TABLE ONLY public.usage_log
    ADD CONSTRAINT usage_log_pkey PRIMARY KEY (id);

-- Name: usage_requests usage_requests_pkey; Type: CONSTRAINT

ALTER TABLE ONLY public.usage_requests
    ADD CONSTRAINT usage_requests_pkey PRIMARY KEY (license_id, idempotency_key);

-- Name: validation_counts validation_counts_pkey; Type: CONSTRAINT

ALTER TABLE ONLY public.validation_counts
    ADD CONSTRAINT validation_counts_pkey PRIMARY KEY (day, code);

-- Name: webhook_events webhook_events_pkey; Type: CONSTRAINT

ALTER TABLE ONLY public.webhook_events
    ADD CONSTRAINT webhook_events_pkey PRIMARY KEY (provider, event_id);

-- Name: admin_sessions_expires; Type: INDEX

CREATE INDEX admin_sessions_expires ON public.admin_sessions USING btree (expires_at);

-- Name: audit_log_action; Type: INDEX

CREATE INDEX audit_log_action ON public.audit_log USING btree (action, id);

-- Name: audit_log_actor; Type: INDEX

CREATE INDEX audit_log_actor ON public.audit_log USING btree (actor, id);

-- Name: audit_log_at; Type: INDEX

CREATE INDEX audit_log_at ON public.audit_log USING btree (at);

-- Name: audit_log_target; Type: INDEX

CREATE INDEX audit_log_target ON public.audit_log USING btree (target_id, at);

-- Name: customers_created; Type: INDEX

CREATE INDEX customers_created ON public.customers USING btree (created_at, id);

-- Name: customers_email_key; Type: INDEX

CREATE UNIQUE INDEX customers_email_key ON public.customers USING btree (lower(email));

-- Name: customers_email_prefix; Type: INDEX

CREATE INDEX customers_email_prefix ON public.customers USING btree (lower(email) text_pattern_ops);

-- Name: customers_name_prefix; Type: INDEX

CREATE INDEX customers_name_prefix ON public.customers USING btree (lower(name) text_pattern_ops);

-- Name: installations_domain; Type: INDEX

CREATE INDEX installations_domain ON public.installations USING btree (lower(domain)) WHERE (domain IS NOT NULL);

-- Name: installations_id_hash; Type: INDEX

CREATE INDEX installations_id_hash ON public.installations USING hash ((((license_id)::text || installation_id)));

-- Name: installations_iid; Type: INDEX

CREATE INDEX installations_iid ON public.installations USING btree (installation_id);

-- Name: installations_seated; Type: INDEX

CREATE INDEX installations_seated ON public.installations USING btree (license_id) WHERE ((status = 'active'::text) AND (seat_since IS NOT NULL));

-- Name: installations_seen; Type: INDEX

CREATE INDEX installations_seen ON public.installations USING btree (seen_hour, license_id, installation_id);

-- Name: installations_version_seen; Type: INDEX

CREATE INDEX installations_version_seen ON public.installations USING btree (version, seen_hour, license_id, installation_id);

-- Name: license_addons_session; Type: INDEX

CREATE UNIQUE INDEX license_addons_session ON public.license_addons USING btree (session_id);

-- Name: licenses_created; Type: INDEX

CREATE INDEX licenses_created ON public.licenses USING btree (created_at, id);

-- Name: licenses_customer; Type: INDEX

CREATE INDEX licenses_customer ON public.licenses USING btree (customer_id);

-- Name: licenses_domains; Type: INDEX

CREATE INDEX licenses_domains ON public.licenses USING gin (domains jsonb_path_ops);

-- Name: licenses_expiry_created; Type: INDEX

CREATE INDEX licenses_expiry_created ON public.licenses USING btree (expires_at) INCLUDE (created_at, id) WHERE (status = 'active'::text);

-- Name: licenses_grace; Type: INDEX

CREATE INDEX licenses_grace ON public.licenses USING btree (grace_until) WHERE (grace_until IS NOT NULL);

-- Name: licenses_id_hash; Type: INDEX

CREATE INDEX licenses_id_hash ON public.licenses USING hash (id);

-- Name: licenses_plan_created; Type: INDEX

CREATE INDEX licenses_plan_created ON public.licenses USING btree (plan_code, created_at, id);

-- Name: licenses_purchase; Type: INDEX

CREATE UNIQUE INDEX licenses_purchase ON public.licenses USING btree (purchase);

-- Name: licenses_status_created; Type: INDEX

CREATE INDEX licenses_status_created ON public.licenses USING btree (status, created_at, id);

-- Name: notifications_due; Type: INDEX

CREATE INDEX notifications_due ON public.notifications USING btree (next_attempt_at) WHERE (status = 'pending'::text);

-- Name: notifications_status_id; Type: INDEX

CREATE INDEX notifications_status_id ON public.notifications USING btree (status, id);

-- Name: seat_overdrafts_license; Type: INDEX

CREATE INDEX seat_overdrafts_license ON public.seat_overdrafts USING btree (license_id, at);

-- Name: subscriptions_grace; Type: INDEX

CREATE INDEX subscriptions_grace ON public.subscriptions USING btree (grace_until) WHERE (grace_until IS NOT NULL);

-- Name: subscriptions_status; Type: INDEX

CREATE INDEX subscriptions_status ON public.subscriptions USING btree (status) WHERE (status = ANY (ARRAY['past_due'::text, 'unpaid'::text]));

-- Name: subscriptions_unpaid_license; Type: INDEX

CREATE INDEX subscriptions_unpaid_license ON public.subscriptions USING btree (license_id) WHERE ((status = ANY (ARRAY['past_due'::text, 'unpaid'::text])) AND (license_id IS NOT NULL));

-- Name: usage_log_at; Type: INDEX

CREATE INDEX usage_log_at ON public.usage_log USING brin (at);

-- Name: usage_log_license; Type: INDEX

CREATE INDEX usage_log_license ON public.usage_log USING btree (license_id, period, feature);

-- Name: usage_requests_created; Type: INDEX

CREATE INDEX usage_requests_created ON public.usage_requests USING btree (created_at);

-- Name: webhook_events_pending; Type: INDEX

CREATE INDEX webhook_events_pending ON public.webhook_events USING btree (provider, subject) WHERE (status = 'pending'::text);

-- Name: webhook_events_received; Type: INDEX

CREATE INDEX webhook_events_received ON public.webhook_events USING btree (received_at);

-- Name: webhook_events_status; Type: INDEX

CREATE INDEX webhook_events_status ON public.webhook_events USING btree (status, received_at);

-- Name: installations installations_cache_delete; Type: TRIGGER

CREATE TRIGGER installations_cache_delete AFTER DELETE ON public.installations FOR EACH ROW EXECUTE FUNCTION public.licd_cache_license_changed();

-- Name: installations installations_cache_truncate; Type: TRIGGER

CREATE TRIGGER installations_cache_truncate AFTER TRUNCATE ON public.installations FOR EACH STATEMENT EXECUTE FUNCTION public.licd_cache_all_changed();

-- Name: installations installations_cache_update; Type: TRIGGER

CREATE TRIGGER installations_cache_update AFTER UPDATE OF status, domain, first_seen, last_seen, license_id, installation_id ON public.installations FOR EACH ROW WHEN (((old.status IS DISTINCT FROM new.status) OR (old.domain IS DISTINCT FROM new.domain) OR (old.first_seen IS DISTINCT FROM new.first_seen) OR (old.last_seen > new.last_seen) OR (old.license_id IS DISTINCT FROM new.license_id) OR (old.installation_id IS DISTINCT FROM new.installation_id))) EXECUTE FUNCTION public.licd_cache_license_changed();

-- Name: installations installations_seat_cache; Type: TRIGGER

CREATE TRIGGER installations_seat_cache AFTER UPDATE OF seat_expires_at, borrowed_until, seat_overdraft ON public.installations FOR EACH ROW WHEN ((((old.seat_expires_at IS DISTINCT FROM new.seat_expires_at) OR (old.borrowed_until IS DISTINCT FROM new.borrowed_until) OR (old.seat_overdraft IS DISTINCT FROM new.seat_overdraft)) AND (current_setting('licd.seat_renewal'::text, true) IS DISTINCT FROM 'on'::text))) EXECUTE FUNCTION public.licd_cache_seat_changed();

-- Name: installations installations_seats_delete; Type: TRIGGER

CREATE TRIGGER installations_seats_delete AFTER DELETE ON public.installations REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION public.licd_seats_removed();

-- Name: installations installations_seats_insert; Type: TRIGGER

CREATE TRIGGER installations_seats_insert AFTER INSERT ON public.installations REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION public.licd_seats_added();

-- Name: installations installations_seats_truncate; Type: TRIGGER

CREATE TRIGGER installations_seats_truncate AFTER TRUNCATE ON public.installations FOR EACH STATEMENT EXECUTE FUNCTION public.licd_seats_truncated();

-- Name: installations installations_seats_update; Type: TRIGGER

CREATE TRIGGER installations_seats_update AFTER UPDATE ON public.installations REFERENCING OLD TABLE AS before NEW TABLE AS after FOR EACH STATEMENT EXECUTE FUNCTION public.licd_seats_moved();

-- Name: licd_clock licd_clock_cache; Type: TRIGGER

CREATE TRIGGER licd_clock_cache AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON public.licd_clock FOR EACH STATEMENT EXECUTE FUNCTION public.licd_cache_all_changed();

-- Name: licenses licenses_cache_delete; Type: TRIGGER

CREATE TRIGGER licenses_cache_delete AFTER DELETE ON public.licenses FOR EACH ROW EXECUTE FUNCTION public.licd_cache_license_changed();

-- Name: licenses licenses_cache_truncate; Type: TRIGGER

CREATE TRIGGER licenses_cache_truncate AFTER TRUNCATE ON public.licenses FOR EACH STATEMENT EXECUTE FUNCTION public.licd_cache_all_changed();

-- Name: licenses licenses_cache_update; Type: TRIGGER

CREATE TRIGGER licenses_cache_update AFTER UPDATE OF customer_id, plan_code, status, features, limits, domains, expires_at, grace_until, license_key, seat_model, seat_ttl, max_borrow_days, overdraft, id ON public.licenses FOR EACH ROW WHEN (((old.customer_id IS DISTINCT FROM new.customer_id) OR (old.plan_code IS DISTINCT FROM new.plan_code) OR (old.status IS DISTINCT FROM new.status) OR (old.features IS DISTINCT FROM new.features) OR (old.limits IS DISTINCT FROM new.limits) OR (old.domains IS DISTINCT FROM new.domains) OR (old.expires_at IS DISTINCT FROM new.expires_at) OR (old.grace_until IS DISTINCT FROM new.grace_until) OR (old.license_key IS DISTINCT FROM new.license_key) OR (old.seat_model IS DISTINCT FROM new.seat_model) OR (old.seat_ttl IS DISTINCT FROM new.seat_ttl) OR (old.max_borrow_days IS DISTINCT FROM new.max_borrow_days) OR (old.overdraft IS DISTINCT FROM new.overdraft) OR (old.id IS DISTINCT FROM new.id))) EXECUTE FUNCTION public.licd_cache_license_changed();

-- Name: licenses licenses_count_delete; Type: TRIGGER

CREATE TRIGGER licenses_count_delete AFTER DELETE ON public.licenses REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION public.licd_license_counts_removed();

-- Name: licenses licenses_count_insert; Type: TRIGGER

CREATE TRIGGER licenses_count_insert AFTER INSERT ON public.licenses REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION public.licd_license_counts_added();

-- Name: licenses licenses_count_truncate; Type: TRIGGER

CREATE TRIGGER licenses_count_truncate AFTER TRUNCATE ON public.licenses FOR EACH STATEMENT EXECUTE FUNCTION public.licd_license_counts_truncated();

-- Name: licenses licenses_count_update; Type: TRIGGER

CREATE TRIGGER licenses_count_update AFTER UPDATE OF status, plan_code ON public.licenses FOR EACH ROW WHEN (((old.status IS DISTINCT FROM new.status) OR (old.plan_code IS DISTINCT FROM new.plan_code))) EXECUTE FUNCTION public.licd_license_counts_changed();

-- Name: licenses licenses_seat_defaults; Type: TRIGGER

CREATE TRIGGER licenses_seat_defaults BEFORE INSERT ON public.licenses FOR EACH ROW EXECUTE FUNCTION public.licd_license_seat_defaults();

-- Name: checkout_sessions checkout_sessions_license_id_fkey; Type: FK CONSTRAINT

ALTER TABLE ONLY public.checkout_sessions
    ADD CONSTRAINT checkout_sessions_license_id_fkey FOREIGN KEY (license_id) REFERENCES public.licenses(id);

-- Name: checkout_sessions checkout_sessions_plan_code_fkey; Type: FK CONSTRAINT

ALTER TABLE ONLY public.checkout_sessions
    ADD CONSTRAINT checkout_sessions_plan_code_fkey FOREIGN KEY (plan_code) REFERENCES public.plans(code);

-- Name: checkout_sessions checkout_sessions_target_license_id_fkey; Type: FK CONSTRAINT

ALTER TABLE ONLY public.checkout_sessions
    ADD CONSTRAINT checkout_sessions_target_license_id_fkey FOREIGN KEY (target_license_id) REFERENCES public.licenses(id);

-- Name: installations installations_license_id_fkey; Type: FK CONSTRAINT

ALTER TABLE ONLY public.installations
    ADD CONSTRAINT installations_license_id_fkey FOREIGN KEY (license_id) REFERENCES public.licenses(id) ON DELETE CASCADE;

-- Name: license_addons license_addons_license_id_fkey; Type: FK CONSTRAINT

ALTER TABLE ONLY public.license_addons
    ADD CONSTRAINT license_addons_license_id_fkey FOREIGN KEY (license_id) REFERENCES public.licenses(id) ON DELETE CASCADE;

-- Name: license_addons license_addons_plan_code_fkey; Type: FK CONSTRAINT

ALTER TABLE ONLY public.license_addons
    ADD CONSTRAINT license_addons_plan_code_fkey FOREIGN KEY (plan_code) REFERENCES public.plans(code);

-- Name: license_seats license_seats_license_id_fkey; Type: FK CONSTRAINT

ALTER TABLE ONLY public.license_seats
    ADD CONSTRAINT license_seats_license_id_fkey FOREIGN KEY (license_id) REFERENCES public.licenses(id) ON DELETE CASCADE;

-- Name: licenses licenses_customer_id_fkey; Type: FK CONSTRAINT

ALTER TABLE ONLY public.licenses
    ADD CONSTRAINT licenses_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES public.customers(id);

-- Name: licenses licenses_plan_code_fkey; Type: FK CONSTRAINT

ALTER TABLE ONLY public.licenses
    ADD CONSTRAINT licenses_plan_code_fkey FOREIGN KEY (plan_code) REFERENCES public.plans(code);

-- Name: notifications notifications_customer_id_fkey; Type: FK CONSTRAINT

ALTER TABLE ONLY public.notifications
    ADD CONSTRAINT notifications_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES public.customers(id) ON DELETE CASCADE;

-- Name: notifications notifications_license_id_fkey; Type: FK CONSTRAINT

ALTER TABLE ONLY public.notifications
    ADD CONSTRAINT notifications_license_id_fkey FOREIGN KEY (license_id) REFERENCES public.licenses(id) ON DELETE CASCADE;

-- Name: seat_overdrafts seat_overdrafts_license_id_fkey; Type: FK CONSTRAINT

ALTER TABLE ONLY public.seat_overdrafts
    ADD CONSTRAINT seat_overdrafts_license_id_fkey FOREIGN KEY (license_id) REFERENCES public.licenses(id) ON DELETE CASCADE;

-- Name: seat_peaks seat_peaks_license_id_fkey; Type: FK CONSTRAINT

ALTER TABLE ONLY public.seat_peaks
    ADD CONSTRAINT seat_peaks_license_id_fkey FOREIGN KEY (license_id) REFERENCES public.licenses(id) ON DELETE CASCADE;

-- Name: subscriptions subscriptions_customer_id_fkey; Type: FK CONSTRAINT

ALTER TABLE ONLY public.subscriptions
    ADD CONSTRAINT subscriptions_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES public.customers(id);

-- Name: subscriptions subscriptions_license_id_fkey; Type: FK CONSTRAINT

ALTER TABLE ONLY public.subscriptions
    ADD CONSTRAINT subscriptions_license_id_fkey FOREIGN KEY (license_id) REFERENCES public.licenses(id);

-- Name: subscriptions subscriptions_plan_code_fkey; Type: FK CONSTRAINT

ALTER TABLE ONLY public.subscriptions
    ADD CONSTRAINT subscriptions_plan_code_fkey FOREIGN KEY (plan_code) REFERENCES public.plans(code);

-- Name: usage_counters usage_counters_license_id_fkey; Type: FK CONSTRAINT

ALTER TABLE ONLY public.usage_counters
    ADD CONSTRAINT usage_counters_license_id_fkey FOREIGN KEY (license_id) REFERENCES public.licenses(id) ON DELETE CASCADE;

-- Name: usage_log usage_log_license_id_fkey; Type: FK CONSTRAINT

ALTER TABLE ONLY public.usage_log
    ADD CONSTRAINT usage_log_license_id_fkey FOREIGN KEY (license_id) REFERENCES public.licenses(id) ON DELETE CASCADE;

-- Name: usage_requests usage_requests_license_id_fkey; Type: FK CONSTRAINT

ALTER TABLE ONLY public.usage_requests
    ADD CONSTRAINT usage_requests_license_id_fkey FOREIGN KEY (license_id) REFERENCES public.licenses(id) ON DELETE CASCADE;
