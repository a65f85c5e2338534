/*
 * licd: the client handle. licd_check answers from memory (the lease
 * verified once when it arrived or was loaded); refreshes, the state file
 * and the usage queue are the slow paths, each under its own lock.
 *
 * Locks, in the order they may be taken:
 *   refresh_mu  one online exchange at a time per handle
 *   usage_mu    one queue operation at a time per handle
 *   lk          (rwlock) the lease, verdict and clock anchors; readers are
 *               the checks, writers install answers
 *   the state directory's lock file (flock), across processes
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "internal.h"

struct licd {
	/* Set at open, read-only after. */
	char *base_url, *issuer, *license_key, *domain, *version;
	char iid[LCL_ID_MAX];
	char license_id[64];		/* sub of the verified license key */
	int key_invalid;
	struct lcl_keys keys;
	enum licd_mode mode;
	enum licd_refresh_mode rmode;
	long grace, tol, interval, retry, timeout_ms;
	licd_transport_fn transport;
	void *targ;
	licd_clock_fn wall, mono;
	void *carg;
	char state_path[PATH_MAX], queue_path[PATH_MAX], lock_path[PATH_MAX],
	    qlock_path[PATH_MAX];
	int has_dir;

	pthread_rwlock_t lk;
	struct lcl_lease lease;
	int has_lease;
	enum licd_status verdict;	/* LICD_VALID: none */
	int64_t verdict_at;
	_Atomic int deactivated;	/* no automatic refresh until licd_refresh */
	_Atomic int idle;		/* checked in: the same, in memory only */
	int keep_seat;			/* cfg.keep_seat_on_close */
	int opened;
	int64_t refreshed_at;
	char pending_nonce[LCL_ID_MAX];
	int has_srv;			/* srv_offset is known (this process) */
	int64_t srv_offset;		/* licd's time minus the wall clock */
	int64_t base_mono;		/* high-water mark = base_wall + elapsed */
	_Atomic int64_t base_wall;
	int64_t persisted_hwm;
	int64_t gen;			/* of the state file last read/written */

	pthread_mutex_t refresh_mu, usage_mu;
	_Atomic int64_t next_refresh;	/* monotonic time a refresh is due */
	_Atomic int suspect_forced;
	int failures;

	pthread_t thr;
	int thr_started;
	pthread_mutex_t bg_mu;
	pthread_cond_t bg_cv;
	int stopping, kick, flush;
	_Atomic int kicked;		/* a wake-up is pending or running */
};

static const char *const names[LICD_NSTATUS] = {
	"VALID", "REFRESH_DUE", "GRACE", "EXPIRED", "REVOKED", "SUSPENDED",
	"INVALID_KEY", "DOMAIN_NOT_ALLOWED", "FEATURE_NOT_LICENSED",
	"TOO_MANY_INSTALLATIONS", "NOT_ACTIVATED", "CLOCK_SUSPECT",
};

static const char *const messages[LICD_NSTATUS] = {
	"The license is valid.",
	"The license is valid, but the licensing server has not been reachable "
	    "and the lease ends soon.",
	"The licensing server has not been reachable since the lease ended; "
	    "running in the offline grace period.",
	"The license has expired.",
	"The license has been revoked.",
	"The license is suspended.",
	"The license key is not valid for this product.",
	"The license does not allow this domain.",
	"The license does not include this feature.",
	"The license has no free installation seat.",
	"This installation is not activated.",
	"The system clock is behind the time last seen; check the clock.",
};

/* A floating lease ends with its seat. */
static const char msg_seat_grace[] = "The floating seat could not be renewed "
    "(the licensing server is unreachable) and has lapsed; running in the "
    "offline grace period.";
static const char msg_seat_lapsed[] = "The floating seat lapsed without "
    "renewal and the offline grace is used up.";

const char *licd_status_name(enum licd_status s)
{
	return (unsigned)s < LICD_NSTATUS ? names[s] : "UNKNOWN";
}

const char *licd_decision_name(enum licd_decision d)
{
	return d == LICD_ALLOW ? "allow" : d == LICD_FREE_TIER ? "free_tier" :
	    "deny";
}

static int status_from_name(const char *s, enum licd_status *out)
{
	int i;

	if (strcmp(s, "INSTALLATION_NOT_ACTIVE") == 0) {
		*out = LICD_NOT_ACTIVATED;
		return 0;
	}
	for (i = 0; i < LICD_NSTATUS; i++)
		if (strcmp(s, names[i]) == 0) {
			*out = (enum licd_status)i;
			return 0;
		}
	return -1;
}

void licd_config_init(struct licd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->mode = LICD_FAIL_CLOSED;
	cfg->refresh = LICD_REFRESH_BACKGROUND;
	cfg->offline_grace = 7L * 86400;
	cfg->clock_tolerance = 600;
	cfg->refresh_interval = 3600;
	cfg->retry_interval = 60;
	cfg->timeout_ms = 10000;
}

static int64_t now_wall(const struct licd *h)
{
	struct timespec ts;

	if (h->wall != NULL)
		return h->wall(h->carg);
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (int64_t)ts.tv_sec;
}

static int64_t now_mono(const struct licd *h)
{
	struct timespec ts;

	if (h->mono != NULL)
		return h->mono(h->carg);
	/* Seconds are all the rules need; the coarse clocks cost no syscall. */
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec;
}

static int64_t hwm_at(struct licd *h, int64_t mono)
{
	return atomic_load_explicit(&h->base_wall, memory_order_relaxed) +
	    (mono - h->base_mono);
}

/* The mark follows the wall clock forward (never back). */
static void hwm_see(struct licd *h, int64_t t, int64_t mono)
{
	int64_t want = t - (mono - h->base_mono);
	int64_t cur = atomic_load_explicit(&h->base_wall, memory_order_relaxed);

	while (want > cur && !atomic_compare_exchange_weak(&h->base_wall, &cur,
	    want))
		;
}

static int id_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n >= LCL_ID_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
		    || (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_'
		    || s[i] == ':' || s[i] == '-'))
			return 0;
	return 1;
}

static void hex(const unsigned char *d, size_t n, char *out)
{
	static const char x[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = x[d[i] >> 4];
		out[2 * i + 1] = x[d[i] & 15];
	}
	out[2 * n] = '\0';
}

static int sha256(const void *a, size_t an, const void *b, size_t bn,
    unsigned char d[32])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned int n = 0;
	int ok = c != NULL && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(c, a, an) == 1 && EVP_DigestUpdate(c, b, bn) == 1 &&
	    EVP_DigestFinal_ex(c, d, &n) == 1 && n == 32;

	EVP_MD_CTX_free(c);
	return ok ? 0 : -1;
}

/* The installation id: the vendor's, else LICD_INSTALLATION_ID, else a
 * hash of the machine id with the product (so two products on a machine,
 * or the machine id itself, cannot be linked from the id). */
static int settle_iid(struct licd *h, const struct licd_config *cfg,
    char *err, size_t errlen)
{
	static const char *const files[] = { "/etc/machine-id",
	    "/var/lib/dbus/machine-id" };
	const char *v = cfg->installation_id;
	unsigned char d[32];
	char *mid = NULL, dom[160];
	size_t i, n = 0;

	if (v == NULL || v[0] == '\0')
		v = getenv("LICD_INSTALLATION_ID");
	if (v != NULL && v[0] != '\0') {
		if (!id_ok(v)) {
			snprintf(err, errlen, "installation id must be 1-128 of "
			    "[A-Za-z0-9._:-]");
			return -1;
		}
		memcpy(h->iid, v, strlen(v) + 1);
		return 0;
	}
	if (cfg->product == NULL || cfg->product[0] == '\0') {
		snprintf(err, errlen, "a product name is needed to derive the "
		    "installation id");
		return -1;
	}
	for (i = 0; i < 2 && mid == NULL; i++)
		mid = lcl_read_file(files[i], 256, &n);
	while (mid != NULL && n > 0 && (mid[n - 1] == '\n' || mid[n - 1] == ' '))
		mid[--n] = '\0';
	if (mid == NULL || n < 16) {
		free(mid);
		snprintf(err, errlen, "no machine id (/etc/machine-id); set "
		    "LICD_INSTALLATION_ID");
		return -1;
	}
	snprintf(dom, sizeof(dom), "licd-installation-id:%s:", cfg->product);
	if (sha256(dom, strlen(dom), mid, n, d) != 0) {
		free(mid);
		snprintf(err, errlen, "SHA-256 unavailable");
		return -1;
	}
	free(mid);
	hex(d, 16, h->iid);
	return 0;
}

/* The license id the key names, from the key verified offline (typ JWT,
 * an embedded kid, that key's algorithm, our issuer). */
static void settle_key(struct licd *h)
{
	struct json_object *c = NULL, *v;
	const char *why, *s;

	h->key_invalid = 1;
	if (h->license_key == NULL || lcl_jws_verify(&h->keys, h->license_key,
	    strlen(h->license_key), "JWT", &c, &why) != 0)
		return;
	if (json_object_object_get_ex(c, "iss", &v) &&
	    json_object_is_type(v, json_type_string) &&
	    strcmp(json_object_get_string(v), h->issuer) == 0 &&
	    json_object_object_get_ex(c, "sub", &v) &&
	    json_object_is_type(v, json_type_string) &&
	    strlen(s = json_object_get_string(v)) > 0 &&
	    strlen(s) < sizeof(h->license_id) && id_ok(s)) {
		memcpy(h->license_id, s, strlen(s) + 1);
		h->key_invalid = 0;
	}
	json_object_put(c);
}

/* ---- state files ---- */

/* The state file's lock is held only to read, merge and write it; the
 * queue's while its items are sent. Two files, so that a process sending
 * usage to an unreachable licd never holds up another's state write (and
 * with it, under lk, its checks). */
static int lock_file(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0)
		return -1;
	while (flock(fd, LOCK_EX) != 0)
		if (errno != EINTR) {
			close(fd);
			return -1;
		}
	return fd;
}

static void unlock_dir(int fd)
{
	if (fd >= 0)
		close(fd);
}

static void install_lease(struct licd *h, struct lcl_lease *l)
{
	lcl_lease_free(&h->lease);
	h->lease = *l;
	h->has_lease = 1;
	memset(l, 0, sizeof(*l));
}

/* A state file's lease, verified as it would be on arrival except for
 * nonce and expiry (an expired lease still decides GRACE/EXPIRED). */
static int load_lease(struct licd *h, const char *token, struct lcl_lease *l)
{
	struct lcl_expect e = { h->issuer, h->license_id, h->iid, NULL, 0 };
	const char *why;

	return lcl_lease_verify(&h->keys, token, &e, l, &why);
}

/* Takes what the state file says: all of it at open; on a later save
 * only what another process wrote since (its lease if newer, its answer
 * from licd if later than ours). Under the dir lock and lk (write). */
static void merge_disk(struct licd *h, const struct lcl_state *st,
    int at_open)
{
	struct lcl_lease l;
	enum licd_status v = LICD_VALID;

	if (!at_open && st->gen <= h->gen)
		return;		/* nothing new since this handle wrote */
	if (st->lease != NULL && load_lease(h, st->lease, &l) == 0) {
		l.seat_hb = st->seat_hb;
		l.borrowed_until = st->borrowed_until;
		l.overdraft = st->overdraft;
		if (!h->has_lease || l.iat > h->lease.iat)
			install_lease(h, &l);
		else
			lcl_lease_free(&l);
	}
	if (at_open || st->refreshed_at > h->refreshed_at) {
		h->deactivated = strcmp(st->verdict, "DEACTIVATED") == 0;
		if (h->deactivated)
			v = LICD_NOT_ACTIVATED;
		else if (st->verdict[0] != '\0' &&
		    status_from_name(st->verdict, &v) != 0)
			v = LICD_VALID;
		h->verdict = v;
		h->verdict_at = st->verdict_at;
		h->refreshed_at = st->refreshed_at;
	}
	if (!h->has_srv)
		hwm_see(h, st->hwm, now_mono(h));
	/* A pending request is this handle's once loaded: an import clears
	 * it, a new request replaces it. */
	if (at_open)
		memcpy(h->pending_nonce, st->pending_nonce,
		    sizeof(h->pending_nonce));
	if (st->gen > h->gen)
		h->gen = st->gen;
}

/* Writes the handle's state, merged with the file's. Caller holds lk
 * (write); takes the dir lock. */
static int save_state(struct licd *h)
{
	struct lcl_state st;
	int fd, rc;

	if (!h->has_dir)
		return 0;
	if ((fd = lock_file(h->lock_path)) < 0)
		return -1;
	if (lcl_state_read(h->state_path, &st) == 0)
		merge_disk(h, &st, 0);
	lcl_state_free(&st);
	st.lease = h->has_lease ? h->lease.token : NULL;
	if (h->has_lease) {
		st.seat_hb = h->lease.seat_hb;
		st.borrowed_until = h->lease.borrowed_until;
		st.overdraft = h->lease.overdraft;
	}
	st.hwm = hwm_at(h, now_mono(h));
	st.refreshed_at = h->refreshed_at;
	if (h->deactivated)
		snprintf(st.verdict, sizeof(st.verdict), "DEACTIVATED");
	else if (h->verdict != LICD_VALID)
		snprintf(st.verdict, sizeof(st.verdict), "%s",
		    names[h->verdict]);
	st.verdict_at = h->verdict_at;
	memcpy(st.pending_nonce, h->pending_nonce, sizeof(st.pending_nonce));
	st.gen = h->gen + 1;
	rc = lcl_state_write(h->state_path, &st);
	if (rc == 0) {
		h->persisted_hwm = st.hwm;
		h->gen = st.gen;
	}
	unlock_dir(fd);
	return rc;
}

/* ---- evaluation ---- */

static int has_feature(const struct lcl_lease *l, const char *f)
{
	size_t i;

	for (i = 0; i < l->nfeat; i++)
		if (strcmp(l->feat[i], f) == 0)
			return 1;
	return 0;
}

static int domain_ok(const struct licd *h)
{
	size_t i;

	if (!h->lease.has_domains || h->lease.ndomains == 0)
		return 1;
	if (h->domain == NULL)
		return 0;
	for (i = 0; i < h->lease.ndomains; i++)
		if (lcl_domain_match(h->lease.domains[i], h->domain))
			return 1;
	return 0;
}

static enum licd_decision decide(const struct licd *h, enum licd_status s)
{
	if (s == LICD_VALID || s == LICD_REFRESH_DUE || s == LICD_GRACE)
		return LICD_ALLOW;
	return h->mode == LICD_ADVISORY ? LICD_ALLOW :
	    h->mode == LICD_DEGRADE ? LICD_FREE_TIER : LICD_DENY;
}

/* The answer at wall/mono time. Caller holds lk (read). No allocation. */
static void evaluate(struct licd *h, int64_t wall, int64_t mono,
    const char *feature, struct licd_info *in)
{
	const struct lcl_lease *l = &h->lease;
	int64_t now = wall + (h->has_srv ? h->srv_offset : 0);
	enum licd_status s;

	memset(in, 0, sizeof(*in));
	in->checked_at = now;
	if (h->has_lease) {
		in->lease_expires = l->exp;
		if (l->license_end != 0)
			in->license_ends = l->grace_until > l->license_end ?
			    l->grace_until : l->license_end;
		in->grace_ends = l->exp + h->grace;
		if (in->license_ends != 0 && in->grace_ends > in->license_ends)
			in->grace_ends = in->license_ends;
		if (in->grace_ends < l->exp)
			in->grace_ends = l->exp;
		if (l->seat_hb > 0) {
			in->seat_expires = l->exp;
			in->borrowed_until = l->borrowed_until;
			in->overdraft = l->overdraft;
		}
	}
	if (h->key_invalid)
		s = LICD_INVALID_KEY;
	else if (h->verdict != LICD_VALID)
		s = h->verdict;
	else if (!h->has_lease)
		s = LICD_NOT_ACTIVATED;
	else if (now + h->tol < hwm_at(h, mono))
		s = LICD_CLOCK_SUSPECT;
	else if (!domain_ok(h))
		s = LICD_DOMAIN_NOT_ALLOWED;
	else if (now >= l->exp)
		s = now < in->grace_ends ? LICD_GRACE : LICD_EXPIRED;
	else if (now >= l->exp - (l->exp - l->iat) / 4)
		s = LICD_REFRESH_DUE;
	else
		s = LICD_VALID;
	if (feature != NULL && h->has_lease && (s == LICD_VALID || s == LICD_REFRESH_DUE || s == LICD_GRACE) &&
	    !has_feature(l, feature))
		s = LICD_FEATURE_NOT_LICENSED;
	in->status = s;
	in->decision = decide(h, s);
	in->message = messages[s];
	if (h->has_lease && l->seat_hb > 0 && now >= l->exp &&
	    (in->license_ends == 0 || now < in->license_ends)) {
		if (s == LICD_GRACE)
			in->message = msg_seat_grace;
		else if (s == LICD_EXPIRED)
			in->message = msg_seat_lapsed;
	}
}

/* ---- online ---- */

static void new_nonce(char out[32])
{
	unsigned char r[18];

	if (RAND_bytes(r, sizeof(r)) != 1) {
		/* No randomness: a nonce nobody can predict is impossible,
		 * and the exchange will be refused. */
		out[0] = '\0';
		return;
	}
	lcl_b64url_encode(r, sizeof(r), out);
}

/* Every request names the license (by its key) and this installation. */
static struct json_object *request_body(const struct licd *h)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "license_key",
	    json_object_new_string(h->license_key));
	json_object_object_add(o, "installation_id",
	    json_object_new_string(h->iid));
	return o;
}

static int post(struct licd *h, const char *path, struct json_object *body,
    struct licd_response *resp)
{
	char url[2048];
	const char *txt = json_object_to_json_string_ext(body,
	    JSON_C_TO_STRING_PLAIN);
	licd_transport_fn t = h->transport ? h->transport : lcl_http_post;

	memset(resp, 0, sizeof(*resp));
	if ((size_t)snprintf(url, sizeof(url), "%s%s", h->base_url, path) >=
	    sizeof(url))
		return -1;
	if (t(h->targ, url, txt, strlen(txt), h->timeout_ms, resp) != 0) {
		free(resp->body);
		memset(resp, 0, sizeof(*resp));
		return -1;
	}
	return 0;
}

static struct json_object *parse_body(const struct licd_response *r)
{
	struct json_tokener *t;
	struct json_object *o;

	if (r->body == NULL || r->len == 0 || r->len > INT_MAX)
		return NULL;
	if ((t = json_tokener_new()) == NULL)
		return NULL;
	o = json_tokener_parse_ex(t, r->body, (int)r->len);
	if (o != NULL && (json_tokener_get_error(t) != json_tokener_success ||
	    !json_object_is_type(o, json_type_object))) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(t);
	return o;
}

static const char *jstr(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, k, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* A floating seat that is not borrowed is renewed at licd's
 * next_heartbeat_in, and retried at least that often, or it lapses. */
static int64_t seat_renewal(const struct licd *h)
{
	return h->has_lease && h->lease.seat_hb > 0 &&
	    h->lease.borrowed_until == 0 ? h->lease.seat_hb : 0;
}

/* The next refresh after an exchange that succeeded (ok) or not.
 * Caller holds lk (write). */
static void schedule(struct licd *h, int ok, int64_t mono)
{
	int64_t seat = seat_renewal(h);
	long wait;

	if (ok) {
		h->failures = 0;
		wait = h->interval;
		/* Never let a lease pass half its life unrefreshed. */
		if (h->has_lease) {
			int64_t half = (h->lease.exp - h->lease.iat) / 2;

			if (half > 0 && half < wait)
				wait = (long)half;
		}
		/* No seat free: one may be soon (a floating seat lapses, an
		 * admin frees one). */
		if (h->verdict == LICD_TOO_MANY_INSTALLATIONS && h->retry < wait)
			wait = h->retry;
	} else {
		int f = h->failures < 20 ? h->failures : 20;

		h->failures++;
		wait = h->retry << f;
		if (wait > h->interval || wait <= 0)
			wait = h->interval;
	}
	if (seat > 0 && seat < wait)
		wait = (long)seat;
	atomic_store(&h->next_refresh, mono + wait);
}

/* An RFC 3339 UTC time as licd writes it; 0 for anything else. */
static int64_t parse_ts(const char *s)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	if (s == NULL || (end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) ==
	    NULL || *end != '\0')
		return 0;
	return (int64_t)timegm(&tm);
}

/* The floating seat licd's VALID answer describes beside the lease. */
static void read_seat(struct json_object *ans, struct lcl_lease *l)
{
	struct json_object *v;

	if (jstr(ans, "seat_expires_at") == NULL)
		return;		/* node-locked */
	l->seat_hb = 1;
	if (json_object_object_get_ex(ans, "next_heartbeat_in", &v) &&
	    json_object_is_type(v, json_type_int) &&
	    json_object_get_int64(v) > 1)
		l->seat_hb = json_object_get_int64(v);
	l->borrowed_until = parse_ts(jstr(ans, "borrowed_until"));
	l->overdraft = json_object_object_get_ex(ans, "overdraft", &v) &&
	    json_object_is_type(v, json_type_boolean) &&
	    json_object_get_boolean(v);
}

/* A 4xx error's code, for the refusals that have a message of their own. */
static int refusal(struct json_object *ans, const char **why)
{
	const char *c = jstr(json_object_object_get(ans, "error"), "code");

	if (c != NULL && strcmp(c, "BORROW_LIMIT_EXCEEDED") == 0) {
		*why = "licd refused the borrow: more days than the license's "
		    "max_borrow_days";
		return LICD_BORROW_REFUSED;
	}
	if (c != NULL && strcmp(c, "NOT_FLOATING") == 0) {
		*why = "the license is node-locked: borrowing and check-in are "
		    "for floating licenses";
		return LICD_BORROW_REFUSED;
	}
	*why = "licd refused the request (see its error code)";
	return -1;
}

/*
 * One validate or heartbeat exchange and what it means. The answer's
 * lease is installed only after every check: signature by an embedded key
 * with that key's algorithm, typ lease+jwt, iss, sub, iid, the nonce just
 * sent, exp in the future (licd's own iat is the time it is judged by).
 * A refusal licd answered (REVOKED, ...) is kept as the verdict. Returns 0
 * when licd answered and the answer was taken, -1 otherwise (*why).
 * Caller holds refresh_mu.
 */
static int exchange(struct licd *h, const char *path, int days,
    const char **why)
{
	char nonce[32];
	struct json_object *req = request_body(h), *ans = NULL;
	struct licd_response resp;
	struct lcl_lease l;
	struct lcl_expect e;
	enum licd_status v;
	const char *code, *tok;
	int64_t wall, mono;
	int rc = -1, reactivate = 0, refused = 0;

	memset(&l, 0, sizeof(l));
	new_nonce(nonce);
	*why = "no randomness for a nonce";
	if (nonce[0] == '\0' || req == NULL)
		goto out;
	json_object_object_add(req, "nonce", json_object_new_string(nonce));
	if (h->version != NULL)
		json_object_object_add(req, "version",
		    json_object_new_string(h->version));
	if (h->domain != NULL && strcmp(path, "/api/heartbeat") != 0)
		json_object_object_add(req, "domain",
		    json_object_new_string(h->domain));
	if (days > 0)
		json_object_object_add(req, "days", json_object_new_int(days));
	*why = "licd is unreachable";
	if (post(h, path, req, &resp) != 0)
		goto out;
	wall = now_wall(h);
	mono = now_mono(h);
	ans = parse_body(&resp);
	if (resp.status >= 500 || resp.status == 429 || resp.status == 408) {
		*why = "licd is unavailable";
		goto out;
	}
	*why = "licd's answer is not what licd sends";
	if (ans == NULL || resp.status != 200 ||
	    (code = jstr(ans, "code")) == NULL) {
		if (ans != NULL && resp.status >= 400 && resp.status < 500)
			refused = refusal(ans, why);
		goto out;
	}
	if (strcmp(code, "VALID") == 0) {
		tok = jstr(ans, "lease");
		e.issuer = h->issuer;
		e.sub = h->license_id;
		e.iid = h->iid;
		e.nonce = nonce;
		e.now_min = 0;
		if (lcl_lease_verify(&h->keys, tok, &e, &l, why) != 0)
			goto out;
		/* licd's clock judges its own lease; ours is checked below. */
		*why = "lease has expired";
		if (l.exp <= l.iat)
			goto out;
		read_seat(ans, &l);
		pthread_rwlock_wrlock(&h->lk);
		if (h->has_lease && l.iat < h->lease.iat) {
			pthread_rwlock_unlock(&h->lk);
			*why = "lease is older than the one held";
			goto out;
		}
		install_lease(h, &l);
		h->verdict = LICD_VALID;
		h->verdict_at = 0;
		h->deactivated = 0;
		h->idle = 0;
		/* licd's time wins while it is reachable: the mark is reset
		 * to it (also down, undoing a clock once set ahead). */
		h->has_srv = 1;
		h->srv_offset = h->lease.iat - wall;
		atomic_store(&h->base_wall, h->lease.iat - (mono - h->base_mono));
		atomic_store(&h->suspect_forced, 0);
		h->refreshed_at = h->lease.iat;
	} else if (status_from_name(code, &v) == 0 && v != LICD_VALID &&
	    v != LICD_FEATURE_NOT_LICENSED) {
		pthread_rwlock_wrlock(&h->lk);
		h->verdict = v;
		h->verdict_at = wall + (h->has_srv ? h->srv_offset : 0);
		reactivate = v == LICD_NOT_ACTIVATED &&
		    strcmp(path, "/api/heartbeat") == 0;
		h->refreshed_at = h->verdict_at;
	} else {
		goto out;
	}
	schedule(h, 1, mono);
	/* A heartbeat's "not active" asks for a validate, which activates. */
	if (reactivate)
		atomic_store(&h->next_refresh, mono);
	save_state(h);
	pthread_rwlock_unlock(&h->lk);
	rc = 0;
	*why = NULL;
out:
	if (rc != 0 && refused == LICD_BORROW_REFUSED) {
		rc = refused;	/* an answer, not a failure to reach licd */
	} else if (rc != 0) {
		pthread_rwlock_wrlock(&h->lk);
		schedule(h, 0, now_mono(h));
		pthread_rwlock_unlock(&h->lk);
	}
	lcl_lease_free(&l);
	free(resp.body);
	json_object_put(ans);
	json_object_put(req);
	return rc;
}

static int refresh_now(struct licd *h, const char *path, int days,
    struct licd_info *info, int wait)
{
	const char *why = "the license key is not valid for this product";
	int rc = -1;

	if (wait)
		pthread_mutex_lock(&h->refresh_mu);
	else if (pthread_mutex_trylock(&h->refresh_mu) != 0)
		return -1;
	if (!h->key_invalid)
		rc = exchange(h, path, days, &why);
	pthread_mutex_unlock(&h->refresh_mu);
	if (info != NULL) {
		pthread_rwlock_rdlock(&h->lk);
		evaluate(h, now_wall(h), now_mono(h), NULL, info);
		pthread_rwlock_unlock(&h->lk);
		if (rc != 0 && why != NULL)
			info->message = why;
	}
	return rc;
}

int licd_refresh(licd_t *h, struct licd_info *info)
{
	return refresh_now(h, "/api/validate", 0, info, 1);
}

int licd_heartbeat(licd_t *h, struct licd_info *info)
{
	return refresh_now(h, "/api/heartbeat", 0, info, 1);
}

int licd_borrow(licd_t *h, int days, struct licd_info *info)
{
	if (days < 1 || days > 3650) {
		if (info != NULL) {
			licd_check(h, NULL, info);
			info->message = "days must be 1-3650";
		}
		return -1;
	}
	return refresh_now(h, "/api/borrow", days, info, 1);
}

static void *bg_main(void *arg)
{
	struct licd *h = arg;
	struct timespec ts;
	int64_t wait;

	pthread_mutex_lock(&h->bg_mu);
	while (!h->stopping) {
		int refresh;

		wait = atomic_load(&h->next_refresh) - now_mono(h);
		refresh = h->kick || (wait <= 0 && !h->deactivated && !h->idle);
		if (!refresh && !h->flush) {
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += wait > 0 && wait < 3600 ? wait : 3600;
			pthread_cond_timedwait(&h->bg_cv, &h->bg_mu, &ts);
			continue;
		}
		h->kick = h->flush = 0;
		pthread_mutex_unlock(&h->bg_mu);
		if (refresh)
			refresh_now(h, "/api/validate", 0, NULL, 1);
		licd_flush_usage(h);
		atomic_store(&h->kicked, 0);
		pthread_mutex_lock(&h->bg_mu);
	}
	pthread_mutex_unlock(&h->bg_mu);
	return NULL;
}

enum licd_decision licd_check(licd_t *h, const char *feature,
    struct licd_info *info)
{
	struct licd_info local;
	int64_t wall = now_wall(h), mono = now_mono(h);
	int due;

	if (info == NULL)
		info = &local;
	pthread_rwlock_rdlock(&h->lk);
	hwm_see(h, wall + (h->has_srv ? h->srv_offset : 0), mono);
	evaluate(h, wall, mono, feature, info);
	due = h->rmode != LICD_REFRESH_MANUAL && !h->key_invalid &&
	    !h->deactivated && !h->idle &&
	    mono >= atomic_load_explicit(&h->next_refresh,
	    memory_order_relaxed);
	pthread_rwlock_unlock(&h->lk);
	/* A clock behind the mark forces one refresh at once; licd's time
	 * settles it when licd is reachable. */
	if (info->status == LICD_CLOCK_SUSPECT && h->rmode != LICD_REFRESH_MANUAL
	    && !atomic_exchange(&h->suspect_forced, 1))
		due = 1;
	if (!due)
		return info->decision;
	if (h->rmode == LICD_REFRESH_INLINE) {
		if (refresh_now(h, "/api/validate", 0, NULL, 0) == 0 ||
		    info->status == LICD_CLOCK_SUSPECT) {
			pthread_rwlock_rdlock(&h->lk);
			evaluate(h, now_wall(h), now_mono(h), feature, info);
			pthread_rwlock_unlock(&h->lk);
		}
	} else if (h->thr_started && !atomic_exchange(&h->kicked, 1)) {
		/* One wake-up per due refresh, not one per check. */
		pthread_mutex_lock(&h->bg_mu);
		h->kick = 1;
		pthread_cond_signal(&h->bg_cv);
		pthread_mutex_unlock(&h->bg_mu);
	}
	return info->decision;
}

int licd_feature(licd_t *h, const char *feature)
{
	struct licd_info in;

	licd_check(h, feature, &in);
	return in.status == LICD_VALID || in.status == LICD_REFRESH_DUE ||
	    in.status == LICD_GRACE;
}

int licd_limit(licd_t *h, const char *name, long long *value)
{
	struct licd_info in;
	size_t i;
	int rc = -1;

	licd_check(h, NULL, &in);
	if (in.status != LICD_VALID && in.status != LICD_REFRESH_DUE &&
	    in.status != LICD_GRACE)
		return -1;
	pthread_rwlock_rdlock(&h->lk);
	for (i = 0; h->has_lease && i < h->lease.nlimits; i++)
		if (strcmp(h->lease.limits[i].name, name) == 0) {
			*value = h->lease.limits[i].v;
			rc = 0;
			break;
		}
	pthread_rwlock_unlock(&h->lk);
	return rc;
}

const char *licd_installation_id(const licd_t *h)
{
	return h->iid;
}

/* ---- usage queue ---- */

/* One queued item per line: {"k":idempotency key,"f":feature,"q":n}.
 * Caller holds the dir lock. */
static int queue_append(struct licd *h, const char *key, const char *feature,
    long long q)
{
	struct json_object *o = json_object_new_object();
	char *line;
	const char *txt;
	int fd, rc = -1;
	size_t n;

	json_object_object_add(o, "k", json_object_new_string(key));
	json_object_object_add(o, "f", json_object_new_string(feature));
	json_object_object_add(o, "q", json_object_new_int64(q));
	txt = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	n = strlen(txt);
	if ((line = malloc(n + 2)) == NULL)
		goto out;
	memcpy(line, txt, n);
	line[n++] = '\n';
	fd = open(h->queue_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
	    O_NOFOLLOW, 0600);
	if (fd >= 0) {
		rc = write(fd, line, n) == (ssize_t)n && lcl_fsync(fd) == 0 ? 0 : -1;
		close(fd);
	}
out:
	free(line);
	json_object_put(o);
	return rc;
}

/* Sends the queue in order; the caller holds the dir lock, so two
 * processes never send the same items at once (if they did, licd's
 * idempotency would still count each once). Stops at the first item licd
 * could not answer. found: the result for that key (0 counted, 1 queued,
 * -1 refused). */
static int queue_flush(struct licd *h, const char *key, int *found,
    const char **msg)
{
	char *txt, *p, *nl;
	size_t len;
	int left = 0, stop = 0, rc;
	struct json_object *keep = NULL;

	txt = lcl_read_file(h->queue_path, 16 * 1024 * 1024, &len);
	if (txt == NULL)
		return 0;
	keep = json_object_new_array();
	for (p = txt; *p != '\0'; p = nl + 1) {
		struct json_object *it, *req, *ans;
		struct licd_response resp;
		const char *k, *f;
		int mine, keep_it;

		if ((nl = strchr(p, '\n')) == NULL)
			break;	/* a torn last line: not a committed item */
		*nl = '\0';
		it = json_tokener_parse(p);
		k = jstr(it, "k");
		f = jstr(it, "f");
		if (it == NULL || k == NULL || f == NULL ||
		    !json_object_object_get_ex(it, "q", &req) ||
		    !json_object_is_type(req, json_type_int)) {
			json_object_put(it);
			continue;
		}
		mine = key != NULL && strcmp(k, key) == 0;
		if (stop) {
			json_object_array_add(keep, it);
			left++;
			if (mine)
				*found = 1;
			continue;
		}
		req = request_body(h);
		json_object_object_add(req, "feature", json_object_new_string(f));
		json_object_object_add(req, "quantity", json_object_new_int64(
		    json_object_get_int64(json_object_object_get(it, "q"))));
		json_object_object_add(req, "idempotency_key",
		    json_object_new_string(k));
		rc = post(h, "/api/usage", req, &resp);
		json_object_put(req);
		keep_it = rc != 0 || resp.status >= 500;
		if (!keep_it && resp.status == 429) {
			/* licd's USAGE_LIMIT_EXCEEDED is an answer; nginx's
			 * RATE_LIMITED is not. */
			ans = parse_body(&resp);
			keep_it = ans == NULL || jstr(json_object_object_get(ans,
			    "error"), "code") == NULL || strcmp(jstr(
			    json_object_object_get(ans, "error"), "code"),
			    "USAGE_LIMIT_EXCEEDED") != 0;
			json_object_put(ans);
		}
		if (keep_it) {
			/* Not answered by licd itself: keep it and everything
			 * after it, in order. */
			free(resp.body);
			stop = 1;
			json_object_array_add(keep, it);
			left++;
			if (mine)
				*found = 1;
			continue;
		}
		if (mine) {
			*found = resp.status == 200 ? 0 : -1;
			if (resp.status == 200)
				*msg = "counted";
			else if (resp.status == 429)
				*msg = "usage limit exceeded";
			else if (resp.status == 409)
				*msg = "idempotency key reused";
			else
				*msg = "licd refused the usage item";
		}
		free(resp.body);
		json_object_put(it);
	}
	/* Rewrite what is left (or nothing) in one atomic step. */
	{
		size_t i, n = json_object_array_length(keep), cap = 1, used = 0;
		char *out = malloc(cap);

		for (i = 0; out != NULL && i < n; i++) {
			const char *s = json_object_to_json_string_ext(
			    json_object_array_get_idx(keep, i),
			    JSON_C_TO_STRING_PLAIN);
			size_t sl = strlen(s);
			char *o2 = realloc(out, cap + sl + 1);

			if (o2 == NULL) {
				free(out);
				out = NULL;
				break;
			}
			out = o2;
			cap += sl + 1;
			memcpy(out + used, s, sl);
			used += sl;
			out[used++] = '\n';
		}
		if (out == NULL)
			left = -1;
		else if (n == 0)
			unlink(h->queue_path);
		else if (lcl_write_atomic(h->queue_path, out, used) != 0)
			left = -1;
		free(out);
	}
	json_object_put(keep);
	free(txt);
	return left;
}

int licd_flush_usage(licd_t *h)
{
	int found = 1, rc = -1, lfd;
	const char *msg = NULL;

	if (!h->has_dir)
		return 0;
	pthread_mutex_lock(&h->usage_mu);
	if ((lfd = lock_file(h->qlock_path)) >= 0) {
		rc = queue_flush(h, NULL, &found, &msg);
		unlock_dir(lfd);
	}
	pthread_mutex_unlock(&h->usage_mu);
	return rc;
}

static int feature_ok(const char *f)
{
	size_t n = strlen(f), i;

	if (n == 0 || n > 64)
		return 0;
	for (i = 0; i < n; i++)
		if (!((f[i] >= 'a' && f[i] <= 'z') || (f[i] >= 'A' && f[i] <= 'Z')
		    || (f[i] >= '0' && f[i] <= '9') || f[i] == '.' || f[i] == '_'
		    || f[i] == '-'))
			return 0;
	return 1;
}

int licd_usage(licd_t *h, const char *feature, long long quantity,
    const char **msg)
{
	unsigned char r[18];
	char key[32];
	int found = 1, rc, lfd;
	const char *m = "queued until licd is reachable";

	if (msg != NULL)
		*msg = NULL;
	if (h->key_invalid || !h->has_dir || feature == NULL ||
	    !feature_ok(feature) || quantity < 1 || quantity > 1000000) {
		if (msg != NULL)
			*msg = h->key_invalid ? messages[LICD_INVALID_KEY] :
			    !h->has_dir ? "no state directory for the queue" :
			    "feature must be 1-64 of [A-Za-z0-9._-], quantity "
			    "1-1000000";
		return -1;
	}
	if (RAND_bytes(r, sizeof(r)) != 1)
		return -1;
	lcl_b64url_encode(r, sizeof(r), key);
	/* Appended and sent under one lock: no other process can send (and
	 * so answer for) this item in between. */
	pthread_mutex_lock(&h->usage_mu);
	if ((lfd = lock_file(h->qlock_path)) < 0 ||
	    queue_append(h, key, feature, quantity) != 0) {
		unlock_dir(lfd);
		pthread_mutex_unlock(&h->usage_mu);
		if (msg != NULL)
			*msg = "cannot write the usage queue";
		return -1;
	}
	if (h->thr_started) {
		/* The refresh thread sends it: the caller never waits on the
		 * network. */
		unlock_dir(lfd);
		pthread_mutex_unlock(&h->usage_mu);
		pthread_mutex_lock(&h->bg_mu);
		h->flush = 1;
		pthread_cond_signal(&h->bg_cv);
		pthread_mutex_unlock(&h->bg_mu);
		if (msg != NULL)
			*msg = "queued; the refresh thread sends it";
		return 1;
	}
	rc = queue_flush(h, key, &found, &m);
	unlock_dir(lfd);
	pthread_mutex_unlock(&h->usage_mu);
	if (msg != NULL)
		*msg = m;
	return rc < 0 ? -1 : found;
}

/* ---- deactivation ---- */

int licd_deactivate(licd_t *h, const char **msg)
{
	struct json_object *req, *ans;
	struct licd_response resp;
	const char *m = "licd is unreachable";
	int rc = -1;

	if (h->key_invalid) {
		if (msg != NULL)
			*msg = messages[LICD_INVALID_KEY];
		return -1;
	}
	licd_flush_usage(h);
	pthread_mutex_lock(&h->refresh_mu);
	req = request_body(h);
	if (post(h, "/api/deactivate", req, &resp) == 0) {
		ans = parse_body(&resp);
		if (resp.status == 200 && ans != NULL) {
			pthread_rwlock_wrlock(&h->lk);
			lcl_lease_free(&h->lease);
			h->has_lease = 0;
			h->verdict = LICD_NOT_ACTIVATED;
			h->verdict_at = now_wall(h) + (h->has_srv ?
			    h->srv_offset : 0);
			h->refreshed_at = h->verdict_at;
			h->deactivated = 1;
			save_state(h);
			pthread_rwlock_unlock(&h->lk);
			m = "deactivated";
			rc = 0;
		} else if (resp.status >= 400 && resp.status < 500) {
			m = "licd refused the deactivation";
		}
		json_object_put(ans);
		free(resp.body);
	}
	json_object_put(req);
	pthread_mutex_unlock(&h->refresh_mu);
	if (msg != NULL)
		*msg = m;
	return rc;
}

/* ---- floating seats: check-in ---- */

/* POST /api/checkin; on success the lease is forgotten here and on disk
 * (it would otherwise answer VALID for a seat that is someone else's).
 * Caller holds refresh_mu. */
static int checkin_locked(struct licd *h, const char **msg)
{
	struct json_object *req, *ans, *v;
	struct licd_response resp;
	int rc = -1;

	*msg = "licd is unreachable";
	req = request_body(h);
	if (post(h, "/api/checkin", req, &resp) == 0) {
		ans = parse_body(&resp);
		if (resp.status == 200 && ans != NULL) {
			pthread_rwlock_wrlock(&h->lk);
			lcl_lease_free(&h->lease);
			h->has_lease = 0;
			h->idle = 1;
			save_state(h);
			pthread_rwlock_unlock(&h->lk);
			*msg = json_object_object_get_ex(ans, "released", &v) &&
			    json_object_get_boolean(v) ? "seat checked in" :
			    "checked in; no seat was held";
			rc = 0;
		} else if (resp.status == 409) {
			*msg = "the license is node-locked: use licd_deactivate";
		} else if (resp.status >= 400 && resp.status < 500) {
			*msg = "licd refused the check-in";
		} else {
			*msg = "licd is unavailable";
		}
		json_object_put(ans);
		free(resp.body);
	}
	json_object_put(req);
	return rc;
}

int licd_checkin(licd_t *h, const char **msg)
{
	const char *m = messages[LICD_INVALID_KEY];
	int rc = -1;

	if (!h->key_invalid) {
		pthread_mutex_lock(&h->refresh_mu);
		rc = checkin_locked(h, &m);
		pthread_mutex_unlock(&h->refresh_mu);
	}
	if (msg != NULL)
		*msg = m;
	return rc;
}

/* ---- air-gapped ---- */

int licd_request_file(licd_t *h, const char *path, const char **msg)
{
	struct json_object *o, *meta;
	char nonce[32];
	const char *txt;
	int rc;

	if (h->key_invalid || !h->has_dir) {
		if (msg != NULL)
			*msg = h->key_invalid ? messages[LICD_INVALID_KEY] :
			    "no state directory for the pending request";
		return -1;
	}
	new_nonce(nonce);
	if (nonce[0] == '\0')
		return -1;
	o = json_object_new_object();
	meta = json_object_new_object();
	json_object_object_add(meta, "client",
	    json_object_new_string("liblicd-client/" LICD_CLIENT_VERSION));
	if (h->version != NULL)
		json_object_object_add(meta, "version",
		    json_object_new_string(h->version));
	json_object_object_add(o, "license_id",
	    json_object_new_string(h->license_id));
	json_object_object_add(o, "installation_id",
	    json_object_new_string(h->iid));
	json_object_object_add(o, "nonce", json_object_new_string(nonce));
	json_object_object_add(o, "metadata", meta);
	txt = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
	    JSON_C_TO_STRING_NOSLASHESCAPE);
	pthread_rwlock_wrlock(&h->lk);
	memcpy(h->pending_nonce, nonce, strlen(nonce) + 1);
	rc = save_state(h);
	pthread_rwlock_unlock(&h->lk);
	if (rc == 0) {
		size_t n = strlen(txt);
		char *buf = malloc(n + 2);

		rc = -1;
		if (buf != NULL) {
			memcpy(buf, txt, n);
			buf[n] = '\n';
			rc = lcl_write_atomic(path, buf, n + 1);
			free(buf);
		}
	}
	json_object_put(o);
	if (msg != NULL)
		*msg = rc == 0 ? "request written" : "cannot write the request";
	return rc;
}

/* The token in what licctl printed: its --json object's "lease", else the
 * last word with two dots (its text output, or the bare token). */
char *lcl_find_token(const char *txt, size_t len)
{
	struct json_tokener *t = json_tokener_new();
	struct json_object *o;
	char *out = NULL;
	const char *p, *best = NULL, *end = txt + len;
	size_t bn = 0;

	if (t != NULL && len < INT_MAX) {
		o = json_tokener_parse_ex(t, txt, (int)len);
		if (o != NULL && json_object_is_type(o, json_type_object) &&
		    jstr(o, "lease") != NULL)
			out = strdup(jstr(o, "lease"));
		json_object_put(o);
	}
	if (t != NULL)
		json_tokener_free(t);
	if (out != NULL)
		return out;
	for (p = txt; p < end;) {
		const char *s = p;
		int dots = 0;

		while (p < end && (strchr("-_.", *p) || (*p >= 'a' && *p <= 'z') ||
		    (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))) {
			dots += *p == '.';
			p++;
		}
		if (dots == 2 && p - s > 20) {
			best = s;
			bn = (size_t)(p - s);
		}
		if (p == s)
			p++;
	}
	return best ? strndup(best, bn) : NULL;
}

int licd_import(licd_t *h, const char *path, struct licd_info *info)
{
	struct lcl_expect e;
	struct lcl_lease l;
	size_t len;
	char *txt = NULL, *tok = NULL;
	const char *why = messages[LICD_INVALID_KEY];
	int64_t wall, mono, now;
	int rc = -1;

	memset(&l, 0, sizeof(l));
	if (h->key_invalid)
		goto out;
	why = "cannot read the lease file";
	if ((txt = lcl_read_file(path, 64 * 1024, &len)) == NULL)
		goto out;
	why = "no lease in the file";
	if ((tok = lcl_find_token(txt, len)) == NULL)
		goto out;
	wall = now_wall(h);
	mono = now_mono(h);
	pthread_mutex_lock(&h->refresh_mu);
	pthread_rwlock_wrlock(&h->lk);
	now = wall + (h->has_srv ? h->srv_offset : 0);
	e.issuer = h->issuer;
	e.sub = h->license_id;
	e.iid = h->iid;
	e.nonce = NULL;
	e.now_min = now;
	if (lcl_lease_verify(&h->keys, tok, &e, &l, &why) != 0)
		goto unlock;
	/* Replay: a lease answering a request must carry that request's
	 * nonce; one made without a request must be newer than ours. */
	why = "lease nonce is not the pending request's";
	if (l.nonce[0] != '\0' ? strcmp(l.nonce, h->pending_nonce) != 0 ||
	    h->pending_nonce[0] == '\0' :
	    (h->has_lease && l.iat <= h->lease.iat))
		goto unlock;
	why = "lease is older than the one held";
	if (h->has_lease && l.iat < h->lease.iat)
		goto unlock;
	install_lease(h, &l);
	h->verdict = LICD_VALID;
	h->verdict_at = 0;
	h->deactivated = 0;
	h->pending_nonce[0] = '\0';
	if (h->lease.iat > h->refreshed_at)
		h->refreshed_at = h->lease.iat;
	hwm_see(h, h->lease.iat, mono);
	save_state(h);
	why = NULL;
	rc = 0;
unlock:
	pthread_rwlock_unlock(&h->lk);
	pthread_mutex_unlock(&h->refresh_mu);
out:
	lcl_lease_free(&l);
	free(tok);
	free(txt);
	if (info != NULL) {
		pthread_rwlock_rdlock(&h->lk);
		evaluate(h, now_wall(h), now_mono(h), NULL, info);
		pthread_rwlock_unlock(&h->lk);
		if (why != NULL)
			info->message = why;
	}
	return rc;
}

/* ---- open/close ---- */

static char *dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

/* Refusals (REVOKED, SUSPENDED, …) come unsigned, so whoever can answer
 * for licd can lock an installation out: the library's own transport
 * speaks to licd over TLS only, plain http only to this machine (a local
 * proxy, tests). A vendor's transport answers for its own channel. */
static int url_allowed(const char *url)
{
	static const char *const local[] = { "127.", "localhost", "[::1]" };
	const char *host;
	size_t i, n;

	if (strncmp(url, "https://", 8) == 0)
		return url[8] != '\0';
	if (strncmp(url, "http://", 7) != 0)
		return 0;
	host = url + 7;
	for (i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
		n = strlen(local[i]);
		if (strncmp(host, local[i], n) != 0)
			continue;
		if (local[i][n - 1] == '.')
			n += strspn(host + n, "0123456789.");
		if (host[n] == '\0' || host[n] == ':' || host[n] == '/')
			return 1;
	}
	return 0;
}

int licd_open(const struct licd_config *cfg, licd_t **out, char *err,
    size_t errlen)
{
	struct licd *h;
	struct lcl_state st;
	char idh[17];
	unsigned char d[32];
	int64_t wall, mono, due;

	*out = NULL;
	if (cfg->base_url == NULL || cfg->issuer == NULL || cfg->jwks == NULL) {
		snprintf(err, errlen, "base_url, jwks and issuer are required");
		return -1;
	}
	if (cfg->transport == NULL && !url_allowed(cfg->base_url)) {
		snprintf(err, errlen, "base_url must be https:// "
		    "(plain http:// only to this machine)");
		return -1;
	}
	if (cfg->license_key == NULL || cfg->license_key[0] == '\0') {
		snprintf(err, errlen, "no license key");
		return -1;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	h->base_url = strdup(cfg->base_url);
	h->issuer = strdup(cfg->issuer);
	h->license_key = strdup(cfg->license_key);
	h->domain = dup_or_null(cfg->domain);
	h->version = dup_or_null(cfg->version);
	h->mode = cfg->mode;
	h->rmode = cfg->refresh;
	h->grace = cfg->offline_grace >= 0 ? cfg->offline_grace : 0;
	h->tol = cfg->clock_tolerance > 0 ? cfg->clock_tolerance : 600;
	h->interval = cfg->refresh_interval > 0 ? cfg->refresh_interval : 3600;
	h->retry = cfg->retry_interval > 0 ? cfg->retry_interval : 60;
	h->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 10000;
	h->transport = cfg->transport;
	h->targ = cfg->transport_arg;
	h->wall = cfg->wall_clock;
	h->mono = cfg->mono_clock;
	h->carg = cfg->clock_arg;
	h->keep_seat = cfg->keep_seat_on_close;
	pthread_rwlock_init(&h->lk, NULL);
	pthread_mutex_init(&h->refresh_mu, NULL);
	pthread_mutex_init(&h->usage_mu, NULL);
	pthread_mutex_init(&h->bg_mu, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&h->bg_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	if (h->base_url == NULL || h->issuer == NULL || h->license_key == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	{
		size_t n = strlen(h->base_url);

		while (n > 0 && h->base_url[n - 1] == '/')
			h->base_url[--n] = '\0';
	}
	if (lcl_keys_parse(cfg->jwks, &h->keys, err, errlen) != 0)
		goto fail;
	if (settle_iid(h, cfg, err, errlen) != 0)
		goto fail;
	settle_key(h);
	wall = now_wall(h);
	mono = now_mono(h);
	h->base_mono = mono;
	atomic_store(&h->base_wall, wall);
	h->verdict = LICD_VALID;
	if (cfg->state_dir != NULL && !h->key_invalid) {
		if (mkdir(cfg->state_dir, 0700) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "%s: %s", cfg->state_dir,
			    strerror(errno));
			goto fail;
		}
		sha256(h->iid, strlen(h->iid), "", 0, d);
		hex(d, 8, idh);
		if ((size_t)snprintf(h->state_path, sizeof(h->state_path),
		    "%s/%s-%s.state", cfg->state_dir, h->license_id, idh) >=
		    sizeof(h->state_path) - 32) {
			snprintf(err, errlen, "state_dir path too long");
			goto fail;
		}
		snprintf(h->queue_path, sizeof(h->queue_path), "%s/%s-%s.usage",
		    cfg->state_dir, h->license_id, idh);
		snprintf(h->lock_path, sizeof(h->lock_path), "%s/%s-%s.lock",
		    cfg->state_dir, h->license_id, idh);
		snprintf(h->qlock_path, sizeof(h->qlock_path),
		    "%s/%s-%s.usage.lock", cfg->state_dir, h->license_id, idh);
		h->has_dir = 1;
		if (lcl_state_read(h->state_path, &st) == 0) {
			merge_disk(h, &st, 1);
			h->persisted_hwm = st.hwm;
		}
		lcl_state_free(&st);
	}
	/* Due now without a lease or when the last answer is older than the
	 * interval; else when the interval (or half the lease, or a floating
	 * seat's renewal) runs out. */
	due = mono;
	if (h->has_lease && h->verdict == LICD_VALID) {
		int64_t next = h->refreshed_at + h->interval;
		int64_t half = h->lease.iat + (h->lease.exp - h->lease.iat) / 2;
		int64_t seat = seat_renewal(h);

		if (half < next)
			next = half;
		if (seat > 0 && h->refreshed_at + seat < next)
			next = h->refreshed_at + seat;
		if (next > wall)
			due = mono + (next - wall);
	}
	atomic_store(&h->next_refresh, due);
	if (h->rmode == LICD_REFRESH_BACKGROUND && !h->key_invalid) {
		if (pthread_create(&h->thr, NULL, bg_main, h) != 0) {
			snprintf(err, errlen, "cannot start the refresh thread");
			goto fail;
		}
		h->thr_started = 1;
	}
	h->opened = 1;
	*out = h;
	return 0;
fail:
	licd_close(h);
	return -1;
}

void licd_close(licd_t *h)
{
	if (h == NULL)
		return;
	if (h->thr_started) {
		pthread_mutex_lock(&h->bg_mu);
		h->stopping = 1;
		pthread_cond_signal(&h->bg_cv);
		pthread_mutex_unlock(&h->bg_mu);
		pthread_join(h->thr, NULL);
	}
	/* A floating seat this process holds goes back at once (a borrowed
	 * one is kept: the laptop goes offline with it). */
	if (h->opened && !h->keep_seat && !h->key_invalid && !h->deactivated &&
	    !h->idle && seat_renewal(h) > 0 && now_wall(h) + (h->has_srv ?
	    h->srv_offset : 0) < h->lease.exp) {
		const char *msg;

		pthread_mutex_lock(&h->refresh_mu);
		checkin_locked(h, &msg);
		pthread_mutex_unlock(&h->refresh_mu);
	}
	/* Keep the clock mark for the next start. */
	if (h->has_dir && hwm_at(h, now_mono(h)) > h->persisted_hwm) {
		pthread_rwlock_wrlock(&h->lk);
		save_state(h);
		pthread_rwlock_unlock(&h->lk);
	}
	lcl_lease_free(&h->lease);
	lcl_keys_free(&h->keys);
	free(h->base_url);
	free(h->issuer);
	free(h->license_key);
	free(h->domain);
	free(h->version);
	pthread_rwlock_destroy(&h->lk);
	pthread_mutex_destroy(&h->refresh_mu);
	pthread_mutex_destroy(&h->usage_mu);
	pthread_mutex_destroy(&h->bg_mu);
	pthread_cond_destroy(&h->bg_cv);
	free(h);
}
