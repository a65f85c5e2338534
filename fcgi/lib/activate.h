/*
 * activate: group commit for the activations of validate calls (a new or
 * deactivated installation of a node-locked license, call.h's WRITE
 * step). The activations that arrive while one transaction is being
 * flushed go together in the next: one licd_activate_batch call
 * (sql/functions/45_installations.sql), one transaction, one WAL flush.
 * Each is decided under its license's row lock, with the result it would
 * have alone, and is answered only once that transaction has committed.
 *
 * The queue is batch.h's, with continuations only: the submitter, a
 * resume thread, returns at once unless it must run a batch itself, so
 * the program's resume threads keep taking activations while one of them
 * waits on the flush, and the batch's thread answers each activation by
 * calling its `then`.
 */
#ifndef LICD_ACTIVATE_H
#define LICD_ACTIVATE_H

#include "batch.h"

#include <json-c/json.h>
#include <stddef.h>

struct db;

/* The statement validate prepares for it. Retry-safe: an activation sent
 * again after a broken connection finds its installation active and
 * answers VALID without taking a second seat. */
#define ACTIVATE_STMTS \
	{ "activate", "SELECT * FROM licd_activate_batch($1)", 1 }

struct activation {
	/* The submitter's, kept as long as the activation is queued. */
	const char *license, *iid;
	const char *version, *metadata, *domain, *feature;	/* or NULL */
	/* 1: the installation was not read first (its call comes from a
	 * license held in memory, call.h): one found active keeps its seat
	 * whatever the count, as a lookup would have answered it ("h") */
	int unread;
	void (*then)(struct activation *a, struct db *db);
	/* NULL, or passes a, answered first of its batch, to a thread that
	 * calls activate_answer(a, its connection): the batch's thread then
	 * runs the next batch at once (batch_hand_fn). */
	void (*hand)(struct activation *a);
	void *arg;
	/* The answer, when then is called. */
	int st;			/* DB_OK or db_exec's failure */
	int held;		/* with DB_BUSY: its license was held
				 * elsewhere and its batch skipped it: the
				 * caller runs it again with activate_wait */
	const char *code;	/* a code of the contract (decide_code);
				 * NULL: no answer for it */
	long long first, last;	/* first_seen, last_seen for VALID */
	int kept;		/* VALID for an unread installation that was
				 * active already (KEPT) */
	struct batch_item it;	/* activate.c's */
};

/* Queues a; a->then(a, db) is called once, on the thread that ran its
 * batch (with that thread's connection), possibly before this returns;
 * a may be reused from then on. db: the caller's connection, used if it
 * runs the batch. */
void activate_submit(struct db *db, struct activation *a);

/* Queues a behind the activation batch running now, without waking a
 * thread: 1, and a->then(a, db) is called later, on the thread that runs
 * a's batch. 0 (a not queued) when none runs: then the caller submits
 * a from a thread whose connection may wait for the flush. */
int activate_join(struct activation *a);

/* The answers of a batch handed with a first (its hand): each of its
 * activations' then, a's last, with db. */
void activate_answer(struct activation *a, struct db *db);

/* Runs a, answered held by its batch, alone on db, waiting for its
 * license up to lock_timeout (then DB_BUSY, not held: 503 with
 * Retry-After), on the caller's thread, which may wait (a resume
 * thread); a->then(a, db) is called before it returns. */
void activate_wait(struct db *db, struct activation *a);

/* The p_items argument of licd_activate_batch for a[0..n) (ordinal i for
 * a[i]), with the request's rules applied (domain, feature), "h" for an
 * unread one; wait 0: a
 * license held elsewhere is skipped (its items answer BUSY) instead of
 * waited for. Pure. The caller owns the array; NULL when out of
 * memory (never an item short of a field). */
struct json_object *activate_items(struct activation *const *a, size_t n,
    int wait);

#endif
