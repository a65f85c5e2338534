/*
 * db: one PostgreSQL connection per worker thread, named prepared
 * statements registered once per program and prepared on every (re)connect,
 * transparent reconnect. An unreachable database is DB_UNAVAILABLE, which
 * handlers answer with 503 SERVICE_UNAVAILABLE; nothing here exits.
 *
 * A broken connection is recognised however libpq reports it: PQstatus,
 * an error result without a SQLSTATE (libpq's own, e.g. after an
 * immediate server restart or EPIPE while PQstatus still says OK),
 * 57P01-57P03 or class 08. It is dropped; a statement marked retry is
 * sent once more on a fresh connection. A connection that cannot be
 * made is tried again only after a backoff that grows per connection
 * (DB_RECONNECT_MIN_MS doubling to DB_RECONNECT_MAX_MS); inside it the
 * answer is DB_UNAVAILABLE at once. Each process logs an outage once when
 * it starts, a summary every DB_OUTAGE_LOG_SECS while it lasts, and once
 * when it ends, never a line per request.
 *
 * Every session runs with lock_timeout_ms and statement_timeout_ms
 * (configuration): a statement that waits on a lock held elsewhere (an
 * operator's open transaction) or runs too long is DB_BUSY, answered 503
 * like an outage but on a connection that stays.
 */
#ifndef LICD_DB_H
#define LICD_DB_H

#include <stddef.h>
#include <libpq-fe.h>

enum db_status {
	DB_OK = 0,
	DB_UNAVAILABLE = -1,	/* cannot connect, or the connection broke */
	DB_ERROR = -2,		/* the statement failed (constraint, bug) */
	DB_BUSY = -3,		/* lock_timeout or statement_timeout hit */
};

#define DB_RECONNECT_MIN_MS 100
#define DB_RECONNECT_MAX_MS 2000
#define DB_OUTAGE_LOG_SECS 10

/* retry: the statement may be sent again after a broken connection
 * (reads, and writes that are idempotent by construction). */
struct db_stmt {
	const char *name;
	const char *sql;
	int retry;
};

struct db;

/* The statement table must outlive every connection. */
struct db *db_new(const struct db_stmt *stmts, size_t n);
/* Closes the connection and frees db (NULL: nothing). */
void db_free(struct db *db);

/* Runs sql (one statement, no parameters, answering one boolean) on
 * every new session right after the statements are prepared, before
 * anything else is sent on it: a session-scoped lock taken again after a
 * reconnect. When it answers anything but true, *lost is set to 1 and
 * the session is kept: the caller may still record what it has done, and
 * must not start anything the lock guards. */
void db_on_connect(struct db *db, const char *sql, int *lost);

/* The session timeouts in milliseconds (0: none); before the first
 * statement. Default: lock_timeout_ms and statement_timeout_ms. */
void db_set_timeouts(struct db *db, long lock_ms, long statement_ms);

/* Runs a prepared statement with text parameters (NULL = SQL NULL).
 * DB_OK: *res holds the result (caller PQclear()s). DB_ERROR: *res holds
 * the failed result when there is one, for db_sqlstate(); caller clears. */
int db_exec(struct db *db, const char *name, int nparams,
    const char *const *params, PGresult **res);

/* Explicit transactions for a handler that must run several statements
 * atomically. A connection that BEGIN finds dead is replaced and BEGIN
 * sent again (nothing has run yet). Inside a transaction, a broken
 * connection is never retried or reconnected: the transaction is lost
 * and the caller answers 503. */
int db_begin(struct db *db);
int db_commit(struct db *db);
void db_rollback(struct db *db);

/* After a committed change that may change an answer of validate or
 * heartbeat, before the change's own answer: returns once every
 * process's license cache has let go of the old state, or has lost the
 * right to answer from memory (CALL licd_cache_sync(),
 * sql/functions/36_cache.sql; cache.h). Outside a transaction. DB_OK, or
 * db_exec's statuses. */
int db_cache_sync(struct db *db);

/* The SQLSTATE of a failed result, "" if none. */
const char *db_sqlstate(const PGresult *res);

/* Cheap liveness check for /healthz. */
int db_ping(struct db *db);

#endif
