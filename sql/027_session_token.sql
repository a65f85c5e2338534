-- 027_session_token: a console session remembers which secret opened it.
-- token_hash is the SHA-256 (lower-case hex, as admin_tokens holds it) of
-- the admin token that signed in; the admin program accepts the session
-- only while admin_tokens still holds the session's token name with that
-- hash, so replacing a token's secret under the same name ends the
-- sessions the old secret opened. Sessions opened before this migration
-- cannot say which secret opened them: they are ended.
ALTER TABLE admin_sessions ADD COLUMN token_hash text
  CHECK (token_hash ~ '^[0-9a-f]{64}$');
UPDATE admin_sessions SET ended_at = now() WHERE ended_at IS NULL;
ALTER TABLE admin_sessions ADD CONSTRAINT admin_sessions_token_hash
  CHECK (token_hash IS NOT NULL OR ended_at IS NOT NULL);
