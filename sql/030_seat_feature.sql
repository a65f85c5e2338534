-- 030_seat_feature: licd_seat takes the requested feature (p_feature) and
-- re-checks it under the license's lock, as licd_activate_batch does for a
-- node-locked license (sql/functions/50_floating.sql). A new parameter is a
-- new function to PostgreSQL: the old one is dropped here, so that a call
-- with seven arguments (an offline lease; a program of the previous
-- release until it restarts) finds the new one, p_feature defaulting to
-- NULL.
DROP FUNCTION IF EXISTS licd_seat(uuid, text, text, int, text, jsonb, text);
