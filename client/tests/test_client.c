/*
 * liblicd-client unit tests (ASan+UBSan; valgrind clean). Leases come
 * from the server's own signer (fcgi/lib's lic_lease, linked into this
 * test only) and from PyJWT (vectors.json, client/tests/make_vectors.py);
 * the network is an in-process fake licd behind the transport callback;
 * time is injected.
 */
/* Test paths and buffers are sized for the test; truncation is not a
 * concern here. */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "internal.h"
#include "handle.h"
#include "keyfile.h"
#include "lic.h"		/* the server's signer: test vectors only */
#include "unit.h"

#define ISS "https://licd.test"
#define LID "11111111-2222-4333-8444-555555555555"

static int64_t t_wall = 1800000000, t_mono = 1000;
static int64_t clk_wall(void *a) { (void)a; return t_wall; }
static int64_t clk_mono(void *a) { (void)a; return t_mono; }

static char keydir[256], statedir[256], *jwks_text, *license_key;

/* ---- the fake licd ---- */

struct fake {
	int down;
	const char *code;		/* answer code, "VALID" by default */
	int mangle;			/* see answer() */
	int64_t now;			/* licd's clock */
	char last[16384];		/* the last answer, for replays */
	int replay;
	int calls;
	char keys[64][40];
	int nkeys, usage_calls;
	long long counted;
	char order[64][16];		/* features in arrival order */
	int norder;
	struct lic l;
	/* Floating seats: seat_ttl > 0 answers as a floating license. */
	long seat_ttl;
	int max_borrow, overdraft, checkins, released, node_locked;
	long long borrowed_until;
};

static struct fake F;

enum { M_NONE, M_NONCE, M_ALG_NONE, M_OTHER_IID, M_KEY_AS_LEASE, M_HS256,
	M_EXPIRED, M_GARBAGE };

static void answer_lease(struct json_object *req, char *out, size_t cap)
{
	struct json_object *v;
	const char *iid = "", *nonce = NULL;
	char *lease = NULL;
	time_t exp;

	if (json_object_object_get_ex(req, "installation_id", &v))
		iid = json_object_get_string(v);
	if (json_object_object_get_ex(req, "nonce", &v))
		nonce = json_object_get_string(v);
	if (F.code != NULL && strcmp(F.code, "VALID") != 0) {
		snprintf(out, cap, "{\"valid\":false,\"code\":\"%s\"}", F.code);
		return;
	}
	if (F.mangle == M_NONCE)
		nonce = "not-the-nonce-sent";
	if (F.mangle == M_OTHER_IID)
		iid = "someone-else";
	if (F.mangle == M_KEY_AS_LEASE) {
		snprintf(out, cap, "{\"valid\":true,\"code\":\"VALID\","
		    "\"lease\":\"%s\"}", license_key);
		return;
	}
	if (F.mangle == M_GARBAGE) {
		snprintf(out, cap, "{\"valid\":true,\"code\":\"VALID\","
		    "\"lease\":\"a.b.c\"}");
		return;
	}
	if (F.seat_ttl > 0) {
		/* A seat renewed to now + ttl, or borrowed: the lease ends
		 * with it. */
		long long days = 0, until;
		char b[40] = "null";

		if (json_object_object_get_ex(req, "days", &v))
			days = json_object_get_int64(v);
		if (days > 0)
			F.borrowed_until = F.now + days * 86400;
		until = F.borrowed_until > F.now ? F.borrowed_until :
		    F.now + F.seat_ttl;
		if (F.borrowed_until > F.now) {
			time_t bt = (time_t)F.borrowed_until;
			struct tm tm;

			gmtime_r(&bt, &tm);
			strftime(b, sizeof(b), "\"%Y-%m-%dT%H:%M:%SZ\"", &tm);
		}
		lic_lease(&F.l, iid, nonce, (time_t)F.now,
		    (long)(until - F.now), &lease, &exp);
		F.released = 0;
		snprintf(out, cap, "{\"valid\":true,\"code\":\"VALID\","
		    "\"lease\":\"%s\",\"seat_expires_at\":\"x\","
		    "\"next_heartbeat_in\":%ld,\"borrowed_until\":%s,"
		    "\"overdraft\":%s}", lease, F.seat_ttl / 3, b,
		    F.overdraft ? "true" : "false");
		free(lease);
		return;
	}
	lic_lease(&F.l, iid, nonce, (time_t)(F.mangle == M_EXPIRED ?
	    F.now - 7200 : F.now), 0, &lease, &exp);
	if (F.mangle == M_ALG_NONE || F.mangle == M_HS256) {
		/* Same claims, header swapped for a forgery's. */
		char *d = strchr(lease, '.'), hdr[256], tok[8192];
		char *e = strrchr(lease, '.');
		const char *h = F.mangle == M_ALG_NONE ?
		    "{\"alg\":\"none\",\"typ\":\"lease+jwt\"}" :
		    "{\"alg\":\"HS256\",\"typ\":\"lease+jwt\"}";

		lcl_b64url_encode((const unsigned char *)h, strlen(h), hdr);
		*e = '\0';
		snprintf(tok, sizeof(tok), "%s%s.%s", hdr, d, F.mangle ==
		    M_ALG_NONE ? "" : "c2lnbmF0dXJl");
		free(lease);
		lease = strdup(tok);
	}
	snprintf(out, cap, "{\"valid\":true,\"code\":\"VALID\",\"lease\":\"%s\","
	    "\"lease_expires_at\":\"x\"}", lease);
	free(lease);
}

static int fake_post(void *arg, const char *url, const char *body, size_t len,
    long timeout_ms, struct licd_response *resp)
{
	struct json_object *req, *v;
	char out[16384];
	int i;

	(void)arg;
	(void)len;
	(void)timeout_ms;
	F.calls++;
	if (F.down)
		return -1;
	req = json_tokener_parse(body);
	resp->status = 200;
	if (strstr(url, "/api/usage") != NULL) {
		const char *k = json_object_get_string(json_object_object_get(req,
		    "idempotency_key"));
		long long q = json_object_get_int64(json_object_object_get(req,
		    "quantity"));
		int seen = 0;

		F.usage_calls++;
		for (i = 0; i < F.nkeys; i++)
			seen |= strcmp(F.keys[i], k) == 0;
		if (!seen && F.nkeys < 64) {
			snprintf(F.keys[F.nkeys++], 40, "%s", k);
			F.counted += q;
			snprintf(F.order[F.norder++], 16, "%s",
			    json_object_get_string(json_object_object_get(req,
			    "feature")));
		}
		snprintf(out, sizeof(out), "{\"used\":%lld}", F.counted);
	} else if (strstr(url, "/api/deactivate") != NULL) {
		snprintf(out, sizeof(out), "{\"deactivated\":true}");
	} else if (strstr(url, "/api/checkin") != NULL) {
		F.checkins++;
		if (F.node_locked) {
			resp->status = 409;
			snprintf(out, sizeof(out), "{\"error\":{\"code\":"
			    "\"NOT_FLOATING\",\"message\":\"x\"}}");
		} else {
			snprintf(out, sizeof(out), "{\"checked_in\":true,"
			    "\"released\":%s}", F.released ? "false" : "true");
			F.released = 1;
			F.borrowed_until = 0;
		}
	} else if (strstr(url, "/api/borrow") != NULL &&
	    json_object_get_int(json_object_object_get(req, "days")) >
	    F.max_borrow) {
		resp->status = 403;
		snprintf(out, sizeof(out), "{\"error\":{\"code\":"
		    "\"BORROW_LIMIT_EXCEEDED\",\"message\":\"x\"},"
		    "\"max_borrow_days\":%d}", F.max_borrow);
	} else if (F.replay) {
		snprintf(out, sizeof(out), "%s", F.last);
	} else {
		answer_lease(req, out, sizeof(out));
		if (json_object_object_get_ex(req, "nonce", &v))
			snprintf(F.last, sizeof(F.last), "%s", out);
	}
	json_object_put(req);
	jws_thread_end();	/* the signer's per-thread context */
	resp->body = strdup(out);
	resp->len = strlen(out);
	return 0;
}

/* ---- set-up: a server keyring, its JWKS, a license key ---- */

static EVP_PKEY *write_key(const char *dir, const char *type, char *kid,
    int current)
{
	EVP_PKEY *k = strcmp(type, "EC") == 0 ?
	    EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256") :
	    EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");

	unit_write_key(dir, k, kid, 64, current);
	return k;
}

static void setup(void)
{
	char kid1[64], kid2[64], err[256];
	EVP_PKEY *k1, *k2;
	struct json_object *ks = json_object_new_object(),
	    *arr = json_object_new_array();

	snprintf(keydir, sizeof(keydir), "/tmp/licd-client-unit.XXXXXX");
	if (mkdtemp(keydir) == NULL)
		abort();
	snprintf(statedir, sizeof(statedir), "%s/state", keydir);
	k2 = write_key(keydir, "ED", kid2, 0);
	k1 = write_key(keydir, "EC", kid1, 1);
	json_object_array_add(arr, jws_jwk(k1, kid1));
	json_object_array_add(arr, jws_jwk(k2, kid2));
	json_object_object_add(ks, "keys", arr);
	jwks_text = strdup(json_object_to_json_string(ks));
	json_object_put(ks);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	setenv("LICD_KEYS_DIR", keydir, 1);
	setenv("LICD_ISSUER", ISS, 1);
	setenv("LICD_LEASE_TTL", "3600", 1);
	if (lic_init_keys(err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	memset(&F.l, 0, sizeof(F.l));
	snprintf(F.l.id, sizeof(F.l.id), LID);
	snprintf(F.l.customer_id, sizeof(F.l.customer_id), LID);
	snprintf(F.l.plan, sizeof(F.l.plan), "pro");
	snprintf(F.l.status, sizeof(F.l.status), "active");
	F.l.expires_at = t_wall + 90 * 86400;
	F.l.features = json_tokener_parse("[\"sso\",\"reports\"]");
	F.l.limits = json_tokener_parse("{\"installations\":3,"
	    "\"workflows_per_month\":1000}");
	F.l.domains = json_tokener_parse("[]");
	lic_sign_key(&F.l, t_wall - 86400, &license_key);
	F.now = t_wall;
}

static void reset_fake(void)
{
	F.seat_ttl = 0;
	F.max_borrow = F.overdraft = F.node_locked = 0;
	F.borrowed_until = 0;
	F.down = 0;
	F.code = "VALID";
	F.mangle = M_NONE;
	F.replay = 0;
	F.now = t_wall;
}

static void rm_rf(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[512];

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (unlink(p) != 0)
			rm_rf(p);
	}
	closedir(d);
	rmdir(dir);
}

/* The tests' configuration: the fake licd, injected clocks. */
static void config(struct licd_config *c, const char *iid)
{
	lt_config(c, ISS, jwks_text, license_key, iid, statedir, fake_post);
	c->wall_clock = clk_wall;
	c->mono_clock = clk_mono;
}

static licd_t *open_g(const char *iid, enum licd_mode mode,
    enum licd_refresh_mode rm, long grace, int keep_seat)
{
	struct licd_config c;
	licd_t *h = NULL;
	char err[256];

	config(&c, iid);
	c.mode = mode;
	c.refresh = rm;
	c.offline_grace = grace;
	c.keep_seat_on_close = keep_seat;
	if (licd_open(&c, &h, err, sizeof(err)) != 0)
		fprintf(stderr, "open: %s\n", err);
	return h;
}

static licd_t *open_h(const char *iid, enum licd_mode mode,
    enum licd_refresh_mode rm)
{
	return open_g(iid, mode, rm, 86400, 0);
}

static enum licd_status st(licd_t *h, const char *feature)
{
	struct licd_info in;

	licd_check(h, feature, &in);
	return in.status;
}

static char *state_file(void)
{
	DIR *d = opendir(statedir);
	struct dirent *e;
	static char p[512];

	p[0] = '\0';
	while (d != NULL && (e = readdir(d)) != NULL)
		if (strstr(e->d_name, ".state") != NULL &&
		    strstr(e->d_name, ".tmp") == NULL)
			snprintf(p, sizeof(p), "%s/%s", statedir, e->d_name);
	if (d != NULL)
		closedir(d);
	return p;
}

/* ---- tests ---- */

static void test_b64_and_keys(void)
{
	unsigned char out[16];
	struct lcl_keys ks;
	char err[128];

	CHECK(lcl_b64url_decode("aGk", 3, out, sizeof(out)) == 2);
	CHECK(lcl_b64url_decode("aGl", 3, out, sizeof(out)) == -1);
	CHECK(lcl_b64url_decode("aG=", 3, out, sizeof(out)) == -1);
	CHECK(lcl_b64url_decode("a", 1, out, sizeof(out)) == -1);
	CHECK(lcl_keys_parse(jwks_text, &ks, err, sizeof(err)) == 0 &&
	    ks.n == 2);
	lcl_keys_free(&ks);
	CHECK(lcl_keys_parse("{\"keys\":[]}", &ks, err, sizeof(err)) == -1);
	CHECK(lcl_keys_parse("nope", &ks, err, sizeof(err)) == -1);
	/* A key whose alg disagrees with its type is refused outright. */
	CHECK(lcl_keys_parse("{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\","
	    "\"kid\":\"k\",\"alg\":\"ES256\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvP"
	    "apiMlrwIaaPcHURo\"}]}", &ks, err, sizeof(err)) == -1);
	/* A P-256 point off the curve is not a key. */
	CHECK(lcl_keys_parse("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
	    "\"kid\":\"k\",\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
	    "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\"}]}", &ks, err,
	    sizeof(err)) == -1);
}

static void test_server_vectors(void)
{
	struct lcl_keys ks;
	struct lcl_lease l;
	struct lcl_expect e = { ISS, LID, "inst-a", "n1", 0 };
	const char *why;
	char err[128], *lease = NULL, *ed = NULL;
	time_t exp;
	struct jws_keyring kr;

	lcl_keys_parse(jwks_text, &ks, err, sizeof(err));
	F.l.grace_until = t_wall + 100 * 86400;
	json_object_put(F.l.domains);
	F.l.domains = json_tokener_parse("[\"example.com\"]");
	CHECK(lic_lease(&F.l, "inst-a", "n1", (time_t)t_wall, 0, &lease,
	    &exp) == LIC_OK);
	CHECK(lcl_lease_verify(&ks, lease, &e, &l, &why) == 0);
	CHECK(l.iat == t_wall && l.exp == t_wall + 3600);
	CHECK(l.license_end == F.l.expires_at);
	CHECK(l.grace_until == F.l.grace_until);
	CHECK(l.has_domains && l.ndomains == 1 &&
	    strcmp(l.domains[0], "example.com") == 0);
	CHECK(l.nfeat == 2 && l.nlimits == 2 && strcmp(l.plan, "pro") == 0);
	lcl_lease_free(&l);
	/* Refusals of the server's own lease on the wrong terms. */
	e.nonce = "n2";
	CHECK(lcl_lease_verify(&ks, lease, &e, &l, &why) == -1);
	e.nonce = "n1";
	e.iid = "inst-b";
	CHECK(lcl_lease_verify(&ks, lease, &e, &l, &why) == -1);
	e.iid = "inst-a";
	e.sub = "99999999-2222-4333-8444-555555555555";
	CHECK(lcl_lease_verify(&ks, lease, &e, &l, &why) == -1);
	e.sub = LID;
	e.issuer = "https://evil.test";
	CHECK(lcl_lease_verify(&ks, lease, &e, &l, &why) == -1);
	e.issuer = ISS;
	e.now_min = (int64_t)exp;
	CHECK(lcl_lease_verify(&ks, lease, &e, &l, &why) == -1);
	e.now_min = 0;
	/* A tampered payload byte breaks the signature. */
	{
		char *t = strdup(lease), *p = strchr(t, '.') + 5;

		*p = *p == 'A' ? 'B' : 'A';
		CHECK(lcl_lease_verify(&ks, t, &e, &l, &why) == -1);
		free(t);
	}
	/* The license key is typ JWT: never a lease. */
	e.iid = NULL;
	CHECK(lcl_lease_verify(&ks, license_key, &e, &l, &why) == -1);
	/* An EdDSA lease from the server's signer, by the second kid. */
	{
		char path[512];
		FILE *f;
		struct jws_keyring *krp = &kr;
		DIR *d = opendir(keydir);
		struct dirent *de;
		char edkid[80] = "";
		const char *cl = "{\"iss\":\"" ISS "\",\"sub\":\"" LID "\","
		    "\"iid\":\"inst-a\",\"iat\":1800000000,\"exp\":1800003600}";

		/* Point "current" at the Ed25519 key in a copy of the ring. */
		while ((de = readdir(d)) != NULL) {
			size_t n = strlen(de->d_name);
			EVP_PKEY *k;
			char p2[512];

			if (n < 5 || strcmp(de->d_name + n - 4, ".pub") != 0)
				continue;
			snprintf(p2, sizeof(p2), "%s/%s", keydir, de->d_name);
			f = fopen(p2, "r");
			k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
			fclose(f);
			if (EVP_PKEY_get_id(k) == EVP_PKEY_ED25519)
				snprintf(edkid, sizeof(edkid), "%.*s", (int)n - 4,
				    de->d_name);
			EVP_PKEY_free(k);
		}
		closedir(d);
		snprintf(path, sizeof(path), "%s/ed", keydir);
		mkdir(path, 0700);
		{
			char src[512], dst[512], buf[4096];
			const char *ext[2] = { ".key", ".pub" };
			int i;

			for (i = 0; i < 2; i++) {
				FILE *a, *b;
				size_t n;

				snprintf(src, sizeof(src), "%s/%s%s", keydir, edkid,
				    ext[i]);
				snprintf(dst, sizeof(dst), "%s/%s%s", path, edkid,
				    ext[i]);
				a = fopen(src, "r");
				b = fopen(dst, "w");
				n = fread(buf, 1, sizeof(buf), a);
				fwrite(buf, 1, n, b);
				fclose(a);
				fclose(b);
			}
			snprintf(dst, sizeof(dst), "%s/current", path);
			f = fopen(dst, "w");
			fprintf(f, "%s\n", edkid);
			fclose(f);
		}
		CHECK(jws_keyring_load(path, krp, err, sizeof(err)) == 0);
		CHECK(jws_sign(krp, "lease+jwt", cl, strlen(cl), &ed) == JWS_OK);
		e.iid = "inst-a";
		e.nonce = NULL;
		CHECK(lcl_lease_verify(&ks, ed, &e, &l, &why) == 0);
		lcl_lease_free(&l);
		jws_keyring_free(krp);
	}
	free(ed);
	free(lease);
	lcl_keys_free(&ks);
	json_object_put(F.l.domains);
	F.l.domains = json_tokener_parse("[]");
	F.l.grace_until = 0;
}

static void test_pyjwt_vectors(void)
{
	char *txt = lcl_read_file("client/tests/vectors.json", 65536, NULL);
	struct json_object *v = txt ? json_tokener_parse(txt) : NULL;
	struct lcl_keys ks;
	struct lcl_lease l;
	struct lcl_expect e = { NULL, NULL, NULL, NULL, 0 };
	const char *why;
	char err[128];
	const char *jwks;

	CHECK(v != NULL);
	if (v == NULL)
		return;
	jwks = json_object_to_json_string(json_object_object_get(v, "jwks"));
	CHECK(lcl_keys_parse(jwks, &ks, err, sizeof(err)) == 0 && ks.n == 2);
	e.issuer = json_object_get_string(json_object_object_get(v, "issuer"));
	e.sub = json_object_get_string(json_object_object_get(v, "sub"));
	e.iid = json_object_get_string(json_object_object_get(v, "iid"));
#define TOK(k) json_object_get_string(json_object_object_get(v, k))
	CHECK(lcl_lease_verify(&ks, TOK("es256_lease"), &e, &l, &why) == 0);
	CHECK(l.nfeat == 2 && l.has_domains && l.ndomains == 2);
	CHECK(lcl_domain_match(l.domains[1], "a.b.example.com"));
	lcl_lease_free(&l);
	CHECK(lcl_lease_verify(&ks, TOK("eddsa_lease"), &e, &l, &why) == 0);
	lcl_lease_free(&l);
	/* A lease from before the offline claims existed still reads. */
	CHECK(lcl_lease_verify(&ks, TOK("old_lease"), &e, &l, &why) == 0);
	CHECK(l.license_end == 0 && !l.has_domains);
	lcl_lease_free(&l);
	CHECK(lcl_lease_verify(&ks, TOK("alg_none"), &e, &l, &why) == -1);
	CHECK(lcl_lease_verify(&ks, TOK("hs256_pubkey"), &e, &l, &why) == -1);
	CHECK(lcl_lease_verify(&ks, TOK("license_key"), &e, &l, &why) == -1);
	lcl_keys_free(&ks);
	/* The same lease against keys that lack its kid. */
	lcl_keys_parse(jwks_text, &ks, err, sizeof(err));
	CHECK(lcl_lease_verify(&ks, TOK("es256_lease"), &e, &l, &why) == -1);
	lcl_keys_free(&ks);
#undef TOK
	json_object_put(v);
	free(txt);
}

static void test_domains(void)
{
	CHECK(lcl_domain_match("company.com", "company.com"));
	CHECK(lcl_domain_match("company.com", "COMPANY.com."));
	CHECK(!lcl_domain_match("company.com", "a.company.com"));
	CHECK(lcl_domain_match("*.company.com", "a.b.company.com"));
	CHECK(!lcl_domain_match("*.company.com", "company.com"));
	CHECK(!lcl_domain_match("*.company.com", "evilcompany.com"));
}

static void test_online_flow(void)
{
	licd_t *h;
	struct licd_info in;
	long long n = 0;

	rm_rf(statedir);
	reset_fake();
	h = open_h("inst-a", LICD_FAIL_CLOSED, LICD_REFRESH_MANUAL);
	CHECK(h != NULL);
	CHECK(st(h, NULL) == LICD_NOT_ACTIVATED);
	CHECK(licd_check(h, NULL, &in) == LICD_DENY);
	CHECK(licd_refresh(h, &in) == 0 && in.status == LICD_VALID);
	CHECK(in.lease_expires == t_wall + 3600);
	CHECK(in.license_ends == F.l.expires_at);
	CHECK(licd_check(h, "sso", &in) == LICD_ALLOW && in.status == LICD_VALID);
	CHECK(licd_check(h, "nope", &in) == LICD_DENY &&
	    in.status == LICD_FEATURE_NOT_LICENSED);
	CHECK(licd_feature(h, "reports") && !licd_feature(h, "nope"));
	CHECK(licd_limit(h, "workflows_per_month", &n) == 0 && n == 1000);
	CHECK(licd_limit(h, "absent", &n) == -1);
	/* Forged or wrong answers are refused and change nothing. */
	{
		static const int bad[] = { M_NONCE, M_ALG_NONE, M_OTHER_IID,
		    M_KEY_AS_LEASE, M_HS256, M_GARBAGE };
		size_t i;
		char before[8192];

		snprintf(before, sizeof(before), "%s", F.last);
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			F.mangle = bad[i];
			t_wall += 10;
			F.now = t_wall;
			CHECK(licd_refresh(h, &in) == -1);
			CHECK(in.status == LICD_VALID);
		}
		F.mangle = M_NONE;
		/* A replayed earlier answer carries an old nonce. */
		snprintf(F.last, sizeof(F.last), "%s", before);
		F.replay = 1;
		CHECK(licd_refresh(h, &in) == -1 && in.status == LICD_VALID);
		F.replay = 0;
	}
	/* licd says REVOKED: the cached lease no longer counts. */
	F.code = "REVOKED";
	CHECK(licd_refresh(h, &in) == 0 && in.status == LICD_REVOKED);
	CHECK(licd_check(h, "sso", &in) == LICD_DENY);
	licd_close(h);
	/* ...also after a restart, offline. */
	F.down = 1;
	h = open_h("inst-a", LICD_DEGRADE, LICD_REFRESH_MANUAL);
	CHECK(licd_check(h, NULL, &in) == LICD_FREE_TIER &&
	    in.status == LICD_REVOKED);
	licd_close(h);
	reset_fake();
	F.code = "TOO_MANY_INSTALLATIONS";
	h = open_h("inst-z", LICD_FAIL_CLOSED, LICD_REFRESH_MANUAL);
	CHECK(licd_refresh(h, &in) == 0 &&
	    in.status == LICD_TOO_MANY_INSTALLATIONS);
	licd_close(h);
	reset_fake();
}

static void test_cache_and_clock(void)
{
	licd_t *h;
	struct licd_info in;
	char *path, *txt;
	size_t len;
	struct stat sb;
	int64_t exp;

	rm_rf(statedir);
	reset_fake();
	h = open_h("inst-c", LICD_FAIL_CLOSED, LICD_REFRESH_MANUAL);
	CHECK(licd_refresh(h, &in) == 0 && in.status == LICD_VALID);
	exp = in.lease_expires;
	licd_close(h);
	path = state_file();
	CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
	txt = lcl_read_file(path, 65536, &len);
	CHECK(txt != NULL);
	/* Offline restart: VALID from the cache. */
	F.down = 1;
	h = open_h("inst-c", LICD_FAIL_CLOSED, LICD_REFRESH_MANUAL);
	CHECK(st(h, NULL) == LICD_VALID);
	/* The last quarter of the lease: REFRESH_DUE, still allowed. */
	t_wall = exp - 600;
	t_mono += 3000;
	CHECK(licd_check(h, NULL, &in) == LICD_ALLOW &&
	    in.status == LICD_REFRESH_DUE);
	/* Past the lease: the vendor's offline grace, then EXPIRED. */
	t_wall = exp + 10;
	t_mono += 610;
	CHECK(licd_check(h, NULL, &in) == LICD_ALLOW && in.status == LICD_GRACE);
	CHECK(in.grace_ends == exp + 86400);
	t_wall = exp + 86400;
	t_mono += 86390;
	CHECK(licd_check(h, NULL, &in) == LICD_DENY &&
	    in.status == LICD_EXPIRED);
	licd_close(h);
	/* Clock set back: 9 minutes behind the mark is tolerated, 11 not. */
	h = open_h("inst-c", LICD_ADVISORY, LICD_REFRESH_MANUAL);
	t_wall -= 540;
	CHECK(st(h, NULL) == LICD_GRACE);
	t_wall -= 120;
	CHECK(licd_check(h, NULL, &in) == LICD_ALLOW &&
	    in.status == LICD_CLOCK_SUSPECT);
	/* ...also when the wall clock is turned back while running: the
	 * mark advances with the monotonic clock. */
	licd_close(h);
	t_wall = exp - 1800;
	h = open_h("inst-c", LICD_FAIL_CLOSED, LICD_REFRESH_MANUAL);
	CHECK(st(h, NULL) == LICD_CLOCK_SUSPECT);
	licd_close(h);
	/* licd reachable: its time wins, the mark follows it down. */
	F.down = 0;
	F.now = exp - 1800;
	h = open_h("inst-c", LICD_FAIL_CLOSED, LICD_REFRESH_INLINE);
	CHECK(licd_check(h, NULL, &in) == LICD_ALLOW && in.status == LICD_VALID);
	t_mono += 100;
	t_wall += 100;
	CHECK(st(h, NULL) == LICD_VALID);
	t_wall -= 3600;		/* turned back while running */
	F.down = 1;
	CHECK(st(h, NULL) == LICD_CLOCK_SUSPECT);
	licd_close(h);
	t_wall += 3600;
	free(txt);
	reset_fake();
}

static void write_file(const char *p, const char *d, size_t n)
{
	FILE *f = fopen(p, "w");

	fwrite(d, 1, n, f);
	fclose(f);
}

static void test_tampered_cache(void)
{
	licd_t *h;
	struct licd_info in;
	char *path, *txt, *copy, *p;
	size_t len;

	rm_rf(statedir);
	reset_fake();
	h = open_h("inst-t", LICD_FAIL_CLOSED, LICD_REFRESH_MANUAL);
	CHECK(licd_refresh(h, &in) == 0);
	licd_close(h);
	path = strdup(state_file());
	txt = lcl_read_file(path, 65536, &len);
	F.down = 1;
	/* Every truncation is "no lease", never a crash. */
	{
		size_t cut;
		int ok = 1;

		for (cut = 0; cut < len; cut += len / 23 + 1) {
			write_file(path, txt, cut);
			h = open_h("inst-t", LICD_FAIL_CLOSED, LICD_REFRESH_MANUAL);
			ok &= h != NULL && st(h, NULL) == LICD_NOT_ACTIVATED;
			licd_close(h);
		}
		CHECK(ok);
	}
	/* An edited claim (exp pushed out) fails the signature. */
	copy = strdup(txt);
	p = strstr(copy, "\"lease\":\"") + 9;
	p = strchr(p, '.') + 8;
	*p = *p == 'x' ? 'y' : 'x';
	write_file(path, copy, len);
	h = open_h("inst-t", LICD_FAIL_CLOSED, LICD_REFRESH_MANUAL);
	CHECK(st(h, NULL) == LICD_NOT_ACTIVATED);
	licd_close(h);
	free(copy);
	/* Garbage, and another installation's file under this name. */
	write_file(path, "\x00\xff{{{", 5);
	h = open_h("inst-t", LICD_FAIL_CLOSED, LICD_REFRESH_MANUAL);
	CHECK(st(h, NULL) == LICD_NOT_ACTIVATED);
	licd_close(h);
	F.down = 0;
	h = open_h("inst-other", LICD_FAIL_CLOSED, LICD_REFRESH_MANUAL);
	CHECK(licd_refresh(h, &in) == 0);
	licd_close(h);
	{
		char *other = NULL, *otxt;
		size_t on;
		DIR *d = opendir(statedir);
		struct dirent *e;
		char buf[512];

		while ((e = readdir(d)) != NULL) {
			snprintf(buf, sizeof(buf), "%s/%s", statedir, e->d_name);
			if (strstr(e->d_name, ".state") && strcmp(buf, path) != 0)
				other = strdup(buf);
		}
		closedir(d);
		otxt = lcl_read_file(other, 65536, &on);
		write_file(path, otxt, on);
		F.down = 1;
		h = open_h("inst-t", LICD_FAIL_CLOSED, LICD_REFRESH_MANUAL);
		CHECK(st(h, NULL) == LICD_NOT_ACTIVATED);
		licd_close(h);
		free(otxt);
		free(other);
	}
	/* The original file again: VALID. */
	write_file(path, txt, len);
	h = open_h("inst-t", LICD_FAIL_CLOSED, LICD_REFRESH_MANUAL);
	CHECK(st(h, NULL) == LICD_VALID);
	licd_close(h);
	free(txt);
	free(path);
	reset_fake();
}

static void test_atomic_write(void)
{
	char p[512], *t;
	struct stat sb;
	size_t n;
	DIR *d;
	struct dirent *e;
	int tmp = 0;

	mkdir(statedir, 0700);
	snprintf(p, sizeof(p), "%s/atomic", statedir);
	CHECK(lcl_write_atomic(p, "one", 3) == 0);
	CHECK(lcl_write_atomic(p, "second", 6) == 0);
	t = lcl_read_file(p, 100, &n);
	CHECK(t != NULL && n == 6 && memcmp(t, "second", 6) == 0);
	free(t);
	CHECK(stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0600);
	d = opendir(statedir);
	while ((e = readdir(d)) != NULL)
		tmp += strstr(e->d_name, ".tmp") != NULL;
	closedir(d);
	CHECK(tmp == 0);
	/* A failed write leaves the old file whole. */
	chmod(statedir, 0500);
	if (geteuid() != 0) {
		CHECK(lcl_write_atomic(p, "third", 5) == -1);
	} else {
		/* root ignores directory modes: fail through a missing dir */
		char q[600];

		snprintf(q, sizeof(q), "%s/missing/x", statedir);
		CHECK(lcl_write_atomic(q, "third", 5) == -1);
	}
	chmod(statedir, 0700);
	t = lcl_read_file(p, 100, &n);
	CHECK(t != NULL && n == 6);
	free(t);
	/* Only regular files are read: a symlink in the state dir is not. */
	{
		char l[600];

		snprintf(l, sizeof(l), "%s/link", statedir);
		CHECK(symlink(p, l) == 0);
		CHECK(lcl_read_file(l, 100, &n) == NULL);
		unlink(l);
	}
	unlink(p);
}

static void test_usage_queue(void)
{
	licd_t *h;
	struct licd_info in;
	const char *msg;
	char q[512], *saved;
	size_t n;

	rm_rf(statedir);
	reset_fake();
	F.nkeys = F.norder = 0;
	F.counted = 0;
	h = open_h("inst-u", LICD_FAIL_CLOSED, LICD_REFRESH_MANUAL);
	CHECK(licd_refresh(h, &in) == 0);
	CHECK(licd_usage(h, "reports", 2, &msg) == 0 && F.counted == 2);
	F.down = 1;
	CHECK(licd_usage(h, "reports", 3, &msg) == 1);
	CHECK(licd_usage(h, "sso", 4, &msg) == 1);
	CHECK(licd_usage(h, "bad feature!", 1, &msg) == -1);
	CHECK(licd_usage(h, "sso", 0, &msg) == -1);
	CHECK(F.counted == 2);
	snprintf(q, sizeof(q), "%s", state_file());
	memcpy(strstr(q, ".state"), ".usage", 7);
	saved = lcl_read_file(q, 65536, &n);
	CHECK(saved != NULL);
	F.down = 0;
	CHECK(licd_flush_usage(h) == 0);
	CHECK(F.counted == 9 && F.norder == 3 && strcmp(F.order[1], "reports")
	    == 0 && strcmp(F.order[2], "sso") == 0);
	/* Replayed again (a crash before the queue was rewritten): the
	 * same idempotency keys, nothing counted twice. */
	write_file(q, saved, n);
	CHECK(licd_flush_usage(h) == 0);
	CHECK(F.counted == 9 && F.nkeys == 3);
	CHECK(access(q, F_OK) != 0);
	/* A torn last line is not an item. */
	write_file(q, "{\"k\":\"x\",\"f\":\"sso\"", 18);
	CHECK(licd_flush_usage(h) == 0 && F.counted == 9);
	free(saved);
	licd_close(h);
	reset_fake();
}

static void test_offline_files(void)
{
	licd_t *h;
	struct licd_info in;
	const char *msg;
	char req[512], lease_file[512], *txt, *lease = NULL, out[9000];
	struct json_object *o;
	time_t exp;

	rm_rf(statedir);
	reset_fake();
	F.down = 1;
	h = open_h("inst-o", LICD_FAIL_CLOSED, LICD_REFRESH_MANUAL);
	snprintf(req, sizeof(req), "%s/req.json", keydir);
	snprintf(lease_file, sizeof(lease_file), "%s/lease.txt", keydir);
	CHECK(licd_request_file(h, req, &msg) == 0);
	txt = lcl_read_file(req, 65536, NULL);
	o = txt ? json_tokener_parse(txt) : NULL;
	CHECK(o != NULL && strcmp(json_object_get_string(
	    json_object_object_get(o, "installation_id")), "inst-o") == 0 &&
	    strcmp(json_object_get_string(json_object_object_get(o,
	    "license_id")), LID) == 0);
	/* What licctl lease offline --request prints (text form). */
	lic_lease(&F.l, "inst-o", json_object_get_string(
	    json_object_object_get(o, "nonce")), (time_t)t_wall, 86400 * 30,
	    &lease, &exp);
	snprintf(out, sizeof(out), "lease for inst-o on license %s, valid "
	    "until X:\n%s\n", LID, lease);
	write_file(lease_file, out, strlen(out));
	CHECK(licd_import(h, lease_file, &in) == 0 && in.status == LICD_VALID);
	CHECK(in.lease_expires == (int64_t)exp);
	/* The same answer again: its request is no longer pending. */
	CHECK(licd_import(h, lease_file, &in) == -1);
	free(lease);
	/* A lease for another request's nonce. */
	CHECK(licd_request_file(h, req, &msg) == 0);
	lic_lease(&F.l, "inst-o", "some-other-nonce", (time_t)t_wall + 5,
	    86400, &lease, &exp);
	snprintf(out, sizeof(out), "{\"lease\":\"%s\"}", lease);
	write_file(lease_file, out, strlen(out));
	CHECK(licd_import(h, lease_file, &in) == -1);
	free(lease);
	/* Another installation's lease. */
	lic_lease(&F.l, "inst-x", NULL, (time_t)t_wall + 5, 86400, &lease, &exp);
	write_file(lease_file, lease, strlen(lease));
	CHECK(licd_import(h, lease_file, &in) == -1);
	free(lease);
	licd_close(h);
	json_object_put(o);
	free(txt);
	reset_fake();
}

static void test_installation_id(void)
{
	licd_t *h;

	setenv("LICD_INSTALLATION_ID", "container-7", 1);
	h = open_h(NULL, LICD_FAIL_CLOSED, LICD_REFRESH_MANUAL);
	CHECK(h != NULL && strcmp(licd_installation_id(h), "container-7") == 0);
	licd_close(h);
	setenv("LICD_INSTALLATION_ID", "bad id!", 1);
	h = open_h(NULL, LICD_FAIL_CLOSED, LICD_REFRESH_MANUAL);
	CHECK(h == NULL);
	unsetenv("LICD_INSTALLATION_ID");
	if (access("/etc/machine-id", R_OK) == 0) {
		char a[LCL_ID_MAX];

		h = open_h(NULL, LICD_FAIL_CLOSED, LICD_REFRESH_MANUAL);
		CHECK(h != NULL && strlen(licd_installation_id(h)) == 32);
		snprintf(a, sizeof(a), "%s", h ? licd_installation_id(h) : "");
		licd_close(h);
		h = open_h(NULL, LICD_FAIL_CLOSED, LICD_REFRESH_MANUAL);
		CHECK(h != NULL && strcmp(a, licd_installation_id(h)) == 0);
		licd_close(h);
	}
	/* The vendor's id wins over the variable. */
	setenv("LICD_INSTALLATION_ID", "from-env", 1);
	h = open_h("vendor-id", LICD_FAIL_CLOSED, LICD_REFRESH_MANUAL);
	CHECK(h != NULL && strcmp(licd_installation_id(h), "vendor-id") == 0);
	licd_close(h);
	unsetenv("LICD_INSTALLATION_ID");
}

static void test_bad_key(void)
{
	struct licd_config c;
	licd_t *h = NULL;
	char err[256];
	struct licd_info in;

	lt_config(&c, ISS, jwks_text, "not.a.key", "i", NULL, fake_post);
	CHECK(licd_open(&c, &h, err, sizeof(err)) == 0);
	CHECK(licd_check(h, NULL, &in) == LICD_DENY &&
	    in.status == LICD_INVALID_KEY);
	licd_close(h);
	c.jwks = "{\"keys\":[]}";
	CHECK(licd_open(&c, &h, err, sizeof(err)) == -1 && h == NULL);
}

/* The library's own transport: TLS, or plain http to this machine only. */
static void test_base_url(void)
{
	static const struct { const char *url; int ok; } t[] = {
		{ "https://licensing.example.com", 1 },
		{ "https://licensing.example.com:8443/licd/", 1 },
		{ "http://127.0.0.1:8080", 1 },
		{ "http://127.9.9.9", 1 },
		{ "http://localhost:8080/", 1 },
		{ "http://[::1]:8080", 1 },
		{ "http://licensing.example.com", 0 },
		{ "http://127.0.0.1.evil.example", 0 },
		{ "http://localhost.evil.example", 0 },
		{ "http://127.evil.example", 0 },
		{ "http://[::1].evil", 0 },
		{ "ftp://127.0.0.1", 0 },
		{ "https://", 0 },
		{ "127.0.0.1:8080", 0 },
	};
	struct licd_config c;
	licd_t *h;
	char err[256];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		lt_config(&c, ISS, jwks_text, license_key, "i", NULL, NULL);
		c.base_url = t[i].url;
		h = NULL;
		err[0] = '\0';
		if (t[i].ok) {
			CHECK(licd_open(&c, &h, err, sizeof(err)) == 0 && h);
			licd_close(h);
		} else {
			CHECK(licd_open(&c, &h, err, sizeof(err)) == -1 &&
			    h == NULL && strstr(err, "https://") != NULL);
		}
	}
	/* A vendor's transport answers for its own channel. */
	lt_config(&c, ISS, jwks_text, license_key, "i", NULL, fake_post);
	c.base_url = "http://licensing.example.com";
	CHECK(licd_open(&c, &h, err, sizeof(err)) == 0);
	licd_close(h);
}

static void test_background(void)
{
	licd_t *h;
	struct licd_info in;
	int i;

	rm_rf(statedir);
	reset_fake();
	h = open_h("inst-bg", LICD_FAIL_CLOSED, LICD_REFRESH_BACKGROUND);
	/* The refresh thread activates without the caller waiting on it. */
	for (i = 0; i < 500 && st(h, NULL) != LICD_VALID; i++)
		usleep(10000);
	CHECK(licd_check(h, "sso", &in) == LICD_ALLOW);
	/* Usage is queued at once and sent by the thread. */
	{
		const char *msg;
		long long before;

		F.nkeys = 0;
		before = F.counted;
		CHECK(licd_usage(h, "sso", 5, &msg) == 1);
		for (i = 0; i < 500 && F.counted != before + 5; i++)
			usleep(10000);
		CHECK(F.counted == before + 5);
	}
	licd_close(h);
}


static void test_domain_offline_and_heartbeat(void)
{
	struct licd_config c;
	licd_t *h = NULL;
	struct licd_info in;
	char err[256];

	rm_rf(statedir);
	reset_fake();
	json_object_put(F.l.domains);
	F.l.domains = json_tokener_parse("[\"*.example.com\"]");
	config(&c, "inst-d");
	c.domain = "app.example.com";
	CHECK(licd_open(&c, &h, err, sizeof(err)) == 0);
	CHECK(licd_refresh(h, &in) == 0 && in.status == LICD_VALID);
	licd_close(h);
	/* The same cached lease, configured for a domain it excludes. */
	F.down = 1;
	c.domain = "example.com";
	CHECK(licd_open(&c, &h, err, sizeof(err)) == 0);
	CHECK(licd_check(h, NULL, &in) == LICD_DENY &&
	    in.status == LICD_DOMAIN_NOT_ALLOWED);
	licd_close(h);
	c.domain = NULL;
	CHECK(licd_open(&c, &h, err, sizeof(err)) == 0);
	CHECK(st(h, NULL) == LICD_DOMAIN_NOT_ALLOWED);
	licd_close(h);
	json_object_put(F.l.domains);
	F.l.domains = json_tokener_parse("[]");
	/* A heartbeat for a seat licd freed: NOT_ACTIVATED, and the next
	 * due refresh (a validate) activates again. */
	reset_fake();
	c.domain = "app.example.com";
	c.refresh = LICD_REFRESH_INLINE;
	CHECK(licd_open(&c, &h, err, sizeof(err)) == 0);
	F.code = "INSTALLATION_NOT_ACTIVE";
	CHECK(licd_heartbeat(h, &in) == 0 && in.status == LICD_NOT_ACTIVATED);
	F.code = "VALID";
	CHECK(licd_check(h, NULL, &in) == LICD_ALLOW && in.status == LICD_VALID);
	licd_close(h);
}

/* Floating seats: the lease ends with the seat; renewed at licd's
 * next_heartbeat_in; a lapsed seat is an expired lease (grace, then the
 * mode); borrow, check-in, overdraft; check-in on close. */
static licd_t *open_f(const char *iid, enum licd_mode mode,
    enum licd_refresh_mode rm, int keep)
{
	return open_g(iid, mode, rm, 600, keep);
}

static void tick(int64_t s)
{
	t_wall += s;
	t_mono += s;
	F.now = t_wall;
}

static void test_floating(void)
{
	licd_t *h;
	struct licd_info in;
	const char *msg;
	int64_t seat;
	int calls, i, ok;

	rm_rf(statedir);
	reset_fake();
	F.seat_ttl = 90;
	/* Inline refreshes: the seat is renewed every next_heartbeat_in. */
	h = open_f("inst-f", LICD_FAIL_CLOSED, LICD_REFRESH_INLINE, 1);
	CHECK(licd_check(h, NULL, &in) == LICD_ALLOW && in.status == LICD_VALID);
	CHECK(in.seat_expires == t_wall + 90 &&
	    in.lease_expires == in.seat_expires);
	CHECK(in.borrowed_until == 0 && in.overdraft == 0);
	calls = F.calls;
	tick(29);
	CHECK(st(h, NULL) == LICD_VALID && F.calls == calls);
	tick(1);
	CHECK(licd_check(h, NULL, &in) == LICD_ALLOW && F.calls == calls + 1);
	CHECK(in.seat_expires == t_wall + 90);
	/* Several TTLs, renewed each time: always VALID. */
	for (i = 0, ok = 1; i < 12; i++) {
		tick(30);
		ok &= licd_check(h, "sso", &in) == LICD_ALLOW &&
		    in.status == LICD_VALID && in.seat_expires == t_wall + 90;
	}
	CHECK(ok && F.calls == calls + 13);
	/* licd unreachable: retried at least every next_heartbeat_in (not
	 * the doubling retry_interval), and the seat lapses at its end. */
	seat = in.seat_expires;
	F.down = 1;
	tick(30);
	calls = F.calls;
	CHECK(st(h, NULL) == LICD_VALID && F.calls == calls + 1);
	tick(30);
	CHECK(st(h, NULL) == LICD_VALID && F.calls == calls + 2);
	tick(10);
	CHECK(st(h, NULL) == LICD_REFRESH_DUE && F.calls == calls + 2);
	tick(seat - t_wall);
	CHECK(licd_check(h, "sso", &in) == LICD_ALLOW &&
	    in.status == LICD_GRACE && in.grace_ends == seat + 600);
	CHECK(strstr(in.message, "seat") != NULL);
	tick(600);
	CHECK(licd_check(h, NULL, &in) == LICD_DENY &&
	    in.status == LICD_EXPIRED && strstr(in.message, "seat") != NULL);
	licd_close(h);
	h = open_f("inst-f", LICD_DEGRADE, LICD_REFRESH_MANUAL, 1);
	CHECK(licd_check(h, NULL, &in) == LICD_FREE_TIER &&
	    in.status == LICD_EXPIRED);
	/* Back online: a new seat, VALID again. */
	F.down = 0;
	CHECK(licd_refresh(h, &in) == 0 && in.status == LICD_VALID);
	licd_close(h);
	/* keep_seat_on_close: closing left the seat alone. */
	CHECK(F.checkins == 0);

	/* Check-in on close: the seat goes back, and the lease with it. */
	h = open_f("inst-f", LICD_FAIL_CLOSED, LICD_REFRESH_MANUAL, 0);
	CHECK(st(h, NULL) == LICD_VALID);
	licd_close(h);
	CHECK(F.checkins == 1);
	F.down = 1;
	h = open_f("inst-f", LICD_FAIL_CLOSED, LICD_REFRESH_MANUAL, 0);
	CHECK(st(h, NULL) == LICD_NOT_ACTIVATED);
	licd_close(h);		/* no seat: nothing to check in */
	CHECK(F.checkins == 1);
	/* A lapsed seat is not checked in either. */
	F.down = 0;
	h = open_f("inst-f", LICD_FAIL_CLOSED, LICD_REFRESH_MANUAL, 0);
	CHECK(licd_refresh(h, &in) == 0 && in.status == LICD_VALID);
	tick(91);
	licd_close(h);
	CHECK(F.checkins == 1);

	/* Borrowing: refused past max_borrow_days, else held offline until
	 * its end, kept on close, returned by licd_checkin. */
	F.max_borrow = 3;
	F.overdraft = 1;
	h = open_f("inst-f", LICD_FAIL_CLOSED, LICD_REFRESH_INLINE, 0);
	calls = F.calls;
	CHECK(licd_borrow(h, 5, &in) == LICD_BORROW_REFUSED &&
	    strstr(in.message, "max_borrow_days") != NULL);
	CHECK(licd_borrow(h, 0, &in) == -1);
	CHECK(licd_borrow(h, 2, &in) == 0 && in.status == LICD_VALID);
	CHECK(in.borrowed_until == t_wall + 2 * 86400 &&
	    in.lease_expires == in.borrowed_until && in.overdraft == 1);
	licd_close(h);
	CHECK(F.checkins == 1);
	F.down = 1;
	tick(86400);
	h = open_f("inst-f", LICD_FAIL_CLOSED, LICD_REFRESH_INLINE, 0);
	CHECK(licd_check(h, NULL, &in) == LICD_ALLOW &&
	    in.status == LICD_VALID && in.borrowed_until != 0 &&
	    in.overdraft == 1);
	F.down = 0;
	calls = F.calls;
	CHECK(licd_checkin(h, &msg) == 0 && F.checkins == 2 &&
	    strcmp(msg, "seat checked in") == 0);
	/* Checked in: no lease, and no automatic refresh takes a seat. */
	tick(3600);
	CHECK(st(h, NULL) == LICD_NOT_ACTIVATED && F.calls == calls + 1);
	CHECK(licd_checkin(h, &msg) == 0 &&
	    strcmp(msg, "checked in; no seat was held") == 0);
	CHECK(licd_refresh(h, &in) == 0 && in.status == LICD_VALID &&
	    in.borrowed_until == 0);
	licd_close(h);
	CHECK(F.checkins == 4);

	/* Background: the handle's thread renews when due. */
	F.overdraft = 0;
	h = open_f("inst-f", LICD_FAIL_CLOSED, LICD_REFRESH_BACKGROUND, 0);
	for (i = 0; i < 500 && st(h, NULL) != LICD_VALID; i++)
		usleep(10000);
	licd_check(h, NULL, &in);
	seat = in.seat_expires;
	tick(30);
	for (i = 0; i < 500 && (licd_check(h, NULL, &in), in.seat_expires ==
	    seat); i++)
		usleep(10000);
	CHECK(in.status == LICD_VALID && in.seat_expires == seat + 30);
	licd_close(h);
	CHECK(F.checkins == 5);

	/* A node-locked license: check-in and borrow are refused. */
	reset_fake();
	F.node_locked = 1;
	h = open_f("inst-n", LICD_FAIL_CLOSED, LICD_REFRESH_MANUAL, 0);
	CHECK(licd_refresh(h, &in) == 0 && in.status == LICD_VALID &&
	    in.seat_expires == 0);
	CHECK(licd_checkin(h, &msg) == -1 && strstr(msg, "node-locked"));
	licd_close(h);
	CHECK(F.checkins == 6);
	reset_fake();
}

struct hammer {
	licd_t *h;
	long allowed, other;
};

static void *hammer_main(void *arg)
{
	struct hammer *m = arg;
	struct licd_info in;
	int i;

	for (i = 0; i < 200000; i++) {
		if (licd_check(m->h, (i & 1) ? "sso" : NULL, &in) == LICD_ALLOW &&
		    in.status == LICD_VALID)
			m->allowed++;
		else
			m->other++;
	}
	return NULL;
}

/* One handle, four checking threads, refreshes and usage meanwhile: every
 * answer VALID, nothing torn (ASan/UBSan watch the memory). */
static void test_threads(void)
{
	licd_t *h;
	struct licd_info in;
	struct hammer m[4];
	pthread_t t[4];
	const char *msg;
	int i, ok = 1;

	rm_rf(statedir);
	reset_fake();
	h = open_h("inst-mt", LICD_FAIL_CLOSED, LICD_REFRESH_MANUAL);
	CHECK(licd_refresh(h, &in) == 0);
	for (i = 0; i < 4; i++) {
		m[i].h = h;
		m[i].allowed = m[i].other = 0;
		pthread_create(&t[i], NULL, hammer_main, &m[i]);
	}
	for (i = 0; i < 30; i++) {
		ok &= licd_refresh(h, &in) == 0;
		ok &= licd_usage(h, "sso", 1, &msg) == 0;
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ok &= m[i].allowed == 200000 && m[i].other == 0;
	}
	CHECK(ok);
	licd_close(h);
}

int main(void)
{
	setup();
	test_b64_and_keys();
	test_server_vectors();
	test_pyjwt_vectors();
	test_domains();
	test_online_flow();
	test_cache_and_clock();
	test_tampered_cache();
	test_atomic_write();
	test_usage_queue();
	test_offline_files();
	test_installation_id();
	test_bad_key();
	test_base_url();
	test_background();
	test_domain_offline_and_heartbeat();
	test_threads();
	test_floating();
	rm_rf(keydir);
	lic_free(&F.l);
	free(license_key);
	free(jwks_text);
	UNIT_DONE("client");
}
