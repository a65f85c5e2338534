/*
 * What licctl's command files share: the command table's shape, option
 * parsing, the database connection and its errors, value checks and
 * output helpers.
 *
 * Errors: every function that can fail returns 0 (or a result) and, on
 * failure, -1 (or NULL) with a cli_err filled: the message for stderr and
 * the exit status, 2 for a command line or value licd cannot take (named
 * by its option, nothing written), 1 for anything else. Every state change
 * runs in one transaction together with its audit_log row (actor
 * "licctl"); a transaction a failure leaves open is rolled back as the
 * connection closes.
 */
#ifndef LICCTL_CLI_H
#define LICCTL_CLI_H

#include <stdio.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#define CLI_MAX_OPTS 16
#define CLI_MAX_POS 4

/* What stopped a command: its message (one line, or the usage) and the
 * exit status. */
struct cli_err {
	int status;
	char msg[8192];
};

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
typedef int cli_fn(const struct cli_cmd *, const struct cli_opts *,
    struct cli_err *);

/* One row of the command table (main.c): the only place that names a
 * command, its options and its help. */
struct cli_cmd {
	const char *group;
	const char *verb;		/* NULL: the group is one command */
	cli_fn *fn;			/* 0, or -1 and the error */
	const char *const *options;	/* "name" takes a value, "name!" not */
	const char *args;		/* the synopsis after group and verb */
	const char *summary;		/* its line in licctl --help */
	const char *help;		/* what GROUP VERB --help adds */
	int flags;			/* CLI_DEFAULT, CLI_WRITES */
};

/* The command runs when its group is given without a verb. */
#define CLI_DEFAULT 1
/* The command may change the database: the license caches' barrier runs
 * after it (cli_finish), so that validate and heartbeat answer the change
 * from the very next call. Commands that only read skip the wait. */
#define CLI_WRITES 2

/* Fills o from argv by the command's options. */
int cli_parse(const struct cli_cmd *c, int argc, char **argv,
    struct cli_opts *o, struct cli_err *e);
/* The value of option name (without "--"), "1" for a switch given, or
 * NULL. */
const char *cli_opt(const struct cli_opts *o, const char *name);
/* "usage: licctl GROUP VERB ARGS" (lead "usage:" or the indent of the
 * lines after it). */
void cli_usage_line(FILE *f, const struct cli_cmd *c, int first);

/* Fill e and return -1: "licctl: " and the message with the status
 * (cli_fail); the option, the value and what it accepts, status 2
 * (cli_bad); the command's usage line, status 2 (cli_usage). */
int cli_fail(struct cli_err *e, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int cli_bad(struct cli_err *e, const char *option, const char *got,
    const char *accepts);
int cli_usage(struct cli_err *e, const struct cli_cmd *c);
/* Closes the database connection, after the license caches' barrier when
 * sync is set (a command with CLI_WRITES; a failed one too, as it may
 * have committed part of its work). */
void cli_finish(int sync);

/* The database. cli_q runs one parameterised statement (connecting first
 * if need be) and returns its result for the caller to PQclear, or NULL
 * with e filled; a value the schema refused is told as the option it
 * came from (status 2), never as PostgreSQL's text. */
PGconn *cli_conn(struct cli_err *e);
PGresult *cli_q(struct cli_err *e, const char *sql, int n,
    const char *const *params);
int cli_exec(struct cli_err *e, const char *sql);
int cli_audit(struct cli_err *e, const char *action, const char *type,
    const char *id, const char *reason, const char *details);

/* Value checks, the schema's in C, so that a bad value is named before any
 * statement runs (sql/functions/10_checks.sql). Each returns 0 or -1 with e
 * filled. */
#define CLI_SLUG_ACCEPTS "1-64 of a-z 0-9 _ . - starting with a letter or digit"
#define CLI_DOMAIN_ACCEPTS "host names or *.suffix patterns of a-z 0-9 - " \
	"(labels of 1-63, at most 253 characters), comma-separated"
#define CLI_EMAIL_ACCEPTS "an e-mail address (name@domain, at most 254 " \
	"characters)"
int cli_slug_ok(const char *s);
/* A key id as licctl keys makes them: 1 to JWS_KID_MAX - 1 of
 * [A-Za-z0-9_-]. */
int cli_kid_ok(const char *s);
int cli_email_ok(const char *s);
/* A whole number in [lo, hi] into *n (n may be NULL). */
int cli_int(struct cli_err *e, const char *option, const char *v,
    long long lo, long long hi, const char *accepts, long long *n);
/* v NULL or one of allowed (NULL-terminated). */
int cli_one_of(struct cli_err *e, const char *option, const char *v,
    const char *const *allowed, const char *accepts);
/* v NULL or a month YYYY-MM from 2000. */
int cli_period(struct cli_err *e, const char *v);
/* A future date or UTC time, as RFC 3339 into out. */
int cli_expires(struct cli_err *e, const char *v, char out[32]);
/* The seat options given (seat-model, seat-ttl, max-borrow-days,
 * overdraft, in that order; NULL where not given) in the ranges of
 * sql/023. */
#define CLI_SEAT_OPTS "seat-model", "seat-ttl", "max-borrow-days", "overdraft"
int cli_seat_opts(struct cli_err *e, const struct cli_opts *o,
    const char *seat[4]);
/* "a,b" -> JSON array (features; domains when domains is set); "k=v,..."
 * -> JSON object of integers; into *out for the caller to free. */
int cli_list_json(struct cli_err *e, const char *csv, int domains,
    char **out);
int cli_limits_json(struct cli_err *e, const char *csv, char **out);
/* --features and --limits as JSON into *features and *limits (NULL where
 * not given; the caller frees). */
int cli_features_limits(struct cli_err *e, const struct cli_opts *o,
    char **features, char **limits);
/* A license id positional (LICENSE_ID). */
int cli_license_id(struct cli_err *e, const char *v);
/* The whole file, NUL-terminated, into *out for the caller to free. */
int cli_slurp(struct cli_err *e, const char *path, char **out);

/* Output. cli_jstr: the member's string form, or NULL. cli_rows: each row
 * of r, column 0 alone with as_json (a JSON document per line), else the
 * columns from 1 through fmt. */
const char *cli_jstr(struct json_object *o, const char *key);
void cli_rows(const PGresult *r, int as_json, const char *fmt);
/* A listing: the statement's rows through cli_rows, as JSON with --json. */
int cli_list(struct cli_err *e, const struct cli_opts *o, const char *sql,
    int n, const char *const *p, const char *fmt);

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
cli_fn licenses_issue, licenses_reissue, licenses_update, licenses_show,
    licenses_list, licenses_action;
cli_fn ops_usage, ops_audit, ops_notifications_list,
    ops_notifications_retry, ops_webhook_pending, ops_webhook_replay,
    ops_lease_offline;

/* Signs license id's key with the current key and stores it; the key
 * into *key (the caller frees). Within the caller's transaction. */
int licenses_sign(struct cli_err *e, const char *id, char **key);

#endif
