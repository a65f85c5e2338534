/*
 * licd-check: liblicd-client for shell scripts, container entrypoints and
 * ExecStartPre=. One JSON object on stdout; the exit code says the status
 * (docs/CLIENT.md has the table). The server URL, issuer and trusted keys
 * are compiled in (licd-embed.h, written by client/embed.sh from the
 * vendor's values): no option or file can add a key at run time.
 */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <json-c/json.h>

#include "licd.h"
#include "licd-embed.h"

enum {
	EX_USAGE = 2,			/* bad command line */
	EX_LOCAL = 3,			/* configuration, files */
	EX_UNREACHABLE = 4,		/* licd could not be reached */
	EX_REFUSED = 5,			/* licd or verification refused it */
};

/* Exit code per status: 0 runs, 10-19 runs with a warning, 20+ stops. */
static const int status_exit[LICD_NSTATUS] = {
	[LICD_VALID] = 0, [LICD_REFRESH_DUE] = 10, [LICD_GRACE] = 11,
	[LICD_EXPIRED] = 20, [LICD_REVOKED] = 21, [LICD_SUSPENDED] = 22,
	[LICD_INVALID_KEY] = 23, [LICD_DOMAIN_NOT_ALLOWED] = 24,
	[LICD_FEATURE_NOT_LICENSED] = 25, [LICD_TOO_MANY_INSTALLATIONS] = 26,
	[LICD_NOT_ACTIVATED] = 27, [LICD_CLOCK_SUSPECT] = 28,
};

#ifdef LICD_CHECK_TEST_CLOCK
/* Test builds only: LICD_CHECK_NOW=<unix seconds> stands in for the wall
 * clock (the integration tests' injected time). */
static int64_t test_wall(void *arg)
{
	const char *v = getenv("LICD_CHECK_NOW");

	(void)arg;
	if (v != NULL && v[0] != '\0')
		return strtoll(v, NULL, 10);
	return (int64_t)time(NULL);
}
#endif

static void usage(FILE *f)
{
	fprintf(f,
	    "usage: licd-check [options] COMMAND\n"
	    "commands:\n"
	    "  status              the license's status (refreshes when due)\n"
	    "  check FEATURE       whether FEATURE may run\n"
	    "  refresh             validate online now\n"
	    "  heartbeat           heartbeat online now\n"
	    "  deactivate          free this installation's seat\n"
	    "  usage FEATURE N     record N of FEATURE (queued when offline)\n"
	    "  flush               send queued usage\n"
	    "  request-file FILE   write an offline activation request\n"
	    "  import FILE         install the lease licctl made for it\n"
	    "  borrow DAYS         hold the floating seat DAYS days, offline\n"
	    "  checkin             release the floating seat now\n"
	    "  hold -- CMD [ARG..] run CMD holding a floating seat: renewed\n"
	    "                      while it runs, checked in when it ends\n"
	    "options:\n"
	    "  --key-file FILE     license key (else $LICD_LICENSE_KEY)\n"
	    "  --state-dir DIR     lease cache (else $LICD_STATE_DIR, else\n"
	    "                      /var/lib/%s/licd)\n"
	    "  --installation-id ID  (else $LICD_INSTALLATION_ID, else derived\n"
	    "                      from /etc/machine-id)\n"
	    "  --domain HOST       the domain this installation serves\n"
	    "  --mode fail-closed|degrade|advisory   (fail-closed)\n"
	    "  --grace SECONDS     offline grace after the lease ends (604800)\n"
	    "  --offline           never contact licd for status/check\n"
	    "exit: 0 VALID, 10 REFRESH_DUE, 11 GRACE, 20 EXPIRED, 21 REVOKED,\n"
	    "  22 SUSPENDED, 23 INVALID_KEY, 24 DOMAIN_NOT_ALLOWED,\n"
	    "  25 FEATURE_NOT_LICENSED, 26 TOO_MANY_INSTALLATIONS,\n"
	    "  27 NOT_ACTIVATED, 28 CLOCK_SUSPECT; 2 usage, 3 local error,\n"
	    "  4 licd unreachable, 5 refused.\n", LICD_EMBED_PRODUCT);
}

static struct json_object *ts(int64_t t)
{
	char b[32];
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == 0 || gmtime_r(&tt, &tm) == NULL)
		return NULL;
	strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_object_new_string(b);
}

static void add_info(struct json_object *o, const struct licd_info *in)
{
	json_object_object_add(o, "status",
	    json_object_new_string(licd_status_name(in->status)));
	json_object_object_add(o, "decision",
	    json_object_new_string(licd_decision_name(in->decision)));
	json_object_object_add(o, "message",
	    json_object_new_string(in->message ? in->message : ""));
	json_object_object_add(o, "lease_expires_at", ts(in->lease_expires));
	json_object_object_add(o, "grace_ends_at", ts(in->grace_ends));
	json_object_object_add(o, "license_ends_at", ts(in->license_ends));
	json_object_object_add(o, "checked_at", ts(in->checked_at));
	if (in->seat_expires != 0) {
		json_object_object_add(o, "seat_expires_at",
		    ts(in->seat_expires));
		json_object_object_add(o, "borrowed_until",
		    ts(in->borrowed_until));
		json_object_object_add(o, "overdraft",
		    json_object_new_boolean(in->overdraft));
	}
}

/* Exit code of an online exchange: the status when licd answered, else
 * unreachable or refused. */
static int online_exit(int r, const struct licd_info *in)
{
	if (r == 0)
		return status_exit[in->status];
	if (r == -1 && in->message != NULL &&
	    (strstr(in->message, "unreachable") != NULL ||
	    strstr(in->message, "unavailable") != NULL))
		return EX_UNREACHABLE;
	return EX_REFUSED;
}

/* hold: the child runs while the handle's thread renews the seat; the
 * signals a supervisor sends reach the child, and its end checks in. */
static volatile sig_atomic_t child_pid;

static void forward(int sig)
{
	if (child_pid > 0)
		kill((pid_t)child_pid, sig);
}

static int run_held(char **argv, const char **msg)
{
	extern char **environ;
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT };
	struct sigaction sa;
	pid_t pid;
	size_t i;
	int st;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0) {
		*msg = "cannot run the command";
		return 127;
	}
	child_pid = pid;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) {
			*msg = "lost the command";
			return 127;
		}
	*msg = "the command ended";
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int emit(struct json_object *o, int code)
{
	json_object_object_add(o, "exit_code", json_object_new_int(code));
	printf("%s\n", json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return code;
}

static int fail(const char *cmd, int code, const char *msg)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "command",
	    json_object_new_string(cmd ? cmd : ""));
	json_object_object_add(o, "error", json_object_new_string(msg));
	return emit(o, code);
}

static char *read_key(const char *path)
{
	FILE *f = fopen(path, "r");
	char buf[8192];
	size_t n;

	if (f == NULL)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
	    buf[n - 1] == ' '))
		buf[--n] = '\0';
	return strdup(buf);
}

int main(int argc, char **argv)
{
	struct licd_config cfg;
	struct licd_info in;
	struct json_object *o;
	const char *cmd = NULL, *a1 = NULL, *a2 = NULL, *msg = NULL;
	char *key = NULL, err[256], defdir[512], **held = NULL;
	licd_t *h = NULL;
	int i, rc, offline = 0;

	licd_config_init(&cfg);
	cfg.base_url = LICD_EMBED_URL;
	cfg.issuer = LICD_EMBED_ISSUER;
	cfg.jwks = LICD_EMBED_JWKS;
	cfg.product = LICD_EMBED_PRODUCT;
	cfg.refresh = LICD_REFRESH_INLINE;
	cfg.installation_id = getenv("LICD_INSTALLATION_ID");
	cfg.state_dir = getenv("LICD_STATE_DIR");
	if (getenv("LICD_LICENSE_KEY") != NULL)
		key = strdup(getenv("LICD_LICENSE_KEY"));
#ifdef LICD_CHECK_TEST_CLOCK
	cfg.wall_clock = test_wall;
#endif
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			free(key);
			return 0;
		}
		if (strcmp(a, "--offline") == 0) {
			offline = 1;
			continue;
		}
		if (strcmp(a, "--") == 0 && cmd != NULL &&
		    strcmp(cmd, "hold") == 0 && a1 == NULL && i + 1 < argc) {
			held = argv + i + 1;
			break;
		}
		if (a[0] == '-' && a[1] == '-' && i + 1 < argc) {
			const char *v = argv[++i];

			if (strcmp(a, "--key-file") == 0) {
				free(key);
				if ((key = read_key(v)) == NULL) {
					fprintf(stderr, "licd-check: cannot read %s\n", v);
					return fail(cmd, EX_LOCAL,
					    "cannot read the key file");
				}
			} else if (strcmp(a, "--state-dir") == 0)
				cfg.state_dir = v;
			else if (strcmp(a, "--installation-id") == 0)
				cfg.installation_id = v;
			else if (strcmp(a, "--domain") == 0)
				cfg.domain = v;
			else if (strcmp(a, "--grace") == 0)
				cfg.offline_grace = strtol(v, NULL, 10);
			else if (strcmp(a, "--mode") == 0) {
				if (strcmp(v, "fail-closed") == 0)
					cfg.mode = LICD_FAIL_CLOSED;
				else if (strcmp(v, "degrade") == 0)
					cfg.mode = LICD_DEGRADE;
				else if (strcmp(v, "advisory") == 0)
					cfg.mode = LICD_ADVISORY;
				else
					goto bad;
			} else
				goto bad;
			continue;
		}
		if (a[0] == '-')
			goto bad;
		if (cmd == NULL)
			cmd = a;
		else if (a1 == NULL)
			a1 = a;
		else if (a2 == NULL)
			a2 = a;
		else
			goto bad;
	}
	if (cmd == NULL)
		goto bad;
	if (offline)
		cfg.refresh = LICD_REFRESH_MANUAL;
	/* One run reports on a seat that later runs keep using; only hold
	 * gives its seat back when it ends. */
	cfg.keep_seat_on_close = 1;
	if (strcmp(cmd, "hold") == 0) {
		if (held == NULL || offline)
			goto bad;
		cfg.refresh = LICD_REFRESH_BACKGROUND;
		cfg.keep_seat_on_close = 0;
	}
	if (cfg.state_dir == NULL) {
		snprintf(defdir, sizeof(defdir), "/var/lib/%s/licd",
		    LICD_EMBED_PRODUCT);
		cfg.state_dir = defdir;
	}
	if (LICD_EMBED_JWKS[0] == '\0') {
		free(key);
		return fail(cmd, EX_LOCAL, "licd-check was built without "
		    "embedded keys (see docs/CLIENT.md, make licd-check)");
	}
	if (key == NULL) {
		return fail(cmd, EX_LOCAL, "no license key (--key-file or "
		    "LICD_LICENSE_KEY)");
	}
	cfg.license_key = key;
	if (licd_open(&cfg, &h, err, sizeof(err)) != 0) {
		free(key);
		return fail(cmd, EX_LOCAL, err);
	}
	o = json_object_new_object();
	json_object_object_add(o, "command", json_object_new_string(cmd));
	json_object_object_add(o, "installation_id",
	    json_object_new_string(licd_installation_id(h)));
	if (strcmp(cmd, "status") == 0 && a1 == NULL) {
		licd_check(h, NULL, &in);
		add_info(o, &in);
		rc = status_exit[in.status];
	} else if (strcmp(cmd, "check") == 0 && a1 != NULL && a2 == NULL) {
		licd_check(h, a1, &in);
		json_object_object_add(o, "feature", json_object_new_string(a1));
		add_info(o, &in);
		rc = status_exit[in.status];
	} else if ((strcmp(cmd, "refresh") == 0 ||
	    strcmp(cmd, "heartbeat") == 0) && a1 == NULL) {
		int r = cmd[0] == 'r' ? licd_refresh(h, &in) :
		    licd_heartbeat(h, &in);

		add_info(o, &in);
		json_object_object_add(o, "reached",
		    json_object_new_boolean(r == 0));
		/* Not reached, or reached and the answer refused. */
		rc = online_exit(r, &in);
	} else if (strcmp(cmd, "borrow") == 0 && a1 != NULL && a2 == NULL) {
		char *end;
		long days = strtol(a1, &end, 10);
		int r;

		if (*end != '\0' || end == a1 || days < 1 || days > 3650) {
			json_object_put(o);
			licd_close(h);
			goto bad;
		}
		r = licd_borrow(h, (int)days, &in);
		add_info(o, &in);
		json_object_object_add(o, "days", json_object_new_int((int)days));
		json_object_object_add(o, "borrowed", json_object_new_boolean(
		    r == 0 && in.status == LICD_VALID && in.borrowed_until != 0));
		rc = online_exit(r, &in);
	} else if (strcmp(cmd, "checkin") == 0 && a1 == NULL) {
		int r = licd_checkin(h, &msg);

		json_object_object_add(o, "checked_in",
		    json_object_new_boolean(r == 0));
		json_object_object_add(o, "message", json_object_new_string(msg));
		rc = r == 0 ? 0 : strstr(msg, "unreachable") ||
		    strstr(msg, "unavailable") ? EX_UNREACHABLE : EX_REFUSED;
	} else if (strcmp(cmd, "hold") == 0 && held != NULL) {
		int r = licd_refresh(h, &in);

		/* Offline, the cached lease (and grace) decides, as for
		 * status. */
		if (r != 0)
			licd_check(h, NULL, &in);
		if (in.decision != LICD_ALLOW) {
			add_info(o, &in);
			rc = status_exit[in.status];
		} else {
			rc = run_held(held, &msg);
			licd_check(h, NULL, &in);
			add_info(o, &in);
			json_object_object_add(o, "message",
			    json_object_new_string(msg));
			json_object_object_add(o, "command_exit",
			    json_object_new_int(rc));
		}
	} else if (strcmp(cmd, "deactivate") == 0 && a1 == NULL) {
		int r = licd_deactivate(h, &msg);

		json_object_object_add(o, "deactivated",
		    json_object_new_boolean(r == 0));
		json_object_object_add(o, "message", json_object_new_string(msg));
		rc = r == 0 ? 0 : strstr(msg, "unreachable") ? EX_UNREACHABLE :
		    EX_REFUSED;
	} else if (strcmp(cmd, "usage") == 0 && a2 != NULL) {
		char *end;
		long long n = strtoll(a2, &end, 10);
		int r;

		if (*end != '\0' || end == a2)
			n = 0;
		r = licd_usage(h, a1, n, &msg);
		json_object_object_add(o, "feature", json_object_new_string(a1));
		json_object_object_add(o, "quantity", json_object_new_int64(n));
		json_object_object_add(o, "result", json_object_new_string(
		    r == 0 ? "counted" : r == 1 ? "queued" : "refused"));
		json_object_object_add(o, "message",
		    json_object_new_string(msg ? msg : ""));
		rc = r == 0 ? 0 : r == 1 ? EX_UNREACHABLE : EX_REFUSED;
	} else if (strcmp(cmd, "flush") == 0 && a1 == NULL) {
		int left = licd_flush_usage(h);

		json_object_object_add(o, "queued", json_object_new_int(left));
		rc = left == 0 ? 0 : left > 0 ? EX_UNREACHABLE : EX_LOCAL;
	} else if (strcmp(cmd, "request-file") == 0 && a1 != NULL && a2 == NULL) {
		int r = licd_request_file(h, a1, &msg);

		json_object_object_add(o, "file", json_object_new_string(a1));
		json_object_object_add(o, "message", json_object_new_string(msg));
		rc = r == 0 ? 0 : EX_LOCAL;
	} else if (strcmp(cmd, "import") == 0 && a1 != NULL && a2 == NULL) {
		int r = licd_import(h, a1, &in);

		add_info(o, &in);
		json_object_object_add(o, "imported",
		    json_object_new_boolean(r == 0));
		rc = r == 0 ? status_exit[in.status] : EX_REFUSED;
	} else {
		json_object_put(o);
		licd_close(h);
		goto bad;
	}
	rc = emit(o, rc);
	licd_close(h);
	free(key);
	return rc;
bad:
	free(key);
	usage(stderr);
	return EX_USAGE;
}
