/*
 * bench_check: licd_check answering from a cached lease, on one core.
 * Prints calls per second, allocations per call after the first call, and
 * the resident memory the handle added, as one JSON line (tests/bench/
 * bench.sh reports it beside the server's figures). The lease and license
 * key are signed here with a throw-away Ed25519 key and arrive through the
 * transport callback, as from licd.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <malloc.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "licd.h"
#include "../tests/handle.h"

/* Every allocation in the process, the library's own and those json-c,
 * OpenSSL or libc make for it: these definitions take the place of libc's
 * for every shared library too (glibc allows replacing malloc), and hand
 * the work to glibc's allocator. */
static _Atomic long allocs;
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t a, size_t b);
void *__libc_realloc(void *p, size_t n);
void *__libc_memalign(size_t a, size_t n);
void __libc_free(void *p);
void *malloc(size_t n) { allocs++; return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { allocs++; return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { allocs++; return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }
void *memalign(size_t a, size_t n) { allocs++; return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { allocs++; return __libc_memalign(a, n); }
int posix_memalign(void **p, size_t a, size_t n)
{
	allocs++;
	*p = __libc_memalign(a, n);
	return *p != NULL ? 0 : ENOMEM;
}

static EVP_PKEY *key;
static const char *ISS = "https://bench.invalid", *LID =
    "11111111-2222-4333-8444-555555555555", *KID = "bench-key";

static void b64(const unsigned char *in, size_t n, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_";
	size_t i, o = 0;

	for (i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? in[i + 1] << 8 : 0)
		    | (i + 2 < n ? in[i + 2] : 0);

		out[o++] = a[v >> 18];
		out[o++] = a[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = a[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = a[v & 63];
	}
	out[o] = '\0';
}

static char *sign(const char *typ, const char *claims)
{
	char hdr[128], h64[256], *p64 = malloc(strlen(claims) * 2 + 8),
	    *tok = malloc(strlen(claims) * 2 + 512), s64[100];
	unsigned char sig[64];
	size_t sl = sizeof(sig);
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	snprintf(hdr, sizeof(hdr), "{\"alg\":\"EdDSA\",\"typ\":\"%s\",\"kid\":"
	    "\"%s\"}", typ, KID);
	b64((const unsigned char *)hdr, strlen(hdr), h64);
	b64((const unsigned char *)claims, strlen(claims), p64);
	sprintf(tok, "%s.%s", h64, p64);
	EVP_DigestSignInit(c, NULL, NULL, NULL, key);
	EVP_DigestSign(c, sig, &sl, (unsigned char *)tok, strlen(tok));
	EVP_MD_CTX_free(c);
	b64(sig, sl, s64);
	strcat(tok, ".");
	strcat(tok, s64);
	free(p64);
	return tok;
}

static int fake(void *arg, const char *url, const char *body, size_t len,
    long t, struct licd_response *r)
{
	const char *n = strstr(body, "\"nonce\":\"");
	char nonce[64] = "", claims[1024], *lease;
	long now = (long)time(NULL);

	(void)arg; (void)url; (void)len; (void)t;
	if (n != NULL)
		sscanf(n + 9, "%63[^\"]", nonce);
	snprintf(claims, sizeof(claims), "{\"iss\":\"%s\",\"sub\":\"%s\","
	    "\"iid\":\"bench-1\",\"lic\":\"pro\",\"feat\":[\"sso\",\"reports\","
	    "\"audit\",\"workflows\"],\"limits\":{\"installations\":3},"
	    "\"iat\":%ld,\"exp\":%ld,\"nonce\":\"%s\"}", ISS, LID, now,
	    now + 7 * 86400, nonce);
	lease = sign("lease+jwt", claims);
	r->status = 200;
	r->body = malloc(strlen(lease) + 64);
	sprintf(r->body, "{\"valid\":true,\"code\":\"VALID\",\"lease\":\"%s\"}",
	    lease);
	r->len = strlen(r->body);
	free(lease);
	return 0;
}

static long rss_kib(void)
{
	long pages = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f != NULL) {
		if (fscanf(f, "%ld %ld", &pages, &res) != 2)
			res = 0;
		fclose(f);
	}
	return res * (sysconf(_SC_PAGESIZE) / 1024);
}

int main(int argc, char **argv)
{
	struct licd_config cfg;
	struct licd_info in;
	struct timespec a, b;
	unsigned char raw[32];
	size_t rl = sizeof(raw);
	char x64[64], jwks[512], claims[512], *lkey, err[256],
	    dir[] = "/tmp/licd-bench-client.XXXXXX";
	long n = argc > 1 ? atol(argv[1]) : 20000000L, i, before, base, after,
	    in_calls;
	licd_t *h;
	double secs;
	volatile int sink = 0;

	/* One core: the figure is per core, whatever else the machine runs. */
	{
		cpu_set_t one;

		CPU_ZERO(&one);
		CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &one);
		sched_setaffinity(0, sizeof(one), &one);
	}
	key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	EVP_PKEY_get_raw_public_key(key, raw, &rl);
	b64(raw, rl, x64);
	snprintf(jwks, sizeof(jwks), "{\"keys\":[{\"kty\":\"OKP\",\"crv\":"
	    "\"Ed25519\",\"kid\":\"%s\",\"x\":\"%s\"}]}", KID, x64);
	snprintf(claims, sizeof(claims), "{\"iss\":\"%s\",\"sub\":\"%s\","
	    "\"lic\":\"pro\",\"iat\":%ld}", ISS, LID, (long)time(NULL));
	lkey = sign("JWT", claims);
	if (mkdtemp(dir) == NULL)
		return 1;
	base = rss_kib();
	lt_config(&cfg, ISS, jwks, lkey, "bench-1", dir, fake);
	if (licd_open(&cfg, &h, err, sizeof(err)) != 0 ||
	    licd_refresh(h, &in) != 0 || in.status != LICD_VALID) {
		fprintf(stderr, "bench_check: set-up failed: %s\n", err);
		return 1;
	}
	licd_check(h, "audit", &in);		/* the first call */
	before = allocs;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (i = 0; i < n; i++)
		sink += licd_check(h, (i & 1) ? "audit" : NULL, &in);
	clock_gettime(CLOCK_MONOTONIC, &b);
	in_calls = allocs - before;
	after = rss_kib();
	secs = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
	printf("{\"what\":\"licd_check from a cached lease, one thread\","
	    "\"calls\":%ld,\"calls_per_s\":%.0f,\"ns_per_call\":%.1f,"
	    "\"allocs_per_call\":%.3f,\"allocs_in_calls\":%ld,"
	    "\"allocs_to_open\":%ld,"
	    "\"resident_added_kib\":%ld,\"status\":\"%s\"}\n", n, n / secs,
	    secs * 1e9 / n, (double)in_calls / n, in_calls,
	    before, after - base,
	    licd_status_name(in.status));
	licd_close(h);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			return 1;
	}
	free(lkey);
	EVP_PKEY_free(key);
	return sink < 0;
}
