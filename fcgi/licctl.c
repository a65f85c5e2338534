/*
 * licctl: the operator's CLI. Schema migrations, signing keys and the
 * published JWKS, plans, customers and licenses. Every state change runs in
 * one transaction together with its audit_log row (actor "licctl").
 * SQL is parameterised (PQexecParams); nothing is built with printf.
 */
#include "auth.h"
#include "config.h"
#include "jwt.h"
#include "lic.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#define MAX_OPTS 16

static PGconn *conn;

/* ---- small helpers ---------------------------------------------------- */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2),
    noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "licctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (conn != NULL)
		PQfinish(conn);
	exit(1);
}

/* A value on the command line that licd cannot take: one line naming the
 * option and what it accepts, exit 2. Nothing was written: a transaction
 * still open is rolled back when the connection closes. */
static void bad(const char *option, const char *got, const char *accepts)
    __attribute__((noreturn));

static void bad(const char *option, const char *got, const char *accepts)
{
	fprintf(stderr, "licctl: %s: '%s' is not valid; expected %s\n", option,
	    got, accepts);
	if (conn != NULL)
		PQfinish(conn);
	exit(2);
}

#define SLUG_ACCEPTS "1-64 of a-z 0-9 _ . - starting with a letter or digit"
#define DOMAIN_ACCEPTS "host names or *.suffix patterns of a-z 0-9 - " \
	"(labels of 1-63, at most 253 characters), comma-separated"

/* The schema's checks, in C, so that a bad value is named before any
 * statement runs (sql/functions/10_checks.sql). */
static int slug_ok(const char *s)
{
	size_t i, n = strlen(s);

	if (n < 1 || n > 64 || !(islower((unsigned char)s[0]) ||
	    isdigit((unsigned char)s[0])))
		return 0;
	for (i = 0; i < n; i++)
		if (!islower((unsigned char)s[i]) &&
		    !isdigit((unsigned char)s[i]) && s[i] != '_' &&
		    s[i] != '.' && s[i] != '-')
			return 0;
	return 1;
}

static int email_ok(const char *s)
{
	const char *at = strchr(s, '@');
	size_t i, n = strlen(s);

	if (n > 254 || at == NULL || at == s || at[1] == '\0' ||
	    strchr(at + 1, '@') != NULL)
		return 0;
	for (i = 0; i < n; i++)
		if (isspace((unsigned char)s[i]) || iscntrl((unsigned char)s[i]))
			return 0;
	return 1;
}

/* An exact host or "*.suffix", already lower case without a trailing dot. */
static int domain_pattern_ok(const char *s)
{
	size_t label = 0, n;

	if (strncmp(s, "*.", 2) == 0)
		s += 2;
	n = strlen(s);
	if (n == 0 || n > 253)
		return 0;
	for (; *s; s++) {
		if (*s == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if ((islower((unsigned char)*s) ||
		    isdigit((unsigned char)*s) || *s == '-') && label < 63) {
			label++;
		} else {
			return 0;
		}
	}
	return label > 0;
}

/* A whole number in [lo, hi]. */
static long long int_opt(const char *option, const char *v, long long lo,
    long long hi, const char *accepts)
{
	char *end;
	long long n;

	errno = 0;
	n = strtoll(v, &end, 10);
	if (*v == '\0' || *end != '\0' || errno != 0 || n < lo || n > hi ||
	    isspace((unsigned char)*v) || *v == '+')
		bad(option, v, accepts);
	return n;
}

static const char *one_of(const char *option, const char *v,
    const char *const *allowed, const char *accepts)
{
	size_t i;

	if (v == NULL)
		return NULL;
	for (i = 0; allowed[i] != NULL; i++)
		if (strcmp(v, allowed[i]) == 0)
			return v;
	bad(option, v, accepts);
}

/* YYYY-MM with a month 01-12. */
static const char *period_opt(const char *v)
{
	if (v != NULL && (strlen(v) != 7 || !isdigit((unsigned char)v[0]) ||
	    !isdigit((unsigned char)v[1]) || !isdigit((unsigned char)v[2]) ||
	    !isdigit((unsigned char)v[3]) || v[4] != '-' ||
	    !isdigit((unsigned char)v[5]) || !isdigit((unsigned char)v[6]) ||
	    strncmp(v, "2000", 4) < 0 || strncmp(v + 5, "01", 2) < 0 ||
	    strncmp(v + 5, "12", 2) > 0))
		bad("--period", v, "a month as YYYY-MM (2026-11), from 2000");
	return v;
}

/* An ISO 8601 date (YYYY-MM-DD, midnight UTC) or UTC timestamp
 * (YYYY-MM-DDTHH:MM:SSZ) that exists and lies in the future; the
 * timestamp as RFC 3339 into out. */
static void expires_opt(const char *v, char out[32])
{
	static const char accepts[] = "a future date YYYY-MM-DD or UTC time "
	    "YYYY-MM-DDTHH:MM:SSZ";
	struct tm tm, back;
	time_t t;
	int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
	size_t len = strlen(v);

	memset(&tm, 0, sizeof(tm));
	if (len == 10) {
		if (sscanf(v, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
			bad("--expires", v, accepts);
	} else if (len == 20) {
		if (sscanf(v, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &y, &mo, &d, &h, &mi,
		    &sec, &n) != 6 || n != 20)
			bad("--expires", v, accepts);
	} else {
		bad("--expires", v, accepts);
	}
	if (v[4] != '-' || v[7] != '-' || !isdigit((unsigned char)v[0]) ||
	    !isdigit((unsigned char)v[5]) || !isdigit((unsigned char)v[8]))
		bad("--expires", v, accepts);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	back = tm;
	t = timegm(&tm);
	/* timegm normalises 2027-02-30 to March 2nd: the date did not exist */
	if (t == (time_t)-1 || tm.tm_year != back.tm_year ||
	    tm.tm_mon != back.tm_mon || tm.tm_mday != back.tm_mday ||
	    tm.tm_hour != back.tm_hour || tm.tm_min != back.tm_min ||
	    tm.tm_sec != back.tm_sec || y < 2000)
		bad("--expires", v, accepts);
	if (t <= time(NULL))
		bad("--expires", v, "a date in the future");
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Options: "--name value" pairs and "--flag" switches listed in spec as
 * "name" / "name!". Positional arguments are collected in order. */
struct opts {
	const char *name[MAX_OPTS];
	const char *val[MAX_OPTS];
	int n;
	const char *pos[4];
	int npos;
	int help;
};

static void parse_opts(int argc, char **argv, const char *const *spec,
    struct opts *o)
{
	int i, j;

	memset(o, 0, sizeof(*o));
	for (i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			o->help = 1;
			continue;
		}
		if (strncmp(a, "--", 2) != 0) {
			if (o->npos == 4)
				die("too many arguments");
			o->pos[o->npos++] = a;
			continue;
		}
		for (j = 0; spec[j] != NULL; j++) {
			size_t n = strlen(spec[j]);
			int flag = spec[j][n - 1] == '!';

			if (flag)
				n--;
			if (strlen(a + 2) != n || strncmp(a + 2, spec[j], n) != 0)
				continue;
			if (o->n == MAX_OPTS)
				die("too many options");
			o->name[o->n] = spec[j];
			if (flag) {
				o->val[o->n++] = "1";
			} else {
				if (i + 1 >= argc)
					die("%s needs a value", a);
				o->val[o->n++] = argv[++i];
			}
			break;
		}
		if (spec[j] == NULL)
			die("unknown option %s (see --help)", a);
	}
}

static const char *opt(const struct opts *o, const char *name)
{
	int i;

	for (i = 0; i < o->n; i++) {
		size_t n = strlen(name);

		if (strncmp(o->name[i], name, n) == 0 &&
		    (o->name[i][n] == '\0' || o->name[i][n] == '!'))
			return o->val[i];
	}
	return NULL;
}

static void db_connect(void)
{
	const char *keys[] = { "dbname", "application_name", "options", NULL };
	const char *vals[] = { cfg_str("database_url", "dbname=licd"),
	    "licctl", "-c TimeZone=UTC -c client_min_messages=warning", NULL };

	conn = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(conn) != CONNECTION_OK)
		die("cannot connect to the database: %s", PQerrorMessage(conn));
}

/* The schema's checks by name: what a refused value was and what the
 * option accepts, for a value the checks in C did not catch. */
static const struct {
	const char *constraint, *option, *accepts;
} refusals[] = {
	{ "customers_email_check", "--email",
	    "an e-mail address (name@domain, at most 254 characters)" },
	{ "customers_name_check", "--name", "at most 200 characters" },
	{ "plans_code_check", "CODE", SLUG_ACCEPTS },
	{ "plans_name_check", "--name", "1-200 characters" },
	{ "plans_features_check", "--features", "names of " SLUG_ACCEPTS },
	{ "plans_limits_check", "--limits", "name=integer pairs" },
	{ "plans_billing_interval_check", "--interval", "month, year or once" },
	{ "plans_price_cents_check", "--price-cents",
	    "a non-negative integer" },
	{ "plans_currency_check", "--currency", "three letters (usd)" },
	{ "licenses_features_check", "--features", "names of " SLUG_ACCEPTS },
	{ "licenses_limits_check", "--limits", "name=integer pairs" },
	{ "licenses_domains_check", "--domains", DOMAIN_ACCEPTS },
	{ "licenses_status_reason_check", "--reason", "at most 500 characters" },
};

/* Runs a parameterised statement, connecting first if need be; dies on
 * failure. A value the database refuses (SQLSTATE classes 22 and 23) is
 * told as the option it came from, exit 2, never as PostgreSQL's text. */
static PGresult *q(const char *sql, int n, const char *const *params)
{
	PGresult *r;
	int st;

	if (conn == NULL)
		db_connect();
	r = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
	st = PQresultStatus(r);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		const char *cons = PQresultErrorField(r,
		    PG_DIAG_CONSTRAINT_NAME);
		char msg[1024];
		size_t i;

		if (state != NULL && (strncmp(state, "22", 2) == 0 ||
		    strncmp(state, "23", 2) == 0)) {
			for (i = 0; cons != NULL &&
			    i < sizeof(refusals) / sizeof(refusals[0]); i++)
				if (strcmp(refusals[i].constraint, cons) == 0) {
					fprintf(stderr, "licctl: %s: not valid; "
					    "expected %s\n", refusals[i].option,
					    refusals[i].accepts);
					break;
				}
			if (cons == NULL ||
			    i == sizeof(refusals) / sizeof(refusals[0]))
				fprintf(stderr, "licctl: a value was refused "
				    "(%s %s); see --help for what each option "
				    "accepts\n", state, cons ? cons : "");
			PQclear(r);
			PQfinish(conn);
			exit(2);
		}
		snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(r));
		msg[strcspn(msg, "\n")] = '\0';
		PQclear(r);
		die("database error: %s", msg);
	}
	return r;
}

static void exec0(const char *sql)
{
	PQclear(q(sql, 0, NULL));
}

static void audit(const char *action, const char *type, const char *id,
    const char *reason, const char *details)
{
	const char *p[5] = { action, type, id, reason, details };

	PQclear(q("INSERT INTO audit_log (actor, action, target_type, target_id,"
	    " reason, details) VALUES ('licctl', $1, $2, $3, $4, $5::jsonb)",
	    5, p));
}

/* "a,b,c" -> JSON array of trimmed, lower-cased strings. */
static char *list_json(const char *csv, int lower)
{
	struct json_object *a = json_object_new_array();
	char *copy = strdup(csv), *tok, *save = NULL, *out;

	if (copy == NULL)
		die("out of memory");
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		char *e;

		while (isspace((unsigned char)*tok))
			tok++;
		e = tok + strlen(tok);
		while (e > tok && isspace((unsigned char)e[-1]))
			*--e = '\0';
		if (lower) {
			for (e = tok; *e; e++)
				*e = (char)tolower((unsigned char)*e);
			if (e > tok && e[-1] == '.')
				e[-1] = '\0';
		}
		if (*tok != '\0' && !(lower ? domain_pattern_ok(tok) :
		    slug_ok(tok)))
			bad(lower ? "--domains" : "--features", tok, lower ?
			    DOMAIN_ACCEPTS : "names of " SLUG_ACCEPTS);
		if (*tok != '\0')
			json_object_array_add(a, json_object_new_string(tok));
	}
	out = strdup(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN));
	json_object_put(a);
	free(copy);
	return out;
}

/* "k=v,k=v" (integers) -> JSON object. */
static char *limits_json(const char *csv)
{
	struct json_object *o = json_object_new_object();
	char *copy = strdup(csv), *tok, *save = NULL, *out;

	if (copy == NULL)
		die("out of memory");
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '='), *end;
		long long v;

		while (isspace((unsigned char)*tok))
			tok++;
		if (eq == NULL)
			bad("--limits", tok, "name=integer pairs, comma-separated");
		*eq = '\0';
		if (!slug_ok(tok))
			bad("--limits", tok, "limit names of " SLUG_ACCEPTS);
		errno = 0;
		v = strtoll(eq + 1, &end, 10);
		if (errno != 0 || *end != '\0' || end == eq + 1 || v < 0 ||
		    eq[1] == '+' || eq[1] == '-' || isspace((unsigned char)eq[1]))
			bad("--limits", eq + 1, "a non-negative integer");
		json_object_object_add(o, tok, json_object_new_int64(v));
	}
	out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	free(copy);
	return out;
}

/* ---- migrate ---------------------------------------------------------- */

static int sql_file(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return n > 8 && isdigit((unsigned char)d->d_name[0]) &&
	    isdigit((unsigned char)d->d_name[1]) &&
	    isdigit((unsigned char)d->d_name[2]) && d->d_name[3] == '_' &&
	    strcmp(d->d_name + n - 4, ".sql") == 0;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (f == NULL)
		die("%s: %s", path, strerror(errno));
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	if (n < 0 || (buf = malloc((size_t)n + 1)) == NULL)
		die("%s: cannot read", path);
	if (fread(buf, 1, (size_t)n, f) != (size_t)n)
		die("%s: short read", path);
	buf[n] = '\0';
	fclose(f);
	return buf;
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
		die("SHA-256 failed");
	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/*
 * The numbered migrations not yet in schema_migrations, each in its own
 * transaction, then the files of sql_dir/functions (every function, view
 * and trigger, CREATE OR REPLACE) in one transaction: those whose SHA-256
 * differs from the one recorded in schema_functions, or all of them when
 * a migration ran now (it may have dropped what they create). An applied
 * migration whose file has changed stops it there; a row without a
 * checksum (applied by an older licctl) takes the file's.
 */
static int cmd_migrate(int argc, char **argv)
{
	static const char *const spec[] = { "status!", NULL };
	const char *dir = cfg_str("sql_dir", "/usr/share/licd/sql");
	struct dirent **names, **fns;
	struct opts o;
	char fdir[2048];
	int i, n, nf, status, applied = 0, fapplied = 0;

	parse_opts(argc, argv, spec, &o);
	if (o.help) {
		printf("usage: licctl migrate [--status]\n"
		    "Applies every sql_dir/NNN_*.sql not yet recorded in "
		    "schema_migrations,\neach in its own transaction, then "
		    "the changed files of sql_dir/functions\nin one. Refuses "
		    "to run when an applied migration's file has changed.\n"
		    "Safe to re-run and to run concurrently.\n");
		return 0;
	}
	status = opt(&o, "status") != NULL;
	db_connect();
	exec0("SELECT pg_advisory_lock(hashtext('licd.migrate'))");
	exec0("CREATE TABLE IF NOT EXISTS schema_migrations (version text "
	    "PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())");
	exec0("ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS "
	    "checksum text");
	exec0("CREATE TABLE IF NOT EXISTS schema_functions (file text PRIMARY "
	    "KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL "
	    "DEFAULT now())");
	snprintf(fdir, sizeof(fdir), "%s/functions", dir);
	if ((n = scandir(dir, &names, sql_file, alphasort)) < 0)
		die("sql_dir %s: %s", dir, strerror(errno));
	if ((nf = scandir(fdir, &fns, fn_file, alphasort)) < 0)
		die("%s: %s", fdir, strerror(errno));
	for (i = 0; i < n + nf; i++) {
		int fn = i >= n;
		const char *name = fn ? fns[i - n]->d_name : names[i]->d_name;
		char path[4096], sum[65];
		const char *p[2] = { name, sum };
		PGresult *r;
		char *sql;
		int done, known, same;

		if (i == n && !status)
			exec0("BEGIN");
		snprintf(path, sizeof(path), "%s/%s", fn ? fdir : dir, name);
		sql = slurp(path);
		sha256_hex(sql, sum);
		r = q(fn ? "SELECT checksum = $2 FROM schema_functions WHERE "
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
			die("%s has changed since it was applied (SHA-256 now "
			    "%s): a migration must not change once applied; "
			    "restore it and put the change in a new migration",
			    name, sum);
		if (!fn && done && !known)
			PQclear(q("UPDATE schema_migrations SET checksum = $2 "
			    "WHERE version = $1", 2, p));
		if (fn ? same && applied == 0 : done) {
			free(sql);
			continue;
		}
		if (!fn)
			exec0("BEGIN");
		r = PQexec(conn, sql);
		if (PQresultStatus(r) != PGRES_COMMAND_OK &&
		    PQresultStatus(r) != PGRES_TUPLES_OK &&
		    PQresultStatus(r) != PGRES_EMPTY_QUERY)
			die("%s%s: %s", fn ? "functions/" : "", name,
			    PQresultErrorMessage(r));
		PQclear(r);
		free(sql);
		PQclear(q(fn ? "INSERT INTO schema_functions (file, checksum) "
		    "VALUES ($1, $2) ON CONFLICT (file) DO UPDATE SET "
		    "checksum = EXCLUDED.checksum, applied_at = now()" :
		    "INSERT INTO schema_migrations (version, checksum) "
		    "VALUES ($1, $2)", 2, p));
		if (!fn)
			exec0("COMMIT");
		printf("applied %s%s\n", fn ? "functions/" : "", name);
		if (fn)
			fapplied++;
		else
			applied++;
	}
	if (!status) {
		if (nf > 0)
			exec0("COMMIT");
		printf("schema up to date (%d migrations and %d function files "
		    "applied now)\n", applied, fapplied);
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	for (i = 0; i < nf; i++)
		free(fns[i]);
	free(names);
	free(fns);
	PQfinish(conn);
	conn = NULL;
	return 0;
}

/* ---- keys ------------------------------------------------------------- */

static void write_file(const char *path, const char *data, mode_t mode)
{
	char tmp[4200];
	int fd;
	size_t n = strlen(data);

	/* Written beside the target and renamed: readers (nginx, programs
	 * starting up) never see a half-written file. */
	snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		die("%s: %s", tmp, strerror(errno));
	if (fchmod(fd, mode) != 0 || write(fd, data, n) != (ssize_t)n ||
	    fsync(fd) != 0 || close(fd) != 0)
		die("%s: write failed", tmp);
	if (rename(tmp, path) != 0)
		die("%s: %s", path, strerror(errno));
}

static void mkdirs(const char *dir, mode_t mode)
{
	char buf[4096], *p;

	snprintf(buf, sizeof(buf), "%s", dir);
	for (p = buf + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			mkdir(buf, 0755);
			*p = '/';
		}
	}
	if (mkdir(buf, mode) != 0 && errno != EEXIST)
		die("%s: %s", dir, strerror(errno));
}

static void write_jwks(void)
{
	const char *path = cfg_str("jwks_file", NULL);
	struct jws_keyring kr;
	struct json_object *doc, *arr;
	char err[512], dir[4096], *slash;
	size_t i;

	if (path == NULL) {
		fprintf(stderr, "licctl: jwks_file not configured; not written\n");
		return;
	}
	if (jws_keyring_load(cfg_str("keys_dir", "/etc/licd/keys"), &kr, err,
	    sizeof(err)) != 0)
		die("%s", err);
	doc = json_object_new_object();
	arr = json_object_new_array();
	/* Current key first: clients that try keys in order find it fast. */
	if (kr.signer != NULL)
		json_object_array_add(arr, jws_jwk(kr.signer->pkey,
		    kr.signer->kid));
	for (i = 0; i < kr.n; i++)
		if (&kr.keys[i] != kr.signer)
			json_object_array_add(arr, jws_jwk(kr.keys[i].pkey,
			    kr.keys[i].kid));
	json_object_object_add(doc, "keys", arr);
	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		mkdirs(dir, 0755);
	}
	write_file(path, json_object_to_json_string_ext(doc,
	    JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE), 0644);
	json_object_put(doc);
	jws_keyring_free(&kr);
	printf("wrote %s\n", path);
}

/*
 * Key files: <kid>.key (private, 0640) and <kid>.pub (0644), group-owned
 * by keys_group (default: keys_dir's own group, root:licd 0750 in
 * production), so that the service user reads the private key whoever
 * runs licctl. Each is written beside its name and renamed, so a program
 * reloading its keys (lic_keys_reload) never reads half a file.
 */
static gid_t keys_gid(const char *dir)
{
	const char *name = cfg_str("keys_group", NULL);
	struct stat st;
	struct group *g;

	if (name != NULL && *name != '\0') {
		if ((g = getgrnam(name)) == NULL)
			die("keys_group: no group '%s'", name);
		return g->gr_gid;
	}
	if (stat(dir, &st) != 0)
		die("%s: %s", dir, strerror(errno));
	return st.st_gid;
}

static void write_pem(const char *dir, const char *kid, EVP_PKEY *k,
    int private)
{
	char path[4200], tmp[4300];
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "%s/%s.%s", dir, kid,
	    private ? "key" : "pub");
	snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    private ? 0600 : 0644);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL)
		die("%s: %s", tmp, strerror(errno));
	/* The group first, then the mode that lets it read. */
	if (fchown(fd, (uid_t)-1, keys_gid(dir)) != 0)
		die("%s: cannot give it group %d: %s", tmp, (int)keys_gid(dir),
		    strerror(errno));
	if (fchmod(fd, private ? 0640 : 0644) != 0 ||
	    (private ? PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL,
	    NULL) : PEM_write_PUBKEY(f, k)) != 1 || fflush(f) != 0 ||
	    fsync(fd) != 0)
		die("%s: write failed", tmp);
	fclose(f);
	if (rename(tmp, path) != 0)
		die("%s: %s", path, strerror(errno));
}

/* A new key pair in dir; its kid (the JWK thumbprint) into kid. */
static void new_key(const char *dir, const char *alg, char kid[64])
{
	EVP_PKEY *k;

	if (strcmp(alg, "ES256") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	else if (strcmp(alg, "EdDSA") == 0)
		k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	else
		die("--alg must be ES256 or EdDSA");
	if (k == NULL || jws_thumbprint(k, kid, 64) != 0)
		die("key generation failed");
	mkdirs(dir, 0750);
	/* The private key first: once the public one is there, programs
	 * load the pair. */
	write_pem(dir, kid, k, 1);
	write_pem(dir, kid, k, 0);
	EVP_PKEY_free(k);
}

static int kid_arg(const char *kid)
{
	size_t i, n = kid != NULL ? strlen(kid) : 0;

	if (n == 0 || n >= JWS_KID_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)kid[i]) && kid[i] != '-' &&
		    kid[i] != '_')
			return 0;
	return 1;
}

static void current_kid(const char *dir, char kid[JWS_KID_MAX + 2])
{
	char path[4200];
	FILE *f;

	kid[0] = '\0';
	snprintf(path, sizeof(path), "%s/current", dir);
	if ((f = fopen(path, "r")) != NULL) {
		if (fgets(kid, JWS_KID_MAX + 2, f) == NULL)
			kid[0] = '\0';
		kid[strcspn(kid, "\r\n")] = '\0';
		fclose(f);
	}
}

static void activate(const char *dir, const char *kid)
{
	char path[4200], line[80];
	EVP_PKEY *k;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.key", dir, kid);
	if ((f = fopen(path, "r")) == NULL)
		die("no key %s in %s (licctl keys list)", kid, dir);
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (k == NULL || jws_key_alg(k) == 0)
		die("%s: not a signing key licd can use", path);
	EVP_PKEY_free(k);
	snprintf(path, sizeof(path), "%s/%s.pub", dir, kid);
	if (access(path, R_OK) != 0)
		die("%s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "%s/current", dir);
	snprintf(line, sizeof(line), "%s\n", kid);
	write_file(path, line, 0644);
}

static const char keys_help[] =
    "usage: licctl keys generate [--alg ES256|EdDSA]\n"
    "       licctl keys add [--alg ES256|EdDSA]\n"
    "       licctl keys activate KID\n"
    "       licctl keys retire KID\n"
    "       licctl keys rotate [--alg ES256|EdDSA]\n"
    "       licctl keys list\n"
    "       licctl keys jwks\n"
    "generate: the first signing key (nothing if one is current).\n"
    "Rotation without downtime, in two steps:\n"
    "  add: a new key, published in the JWKS, not yet signing; running\n"
    "    programs load it when they first see its kid or on SIGHUP.\n"
    "  activate KID: KID signs from now on (licctl at once; the programs\n"
    "    after SIGHUP: systemctl reload 'licd@*'). Keys signed before keep\n"
    "    verifying while the old key stays.\n"
    "retire KID: removes a key that no longer signs and what it signed\n"
    "  stops verifying (re-issue those licenses first); SIGHUP after.\n"
    "rotate: add and activate at once.\n"
    "jwks: rewrites jwks_file from keys_dir.\n"
    "Private keys are 0640, group keys_group (default: keys_dir's group).\n";

static int cmd_keys(int argc, char **argv)
{
	static const char *const spec[] = { "alg", NULL };
	const char *dir = cfg_str("keys_dir", "/etc/licd/keys");
	const char *alg;
	struct opts o;
	char path[4200], kid[64], cur[JWS_KID_MAX + 2];

	parse_opts(argc - 1, argv + 1, spec, &o);
	if (argc > 0 && (strcmp(argv[0], "--help") == 0 ||
	    strcmp(argv[0], "-h") == 0))
		o.help = 1;
	if (argc < 1 || o.help) {
		fputs(keys_help, argc < 1 ? stderr : stdout);
		return argc < 1 ? 2 : 0;
	}
	alg = opt(&o, "alg") ? opt(&o, "alg") : cfg_str("key_alg", "ES256");
	snprintf(path, sizeof(path), "%s/current", dir);
	if (strcmp(argv[0], "generate") == 0) {
		if (access(path, F_OK) == 0) {
			printf("a current signing key exists; nothing generated "
			    "(use add and activate for a new one)\n");
		} else {
			new_key(dir, alg, kid);
			activate(dir, kid);
			printf("new %s signing key %s is current\n", alg, kid);
		}
		write_jwks();
	} else if (strcmp(argv[0], "add") == 0) {
		new_key(dir, alg, kid);
		write_jwks();
		printf("new %s key %s published; make it sign with: "
		    "licctl keys activate %s\n", alg, kid, kid);
	} else if (strcmp(argv[0], "activate") == 0 ||
	    strcmp(argv[0], "retire") == 0) {
		if (o.npos != 1 || !kid_arg(o.pos[0]))
			die("usage: licctl keys %s KID (licctl keys list)",
			    argv[0]);
		current_kid(dir, cur);
		if (argv[0][0] == 'a') {
			activate(dir, o.pos[0]);
			write_jwks();
			printf("%s is current; reload the programs (SIGHUP) "
			    "for them to sign with it\n", o.pos[0]);
		} else {
			if (strcmp(cur, o.pos[0]) == 0)
				die("%s is the current key; activate another "
				    "one first", o.pos[0]);
			snprintf(path, sizeof(path), "%s/%s.pub", dir,
			    o.pos[0]);
			if (access(path, F_OK) != 0)
				die("no key %s in %s", o.pos[0], dir);
			if (unlink(path) != 0)
				die("%s: %s", path, strerror(errno));
			snprintf(path, sizeof(path), "%s/%s.key", dir,
			    o.pos[0]);
			if (unlink(path) != 0 && errno != ENOENT)
				die("%s: %s", path, strerror(errno));
			write_jwks();
			printf("%s retired; reload the programs (SIGHUP)\n",
			    o.pos[0]);
		}
	} else if (strcmp(argv[0], "rotate") == 0) {
		new_key(dir, alg, kid);
		activate(dir, kid);
		write_jwks();
		printf("new %s signing key %s is current; reload the programs "
		    "(SIGHUP)\n", alg, kid);
	} else if (strcmp(argv[0], "jwks") == 0) {
		write_jwks();
	} else if (strcmp(argv[0], "list") == 0) {
		struct jws_keyring kr;
		char err[512];
		size_t i;

		if (jws_keyring_load(dir, &kr, err, sizeof(err)) != 0)
			die("%s", err);
		for (i = 0; i < kr.n; i++)
			printf("%s  %-5s  %s\n", kr.keys[i].kid,
			    jws_alg_name(kr.keys[i].alg),
			    &kr.keys[i] == kr.signer ? "current (signs)" :
			    "verify only");
		jws_keyring_free(&kr);
	} else {
		fprintf(stderr, "licctl: unknown keys command '%s'\n%s",
		    argv[0], keys_help);
		return 2;
	}
	return 0;
}

/* ---- plans and customers ---------------------------------------------- */

/* A seat option's value, checked here so that a bad one gets a message
 * naming it rather than the constraint's (sql/023 holds the same ranges). */
static const char *seat_opt(const struct opts *o, const char *name)
{
	const char *v = opt(o, name);
	char *end;
	long n, lo, hi;

	if (v == NULL)
		return NULL;
	if (strcmp(name, "seat-model") == 0) {
		if (strcmp(v, "node") != 0 && strcmp(v, "floating") != 0)
			die("--seat-model must be node or floating");
		return v;
	}
	lo = strcmp(name, "seat-ttl") == 0 ? 30 : 0;
	hi = strcmp(name, "seat-ttl") == 0 ? 86400 :
	    strcmp(name, "max-borrow-days") == 0 ? 366 : 1000000;
	n = strtol(v, &end, 10);
	if (*v == '\0' || *end != '\0' || n < lo || n > hi)
		die("--%s must be an integer %ld..%ld", name, lo, hi);
	return v;
}

/* One plan, as plan list and plan set print it. */
static void print_plan(struct json_object *p)
{
	printf("%-16s %-24s features=%s limits=%s seats=%s",
	    json_object_get_string(json_object_object_get(p, "code")),
	    json_object_get_string(json_object_object_get(p, "name")),
	    json_object_to_json_string_ext(json_object_object_get(p, "features"), JSON_C_TO_STRING_PLAIN),
	    json_object_to_json_string_ext(json_object_object_get(p, "limits"), JSON_C_TO_STRING_PLAIN),
	    json_object_get_string(json_object_object_get(p, "seat_model")));
	if (strcmp(json_object_get_string(json_object_object_get(p, "seat_model")), "floating") == 0)
		printf(" ttl=%s borrow=%sd overdraft=%s",
		    json_object_get_string(json_object_object_get(p, "seat_ttl")),
		    json_object_get_string(json_object_object_get(p, "max_borrow_days")),
		    json_object_get_string(json_object_object_get(p, "overdraft")));
	printf("\n");
}

static int cmd_plan(int argc, char **argv)
{
	static const char *const spec[] = { "name", "features", "limits",
	    "price-cents", "currency", "interval", "stripe-price", "paddle-price",
	    "addon!",
	    "inactive!", "json!", "seat-model", "seat-ttl", "max-borrow-days",
	    "overdraft", NULL };
	struct opts o;
	char *feat = NULL, *lim = NULL;
	PGresult *r;

	parse_opts(argc - 1, argv + 1, spec, &o);
	if (argc > 0 && (strcmp(argv[0], "--help") == 0 ||
	    strcmp(argv[0], "-h") == 0))
		o.help = 1;
	if (argc < 1 || o.help) {
		printf("usage: licctl plan set CODE --name NAME [--features a,b]"
		    " [--limits k=v,...]\n"
		    "         [--price-cents N --currency usd --interval "
		    "month|year|once]\n"
		    "         [--stripe-price price_...] [--paddle-price pri_...]"
		    " [--addon] [--inactive]\n"
		    "         [--seat-model node|floating] [--seat-ttl SECS] "
		    "[--max-borrow-days N]\n         [--overdraft SEATS]\n"
		    "       licctl plan list [--json]\n"
		    "set creates or updates a plan; licenses issued later copy "
		    "its features, limits\nand seat model. Limit names ending in "
		    "_per_month meter usage; 'installations'\ncaps seats. A "
		    "floating seat is held while its lease (--seat-ttl, default "
		    "900)\nruns; --max-borrow-days (default 0) allows borrowing, "
		    "--overdraft (default 0)\nseats beyond the limit.\n");
		return argc < 1 ? 2 : 0;
	}
	if (strcmp(argv[0], "list") == 0) {
		r = q("SELECT coalesce(json_agg(json_build_object('code', code, "
		    "'name', name, 'features', features, 'limits', limits, "
		    "'interval', billing_interval, 'price_cents', price_cents, "
		    "'currency', currency, 'stripe_price_id', stripe_price_id, "
		    "'addon', is_addon, 'active', active, 'seat_model', "
		    "seat_model, 'seat_ttl', seat_ttl, 'max_borrow_days', "
		    "max_borrow_days, 'overdraft', overdraft) ORDER BY code), "
		    "'[]') FROM plans", 0, NULL);
		if (opt(&o, "json")) {
			printf("%s\n", PQgetvalue(r, 0, 0));
		} else {
			struct json_object *a = json_tokener_parse(
			    PQgetvalue(r, 0, 0));
			size_t k;

			for (k = 0; a && k < json_object_array_length(a); k++)
				print_plan(json_object_array_get_idx(a, k));
			json_object_put(a);
		}
		PQclear(r);
		return 0;
	}
	if (strcmp(argv[0], "set") != 0 || o.npos != 1)
		die("usage: licctl plan set CODE --name NAME ... (see --help)");
	if (!slug_ok(o.pos[0]))
		bad("CODE", o.pos[0], SLUG_ACCEPTS);
	if (opt(&o, "name") != NULL && (strlen(opt(&o, "name")) < 1 ||
	    strlen(opt(&o, "name")) > 200))
		bad("--name", opt(&o, "name"), "1-200 characters");
	{
		static const char *const iv[] = { "month", "year", "once",
		    NULL };
		const char *c = opt(&o, "currency");

		one_of("--interval", opt(&o, "interval"), iv,
		    "month, year or once");
		if (opt(&o, "price-cents") != NULL)
			int_opt("--price-cents", opt(&o, "price-cents"), 0,
			    1000000000000LL, "a non-negative integer (cents)");
		if (c != NULL && (strlen(c) != 3 || !isalpha((unsigned char)c[0])
		    || !isalpha((unsigned char)c[1]) ||
		    !isalpha((unsigned char)c[2])))
			bad("--currency", c, "a three-letter ISO 4217 code (usd)");
	}
	if (opt(&o, "features"))
		feat = list_json(opt(&o, "features"), 0);
	if (opt(&o, "limits"))
		lim = limits_json(opt(&o, "limits"));
	{
		const char *p[15] = { o.pos[0], opt(&o, "name"), feat, lim,
		    opt(&o, "interval"), opt(&o, "price-cents"),
		    opt(&o, "currency"), opt(&o, "stripe-price"),
		    opt(&o, "addon") ? "t" : "f",
		    opt(&o, "inactive") ? "f" : "t", opt(&o, "paddle-price"),
		    seat_opt(&o, "seat-model"), seat_opt(&o, "seat-ttl"),
		    seat_opt(&o, "max-borrow-days"), seat_opt(&o, "overdraft") };

		exec0("BEGIN");
		/* Only the options given change an existing plan. */
		r = q("INSERT INTO plans AS p (code, name, features, limits, "
		    "billing_interval, price_cents, currency, stripe_price_id, "
		    "is_addon, active, paddle_price_id, seat_model, seat_ttl, "
		    "max_borrow_days, overdraft) VALUES ($1, "
		    "coalesce($2, $1), coalesce($3::jsonb, '[]'), "
		    "coalesce($4::jsonb, '{}'), $5, $6::bigint, lower($7), $8, "
		    "$9::boolean, $10::boolean, $11, coalesce($12, 'node'), "
		    "coalesce($13::int, 900), coalesce($14::int, 0), "
		    "coalesce($15::int, 0)) "
		    "ON CONFLICT (code) DO UPDATE SET "
		    "name = coalesce($2, p.name), "
		    "seat_model = coalesce($12, p.seat_model), "
		    "seat_ttl = coalesce($13::int, p.seat_ttl), "
		    "max_borrow_days = coalesce($14::int, p.max_borrow_days), "
		    "overdraft = coalesce($15::int, p.overdraft), "
		    "features = coalesce($3::jsonb, p.features), "
		    "limits = coalesce($4::jsonb, p.limits), "
		    "billing_interval = coalesce($5, p.billing_interval), "
		    "price_cents = coalesce($6::bigint, p.price_cents), "
		    "currency = coalesce(lower($7), p.currency), "
		    "stripe_price_id = coalesce($8, p.stripe_price_id), "
		    "paddle_price_id = coalesce($11, p.paddle_price_id), "
		    "is_addon = $9::boolean, active = $10::boolean, "
		    "updated_at = now() "
		    "RETURNING json_build_object('code', code, 'name', name, "
		    "'features', features, 'limits', limits, 'seat_model', "
		    "seat_model, 'seat_ttl', seat_ttl, 'max_borrow_days', "
		    "max_borrow_days, 'overdraft', overdraft)::text", 15, p);
		audit("plan.set", "plan", o.pos[0], NULL, PQgetvalue(r, 0, 0));
		exec0("COMMIT");
		if (opt(&o, "json")) {
			printf("%s\n", PQgetvalue(r, 0, 0));
		} else {
			struct json_object *pl = json_tokener_parse(
			    PQgetvalue(r, 0, 0));

			if (pl != NULL)
				print_plan(pl);
			json_object_put(pl);
		}
		PQclear(r);
	}
	free(feat);
	free(lim);
	return 0;
}

static int cmd_customer(int argc, char **argv)
{
	static const char *const spec[] = { "email", "name", "json!", NULL };
	struct opts o;
	PGresult *r;
	int i;

	parse_opts(argc - 1, argv + 1, spec, &o);
	if (argc > 0 && (strcmp(argv[0], "--help") == 0 ||
	    strcmp(argv[0], "-h") == 0))
		o.help = 1;
	if (argc < 1 || o.help) {
		printf("usage: licctl customer create --email EMAIL [--name NAME]"
		    " [--json]\n       licctl customer list [--json]\n"
		    "create is idempotent per e-mail address (case-insensitive)"
		    " and prints the id.\n");
		return argc < 1 ? 2 : 0;
	}
	if (strcmp(argv[0], "list") == 0) {
		r = q("SELECT id, email, name, created_at FROM customers "
		    "ORDER BY created_at", 0, NULL);
		for (i = 0; i < PQntuples(r); i++)
			printf("%s  %-32s %s\n", PQgetvalue(r, i, 0),
			    PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
		PQclear(r);
		return 0;
	}
	if (strcmp(argv[0], "create") != 0 || opt(&o, "email") == NULL)
		die("usage: licctl customer create --email EMAIL [--name NAME]");
	if (!email_ok(opt(&o, "email")))
		bad("--email", opt(&o, "email"),
		    "an e-mail address (name@domain, at most 254 characters)");
	if (opt(&o, "name") != NULL && strlen(opt(&o, "name")) > 200)
		bad("--name", opt(&o, "name"), "at most 200 characters");
	{
		const char *p[2] = { opt(&o, "email"), opt(&o, "name") };

		exec0("BEGIN");
		/* The no-op update makes RETURNING give the existing row. */
		r = q("INSERT INTO customers AS c (email, name) VALUES ($1, "
		    "coalesce($2, '')) ON CONFLICT (lower(email)) DO UPDATE SET "
		    "name = coalesce($2, c.name) RETURNING id, email, name, "
		    "(xmax = 0) AS created", 2, p);
		if (strcmp(PQgetvalue(r, 0, 3), "t") == 0)
			audit("customer.create", "customer", PQgetvalue(r, 0, 0),
			    NULL, NULL);
		exec0("COMMIT");
		if (opt(&o, "json"))
			printf("{\"id\":\"%s\"}\n", PQgetvalue(r, 0, 0));
		else
			printf("%s\n", PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	return 0;
}

/* ---- licenses --------------------------------------------------------- */

/* ---- license actions, usage, audit (issue the same SQL as the API) ---- */

static const char *need_uuid(const struct opts *o, const char *what)
{
	if (o->npos != 1)
		die("usage: licctl license %s LICENSE_ID [--reason TEXT]", what);
	if (!lic_uuid_valid(o->pos[0]))
		bad("LICENSE_ID", o->pos[0], "a license id (UUID)");
	if (opt(o, "reason") != NULL && strlen(opt(o, "reason")) > 500)
		bad("--reason", opt(o, "reason"), "at most 500 characters");
	return o->pos[0];
}

static int license_action(const char *action, const struct opts *o)
{
	const char *id = need_uuid(o, action), *reason = opt(o, "reason");
	PGresult *r;

	if (strcmp(action, "revoke") == 0) {
		const char *p[3] = { id, reason, "licctl" };

		r = q("SELECT result, to_char(to_timestamp(revoked_at) AT TIME "
		    "ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), changed "
		    "FROM licd_revoke($1, $2, $3, NULL)", 3, p);
		if (strcmp(PQgetvalue(r, 0, 0), "ok") != 0)
			die("no license %s", id);
		printf("license %s revoked at %s%s\n", id, PQgetvalue(r, 0, 1),
		    strcmp(PQgetvalue(r, 0, 2), "t") == 0 ? "" :
		    " (already revoked)");
	} else if (strcmp(action, "reset-activations") == 0) {
		const char *p[3] = { id, reason, "licctl" };

		r = q("SELECT result, freed FROM licd_reset_activations($1, $2, "
		    "$3, NULL)", 3, p);
		if (strcmp(PQgetvalue(r, 0, 0), "ok") != 0)
			die("no license %s", id);
		printf("license %s: %s installation(s) deactivated\n", id,
		    PQgetvalue(r, 0, 1));
	} else {
		const char *p[4] = { id, action, reason, "licctl" };

		r = q("SELECT result, status, changed FROM licd_set_status($1, $2,"
		    " $3, $4, NULL)", 4, p);
		if (strcmp(PQgetvalue(r, 0, 0), "not_found") == 0)
			die("no license %s", id);
		if (strcmp(PQgetvalue(r, 0, 0), "conflict") == 0)
			die("cannot %s license %s: it is %s", action, id,
			    PQgetvalue(r, 0, 1));
		printf("license %s is %s%s\n", id, PQgetvalue(r, 0, 1),
		    strcmp(PQgetvalue(r, 0, 2), "t") == 0 ? "" : " (unchanged)");
	}
	PQclear(r);
	return 0;
}

static int cmd_usage(int argc, char **argv)
{
	static const char *const spec[] = { "period", "json!", NULL };
	struct opts o;
	PGresult *r;
	int i;

	parse_opts(argc, argv, spec, &o);
	if (o.help || o.npos != 1 || !lic_uuid_valid(o.pos[0])) {
		printf("usage: licctl usage LICENSE_ID [--period YYYY-MM] [--json]\n"
		    "Usage counters of one license for a month (default: this "
		    "month),\nwith the limit and what the usage log sums to, and "
		    "for a floating license\nthe peak of concurrent seats of each "
		    "UTC day.\n");
		return o.help ? 0 : 2;
	}
	{
		const char *p[2] = { o.pos[0], period_opt(opt(&o, "period")) };

		r = q("SELECT g.feature, g.used, (l.limits ->> (g.feature || "
		    "'_per_month')), (SELECT coalesce(sum(quantity), 0) FROM "
		    "usage_log u WHERE u.license_id = l.id AND u.feature = "
		    "g.feature AND to_char(u.period, 'YYYY-MM') = g.period), "
		    "g.period FROM licenses l, licd_usage_get($1, $2) g "
		    "WHERE l.id = $1 ORDER BY 1", 2, p);
	}
	for (i = 0; i < PQntuples(r); i++) {
		if (opt(&o, "json"))
			printf("{\"period\":\"%s\",\"feature\":\"%s\",\"used\":%s,"
			    "\"limit\":%s,\"logged\":%s}\n", PQgetvalue(r, i, 4),
			    PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
			    PQgetisnull(r, i, 2) ? "null" : PQgetvalue(r, i, 2),
			    PQgetvalue(r, i, 3));
		else
			printf("%s  %-24s used %-12s limit %-12s logged %s\n",
			    PQgetvalue(r, i, 4), PQgetvalue(r, i, 0),
			    PQgetvalue(r, i, 1), PQgetisnull(r, i, 2) ? "-" :
			    PQgetvalue(r, i, 2), PQgetvalue(r, i, 3));
	}
	{
		/* Peak concurrent floating seats, per UTC day of the month. */
		const char *p[2] = { o.pos[0], opt(&o, "period") };
		PGresult *k = q("SELECT to_char(k.day, 'YYYY-MM-DD'), k.peak FROM "
		    "(SELECT coalesce(to_date($2, 'YYYY-MM'), licd_period("
		    "licd_now())) AS m) m, licd_seat_peaks($1, m.m, (m.m + "
		    "interval '1 month' - interval '1 day')::date) k ORDER BY 1",
		    2, p);
		int j;

		for (j = 0; j < PQntuples(k); j++) {
			if (opt(&o, "json"))
				printf("{\"day\":\"%s\",\"peak_seats\":%s}\n",
				    PQgetvalue(k, j, 0), PQgetvalue(k, j, 1));
			else
				printf("%s  peak concurrent seats %s\n",
				    PQgetvalue(k, j, 0), PQgetvalue(k, j, 1));
		}
		if (PQntuples(r) == 0 && PQntuples(k) == 0 && !opt(&o, "json"))
			printf("no usage recorded\n");
		PQclear(k);
	}
	PQclear(r);
	return 0;
}

static int cmd_audit(int argc, char **argv)
{
	static const char *const spec[] = { "license", "limit", "json!", NULL };
	struct opts o;
	PGresult *r;
	int i;

	parse_opts(argc, argv, spec, &o);
	if (o.help) {
		printf("usage: licctl audit [--license ID] [--limit N] [--json]\n"
		    "Audit log, newest first: who did what to which license, "
		    "when and why.\n");
		return 0;
	}
	{
		const char *p[2] = { opt(&o, "license"),
		    opt(&o, "limit") ? opt(&o, "limit") : "50" };

		int_opt("--limit", p[1], 1, 100000, "a number of rows, 1-100000");

		r = q("SELECT json_build_object('at', to_char(at AT TIME ZONE "
		    "'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), 'actor', actor, "
		    "'action', action, 'target_type', target_type, 'target_id', "
		    "target_id, 'reason', reason, 'request_id', request_id, "
		    "'details', details)::text, to_char(at AT TIME ZONE 'UTC', "
		    "'YYYY-MM-DD HH24:MI:SS'), actor, action, target_id, "
		    "coalesce(reason, ''), coalesce(request_id, '') "
		    "FROM audit_log WHERE $1::text IS NULL OR target_id = $1 "
		    "ORDER BY id DESC LIMIT $2::int", 2, p);
	}
	for (i = 0; i < PQntuples(r); i++) {
		if (opt(&o, "json"))
			printf("%s\n", PQgetvalue(r, i, 0));
		else
			printf("%s  %-12s %-26s %s %s%s%s\n", PQgetvalue(r, i, 1),
			    PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
			    PQgetvalue(r, i, 4), PQgetvalue(r, i, 5),
			    *PQgetvalue(r, i, 6) ? "  rid=" : "",
			    PQgetvalue(r, i, 6));
	}
	PQclear(r);
	return 0;
}

/* The outbox: list notifications, or make pending ones due now. */
static int cmd_notifications(int argc, char **argv)
{
	static const char *const spec[] = { "status", "license", "limit",
	    "all!", "json!", NULL };
	struct opts o;
	PGresult *r;
	int i;

	parse_opts(argc, argv, spec, &o);
	/* "list" is the default verb, also when named */
	if (o.npos > 0 && strcmp(o.pos[0], "list") == 0 && o.npos == 1)
		o.npos = 0;
	if (o.help || (o.npos > 0 && strcmp(o.pos[0], "retry") != 0)) {
		printf("usage: licctl notifications [list] [--status pending|"
		    "delivered] [--license ID] [--limit N] [--json]\n"
		    "       licctl notifications retry (ID | --all)\n"
		    "Lists the outbox (newest first) with attempts and the last "
		    "error; retry makes\npending notifications due now (the next "
		    "licd-lifecycle run sends them).\n");
		return o.help ? 0 : 2;
	}
	if (o.npos > 0) {
		const char *p[1] = { o.npos > 1 ? o.pos[1] : NULL };

		if (p[0] == NULL && !opt(&o, "all"))
			die("give a notification id or --all");
		if (p[0] != NULL)
			int_opt("ID", p[0], 1, 9223372036854775807LL,
			    "a notification id (a positive integer)");
		exec0("BEGIN");
		r = q("UPDATE notifications SET next_attempt_at = licd_now(), "
		    "locked_until = NULL WHERE status = 'pending' AND "
		    "($1::bigint IS NULL OR id = $1::bigint) RETURNING id", 1, p);
		audit("notifications.retry", "notification", p[0] ? p[0] : "all",
		    NULL, NULL);
		exec0("COMMIT");
		printf("%d notification(s) due now\n", PQntuples(r));
		PQclear(r);
		return 0;
	}
	{
		static const char *const st[] = { "pending", "delivered",
		    NULL };
		const char *p[3] = { opt(&o, "status"), opt(&o, "license"),
		    opt(&o, "limit") ? opt(&o, "limit") : "50" };

		one_of("--status", p[0], st, "pending or delivered");
		int_opt("--limit", p[2], 1, 100000, "a number of rows, 1-100000");
		if (p[1] != NULL && !lic_uuid_valid(p[1]))
			bad("--license", p[1], "a license id (UUID)");

		r = q("SELECT json_build_object('id', id, 'kind', kind, "
		    "'license_id', license_id, 'recipient', recipient, 'status', "
		    "status, 'attempts', attempts, 'next_attempt_at', "
		    "next_attempt_at, 'last_error', last_error, 'created_at', "
		    "created_at, 'delivered_at', delivered_at, 'payload', "
		    "payload - 'license_key')::text, id, kind, status, attempts, "
		    "coalesce(recipient, '-'), coalesce(last_error, '') "
		    "FROM notifications WHERE ($1::text IS NULL OR status = $1) "
		    "AND ($2::text IS NULL OR license_id::text = $2) "
		    "ORDER BY id DESC LIMIT $3::int", 3, p);
	}
	for (i = 0; i < PQntuples(r); i++) {
		if (opt(&o, "json"))
			printf("%s\n", PQgetvalue(r, i, 0));
		else
			printf("%-8s %-18s %-10s attempts=%-3s %s %s\n",
			    PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
			    PQgetvalue(r, i, 3), PQgetvalue(r, i, 4),
			    PQgetvalue(r, i, 5), PQgetvalue(r, i, 6));
	}
	PQclear(r);
	return 0;
}

/* Webhook events still waiting (status pending): what for, since when;
 * replay applies one again (after its plan was created, say) and signs
 * the key of a license it issues, as the webhook program does. */
static int cmd_webhook(int argc, char **argv)
{
	static const char *const spec[] = { "json!", NULL };
	struct opts o;
	PGresult *r;
	int i;

	parse_opts(argc, argv, spec, &o);
	if (o.help || o.npos < 1 || (strcmp(o.pos[0], "pending") != 0 &&
	    strcmp(o.pos[0], "replay") != 0) ||
	    (strcmp(o.pos[0], "replay") == 0 && o.npos != 3)) {
		printf("usage: licctl webhook pending [--json]\n"
		    "       licctl webhook replay stripe|paddle EVENT_ID\n"
		    "pending lists provider events recorded but not applied: "
		    "their subscription,\ncustomer or plan is not known yet "
		    "(the reason says which), oldest first.\nreplay applies "
		    "one again now, e.g. after `licctl plan set` gave its price "
		    "a plan.\n");
		return o.help ? 0 : 2;
	}
	if (strcmp(o.pos[0], "pending") == 0) {
		r = q("SELECT json_build_object('provider', provider, 'event_id', "
		    "event_id, 'type', type, 'subject', subject, 'reason', reason, "
		    "'received_at', to_char(received_at AT TIME ZONE 'UTC', "
		    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), 'age_seconds', "
		    "extract(epoch FROM licd_now() - received_at)::bigint)::text, "
		    "provider, event_id, type, coalesce(reason, ''), "
		    "coalesce(subject, '-'), to_char(received_at AT TIME ZONE "
		    "'UTC', 'YYYY-MM-DD HH24:MI:SS') FROM webhook_events WHERE "
		    "status = 'pending' ORDER BY received_at", 0, NULL);
		for (i = 0; i < PQntuples(r); i++) {
			if (opt(&o, "json"))
				printf("%s\n", PQgetvalue(r, i, 0));
			else
				printf("%s  %-6s %-32s %-30s %s (%s)\n",
				    PQgetvalue(r, i, 6), PQgetvalue(r, i, 1),
				    PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
				    PQgetvalue(r, i, 4), PQgetvalue(r, i, 5));
		}
		PQclear(r);
		return 0;
	}
	{
		const char *p[3] = { o.pos[1], o.pos[2], NULL };
		char grace[16], err[512];
		int issued = 0;

		if (lic_init_keys(err, sizeof(err)) != 0)
			die("%s", err);
		snprintf(grace, sizeof(grace), "%ld", cfg_int("grace_days", 7));
		p[2] = grace;
		exec0("BEGIN");
		r = q("SELECT 1 FROM webhook_events WHERE provider = $1 AND "
		    "event_id = $2 AND status = 'pending'", 2, p);
		if (PQntuples(r) != 1)
			die("no pending %s event %s", p[0], p[1]);
		PQclear(r);
		r = q("SELECT outcome, new_license FROM licd_webhook_apply($1, $2, "
		    "$3::int)", 3, p);
		for (i = 0; i < PQntuples(r); i++) {
			const char *pi[1] = { PQgetvalue(r, i, 1) };
			struct lic l;
			char *key = NULL;
			PGresult *v;

			if (PQgetisnull(r, i, 1))
				continue;
			if (lic_keyring()->signer == NULL)
				die("no current signing key (licctl keys generate)");
			v = q("SELECT v.*, extract(epoch FROM l.issued_at)::bigint "
			    "FROM license_view v JOIN licenses l ON l.id = v.id "
			    "WHERE v.id = $1", 1, pi);
			if (lic_from_row(v, 0, 0, &l) != LIC_OK ||
			    lic_sign_key(&l, strtoll(PQgetvalue(v, 0, LIC_NCOLS),
			    NULL, 10), &key) != LIC_OK)
				die("cannot sign the key of license %s", pi[0]);
			PQclear(v);
			{
				const char *pk[3] = { pi[0], key,
				    lic_keyring()->signer->kid };

				PQclear(q("UPDATE licenses SET license_key = $2, "
				    "key_kid = $3 WHERE id = $1", 3, pk));
				PQclear(q("SELECT licd_notify('license_issued', "
				    "$1::uuid, 'issued:' || $1::uuid::text, "
				    "jsonb_build_object('license_key', $2::text))",
				    2, pk));
			}
			lic_free(&l);
			free(key);
			issued++;
		}
		audit("webhook.replay", "webhook_event", p[1], NULL, NULL);
		exec0("COMMIT");
		printf("%s %s: %s%s\n", p[0], p[1], PQntuples(r) > 0 ?
		    PQgetvalue(r, 0, 0) : "ignored", issued ? ", license issued" :
		    "");
		PQclear(r);
		return 0;
	}
}

static int cmd_token(int argc, char **argv)
{
	static const char *const spec[] = { NULL };
	unsigned char rnd[32];
	char token[64], hash[65];
	struct opts o;
	size_t i;

	parse_opts(argc - (argc > 0), argv + (argc > 0), spec, &o);
	if (argc > 0 && (strcmp(argv[0], "--help") == 0 ||
	    strcmp(argv[0], "-h") == 0))
		o.help = 1;
	if (argc < 1 || o.help || strcmp(argv[0], "create") != 0 ||
	    o.npos != 1) {
		printf("usage: licctl token create NAME\n"
		    "Creates an admin API token. The token is printed once; "
		    "only its SHA-256\ngoes into the configuration "
		    "(admin_tokens = NAME:HASH, comma-separated\nfor several). "
		    "NAME appears in the audit log as the actor.\n");
		return o.help ? 0 : 2;
	}
	for (i = 0; o.pos[0][i]; i++)
		if (!isalnum((unsigned char)o.pos[0][i]) && o.pos[0][i] != '-' &&
		    o.pos[0][i] != '_')
			die("token names are [A-Za-z0-9_-]");
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		die("no randomness");
	jws_b64url_encode(rnd, sizeof(rnd), token);
	auth_hash_hex(token, hash);
	printf("token:  %s\nconfig: admin_tokens = %s:%s\n", token, o.pos[0],
	    hash);
	fprintf(stderr, "licctl: the token is shown only now; store it "
	    "safely.\n");
	return 0;
}

/* Offline activation for a machine that never reaches the server: seat
 * counted like an online validate, lease signed with the same keys. */
static int cmd_lease(int argc, char **argv)
{
	static const char *const spec[] = { "license", "installation", "days",
	    "request", "json!", NULL };
	struct opts o;
	struct json_object *req = NULL, *v;
	const char *iid, *meta = NULL, *nonce = NULL, *lid;
	char err[512], *lease = NULL, ts[32];
	struct lic l;
	PGresult *r;
	time_t exp, now;
	long days;

	parse_opts(argc - (argc > 0), argv + (argc > 0), spec, &o);
	if (argc > 0 && (strcmp(argv[0], "--help") == 0 ||
	    strcmp(argv[0], "-h") == 0))
		o.help = 1;
	if (argc < 1 || o.help || strcmp(argv[0], "offline") != 0) {
		printf("usage: licctl lease offline [--license ID] (--installation "
		    "IID | --request FILE)\n         --days N [--json]\n"
		    "Activates the installation (its seat counts like an online "
		    "one) and prints\na lease valid for N days (capped at the "
		    "license's end), for an air-gapped\nmachine. --request takes "
		    "the JSON the machine printed:\n  {\"installation_id\": \"...\""
		    ", \"metadata\": {...}, \"nonce\": \"...\"}\n"
		    "and, from licd-check request-file, \"license_id\" (then "
		    "--license may be left out).\n");
		return o.help ? 0 : 2;
	}
	lid = opt(&o, "license");
	iid = opt(&o, "installation");
	if (opt(&o, "request")) {
		char *txt = slurp(opt(&o, "request"));

		req = json_tokener_parse(txt);
		free(txt);
		if (req == NULL || !json_object_is_type(req, json_type_object))
			die("%s: not a JSON object", opt(&o, "request"));
		if (json_object_object_get_ex(req, "installation_id", &v) &&
		    json_object_is_type(v, json_type_string))
			iid = json_object_get_string(v);
		if (json_object_object_get_ex(req, "nonce", &v) &&
		    json_object_is_type(v, json_type_string))
			nonce = json_object_get_string(v);
		if (json_object_object_get_ex(req, "metadata", &v) &&
		    json_object_is_type(v, json_type_object))
			meta = json_object_to_json_string_ext(v,
			    JSON_C_TO_STRING_PLAIN);
		/* liblicd-client's request names its license. */
		if (lid == NULL &&
		    json_object_object_get_ex(req, "license_id", &v) &&
		    json_object_is_type(v, json_type_string))
			lid = json_object_get_string(v);
	}
	if (lid == NULL || !lic_uuid_valid(lid) || !opt(&o, "days"))
		die("lease offline needs --license UUID (or a --request with "
		    "license_id) and --days N");
	days = strtol(opt(&o, "days"), NULL, 10);
	if (days < 1 || days > 3650)
		die("--days must be 1..3650");
	if (iid == NULL)
		die("give --installation or a --request with installation_id");
	if (lic_init_keys(err, sizeof(err)) != 0)
		die("%s", err);
	{
		const char *p[3] = { lid, iid, meta };

		const char *pb[4] = { lid, iid, meta, opt(&o, "days") };

		exec0("BEGIN");
		/* A floating license's seat is borrowed for the lease's days
		 * (within its max_borrow_days); a node-locked one activated. */
		r = q("SELECT seat_model FROM licenses WHERE id = $1", 1, p);
		if (PQntuples(r) == 1 &&
		    strcmp(PQgetvalue(r, 0, 0), "floating") == 0) {
			PQclear(r);
			r = q("SELECT s.code FROM licd_seat($1, $2, 'borrow', "
			    "$4::int, NULL, $3::jsonb, NULL) s", 4, pb);
		} else {
			PQclear(r);
			r = q("SELECT a.code FROM licd_activate($1, $2, NULL, "
			    "$3::jsonb, NULL) a", 3, p);
		}
		if (strcmp(PQgetvalue(r, 0, 0), "VALID") != 0)
			die("cannot activate %s: %s", iid, PQgetvalue(r, 0, 0));
		PQclear(r);
		PQclear(q("SELECT licd_audit('licctl', 'lease.offline', "
		    "'license', $1, NULL, NULL, jsonb_build_object("
		    "'installation_id', $2::text))", 2, p));
		r = q("SELECT v.*, extract(epoch FROM licd_now())::bigint FROM "
		    "license_view v WHERE v.id = $1", 1, p);
	}
	if (lic_from_row(r, 0, 0, &l) != LIC_OK)
		die("cannot read license");
	now = (time_t)strtoll(PQgetvalue(r, 0, LIC_NCOLS), NULL, 10);
	PQclear(r);
	{
		const char *eff, *code = lic_state(&l, now, &eff);

		if (strcmp(code, "VALID") != 0)
			die("license is %s", eff);
	}
	if (lic_lease(&l, iid, nonce, now, days * 86400L, &lease, &exp) !=
	    LIC_OK)
		die("signing failed");
	{
		/* The seat stays taken while the offline lease runs: the
		 * lifecycle job does not free it as stale. */
		char e[24];
		const char *p[3] = { l.id, iid, e };

		snprintf(e, sizeof(e), "%lld", (long long)exp);
		PQclear(q("UPDATE installations SET offline_until = greatest("
		    "offline_until, to_timestamp($3::bigint)) WHERE license_id "
		    "= $1 AND installation_id = $2", 3, p));
	}
	exec0("COMMIT");
	lic_ts(exp, ts);
	if (opt(&o, "json"))
		printf("{\"license_id\":\"%s\",\"installation_id\":\"%s\","
		    "\"lease\":\"%s\",\"lease_expires_at\":\"%s\"}\n", l.id, iid,
		    lease, ts);
	else
		printf("lease for %s on license %s, valid until %s:\n%s\n", iid,
		    l.id, ts, lease);
	free(lease);
	lic_free(&l);
	json_object_put(req);
	return 0;
}

/* A floating license's seats, one line each (licd_admin_license). */
static void print_seats(const char *id)
{
	const char *p[1] = { id };
	PGresult *r = q("SELECT s.seats, i.id, i.seat ->> 'state', "
	    "i.seat ->> 'expires_at', i.seat ->> 'borrowed_until', "
	    "i.seat ->> 'overdraft' FROM (SELECT licd_admin_license($1)::jsonb "
	    "AS d) a, LATERAL (SELECT a.d -> 'seats' AS seats) s LEFT JOIN "
	    "LATERAL jsonb_to_recordset(a.d -> 'installations') AS i(id text, "
	    "seat jsonb) ON i.seat IS NOT NULL WHERE a.d -> 'seats' ->> "
	    "'model' = 'floating'", 1, p);
	struct json_object *s;
	int i;

	if (PQntuples(r) == 0) {
		PQclear(r);
		return;
	}
	s = json_tokener_parse(PQgetvalue(r, 0, 0));
	printf("\nseats: %s live (%s borrowed), %s lapsed; limit %s + "
	    "overdraft %s; ttl %ss, borrow up to %s days\n",
	    json_object_get_string(json_object_object_get(s, "live")),
	    json_object_get_string(json_object_object_get(s, "borrowed")),
	    json_object_get_string(json_object_object_get(s, "lapsed")),
	    json_object_object_get(s, "limit") ? json_object_get_string(
	    json_object_object_get(s, "limit")) : "none",
	    json_object_get_string(json_object_object_get(s, "overdraft")),
	    json_object_get_string(json_object_object_get(s, "ttl")),
	    json_object_get_string(json_object_object_get(s, "max_borrow_days")));
	json_object_put(s);
	for (i = 0; i < PQntuples(r); i++) {
		if (PQgetisnull(r, i, 1))
			continue;
		printf("  %-32s %-9s", PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
		if (!PQgetisnull(r, i, 3))
			printf(" %s %s", strcmp(PQgetvalue(r, i, 2), "lapsed") == 0 ?
			    "lapsed at" : "until", PQgetvalue(r, i, 3));
		if (!PQgetisnull(r, i, 4))
			printf(" borrowed until %s", PQgetvalue(r, i, 4));
		if (strcmp(PQgetvalue(r, i, 5), "true") == 0)
			printf(" overdraft");
		printf("\n");
	}
	PQclear(r);
}

static void print_license(const char *json, int as_json)
{
	struct json_object *o;

	if (as_json) {
		printf("%s\n", json);
		return;
	}
	o = json_tokener_parse(json);
	if (o == NULL)
		return;
	json_object_object_foreach(o, k, v) {
		if (strcmp(k, "key") == 0)
			continue;
		printf("%-21s %s\n", k, v == NULL ? "-" :
		    json_object_is_type(v, json_type_string) ?
		    json_object_get_string(v) :
		    json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
	}
	json_object_put(o);
}

/*
 * Licenses as operators see them (license_admin_view) with the status
 * validate would answer now (licd_now, the programs' clock): an active
 * license past its end of validity is "expired" before the lifecycle
 * job has written it, and one past its expiry but inside its payment
 * grace is "active" and in grace. Columns: doc (with "effective_status"
 * and "in_grace" added), effective status, in grace ('t'/'f'). NULL
 * parameters match everything.
 */
static PGresult *licenses_q(const char *id, const char *customer,
    const char *status)
{
	const char *p[3] = { id, customer, status };

	return q("SELECT v.doc, e.eff, e.grace FROM license_admin_view v "
	    "JOIN licenses l ON l.id = v.id, LATERAL (SELECT CASE WHEN "
	    "l.status <> 'active' OR l.expires_at IS NULL OR "
	    "greatest(l.expires_at, l.grace_until) > licd_now() THEN l.status "
	    "ELSE 'expired' END AS eff, (l.status = 'active' AND "
	    "l.expires_at <= licd_now() AND l.grace_until > licd_now()) AS "
	    "grace) e WHERE ($1::uuid IS NULL OR v.id = $1::uuid) AND "
	    "($2::text IS NULL OR v.customer_id::text = $2 OR v.email = "
	    "lower($2)) AND ($3::text IS NULL OR e.eff = $3) "
	    "ORDER BY v.created_at", 3, p);
}

/* Row i's doc with its effective status; put by the caller. */
static struct json_object *license_doc(const PGresult *r, int i)
{
	struct json_object *d = json_tokener_parse(PQgetvalue(r, i, 0));

	if (d == NULL)
		die("cannot read a license document");
	json_object_object_add(d, "effective_status",
	    json_object_new_string(PQgetvalue(r, i, 1)));
	json_object_object_add(d, "in_grace", json_object_new_boolean(
	    strcmp(PQgetvalue(r, i, 2), "t") == 0));
	return d;
}

/* After an issue inserted nothing: which of the two does not exist. */
static void unknown_customer_or_plan(const char *customer, const char *plan)
{
	const char *p[1] = { customer };
	PGresult *r = q("SELECT 1 FROM customers WHERE id::text = $1 OR "
	    "lower(email) = lower($1)", 1, p);
	int known = PQntuples(r) > 0;

	PQclear(r);
	if (!known) {
		fprintf(stderr, "licctl: --customer: unknown customer '%s' "
		    "(licctl customer list)\n", customer);
		PQfinish(conn);
		exit(2);
	}
	fprintf(stderr, "licctl: --plan: unknown plan '%s' (licctl plan "
	    "list)\n", plan);
	PQfinish(conn);
	exit(2);
}

static char *expiry(const struct opts *o)
{
	char *buf = malloc(64);

	if (buf == NULL)
		die("out of memory");
	if (opt(o, "perpetual")) {
		free(buf);
		return NULL;
	}
	if (opt(o, "days")) {
		long d = (long)int_opt("--days", opt(o, "days"), 1, 36500,
		    "a number of days, 1-36500");
		time_t t;
		struct tm tm;

		t = time(NULL) + d * 86400L;
		gmtime_r(&t, &tm);
		strftime(buf, 64, "%Y-%m-%dT%H:%M:%SZ", &tm);
		return buf;
	}
	if (opt(o, "expires")) {
		expires_opt(opt(o, "expires"), buf);
		return buf;
	}
	die("give --expires DATE, --days N or --perpetual");
}

/* license issue --count N: N licenses of one customer and plan in one
 * transaction (volume sales, load tests), inserted and signed in chunks;
 * the keys go to --keys-out (one per line, 0600) or stdout. */
static void bulk_issue(const char *const *p6, const char *count,
    const char *out_path)
{
	enum { CHUNK = 5000 };
	long total = strtol(count, NULL, 10), done = 0;
	char n[24], *ids = NULL, *keys = NULL;
	FILE *out = stdout;

	if (total < 1 || total > 10000000)
		die("--count must be 1..10000000");
	if (out_path != NULL) {
		int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fd < 0 || (out = fdopen(fd, "w")) == NULL)
			die("%s: %s", out_path, strerror(errno));
	}
	exec0("BEGIN");
	while (done < total) {
		long k = total - done < CHUNK ? total - done : CHUNK, i;
		size_t il = 0, kl = 0, icap = (size_t)k * 40 + 3, kcap = 0;
		const char *pp[7];
		PGresult *r, *v;

		snprintf(n, sizeof(n), "%ld", k);
		memcpy(pp, p6, sizeof(const char *) * 6);
		pp[6] = n;
		r = q("INSERT INTO licenses (customer_id, plan_code, features, "
		    "limits, domains, expires_at) SELECT c.id, p.code, "
		    "coalesce($3::jsonb, p.features), p.limits || "
		    "coalesce($4::jsonb, '{}'), $5::jsonb, $6::timestamptz "
		    "FROM customers c, plans p, generate_series(1, $7::int) "
		    "WHERE (c.id::text = $1 OR lower(c.email) = lower($1)) AND "
		    "p.code = $2 RETURNING id", 7, pp);
		if (PQntuples(r) != k)
			unknown_customer_or_plan(p6[0], p6[1]);
		if ((ids = realloc(ids, icap)) == NULL)
			die("out of memory");
		ids[il++] = '{';
		for (i = 0; i < k; i++)
			il += (size_t)snprintf(ids + il, icap - il, "%s%s",
			    i ? "," : "", PQgetvalue(r, (int)i, 0));
		snprintf(ids + il, icap - il, "}");
		PQclear(r);
		pp[0] = ids;
		v = q("SELECT v.*, extract(epoch FROM l.issued_at)::bigint FROM "
		    "license_view v JOIN licenses l ON l.id = v.id WHERE "
		    "v.id = ANY($1::uuid[])", 1, pp);
		for (i = 0; i < PQntuples(v); i++) {
			struct lic l;
			char *key = NULL;
			size_t len;

			if (lic_from_row(v, (int)i, 0, &l) != LIC_OK ||
			    lic_sign_key(&l, strtoll(PQgetvalue(v, (int)i,
			    LIC_NCOLS), NULL, 10), &key) != LIC_OK)
				die("signing failed");
			fprintf(out, "%s\n", key);
			len = strlen(key);
			if (kl + len + 3 > kcap) {
				kcap = (kcap + len + 3) * 2;
				if ((keys = realloc(keys, kcap)) == NULL)
					die("out of memory");
			}
			keys[kl] = kl == 0 ? '{' : ',';
			kl++;
			memcpy(keys + kl, key, len);
			kl += len;
			keys[kl] = '\0';
			free(key);
			lic_free(&l);
		}
		keys[kl++] = '}';
		keys[kl] = '\0';
		/* ids in the view's order: rebuild from v, matching keys */
		il = 0;
		ids[il++] = '{';
		for (i = 0; i < PQntuples(v); i++)
			il += (size_t)snprintf(ids + il, icap - il, "%s%s",
			    i ? "," : "", PQgetvalue(v, (int)i, 0));
		snprintf(ids + il, icap - il, "}");
		PQclear(v);
		{
			const char *pk[3] = { ids, keys,
			    lic_keyring()->signer->kid };

			PQclear(q("UPDATE licenses l SET license_key = k.key, "
			    "key_kid = $3 FROM unnest($1::uuid[], $2::text[]) AS "
			    "k(id, key) WHERE l.id = k.id", 3, pk));
		}
		kl = 0;
		done += k;
	}
	snprintf(n, sizeof(n), "%ld", total);
	{
		const char *pa[2] = { n, p6[1] };

		PQclear(q("SELECT licd_audit('licctl', 'license.issue_bulk', "
		    "'plan', $2, NULL, NULL, jsonb_build_object('count', "
		    "$1::bigint))", 2, pa));
	}
	exec0("COMMIT");
	if (out != stdout && fclose(out) != 0)
		die("%s: write failed", out_path);
	fprintf(stderr, "issued %ld licenses\n", total);
	free(ids);
	free(keys);
}

static int cmd_license(int argc, char **argv)
{
	static const char *const spec[] = { "customer", "plan", "features",
	    "limits", "domains", "expires", "days", "perpetual!", "status",
	    "reason", "json!", "count", "keys-out", "seat-model", "seat-ttl",
	    "max-borrow-days", "overdraft", NULL };
	struct opts o;
	PGresult *r;
	int i, as_json;

	parse_opts(argc - 1, argv + 1, spec, &o);
	if (argc > 0 && (strcmp(argv[0], "--help") == 0 ||
	    strcmp(argv[0], "-h") == 0))
		o.help = 1;
	as_json = opt(&o, "json") != NULL;
	if (argc < 1 || o.help || strcmp(argv[0], "--help") == 0 ||
	    strcmp(argv[0], "-h") == 0) {
		printf("usage: licctl license issue --customer ID|EMAIL --plan CODE"
		    "\n         (--expires 2027-01-31[T00:00:00Z] | --days N | "
		    "--perpetual)\n         [--features a,b] [--limits k=v,...] "
		    "[--domains 'example.com,*.example.com'] [--json]\n"
		    "         [--count N [--keys-out FILE]]  (N licenses at once, "
		    "keys one per line)\n"
		    "         [--seat-model node|floating] [--seat-ttl SECS] "
		    "[--max-borrow-days N]\n         [--overdraft SEATS]  "
		    "(default: the plan's)\n"
		    "       licctl license update ID [--seat-model node|floating]"
		    " [--seat-ttl SECS]\n         [--max-borrow-days N] "
		    "[--overdraft SEATS]\n"
		    "       licctl license show ID [--json]  (with its seats: "
		    "live, borrowed, lapsed)\n"
		    "       licctl license list [--customer ID|EMAIL] [--status "
		    "S] [--json]\n"
		    "       licctl license revoke|suspend|reinstate|"
		    "reset-activations ID\n         [--reason TEXT]\n"
		    "issue copies the plan's features and limits (--features "
		    "replaces them,\n--limits overrides single limits), signs the "
		    "key with the current key and prints it.\n");
		return argc < 1 ? 2 : 0;
	}
	if (strcmp(argv[0], "issue") == 0) {
		char *feat = NULL, *lim = NULL, *dom = NULL, *exp, *key = NULL;
		char err[512];
		struct lic l;
		const char *p[10], *id;
		long long issued;

		if (!opt(&o, "customer") || !opt(&o, "plan"))
			die("license issue needs --customer and --plan");
		if (!slug_ok(opt(&o, "plan")))
			bad("--plan", opt(&o, "plan"), "a plan code, " SLUG_ACCEPTS);
		if (!lic_uuid_valid(opt(&o, "customer")) &&
		    !email_ok(opt(&o, "customer")))
			bad("--customer", opt(&o, "customer"),
			    "a customer id (UUID) or e-mail address");
		if (opt(&o, "count") != NULL)
			int_opt("--count", opt(&o, "count"), 1, 10000000,
			    "a number of licenses, 1-10000000");
		if (lic_init_keys(err, sizeof(err)) != 0)
			die("%s", err);
		if (lic_keyring()->signer == NULL)
			die("no current signing key (licctl keys generate)");
		exp = expiry(&o);
		if (opt(&o, "features"))
			feat = list_json(opt(&o, "features"), 0);
		if (opt(&o, "limits"))
			lim = limits_json(opt(&o, "limits"));
		dom = list_json(opt(&o, "domains") ? opt(&o, "domains") : "", 1);
		p[0] = opt(&o, "customer");
		p[1] = opt(&o, "plan");
		p[2] = feat;
		p[3] = lim;
		p[4] = dom;
		p[5] = exp;
		p[6] = seat_opt(&o, "seat-model");
		p[7] = seat_opt(&o, "seat-ttl");
		p[8] = seat_opt(&o, "max-borrow-days");
		p[9] = seat_opt(&o, "overdraft");
		if (opt(&o, "count")) {
			bulk_issue(p, opt(&o, "count"), opt(&o, "keys-out"));
			free(feat);
			free(lim);
			free(dom);
			free(exp);
			return 0;
		}
		exec0("BEGIN");
		/* Seat options left NULL are the plan's (licd_license_seat_defaults). */
		r = q("INSERT INTO licenses (customer_id, plan_code, features, "
		    "limits, domains, expires_at, seat_model, seat_ttl, "
		    "max_borrow_days, overdraft) SELECT c.id, p.code, "
		    "coalesce($3::jsonb, p.features), p.limits || "
		    "coalesce($4::jsonb, '{}'), $5::jsonb, $6::timestamptz, "
		    "$7, $8::int, $9::int, $10::int "
		    "FROM customers c, plans p WHERE (c.id::text = $1 OR "
		    "lower(c.email) = lower($1)) AND p.code = $2 "
		    "RETURNING id", 10, p);
		if (PQntuples(r) != 1)
			unknown_customer_or_plan(p[0], p[1]);
		id = PQgetvalue(r, 0, 0);
		{
			const char *pi[1] = { id };
			PGresult *v = q("SELECT v.*, extract(epoch FROM "
			    "l.issued_at)::bigint FROM license_view v JOIN "
			    "licenses l ON l.id = v.id WHERE v.id = $1", 1, pi);

			if (lic_from_row(v, 0, 0, &l) != LIC_OK)
				die("cannot read the new license");
			issued = strtoll(PQgetvalue(v, 0, LIC_NCOLS), NULL, 10);
			PQclear(v);
		}
		if (lic_sign_key(&l, issued, &key) != LIC_OK)
			die("signing failed");
		{
			const char *pk[3] = { id, key, lic_keyring()->signer->kid };
			PQclear(q("UPDATE licenses SET license_key = $2, key_kid = $3"
			    " WHERE id = $1", 3, pk));
		}
		audit("license.issue", "license", id, NULL, NULL);
		{
			const char *pi[1] = { id };
			PGresult *s = q("SELECT doc FROM license_admin_view "
			    "WHERE id = $1", 1, pi);

			exec0("COMMIT");
			if (as_json) {
				printf("%s\n", PQgetvalue(s, 0, 0));
			} else {
				print_license(PQgetvalue(s, 0, 0), 0);
				printf("\nlicense key:\n%s\n", key);
			}
			PQclear(s);
		}
		lic_free(&l);
		PQclear(r);
		free(key);
		free(feat);
		free(lim);
		free(dom);
		free(exp);
		return 0;
	}
	if (strcmp(argv[0], "update") == 0) {
		const char *p[5];

		if (o.npos != 1 || !lic_uuid_valid(o.pos[0]))
			die("usage: licctl license update LICENSE_ID "
			    "[--seat-model node|floating] ...");
		p[0] = o.pos[0];
		p[1] = seat_opt(&o, "seat-model");
		p[2] = seat_opt(&o, "seat-ttl");
		p[3] = seat_opt(&o, "max-borrow-days");
		p[4] = seat_opt(&o, "overdraft");
		if (!p[1] && !p[2] && !p[3] && !p[4])
			die("license update needs --seat-model, --seat-ttl, "
			    "--max-borrow-days or --overdraft");
		r = q("SELECT licd_license_seats_set($1, $2, $3::int, $4::int, "
		    "$5::int, 'licctl', NULL)", 5, p);
		if (strcmp(PQgetvalue(r, 0, 0), "ok") != 0)
			die("no license %s", o.pos[0]);
		PQclear(r);
		r = q("SELECT doc FROM license_admin_view WHERE id = $1", 1, p);
		print_license(PQgetvalue(r, 0, 0), as_json);
		PQclear(r);
		return 0;
	}
	if (strcmp(argv[0], "show") == 0) {
		const char *p[1];

		if (o.npos != 1)
			die("usage: licctl license show LICENSE_ID");
		if (!lic_uuid_valid(o.pos[0]))
			bad("LICENSE_ID", o.pos[0], "a license id (UUID)");
		p[0] = o.pos[0];
		r = licenses_q(p[0], NULL, NULL);
		if (PQntuples(r) != 1)
			die("no license %s", o.pos[0]);
		if (as_json) {
			PGresult *a = q("SELECT licd_admin_license($1)", 1, p);
			struct json_object *d = license_doc(r, 0);
			struct json_object *j = json_tokener_parse(
			    PQgetvalue(a, 0, 0));

			/* A floating license's seats beside the license. */
			if (d != NULL && j != NULL && strcmp(json_object_get_string(
			    json_object_object_get(d, "seat_model")),
			    "floating") == 0)
				json_object_object_add(d, "seats", json_object_get(
				    json_object_object_get(j, "seats")));
			printf("%s\n", d ? json_object_to_json_string_ext(d,
			    JSON_C_TO_STRING_PLAIN) : PQgetvalue(r, 0, 0));
			json_object_put(d);
			json_object_put(j);
			PQclear(a);
		} else {
			struct json_object *d = license_doc(r, 0);

			print_license(json_object_to_json_string_ext(d,
			    JSON_C_TO_STRING_PLAIN), 0);
			json_object_put(d);
			print_seats(p[0]);
		}
		if (!as_json) {
			struct json_object *j = json_tokener_parse(PQgetvalue(r, 0, 0));
			struct json_object *k = json_object_object_get(j, "key");

			if (k != NULL)
				printf("\nlicense key:\n%s\n", json_object_get_string(k));
			json_object_put(j);
		}
		PQclear(r);
		return 0;
	}
	if (strcmp(argv[0], "list") == 0) {
		static const char *const st[] = { "active", "expired",
		    "suspended", "revoked", NULL };

		one_of("--status", opt(&o, "status"), st,
		    "active, expired, suspended or revoked");
		r = licenses_q(NULL, opt(&o, "customer"), opt(&o, "status"));
		for (i = 0; i < PQntuples(r); i++) {
			struct json_object *j = license_doc(r, i);

			if (as_json) {
				printf("%s\n", json_object_to_json_string_ext(j,
				    JSON_C_TO_STRING_PLAIN));
			} else {
				char stb[24];

				snprintf(stb, sizeof(stb), "%s%s",
				    PQgetvalue(r, i, 1), strcmp(PQgetvalue(r, i,
				    2), "t") == 0 ? ",grace" : "");
				printf("%s  %-10s %-12s %-28s expires %s\n",
				    json_object_get_string(json_object_object_get(j, "id")),
				    stb,
				    json_object_get_string(json_object_object_get(j, "plan")),
				    json_object_get_string(json_object_object_get(j, "email")),
				    json_object_object_get(j, "expires_at") ?
				    json_object_get_string(json_object_object_get(j, "expires_at")) : "never");
			}
			json_object_put(j);
		}
		PQclear(r);
		return 0;
	}
	if (strcmp(argv[0], "revoke") == 0 || strcmp(argv[0], "suspend") == 0 ||
	    strcmp(argv[0], "reinstate") == 0 ||
	    strcmp(argv[0], "reset-activations") == 0)
		return license_action(argv[0], &o);
	die("unknown license command '%s' (see licctl license --help)", argv[0]);
}


static void usage(FILE *f)
{
	fprintf(f, "usage: licctl [-c CONFIG] COMMAND ...\n"
	    "commands:\n"
	    "  migrate            apply database migrations\n"
	    "  keys               generate | add | activate | retire | rotate |\n"
	    "                     list | jwks\n"
	    "  plan               set | list\n"
	    "  customer           create | list\n"
	    "  license            issue | show | list | revoke | suspend |\n"
	    "                     reinstate | reset-activations\n"
	    "  usage              usage report of a license and month\n"
	    "  audit              audit log\n"
	    "  lease              offline (lease for an air-gapped machine)\n"
	    "  token              create (admin API token)\n"
	    "  notifications      list | retry (the delivery outbox)\n"
	    "  webhook            pending | replay (provider events not applied)\n"
	    "Every command takes --help. Config: -c, else $LICD_CONFIG, else "
	    "%s.\n", CFG_DEFAULT_PATH);
}

/* `licctl GROUP --help`: the group's commands, each with its own --help. */
static int group_help(const char *group)
{
	static const char *const help[][2] = {
		{ "plan", "usage: licctl plan set CODE --name NAME [--features a,b] "
		    "[--limits k=v,...] ...\n"
		    "       licctl plan list [--json]\n"
		    "See licctl plan set --help for pricing and Stripe options.\n" },
		{ "customer", "usage: licctl customer create --email EMAIL "
		    "[--name NAME] [--json]\n"
		    "       licctl customer list [--json]\n" },
	};
	size_t i;

	for (i = 0; i < sizeof(help) / sizeof(help[0]); i++)
		if (strcmp(help[i][0], group) == 0) {
			fputs(help[i][1], stdout);
			return 1;
		}
	return 0;
}

int main(int argc, char **argv)
{
	const char *conf = NULL;
	char err[512];
	int i = 1, rc;

	if (argc > 2 && strcmp(argv[1], "-c") == 0) {
		conf = argv[2];
		i = 3;
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0 ||
	    strcmp(argv[i], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (i + 1 < argc && (strcmp(argv[i + 1], "--help") == 0 ||
	    strcmp(argv[i + 1], "-h") == 0) && group_help(argv[i]))
		return 0;
	/* --help anywhere: no configuration or database needed. */
	for (rc = i + 1; rc < argc; rc++)
		if (strcmp(argv[rc], "--help") == 0 || strcmp(argv[rc], "-h") == 0)
			break;
	if (rc == argc && cfg_load(conf, err, sizeof(err)) != 0)
		die("%s", err);
	if (strcmp(argv[i], "migrate") == 0)
		return cmd_migrate(argc - i - 1, argv + i + 1);
	if (strcmp(argv[i], "keys") == 0)
		return cmd_keys(argc - i - 1, argv + i + 1);
	if (strcmp(argv[i], "token") == 0)
		return cmd_token(argc - i - 1, argv + i + 1);
	/* The remaining commands connect to the database at their first
	 * statement (q), after their options were checked. */
	if (strcmp(argv[i], "plan") == 0)
		rc = cmd_plan(argc - i - 1, argv + i + 1);
	else if (strcmp(argv[i], "customer") == 0)
		rc = cmd_customer(argc - i - 1, argv + i + 1);
	else if (strcmp(argv[i], "license") == 0)
		rc = cmd_license(argc - i - 1, argv + i + 1);
	else if (strcmp(argv[i], "usage") == 0)
		rc = cmd_usage(argc - i - 1, argv + i + 1);
	else if (strcmp(argv[i], "audit") == 0)
		rc = cmd_audit(argc - i - 1, argv + i + 1);
	else if (strcmp(argv[i], "lease") == 0)
		rc = cmd_lease(argc - i - 1, argv + i + 1);
	else if (strcmp(argv[i], "notifications") == 0)
		rc = cmd_notifications(argc - i - 1, argv + i + 1);
	else if (strcmp(argv[i], "webhook") == 0)
		rc = cmd_webhook(argc - i - 1, argv + i + 1);
	else {
		usage(stderr);
		die("unknown command '%s'", argv[i]);
	}
	if (conn != NULL)
		PQfinish(conn);
	return rc;
}
