/*
 * usage: POST /api/usage counts metered use against monthly limits;
 * GET /api/usage reads a month's counters.
 *
 * The count is exact under any concurrency because PostgreSQL does it:
 * licd_usage_add_batch() moves the counter with a conditional upsert
 * (used + q <= limit) and claims the idempotency key in the same
 * transaction. The limit for feature X is limits["X_per_month"].
 * Increments arriving together share that transaction (batch.h: one WAL
 * flush for all of them); each is answered exactly as if alone. The
 * license is read first, with lookup_read (lookup.h).
 */
#include "batch.h"
#include "db.h"
#include "http.h"
#include "json.h"
#include "lic.h"
#include "lookup.h"
#include "url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct db_stmt stmts[] = {
	LOOKUP_STMTS,
	/* Not retry-safe: a resend after a broken connection could count
	 * twice when no idempotency key was given. */
	{ "add", "SELECT * FROM licd_usage_add_batch($1)", 0 },
	{ "get", "SELECT * FROM licd_usage_get($1, $2)", 1 },
};

/* One increment: what post_usage asks, and the answer. */
struct add {
	const char *license, *iid, *feature, *idem, *rid;
	long long qty, lim;		/* lim < 0: unmetered */
	int st;				/* DB_OK or db_exec's failure */
	int answered;			/* a row came back for it */
	int accepted;			/* 1, 0, or -1: unresolved (NULL) */
	int replayed;
	char period[16], feature_was[72];
	long long used, lim_was, qty_was;	/* lim_was < 0: NULL */
};

static void add_item(struct json_object *a, size_t o, const struct add *x)
{
	struct json_object *e = json_object_new_object();

	json_object_object_add(e, "o", json_object_new_int64((int64_t)o));
	json_object_object_add(e, "l", json_object_new_string(x->license));
	json_object_object_add(e, "i", x->iid ?
	    json_object_new_string(x->iid) : NULL);
	json_object_object_add(e, "f", json_object_new_string(x->feature));
	json_object_object_add(e, "q", json_object_new_int64(x->qty));
	json_object_object_add(e, "m", x->lim < 0 ? NULL :
	    json_object_new_int64(x->lim));
	json_object_object_add(e, "k", x->idem ?
	    json_object_new_string(x->idem) : NULL);
	json_object_object_add(e, "r", json_object_new_string(x->rid));
	json_object_array_add(a, e);
}

static void take_row(PGresult *res, int row, struct add *x)
{
	x->answered = 1;
	x->accepted = PQgetisnull(res, row, 1) ? -1 :
	    strcmp(PQgetvalue(res, row, 1), "t") == 0;
	snprintf(x->period, sizeof(x->period), "%s", PQgetvalue(res, row, 2));
	x->used = strtoll(PQgetvalue(res, row, 3), NULL, 10);
	x->lim_was = PQgetisnull(res, row, 4) ? -1 :
	    strtoll(PQgetvalue(res, row, 4), NULL, 10);
	x->replayed = strcmp(PQgetvalue(res, row, 5), "t") == 0;
	snprintf(x->feature_was, sizeof(x->feature_was), "%s",
	    PQgetvalue(res, row, 6));
	x->qty_was = strtoll(PQgetvalue(res, row, 7), NULL, 10);
}

/* batch_run_fn: all items in one licd_usage_add_batch call. If the call
 * fails as a statement (not as a connection), each item is retried alone
 * so that one item's error cannot fail the others; so is a batch that
 * waited lock_timeout on a counter row held elsewhere: only the items of
 * that row wait again and answer 503. */
static void run_adds(struct db *db, struct batch_item **items, size_t n)
{
	struct json_object *a = json_object_new_array();
	const char *params[1];
	PGresult *res = NULL;
	size_t i;
	int st, r, o;

	for (i = 0; i < n; i++) {
		struct add *x = items[i]->arg;

		x->answered = 0;
		add_item(a, i, x);
	}
	params[0] = js_dump(a, NULL);
	st = db_exec(db, "add", 1, params, &res);
	if ((st == DB_ERROR || st == DB_BUSY) && n > 1) {
		PQclear(res);
		json_object_put(a);
		for (i = 0; i < n; i++)
			run_adds(db, &items[i], 1);
		return;
	}
	for (i = 0; i < n; i++)
		((struct add *)items[i]->arg)->st = st;
	for (r = 0; st == DB_OK && r < PQntuples(res); r++) {
		o = atoi(PQgetvalue(res, r, 0));
		if (o >= 0 && (size_t)o < n)
			take_row(res, r, items[o]->arg);
	}
	PQclear(res);
	json_object_put(a);
}

static struct batch adds = BATCH_INIT(run_adds, BATCH_MAX);

/* Verifies the key and loads the license; on failure the response is set
 * (403 with the license's code, or a database error). */
static int load_license(struct http_req *req, struct http_resp *resp,
    const char *key, const char *iid, struct lic *l)
{
	char id[LIC_UUID_LEN + 1];
	struct lic_lookup lk;
	const char *code, *eff;
	PGresult *res = NULL;
	int st, rc = -1, known;

	if (lic_key_id(key, id, &known) != LIC_OK) {
		http_error(resp, 403, "INVALID_KEY", "the license key is not valid");
		return -1;
	}
	if ((st = lookup_read(req->db, id, iid, "0", NULL, NULL, &res)) !=
	    DB_OK) {
		http_db_error(req, resp, st, "license state");
		goto out;
	}
	/* The row vouches for a key the cache does not know (lic.h). */
	switch (lookup_license(req, resp, res, key, id, known, &lk)) {
	case LIC_OK:
		break;
	case LIC_ERROR:
		goto out;
	case LIC_UNKNOWN:
		http_error(resp, 403, "INVALID_KEY", "unknown license");
		goto out;
	default:
		http_error(resp, 403, "INVALID_KEY", "the license key is not valid");
		goto out;
	}
	*l = lk.l;
	code = lic_state(l, req->now, &eff);
	if (strcmp(code, "VALID") != 0) {
		http_error(resp, 403, code, "the license is %s", eff);
		lic_free(l);
		goto out;
	}
	rc = 0;
out:
	PQclear(res);
	return rc;
}

static void limit_name(char *buf, size_t n, const char *feature)
{
	snprintf(buf, n, "%s_per_month", feature);
}

static void add_counts(struct json_object *o, long long used, long long lim)
{
	json_object_object_add(o, "used", json_object_new_int64(used));
	json_object_object_add(o, "limit", lim < 0 ? NULL :
	    json_object_new_int64(lim));
	json_object_object_add(o, "remaining", lim < 0 ? NULL :
	    json_object_new_int64(lim > used ? lim - used : 0));
}

static void post_usage(struct http_req *req, struct http_resp *resp)
{
	const char *key, *iid, *feature, *idem;
	char lname[96];
	long long quantity;
	struct add x = { 0 };
	struct batch_item it = { 0 };
	struct lic l;
	struct json_object *o;
	struct js_err e;

	if (js_field(req->json, &LIC_F_KEY, 1, &key, &e) ||
	    js_field(req->json, &LIC_F_IID, 0, &iid, &e) ||
	    js_string(req->json, "feature", 1, 1, 64, JS_TOKEN, &feature, &e) ||
	    js_int(req->json, "quantity", 0, 1, 1000000, 1, &quantity, &e) ||
	    js_string(req->json, "idempotency_key", 0, 1, 128, JS_TEXT, &idem,
	    &e)) {
		http_field_error(resp, &e);
		return;
	}
	if (load_license(req, resp, key, iid, &l) != 0)
		return;
	if (!lic_has_feature(&l, feature)) {
		http_error(resp, 403, "FEATURE_NOT_LICENSED",
		    "feature '%s' is not licensed", feature);
		goto out;
	}
	limit_name(lname, sizeof(lname), feature);
	x.license = l.id;
	x.iid = iid;
	x.feature = feature;
	x.qty = quantity;
	x.lim = lic_limit(&l, lname);
	x.idem = idem;
	x.rid = req->rid;
	it.arg = &x;
	batch_submit(&adds, req->db, &it);
	if (x.st != DB_OK) {
		http_db_error(req, resp, x.st, "usage add");
		goto out;
	}
	if (!x.answered || x.accepted < 0) {
		/* A replay of a request that failed before it answered. */
		http_error(resp, 409, "CONFLICT",
		    "a request with this idempotency_key is still unresolved");
		goto out;
	}
	if (x.replayed && (strcmp(x.feature_was, feature) != 0 ||
	    x.qty_was != quantity)) {
		http_error(resp, 409, "IDEMPOTENCY_KEY_REUSED",
		    "idempotency_key was used for a different request");
		goto out;
	}
	if (x.accepted) {
		o = json_object_new_object();
		json_object_object_add(o, "feature",
		    json_object_new_string(feature));
		json_object_object_add(o, "period",
		    json_object_new_string(x.period));
		add_counts(o, x.used, x.lim_was);
		http_json(resp, 200, o);
	} else {
		http_error(resp, 429, "USAGE_LIMIT_EXCEEDED",
		    "the monthly limit of '%s' would be exceeded", feature);
		json_object_object_add(resp->body, "used",
		    json_object_new_int64(x.used));
		json_object_object_add(resp->body, "limit",
		    json_object_new_int64(x.lim_was));
	}
	if (x.replayed)
		req->log_code = "REPLAYED";
out:
	lic_free(&l);
}

static int period_valid(const char *p)
{
	return strlen(p) == 7 && p[0] >= '1' && p[0] <= '9' &&
	    p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9' &&
	    p[3] >= '0' && p[3] <= '9' && p[4] == '-' &&
	    ((p[5] == '0' && p[6] >= '1' && p[6] <= '9') ||
	    (p[5] == '1' && p[6] >= '0' && p[6] <= '2'));
}

static void get_usage(struct http_req *req, struct http_resp *resp)
{
	char *key = NULL, *period = NULL, lname[96];
	const char *params[2];
	struct json_object *o, *feats;
	struct lic l;
	PGresult *res = NULL;
	size_t i, n;
	int st, q, have_lic = 0;

	if ((q = url_query(req->query, "license_key", &key)) != 0) {
		if (q > 0)
			http_error(resp, 400, "MISSING_FIELD",
			    "field 'license_key' is required");
		else
			http_error(resp, 400, "INVALID_FIELD",
			    "field 'license_key' is not valid");
		goto out;
	}
	if ((q = url_query(req->query, "period", &period)) < 0 ||
	    (q == 0 && !period_valid(period))) {
		http_error(resp, 400, "INVALID_FIELD",
		    "field 'period' must be YYYY-MM");
		goto out;
	}
	if (load_license(req, resp, key, NULL, &l) != 0)
		goto out;
	have_lic = 1;
	params[0] = l.id;
	params[1] = period;
	if ((st = db_exec(req->db, "get", 2, params, &res)) != DB_OK) {
		http_db_error(req, resp, st, "usage get");
		goto out;
	}
	o = json_object_new_object();
	feats = json_object_new_object();
	/* Every licensed feature, counted or not, then anything counted
	 * under a feature the license no longer has. */
	n = json_object_array_length(l.features);
	for (i = 0; i < n; i++) {
		const char *f = json_object_get_string(
		    json_object_array_get_idx(l.features, i));
		struct json_object *c = json_object_new_object();

		limit_name(lname, sizeof(lname), f);
		add_counts(c, 0, lic_limit(&l, lname));
		json_object_object_add(feats, f, c);
	}
	for (i = 0; i < (size_t)PQntuples(res); i++) {
		const char *f = PQgetvalue(res, (int)i, 0);
		struct json_object *c = json_object_new_object();

		limit_name(lname, sizeof(lname), f);
		add_counts(c, strtoll(PQgetvalue(res, (int)i, 1), NULL, 10),
		    lic_limit(&l, lname));
		json_object_object_add(feats, f, c);
	}
	if (period == NULL) {
		char ts[32];

		lic_ts(req->now, ts);
		ts[7] = '\0';
		json_object_object_add(o, "period", json_object_new_string(ts));
	} else {
		json_object_object_add(o, "period",
		    json_object_new_string(period));
	}
	json_object_object_add(o, "features", feats);
	http_json(resp, 200, o);
out:
	if (have_lic)
		lic_free(&l);
	PQclear(res);
	free(key);
	free(period);
}

static void usage(struct http_req *req, struct http_resp *resp)
{
	if (strcmp(req->method, "GET") == 0)
		get_usage(req, resp);
	else
		post_usage(req, resp);
}

static const struct http_route routes[] = {
	{ "/api/usage", 0, "GET,POST", HTTP_BODY_JSON, usage },
	{ "/healthz", 0, "GET", HTTP_BODY_NONE, http_healthz },
};

HTTP_PROGRAM(
	.name = "usage",
	.init = lic_init_verifier,
	.reload = lic_keys_reload)
