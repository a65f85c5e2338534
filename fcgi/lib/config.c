/* config: see config.h. Every value is parsed once by cfg_load; lookups
 * afterwards only find the row and read what was parsed. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cfg_check_fn check_tokens, check_programs, check_listen, check_http,
    check_smtp;

#define STR(n, d, dd, h) \
	{ .name = n, .type = CFG_STR, .def = d, .defdoc = dd, .help = h }
#define URL(n, d, dd, h) { .name = n, .type = CFG_STR, .def = d, \
	.defdoc = dd, .help = h, .check = check_http }
#define SECRET(n, h) \
	{ .name = n, .type = CFG_STR, .flags = CFG_SECRET, .def = "", .help = h }
#define INT(n, d, lo, hi, u, h) { .name = n, .type = CFG_INT, .def = d, \
	.min = lo, .max = hi, .unit = u, .help = h }
#define BOOL(n, d, h) { .name = n, .type = CFG_BOOL, .def = d, .help = h }
#define ENUM(n, d, c, h) \
	{ .name = n, .type = CFG_ENUM, .def = d, .choices = c, .help = h }
#define INTLIST(n, d, lo, hi, u, h) { .name = n, .type = CFG_INTLIST, \
	.def = d, .min = lo, .max = hi, .unit = u, .help = h }

/* The per-program keys: one row per program that reads the key. */
#define P_THREADS(p, inh, dd) { .name = p "_threads", .type = CFG_INT, \
	.def = "", .inherit = inh, .defdoc = dd, .min = 1, .max = 64, \
	.pattern = "<program>_threads", .help = "worker threads of one " \
	"program (one PostgreSQL connection each); unset: `threads`, but " \
	"validate, heartbeat and usage hold no thread while the database " \
	"works for them and take one per CPU plus one" }
#define P_LISTEN(p) { .name = p "_listen", .type = CFG_STR, .def = "", \
	.check = check_listen, \
	.pattern = "<program>_listen", .help = "`ADDRESS:PORT` (IPv6 as " \
	"`[addr]:port`): the program accepts FastCGI on this TCP address as " \
	"well as on its socket, for an nginx on another host, e.g. " \
	"`validate_listen = 10.0.0.11:9001` (docs/OPERATIONS.md, Scale-out)" }
#define P_LOCK(p, d) { .name = p "_lock_timeout_ms", .type = CFG_INT, \
	.def = d, .inherit = "lock_timeout_ms", .min = 0, .max = 3600000, \
	.unit = "ms", .pattern = "<program>_lock_timeout_ms", .help = \
	"`lock_timeout_ms` for one program; unset: `lock_timeout_ms` if set, " \
	"else this default (the admin API, checkout and webhooks wait longer: " \
	"their rows are contended by design)" }
#define P_REQUESTS(p, d) { .name = p "_requests", .type = CFG_INT, \
	.def = d, .min = 2, .max = 1024, .pattern = "<program>_requests", \
	.help = "requests each process holds at once (more wait in the " \
	"socket's backlog); each holds its body (up to 16 KiB), its " \
	"parsed JSON and its answer until answered; validate holds more: " \
	"its activations wait for their batch's commit, and a batch holds " \
	"at most the requests in flight" }
#define P_RESUME(p) { .name = p "_resume_threads", .type = CFG_INT, \
	.def = "4", .min = 1, .max = 64, .pattern = "<program>_resume_threads", \
	.help = "threads (one PostgreSQL connection each) that finish the " \
	"requests which must write (an activation, a newly recorded domain) " \
	"or wait for a license held elsewhere (usage)" }

static const struct cfg_key keys[] = {
	STR("database_url", "dbname=licd", NULL, "libpq conninfo string or "
	    "`postgresql://` URI; with a standby, every host and "
	    "`target_session_attrs=read-write` (`host=db1,db2 … "
	    "target_session_attrs=read-write`): each reconnect finds the "
	    "primary. Its password is masked by `licctl config check`"),
	STR("keys_dir", "/etc/licd/keys", NULL, "signing keys: `<kid>.key` "
	    "(0640), `<kid>.pub`, `current`; reloaded on SIGHUP and when a key "
	    "names a new kid"),
	STR("keys_group", "", "group of `keys_dir`", "group that owns the key "
	    "files licctl writes (0640), so the service user reads them"),
	STR("jwks_file", "", NULL, "where `licctl keys` writes the JWKS nginx "
	    "serves"),
	ENUM("key_alg", "ES256", "ES256|EdDSA", "algorithm of new keys"),
	STR("issuer", "licd", NULL, "`iss` of keys and leases; keys with "
	    "another `iss` are refused"),
	INT("lease_ttl", "604800", 60, 315360000, "seconds", "lease lifetime "
	    "(7 days), capped at license end"),
	INT("lease_reuse", "600", 0, 86400, "seconds", "a lease may be handed "
	    "out again to the same installation this long (0: always sign)"),
	INT("heartbeat_interval", "3600", 1, 604800, "seconds",
	    "`next_heartbeat_in` told to clients"),
	INT("touch_interval", "60", 0, 86400, "seconds", "`last_seen` is "
	    "written at most this often per installation (0: every call)"),
	INT("touch_flush_ms", "100", 1, 60000, "ms", "each validate/heartbeat "
	    "process writes the due `last_seen` refreshes this often, in one "
	    "transaction"),
	BOOL("license_cache", "on", "validate and heartbeat answer a known, "
	    "active installation (node-locked, or holding a floating seat far "
	    "from its renewal) from memory, kept current by LISTEN/NOTIFY and a barrier every writer waits on "
	    "(docs/DESIGN.md, \"The license cache\"); `off`: every call reads "
	    "the database"),
	INT("license_cache_entries", "32768", 0, 10000000, NULL, "installations "
	    "each validate/heartbeat process keeps in memory (a few hundred "
	    "bytes each, taken as they call; raise it where more installations "
	    "call often); 0: none, as `license_cache = off`"),
	BOOL("console_counts", "on", "validate counts its answers per day and "
	    "code for the console's overview (`off`: not counted, the overview "
	    "shows none)"),
	INT("threads", "4", 1, 64, NULL, "worker threads per process (one "
	    "PostgreSQL connection each) of usage, revoke, checkout and "
	    "webhook; the example config uses 8"),
	P_THREADS("validate", NULL, "one per CPU plus one"),
	P_THREADS("heartbeat", NULL, "one per CPU plus one"),
	P_THREADS("usage", NULL, "one per CPU plus one"),
	P_THREADS("revoke", "threads", NULL),
	P_THREADS("checkout", "threads", NULL),
	P_THREADS("webhook", "threads", NULL),
	P_REQUESTS("validate", "64"),
	P_REQUESTS("heartbeat", "32"),
	P_REQUESTS("usage", "32"),
	P_RESUME("validate"),
	P_RESUME("heartbeat"),
	P_RESUME("usage"),
	INT("processes", "1", 1, 32, NULL, ">1: a master keeps this many "
	    "worker processes alive"),
	P_LISTEN("validate"),
	P_LISTEN("heartbeat"),
	P_LISTEN("usage"),
	P_LISTEN("revoke"),
	P_LISTEN("checkout"),
	P_LISTEN("webhook"),
	STR("log_file", "", "stderr", "one line per request, with the request "
	    "id; reopened on `SIGHUP`/`SIGUSR1` (logrotate); `-`: stderr"),
	INT("log_flush_ms", "1000", 0, 60000, "ms", "the FastCGI programs "
	    "buffer request lines this long at most (0: write each at once); "
	    "warnings and errors are never held"),
	INT("lock_timeout_ms", "250", 0, 3600000, "ms", "a statement waiting "
	    "this long on a row lock held elsewhere (an open psql transaction) "
	    "is answered 503 with `Retry-After` (0: wait forever)"),
	P_LOCK("validate", ""),
	P_LOCK("heartbeat", ""),
	P_LOCK("usage", ""),
	P_LOCK("revoke", "10000"),
	P_LOCK("checkout", "10000"),
	P_LOCK("webhook", "10000"),
	INT("statement_timeout_ms", "10000", 0, 86400000, "ms", "a statement "
	    "running this long is cancelled and answered 503 (0: none); well "
	    "under nginx's `fastcgi_read_timeout` (30 s)"),
	STR("socket_dir", "", "the directory of the program's own socket, "
	    "else `/run/licd`", "where `/healthz` finds the other programs' "
	    "FastCGI sockets (`<program>.sock`)"),
	{ .name = "health_programs", .type = CFG_STR, .def = "validate,"
	    "heartbeat,usage,revoke,checkout,webhook", .help = "the programs "
	    "`/healthz` answers for, comma-separated", .check = check_programs },
	STR("sql_dir", "/usr/share/licd/sql", NULL, "migrations and "
	    "`functions/` for `licctl migrate`"),
	{ .name = "admin_tokens", .type = CFG_STR, .flags = CFG_SECRET,
	    .def = "", .help = "`name:sha256hex,…` from `licctl token create "
	    "NAME`", .check = check_tokens },
	INT("admin_session_ttl", "28800", 300, 604800, "seconds", "a console "
	    "sign-in lasts this long"),
	SECRET("stripe_secret_key", "Stripe secret key (checkout)"),
	URL("stripe_api_base", "https://api.stripe.com", NULL, "Stripe API "
	    "base URL (tests: the local double)"),
	STR("stripe_ca_file", "", "system CAs", "CA bundle for the Stripe API "
	    "(tests only)"),
	INT("stripe_timeout_ms", "10000", 100, 600000, "ms", "a Stripe call "
	    "takes at most this long"),
	INT("stripe_connect_timeout_ms", "3000", 100, 600000, "ms",
	    "connecting to Stripe takes at most this long"),
	SECRET("stripe_webhook_secrets", "`whsec_…`, comma-separated during "
	    "rotation"),
	SECRET("paddle_webhook_secrets", "Paddle notification secrets, "
	    "comma-separated during rotation"),
	INT("webhook_tolerance", "300", 1, 86400, "seconds", "signature "
	    "timestamp tolerance"),
	INT("grace_days", "7", 0, 365, "days", "grace after a failed payment"),
	STR("checkout_allowed_origins", "", NULL, "origins allowed in "
	    "success/cancel URLs, comma-separated"),
	URL("checkout_success_url", "", NULL, "success URL when a checkout "
	    "request names none"),
	URL("checkout_cancel_url", "", NULL, "cancel URL when a checkout "
	    "request names none"),
	INTLIST("expiry_warning_days", "30,7,1", 0, 3650, "days", "lifecycle: "
	    "expiry warnings this many days before a license ends"),
	INTLIST("usage_warning_percents", "80,100", 1, 1000, "percent",
	    "lifecycle: usage warnings at these shares of a limit"),
	INT("stale_installation_secs", "1209600", 60, 315360000, "seconds",
	    "lifecycle: free a node-locked seat silent this long (14 days); "
	    "floating seats end with their seat lease"),
	INT("retention_days", "400", 1, 36500, "days", "lifecycle: keep usage "
	    "log, webhook events, delivered notifications this long"),
	INT("retention_batch", "5000", 1, 1000000, "rows", "lifecycle: rows "
	    "deleted per statement by the retention task"),
	{ .name = "smtp_url", .type = CFG_STR, .def = "", .help = "lifecycle: "
	    "e-mail delivery (`smtp://host:25`, `smtps://…`); unset: no e-mail",
	    .check = check_smtp },
	STR("smtp_from", "licd@localhost", NULL, "lifecycle: sender of the "
	    "e-mails"),
	STR("smtp_user", "", NULL, "lifecycle: SMTP user (then TLS is "
	    "required)"),
	SECRET("smtp_password", "lifecycle: SMTP password"),
	URL("notify_webhook_url", "", NULL, "lifecycle: signed POST of every "
	    "notification to the vendor; unset: none"),
	SECRET("notify_webhook_secret", "lifecycle: HMAC key of the "
	    "`Licd-Signature` header"),
	INT("notify_batch", "50", 1, 10000, NULL, "lifecycle: notifications "
	    "delivered per batch"),
	INT("notify_lock_secs", "300", 10, 86400, "seconds", "lifecycle: a "
	    "batch is claimed this long"),
	INT("notify_connect_timeout_ms", "5000", 100, 600000, "ms", "lifecycle:"
	    " connecting to the SMTP server or the vendor takes at most this "
	    "long"),
	INT("notify_timeout_ms", "20000", 100, 600000, "ms", "lifecycle: one "
	    "delivery takes at most this long"),
	STR("notify_ca_file", "", "system CAs", "lifecycle: CA bundle for the "
	    "deliveries"),
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* What the file or the environment gave, and what every key resolves to. */
struct val {
	char *given;		/* owned; NULL: not set */
	int line;		/* of cfg_file; 0: the environment */
	const char *str;	/* resolved */
	long num;
	int set;		/* resolved from a given value */
	size_t from;		/* the row whose value it is (inherit) */
};

static struct val vals[NKEYS];
static int resolved;
static char cfg_file[4096];

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static long find(const char *key)
{
	size_t i;

	for (i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].name, key) == 0)
			return (long)i;
	return -1;
}

static size_t row(const char *key)
{
	long i = find(key);

	if (i < 0) {
		fprintf(stderr, "config: no key '%s' in the table\n", key);
		abort();
	}
	return (size_t)i;
}

static int whole(const char *s, long *out)
{
	char *end;

	if (*s == '\0' || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	*out = strtol(s, &end, 10);
	return errno != 0 || *end != '\0' ? -1 : 0;
}

static const char *const bools[][2] = {
	{ "on", "off" }, { "yes", "no" }, { "true", "false" }, { "1", "0" },
};

/* The range of an integer key as the messages and the docs tell it. */
static void range(const struct cfg_key *k, char *out, size_t len)
{
	snprintf(out, len, "%s%s%ld..%ld", k->unit ? k->unit : "",
	    k->unit ? ", " : "", k->min, k->max);
}

/* The forms of strings. */

static int check_tokens(const struct cfg_key *k, const char *val, char *msg,
    size_t len)
{
	const char *s = val, *colon;
	size_t n, i;
	int entry = 0;

	while (*(s += strspn(s, ", \t")) != '\0') {
		n = strcspn(s, ", \t");
		entry++;
		colon = memchr(s, ':', n);
		i = colon ? (size_t)(colon - s) : 0;
		if (i == 0 || i >= 64 || n - i - 1 != 64)
			goto bad;
		for (i++; i < n; i++)
			if (!isxdigit((unsigned char)s[i]))
				goto bad;
		s += n;
	}
	return 0;
bad:
	snprintf(msg, len, "%s: entry %d is not name:sha256hex (licctl token "
	    "create NAME prints the line)", k->name, entry);
	return -1;
}

static const char *const programs[] = { "validate", "heartbeat", "usage",
	"revoke", "checkout", "webhook" };

static int check_programs(const struct cfg_key *k, const char *val,
    char *msg, size_t len)
{
	const char *s = val;
	size_t n, i;

	while (*(s += strspn(s, ", ")) != '\0') {
		n = strcspn(s, ", ");
		for (i = 0; i < sizeof(programs) / sizeof(programs[0]); i++)
			if (strlen(programs[i]) == n &&
			    strncmp(programs[i], s, n) == 0)
				break;
		if (i == sizeof(programs) / sizeof(programs[0])) {
			snprintf(msg, len, "%s: '%.*s' is not a program (validate, "
			    "heartbeat, usage, revoke, checkout, webhook)",
			    k->name, (int)n, s);
			return -1;
		}
		s += n;
	}
	return 0;
}

static int check_listen(const struct cfg_key *k, const char *val, char *msg,
    size_t len)
{
	const char *port = strrchr(val, ':');
	long p;

	if (port == NULL || port == val || whole(port + 1, &p) != 0 || p < 0 ||
	    p > 65535) {
		snprintf(msg, len, "%s: '%s' is not ADDRESS:PORT (IPv6 as "
		    "[addr]:port)", k->name, val);
		return -1;
	}
	return 0;
}

/* URLs may carry a password: the message does not repeat them. */
static int check_scheme(const struct cfg_key *k, const char *val,
    const char *a, const char *b, char *msg, size_t len)
{
	size_t la = strlen(a), lb = strlen(b);

	if ((strncasecmp(val, a, la) == 0 && val[la] != '\0') ||
	    (strncasecmp(val, b, lb) == 0 && val[lb] != '\0'))
		return 0;
	snprintf(msg, len, "%s: not a %s or %s URL", k->name, a, b);
	return -1;
}

static int check_http(const struct cfg_key *k, const char *val, char *msg,
    size_t len)
{
	return check_scheme(k, val, "https://", "http://", msg, len);
}

static int check_smtp(const struct cfg_key *k, const char *val, char *msg,
    size_t len)
{
	return check_scheme(k, val, "smtp://", "smtps://", msg, len);
}

/* Parses val for row k into num; 0, or -1 with a message in msg. */
static int parse(const struct cfg_key *k, const char *val, long *num,
    char *msg, size_t len)
{
	char r[64], buf[4096], *s, *save = NULL;
	size_t i;

	*num = 0;
	switch (k->type) {
	case CFG_STR:
		return k->check ? k->check(k, val, msg, len) : 0;
	case CFG_INT:
		range(k, r, sizeof(r));
		if (whole(val, num) != 0) {
			snprintf(msg, len, "%s: '%s' is not a whole number (%s)",
			    k->name, val, r);
			return -1;
		}
		if (*num < k->min || *num > k->max) {
			snprintf(msg, len, "%s: %s is out of range (%s)",
			    k->name, val, r);
			return -1;
		}
		return 0;
	case CFG_BOOL:
		for (i = 0; i < sizeof(bools) / sizeof(bools[0]); i++)
			if (strcasecmp(val, bools[i][0]) == 0 ||
			    strcasecmp(val, bools[i][1]) == 0) {
				*num = strcasecmp(val, bools[i][0]) == 0;
				return 0;
			}
		snprintf(msg, len, "%s: '%s' is not on or off (also yes/no, "
		    "true/false, 1/0)", k->name, val);
		return -1;
	case CFG_ENUM:
		snprintf(buf, sizeof(buf), "%s", k->choices);
		for (s = strtok_r(buf, "|", &save); s != NULL;
		    s = strtok_r(NULL, "|", &save))
			if (strcmp(s, val) == 0)
				return 0;
		snprintf(buf, sizeof(buf), "%s", k->choices);
		for (s = buf; (s = strchr(s, '|')) != NULL; s++)
			*s = '/';
		snprintf(msg, len, "%s: '%s' is not one of %s", k->name, val,
		    buf);
		return -1;
	case CFG_INTLIST:
		range(k, r, sizeof(r));
		snprintf(buf, sizeof(buf), "%s", val);
		for (s = strtok_r(buf, ",", &save); s != NULL;
		    s = strtok_r(NULL, ",", &save)) {
			s = trim(s);
			if (whole(s, num) != 0 || *num < k->min ||
			    *num > k->max)
				break;
		}
		*num = 0;
		if (s != NULL || val[strlen(val) - 1] == ',' || val[0] == ',' ||
		    strstr(val, ",,") != NULL) {
			snprintf(msg, len, "%s: '%s' is not a comma-separated "
			    "list of whole numbers (%s)", k->name, val, r);
			return -1;
		}
		return 0;
	}
	return -1;
}

/* Levenshtein distance, for "did you mean". */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j, d[64], prev, t;

	if (lb >= sizeof(d) / sizeof(d[0]))
		return 99;
	for (j = 0; j <= lb; j++)
		d[j] = j;
	for (i = 1; i <= la; i++) {
		prev = d[0];
		d[0] = i;
		for (j = 1; j <= lb; j++) {
			t = d[j];
			d[j] = prev + (a[i - 1] != b[j - 1]);
			if (d[j - 1] + 1 < d[j])
				d[j] = d[j - 1] + 1;
			if (t + 1 < d[j])
				d[j] = t + 1;
			prev = t;
		}
	}
	return d[lb];
}

static void unknown(const char *key, char *msg, size_t len)
{
	size_t i, best = 3, d;
	const char *near = NULL;

	for (i = 0; i < NKEYS; i++)
		if ((d = distance(key, keys[i].name)) < best) {
			best = d;
			near = keys[i].name;
		}
	if (near != NULL)
		snprintf(msg, len, "unknown key '%s' (did you mean '%s'?)", key,
		    near);
	else
		snprintf(msg, len, "unknown key '%s'", key);
}

#define MAX_TOLD 20	/* problems told; then how many more */

struct errs {
	char *buf;
	size_t len, used;
	int n;
};

static void tell(struct errs *e, const char *where, const char *msg)
{
	int w;

	if (e->used + 1 >= e->len)
		return;
	w = snprintf(e->buf + e->used, e->len - e->used, "%s%s: %s",
	    e->used > 0 ? "\n" : "", where, msg);
	if (w > 0)
		e->used += (size_t)w;
	if (e->used >= e->len)
		e->used = e->len - 1;
}

static void fail(struct errs *e, const char *where, const char *msg)
{
	if (e->n++ < MAX_TOLD)
		tell(e, where, msg);
}

static int give(size_t i, const char *val, int line)
{
	char *v = strdup(val);

	if (v == NULL)
		return -1;
	free(vals[i].given);
	vals[i].given = v;
	vals[i].line = line;
	return 0;
}

/* Given values first, then the inherited key's, then the defaults. */
static void resolve(void)
{
	size_t i, j;
	long num;
	char msg[8];

	for (i = 0; i < NKEYS; i++) {
		const struct cfg_key *k = &keys[i];
		long inh = k->inherit ? find(k->inherit) : -1;

		j = i;
		if (vals[i].given == NULL && inh >= 0 &&
		    (vals[inh].given != NULL || k->def[0] == '\0'))
			j = (size_t)inh;
		vals[i].from = j;
		vals[i].set = vals[j].given != NULL;
		vals[i].str = vals[j].given ? vals[j].given : keys[j].def;
		vals[i].num = 0;
		if (vals[i].str[0] != '\0' &&
		    parse(k, vals[i].str, &num, msg, sizeof(msg)) == 0)
			vals[i].num = num;
	}
	resolved = 1;
}

static void env_key(const char *key, char *env, size_t len)
{
	size_t i;

	snprintf(env, len, "LICD_%s", key);
	for (i = 5; env[i]; i++)
		env[i] = (char)toupper((unsigned char)env[i]);
}

static void load_file(FILE *f, const char *path, struct errs *e)
{
	char line[4096], where[4200], msg[4400], *s, *eq, *key, *val;
	int lineno = 0, c;
	long i, num;

	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		snprintf(where, sizeof(where), "%s:%d", path, lineno);
		if (strchr(line, '\n') == NULL && !feof(f)) {
			fail(e, where, "line too long");
			while ((c = getc(f)) != EOF && c != '\n')
				;
			continue;
		}
		s = trim(line);
		if (*s == '#' || *s == '\0')
			continue;
		if ((eq = strchr(s, '=')) == NULL) {
			fail(e, where, "expected key = value");
			continue;
		}
		*eq = '\0';
		key = trim(s);
		/* "key = value   # comment": a # after whitespace ends it. */
		for (val = eq + 1; *val; val++)
			if (*val == '#' && val > eq + 1 &&
			    (val[-1] == ' ' || val[-1] == '\t')) {
				*val = '\0';
				break;
			}
		val = trim(eq + 1);
		if (*key == '\0') {
			fail(e, where, "expected key = value");
			continue;
		}
		if ((i = find(key)) < 0) {
			unknown(key, msg, sizeof(msg));
			fail(e, where, msg);
			continue;
		}
		if (*val == '\0') {		/* unset: the default */
			free(vals[i].given);
			vals[i].given = NULL;
			continue;
		}
		if (parse(&keys[i], val, &num, msg, sizeof(msg)) != 0) {
			fail(e, where, msg);
			continue;
		}
		if (give((size_t)i, val, lineno) != 0)
			fail(e, where, "out of memory");
	}
}

/* Only variables named after a key: LICD_ also prefixes the client's and
 * the scripts' own variables. */
static void load_env(struct errs *e)
{
	char env[128], msg[4400];
	const char *v;
	size_t i;
	long num;

	for (i = 0; i < NKEYS; i++) {
		env_key(keys[i].name, env, sizeof(env));
		if ((v = getenv(env)) == NULL || *v == '\0')
			continue;
		if (parse(&keys[i], v, &num, msg, sizeof(msg)) != 0) {
			strcat(env, " (environment)");
			fail(e, env, msg);
			continue;
		}
		if (give(i, v, 0) != 0)
			fail(e, env, "out of memory");
	}
}

/* A value read before any cfg_load (unit tests of other modules): the
 * environment's valid values and the defaults. */
static void lazy(void)
{
	struct errs e = { NULL, 0, 0, 0 };

	if (resolved)
		return;
	load_env(&e);
	resolve();
}

int cfg_load(const char *path, char *err, size_t errlen)
{
	struct errs e = { err, errlen, 0, 0 };
	char msg[4400];
	FILE *f;
	int named = 1;
	size_t i;

	if (errlen > 0)
		err[0] = '\0';
	for (i = 0; i < NKEYS; i++) {
		free(vals[i].given);
		vals[i].given = NULL;
	}
	if (path == NULL)
		path = getenv("LICD_CONFIG");
	if (path == NULL || *path == '\0') {
		path = CFG_DEFAULT_PATH;
		named = 0;
	}
	snprintf(cfg_file, sizeof(cfg_file), "%s", path);
	if ((f = fopen(path, "r")) == NULL) {
		if (named || errno != ENOENT) {
			snprintf(msg, sizeof(msg), "%s", strerror(errno));
			fail(&e, path, msg);
		}
	} else {
		load_file(f, path, &e);
		if (ferror(f))		/* a directory, an I/O error */
			fail(&e, path, strerror(errno));
		fclose(f);
	}
	load_env(&e);
	if (e.n > MAX_TOLD) {
		snprintf(msg, sizeof(msg), "%d more problems", e.n - MAX_TOLD);
		tell(&e, path, msg);
	}
	resolve();
	return e.n > 0 ? -1 : 0;
}

const char *cfg_path(void)
{
	return cfg_file;
}

const char *cfg_str(const char *key)
{
	lazy();
	return vals[row(key)].str;
}

long cfg_int(const char *key)
{
	lazy();
	return vals[row(key)].num;
}

int cfg_bool(const char *key)
{
	return cfg_int(key) != 0;
}

int cfg_set(const char *key)
{
	lazy();
	return vals[row(key)].set;
}

const struct cfg_key *cfg_keys(size_t *n)
{
	*n = NKEYS;
	return keys;
}

/* Copies s[0..n) into out, bounded. */
static void put(char *out, size_t len, size_t *o, const char *s, size_t n)
{
	while (n-- > 0 && *o + 1 < len)
		out[(*o)++] = *s++;
	out[*o] = '\0';
}

#define MASK "********"

/* The password of a conninfo (`password=…`, also a URI's query) and of a
 * URL's user info (`scheme://user:pass@host`). */
void cfg_mask(const struct cfg_key *k, const char *val, char *out,
    size_t len)
{
	const char *s = val, *auth, *end, *at, *colon;
	size_t o = 0;

	if (len == 0)
		return;
	out[0] = '\0';
	if (k->flags & CFG_SECRET) {
		put(out, len, &o, *val ? MASK : "", *val ? strlen(MASK) : 0);
		return;
	}
	while (*s) {
		if (strncmp(s, "://", 3) == 0) {
			auth = s + 3;
			/* libpq ends the user part at '@' or '/' only: a
			 * password may hold '?' or '#' */
			end = auth + strcspn(auth, "/");
			at = NULL;
			for (colon = auth; colon < end; colon++)
				if (*colon == '@')
					at = colon;
			colon = at ? memchr(auth, ':', (size_t)(at - auth)) :
			    NULL;
			if (colon != NULL) {
				put(out, len, &o, s, (size_t)(colon + 1 - s));
				put(out, len, &o, MASK, strlen(MASK));
				s = at;
				continue;
			}
		}
		/* password=, and any keyword ending so (sslpassword=) */
		if (strncasecmp(s, "password", 8) == 0) {
			const char *p = s + 8;

			while (*p == ' ')
				p++;
			if (*p == '=') {
				p++;
				while (*p == ' ')
					p++;
				put(out, len, &o, s, (size_t)(p - s));
				put(out, len, &o, MASK, strlen(MASK));
				if (*p == '\'') {
					for (p++; *p && *p != '\''; p++)
						if (*p == '\\' && p[1])
							p++;
					if (*p)
						p++;
				} else {
					p += strcspn(p, " \t&");
				}
				s = p;
				continue;
			}
		}
		put(out, len, &o, s, 1);
		s++;
	}
}

/* Where row i's given value comes from. */
static void where(size_t i, char *out, size_t len)
{
	if (vals[i].line > 0)
		snprintf(out, len, "%s:%d", cfg_file, vals[i].line);
	else
		env_key(keys[i].name, out, len);
}

void cfg_print(FILE *out)
{
	char shown[4200], from[4400], at[4200];
	size_t i;

	lazy();
	for (i = 0; i < NKEYS; i++) {
		const struct val *v = &vals[i];

		cfg_mask(&keys[i], v->str, shown, sizeof(shown));
		if (!v->set && !*shown && keys[i].defdoc)
			snprintf(from, sizeof(from), "default: %s",
			    keys[i].defdoc);
		else if (!v->set)
			snprintf(from, sizeof(from), "default%s%s%s",
			    v->from != i ? " (" : "",
			    v->from != i ? keys[v->from].name : "",
			    v->from != i ? ")" : "");
		else {
			where(v->from, at, sizeof(at));
			snprintf(from, sizeof(from), "%s%s%s", v->from != i ?
			    keys[v->from].name : "", v->from != i ? " at " : "",
			    at);
		}
		fprintf(out, "%-26s = %s  # %s\n", keys[i].name, shown, from);
	}
}

static void type_md(const struct cfg_key *k, FILE *out)
{
	char r[64];

	switch (k->type) {
	case CFG_STR:
		fputs(k->flags & CFG_SECRET ? "string, secret" : "string", out);
		break;
	case CFG_INT:
		range(k, r, sizeof(r));
		fprintf(out, "integer (%s)", r);
		break;
	case CFG_BOOL:
		fputs("on/off", out);
		break;
	case CFG_ENUM: {
		const char *s;

		for (s = k->choices; *s; s++)
			if (*s == '|')
				fputs(" or ", out);
			else
				fputc(*s, out);
		break;
	}
	case CFG_INTLIST:
		range(k, r, sizeof(r));
		fprintf(out, "list of integers (%s)", r);
		break;
	}
}

static void default_md(const struct cfg_key *k, FILE *out)
{
	if (k->def[0] != '\0')
		fprintf(out, "`%s`", k->def);
	else if (k->defdoc != NULL)
		fputs(k->defdoc, out);
	else if (k->inherit != NULL)
		fprintf(out, "`%s`", k->inherit);
	else
		fputs("—", out);
}

/* The program of a per-program row: its name before the pattern's tail. */
static void program_of(const struct cfg_key *k, char *out, size_t len)
{
	size_t tail = strlen(k->pattern) - strlen("<program>");

	snprintf(out, len, "%.*s", (int)(strlen(k->name) - tail), k->name);
}

static int same_pattern(const struct cfg_key *a, const struct cfg_key *b)
{
	return a->pattern && b->pattern && strcmp(a->pattern, b->pattern) == 0;
}

static int same_default(const struct cfg_key *a, const struct cfg_key *b)
{
	return strcmp(a->def, b->def) == 0 && (a->defdoc == b->defdoc ||
	    (a->defdoc && b->defdoc && strcmp(a->defdoc, b->defdoc) == 0));
}

/* The programs of k's pattern (from row i on), those with k's default
 * only if by_default. */
static void programs_md(size_t i, const struct cfg_key *k, int by_default,
    FILE *out)
{
	char p[32];
	int first = 1;

	for (; i < NKEYS; i++)
		if (same_pattern(&keys[i], k) &&
		    (!by_default || same_default(&keys[i], k))) {
			program_of(&keys[i], p, sizeof(p));
			fprintf(out, "%s%s", first ? "" : ", ", p);
			first = 0;
		}
}

/* One line for the rows of a pattern: the programs that read it when not
 * all do, each distinct default with its programs when they differ. */
static void pattern_md(size_t i, FILE *out)
{
	const struct cfg_key *k = &keys[i];
	size_t j, q, rows = 0, defaults = 0;

	for (j = i; j < NKEYS; j++) {
		if (!same_pattern(&keys[j], k))
			continue;
		rows++;
		for (q = i; q < j; q++)
			if (same_pattern(&keys[q], k) &&
			    same_default(&keys[q], &keys[j]))
				break;
		defaults += q == j;
	}
	fprintf(out, "| `%s`", k->pattern);
	if (rows < 6) {
		fputs(" (", out);
		programs_md(i, k, 0, out);
		fputs(")", out);
	}
	fputs(" | ", out);
	type_md(k, out);
	fputs(" | ", out);
	for (j = i, q = 0; j < NKEYS; j++) {
		size_t r;

		if (!same_pattern(&keys[j], k))
			continue;
		for (r = i; r < j; r++)
			if (same_pattern(&keys[r], k) &&
			    same_default(&keys[r], &keys[j]))
				break;
		if (r < j)
			continue;
		fputs(q++ ? "; " : "", out);
		default_md(&keys[j], out);
		if (defaults > 1) {
			fputs(" for ", out);
			programs_md(j, &keys[j], 1, out);
		}
	}
	fprintf(out, " | %s |\n", k->help);
}

void cfg_markdown(FILE *out)
{
	size_t i, j;

	fputs("| key | type | default | meaning |\n|---|---|---|---|\n", out);
	for (i = 0; i < NKEYS; i++) {
		const struct cfg_key *k = &keys[i];

		if (k->pattern != NULL) {
			for (j = 0; j < i && !same_pattern(&keys[j], k); j++)
				;
			if (j == i)	/* told once, at its first row */
				pattern_md(i, out);
			continue;
		}
		fprintf(out, "| `%s` | ", k->name);
		type_md(k, out);
		fputs(" | ", out);
		default_md(k, out);
		fprintf(out, " | %s |\n", k->help);
	}
}
