-- functions/55_usage.sql: monthly usage metering (POST and GET /api/usage).
--
-- Counters per license, feature and UTC month (usage_counters) are what the
-- limit is checked against; usage_log keeps every accepted increment, and
-- usage_requests the first answer given for an idempotency key.

-- Counts the increments of many usage calls in one transaction (group
-- commit: one WAL flush, one lock of a hot counter, for all of them), each
-- with the exact semantics it would have alone, after reading its license
-- in the same transaction:
-- 0. Every license of the batch is locked FOR SHARE, in id order, and each
--    item is checked against it as lic_state() and lic_has_feature() do
--    for validate (fcgi/lib/lic.c; same clock, same rounding): an unknown
--    license, a key that is not the license's as issued (when the caller
--    has not authenticated it: "key"), REVOKED, SUSPENDED, EXPIRED,
--    FEATURE_NOT_LICENSED are answered with that code and not counted; the
--    limit is the license's limits["<feature>_per_month"] (a non-negative
--    integer by the table's check, maybe written 10.0; absent: unmetered).
--    tests/usage_rules.txt holds these rules and C's to the same cases. Why the lock: a revoke or
--    suspension (an UPDATE of the row) conflicts with FOR SHARE. If it
--    came first, this batch waits for its commit and then reads the new
--    status (READ COMMITTED re-reads a locked row's newest version), so a
--    call answered after the revoke is refused; if this batch came first,
--    the revoke waits until the increments are committed. So no increment
--    is ever committed after a change of status, and none is counted by a
--    batch that began after the change was acknowledged.
--    A license held elsewhere (row-locked by another transaction: an
--    admin edit, a revoke, an activation, an operator's open transaction)
--    is skipped (SKIP LOCKED): its items answer BUSY, are not counted and
--    claim nothing, and every other item is counted without waiting for
--    it. Items marked "w": true wait for their licenses instead (up to
--    lock_timeout): usage sends a BUSY item again so, alone, from a
--    thread that answers no other call.
-- 1. The idempotency row is claimed (a racing retry waits on it, then
--    reads the answer).
-- 2. The counter moves only if it stays within the limit (NULL:
--    unmetered), and an accepted increment is logged. The increments of
--    one counter go in with one upsert when their sum fits (then each
--    would have fitted alone, in arrival order); only a counter whose
--    increments together would pass its limit is counted item by item.
-- 3. A replay of an earlier request (of this batch or not) gets the stored
--    answer with replayed true, and the feature and quantity of the
--    request that first used the key, so that a reused key can be told
--    apart.
-- p_items: [{"o": ordinal, "l": license, "i": installation or null,
-- "f": feature, "q": quantity, "k": idempotency key or null, "r": request
-- id, "key": the license key when the caller has not authenticated it,
-- else absent, "w": true to wait for a license held elsewhere, else
-- absent}, ...]. One row per item, ord = its "o"; code NULL when the
-- license allowed the call (then accepted says whether it was counted;
-- NULL for a replay of a request that never finished), else the refusal
-- ('UNKNOWN': no such license; 'UNVOUCHED': key is not the one issued,
-- license_key is, for the caller to check the key's signature; 'BUSY':
-- the license is held elsewhere, nothing done). Locks, in
-- this order so that concurrent batches cannot deadlock: the licenses by
-- id, every idempotency row by (license, key), then the counters by
-- (license, feature); a counter counted item by item (at its limit) is
-- locked after the others, which two batches at the limits of two counters
-- each could meet crosswise: PostgreSQL's deadlock check (or lock_timeout)
-- then fails one, and usage runs its items again one by one. Called by
-- usage (run_adds in fcgi/usage.c; a lone call is a batch of one).
CREATE OR REPLACE FUNCTION licd_usage_add_batch(p_items jsonb)
RETURNS TABLE (ord int, code text, accepted boolean, period text, used bigint,
               lim bigint, replayed boolean, req_feature text,
               req_quantity bigint, license_key text)
LANGUAGE plpgsql AS $$
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

-- The counters of license p_license for month p_period ('YYYY-MM'; NULL:
-- this month). Reads only. Called by usage (GET /api/usage) and licctl
-- usage.
CREATE OR REPLACE FUNCTION licd_usage_get(p_license uuid, p_period text)
RETURNS TABLE (feature text, used bigint, period text)
LANGUAGE sql STABLE AS $$
  SELECT c.feature, c.used, to_char(c.period, 'YYYY-MM')
    FROM usage_counters c
   WHERE c.license_id = p_license
     AND c.period = coalesce(to_date(p_period, 'YYYY-MM'), licd_period(licd_now()))
$$;
