-- 014_lookup_batch: the calls that arrive together read together.
--
-- A validate, heartbeat or usage call reads its license and installation
-- with one licd_lookup (013). Most of that statement's cost in PostgreSQL
-- is the statement, not the row: on the 2-core VM of docs/PERFORMANCE.md
-- a backend answered 22k licd_lookup calls a second and 17k calls of the
-- batched form below carrying eight lookups each. A program's threads
-- therefore hand their lookups to whichever of them is already talking to
-- the database (fcgi/lib/state.h); the lookups that arrive while one batch
-- runs go out together in the next. No timer: a lone call goes alone,
-- through licd_lookup.
--
-- p_items: [{"n": ordinal, "l": license, "i": installation id,
-- "s": touch seconds, "v": version or absent, "m": metadata as a JSON
-- string or absent}]. One row per item whose license exists, licd_lookup's
-- columns and the item's n last; none for an unknown license. Each item is
-- its own LATERAL subquery (OFFSET 0 keeps it from being flattened into a
-- join), so every lookup is an index scan whatever the batch's size and
-- the planner's row estimates. The select list is licd_lookup's, inline
-- rather than a call of it per item (a plpgsql call per row would cost
-- what batching saves); a change to one is a change to both, and
-- tests/integration/test_validate.py compares their rows.
CREATE FUNCTION licd_lookup_batch(p_items jsonb)
RETURNS TABLE (id uuid, customer_id uuid, plan_code text, status text,
               expires_epoch bigint, grace_epoch bigint, features text,
               limits text, domains text, inst_status text,
               first_seen bigint, last_seen bigint, now_epoch bigint,
               inst_domain text, needs_touch boolean, license_key text,
               n int)
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
           l.license_key
      FROM licenses l
      LEFT JOIN installations i ON i.license_id = l.id
                               AND i.installation_id = x.i
     WHERE l.id = x.l
    OFFSET 0) r;
END
$$;
