/*
 * licctl migrate: the numbered migrations not yet in schema_migrations,
 * each in its own transaction, then the files of sql_dir/functions (every
 * function, view and trigger, CREATE OR REPLACE) in one transaction: those
 * whose SHA-256 differs from the one recorded in schema_functions, or all
 * of them when a migration ran now (it may have dropped what they
 * create). An applied migration whose file has changed stops it there; a
 * row without a checksum (applied by an older licctl) takes the file's.
 * Under an advisory lock, so that concurrent runs apply each file once.
 */
#include "cli.h"
#include "config.h"

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

/* One file: its text and SHA-256, and what the database recorded of it. */
struct sqlfile {
	const char *name;
	int fn;			/* a file of sql_dir/functions */
	char sum[65];
	char *sql;
	int done;		/* recorded */
	int known;		/* with a checksum */
	int same;		/* the file's */
};

static int load(struct cli_err *e, const char *dir, struct sqlfile *f)
{
	const char *p[2] = { f->name, f->sum };
	char path[4096];
	PGresult *r;

	snprintf(path, sizeof(path), "%s/%s", dir, f->name);
	if (cli_slurp(e, path, &f->sql) != 0 || sha256_hex(e, f->sql,
	    f->sum) != 0 || (r = cli_q(e, f->fn ? "SELECT checksum = $2 FROM "
	    "schema_functions WHERE file = $1" : "SELECT checksum = $2 FROM "
	    "schema_migrations WHERE version = $1", 2, p)) == NULL)
		return -1;
	f->done = PQntuples(r) > 0;
	f->known = f->done && !PQgetisnull(r, 0, 0);
	f->same = f->known && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	return 0;
}

/* migrate --status: one line a file. */
static void print_state(const struct sqlfile *f)
{
	printf("%s%-*s %s\n", f->fn ? "functions/" : "", f->fn ? 30 : 40,
	    f->name, !f->done ? "pending" : f->same || !f->known ? "applied" :
	    f->fn ? "changed" : "applied, file changed since");
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

/* A numbered migration: refused when changed since it was applied, its
 * checksum recorded when an older licctl applied it, else run in its own
 * transaction unless it was. *applied counts those run. */
static int migration(struct cli_err *e, const struct sqlfile *f,
    int *applied)
{
	const char *p[2] = { f->name, f->sum };
	PGresult *r;

	if (f->known && !f->same)
		return cli_fail(e, 1, "%s has changed since it was applied "
		    "(SHA-256 now %s): a migration must not change once "
		    "applied; restore it and put the change in a new migration",
		    f->name, f->sum);
	if (f->done && !f->known) {
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
