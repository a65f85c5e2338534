/* cache: see cache.h. */
#include "cache.h"

#include "config.h"
#include "json.h"
#include "log.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * The table: buckets of entries, each under one of STRIPES locks. Every
 * entry of a license lies in a bucket of the license's stripe (bucket
 * index = stripe mod STRIPES), so dropping a license scans only its
 * stripe's buckets, and the stripe's generation counts its
 * invalidations. An entry is immutable once stored: a hit holds a
 * reference and reads it without the lock; a change replaces it.
 */
#define STRIPES 64

/*
 * An entry keeps its own strings (the license id, in binary, and the
 * installation's id) in itself; what many entries hold alike is kept
 * once, in texts shared by reference count: the license's customer,
 * plan, status, features, limits and domain restrictions as one text
 * (the same for every installation of a license, and for licenses of a
 * customer on a plan), and the installation's domain, version and
 * metadata as another. The table may hold many entries: what they repeat
 * is most of their size, and each part an entry does not use is left
 * out of it (a license's own entry has no installation, a node-locked
 * license's installation no seat).
 */
struct text {
	struct text *next;
	unsigned long hash;
	size_t refs;			/* under texts_mu */
	size_t len;
	char s[];			/* len bytes, then '\0' */
};

/* The license text's parts, '\0'-separated, in this order. */
enum { T_CUSTOMER, T_PLAN, T_STATUS, T_FEATURES, T_LIMITS, T_DOMAINS, NT };

/* The installation text: a byte of which parts are there (I_*), then
 * domain, version and metadata, each '\0'-terminated ("" when not). */
enum { I_DOMAIN = 1, I_VERSION = 2, I_METADATA = 4 };

/* The optional parts of an entry, in its data in this order (unaligned:
 * read and written with memcpy). */
struct e_inst {
	long long first_seen, last_seen;
	struct text *text;		/* NULL: no domain, version, metadata */
};
struct e_seat {			/* cache_fill's */
	long long seat_expires, borrowed_until;
	int seat_ttl, seat_overdraft;	/* a ttl is at most a day */
};
enum { P_INST = 1, P_SEAT = 2 };

struct cache_entry {
	struct cache_entry *next;
	struct text *lic;		/* T_CUSTOMER... */
	long long expires_at, grace_until;
	long long put_ms;		/* stored at (monotonic) */
	struct lic_keytag key;	/* the key it was filled for */
	atomic_int refs;
	unsigned char license[16];
	unsigned char parts;		/* P_* */
	char data[];			/* [e_inst] [e_seat] iid '\0' */
};

/* fixed: a text is found again by its hash when its last holder lets go */
#define TEXT_BUCKETS 16384
static struct text *texts[TEXT_BUCKETS];
static pthread_mutex_t texts_mu = PTHREAD_MUTEX_INITIALIZER;

static struct {
	struct cache_entry **buckets;
	size_t nbuckets;		/* a multiple of STRIPES, or 0 */
	size_t max;
	atomic_llong hold_ms;		/* CACHE_HOLD_MS, or a test's */
	pthread_mutex_t mu[STRIPES];
	atomic_ulong gen[STRIPES];
	atomic_size_t count;
	atomic_llong fence_ms;		/* answers until (monotonic) */
	atomic_llong offset_s;		/* licd_clock's */
} T;

/* C11 has no initialiser for a whole array of mutexes: the stripes'
 * locks are initialised once, by whichever of cache_table_init and
 * cache_flush comes first (every other path runs after the table's
 * init). */
static pthread_once_t locks_once = PTHREAD_ONCE_INIT;

static void locks_init(void)
{
	size_t s;

	for (s = 0; s < STRIPES; s++)
		pthread_mutex_init(&T.mu[s], NULL);
}

static size_t seat_off(const struct cache_entry *e)
{
	return e->parts & P_INST ? sizeof(struct e_inst) : 0;
}

static const char *e_iid(const struct cache_entry *e)
{
	return e->data + seat_off(e) +
	    (e->parts & P_SEAT ? sizeof(struct e_seat) : 0);
}

static void e_inst(const struct cache_entry *e, struct e_inst *in)
{
	if (e->parts & P_INST)
		memcpy(in, e->data, sizeof(*in));
	else
		memset(in, 0, sizeof(*in));
}

static void e_seat(const struct cache_entry *e, struct e_seat *st)
{
	if (e->parts & P_SEAT)
		memcpy(st, e->data + seat_off(e), sizeof(*st));
	else
		memset(st, 0, sizeof(*st));
}

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* FNV-1a over n bytes */
static unsigned long hash_n(const char *s, size_t n)
{
	unsigned long h = 1469598103934665603UL;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211UL;
	return h;
}

static unsigned long hash(const char *s)
{
	return hash_n(s, strlen(s));
}

/* The shared text of s's n bytes, with one more reference; NULL for NULL
 * or when out of memory (*oom set). */
static struct text *text_get(const char *s, size_t n, int *oom)
{
	struct text *t, **b;
	unsigned long h;

	if (s == NULL)
		return NULL;
	h = hash_n(s, n);
	b = &texts[h % TEXT_BUCKETS];
	pthread_mutex_lock(&texts_mu);
	for (t = *b; t != NULL; t = t->next)
		if (t->hash == h && t->len == n && memcmp(t->s, s, n) == 0)
			break;
	if (t == NULL && (t = malloc(sizeof(*t) + n + 1)) != NULL) {
		t->hash = h;
		t->refs = 0;
		t->len = n;
		memcpy(t->s, s, n);
		t->s[n] = '\0';
		t->next = *b;
		*b = t;
	}
	if (t != NULL)
		t->refs++;
	else
		*oom = 1;
	pthread_mutex_unlock(&texts_mu);
	return t;
}

static void text_put(struct text *t)
{
	struct text **pp;

	if (t == NULL)
		return;
	pthread_mutex_lock(&texts_mu);
	if (--t->refs == 0) {
		for (pp = &texts[t->hash % TEXT_BUCKETS]; *pp != t;
		    pp = &(*pp)->next)
			;
		*pp = t->next;
		free(t);
	}
	pthread_mutex_unlock(&texts_mu);
}

static void entry_free(struct cache_entry *e)
{
	struct e_inst in;

	e_inst(e, &in);
	text_put(e->lic);
	text_put(in.text);
	free(e);
}

static size_t stripe_of(const char *license)
{
	return hash(license) % STRIPES;
}

static size_t bucket_of(const char *license, const char *iid)
{
	unsigned long hl = hash(license);

	return ((hl / STRIPES ^ hash(iid)) % (T.nbuckets / STRIPES)) *
	    STRIPES + hl % STRIPES;
}

void cache_release(const struct cache_entry *ce)
{
	struct cache_entry *e = (struct cache_entry *)ce;

	if (e != NULL && atomic_fetch_sub(&e->refs, 1) == 1)
		entry_free(e);
}

int cache_key_ok(const struct cache_entry *e, const struct lic_keytag *tag)
{
	return lic_keytag_match(&e->key, tag);
}

/* Unlinks every entry of bucket b of license (packed; NULL: all); under
 * the bucket's stripe lock. */
static void drop_in(size_t b, const unsigned char *license)
{
	struct cache_entry **pp = &T.buckets[b], *e;

	while ((e = *pp) != NULL) {
		if (license == NULL ||
		    memcmp(e->license, license, sizeof(e->license)) == 0) {
			*pp = e->next;
			atomic_fetch_sub(&T.count, 1);
			cache_release(e);
		} else {
			pp = &e->next;
		}
	}
}

static void drop_license(const char *license)
{
	unsigned char id[16];
	size_t b, s = stripe_of(license);
	int packed = lic_uuid_pack(license, id) == 0;

	/* The generation moves for any text: a lookup of it in flight must
	 * not store its old state (none is stored under a text that does
	 * not pack). */
	pthread_mutex_lock(&T.mu[s]);
	atomic_fetch_add(&T.gen[s], 1);
	for (b = s; packed && b < T.nbuckets; b += STRIPES)
		drop_in(b, id);
	pthread_mutex_unlock(&T.mu[s]);
}

void cache_flush(void)
{
	size_t b, s;

	pthread_once(&locks_once, locks_init);
	for (s = 0; s < STRIPES; s++) {
		pthread_mutex_lock(&T.mu[s]);
		atomic_fetch_add(&T.gen[s], 1);
		for (b = s; b < T.nbuckets; b += STRIPES)
			drop_in(b, NULL);
		pthread_mutex_unlock(&T.mu[s]);
	}
}

int cache_table_init(size_t max)
{
	struct cache_entry **nb = NULL;
	size_t n = STRIPES, s;

	/* Chains of four entries at most on average when full: the array's
	 * pages are resident as soon as entries are spread over them. */
	while (max > 0 && n < max / 4)
		n *= 2;
	if (max > 0 && (nb = calloc(n, sizeof(*nb))) == NULL)
		return -1;
	pthread_once(&locks_once, locks_init);
	for (s = 0; s < STRIPES; s++)
		pthread_mutex_lock(&T.mu[s]);
	for (s = 0; s < STRIPES; s++) {
		size_t b;

		atomic_fetch_add(&T.gen[s], 1);
		for (b = s; b < T.nbuckets; b += STRIPES)
			drop_in(b, NULL);
	}
	free(T.buckets);
	T.buckets = nb;
	T.nbuckets = max > 0 ? n : 0;
	T.max = max;
	atomic_store(&T.hold_ms, CACHE_HOLD_MS);
	for (s = 0; s < STRIPES; s++)
		pthread_mutex_unlock(&T.mu[s]);
	return 0;
}

void cache_set_hold(long long ms)
{
	atomic_store(&T.hold_ms, ms);
}

void cache_fence(long long until_ms, long long offset_s)
{
	atomic_store(&T.offset_s, offset_s);
	atomic_store(&T.fence_ms, until_ms);
}

size_t cache_count(void)
{
	return atomic_load(&T.count);
}

static int answering(void)
{
	return T.nbuckets > 0 && mono_ms() < atomic_load(&T.fence_ms);
}

unsigned long cache_ticket(const char *license)
{
	return atomic_load(&T.gen[stripe_of(license)]);
}

/* The link to (license id, iid)'s entry in bucket b, or to the bucket's
 * end (NULL) when it holds none. Under the bucket's stripe lock. */
static struct cache_entry **link_of(size_t b, const unsigned char *id,
    const char *iid)
{
	struct cache_entry **pp = &T.buckets[b];

	for (; *pp != NULL; pp = &(*pp)->next)
		if (memcmp((*pp)->license, id, sizeof((*pp)->license)) == 0 &&
		    strcmp(e_iid(*pp), iid) == 0)
			break;
	return pp;
}

const struct cache_entry *cache_get(const char *license, const char *iid)
{
	struct cache_entry *e;
	unsigned char id[16];
	size_t b, s;

	if (!answering() || lic_uuid_pack(license, id) != 0)
		return NULL;
	b = bucket_of(license, iid);
	s = b % STRIPES;
	pthread_mutex_lock(&T.mu[s]);
	if ((e = *link_of(b, id, iid)) != NULL)
		atomic_fetch_add(&e->refs, 1);
	pthread_mutex_unlock(&T.mu[s]);
	return e;
}

time_t cache_now(void)
{
	struct timespec ts;

	/* Rounded to the nearest second, as the lookup's extract(epoch
	 * ...)::bigint rounds the database's clock: a floor here would make
	 * an answer from memory up to a second earlier than the database's
	 * answer before it, and a lease signed then (its iat) would look
	 * newer than now and not be handed out again (lease_reuse). */
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + (ts.tv_nsec >= 500000000L) +
	    (time_t)atomic_load(&T.offset_s);
}

/* The installation text's parts (NULL: not there). */
static void inst_parts(const struct text *t, const char **domain,
    const char **version, const char **metadata)
{
	const char *p;
	int has;

	*domain = *version = *metadata = NULL;
	if (t == NULL)
		return;
	has = (unsigned char)t->s[0];
	p = t->s + 1;
	if (has & I_DOMAIN)
		*domain = p;
	p += strlen(p) + 1;
	if (has & I_VERSION)
		*version = p;
	p += strlen(p) + 1;
	if (has & I_METADATA)
		*metadata = p;
}

int cache_read(const struct cache_entry *e, time_t now, long touch_secs,
    const char *version, const char *metadata, struct lic_lookup *lk)
{
	struct lic *l = &lk->l;
	struct e_inst in;
	struct e_seat st;
	const char *domain, *version_was, *metadata_was;
	const char *t[NT], *p = e->lic->s;
	int i;

	e_inst(e, &in);
	e_seat(e, &st);
	inst_parts(in.text, &domain, &version_was, &metadata_was);
	for (i = 0; i < NT; i++, p += strlen(p) + 1)
		t[i] = p;
	memset(lk, 0, sizeof(*lk));
	lic_uuid_unpack(e->license, l->id);
	snprintf(l->customer_id, sizeof(l->customer_id), "%s", t[T_CUSTOMER]);
	snprintf(l->plan, sizeof(l->plan), "%s", t[T_PLAN]);
	snprintf(l->status, sizeof(l->status), "%s", t[T_STATUS]);
	l->expires_at = e->expires_at;
	l->grace_until = e->grace_until;
	l->features = js_from_text(t[T_FEATURES]);
	l->limits = js_from_text(t[T_LIMITS]);
	l->domains = js_from_text(t[T_DOMAINS]);
	if (l->features == NULL || l->limits == NULL || l->domains == NULL) {
		lic_free(l);
		return LIC_ERROR;
	}
	/* A license's own entry (iid ""): no installation. */
	lk->active = e_iid(e)[0] != '\0';
	lk->first_seen = in.first_seen;
	lk->last_seen = in.last_seen;
	lk->now = now;
	lk->domain = domain;
	lk->seat_ttl = st.seat_ttl;
	lk->seat_expires = st.seat_expires;
	lk->borrowed_until = st.borrowed_until;
	lk->seat_overdraft = st.seat_overdraft;
	/* licd_lookup's needs_touch, against what the database is known to
	 * hold: an unknown version or metadata counts as another. */
	lk->needs_touch = lk->active && strcmp(l->status, "active") == 0 &&
	    (in.last_seen < (long long)now - touch_secs ||
	    (version != NULL && (version_was == NULL ||
	    strcmp(version, version_was) != 0)) ||
	    (metadata != NULL && (metadata_was == NULL ||
	    strcmp(metadata, metadata_was) != 0)));
	return LIC_OK;
}

/* The installation text of domain, version and metadata (any NULL);
 * NULL when all are (or when out of memory: *oom set). */
static struct text *inst_text(const char *domain, const char *version,
    const char *metadata, int *oom)
{
	const char *v[3] = { domain, version, metadata };
	size_t n = 1, k, i;
	struct text *t;
	char *s;

	if (domain == NULL && version == NULL && metadata == NULL)
		return NULL;
	for (i = 0; i < 3; i++)
		n += (v[i] != NULL ? strlen(v[i]) : 0) + 1;
	if ((s = malloc(n)) == NULL) {
		*oom = 1;
		return NULL;
	}
	s[0] = (char)((domain != NULL ? I_DOMAIN : 0) |
	    (version != NULL ? I_VERSION : 0) |
	    (metadata != NULL ? I_METADATA : 0));
	for (i = 0, n = 1; i < 3; i++) {
		k = v[i] != NULL ? strlen(v[i]) : 0;
		memcpy(s + n, v[i] != NULL ? v[i] : "", k + 1);
		n += k + 1;
	}
	t = text_get(s, n, oom);
	free(s);
	return t;
}

static struct cache_entry *new_entry(const struct cache_fill *f,
    const unsigned char id[16])
{
	const char *v[NT];
	struct cache_entry *e;
	struct e_inst in;
	struct e_seat st;
	char *lt = NULL;
	size_t n = 0, i, k, iid_len = strlen(f->iid), off = 0;
	unsigned char parts;
	int oom = 0;

	v[T_CUSTOMER] = f->l->customer_id;
	v[T_PLAN] = f->l->plan;
	v[T_STATUS] = f->l->status;
	v[T_FEATURES] = js_dump(f->l->features, NULL);
	v[T_LIMITS] = js_dump(f->l->limits, NULL);
	v[T_DOMAINS] = js_dump(f->l->domains, NULL);
	if (v[T_FEATURES] == NULL || v[T_LIMITS] == NULL ||
	    v[T_DOMAINS] == NULL)
		return NULL;
	for (i = 0; i < NT; i++)
		n += strlen(v[i]) + 1;
	memset(&in, 0, sizeof(in));
	memset(&st, 0, sizeof(st));
	in.first_seen = f->first_seen;
	in.last_seen = f->last_seen;
	st.seat_ttl = (int)f->seat_ttl;
	st.seat_expires = f->seat_expires;
	st.borrowed_until = f->borrowed_until;
	st.seat_overdraft = f->seat_overdraft;
	parts = (f->iid[0] != '\0' || in.first_seen != 0 ||
	    in.last_seen != 0 || f->domain != NULL || f->version != NULL ||
	    f->metadata != NULL ? P_INST : 0) |
	    (st.seat_ttl != 0 || st.seat_expires != 0 ||
	    st.borrowed_until != 0 || st.seat_overdraft != 0 ? P_SEAT : 0);
	/* metadata is at most 2 KiB: a larger one is not stored */
	if (n >= UINT16_MAX || (f->metadata != NULL &&
	    strlen(f->metadata) >= UINT16_MAX) || (lt = malloc(n)) == NULL ||
	    (e = malloc(offsetof(struct cache_entry, data) +
	    (parts & P_INST ? sizeof(in) : 0) +
	    (parts & P_SEAT ? sizeof(st) : 0) + iid_len + 1)) == NULL) {
		free(lt);
		return NULL;
	}
	for (i = 0, n = 0; i < NT; i++) {
		k = strlen(v[i]) + 1;
		memcpy(lt + n, v[i], k);
		n += k;
	}
	e->parts = 0;
	e->lic = text_get(lt, n, &oom);
	free(lt);
	if (parts & P_INST) {
		in.text = inst_text(f->domain, f->version, f->metadata, &oom);
		memcpy(e->data, &in, sizeof(in));
		off += sizeof(in);
	}
	e->parts = parts;
	if (oom) {
		entry_free(e);
		return NULL;
	}
	if (parts & P_SEAT) {
		memcpy(e->data + off, &st, sizeof(st));
		off += sizeof(st);
	}
	memcpy(e->data + off, f->iid, iid_len + 1);
	e->next = NULL;
	atomic_init(&e->refs, 1);
	e->expires_at = f->l->expires_at;
	e->grace_until = f->l->grace_until;
	if (f->key != NULL)
		e->key = *f->key;
	else
		memset(&e->key, 0, sizeof(e->key));
	memcpy(e->license, id, sizeof(e->license));
	return e;
}

/* 1 when bucket b, which does not hold the new entry's key, takes it
 * at now: the cache is not full, or the bucket's oldest entry has been
 * held CACHE_HOLD_MS (it makes room). Under the bucket's stripe lock. */
static int room_at(size_t b, long long now)
{
	struct cache_entry *e = T.buckets[b];

	if (atomic_load(&T.count) < T.max)
		return 1;
	if (e == NULL)
		return 0;
	while (e->next != NULL)
		e = e->next;
	return now - e->put_ms >= atomic_load(&T.hold_ms);
}

void cache_put(unsigned long ticket, const struct cache_fill *f)
{
	struct cache_entry *e, **pp, *old;
	unsigned char id[16];
	long long now = mono_ms();
	size_t b, s;
	int room;

	if (!answering() || f->iid == NULL ||
	    lic_uuid_pack(f->license, id) != 0)
		return;
	b = bucket_of(f->license, f->iid);
	s = b % STRIPES;
	/* Looked at before the entry is built: a fill with no room costs
	 * nothing. */
	pthread_mutex_lock(&T.mu[s]);
	room = *link_of(b, id, f->iid) != NULL || room_at(b, now);
	pthread_mutex_unlock(&T.mu[s]);
	if (!room || (e = new_entry(f, id)) == NULL)
		return;
	e->put_ms = now;
	pthread_mutex_lock(&T.mu[s]);
	pp = link_of(b, id, f->iid);
	old = *pp;
	if (atomic_load(&T.gen[s]) != ticket ||
	    (old == NULL && !room_at(b, now))) {
		pthread_mutex_unlock(&T.mu[s]);
		entry_free(e);
		return;
	}
	if (old != NULL) {
		e->next = old->next;
		*pp = e;
		cache_release(old);
	} else {
		/* Full: the bucket's oldest entry makes room (entries go in
		 * at the head). Its newest would be the one just put, and a
		 * full cache would then keep what it held and never hold
		 * what is called now. */
		if (atomic_load(&T.count) >= T.max) {
			for (pp = &T.buckets[b]; (*pp)->next != NULL;
			    pp = &(*pp)->next)
				;
			old = *pp;
			*pp = NULL;
			atomic_fetch_sub(&T.count, 1);
			cache_release(old);
		}
		e->next = T.buckets[b];
		T.buckets[b] = e;
		atomic_fetch_add(&T.count, 1);
	}
	pthread_mutex_unlock(&T.mu[s]);
}

int cache_apply(const char *payload, long long *barrier)
{
	char *end;

	if (payload[0] == 'b' && payload[1] == ' ') {
		errno = 0;
		*barrier = strtoll(payload + 2, &end, 10);
		if (errno == 0 && end != payload + 2 && *end == '\0' &&
		    *barrier > 0)
			return 2;
	} else if (strcmp(payload, "*") == 0) {
		cache_flush();
		return 1;
	} else if (lic_uuid_valid(payload)) {
		drop_license(payload);
		return 0;
	}
	cache_flush();
	return -1;
}

/*
 * The listener thread: one session at a time on its own connection;
 * session() returns when the connection or the registration is lost, or
 * at stop.
 */
static pthread_t listener_tid;
static pthread_once_t started = PTHREAD_ONCE_INIT;
static const char *listener_program;
static int stop_pipe[2] = { -1, -1 };
static atomic_int stopping;
static int running;

static PGconn *connect_db(void)
{
	/* tcp_user_timeout: a database host gone silent breaks the
	 * connection in seconds, not at TCP's retransmission limit, so the
	 * listener registers again soon after the network comes back (the
	 * fence stopped answers from memory long before). */
	const char *keys[] = { "dbname", "connect_timeout",
	    "application_name", "tcp_user_timeout", "options", NULL };
	const char *vals[] = { cfg_str("database_url"), "3", "licd-cache",
	    "5000", "-c TimeZone=UTC -c synchronous_commit=off "
	    "-c statement_timeout=2000 -c lock_timeout=1000", NULL };
	PGconn *conn = PQconnectdbParams(keys, vals, 1);

	if (PQstatus(conn) != CONNECTION_OK) {
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

/* One statement's single value into out (NULL: none wanted); 0 or -1. */
static int one(PGconn *conn, const char *sql, int n, const char *const *p,
    char *out, size_t len)
{
	PGresult *r = PQexecParams(conn, sql, n, NULL, p, NULL, NULL, 0);
	int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;

	if (!ok && PQresultStatus(r) != PGRES_COMMAND_OK)
		log_warn("license cache: %s", PQresultErrorMessage(r));
	if (ok && out != NULL)
		snprintf(out, len, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return ok ? 0 : -1;
}

/* Sleeps ms, or less when stopping. */
static void nap(long long ms)
{
	struct pollfd p = { stop_pipe[0], POLLIN, 0 };

	poll(&p, 1, (int)ms);
}

static int session(void)
{
	char id[32] = "", val[32], host[256], pid[24];
	const char *p[3];
	long long t0, seen = 0, acked = 0, renewed, offset;
	PGresult *r = NULL;
	PGnotify *n;
	PGconn *conn;
	int rc = -1, clock_moved;

	if ((conn = connect_db()) == NULL)
		return -1;
	r = PQexec(conn, "LISTEN licd_license");
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		goto out;
	PQclear(r);
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "?");
	host[sizeof(host) - 1] = '\0';
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	p[0] = host;
	p[1] = pid;
	p[2] = listener_program;
	t0 = mono_ms();
	r = PQexecParams(conn, "SELECT id, offset_s FROM "
	    "licd_cache_register($1, $2, $3)", 3, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		goto out;
	snprintf(id, sizeof(id), "%s", PQgetvalue(r, 0, 0));
	offset = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	PQclear(r);
	r = NULL;
	/* What was stored before the registration may predate a change
	 * this listener never heard of. */
	cache_flush();
	cache_fence(t0 + CACHE_FENCE_MS, offset);
	renewed = t0;
	log_info("license cache: listening (listener %s)", id);
	while (!atomic_load(&stopping)) {
		struct pollfd pf[2] = { { PQsocket(conn), POLLIN, 0 },
		    { stop_pipe[0], POLLIN, 0 } };
		long long now, wait;

		clock_moved = 0;
		while ((n = PQnotifies(conn)) != NULL) {
			long long b;

			switch (cache_apply(n->extra, &b)) {
			case 1:
				clock_moved = 1;
				break;
			case 2:
				if (b > seen)
					seen = b;
				break;
			}
			PQfreemem(n);
		}
		/* The new offset is in use before the ack: a writer's
		 * barrier returns once the ack commits, which may come
		 * before this thread runs again, and an entry filled since
		 * the flush (at the database's new clock) must not be read
		 * at the old one. Without it, nothing from memory. */
		if (clock_moved) {
			if (one(conn, "SELECT licd_cache_clock()", 0, NULL, val,
			    sizeof(val)) != 0)
				goto out;
			offset = strtoll(val, NULL, 10);
			atomic_store(&T.offset_s, offset);
		}
		now = mono_ms();
		if (seen > acked || clock_moved ||
		    now - renewed >= CACHE_RENEW_MS) {
			char sv[24];

			snprintf(sv, sizeof(sv), "%lld", seen);
			p[0] = id;
			p[1] = sv;
			t0 = mono_ms();
			if (one(conn, "SELECT licd_cache_ack($1, $2)", 2, p,
			    val, sizeof(val)) != 0)
				goto out;
			if (strcmp(val, "t") != 0) {
				log_warn("license cache: listener %s was "
				    "given up on; registering again", id);
				id[0] = '\0';
				rc = 0;
				goto out;
			}
			acked = seen;
			renewed = t0;
			cache_fence(t0 + CACHE_FENCE_MS, offset);
			continue;	/* notifications read meanwhile */
		}
		wait = CACHE_RENEW_MS - (now - renewed);
		if (poll(pf, 2, (int)(wait > 0 ? wait : 0)) < 0 &&
		    errno != EINTR)
			goto out;
		if (PQconsumeInput(conn) == 0)
			goto out;
	}
	rc = 0;
out:
	/* Nothing from memory until registered again. */
	cache_fence(0, 0);
	cache_flush();
	if (rc != 0 && !atomic_load(&stopping))
		log_warn("license cache: lost its connection (%s); calls "
		    "read the database until it listens again",
		    PQerrorMessage(conn)[0] ? PQerrorMessage(conn) :
		    PQresultErrorMessage(r));
	PQclear(r);
	if (atomic_load(&stopping) && id[0] != '\0') {
		p[0] = id;
		one(conn, "SELECT licd_cache_unregister($1)", 1, p, NULL, 0);
	}
	PQfinish(conn);
	return rc;
}

static void *listener_main(void *arg)
{
	long long backoff = 100;

	(void)arg;
	while (!atomic_load(&stopping)) {
		if (session() == 0) {
			backoff = 100;
			continue;
		}
		nap(backoff);
		if (backoff < 2000)
			backoff *= 2;
	}
	return NULL;
}

static void start_once(void)
{
	long max = cfg_int("license_cache_entries");

	if (!cfg_bool("license_cache") || max <= 0)
		return;
	if (cache_table_init((size_t)max) != 0 || pipe(stop_pipe) != 0) {
		log_error("license cache: cannot start: %s", strerror(errno));
		return;
	}
	if (pthread_create(&listener_tid, NULL, listener_main, NULL) != 0) {
		log_error("license cache: cannot start its thread");
		return;
	}
	running = 1;
}

void cache_start(const char *program)
{
	listener_program = program;
	pthread_once(&started, start_once);
}

void cache_stop(void)
{
	if (!running)
		return;
	atomic_store(&stopping, 1);
	if (write(stop_pipe[1], "x", 1) < 0)
		log_warn("license cache: cannot wake the listener");
	pthread_join(listener_tid, NULL);
	running = 0;
	cache_table_init(0);
}
