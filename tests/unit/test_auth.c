/* auth: configured admin tokens matched by their hash, and a session's
 * stored token hash checked against them, in either case of hex; a
 * malformed hash matches nothing and leaves OpenSSL's error queue empty. */
#include "auth.h"
#include "conffile.h"
#include "config.h"
#include "unit.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

static int load(const char *text)
{
	char path[UNIT_CONF_PATH], err[512];

	return unit_load_conf(text, path, err, sizeof(err));
}

int main(void)
{
	char hex[65], upper[65], conf[256], bad[65];
	size_t i;

	auth_hash_hex("s3cret-token", hex);
	for (i = 0; i < 64; i++)
		upper[i] = (char)toupper((unsigned char)hex[i]);
	upper[64] = '\0';
	CHECK(strlen(hex) == 64 && strspn(hex, "0123456789abcdef") == 64);

	/* A hash configured in capitals is the same hash. */
	snprintf(conf, sizeof(conf), "admin_tokens = ops:%s, ci:%s\n", upper,
	    "00000000000000000000000000000000"
	    "00000000000000000000000000000000");
	CHECK(load(conf) == 0);
	CHECK(auth_init() == 0);
	CHECK(auth_token_name("s3cret-token") != NULL &&
	    strcmp(auth_token_name("s3cret-token"), "ops") == 0);
	CHECK(auth_token_name("s3cret-tokeN") == NULL);
	CHECK(auth_token_name("") == NULL);

	CHECK(auth_session_token_ok("ops", hex) == 1);
	CHECK(auth_session_token_ok("ops", upper) == 1);
	CHECK(auth_session_token_ok("ci", hex) == 0);
	CHECK(auth_session_token_ok("nobody", hex) == 0);
	CHECK(auth_session_token_ok(NULL, hex) == 0);
	CHECK(auth_session_token_ok("ops", NULL) == 0);

	/* Not 64 hex digits: no match, and no error left behind for the
	 * next OpenSSL caller on this thread to misreport. */
	ERR_clear_error();
	CHECK(auth_session_token_ok("ops", "") == 0);
	CHECK(auth_session_token_ok("ops", "abc") == 0);
	memcpy(bad, hex, sizeof(bad));
	bad[63] = '\0';
	CHECK(auth_session_token_ok("ops", bad) == 0);
	memcpy(bad, hex, sizeof(bad));
	bad[10] = 'g';
	CHECK(auth_session_token_ok("ops", bad) == 0);
	bad[10] = ':';
	CHECK(auth_session_token_ok("ops", bad) == 0);
	bad[10] = ' ';
	CHECK(auth_session_token_ok("ops", bad) == 0);
	CHECK(ERR_peek_error() == 0);

	UNIT_DONE("auth");
}
