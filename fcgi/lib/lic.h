/*
 * lic: the license rules shared by the programs: verifying a license key,
 * reading a license row, deciding its result code, domain matching, the
 * license JSON of responses, and signing leases. Pure where possible so the
 * unit tests cover the rules without a database.
 */
#ifndef LICD_LIC_H
#define LICD_LIC_H

#include <time.h>
#include <json-c/json.h>
#include <libpq-fe.h>

#include "json.h"
#include "jwt.h"

#define LIC_UUID_LEN 36
/* Columns of the license_view view (sql/), in order; lic_from_row reads
 * them starting at a given column. */
#define LIC_NCOLS 9

struct lic {
	char id[LIC_UUID_LEN + 1];
	char customer_id[LIC_UUID_LEN + 1];
	char plan[64];
	char status[16];		/* as stored */
	long long expires_at;		/* 0 = perpetual */
	long long grace_until;		/* 0 = none */
	struct json_object *features;	/* array of strings */
	struct json_object *limits;	/* object of integers */
	struct json_object *domains;	/* array of patterns */
};

enum lic_status { LIC_OK = 0, LIC_INVALID = -1, LIC_ERROR = -2,
	LIC_UNKNOWN = -3 };

/* Loads the signing keys and issuer once per process (program init). */
int lic_init(void);
/* The same with public keys only, for programs that never sign (usage):
 * no private key is ever read into them. */
int lic_init_verifier(void);
/* lic_init for programs called seldom (revoke, checkout, webhook): the
 * keys are checked now as lic_init loads them (in a child process; the
 * same errors and warning), and loaded at their first use. */
int lic_init_deferred(void);
/* Loads keys_dir again (SIGHUP: added, activated and retired keys); the
 * loaded keys stay when that fails. A key naming a kid that is not loaded
 * but whose <kid>.pub is in keys_dir reloads by itself. 0 or -1. */
int lic_keys_reload(void);
/* The current keys; read once per use, a reload may replace them (the
 * replaced ones stay valid until the process exits). */
const struct jws_keyring *lic_keyring(void);
/* touch_interval as a statement parameter and as a number, and
 * heartbeat_interval: read once at init, not per request. */
const char *lic_touch_param(void);
long lic_touch_interval(void);
long lic_heartbeat_interval(void);

/* Verifies a license key (typ JWT, known kid, key's alg, signature, iss,
 * sub a UUID). LIC_OK fills id. claims may be NULL. With claims NULL a
 * key verified before in this process is answered from a cache. */
int lic_verify_key_full(const char *key, char id[LIC_UUID_LEN + 1],
    struct json_object **claims);	/* never cached */
int lic_verify_key(const char *key, char id[LIC_UUID_LEN + 1],
    struct json_object **claims);

/*
 * The license id a key names, for the handler's one read of its row, and
 * then that row's word on the key. lic_key_id answers from the
 * verified-key cache (*known = 1), else from the key's payload without
 * verifying it (*known = 0; the kid must be one of ours, or LIC_INVALID).
 * Such a key must then be confirmed by lic_lookup_read before anything
 * is answered or written: it is authentic when it is byte for byte the
 * key the database holds for that license (licenses.license_key, as
 * issued), else when it verifies (a key re-signed since, or a forgery).
 * Either way it is cached like a verified key.
 */
int lic_key_id(const char *key, char id[LIC_UUID_LEN + 1], int *known);

/*
 * What the license cache keeps of the key an entry was filled for
 * (cache.h), so that a key the verified-key cache does not hold is still
 * answered from memory when it is that very text: the first half of its
 * SHA-256 (the verified-key cache's digest: a forged key would need a
 * 128-bit second preimage) and the generation of the key ring it was
 * authenticated under (0: none), so that a ring change (a retired kid)
 * voids every stored tag as it empties the verified-key cache.
 */
#define LIC_KEYTAG_LEN 16
struct lic_keytag {
	unsigned char digest[LIC_KEYTAG_LEN];
	unsigned gen;
};
/* lic_key_id, and on LIC_OK the key's tag: the ring it is authenticated
 * under once lic_key_id knew it or the row confirmed it (the ring read
 * before either, so a ring replaced meanwhile leaves a stale tag, never
 * a newer one). */
int lic_key_id_tag(const char *key, char id[LIC_UUID_LEN + 1], int *known,
    struct lic_keytag *tag);
/* 1 when stored (an entry's) is seen's (a call's) key text under the
 * same ring, compared in constant time; 0 when either is none. */
int lic_keytag_match(const struct lic_keytag *stored,
    const struct lic_keytag *seen);
/* That confirmation for a key lic_key_id did not know, given the key the
 * license holds as issued (stored, NULL: none): LIC_OK and cached, or
 * LIC_INVALID. lic_lookup_read calls it; usage, whose row stays in
 * PostgreSQL, calls it with the stored key licd_usage_add_batch returns
 * when the bytes differ, or with key itself once the bytes matched there
 * (to cache it). */
int lic_key_confirm(const char *key, const char *id, const char *stored);

/* A licd_lookup row (sql/functions/40_lookup.sql, lookup.h): the license,
 * its installation (first_seen 0 when there is none) and the database's
 * clock, which decides expiry and lease times. */
struct lic_lookup {
	struct lic l;
	int active;			/* the installation is active */
	long long first_seen, last_seen;
	time_t now;
	const char *domain;		/* the installation's, in res, or NULL */
	int needs_touch;		/* its refresh is due (touch.h) */
	/* Floating seats (sql/functions/50_floating.sql): seat_ttl 0 for
	 * a node-locked license; else the installation's seat lease (0:
	 * none), the end of its borrow (0: none) and whether it is an
	 * overdraft seat. */
	long seat_ttl;
	long long seat_expires, borrowed_until;
	int seat_overdraft;
};

/* A floating seat is live while seat_expires > now; validate and
 * heartbeat renew it once less than this much of ttl is left, so that a
 * client calling every ttl/3 renews on each call and one calling more
 * often writes about every ttl/4. */
#define LIC_SEAT_RENEW_LEFT(ttl) ((ttl) - (ttl) / 4)

/* Reads the row of a licd_lookup result, once that row vouches for key
 * (above) unless known (lic_key_id). LIC_UNKNOWN: no row;
 * LIC_INVALID: the key is not the license's; LIC_ERROR: a bad row. On
 * LIC_OK the caller lic_free()s lk->l, and res outlives lk->domain. */
int lic_lookup_read(const PGresult *res, const char *key, const char *id,
    int known, struct lic_lookup *lk);

/* A licd_seat row (sql/functions/50_floating.sql): the code, the
 * installation's first and last contact, its seat's expiry and borrow end
 * (0: none), whether it is an overdraft seat. The code points into res. */
struct lic_seat {
	const char *code;
	long long first, last, expires, borrowed;
	int overdraft;
};

/* Reads licd_seat's columns from columns col..col+5 of row (a
 * licd_seat_batch row has its ordinal first): LIC_OK, or LIC_ERROR when
 * there is no such row. */
int lic_seat_read(const PGresult *res, int row, int col, struct lic_seat *s);

/* Fills l from columns col..col+LIC_NCOLS-1 of row; lic_free releases. */
int lic_from_row(const PGresult *res, int row, int col, struct lic *l);
void lic_free(struct lic *l);

/* Result code for the license alone at time now: VALID, EXPIRED, REVOKED
 * or SUSPENDED; *effective is the status to show ("active", "expired"…). */
const char *lic_state(const struct lic *l, time_t now, const char **effective);
/* End of validity (expiry or grace end, the later), 0 if none. */
long long lic_valid_until(const struct lic *l);

int lic_has_feature(const struct lic *l, const char *feature);
/* limits[name] as an integer; -1 when absent or not a non-negative
 * integer. An integer written with a fraction (10.0), which the schema's
 * check admits and jsonb keeps as written, is that integer, as the SQL
 * functions read it (::numeric::bigint). */
long long lic_limit(const struct lic *l, const char *name);

/* Contract matching: exact host or "*.suffix" (any depth below, never the
 * suffix itself); case-insensitive; one trailing dot ignored on either. */
int lic_domain_match(const char *pattern, const char *host);
/* 1 when the license has no restrictions or host matches one of them. */
int lic_domain_allowed(const struct lic *l, const char *host);

/* {"id","customer_id","plan","status","expires_at","grace_until",
 *  "features","limits","domain_restrictions"} as a new object. */
struct json_object *lic_json(const struct lic *l, time_t now);

/* Signs a lease (typ lease+jwt) for installation iid; exp is now + ttl
 * (0: the configured lease_ttl), never past lic_valid_until. */
int lic_lease(const struct lic *l, const char *iid, const char *nonce,
    time_t now, long ttl, char **lease, time_t *exp);

/* Signs a license key (typ JWT) carrying l's claims; iat = issued_at.
 * *key is malloc'd. Needs a keyring with a signer (lic_init or
 * lic_init_keys). */
int lic_sign_key(const struct lic *l, long long issued_at, char **key);
/* The query of the licenses to sign: license_view's columns, then
 * issued_at in epoch seconds; the caller appends its condition. A caller
 * that needs more columns or tables writes it from LIC_KEY_COLS (they come
 * first) and LIC_KEY_FROM (v the view, l the licenses row). */
#define LIC_KEY_COLS "v.*, extract(epoch FROM l.issued_at)::bigint"
#define LIC_KEY_FROM "license_view v JOIN licenses l ON l.id = v.id"
#define LIC_KEY_ROW "SELECT " LIC_KEY_COLS " FROM " LIC_KEY_FROM " WHERE "
/* lic_sign_key of row `row` of a LIC_KEY_ROW result. The caller stores
 * the key under the signer's kid with licd_license_keys_store
 * (sql/functions/60_admin.sql). */
int lic_sign_row(const PGresult *res, int row, char **key);
/* lic_init without logging setup: for licctl. */
int lic_init_keys(char *err, size_t errlen);

/* Response builders for validate/heartbeat: {"valid","code","license"}
 * (license only when l != NULL), then "installation", then "lease" and
 * "lease_expires_at" (LIC_ERROR when signing fails). */
struct json_object *lic_result(const char *code, const struct lic *l,
    time_t now);
void lic_add_installation(struct json_object *o, const char *iid,
    const char *status, long long first_seen, long long last_seen);
/* A lease: exp = until (a floating seat's lease or borrow; 0: the lease
 * duration), never past lic_valid_until. Without a nonce it is reused
 * within lease_reuse for the same license, installation and until. */
int lic_add_lease_until(struct json_object *o, const struct lic *l,
    const char *iid, const char *nonce, time_t now, long long until);
/* The lease lic_add_lease_until adds, as text (*lease, the caller
 * frees it) and its exp, for a caller that signs before it answers;
 * reused and kept for reuse as there. */
int lic_lease_until(const struct lic *l, const char *iid, const char *nonce,
    time_t now, long long until, char **lease, long long *exp);
/* Adds a lease from lic_lease_until: "lease" and "lease_expires_at". */
void lic_put_lease(struct json_object *o, const char *lease, long long exp);
/* The lease lic_add_lease_until keeps for reuse with until (without a
 * nonce) is handed out no more: a floating seat renewed, whose end moved,
 * leaves its way to the signatures still asked for instead of them
 * taking turns in the ways left. */
void lic_lease_forget(const struct lic *l, const char *iid, long long until);
/* A floating seat's fields of an answer: "seat_expires_at",
 * "next_heartbeat_in" (a third of ttl), "borrowed_until", "overdraft". */
void lic_add_seat(struct json_object *o, long ttl, long long expires,
    long long borrowed_until, int overdraft);

/* RFC 3339 UTC ("2027-01-31T00:00:00Z"); JSON null for t == 0. */
void lic_ts(long long t, char out[32]);
struct json_object *lic_ts_json(long long t);

int lic_uuid_valid(const char *s);
/* A license id in binary: 0, or -1 for a text other than a UUID in the
 * form the database writes (lowercase hex, dashed). */
int lic_uuid_pack(const char *id, unsigned char b[16]);
void lic_uuid_unpack(const unsigned char b[16], char id[LIC_UUID_LEN + 1]);

/* The fields an installation's calls share (docs/API.md): validate,
 * heartbeat, deactivate, checkin, borrow, usage. */
extern const struct js_field LIC_F_KEY, LIC_F_IID, LIC_F_VERSION, LIC_F_NONCE;

#endif
