/* touch: see touch.h. */
#include "touch.h"

#include "config.h"
#include "db.h"
#include "decide.h"
#include "json.h"
#include "log.h"

#include <json-c/json.h>
#include <json-c/printbuf.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The installation's id is held apart, as version and metadata are: the
 * queue's pages are resident up to the most items it held, and an id is
 * mostly far shorter than the longest one allowed. */
struct item {
	long long at;
	char *iid;
	char *version;		/* NULL: unchanged */
	char *metadata;		/* NULL: unchanged */
	char license[37];
};

static const struct db_stmt stmts[] = {
	{ "touch_batch", "SELECT licd_touch_batch($1::jsonb)", 1 },
	{ "count", "SELECT licd_count_validations($1::jsonb)", 0 },
};

/* validate's answers per code (decide.h's table, then OTHER for anything
 * else), counted per process until the writer's next flush. */
#define NCODES (DECIDE_NCODES + 1)
static atomic_ulong counts[NCODES];
static atomic_int counted;	/* counts were added since the last flush */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_t writer;
static int running, stopping;
static struct item *queue;	/* TOUCH_QUEUE items, owned by mu */
static struct item *spare;	/* the writer's, while it writes */
static size_t queued;
static unsigned long dropped;
/* touch_sync's: writes asked for and done, a generation each */
static pthread_cond_t synced = PTHREAD_COND_INITIALIZER;
static unsigned long sync_asked, sync_done;

static void clear(struct item *it, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(it[i].iid);
		free(it[i].version);
		free(it[i].metadata);
	}
}

static struct json_object *item_json(const struct item *it)
{
	struct json_object *o;

	if ((o = json_object_new_object()) == NULL)
		return NULL;
	json_object_object_add(o, "l", json_object_new_string(it->license));
	json_object_object_add(o, "i", json_object_new_string(it->iid));
	json_object_object_add(o, "t", json_object_new_int64(it->at));
	if (it->version != NULL)
		json_object_object_add(o, "v",
		    json_object_new_string(it->version));
	/* A string: licd_touch_batch casts it back to jsonb. */
	if (it->metadata != NULL)
		json_object_object_add(o, "m",
		    json_object_new_string(it->metadata));
	return o;
}

/*
 * The batch as a JSON array in pb, written one item at a time: a tree of
 * TOUCH_BATCH objects would be allocated at every flush, and this
 * thread's malloc arena would then keep it resident.
 */
static int encode(struct printbuf *pb, const struct item *it, size_t n)
{
	struct json_object *o;
	const char *s;
	size_t i, len;
	int rc;

	printbuf_reset(pb);
	if (printbuf_memappend(pb, "[", 1) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		if ((o = item_json(&it[i])) == NULL)
			return -1;
		s = js_dump(o, &len);
		rc = s == NULL || (i > 0 && printbuf_memappend(pb, ",", 1) < 0) ||
		    printbuf_memappend(pb, s, (int)len) < 0 ? -1 : 0;
		json_object_put(o);
		if (rc != 0)
			return -1;
	}
	return printbuf_memappend(pb, "]", 1) < 0 ? -1 : 0;
}

/* One licd_touch_batch call for it[0..n); the batch is retried once when
 * it lost a deadlock against another process's batch. */
static void flush(struct db *db, struct printbuf *pb, struct item *it,
    size_t n)
{
	const char *p[1];
	PGresult *res = NULL;
	int st, try;

	if (encode(pb, it, n) != 0) {
		log_warn("touch: %zu last_seen refreshes not written (out of "
		    "memory)", n);
		return;
	}
	p[0] = pb->buf;
	for (try = 0; try < 2; try++) {
		PQclear(res);
		res = NULL;
		st = db_exec(db, "touch_batch", 1, p, &res);
		if (st != DB_ERROR || strcmp(db_sqlstate(res), "40P01") != 0)
			break;
	}
	if (st != DB_OK)
		log_warn("touch: %zu last_seen refreshes not written (%s)", n,
		    st == DB_UNAVAILABLE ? "database unavailable" :
		    st == DB_BUSY ? "a row locked elsewhere" : db_sqlstate(res));
	PQclear(res);
}

/* Adds the counts since the last flush to validation_counts. Counts that
 * cannot be written are kept for the next flush. */
static void flush_counts(struct db *db)
{
	unsigned long took[NCODES];
	char buf[1024];
	const char *p[1] = { buf };
	size_t i, len = 0;
	PGresult *res = NULL;
	int any = 0;

	atomic_store(&counted, 0);
	len += (size_t)snprintf(buf, sizeof(buf), "{");
	for (i = 0; i < NCODES; i++) {
		took[i] = atomic_exchange(&counts[i], 0);
		if (took[i] == 0)
			continue;
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s\"%s\":%lu",
		    any ? "," : "", i < DECIDE_NCODES ? decide_code_at(i) :
		    "OTHER", took[i]);
		any = 1;
	}
	snprintf(buf + len, sizeof(buf) - len, "}");
	if (!any)
		return;
	if (db_exec(db, "count", 1, p, &res) != DB_OK) {
		for (i = 0; i < NCODES; i++)
			atomic_fetch_add(&counts[i], took[i]);
		atomic_store(&counted, 1);
		log_warn("touch: validation counts not written (%s); kept",
		    db_sqlstate(res));
	}
	PQclear(res);
}

static void *writer_main(void *arg)
{
	struct item *mine = spare, *t;
	struct db *db;
	struct printbuf *pb;
	struct timespec until;
	long ms = cfg_int("touch_flush_ms");
	unsigned long lost, asked;
	size_t n;
	int stop;

	(void)arg;
	if ((db = db_new(stmts, sizeof(stmts) / sizeof(stmts[0]))) == NULL ||
	    (pb = printbuf_new()) == NULL) {
		log_error("touch: no database handle or no memory, "
		    "last_seen is not refreshed");
		db_free(db);
		db = NULL;
		pb = NULL;
	}
	pthread_mutex_lock(&mu);
	for (;;) {
		while (queued == 0 && !atomic_load(&counted) && !stopping &&
		    sync_done == sync_asked)
			pthread_cond_wait(&wake, &mu);
		/* Let a batch gather for up to ms after the first item. */
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += ms / 1000;
		until.tv_nsec += (ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (queued < TOUCH_BATCH && !stopping &&
		    sync_done == sync_asked &&
		    pthread_cond_timedwait(&wake, &mu, &until) == 0)
			;
		/* Swap buffers: requests queue into the other meanwhile. */
		n = queued;
		t = queue;
		queue = mine;
		mine = t;
		queued = 0;
		lost = dropped;
		dropped = 0;
		stop = stopping;
		asked = sync_asked;
		pthread_mutex_unlock(&mu);
		if (lost > 0)
			log_warn("touch: queue full, %lu last_seen refreshes "
			    "dropped", lost);
		for (size_t off = 0; off < n && db != NULL; off += TOUCH_BATCH)
			flush(db, pb, mine + off,
			    n - off < TOUCH_BATCH ? n - off : TOUCH_BATCH);
		if (db != NULL)
			flush_counts(db);
		clear(mine, n);
		pthread_mutex_lock(&mu);
		sync_done = asked;
		pthread_cond_broadcast(&synced);
		if (stop && queued == 0)
			break;
	}
	spare = mine;
	sync_done = sync_asked;
	pthread_cond_broadcast(&synced);
	pthread_mutex_unlock(&mu);
	if (pb != NULL)
		printbuf_free(pb);
	db_free(db);
	return NULL;
}

/* On first use, in the worker process (threads do not survive fork). */
static void start(void)
{
	pthread_mutex_lock(&mu);
	if (stopping)
		goto out;
	queue = calloc(TOUCH_QUEUE, sizeof(*queue));
	spare = calloc(TOUCH_QUEUE, sizeof(*spare));
	if (queue == NULL || spare == NULL ||
	    pthread_create(&writer, NULL, writer_main, NULL) != 0) {
		log_error("touch: cannot start the writer thread");
		free(queue);
		free(spare);
		queue = spare = NULL;
		goto out;
	}
	running = 1;
out:
	pthread_mutex_unlock(&mu);
}

int touch_queue(const char *license, const char *iid, long long at,
    const char *version, const char *metadata)
{
	struct item *it;

	pthread_once(&once, start);
	pthread_mutex_lock(&mu);
	if (!running || stopping || queued == TOUCH_QUEUE) {
		dropped++;
		pthread_mutex_unlock(&mu);
		return -1;
	}
	it = &queue[queued];
	memset(it, 0, sizeof(*it));
	if ((it->iid = strdup(iid)) == NULL) {
		dropped++;
		pthread_mutex_unlock(&mu);
		return -1;
	}
	strncpy(it->license, license, sizeof(it->license) - 1);
	it->at = at;
	it->version = version != NULL ? strdup(version) : NULL;
	it->metadata = metadata != NULL ? strdup(metadata) : NULL;
	if (++queued == 1 || queued == TOUCH_BATCH)
		pthread_cond_signal(&wake);
	pthread_mutex_unlock(&mu);
	return 0;
}

void touch_count(const char *code)
{
	static atomic_int enabled = -1;	/* console_counts, read once */
	int on = atomic_load_explicit(&enabled, memory_order_relaxed);
	int i;

	if (on < 0) {
		on = cfg_bool("console_counts");
		atomic_store_explicit(&enabled, on, memory_order_relaxed);
	}
	if (!on)
		return;
	if ((i = decide_code_index(code)) < 0)
		i = DECIDE_NCODES;
	atomic_fetch_add_explicit(&counts[i], 1, memory_order_relaxed);
	if (atomic_load_explicit(&counted, memory_order_relaxed) ||
	    atomic_exchange(&counted, 1))
		return;
	/* The first count since a flush wakes the writer. */
	pthread_once(&once, start);
	pthread_mutex_lock(&mu);
	pthread_cond_signal(&wake);
	pthread_mutex_unlock(&mu);
}

void touch_sync(void)
{
	unsigned long want;

	pthread_mutex_lock(&mu);
	if (running && !stopping) {
		want = ++sync_asked;
		pthread_cond_signal(&wake);
		while (sync_done < want)
			pthread_cond_wait(&synced, &mu);
	}
	pthread_mutex_unlock(&mu);
}

void touch_stop(void)
{
	int join;

	pthread_mutex_lock(&mu);
	join = running;
	stopping = 1;
	pthread_cond_signal(&wake);
	pthread_mutex_unlock(&mu);
	if (join)
		pthread_join(writer, NULL);
	pthread_mutex_lock(&mu);
	if (queue != NULL)
		clear(queue, queued);
	free(queue);
	free(spare);
	queue = spare = NULL;
	queued = 0;
	running = 0;
	pthread_mutex_unlock(&mu);
}
