/* lookup: see lookup.h. */
#include "lookup.h"

#include "batch.h"
#include "db.h"
#include "http.h"
#include "log.h"

#include <json-c/json.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOOKUP_BATCH 32		/* lookups per statement */

/* A batch's answer, shared by its lookups: each copies its own row in
 * the thread that answers it, the last one frees it. */
struct lookup_shared {
	PGresult *res;
	atomic_int refs;
};

static void run_one(struct db *db, struct lookup_call *x)
{
	x->res = NULL;
	x->sh = NULL;
	x->st = db_exec(db, "lookup", 5, x->params, &x->res);
	if (x->st != DB_OK) {
		PQclear(x->res);
		x->res = NULL;
	}
}

/* Row r of a batch's answer as a one-row result of its own (zero rows when
 * r is -1). Returns NULL when out of memory. */
static PGresult *copy_row(const PGresult *res, int r)
{
	PGresult *out;
	int c, nf = PQnfields(res);

	if ((out = PQcopyResult(res, PG_COPYRES_ATTRS)) == NULL)
		return NULL;
	for (c = 0; r >= 0 && c < nf; c++) {
		int null = PQgetisnull(res, r, c);

		if (!PQsetvalue(out, 0, c, null ? NULL : PQgetvalue(res, r, c),
		    null ? -1 : PQgetlength(res, r, c))) {
			PQclear(out);
			return NULL;
		}
	}
	return out;
}

/* batch_run_fn. A batch that fails as a statement is run again one lookup
 * at a time, so that one lookup's error cannot fail the others. */
static void run_lookups(struct db *db, struct batch_item **items, size_t n)
{
	struct json_object *arr = NULL, *o;
	struct lookup_shared *sh = NULL;
	const char *p[1];
	PGresult *res = NULL;
	size_t i;
	int st, r, k, nt, nf;

	if (n == 1) {
		run_one(db, items[0]->arg);
		return;
	}
	if ((arr = json_object_new_array_ext((int)n)) == NULL ||
	    (sh = malloc(sizeof(*sh))) == NULL)
		goto alone;
	for (i = 0; i < n; i++) {
		const char *const *q = ((struct lookup_call *)items[i]->arg)->params;

		if ((o = json_object_new_object()) == NULL ||
		    json_object_array_add(arr, o) != 0) {
			json_object_put(o);
			goto alone;
		}
		json_object_object_add(o, "n", json_object_new_int((int)i));
		json_object_object_add(o, "l", json_object_new_string(q[0]));
		if (q[1] != NULL)
			json_object_object_add(o, "i",
			    json_object_new_string(q[1]));
		json_object_object_add(o, "s",
		    json_object_new_int(q[2] != NULL ? atoi(q[2]) : 0));
		if (q[3] != NULL)
			json_object_object_add(o, "v",
			    json_object_new_string(q[3]));
		/* A string: licd_lookup_batch casts it back to jsonb. */
		if (q[4] != NULL)
			json_object_object_add(o, "m",
			    json_object_new_string(q[4]));
	}
	p[0] = json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN);
	st = db_exec(db, "lookup_batch", 1, p, &res);
	if (st == DB_ERROR || st == DB_BUSY)
		goto alone;
	for (i = 0; i < n; i++) {
		struct lookup_call *x = items[i]->arg;

		x->st = st;
		x->res = NULL;
		x->sh = st == DB_OK ? sh : NULL;
		x->row = -1;
	}
	if (st != DB_OK)
		goto out;
	nt = PQntuples(res);
	nf = PQnfields(res);
	for (r = 0; r < nt; r++) {
		k = atoi(PQgetvalue(res, r, nf - 1));
		if (k >= 0 && (size_t)k < n)
			((struct lookup_call *)items[k]->arg)->row = r;
	}
	sh->res = res;
	atomic_init(&sh->refs, (int)n);
	res = NULL;
	sh = NULL;
	goto out;
alone:
	for (i = 0; i < n; i++)
		run_one(db, items[i]->arg);
out:
	PQclear(res);
	free(sh);
	json_object_put(arr);
}

static struct batch lookups = BATCH_INIT(run_lookups, LOOKUP_BATCH);

/* Its own result, out of a batch's shared one. */
static void own_result(struct lookup_call *x)
{
	if (x->sh != NULL) {
		if ((x->res = copy_row(x->sh->res, x->row)) == NULL) {
			log_error("lookup: out of memory");
			x->st = DB_ERROR;
		}
		if (atomic_fetch_sub(&x->sh->refs, 1) == 1) {
			PQclear(x->sh->res);
			free(x->sh);
		}
		x->sh = NULL;
	}
}

static void prepare(struct lookup_call *x, const char *license, const char *iid,
    const char *touch_secs, const char *version, const char *metadata)
{
	memset(&x->it, 0, sizeof(x->it));
	x->it.arg = x;
	x->params[0] = license;
	x->params[1] = iid;
	x->params[2] = touch_secs;
	x->params[3] = version;
	x->params[4] = metadata;
	x->st = DB_ERROR;
	x->res = NULL;
	x->sh = NULL;
	x->row = -1;
}

static void answered(struct batch_item *it, struct db *db)
{
	struct lookup_call *c = it->arg;

	own_result(c);
	/* The call may be reused once then returns. */
	c->then(c->req, db, c->st, c->res);
}

void lookup_read_then(struct lookup_call *c, struct http_req *req,
    struct db *db, const char *license, const char *iid,
    const char *touch_secs, const char *version, const char *metadata,
    lookup_then then)
{
	prepare(c, license, iid, touch_secs, version, metadata);
	c->req = req;
	c->then = then;
	c->it.then = answered;
	batch_submit(&lookups, db, &c->it);
}

int lookup_license(struct http_req *req, struct http_resp *resp,
    const PGresult *res, const char *key, const char *id, int known,
    struct lic_lookup *lk)
{
	int rc = lic_lookup_read(res, key, id, known, lk);

	if (rc == LIC_OK) {
		snprintf(req->log_subject, sizeof(req->log_subject),
		    "license=%s", id);
		req->now = lk->now;
	} else if (rc == LIC_ERROR) {
		http_error(resp, 500, "INTERNAL", "bad license row");
	}
	return rc;
}
