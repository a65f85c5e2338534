/* seat: see seat.h. */
#include "seat.h"

#include "db.h"
#include "decide.h"
#include "json.h"

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

/* batch_rows: the items as seat writes */
static struct json_object *rows_items(struct batch_item **items, size_t n,
    int wait)
{
	struct seat_write *w[BATCH_MAX];
	size_t i;

	for (i = 0; i < n; i++)
		w[i] = items[i]->arg;
	return seat_items(w, n, wait);
}

static void rows_status(struct batch_item *it, int st, int held)
{
	struct seat_write *w = it->arg;

	memset(&w->s, 0, sizeof(w->s));
	w->st = st;
	w->held = held;
}

static void rows_row(struct batch_item *it, const PGresult *res, int r)
{
	struct seat_write *w = it->arg;

	/* the code outlives res: decide.h's own string */
	if (lic_seat_read(res, r, 1, &w->s) == LIC_OK)
		w->s.code = decide_code(w->s.code);
}

static const struct batch_rows rows = {
	"seat_batch", rows_items, rows_status, rows_row
};

/* batch_run_fn */
static void run(struct db *db, struct batch_item **items, size_t n)
{
	batch_run_rows(&rows, db, items, n);
}

static struct batch writes = BATCH_INIT(run, BATCH_MAX);

static void answered(struct batch_item *it, struct db *db)
{
	struct seat_write *w = it->arg;

	w->then(w, db);
}

static void prepare(struct seat_write *w)
{
	memset(&w->it, 0, sizeof(w->it));
	w->it.arg = w;
	w->it.then = answered;
}

void seat_submit(struct db *db, struct seat_write *w)
{
	prepare(w);
	batch_submit(&writes, db, &w->it);
}

int seat_join(struct seat_write *w)
{
	prepare(w);
	return batch_join(&writes, &w->it);
}

void seat_wait(struct db *db, struct seat_write *w)
{
	batch_run_one(&rows, db, &w->it);
	w->then(w, db);
}
