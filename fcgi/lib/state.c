/* state: see state.h. */
#include "state.h"

#include "batch.h"
#include "db.h"
#include "log.h"

#include <json-c/json.h>
#include <stdlib.h>

#define STATE_BATCH 32		/* lookups per statement */

struct lookup {
	const char *params[5];	/* licd_lookup's, in order */
	int st;
	PGresult *res;
};

static void run_one(struct db *db, struct lookup *x)
{
	x->res = NULL;
	x->st = db_exec(db, "state", 5, x->params, &x->res);
	if (x->st != DB_OK) {
		PQclear(x->res);
		x->res = NULL;
	}
}

/* Gives row r of res (a batch's answer) to the lookup its last column
 * names, as a one-row result of its own. */
static void take_row(const PGresult *res, int r, struct lookup *x)
{
	int c, nf = PQnfields(res);

	if (x->st != DB_OK || PQntuples(x->res) != 0)
		return;
	for (c = 0; c < nf; c++) {
		int null = PQgetisnull(res, r, c);

		if (!PQsetvalue(x->res, 0, c, null ? NULL :
		    PQgetvalue(res, r, c), null ? -1 : PQgetlength(res, r, c))) {
			log_error("state: out of memory");
			PQclear(x->res);
			x->res = NULL;
			x->st = DB_ERROR;
			return;
		}
	}
}

/* batch_run_fn. A batch that fails as a statement is run again one lookup
 * at a time, so that one lookup's error cannot fail the others. */
static void run_lookups(struct db *db, struct batch_item **items, size_t n)
{
	struct json_object *arr = NULL, *o;
	const char *p[1];
	PGresult *res = NULL;
	size_t i;
	int st, r, k, nt, nf;

	if (n == 1) {
		run_one(db, items[0]->arg);
		return;
	}
	if ((arr = json_object_new_array_ext((int)n)) == NULL)
		goto alone;
	for (i = 0; i < n; i++) {
		const char *const *q = ((struct lookup *)items[i]->arg)->params;

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
	st = db_exec(db, "state_batch", 1, p, &res);
	if (st == DB_ERROR)
		goto alone;
	for (i = 0; i < n; i++) {
		struct lookup *x = items[i]->arg;

		x->st = st;
		x->res = NULL;
		if (st == DB_OK &&
		    (x->res = PQcopyResult(res, PG_COPYRES_ATTRS)) == NULL)
			x->st = DB_ERROR;
	}
	nt = st == DB_OK ? PQntuples(res) : 0;
	nf = st == DB_OK ? PQnfields(res) : 0;
	for (r = 0; r < nt; r++) {
		k = atoi(PQgetvalue(res, r, nf - 1));
		if (k >= 0 && (size_t)k < n)
			take_row(res, r, items[k]->arg);
	}
	goto out;
alone:
	for (i = 0; i < n; i++)
		run_one(db, items[i]->arg);
out:
	PQclear(res);
	json_object_put(arr);
}

static struct batch lookups = BATCH_INIT(run_lookups, STATE_BATCH);

int state_read(struct db *db, const char *license, const char *iid,
    const char *touch_secs, const char *version, const char *metadata,
    PGresult **res)
{
	struct lookup x = {
		.params = { license, iid, touch_secs, version, metadata },
		.st = DB_ERROR,
	};
	struct batch_item it = { .arg = &x };

	batch_submit(&lookups, db, &it);
	*res = x.res;
	return x.st;
}
