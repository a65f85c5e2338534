-- functions/10_checks.sql: the rules behind the tables' CHECK constraints.
--
-- Pure functions (IMMUTABLE, no table read) that the constraints of
-- plans, licenses and usage_counters call; the admin API checks its input
-- with the same ones (licd_check_entitlements) and licctl with the same
-- rules written in C. PostgreSQL evaluates every CHECK of a row on every
-- UPDATE, whichever columns it sets, so these run on the hot path: keep
-- them cheap (no bounded repeats in a regex: '{1,128}' compiles to one
-- automaton state per repetition; a length test plus an unbounded class is
-- the same rule at a fraction of the cost).
--
-- A changed rule applies to rows written from then on; rows already stored
-- are not checked again. A rule that must hold for them too goes with a
-- migration that checks them (sql/015_cheap_checks.sql re-validated a
-- constraint that way).

-- A name of a feature, limit, plan or usage counter: 1-64 characters of
-- a-z 0-9 _ . - starting with a letter or digit. Takes text; returns
-- boolean (NULL for NULL). Called by the CHECKs of plans.code and
-- usage_counters.feature, and by licd_features_ok and licd_limits_ok.
-- Not STRICT, though NULL gives NULL all the same: the planner inlines a
-- SQL function into the expression that calls it only when it can prove
-- strictness of the body, which an AND defeats; called, not inlined, the
-- function is parsed again by every statement whose CHECK runs it, which
-- is every usage increment.
CREATE OR REPLACE FUNCTION licd_slug_ok(s text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
  SELECT length(s) <= 64 AND s ~ '^[a-z0-9][a-z0-9_.-]*$'
$$;

-- features: a JSON array of names (licd_slug_ok). Returns boolean. Called by
-- the CHECKs of plans.features and licenses.features, and by
-- licd_check_entitlements.
CREATE OR REPLACE FUNCTION licd_features_ok(f jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT jsonb_typeof(f) = 'array' AND NOT EXISTS (
    SELECT 1 FROM jsonb_array_elements(f) e
    WHERE jsonb_typeof(e) <> 'string' OR NOT licd_slug_ok(e #>> '{}'))
$$;

-- limits: a JSON object mapping names (licd_slug_ok) to integers from 0 to
-- 2^63-1. Returns boolean. Called by the CHECKs of plans.limits and
-- licenses.limits, and by licd_check_entitlements.
CREATE OR REPLACE FUNCTION licd_limits_ok(l jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT jsonb_typeof(l) = 'object' AND NOT EXISTS (
    SELECT 1 FROM jsonb_each(l) e
    WHERE NOT licd_slug_ok(e.key) OR jsonb_typeof(e.value) <> 'number'
       OR (e.value::text)::numeric <> trunc((e.value::text)::numeric)
       OR (e.value::text)::numeric < 0
       OR (e.value::text)::numeric > 9223372036854775807)
$$;

-- domain restrictions: a JSON array of lower-case host names or "*.suffix"
-- patterns (labels of 1-63 characters, at most 253 in all). Returns boolean.
-- Called by the CHECK of licenses.domains and by licd_check_entitlements.
CREATE OR REPLACE FUNCTION licd_domains_ok(d jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT jsonb_typeof(d) = 'array' AND NOT EXISTS (
    SELECT 1 FROM jsonb_array_elements(d) e
    WHERE jsonb_typeof(e) <> 'string'
       OR NOT (e #>> '{}') ~ '^(\*\.)?[a-z0-9-]{1,63}(\.[a-z0-9-]{1,63})*$'
       OR length(e #>> '{}') > 253)
$$;

-- Host p_host (as validate records it: lower case, no trailing dot) is
-- allowed by domain restrictions d (licd_domains_ok): d is empty, or one
-- entry is p_host itself or "*.suffix" with p_host ending in ".suffix"
-- after at least one label. NULL p_host passes only an empty d. The rule
-- of docs/API.md, as lic_domain_allowed (fcgi/lib/lic.c) applies it to
-- the lookup's row; this one is for the writes that must re-check it under
-- the license's lock (licd_activate_batch, licd_seat).
CREATE OR REPLACE FUNCTION licd_domain_allowed(d jsonb, p_host text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(jsonb_array_length(d) = 0, false) OR (p_host IS NOT NULL AND EXISTS (
    SELECT 1 FROM jsonb_array_elements_text(d) p
     WHERE p = p_host
        OR (left(p, 2) = '*.' AND length(p_host) > length(p) - 1
            AND right(p_host, length(p) - 1) = substr(p, 2))))
$$;
