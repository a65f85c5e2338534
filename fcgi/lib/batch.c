/* batch: see batch.h. */
#include "batch.h"

/*
 * The queue's lock is held only to link and unlink items, never while a
 * waiter is woken: a thread woken under the lock would only block again
 * on it. A leader that finds more queued when it is done hands the lead
 * to the first of them and leaves `leading` set, so that no newcomer
 * starts a batch beside it and every item is in the first batch its
 * leader runs (the queue is empty whenever nobody leads).
 */
void batch_submit(struct batch *b, struct db *db, struct batch_item *it)
{
	struct batch_item *items[BATCH_MAX], *next;
	size_t i, n, max = b->max > 0 && b->max <= BATCH_MAX ? b->max :
	    BATCH_MAX;

	it->done = 0;
	it->next = NULL;
	sem_init(&it->wake, 0, 0);
	pthread_mutex_lock(&b->mu);
	if (b->tail != NULL)
		b->tail->next = it;
	else
		b->head = it;
	b->tail = it;
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
	for (n = 0; n < max && b->head != NULL; n++) {
		items[n] = b->head;
		b->head = b->head->next;
	}
	if (b->head == NULL)
		b->tail = NULL;
	pthread_mutex_unlock(&b->mu);

	b->run(db, items, n);

	/* An item may be gone as soon as it is posted. */
	for (i = 0; i < n; i++) {
		items[i]->done = 1;
		if (items[i] != it)
			sem_post(&items[i]->wake);
	}
	pthread_mutex_lock(&b->mu);
	next = b->head;
	if (next == NULL)
		b->leading = 0;
	pthread_mutex_unlock(&b->mu);
	if (next != NULL)
		sem_post(&next->wake);
out:
	sem_destroy(&it->wake);
}
