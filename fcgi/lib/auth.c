/* auth: see auth.h. */
#include "auth.h"
#include "config.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/sha.h>

#define AUTH_MAX 32

struct token {
	char name[64];
	unsigned char hash[SHA256_DIGEST_LENGTH];
};

static struct token tokens[AUTH_MAX];
static size_t ntokens;

/* s as exactly n bytes in hex (either case): 0, or -1 with OpenSSL's
 * error queue left as it was. */
static int unhex(const char *s, unsigned char *out, size_t n)
{
	size_t len;

	if (strlen(s) != 2 * n)
		return -1;
	if (!OPENSSL_hexstr2buf_ex(out, n, &len, s, '\0')) {
		ERR_clear_error();
		return -1;
	}
	return 0;
}

int auth_init(void)
{
	const char *conf = cfg_str("admin_tokens");
	char *copy = strdup(conf), *tok, *save = NULL;
	int rc = -1;

	if (copy == NULL)
		return -1;
	ntokens = 0;
	for (tok = strtok_r(copy, ", \t", &save); tok != NULL;
	    tok = strtok_r(NULL, ", \t", &save)) {
		char *colon = strchr(tok, ':');

		if (colon == NULL || ntokens == AUTH_MAX ||
		    (size_t)(colon - tok) >= sizeof(tokens[0].name) ||
		    colon == tok) {
			log_error("admin_tokens: entries are name:sha256hex");
			goto out;
		}
		*colon = '\0';
		if (unhex(colon + 1, tokens[ntokens].hash,
		    SHA256_DIGEST_LENGTH) != 0) {
			log_error("admin_tokens: bad hash for '%s'", tok);
			goto out;
		}
		snprintf(tokens[ntokens].name, sizeof(tokens[0].name), "%s", tok);
		ntokens++;
	}
	if (ntokens == 0)
		log_warn("no admin_tokens configured: admin API refuses all");
	rc = 0;
out:
	free(copy);
	return rc;
}

void auth_hash_hex(const char *token, char out[65])
{
	unsigned char h[SHA256_DIGEST_LENGTH];
	int i;

	SHA256((const unsigned char *)token, strlen(token), h);
	for (i = 0; i < SHA256_DIGEST_LENGTH; i++)
		snprintf(out + 2 * i, 3, "%02x", h[i]);
}

const char *auth_token_name(const char *token)
{
	unsigned char digest[SHA256_DIGEST_LENGTH];
	size_t i, match = AUTH_MAX;

	if (token == NULL || *token == '\0')
		return NULL;
	SHA256((const unsigned char *)token, strlen(token), digest);
	for (i = 0; i < ntokens; i++)
		if (CRYPTO_memcmp(digest, tokens[i].hash, sizeof(digest)) == 0)
			match = i;
	return match == AUTH_MAX ? NULL : tokens[match].name;
}

int auth_session_token_ok(const char *name, const char *hex)
{
	unsigned char h[SHA256_DIGEST_LENGTH];
	size_t i;
	int ok = 0;

	if (name == NULL || hex == NULL ||
	    unhex(hex, h, sizeof(h)) != 0)
		return 0;
	for (i = 0; i < ntokens; i++)
		if (strcmp(tokens[i].name, name) == 0 &&
		    CRYPTO_memcmp(h, tokens[i].hash, sizeof(h)) == 0)
			ok = 1;
	return ok;
}

void auth_hash_bytea(const char *s, char out[67])
{
	out[0] = '\\';
	out[1] = 'x';
	auth_hash_hex(s, out + 2);
}

int auth_cookie(const struct http_req *req, char *out, size_t outlen)
{
	const char *h = http_param(req, "HTTP_COOKIE"), *p;
	size_t n = strlen(AUTH_COOKIE), len;

	for (p = h; p != NULL && *p != '\0'; p = strchr(p, ';')) {
		while (*p == ';' || *p == ' ')
			p++;
		if (strncmp(p, AUTH_COOKIE, n) != 0 || p[n] != '=')
			continue;
		p += n + 1;
		len = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789_-");
		if (len == 0 || len >= outlen || (p[len] != '\0' &&
		    p[len] != ';' && p[len] != ' '))
			return -1;
		memcpy(out, p, len);
		out[len] = '\0';
		return 0;
	}
	return -1;
}

static _Thread_local char session_actor[64];

static int auth_session(struct http_req *req, struct http_resp *resp,
    const char **actor)
{
	char cookie[128], hash[67];
	const char *params[1] = { hash }, *csrf, *want;
	PGresult *res = NULL;
	int st, rc = -1;

	if (auth_cookie(req, cookie, sizeof(cookie)) != 0) {
		resp->www_auth = "Bearer realm=\"licd-admin\"";
		http_error(resp, 401, "UNAUTHORIZED",
		    "a valid admin bearer token or console session is required");
		return -1;
	}
	auth_hash_bytea(cookie, hash);
	if ((st = db_exec(req->db, "auth_session", 1, params, &res)) != DB_OK) {
		http_db_error(req, resp, st, "session");
		goto out;
	}
	/* A session ends with its token: one removed from admin_tokens, or
	 * given a new secret under the same name, signs no more requests,
	 * whatever sessions it opened. */
	if (PQntuples(res) != 1 || !auth_session_token_ok(PQgetvalue(res, 0,
	    0), PQgetvalue(res, 0, 3))) {
		resp->www_auth = "Bearer realm=\"licd-admin\"";
		http_error(resp, 401, "UNAUTHORIZED",
		    "the console session has ended; sign in again");
		goto out;
	}
	csrf = http_param(req, AUTH_CSRF_HEADER);
	want = PQgetvalue(res, 0, 1);
	if (csrf == NULL || strlen(csrf) != strlen(want) ||
	    CRYPTO_memcmp(csrf, want, strlen(want)) != 0) {
		http_error(resp, 403, "FORBIDDEN",
		    "a console session needs its X-Licd-CSRF header");
		goto out;
	}
	snprintf(session_actor, sizeof(session_actor), "%s",
	    PQgetvalue(res, 0, 0));
	*actor = session_actor;
	rc = 0;
out:
	PQclear(res);
	return rc;
}

int auth_admin(struct http_req *req, struct http_resp *resp,
    const char **actor)
{
	const char *h = http_param(req, "HTTP_AUTHORIZATION");

	*actor = NULL;
	if (h == NULL)
		return auth_session(req, resp, actor);
	if (strncasecmp(h, "Bearer ", 7) == 0)
		*actor = auth_token_name(h + 7);
	if (*actor == NULL) {
		resp->www_auth = "Bearer realm=\"licd-admin\"";
		http_error(resp, 401, "UNAUTHORIZED",
		    "a valid admin bearer token is required");
		return -1;
	}
	return 0;
}
