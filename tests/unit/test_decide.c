/* decide(): the result-code table of docs/API.md (validate, heartbeat),
 * what each call writes before its answer, and how the write's own code is
 * folded in (decide_written). */
#include "decide.h"
#include "unit.h"

#include <json-c/json.h>
#include <string.h>

#define NOW 1000000LL
#define TTL 900L

/* A license row and its installation, as licd_lookup returns them. */
struct row {
	const char *status;		/* licenses.status */
	long long expires, grace;	/* 0: none */
	const char *domains, *features;	/* JSON arrays */
	int active;			/* the installation's row is active */
	long long first;		/* 0: no installation row */
	const char *inst_domain;	/* the installation's recorded domain */
	int needs_touch;
	long ttl;			/* 0: node-locked */
	long long seat_expires;
};

/* One call and what decide() must say. */
struct tcase {
	const char *name;
	enum decide_call call;
	struct row r;
	const char *domain, *feature;	/* the request's */
	const char *code;
	enum decide_write write;
	int touch, active, lease;
};

static const struct row ok = { "active", NOW + 86400, 0, "[]",
    "[\"sso\"]", 1, NOW - 600, NULL, 0, 0, 0 };

static void fill(const struct row *r, struct lic_lookup *lk)
{
	memset(lk, 0, sizeof(*lk));
	snprintf(lk->l.status, sizeof(lk->l.status), "%s", r->status);
	lk->l.expires_at = r->expires;
	lk->l.grace_until = r->grace;
	lk->l.domains = json_tokener_parse(r->domains);
	lk->l.features = json_tokener_parse(r->features);
	lk->l.limits = json_object_new_object();
	lk->active = r->active;
	lk->first_seen = r->first;
	lk->last_seen = r->first;
	lk->now = (time_t)NOW;
	lk->domain = r->inst_domain;
	lk->needs_touch = r->needs_touch;
	lk->seat_ttl = r->ttl;
	lk->seat_expires = r->seat_expires;
}

static struct row with(struct row r, const char *status, long long expires,
    long long grace)
{
	if (status != NULL)
		r.status = status;
	r.expires = expires;
	r.grace = grace;
	return r;
}

static void run(const struct tcase *t)
{
	struct decide_req rq = { t->call, t->domain, t->feature };
	struct lic_lookup lk;
	struct decision d;
	int ok_;

	fill(&t->r, &lk);
	decide(&rq, &lk, &d);
	ok_ = strcmp(d.code, t->code) == 0 && d.write == t->write &&
	    d.touch == t->touch && d.active == t->active &&
	    d.lease == t->lease;
	if (!ok_)
		fprintf(stderr, "%s: code %s write %d touch %d active %d "
		    "lease %d\n", t->name, d.code, d.write, d.touch, d.active,
		    d.lease);
	CHECK(ok_);
	/* A static string of the contract, never the row's. */
	CHECK(decide_code(d.code) == d.code);
	lic_free(&lk.l);
}

static void test_table(void)
{
	struct row restricted = ok, inactive = ok, fresh = ok, touch = ok;
	struct row floating = ok, lapsed, due, noseat, newdomain = ok;
	struct row revoked_inactive;
	size_t i;

	restricted.domains = "[\"company.com\",\"*.company.com\"]";
	inactive.active = 0;
	fresh.active = 0;
	fresh.first = 0;
	touch.needs_touch = 1;
	newdomain.inst_domain = "old.company.com";
	newdomain.domains = restricted.domains;
	floating.ttl = TTL;
	floating.seat_expires = NOW + TTL - 10;	/* live, not due */
	lapsed = floating;
	lapsed.seat_expires = NOW;		/* lapses at now */
	due = floating;
	due.seat_expires = NOW + TTL / 4;	/* less than 3/4 left */
	noseat = floating;
	noseat.active = 0;
	noseat.seat_expires = 0;
	revoked_inactive = with(inactive, "revoked", 0, 0);

	const struct tcase cases[] = {
	/* validate, in the contract's order of checks */
	{ "valid", DECIDE_VALIDATE, ok, NULL, NULL, "VALID",
	    DECIDE_NO_WRITE, 0, 1, 1 },
	{ "revoked", DECIDE_VALIDATE, with(ok, "revoked", 0, 0), NULL, NULL,
	    "REVOKED", DECIDE_NO_WRITE, 0, 1, 0 },
	{ "revoked before expired", DECIDE_VALIDATE,
	    with(ok, "revoked", NOW - 1, 0), NULL, NULL, "REVOKED",
	    DECIDE_NO_WRITE, 0, 1, 0 },
	{ "suspended", DECIDE_VALIDATE, with(ok, "suspended", 0, 0), NULL,
	    NULL, "SUSPENDED", DECIDE_NO_WRITE, 0, 1, 0 },
	{ "expired status", DECIDE_VALIDATE, with(ok, "expired", 0, 0), NULL,
	    NULL, "EXPIRED", DECIDE_NO_WRITE, 0, 1, 0 },
	{ "expired by date", DECIDE_VALIDATE, with(ok, NULL, NOW, 0), NULL,
	    NULL, "EXPIRED", DECIDE_NO_WRITE, 0, 1, 0 },
	{ "in grace", DECIDE_VALIDATE, with(ok, NULL, NOW - 10, NOW + 10),
	    NULL, NULL, "VALID", DECIDE_NO_WRITE, 0, 1, 1 },
	{ "grace over", DECIDE_VALIDATE, with(ok, NULL, NOW - 10, NOW), NULL,
	    NULL, "EXPIRED", DECIDE_NO_WRITE, 0, 1, 0 },
	{ "perpetual", DECIDE_VALIDATE, with(ok, NULL, 0, 0), NULL, NULL,
	    "VALID", DECIDE_NO_WRITE, 0, 1, 1 },
	{ "expired before domain", DECIDE_VALIDATE,
	    with(restricted, NULL, NOW - 1, 0), "evil.com", NULL, "EXPIRED",
	    DECIDE_NO_WRITE, 0, 1, 0 },
	{ "no domain, restricted", DECIDE_VALIDATE, restricted, NULL, NULL,
	    "DOMAIN_NOT_ALLOWED", DECIDE_NO_WRITE, 0, 1, 0 },
	{ "domain not allowed", DECIDE_VALIDATE, restricted, "evilcompany.com",
	    NULL, "DOMAIN_NOT_ALLOWED", DECIDE_NO_WRITE, 0, 1, 0 },
	{ "domain before feature", DECIDE_VALIDATE, restricted, "evil.com",
	    "nope", "DOMAIN_NOT_ALLOWED", DECIDE_NO_WRITE, 0, 1, 0 },
	{ "feature not licensed", DECIDE_VALIDATE, ok, NULL, "nope",
	    "FEATURE_NOT_LICENSED", DECIDE_NO_WRITE, 0, 1, 0 },
	{ "feature licensed", DECIDE_VALIDATE, ok, NULL, "sso", "VALID",
	    DECIDE_NO_WRITE, 0, 1, 1 },
	/* what validate writes */
	{ "new installation", DECIDE_VALIDATE, fresh, NULL, NULL, "VALID",
	    DECIDE_ACTIVATE, 0, 0, 1 },
	{ "deactivated installation", DECIDE_VALIDATE, inactive, NULL, NULL,
	    "VALID", DECIDE_ACTIVATE, 0, 0, 1 },
	{ "refused: no activation", DECIDE_VALIDATE,
	    with(fresh, "suspended", 0, 0), NULL, NULL, "SUSPENDED",
	    DECIDE_NO_WRITE, 0, 0, 0 },
	{ "newly allowed domain", DECIDE_VALIDATE, newdomain,
	    "app.company.com", NULL, "VALID", DECIDE_DOMAIN, 0, 1, 1 },
	{ "same domain", DECIDE_VALIDATE, newdomain, "old.company.com", NULL,
	    "VALID", DECIDE_NO_WRITE, 0, 1, 1 },
	{ "refresh due", DECIDE_VALIDATE, touch, NULL, NULL, "VALID",
	    DECIDE_NO_WRITE, 1, 1, 1 },
	{ "refused call refreshes too", DECIDE_VALIDATE, touch, NULL, "nope",
	    "FEATURE_NOT_LICENSED", DECIDE_NO_WRITE, 1, 1, 0 },
	/* validate, floating */
	{ "floating: live seat", DECIDE_VALIDATE, floating, NULL, NULL,
	    "VALID", DECIDE_NO_WRITE, 0, 1, 1 },
	{ "floating: refresh", DECIDE_VALIDATE,
	    (struct row){ "active", 0, 0, "[]", "[]", 1, NOW - 5, NULL, 1,
	    TTL, NOW + TTL }, NULL, NULL, "VALID", DECIDE_NO_WRITE, 1, 1, 1 },
	{ "floating: renewal due", DECIDE_VALIDATE, due, NULL, NULL, "VALID",
	    DECIDE_SEAT_TAKE, 0, 1, 1 },
	{ "floating: lapsed", DECIDE_VALIDATE, lapsed, NULL, NULL, "VALID",
	    DECIDE_SEAT_TAKE, 0, 0, 1 },
	{ "floating: no seat", DECIDE_VALIDATE, noseat, NULL, NULL, "VALID",
	    DECIDE_SEAT_TAKE, 0, 0, 1 },
	{ "floating: new domain", DECIDE_VALIDATE, floating, "a.example",
	    NULL, "VALID", DECIDE_SEAT_TAKE, 0, 1, 1 },
	{ "floating: revoked", DECIDE_VALIDATE, with(lapsed, "revoked", 0, 0),
	    NULL, NULL, "REVOKED", DECIDE_NO_WRITE, 0, 0, 0 },
	/* heartbeat */
	{ "heartbeat", DECIDE_HEARTBEAT, ok, NULL, NULL, "VALID",
	    DECIDE_NO_WRITE, 0, 1, 1 },
	{ "heartbeat refresh", DECIDE_HEARTBEAT, touch, NULL, NULL, "VALID",
	    DECIDE_NO_WRITE, 1, 1, 1 },
	{ "heartbeat ignores domain rules", DECIDE_HEARTBEAT, restricted,
	    NULL, NULL, "VALID", DECIDE_NO_WRITE, 0, 1, 1 },
	{ "heartbeat never activates", DECIDE_HEARTBEAT, inactive, NULL, NULL,
	    "INSTALLATION_NOT_ACTIVE", DECIDE_NO_WRITE, 0, 0, 0 },
	{ "heartbeat unknown installation", DECIDE_HEARTBEAT, fresh, NULL,
	    NULL, "INSTALLATION_NOT_ACTIVE", DECIDE_NO_WRITE, 0, 0, 0 },
	{ "heartbeat revoked first", DECIDE_HEARTBEAT, revoked_inactive, NULL,
	    NULL, "REVOKED", DECIDE_NO_WRITE, 0, 0, 0 },
	{ "heartbeat suspended", DECIDE_HEARTBEAT,
	    with(ok, "suspended", 0, 0), NULL, NULL, "SUSPENDED",
	    DECIDE_NO_WRITE, 0, 1, 0 },
	{ "heartbeat expired", DECIDE_HEARTBEAT, with(ok, NULL, NOW - 1, 0),
	    NULL, NULL, "EXPIRED", DECIDE_NO_WRITE, 0, 1, 0 },
	{ "heartbeat floating live", DECIDE_HEARTBEAT, floating, NULL, NULL,
	    "VALID", DECIDE_NO_WRITE, 0, 1, 1 },
	{ "heartbeat floating due", DECIDE_HEARTBEAT, due, NULL, NULL,
	    "VALID", DECIDE_SEAT_RENEW, 0, 1, 1 },
	{ "heartbeat floating lapsed", DECIDE_HEARTBEAT, lapsed, NULL, NULL,
	    "INSTALLATION_NOT_ACTIVE", DECIDE_NO_WRITE, 0, 0, 0 },
	{ "heartbeat floating no seat", DECIDE_HEARTBEAT, noseat, NULL, NULL,
	    "INSTALLATION_NOT_ACTIVE", DECIDE_NO_WRITE, 0, 0, 0 },
	{ "heartbeat floating revoked", DECIDE_HEARTBEAT,
	    with(lapsed, "revoked", 0, 0), NULL, NULL, "REVOKED",
	    DECIDE_NO_WRITE, 0, 1, 0 },
	};

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run(&cases[i]);
}

/* Which decisions may be answered from memory (decide_from_memory): no
 * write, and a floating seat live with more than three quarters of its
 * ttl plus DECIDE_SEAT_SKEW left. */
static int from_memory(const struct row *r, enum decide_call call,
    const char *domain)
{
	struct decide_req rq = { call, domain, NULL };
	struct lic_lookup lk;
	struct decision d;
	int m;

	fill(r, &lk);
	decide(&rq, &lk, &d);
	m = decide_from_memory(&lk, &d);
	lic_free(&lk.l);
	return m;
}

static void test_from_memory(void)
{
	struct row node = ok, fl = ok, revoked;
	long left = LIC_SEAT_RENEW_LEFT(TTL) + DECIDE_SEAT_SKEW;
	int v;

	fl.ttl = TTL;
	for (v = 0; v < 2; v++) {
		enum decide_call call = v ? DECIDE_HEARTBEAT : DECIDE_VALIDATE;

		CHECK(from_memory(&node, call, NULL));
		fl.seat_expires = NOW + TTL;
		CHECK(from_memory(&fl, call, NULL));
		fl.seat_expires = NOW + left + 1;
		CHECK(from_memory(&fl, call, NULL));
		/* within the margin: no write due yet, but the database's
		 * clock may already have renewed it */
		fl.seat_expires = NOW + left;
		CHECK(!from_memory(&fl, call, NULL));
		fl.seat_expires = NOW + LIC_SEAT_RENEW_LEFT(TTL);
		CHECK(!from_memory(&fl, call, NULL));
		fl.seat_expires = NOW + 1;
		CHECK(!from_memory(&fl, call, NULL));
		fl.seat_expires = NOW;		/* lapsed */
		CHECK(!from_memory(&fl, call, NULL));
		fl.seat_expires = 0;		/* none */
		CHECK(!from_memory(&fl, call, NULL));
		/* a refused call of a lapsed seat: no write, but not held */
		revoked = with(fl, "revoked", 0, 0);
		CHECK(!from_memory(&revoked, call, NULL));
		revoked.seat_expires = NOW + TTL;
		CHECK(from_memory(&revoked, call, NULL));
	}
	/* writes: a new domain (a take), an activation */
	fl.seat_expires = NOW + TTL;
	CHECK(!from_memory(&fl, DECIDE_VALIDATE, "new.example"));
	node.active = 0;
	CHECK(!from_memory(&node, DECIDE_VALIDATE, NULL));
	node.inst_domain = "old.example";
	node.active = 1;
	CHECK(!from_memory(&node, DECIDE_VALIDATE, "new.example"));
	CHECK(from_memory(&node, DECIDE_VALIDATE, "old.example"));
}

static void test_invalid_key(void)
{
	struct decide_req v = { DECIDE_VALIDATE, "a.example", "sso" };
	struct decide_req h = { DECIDE_HEARTBEAT, NULL, NULL };
	struct decision d;

	decide(&v, NULL, &d);
	CHECK(strcmp(d.code, "INVALID_KEY") == 0);
	CHECK(d.write == DECIDE_NO_WRITE && !d.touch && !d.active && !d.lease);
	decide(&h, NULL, &d);
	CHECK(strcmp(d.code, "INVALID_KEY") == 0);
	CHECK(d.write == DECIDE_NO_WRITE && !d.touch && !d.active && !d.lease);
}

/* The write's code, as PostgreSQL decided it under the license's lock. */
static void written(enum decide_write w, const char *code,
    const char *want, int active, int lease)
{
	struct decision d = { "VALID", w, 0, w == DECIDE_SEAT_RENEW ||
	    w == DECIDE_DOMAIN, 1 };

	decide_written(&d, code);
	if (strcmp(d.code, want) != 0 || d.active != active ||
	    d.lease != lease)
		fprintf(stderr, "written %d %s: %s %d %d\n", w, code, d.code,
		    d.active, d.lease);
	CHECK(strcmp(d.code, want) == 0);
	CHECK(d.active == active && d.lease == lease);
	CHECK(decide_code(d.code) == d.code);
}

static void test_written(void)
{
	written(DECIDE_ACTIVATE, "VALID", "VALID", 1, 1);
	written(DECIDE_ACTIVATE, "TOO_MANY_INSTALLATIONS",
	    "TOO_MANY_INSTALLATIONS", 0, 0);
	written(DECIDE_ACTIVATE, "REVOKED", "REVOKED", 0, 0);
	written(DECIDE_ACTIVATE, "SUSPENDED", "SUSPENDED", 0, 0);
	written(DECIDE_ACTIVATE, "EXPIRED", "EXPIRED", 0, 0);
	written(DECIDE_ACTIVATE, "INVALID_KEY", "INVALID_KEY", 0, 0);
	written(DECIDE_ACTIVATE, "SOMETHING_ELSE", "INVALID_KEY", 0, 0);
	written(DECIDE_DOMAIN, "VALID", "VALID", 1, 1);
	written(DECIDE_SEAT_TAKE, "VALID", "VALID", 1, 1);
	written(DECIDE_SEAT_TAKE, "TOO_MANY_INSTALLATIONS",
	    "TOO_MANY_INSTALLATIONS", 0, 0);
	written(DECIDE_SEAT_TAKE, "EXPIRED", "EXPIRED", 0, 0);
	written(DECIDE_SEAT_RENEW, "VALID", "VALID", 1, 1);
	written(DECIDE_SEAT_RENEW, "REVOKED", "REVOKED", 0, 0);
	written(DECIDE_SEAT_RENEW, "SUSPENDED", "SUSPENDED", 0, 0);
	written(DECIDE_SEAT_RENEW, "EXPIRED", "EXPIRED", 0, 0);
	written(DECIDE_SEAT_RENEW, "INSTALLATION_NOT_ACTIVE",
	    "INSTALLATION_NOT_ACTIVE", 0, 0);
	written(DECIDE_SEAT_RENEW, "NOT_FLOATING", "INSTALLATION_NOT_ACTIVE",
	    0, 0);
	written(DECIDE_SEAT_RENEW, "INVALID_KEY", "INSTALLATION_NOT_ACTIVE",
	    0, 0);
}

int main(void)
{
	test_table();
	test_from_memory();
	test_invalid_key();
	test_written();
	UNIT_DONE("decide");
}
