/* batch: see batch.h. */
#include "batch.h"

#include "db.h"
#include "json.h"

#include <stdlib.h>
#include <string.h>

/* Unlinks up to the batch's size of queued items into items; under the
 * queue's lock. */
static size_t take(struct batch *b, struct batch_item **items)
{
	size_t n, max = b->max > 0 && b->max <= BATCH_MAX ? b->max :
	    BATCH_MAX;

	for (n = 0; n < max && b->head != NULL; n++) {
		items[n] = b->head;
		b->head = b->head->next;
	}
	if (b->head == NULL)
		b->tail = NULL;
	return n;
}

/* Links it at the queue's tail; under the queue's lock. */
static void link_item(struct batch *b, struct batch_item *it)
{
	it->next = NULL;
	if (b->tail != NULL)
		b->tail->next = it;
	else
		b->head = it;
	b->tail = it;
}

/* items[0..n), run, chained behind items[0] and handed (b->hand): 1
 * when handed. The items are no queue's any more: their links are
 * free. */
static int hand_off(struct batch *b, struct batch_item **items, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		items[i]->next = i + 1 < n ? items[i + 1] : NULL;
	return b->hand(items, n);
}

/*
 * The submitter leads only when nobody does, and gives up the lead as
 * soon as its batch has run, before answering it; then it leads again if
 * items are queued and nobody took them (with b->hand, at once, its batch
 * answered by another thread). The queue's lock is held only to link and
 * unlink items, never while a continuation runs: one may submit again
 * (usage.c does, for a key checked after its first run).
 */
void batch_submit(struct batch *b, struct db *db, struct batch_item *it)
{
	struct batch_item *items[BATCH_MAX];
	size_t i, n;
	int queued;

	pthread_mutex_lock(&b->mu);
	link_item(b, it);
	while (!b->leading && b->head != NULL) {
		b->leading = 1;
		n = take(b, items);
		pthread_mutex_unlock(&b->mu);

		b->run(db, items, n);

		pthread_mutex_lock(&b->mu);
		b->leading = 0;
		queued = b->head != NULL;
		pthread_mutex_unlock(&b->mu);
		if (queued && b->hand != NULL && hand_off(b, items, n)) {
			pthread_mutex_lock(&b->mu);
			continue;
		}
		/* An item may be gone as soon as it is answered. */
		for (i = 0; i < n; i++)
			items[i]->then(items[i], db);
		pthread_mutex_lock(&b->mu);
	}
	pthread_mutex_unlock(&b->mu);
}

void batch_answer(struct batch_item *first, struct db *db)
{
	struct batch_item *it = first->next, *next;

	/* An item may be gone as soon as it is answered. */
	while (it != NULL) {
		next = it->next;
		it->then(it, db);
		it = next;
	}
	first->then(first, db);
}

/*
 * A leader looks at the queue again once it has answered its batch, under
 * the queue's lock, and leads again if items are queued and nobody took
 * them: an item linked while it leads is never left behind.
 */
int batch_join(struct batch *b, struct batch_item *it)
{
	int joined;

	pthread_mutex_lock(&b->mu);
	if ((joined = b->leading) != 0)
		link_item(b, it);
	pthread_mutex_unlock(&b->mu);
	return joined;
}

/* Runs items[0..n) once as k says; wait: see batch_run_one. */
static void run_rows(const struct batch_rows *k, struct db *db,
    struct batch_item **items, size_t n, int wait)
{
	struct json_object *arr;
	const char *params[1];
	PGresult *res = NULL;
	size_t i;
	int st, r, o;

	arr = k->items(items, n, wait);
	if (arr == NULL || (params[0] = js_dump(arr, NULL)) == NULL)
		st = DB_ERROR;
	else
		st = db_exec(db, k->stmt, 1, params, &res);
	json_object_put(arr);
	if ((st == DB_ERROR || st == DB_BUSY) && n > 1) {
		PQclear(res);
		for (i = 0; i < n; i++)
			run_rows(k, db, &items[i], 1, wait);
		return;
	}
	for (i = 0; i < n; i++)
		k->status(items[i], st, 0);
	for (r = 0; st == DB_OK && r < PQntuples(res); r++) {
		o = atoi(PQgetvalue(res, r, 0));
		if (o < 0 || (size_t)o >= n)
			continue;
		if (strcmp(PQgetvalue(res, r, 1), "BUSY") == 0)
			k->status(items[o], DB_BUSY, 1);
		else
			k->row(items[o], res, r);
	}
	PQclear(res);
}

void batch_run_rows(const struct batch_rows *k, struct db *db,
    struct batch_item **items, size_t n)
{
	run_rows(k, db, items, n, 0);
}

void batch_run_one(const struct batch_rows *k, struct db *db,
    struct batch_item *it)
{
	run_rows(k, db, &it, 1, 1);
}
