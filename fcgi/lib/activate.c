/* activate: see activate.h. */
#include "activate.h"

#include "db.h"
#include "decide.h"
#include "json.h"

#include <stdlib.h>
#include <string.h>

/* Adds v as o's k; -1 (v released) when v is NULL or the add fails: an
 * item missing one of its fields would drop that field's rule. */
static int add(struct json_object *o, const char *k, struct json_object *v)
{
	if (v == NULL || json_object_object_add(o, k, v) != 0) {
		json_object_put(v);
		return -1;
	}
	return 0;
}

/* A string, or JSON null for NULL. */
static int add_str(struct json_object *o, const char *k, const char *v)
{
	struct json_object *s = NULL;

	if (v != NULL && (s = json_object_new_string(v)) == NULL)
		return -1;
	if (json_object_object_add(o, k, s) != 0) {
		json_object_put(s);
		return -1;
	}
	return 0;
}

struct json_object *activate_items(struct activation *const *a, size_t n,
    int wait)
{
	struct json_object *arr = json_object_new_array_ext((int)n), *e;
	size_t i;

	if (arr == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if ((e = json_object_new_object()) == NULL ||
		    json_object_array_add(arr, e) != 0) {
			json_object_put(e);
			goto fail;
		}
		if (add(e, "o", json_object_new_int64((int64_t)i)) != 0 ||
		    add_str(e, "l", a[i]->license) != 0 ||
		    add_str(e, "i", a[i]->iid) != 0 ||
		    add_str(e, "v", a[i]->version) != 0 ||
		    add_str(e, "m", a[i]->metadata) != 0 ||
		    add_str(e, "d", a[i]->domain) != 0 ||
		    add_str(e, "f", a[i]->feature) != 0 ||
		    add(e, "c", json_object_new_boolean(1)) != 0 ||
		    (!wait && add(e, "w", json_object_new_boolean(0)) != 0))
			goto fail;
	}
	return arr;
fail:
	json_object_put(arr);
	return NULL;
}

/* Items in one licd_activate_batch call. A statement that fails (an item
 * that breaks a constraint) is sent again item by item, so that only that
 * item fails. One that waited lock_timeout on a license held elsewhere is
 * sent again without waiting (wait 0: such a license's items answer BUSY,
 * the others are written), so that only the held license's items answer
 * 503, after one wait. */
static void run_items(struct db *db, struct batch_item **items, size_t n,
    int wait)
{
	struct activation *a[BATCH_MAX] = { NULL };
	struct json_object *arr;
	const char *params[1], *code;
	PGresult *res = NULL;
	size_t i;
	int st, r, o;

	for (i = 0; i < n; i++) {
		a[i] = items[i]->arg;
		a[i]->code = NULL;
	}
	/* Out of memory fails as a failed statement would: one item at a
	 * time, then 500 (http_db_error). */
	arr = activate_items(a, n, wait);
	if (arr == NULL || (params[0] = js_dump(arr, NULL)) == NULL)
		st = DB_ERROR;
	else
		st = db_exec(db, "activate", 1, params, &res);
	json_object_put(arr);
	if (st == DB_BUSY && wait) {
		PQclear(res);
		run_items(db, items, n, 0);
		return;
	}
	if ((st == DB_ERROR || st == DB_BUSY) && n > 1) {
		PQclear(res);
		for (i = 0; i < n; i++)
			run_items(db, &items[i], 1, wait);
		return;
	}
	for (i = 0; i < n; i++)
		a[i]->st = st;
	for (r = 0; st == DB_OK && r < PQntuples(res); r++) {
		o = atoi(PQgetvalue(res, r, 0));
		if (o < 0 || (size_t)o >= n)
			continue;
		code = PQgetvalue(res, r, 1);
		if (strcmp(code, "BUSY") == 0) {
			a[o]->st = DB_BUSY;
			continue;
		}
		a[o]->code = decide_code(code);
		a[o]->first = strtoll(PQgetvalue(res, r, 2), NULL, 10);
		a[o]->last = strtoll(PQgetvalue(res, r, 3), NULL, 10);
	}
	PQclear(res);
}

/* batch_run_fn */
static void run(struct db *db, struct batch_item **items, size_t n)
{
	run_items(db, items, n, 1);
}

static struct batch activations = BATCH_INIT(run, BATCH_MAX);

static void answered(struct batch_item *it, struct db *db)
{
	struct activation *a = it->arg;

	a->then(a, db);
}

static void prepare(struct activation *a)
{
	memset(&a->it, 0, sizeof(a->it));
	a->it.arg = a;
	a->it.then = answered;
}

void activate_submit(struct db *db, struct activation *a)
{
	prepare(a);
	batch_submit(&activations, db, &a->it);
}

int activate_join(struct activation *a)
{
	prepare(a);
	return batch_join(&activations, &a->it);
}
