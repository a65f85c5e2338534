/* batch: see batch.h. */
#include "batch.h"

void batch_submit(struct batch *b, struct db *db, struct batch_item *it)
{
	struct batch_item *items[BATCH_MAX];
	size_t i, n, max = b->max > 0 && b->max <= BATCH_MAX ? b->max :
	    BATCH_MAX;

	it->done = 0;
	it->next = NULL;
	pthread_cond_init(&it->cv, NULL);
	pthread_mutex_lock(&b->mu);
	if (b->tail != NULL)
		b->tail->next = it;
	else
		b->head = it;
	b->tail = it;
	while (!it->done) {
		/* Not done and nobody leading: ours is still queued (an item
		 * leaves the queue only into a running batch), so lead. */
		if (b->leading) {
			pthread_cond_wait(&it->cv, &b->mu);
			continue;
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
		pthread_mutex_lock(&b->mu);
		for (i = 0; i < n; i++) {
			items[i]->done = 1;
			if (items[i] != it)
				pthread_cond_signal(&items[i]->cv);
		}
		b->leading = 0;
		/* What queued meanwhile is the next batch; its first
		 * submitter leads it (unless a newcomer does first). */
		if (b->head != NULL && b->head != it)
			pthread_cond_signal(&b->head->cv);
	}
	pthread_mutex_unlock(&b->mu);
	pthread_cond_destroy(&it->cv);
}
