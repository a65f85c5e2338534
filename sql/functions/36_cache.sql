-- functions/36_cache.sql: keeping the validate and heartbeat processes'
-- memory of license state current (fcgi/lib/cache.h, docs/DESIGN.md
-- "The license cache").
--
-- Every change that can change an answer notifies channel licd_license
-- with the license's id ('*': every license), from the triggers of
-- 99_triggers.sql, in the changing transaction: the notification is
-- delivered when, and only when, the change commits, and in commit
-- order. Each listening process drops what it holds for that license.
--
-- A writer that must not answer before every process has let go of the
-- old state runs CALL licd_cache_sync() after its commit: a barrier
-- number taken after the commit, notified as 'b <n>', and a wait until
-- every listener has acknowledged a number >= n (it has then processed
-- every notification committed before n's, the writer's own included)
-- or has lost the right to answer from memory (alive_until passed: its
-- own fence, measured from before it sent the renewal, ended earlier).

-- The lease a listener's registration or renewal gives it; the listener
-- answers from memory only until a margin before it (cache.c).
CREATE OR REPLACE FUNCTION licd_cache_lease() RETURNS interval
LANGUAGE sql IMMUTABLE AS $$ SELECT interval '2 s' $$;

-- A listener's registration, after its LISTEN: its row id, and the test
-- clock offset (licd_clock) the process adds to its own clock. acked
-- starts at the last barrier taken: a barrier taken before the row
-- exists came after a commit the listener's emptied memory already
-- reflects. Called by fcgi/lib/cache.c.
CREATE OR REPLACE FUNCTION licd_cache_register(p_host text, p_pid int,
                                               p_program text)
RETURNS TABLE (id bigint, offset_s bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  INSERT INTO cache_listeners (host, pid, program, acked, alive_until)
  SELECT p_host, p_pid, p_program,
         (SELECT CASE WHEN is_called THEN last_value ELSE 0 END
            FROM cache_barrier_seq),
         clock_timestamp() + licd_cache_lease()
  RETURNING cache_listeners.id,
            coalesce((SELECT c.offset_s FROM licd_clock c), 0)::bigint;
END
$$;

-- A listener's acknowledgement and renewal: false when its row is gone
-- or doomed (a writer stopped waiting for it), and then the listener
-- empties its memory and registers anew. Called by fcgi/lib/cache.c.
CREATE OR REPLACE FUNCTION licd_cache_ack(p_id bigint, p_acked bigint)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE cache_listeners
     SET acked = greatest(acked, p_acked),
         alive_until = clock_timestamp() + licd_cache_lease()
   WHERE id = p_id AND NOT doomed;
  RETURN FOUND;
END
$$;

-- The test clock offset, read again by a listener after a '*'
-- notification (licd_clock changed). Called by fcgi/lib/cache.c.
CREATE OR REPLACE FUNCTION licd_cache_clock() RETURNS bigint
LANGUAGE sql STABLE AS $$
  SELECT coalesce((SELECT offset_s FROM licd_clock), 0)::bigint
$$;

-- A listener leaving (a clean exit). Called by fcgi/lib/cache.c.
CREATE OR REPLACE FUNCTION licd_cache_unregister(p_id bigint) RETURNS void
LANGUAGE sql AS $$
  DELETE FROM cache_listeners WHERE id = p_id
$$;

-- The barrier: CALL licd_cache_sync() outside any transaction, right
-- after the writer's commit; returns at once when nobody listens.
-- Listeners past alive_until are deleted (row locks: a renewal racing
-- the deletion either commits first and is seen, or finds its row gone);
-- one still renewing without acknowledging after p_timeout_ms is doomed
-- and waited out (its lease ends within licd_cache_lease()), so the
-- wait is bounded by p_timeout_ms plus the lease. The barrier's own
-- commit need not wait for the disk: the change it follows already did.
-- Called by the admin API and webhook programs (http_after_write,
-- db_cache_sync), validate's deactivate, licctl after a verb that writes
-- and the lifecycle job.
CREATE OR REPLACE PROCEDURE licd_cache_sync(p_timeout_ms int DEFAULT 1000)
LANGUAGE plpgsql AS $$
DECLARE
  s      bigint;
  t0     timestamptz := clock_timestamp();
  doomed boolean := false;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM cache_listeners) THEN
    RETURN;
  END IF;
  SET LOCAL synchronous_commit = off;
  s := nextval('cache_barrier_seq');
  PERFORM pg_notify('licd_license', 'b ' || s);
  COMMIT;
  LOOP
    DELETE FROM cache_listeners
     WHERE id IN (SELECT id FROM cache_listeners
                   WHERE alive_until < clock_timestamp()
                     FOR UPDATE SKIP LOCKED);
    EXIT WHEN NOT EXISTS (SELECT 1 FROM cache_listeners WHERE acked < s);
    IF NOT doomed AND clock_timestamp() > t0 + make_interval(secs => p_timeout_ms / 1000.0) THEN
      UPDATE cache_listeners SET doomed = true WHERE acked < s;
      doomed := true;
    END IF;
    PERFORM pg_sleep(0.001);
  END LOOP;
  COMMIT;
END
$$;

-- The notifications: a row trigger on licenses, installations (the
-- columns an answer reads, not last_seen, version or metadata, which the
-- refresh writer updates; the seat columns: licd_cache_seat_changed) and
-- a statement trigger on licd_clock ('*').
-- 99_triggers.sql creates them.
CREATE OR REPLACE FUNCTION licd_cache_license_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_TABLE_NAME = 'installations' THEN
    IF TG_OP <> 'INSERT' THEN
      PERFORM pg_notify('licd_license', OLD.license_id::text);
    END IF;
    IF TG_OP <> 'DELETE' THEN
      PERFORM pg_notify('licd_license', NEW.license_id::text);
    END IF;
  ELSE
    IF TG_OP <> 'INSERT' THEN
      PERFORM pg_notify('licd_license', OLD.id::text);
    END IF;
    IF TG_OP <> 'DELETE' THEN
      PERFORM pg_notify('licd_license', NEW.id::text);
    END IF;
  END IF;
  RETURN NULL;
END
$$;

-- A floating seat's columns changed (seat_expires_at, borrowed_until,
-- seat_overdraft; 99_triggers.sql): notifies, except for a renewal. A
-- renewal moves only seat_expires_at, forward by more than a quarter of
-- the license's seat_ttl: it renews a seat that had less than
-- LIC_SEAT_RENEW_LEFT (three quarters) of its ttl left at the write's
-- clock, and no process answers such a seat from memory
-- (decide_from_memory, fcgi/lib/decide.h), so nothing needs dropping.
-- Renewals are then free of NOTIFY's commit lock, which serialises the
-- commits of every notifying transaction. A borrow, an overdraft flag, a
-- seat taken, released or moved back, and a second renewal of a seat
-- already renewed (a smaller move) notify. licd_seat_batch's renewals of
-- due seats are such moves by their WHERE: the trigger does not call this
-- for them (licd.seat_renewal).
CREATE OR REPLACE FUNCTION licd_cache_seat_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.borrowed_until IS NOT DISTINCT FROM NEW.borrowed_until
     AND OLD.seat_overdraft IS NOT DISTINCT FROM NEW.seat_overdraft
     AND OLD.license_id = NEW.license_id
     AND NEW.seat_expires_at - OLD.seat_expires_at >
         (SELECT make_interval(secs => l.seat_ttl / 4)
            FROM licenses l WHERE l.id = NEW.license_id) THEN
    RETURN NULL;
  END IF;
  PERFORM pg_notify('licd_license', NEW.license_id::text);
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION licd_cache_all_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('licd_license', '*');
  RETURN NULL;
END
$$;
