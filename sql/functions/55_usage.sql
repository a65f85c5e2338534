-- functions/55_usage.sql: monthly usage metering (POST and GET /api/usage).
--
-- Counters per license, feature and UTC month (usage_counters) are what the
-- limit is checked against; usage_log keeps every accepted increment, and
-- usage_requests the first answer given for an idempotency key.

-- Counts the increments of many usage calls in one transaction (group
-- commit: one WAL flush, one lock of a hot counter, for all of them), each
-- with the exact semantics it would have alone: the idempotency row is
-- claimed first (a racing retry waits on it, then reads the answer), the
-- counter moves only if it stays within the limit (NULL: unmetered), and
-- an accepted increment is logged.
-- p_items: [{"o": ordinal, "l": license, "i": installation or null,
-- "f": feature, "q": quantity, "m": limit or null, "k": idempotency key or
-- null, "r": request id}, ...]. One row per item, ord = its "o"; an item
-- whose key is a replay of an earlier request (of this batch or not) gets
-- the stored answer with replayed true, and the feature and quantity of
-- the request that first used the key, so that a reused key can be told
-- apart. Locks, in this order so that concurrent batches cannot deadlock:
-- every idempotency row by (license, key), then every counter by (license,
-- feature). Called by usage (fcgi/lib/batch.c collects the items; a lone
-- call is a batch of one).
CREATE OR REPLACE FUNCTION licd_usage_add_batch(p_items jsonb)
RETURNS TABLE (ord int, accepted boolean, period text, used bigint, lim bigint,
               replayed boolean, req_feature text, req_quantity bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  t       timestamptz := licd_now();
  per     date := licd_period(t);
  it      record;
  n       bigint;
  r       usage_requests%ROWTYPE;
  claimed int[] := '{}';
BEGIN
  -- 1. Claim the idempotency keys. A key claimed by a concurrent
  -- transaction waits for it; a key seen before (in this batch too) is a
  -- replay, answered in step 3.
  FOR it IN
    SELECT x.* FROM jsonb_to_recordset(p_items)
      AS x(o int, l uuid, f text, q bigint, k text)
     WHERE x.k IS NOT NULL ORDER BY x.l, x.k, x.o
  LOOP
    INSERT INTO usage_requests (license_id, idempotency_key, feature, quantity)
    VALUES (it.l, it.k, it.f, it.q)
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
      claimed := claimed || it.o;
    END IF;
  END LOOP;

  -- 2. Count the new increments, in counter order.
  FOR it IN
    SELECT x.* FROM jsonb_to_recordset(p_items)
      AS x(o int, l uuid, i text, f text, q bigint, m bigint, k text, r text)
     WHERE x.k IS NULL OR x.o = ANY (claimed) ORDER BY x.l, x.f, x.o
  LOOP
    n := NULL;
    IF it.m IS NULL OR it.q <= it.m THEN
      INSERT INTO usage_counters AS c (license_id, feature, period, used, updated_at)
      VALUES (it.l, it.f, per, it.q, t)
      ON CONFLICT (license_id, feature, period) DO UPDATE
         SET used = c.used + EXCLUDED.used, updated_at = EXCLUDED.updated_at
       WHERE it.m IS NULL OR c.used + EXCLUDED.used <= it.m
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
    ord := it.o; period := to_char(per, 'YYYY-MM'); lim := it.m;
    replayed := false; req_feature := it.f; req_quantity := it.q;
    RETURN NEXT;
  END LOOP;

  -- 3. Replays: the stored answer (written in step 2 for a key first seen
  -- in this batch).
  FOR it IN
    SELECT x.* FROM jsonb_to_recordset(p_items) AS x(o int, l uuid, k text)
     WHERE x.k IS NOT NULL AND NOT (x.o = ANY (claimed)) ORDER BY x.o
  LOOP
    SELECT * INTO r FROM usage_requests
     WHERE license_id = it.l AND idempotency_key = it.k;
    ord := it.o; accepted := r.accepted; period := to_char(r.period, 'YYYY-MM');
    used := r.used; lim := r.lim; replayed := true;
    req_feature := r.feature; req_quantity := r.quantity;
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
