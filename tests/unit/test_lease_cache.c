/* lease_cache: which leases lic_add_lease_until hands out again (lease reuse,
 * lic.c). An installation that calls again and again keeps its lease
 * through a burst of calls that each sign once and never come back (new
 * installations), many more than the cache holds; a newcomer still gets
 * a way and its lease is reused on its next call; a lease past
 * lease_reuse, or asked for with a nonce, is signed anew. A floating
 * seat's lease forgotten (lic_lease_forget: the seat renewed) is signed
 * anew if asked for again; another end's is not touched. */
#include "conffile.h"
#include "config.h"
#include "keyfile.h"
#include "lic.h"
#include "unit.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define L1 "11111111-1111-4111-8111-111111111111"
#define C1 "22222222-2222-4222-8222-222222222222"
#define REUSE 86400
/* One-off installations in the burst: three times the cache's slots
 * (lic.c), so that every set of it overflows many times over. */
#define BURST 98304

static char dir[] = "/tmp/licd-unit-XXXXXX";

static struct lic lic(void)
{
	struct lic l;

	memset(&l, 0, sizeof(l));
	snprintf(l.id, sizeof(l.id), L1);
	snprintf(l.customer_id, sizeof(l.customer_id), C1);
	snprintf(l.plan, sizeof(l.plan), "pro");
	snprintf(l.status, sizeof(l.status), "active");
	l.features = json_tokener_parse("[]");
	l.limits = json_tokener_parse("{}");
	l.domains = json_tokener_parse("[]");
	return l;
}

/* The lease validate answers installation iid at now (NULL on error);
 * the caller frees it. */
static char *lease(const struct lic *l, const char *iid, const char *nonce,
    time_t now)
{
	struct json_object *o = json_object_new_object(), *v;
	char *s = NULL;

	if (lic_add_lease_until(o, l, iid, nonce, now, 0) == LIC_OK &&
	    json_object_object_get_ex(o, "lease", &v))
		s = strdup(json_object_get_string(v));
	json_object_put(o);
	return s;
}

/* The same with exp = until (a floating seat's). */
static char *lease_until(const struct lic *l, const char *iid, time_t now,
    long long until)
{
	struct json_object *o = json_object_new_object(), *v;
	char *s = NULL;

	if (lic_add_lease_until(o, l, iid, NULL, now, until) == LIC_OK &&
	    json_object_object_get_ex(o, "lease", &v))
		s = strdup(json_object_get_string(v));
	json_object_put(o);
	return s;
}

int main(void)
{
	struct lic l;
	char conf[UNIT_CONF_PATH], text[128], kid[64], cmd[600], iid[32];
	char *hot, *again, *fresh, *next;
	EVP_PKEY *pk;
	time_t t0 = 1900000000, now;
	int i;

	if (mkdtemp(dir) == NULL)
		return 1;
	pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	unit_write_key(dir, pk, kid, sizeof(kid), 1);
	EVP_PKEY_free(pk);
	snprintf(text, sizeof(text), "keys_dir = %s\nissuer = licd-unit\n"
	    "lease_reuse = %d\n", dir, REUSE);
	CHECK(unit_load_conf(text, conf, cmd, sizeof(cmd)) == 0);
	CHECK(lic_init_keys(cmd, sizeof(cmd)) == 0);
	l = lic();

	/* An installation calling again gets the same lease (an ECDSA
	 * signature anew would differ). */
	hot = lease(&l, "hot", NULL, t0);
	again = lease(&l, "hot", NULL, t0 + 1);
	CHECK(hot != NULL && again != NULL && strcmp(hot, again) == 0);
	free(again);

	/* A burst of new installations, each calling once, later than the
	 * hot one's lease was signed: the hot one still gets its lease. */
	now = t0 + 2;
	for (i = 0; i < BURST; i++) {
		snprintf(iid, sizeof(iid), "new-%d", i);
		free(lease(&l, iid, NULL, now + i / 1000));
	}
	now += BURST / 1000 + 1;
	again = lease(&l, "hot", NULL, now);
	CHECK(again != NULL && strcmp(hot, again) == 0);
	free(again);

	/* A newcomer after the burst gets a way: its next call reuses. */
	fresh = lease(&l, "late", NULL, now);
	again = lease(&l, "late", NULL, now + 1);
	CHECK(fresh != NULL && again != NULL && strcmp(fresh, again) == 0);
	free(fresh);
	free(again);
	/* With a nonce: always signed anew. */
	fresh = lease(&l, "hot", "n1", now + 1);
	CHECK(fresh != NULL && strcmp(fresh, hot) != 0);
	free(fresh);

	/* Past lease_reuse the hot lease is signed anew, once: the next
	 * call reuses the new one. */
	fresh = lease(&l, "hot", NULL, t0 + REUSE);
	next = lease(&l, "hot", NULL, t0 + REUSE + 1);
	CHECK(fresh != NULL && strcmp(fresh, hot) != 0);
	CHECK(next != NULL && strcmp(fresh, next) == 0);
	free(fresh);
	free(next);

	/* A floating seat renewed: its old lease forgotten, the new one
	 * and other installations' kept. */
	fresh = lease_until(&l, "seat", t0, t0 + 900);
	next = lease_until(&l, "seat", t0, t0 + 1000);
	lic_lease_forget(&l, "seat", t0 + 900);
	lic_lease_forget(&l, "other", t0 + 1000);
	again = lease_until(&l, "seat", t0 + 1, t0 + 1000);
	CHECK(next != NULL && again != NULL && strcmp(next, again) == 0);
	free(again);
	again = lease_until(&l, "seat", t0 + 1, t0 + 900);
	CHECK(fresh != NULL && again != NULL && strcmp(fresh, again) != 0);
	free(again);
	free(fresh);
	free(next);

	free(hot);
	lic_free(&l);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup failed\n");
	UNIT_DONE("lease_cache");
}
