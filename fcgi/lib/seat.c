/* seat: see seat.h. */
#include "seat.h"

#include "db.h"
#include "decide.h"
#include "json.h"

#include <stdlib.h>
#include <string.h>

/* One item: its fields in licd_seat_batch's names, NULL values as JSON
 * null. 0, or -1 when out of memory. */
static int item(struct json_object *arr, size_t o, const struct seat_write *w,
    int wait)
{
	const char *k[] = { "l", "i", "s", "v", "m", "d", "f" };
	const char *v[] = { w->license, w->iid, w->take ? "take" : "renew",
	    w->version, w->metadata, w->take ? w->domain : NULL,
	    w->take ? w->feature : NULL };
	struct json_object *e = json_object_new_object(), *x;
	size_t i;

	if (e == NULL || json_object_array_add(arr, e) != 0) {
		json_object_put(e);
		return -1;
	}
	if ((x = json_object_new_int64((int64_t)o)) == NULL ||
	    json_object_object_add(e, "o", x) != 0) {
		json_object_put(x);
		return -1;
	}
	for (i = 0; i < sizeof(k) / sizeof(k[0]); i++) {
		x = NULL;
		if (v[i] != NULL && (x = json_object_new_string(v[i])) == NULL)
			return -1;
		if (json_object_object_add(e, k[i], x) != 0) {
			json_object_put(x);
			return -1;
		}
	}
	if (!wait && ((x = json_object_new_boolean(0)) == NULL ||
	    json_object_object_add(e, "w", x) != 0)) {
		json_object_put(x);
		return -1;
	}
	return 0;
}

struct json_object *seat_items(struct seat_write *const *w, size_t n,
    int wait)
{
	struct json_object *arr = json_object_new_array_ext((int)n);
	size_t i;

	for (i = 0; arr != NULL && i < n; i++) {
		if (item(arr, i, w[i], wait) != 0) {
			json_object_put(arr);
			return NULL;
		}
	}
	return arr;
}

static long long ll(const PGresult *res, int r, int c)
{
	return PQgetisnull(res, r, c) ? 0 : strtoll(PQgetvalue(res, r, c),
	    NULL, 10);
}

/* Items in one licd_seat_batch call. A statement that fails (an item
 * that breaks a constraint) is sent again item by item, so that only that
 * item fails. One that waited lock_timeout on a license held elsewhere is
 * sent again without waiting (its items answer BUSY, the others are
 * written), so that only the held license's items answer 503, after one
 * wait. */
static void run_items(struct db *db, struct batch_item **items, size_t n,
    int wait)
{
	struct seat_write *w[BATCH_MAX] = { NULL };
	struct json_object *arr;
	const char *params[1], *code;
	PGresult *res = NULL;
	size_t i;
	int st, r, o;

	for (i = 0; i < n; i++) {
		w[i] = items[i]->arg;
		memset(&w[i]->s, 0, sizeof(w[i]->s));
	}
	/* Out of memory fails as a failed statement would: one item at a
	 * time, then 500 (http_db_error). */
	arr = seat_items(w, n, wait);
	if (arr == NULL || (params[0] = js_dump(arr, NULL)) == NULL)
		st = DB_ERROR;
	else
		st = db_exec(db, "seat_batch", 1, params, &res);
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
		w[i]->st = st;
	for (r = 0; st == DB_OK && r < PQntuples(res); r++) {
		o = atoi(PQgetvalue(res, r, 0));
		if (o < 0 || (size_t)o >= n)
			continue;
		code = PQgetvalue(res, r, 1);
		if (strcmp(code, "BUSY") == 0) {
			w[o]->st = DB_BUSY;
			continue;
		}
		w[o]->s.code = decide_code(code);
		w[o]->s.first = ll(res, r, 2);
		w[o]->s.last = ll(res, r, 3);
		w[o]->s.expires = ll(res, r, 4);
		w[o]->s.borrowed = ll(res, r, 5);
		w[o]->s.overdraft = strcmp(PQgetvalue(res, r, 6), "t") == 0;
	}
	PQclear(res);
}

/* batch_run_fn */
static void run(struct db *db, struct batch_item **items, size_t n)
{
	run_items(db, items, n, 1);
}

static struct batch writes = BATCH_INIT(run, BATCH_MAX);

static void answered(struct batch_item *it, struct db *db)
{
	struct seat_write *w = it->arg;

	w->then(w, db);
}

void seat_submit(struct db *db, struct seat_write *w)
{
	memset(&w->it, 0, sizeof(w->it));
	w->it.arg = w;
	w->it.then = answered;
	batch_submit(&writes, db, &w->it);
}
