/* keyfile: a signing key written into a key directory as licctl keys
 * writes one (KID.key, KID.pub, and `current` naming the current key),
 * for the tests that load a keyring from it (jws_keyring_load). */
#ifndef LICD_UNIT_KEYFILE_H
#define LICD_UNIT_KEYFILE_H

#include "jwt.h"

#include <stdio.h>

#include <openssl/pem.h>

/* k into dir; kid (kidlen bytes) receives its thumbprint. */
static inline void unit_write_key(const char *dir, EVP_PKEY *k, char *kid,
    size_t kidlen, int current)
{
	char path[512];
	FILE *f;

	jws_thumbprint(k, kid, kidlen);
	snprintf(path, sizeof(path), "%s/%s.key", dir, kid);
	f = fopen(path, "w");
	PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	snprintf(path, sizeof(path), "%s/%s.pub", dir, kid);
	f = fopen(path, "w");
	PEM_write_PUBKEY(f, k);
	fclose(f);
	if (current) {
		snprintf(path, sizeof(path), "%s/current", dir);
		f = fopen(path, "w");
		fprintf(f, "%s\n", kid);
		fclose(f);
	}
}

#endif
