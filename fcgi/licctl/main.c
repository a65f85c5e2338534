/*
 * licctl: the operator's CLI. Schema migrations, signing keys and the
 * published JWKS, plans, customers, licenses and day-to-day operations.
 *
 * Every command is one row of the table below: its group and verb, the
 * function that runs it (one file per concern), the options it takes, its
 * help and its flags (CLI_WRITES: the license caches' barrier runs after
 * it, cli.h). Dispatch, --help at every level and the messages for a
 * command line licctl cannot run all come from this table:
 *   licctl --help               every command, one line each
 *   licctl GROUP --help         the group's usage lines
 *   licctl GROUP VERB --help    the command's usage and help
 * --help needs neither the configuration nor the database. A command line
 * licctl cannot run (no command, an unknown group or verb) exits 2; a
 * command that fails says why in one line and exits with the status its
 * error carries (cli.h).
 */
#include "cli.h"
#include "config.h"

#include <string.h>

#define OPTS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define ALG OPTS("alg")
#define SEAT_OPTS "seat-model", "seat-ttl", "max-borrow-days", "overdraft"
#define SEAT_ARGS "[--seat-model node|floating] [--seat-ttl SECS]\n" \
	"         [--max-borrow-days N] [--overdraft SEATS]"
#define ACTION(verb, summary) { "license", verb, licenses_action, \
	OPTS("reason"), "LICENSE_ID [--reason TEXT]", summary, \
	"Through the same SQL function as the admin API; the audit log's " \
	"actor is licctl.\n", CLI_WRITES }

static const struct cli_cmd cmds[] = {
	{ "migrate", NULL, migrate_run, OPTS("status!"), "[--status]",
	    "apply database migrations",
	    "Applies every sql_dir/NNN_*.sql not yet recorded in "
	    "schema_migrations,\neach in its own transaction, then the changed "
	    "files of sql_dir/functions\nin one. Refuses to run when an applied "
	    "migration's file has changed.\nSafe to re-run and to run "
	    "concurrently. --status lists each file's state\nand applies "
	    "nothing.\n", CLI_WRITES },

	{ "keys", "generate", keys_generate, ALG, "[--alg ES256|EdDSA]",
	    "the first signing key (nothing if one is current)",
	    "Creates the first signing key and makes it current; nothing if "
	    "one is current.\nWrites jwks_file. Private keys are 0640, group "
	    "keys_group (default: keys_dir's\ngroup).\n", 0 },
	{ "keys", "add", keys_add, ALG, "[--alg ES256|EdDSA]",
	    "a new key, published in the JWKS, not yet signing",
	    "Rotation without downtime, step one: a new key, published in the "
	    "JWKS, not\nyet signing; running programs load it when they first "
	    "see its kid or on\nSIGHUP. Step two: licctl keys activate KID.\n",
	    0 },
	{ "keys", "activate", keys_activate, NULL, "KID",
	    "KID signs from now on",
	    "KID signs from now on (licctl at once; the programs after SIGHUP:"
	    "\nsystemctl reload 'licd@*'). Keys signed before keep verifying "
	    "while the old\nkey stays.\n", 0 },
	{ "keys", "retire", keys_retire, OPTS("force!"), "KID [--force]",
	    "remove a key that no longer signs",
	    "Removes a key that no longer signs; what it signed stops "
	    "verifying; SIGHUP after.\nThe current key is refused, and so is a "
	    "key that signed licenses not revoked\n(licctl license reissue --kid "
	    "KID first) unless --force (a compromised key:\nretired at once, "
	    "without asking the database).\n", 0 },
	{ "keys", "rotate", keys_rotate, ALG, "[--alg ES256|EdDSA]",
	    "add and activate at once",
	    "A new key that signs at once (add and activate in one step); "
	    "SIGHUP after.\n", 0 },
	{ "keys", "list", keys_list, NULL, "",
	    "the keys in keys_dir and which one signs",
	    "Every key in keys_dir: kid, algorithm, current (signs) or verify "
	    "only.\n", 0 },
	{ "keys", "jwks", keys_jwks, NULL, "",
	    "rewrite jwks_file from keys_dir",
	    "Rewrites jwks_file (the published JWKS) from keys_dir, the "
	    "current key first.\n", 0 },

	{ "token", "create", keys_token_create, NULL, "NAME",
	    "an admin API token",
	    "Creates an admin API token. The token is printed once; only its "
	    "SHA-256\ngoes into the configuration (admin_tokens = NAME:HASH, "
	    "comma-separated\nfor several). NAME appears in the audit log as "
	    "the actor.\n", 0 },

	{ "plan", "set", catalog_plan_set,
	    OPTS("name", "features", "limits", "price-cents", "currency",
	    "interval", "stripe-price", "paddle-price", "addon!", "inactive!",
	    "json!", SEAT_OPTS),
	    "CODE --name NAME [--features a,b] [--limits k=v,...]\n"
	    "         [--price-cents N --currency usd --interval "
	    "month|year|once]\n"
	    "         [--stripe-price price_...] [--paddle-price pri_...] "
	    "[--addon] [--inactive]\n         " SEAT_ARGS " [--json]",
	    "create or update a plan",
	    "Creates or updates a plan (only the options given change an "
	    "existing one);\nlicenses issued later copy its features, limits "
	    "and seat model. Limit names\nending in _per_month meter usage; "
	    "'installations' caps seats. A floating seat\nis held while its "
	    "lease (--seat-ttl, default 900) runs; --max-borrow-days\n(default "
	    "0) allows borrowing, --overdraft (default 0) seats beyond the "
	    "limit.\n", CLI_WRITES },
	{ "plan", "list", catalog_plan_list, OPTS("json!"), "[--json]",
	    "the plans",
	    "Every plan: code, name, features, limits and seat model.\n", 0 },

	{ "customer", "create", catalog_customer_create,
	    OPTS("email", "name", "json!"),
	    "--email EMAIL [--name NAME] [--json]",
	    "a customer (idempotent per e-mail address)",
	    "Creates a customer, idempotent per e-mail address "
	    "(case-insensitive), and\nprints the id.\n", CLI_WRITES },
	{ "customer", "list", catalog_customer_list, OPTS("json!"),
	    "[--json]", "the customers",
	    "Every customer, oldest first: id, e-mail address, name.\n", 0 },

	{ "license", "issue", licenses_issue,
	    OPTS("customer", "plan", "features", "limits", "domains",
	    "expires", "days", "perpetual!", "json!", "count", "keys-out",
	    SEAT_OPTS),
	    "--customer ID|EMAIL --plan CODE\n"
	    "         (--expires 2027-01-31[T00:00:00Z] | --days N | "
	    "--perpetual)\n         [--features a,b] [--limits k=v,...]\n"
	    "         [--domains 'example.com,*.example.com'] [--json]\n"
	    "         [--count N [--keys-out FILE]]\n         " SEAT_ARGS,
	    "a license, signed with the current key",
	    "Copies the plan's features and limits (--features replaces them,"
	    "\n--limits overrides single limits) and seat model (the seat "
	    "options override\nit), signs the key with the current key and "
	    "prints it. --count N issues N\nlicenses at once, keys one per "
	    "line (to --keys-out FILE, 0600).\n", CLI_WRITES },
	{ "license", "reissue", licenses_reissue,
	    OPTS("json!", "kid", "keys-out"),
	    "LICENSE_ID [--json] | --kid KID [--keys-out FILE]",
	    "the license's key signed again, current key",
	    "Signs the license's key again with the current key, stores it and "
	    "prints it.\nBefore retiring a key, reissue what it signed and send "
	    "the new keys to\ntheir customers: an old key verifies until its kid "
	    "is retired.\n--kid KID: every license not revoked whose key KID "
	    "signed, a thousand per\ntransaction; one line per license, "
	    "\"id<TAB>e-mail<TAB>key\", to FILE (0600) or\nstdout. Run it again "
	    "to go on after a failure.\n", CLI_WRITES },
	{ "license", "update", licenses_update, OPTS(SEAT_OPTS, "json!"),
	    "LICENSE_ID " SEAT_ARGS " [--json]",
	    "change a license's seat model",
	    "Changes the seat model of one license; options left out stay.\n",
	    CLI_WRITES },
	{ "license", "show", licenses_show, OPTS("json!"),
	    "LICENSE_ID [--json]", "one license with its seats",
	    "One license with the status validate would answer now, its seats "
	    "(live,\nborrowed, lapsed) and its key.\n", 0 },
	{ "license", "list", licenses_list, OPTS("customer", "status", "json!"),
	    "[--customer ID|EMAIL] [--status S] [--json]", "licenses",
	    "Licenses, oldest first, with the status validate would answer now"
	    "\n(active, expired, suspended, revoked; ',grace' in a payment "
	    "grace).\n", 0 },
	ACTION("revoke", "revoke a license at once"),
	ACTION("suspend", "suspend a license"),
	ACTION("reinstate", "reinstate a suspended license"),
	ACTION("reset-activations", "free a license's installations"),

	{ "usage", NULL, ops_usage, OPTS("period", "json!"),
	    "LICENSE_ID [--period YYYY-MM] [--json]",
	    "usage report of a license and month",
	    "Usage counters of one license for a month (default: this month),"
	    "\nwith the limit and what the usage log sums to, and for a "
	    "floating license\nthe peak of concurrent seats of each UTC day.\n",
	    0 },
	{ "audit", NULL, ops_audit, OPTS("license", "limit", "json!"),
	    "[--license ID] [--limit N] [--json]", "the audit log",
	    "Audit log, newest first: who did what to which license, when and "
	    "why.\n", 0 },
	{ "lease", "offline", ops_lease_offline,
	    OPTS("license", "installation", "days", "request", "json!"),
	    "[--license ID] (--installation IID | --request FILE)\n"
	    "         --days N [--json]",
	    "a lease for an air-gapped machine",
	    "Activates the installation (its seat counts like an online one) "
	    "and prints\na lease valid for N days (capped at the license's "
	    "end), for an air-gapped\nmachine. --request takes the JSON the "
	    "machine printed:\n  {\"installation_id\": \"...\", \"metadata\": "
	    "{...}, \"nonce\": \"...\"}\nand, from licd-check request-file, "
	    "\"license_id\" (then --license may be left out).\n", CLI_WRITES },
	{ "notifications", "list", ops_notifications_list,
	    OPTS("status", "license", "limit", "json!"),
	    "[--status pending|delivered] [--license ID] [--limit N] [--json]",
	    "the delivery outbox (the default)",
	    "Lists the outbox (newest first) with attempts and the last error."
	    "\n", CLI_DEFAULT },
	{ "notifications", "retry", ops_notifications_retry, OPTS("all!"),
	    "(ID | --all)", "make pending notifications due now",
	    "Makes pending notifications due now (the next licd-lifecycle run "
	    "sends them).\n", CLI_WRITES },
	{ "webhook", "pending", ops_webhook_pending, OPTS("json!"), "[--json]",
	    "provider events not applied",
	    "Lists provider events recorded but not applied: their "
	    "subscription,\ncustomer or plan is not known yet (the reason says "
	    "which), oldest first.\n", 0 },
	{ "webhook", "replay", ops_webhook_replay, NULL,
	    "stripe|paddle EVENT_ID", "apply a pending event again",
	    "Applies one pending event again now, e.g. after `licctl plan set` "
	    "gave its\nprice a plan; a license it issues gets its key signed.\n",
	    CLI_WRITES },

	{ "config", "check", conf_check, NULL, "[FILE]",
	    "check the configuration, print it with secrets masked",
	    "Checks FILE (default: the file licctl loads) with the "
	    "environment's LICD_<KEY>\noverrides: each problem as "
	    "file:line: message, exit 2; else every key's\neffective value "
	    "and where it comes from (file:line, LICD_<KEY>, default),\n"
	    "secrets and passwords masked, exit 0.\n", 0 },
	{ "config", "keys", conf_keys, OPTS("markdown!"), "[--markdown]",
	    "every configuration key: type, default, range",
	    "Every key of the configuration, tab-separated: name, type, "
	    "default, range,\nsecret. --markdown: the table of README.md.\n",
	    0 },
};

#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

static int is_help(const char *a)
{
	return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

static void usage(FILE *f)
{
	char name[64];
	size_t i;

	fprintf(f, "usage: licctl [-c CONFIG] COMMAND ...\ncommands:\n");
	for (i = 0; i < NCMDS; i++) {
		snprintf(name, sizeof(name), "%s%s%s", cmds[i].group,
		    cmds[i].verb ? " " : "", cmds[i].verb ? cmds[i].verb : "");
		fprintf(f, "  %-26s %s\n", name, cmds[i].summary);
	}
	fprintf(f, "Every command takes --help. Config: -c, else $LICD_CONFIG, "
	    "else %s.\n", CFG_DEFAULT_PATH);
}

static void group_help(FILE *f, const char *group)
{
	size_t i;
	int first = 1;

	for (i = 0; i < NCMDS; i++)
		if (strcmp(cmds[i].group, group) == 0) {
			cli_usage_line(f, &cmds[i], first);
			first = 0;
		}
	fprintf(f, "See licctl %s VERB --help for each.\n", group);
}

/*
 * The command argv names: the group's one command, or its verb (the
 * default verb when none is given). NULL when there is none, the message
 * said and *rc the exit status.
 */
static const struct cli_cmd *lookup(int argc, char **argv, int *used,
    int *rc)
{
	const char *verb = argc > 1 ? argv[1] : NULL;
	const struct cli_cmd *dflt = NULL;
	size_t i;
	int known = 0;

	for (i = 0; i < NCMDS; i++) {
		if (strcmp(cmds[i].group, argv[0]) != 0)
			continue;
		known = 1;
		if (cmds[i].verb == NULL) {
			*used = 1;
			return &cmds[i];
		}
		if (verb != NULL && strcmp(cmds[i].verb, verb) == 0) {
			*used = 2;
			return &cmds[i];
		}
		if (cmds[i].flags & CLI_DEFAULT)
			dflt = &cmds[i];
	}
	*rc = 2;
	if (!known) {
		fprintf(stderr, "licctl: unknown command '%s' (see licctl "
		    "--help)\n", argv[0]);
	} else if (verb != NULL && is_help(verb)) {
		group_help(stdout, argv[0]);
		*rc = 0;
	} else if (dflt != NULL && (verb == NULL || verb[0] == '-')) {
		*used = 1;
		return dflt;
	} else if (verb == NULL || verb[0] == '-') {
		group_help(stderr, argv[0]);
	} else {
		fprintf(stderr, "licctl: unknown %s command '%s' (see licctl %s "
		    "--help)\n", argv[0], verb, argv[0]);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const struct cli_cmd *c;
	const char *conf = NULL;
	struct cli_err e = { 0, "" };
	struct cli_opts o;
	char err[4096];
	int i = 1, used = 0, rc = 0;

	if (argc > 2 && strcmp(argv[1], "-c") == 0) {
		conf = argv[2];
		i = 3;
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	if (is_help(argv[i]) || strcmp(argv[i], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if ((c = lookup(argc - i, argv + i, &used, &rc)) == NULL)
		return rc;
	i += used;
	/* --help anywhere: no configuration or database needed. */
	for (rc = i; rc < argc; rc++)
		if (is_help(argv[rc])) {
			cli_usage_line(stdout, c, 1);
			fputs(c->help, stdout);
			return 0;
		}
	/* config check loads the file it checks itself */
	cli_conf_file = conf;
	if (strcmp(c->group, "config") != 0 &&
	    cfg_load(conf, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\nlicctl: the configuration is not valid "
		    "(licctl config check)\n", err);
		return 2;
	}
	rc = 0;
	if (cli_parse(c, argc - i, argv + i, &o, &e) != 0 ||
	    c->fn(c, &o, &e) != 0) {
		fprintf(stderr, "%s\n", e.msg);
		rc = e.status != 0 ? e.status : 1;
	}
	cli_finish(c->flags & CLI_WRITES);
	return rc;
}
