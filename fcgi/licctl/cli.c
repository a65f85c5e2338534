/*
 * licctl's shared parts: option parsing by the command table's option
 * lists, the one database connection and how its errors are told, the
 * value checks every command uses, and output helpers.
 */
#include "cli.h"
#include "config.h"
#include "lic.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static PGconn *conn;

/* ---- errors ----------------------------------------------------------- */

int cli_fail(struct cli_err *e, int status, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(e->msg, sizeof(e->msg), "licctl: ");

	va_start(ap, fmt);
	vsnprintf(e->msg + n, sizeof(e->msg) - (size_t)n, fmt, ap);
	va_end(ap);
	e->status = status;
	return -1;
}

int cli_bad(struct cli_err *e, const char *option, const char *got,
    const char *accepts)
{
	return cli_fail(e, 2, "%s: '%s' is not valid; expected %s", option,
	    got, accepts);
}

int cli_usage(struct cli_err *e, const struct cli_cmd *c)
{
	snprintf(e->msg, sizeof(e->msg), "usage: licctl %s%s%s%s%s",
	    c->group, c->verb ? " " : "", c->verb ? c->verb : "",
	    c->args[0] ? " " : "", c->args);
	e->status = 2;
	return -1;
}

void cli_usage_line(FILE *f, const struct cli_cmd *c, int first)
{
	fprintf(f, "%s licctl %s%s%s%s%s\n", first ? "usage:" : "      ",
	    c->group, c->verb ? " " : "", c->verb ? c->verb : "",
	    c->args[0] ? " " : "", c->args);
}

/* ---- options ---------------------------------------------------------- */

int cli_parse(const struct cli_cmd *c, int argc, char **argv,
    struct cli_opts *o, struct cli_err *e)
{
	static const char *const none[] = { NULL };
	const char *const *spec = c->options != NULL ? c->options : none;
	int i, j;

	memset(o, 0, sizeof(*o));
	for (i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (strncmp(a, "--", 2) != 0) {
			if (o->npos == CLI_MAX_POS)
				return cli_fail(e, 1, "too many arguments");
			o->pos[o->npos++] = a;
			continue;
		}
		for (j = 0; spec[j] != NULL; j++) {
			size_t n = strcspn(spec[j], "!");

			if (strlen(a + 2) == n && strncmp(a + 2, spec[j], n) == 0)
				break;
		}
		if (spec[j] == NULL)
			return cli_fail(e, 1, "unknown option %s (see --help)", a);
		if (o->n == CLI_MAX_OPTS)
			return cli_fail(e, 1, "too many options");
		o->name[o->n] = spec[j];
		if (strchr(spec[j], '!') != NULL)
			o->val[o->n++] = "1";
		else if (i + 1 >= argc)
			return cli_fail(e, 1, "%s needs a value", a);
		else
			o->val[o->n++] = argv[++i];
	}
	return 0;
}

const char *cli_opt(const struct cli_opts *o, const char *name)
{
	size_t n = strlen(name);
	int i;

	for (i = 0; i < o->n; i++)
		if (strncmp(o->name[i], name, n) == 0 &&
		    (o->name[i][n] == '\0' || o->name[i][n] == '!'))
			return o->val[i];
	return NULL;
}

/* ---- the database ----------------------------------------------------- */

/* Before leaving, after whatever the verb committed: validate and
 * heartbeat answer it from the next call on (db_cache_sync's barrier,
 * sql/functions/36_cache.sql). A database migrated before the barrier
 * existed has nothing to wait for. */
static void cache_sync(void)
{
	PGresult *r;

	if (PQstatus(conn) != CONNECTION_OK ||
	    PQtransactionStatus(conn) != PQTRANS_IDLE)
		return;
	r = PQexec(conn, "CALL licd_cache_sync()");
	if (PQresultStatus(r) != PGRES_COMMAND_OK &&
	    strcmp(PQresultErrorField(r, PG_DIAG_SQLSTATE) ?
	    PQresultErrorField(r, PG_DIAG_SQLSTATE) : "", "42883") != 0)
		fprintf(stderr, "licctl: warning: the license caches' barrier "
		    "failed: %s", PQresultErrorMessage(r));
	PQclear(r);
}

void cli_finish(int sync)
{
	if (conn != NULL) {
		if (sync)
			cache_sync();
		PQfinish(conn);
	}
	conn = NULL;
}

PGconn *cli_conn(struct cli_err *e)
{
	const char *keys[] = { "dbname", "application_name", "options", NULL };
	const char *vals[] = { cfg_str("database_url"),
	    "licctl", "-c TimeZone=UTC -c client_min_messages=warning", NULL };

	if (conn != NULL)
		return conn;
	conn = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(conn) != CONNECTION_OK) {
		cli_fail(e, 1, "cannot connect to the database: %s",
		    PQerrorMessage(conn));
		cli_finish(0);
	}
	return conn;
}

/* The schema's checks by name: what a refused value was and what the
 * option accepts, for a value the checks in C did not catch. */
static const struct {
	const char *constraint, *option, *accepts;
} refusals[] = {
	{ "customers_email_check", "--email", CLI_EMAIL_ACCEPTS },
	{ "customers_name_check", "--name", "at most 200 characters" },
	{ "plans_code_check", "CODE", CLI_SLUG_ACCEPTS },
	{ "plans_name_check", "--name", "1-200 characters" },
	{ "plans_features_check", "--features", "names of " CLI_SLUG_ACCEPTS },
	{ "plans_limits_check", "--limits", "name=integer pairs" },
	{ "plans_billing_interval_check", "--interval", "month, year or once" },
	{ "plans_price_cents_check", "--price-cents",
	    "a non-negative integer" },
	{ "plans_currency_check", "--currency", "three letters (usd)" },
	{ "licenses_features_check", "--features", "names of " CLI_SLUG_ACCEPTS },
	{ "licenses_limits_check", "--limits", "name=integer pairs" },
	{ "licenses_domains_check", "--domains", CLI_DOMAIN_ACCEPTS },
	{ "licenses_status_reason_check", "--reason", "at most 500 characters" },
};

/* A failed statement: a value the database refused (SQLSTATE classes 22
 * and 23) as the option it came from, status 2; else its first line. */
static int failed(struct cli_err *e, const PGresult *r)
{
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	const char *cons = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
	size_t i, n = sizeof(refusals) / sizeof(refusals[0]);
	char msg[1024];

	if (state != NULL && (strncmp(state, "22", 2) == 0 ||
	    strncmp(state, "23", 2) == 0)) {
		for (i = 0; cons != NULL && i < n; i++)
			if (strcmp(refusals[i].constraint, cons) == 0)
				return cli_fail(e, 2, "%s: not valid; expected %s",
				    refusals[i].option, refusals[i].accepts);
		return cli_fail(e, 2, "a value was refused (%s %s); see --help "
		    "for what each option accepts", state, cons ? cons : "");
	}
	snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(r));
	msg[strcspn(msg, "\n")] = '\0';
	return cli_fail(e, 1, "database error: %s", msg);
}

PGresult *cli_q(struct cli_err *e, const char *sql, int n,
    const char *const *params)
{
	PGresult *r;
	int st;

	if (cli_conn(e) == NULL)
		return NULL;
	r = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
	st = PQresultStatus(r);
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return r;
	failed(e, r);
	PQclear(r);
	return NULL;
}

int cli_exec(struct cli_err *e, const char *sql)
{
	PGresult *r = cli_q(e, sql, 0, NULL);

	PQclear(r);
	return r != NULL ? 0 : -1;
}

int cli_audit(struct cli_err *e, const char *action, const char *type,
    const char *id, const char *reason, const char *details)
{
	const char *p[5] = { action, type, id, reason, details };
	PGresult *r = cli_q(e, "INSERT INTO audit_log (actor, action, "
	    "target_type, target_id, reason, details) VALUES ('licctl', $1, "
	    "$2, $3, $4, $5::jsonb)", 5, p);

	PQclear(r);
	return r != NULL ? 0 : -1;
}

/* ---- value checks ----------------------------------------------------- */

int cli_kid_ok(const char *s)
{
	size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789_-");

	return n > 0 && n < JWS_KID_MAX && s[n] == '\0';
}

int cli_slug_ok(const char *s)
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

int cli_email_ok(const char *s)
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

int cli_int(struct cli_err *e, const char *option, const char *v,
    long long lo, long long hi, const char *accepts, long long *out)
{
	char *end;
	long long n;

	errno = 0;
	n = strtoll(v, &end, 10);
	if (*v == '\0' || *end != '\0' || errno != 0 || n < lo || n > hi ||
	    isspace((unsigned char)*v) || *v == '+')
		return cli_bad(e, option, v, accepts);
	if (out != NULL)
		*out = n;
	return 0;
}

int cli_one_of(struct cli_err *e, const char *option, const char *v,
    const char *const *allowed, const char *accepts)
{
	size_t i;

	if (v == NULL)
		return 0;
	for (i = 0; allowed[i] != NULL; i++)
		if (strcmp(v, allowed[i]) == 0)
			return 0;
	return cli_bad(e, option, v, accepts);
}

static int digits(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

int cli_period(struct cli_err *e, const char *v)
{
	if (v != NULL && (strlen(v) != 7 || !digits(v, 4) || v[4] != '-' ||
	    !digits(v + 5, 2) || strncmp(v, "2000", 4) < 0 ||
	    strncmp(v + 5, "01", 2) < 0 || strncmp(v + 5, "12", 2) > 0))
		return cli_bad(e, "--period", v,
		    "a month as YYYY-MM (2026-11), from 2000");
	return 0;
}

/* An ISO 8601 date (YYYY-MM-DD, midnight UTC) or UTC timestamp
 * (YYYY-MM-DDTHH:MM:SSZ) that exists and lies in the future. */
int cli_expires(struct cli_err *e, const char *v, char out[32])
{
	static const char accepts[] = "a future date YYYY-MM-DD or UTC time "
	    "YYYY-MM-DDTHH:MM:SSZ";
	struct tm tm, back;
	time_t t;
	int y, mo, d, h = 0, mi = 0, sec = 0, n = 0, ok;
	size_t len = strlen(v);

	memset(&tm, 0, sizeof(tm));
	if (len == 10)
		ok = sscanf(v, "%4d-%2d-%2d%n", &y, &mo, &d, &n) == 3 &&
		    n == 10;
	else if (len == 20)
		ok = sscanf(v, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &y, &mo, &d, &h,
		    &mi, &sec, &n) == 6 && n == 20;
	else
		ok = 0;
	if (!ok || v[4] != '-' || v[7] != '-' || !digits(v, 1) ||
	    !digits(v + 5, 1) || !digits(v + 8, 1))
		return cli_bad(e, "--expires", v, accepts);
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
		return cli_bad(e, "--expires", v, accepts);
	if (t <= time(NULL))
		return cli_bad(e, "--expires", v, "a date in the future");
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return 0;
}

/* The seat options' ranges (sql/023 holds the same), checked here so that
 * a bad value gets a message naming it rather than the constraint's;
 * seat-model's is its two values. */
static const struct {
	const char *name;
	long lo, hi;
} seat_ranges[4] = {
	{ "seat-model", 0, 0 },
	{ "seat-ttl", 30, 86400 },
	{ "max-borrow-days", 0, 366 },
	{ "overdraft", 0, 1000000 },
};

int cli_seat_opts(struct cli_err *e, const struct cli_opts *o,
    const char *seat[4])
{
	const char *v;
	size_t i;
	char *end;
	long n;

	for (i = 0; i < 4; i++) {
		seat[i] = v = cli_opt(o, seat_ranges[i].name);
		if (v == NULL)
			continue;
		if (i == 0) {
			if (strcmp(v, "node") != 0 && strcmp(v, "floating") != 0)
				return cli_fail(e, 2, "--seat-model must be node "
				    "or floating");
			continue;
		}
		n = strtol(v, &end, 10);
		if (*v == '\0' || *end != '\0' || n < seat_ranges[i].lo ||
		    n > seat_ranges[i].hi)
			return cli_fail(e, 2, "--%s must be an integer %ld..%ld",
			    seat_ranges[i].name, seat_ranges[i].lo,
			    seat_ranges[i].hi);
	}
	return 0;
}

/* Each item of a comma-separated list, leading blanks skipped, into the
 * JSON array or object `into` by fn; the result as text into *out. */
typedef int item_fn(struct cli_err *e, char *item, struct json_object *into);

static int csv_json(struct cli_err *e, const char *csv,
    struct json_object *into, item_fn *fn, char **out)
{
	char *copy = strdup(csv), *tok, *save = NULL;
	int rc = -1;

	*out = NULL;
	if (copy == NULL) {
		cli_fail(e, 1, "out of memory");
		goto out;
	}
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		while (isspace((unsigned char)*tok))
			tok++;
		if (fn(e, tok, into) != 0)
			goto out;
	}
	if ((*out = strdup(json_object_to_json_string_ext(into,
	    JSON_C_TO_STRING_PLAIN))) == NULL) {
		cli_fail(e, 1, "out of memory");
		goto out;
	}
	rc = 0;
out:
	free(copy);
	json_object_put(into);
	return rc;
}

/* A feature or domain item: trailing blanks dropped, an empty one
 * skipped; a domain lower-cased without its trailing dot. */
static int list_item(struct cli_err *e, char *tok, struct json_object *a,
    int domain)
{
	char *end = tok + strlen(tok), *c;

	while (end > tok && isspace((unsigned char)end[-1]))
		*--end = '\0';
	if (domain) {
		for (c = tok; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		if (end > tok && end[-1] == '.')
			end[-1] = '\0';
	}
	if (*tok == '\0')
		return 0;
	if (domain && !domain_pattern_ok(tok))
		return cli_bad(e, "--domains", tok, CLI_DOMAIN_ACCEPTS);
	if (!domain && !cli_slug_ok(tok))
		return cli_bad(e, "--features", tok, "names of " CLI_SLUG_ACCEPTS);
	json_object_array_add(a, json_object_new_string(tok));
	return 0;
}

static int feature_item(struct cli_err *e, char *tok, struct json_object *a)
{
	return list_item(e, tok, a, 0);
}

static int domain_item(struct cli_err *e, char *tok, struct json_object *a)
{
	return list_item(e, tok, a, 1);
}

static int limit_item(struct cli_err *e, char *tok, struct json_object *o)
{
	char *eq = strchr(tok, '='), *end;
	long long v;

	if (eq == NULL)
		return cli_bad(e, "--limits", tok,
		    "name=integer pairs, comma-separated");
	*eq = '\0';
	if (!cli_slug_ok(tok))
		return cli_bad(e, "--limits", tok,
		    "limit names of " CLI_SLUG_ACCEPTS);
	errno = 0;
	v = strtoll(eq + 1, &end, 10);
	if (errno != 0 || *end != '\0' || end == eq + 1 || v < 0 ||
	    eq[1] == '+' || eq[1] == '-' || isspace((unsigned char)eq[1]))
		return cli_bad(e, "--limits", eq + 1, "a non-negative integer");
	json_object_object_add(o, tok, json_object_new_int64(v));
	return 0;
}

int cli_list_json(struct cli_err *e, const char *csv, int domains,
    char **out)
{
	return csv_json(e, csv, json_object_new_array(), domains ?
	    domain_item : feature_item, out);
}

int cli_limits_json(struct cli_err *e, const char *csv, char **out)
{
	return csv_json(e, csv, json_object_new_object(), limit_item, out);
}

int cli_features_limits(struct cli_err *e, const struct cli_opts *o,
    char **features, char **limits)
{
	*features = *limits = NULL;
	if (cli_opt(o, "features") != NULL &&
	    cli_list_json(e, cli_opt(o, "features"), 0, features) != 0)
		return -1;
	if (cli_opt(o, "limits") != NULL &&
	    cli_limits_json(e, cli_opt(o, "limits"), limits) != 0)
		return -1;
	return 0;
}

int cli_license_id(struct cli_err *e, const char *v)
{
	if (!lic_uuid_valid(v))
		return cli_bad(e, "LICENSE_ID", v, "a license id (UUID)");
	return 0;
}

int cli_slurp(struct cli_err *e, const char *path, char **out)
{
	FILE *f = fopen(path, "rb");
	long n;
	int rc = -1;

	*out = NULL;
	if (f == NULL)
		return cli_fail(e, 1, "%s: %s", path, strerror(errno));
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0 ||
	    (*out = malloc((size_t)n + 1)) == NULL) {
		cli_fail(e, 1, "%s: cannot read", path);
		goto out;
	}
	if (fread(*out, 1, (size_t)n, f) != (size_t)n) {
		cli_fail(e, 1, "%s: short read", path);
		free(*out);
		*out = NULL;
		goto out;
	}
	(*out)[n] = '\0';
	rc = 0;
out:
	fclose(f);
	return rc;
}

/* ---- output ----------------------------------------------------------- */

const char *cli_jstr(struct json_object *o, const char *key)
{
	struct json_object *v = json_object_object_get(o, key);

	return v != NULL ? json_object_get_string(v) : NULL;
}

void cli_rows(const PGresult *r, int as_json, const char *fmt)
{
	const char *col[7];
	int i, j;

	for (i = 0; i < PQntuples(r); i++) {
		if (as_json) {
			printf("%s\n", PQgetvalue(r, i, 0));
			continue;
		}
		for (j = 1; j < 7; j++)
			col[j] = j < PQnfields(r) ? PQgetvalue(r, i, j) : "";
		printf(fmt, col[1], col[2], col[3], col[4], col[5], col[6]);
	}
}

int cli_list(struct cli_err *e, const struct cli_opts *o, const char *sql,
    int n, const char *const *p, const char *fmt)
{
	PGresult *r = cli_q(e, sql, n, p);

	if (r == NULL)
		return -1;
	cli_rows(r, cli_opt(o, "json") != NULL, fmt);
	PQclear(r);
	return 0;
}
