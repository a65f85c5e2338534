-- 008_async_touch: a last_seen/version refresh does not wait for the WAL
-- flush. On a disk doing a few thousand fsyncs a second, waiting for the
-- flush of a bookkeeping write was what made validate and heartbeat p99
-- grow with the number of installations (every call the first for its
-- installation within touch_interval). The write is still atomic and
-- visible to every other session at once; a crash of PostgreSQL itself
-- can lose at most the last wal_writer_delay × 3 (600 ms by default) of
-- last_seen refreshes, which the next call of each installation repairs.
-- Activations, deactivations, revocations and usage stay synchronous.

CREATE OR REPLACE FUNCTION licd_touch(p_license uuid, p_iid text, p_version text,
                                      p_metadata jsonb, p_domain text)
RETURNS TABLE (first_seen bigint, last_seen bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  -- is_local: for this transaction only (the statement's own, since
  -- validate and heartbeat call licd_touch on its own).
  PERFORM set_config('synchronous_commit', 'off', true);
  RETURN QUERY
  UPDATE installations
     SET last_seen = licd_now(), version = coalesce(p_version, version),
         metadata = coalesce(p_metadata, metadata),
         domain = coalesce(p_domain, domain)
   WHERE license_id = p_license AND installation_id = p_iid AND status = 'active'
  RETURNING extract(epoch FROM installations.first_seen)::bigint,
            extract(epoch FROM installations.last_seen)::bigint;
END
$$;
