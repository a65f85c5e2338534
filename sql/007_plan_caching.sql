-- 007_plan_caching: PostgreSQL 15 re-parses and re-plans a LANGUAGE sql
-- function that it cannot inline on every query that calls it; profiling
-- validate under load showed the parser (base_yyparse) among PostgreSQL's
-- top costs. The functions on the request path that cannot be inlined
-- (a sub-SELECT, or a data-modifying body) become plpgsql, whose plans are
-- cached per connection. Same signatures, same results.

CREATE OR REPLACE FUNCTION licd_now() RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN now() + make_interval(secs => coalesce((SELECT offset_s FROM licd_clock), 0));
END
$$;

CREATE OR REPLACE FUNCTION licd_touch(p_license uuid, p_iid text, p_version text,
                                      p_metadata jsonb, p_domain text)
RETURNS TABLE (first_seen bigint, last_seen bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
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

CREATE OR REPLACE FUNCTION licd_deactivate(p_license uuid, p_iid text)
RETURNS TABLE (license_found boolean, deactivated boolean)
LANGUAGE plpgsql AS $$
BEGIN
  license_found := EXISTS (SELECT 1 FROM licenses WHERE id = p_license);
  deactivated := false;
  IF license_found THEN
    UPDATE installations i SET status = 'inactive', deactivated_at = licd_now()
     WHERE i.license_id = p_license AND i.installation_id = p_iid
       AND i.status = 'active';
    deactivated := FOUND;
  END IF;
  RETURN NEXT;
END
$$;
