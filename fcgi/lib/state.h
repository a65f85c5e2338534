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

struct db;

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

#endif
