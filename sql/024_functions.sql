-- 024_functions: every function, view and trigger is defined once, in
-- sql/functions/, which licctl migrate applies after the numbered
-- migrations (docs/DESIGN.md, "Schema"). The migrations before this one
-- keep only tables, constraints, indexes and data. What CREATE OR REPLACE
-- cannot do stays a migration's job: dropping a function, or changing its
-- result columns or its parameters' names.
--
-- Functions nothing calls any more, dropped where a database has them
-- (one migrated before this release; a new database never had them):
-- licd_license_state (replaced by licd_lookup in 013), licd_check_in (kept
-- in 013 for the previous release's programs during an upgrade),
-- licd_usage_add (replaced by licd_usage_add_batch in 009) and
-- licd_action_plan (replaced by licd_price_plan in 016).
DROP FUNCTION IF EXISTS licd_license_state(uuid, text, int, text, jsonb);
DROP FUNCTION IF EXISTS licd_check_in(uuid, text, int, text, jsonb);
DROP FUNCTION IF EXISTS licd_usage_add(uuid, text, text, bigint, bigint, text, text);
DROP FUNCTION IF EXISTS licd_action_plan(text, jsonb);

-- A database that stopped before 016 or 023 has older result columns of
-- these; sql/functions/ creates them again with today's.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'licd_lookup'
                AND NOT 'seat_ttl' = ANY (proargnames)) THEN
    DROP FUNCTION licd_lookup(uuid, text, int, text, jsonb);
  END IF;
  IF EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'licd_lookup_batch'
                AND NOT 'seat_ttl' = ANY (proargnames)) THEN
    DROP FUNCTION licd_lookup_batch(jsonb);
  END IF;
  IF EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'licd_billing_apply'
                AND NOT 'reason' = ANY (proargnames)) THEN
    DROP FUNCTION licd_billing_apply(text, jsonb, int, text);
  END IF;
END
$$;
