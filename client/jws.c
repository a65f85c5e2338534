/*
 * jws: the embedded key set and lease verification. The token never picks
 * the algorithm: its kid must name an embedded key, and that key's type
 * fixes the one algorithm accepted (ES256 for P-256, EdDSA for Ed25519),
 * so "none", HS256 keyed with a public key and any other alg fail.
 */
#include <string.h>
#include <strings.h>
#include <stdlib.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/bn.h>
#include <openssl/param_build.h>

#include "internal.h"

static const signed char b64v[256] = {
	['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6,
	['G'] = 7, ['H'] = 8, ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12,
	['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18,
	['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
	['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30,
	['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
	['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42,
	['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
	['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54,
	['2'] = 55, ['3'] = 56, ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60,
	['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
};

/* Unpadded base64url; a length of 1 mod 4 and non-zero leftover bits are
 * refused, so every value has one encoding. */
long lcl_b64url_decode(const char *in, size_t n, unsigned char *out,
    size_t cap)
{
	size_t i, o = 0;
	unsigned acc = 0;
	int bits = 0;

	if (n % 4 == 1)
		return -1;
	for (i = 0; i < n; i++) {
		int v = b64v[(unsigned char)in[i]];

		if (v == 0)
			return -1;
		acc = (acc << 6) | (unsigned)(v - 1);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= cap)
				return -1;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)
		return -1;
	return (long)o;
}

size_t lcl_b64url_encode(const unsigned char *in, size_t n, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_";
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		out[o++] = a[in[i] >> 2];
		out[o++] = a[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		out[o++] = a[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
		out[o++] = a[in[i + 2] & 63];
	}
	if (n - i == 1) {
		out[o++] = a[in[i] >> 2];
		out[o++] = a[(in[i] & 3) << 4];
	} else if (n - i == 2) {
		out[o++] = a[in[i] >> 2];
		out[o++] = a[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		out[o++] = a[(in[i + 1] & 15) << 2];
	}
	out[o] = '\0';
	return o;
}

static const char *jstr(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, k, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int b64_field(struct json_object *jwk, const char *k,
    unsigned char *out, size_t want)
{
	const char *s = jstr(jwk, k);

	return s != NULL && lcl_b64url_decode(s, strlen(s), out, want) ==
	    (long)want ? 0 : -1;
}

static EVP_PKEY *ec_key(struct json_object *jwk)
{
	unsigned char pub[65];
	OSSL_PARAM_BLD *b = NULL;
	OSSL_PARAM *p = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *k = NULL;

	pub[0] = 0x04;
	if (b64_field(jwk, "x", pub + 1, 32) != 0 ||
	    b64_field(jwk, "y", pub + 33, 32) != 0)
		return NULL;
	if ((b = OSSL_PARAM_BLD_new()) == NULL ||
	    !OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME,
	    "P-256", 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pub,
	    sizeof(pub)) ||
	    (p = OSSL_PARAM_BLD_to_param(b)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, p) != 1)
		k = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(p);
	OSSL_PARAM_BLD_free(b);
	if (k != NULL) {
		/* fromdata does not check that the point is on the curve. */
		EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(k, NULL);

		if (c == NULL || EVP_PKEY_public_check(c) != 1) {
			EVP_PKEY_free(k);
			k = NULL;
		}
		EVP_PKEY_CTX_free(c);
	}
	return k;
}

void lcl_keys_free(struct lcl_keys *ks)
{
	size_t i;

	for (i = 0; i < ks->n; i++)
		EVP_PKEY_free(ks->k[i].pkey);
	free(ks->k);
	ks->k = NULL;
	ks->n = 0;
}

int lcl_keys_parse(const char *jwks, struct lcl_keys *ks, char *err,
    size_t errlen)
{
	struct json_object *doc = NULL, *arr, *jwk;
	size_t i, n;
	int rc = -1;

	ks->k = NULL;
	ks->n = 0;
	if (jwks == NULL || (doc = json_tokener_parse(jwks)) == NULL ||
	    !json_object_object_get_ex(doc, "keys", &arr) ||
	    !json_object_is_type(arr, json_type_array)) {
		snprintf(err, errlen, "embedded JWKS is not {\"keys\":[...]}");
		goto out;
	}
	n = json_object_array_length(arr);
	if ((ks->k = calloc(n ? n : 1, sizeof(*ks->k))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		const char *kty, *crv, *kid, *alg;
		struct lcl_key *k = &ks->k[ks->n];
		size_t j;

		jwk = json_object_array_get_idx(arr, i);
		if (!json_object_is_type(jwk, json_type_object))
			continue;
		kty = jstr(jwk, "kty");
		crv = jstr(jwk, "crv");
		kid = jstr(jwk, "kid");
		alg = jstr(jwk, "alg");
		if (kty == NULL || crv == NULL)
			continue;
		if (strcmp(kty, "EC") == 0 && strcmp(crv, "P-256") == 0)
			k->alg = LCL_ES256;
		else if (strcmp(kty, "OKP") == 0 && strcmp(crv, "Ed25519") == 0)
			k->alg = LCL_EDDSA;
		else
			continue;
		if (kid == NULL || kid[0] == '\0' || strlen(kid) >= sizeof(k->kid)) {
			snprintf(err, errlen, "embedded key %zu has no usable kid", i);
			goto out;
		}
		if (alg != NULL && strcmp(alg, k->alg == LCL_ES256 ? "ES256" :
		    "EdDSA") != 0) {
			snprintf(err, errlen, "embedded key %s: alg %s does not fit "
			    "its type", kid, alg);
			goto out;
		}
		for (j = 0; j < ks->n; j++)
			if (strcmp(ks->k[j].kid, kid) == 0) {
				snprintf(err, errlen, "embedded kid %s twice", kid);
				goto out;
			}
		if (k->alg == LCL_ES256) {
			k->pkey = ec_key(jwk);
		} else {
			unsigned char x[32];

			k->pkey = b64_field(jwk, "x", x, 32) == 0 ?
			    EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x,
			    32) : NULL;
		}
		if (k->pkey == NULL) {
			snprintf(err, errlen, "embedded key %s is not a valid "
			    "public key", kid);
			goto out;
		}
		memcpy(k->kid, kid, strlen(kid) + 1);
		ks->n++;
	}
	if (ks->n == 0) {
		snprintf(err, errlen, "embedded JWKS has no ES256 or EdDSA key");
		goto out;
	}
	rc = 0;
out:
	if (rc != 0)
		lcl_keys_free(ks);
	json_object_put(doc);
	return rc;
}

static int verify_sig(const struct lcl_key *k, const unsigned char *msg,
    size_t mlen, const unsigned char *sig, size_t slen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char der[80], *p = der;
	const unsigned char *s = sig;
	size_t s_len = slen;
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *sv = NULL;
	int ok = 0, n;

	if (ctx == NULL || slen != 64)
		goto out;
	if (k->alg == LCL_ES256) {
		/* JWS carries r||s; OpenSSL verifies DER. */
		if ((es = ECDSA_SIG_new()) == NULL ||
		    (r = BN_bin2bn(sig, 32, NULL)) == NULL ||
		    (sv = BN_bin2bn(sig + 32, 32, NULL)) == NULL ||
		    ECDSA_SIG_set0(es, r, sv) != 1)
			goto out;
		r = sv = NULL;
		n = i2d_ECDSA_SIG(es, NULL);
		if (n <= 0 || (size_t)n > sizeof(der))
			goto out;
		i2d_ECDSA_SIG(es, &p);
		s = der;
		s_len = (size_t)n;
		ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL,
		    k->pkey) == 1 && EVP_DigestVerify(ctx, s, s_len, msg,
		    mlen) == 1;
	} else {
		ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
		    EVP_DigestVerify(ctx, s, s_len, msg, mlen) == 1;
	}
out:
	BN_free(r);
	BN_free(sv);
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(ctx);
	return ok;
}

static struct json_object *parse_obj(const unsigned char *s, size_t n)
{
	struct json_tokener *t = json_tokener_new();
	struct json_object *o;

	if (t == NULL)
		return NULL;
	o = json_tokener_parse_ex(t, (const char *)s, (int)n);
	if (o != NULL && (json_tokener_get_error(t) != json_tokener_success ||
	    t->char_offset != (int)n || !json_object_is_type(o,
	    json_type_object))) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(t);
	return o;
}

int lcl_jws_verify(const struct lcl_keys *ks, const char *tok, size_t len,
    const char *typ, struct json_object **claims, const char **why)
{
	const char *d1, *d2, *alg, *kid, *t;
	unsigned char *buf = NULL, sig[66];
	struct json_object *hdr = NULL, *pl = NULL;
	const struct lcl_key *k = NULL;
	long hn, pn, sn;
	size_t i;
	int rc = -1;

	*claims = NULL;
	*why = "not a compact JWS";
	if (tok == NULL || len == 0 || len > LCL_MAX_TOKEN ||
	    memchr(tok, '\0', len) != NULL)
		goto out;
	d1 = memchr(tok, '.', len);
	d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
	if (d1 == NULL || d2 == NULL ||
	    memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)) != NULL)
		goto out;
	if ((buf = malloc(len)) == NULL)
		goto out;
	hn = lcl_b64url_decode(tok, (size_t)(d1 - tok), buf, len);
	if (hn <= 0 || (hdr = parse_obj(buf, (size_t)hn)) == NULL)
		goto out;
	alg = jstr(hdr, "alg");
	kid = jstr(hdr, "kid");
	t = jstr(hdr, "typ");
	*why = "unknown kid (not an embedded key)";
	for (i = 0; kid != NULL && i < ks->n; i++)
		if (strcmp(ks->k[i].kid, kid) == 0)
			k = &ks->k[i];
	if (k == NULL)
		goto out;
	*why = "alg is not the algorithm of the kid's key";
	if (alg == NULL || strcmp(alg, k->alg == LCL_ES256 ? "ES256" :
	    "EdDSA") != 0)
		goto out;
	*why = "wrong typ";
	if (t == NULL || strcasecmp(t, typ) != 0)
		goto out;
	/* Refuse header parameters that would change how the token is read. */
	*why = "unsupported header parameter";
	{
		struct json_object *v;

		if (json_object_object_get_ex(hdr, "crit", &v) ||
		    json_object_object_get_ex(hdr, "b64", &v) ||
		    json_object_object_get_ex(hdr, "jku", &v) ||
		    json_object_object_get_ex(hdr, "jwk", &v) ||
		    json_object_object_get_ex(hdr, "x5u", &v))
			goto out;
	}
	*why = "bad signature";
	sn = lcl_b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - tok), sig,
	    sizeof(sig));
	if (sn != 64 || !verify_sig(k, (const unsigned char *)tok,
	    (size_t)(d2 - tok), sig, (size_t)sn))
		goto out;
	*why = "payload is not a JSON object";
	pn = lcl_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), buf, len);
	if (pn <= 0 || (pl = parse_obj(buf, (size_t)pn)) == NULL)
		goto out;
	*claims = pl;
	*why = NULL;
	rc = 0;
out:
	json_object_put(hdr);
	free(buf);
	return rc;
}

static int jint(struct json_object *o, const char *k, int64_t *v)
{
	struct json_object *x;

	if (!json_object_object_get_ex(o, k, &x) ||
	    !json_object_is_type(x, json_type_int))
		return -1;
	*v = json_object_get_int64(x);
	return 0;
}

static int copy_str(char *dst, size_t cap, const char *s)
{
	size_t n;

	if (s == NULL || (n = strlen(s)) >= cap)
		return -1;
	memcpy(dst, s, n + 1);
	return 0;
}

static int str_array(struct json_object *a, char ***out, size_t *n)
{
	size_t i, len = json_object_array_length(a);

	*out = calloc(len ? len : 1, sizeof(char *));
	*n = 0;
	if (*out == NULL)
		return -1;
	for (i = 0; i < len; i++) {
		struct json_object *v = json_object_array_get_idx(a, i);

		if (!json_object_is_type(v, json_type_string) ||
		    ((*out)[i] = strdup(json_object_get_string(v))) == NULL)
			return -1;
		*n = i + 1;
	}
	return 0;
}

void lcl_lease_free(struct lcl_lease *l)
{
	size_t i;

	free(l->token);
	for (i = 0; i < l->nfeat; i++)
		free(l->feat[i]);
	free(l->feat);
	for (i = 0; i < l->nlimits; i++)
		free(l->limits[i].name);
	free(l->limits);
	for (i = 0; i < l->ndomains; i++)
		free(l->domains[i]);
	free(l->domains);
	memset(l, 0, sizeof(*l));
}

int lcl_lease_verify(const struct lcl_keys *ks, const char *token,
    const struct lcl_expect *e, struct lcl_lease *l, const char **why)
{
	struct json_object *c = NULL, *v;
	const char *s;
	int rc = -1;

	memset(l, 0, sizeof(*l));
	if (token == NULL) {
		*why = "no lease";
		return -1;
	}
	if (lcl_jws_verify(ks, token, strlen(token), "lease+jwt", &c, why) != 0)
		return -1;
	*why = "iss is not the embedded issuer";
	if ((s = jstr(c, "iss")) == NULL || strcmp(s, e->issuer) != 0)
		goto out;
	*why = "lease is for another license";
	if (copy_str(l->sub, sizeof(l->sub), jstr(c, "sub")) != 0 ||
	    (e->sub != NULL && strcmp(l->sub, e->sub) != 0))
		goto out;
	*why = "lease is for another installation";
	if (copy_str(l->iid, sizeof(l->iid), jstr(c, "iid")) != 0 ||
	    (e->iid != NULL && strcmp(l->iid, e->iid) != 0))
		goto out;
	*why = "lease lacks iat or exp";
	if (jint(c, "iat", &l->iat) != 0 || jint(c, "exp", &l->exp) != 0 ||
	    l->exp <= l->iat)
		goto out;
	*why = "lease nonce is not the one sent";
	s = jstr(c, "nonce");
	if (s != NULL && copy_str(l->nonce, sizeof(l->nonce), s) != 0)
		goto out;
	if (e->nonce != NULL && (s == NULL || strcmp(s, e->nonce) != 0))
		goto out;
	*why = "lease has expired";
	if (e->now_min != 0 && l->exp <= e->now_min)
		goto out;
	*why = "lease claims malformed";
	if ((s = jstr(c, "lic")) != NULL &&
	    copy_str(l->plan, sizeof(l->plan), s) != 0)
		goto out;
	if (json_object_object_get_ex(c, "feat", &v) &&
	    (!json_object_is_type(v, json_type_array) ||
	    str_array(v, &l->feat, &l->nfeat) != 0))
		goto out;
	if (json_object_object_get_ex(c, "limits", &v) &&
	    !json_object_is_type(v, json_type_null)) {
		size_t n = 0;

		if (!json_object_is_type(v, json_type_object))
			goto out;
		l->limits = calloc((size_t)json_object_object_length(v) + 1,
		    sizeof(*l->limits));
		if (l->limits == NULL)
			goto out;
		json_object_object_foreach(v, key, val) {
			if (!json_object_is_type(val, json_type_int))
				continue;	/* not a count: not a limit */
			if ((l->limits[n].name = strdup(key)) == NULL)
				goto out;
			l->limits[n++].v = json_object_get_int64(val);
			l->nlimits = n;
		}
	}
	/* Claims added for offline decisions (docs/API.md); older leases
	 * lack them and read as unknown. */
	if (json_object_object_get_ex(c, "license_exp", &v) &&
	    !json_object_is_type(v, json_type_null) &&
	    jint(c, "license_exp", &l->license_end) != 0)
		goto out;
	if (json_object_object_get_ex(c, "grace_until", &v) &&
	    !json_object_is_type(v, json_type_null) &&
	    jint(c, "grace_until", &l->grace_until) != 0)
		goto out;
	if (json_object_object_get_ex(c, "domain_restrictions", &v) &&
	    !json_object_is_type(v, json_type_null)) {
		if (!json_object_is_type(v, json_type_array) ||
		    str_array(v, &l->domains, &l->ndomains) != 0)
			goto out;
		l->has_domains = 1;
	}
	if ((l->token = strdup(token)) == NULL)
		goto out;
	*why = NULL;
	rc = 0;
out:
	json_object_put(c);
	if (rc != 0)
		lcl_lease_free(l);
	return rc;
}

static size_t host_len(const char *h)
{
	size_t n = strlen(h);

	return n > 0 && h[n - 1] == '.' ? n - 1 : n;
}

int lcl_domain_match(const char *pattern, const char *host)
{
	size_t pn = host_len(pattern), hn = host_len(host);

	if (pn == 0 || hn == 0)
		return 0;
	if (pn > 2 && pattern[0] == '*' && pattern[1] == '.') {
		/* "*.x": any depth below x, never x itself. */
		size_t sn = pn - 1;	/* ".x" */

		return hn > sn && strncasecmp(host + hn - sn, pattern + 1,
		    sn) == 0;
	}
	return pn == hn && strncasecmp(pattern, host, pn) == 0;
}
