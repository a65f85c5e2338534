/*
 * state: the one read of a validate, heartbeat or usage call, its license
 * and installation (licd_lookup, sql/013), shared between the threads of a
 * program. The lookups that arrive while one thread is waiting on the
 * database go out together in one licd_lookup_batch call (sql/014) on the
 * next free thread's connection; a lone lookup goes alone. No timer, so
 * an idle server adds no latency (batch.h).
 *
 * Why: most of a lookup's cost in PostgreSQL is the statement round trip,
 * not the row (docs/PERFORMANCE.md); eight lookups in one statement cost
 * little more than one.
 */
#ifndef LICD_STATE_H
#define LICD_STATE_H

#include <libpq-fe.h>

#include "batch.h"

struct db;
struct state_shared;

/* The statements state_read runs; every program that calls it lists
 * these in its statement table. */
#define STATE_STMTS \
	{ "state", "SELECT * FROM licd_lookup($1, $2, $3, $4, $5)", 1 }, \
	{ "state_batch", "SELECT * FROM licd_lookup_batch($1::jsonb)", 1 }

/* licd_lookup(license, iid, touch_secs, version, metadata), perhaps
 * batched with other threads' lookups. license must be a UUID
 * (lic_uuid_valid), touch_secs a decimal string; iid, version and
 * metadata (serialised JSON object) may be NULL. Returns DB_OK with *res
 * holding licd_lookup's columns (and maybe more after them) in zero rows
 * (no such license) or one, the caller's to PQclear; else db_exec's
 * status and *res NULL. */
int state_read(struct db *db, const char *license, const char *iid,
    const char *touch_secs, const char *version, const char *metadata,
    PGresult **res);

/* A lookup whose caller does not wait (http_defer): state_read_then
 * queues it and returns; `then` gets state_read's status and result (the
 * callee's to PQclear) on whichever thread ran its batch, with that
 * thread's connection, perhaps before state_read_then returns. The call
 * lives in memory that outlasts the handler (http_scratch) and is the
 * first member of the caller's own struct, which `then` casts it back to.
 * The strings must live until `then` is called. */
struct state_call {
	struct batch_item it;		/* state.c's, as are the rest */
	const char *params[5];		/* licd_lookup's, in order */
	int st;
	PGresult *res;			/* answered alone, or its own row */
	struct state_shared *sh;	/* in a batch: its answer, at row */
	int row;			/* (-1: no row) */
	void (*then)(struct state_call *c, struct db *db, int st,
	    PGresult *res);
};

void state_read_then(struct state_call *c, struct db *db,
    const char *license, const char *iid, const char *touch_secs,
    const char *version, const char *metadata,
    void (*then)(struct state_call *, struct db *, int, PGresult *));

#endif
