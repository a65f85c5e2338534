/*
 * liblicd-client internals: the embedded key set and lease verification
 * (jws.c), the state files (state.c), the default transport (http.c).
 * Prefix lcl_; hidden from the shared library's exports.
 */
#ifndef LICD_CLIENT_INTERNAL_H
#define LICD_CLIENT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include <json-c/json.h>

#include "licd.h"

#define LCL_HIDDEN __attribute__((visibility("hidden")))

/* The fuzz targets build without fsync (thousands of writes a second);
 * every other build syncs. */
#ifdef LCL_NO_FSYNC
#define lcl_fsync(fd) 0
#else
#define lcl_fsync(fd) fsync(fd)
#endif
#define LCL_MAX_TOKEN 16384
#define LCL_ID_MAX 129		/* installation ids, nonces: 128 + NUL */

enum lcl_alg { LCL_ES256 = 1, LCL_EDDSA = 2 };

struct lcl_key {
	char kid[96];
	enum lcl_alg alg;
	EVP_PKEY *pkey;
};

struct lcl_keys {
	struct lcl_key *k;
	size_t n;
};

/* Parses a JWKS document: every EC P-256 and OKP Ed25519 key with a kid.
 * Keys of other types are skipped; a key whose "alg" disagrees with its
 * type is an error. 0 ok, -1 with err. */
LCL_HIDDEN int lcl_keys_parse(const char *jwks, struct lcl_keys *ks,
    char *err, size_t errlen);
LCL_HIDDEN void lcl_keys_free(struct lcl_keys *ks);

/* Verifies a compact JWS: kid names an embedded key, alg is that key's
 * algorithm (whatever else the header says), typ equals typ, signature
 * verifies. 0 with *claims (caller puts) or -1 with a reason. */
LCL_HIDDEN int lcl_jws_verify(const struct lcl_keys *ks, const char *tok,
    size_t len, const char *typ, struct json_object **claims,
    const char **why);

LCL_HIDDEN long lcl_b64url_decode(const char *in, size_t n,
    unsigned char *out, size_t cap);
LCL_HIDDEN size_t lcl_b64url_encode(const unsigned char *in, size_t n,
    char *out);

/* A verified lease, flattened so that checks read plain memory. */
struct lcl_limit {
	char *name;
	long long v;
};

struct lcl_lease {
	char *token;
	char sub[64];
	char iid[LCL_ID_MAX];
	char nonce[LCL_ID_MAX];
	char plan[64];
	int64_t iat, exp;
	int64_t license_end;		/* 0: unknown or perpetual */
	int64_t grace_until;		/* 0: none */
	char **feat;
	size_t nfeat;
	struct lcl_limit *limits;
	size_t nlimits;
	char **domains;
	size_t ndomains;
	int has_domains;		/* the claim is present */
	/* A floating seat, from licd's answer beside the lease (exp is the
	 * seat's end, signed): seat_hb 0 means node-locked. */
	int64_t seat_hb;		/* next_heartbeat_in, seconds */
	int64_t borrowed_until;		/* 0: not borrowed */
	int overdraft;
};

/* What a lease must match beyond its signature. nonce NULL: not checked.
 * now_min: exp must be after it (0: not checked). */
struct lcl_expect {
	const char *issuer;
	const char *sub;
	const char *iid;
	const char *nonce;
	int64_t now_min;
};

/* Verifies token as a lease (typ lease+jwt) and fills l. 0 ok; -1 with a
 * reason (the lease is then not to be used). */
LCL_HIDDEN int lcl_lease_verify(const struct lcl_keys *ks, const char *token,
    const struct lcl_expect *e, struct lcl_lease *l, const char **why);
LCL_HIDDEN void lcl_lease_free(struct lcl_lease *l);

/* The lease token in what licctl printed for an offline lease: its --json
 * object's "lease", else the last word with two dots (its text output, or
 * the bare token). malloc'd, NULL when there is none. */
LCL_HIDDEN char *lcl_find_token(const char *txt, size_t len);

/* Domain rules of the server (docs/API.md). */
LCL_HIDDEN int lcl_domain_match(const char *pattern, const char *host);

/* The persistent state of one license in state_dir. */
struct lcl_state {
	char *lease;			/* token text, NULL if none */
	int64_t hwm;			/* clock high-water mark */
	int64_t refreshed_at;		/* last answer from licd (wall) */
	char verdict[32];		/* a refusal licd answered, "" none */
	int64_t verdict_at;
	char pending_nonce[LCL_ID_MAX];	/* of the last request file */
	int64_t gen;			/* +1 on every write */
	int64_t seat_hb, borrowed_until; /* the lease's seat (lcl_lease) */
	int overdraft;
};

/* Reads path; 0 with st filled, -1 when absent, unreadable or not our
 * format (the caller treats all three as no state). */
LCL_HIDDEN int lcl_state_parse(const char *text, size_t len,
    struct lcl_state *st);
LCL_HIDDEN int lcl_state_read(const char *path, struct lcl_state *st);
LCL_HIDDEN int lcl_state_write(const char *path, const struct lcl_state *st);
LCL_HIDDEN void lcl_state_free(struct lcl_state *st);

/* Writes data to path through a temporary file in the same directory,
 * fsync, rename and a directory fsync; mode 0600. */
LCL_HIDDEN int lcl_write_atomic(const char *path, const char *data,
    size_t len);
/* Reads a whole file of at most max bytes (malloc'd, NUL-terminated). */
LCL_HIDDEN char *lcl_read_file(const char *path, size_t max, size_t *len);

/* The default transport (libcurl). */
LCL_HIDDEN int lcl_http_post(void *arg, const char *url, const char *body,
    size_t len, long timeout_ms, struct licd_response *resp);

#endif
