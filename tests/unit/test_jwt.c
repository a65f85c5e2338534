/*
 * JWS sign/verify on OpenSSL, cross-checked against libjwt as an
 * independent implementation: libjwt verifies our ES256 tokens (with the
 * algorithm pinned), and forges the attack tokens ours must refuse.
 */
#include "jwt.h"
#include "keyfile.h"
#include "unit.h"

#include <jwt.h>	/* libjwt: <> finds the system header, not ours */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/ecdsa.h>
#include <openssl/pem.h>

static char dir[] = "/tmp/licd-unit-XXXXXX";

static char *make_key(const char *type, const char *curve, int current)
{
	EVP_PKEY *k = curve ? EVP_PKEY_Q_keygen(NULL, NULL, type, curve) :
	    EVP_PKEY_Q_keygen(NULL, NULL, type);
	static char kid[64];

	unit_write_key(dir, k, kid, sizeof(kid), current);
	EVP_PKEY_free(k);
	return kid;
}

static char *read_pub(const char *kid)
{
	char path[512];
	static char buf[4096];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s.pub", dir, kid);
	f = fopen(path, "r");
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static int verify(const struct jws_keyring *kr, const char *tok,
    const char *typ)
{
	struct json_object *c = NULL;
	int rc = jws_verify(kr, tok, strlen(tok), typ, &c, NULL);

	json_object_put(c);
	return rc;
}

static char *forge(jwt_alg_t alg, const char *kid, const char *typ,
    const unsigned char *key, int keylen)
{
	jwt_t *j = NULL;
	char *tok;

	jwt_new(&j);
	jwt_add_grant(j, "sub", "0b7c6f0e-1a2b-4c3d-8e9f-001122334455");
	jwt_add_header(j, "kid", kid);
	if (typ)
		jwt_add_header(j, "typ", typ);
	jwt_set_alg(j, alg, key, keylen);
	tok = jwt_encode_str(j);
	jwt_free(j);
	return tok;
}

static void test_b64(void)
{
	unsigned char out[64];
	char enc[64];

	CHECK(jws_b64url_encode((const unsigned char *)"\xfb\xff", 2, enc) == 3
	    && strcmp(enc, "-_8") == 0);
	CHECK(jws_b64url_decode("-_8", 3, out, sizeof(out)) == 2 &&
	    out[0] == 0xfb && out[1] == 0xff);
	CHECK(jws_b64url_decode("+/8", 3, out, sizeof(out)) == -1);
	CHECK(jws_b64url_decode("-_8=", 4, out, sizeof(out)) == -1);
	CHECK(jws_b64url_decode("a", 1, out, sizeof(out)) == -1);
	CHECK(jws_b64url_decode("a$bc", 4, out, sizeof(out)) == -1);
	CHECK(jws_b64url_decode("", 0, out, sizeof(out)) == 0);
	CHECK(jws_b64url_decode("aGVsbG8", 7, out, sizeof(out)) == 5 &&
	    memcmp(out, "hello", 5) == 0);
	/* the unused bits of the last character must be zero: one text for
	 * one byte string */
	CHECK(jws_b64url_decode("aGVsbG9", 7, out, sizeof(out)) == -1);
	CHECK(jws_b64url_decode("aGVsbG_", 7, out, sizeof(out)) == -1);
	CHECK(jws_b64url_decode("-_9", 3, out, sizeof(out)) == -1);
	CHECK(jws_b64url_decode("aA", 2, out, sizeof(out)) == 1);
	CHECK(jws_b64url_decode("aB", 2, out, sizeof(out)) == -1);
	CHECK(jws_b64url_decode("aQ", 2, out, sizeof(out)) == 1);
	CHECK(jws_b64url_decode("aR", 2, out, sizeof(out)) == -1);
}

/* One accepted text per token: low-S signatures only (signed and
 * verified), canonical base64url in every part; the high-S twin, which
 * ECDSA itself accepts, and other last characters are refused. */
static void check_one_form(const struct jws_keyring *kr, int ecdsa)
{
	const char *claims = "{\"sub\":\"0b7c6f0e-1a2b-4c3d-8e9f-001122334455\","
	    "\"iss\":\"licd\"}";
	unsigned char sig[JWS_SIG_LEN];
	char *tok = NULL, *alt;
	int i, all_low = 1, high = 0;

	for (i = 0; i < 64; i++) {
		CHECK(jws_sign_raw(kr, "JWT", claims, strlen(claims), &tok,
		    sig) == JWS_OK);
		if (ecdsa && !jws_es256_low_s(sig))
			all_low = 0;
		free(tok);
		tok = NULL;
	}
	CHECK(all_low);
	CHECK(jws_sign_raw(kr, "JWT", claims, strlen(claims), &tok, sig) ==
	    JWS_OK);
	CHECK(verify(kr, tok, "JWT") == JWS_OK);
	alt = strdup(tok);
	if (ecdsa) {
		/* (r, n - s): the same signature to ECDSA */
		BIGNUM *n = BN_new(), *sv = BN_bin2bn(sig + 32, 32, NULL);
		unsigned char hs[JWS_SIG_LEN];
		char enc[128];

		BN_hex2bn(&n, "FFFFFFFF00000000FFFFFFFFFFFFFFFF"
		    "BCE6FAADA7179E84F3B9CAC2FC632551");
		BN_sub(sv, n, sv);
		memcpy(hs, sig, 32);
		BN_bn2binpad(sv, hs + 32, 32);
		high = !jws_es256_low_s(hs);
		jws_b64url_encode(hs, sizeof(hs), enc);
		strcpy(strrchr(alt, '.') + 1, enc);
		CHECK(high && verify(kr, alt, "JWT") == JWS_ESIG);
		{
			/* what ECDSA says of it: valid */
			EVP_MD_CTX *ctx = EVP_MD_CTX_new();
			ECDSA_SIG *es = ECDSA_SIG_new();
			unsigned char der[80], *dp = der;
			int dl;

			ECDSA_SIG_set0(es, BN_bin2bn(hs, 32, NULL),
			    BN_bin2bn(hs + 32, 32, NULL));
			dl = i2d_ECDSA_SIG(es, &dp);
			CHECK(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL,
			    kr->signer->pkey) == 1 &&
			    EVP_DigestVerify(ctx, der, (size_t)dl,
			    (const unsigned char *)tok,
			    (size_t)(strrchr(tok, '.') - tok)) == 1);
			ECDSA_SIG_free(es);
			EVP_MD_CTX_free(ctx);
		}
		BN_free(n);
		BN_free(sv);
		strcpy(alt, tok);
	}
	/* 64 bytes are 86 characters: the last one carries 4 unused bits */
	{
		size_t n = strlen(alt);
		const char *al = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
		int v = (int)(strchr(al, alt[n - 1]) - al);

		alt[n - 1] = al[v | 1];
		CHECK(verify(kr, alt, "JWT") == JWS_EMALFORMED);
		alt[n - 1] = al[v];
		CHECK(verify(kr, alt, "JWT") == JWS_OK);
	}
	free(alt);
	free(tok);
}

/* Lease reuse: a token rebuilt from its claims and signature is the same
 * token; the signature joined to other claims does not verify. */
static void check_join(const struct jws_keyring *kr)
{
	const char *claims = "{\"sub\":\"a\",\"iat\":1}";
	const char *other = "{\"sub\":\"b\",\"iat\":1}";
	unsigned char sig[JWS_SIG_LEN];
	char *tok = NULL, *again = NULL, *forged = NULL;

	CHECK(jws_sign_raw(kr, "lease+jwt", claims, strlen(claims), &tok,
	    sig) == JWS_OK);
	CHECK(jws_join(kr, "lease+jwt", claims, strlen(claims), sig,
	    &again) == JWS_OK);
	CHECK(tok != NULL && again != NULL && strcmp(tok, again) == 0);
	CHECK(verify(kr, again, "lease+jwt") == JWS_OK);
	CHECK(jws_join(kr, "lease+jwt", other, strlen(other), sig,
	    &forged) == JWS_OK);
	CHECK(forged != NULL && verify(kr, forged, "lease+jwt") == JWS_ESIG);
	free(tok);
	free(again);
	free(forged);
}

static void test_es256(void)
{
	struct jws_keyring kr;
	char err[256], *kid_old, *kid, *tok = NULL, *t2, *pub, *c2 = NULL;
	const char *claims = "{\"sub\":\"0b7c6f0e-1a2b-4c3d-8e9f-001122334455\","
	    "\"iss\":\"licd\"}";
	struct json_object *c = NULL;
	const struct jws_key *used;
	jwt_t *lj = NULL;
	size_t n;

	kid_old = strdup(make_key("EC", "P-256", 1));
	CHECK(jws_keyring_load(dir, &kr, err, sizeof(err)) == 0);
	CHECK(jws_sign(&kr, "JWT", claims, strlen(claims), &t2) == JWS_OK);
	jws_keyring_free(&kr);

	kid = strdup(make_key("EC", "P-256", 1));	/* rotate */
	CHECK(jws_keyring_load(dir, &kr, err, sizeof(err)) == 0);
	CHECK(kr.n == 2 && kr.signer != NULL &&
	    strcmp(kr.signer->kid, kid) == 0);
	CHECK(jws_sign(&kr, "JWT", claims, strlen(claims), &tok) == JWS_OK);
	CHECK(jws_verify(&kr, tok, strlen(tok), "JWT", &c, &used) == JWS_OK);
	CHECK(c != NULL && used == kr.signer);
	check_join(&kr);
	check_one_form(&kr, 1);
	CHECK(strcmp(json_object_get_string(json_object_object_get(c, "sub")),
	    "0b7c6f0e-1a2b-4c3d-8e9f-001122334455") == 0);
	json_object_put(c);
	/* signed with the previous key: still verifies after rotation */
	CHECK(verify(&kr, t2, "JWT") == JWS_OK);

	/* a lease presented where a license key is expected */
	CHECK(verify(&kr, tok, "lease+jwt") == JWS_ETYP);

	/* jws_peek: the claims under a loaded kid, nothing verified */
	CHECK(jws_peek(&kr, tok, strlen(tok), &c) == JWS_OK && c != NULL &&
	    strcmp(json_object_get_string(json_object_object_get(c, "sub")),
	    "0b7c6f0e-1a2b-4c3d-8e9f-001122334455") == 0);
	json_object_put(c);
	{
		char *bad = strdup(tok);

		n = strlen(bad);
		bad[n - 5] = bad[n - 5] == 'A' ? 'B' : 'A';
		CHECK(jws_peek(&kr, bad, n, &c) == JWS_OK);	/* not verified */
		json_object_put(c);
		CHECK(jws_peek(&kr, "garbage", 7, &c) == JWS_EMALFORMED &&
		    c == NULL);
		free(bad);
	}

	/* a program that never signs loads no private key, and verifies */
	{
		struct jws_keyring pub_kr;

		CHECK(jws_keyring_load_public(dir, &pub_kr, err,
		    sizeof(err)) == 0);
		CHECK(pub_kr.n == 2 && pub_kr.signer == NULL &&
		    !pub_kr.keys[0].is_private && !pub_kr.keys[1].is_private);
		CHECK(verify(&pub_kr, tok, "JWT") == JWS_OK);
		CHECK(verify(&pub_kr, t2, "JWT") == JWS_OK);
		CHECK(jws_sign(&pub_kr, "JWT", claims, strlen(claims), &c2) !=
		    JWS_OK);
		jws_keyring_free(&pub_kr);
	}

	/* a lazy ring: kids known at once, each key parsed at its first
	 * signature check, the same answers */
	{
		struct jws_keyring lz;
		char kidbuf[JWS_KID_MAX], sha[32];
		unsigned char d[32];
		unsigned int dn = 0;

		CHECK(jws_keyring_load_lazy(dir, &lz, err, sizeof(err)) == 0);
		CHECK(lz.n == 2 && lz.signer == NULL &&
		    lz.keys[0].pkey == NULL && lz.keys[0].alg == 0 &&
		    lz.keys[1].pkey == NULL);
		CHECK(jws_peek(&lz, tok, strlen(tok), &c) == JWS_OK);
		json_object_put(c);
		CHECK(jws_token_key(&lz, tok, strlen(tok), "JWT", kidbuf) !=
		    NULL && strcmp(kidbuf, kid) == 0);
		CHECK(lz.keys[0].pkey == NULL && lz.keys[1].pkey == NULL);
		CHECK(verify(&lz, tok, "JWT") == JWS_OK);
		CHECK(verify(&lz, t2, "JWT") == JWS_OK);
		CHECK(lz.keys[0].pkey != NULL && lz.keys[1].pkey != NULL &&
		    lz.keys[0].alg == JWS_ES256);
		/* parsed now: the header comparison finds it as well */
		CHECK(jws_token_key(&lz, tok, strlen(tok), "JWT", kidbuf) !=
		    NULL && strcmp(kidbuf, kid) == 0);
		CHECK(verify(&lz, tok, "lease+jwt") == JWS_ETYP);
		{
			char *bad = strdup(tok);

			n = strlen(bad);
			bad[n - 5] = bad[n - 5] == 'A' ? 'B' : 'A';
			CHECK(verify(&lz, bad, "JWT") == JWS_ESIG);
			free(bad);
		}
		jws_keyring_free(&lz);
		/* the digest without EVP is EVP's */
		jws_sha256_digest(tok, strlen(tok), (unsigned char *)sha);
		CHECK(EVP_Digest(tok, strlen(tok), d, &dn, EVP_sha256(),
		    NULL) == 1 && dn == 32 && memcmp(d, sha, 32) == 0);
	}
	{
		struct jws_keyring lz;
		char bogus[600];
		FILE *f;

		/* a lazy ring reads but does not check its keys: a file
		 * that is no key leaves that kid unable to verify */
		snprintf(bogus, sizeof(bogus), "%s/zz-bogus.pub", dir);
		CHECK((f = fopen(bogus, "w")) != NULL);
		fputs("not a key\n", f);
		fclose(f);
		CHECK(jws_keyring_load_lazy(dir, &lz, err, sizeof(err)) == 0);
		CHECK(lz.n == 3 && verify(&lz, tok, "JWT") == JWS_OK);
		jws_keyring_free(&lz);
		CHECK(jws_keyring_load_public(dir, &lz, err, sizeof(err)) ==
		    -1);
		unlink(bogus);
	}

	/* libjwt, pinned to ES256, accepts our signature (interop) */
	pub = read_pub(kid);
	CHECK(jwt_decode(&lj, tok, (unsigned char *)pub, (int)strlen(pub)) == 0
	    && lj != NULL && jwt_get_alg(lj) == JWT_ALG_ES256);
	jwt_free(lj);

	/* tampered payload, tampered signature, truncations */
	{
		char *bad = strdup(tok), *d1 = strchr(bad, '.');

		d1[3] = d1[3] == 'A' ? 'B' : 'A';
		CHECK(verify(&kr, bad, "JWT") != JWS_OK);
		strcpy(bad, tok);
		n = strlen(bad);
		bad[n - 5] = bad[n - 5] == 'A' ? 'B' : 'A';
		CHECK(verify(&kr, bad, "JWT") == JWS_ESIG);
		bad[strrchr(tok, '.') - tok] = '\0';
		CHECK(verify(&kr, bad, "JWT") == JWS_EMALFORMED);
		free(bad);
	}
	CHECK(verify(&kr, "garbage", "JWT") == JWS_EMALFORMED);
	CHECK(verify(&kr, "a.b.c", "JWT") == JWS_EMALFORMED);
	CHECK(verify(&kr, "..", "JWT") == JWS_EMALFORMED);
	CHECK(verify(&kr, "a.b.c.d", "JWT") == JWS_EMALFORMED);
	{
		char big[JWS_MAX_TOKEN + 10];

		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		CHECK(verify(&kr, big, "JWT") == JWS_EMALFORMED);
	}

	/* alg none, forged by libjwt */
	{
		char *f = forge(JWT_ALG_NONE, kid, "JWT", NULL, 0);

		CHECK(f != NULL && verify(&kr, f, "JWT") != JWS_OK);
		free(f);
	}
	/* HS256 with the public key PEM as secret: libjwt's own decode
	 * accepts this unless pinned; ours must not. */
	{
		char *f = forge(JWT_ALG_HS256, kid, "JWT", (unsigned char *)pub,
		    (int)strlen(pub));

		CHECK(f != NULL && verify(&kr, f, "JWT") == JWS_EALG);
		free(f);
	}
	/* unknown kid */
	{
		char *f = forge(JWT_ALG_HS256, "nope", "JWT",
		    (unsigned char *)"k", 1);

		CHECK(verify(&kr, f, "JWT") == JWS_EKID);
		CHECK(jws_peek(&kr, f, strlen(f), &c) == JWS_EKID && c == NULL);
		free(f);
	}
	/* ES256 header but no kid */
	{
		const char *nokid = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.e30."
		    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

		CHECK(verify(&kr, nokid, "JWT") == JWS_EKID);
	}
	/* JWKS entry carries kid, alg and the coordinates */
	{
		struct json_object *jwk = jws_jwk(kr.signer->pkey, kid);

		CHECK(jwk != NULL);
		CHECK(strcmp(json_object_get_string(json_object_object_get(jwk,
		    "alg")), "ES256") == 0);
		CHECK(strlen(json_object_get_string(json_object_object_get(jwk,
		    "x"))) == 43);
		json_object_put(jwk);
	}
	jws_keyring_free(&kr);
	free(tok);
	free(t2);
	free(kid);
	free(kid_old);
}

static void test_eddsa(void)
{
	struct jws_keyring kr;
	char err[256], *tok = NULL, *kid;
	const char *claims = "{\"sub\":\"x\"}";

	kid = strdup(make_key("ED25519", NULL, 1));
	CHECK(jws_keyring_load(dir, &kr, err, sizeof(err)) == 0);
	CHECK(kr.signer != NULL && kr.signer->alg == JWS_EDDSA);
	CHECK(jws_sign(&kr, "lease+jwt", claims, strlen(claims), &tok) ==
	    JWS_OK);
	CHECK(verify(&kr, tok, "lease+jwt") == JWS_OK);
	CHECK(verify(&kr, tok, "JWT") == JWS_ETYP);
	check_join(&kr);
	check_one_form(&kr, 0);
	free(tok);
	jws_keyring_free(&kr);
	free(kid);
}

static void test_empty_dir(void)
{
	struct jws_keyring kr;
	char err[256], empty[] = "/tmp/licd-unit-empty-XXXXXX";

	CHECK(mkdtemp(empty) != NULL);
	CHECK(jws_keyring_load(empty, &kr, err, sizeof(err)) == -1);
	CHECK(jws_keyring_load("/nonexistent/licd", &kr, err,
	    sizeof(err)) == -1);
	rmdir(empty);
}

int main(void)
{
	char cmd[600];

	if (mkdtemp(dir) == NULL)
		return 1;
	test_b64();
	test_es256();
	test_eddsa();
	test_empty_dir();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup failed\n");
	UNIT_DONE("jwt");
}
