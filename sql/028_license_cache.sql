-- 028_license_cache: the validate and heartbeat processes answer a known
-- installation from memory (fcgi/lib/cache.h); each process's listener
-- registers here, and a writer waits after its commit until every
-- registered listener has acknowledged a barrier taken after it
-- (licd_cache_sync, sql/functions/36_cache.sql).
--
-- cache_listeners: one row per listening process. acked: the highest
-- barrier number it has processed (every change committed before that
-- barrier is out of its memory); alive_until: it answers from memory only
-- until a little before this time unless it renews it; doomed: a writer
-- gave up waiting for it, so it may not renew and must register anew
-- (which empties its memory).
CREATE TABLE cache_listeners (
  id            bigserial PRIMARY KEY,
  host          text NOT NULL CHECK (length(host) <= 255),
  pid           int NOT NULL,
  program       text NOT NULL CHECK (length(program) <= 32),
  acked         bigint NOT NULL DEFAULT 0,
  alive_until   timestamptz NOT NULL,
  doomed        boolean NOT NULL DEFAULT false,
  registered_at timestamptz NOT NULL DEFAULT now()
);

-- The barriers' numbers, taken after the writer's commit.
CREATE SEQUENCE cache_barrier_seq;
