/* cache: the table of license state validate and heartbeat answer from
 * (cache.h), without its listener: the fence, the notifications'
 * payloads, invalidation by license, the generation that keeps a lookup
 * older than a change from storing it, replacement, the size bound, and
 * needs_touch against what the database is known to hold. */
#include "cache.h"
#include "unit.h"

#include <json-c/json.h>
#include <string.h>
#include <time.h>

#define L1 "11111111-1111-4111-8111-111111111111"
#define L2 "22222222-2222-4222-8222-222222222222"
#define NOW 1000000LL

static long long mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct lic lic(const char *id, const char *status)
{
	struct lic l;

	memset(&l, 0, sizeof(l));
	snprintf(l.id, sizeof(l.id), "%s", id);
	snprintf(l.customer_id, sizeof(l.customer_id), "%s", L2);
	snprintf(l.plan, sizeof(l.plan), "pro");
	snprintf(l.status, sizeof(l.status), "%s", status);
	l.expires_at = NOW + 86400;
	l.features = json_tokener_parse("[\"sso\"]");
	l.limits = json_tokener_parse("{\"installations\":3}");
	l.domains = json_tokener_parse("[]");
	return l;
}

static void put(const char *license, const char *iid, const char *status,
    const char *version, long long last_seen, unsigned long ticket)
{
	struct lic l = lic(license, status);
	struct cache_fill f = { license, iid, &l, NOW - 100, last_seen,
	    "a.example", version, NULL, NULL, 0, 0, 0, 0 };

	cache_put(ticket, &f);
	lic_free(&l);
}

static int has(const char *license, const char *iid)
{
	const struct cache_entry *e = cache_get(license, iid);

	cache_release(e);
	return e != NULL;
}

int main(void)
{
	const struct cache_entry *e;
	struct lic_lookup lk;
	long long b = 0;
	unsigned long t;
	char iid[32];
	size_t n;
	int i, held = -1;

	CHECK(cache_table_init(8) == 0);

	/* No fence: nothing is stored or answered. */
	put(L1, "i1", "active", "1.0", NOW, cache_ticket(L1));
	CHECK(cache_count() == 0 && !has(L1, "i1"));

	cache_fence(mono() + 60000, 7);
	put(L1, "i1", "active", "1.0", NOW, cache_ticket(L1));
	put(L1, "i2", "active", NULL, NOW, cache_ticket(L1));
	put(L2, "i1", "revoked", NULL, NOW, cache_ticket(L2));
	CHECK(cache_count() == 3);
	CHECK(has(L1, "i1") && has(L1, "i2") && has(L2, "i1"));
	CHECK(!has(L1, "i3") && !has(L2, "i2"));
	/* the offset, on this host's clock rounded to the nearest second */
	{
		long d = (long)(cache_now() - time(NULL));

		CHECK(d == 7 || d == 8);
	}

	/* What a hit reads: the license as stored, the installation, and
	 * needs_touch against last_seen, version and metadata. */
	e = cache_get(L1, "i1");
	CHECK(e != NULL);
	CHECK(cache_read(e, NOW, 60, "1.0", NULL, &lk) == 0);
	CHECK(strcmp(lk.l.id, L1) == 0 && strcmp(lk.l.plan, "pro") == 0);
	CHECK(strcmp(lk.l.status, "active") == 0);
	CHECK(lk.l.expires_at == NOW + 86400 && lk.now == NOW);
	CHECK(lic_has_feature(&lk.l, "sso") && !lic_has_feature(&lk.l, "x"));
	CHECK(lic_limit(&lk.l, "installations") == 3);
	CHECK(lk.active && lk.first_seen == NOW - 100 && lk.last_seen == NOW);
	CHECK(strcmp(lk.domain, "a.example") == 0 && lk.seat_ttl == 0);
	CHECK(!lk.needs_touch);
	lic_free(&lk.l);
	CHECK(cache_read(e, NOW + 61, 60, "1.0", NULL, &lk) == 0 &&
	    lk.needs_touch);
	lic_free(&lk.l);
	CHECK(cache_read(e, NOW, 60, "2.0", NULL, &lk) == 0 && lk.needs_touch);
	lic_free(&lk.l);
	CHECK(cache_read(e, NOW, 60, NULL, "{\"os\":\"bsd\"}", &lk) == 0 &&
	    lk.needs_touch);
	lic_free(&lk.l);
	cache_release(e);
	/* An unknown version is another one. */
	e = cache_get(L1, "i2");
	CHECK(cache_read(e, NOW, 60, "1.0", NULL, &lk) == 0 && lk.needs_touch);
	lic_free(&lk.l);
	CHECK(cache_read(e, NOW, 60, NULL, NULL, &lk) == 0 && !lk.needs_touch);
	lic_free(&lk.l);
	/* A held entry outlives its license's invalidation. */
	CHECK(cache_apply(L1, &b) == 0);
	CHECK(cache_read(e, NOW, 60, NULL, NULL, &lk) == 0 &&
	    lk.first_seen == NOW - 100);
	lic_free(&lk.l);
	cache_release(e);
	/* Refreshes are not due for a license that is not active. */
	e = cache_get(L2, "i1");
	CHECK(e != NULL && cache_read(e, NOW + 999, 60, "9", NULL, &lk) == 0 &&
	    !lk.needs_touch && strcmp(lk.l.status, "revoked") == 0);
	lic_free(&lk.l);
	cache_release(e);

	/* A floating seat comes back as it was stored. */
	{
		struct lic fl = lic(L1, "active");
		struct cache_fill f = { L1, "f1", &fl, NOW - 100, NOW,
		    NULL, NULL, NULL, NULL, 900, NOW + 800, NOW + 86400, 1 };

		cache_put(cache_ticket(L1), &f);
		lic_free(&fl);
		e = cache_get(L1, "f1");
		CHECK(e != NULL && cache_read(e, NOW, 60, NULL, NULL,
		    &lk) == 0);
		CHECK(lk.seat_ttl == 900 && lk.seat_expires == NOW + 800 &&
		    lk.borrowed_until == NOW + 86400 && lk.seat_overdraft == 1 &&
		    lk.active && lk.domain == NULL);
		lic_free(&lk.l);
		cache_release(e);
		CHECK(cache_apply(L1, &b) == 0 && !has(L1, "f1"));
	}

	/* Domain, version and metadata each come back as stored, or as
	 * not known (NULL), whichever of them is given. */
	{
		struct lic ml = lic(L1, "active");
		struct cache_fill f = { L1, "m1", &ml, NOW - 100, NOW,
		    NULL, "", "{\"os\":\"bsd\"}", NULL, 0, 0, 0, 0 };

		cache_put(cache_ticket(L1), &f);
		lic_free(&ml);
		e = cache_get(L1, "m1");
		CHECK(e != NULL && cache_read(e, NOW, 60, "",
		    "{\"os\":\"bsd\"}", &lk) == 0);
		CHECK(lk.domain == NULL && !lk.needs_touch && lk.active &&
		    lk.seat_ttl == 0 && lk.last_seen == NOW);
		lic_free(&lk.l);
		CHECK(cache_read(e, NOW, 60, NULL, "{}", &lk) == 0 &&
		    lk.needs_touch);
		lic_free(&lk.l);
		cache_release(e);
		CHECK(cache_apply(L1, &b) == 0 && !has(L1, "m1"));
	}

	/* A license id not in the database's form (upper case) is neither
	 * stored nor found: no entry could be dropped by its notification. */
	{
		const char *up = "11111111-1111-4111-8111-11111111111A";

		put(up, "u1", "active", NULL, NOW, cache_ticket(up));
		CHECK(!has(up, "u1") && cache_count() == 1);
		CHECK(cache_apply(up, &b) == 0);
	}

	/* A license's own entry (iid ""): the license, no installation,
	 * nothing due; dropped with its license's entries. */
	put(L1, "", "active", NULL, 0, cache_ticket(L1));
	put(L1, "i2", "active", NULL, NOW, cache_ticket(L1));
	CHECK(has(L1, "") && !has(L1, "i9"));
	e = cache_get(L1, "");
	CHECK(e != NULL && cache_read(e, NOW, 60, "9.9", "{}", &lk) == 0);
	CHECK(strcmp(lk.l.id, L1) == 0 && lic_has_feature(&lk.l, "sso"));
	CHECK(!lk.active && !lk.needs_touch);
	lic_free(&lk.l);
	cache_release(e);
	CHECK(cache_apply(L1, &b) == 0 && !has(L1, "") && !has(L1, "i2"));

	/* A license id drops that license's entries only. */
	CHECK(!has(L1, "i1") && !has(L1, "i2") && has(L2, "i1"));
	CHECK(cache_count() == 1);

	/* A lookup sent before an invalidation does not store what it
	 * read. */
	t = cache_ticket(L1);
	CHECK(cache_apply(L1, &b) == 0);
	put(L1, "i1", "active", NULL, NOW, t);
	CHECK(!has(L1, "i1"));
	t = cache_ticket(L1);
	cache_flush();
	put(L1, "i1", "active", NULL, NOW, t);
	CHECK(!has(L1, "i1") && cache_count() == 0);
	t = cache_ticket(L1);
	put(L1, "i1", "active", NULL, NOW, t);
	CHECK(has(L1, "i1"));

	/* Replacing keeps one entry. */
	put(L1, "i1", "suspended", NULL, NOW, cache_ticket(L1));
	CHECK(cache_count() == 1);
	e = cache_get(L1, "i1");
	CHECK(cache_read(e, NOW, 60, NULL, NULL, &lk) == 0 &&
	    strcmp(lk.l.status, "suspended") == 0);
	lic_free(&lk.l);
	cache_release(e);

	/* The payloads: '*', barriers, anything else drops everything. */
	CHECK(cache_apply("b 42", &b) == 2 && b == 42 && cache_count() == 1);
	CHECK(cache_apply("*", &b) == 1 && cache_count() == 0);
	put(L1, "i1", "active", NULL, NOW, cache_ticket(L1));
	CHECK(cache_apply("b x", &b) == -1 && cache_count() == 0);
	put(L1, "i1", "active", NULL, NOW, cache_ticket(L1));
	CHECK(cache_apply("b 0", &b) == -1 && cache_count() == 0);
	put(L1, "i1", "active", NULL, NOW, cache_ticket(L1));
	CHECK(cache_apply("not-a-uuid", &b) == -1 && cache_count() == 0);

	/* What entries hold alike is shared: each reads its own, and an
	 * entry outlives the drop of another holding the same texts (a
	 * reference held across a drop, too). */
	cache_flush();
	put(L1, "s1", "active", "1.0", NOW, cache_ticket(L1));
	put(L2, "s1", "active", "1.0", NOW, cache_ticket(L2));
	put(L2, "s2", "active", "2.0", NOW, cache_ticket(L2));
	e = cache_get(L1, "s1");
	CHECK(e != NULL && cache_apply(L1, &b) == 0 && !has(L1, "s1"));
	CHECK(cache_read(e, NOW, 60, "1.0", NULL, &lk) == 0 &&
	    strcmp(lk.l.id, L1) == 0 && strcmp(lk.l.customer_id, L2) == 0 &&
	    strcmp(lk.l.plan, "pro") == 0 &&
	    strcmp(lk.l.status, "active") == 0 &&
	    strcmp(lk.domain, "a.example") == 0 && !lk.needs_touch &&
	    json_object_array_length(lk.l.features) == 1 &&
	    strcmp(json_object_to_json_string(lk.l.limits),
	    "{ \"installations\": 3 }") == 0);
	lic_free(&lk.l);
	cache_release(e);
	e = cache_get(L2, "s1");
	CHECK(cache_read(e, NOW, 60, "1.0", NULL, &lk) == 0 &&
	    strcmp(lk.l.id, L2) == 0 && strcmp(lk.l.status, "active") == 0 &&
	    !lk.needs_touch);
	lic_free(&lk.l);
	cache_release(e);
	e = cache_get(L2, "s2");
	CHECK(cache_read(e, NOW, 60, "1.0", NULL, &lk) == 0 && lk.needs_touch);
	lic_free(&lk.l);
	CHECK(cache_read(e, NOW, 60, "2.0", NULL, &lk) == 0 && !lk.needs_touch);
	lic_free(&lk.l);
	cache_release(e);
	cache_flush();

	/* The size bound. Full, a put has no room while its bucket's
	 * oldest entry is younger than CACHE_HOLD_MS: the entries held
	 * stay, the new ones are not stored, and a held one is replaced. */
	for (i = 0; i < 100; i++) {
		snprintf(iid, sizeof(iid), "n%d", i);
		put(L2, iid, "active", NULL, NOW, cache_ticket(L2));
	}
	CHECK(cache_count() <= 8 && cache_count() > 0);
	for (i = 0, n = 0; i < 100; i++) {
		snprintf(iid, sizeof(iid), "n%d", i);
		if (has(L2, iid)) {
			held = i;
			n++;
		}
	}
	CHECK(n == cache_count() && !has(L2, "n99") && !has(L2, "n98"));
	snprintf(iid, sizeof(iid), "n%d", held);
	put(L2, iid, "suspended", NULL, NOW, cache_ticket(L2));
	e = cache_get(L2, iid);
	CHECK(e != NULL && cache_count() == n);
	if (e != NULL) {
		CHECK(cache_read(e, NOW, 60, NULL, NULL, &lk) == 0 &&
		    strcmp(lk.l.status, "suspended") == 0);
		lic_free(&lk.l);
		cache_release(e);
	}
	/* Held long enough, each put makes room with its bucket's oldest
	 * entry: the latest puts are all held (with the newest made room
	 * with, each put would drop the one before it in its bucket). */
	cache_set_hold(0);
	for (i = 0; i < 100; i++) {
		snprintf(iid, sizeof(iid), "n%d", i);
		put(L2, iid, "active", NULL, NOW, cache_ticket(L2));
	}
	CHECK(cache_count() <= 8 && cache_count() > 0);
	for (i = 96; i < 100; i++) {
		snprintf(iid, sizeof(iid), "n%d", i);
		CHECK(has(L2, iid));
	}

	/* The fence over: nothing answered, nothing stored. */
	cache_fence(mono() - 1, 0);
	CHECK(!has(L2, "n99"));
	cache_flush();
	put(L1, "i1", "active", NULL, NOW, cache_ticket(L1));
	CHECK(cache_count() == 0);

	CHECK(cache_table_init(0) == 0);
	UNIT_DONE("cache");
}
