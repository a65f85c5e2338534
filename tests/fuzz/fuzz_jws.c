/* License keys and leases: the verification path with a real keyring. */
#include "jwt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>

static struct jws_keyring kr;

static void setup(void)
{
	char dir[] = "/tmp/licd-fuzz-XXXXXX", key[256], cur[256], kid[64];
	char err[256];
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	FILE *f;
	int rc;

	if (mkdtemp(dir) == NULL || k == NULL)
		abort();
	jws_thumbprint(k, kid, sizeof(kid));
	snprintf(key, sizeof(key), "%s/%s.key", dir, kid);
	f = fopen(key, "w");
	PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	snprintf(cur, sizeof(cur), "%s/current", dir);
	f = fopen(cur, "w");
	fprintf(f, "%s\n", kid);
	fclose(f);
	rc = jws_keyring_load(dir, &kr, err, sizeof(err));
	/* The keyring holds the keys now: the directory goes at once, so that
	 * no run (a crash included) leaves it behind. */
	unlink(key);
	unlink(cur);
	rmdir(dir);
	if (rc != 0)
		abort();
	EVP_PKEY_free(k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_object *c = NULL;
	unsigned char out[8192];
	char *tok;

	if (kr.n == 0)
		setup();
	if ((tok = malloc(size + 1)) == NULL)
		return 0;
	memcpy(tok, data, size);
	tok[size] = '\0';
	if (jws_verify(&kr, tok, size, "JWT", &c, NULL) == JWS_OK)
		json_object_put(c);
	jws_b64url_decode(tok, size, out, sizeof(out));
	free(tok);
	return 0;
}
