/*
 * licd-lifecycle: the periodic job (systemd timer or cron, every 15 min).
 *
 * One run takes a PostgreSQL advisory lock, so overlapping runs never both
 * act (the second says so and exits 0). The lock is the session's: when
 * the session is lost (a restart, pg_terminate_backend) db.c reconnects and
 * takes it again before sending anything else; if another run has it by
 * then, this run records what it already did and stops. Each task runs as its own
 * short transaction: suspend unpaid subscriptions past grace, expire
 * licenses past their end, queue expiry and usage warnings, free stale
 * installations, delete old log rows, deliver the notification outbox, and
 * count the admin overview's figures that would be too slow to count on
 * each request. The tasks live in sql/functions/80_lifecycle.sql; each is
 * idempotent, so a run killed at any point is repaired by the next one.
 * Delivery records each channel as soon as it succeeds and backs off on
 * failure; nothing is dropped. Exit status: 0 done (or lock held), 1 a
 * task failed, 2 usage.
 */
#include "config.h"
#include "db.h"
#include "log.h"
#include "notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#define LOCK_KEY "7318412093"	/* pg advisory lock id of licd-lifecycle */

static const struct db_stmt stmts[] = {
	{ "start", "SELECT 1", 1 },
	{ "unlock", "SELECT pg_advisory_unlock(" LOCK_KEY ")", 0 },
	{ "suspend-unpaid", "SELECT licd_lc_suspend_unpaid()", 0 },
	{ "expire", "SELECT licd_lc_expire()", 0 },
	{ "expiry-warnings", "SELECT licd_lc_expiry_warnings($1::int[])", 0 },
	{ "usage-warnings", "SELECT licd_lc_usage_warnings($1::int[])", 0 },
	{ "stale-installations",
	    "SELECT licd_lc_stale_installations($1::bigint)", 0 },
	{ "retention", "SELECT licd_lc_retention($1::int, $2::int)", 0 },
	{ "figures", "SELECT licd_lc_figures()", 0 },
	{ "due", "SELECT count(*) FROM notifications WHERE status = 'pending' "
	    "AND next_attempt_at <= licd_now()", 0 },
	{ "claim", "SELECT * FROM licd_lc_claim($1::int, $2::int)", 0 },
	{ "pending-events", "SELECT count(*), coalesce(min(received_at)::text, '') "
	    "FROM webhook_events WHERE status = 'pending' AND received_at < "
	    "licd_now() - interval '1 hour'", 0 },
	/* Records of what was done: idempotent, sent again after a lost
	 * connection, and written even when the lock went to another run. */
	{ "sent", "SELECT licd_lc_sent($1::bigint, $2)", 1 },
	{ "done", "SELECT licd_lc_done($1::bigint, $2::boolean, $3)", 1 },
};

static struct db *db;
static int dry_run;
/* Set by db.c when a new session could not take the lock again. */
static int lock_lost;

/* Before anything the lock guards. */
static int locked(void)
{
	static int said;

	if (!lock_lost)
		return 1;
	if (!said++) {
		fprintf(stderr, "licd-lifecycle: the database session was lost "
		    "and another run holds the lock now; stopping\n");
		log_error("lifecycle: session lost and the lock taken by another "
		    "run; stopping (what was sent is recorded)");
	}
	return 0;
}

/* "30,7,1" (a list config checked) -> "{30,7,1}" for an int[] parameter;
 * -1 if it does not fit. */
static int int_list(const char *key, char *out, size_t len)
{
	return (size_t)snprintf(out, len, "{%s}", cfg_str(key)) >= len ? -1 : 0;
}

/* Says that statement name failed (stderr and the log) and clears *res;
 * returns -1. */
static int failed(const char *name, PGresult **res)
{
	fprintf(stderr, "licd-lifecycle: %s failed: %s\n", name,
	    *res ? PQresultErrorMessage(*res) : "database unavailable");
	log_error("lifecycle %s failed", name);
	PQclear(*res);
	*res = NULL;
	return -1;
}

/* Runs statement name; -1 when it fails, said by failed(). */
static int run(const char *name, int n, const char *const *params,
    PGresult **res)
{
	if (db_exec(db, name, n, params, res) != DB_OK)
		return failed(name, res);
	return 0;
}

/* Runs one counting task; in --dry-run inside a transaction rolled back. */
static int task(const char *name, const char *what, int n,
    const char *const *params)
{
	PGresult *res = NULL;
	long long count;
	int st;

	if (!locked())
		return -1;
	if (dry_run && db_begin(db) != DB_OK)
		return failed(name, &res);
	st = run(name, n, params, &res);
	if (dry_run)
		db_rollback(db);
	if (st != 0)
		return -1;
	count = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	printf("%-20s %lld %s%s\n", name, count, what,
	    dry_run ? " (dry run: not done)" : "");
	log_info("lifecycle %s: %lld %s%s", name, count, what,
	    dry_run ? " (dry run)" : "");
	PQclear(res);
	return 0;
}

/* Provider events still waiting after an hour: a plan with their price,
 * their subscription or their customer never arrived. Warned about on
 * every run until someone acts (licctl webhook pending). */
static int pending_events(void)
{
	PGresult *res = NULL;
	long long n;

	if (run("pending-events", 0, NULL, &res) != 0)
		return -1;
	n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	printf("%-20s %lld webhook events pending over an hour\n",
	    "pending-events", n);
	if (n > 0)
		log_warn("lifecycle: %lld webhook events pending over an hour "
		    "(oldest received %s); see licctl webhook pending", n,
		    PQgetvalue(res, 0, 1));
	PQclear(res);
	return 0;
}

static int retention(void)
{
	char days[24], batch[24];
	const char *p[2] = { days, batch };
	long long total = 0;
	PGresult *res = NULL;
	int i;

	if (!locked())
		return -1;
	snprintf(days, sizeof(days), "%ld", cfg_int("retention_days"));
	snprintf(batch, sizeof(batch), "%ld", cfg_int("retention_batch"));
	if (dry_run) {
		printf("%-20s skipped (dry run)\n", "retention");
		return 0;
	}
	for (i = 0; i < 10000; i++) {
		long long n;

		if (run("retention", 2, p, &res) != 0)
			return -1;
		n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		PQclear(res);
		res = NULL;
		total += n;
		if (n == 0)
			break;
	}
	printf("%-20s %lld rows older than %s days deleted\n", "retention",
	    total, days);
	log_info("lifecycle retention: %lld rows deleted", total);
	return 0;
}

/* One channel of a notification went out: recorded before anything else,
 * so a later retry never repeats it. When even that fails (the database
 * is gone), err says so: the attempt is recorded as failed with it, if it
 * can be, and the channel will be sent again. */
static int mark_sent(const char *id, const char *channel, char *err,
    size_t elen)
{
	const char *p[2] = { id, channel };
	PGresult *r = NULL;
	int st = db_exec(db, "sent", 2, p, &r);

	if (st != DB_OK) {
		size_t n = strlen(err);

		snprintf(err + n, elen - n, "%ssent by %s but not recorded "
		    "(%s): it may be sent again", n ? "; " : "", channel,
		    r != NULL ? PQresultErrorMessage(r) : "database unavailable");
		log_error("notification %s: sent by %s but the record failed; "
		    "it may be sent again", id, channel);
	}
	PQclear(r);
	return st == DB_OK ? 0 : -1;
}

/* Sends one claimed notification on every configured channel not yet done. */
static int deliver_one(PGresult *res, int row, int email, int hook)
{
	struct notification n;
	char err[512] = "";
	const char *p[3];
	PGresult *r = NULL;
	int ok = 1;

	n.id = PQgetvalue(res, row, 0);
	n.kind = PQgetvalue(res, row, 1);
	n.recipient = PQgetisnull(res, row, 2) ? NULL : PQgetvalue(res, row, 2);
	n.payload = PQgetvalue(res, row, 3);
	n.license_id = PQgetisnull(res, row, 4) ? NULL : PQgetvalue(res, row, 4);
	n.created_at = PQgetvalue(res, row, 6);
	p[0] = n.id;
	/* A run that lost its lock sends nothing more: the claim runs out
	 * and the next run sends what is left. */
	if (email && n.recipient != NULL &&
	    strcmp(PQgetvalue(res, row, 7), "f") == 0) {
		if (!locked())
			return -1;
		if (notify_send_email(&n, err, sizeof(err)) != 0 ||
		    mark_sent(n.id, "email", err, sizeof(err)) != 0)
			ok = 0;
	}
	if (hook && strcmp(PQgetvalue(res, row, 8), "f") == 0) {
		char e2[512] = "";

		if (!locked())
			return -1;
		if (notify_send_webhook(&n, e2, sizeof(e2)) != 0) {
			ok = 0;
			snprintf(err + strlen(err), sizeof(err) - strlen(err),
			    "%s%s", err[0] ? "; " : "", e2);
		} else if (mark_sent(n.id, "webhook", err, sizeof(err)) != 0) {
			ok = 0;
		}
	}
	p[1] = ok ? "t" : "f";
	p[2] = ok ? NULL : err;
	if (!ok)
		log_warn("notification %s (%s) attempt %s failed: %s", n.id,
		    n.kind, PQgetvalue(res, row, 5), err);
	if (run("done", 3, p, &r) != 0)
		return -1;
	PQclear(r);
	return ok ? 1 : 0;
}

static int deliver(void)
{
	int email = notify_email_enabled(), hook = notify_webhook_enabled();
	long delivered = 0, failed = 0, rounds;
	char batch[24], lock[24];
	const char *p[2] = { batch, lock };
	PGresult *res = NULL;
	int i, rc;

	if (dry_run || (!email && !hook)) {
		if (run("due", 0, NULL, &res) != 0)
			return -1;
		printf("%-20s %s notifications due%s\n", "deliver",
		    PQgetvalue(res, 0, 0), dry_run ? " (dry run: not sent)" :
		    " (no channel configured: smtp_url, notify_webhook_url)");
		PQclear(res);
		return 0;
	}
	snprintf(batch, sizeof(batch), "%ld", cfg_int("notify_batch"));
	snprintf(lock, sizeof(lock), "%ld", cfg_int("notify_lock_secs"));
	for (rounds = 0; rounds < 1000; rounds++) {
		if (!locked())
			return -1;
		if (run("claim", 2, p, &res) != 0)
			return -1;
		if (PQntuples(res) == 0)
			break;
		for (i = 0; i < PQntuples(res); i++) {
			if ((rc = deliver_one(res, i, email, hook)) < 0) {
				PQclear(res);
				return -1;
			}
			if (rc)
				delivered++;
			else
				failed++;
		}
		PQclear(res);
		res = NULL;
	}
	PQclear(res);
	printf("%-20s %ld delivered, %ld failed (retried later)\n", "deliver",
	    delivered, failed);
	log_info("lifecycle deliver: %ld delivered, %ld failed", delivered,
	    failed);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: licd-lifecycle [--dry-run] [-c CONFIG]\n"
	    "Runs every lifecycle task once: suspend-unpaid, expire,\n"
	    "expiry-warnings, usage-warnings, stale-installations, pending-events\n"
	    "(warns about webhook events waiting over an hour), retention,\n"
	    "figures (the admin overview's counts), deliver. Safe to run at any\n"
	    "time; overlapping runs wait for none and act once. --dry-run counts\n"
	    "what would change and sends nothing.\n"
	    "Config: expiry_warning_days, usage_warning_percents,\n"
	    "stale_installation_secs, retention_days, smtp_url, smtp_from,\n"
	    "notify_webhook_url, notify_webhook_secret (licctl config keys).\n");
}

/* The license caches' barrier after the tasks' commits; a failure is
 * logged (the caches' fence still bounds how long the old state is
 * answered). A dry run commits nothing to wait for. */
static void cache_sync(void)
{
	if (!dry_run && db_cache_sync(db) != DB_OK)
		log_warn("lifecycle: license cache barrier failed");
}

int main(int argc, char **argv)
{
	const char *conf = NULL, *p[1];
	char cerr[4096], days[128], pct[128], stale[24];
	PGresult *res = NULL;
	int i, rc = 1, have_lock = 0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dry-run") == 0) {
			dry_run = 1;
		} else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			conf = argv[++i];
		} else if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (cfg_load(conf, cerr, sizeof(cerr)) != 0) {
		fprintf(stderr, "%s\nlicd-lifecycle: the configuration is not "
		    "valid; nothing done\n", cerr);
		return 1;
	}
	if (log_init("licd-lifecycle") != 0)
		return 1;
	/* config checked them; only their length can fail here */
	if (int_list("expiry_warning_days", days, sizeof(days)) ||
	    int_list("usage_warning_percents", pct, sizeof(pct))) {
		fprintf(stderr, "licd-lifecycle: expiry_warning_days or "
		    "usage_warning_percents is too long\n");
		return 1;
	}
	snprintf(stale, sizeof(stale), "%ld",
	    cfg_int("stale_installation_secs"));
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    (db = db_new(stmts, sizeof(stmts) / sizeof(stmts[0]))) == NULL)
		return 1;
	/* A batch job, not a request: it may wait for an operator's lock
	 * and run long deletes; only its advisory lock says who acts. */
	db_set_timeouts(db, 10000, 0);
	/* The lock is taken on every session before anything else (db.h). */
	db_on_connect(db, "SELECT pg_try_advisory_lock(" LOCK_KEY ")",
	    &lock_lost);
	if (db_exec(db, "start", 0, NULL, &res) != DB_OK) {
		fprintf(stderr, "licd-lifecycle: database unavailable\n");
		goto out;
	}
	if (lock_lost) {
		printf("another licd-lifecycle run holds the lock; nothing done\n");
		log_info("lifecycle: lock held by another run");
		rc = 0;
		goto out;
	}
	have_lock = 1;
	PQclear(res);
	res = NULL;
	rc = 0;
	/* Suspension before expiry: a license past grace is suspended for
	 * non-payment (reinstated by a later payment), not expired. */
	if (task("suspend-unpaid", "licenses suspended (grace over)", 0, NULL))
		rc = 1;
	if (task("expire", "licenses expired", 0, NULL))
		rc = 1;
	p[0] = days;
	if (task("expiry-warnings", "expiry warnings queued", 1, p))
		rc = 1;
	p[0] = pct;
	if (task("usage-warnings", "usage warnings queued", 1, p))
		rc = 1;
	p[0] = stale;
	if (task("stale-installations", "stale installations freed", 1, p))
		rc = 1;
	if (pending_events())
		rc = 1;
	/* The changes above are committed: validate and heartbeat answer
	 * them from now on (db_cache_sync), not when the run ends. */
	cache_sync();
	if (retention())
		rc = 1;
	if (task("figures", "licenses counted (overview and plans)", 0, NULL))
		rc = 1;
	if (deliver())
		rc = 1;
	cache_sync();
out:
	PQclear(res);
	if (have_lock && !lock_lost) {
		res = NULL;
		db_exec(db, "unlock", 0, NULL, &res);
		PQclear(res);
	}
	db_free(db);
	curl_global_cleanup();
	return rc;
}
