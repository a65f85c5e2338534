/* batch: see batch.h. */
#include "batch.h"

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

/* Takes the queue's lock and links it at the tail; the caller unlocks. */
static void enqueue(struct batch *b, struct batch_item *it)
{
	pthread_mutex_lock(&b->mu);
	if (b->tail != NULL)
		b->tail->next = it;
	else
		b->head = it;
	b->tail = it;
}

/* An item with a continuation is answered by calling it, without a wake;
 * the item may be reused as soon as that returns. */
static void answer(struct batch_item *x, struct batch_item *own, struct db *db)
{
	x->done = 1;
	if (x->then != NULL)
		x->then(x, db);
	else if (x != own)
		sem_post(&x->wake);
}

/*
 * An item with a continuation: its submitter leads only when nobody does,
 * and gives up the lead as soon as its batch has run, before answering
 * it, so that the next batch (a newcomer's) runs while this thread
 * answers; then it leads again if items are queued and nobody took them,
 * so none is left behind however quiet the program gets.
 */
static void submit_then(struct batch *b, struct db *db, struct batch_item *it)
{
	struct batch_item *items[BATCH_MAX];
	size_t i, n;

	enqueue(b, it);
	while (!b->leading && b->head != NULL) {
		b->leading = 1;
		n = take(b, items);
		pthread_mutex_unlock(&b->mu);

		b->run(db, items, n);

		pthread_mutex_lock(&b->mu);
		b->leading = 0;
		pthread_mutex_unlock(&b->mu);
		/* An item may be gone as soon as it is answered. */
		for (i = 0; i < n; i++)
			answer(items[i], NULL, db);
		pthread_mutex_lock(&b->mu);
	}
	pthread_mutex_unlock(&b->mu);
}

/*
 * A waiting item. The queue's lock is held only to link and unlink items,
 * never while a waiter is woken: a thread woken under the lock would only
 * block again on it. A leader that finds more queued when it is done runs
 * them too while its own item has not run (it may have found a queue
 * longer than a batch, left by a continuation's leader answering) or
 * nobody queued waits to be handed the lead; otherwise it hands the lead
 * to the first of them, a waiting one, leaving `leading` set, so that no
 * newcomer starts a batch beside it.
 */
void batch_submit(struct batch *b, struct db *db, struct batch_item *it)
{
	struct batch_item *items[BATCH_MAX], *next;
	size_t i, n;

	it->done = 0;
	it->next = NULL;
	if (it->then != NULL) {
		submit_then(b, db, it);
		return;
	}
	sem_init(&it->wake, 0, 0);
	enqueue(b, it);
	if (b->leading) {
		pthread_mutex_unlock(&b->mu);
		while (sem_wait(&it->wake) != 0)
			;	/* EINTR */
		if (it->done)
			goto out;
		/* Handed the lead: ours is at the head of the queue. */
		pthread_mutex_lock(&b->mu);
	}
	b->leading = 1;
	do {
		n = take(b, items);
		pthread_mutex_unlock(&b->mu);

		b->run(db, items, n);
		for (i = 0; i < n; i++)
			answer(items[i], it, db);

		pthread_mutex_lock(&b->mu);
		next = b->head;
	} while (next != NULL && (next->then != NULL || !it->done));
	if (next == NULL)
		b->leading = 0;
	pthread_mutex_unlock(&b->mu);
	if (next != NULL)
		sem_post(&next->wake);
out:
	sem_destroy(&it->wake);
}
