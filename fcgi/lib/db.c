/* db: see db.h. */
#include "db.h"
#include "config.h"
#include "log.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct db {
	PGconn *conn;
	int in_tx;
	long long used_ms;	/* last statement answered, monotonic */
	long long retry_ms;	/* no connect attempt before this */
	long backoff_ms;	/* the next wait after a failed connect */
	unsigned long down_epoch;	/* out_epoch at the failed connect */
	long lock_ms, stmt_ms;
	const char *on_connect;
	int *lost;
	const struct db_stmt *stmts;
	size_t n;
};

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);	/* vDSO: no syscall */
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The outage, per process: one line when the first connect fails (a
 * connection found lost is an info line until then), a summary every
 * DB_OUTAGE_LOG_SECS while connects keep failing, one line at the first
 * connect that works again. The flag is
 * read without the lock on the request path; the rest is touched only
 * when a connection breaks or a connect is attempted.
 */
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int out_down;
static long long out_since, out_logged;
static unsigned long out_fails, out_lost, out_refused;
/* Outages ended so far: once one connection of the process is back, the
 * others stop waiting out their backoff. */
static atomic_ulong out_epoch;

static void outage_event(const char *what, const char *msg, int connect)
{
	long long now = mono_ms();
	char clean[256];
	size_t i;

	/* libpq's messages end in a newline and may hold several lines */
	snprintf(clean, sizeof(clean), "%s", msg != NULL ? msg : "");
	for (i = 0; clean[i]; i++)
		if (clean[i] == '\n' || clean[i] == '\r')
			clean[i] = ' ';
	while (i > 0 && clean[i - 1] == ' ')
		clean[--i] = '\0';
	pthread_mutex_lock(&out_mu);
	/* A lost connection is no outage yet: after a restart every thread
	 * finds its connection dead once and most reconnect at once. The
	 * outage starts at the first connect that fails. */
	if (!connect && !atomic_load(&out_down)) {
		pthread_mutex_unlock(&out_mu);
		log_info("database connection lost: %s (reconnecting)", clean);
		return;
	}
	if (connect)
		out_fails++;
	else
		out_lost++;
	if (!atomic_load(&out_down)) {
		atomic_store(&out_down, 1);
		out_since = out_logged = now;
		out_refused = 0;
		pthread_mutex_unlock(&out_mu);
		log_error("database outage: %s: %s (answering 503 until it is "
		    "back)", what, clean);
		return;
	}
	if (now - out_logged >= DB_OUTAGE_LOG_SECS * 1000) {
		long long secs = (now - out_since) / 1000;
		unsigned long f = out_fails, l = out_lost, r = out_refused;

		out_logged = now;
		pthread_mutex_unlock(&out_mu);
		log_error("database outage for %llds: %lu failed connects, %lu "
		    "connections lost, %lu calls answered 503 at once; last: %s",
		    secs, f, l, r, clean);
		return;
	}
	pthread_mutex_unlock(&out_mu);
}

static void outage_over(void)
{
	long long secs;
	unsigned long f, l, r;

	if (!atomic_load(&out_down))
		return;
	pthread_mutex_lock(&out_mu);
	if (!atomic_load(&out_down)) {
		pthread_mutex_unlock(&out_mu);
		return;
	}
	atomic_store(&out_down, 0);
	atomic_fetch_add(&out_epoch, 1);
	secs = (mono_ms() - out_since) / 1000;
	f = out_fails;
	l = out_lost;
	r = out_refused;
	out_fails = out_lost = out_refused = 0;
	pthread_mutex_unlock(&out_mu);
	log_warn("database outage over after %llds: %lu failed connects, %lu "
	    "connections lost, %lu calls answered 503 at once", secs, f, l, r);
}

static void outage_refused(void)
{
	pthread_mutex_lock(&out_mu);
	out_refused++;
	pthread_mutex_unlock(&out_mu);
}

struct db *db_new(const struct db_stmt *stmts, size_t n)
{
	struct db *db = calloc(1, sizeof(*db));

	if (db == NULL)
		return NULL;
	db->stmts = stmts;
	db->n = n;
	db->lock_ms = cfg_int("lock_timeout_ms");
	db->stmt_ms = cfg_int("statement_timeout_ms");
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

void db_on_connect(struct db *db, const char *sql, int *lost)
{
	db->on_connect = sql;
	db->lost = lost;
}

void db_set_timeouts(struct db *db, long lock_ms, long statement_ms)
{
	db->lock_ms = lock_ms;
	db->stmt_ms = statement_ms;
}

static void drop(struct db *db)
{
	if (db->conn != NULL)
		PQfinish(db->conn);
	db->conn = NULL;
	db->in_tx = 0;
}

/* The connection is gone, whatever PQstatus says: libpq reports a dead
 * socket (EOF after an immediate restart, EPIPE) as an error result of its
 * own, without a SQLSTATE, and may still say CONNECTION_OK; the server
 * says so with 57P01 (admin shutdown), 57P02 (crash shutdown), 57P03
 * (cannot connect now) or a class 08 state. 25006: a write on a server
 * that turned read-only (an old primary fenced after a failover); the
 * next connect finds the read-write one of database_url's hosts
 * (target_session_attrs=read-write). */
static int broken(const struct db *db, const PGresult *r)
{
	const char *state;

	if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK ||
	    r == NULL)
		return 1;
	state = db_sqlstate(r);
	return *state == '\0' || strncmp(state, "08", 2) == 0 ||
	    strcmp(state, "57P01") == 0 || strcmp(state, "57P02") == 0 ||
	    strcmp(state, "57P03") == 0 || strcmp(state, "25006") == 0;
}

/* 55P03 lock_not_available (lock_timeout), 57014 query_canceled
 * (statement_timeout): the session is fine, the wait was too long. */
static int busy(const PGresult *r)
{
	const char *state = db_sqlstate(r);

	return strcmp(state, "55P03") == 0 || strcmp(state, "57014") == 0;
}

static int connect_db(struct db *db)
{
	const char *keys[] = { "dbname", "connect_timeout",
	    "application_name", "options", NULL };
	char opts[160];
	/* Generic plans: every statement is a key lookup, and custom plans
	 * re-inline the SQL functions (a parse and a plan) on each call,
	 * each time for a plan that never differs. */
	const char *vals[] = { cfg_str("database_url"), "3",
	    "licd", opts, NULL };
	long long now = mono_ms();
	size_t i;

	drop(db);
	if (now < db->retry_ms && db->down_epoch == atomic_load(&out_epoch)) {
		outage_refused();
		return DB_UNAVAILABLE;
	}
	snprintf(opts, sizeof(opts), "-c TimeZone=UTC "
	    "-c plan_cache_mode=force_generic_plan -c lock_timeout=%ld "
	    "-c statement_timeout=%ld", db->lock_ms > 0 ? db->lock_ms : 0,
	    db->stmt_ms > 0 ? db->stmt_ms : 0);
	/* expand_dbname: database_url may be a conninfo string or a URI. */
	db->conn = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(db->conn) != CONNECTION_OK)
		goto down;
	for (i = 0; i < db->n; i++) {
		PGresult *r = PQprepare(db->conn, db->stmts[i].name,
		    db->stmts[i].sql, 0, NULL);
		int ok = PQresultStatus(r) == PGRES_COMMAND_OK;

		if (!ok && broken(db, r)) {
			PQclear(r);
			goto down;
		}
		if (!ok)
			log_error("prepare %s failed: %s", db->stmts[i].name,
			    PQresultErrorMessage(r));
		PQclear(r);
		if (!ok) {
			drop(db);
			return DB_ERROR;
		}
	}
	if (db->on_connect != NULL) {
		PGresult *r = PQexec(db->conn, db->on_connect);
		int ok = PQresultStatus(r) == PGRES_TUPLES_OK &&
		    PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
		int gone = !ok && PQresultStatus(r) != PGRES_TUPLES_OK &&
		    broken(db, r);

		PQclear(r);
		if (gone)
			goto down;
		if (!ok && db->lost != NULL)
			*db->lost = 1;
	}
	db->backoff_ms = 0;
	db->retry_ms = 0;
	db->used_ms = mono_ms();
	outage_over();
	return DB_OK;
down:
	outage_event("cannot connect", PQerrorMessage(db->conn), 1);
	drop(db);
	db->down_epoch = atomic_load(&out_epoch);
	/* A wait that grows while the database stays away, with jitter so
	 * that a process's connections do not come back in step. */
	db->backoff_ms = db->backoff_ms == 0 ? DB_RECONNECT_MIN_MS :
	    db->backoff_ms * 2 > DB_RECONNECT_MAX_MS ? DB_RECONNECT_MAX_MS :
	    db->backoff_ms * 2;
	db->retry_ms = mono_ms() + db->backoff_ms / 2 +
	    (long long)(rand() % (int)(db->backoff_ms / 2 + 1));
	return DB_UNAVAILABLE;
}

/* A server restart closes idle connections; the FATAL message is already
 * in the socket. Notice it before sending, so the next statement goes to a
 * fresh connection instead of failing. */
static int healthy(struct db *db)
{
	struct pollfd pfd;
	int i;

	if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK)
		return 0;
	/* Answered within the last second: a busy connection is checked by
	 * use (a broken one is recognised, dropped, and retry-safe
	 * statements resent); the poll is for connections that sat idle
	 * while the server restarted. Syscalls are a large share of a
	 * request's cost on small VMs. */
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

/* A usable connection, made if needed; outside a transaction only. */
static int ready(struct db *db)
{
	if (healthy(db))
		return DB_OK;
	if (db->conn != NULL)
		outage_event("connection lost", PQerrorMessage(db->conn), 0);
	return connect_db(db);
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
		if (!db->in_tx && (st = ready(db)) != DB_OK)
			return st;
		r = PQexecPrepared(db->conn, name, nparams, params, NULL,
		    NULL, 0);
		st = PQresultStatus(r);
		if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
			db->used_ms = mono_ms();
			*res = r;
			return DB_OK;
		}
		if (broken(db, r)) {
			int in_tx = db->in_tx;

			outage_event("connection lost", r != NULL ?
			    PQresultErrorMessage(r) : PQerrorMessage(db->conn),
			    0);
			PQclear(r);
			drop(db);
			/* Inside a transaction the rest is lost with it:
			 * never resent, and the caller answers 503. */
			db->in_tx = in_tx;
			if (in_tx || !stmt_retry(db, name))
				return DB_UNAVAILABLE;
			continue;
		}
		db->used_ms = mono_ms();
		st = busy(r) ? DB_BUSY : strncmp(db_sqlstate(r), "53", 2) == 0 ?
		    DB_UNAVAILABLE : DB_ERROR;
		if (!db->in_tx &&
		    PQtransactionStatus(db->conn) != PQTRANS_IDLE) {
			PGresult *rb = PQexec(db->conn, "ROLLBACK");

			PQclear(rb);
		}
		if (st != DB_ERROR) {
			/* 53xxx: the server is out of something */
			PQclear(r);
			return st;
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

	if (!ok && broken(db, r)) {
		outage_event("connection lost", r != NULL ?
		    PQresultErrorMessage(r) : PQerrorMessage(db->conn), 0);
		PQclear(r);
		drop(db);
		return DB_UNAVAILABLE;
	}
	if (!ok && busy(r)) {
		PQclear(r);
		return DB_BUSY;
	}
	PQclear(r);
	if (ok)
		db->used_ms = mono_ms();
	return ok ? DB_OK : DB_ERROR;
}

int db_cache_sync(struct db *db)
{
	int attempt, st = DB_UNAVAILABLE;

	if (db->in_tx)
		return DB_ERROR;
	/* Resent once on a fresh connection: the barrier is only a wait. */
	for (attempt = 0; attempt < 2 && st == DB_UNAVAILABLE; attempt++)
		if ((st = ready(db)) == DB_OK)
			st = simple(db, "CALL licd_cache_sync()");
	return st;
}

int db_begin(struct db *db)
{
	int st = DB_UNAVAILABLE, attempt;

	/* Nothing has been done yet, so BEGIN is safe to resend: a connection
	 * found dead here (used in the last second, before the server
	 * restarted) is replaced and the transaction starts on the new one. */
	for (attempt = 0; attempt < 2; attempt++) {
		if ((st = ready(db)) != DB_OK)
			return st;
		if ((st = simple(db, "BEGIN")) == DB_OK) {
			db->in_tx = 1;
			return DB_OK;
		}
		if (db->conn != NULL)	/* an error, not a lost connection */
			return st;
	}
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
		if ((st = ready(db)) != DB_OK)
			return st;
		r = PQexec(db->conn, "SELECT 1");
		st = PQresultStatus(r) == PGRES_TUPLES_OK ? DB_OK :
		    DB_UNAVAILABLE;
		if (st != DB_OK)
			outage_event("connection lost", r != NULL ?
			    PQresultErrorMessage(r) : PQerrorMessage(db->conn),
			    0);
		PQclear(r);
		if (st == DB_OK) {
			db->used_ms = mono_ms();
			return DB_OK;
		}
		drop(db);
	}
	return st;
}
