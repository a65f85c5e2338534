/*
 * What licctl's command files share: the command table's shape, option
 * parsing, the database connection and its errors, value checks and
 * output helpers. Messages start with "licctl: "; a value licd cannot take
 * exits 2 (cli_bad), anything else that stops a command exits 1 (cli_die).
 * Every state change runs in one transaction together with its audit_log
 * row (actor "licctl"); a transaction still open when licctl exits is
 * rolled back as the connection closes.
 */
#ifndef LICCTL_CLI_H
#define LICCTL_CLI_H

#include <stdio.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#define CLI_MAX_OPTS 16
#define CLI_MAX_POS 4

/* A command's options as given: "--name value" pairs and "--flag"
 * switches, then the positional arguments in order. */
struct cli_opts {
	const char *name[CLI_MAX_OPTS];
	const char *val[CLI_MAX_OPTS];
	int n;
	const char *pos[CLI_MAX_POS];
	int npos;
};

struct cli_cmd;
typedef int cli_fn(const struct cli_cmd *, const struct cli_opts *);

/* One row of the command table (main.c): the only place that names a
 * command, its options and its help. */
struct cli_cmd {
	const char *group;
	const char *verb;		/* NULL: the group is one command */
	cli_fn *fn;			/* returns the exit status */
	const char *const *options;	/* "name" takes a value, "name!" not */
	const char *args;		/* the synopsis after group and verb */
	const char *summary;		/* its line in licctl --help */
	const char *help;		/* what GROUP VERB --help adds */
	int is_default;			/* run when the group has no verb */
};

/* Fills o from argv by the command's options; 0, or -1 with the reason
 * in err. */
int cli_parse(const struct cli_cmd *c, int argc, char **argv,
    struct cli_opts *o, char *err, size_t errlen);
/* The value of option name (without "--"), "1" for a switch given, or
 * NULL. */
const char *cli_opt(const struct cli_opts *o, const char *name);
/* "usage: licctl GROUP VERB ARGS" (lead "usage:" or the indent of the
 * lines after it). */
void cli_usage_line(FILE *f, const struct cli_cmd *c, int first);
/* The command's usage on stderr; returns 2, the exit status of a command
 * line licctl cannot run. */
int cli_usage(const struct cli_cmd *c);

/* Stop: one line on stderr, exit 1 (cli_die) or exit 2 naming the option,
 * the value and what it accepts (cli_bad). */
void cli_die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void cli_bad(const char *option, const char *got, const char *accepts)
    __attribute__((noreturn));
void cli_finish(void);

/* The database. cli_q runs one parameterised statement (connecting first
 * if need be) and returns its result for the caller to PQclear; it dies on
 * failure, telling a value the schema refused as the option it came from
 * (exit 2). */
PGconn *cli_conn(void);
PGresult *cli_q(const char *sql, int n, const char *const *params);
void cli_exec(const char *sql);
void cli_audit(const char *action, const char *type, const char *id,
    const char *reason, const char *details);

/* Value checks, the schema's in C, so that a bad value is named before any
 * statement runs (sql/functions/10_checks.sql). */
#define CLI_SLUG_ACCEPTS "1-64 of a-z 0-9 _ . - starting with a letter or digit"
#define CLI_DOMAIN_ACCEPTS "host names or *.suffix patterns of a-z 0-9 - " \
	"(labels of 1-63, at most 253 characters), comma-separated"
#define CLI_EMAIL_ACCEPTS "an e-mail address (name@domain, at most 254 " \
	"characters)"
int cli_slug_ok(const char *s);
int cli_email_ok(const char *s);
/* A whole number in [lo, hi], else cli_bad. */
long long cli_int(const char *option, const char *v, long long lo,
    long long hi, const char *accepts);
/* v if it is one of allowed (NULL-terminated) or NULL, else cli_bad. */
const char *cli_one_of(const char *option, const char *v,
    const char *const *allowed, const char *accepts);
/* A month YYYY-MM from 2000, or NULL. */
const char *cli_period(const char *v);
/* A future date or UTC time, as RFC 3339 into out. */
void cli_expires(const char *v, char out[32]);
/* A seat option (seat-model, seat-ttl, max-borrow-days, overdraft) in the
 * ranges of sql/023, or NULL when not given. */
const char *cli_seat_opt(const struct cli_opts *o, const char *name);
/* "a,b" -> JSON array (features; domains when domains is set); "k=v,..."
 * -> JSON object of integers. The caller frees. */
char *cli_list_json(const char *csv, int domains);
char *cli_limits_json(const char *csv);
/* A license id positional (LICENSE_ID) or cli_bad. */
const char *cli_license_id(const char *v);
/* The whole file, NUL-terminated; the caller frees. */
char *cli_slurp(const char *path);

/* Output. cli_jstr: the member's string form, or NULL. cli_rows: each row
 * of r, column 0 alone with as_json (a JSON document per line), else the
 * columns from 1 through fmt. */
const char *cli_jstr(struct json_object *o, const char *key);
void cli_rows(const PGresult *r, int as_json, const char *fmt);

/* The commands, one file per concern; main.c's table names them. */
cli_fn migrate_run;
cli_fn conf_check, conf_keys;
/* -c CONFIG as given, else NULL ($LICD_CONFIG, the default): for config
 * check, which loads the file itself. */
extern const char *cli_conf_file;
cli_fn keys_generate, keys_add, keys_activate, keys_retire, keys_rotate,
    keys_list, keys_jwks, keys_token_create;
cli_fn catalog_plan_set, catalog_plan_list, catalog_customer_create,
    catalog_customer_list;
cli_fn licenses_issue, licenses_update, licenses_show, licenses_list,
    licenses_action;
cli_fn ops_usage, ops_audit, ops_notifications_list,
    ops_notifications_retry, ops_webhook_pending, ops_webhook_replay,
    ops_lease_offline;

/* Signs license id's key with the current key and stores it; the key
 * into *key (the caller frees). Within the caller's transaction. */
void licenses_sign(const char *id, char **key);

#endif
