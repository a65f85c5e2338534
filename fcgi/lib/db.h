/*
 * db: one PostgreSQL connection per worker thread, named prepared
 * statements registered once per program and prepared on every (re)connect,
 * transparent reconnect. An unreachable database is DB_UNAVAILABLE, which
 * handlers answer with 503 SERVICE_UNAVAILABLE; nothing here exits.
 */
#ifndef LICD_DB_H
#define LICD_DB_H

#include <stddef.h>
#include <libpq-fe.h>

enum db_status {
	DB_OK = 0,
	DB_UNAVAILABLE = -1,	/* cannot connect, or the connection broke */
	DB_ERROR = -2,		/* the statement failed (constraint, bug) */
};

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
void db_free(struct db *db);

/* Runs a prepared statement with text parameters (NULL = SQL NULL).
 * DB_OK: *res holds the result (caller PQclear()s). DB_ERROR: *res holds
 * the failed result when there is one, for db_sqlstate(); caller clears. */
int db_exec(struct db *db, const char *name, int nparams,
    const char *const *params, PGresult **res);

/* Explicit transactions for a handler that must run several statements
 * atomically. Inside one, a broken connection is never retried or
 * reconnected: the transaction is lost and the caller answers 503. */
int db_begin(struct db *db);
int db_commit(struct db *db);
void db_rollback(struct db *db);

/* The SQLSTATE of a failed result, "" if none. */
const char *db_sqlstate(const PGresult *res);

/* Cheap liveness check for /healthz. */
int db_ping(struct db *db);

#endif
