/* jwt: see jwt.h. */
#include "jwt.h"

#include "json.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#define HDR_MAX 512
#define PAYLOAD_MAX 6144

static _Thread_local struct json_tokener *jws_tok;

const char *jws_alg_name(enum jws_alg alg)
{
	return alg == JWS_EDDSA ? "EdDSA" : "ES256";
}

size_t jws_b64url_encode(const unsigned char *in, size_t n, char *out)
{
	int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	int i;

	while (len > 0 && out[len - 1] == '=')
		len--;
	for (i = 0; i < len; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}
	out[len] = '\0';
	return (size_t)len;
}

long jws_b64url_decode(const char *in, size_t n, unsigned char *out,
    size_t outcap)
{
	char buf[8200];
	size_t i, pad;
	int len;

	if (n % 4 == 1 || n + 3 >= sizeof(buf))
		return -1;
	pad = (4 - n % 4) % 4;
	if ((n + pad) / 4 * 3 > outcap)
		return -1;
	for (i = 0; i < n; i++) {
		char c = in[i];

		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (c == '+' || c == '/' || c == '=')
			return -1;	/* standard alphabet is not base64url */
		buf[i] = c;
	}
	/* One text per byte string: the bits past the last byte must be
	 * zero, or "...A" and "...B" would decode alike (a second form of
	 * the same key). */
	if (n % 4 != 0) {
		const char *al = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
		const char *q = memchr(al, buf[n - 1], 64);

		if (q == NULL || ((q - al) & (n % 4 == 2 ? 0x0f : 0x03)) != 0)
			return -1;
	}
	for (i = 0; i < pad; i++)
		buf[n + i] = '=';
	if (n + pad == 0)
		return 0;
	/* EVP_DecodeBlock rejects bytes outside the alphabet. */
	len = EVP_DecodeBlock(out, (unsigned char *)buf, (int)(n + pad));
	if (len < 0)
		return -1;
	return (long)((size_t)len - pad);
}

enum jws_alg jws_key_alg(const EVP_PKEY *pkey)
{
	char group[32];
	size_t glen = 0;

	if (EVP_PKEY_is_a(pkey, "ED25519"))
		return JWS_EDDSA;
	if (EVP_PKEY_is_a(pkey, "EC") &&
	    EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
	    group, sizeof(group), &glen) == 1 &&
	    strcmp(group, "prime256v1") == 0)
		return JWS_ES256;
	return 0;
}

/* The public coordinates as base64url: x (and y for EC). */
static int jwk_coords(const EVP_PKEY *pkey, char *x, char *y)
{
	unsigned char buf[64];
	size_t len = sizeof(buf);
	BIGNUM *bx = NULL, *by = NULL;
	int rc = -1;

	if (jws_key_alg(pkey) == JWS_EDDSA) {
		if (EVP_PKEY_get_raw_public_key(pkey, buf, &len) != 1 ||
		    len != 32)
			goto out;
		jws_b64url_encode(buf, len, x);
		y[0] = '\0';
		rc = 0;
		goto out;
	}
	if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &bx) != 1 ||
	    EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &by) != 1)
		goto out;
	if (BN_bn2binpad(bx, buf, 32) != 32 ||
	    BN_bn2binpad(by, buf + 32, 32) != 32)
		goto out;
	jws_b64url_encode(buf, 32, x);
	jws_b64url_encode(buf + 32, 32, y);
	rc = 0;
out:
	BN_free(bx);
	BN_free(by);
	return rc;
}

int jws_thumbprint(const EVP_PKEY *pkey, char *out, size_t outlen)
{
	char x[64], y[64], canon[256];
	unsigned char dig[SHA256_DIGEST_LENGTH];
	int n;

	if (outlen < 44 || jwk_coords(pkey, x, y) != 0)
		return -1;
	/* RFC 7638: required members only, lexicographic order, no spaces. */
	if (jws_key_alg(pkey) == JWS_EDDSA)
		n = snprintf(canon, sizeof(canon),
		    "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}", x);
	else
		n = snprintf(canon, sizeof(canon),
		    "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
		    x, y);
	if (n <= 0 || (size_t)n >= sizeof(canon))
		return -1;
	SHA256((const unsigned char *)canon, (size_t)n, dig);
	jws_b64url_encode(dig, sizeof(dig), out);
	return 0;
}

struct json_object *jws_jwk(const EVP_PKEY *pkey, const char *kid)
{
	char x[64], y[64];
	struct json_object *o;
	enum jws_alg alg = jws_key_alg(pkey);

	if (alg == 0 || jwk_coords(pkey, x, y) != 0)
		return NULL;
	o = json_object_new_object();
	if (alg == JWS_EDDSA) {
		json_object_object_add(o, "kty", json_object_new_string("OKP"));
		json_object_object_add(o, "crv",
		    json_object_new_string("Ed25519"));
		json_object_object_add(o, "x", json_object_new_string(x));
	} else {
		json_object_object_add(o, "kty", json_object_new_string("EC"));
		json_object_object_add(o, "crv", json_object_new_string("P-256"));
		json_object_object_add(o, "x", json_object_new_string(x));
		json_object_object_add(o, "y", json_object_new_string(y));
	}
	json_object_object_add(o, "kid", json_object_new_string(kid));
	json_object_object_add(o, "use", json_object_new_string("sig"));
	json_object_object_add(o, "alg",
	    json_object_new_string(jws_alg_name(alg)));
	return o;
}

static int kid_ok(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n >= JWS_KID_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

static EVP_PKEY *read_pem(const char *path, int private)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k;

	if (f == NULL)
		return NULL;
	k = private ? PEM_read_PrivateKey(f, NULL, NULL, NULL)
	    : PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	return k;
}

/* A public key file's text, for a lazy ring; NULL when unreadable. */
static char *read_text(const char *path)
{
	enum { MAX = 16384 };	/* a PEM public key is a few hundred bytes */
	FILE *f = fopen(path, "r");
	char *t = NULL;
	size_t n;

	if (f == NULL)
		return NULL;
	if ((t = malloc(MAX)) != NULL &&
	    ((n = fread(t, 1, MAX - 1, f)) == 0 || n == MAX - 1 || ferror(f))) {
		free(t);
		t = NULL;
	}
	if (t != NULL)
		t[n] = '\0';
	fclose(f);
	return t;
}

enum load { LOAD_SIGN, LOAD_PUBLIC, LOAD_LAZY };

/* Reads the PEM key at path (private or public) and adds it to kr as
 * kid (LOAD_LAZY: its text only); on failure err says which file. */
static int add_key(struct jws_keyring *kr, const char *kid, const char *path,
    int is_private, enum load how, char *err, size_t errlen)
{
	EVP_PKEY *pkey = NULL;
	char *pem = NULL;
	struct jws_key *nk;

	if (how == LOAD_LAZY ? (pem = read_text(path)) == NULL :
	    (pkey = read_pem(path, is_private)) == NULL ||
	    jws_key_alg(pkey) == 0) {
		EVP_PKEY_free(pkey);
		snprintf(err, errlen, "unreadable %s key %s",
		    is_private ? "private" : "public", path);
		return -1;
	}
	nk = realloc(kr->keys, (kr->n + 1) * sizeof(*nk));
	if (nk == NULL) {
		EVP_PKEY_free(pkey);
		free(pem);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	kr->keys = nk;
	memset(&nk[kr->n], 0, sizeof(*nk));
	snprintf(nk[kr->n].kid, sizeof(nk[kr->n].kid), "%s", kid);
	nk[kr->n].alg = pkey != NULL ? jws_key_alg(pkey) : 0;
	nk[kr->n].pkey = pkey;
	nk[kr->n].is_private = is_private;
	nk[kr->n].pem = pem;
	atomic_init(&nk[kr->n].ready, pkey != NULL);
	kr->n++;
	return 0;
}

/* Lazy keys are parsed under one lock, once each. */
static pthread_mutex_t lazy_mu = PTHREAD_MUTEX_INITIALIZER;

/* 0 once k's alg and pkey are set (a lazy key parsed now), else -1. */
static int key_ready(const struct jws_key *ck)
{
	struct jws_key *k = (struct jws_key *)ck;
	EVP_PKEY *pkey = NULL;
	BIO *b;

	if (atomic_load_explicit(&k->ready, memory_order_acquire))
		return 0;
	pthread_mutex_lock(&lazy_mu);
	if (!atomic_load_explicit(&k->ready, memory_order_relaxed) &&
	    k->pem != NULL &&
	    (b = BIO_new_mem_buf(k->pem, -1)) != NULL) {
		pkey = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
		BIO_free(b);
		if (pkey != NULL && jws_key_alg(pkey) != 0) {
			k->alg = jws_key_alg(pkey);
			k->pkey = pkey;
			atomic_store_explicit(&k->ready, 1,
			    memory_order_release);
		} else {
			EVP_PKEY_free(pkey);
		}
	}
	pthread_mutex_unlock(&lazy_mu);
	return atomic_load_explicit(&k->ready, memory_order_acquire) ? 0 : -1;
}

static int keyring_load(const char *dir, struct jws_keyring *kr,
    enum load how, char *err, size_t errlen);

int jws_keyring_load(const char *dir, struct jws_keyring *kr, char *err,
    size_t errlen)
{
	return keyring_load(dir, kr, LOAD_SIGN, err, errlen);
}

int jws_keyring_load_public(const char *dir, struct jws_keyring *kr,
    char *err, size_t errlen)
{
	return keyring_load(dir, kr, LOAD_PUBLIC, err, errlen);
}

int jws_keyring_load_lazy(const char *dir, struct jws_keyring *kr,
    char *err, size_t errlen)
{
	return keyring_load(dir, kr, LOAD_LAZY, err, errlen);
}

static int keyring_load(const char *dir, struct jws_keyring *kr,
    enum load how, char *err, size_t errlen)
{
	int sign = how == LOAD_SIGN;
	char path[4096], current[JWS_KID_MAX + 2] = "";
	DIR *d = NULL;
	struct dirent *de;
	FILE *f;
	size_t i;
	int rc = -1;

	memset(kr, 0, sizeof(*kr));
	snprintf(path, sizeof(path), "%s/current", dir);
	if ((f = fopen(path, "r")) != NULL) {
		if (fgets(current, sizeof(current), f) == NULL)
			current[0] = '\0';
		current[strcspn(current, "\r\n")] = '\0';
		fclose(f);
	}
	if ((d = opendir(dir)) == NULL) {
		snprintf(err, errlen, "cannot open keys_dir %s", dir);
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		char kid[JWS_KID_MAX];
		size_t n = strlen(de->d_name);

		if (n < 5 || n - 4 >= sizeof(kid) ||
		    strcmp(de->d_name + n - 4, ".pub") != 0)
			continue;
		memcpy(kid, de->d_name, n - 4);
		kid[n - 4] = '\0';
		if (!kid_ok(kid))
			continue;
		/* The signer is loaded from its private key below. */
		if (sign && strcmp(kid, current) == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (add_key(kr, kid, path, 0, how, err, errlen) != 0)
			goto out;
	}
	if (sign && current[0] != '\0') {
		if (!kid_ok(current)) {
			snprintf(err, errlen, "bad kid in %s/current", dir);
			goto out;
		}
		snprintf(path, sizeof(path), "%s/%s.key", dir, current);
		if (add_key(kr, current, path, 1, how, err, errlen) != 0)
			goto out;
	}
	for (i = 0; i < kr->n; i++)
		if (kr->keys[i].is_private)
			kr->signer = &kr->keys[i];
	if (kr->n == 0) {
		snprintf(err, errlen, "no keys in %s (run licctl keys generate)",
		    dir);
		goto out;
	}
	rc = 0;
out:
	if (d != NULL)
		closedir(d);
	if (rc != 0)
		jws_keyring_free(kr);
	return rc;
}

void jws_keyring_free(struct jws_keyring *kr)
{
	size_t i;

	for (i = 0; i < kr->n; i++) {
		EVP_PKEY_free(kr->keys[i].pkey);
		free(kr->keys[i].pem);
	}
	free(kr->keys);
	memset(kr, 0, sizeof(*kr));
}

/* The order n of P-256 and n / 2, big-endian. (r, s) and (r, n - s)
 * both verify; licd signs and accepts only s <= n / 2, so that a key has
 * one signature text (jwt.h). */
static const unsigned char p256_n[32] = {
	0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84,
	0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
};
static const unsigned char p256_half_n[32] = {
	0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00,
	0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42,
	0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
};

int jws_es256_low_s(const unsigned char sig[JWS_SIG_LEN])
{
	return memcmp(sig + 32, p256_half_n, 32) <= 0;
}

/* s := n - s, in place (32 bytes big-endian, s < n). */
static void negate_s(unsigned char *s)
{
	int i, borrow = 0;

	for (i = 31; i >= 0; i--) {
		int d = (int)p256_n[i] - (int)s[i] - borrow;

		borrow = d < 0;
		s[i] = (unsigned char)(d + (borrow ? 256 : 0));
	}
}

/* JWS ES256 signatures are r||s (64 bytes); OpenSSL speaks DER. The
 * signature is made low-S here. */
static int der_to_raw(const unsigned char *der, size_t len, unsigned char *raw)
{
	const unsigned char *p = der;
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
	const BIGNUM *r, *s;
	int rc = -1;

	if (sig == NULL)
		return -1;
	ECDSA_SIG_get0(sig, &r, &s);
	if (BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32)
		rc = 0;
	ECDSA_SIG_free(sig);
	if (rc == 0 && !jws_es256_low_s(raw))
		negate_s(raw + 32);
	return rc;
}

static int raw_to_der(const unsigned char *raw, unsigned char *der,
    size_t *len)
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(raw, 32, NULL), *s = BN_bin2bn(raw + 32, 32, NULL);
	unsigned char *p = der;
	int n, rc = -1;

	if (sig == NULL || r == NULL || s == NULL)
		goto out;
	if (ECDSA_SIG_set0(sig, r, s) != 1)
		goto out;
	r = s = NULL;	/* owned by sig now */
	n = i2d_ECDSA_SIG(sig, NULL);
	if (n <= 0 || (size_t)n > *len)
		goto out;
	*len = (size_t)i2d_ECDSA_SIG(sig, &p);
	rc = 0;
out:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(sig);
	return rc;
}

/* b64url(header) "." b64url(claims) into a malloc'd buffer with room for
 * "." and the signature; *len is the signing input's length. */
static int signing_input(const struct jws_key *k, const char *typ,
    const char *claims, size_t claims_len, char **tok, size_t *len)
{
	char hdr[HDR_MAX];
	size_t hb, pb;
	int n;

	n = snprintf(hdr, sizeof(hdr),
	    "{\"alg\":\"%s\",\"typ\":\"%s\",\"kid\":\"%s\"}",
	    jws_alg_name(k->alg), typ, k->kid);
	if (n <= 0 || (size_t)n >= sizeof(hdr))
		return JWS_EINTERNAL;
	*tok = malloc(((size_t)n + 2) / 3 * 4 + (claims_len + 2) / 3 * 4 +
	    90 + 3);
	if (*tok == NULL)
		return JWS_EINTERNAL;
	hb = jws_b64url_encode((const unsigned char *)hdr, (size_t)n, *tok);
	(*tok)[hb] = '.';
	pb = jws_b64url_encode((const unsigned char *)claims, claims_len,
	    *tok + hb + 1);
	*len = hb + 1 + pb;
	return JWS_OK;
}

/*
 * ES256 signs a SHA-256 digest, so each thread keeps one EVP_PKEY_CTX set
 * up for its key and signs digests with it. EVP_DigestSignInit would fetch
 * the algorithm and build a context on every call, a cost each signature
 * pays, and at a million licenses nearly every validate signs
 * (lic_lease_until). EdDSA signs the message
 * itself, which only the one-shot EVP_DigestSign does. The context holds
 * a reference to its key, so a key freed elsewhere (a keyring reloaded)
 * lives on until the context is replaced, and its address cannot be
 * mistaken for a newer key's.
 */
static _Thread_local struct {
	EVP_PKEY *pkey;
	EVP_PKEY_CTX *ctx;
} jws_signer;
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

const EVP_MD *jws_sha256(void)
{
	pthread_once(&sha256_once, sha256_fetch);
	return sha256_md;
}

static EVP_PKEY_CTX *es256_ctx(EVP_PKEY *pkey)
{
	if (jws_signer.ctx != NULL && jws_signer.pkey == pkey)
		return jws_signer.ctx;
	EVP_PKEY_CTX_free(jws_signer.ctx);
	jws_signer.pkey = NULL;
	if ((jws_signer.ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey,
	    NULL)) == NULL)
		return NULL;
	if (EVP_PKEY_sign_init(jws_signer.ctx) != 1) {
		EVP_PKEY_CTX_free(jws_signer.ctx);
		jws_signer.ctx = NULL;
		return NULL;
	}
	jws_signer.pkey = pkey;
	return jws_signer.ctx;
}

/* The signature of msg as JWS wants it (ES256: r || s). 0 ok. */
static int sign_msg(const struct jws_key *k, const unsigned char *msg,
    size_t len, unsigned char raw[JWS_SIG_LEN])
{
	unsigned char der[128], md[32];
	size_t siglen = sizeof(der);
	unsigned int mdlen;
	EVP_PKEY_CTX *pctx;
	EVP_MD_CTX *ctx;
	int rc = -1;

	if (k->alg == JWS_EDDSA) {
		/* Into raw itself: its size, not der's, is the room given. */
		siglen = JWS_SIG_LEN;
		if ((ctx = EVP_MD_CTX_new()) == NULL)
			return -1;
		if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
		    EVP_DigestSign(ctx, raw, &siglen, msg, len) == 1 &&
		    siglen == JWS_SIG_LEN)
			rc = 0;
		EVP_MD_CTX_free(ctx);
		return rc;
	}
	if (jws_sha256() == NULL || (pctx = es256_ctx(k->pkey)) == NULL ||
	    EVP_Digest(msg, len, md, &mdlen, jws_sha256(), NULL) != 1 ||
	    EVP_PKEY_sign(pctx, der, &siglen, md, mdlen) != 1)
		return -1;
	return der_to_raw(der, siglen, raw);
}

int jws_sign_raw(const struct jws_keyring *kr, const char *typ,
    const char *claims, size_t claims_len, char **out,
    unsigned char sig[JWS_SIG_LEN])
{
	const struct jws_key *k = kr->signer;
	unsigned char raw[JWS_SIG_LEN];
	char *tok = NULL;
	size_t in;
	int rc;

	*out = NULL;
	if (k == NULL)
		return JWS_EKID;
	if ((rc = signing_input(k, typ, claims, claims_len, &tok, &in)) !=
	    JWS_OK)
		return rc;
	rc = JWS_EINTERNAL;
	if (sign_msg(k, (const unsigned char *)tok, in, raw) != 0)
		goto out;
	tok[in] = '.';
	jws_b64url_encode(raw, JWS_SIG_LEN, tok + in + 1);
	if (sig != NULL)
		memcpy(sig, raw, JWS_SIG_LEN);
	*out = tok;
	tok = NULL;
	rc = JWS_OK;
out:
	free(tok);
	ERR_clear_error();
	return rc;
}

int jws_sign(const struct jws_keyring *kr, const char *typ, const char *claims,
    size_t claims_len, char **out)
{
	return jws_sign_raw(kr, typ, claims, claims_len, out, NULL);
}

int jws_join(const struct jws_keyring *kr, const char *typ, const char *claims,
    size_t claims_len, const unsigned char sig[JWS_SIG_LEN], char **out)
{
	size_t in;
	int rc;

	*out = NULL;
	if (kr->signer == NULL)
		return JWS_EKID;
	if ((rc = signing_input(kr->signer, typ, claims, claims_len, out,
	    &in)) != JWS_OK)
		return rc;
	(*out)[in] = '.';
	jws_b64url_encode(sig, JWS_SIG_LEN, *out + in + 1);
	return JWS_OK;
}

/*
 * The EVP interface would set up OpenSSL's providers (most of libcrypto's
 * pages) for a digest; the low-level one, deprecated since OpenSSL 3.0
 * but kept, computes it directly.
 */
void jws_sha256_digest(const void *p, size_t n, unsigned char d[32])
{
	SHA256_CTX c;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	SHA256_Init(&c);
	SHA256_Update(&c, p, n);
	SHA256_Final(d, &c);
#pragma GCC diagnostic pop
}

/*
 * OpenSSL loads the text of every one of its error reasons into a table
 * at its first use, unless told not to first. licd never prints them (a
 * failure is logged as what licd was doing), and each process that uses
 * OpenSSL would carry the table and the pages it was read from.
 */
void jws_lib_init(void)
{
	OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS, NULL);
}

void jws_thread_end(void)
{
	if (jws_tok != NULL)
		json_tokener_free(jws_tok);
	jws_tok = NULL;
	EVP_PKEY_CTX_free(jws_signer.ctx);
	jws_signer.ctx = NULL;
	jws_signer.pkey = NULL;
}

static struct json_object *parse_part(const unsigned char *s, long len)
{
	struct json_object *o;

	if (jws_tok == NULL) {
		if ((jws_tok = json_tokener_new_ex(8)) == NULL)
			return NULL;
		json_tokener_set_flags(jws_tok,
		    JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	}
	json_tokener_reset(jws_tok);
	o = json_tokener_parse_ex(jws_tok, (const char *)s, (int)len);
	if (o == NULL)
		return NULL;
	if (json_tokener_get_error(jws_tok) != json_tokener_success ||
	    (long)jws_tok->char_offset != len ||
	    !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static const struct jws_key *find_key(const struct jws_keyring *kr,
    const char *kid)
{
	size_t i;

	for (i = 0; i < kr->n; i++)
		if (strcmp(kr->keys[i].kid, kid) == 0)
			return &kr->keys[i];
	return NULL;
}

const struct jws_key *jws_key_find(const struct jws_keyring *kr,
    const char *kid)
{
	return find_key(kr, kid);
}

const struct jws_key *jws_token_key(const struct jws_keyring *kr,
    const char *token, size_t len, const char *typ, char kid[JWS_KID_MAX])
{
	unsigned char hdrbuf[HDR_MAX];
	char hdr[HDR_MAX], enc[HDR_MAX * 4 / 3 + 4];
	struct json_object *h = NULL;
	const struct jws_key *k = NULL;
	const char *d1, *name;
	size_t i, hl;
	long n;
	int m;

	if (kid != NULL)
		kid[0] = '\0';
	if (len > JWS_MAX_TOKEN || (d1 = memchr(token, '.', len)) == NULL)
		return NULL;
	hl = (size_t)(d1 - token);
	/* The header as licd writes it: a comparison, nothing decoded. */
	for (i = 0; i < kr->n; i++) {
		/* a lazy key not parsed yet: found by its kid below */
		if (!atomic_load_explicit(&kr->keys[i].ready,
		    memory_order_acquire))
			continue;
		m = snprintf(hdr, sizeof(hdr),
		    "{\"alg\":\"%s\",\"typ\":\"%s\",\"kid\":\"%s\"}",
		    jws_alg_name(kr->keys[i].alg), typ, kr->keys[i].kid);
		if (m > 0 && (size_t)m < sizeof(hdr) &&
		    jws_b64url_encode((unsigned char *)hdr, (size_t)m, enc) ==
		    hl && memcmp(enc, token, hl) == 0) {
			if (kid != NULL)
				snprintf(kid, JWS_KID_MAX, "%s", kr->keys[i].kid);
			return &kr->keys[i];
		}
	}
	n = jws_b64url_decode(token, hl, hdrbuf, sizeof(hdrbuf));
	if (n <= 0 || (h = parse_part(hdrbuf, n)) == NULL)
		return NULL;
	if ((name = js_path_str(h, "kid")) != NULL && kid_ok(name)) {
		k = find_key(kr, name);
		if (kid != NULL)
			snprintf(kid, JWS_KID_MAX, "%s", name);
	}
	json_object_put(h);
	return k;
}

int jws_peek(const struct jws_keyring *kr, const char *token, size_t len,
    struct json_object **claims)
{
	unsigned char hdrbuf[HDR_MAX], payload[PAYLOAD_MAX];
	struct json_object *hdr = NULL;
	const char *d1, *d2, *kid;
	long hlen, plen;
	int rc = JWS_EMALFORMED;

	*claims = NULL;
	if (len == 0 || len > JWS_MAX_TOKEN ||
	    (d1 = memchr(token, '.', len)) == NULL ||
	    (d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token))) == NULL)
		return JWS_EMALFORMED;
	hlen = jws_b64url_decode(token, (size_t)(d1 - token), hdrbuf,
	    sizeof(hdrbuf));
	if (hlen <= 0 || (hdr = parse_part(hdrbuf, hlen)) == NULL)
		goto out;
	rc = JWS_EKID;
	if ((kid = js_path_str(hdr, "kid")) == NULL ||
	    find_key(kr, kid) == NULL)
		goto out;
	rc = JWS_EMALFORMED;
	plen = jws_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), payload,
	    sizeof(payload));
	if (plen <= 0 || (*claims = parse_part(payload, plen)) == NULL)
		goto out;
	rc = JWS_OK;
out:
	json_object_put(hdr);
	return rc;
}

int jws_verify(const struct jws_keyring *kr, const char *token, size_t len,
    const char *typ, struct json_object **claims,
    const struct jws_key **used)
{
	const char *d1, *d2, *alg, *kid, *t;
	unsigned char hdrbuf[HDR_MAX], sig[80], payload[PAYLOAD_MAX];
	unsigned char der[80];
	struct json_object *hdr = NULL, *body = NULL, *v;
	const struct jws_key *k = NULL;
	size_t derlen = sizeof(der);
	long hlen, plen, slen;
	EVP_MD_CTX *ctx = NULL;
	int rc = JWS_EMALFORMED;

	*claims = NULL;
	if (used != NULL)
		*used = NULL;
	if (len == 0 || len > JWS_MAX_TOKEN)
		return JWS_EMALFORMED;
	if ((d1 = memchr(token, '.', len)) == NULL)
		return JWS_EMALFORMED;
	if ((d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token))) == NULL)
		return JWS_EMALFORMED;
	if (memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)) != NULL)
		return JWS_EMALFORMED;
	hlen = jws_b64url_decode(token, (size_t)(d1 - token), hdrbuf,
	    sizeof(hdrbuf));
	if (hlen <= 0 || (hdr = parse_part(hdrbuf, hlen)) == NULL)
		goto out;
	/* The key, not the token, fixes the algorithm. */
	rc = JWS_EALG;
	if ((alg = js_path_str(hdr, "alg")) == NULL)
		goto out;
	if (json_object_object_get_ex(hdr, "crit", &v))
		goto out;	/* no extensions understood */
	rc = JWS_EKID;
	if ((kid = js_path_str(hdr, "kid")) == NULL ||
	    (k = find_key(kr, kid)) == NULL)
		goto out;
	rc = JWS_EINTERNAL;
	if (key_ready(k) != 0)
		goto out;
	rc = JWS_EALG;
	if (strcmp(alg, jws_alg_name(k->alg)) != 0)
		goto out;
	rc = JWS_ETYP;
	if ((t = js_path_str(hdr, "typ")) == NULL || strcmp(t, typ) != 0)
		goto out;
	rc = JWS_EMALFORMED;
	slen = jws_b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - token), sig,
	    sizeof(sig));
	if (slen != 64)
		goto out;
	rc = JWS_ESIG;
	if (k->alg == JWS_ES256 && !jws_es256_low_s(sig))
		goto out;
	rc = JWS_EINTERNAL;
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		goto out;
	if (k->alg == JWS_ES256) {
		if (raw_to_der(sig, der, &derlen) != 0)
			goto out;
	} else {
		memcpy(der, sig, 64);
		derlen = 64;
	}
	rc = JWS_ESIG;
	if (EVP_DigestVerifyInit(ctx, NULL, k->alg == JWS_EDDSA ? NULL :
	    EVP_sha256(), NULL, k->pkey) != 1 ||
	    EVP_DigestVerify(ctx, der, derlen, (const unsigned char *)token,
	    (size_t)(d2 - token)) != 1)
		goto out;
	rc = JWS_EMALFORMED;
	plen = jws_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), payload,
	    sizeof(payload));
	if (plen <= 0 || (body = parse_part(payload, plen)) == NULL)
		goto out;
	*claims = body;
	if (used != NULL)
		*used = k;
	rc = JWS_OK;
out:
	EVP_MD_CTX_free(ctx);
	json_object_put(hdr);
	ERR_clear_error();
	return rc;
}
