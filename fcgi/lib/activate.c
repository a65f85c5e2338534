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
		    (a[i]->unread && add(e, "h",
		    json_object_new_boolean(1)) != 0) ||
		    (!wait && add(e, "w", json_object_new_boolean(0)) != 0))
			goto fail;
	}
	return arr;
fail:
	json_object_put(arr);
	return NULL;
}

/* batch_rows: the items as activations */
static struct json_object *rows_items(struct batch_item **items, size_t n,
    int wait)
{
	struct activation *a[BATCH_MAX];
	size_t i;

	for (i = 0; i < n; i++)
		a[i] = items[i]->arg;
	return activate_items(a, n, wait);
}

static void rows_status(struct batch_item *it, int st, int held)
{
	struct activation *a = it->arg;

	a->code = NULL;
	a->kept = 0;
	a->st = st;
	a->held = held;
}

static void rows_row(struct batch_item *it, const PGresult *res, int r)
{
	struct activation *a = it->arg;
	const char *code = PQgetvalue(res, r, 1);

	/* KEPT: VALID, and the installation was active already */
	a->kept = strcmp(code, "KEPT") == 0;
	a->code = a->kept ? "VALID" : decide_code(code);
	a->first = strtoll(PQgetvalue(res, r, 2), NULL, 10);
	a->last = strtoll(PQgetvalue(res, r, 3), NULL, 10);
}

static const struct batch_rows rows = {
	"activate", rows_items, rows_status, rows_row
};

/* batch_run_fn */
static void run(struct db *db, struct batch_item **items, size_t n)
{
	batch_run_rows(&rows, db, items, n);
}

/* batch_hand_fn: through the first activation's hand, when it has one */
static int hand(struct batch_item **items, size_t n)
{
	struct activation *a = items[0]->arg;

	(void)n;
	if (a->hand == NULL)
		return 0;
	a->hand(a);
	return 1;
}

static struct batch activations = BATCH_INIT_HAND(run, BATCH_MAX, hand);

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

void activate_answer(struct activation *a, struct db *db)
{
	batch_answer(&a->it, db);
}

void activate_wait(struct db *db, struct activation *a)
{
	batch_run_one(&rows, db, &a->it);
	a->then(a, db);
}
