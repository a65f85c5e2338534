/*
 * jwt: compact JWS sign/verify for license keys and leases, on OpenSSL EVP
 * with keys parsed once per process (libjwt 1.10 re-parses the PEM on every
 * call and lets the token choose the algorithm; see docs/DESIGN.md).
 * Prefix jws_ (libjwt owns jwt_).
 *
 * Verification never lets the token pick the algorithm: the kid selects a
 * loaded key and the key fixes the one algorithm accepted (ES256 for P-256,
 * EdDSA for Ed25519). alg none, HMAC algs, unknown kids, a wrong typ and
 * bad signatures all fail.
 */
#ifndef LICD_JWT_H
#define LICD_JWT_H

#include <stdatomic.h>
#include <stddef.h>
#include <openssl/evp.h>
#include <json-c/json.h>

#define JWS_MAX_TOKEN 8192
#define JWS_KID_MAX 64

enum jws_alg { JWS_ES256 = 1, JWS_EDDSA = 2 };

enum jws_status {
	JWS_OK = 0,
	JWS_EMALFORMED = -1,	/* not three base64url parts of JSON */
	JWS_EALG = -2,		/* alg missing, unsupported or not the key's */
	JWS_EKID = -3,		/* kid missing or unknown */
	JWS_ETYP = -4,		/* typ is not the expected one */
	JWS_ESIG = -5,		/* signature does not verify */
	JWS_EINTERNAL = -6,
};

/* A key of a ring jws_keyring_load_lazy loaded is its file's text until
 * a signature check needs it (alg 0, pkey NULL, ready 0 meanwhile). */
struct jws_key {
	char kid[JWS_KID_MAX];
	enum jws_alg alg;
	EVP_PKEY *pkey;		/* private when this key signs */
	int is_private;
	char *pem;		/* lazy: the public key file's text */
	atomic_int ready;	/* alg and pkey are set */
};

struct jws_keyring {
	struct jws_key *keys;
	size_t n;
	const struct jws_key *signer;	/* NULL when no private key loaded */
};

/* Frees this thread's header/claims parser and signing context (when a
 * worker thread ends). */
void jws_thread_end(void);

/* SHA-256 of n bytes at p into d, without setting up OpenSSL's
 * providers. */
void jws_sha256_digest(const void *p, size_t n, unsigned char d[32]);

/* Sets OpenSSL up without its error strings; for a program's start,
 * before anything else uses OpenSSL (the first setup decides). */
void jws_lib_init(void);

/* Loads every <kid>.pub in dir for verification and the private key named
 * by dir/current for signing. 0 ok, -1 with err. */
int jws_keyring_load(const char *dir, struct jws_keyring *kr, char *err,
    size_t errlen);
/* The same without any private key: for programs that never sign. */
int jws_keyring_load_public(const char *dir, struct jws_keyring *kr,
    char *err, size_t errlen);
/* The public keys as jws_keyring_load_public finds them, each read but
 * not parsed: OpenSSL is not set up until a signature is checked (a
 * program that only compares keys with the stored ones, or finds them in
 * its verified-key cache, never sets it up). The files' keys are not
 * checked: do that first (jws_keyring_load_public, in a child). */
int jws_keyring_load_lazy(const char *dir, struct jws_keyring *kr,
    char *err, size_t errlen);
void jws_keyring_free(struct jws_keyring *kr);

/* Signs claims (a JSON object text) with the keyring's signer under header
 * {"alg","typ","kid"}. *out is malloc'd; caller frees. */
int jws_sign(const struct jws_keyring *kr, const char *typ, const char *claims,
    size_t claims_len, char **out);

/* Raw signature length of both algorithms (ES256 r||s, Ed25519). */
#define JWS_SIG_LEN 64

/* 1 when the ES256 signature r||s has s <= n/2. ECDSA accepts (r, s) and
 * (r, n - s) alike; licd signs only the low one and jws_verify refuses
 * the other, as it refuses base64url whose unused last bits are not zero
 * (jws_b64url_decode): every token has one accepted text. (Ed25519's
 * s < L is checked by OpenSSL.) */
int jws_es256_low_s(const unsigned char sig[JWS_SIG_LEN]);

/* jws_sign that also copies the raw signature to sig (when not NULL). */
int jws_sign_raw(const struct jws_keyring *kr, const char *typ,
    const char *claims, size_t claims_len, char **out,
    unsigned char sig[JWS_SIG_LEN]);

/* Rebuilds a token jws_sign_raw made, from the same typ and claims bytes
 * and the signature it returned, without signing again. Both ECDSA and
 * Ed25519 signatures verify for the exact bytes they were made over, so the
 * result is the same valid token. */
int jws_join(const struct jws_keyring *kr, const char *typ, const char *claims,
    size_t claims_len, const unsigned char sig[JWS_SIG_LEN], char **out);

/* Verifies token and requires header typ == typ. On JWS_OK *claims is the
 * parsed payload object (caller puts it) and *kid the key used. */
int jws_verify(const struct jws_keyring *kr, const char *token, size_t len,
    const char *typ, struct json_object **claims, const struct jws_key **kid);

/* The claims of token, verifying only that it is three parts of JSON and
 * that its kid is a loaded key's: for a caller that authenticates the
 * token another way (lic_key_id). JWS_OK: *claims to be put by the
 * caller. */
int jws_peek(const struct jws_keyring *kr, const char *token, size_t len,
    struct json_object **claims);

/* The loaded key named by kid, or NULL. */
const struct jws_key *jws_key_find(const struct jws_keyring *kr,
    const char *kid);
/* The loaded key the header of token names, found by comparing the
 * header with the one licd writes for typ and that key (no decoding),
 * else by decoding it. NULL when the kid is missing or not loaded; kid
 * (when not NULL) receives the header's kid if it is well-formed
 * ([A-Za-z0-9_-]), else "". Nothing is verified. */
const struct jws_key *jws_token_key(const struct jws_keyring *kr,
    const char *token, size_t len, const char *typ, char kid[JWS_KID_MAX]);

/* SHA-256, fetched once per process: OpenSSL 3's implicit fetch inside
 * EVP_sha256() digests looks the algorithm up on every call (it showed in
 * profiles). NULL if OpenSSL has none. */
const EVP_MD *jws_sha256(void);

/* The JOSE name: "ES256" or "EdDSA". */
const char *jws_alg_name(enum jws_alg alg);

/* base64url without padding. encode: out has room for 4*ceil(n/3)+1.
 * decode: returns decoded length or -1 on any invalid input, padding and
 * non-zero unused bits in the last character included. */
size_t jws_b64url_encode(const unsigned char *in, size_t n, char *out);
long jws_b64url_decode(const char *in, size_t n, unsigned char *out,
    size_t outcap);

/* Public JWK (RFC 7517) of pkey with kid, use=sig and alg; new object. */
struct json_object *jws_jwk(const EVP_PKEY *pkey, const char *kid);
/* RFC 7638 thumbprint of pkey's public JWK, base64url. */
int jws_thumbprint(const EVP_PKEY *pkey, char *out, size_t outlen);
/* Algorithm implied by the key type, 0 if unsupported. */
enum jws_alg jws_key_alg(const EVP_PKEY *pkey);

#endif
