/*
 * liblicd-client: the licensing client a vendor embeds in self-hosted
 * software. It answers "may this feature run?" from a verified, cached
 * lease (a JWS the licd server signs), refreshes that lease online, keeps
 * working offline for as long as the lease and the vendor's grace allow,
 * and refuses anything it cannot verify with the keys compiled in.
 *
 * Depends on OpenSSL's libcrypto, json-c and (for the default transport)
 * libcurl. No global state: everything lives in a licd_t handle, one per
 * license. docs/CLIENT.md is the guide.
 *
 * Thread safety: every function taking a licd_t may be called from any
 * number of threads at once on the same handle, except licd_close (no
 * other call may be running or start). licd_check never blocks on the
 * network unless the vendor chose LICD_REFRESH_INLINE, and then only the
 * one thread that performs a due refresh waits; the others answer from
 * the cache meanwhile. Several processes may share one state directory:
 * the files are locked while written and merged, never torn.
 */
#ifndef LICD_CLIENT_H
#define LICD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LICD_CLIENT_VERSION "1.0.0"

/* What the license says, in the order the checks are made (docs/CLIENT.md
 * tells what to do on each). */
enum licd_status {
	LICD_VALID = 0,			/* lease verified and current */
	LICD_REFRESH_DUE,		/* valid, in the last quarter of the
					   lease's life: refreshing has failed */
	LICD_GRACE,			/* lease ended; inside the offline grace
					   the vendor allows */
	LICD_EXPIRED,			/* license ended, or grace used up */
	LICD_REVOKED,
	LICD_SUSPENDED,
	LICD_INVALID_KEY,		/* the license key is not one of ours */
	LICD_DOMAIN_NOT_ALLOWED,
	LICD_FEATURE_NOT_LICENSED,
	LICD_TOO_MANY_INSTALLATIONS,
	LICD_NOT_ACTIVATED,		/* no lease yet (or deactivated) */
	LICD_CLOCK_SUSPECT,		/* wall clock behind what was seen */
};
#define LICD_NSTATUS 12

/* What the vendor's software should do about a status. */
enum licd_mode {
	LICD_FAIL_CLOSED = 0,		/* anything but VALID/REFRESH_DUE/GRACE
					   denies */
	LICD_DEGRADE,			/* ...runs the free tier instead */
	LICD_ADVISORY,			/* always allows; status is reported */
};

enum licd_decision {
	LICD_DENY = 0,
	LICD_ALLOW = 1,
	LICD_FREE_TIER = 2,
};

enum licd_refresh_mode {
	LICD_REFRESH_BACKGROUND = 0,	/* a thread of the handle refreshes
					   (a floating seat at licd's
					   next_heartbeat_in) */
	LICD_REFRESH_INLINE,		/* the licd_check that finds a refresh
					   due performs it */
	LICD_REFRESH_MANUAL,		/* only licd_refresh() does */
};

/* The answer of licd_check and of the online calls. Times are Unix
 * seconds, 0 when not applicable or unknown. message is a static,
 * human-readable sentence a vendor may show. */
struct licd_info {
	enum licd_status status;
	enum licd_decision decision;	/* the mode's answer to status */
	int64_t lease_expires;
	int64_t grace_ends;		/* lease end + offline grace (capped at
					   the license's end) */
	int64_t license_ends;		/* from the lease's claims */
	int64_t checked_at;		/* the time the answer was made for */
	const char *message;
	/* Floating licenses (0 on node-locked ones). The lease ends with the
	 * seat: a seat not renewed by seat_expires has lapsed, and the
	 * status follows the lease's rules (GRACE, then the mode's answer). */
	int64_t seat_expires;		/* = lease_expires */
	int64_t borrowed_until;		/* the seat is borrowed until then */
	int overdraft;			/* granted beyond the seat limit */
};

/* A response from the transport. body is malloc'd by the transport and
 * freed by the library. */
struct licd_response {
	int status;			/* HTTP status */
	char *body;
	size_t len;
};

/* POST body (JSON) to url and fill resp. Returns 0 when an HTTP answer
 * arrived (any status), -1 when none did (network down, timeout). Called
 * from the refreshing thread, never with a handle lock held. */
typedef int (*licd_transport_fn)(void *arg, const char *url,
    const char *body, size_t len, long timeout_ms,
    struct licd_response *resp);

/* Wall clock in Unix seconds and a monotonic clock in seconds, for tests
 * and for vendors with a trusted time source; NULL uses the system's. */
typedef int64_t (*licd_clock_fn)(void *arg);

struct licd_config {
	/* Embedded by the vendor at build time. */
	const char *base_url;		/* "https://licensing.example.com" */
	const char *jwks;		/* JWKS JSON text: the only keys trusted */
	const char *issuer;		/* the server's `issuer` */
	const char *product;		/* names derived installation ids */

	/* Per installation. */
	const char *license_key;
	const char *installation_id;	/* NULL: LICD_INSTALLATION_ID, else
					   derived from /etc/machine-id */
	const char *state_dir;		/* lease cache, clock mark, usage queue */
	const char *domain;		/* sent to validate; checked offline */
	const char *version;		/* sent to validate/heartbeat */

	enum licd_mode mode;
	enum licd_refresh_mode refresh;
	long offline_grace;		/* seconds after the lease ends (7 days) */
	long clock_tolerance;		/* seconds (600) */
	long refresh_interval;		/* seconds between refreshes (3600) */
	long retry_interval;		/* first retry after a failure (60),
					   doubling up to refresh_interval */
	long timeout_ms;		/* per HTTP request (10000) */

	licd_transport_fn transport;	/* NULL: libcurl */
	void *transport_arg;
	licd_clock_fn wall_clock, mono_clock;
	void *clock_arg;

	/* Floating licenses: licd_close checks the seat in unless it is
	 * borrowed or this is set (a short-lived command that reports on a
	 * seat other runs of it hold, as licd-check does). */
	int keep_seat_on_close;
};

typedef struct licd licd_t;

/* Fills cfg with the defaults above (all pointers NULL). */
void licd_config_init(struct licd_config *cfg);

/* Opens a handle: parses the embedded keys, verifies the license key
 * offline, settles the installation id, loads the lease cache (verified
 * again; a corrupt or foreign file counts as absent). Strings are copied.
 * 0 ok; -1 with a reason in err (no handle). A license key that does not
 * verify is not an error here: the handle answers LICD_INVALID_KEY. */
int licd_open(const struct licd_config *cfg, licd_t **out, char *err,
    size_t errlen);
/* Stops the handle's thread, keeps the clock mark and, on a floating
 * license, checks a live seat in (POST /api/checkin, one attempt within
 * timeout_ms) unless it is borrowed or cfg.keep_seat_on_close is set. */
void licd_close(licd_t *h);

/* The decision for feature (NULL: the license as a whole), from the cached
 * lease; info (may be NULL) gets the details. May start or perform a
 * refresh that is due (refresh mode). No allocation after the first call. */
enum licd_decision licd_check(licd_t *h, const char *feature,
    struct licd_info *info);

/* Validates online now (fresh nonce, strict verification). 0 when licd
 * answered (info says what), -1 when it could not be reached or its
 * answer was refused (info then holds the cached answer). */
int licd_refresh(licd_t *h, struct licd_info *info);

/* Verified claims only; 0/absent when there is no usable lease. */
int licd_feature(licd_t *h, const char *feature);
int licd_limit(licd_t *h, const char *name, long long *value);

/* POST /api/heartbeat (renews the lease like a refresh). */
int licd_heartbeat(licd_t *h, struct licd_info *info);

/* Floating licenses. licd_borrow holds this installation's seat for days
 * days (POST /api/borrow, taking a seat if it holds none) and installs the
 * lease licd signs for that long, verified as licd_refresh verifies: the
 * handle then answers VALID offline until the borrow ends. 0 when licd
 * answered (info says what: VALID with info->borrowed_until set is a
 * borrow); -1 unreachable or its answer refused; LICD_BORROW_REFUSED when
 * licd refused the borrow itself (more days than the license's
 * max_borrow_days, or a node-locked license; info->message says which).
 *
 * licd_checkin releases the seat now (POST /api/checkin; a borrowed one
 * is returned early) and forgets the lease, here and in the state
 * directory; the handle refreshes nothing by itself until licd_refresh or
 * licd_borrow takes a seat again. 0 done (also when no seat was held), -1
 * unreachable or refused (msg says why). */
#define LICD_BORROW_REFUSED (-2)
int licd_borrow(licd_t *h, int days, struct licd_info *info);
int licd_checkin(licd_t *h, const char **msg);

/* Frees the seat (POST /api/deactivate) and forgets the lease. Usage still
 * queued is sent first. 0 done, -1 unreachable or refused (msg says). */
int licd_deactivate(licd_t *h, const char **msg);

/* Records quantity of feature. The item gets an idempotency key and goes
 * to the on-disk queue first; the queue is then sent in order. With
 * LICD_REFRESH_BACKGROUND the handle's thread sends it and this returns 1
 * at once; otherwise it is sent here: 0 when this item was counted by
 * licd, 1 when it is queued (offline; a later licd_usage or
 * licd_flush_usage sends it), -1 when licd refused it (msg says why; it
 * is dropped) or it could not be stored. */
int licd_usage(licd_t *h, const char *feature, long long quantity,
    const char **msg);
/* Sends the queue. Returns the number of items left queued, -1 on a
 * local error. */
int licd_flush_usage(licd_t *h);

/* Air-gapped installations: writes the JSON request that
 * `licctl lease offline --request FILE` takes (0600, atomically), and
 * installs the lease it produced (raw token, licctl's --json output or
 * its text output) after the same verification as an online answer. */
int licd_request_file(licd_t *h, const char *path, const char **msg);
int licd_import(licd_t *h, const char *path, struct licd_info *info);

const char *licd_installation_id(const licd_t *h);
const char *licd_status_name(enum licd_status s);
const char *licd_decision_name(enum licd_decision d);

#ifdef __cplusplus
}
#endif
#endif
