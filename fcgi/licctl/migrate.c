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

static void sha256_hex(const char *s, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;

	if (EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL) != 1 || n != 32)
		cli_die("SHA-256 failed");
	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int migrate_run(const struct cli_cmd *c, const struct cli_opts *o)
{
	const char *dir = cfg_str("sql_dir");
	int status = cli_opt(o, "status") != NULL;
	struct dirent **names, **fns;
	char fdir[2048];
	int i, n, nf, applied = 0, fapplied = 0;

	if (o->npos != 0)
		return cli_usage(c);
	cli_exec("SELECT pg_advisory_lock(hashtext('licd.migrate'))");
	cli_exec("CREATE TABLE IF NOT EXISTS schema_migrations (version text "
	    "PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())");
	cli_exec("ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS "
	    "checksum text");
	cli_exec("CREATE TABLE IF NOT EXISTS schema_functions (file text "
	    "PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT "
	    "NULL DEFAULT now())");
	snprintf(fdir, sizeof(fdir), "%s/functions", dir);
	if ((n = scandir(dir, &names, sql_file, alphasort)) < 0)
		cli_die("sql_dir %s: %s", dir, strerror(errno));
	if ((nf = scandir(fdir, &fns, fn_file, alphasort)) < 0)
		cli_die("%s: %s", fdir, strerror(errno));
	for (i = 0; i < n + nf; i++) {
		int fn = i >= n;
		const char *name = fn ? fns[i - n]->d_name : names[i]->d_name;
		char path[4096], sum[65];
		const char *p[2] = { name, sum };
		PGresult *r;
		char *sql;
		int done, known, same;

		if (i == n && !status)
			cli_exec("BEGIN");
		snprintf(path, sizeof(path), "%s/%s", fn ? fdir : dir, name);
		sql = cli_slurp(path);
		sha256_hex(sql, sum);
		r = cli_q(fn ? "SELECT checksum = $2 FROM schema_functions WHERE "
		    "file = $1" : "SELECT checksum = $2 FROM schema_migrations "
		    "WHERE version = $1", 2, p);
		done = PQntuples(r) > 0;
		known = done && !PQgetisnull(r, 0, 0);
		same = known && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
		PQclear(r);
		if (status) {
			printf("%s%-*s %s\n", fn ? "functions/" : "",
			    fn ? 30 : 40, name, !done ? "pending" :
			    same || !known ? "applied" : fn ? "changed" :
			    "applied, file changed since");
			free(sql);
			continue;
		}
		if (!fn && known && !same)
			cli_die("%s has changed since it was applied (SHA-256 now "
			    "%s): a migration must not change once applied; "
			    "restore it and put the change in a new migration",
			    name, sum);
		if (!fn && done && !known)
			PQclear(cli_q("UPDATE schema_migrations SET checksum = $2 "
			    "WHERE version = $1", 2, p));
		if (fn ? same && applied == 0 : done) {
			free(sql);
			continue;
		}
		if (!fn)
			cli_exec("BEGIN");
		r = PQexec(cli_conn(), sql);
		if (PQresultStatus(r) != PGRES_COMMAND_OK &&
		    PQresultStatus(r) != PGRES_TUPLES_OK &&
		    PQresultStatus(r) != PGRES_EMPTY_QUERY)
			cli_die("%s%s: %s", fn ? "functions/" : "", name,
			    PQresultErrorMessage(r));
		PQclear(r);
		free(sql);
		PQclear(cli_q(fn ? "INSERT INTO schema_functions (file, checksum) "
		    "VALUES ($1, $2) ON CONFLICT (file) DO UPDATE SET "
		    "checksum = EXCLUDED.checksum, applied_at = now()" :
		    "INSERT INTO schema_migrations (version, checksum) "
		    "VALUES ($1, $2)", 2, p));
		if (!fn)
			cli_exec("COMMIT");
		printf("applied %s%s\n", fn ? "functions/" : "", name);
		if (fn)
			fapplied++;
		else
			applied++;
	}
	if (!status) {
		if (nf > 0)
			cli_exec("COMMIT");
		printf("schema up to date (%d migrations and %d function files "
		    "applied now)\n", applied, fapplied);
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	for (i = 0; i < nf; i++)
		free(fns[i]);
	free(names);
	free(fns);
	return 0;
}
