/*
 * cache: validate's and heartbeat's memory of license and installation
 * state, so that a known, active installation (of a node-locked license,
 * or holding a floating seat far from its renewal) is answered without a
 * database round trip (call.h's LOOKUP step), while
 * a change is still seen by the very next call once the change's own
 * answer has been given, in every process on every host.
 *
 * How it stays current (docs/DESIGN.md, "The license cache"):
 *   - Every change that can change an answer notifies channel
 *     licd_license with the license's id, from triggers, in the changing
 *     transaction (sql/functions/36_cache.sql, 99_triggers.sql).
 *   - One listener thread per process, with its own connection, LISTENs,
 *     drops the entries of each license named (all of them for '*'),
 *     and acknowledges the barriers it has seen ('b <n>') in its row of
 *     cache_listeners, renewing its lease (alive_until) at least every
 *     CACHE_RENEW_MS.
 *   - A writer runs CALL licd_cache_sync() after its commit and before
 *     answering (db_cache_sync): it returns once every listener has
 *     acknowledged a barrier taken after that commit, or has lost its
 *     lease.
 *   - The fence: a process answers from memory only until CACHE_FENCE_MS
 *     after it sent its latest successful renewal (measured on its own
 *     monotonic clock before sending), which is before the lease that
 *     renewal gave it ends in the database's clock. A listener that
 *     cannot reach the database, is stuck or stopped stops answering
 *     from memory by itself; the calls take the database path. A
 *     listener whose lease lapsed (the writer deleted its row) or was
 *     doomed registers anew, emptying the memory first.
 *   - Filling: an entry is stored only when no invalidation of its
 *     license (nor a flush) happened since before its lookup was sent
 *     (cache_ticket), so a lookup whose snapshot predates a change never
 *     puts the old state back after the change's notification.
 *
 * Time: a hit is decided at the app host's clock plus the test clock
 * offset (licd_clock), read by the listener; hosts run NTP.
 *
 * Inactive or unknown installations, floating seats that are lapsed or
 * near their renewal (decide_from_memory) and calls that need a write are
 * never answered from memory.
 */
#ifndef LICD_CACHE_H
#define LICD_CACHE_H

#include <stddef.h>
#include <time.h>

#include "lic.h"

#define CACHE_RENEW_MS 500	/* the listener renews at least this often */
#define CACHE_FENCE_MS 1500	/* under the database's 2 s lease
				 * (licd_cache_lease) */
/* A full cache makes room for a new entry with its bucket's oldest only
 * once that one has been held this long; until then the fill is
 * dropped (its call read the database, as its next call will). A stream
 * of misses, as from a fleet far larger than the cache or a scan, then
 * costs no entries built and freed per call, and does not push out
 * entries called again within a minute. */
#define CACHE_HOLD_MS 60000

struct cache_entry;

/* What cache_put stores for (license, iid): the license as read, the
 * installation's first and last contact, its domain, and the version and
 * metadata (serialised JSON object) the database is known to hold (NULL:
 * not known); the tag of the call's key, authenticated for the license
 * (NULL: none); on a floating license (seat_ttl > 0) the installation's
 * seat as lic_lookup's fields hold it. */
struct cache_fill {
	const char *license, *iid;
	const struct lic *l;
	long long first_seen, last_seen;
	const char *domain, *version, *metadata;
	const struct lic_keytag *key;
	long seat_ttl;
	long long seat_expires, borrowed_until;
	int seat_overdraft;
};

/* Starts the listener for program, once per process (later calls return
 * at once); nothing when license_cache is off. */
void cache_start(const char *program);
/* Stops the listener and deletes its row; for the end of a process. */
void cache_stop(void);

/* The generation of license's entries, read before its lookup is sent
 * and handed to cache_put. */
unsigned long cache_ticket(const char *license);

/* The entry of (license, iid), held until cache_release, when the cache
 * may answer now; else NULL. iid "" (never an installation's id) is the
 * license's own entry: its state and key, no installation (cache_read
 * fills lk as for an installation that is not there). validate stores
 * it for a node-locked license once a new installation of it was
 * activated, and activates its other installations not in memory from
 * it without a lookup (call.h). */
const struct cache_entry *cache_get(const char *license, const char *iid);
void cache_release(const struct cache_entry *e);
/* 1 when the entry was filled for the very key text tag is of, under the
 * same key ring (lic_keytag_match): a key the verified-key cache does not
 * hold (lic_key_id's *known = 0) may then be answered from e. */
int cache_key_ok(const struct cache_entry *e, const struct lic_keytag *tag);

/* The call's time for an answer from memory: this host's clock plus the
 * test clock offset. */
time_t cache_now(void);

/* Fills lk as lic_lookup_read fills it from a row: the license (the
 * caller lic_free()s lk->l), its installation and seat (lk->domain points
 * into e), now, and needs_touch for a call at now with version and metadata
 * (either NULL) and touch_secs. LIC_OK or LIC_ERROR. */
int cache_read(const struct cache_entry *e, time_t now, long touch_secs,
    const char *version, const char *metadata, struct lic_lookup *lk);

/* Stores (or replaces) the entry unless license's generation moved past
 * ticket, the cache may not answer now, or it is full and has no room
 * (CACHE_HOLD_MS). */
void cache_put(unsigned long ticket, const struct cache_fill *f);

/* For the listener and the unit tests. */
/* A table of at most max entries (replacing any); 0: none. */
int cache_table_init(size_t max);
/* One notification's payload: a license id drops its entries, "*" every
 * entry, "b <n>" is a barrier (*barrier = n). 0, 1 for '*', 2 for a
 * barrier, -1 for a payload that is none of them (then everything is
 * dropped). */
int cache_apply(const char *payload, long long *barrier);
/* CACHE_HOLD_MS for this process (the unit tests'; cache_table_init
 * sets CACHE_HOLD_MS). */
void cache_set_hold(long long ms);
/* Drops every entry. */
void cache_flush(void);
/* The cache may answer until monotonic time until_ms (0: not at all),
 * with the test clock offset offset_s. */
void cache_fence(long long until_ms, long long offset_s);
size_t cache_count(void);

#endif
