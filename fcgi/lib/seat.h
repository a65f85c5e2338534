/*
 * seat: group commit for the floating seat writes of validate and
 * heartbeat calls (a seat taken or renewed, call.h's WRITE step), as
 * activate.h is for node-locked activations. The writes that arrive while
 * one transaction is being flushed go together in the next: one
 * licd_seat_batch call (sql/functions/50_floating.sql), one transaction,
 * one WAL flush. Each is licd_seat under its license's row lock, with the
 * result it would have alone, and is answered only once that transaction
 * has committed.
 *
 * The queue is batch.h's, with continuations only: the submitter, a
 * resume thread, returns at once unless it must run a batch itself, and
 * the batch's thread answers each write by calling its `then`.
 */
#ifndef LICD_SEAT_H
#define LICD_SEAT_H

#include "batch.h"
#include "lic.h"

#include <json-c/json.h>
#include <stddef.h>

struct db;

/* The statement validate and heartbeat prepare for it. Retry-safe: a
 * write sent again after a broken connection renews the seat it took. */
#define SEAT_STMTS \
	{ "seat_batch", "SELECT * FROM licd_seat_batch($1)", 1 }

struct seat_write {
	/* The submitter's, kept as long as the write is queued. */
	const char *license, *iid;
	int take;		/* 'take' (validate), else 'renew' (heartbeat) */
	const char *version, *metadata, *domain, *feature;	/* or NULL */
	void (*then)(struct seat_write *w, struct db *db);
	void *arg;
	/* The answer, when then is called. */
	int st;			/* DB_OK or db_exec's failure */
	int held;		/* with DB_BUSY: its license was held
				 * elsewhere and its batch skipped it: the
				 * caller runs it again with seat_wait */
	struct lic_seat s;	/* s.code: a code of the contract
				 * (decide_code), NOT_FLOATING included;
				 * NULL: no answer for it */
	struct batch_item it;	/* seat.c's */
};

/* Queues w; w->then(w, db) is called once, on the thread that ran its
 * batch (with that thread's connection), possibly before this returns;
 * w may be reused from then on. db: the caller's connection, used if it
 * runs the batch. */
void seat_submit(struct db *db, struct seat_write *w);

/* Queues w behind the seat batch running now, whose thread takes it
 * after answering its own: 1, without waking anyone, and w->then(w, db)
 * is called later on the thread that runs w's batch. 0 (w not queued)
 * when none runs: then the caller submits w from a thread whose
 * connection may wait for the flush (seat_submit). */
int seat_join(struct seat_write *w);

/* Runs w, answered held by its batch, alone on db, waiting for its
 * license up to lock_timeout (then DB_BUSY, not held: 503 with
 * Retry-After), on the caller's thread, which may wait (a resume
 * thread); w->then(w, db) is called before it returns. */
void seat_wait(struct db *db, struct seat_write *w);

/* The p_items argument of licd_seat_batch for w[0..n) (ordinal i for
 * w[i]); wait 0: a license held elsewhere is skipped (its items answer
 * BUSY) instead of waited for. Pure. The caller owns the array; NULL
 * when out of memory (never an item short of a field). */
struct json_object *seat_items(struct seat_write *const *w, size_t n,
    int wait);

#endif
