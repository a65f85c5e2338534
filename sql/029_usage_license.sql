-- 029_usage_license: licd_usage_add_batch reads and locks the license of
-- each usage call in the transaction that counts it, and answers a refusal
-- itself (sql/functions/55_usage.sql); its result columns changed, which
-- CREATE OR REPLACE cannot do: sql/functions/ creates it again.
DROP FUNCTION IF EXISTS licd_usage_add_batch(jsonb);
