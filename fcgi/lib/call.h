/*
 * call: the path of an installation's call by license key, validate's and
 * heartbeat's, in steps, each taken once, in order:
 *
 *   PARSE   the program's handler (validate.c, heartbeat.c), on the thread
 *           that accepted it: the fields, then call_start(): the license
 *           id the key names (lic_key_id); a key naming none is answered
 *           INVALID_KEY at once, else the lookup is queued (http_defer,
 *           lookup_read_then) and the thread takes its next request.
 *   LOOKUP  a known, active installation whose state is in the
 *           process's memory (cache.h) is decided there and then, on the
 *           handler's thread, at the host's clock (from_cache()), unless
 *           the decision needs a write or a floating seat is near its
 *           renewal (decide_from_memory); a floating seat to take or
 *           renew goes to WRITE from there (licd_seat decides it under
 *           the license's lock, the entry gives the rest). Else
 *           looked_up(), on the thread that ran the lookup's batch
 *           (lookup.h): the row vouches for the key (lookup_license), then
 *           decide() (decide.h, pure).
 *   WRITE   write_step(), on a resume thread with its own connection
 *           (http_resume), only when the decision needs a write: an
 *           activation (a seat, in the process's next activation batch,
 *           activate.h: licd_activate_batch takes the license row lock and
 *           counts seats; the batch's thread answers; while a batch
 *           runs, the lookup's thread queues the activation behind it
 *           itself, activate_join), licd_touch (a newly
 *           allowed domain), licd_seat 'take' or 'renew' (a floating seat,
 *           in the process's next seat batch, seat.h: licd_seat_batch,
 *           sql/functions/50_floating.sql; the batch's thread answers).
 *           The lookup batch's thread
 *           never writes: every lookup queued behind it would wait for the
 *           disk flush.
 *   WAIT    wait_write(), on a resume thread, only for a write its batch
 *           skipped because its license was held elsewhere (a batch
 *           never waits for one): the write alone, waiting for the
 *           license up to lock_timeout (503 with Retry-After beyond),
 *           while the batches go on, as usage's WAIT.
 *   REPLY   reply(): a due last_seen/version/metadata refresh is queued
 *           for the process's writer (touch.h), the state the answer was
 *           decided from is remembered (cache_put: a lookup's, or a hit's
 *           with its refresh), and the answer is built and sent
 *           (http_done, or http.c after a resume).
 *
 * The call's state is one struct call in the request's http_scratch.
 */
#ifndef LICD_CALL_H
#define LICD_CALL_H

#include "activate.h"
#include "cache.h"
#include "decide.h"
#include "lic.h"
#include "lookup.h"
#include "seat.h"
#include "touch.h"

struct http_req;
struct http_resp;

/* The statements a call runs; both programs list them. */
#define CALL_STMTS \
	LOOKUP_STMTS, \
	{ "touch", "SELECT * FROM licd_touch($1, $2, $3, $4, $5)", 1 }, \
	ACTIVATE_STMTS, \
	SEAT_STMTS, \
	{ "seat", "SELECT * FROM licd_seat($1, $2, $3, $4, $5, $6, $7, $8)", 0 }

/* The http_program settings of a program whose handlers take this path
 * (http.h): signing keys, the refresh writer stopped last, deferred and
 * resumed requests. */
#define CALL_PROGRAM \
	.init = lic_init, \
	.reload = lic_keys_reload, \
	.fini = call_fini, \
	.sync = touch_sync, \
	.defers = 1, \
	.resumes = 1

struct call {
	/* Filled by the handler (PARSE); the strings live as long as the
	 * request's parsed JSON. */
	struct decide_req rq;		/* validate or heartbeat; domain,
					 * feature */
	const char *key, *iid, *version, *nonce;
	const char *metadata;		/* serialised JSON object, or NULL */
	/* call.c's */
	struct http_req *req;
	struct http_resp *resp;
	char id[LIC_UUID_LEN + 1];
	int known;			/* lic_key_id's */
	struct lic_keytag tag;		/* the key's (lic_key_id_tag) */
	unsigned long ticket;		/* cache_ticket's, before the lookup */
	const struct cache_entry *hit;	/* held: lk was read from it */
	struct lookup_call lookup;
	PGresult *row;			/* the lookup's; lk points into it */
	int have_lic;			/* lk holds a license (lic_free) */
	struct lic_lookup lk;
	struct decision d;
	struct lic_seat s;		/* the installation as answered */
	/* A new installation's lease, signed while its activation waits
	 * (from_license), its exp; NULL: signed when answered. */
	char *lease;
	long long lease_exp;
	union {				/* WRITE's, while queued */
		struct activation act;
		struct seat_write seat;
	};
};

/* The request's call (http_scratch), zeroed, for the handler to fill. */
struct call *call_new(struct http_req *req, struct http_resp *resp,
    enum decide_call kind);

/* The steps after PARSE; the request is answered from here on. */
void call_start(struct call *c);

/* The end of a process: the cache's listener, then the refresh writer. */
void call_fini(void);

#endif
