-- functions/40_lookup.sql: the read on the request path.
--
-- A validate, heartbeat or usage call reads its license, its installation
-- and the clock with one licd_lookup, or, when calls arrive together, with
-- one licd_lookup_batch for all of them (the programs' threads share their
-- reads: docs/DESIGN.md, "Hot path cost"). Neither writes: a due last_seen
-- refresh is queued by the program and written behind the answer
-- (licd_touch_batch).

-- The columns the C side reads for a license (lic_from_row in
-- fcgi/lib/lic.c), in that order. Read by the checkout webhook, the admin
-- API and licctl. A new column goes at the end (CREATE OR REPLACE VIEW can
-- only add columns there).
CREATE OR REPLACE VIEW license_view AS
SELECT l.id, l.customer_id, l.plan_code, l.status,
       extract(epoch FROM l.expires_at)::bigint  AS expires_epoch,
       extract(epoch FROM l.grace_until)::bigint AS grace_epoch,
       l.features::text AS features, l.limits::text AS limits,
       l.domains::text AS domains
FROM licenses l;

-- License p_license with installation p_iid and the clock, in one row; no
-- row for an unknown license, NULL installation columns when it has no
-- such installation. Reads only; locks nothing.
-- - The first nine columns are license_view's, read from licenses directly
--   so that the key comes with the same index lookup.
-- - needs_touch: the license and the installation are active and last_seen
--   is older than p_touch_secs, or the client reports another version or
--   metadata: the caller queues a refresh (usage passes 0 and ignores it).
-- - license_key: the key as issued; the caller accepts a key it has not
--   verified when it is byte for byte this one (lic_lookup_read).
-- - seat_ttl (NULL for a node-locked license), seat_expires,
--   borrowed_until, seat_overdraft: a floating seat.
-- Called by validate, heartbeat and usage for a lookup that goes alone.
-- licd_lookup_batch returns the same columns from the same select list:
-- a change to one is a change to both (tests/integration/test_validate.py
-- compares their rows). Both name the installation a third time, as the
-- expression installations_id_hash holds (035), so that it is found
-- through that index.
CREATE OR REPLACE FUNCTION licd_lookup(p_license uuid, p_iid text, p_touch_secs int,
                                       p_version text, p_metadata jsonb)
RETURNS TABLE (id uuid, customer_id uuid, plan_code text, status text,
               expires_epoch bigint, grace_epoch bigint, features text,
               limits text, domains text, inst_status text,
               first_seen bigint, last_seen bigint, now_epoch bigint,
               inst_domain text, needs_touch boolean, license_key text,
               seat_ttl int, seat_expires bigint, borrowed_until bigint,
               seat_overdraft boolean)
LANGUAGE plpgsql AS $$
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

-- Many lookups in one statement. p_items: [{"n": ordinal, "l": license,
-- "i": installation id, "s": touch seconds, "v": version or absent, "m":
-- metadata as a JSON string or absent}]. One row per item whose license
-- exists, with licd_lookup's columns and the item's n last; none for an
-- unknown license. Each item is its own LATERAL subquery (OFFSET 0 keeps it
-- from being flattened into a join), so every lookup is an index scan
-- whatever the batch's size and the planner's estimates. The select list
-- is licd_lookup's, written out rather than a call per item (a plpgsql
-- call per row would cost what batching saves). Reads only. Called by the
-- programs' shared lookup (fcgi/lib/lookup.c) for the lookups that
-- arrived while the previous batch ran.
CREATE OR REPLACE FUNCTION licd_lookup_batch(p_items jsonb)
RETURNS TABLE (id uuid, customer_id uuid, plan_code text, status text,
               expires_epoch bigint, grace_epoch bigint, features text,
               limits text, domains text, inst_status text,
               first_seen bigint, last_seen bigint, now_epoch bigint,
               inst_domain text, needs_touch boolean, license_key text,
               seat_ttl int, seat_expires bigint, borrowed_until bigint,
               seat_overdraft boolean, n int)
LANGUAGE plpgsql AS $$
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
