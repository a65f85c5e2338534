/* sig: see sig.h. */
#include "sig.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

const char *sig_strerror(int status)
{
	switch (status) {
	case SIG_OK: return "ok";
	case SIG_EMISSING: return "signature header missing";
	case SIG_EMALFORMED: return "signature header malformed";
	case SIG_ESTALE: return "signature timestamp outside tolerance";
	default: return "signature does not match";
	}
}

static int is_hex64(const char *s, size_t n)
{
	size_t i;

	if (n != SIG_HEX_LEN)
		return 0;
	for (i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

int sig_parse(enum sig_scheme scheme, const char *header, struct sig_header *h)
{
	const char sep = scheme == SIG_STRIPE ? ',' : ';';
	const char *tkey = scheme == SIG_STRIPE ? "t" : "ts";
	const char *vkey = scheme == SIG_STRIPE ? "v1" : "h1";
	const char *p = header, *end, *eq;
	int have_ts = 0;

	memset(h, 0, sizeof(*h));
	if (header == NULL || *header == '\0')
		return SIG_EMISSING;
	if (strlen(header) > 4096)
		return SIG_EMALFORMED;
	while (*p != '\0') {
		size_t klen, vlen;

		while (*p == ' ')
			p++;
		end = strchr(p, sep);
		if (end == NULL)
			end = p + strlen(p);
		eq = memchr(p, '=', (size_t)(end - p));
		if (eq == NULL)
			return SIG_EMALFORMED;
		klen = (size_t)(eq - p);
		vlen = (size_t)(end - eq - 1);
		if (klen == strlen(tkey) && strncmp(p, tkey, klen) == 0) {
			char buf[24], *e;
			long long v;

			if (have_ts || vlen == 0 || vlen >= sizeof(buf))
				return SIG_EMALFORMED;
			memcpy(buf, eq + 1, vlen);
			buf[vlen] = '\0';
			if (!isdigit((unsigned char)buf[0]))
				return SIG_EMALFORMED;
			errno = 0;
			v = strtoll(buf, &e, 10);
			if (errno != 0 || *e != '\0')
				return SIG_EMALFORMED;
			h->ts = v;
			have_ts = 1;
		} else if (klen == strlen(vkey) && strncmp(p, vkey, klen) == 0 &&
		    is_hex64(eq + 1, vlen) && h->ncand < SIG_MAX_CANDIDATES) {
			memcpy(h->cand[h->ncand], eq + 1, vlen);
			h->cand[h->ncand][vlen] = '\0';
			h->ncand++;
		}
		p = *end ? end + 1 : end;
	}
	if (!have_ts || h->ncand == 0)
		return SIG_EMALFORMED;
	return SIG_OK;
}

/* HMAC-SHA256(secret, ts + sep + body) */
static int mac(const char *secret, size_t slen, long long ts, char sep,
    const char *body, size_t len, unsigned char out[32])
{
	EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = NULL;
	OSSL_PARAM params[2];
	char prefix[32];
	size_t outlen = 0;
	int n, rc = -1;

	if (m == NULL || (ctx = EVP_MAC_CTX_new(m)) == NULL)
		goto out;
	params[0] = OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	n = snprintf(prefix, sizeof(prefix), "%lld%c", ts, sep);
	if (EVP_MAC_init(ctx, (const unsigned char *)secret, slen, params) != 1 ||
	    EVP_MAC_update(ctx, (const unsigned char *)prefix, (size_t)n) != 1 ||
	    EVP_MAC_update(ctx, (const unsigned char *)body, len) != 1 ||
	    EVP_MAC_final(ctx, out, &outlen, 32) != 1 || outlen != 32)
		goto out;
	rc = 0;
out:
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(m);
	return rc;
}

int sig_sign(const char *secret, long long ts, const char *body, size_t len,
    char out[SIG_HEX_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char m[32];
	int i;

	if (mac(secret, strlen(secret), ts, '.', body, len, m) != 0)
		return -1;
	for (i = 0; i < 32; i++) {
		out[2 * i] = hex[m[i] >> 4];
		out[2 * i + 1] = hex[m[i] & 15];
	}
	out[SIG_HEX_LEN] = '\0';
	return 0;
}

int sig_verify(enum sig_scheme scheme, const char *header, const char *secrets,
    const char *body, size_t len, time_t now, long tolerance)
{
	struct sig_header h;
	const char *s = secrets, *end;
	unsigned char want[32], got[32];
	size_t glen;
	int st, i, match = 0;

	if ((st = sig_parse(scheme, header, &h)) != SIG_OK)
		return st;
	if (h.ts > (long long)now + tolerance || h.ts < (long long)now - tolerance)
		return SIG_ESTALE;
	while (s != NULL && *s != '\0') {
		size_t n;

		while (*s == ' ' || *s == ',')
			s++;
		end = strchr(s, ',');
		n = end ? (size_t)(end - s) : strlen(s);
		while (n > 0 && s[n - 1] == ' ')
			n--;
		if (n > 0 && mac(s, n, h.ts, scheme == SIG_STRIPE ? '.' : ':',
		    body, len, want) == 0) {
			/* Try everything: no early exit on a match. */
			for (i = 0; i < h.ncand; i++)
				if (OPENSSL_hexstr2buf_ex(got, sizeof(got), &glen,
				    h.cand[i], '\0') && glen == sizeof(got) &&
				    CRYPTO_memcmp(want, got, 32) == 0)
					match = 1;
		}
		s = end ? end + 1 : NULL;
	}
	OPENSSL_cleanse(want, sizeof(want));
	return match ? SIG_OK : SIG_EMISMATCH;
}
