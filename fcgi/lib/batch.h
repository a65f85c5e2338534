/*
 * batch: calls that arrive together go to the database together. A
 * program's threads submit items; while one of them (the leader) runs a
 * batch on its own connection, the items arriving meanwhile queue up and
 * the next leader runs them all in one call. License lookups share one
 * statement (lookup.h); usage increments share one transaction and one
 * disk flush (usage.c). Nobody waits longer than for the batch in front of
 * it plus its own: no timer, no added latency when idle.
 *
 * Nobody waits at all: an item carries a continuation (`then`), its
 * submitter returns at once (to take its next request, http.h's
 * http_defer) and whichever thread runs the batch calls `then` right
 * after it. A thread that would sleep until its item is answered costs a
 * wake-up per item, and on small VMs a wake-up costs more than the work
 * it waits for. A leader gives up the lead as soon as its batch has run,
 * before answering it, so that the next batch (a newcomer's) runs in the
 * database while it answers; then it leads again if items are queued and
 * nobody took them, so none is left behind however quiet the program
 * gets.
 */
#ifndef LICD_BATCH_H
#define LICD_BATCH_H

#include <pthread.h>
#include <stddef.h>

struct db;
struct json_object;
struct pg_result;

struct batch_item {
	void *arg;		/* the submitter's request and answer */
	/* Called once the item is answered, with the running thread's
	 * connection. The item is batch.c's no more once it is called: it
	 * may be submitted again, reused or gone. */
	void (*then)(struct batch_item *it, struct db *db);
	struct batch_item *next;
};

/* Runs items[0..n) on db and fills in each item's arg. Called by one
 * thread at a time per batch queue, without the queue's lock. */
typedef void (*batch_run_fn)(struct db *db, struct batch_item **items,
    size_t n);

/* Passes items[0..n), run, to another thread, which calls
 * batch_answer(items[0], its connection) (the others are chained behind
 * it): 1 when handed, 0 when the leader must answer them itself. */
typedef int (*batch_hand_fn)(struct batch_item **items, size_t n);

struct batch {
	pthread_mutex_t mu;
	struct batch_item *head, *tail;
	int leading;		/* a batch runs */
	size_t max;		/* items per call, at most BATCH_MAX */
	batch_run_fn run;
	/* NULL, or called when items were queued while a batch ran: the
	 * leader hands the batch it ran to another thread to answer and
	 * runs the queued ones at once, so that the database does not wait
	 * for the answers of the batch before. */
	batch_hand_fn hand;
};

#define BATCH_MAX 64
#define BATCH_INIT(fn, max) { PTHREAD_MUTEX_INITIALIZER, NULL, NULL, 0, \
	(max), (fn), NULL }
#define BATCH_INIT_HAND(fn, max, hand) { PTHREAD_MUTEX_INITIALIZER, NULL, \
	NULL, 0, (max), (fn), (hand) }

/* Queues it (it->then set) and returns, at once unless this thread must
 * lead: then batches run on db, and their items' continuations are
 * called, it's among them, before it returns. */
void batch_submit(struct batch *b, struct db *db, struct batch_item *it);

/* Queues it (it->then set) behind the batch running now, whose thread
 * takes it after answering its own (or a submitter arriving meanwhile
 * does): 1, without waking anyone. 0, it not queued, when no batch runs:
 * then the caller submits it with batch_submit. */
int batch_join(struct batch *b, struct batch_item *it);

/* Calls the continuations of a batch handed by its leader (batch_hand_fn):
 * those of the items chained behind first, then first's, with db. */
void batch_answer(struct batch_item *first, struct db *db);

/* A batch that is one prepared statement over its items as a JSON array
 * (activations, seat writes): the statement returns a row per answered
 * item, its ordinal in column 0 and its code in column 1, "BUSY" for an
 * item whose license was held elsewhere (skipped, not waited for). */
struct batch_rows {
	const char *stmt;	/* db.h's statement name, one parameter */
	/* items[0..n) as the parameter (ordinal i for items[i]); wait 0:
	 * a license held elsewhere is skipped, not waited for. NULL when
	 * out of memory. The caller owns the array. */
	struct json_object *(*items)(struct batch_item **items, size_t n,
	    int wait);
	/* it's answer emptied and its status set: DB_OK, or db_exec's
	 * failure (DB_BUSY: lock_timeout passed); held 1 (with DB_BUSY):
	 * its license was held elsewhere and the batch skipped it */
	void (*status)(struct batch_item *it, int st, int held);
	/* row r of res (a code other than BUSY) into it's answer */
	void (*row)(struct batch_item *it, const struct pg_result *res, int r);
};

/* Runs items[0..n) as k says (a batch_run_fn's body), never waiting for
 * a license held elsewhere: a statement that waited for one while
 * holding the licenses it had locked before it would hold up those
 * licenses' own calls as long, and the batch's thread with them. The
 * items of a held license come back held (status DB_BUSY, held 1), for
 * their caller to run again alone on a thread that may wait
 * (batch_run_one). A statement that fails (an item that breaks a
 * constraint, or a lock_timeout on another row) is sent again item by
 * item, so that only that item fails. Out of memory fails as a failed
 * statement would: one item at a time, then 500 (http_db_error). */
void batch_run_rows(const struct batch_rows *k, struct db *db,
    struct batch_item **items, size_t n);

/* Runs it alone on db, on the caller's thread, waiting for its license
 * up to lock_timeout (then status DB_BUSY, held 0: 503 with
 * Retry-After); it's answer is filled in on return. */
void batch_run_one(const struct batch_rows *k, struct db *db,
    struct batch_item *it);

#endif
