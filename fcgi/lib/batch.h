/*
 * batch: calls that arrive together go to the database together. Threads
 * of a program submit items; while one of them (the leader) runs a batch
 * on its own connection, the items arriving meanwhile queue up and the
 * next leader runs them all in one call. Usage increments share one
 * transaction and one disk flush (usage.c); license lookups share one
 * statement (lookup.h). Nobody waits longer than for the batch in front of
 * it plus its own: no timer, no added latency when idle.
 *
 * Each waiter sleeps on its own semaphore and is woken once: when its item
 * is answered or when it must lead the next batch. A broadcast would wake
 * every waiting thread for every batch, and a condition variable would
 * make each woken thread take the queue's lock again; on small VMs a
 * wake-up costs more than the work it waits for.
 *
 * An item with a continuation (`then`) is not waited for at all: its
 * submitter returns at once (to take its next request, http.h's
 * http_defer) and whichever thread runs the batch calls `then` right
 * after it. Such a leader gives up the lead as soon as its batch has run,
 * so that the next batch runs while it answers, and leads again if
 * nobody took what is queued; nobody is woken. A leader with a waiting
 * submitter of its own hands the lead on as before, to the first waiting
 * item, once its own item has run.
 */
#ifndef LICD_BATCH_H
#define LICD_BATCH_H

#include <pthread.h>
#include <semaphore.h>
#include <stddef.h>

struct db;

struct batch_item {
	void *arg;		/* the submitter's request and answer */
	/* Called once the item is answered, with the running thread's
	 * connection; NULL: the submitter waits. The item may be gone once
	 * it is called. */
	void (*then)(struct batch_item *it, struct db *db);
	int done;		/* answered, when wake is posted */
	sem_t wake;		/* batch_submit's, for an item without then */
	struct batch_item *next;
};

/* Runs items[0..n) on db and fills in each item's arg. Called by one
 * thread at a time per batch queue, without the queue's lock. */
typedef void (*batch_run_fn)(struct db *db, struct batch_item **items,
    size_t n);

struct batch {
	pthread_mutex_t mu;
	struct batch_item *head, *tail;
	int leading;		/* a batch runs or its leader is chosen */
	size_t max;		/* items per call, at most BATCH_MAX */
	batch_run_fn run;
};

#define BATCH_MAX 64
#define BATCH_INIT(fn, max) { PTHREAD_MUTEX_INITIALIZER, NULL, NULL, 0, \
	(max), (fn) }

/* Queues it and returns once a batch containing it has run (possibly on
 * this thread, with db); with it->then set, returns at once unless this
 * thread must lead, in which case `then` has been called when it
 * returns. */
void batch_submit(struct batch *b, struct db *db, struct batch_item *it);

#endif
