/*
 * lookup: the one read of a validate or heartbeat call, its license and
 * installation (licd_lookup, sql/functions/40_lookup.sql), shared between
 * the threads of a program (GET /api/usage runs licd_lookup alone; a usage
 * increment reads its license in its own transaction, usage.c). The
 * lookups that arrive while one thread is waiting on the database go out
 * together in one licd_lookup_batch call (same file) on the next free
 * thread's connection; a lone lookup goes alone. No timer, so an idle
 * server adds no latency (batch.h).
 *
 * Why: most of a lookup's cost in PostgreSQL is the statement round trip,
 * not the row (docs/PERFORMANCE.md), so lookups sent together cost little
 * more than one.
 */
#ifndef LICD_LOOKUP_H
#define LICD_LOOKUP_H

#include <libpq-fe.h>

#include "batch.h"
#include "lic.h"

struct db;
struct http_req;
struct http_resp;
struct lookup_shared;

/* The statements of a lookup; every program that reads a license lists
 * these in its statement table ("lookup" alone: licd_lookup). */
#define LOOKUP_STMTS \
	{ "lookup", "SELECT * FROM licd_lookup($1, $2, $3, $4, $5)", 1 }, \
	{ "lookup_batch", "SELECT * FROM licd_lookup_batch($1::jsonb)", 1 }

/* What a deferred request (http_defer) gets when its lookup has run: its
 * request, the running thread's connection, and licd_lookup(license, iid,
 * touch_secs, version, metadata) as db_exec gives it: DB_OK with res
 * holding licd_lookup's columns (and maybe more after them) in zero rows
 * (no such license) or one, else db_exec's status and res NULL. res is
 * the callee's to PQclear. */
typedef void (*lookup_then)(struct http_req *req, struct db *db, int st,
    PGresult *res);

/* One queued lookup, in the request's own state (http_scratch). */
struct lookup_call {
	struct batch_item it;		/* lookup.c's, as are the rest */
	const char *params[5];		/* licd_lookup's, in order */
	int st;
	PGresult *res;			/* answered alone, or its own row */
	struct lookup_shared *sh;	/* in a batch: its answer, at row */
	int row;			/* (-1: no row) */
	struct http_req *req;
	lookup_then then;
};

/* Queues the lookup, perhaps batched with other threads' lookups, and
 * returns; `then` is called on whichever thread ran its batch, perhaps
 * before lookup_read_then returns. license must be a UUID
 * (lic_uuid_valid), touch_secs a decimal string; iid, version and
 * metadata (serialised JSON object) may be NULL. c and the strings must
 * live until `then` is called. */
void lookup_read_then(struct lookup_call *c, struct http_req *req,
    struct db *db, const char *license, const char *iid,
    const char *touch_secs, const char *version, const char *metadata,
    lookup_then then);

/* The lookup's row for a request, once it vouches for key
 * (lic_lookup_read). LIC_OK: the license is the request's log subject and
 * the database's clock its time (req->now); the caller lic_free()s
 * lk->l. LIC_ERROR: a bad row, answered (500 INTERNAL). LIC_UNKNOWN (no
 * such license) and LIC_INVALID (a key that is not the license's): the
 * caller answers INVALID_KEY as its endpoint does. */
int lookup_license(struct http_req *req, struct http_resp *resp,
    const PGresult *res, const char *key, const char *id, int known,
    struct lic_lookup *lk);

#endif
