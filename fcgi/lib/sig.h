/*
 * sig: payment-provider webhook signatures, verified over the raw body
 * before anything parses it. Stripe: "Stripe-Signature: t=…,v1=…[,v1=…]",
 * HMAC-SHA256 over "t.body". Paddle: "Paddle-Signature: ts=…;h1=…",
 * HMAC-SHA256 over "ts:body". Every candidate signature is tried against
 * every configured secret (rotation) with CRYPTO_memcmp.
 */
#ifndef LICD_SIG_H
#define LICD_SIG_H

#include <stddef.h>
#include <time.h>

#define SIG_MAX_CANDIDATES 8
#define SIG_HEX_LEN 64

enum sig_scheme { SIG_STRIPE, SIG_PADDLE };

enum sig_status {
	SIG_OK = 0,
	SIG_EMISSING = -1,	/* no header */
	SIG_EMALFORMED = -2,	/* unparsable header, no timestamp or no v1/h1 */
	SIG_ESTALE = -3,	/* timestamp outside the tolerance (past or future) */
	SIG_EMISMATCH = -4,	/* no candidate matches any secret */
};

struct sig_header {
	long long ts;
	char cand[SIG_MAX_CANDIDATES][SIG_HEX_LEN + 1];
	int ncand;
};

/* Parses a header of the given scheme. Unknown keys (e.g. Stripe's v0)
 * are skipped; candidates that are not 64 hex chars are dropped. */
int sig_parse(enum sig_scheme scheme, const char *header, struct sig_header *h);

/* Full check: parse, tolerance (|now - ts| <= tolerance), HMAC match
 * against the comma-separated secrets. */
int sig_verify(enum sig_scheme scheme, const char *header, const char *secrets,
    const char *body, size_t len, time_t now, long tolerance);

/* sig_verify's status in words, for the log. */
const char *sig_strerror(int status);

/* Signs an outgoing body the Stripe way, for licd's own notification
 * webhooks: out = hex HMAC-SHA256(secret, "ts.body"). 0 or -1. */
int sig_sign(const char *secret, long long ts, const char *body, size_t len,
    char out[SIG_HEX_LEN + 1]);

#endif
