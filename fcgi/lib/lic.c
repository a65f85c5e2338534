/* lic: see lic.h. */
#include "lic.h"
#include "config.h"
#include "json.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/*
 * The keys a process holds: a ring, replaced whole when keys_dir changes
 * (lic_keys_reload: SIGHUP, or a key naming a kid that is not loaded but
 * whose <kid>.pub now exists). Requests read the current ring once and
 * use it to the end; a replaced ring is kept until the process exits,
 * so no request ever sees its keys freed. Each ring has a generation:
 * the verified-key and lease caches hold entries of the current one only.
 */
struct ring {
	struct jws_keyring kr;
	unsigned gen;
	struct ring *prev;
};

static _Atomic(struct ring *) ring_cur;
static pthread_mutex_t reload_mu = PTHREAD_MUTEX_INITIALIZER;
static int ring_signs;
static const char *keys_dir;
static time_t reload_failed;
static int ring_deferred;	/* lic_init_deferred: loaded at first use */
static int ring_lazy;		/* the next ring's keys parsed at first use */
static pthread_mutex_t first_mu = PTHREAD_MUTEX_INITIALIZER;
static time_t first_failed;
static const char *issuer;
/* The payload of every key lic_sign_key writes starts with these bytes,
 * {"iss":"<issuer>","sub":" (json-c's escaping of the issuer included):
 * how lic_key_id_tag finds a key's license without parsing it. */
static char *key_head;
static size_t key_head_len;
static long lease_ttl;
static long heartbeat_interval, touch_interval;
static char touch_param[24];

static void caches_clear(unsigned gen);

/* No keys before lic_init (the unit tests' license rules). */
static struct ring no_keys;

static int ring_load(char *err, size_t errlen);

/* The current ring as it is, without loading a deferred one: for code
 * that holds reload_mu. */
static struct ring *ring_held(void)
{
	struct ring *r = atomic_load_explicit(&ring_cur, memory_order_acquire);

	return r != NULL ? r : &no_keys;
}

/* lic_init_deferred's first load; a failure is logged and tried again a
 * second later at the earliest (meanwhile: no keys). */
static struct ring *ring_first(void)
{
	char err[512];

	pthread_mutex_lock(&first_mu);
	if (atomic_load(&ring_cur) == NULL && time(NULL) != first_failed) {
		pthread_mutex_lock(&reload_mu);
		if (atomic_load(&ring_cur) == NULL &&
		    ring_load(err, sizeof(err)) != 0) {
			first_failed = time(NULL);
			log_error("keys not loaded: %s", err);
		}
		pthread_mutex_unlock(&reload_mu);
	}
	pthread_mutex_unlock(&first_mu);
	return ring_held();
}

static struct ring *ring(void)
{
	struct ring *r = atomic_load_explicit(&ring_cur, memory_order_acquire);

	if (r == NULL && ring_deferred)
		return ring_first();
	return r != NULL ? r : &no_keys;
}

static void rings_free(void)
{
	struct ring *r = atomic_exchange(&ring_cur, NULL), *p;

	for (; r != NULL; r = p) {
		p = r->prev;
		jws_keyring_free(&r->kr);
		free(r);
	}
}

/* A new ring from keys_dir, made current. Called with reload_mu held (or
 * before any thread runs). */
static int ring_load(char *err, size_t errlen)
{
	struct ring *r = calloc(1, sizeof(*r)), *old = atomic_load(&ring_cur);

	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if ((ring_signs ? jws_keyring_load(keys_dir, &r->kr, err, errlen) :
	    ring_lazy ? jws_keyring_load_lazy(keys_dir, &r->kr, err, errlen) :
	    jws_keyring_load_public(keys_dir, &r->kr, err, errlen)) != 0) {
		free(r);
		return -1;
	}
	/* Only the first ring (checked in a child, lic_init_verifier) is
	 * lazy: a reload's keys are checked as they are loaded. */
	ring_lazy = 0;
	r->gen = old != NULL ? old->gen + 1 : 1;
	r->prev = old;
	atomic_store_explicit(&ring_cur, r, memory_order_release);
	caches_clear(r->gen);
	if (old == NULL)
		atexit(rings_free);
	return 0;
}

int lic_keys_reload(void)
{
	char err[512];
	int rc;

	pthread_mutex_lock(&reload_mu);
	rc = ring_load(err, sizeof(err));
	pthread_mutex_unlock(&reload_mu);
	if (rc != 0) {
		log_error("keys not reloaded, keeping the loaded ones: %s", err);
		return -1;
	}
	log_info("keys reloaded: %zu keys, current %s", ring()->kr.n,
	    ring()->kr.signer != NULL ? ring()->kr.signer->kid : "(none)");
	return 0;
}

/* A key whose kid is not loaded: one that `licctl keys add` wrote since
 * is loaded now, once its public key is in keys_dir. Anything else costs
 * a failed access(2) only; a key file that does not load is tried again
 * a second later at the earliest. 1 when the ring changed. */
static int reload_for(const char *key)
{
	char kid[JWS_KID_MAX], path[4200];
	int changed = 0;

	if (jws_token_key(&ring()->kr, key, strlen(key), "JWT", kid) != NULL)
		return 1;	/* loaded by another thread meanwhile */
	if (kid[0] == '\0')
		return 0;
	snprintf(path, sizeof(path), "%s/%s.pub", keys_dir, kid);
	if (access(path, R_OK) != 0)
		return 0;
	pthread_mutex_lock(&reload_mu);
	if (jws_key_find(&ring_held()->kr, kid) != NULL) {
		changed = 1;
	} else if (time(NULL) != reload_failed) {
		char err[512];

		if (ring_load(err, sizeof(err)) == 0) {
			changed = 1;
			log_info("keys reloaded for kid %s: %zu keys", kid,
			    ring_held()->kr.n);
		} else {
			reload_failed = time(NULL);
			log_error("kid %s: keys not reloaded: %s", kid, err);
		}
	}
	pthread_mutex_unlock(&reload_mu);
	return changed;
}

static int init_params(void)
{
	struct json_object *o = json_object_new_object();
	const char *s;
	size_t n = 0;

	issuer = cfg_str("issuer");
	js_put(o, "iss", json_object_new_string(issuer));
	js_put(o, "sub", json_object_new_string(""));
	free(key_head);
	key_head = NULL;
	key_head_len = 0;
	/* all but the closing "} */
	if ((s = js_dump(o, &n)) != NULL && n > 2 &&
	    (key_head = malloc(n - 2)) != NULL) {
		memcpy(key_head, s, n - 2);
		key_head_len = n - 2;
	}
	json_object_put(o);
	lease_ttl = cfg_int("lease_ttl");
	heartbeat_interval = cfg_int("heartbeat_interval");
	touch_interval = cfg_int("touch_interval");
	snprintf(touch_param, sizeof(touch_param), "%ld", touch_interval);
	return 0;
}

static int init_keys(int sign, char *err, size_t errlen)
{
	keys_dir = cfg_str("keys_dir");
	ring_signs = sign;
	if (ring_load(err, errlen) != 0)
		return -1;
	return init_params();
}

const char *lic_touch_param(void)
{
	return touch_param;
}

long lic_touch_interval(void)
{
	return touch_interval;
}

long lic_heartbeat_interval(void)
{
	return heartbeat_interval;
}

int lic_init_keys(char *err, size_t errlen)
{
	return init_keys(1, err, errlen);
}

int lic_init(void)
{
	char err[512];

	if (init_keys(1, err, sizeof(err)) != 0) {
		log_error("%s", err);
		return -1;
	}
	if (ring()->kr.signer == NULL)
		log_warn("no current signing key: leases cannot be signed");
	return 0;
}

/* Loads the keys in a child that exits, as lic_init does (sign) or
 * without the private key: 0, 2 when no key signs, -1 (logged) when
 * they do not load. Before any thread starts: fork is safe here. */
static int check_keys(int sign)
{
	char err[512] = "";
	int fds[2], st = 0;
	ssize_t n = 0, k;
	pid_t pid;

	if (pipe(fds) != 0) {
		log_error("keys: cannot check them: %s", strerror(errno));
		return -1;
	}
	if ((pid = fork()) < 0) {
		log_error("keys: cannot check them: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		int rc = init_keys(sign, err, sizeof(err)) != 0 ? 1 :
		    ring()->kr.signer == NULL ? 2 : 0;

		close(fds[0]);
		if (rc == 1 && write(fds[1], err, strlen(err)) < 0)
			rc = 1;
		_exit(rc);
	}
	close(fds[1]);
	while ((size_t)n < sizeof(err) - 1 &&
	    (k = read(fds[0], err + n, sizeof(err) - 1 - (size_t)n)) > 0)
		n += k;
	err[n] = '\0';
	close(fds[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (err[0] != '\0' || !WIFEXITED(st) || WEXITSTATUS(st) == 1) {
		log_error("%s", err[0] != '\0' ? err : "keys: the check failed");
		return -1;
	}
	return WEXITSTATUS(st) == 2 ? 2 : 0;
}

/*
 * A program that only verifies (usage) compares a key with the stored
 * one, or finds it in its verified-key cache, and checks a signature
 * only for a key text the database does not hold. Its keys are checked
 * in a child at start and read here as text, parsed at the first
 * signature check: OpenSSL (most of libcrypto's pages) is set up only
 * then.
 */
int lic_init_verifier(void)
{
	char err[512];

	if (check_keys(0) < 0)
		return -1;
	ring_lazy = 1;
	if (init_keys(0, err, sizeof(err)) != 0) {
		log_error("%s", err);
		return -1;
	}
	return 0;
}

/*
 * Loading keys is most of what sets OpenSSL up in a process (its
 * providers and decoders: most of libcrypto's pages). A program called
 * seldom checks its keys at start as lic_init does, in a child that
 * exits, and loads them at its first call that needs them, so that an
 * idle program never holds that memory.
 */
int lic_init_deferred(void)
{
	int rc = check_keys(1);

	if (rc < 0)
		return -1;
	if (rc == 2)
		log_warn("no current signing key: leases cannot be signed");
	keys_dir = cfg_str("keys_dir");
	ring_signs = 1;
	ring_deferred = 1;
	return init_params();
}

const struct jws_keyring *lic_keyring(void)
{
	return &ring()->kr;
}

int lic_uuid_valid(const char *s)
{
	int i;

	if (s == NULL || strlen(s) != LIC_UUID_LEN)
		return 0;
	for (i = 0; i < LIC_UUID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!isxdigit((unsigned char)s[i])) {
			return 0;
		}
	}
	return 1;
}

static const char *claim_str(struct json_object *c, const char *k)
{
	struct json_object *v;

	if (!json_object_object_get_ex(c, k, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/*
 * Verified-key cache: SHA-256(key) -> license id, for keys authenticated
 * before in this process (verified, or confirmed as the stored key: see
 * lic_key_confirm). The keys loaded change only with a new ring, which
 * empties the cache, so a key whose exact bytes were good once is good
 * again until then. A hit saves decoding
 * and parsing the key's payload; a miss costs no signature check either
 * (the row read anyway holds the key as issued), which is why a small
 * cache per program is enough: it holds the benchmark's licenses and
 * keeps resident memory down. Only successes are cached; status,
 * revocation and everything else come from the license row (the database
 * or the license cache, cache.h, which answers from memory a key found
 * here, or one whose exact text its entry was filled for under this
 * ring: lic_key_id_tag). 8-way set associative: with few ways, the keys
 * that hash to a crowded set evict each other and each of their calls
 * verifies again; one mutex per process, allocated on first use (after
 * the prefork).
 */
#define VCACHE_WAYS 8
#define VCACHE_SETS 4096	/* × 8 ways × 32 bytes = 1 MiB */

/* A way: the first half of the key's SHA-256 (a forged key would need a
 * 128-bit second preimage to hit) and the license id in binary. */
struct vslot {
	unsigned char digest[16];
	unsigned char id[16];
};

static struct vslot *vcache;
static pthread_mutex_t vcache_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned vcache_gen = 1;	/* the ring its entries were made under */

static int key_digest(const char *key, unsigned char d[32])
{
	jws_sha256_digest(key, strlen(key), d);
	return 0;
}

/* Slot of a digest in a direct-mapped cache of nslots entries. */
static size_t slot_of(const unsigned char d[32], size_t nslots)
{
	return ((size_t)d[0] | (size_t)d[1] << 8 | (size_t)d[2] << 16) %
	    nslots;
}

/* Lowercase only: the form the database writes (lic.h). */
static int hexdigit(char c)
{
	return c >= 'A' && c <= 'F' ? -1 : OPENSSL_hexchar2int((unsigned char)c);
}

int lic_uuid_pack(const char *id, unsigned char b[16])
{
	int i, j = 0, hi, lo;

	if (id == NULL || strlen(id) != LIC_UUID_LEN)
		return -1;
	for (i = 0; i < 16; i++, j += 2) {
		if (j == 8 || j == 13 || j == 18 || j == 23) {
			if (id[j] != '-')
				return -1;
			j++;
		}
		hi = hexdigit(id[j]);
		lo = hexdigit(id[j + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		b[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

void lic_uuid_unpack(const unsigned char b[16], char id[LIC_UUID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	char *p = id;
	int i;

	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[b[i] >> 4];
		*p++ = hex[b[i] & 15];
	}
	*p = '\0';
}

/* *gen: the ring the hit was authenticated under. */
static int vcache_get(const unsigned char d[32], char id[LIC_UUID_LEN + 1],
    unsigned *gen)
{
	static const unsigned char zero[16];
	struct vslot *set;
	int i, hit = 0;

	pthread_mutex_lock(&vcache_mu);
	if (vcache != NULL) {
		set = &vcache[VCACHE_WAYS * slot_of(d, VCACHE_SETS)];
		for (i = 0; i < VCACHE_WAYS && !hit; i++) {
			if (memcmp(set[i].id, zero, 16) != 0 &&
			    CRYPTO_memcmp(set[i].digest, d, 16) == 0) {
				lic_uuid_unpack(set[i].id, id);
				hit = 1;
			}
		}
	}
	*gen = vcache_gen;
	pthread_mutex_unlock(&vcache_mu);
	return hit;
}

/* gen: the ring the key was authenticated under; a key authenticated
 * under a replaced ring (its kid may be retired) is not kept. */
static void vcache_put(const unsigned char d[32], const char *id,
    unsigned gen)
{
	static const unsigned char zero[16];
	unsigned char b[16];
	struct vslot *set;
	int way;

	/* An id in another form than the database's is verified each time. */
	if (lic_uuid_pack(id, b) != 0)
		return;
	pthread_mutex_lock(&vcache_mu);
	if (gen != vcache_gen) {
		pthread_mutex_unlock(&vcache_mu);
		return;
	}
	if (vcache == NULL)
		vcache = calloc(VCACHE_WAYS * VCACHE_SETS, sizeof(*vcache));
	if (vcache != NULL) {
		set = &vcache[VCACHE_WAYS * slot_of(d, VCACHE_SETS)];
		/* An empty way, else one picked by another digest byte. */
		for (way = 0; way < VCACHE_WAYS &&
		    memcmp(set[way].id, zero, 16) != 0; way++)
			;
		if (way == VCACHE_WAYS)
			way = d[3] % VCACHE_WAYS;
		memcpy(set[way].digest, d, 16);
		memcpy(set[way].id, b, 16);
	}
	pthread_mutex_unlock(&vcache_mu);
}

int lic_verify_key(const char *key, char id[LIC_UUID_LEN + 1],
    struct json_object **claims)
{
	unsigned char d[32];
	unsigned gen;
	int have_digest;

	id[0] = '\0';
	if (claims != NULL)
		return lic_verify_key_full(key, id, claims);
	have_digest = key_digest(key, d) == 0;
	if (have_digest && vcache_get(d, id, &gen))
		return LIC_OK;
	gen = ring()->gen;
	if (lic_verify_key_full(key, id, NULL) != LIC_OK)
		return LIC_INVALID;
	if (have_digest)
		vcache_put(d, id, gen);
	return LIC_OK;
}

/*
 * The license a key names when it is laid out as lic_sign_key writes
 * every key: a header naming a loaded key (jws_token_key) and a payload
 * starting with key_head and the license id. Only its first bytes are
 * decoded and nothing is parsed. The id is a claim, as jws_peek's is:
 * the row read next must still hold the key byte for byte, or the key
 * must verify for that id (lic_key_confirm), so a key whose later bytes
 * are not what they should be is refused there. 0, or -1 for any other
 * layout (older keys, a kid to reload), which jws_peek then reads.
 */
static int key_sub(const char *key, char id[LIC_UUID_LEN + 1])
{
	unsigned char head[512];
	const char *d1, *d2;
	size_t n = strlen(key), want, chars;

	want = key_head_len + LIC_UUID_LEN + 1;	/* and the closing quote */
	chars = (want + 2) / 3 * 4;
	if (key_head == NULL || want > sizeof(head) ||
	    jws_token_key(&ring()->kr, key, n, "JWT", NULL) == NULL ||
	    (d1 = strchr(key, '.')) == NULL ||
	    (d2 = strchr(d1 + 1, '.')) == NULL ||
	    (size_t)(d2 - d1 - 1) < chars ||
	    jws_b64url_decode(d1 + 1, chars, head, sizeof(head)) < (long)want ||
	    memcmp(head, key_head, key_head_len) != 0 ||
	    head[want - 1] != '"')
		return -1;
	memcpy(id, head + key_head_len, LIC_UUID_LEN);
	id[LIC_UUID_LEN] = '\0';
	if (!lic_uuid_valid(id)) {
		id[0] = '\0';
		return -1;
	}
	return 0;
}

/*
 * Why the database may vouch for a key: every key is stored as issued
 * (licenses.license_key), and the handler reads the license row on every
 * call anyway. A key that misses the verified-key cache (at a million
 * licenses, nearly all of them) is compared with the stored one instead of
 * being verified: an ECDSA verify is the largest CPU cost of such a
 * call. Its kid must still be loaded, so that retiring a signing
 * key (docs/OPERATIONS.md) still retires the keys it signed.
 */
int lic_key_id(const char *key, char id[LIC_UUID_LEN + 1], int *known)
{
	return lic_key_id_tag(key, id, known, NULL);
}

int lic_key_id_tag(const char *key, char id[LIC_UUID_LEN + 1], int *known,
    struct lic_keytag *tag)
{
	struct json_object *c = NULL;
	unsigned char d[32];
	const char *sub, *iss;
	unsigned gen = ring()->gen, vgen;
	int rc = LIC_INVALID, js, have_digest;

	id[0] = '\0';
	*known = 0;
	if (tag != NULL)
		memset(tag, 0, sizeof(*tag));
	have_digest = key_digest(key, d) == 0;
	if (have_digest && vcache_get(d, id, &vgen)) {
		*known = 1;
		if (tag != NULL) {
			memcpy(tag->digest, d, LIC_KEYTAG_LEN);
			tag->gen = vgen;
		}
		return LIC_OK;
	}
	if (key_sub(key, id) == 0) {
		rc = LIC_OK;
		goto tag;
	}
	/* The issuer too: a key the database vouches for is still refused
	 * when it names another issuer. */
	if ((js = jws_peek(&ring()->kr, key, strlen(key), &c)) == JWS_EKID &&
	    reload_for(key))
		js = jws_peek(&ring()->kr, key, strlen(key), &c);
	if (js == JWS_OK &&
	    (iss = claim_str(c, "iss")) != NULL && strcmp(iss, issuer) == 0 &&
	    (sub = claim_str(c, "sub")) != NULL && lic_uuid_valid(sub)) {
		memcpy(id, sub, LIC_UUID_LEN + 1);
		rc = LIC_OK;
	}
	json_object_put(c);
tag:
	if (rc == LIC_OK && tag != NULL && have_digest) {
		memcpy(tag->digest, d, LIC_KEYTAG_LEN);
		tag->gen = gen;
	}
	return rc;
}

int lic_keytag_match(const struct lic_keytag *stored,
    const struct lic_keytag *seen)
{
	return stored->gen != 0 && stored->gen == seen->gen &&
	    CRYPTO_memcmp(stored->digest, seen->digest, LIC_KEYTAG_LEN) == 0;
}

/* 1 when key is stored's signature made over again from the same
 * (r, s): the same header, claims and r. A key signed before signatures
 * were made low-S may hold the high s; the low twin would verify, and
 * be a second text of that key. (A key re-signed since has another r.) */
static int twin(const char *stored, const char *key)
{
	const char *ds = strrchr(stored, '.'), *dk = strrchr(key, '.');
	unsigned char a[JWS_SIG_LEN + 3], b[JWS_SIG_LEN + 3];

	if (ds == NULL || dk == NULL || ds - stored != dk - key ||
	    memcmp(stored, key, (size_t)(ds - stored)) != 0)
		return 0;
	if (jws_b64url_decode(ds + 1, strlen(ds + 1), a, sizeof(a)) !=
	    JWS_SIG_LEN ||
	    jws_b64url_decode(dk + 1, strlen(dk + 1), b, sizeof(b)) !=
	    JWS_SIG_LEN)
		return 0;
	return memcmp(a, b, 32) == 0;
}

int lic_key_confirm(const char *key, const char *id, const char *stored)
{
	char vid[LIC_UUID_LEN + 1];
	unsigned char d[32];
	size_t n = strlen(key);
	struct ring *r = ring();

	/* Its kid loaded still (lic_key_id checked it under a ring that may
	 * have been replaced since, with that kid retired). */
	if (jws_token_key(&r->kr, key, n, "JWT", NULL) == NULL)
		return LIC_INVALID;
	if (stored == NULL || strlen(stored) != n ||
	    CRYPTO_memcmp(stored, key, n) != 0) {
		if (stored != NULL && twin(stored, key))
			return LIC_INVALID;
		if (lic_verify_key_full(key, vid, NULL) != LIC_OK ||
		    strcmp(vid, id) != 0)
			return LIC_INVALID;
	}
	if (key_digest(key, d) == 0)
		vcache_put(d, id, r->gen);
	return LIC_OK;
}

int lic_verify_key_full(const char *key, char id[LIC_UUID_LEN + 1],
    struct json_object **claims)
{
	struct json_object *c = NULL;
	const char *sub, *iss;
	int rc = LIC_INVALID, js;

	if (claims != NULL)
		*claims = NULL;
	id[0] = '\0';
	js = jws_verify(&ring()->kr, key, strlen(key), "JWT", &c, NULL);
	if (js == JWS_EKID && reload_for(key))
		js = jws_verify(&ring()->kr, key, strlen(key), "JWT", &c, NULL);
	if (js != JWS_OK)
		goto out;
	iss = claim_str(c, "iss");
	sub = claim_str(c, "sub");
	if (iss == NULL || strcmp(iss, issuer) != 0 || !lic_uuid_valid(sub))
		goto out;
	memcpy(id, sub, LIC_UUID_LEN + 1);
	rc = LIC_OK;
	if (claims != NULL) {
		*claims = c;
		c = NULL;
	}
out:
	json_object_put(c);
	return rc;
}

static void copy_col(const PGresult *res, int row, int col, char *dst,
    size_t n)
{
	snprintf(dst, n, "%s", PQgetisnull(res, row, col) ? "" :
	    PQgetvalue(res, row, col));
}

static long long ll_col(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? 0 :
	    strtoll(PQgetvalue(res, row, col), NULL, 10);
}

int lic_from_row(const PGresult *res, int row, int col, struct lic *l)
{
	memset(l, 0, sizeof(*l));
	if (PQnfields(res) < col + LIC_NCOLS)
		return LIC_ERROR;
	copy_col(res, row, col + 0, l->id, sizeof(l->id));
	copy_col(res, row, col + 1, l->customer_id, sizeof(l->customer_id));
	copy_col(res, row, col + 2, l->plan, sizeof(l->plan));
	copy_col(res, row, col + 3, l->status, sizeof(l->status));
	l->expires_at = ll_col(res, row, col + 4);
	l->grace_until = ll_col(res, row, col + 5);
	l->features = js_from_text(PQgetvalue(res, row, col + 6));
	l->limits = js_from_text(PQgetvalue(res, row, col + 7));
	l->domains = js_from_text(PQgetvalue(res, row, col + 8));
	if (l->features == NULL || l->limits == NULL || l->domains == NULL) {
		lic_free(l);
		return LIC_ERROR;
	}
	return LIC_OK;
}

/* licd_lookup's columns after license_view's. */
enum { LK_INST_STATUS = LIC_NCOLS, LK_FIRST_SEEN, LK_LAST_SEEN, LK_NOW,
	LK_DOMAIN, LK_NEEDS_TOUCH, LK_KEY, LK_SEAT_TTL, LK_SEAT_EXPIRES,
	LK_BORROWED, LK_SEAT_OVERDRAFT, LK_NCOLS };

int lic_lookup_read(const PGresult *res, const char *key, const char *id,
    int known, struct lic_lookup *lk)
{
	memset(lk, 0, sizeof(*lk));
	/* No row: deleted since it was signed, or a forgery naming a license
	 * that never was. */
	if (PQntuples(res) != 1)
		return LIC_UNKNOWN;
	if (PQnfields(res) < LK_NCOLS)
		return LIC_ERROR;
	if (!known && lic_key_confirm(key, id, PQgetisnull(res, 0, LK_KEY) ?
	    NULL : PQgetvalue(res, 0, LK_KEY)) != LIC_OK)
		return LIC_INVALID;
	if (lic_from_row(res, 0, 0, &lk->l) != LIC_OK)
		return LIC_ERROR;
	lk->active = !PQgetisnull(res, 0, LK_INST_STATUS) &&
	    strcmp(PQgetvalue(res, 0, LK_INST_STATUS), "active") == 0;
	lk->first_seen = ll_col(res, 0, LK_FIRST_SEEN);
	lk->last_seen = ll_col(res, 0, LK_LAST_SEEN);
	lk->now = (time_t)ll_col(res, 0, LK_NOW);
	lk->domain = PQgetisnull(res, 0, LK_DOMAIN) ? NULL :
	    PQgetvalue(res, 0, LK_DOMAIN);
	lk->needs_touch = strcmp(PQgetvalue(res, 0, LK_NEEDS_TOUCH), "t") == 0;
	lk->seat_ttl = (long)ll_col(res, 0, LK_SEAT_TTL);
	lk->seat_expires = ll_col(res, 0, LK_SEAT_EXPIRES);
	lk->borrowed_until = ll_col(res, 0, LK_BORROWED);
	lk->seat_overdraft = !PQgetisnull(res, 0, LK_SEAT_OVERDRAFT) &&
	    strcmp(PQgetvalue(res, 0, LK_SEAT_OVERDRAFT), "t") == 0;
	return LIC_OK;
}

int lic_seat_read(const PGresult *res, int row, int col, struct lic_seat *s)
{
	if (row >= PQntuples(res) || PQnfields(res) < col + 6)
		return LIC_ERROR;
	s->code = PQgetvalue(res, row, col);
	s->first = ll_col(res, row, col + 1);
	s->last = ll_col(res, row, col + 2);
	s->expires = ll_col(res, row, col + 3);
	s->borrowed = ll_col(res, row, col + 4);
	s->overdraft = strcmp(PQgetvalue(res, row, col + 5), "t") == 0;
	return LIC_OK;
}

void lic_free(struct lic *l)
{
	json_object_put(l->features);
	json_object_put(l->limits);
	json_object_put(l->domains);
	l->features = l->limits = l->domains = NULL;
}

long long lic_valid_until(const struct lic *l)
{
	if (l->expires_at == 0)
		return 0;
	return l->grace_until > l->expires_at ? l->grace_until : l->expires_at;
}

const char *lic_state(const struct lic *l, time_t now, const char **eff)
{
	long long end = lic_valid_until(l);

	*eff = l->status;
	if (strcmp(l->status, "revoked") == 0)
		return "REVOKED";
	if (strcmp(l->status, "suspended") == 0)
		return "SUSPENDED";
	if (strcmp(l->status, "expired") == 0)
		return "EXPIRED";
	if (end != 0 && (long long)now >= end) {
		*eff = "expired";
		return "EXPIRED";
	}
	return "VALID";
}

int lic_has_feature(const struct lic *l, const char *feature)
{
	size_t i, n;

	if (l->features == NULL ||
	    !json_object_is_type(l->features, json_type_array))
		return 0;
	n = json_object_array_length(l->features);
	for (i = 0; i < n; i++) {
		struct json_object *f = json_object_array_get_idx(l->features, i);

		if (json_object_is_type(f, json_type_string) &&
		    strcmp(json_object_get_string(f), feature) == 0)
			return 1;
	}
	return 0;
}

long long lic_limit(const struct lic *l, const char *name)
{
	struct json_object *v;

	double d;

	if (l->limits == NULL || !json_object_object_get_ex(l->limits, name, &v))
		return -1;
	if (json_object_is_type(v, json_type_int))
		return json_object_get_int64(v);
	if (!json_object_is_type(v, json_type_double))
		return -1;
	d = json_object_get_double(v);
	if (!(d >= 0 && d < 9223372036854775808.0) || d != (double)(long long)d)
		return -1;
	return (long long)d;
}

/* Lower-cased copy without one trailing dot; 0 if it is not a plausible
 * host name (empty labels, bad characters, too long). */
static int norm_host(const char *in, char *out, size_t cap, int pattern)
{
	size_t n = strlen(in), i, label = 0;

	if (n > 0 && in[n - 1] == '.')
		n--;
	if (n == 0 || n >= cap || n > 253)
		return 0;
	for (i = 0; i < n; i++) {
		char c = (char)tolower((unsigned char)in[i]);

		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || (pattern && c == '*' && i == 0)) {
			if (++label > 63)
				return 0;
		} else {
			return 0;
		}
		out[i] = c;
	}
	out[n] = '\0';
	return label > 0;
}

int lic_domain_match(const char *pattern, const char *host)
{
	char p[256], h[256];
	size_t pl, hl;

	if (pattern == NULL || host == NULL)
		return 0;
	if (!norm_host(pattern, p, sizeof(p), 1) ||
	    !norm_host(host, h, sizeof(h), 0))
		return 0;
	if (p[0] != '*')
		return strcmp(p, h) == 0;
	/* "*.suffix": host must end in ".suffix" with a label before it. */
	if (p[1] != '.')
		return 0;
	pl = strlen(p + 1);
	hl = strlen(h);
	return hl > pl && strcmp(h + hl - pl, p + 1) == 0;
}

int lic_domain_allowed(const struct lic *l, const char *host)
{
	size_t i, n;

	if (l->domains == NULL ||
	    !json_object_is_type(l->domains, json_type_array))
		return 0;
	n = json_object_array_length(l->domains);
	if (n == 0)
		return 1;
	if (host == NULL)
		return 0;
	for (i = 0; i < n; i++) {
		struct json_object *d = json_object_array_get_idx(l->domains, i);

		if (json_object_is_type(d, json_type_string) &&
		    lic_domain_match(json_object_get_string(d), host))
			return 1;
	}
	return 0;
}

void lic_ts(long long t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

struct json_object *lic_ts_json(long long t)
{
	char buf[32];

	if (t == 0)
		return NULL;
	lic_ts(t, buf);
	return json_object_new_string(buf);
}

struct json_object *lic_json(const struct lic *l, time_t now)
{
	struct json_object *o = json_object_new_object();
	const char *eff;

	lic_state(l, now, &eff);
	js_put(o, "id", json_object_new_string(l->id));
	js_put(o, "customer_id", json_object_new_string(l->customer_id));
	js_put(o, "plan", json_object_new_string(l->plan));
	js_put(o, "status", json_object_new_string(eff));
	js_put(o, "expires_at", lic_ts_json(l->expires_at));
	js_put(o, "grace_until", lic_ts_json(l->grace_until));
	js_put(o, "features", json_object_get(l->features));
	js_put(o, "limits", json_object_get(l->limits));
	js_put(o, "domain_restrictions", json_object_get(l->domains));
	return o;
}

/* Room for ,"iat":N,"exp":N} after a lease's base, and for what
 * lease_digest puts there first. */
#define LEASE_TIMES_MAX 64

/* A lease's claims as JSON text in *txt (the caller's to free), iat and
 * exp last: the *base bytes before them depend only on the license, the
 * installation and the nonce, and are what lease reuse digests
 * (lic_add_lease_until); the same inputs always give the same bytes.
 * lease_times completes the text. */
static int lease_text(const struct lic *l, const char *iid,
    const char *nonce, char **txt, size_t *base)
{
	struct json_object *c = json_object_new_object();
	const char *s;
	size_t n = 0;

	js_put(c, "iss", json_object_new_string(issuer));
	js_put(c, "sub", json_object_new_string(l->id));
	js_put(c, "iid", json_object_new_string(iid));
	js_put(c, "lic", json_object_new_string(l->plan));
	js_put(c, "feat", json_object_get(l->features));
	js_put(c, "limits", json_object_get(l->limits));
	/* What a client needs to decide offline (docs/CLIENT.md): the
	 * license's own end, its payment grace end, its domains. */
	if (l->expires_at != 0)
		js_put(c, "license_exp", json_object_new_int64(l->expires_at));
	if (l->grace_until != 0)
		js_put(c, "grace_until", json_object_new_int64(l->grace_until));
	if (l->domains != NULL)
		js_put(c, "domain_restrictions", json_object_get(l->domains));
	if (nonce != NULL)
		js_put(c, "nonce", json_object_new_string(nonce));
	s = js_dump(c, &n);
	/* the object's closing brace goes: lease_times writes it after iat
	 * and exp, in the room left (LEASE_TIMES_MAX) */
	*txt = s != NULL && n >= 2 ? malloc(n - 1 + LEASE_TIMES_MAX) : NULL;
	if (*txt != NULL) {
		memcpy(*txt, s, n - 1);
		*base = n - 1;
	}
	json_object_put(c);
	return *txt != NULL ? 0 : -1;
}

/* A lease's exp: lease_ttl after iat, or until; never past the license's
 * end. */
static long long lease_exp(const struct lic *l, long long iat, long long until)
{
	long long end = lic_valid_until(l);
	long long e = until > 0 ? until : iat + lease_ttl;

	return end != 0 && e > end ? end : e;
}

/* Completes lease_text's claims with iat and exp; their length. */
static size_t lease_times(char *txt, size_t base, long long iat,
    long long exp)
{
	int n = snprintf(txt + base, LEASE_TIMES_MAX,
	    ",\"iat\":%lld,\"exp\":%lld}", iat, exp);

	return base + (size_t)n;
}

int lic_lease(const struct lic *l, const char *iid, const char *nonce,
    time_t now, long ttl, char **lease, time_t *exp)
{
	char *txt;
	size_t base, len;
	long long e;
	int rc;

	if (lease_text(l, iid, nonce, &txt, &base) != 0)
		return LIC_ERROR;
	e = lease_exp(l, (long long)now, ttl > 0 ? (long long)now + ttl : 0);
	len = lease_times(txt, base, (long long)now, e);
	rc = jws_sign(&ring()->kr, "lease+jwt", txt, len, lease);
	free(txt);
	*exp = (time_t)e;
	return rc == JWS_OK ? LIC_OK : LIC_ERROR;
}

struct json_object *lic_result(const char *code, const struct lic *l,
    time_t now)
{
	struct json_object *o = json_object_new_object();

	js_put(o, "valid", json_object_new_boolean(strcmp(code, "VALID") == 0));
	js_put(o, "code", json_object_new_string(code));
	if (l != NULL)
		js_put(o, "license", lic_json(l, now));
	return o;
}

void lic_add_installation(struct json_object *o, const char *iid,
    const char *status, long long first_seen, long long last_seen)
{
	struct json_object *i = json_object_new_object();

	js_put(i, "id", json_object_new_string(iid));
	js_put(i, "status", json_object_new_string(status));
	js_put(i, "first_seen", lic_ts_json(first_seen));
	js_put(i, "last_seen", lic_ts_json(last_seen));
	js_put(o, "installation", i);
}

/*
 * Lease reuse. Signing is the other per-call CPU cost (and OpenSSL's RNG
 * adds syscalls), so an installation asking again within lease_reuse
 * seconds (default 600) gets the lease it got last time, if everything the
 * lease says (license, installation, plan, features, limits, end of
 * validity) is unchanged. Its exp is then at most lease_reuse earlier than
 * a fresh one's. Never with a nonce: a nonce asks for a fresh answer.
 * A slot keeps the signature, not the token: the claims are rebuilt from
 * the same inputs and iat, byte for byte, and joined to it (jws_join), so
 * a slot is a small part of a token's size. It holds as many
 * signatures as the license cache holds installations by default
 * (license_cache_entries), in 8-way sets. A new signature takes an empty
 * or expired way, else the least recently handed out of those never
 * handed out again, else the least recently handed out: a burst of calls
 * that sign once and never come back (new installations, a scan) then
 * takes turns in one way of a set, and the installations that call again
 * keep their signatures instead of all signing anew after it; a
 * signature no longer asked for (a floating seat renewed: its lease's end
 * changed) leaves before those still asked for.
 */
#define LCACHE_WAYS 8
#define LCACHE_SETS 4096

/* A way: the first 11 bytes of the lease inputs' SHA-256 (a collision
 * would only join a signature to claims it does not sign, a lease its
 * client refuses), whether the signature was handed out again, its iat
 * (0: empty; seconds, unsigned 32-bit until 2106) and when it was last
 * handed out. */
struct lslot {
	unsigned char digest[11];
	uint8_t reused;
	uint32_t iat;
	uint32_t used;
	unsigned char sig[JWS_SIG_LEN];
};

static struct lslot *lcache;
static pthread_mutex_t lcache_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned lcache_gen = 1;	/* the ring whose signer made its entries */

static void caches_clear(unsigned gen)
{
	pthread_mutex_lock(&vcache_mu);
	if (vcache != NULL)
		memset(vcache, 0, VCACHE_WAYS * VCACHE_SETS * sizeof(*vcache));
	vcache_gen = gen;
	pthread_mutex_unlock(&vcache_mu);
	pthread_mutex_lock(&lcache_mu);
	if (lcache != NULL)
		memset(lcache, 0, LCACHE_WAYS * LCACHE_SETS * sizeof(*lcache));
	lcache_gen = gen;
	pthread_mutex_unlock(&lcache_mu);
}

/* The digest of a lease's inputs: its claims but iat and exp (lease_text)
 * and what its exp is computed from besides iat. The room after the base
 * holds the latter until lease_times overwrites it. */
static int lease_digest(char *txt, size_t base, const struct lic *l,
    long long until, unsigned char d[32])
{
	long long v[2] = { lic_valid_until(l), until };
	unsigned int n = 0;

	memcpy(txt + base, v, sizeof(v));
	return jws_sha256() != NULL && EVP_Digest(txt, base + sizeof(v), d, &n,
	    jws_sha256(), NULL) == 1 && n == 32 ? 0 : -1;
}

/* The way of set a new signature for digest d takes: the digest's own
 * (an expired one being re-signed: it keeps its mark), else an empty or
 * expired one, else the least recently used of those never reused, else
 * the least recently used. */
static struct lslot *lslot_for(struct lslot *set, const unsigned char *d,
    time_t now, long reuse)
{
	struct lslot *s = NULL;
	int w;

	for (w = 0; w < LCACHE_WAYS; w++)
		if (set[w].iat != 0 &&
		    memcmp(set[w].digest, d, sizeof(set[w].digest)) == 0)
			return &set[w];
	for (w = 0; w < LCACHE_WAYS; w++) {
		if (set[w].iat == 0 || now < (time_t)set[w].iat ||
		    now - (time_t)set[w].iat >= reuse) {
			s = &set[w];
			break;
		}
		if (s == NULL || set[w].reused < s->reused ||
		    (set[w].reused == s->reused && set[w].used < s->used))
			s = &set[w];
	}
	s->reused = 0;
	return s;
}

int lic_add_lease_until(struct json_object *o, const struct lic *l,
    const char *iid, const char *nonce, time_t now, long long until)
{
	char *lease;
	long long exp;

	if (lic_lease_until(l, iid, nonce, now, until, &lease, &exp) != LIC_OK)
		return LIC_ERROR;
	lic_put_lease(o, lease, exp);
	free(lease);
	return LIC_OK;
}

void lic_put_lease(struct json_object *o, const char *lease, long long exp)
{
	js_put(o, "lease", js_new_plain(lease));
	js_put(o, "lease_expires_at", lic_ts_json(exp));
}

int lic_lease_until(const struct lic *l, const char *iid, const char *nonce,
    time_t now, long long until, char **lease_out, long long *exp_out)
{
	static long reuse = -1;
	struct ring *r = ring();
	unsigned char d[32], sig[JWS_SIG_LEN];
	struct lslot *set, *s;
	char *txt, *lease = NULL;
	time_t iat = now, exp;
	size_t base, len;
	int cacheable, hit = 0, rc, w;

	if (reuse < 0)
		reuse = cfg_int("lease_reuse");
	if (lease_text(l, iid, nonce, &txt, &base) != 0)
		return LIC_ERROR;
	cacheable = nonce == NULL && reuse > 0 &&
	    lease_digest(txt, base, l, until, d) == 0;
	if (cacheable) {
		pthread_mutex_lock(&lcache_mu);
		set = lcache && lcache_gen == r->gen ?
		    &lcache[LCACHE_WAYS * slot_of(d, LCACHE_SETS)] : NULL;
		for (w = 0; set != NULL && w < LCACHE_WAYS && !hit; w++) {
			s = &set[w];
			if (s->iat != 0 &&
			    CRYPTO_memcmp(s->digest, d, sizeof(s->digest)) == 0 &&
			    now >= (time_t)s->iat &&
			    now - (time_t)s->iat < reuse) {
				iat = (time_t)s->iat;
				memcpy(sig, s->sig, JWS_SIG_LEN);
				s->reused = 1;
				s->used = (uint32_t)now;
				hit = 1;
			}
		}
		pthread_mutex_unlock(&lcache_mu);
	}
	exp = (time_t)lease_exp(l, (long long)iat, until);
	if (hit && exp <= now) {
		/* The license ends before a reused lease would: sign anew. */
		hit = 0;
		iat = now;
		exp = (time_t)lease_exp(l, (long long)iat, until);
	}
	len = lease_times(txt, base, (long long)iat, (long long)exp);
	rc = hit ? jws_join(&r->kr, "lease+jwt", txt, len, sig, &lease) :
	    jws_sign_raw(&r->kr, "lease+jwt", txt, len, &lease, sig);
	free(txt);
	if (rc != JWS_OK)
		return LIC_ERROR;
	*lease_out = lease;
	*exp_out = (long long)exp;
	if (cacheable && !hit) {
		pthread_mutex_lock(&lcache_mu);
		if (lcache == NULL && lcache_gen == r->gen)
			lcache = calloc(LCACHE_WAYS * LCACHE_SETS,
			    sizeof(*lcache));
		if (lcache != NULL && lcache_gen == r->gen) {
			s = lslot_for(&lcache[LCACHE_WAYS *
			    slot_of(d, LCACHE_SETS)], d, now, reuse);
			memcpy(s->digest, d, sizeof(s->digest));
			s->iat = (uint32_t)iat;
			s->used = (uint32_t)now;
			memcpy(s->sig, sig, JWS_SIG_LEN);
		}
		pthread_mutex_unlock(&lcache_mu);
	}
	return LIC_OK;
}

void lic_lease_forget(const struct lic *l, const char *iid, long long until)
{
	struct ring *r = ring();
	unsigned char d[32];
	struct lslot *set;
	char *txt;
	size_t base;
	int w;

	if (until <= 0 || lease_text(l, iid, NULL, &txt, &base) != 0)
		return;
	if (lease_digest(txt, base, l, until, d) == 0) {
		pthread_mutex_lock(&lcache_mu);
		set = lcache && lcache_gen == r->gen ?
		    &lcache[LCACHE_WAYS * slot_of(d, LCACHE_SETS)] : NULL;
		for (w = 0; set != NULL && w < LCACHE_WAYS; w++)
			if (set[w].iat != 0 && memcmp(set[w].digest, d,
			    sizeof(set[w].digest)) == 0)
				memset(&set[w], 0, sizeof(set[w]));
		pthread_mutex_unlock(&lcache_mu);
	}
	free(txt);
}

void lic_add_seat(struct json_object *o, long ttl, long long expires,
    long long borrowed_until, int overdraft)
{
	js_put(o, "seat_expires_at", lic_ts_json(expires));
	js_put(o, "next_heartbeat_in",
	    json_object_new_int64(ttl / 3 > 0 ? ttl / 3 : 1));
	js_put(o, "borrowed_until", lic_ts_json(borrowed_until));
	js_put(o, "overdraft", json_object_new_boolean(overdraft));
}

int lic_sign_key(const struct lic *l, long long issued_at, char **key)
{
	struct json_object *c = json_object_new_object();
	const char *txt;
	size_t len;
	int rc;

	js_put(c, "iss", json_object_new_string(issuer));
	js_put(c, "sub", json_object_new_string(l->id));
	js_put(c, "cid", json_object_new_string(l->customer_id));
	js_put(c, "lic", json_object_new_string(l->plan));
	js_put(c, "iat", json_object_new_int64(issued_at));
	if (l->expires_at != 0)
		js_put(c, "exp", json_object_new_int64(l->expires_at));
	js_put(c, "feat", json_object_get(l->features));
	js_put(c, "limits", json_object_get(l->limits));
	js_put(c, "domain_restrictions", json_object_get(l->domains));
	txt = js_dump(c, &len);
	rc = jws_sign(&ring()->kr, "JWT", txt, len, key);
	json_object_put(c);
	return rc == JWS_OK ? LIC_OK : LIC_ERROR;
}

int lic_sign_row(const PGresult *res, int row, char **key)
{
	struct lic l;
	int rc;

	*key = NULL;
	if (lic_from_row(res, row, 0, &l) != LIC_OK)
		return LIC_ERROR;
	rc = lic_sign_key(&l, strtoll(PQgetvalue(res, row, LIC_NCOLS), NULL,
	    10), key);
	lic_free(&l);
	return rc;
}

const struct js_field LIC_F_KEY = { "license_key", 1, 16384, JS_TEXT };
const struct js_field LIC_F_IID = { "installation_id", 1, 128, JS_ID };
const struct js_field LIC_F_VERSION = { "version", 1, 64, JS_TEXT };
const struct js_field LIC_F_NONCE = { "nonce", 1, 128, JS_TEXT };
