/* db: see db.h. */
#include "db.h"
#include "config.h"
#include "log.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct db {
	PGconn *conn;
	int in_tx;
	long long used_ms;	/* last statement answered, monotonic */
	const struct db_stmt *stmts;
	size_t n;
};

struct db *db_new(const struct db_stmt *stmts, size_t n)
{
	struct db *db = calloc(1, sizeof(*db));

	if (db == NULL)
		return NULL;
	db->stmts = stmts;
	db->n = n;
	return db;
}

void db_free(struct db *db)
{
	if (db == NULL)
		return;
	if (db->conn != NULL)
		PQfinish(db->conn);
	free(db);
}

static void drop(struct db *db)
{
	if (db->conn != NULL)
		PQfinish(db->conn);
	db->conn = NULL;
}

static int connect_db(struct db *db)
{
	const char *keys[] = { "dbname", "connect_timeout",
	    "application_name", "options", NULL };
	/* Generic plans: every statement is a key lookup, and custom plans
	 * re-inline the SQL functions (a parse and a plan) on each call,
	 * which measured as most of PostgreSQL's CPU per validate. */
	const char *vals[] = { cfg_str("database_url", "dbname=licd"), "3",
	    "licd", "-c TimeZone=UTC -c plan_cache_mode=force_generic_plan",
	    NULL };
	size_t i;

	drop(db);
	/* expand_dbname: database_url may be a conninfo string or a URI. */
	db->conn = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(db->conn) != CONNECTION_OK) {
		log_error("database connect failed: %s",
		    PQerrorMessage(db->conn));
		drop(db);
		return DB_UNAVAILABLE;
	}
	for (i = 0; i < db->n; i++) {
		PGresult *r = PQprepare(db->conn, db->stmts[i].name,
		    db->stmts[i].sql, 0, NULL);
		int ok = PQresultStatus(r) == PGRES_COMMAND_OK;

		if (!ok)
			log_error("prepare %s failed: %s", db->stmts[i].name,
			    PQresultErrorMessage(r));
		PQclear(r);
		if (!ok) {
			int broken = PQstatus(db->conn) != CONNECTION_OK;

			drop(db);
			return broken ? DB_UNAVAILABLE : DB_ERROR;
		}
	}
	return DB_OK;
}

/* A server restart closes idle connections; the FATAL message is already
 * in the socket. Notice it before sending, so the next statement goes to a
 * fresh connection instead of failing. */
static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);	/* vDSO: no syscall */
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int healthy(struct db *db)
{
	struct pollfd pfd;
	int i;

	if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK)
		return 0;
	/* Answered within the last second: a busy connection is checked by
	 * use (retry-safe statements reconnect and resend); the poll is for
	 * connections that sat idle while the server restarted. Syscalls are
	 * a large share of a request's cost on small VMs. */
	if (mono_ms() - db->used_ms < 1000)
		return 1;
	/* The FATAL message and the EOF may be read in two steps: keep
	 * reading while the idle socket has anything to say. */
	for (i = 0; i < 4; i++) {
		pfd.fd = PQsocket(db->conn);
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (pfd.fd < 0)
			return 0;
		if (poll(&pfd, 1, 0) <= 0)
			return 1;
		if (!PQconsumeInput(db->conn) ||
		    PQstatus(db->conn) != CONNECTION_OK)
			return 0;
	}
	return 0;	/* an idle connection that keeps talking: replace it */
}

static int stmt_retry(const struct db *db, const char *name)
{
	size_t i;

	for (i = 0; i < db->n; i++)
		if (strcmp(db->stmts[i].name, name) == 0)
			return db->stmts[i].retry;
	return 0;
}

int db_exec(struct db *db, const char *name, int nparams,
    const char *const *params, PGresult **res)
{
	PGresult *r;
	int attempt, st;

	*res = NULL;
	for (attempt = 0; attempt < 2; attempt++) {
		if (db->in_tx && db->conn == NULL)
			return DB_UNAVAILABLE;
		if (!db->in_tx && !healthy(db) && (st = connect_db(db)) != DB_OK)
			return st;
		r = PQexecPrepared(db->conn, name, nparams, params, NULL,
		    NULL, 0);
		st = PQresultStatus(r);
		if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
			db->used_ms = mono_ms();
			*res = r;
			return DB_OK;
		}
		if (PQstatus(db->conn) != CONNECTION_OK) {
			/* Broken mid-statement: resend only if harmless. */
			log_warn("database connection lost during %s: %s", name,
			    PQerrorMessage(db->conn));
			PQclear(r);
			drop(db);
			if (db->in_tx || !stmt_retry(db, name))
				return DB_UNAVAILABLE;
			continue;
		}
		{
			const char *state = db_sqlstate(r);

			/* 57P01 admin shutdown, 08xxx connection errors and
			 * 53xxx/57Pxx server states: the database, not us.
			 * 25006: a write on a server that turned read-only
			 * (an old primary fenced after a failover); the next
			 * connect finds the read-write one of database_url's
			 * hosts (target_session_attrs=read-write). */
			if (strncmp(state, "08", 2) == 0 ||
			    strncmp(state, "57P", 3) == 0 ||
			    strncmp(state, "53", 2) == 0 ||
			    strcmp(state, "25006") == 0) {
				PQclear(r);
				drop(db);
				return DB_UNAVAILABLE;
			}
		}
		if (!db->in_tx &&
		    PQtransactionStatus(db->conn) != PQTRANS_IDLE) {
			PGresult *rb = PQexec(db->conn, "ROLLBACK");

			PQclear(rb);
		}
		*res = r;
		return DB_ERROR;
	}
	return DB_UNAVAILABLE;
}

static int simple(struct db *db, const char *sql)
{
	PGresult *r = PQexec(db->conn, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK;

	PQclear(r);
	if (!ok && PQstatus(db->conn) != CONNECTION_OK) {
		drop(db);
		return DB_UNAVAILABLE;
	}
	return ok ? DB_OK : DB_ERROR;
}

int db_begin(struct db *db)
{
	int st;

	if (!healthy(db) && (st = connect_db(db)) != DB_OK)
		return st;
	if ((st = simple(db, "BEGIN")) == DB_OK)
		db->in_tx = 1;
	return st;
}

int db_commit(struct db *db)
{
	int st = DB_UNAVAILABLE;

	if (db->conn != NULL)
		st = simple(db, "COMMIT");
	db->in_tx = 0;
	return st;
}

void db_rollback(struct db *db)
{
	if (db->conn != NULL &&
	    PQtransactionStatus(db->conn) != PQTRANS_IDLE)
		simple(db, "ROLLBACK");
	db->in_tx = 0;
}

const char *db_sqlstate(const PGresult *res)
{
	const char *s;

	if (res == NULL)
		return "";
	s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	return s != NULL ? s : "";
}

int db_ping(struct db *db)
{
	PGresult *r;
	int attempt, st = DB_UNAVAILABLE;

	for (attempt = 0; attempt < 2; attempt++) {
		if (!healthy(db) && (st = connect_db(db)) != DB_OK)
			return st;
		r = PQexec(db->conn, "SELECT 1");
		st = PQresultStatus(r) == PGRES_TUPLES_OK ? DB_OK :
		    DB_UNAVAILABLE;
		PQclear(r);
		if (st == DB_OK)
			return DB_OK;
		drop(db);
	}
	return st;
}
