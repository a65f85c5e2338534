/* A license key as validate, heartbeat and usage first read it: the
 * license it names (lic_key_id, its layout match and its parse) and the
 * row's word on it (lic_key_confirm against a key licd signed). An input
 * whose first byte is odd becomes the payload of a token whose header
 * names the loaded key, so that the payload is reached. */
#include "../unit/conffile.h"
#include "../unit/keyfile.h"
#include "config.h"
#include "jwt.h"
#include "lic.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *stored;	/* a key licd signed, as a license row holds it */
static char head[256];	/* its header, base64url, and the dot */

static void setup(void)
{
	char dir[] = "/tmp/licd-fuzz-XXXXXX", path[256], conf[UNIT_CONF_PATH];
	char kid[64], err[256], text[128];
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	struct lic l;
	int rc;

	if (mkdtemp(dir) == NULL || k == NULL)
		abort();
	unit_write_key(dir, k, kid, sizeof(kid), 1);
	snprintf(text, sizeof(text), "keys_dir = %s\nissuer = https://licd.test\n",
	    dir);
	rc = unit_load_conf(text, conf, err, sizeof(err)) == 0 &&
	    lic_init_keys(err, sizeof(err)) == 0;
	/* The keys are loaded now: the directory goes at once. */
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	if (system(path) != 0)
		abort();
	EVP_PKEY_free(k);
	if (!rc)
		abort();
	memset(&l, 0, sizeof(l));
	snprintf(l.id, sizeof(l.id), "11111111-1111-4111-8111-111111111111");
	snprintf(l.customer_id, sizeof(l.customer_id),
	    "22222222-2222-4222-8222-222222222222");
	snprintf(l.plan, sizeof(l.plan), "pro");
	l.features = json_tokener_parse("[]");
	l.limits = json_tokener_parse("{}");
	l.domains = json_tokener_parse("[]");
	if (lic_sign_key(&l, 1000, &stored) != LIC_OK)
		abort();
	lic_free(&l);
	snprintf(head, sizeof(head), "%.*s", (int)(strchr(stored, '.') -
	    stored + 1), stored);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char id[LIC_UUID_LEN + 1], *tok;
	size_t n = 0;
	int known;

	if (stored == NULL)
		setup();
	if (size > 4096 || (tok = malloc(strlen(head) + size * 4 / 3 + 16)) ==
	    NULL)
		return 0;
	if (size > 0 && (data[0] & 1)) {
		n = (size_t)sprintf(tok, "%s", head);
		n += jws_b64url_encode(data + 1, size - 1, tok + n);
		n += (size_t)sprintf(tok + n, ".AAAA");
	} else {
		memcpy(tok, data, size);
		n = size;
	}
	tok[n] = '\0';
	if (strlen(tok) == n && lic_key_id(tok, id, &known) == LIC_OK)
		lic_key_confirm(tok, id, stored);
	free(tok);
	return 0;
}
