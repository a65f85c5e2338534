/*
 * usage: POST /api/usage counts metered use against monthly limits;
 * GET /api/usage reads a month's counters.
 *
 * POST, in steps, the call's state one struct add in the request's
 * http_scratch:
 *   PARSE   post_usage(), on the thread that accepted it: the fields and
 *           the license id the key names (lic_key_id; none: INVALID_KEY
 *           at once); the increment is queued in the adds batch
 *           (batch.h, http_defer) and the thread takes its next request.
 *   COUNT   run_adds(), on the thread that leads the batch: one
 *           licd_usage_add_batch call for every increment queued, one
 *           transaction and one WAL flush (synchronous commit) for all of
 *           them. It reads and locks each license, refuses what the
 *           license does not allow (its code), moves the counter with a
 *           conditional upsert (used + q <= limit, exact under any
 *           concurrency), logs the increment and claims the idempotency
 *           key, each item exactly as if alone
 *           (sql/functions/55_usage.sql). A license held elsewhere is
 *           skipped, not waited for: its items come back BUSY.
 *   WAIT    wait_add(), on a resume thread, only for a BUSY item: the
 *           item alone, waiting for its license up to lock_timeout (503
 *           with Retry-After beyond), while the batches go on.
 *   REPLY   added(), on the same thread, after the commit: the answer. A
 *           key lic_key_id could not vouch for, and that is not the key
 *           the license holds as issued, is checked by its signature
 *           here and, when good, queued again (COUNT once more).
 * The license is read in the counting transaction, not before it: a
 * revoke or suspension acknowledged before the call is counted refuses
 * it, and one that comes after waits for the count to commit.
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

/* One increment: what the call asks (PARSE), and what the batch
 * answered (COUNT). */
struct add {
	struct batch_item it;
	struct http_req *req;
	struct http_resp *resp;
	const char *key, *iid, *feature, *idem;	/* in the request's JSON */
	char id[LIC_UUID_LEN + 1];
	int known;			/* lic_key_id vouched for the key */
	int wait;			/* sent alone, waiting for a license
					 * held elsewhere (wait_add) */
	long long qty;
	int st;				/* DB_OK or db_exec's failure */
	int answered;			/* a row came back for it */
	char code[24];			/* the license's refusal, or "" */
	char *stored;			/* UNVOUCHED: the key as issued */
	int accepted;			/* 1, 0, or -1: unresolved (NULL) */
	int replayed;
	char period[16], feature_was[72];
	long long used, lim, qty_was;	/* lim < 0: unmetered (NULL) */
};

_Static_assert(sizeof(struct add) <= HTTP_SCRATCH, "struct add too large");

static void add_item(struct json_object *a, size_t o, const struct add *x)
{
	struct json_object *e = json_object_new_object();

	json_object_object_add(e, "o", json_object_new_int64((int64_t)o));
	json_object_object_add(e, "l", json_object_new_string(x->id));
	json_object_object_add(e, "i", x->iid ?
	    json_object_new_string(x->iid) : NULL);
	json_object_object_add(e, "f", json_object_new_string(x->feature));
	json_object_object_add(e, "q", json_object_new_int64(x->qty));
	json_object_object_add(e, "k", x->idem ?
	    json_object_new_string(x->idem) : NULL);
	json_object_object_add(e, "r", json_object_new_string(x->req->rid));
	if (!x->known)
		json_object_object_add(e, "key",
		    json_object_new_string(x->key));
	if (x->wait)
		json_object_object_add(e, "w", json_object_new_boolean(1));
	json_object_array_add(a, e);
}

static long long ll_or(PGresult *res, int row, int col, long long dflt)
{
	return PQgetisnull(res, row, col) ? dflt :
	    strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* licd_usage_add_batch's columns: ord, code, accepted, period, used, lim,
 * replayed, req_feature, req_quantity, license_key. */
static void take_row(PGresult *res, int row, struct add *x)
{
	x->answered = 1;
	snprintf(x->code, sizeof(x->code), "%s", PQgetvalue(res, row, 1));
	x->accepted = PQgetisnull(res, row, 2) ? -1 :
	    strcmp(PQgetvalue(res, row, 2), "t") == 0;
	snprintf(x->period, sizeof(x->period), "%s", PQgetvalue(res, row, 3));
	x->used = ll_or(res, row, 4, 0);
	x->lim = ll_or(res, row, 5, -1);
	x->replayed = strcmp(PQgetvalue(res, row, 6), "t") == 0;
	snprintf(x->feature_was, sizeof(x->feature_was), "%s",
	    PQgetvalue(res, row, 7));
	x->qty_was = ll_or(res, row, 8, 0);
	if (!PQgetisnull(res, row, 9) && (x->stored =
	    strdup(PQgetvalue(res, row, 9))) == NULL)
		x->st = DB_ERROR;
}

/* batch_run_fn (COUNT): all items in one licd_usage_add_batch call. The
 * items of a license held elsewhere come back BUSY at once, counted for
 * nothing, and wait on a resume thread (added()); the others are counted
 * without waiting for it. If the call fails as a statement (not as a
 * connection), each item is retried alone so that one item's error
 * cannot fail the others; so is a batch that waited lock_timeout on
 * another row held elsewhere (a counter): only that row's items wait
 * again and answer 503. A failed statement counted nothing, so no item
 * sent again is counted twice. */
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
		x->stored = NULL;
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

static int reply(struct add *x, struct db *db);

/* COUNT again, on a resume thread, for an item whose license was held
 * elsewhere: alone, waiting for the license up to lock_timeout (then 503
 * with Retry-After, as an activation of a held license), so that the
 * batches of every other license go on meanwhile. http.c answers after. */
static void wait_add(struct http_req *req, struct http_resp *resp)
{
	struct add *x = http_scratch(req);
	struct batch_item *it = &x->it;

	(void)resp;
	x->wait = 1;
	do {
		run_adds(req->db, &it, 1);
		if (x->answered && strcmp(x->code, "BUSY") == 0)
			x->st = DB_BUSY;
	} while (reply(x, req->db) == 1);
	free(x->stored);
	x->stored = NULL;
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

/* REPLY: the answer from the batch's row. Returns 1 when the item is to
 * be counted again instead (a key confirmed by its signature), 2 when its
 * license was held elsewhere (BUSY: to wait for it), 0 when answered. */
static int reply(struct add *x, struct db *db)
{
	struct http_req *req = x->req;
	struct http_resp *resp = x->resp;
	struct json_object *o;

	req->db = db;
	if (x->st != DB_OK) {
		http_db_error(req, resp, x->st, "usage add");
		return 0;
	}
	if (x->answered && strcmp(x->code, "BUSY") == 0)
		return 2;
	if (!x->answered) {
		http_error(resp, 500, "INTERNAL", "usage add: no answer");
		return 0;
	}
	if (strcmp(x->code, "UNKNOWN") == 0) {
		http_error(resp, 403, "INVALID_KEY", "unknown license");
		return 0;
	}
	if (strcmp(x->code, "UNVOUCHED") == 0) {
		if (lic_key_confirm(x->key, x->id, x->stored) != LIC_OK) {
			http_error(resp, 403, "INVALID_KEY",
			    "the license key is not valid");
			return 0;
		}
		x->known = 1;
		return 1;
	}
	/* The row vouched for the key: remembered like a verified one. */
	if (!x->known)
		lic_key_confirm(x->key, x->id, x->key);
	snprintf(req->log_subject, sizeof(req->log_subject), "license=%s",
	    x->id);
	if (strcmp(x->code, "FEATURE_NOT_LICENSED") == 0) {
		http_error(resp, 403, "FEATURE_NOT_LICENSED",
		    "feature '%s' is not licensed", x->feature);
		return 0;
	}
	if (x->code[0] != '\0') {	/* REVOKED, SUSPENDED, EXPIRED */
		char eff[24];
		size_t i;

		for (i = 0; x->code[i] != '\0' && i + 1 < sizeof(eff); i++)
			eff[i] = (char)(x->code[i] - 'A' + 'a');
		eff[i] = '\0';
		http_error(resp, 403, x->code, "the license is %s", eff);
		return 0;
	}
	if (x->accepted < 0) {
		/* A replay of a request that failed before it answered. */
		http_error(resp, 409, "CONFLICT",
		    "a request with this idempotency_key is still unresolved");
		return 0;
	}
	if (x->replayed && (strcmp(x->feature_was, x->feature) != 0 ||
	    x->qty_was != x->qty)) {
		http_error(resp, 409, "IDEMPOTENCY_KEY_REUSED",
		    "idempotency_key was used for a different request");
		return 0;
	}
	if (x->accepted) {
		o = json_object_new_object();
		json_object_object_add(o, "feature",
		    json_object_new_string(x->feature));
		json_object_object_add(o, "period",
		    json_object_new_string(x->period));
		add_counts(o, x->used, x->lim);
		http_json(resp, 200, o);
	} else {
		http_error(resp, 429, "USAGE_LIMIT_EXCEEDED",
		    "the monthly limit of '%s' would be exceeded", x->feature);
		json_object_object_add(resp->body, "used",
		    json_object_new_int64(x->used));
		json_object_object_add(resp->body, "limit",
		    json_object_new_int64(x->lim));
	}
	if (x->replayed)
		req->log_code = "REPLAYED";
	return 0;
}

/* The item's continuation, on the thread that ran its batch. */
static void added(struct batch_item *it, struct db *db)
{
	struct add *x = it->arg;
	int again = reply(x, db);

	free(x->stored);
	x->stored = NULL;
	if (again == 1)
		batch_submit(&adds, db, &x->it);	/* x is answered there */
	else if (again == 2)
		http_resume(x->req, wait_add);
	else
		http_done(x->req);
}

/* PARSE. */
static void post_usage(struct http_req *req, struct http_resp *resp)
{
	struct add *x = http_scratch(req);
	const char *key, *iid, *feature, *idem;
	long long quantity;
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
	memset(x, 0, sizeof(*x));
	if (lic_key_id(key, x->id, &x->known) != LIC_OK) {
		http_error(resp, 403, "INVALID_KEY", "the license key is not valid");
		return;
	}
	x->req = req;
	x->resp = resp;
	x->key = key;
	x->iid = iid;
	x->feature = feature;
	x->idem = idem;
	x->qty = quantity;
	x->it.arg = x;
	x->it.then = added;
	http_defer(req);
	batch_submit(&adds, req->db, &x->it);
}

/* Verifies the key and loads the license (licd_lookup, alone); on failure
 * the response is set (403 with the license's code, or a database
 * error). */
static int load_license(struct http_req *req, struct http_resp *resp,
    const char *key, struct lic *l)
{
	char id[LIC_UUID_LEN + 1];
	const char *params[5] = { id, NULL, "0", NULL, NULL };
	struct lic_lookup lk;
	const char *code, *eff;
	PGresult *res = NULL;
	int st, rc = -1, known;

	if (lic_key_id(key, id, &known) != LIC_OK) {
		http_error(resp, 403, "INVALID_KEY", "the license key is not valid");
		return -1;
	}
	if ((st = db_exec(req->db, "lookup", 5, params, &res)) != DB_OK) {
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
	if (load_license(req, resp, key, &l) != 0)
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

/*
 * One malloc arena. A request's buffers (libfcgi's, some 16 KiB) come
 * from the arena of the thread that accepted it, and a thread's arena
 * keeps the most its thread ever held at once: each accepting thread
 * would keep room for all the requests in flight. usage's calls
 * allocate little besides, so its threads share one arena without
 * waiting on it; validate's and heartbeat's (answers, leases) would
 * (docs/PERFORMANCE.md).
 */
HTTP_PROGRAM(
	.name = "usage",
	.init = lic_init_verifier,
	.reload = lic_keys_reload,
	.defers = 1,
	.resumes = 1,
	.arenas = 1)
