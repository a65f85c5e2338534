/*
 * touch: write-behind for an installation's last_seen, version and
 * metadata. validate and heartbeat read the license and installation with
 * one statement (licd_lookup), which says whether the row is due a
 * refresh; due refreshes are queued here instead of being written inside
 * the request. A thread of the process writes the queue every
 * touch_flush_ms (100) or TOUCH_BATCH items, in one transaction
 * (licd_touch_batch) that does not wait for the WAL flush.
 *
 * Why: at a million installations nearly every call is its installation's
 * first within touch_interval, and one write transaction per call cost
 * more than the rest of the call (docs/PERFORMANCE.md).
 *
 * What can be lost: refreshes queued in the last touch_flush_ms when a
 * process is killed hard (SIGTERM flushes), and refreshes dropped while the
 * queue is full (logged). The installation's next call queues it again,
 * and staleness is counted in days.
 */
#ifndef LICD_TOUCH_H
#define LICD_TOUCH_H

#define TOUCH_BATCH 512		/* items per transaction */
#define TOUCH_QUEUE 8192	/* queued at most; more are dropped */

/* Queues a refresh of (license, iid) to `at` (epoch seconds, the
 * database's clock), with version and metadata (serialised JSON object)
 * when not NULL. Returns 0, or -1 when dropped. */
int touch_queue(const char *license, const char *iid, long long at,
    const char *version, const char *metadata);

/* Counts one validate answer with result `code` (validations per day
 * for the console's overview). Counting is two atomic adds; the writer
 * thread adds the counts to validation_counts (licd_count_validations)
 * with its next flush, so a count costs the request no database work.
 * With console_counts off it returns at once (nothing counted). */
void touch_count(const char *code);

/* Writes what is queued at once and returns when it is written (or its
 * transaction failed, logged); for SIGHUP (http_program.sync), so that an
 * operator or a test can know every refresh queued before it is in the
 * database. */
void touch_sync(void);
/* Writes what is queued and stops the writer thread; for the end of a
 * process (http_program.fini). */
void touch_stop(void);

#endif
