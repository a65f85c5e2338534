/* batch: see batch.h. */
#include "batch.h"

void batch_submit(struct batch *b, struct db *db, struct batch_item *it)
{
	struct batch_item *items[BATCH_MAX];
	size_t n, max = b->max > 0 && b->max <= BATCH_MAX ? b->max : BATCH_MAX;

	it->done = 0;
	it->next = NULL;
	pthread_mutex_lock(&b->mu);
	if (b->tail != NULL)
		b->tail->next = it;
	else
		b->head = it;
	b->tail = it;
	while (!it->done) {
		if (b->leading || b->head == NULL) {
			pthread_cond_wait(&b->cv, &b->mu);
			continue;
		}
		/* Lead: take what is queued (ours among it unless more than
		 * max are waiting, in which case we lead again after). */
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
		while (n > 0)
			items[--n]->done = 1;
		b->leading = 0;
		pthread_cond_broadcast(&b->cv);
	}
	pthread_mutex_unlock(&b->mu);
}
