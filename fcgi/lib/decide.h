/*
 * decide: what a validate or heartbeat answers, from its lookup's row
 * (lic.h's struct lic_lookup: the license, the installation, the
 * database's clock) and the request. Pure: no I/O, no clock, no
 * allocation, so the whole result-code table of docs/API.md is unit-tested
 * (tests/unit/test_decide.c).
 *
 * A decision may need a write before the answer (an activation, a newly
 * allowed domain, a floating seat taken or renewed); the write's own
 * result code, decided in PostgreSQL under the license's lock, is folded
 * in by decide_written. Otherwise the call is answered from the row alone.
 */
#ifndef LICD_DECIDE_H
#define LICD_DECIDE_H

#include "lic.h"

#include <stddef.h>

enum decide_call { DECIDE_VALIDATE, DECIDE_HEARTBEAT };

/* What must be written, in the request, before the answer. */
enum decide_write {
	DECIDE_NO_WRITE,
	DECIDE_ACTIVATE,	/* licd_activate_batch: a node-locked seat */
	DECIDE_DOMAIN,		/* licd_touch: record a newly allowed domain */
	DECIDE_SEAT_TAKE,	/* licd_seat 'take': take or renew a floating seat */
	DECIDE_SEAT_RENEW,	/* licd_seat 'renew': a heartbeat's renewal */
};

struct decision {
	const char *code;	/* the result code, a static string */
	enum decide_write write;
	int touch;		/* queue the installation's due refresh (touch.h) */
	int active;		/* installation.status in the answer is "active" */
	int lease;		/* the answer carries a lease (code VALID,
				 * after any write) */
};

/* The request's side of the decision; domain and feature NULL when
 * absent (heartbeat has neither). */
struct decide_req {
	enum decide_call call;
	const char *domain;
	const char *feature;
};

/* lk NULL: no row vouched for the key (lic_lookup_read failed):
 * INVALID_KEY. Codes in the order the contract checks them: INVALID_KEY,
 * REVOKED, SUSPENDED, EXPIRED, DOMAIN_NOT_ALLOWED, FEATURE_NOT_LICENSED
 * (validate), INSTALLATION_NOT_ACTIVE (heartbeat), VALID;
 * TOO_MANY_INSTALLATIONS comes from a write (decide_written). */
void decide(const struct decide_req *rq, const struct lic_lookup *lk,
    struct decision *d);

/* Folds in the code the write d->write returned (licd_activate_batch's,
 * licd_seat's), as a code of the contract. */
void decide_written(struct decision *d, const char *code);

/* Seconds an answer from memory allows for between the database's clock
 * and an app host's (NTP), and for rounding each to the second. */
#define DECIDE_SEAT_SKEW 2

/* 1 when decision d, decided from lk, may be answered from the license
 * cache (cache.h) and lk remembered for later calls: no write, and on a
 * floating license a live seat with more than LIC_SEAT_RENEW_LEFT(ttl) +
 * DECIDE_SEAT_SKEW seconds left at lk->now. A renewal only ever extends
 * a seat that had less than LIC_SEAT_RENEW_LEFT(ttl) left at the
 * database's clock, and notifies nothing (docs/DESIGN.md, "The license
 * cache"): every remembered state of a seat it renewed is then past this
 * margin, in every process, and is read from the database again. */
int decide_from_memory(const struct lic_lookup *lk,
    const struct decision *d);

/* code as the contract's static string; NULL when it is none of them. */
const char *decide_code(const char *code);

/* The contract's result codes in a fixed order, for counting answers per
 * code (touch_count): the i-th (i < DECIDE_NCODES), and code's place
 * among them (-1: none). */
#define DECIDE_NCODES 11
const char *decide_code_at(size_t i);
int decide_code_index(const char *code);

#endif
