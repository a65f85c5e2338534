-- functions/93_console_sessions.sql: the console's sign-in sessions. The
-- cookie's value is never stored: admin_sessions holds its SHA-256.

-- Opens a session for p_actor (the token that signed in; p_token_hash its
-- SHA-256 in lower-case hex, as admin_tokens holds it) lasting p_ttl
-- seconds, with its CSRF token; deletes sessions expired over a day ago;
-- audits it. Returns its expiry (RFC 3339). Called by the admin program at
-- POST /api/admin/session.
DROP FUNCTION IF EXISTS licd_session_open(bytea, text, text, int, text);
CREATE OR REPLACE FUNCTION licd_session_open(p_hash bytea, p_csrf text, p_actor text,
                                             p_token_hash text, p_ttl int, p_rid text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  exp timestamptz := now() + make_interval(secs => p_ttl);
BEGIN
  DELETE FROM admin_sessions WHERE expires_at < now() - interval '1 day';
  INSERT INTO admin_sessions (id_hash, csrf, actor, token_hash, expires_at)
  VALUES (p_hash, p_csrf, p_actor, p_token_hash, exp);
  PERFORM licd_audit(p_actor, 'session.open', 'session', encode(substr(p_hash, 1, 8), 'hex'),
                     NULL, p_rid, NULL);
  RETURN licd_iso(exp);
END
$$;

-- The live session of a cookie's hash: actor, csrf, expires_at and
-- token_hash (of the token that opened it: the admin program accepts the
-- session only while admin_tokens holds actor with that hash); no row when
-- it is unknown, ended or expired. Called by the admin program's
-- authentication (fcgi/lib/auth.c) on every request with a cookie.
DROP FUNCTION IF EXISTS licd_session_get(bytea);
CREATE OR REPLACE FUNCTION licd_session_get(p_hash bytea)
RETURNS TABLE (actor text, csrf text, expires_at text, token_hash text)
LANGUAGE sql STABLE AS $$
  SELECT s.actor, s.csrf, licd_iso(s.expires_at), s.token_hash FROM admin_sessions s
   WHERE s.id_hash = p_hash AND s.ended_at IS NULL AND s.expires_at > now()
     AND s.token_hash IS NOT NULL
$$;

-- Ends the session of a cookie's hash and audits it; false when there was
-- no live one. Called by the admin program at POST
-- /api/admin/session/end.
CREATE OR REPLACE FUNCTION licd_session_end(p_hash bytea, p_rid text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  who text;
BEGIN
  UPDATE admin_sessions SET ended_at = now()
   WHERE id_hash = p_hash AND ended_at IS NULL RETURNING actor INTO who;
  IF who IS NULL THEN RETURN false; END IF;
  PERFORM licd_audit(who, 'session.end', 'session', encode(substr(p_hash, 1, 8), 'hex'),
                     NULL, p_rid, NULL);
  RETURN true;
END
$$;
