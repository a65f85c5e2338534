/*
 * licctl migrate: the numbered migrations not yet in schema_migrations,
 * each in its own transaction, then the files of sql_dir/functions (every
 * function, view and trigger, CREATE OR REPLACE) in one transaction: those
 * whose checksum differs from the one recorded in schema_functions, or all
 * of them when a migration ran now (it may have dropped what they
 * create). An applied migration whose statements have changed stops it
 * there; a row without a checksum (applied by an older licctl) takes the
 * file's. Under an advisory lock, so that concurrent runs apply each file
 * once.
 *
 * A file's checksum is the SHA-256 of its statements (sqltext.h): its
 * comments and layout may change after it was applied, its statements
 * may not. licctl before this rule recorded the SHA-256 of the whole
 * text; such a checksum still matches a file unchanged since, or one of
 * `reworded` below, and is replaced by the statements' one.
 */
#include "cli.h"
#include "config.h"
#include "sqltext.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

/* sql_dir/NNN_*.sql */
static int sql_file(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return n > 8 && isdigit((unsigned char)d->d_name[0]) &&
	    isdigit((unsigned char)d->d_name[1]) &&
	    isdigit((unsigned char)d->d_name[2]) && d->d_name[3] == '_' &&
	    strcmp(d->d_name + n - 4, ".sql") == 0;
}

/* sql_dir/functions/NN_*.sql */
static int fn_file(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return n > 7 && isdigit((unsigned char)d->d_name[0]) &&
	    isdigit((unsigned char)d->d_name[1]) && d->d_name[2] == '_' &&
	    strcmp(d->d_name + n - 4, ".sql") == 0;
}

/* Migrations whose comments were reworded after they were applied, by the
 * SHA-256 of their whole text before: what older licctl recorded. */
static const struct {
	const char *file;
	const char *sum;
} reworded[] = {
	/* measurements taken out of the comments */
	{ "009_usage_batch.sql",
	  "7c8d907dddc631d9938cce51c16cf4268a588faa31be98db804e52bee820c601" },
	{ "011_check_in.sql",
	  "987e078db2a6c032b641a4ace790435757ba377ec772ba204aa5bf616f7c305f" },
	{ "012_hot_touch.sql",
	  "777a3263c4144daa07d879512de6c5b99ab870f3e4fc6911378128be8ba14aba" },
	{ "015_cheap_checks.sql",
	  "28a607e740ef236554e6052051256ba6533b99cf1176295ee41b7b14256f5d01" },
};

static int sha256_hex(struct cli_err *e, const char *s, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;

	if (EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL) != 1 || n != 32)
		return cli_fail(e, 1, "SHA-256 failed");
	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

/* One file: its text and checksum, and what the database recorded of
 * it. */
struct sqlfile {
	const char *name;
	int fn;			/* a file of sql_dir/functions */
	char sum[65];		/* of its statements */
	char *sql;
	int done;		/* recorded */
	int known;		/* with a checksum */
	int same;		/* the file's */
	int old;		/* the file's, as older licctl computed it (a
				 * function file is applied again, once) */
};

/* recorded is what older licctl recorded for this file: the SHA-256 of
 * its whole text now, or of one it had before its comments changed. */
static int old_sum(struct cli_err *e, const struct sqlfile *f,
    const char *recorded, int *old)
{
	char text[65];
	size_t i;

	*old = 0;
	if (sha256_hex(e, f->sql, text) != 0)
		return -1;
	*old = strcmp(recorded, text) == 0;
	for (i = 0; !*old && i < sizeof(reworded) / sizeof(reworded[0]); i++)
		*old = !f->fn && strcmp(f->name, reworded[i].file) == 0 &&
		    strcmp(recorded, reworded[i].sum) == 0;
	return 0;
}

static int load(struct cli_err *e, const char *dir, struct sqlfile *f)
{
	const char *p[1] = { f->name };
	char path[4096], *stmts = NULL;
	PGresult *r = NULL;
	int rc = -1;

	snprintf(path, sizeof(path), "%s/%s", dir, f->name);
	if (cli_slurp(e, path, &f->sql) != 0)
		goto out;
	if (sqltext_statements(f->sql, &stmts) != 0) {
		cli_fail(e, 1, "out of memory");
		goto out;
	}
	if (sha256_hex(e, stmts, f->sum) != 0 || (r = cli_q(e, f->fn ?
	    "SELECT checksum FROM schema_functions WHERE file = $1" :
	    "SELECT checksum FROM schema_migrations WHERE version = $1", 1,
	    p)) == NULL)
		goto out;
	f->done = PQntuples(r) > 0;
	f->known = f->done && !PQgetisnull(r, 0, 0);
	f->same = f->known && strcmp(PQgetvalue(r, 0, 0), f->sum) == 0;
	if (f->known && !f->same &&
	    old_sum(e, f, PQgetvalue(r, 0, 0), &f->old) != 0)
		goto out;
	rc = 0;
out:
	PQclear(r);
	free(stmts);
	return rc;
}

/* migrate --status: one line a file. */
static void print_state(const struct sqlfile *f)
{
	printf("%s%-*s %s\n", f->fn ? "functions/" : "", f->fn ? 30 : 40,
	    f->name, !f->done ? "pending" : f->same || !f->known ||
	    (f->old && !f->fn) ? "applied" : f->fn ? "changed" :
	    "applied, file changed since");
}

/* The file run and recorded with its checksum, within the caller's
 * transaction. */
static int run(struct cli_err *e, const struct sqlfile *f)
{
	const char *p[2] = { f->name, f->sum };
	PGresult *r = PQexec(cli_conn(e), f->sql);
	int st = PQresultStatus(r);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
	    st != PGRES_EMPTY_QUERY) {
		cli_fail(e, 1, "%s%s: %s", f->fn ? "functions/" : "", f->name,
		    PQresultErrorMessage(r));
		PQclear(r);
		return -1;
	}
	PQclear(r);
	r = cli_q(e, f->fn ? "INSERT INTO schema_functions (file, checksum) "
	    "VALUES ($1, $2) ON CONFLICT (file) DO UPDATE SET checksum = "
	    "EXCLUDED.checksum, applied_at = now()" : "INSERT INTO "
	    "schema_migrations (version, checksum) VALUES ($1, $2)", 2, p);
	PQclear(r);
	if (r == NULL)
		return -1;
	printf("applied %s%s\n", f->fn ? "functions/" : "", f->name);
	return 0;
}

/* A numbered migration: refused when its statements changed since it was
 * applied, its checksum recorded when an older licctl applied it, else
 * run in its own transaction unless it was. *applied counts those run. */
static int migration(struct cli_err *e, const struct sqlfile *f,
    int *applied)
{
	const char *p[2] = { f->name, f->sum };
	PGresult *r;

	if (f->known && !f->same && !f->old)
		return cli_fail(e, 1, "%s has changed since it was applied "
		    "(SHA-256 of its statements now %s): a migration's "
		    "statements must not change once applied; restore them and "
		    "put the change in a new migration", f->name, f->sum);
	if (f->done && (!f->known || f->old)) {
		r = cli_q(e, "UPDATE schema_migrations SET checksum = $2 WHERE "
		    "version = $1", 2, p);
		PQclear(r);
		if (r == NULL)
			return -1;
	}
	if (f->done)
		return 0;
	if (cli_exec(e, "BEGIN") != 0 || run(e, f) != 0 ||
	    cli_exec(e, "COMMIT") != 0)
		return -1;
	(*applied)++;
	return 0;
}

static int setup(struct cli_err *e)
{
	static const char *const sql[] = {
		"SELECT pg_advisory_lock(hashtext('licd.migrate'))",
		"CREATE TABLE IF NOT EXISTS schema_migrations (version text "
		    "PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
		"ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS "
		    "checksum text",
		"CREATE TABLE IF NOT EXISTS schema_functions (file text PRIMARY "
		    "KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL "
		    "DEFAULT now())",
	};
	size_t i;

	for (i = 0; i < sizeof(sql) / sizeof(sql[0]); i++)
		if (cli_exec(e, sql[i]) != 0)
			return -1;
	return 0;
}

int migrate_run(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	const char *dir = cfg_str("sql_dir");
	int status = cli_opt(o, "status") != NULL;
	struct dirent **names = NULL, **fns = NULL;
	struct sqlfile f;
	char fdir[2048];
	int i, n = 0, nf = 0, applied = 0, fapplied = 0, rc = -1;

	if (o->npos != 0)
		return cli_usage(e, c);
	memset(&f, 0, sizeof(f));
	if (setup(e) != 0)
		goto out;
	snprintf(fdir, sizeof(fdir), "%s/functions", dir);
	if ((n = scandir(dir, &names, sql_file, alphasort)) < 0) {
		n = 0;
		cli_fail(e, 1, "sql_dir %s: %s", dir, strerror(errno));
		goto out;
	}
	if ((nf = scandir(fdir, &fns, fn_file, alphasort)) < 0) {
		nf = 0;
		cli_fail(e, 1, "%s: %s", fdir, strerror(errno));
		goto out;
	}
	for (i = 0; i < n + nf; i++) {
		free(f.sql);
		memset(&f, 0, sizeof(f));
		f.fn = i >= n;
		f.name = f.fn ? fns[i - n]->d_name : names[i]->d_name;
		if (i == n && !status && cli_exec(e, "BEGIN") != 0)
			goto out;
		if (load(e, f.fn ? fdir : dir, &f) != 0)
			goto out;
		if (status)
			print_state(&f);
		else if (!f.fn && migration(e, &f, &applied) != 0)
			goto out;
		else if (f.fn && !(f.same && applied == 0)) {
			if (run(e, &f) != 0)
				goto out;
			fapplied++;
		}
	}
	if (!status && nf > 0 && cli_exec(e, "COMMIT") != 0)
		goto out;
	if (!status)
		printf("schema up to date (%d migrations and %d function files "
		    "applied now)\n", applied, fapplied);
	rc = 0;
out:
	free(f.sql);
	for (i = 0; i < n; i++)
		free(names[i]);
	for (i = 0; i < nf; i++)
		free(fns[i]);
	free(names);
	free(fns);
	return rc;
}
