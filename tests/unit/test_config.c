/* config: the table's own consistency, file syntax, typed values, strict
 * errors with file:line, environment overrides, inheritance, masking. */
#include "config.h"
#include "conffile.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HASH "0123456789abcdef0123456789abcdef" \
	"0123456789ABCDEF0123456789abcdef"

static char path[UNIT_CONF_PATH], err[4096];

static int load(const char *text)
{
	return unit_load_conf(text, path, err, sizeof(err));
}

/* err is exactly "<path>:<line>: <msg>" (one problem). */
static int said(int line, const char *msg)
{
	char want[4200];

	snprintf(want, sizeof(want), "%s:%d: %s", path, line, msg);
	if (strcmp(err, want) != 0) {
		fprintf(stderr, "got  '%s'\nwant '%s'\n", err, want);
		return 0;
	}
	return 1;
}

static int masked(const char *key, const char *val, const char *want)
{
	const struct cfg_key *k;
	char out[512];
	size_t n, i;

	for (k = cfg_keys(&n), i = 0; i < n && strcmp(k[i].name, key); i++)
		;
	if (i == n)
		return 0;
	cfg_mask(&k[i], val, out, sizeof(out));
	if (strcmp(out, want) != 0) {
		fprintf(stderr, "mask '%s' -> '%s', want '%s'\n", val, out, want);
		return 0;
	}
	return 1;
}

static void table(void)
{
	const struct cfg_key *k;
	size_t n, i, j;
	char env[128];

	k = cfg_keys(&n);
	CHECK(n > 60);
	for (i = 0; i < n; i++) {
		int secretish = strstr(k[i].name, "secret") ||
		    strstr(k[i].name, "password") || strstr(k[i].name, "token");

		for (j = i + 1; j < n; j++)
			if (strcmp(k[i].name, k[j].name) == 0)
				CHECK(!"a key twice");
		CHECK(k[i].help != NULL && k[i].help[0] != '\0');
		CHECK(k[i].def != NULL);
		/* anything named like a secret is masked (admin_tokens hold
		 * hashes, masked all the same) */
		if (secretish)
			CHECK(k[i].flags & CFG_SECRET);
		if (k[i].flags & CFG_SECRET)
			CHECK(k[i].type == CFG_STR && k[i].def[0] == '\0');
		if (k[i].type == CFG_INT || k[i].type == CFG_INTLIST)
			CHECK(k[i].min <= k[i].max);
		if (k[i].type == CFG_ENUM)
			CHECK(k[i].choices != NULL);
		if (k[i].inherit != NULL) {
			for (j = 0; j < n && strcmp(k[j].name, k[i].inherit); j++)
				;
			CHECK(j < n && k[j].type == k[i].type &&
			    k[j].inherit == NULL);
		}
		if (k[i].pattern != NULL)
			CHECK(strncmp(k[i].pattern, "<program>_", 10) == 0 &&
			    strlen(k[i].name) > strlen(k[i].pattern) - 9 &&
			    strcmp(k[i].name + strlen(k[i].name) -
			    (strlen(k[i].pattern) - 9), k[i].pattern + 9) == 0);
		/* every default is itself a valid value */
		if (k[i].def[0] != '\0') {
			snprintf(env, sizeof(env), "%s = %s\n", k[i].name,
			    k[i].def);
			CHECK(load(env) == 0);
		}
	}
	/* the per-program keys of every program */
	CHECK(load("validate_threads = 3\nusage_threads = 2\n"
	    "webhook_lock_timeout_ms = 1\ncheckout_listen = 127.0.0.1:1\n"
	    "heartbeat_requests = 64\nvalidate_resume_threads = 2\n") == 0);
	CHECK(load("usage_requests = 3\n") == 0);
	CHECK(load("revoke_requests = 3\n") != 0);	/* revoke never defers */
	CHECK(load("frobnicate_threads = 3\n") != 0);
}

int main(void)
{
	const char *v;
	FILE *null;

	table();

	/* syntax: comments, inline comments, # inside a value, empty = unset */
	CHECK(load("# comment\n\n  lease_ttl = 3600   # an hour\n"
	    "issuer = x#y\nsmtp_from =    # empty\n"
	    "stripe_api_base = https://h.example/p#frag\n"
	    "stripe_webhook_secrets = whsec_a b\n") == 0);
	CHECK(err[0] == '\0');
	CHECK(cfg_int("lease_ttl") == 3600);
	CHECK(strcmp(cfg_str("issuer"), "x#y") == 0);
	CHECK(strcmp(cfg_str("smtp_from"), "licd@localhost") == 0);
	CHECK(!cfg_set("smtp_from"));
	CHECK(cfg_set("lease_ttl"));
	CHECK(strcmp(cfg_str("stripe_api_base"), "https://h.example/p#frag") == 0);
	CHECK(strcmp(cfg_str("stripe_webhook_secrets"), "whsec_a b") == 0);
	/* defaults from the table, typed */
	CHECK(cfg_int("heartbeat_interval") == 3600);
	CHECK(strcmp(cfg_str("keys_dir"), "/etc/licd/keys") == 0);
	CHECK(strcmp(cfg_str("jwks_file"), "") == 0);	/* no default: "" */
	CHECK(cfg_bool("console_counts") == 1);
	CHECK(strcmp(cfg_str("expiry_warning_days"), "30,7,1") == 0);
	/* a later line wins */
	CHECK(load("threads = 2\nthreads = 3\n") == 0 && cfg_int("threads") == 3);
	/* a reload forgets what the last file said */
	CHECK(load("\n") == 0 && cfg_int("threads") == 4 && !cfg_set("threads"));

	/* strict: one message per problem, file:line first */
	CHECK(load("stripe_webhook_secret = whsec_x\n") != 0);
	CHECK(said(1, "unknown key 'stripe_webhook_secret' (did you mean "
	    "'stripe_webhook_secrets'?)"));
	CHECK(load("# x\nfrobnicate = 1\n") != 0);
	CHECK(said(2, "unknown key 'frobnicate'"));
	CHECK(load("lease_ttl = 7d\n") != 0);
	CHECK(said(1, "lease_ttl: '7d' is not a whole number (seconds, "
	    "60..315360000)"));
	CHECK(load("\n\nthreads = many\n") != 0);
	CHECK(said(3, "threads: 'many' is not a whole number (1..64)"));
	CHECK(load("threads = 0\n") != 0);
	CHECK(said(1, "threads: 0 is out of range (1..64)"));
	CHECK(load("threads = 65\n") != 0);
	CHECK(load("threads = 99999999999999999999999\n") != 0);
	CHECK(load("threads = 4x\n") != 0);
	CHECK(load("threads = -4\n") != 0);
	CHECK(load("lease_ttl = 59\n") != 0);
	CHECK(load("lease_ttl = 60\n") == 0 && cfg_int("lease_ttl") == 60);
	CHECK(load("console_counts = maybe\n") != 0);
	CHECK(said(1, "console_counts: 'maybe' is not on or off (also yes/no, "
	    "true/false, 1/0)"));
	CHECK(load("console_counts = off\n") == 0 && !cfg_bool("console_counts"));
	CHECK(load("console_counts = No\n") == 0 && !cfg_bool("console_counts"));
	CHECK(load("console_counts = TRUE\n") == 0 && cfg_bool("console_counts"));
	CHECK(load("console_counts = 0\n") == 0 && !cfg_bool("console_counts"));
	CHECK(load("key_alg = RS256\n") != 0);
	CHECK(said(1, "key_alg: 'RS256' is not one of ES256/EdDSA"));
	CHECK(load("key_alg = EdDSA\n") == 0 &&
	    strcmp(cfg_str("key_alg"), "EdDSA") == 0);
	CHECK(load("expiry_warning_days = 30,,1\n") != 0);
	CHECK(said(1, "expiry_warning_days: '30,,1' is not a comma-separated "
	    "list of whole numbers (days, 0..3650)"));
	CHECK(load("expiry_warning_days = 30,\n") != 0);
	CHECK(load("expiry_warning_days = ,30\n") != 0);
	CHECK(load("expiry_warning_days = 30,x\n") != 0);
	CHECK(load("expiry_warning_days = 9999\n") != 0);
	CHECK(load("expiry_warning_days = 14, 3\n") == 0 &&
	    strcmp(cfg_str("expiry_warning_days"), "14, 3") == 0);
	/* strings with a form */
	CHECK(load("admin_tokens = ops:" HASH ", ci:" HASH "\n") == 0);
	CHECK(load("admin_tokens = ops:" HASH ",ci\n") != 0);
	CHECK(said(1, "admin_tokens: entry 2 is not name:sha256hex (licctl "
	    "token create NAME prints the line)"));
	CHECK(load("admin_tokens = ops:" HASH "0\n") != 0);
	CHECK(load("admin_tokens = :" HASH "\n") != 0);
	CHECK(load("health_programs = validate, usage\n") == 0);
	CHECK(load("health_programs = validate,valdate\n") != 0);
	CHECK(said(1, "health_programs: 'valdate' is not a program (validate, "
	    "heartbeat, usage, revoke, checkout, webhook)"));
	CHECK(load("validate_listen = 10.0.0.11:9001\n") == 0);
	CHECK(load("validate_listen = [::1]:9001\n") == 0);
	CHECK(load("validate_listen = 127.0.0.1:0\n") == 0);
	CHECK(load("validate_listen = 10.0.0.11\n") != 0);
	CHECK(said(1, "validate_listen: '10.0.0.11' is not ADDRESS:PORT (IPv6 "
	    "as [addr]:port)"));
	CHECK(load("validate_listen = h:70000\n") != 0);
	CHECK(load("smtp_url = smtps://u:pw@mail:465\n") == 0);
	CHECK(load("smtp_url = mail.example.com:25\n") != 0);
	CHECK(said(1, "smtp_url: not a smtp:// or smtps:// URL"));
	CHECK(load("smtp_url = https://u:pw@mail\n") != 0 && !strstr(err, "pw"));
	CHECK(load("notify_webhook_url = HTTPS://v.example/h\n") == 0);
	CHECK(load("checkout_success_url = www.example.com/thanks\n") != 0);
	CHECK(said(1, "checkout_success_url: not a https:// or http:// URL"));
	CHECK(load("stripe_api_base = http://\n") != 0);
	CHECK(load("no equals sign\n") != 0);
	CHECK(said(1, "expected key = value"));
	CHECK(load("= value\n") != 0);
	CHECK(said(1, "expected key = value"));
	/* every problem, each on its line */
	CHECK(load("threads = x\nok_not = 1\nlease_ttl = 1\n") != 0);
	CHECK(strstr(err, ":1: threads:") && strstr(err, ":2: unknown key") &&
	    strstr(err, ":3: lease_ttl:") && strchr(err, '\n'));
	/* twenty problems told, then how many more */
	{
		char many[2048] = "";
		const char *last;
		int i, nl = 0;

		for (i = 0; i < 25; i++)
			strcat(many, "threads = x\n");
		CHECK(load(many) != 0);
		for (last = err; *last; last++)
			nl += *last == '\n';
		CHECK(nl == 20);
		last = strrchr(err, '\n');
		CHECK(last != NULL && strncmp(last + 1, path, strlen(path)) == 0 &&
		    strstr(last, ": 5 more problems") != NULL);
		CHECK(strstr(err, ":20: threads:") && !strstr(err, ":21: threads:"));
	}
	/* a directory is not a file */
	CHECK(cfg_load("/tmp", err, sizeof(err)) != 0);
	CHECK(strcmp(err, "/tmp: Is a directory") == 0);
	/* a named file that is missing is an error; the default one is not */
	CHECK(cfg_load("/nonexistent/licd.conf", err, sizeof(err)) != 0);
	CHECK(strcmp(err, "/nonexistent/licd.conf: No such file or "
	    "directory") == 0);

	/* environment: wins, checked like the file, empty is ignored */
	setenv("LICD_THREADS", "7", 1);
	CHECK(load("threads = 5\n") == 0 && cfg_int("threads") == 7);
	setenv("LICD_THREADS", "many", 1);
	CHECK(load("threads = 5\n") != 0);
	CHECK(strcmp(err, "LICD_THREADS (environment): threads: 'many' is not "
	    "a whole number (1..64)") == 0);
	setenv("LICD_THREADS", "", 1);
	CHECK(load("threads = 5\n") == 0 && cfg_int("threads") == 5);
	unsetenv("LICD_THREADS");
	setenv("LICD_NOT_A_KEY", "x", 1);	/* the client's and scripts' own */
	CHECK(load("\n") == 0);
	unsetenv("LICD_NOT_A_KEY");

	/* per-program keys: own value, else the inherited key's, else own
	 * default, else the inherited default */
	CHECK(load("\n") == 0);
	CHECK(cfg_int("revoke_threads") == 4 && !cfg_set("revoke_threads"));
	CHECK(cfg_int("usage_threads") == 0 && !cfg_set("usage_threads"));
	CHECK(cfg_int("validate_threads") == 0 && !cfg_set("validate_threads"));
	CHECK(cfg_int("validate_lock_timeout_ms") == 250);
	CHECK(cfg_int("revoke_lock_timeout_ms") == 10000);
	/* a default of its own per program: validate's activations wait
	 * for their batch, which holds at most the requests in flight */
	CHECK(cfg_int("validate_requests") == 64);
	CHECK(cfg_int("heartbeat_requests") == 32);
	CHECK(cfg_int("usage_requests") == 32);
	CHECK(load("threads = 6\nlock_timeout_ms = 500\n") == 0);
	CHECK(cfg_int("revoke_threads") == 6 && cfg_set("revoke_threads"));
	CHECK(cfg_int("validate_threads") == 0);	/* does not inherit */
	CHECK(cfg_int("usage_threads") == 0);
	CHECK(cfg_int("revoke_lock_timeout_ms") == 500);
	CHECK(cfg_int("usage_lock_timeout_ms") == 500);
	CHECK(load("threads = 6\nusage_threads = 32\nrevoke_lock_timeout_ms = 3\n")
	    == 0);
	CHECK(cfg_int("usage_threads") == 32 && cfg_int("revoke_threads") == 6);
	CHECK(cfg_int("revoke_lock_timeout_ms") == 3);
	CHECK(cfg_int("webhook_lock_timeout_ms") == 10000);

	/* masking */
	CHECK(masked("stripe_secret_key", "sk_live_abc", "********"));
	CHECK(masked("stripe_secret_key", "", ""));
	CHECK(masked("admin_tokens", "a:00ff", "********"));
	CHECK(masked("database_url", "host=x password=s3cr3t dbname=y",
	    "host=x password=******** dbname=y"));
	CHECK(masked("database_url", "host=x password = 'a b\\' c' dbname=y",
	    "host=x password = ******** dbname=y"));
	CHECK(masked("database_url", "postgresql://u:pw@h:5432/d?sslmode=x",
	    "postgresql://u:********@h:5432/d?sslmode=x"));
	CHECK(masked("database_url", "postgresql://h/d?user=u&password=pw&x=1",
	    "postgresql://h/d?user=u&password=********&x=1"));
	CHECK(masked("database_url", "postgresql://u@h/d", "postgresql://u@h/d"));
	CHECK(masked("smtp_url", "smtps://me:p%40ss@mail:465/",
	    "smtps://me:********@mail:465/"));
	CHECK(masked("database_url", "dbname=licd", "dbname=licd"));
	CHECK(masked("database_url", "host=x sslpassword=k3y dbname=y",
	    "host=x sslpassword=******** dbname=y"));
	CHECK(masked("database_url", "postgresql://u:pa?ss@h/d",
	    "postgresql://u:********@h/d"));
	CHECK(masked("database_url", "postgresql://h/d?sslpassword=k3y",
	    "postgresql://h/d?sslpassword=********"));

	/* cfg_print never shows a secret */
	CHECK(load("stripe_secret_key = sk_live_SECRET1\n"
	    "database_url = host=x password=SECRET2\n"
	    "notify_webhook_secret = SECRET3\n") == 0);
	setenv("LICD_SMTP_PASSWORD", "SECRET4", 1);
	CHECK(load("stripe_secret_key = sk_live_SECRET1\n"
	    "database_url = host=x password=SECRET2\n"
	    "notify_webhook_secret = SECRET3\n") == 0);
	unsetenv("LICD_SMTP_PASSWORD");
	{
		char *buf = NULL;
		size_t len = 0;

		null = open_memstream(&buf, &len);
		cfg_print(null);
		fclose(null);
		CHECK(buf != NULL && strstr(buf, "SECRET") == NULL);
		CHECK(strstr(buf, "smtp_password              = ********  # "
		    "LICD_SMTP_PASSWORD\n") != NULL);
		CHECK(strstr(buf, "lease_ttl                  = 604800  # "
		    "default\n") != NULL);
		free(buf);
	}
	v = cfg_str("database_url");
	CHECK(strcmp(v, "host=x password=SECRET2") == 0);
	UNIT_DONE("config");
}
