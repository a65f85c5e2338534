/* Webhook signature headers and verification (Stripe and Paddle). */
#include "sig.h"
#include "unit.h"

#include <stdio.h>
#include <string.h>

#include <openssl/hmac.h>

static void hexmac(const char *secret, const char *msg, char out[65])
{
	unsigned char d[32];
	unsigned int n = 0;
	int i;

	HMAC(EVP_sha256(), secret, (int)strlen(secret),
	    (const unsigned char *)msg, strlen(msg), d, &n);
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void test_parse(void)
{
	struct sig_header h;
	const char *v = "5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd";
	char hdr[512];

	snprintf(hdr, sizeof(hdr), "t=1492774577,v1=%s,v0=%s", v, v);
	CHECK(sig_parse(SIG_STRIPE, hdr, &h) == SIG_OK && h.ts == 1492774577 &&
	    h.ncand == 1);
	snprintf(hdr, sizeof(hdr), "t=1,v1=%s,v1=%s", v, v);
	CHECK(sig_parse(SIG_STRIPE, hdr, &h) == SIG_OK && h.ncand == 2);
	CHECK(sig_parse(SIG_STRIPE, NULL, &h) == SIG_EMISSING);
	CHECK(sig_parse(SIG_STRIPE, "", &h) == SIG_EMISSING);
	CHECK(sig_parse(SIG_STRIPE, "garbage", &h) == SIG_EMALFORMED);
	CHECK(sig_parse(SIG_STRIPE, "t=123", &h) == SIG_EMALFORMED);
	snprintf(hdr, sizeof(hdr), "v1=%s", v);
	CHECK(sig_parse(SIG_STRIPE, hdr, &h) == SIG_EMALFORMED);
	snprintf(hdr, sizeof(hdr), "t=abc,v1=%s", v);
	CHECK(sig_parse(SIG_STRIPE, hdr, &h) == SIG_EMALFORMED);
	snprintf(hdr, sizeof(hdr), "t=-5,v1=%s", v);
	CHECK(sig_parse(SIG_STRIPE, hdr, &h) == SIG_EMALFORMED);
	snprintf(hdr, sizeof(hdr), "t=1,t=2,v1=%s", v);
	CHECK(sig_parse(SIG_STRIPE, hdr, &h) == SIG_EMALFORMED);
	CHECK(sig_parse(SIG_STRIPE, "t=1,v1=abc", &h) == SIG_EMALFORMED);
	snprintf(hdr, sizeof(hdr), "t=99999999999999999999999,v1=%s", v);
	CHECK(sig_parse(SIG_STRIPE, hdr, &h) == SIG_EMALFORMED);
	snprintf(hdr, sizeof(hdr), "ts=1671552777;h1=%s", v);
	CHECK(sig_parse(SIG_PADDLE, hdr, &h) == SIG_OK && h.ts == 1671552777);
	CHECK(sig_parse(SIG_STRIPE, hdr, &h) == SIG_EMALFORMED);
}

static void test_verify(void)
{
	const char *body = "{\"id\":\"evt_1\"}";
	char msg[256], mac[65], other[65], hdr[512];
	time_t now = 1700000000;

	snprintf(msg, sizeof(msg), "%lld.%s", (long long)now, body);
	hexmac("whsec_b", msg, mac);
	hexmac("whsec_x", msg, other);
	snprintf(hdr, sizeof(hdr), "t=%lld,v1=%s", (long long)now, mac);
	CHECK(sig_verify(SIG_STRIPE, hdr, "whsec_b", body, strlen(body), now,
	    300) == SIG_OK);
	/* rotation: any configured secret */
	CHECK(sig_verify(SIG_STRIPE, hdr, "whsec_a, whsec_b", body,
	    strlen(body), now, 300) == SIG_OK);
	CHECK(sig_verify(SIG_STRIPE, hdr, "whsec_a", body, strlen(body), now,
	    300) == SIG_EMISMATCH);
	CHECK(sig_verify(SIG_STRIPE, hdr, "", body, strlen(body), now, 300) ==
	    SIG_EMISMATCH);
	/* any of several v1 values */
	snprintf(hdr, sizeof(hdr), "t=%lld,v1=%s,v1=%s", (long long)now, other,
	    mac);
	CHECK(sig_verify(SIG_STRIPE, hdr, "whsec_b", body, strlen(body), now,
	    300) == SIG_OK);
	/* body altered after signing */
	CHECK(sig_verify(SIG_STRIPE, hdr, "whsec_b", "{\"id\":\"evt_2\"}", 14,
	    now, 300) == SIG_EMISMATCH);
	/* tolerance both ways */
	CHECK(sig_verify(SIG_STRIPE, hdr, "whsec_b", body, strlen(body),
	    now + 301, 300) == SIG_ESTALE);
	CHECK(sig_verify(SIG_STRIPE, hdr, "whsec_b", body, strlen(body),
	    now - 301, 300) == SIG_ESTALE);
	CHECK(sig_verify(SIG_STRIPE, hdr, "whsec_b", body, strlen(body),
	    now + 300, 300) == SIG_OK);
	/* Paddle: ts:body */
	snprintf(msg, sizeof(msg), "%lld:%s", (long long)now, body);
	hexmac("pdl", msg, mac);
	snprintf(hdr, sizeof(hdr), "ts=%lld;h1=%s", (long long)now, mac);
	CHECK(sig_verify(SIG_PADDLE, hdr, "pdl", body, strlen(body), now, 300)
	    == SIG_OK);
	CHECK(sig_verify(SIG_STRIPE, hdr, "pdl", body, strlen(body), now, 300)
	    == SIG_EMALFORMED);
}

int main(void)
{
	test_parse();
	test_verify();
	UNIT_DONE("sig");
}
