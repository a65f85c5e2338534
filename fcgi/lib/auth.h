/*
 * auth: admin bearer tokens. The configuration holds only SHA-256 hashes
 * (admin_tokens = name:hex[,name:hex…]); a presented token is hashed and
 * compared with every configured hash in constant time (CRYPTO_memcmp,
 * no early exit), so neither the token nor which entry matched leaks
 * through timing. Tokens never reach logs; the matching name does.
 */
#ifndef LICD_AUTH_H
#define LICD_AUTH_H

#include "http.h"

/* Loads admin_tokens; -1 on a malformed entry. No tokens: every admin
 * request is refused. */
int auth_init(void);

/* 0 and *actor = the token's name when the request carries a valid
 * "Authorization: Bearer <token>", or a live session cookie together with
 * that session's CSRF header (*actor = the name of the token the session
 * was opened with; valid until the handler returns). Otherwise -1 with the
 * response set: 401 without credentials or with a wrong token or an
 * ended session (or one whose token is no longer configured, or was
 * configured anew under the same name since it signed in), 403 for
 * a session cookie without its CSRF header, 503 if the session cannot be
 * read. */
int auth_admin(struct http_req *req, struct http_resp *resp,
    const char **actor);

/*
 * Console sessions. A signed-in console sends the session cookie
 * (AUTH_COOKIE, HttpOnly, SameSite=Strict) and, with every request, the
 * session's CSRF token in AUTH_CSRF_HEADER; the row lives in
 * admin_sessions (sql/019_console.sql) under the SHA-256 of the cookie
 * value, so the database never holds a usable cookie. A program that
 * calls auth_admin registers AUTH_STMTS among its statements.
 */
#define AUTH_COOKIE "licd_session"
#define AUTH_CSRF_HEADER "HTTP_X_LICD_CSRF"
#define AUTH_STMTS \
	{ "auth_session", "SELECT * FROM licd_session_get($1::bytea)", 1 }

/* The name of the configured token `token`, or NULL (constant time over
 * the configured hashes). */
const char *auth_token_name(const char *token);

/* 1 when admin_tokens holds a token named name whose SHA-256 is hex (the
 * hash stored with a session when its token signed in; constant-time
 * compare): a session opened by a token since removed, or since given a
 * new secret under the same name, is refused. */
int auth_session_token_ok(const char *name, const char *hex);

/* The session cookie's value in the request, copied to out (at most
 * outlen - 1 bytes of [A-Za-z0-9_-]); -1 when absent or malformed. */
int auth_cookie(const struct http_req *req, char *out, size_t outlen);

/* "\\x" + hex SHA-256 of s into out[67], a bytea literal parameter. */
void auth_hash_bytea(const char *s, char out[67]);

/* Hex SHA-256 of token into out[65]; used by licctl to configure one. */
void auth_hash_hex(const char *token, char out[65]);

#endif
