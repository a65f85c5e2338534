-- functions/90_console_args.sql: argument checks of the admin API behind the
-- vendor's console.
--
-- Every admin function takes its arguments as one jsonb object (the query
-- string or the request body, as strings or JSON values) and returns the
-- response document as JSON text. A bad argument raises SQLSTATE 22023 with
-- the message the API answers (400 INVALID_FIELD); 22004 is MISSING_FIELD,
-- P0002 NOT_FOUND, 55000 CONFLICT (the admin program maps them). Lists are
-- keyset-paginated: `cursor` is the opaque next_cursor of the previous page.

-- Raises p_msg with SQLSTATE p_code (22023 unless given): the one way the
-- admin functions refuse an argument.
CREATE OR REPLACE FUNCTION licd_bad(p_msg text, p_code text DEFAULT '22023') RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = p_code, MESSAGE = p_msg;
END
$$;

-- Argument k of p as an integer from lo to hi, given as a JSON number or a
-- string of digits; def when absent or null. Else 22023.
CREATE OR REPLACE FUNCTION licd_arg_int(p jsonb, k text, lo bigint, hi bigint, def bigint)
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

-- Argument k of p as a boolean: true/false, or the strings 'true', '1',
-- 'false', '0'; NULL when absent or null. Else 22023.
CREATE OR REPLACE FUNCTION licd_arg_bool(p jsonb, k text) RETURNS boolean
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

-- Argument k of p as text: NULL when absent, null or empty, else a string
-- of at most maxlen characters matching re (when given). Else 22023.
CREATE OR REPLACE FUNCTION licd_arg_text(p jsonb, k text, maxlen int, re text DEFAULT NULL)
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

-- Argument k of p as a time: an RFC 3339 date-time (UTC when it names no
-- offset) or a date (its UTC midnight); NULL when absent. Else 22023.
CREATE OR REPLACE FUNCTION licd_arg_ts(p jsonb, k text) RETURNS timestamptz
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

-- Argument k of p as JSON of type typ ('array', 'object'); NULL when absent
-- or null. Else 22023.
CREATE OR REPLACE FUNCTION licd_arg_json(p jsonb, k text, typ text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF NOT p ? k OR p -> k = 'null' THEN RETURN NULL; END IF;
  IF jsonb_typeof(p -> k) <> typ THEN
    PERFORM licd_bad(format('field ''%s'' must be an %s', k, typ));
  END IF;
  RETURN p -> k;
END
$$;

-- An opaque page cursor: base64url of the JSON array of the last row's
-- keys.
CREATE OR REPLACE FUNCTION licd_cursor_enc(v jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT rtrim(translate(encode(convert_to(v::text, 'UTF8'), 'base64'),
                         E'+/\n', '-_'), '=')
$$;

-- One page of a list: p_rows, fetched with LIMIT p_lim + 1 in the list's
-- order, cut to its first p_lim, and the cursor of the next page when
-- there was one more row (from the last kept row's p_key: one sort key,
-- or an array of them). A key named _c is there for the cursor alone and is
-- removed from the rows. Used by the console's lists (91_console_reads).
CREATE OR REPLACE FUNCTION licd_page(p_rows jsonb, p_lim int, p_key text,
                                     OUT page jsonb, OUT next_cursor text)
LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce((SELECT jsonb_agg(CASE WHEN p_key = '_c' THEN e - '_c' ELSE e END ORDER BY o)
                     FROM jsonb_array_elements(p_rows) WITH ORDINALITY x(e, o)
                    WHERE o <= p_lim), '[]'),
         CASE WHEN jsonb_array_length(p_rows) > p_lim THEN licd_cursor_enc(
           CASE jsonb_typeof(p_rows -> (p_lim - 1) -> p_key)
             WHEN 'array' THEN p_rows -> (p_lim - 1) -> p_key
             ELSE jsonb_build_array(p_rows -> (p_lim - 1) -> p_key) END) END
$$;

-- The keys of p's 'cursor' argument (licd_cursor_enc's), NULL when absent;
-- 22023 for anything this server did not give.
CREATE OR REPLACE FUNCTION licd_cursor_dec(p jsonb) RETURNS jsonb
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

-- Key i (from 0) of cursor cur (licd_cursor_dec's) as the type of t, whose
-- value is not used: licd_cursor_key(cur, 1, NULL::uuid). NULL without a
-- cursor; 22023 when the cursor has no such key or it is not of that type
-- (not a cursor this server gave). The one way the lists read a cursor.
-- A cursor's keys are known again by their type: they were written as
-- JSON (licd_page), a time as its text.
CREATE OR REPLACE FUNCTION licd_cursor_key(cur jsonb, i int, t anyelement)
RETURNS anyelement LANGUAGE plpgsql IMMUTABLE AS $$
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

-- The id in a cursor of one id (lists in id order: audit, notifications),
-- NULL without a cursor; 22023 for anything this server did not give.
CREATE OR REPLACE FUNCTION licd_cursor_id(p jsonb) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
  SELECT licd_cursor_key(licd_cursor_dec(p), 0, NULL::bigint)
$$;

-- Domain restrictions as stored: lower case, no trailing dot, each once.
-- Anything that is not an array of strings comes back as it is, for
-- licd_check_entitlements to refuse.
CREATE OR REPLACE FUNCTION licd_norm_domains(d jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN d IS NULL OR jsonb_typeof(d) <> 'array'
              OR EXISTS (SELECT 1 FROM jsonb_array_elements(d) e WHERE jsonb_typeof(e) <> 'string')
              THEN d
              ELSE (SELECT coalesce(jsonb_agg(DISTINCT rtrim(lower(e #>> '{}'), '.')), '[]')
                      FROM jsonb_array_elements(d) e) END
$$;

-- Refuses (22023) features, limits or domain restrictions that the tables'
-- checks would (10_checks.sql), with the API's message; NULL ones are not
-- checked.
CREATE OR REPLACE FUNCTION licd_check_entitlements(f jsonb, l jsonb, d jsonb) RETURNS void
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
