/*
 * batch: calls that arrive together go to the database together. Threads
 * of a program submit items; while one of them (the leader) runs a batch
 * on its own connection, the items arriving meanwhile queue up and the
 * next leader runs them all in one call. Usage increments share one
 * transaction and one disk flush (usage.c); license lookups share one
 * statement (state.h). Nobody waits longer than for the batch in front of
 * it plus its own: no timer, no added latency when idle.
 *
 * Each waiter sleeps on its own condition variable and is woken only when
 * its item is answered or it must lead the next batch: a broadcast would
 * wake every waiting thread for every batch, and on small VMs a wake-up
 * costs more than the work it waits for.
 */
#ifndef LICD_BATCH_H
#define LICD_BATCH_H

#include <pthread.h>
#include <stddef.h>

struct db;

struct batch_item {
	void *arg;		/* the submitter's request and answer */
	int done;
	pthread_cond_t cv;	/* batch_submit's */
	struct batch_item *next;
};

/* Runs items[0..n) on db and fills in each item's arg. Called by one
 * thread at a time per batch queue, without the queue's lock. */
typedef void (*batch_run_fn)(struct db *db, struct batch_item **items,
    size_t n);

struct batch {
	pthread_mutex_t mu;
	struct batch_item *head, *tail;
	int leading;
	size_t max;		/* items per call, at most BATCH_MAX */
	batch_run_fn run;
};

#define BATCH_MAX 64
#define BATCH_INIT(fn, max) { PTHREAD_MUTEX_INITIALIZER, NULL, NULL, 0, \
	(max), (fn) }

/* Queues it and returns once a batch containing it has run (possibly on
 * this thread, with db). */
void batch_submit(struct batch *b, struct db *db, struct batch_item *it);

#endif
