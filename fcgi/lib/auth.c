/* auth: see auth.h. */
#include "auth.h"
#include "config.h"
#include "log.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#define AUTH_MAX 32

struct token {
	char name[64];
	unsigned char hash[SHA256_DIGEST_LENGTH];
};

static struct token tokens[AUTH_MAX];
static size_t ntokens;

static int unhex(const char *s, unsigned char *out, size_t n)
{
	size_t i;

	if (strlen(s) != 2 * n)
		return -1;
	for (i = 0; i < n; i++) {
		unsigned int v;

		if (!isxdigit((unsigned char)s[2 * i]) ||
		    !isxdigit((unsigned char)s[2 * i + 1]) ||
		    sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	return 0;
}

int auth_init(void)
{
	const char *conf = cfg_str("admin_tokens", "");
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

int auth_admin(struct http_req *req, struct http_resp *resp,
    const char **actor)
{
	const char *h = http_param(req, "HTTP_AUTHORIZATION");
	unsigned char digest[SHA256_DIGEST_LENGTH];
	size_t i, match = AUTH_MAX;

	*actor = NULL;
	if (h != NULL && strncasecmp(h, "Bearer ", 7) == 0 && h[7] != '\0') {
		SHA256((const unsigned char *)h + 7, strlen(h + 7), digest);
		for (i = 0; i < ntokens; i++)
			if (CRYPTO_memcmp(digest, tokens[i].hash,
			    sizeof(digest)) == 0)
				match = i;
	}
	if (match == AUTH_MAX) {
		resp->www_auth = "Bearer realm=\"licd-admin\"";
		http_error(resp, 401, "UNAUTHORIZED",
		    "a valid admin bearer token is required");
		return -1;
	}
	*actor = tokens[match].name;
	return 0;
}
