/* call: see call.h. */
#include "call.h"

#include "activate.h"
#include "db.h"
#include "seat.h"
#include "http.h"
#include "touch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(struct call) <= HTTP_SCRATCH, "struct call too large");

struct call *call_new(struct http_req *req, struct http_resp *resp,
    enum decide_call kind)
{
	struct call *c = http_scratch(req);

	memset(c, 0, sizeof(*c));
	c->rq.call = kind;
	c->req = req;
	c->resp = resp;
	return c;
}

/* 1 when the call's answer may be remembered (decide_from_memory): as
 * decided, or after a floating seat's take or renewal, with the seat as
 * licd_seat left it. */
static int rememberable(const struct call *c)
{
	struct lic_lookup lk = c->lk;
	struct decision d = c->d;

	if (d.write == DECIDE_SEAT_TAKE || d.write == DECIDE_SEAT_RENEW) {
		if (!d.active)
			return 0;
		lk.active = 1;
		lk.seat_expires = c->s.expires;
		lk.borrowed_until = c->s.borrowed;
		lk.seat_overdraft = c->s.overdraft;
		d.write = DECIDE_NO_WRITE;
	} else if (!lk.active) {
		return 0;
	}
	return decide_from_memory(&lk, &d);
}

/* The state the answer was decided from, for the next calls (cache.h):
 * a known, active installation answered without a write (holding a
 * floating seat far from its renewal: decide_from_memory), read from the
 * database, or from memory and refreshed since (touched: its refresh is
 * queued); or a floating seat just taken or renewed, as licd_seat
 * returned it (renewals notify nothing: without this, the installation's
 * next call in this process would read the database again only to find
 * what the write returned). The ticket predates the lookup, so a change
 * of the license notified since (a second renewal, a check-in) drops the
 * put. */
static void remember(struct call *c, int touched)
{
	const struct lic_lookup *lk = &c->lk;
	int wrote = c->d.write == DECIDE_SEAT_TAKE ||
	    c->d.write == DECIDE_SEAT_RENEW;
	struct cache_fill f;

	if (!c->have_lic || !rememberable(c) ||
	    (c->hit != NULL && !touched && !wrote))
		return;
	f.license = c->id;
	f.iid = c->iid;
	f.l = &lk->l;
	f.first_seen = c->s.first;
	f.last_seen = c->s.last;
	/* licd_seat records the request's domain, version and metadata
	 * when given (a renewal's: its version) and keeps the row's
	 * otherwise: an unknown one is NULL. */
	f.domain = wrote && c->rq.domain != NULL ? c->rq.domain : lk->domain;
	if (wrote) {
		f.version = c->version;
		f.metadata = c->d.write == DECIDE_SEAT_TAKE ? c->metadata : NULL;
	} else {
		/* The database holds the call's version and metadata once
		 * its refresh is queued, or when none was due; else they are
		 * not known (a NULL one is never known). */
		f.version = touched || !lk->needs_touch ? c->version : NULL;
		f.metadata = touched || !lk->needs_touch ? c->metadata : NULL;
	}
	/* The key is the license's: the row vouched for it, or the
	 * verified-key cache or this entry's tag knew it. */
	f.key = &c->tag;
	f.seat_ttl = lk->seat_ttl;
	f.seat_expires = c->s.expires;
	f.borrowed_until = c->s.borrowed;
	f.seat_overdraft = c->s.overdraft;
	cache_put(c->ticket, &f);
}

/* REPLY: the answer, from the decision and the installation as it is
 * now. */
static void reply(struct call *c)
{
	struct http_req *req = c->req;
	const struct lic_lookup *lk = &c->lk;
	const struct lic *l = c->have_lic ? &lk->l : NULL;
	struct json_object *out;
	int touched = 0;

	if (c->d.touch && touch_queue(c->id, c->iid, (long long)req->now,
	    c->version, c->metadata) == 0) {
		touched = 1;
		if (c->s.last < (long long)req->now)
			c->s.last = (long long)req->now;
	}
	remember(c, touched);
	out = lic_result(c->d.code, l, req->now);
	if (c->s.first != 0)
		lic_add_installation(out, c->iid, c->d.active ? "active" :
		    "inactive", c->s.first, c->s.last);
	if (c->d.lease) {
		/* A new installation's lease may have been signed while its
		 * activation waited (from_license); a floating seat's ends
		 * with the seat, known only now. */
		if (lk->seat_ttl > 0) {
			free(c->lease);
			c->lease = NULL;
		}
		if (c->lease == NULL && lic_lease_until(l, c->iid, c->nonce,
		    req->now, lk->seat_ttl > 0 ? c->s.expires : 0, &c->lease,
		    &c->lease_exp) != LIC_OK) {
			json_object_put(out);
			http_error(c->resp, 500, "INTERNAL",
			    "cannot sign lease");
			return;
		}
		lic_put_lease(out, c->lease, c->lease_exp);
		if (lk->seat_ttl > 0)
			lic_add_seat(out, lk->seat_ttl, c->s.expires,
			    c->s.borrowed, c->s.overdraft);
		else if (c->rq.call == DECIDE_HEARTBEAT)
			js_put(out, "next_heartbeat_in",
			    json_object_new_int64(lic_heartbeat_interval()));
	}
	req->log_code = c->d.code;
	if (c->rq.call == DECIDE_VALIDATE)
		touch_count(req->log_code);
	http_json(c->resp, 200, out);
}

/* Frees what the call holds past its answer. */
static void finish(struct call *c)
{
	if (c->have_lic)
		lic_free(&c->lk.l);
	c->have_lic = 0;
	PQclear(c->row);
	c->row = NULL;
	cache_release(c->hit);
	c->hit = NULL;
	free(c->lease);
	c->lease = NULL;
}

/* WRITE, a newly allowed domain: licd_touch records it (and refreshes
 * last_seen with it). 0: done; -1: answered; 1: the installation was
 * deactivated between the lookup and licd_touch, so it takes a seat
 * instead. */
static int write_domain(struct call *c)
{
	struct http_req *req = c->req;
	const char *params[5] = { c->id, c->iid, c->version, c->metadata,
	    c->rq.domain };
	PGresult *w = NULL;
	int st, rc = -1;

	if ((st = db_exec(req->db, "touch", 5, params, &w)) != DB_OK) {
		http_db_error(req, c->resp, st, "touch");
		goto out;
	}
	if (PQntuples(w) == 1) {
		c->s.first = strtoll(PQgetvalue(w, 0, 0), NULL, 10);
		c->s.last = strtoll(PQgetvalue(w, 0, 1), NULL, 10);
		decide_written(&c->d, "VALID");
		rc = 0;
	} else if (PQntuples(w) == 0) {
		rc = 1;
	} else {
		http_error(c->resp, 500, "INTERNAL", "activation failed");
	}
out:
	PQclear(w);
	return rc;
}

/* After an activation answered VALID, for the calls of the license's
 * other installations in this process (validate only activates; a
 * floating license's seats are licd_seat's): from a lookup, the
 * license's own entry (cache.h), so that its next new installations go
 * to their activation without one; from that entry (unread), an
 * installation that was active already (kept), which the cache will then
 * answer, instead of activating it again on each call. Under the ticket
 * read before the license's state was. The database holds the call's
 * version and metadata when given (NULL: not known), and its domain. */
static void remember_activated(struct call *c, int kept)
{
	struct cache_fill f;

	if (!c->have_lic || c->lk.seat_ttl != 0 ||
	    strcmp(c->lk.l.status, "active") != 0)
		return;
	memset(&f, 0, sizeof(f));
	f.license = c->id;
	f.l = &c->lk.l;
	f.key = &c->tag;
	if (c->hit == NULL) {
		f.iid = "";
	} else if (kept) {
		f.iid = c->iid;
		f.first_seen = c->s.first;
		f.last_seen = c->s.last;
		f.domain = c->rq.domain;
		f.version = c->version;
		f.metadata = c->metadata;
	} else {
		return;
	}
	cache_put(c->ticket, &f);
}

/* WAIT, on a resume thread: a write its batch skipped because another
 * transaction held its license, alone, waiting for that license up to
 * lock_timeout (503 with Retry-After beyond), so that neither the batch
 * nor the process's writes for other licenses wait for a held one. The
 * write answers the call (activated, seat_written). */
static void wait_write(struct http_req *req, struct http_resp *resp)
{
	struct call *c = http_scratch(req);

	(void)resp;
	http_defer(req);
	if (c->d.write == DECIDE_ACTIVATE)
		activate_wait(req->db, &c->act);
	else
		seat_wait(req->db, &c->seat);
}

/* An activation answered (activate.h), on the thread that ran its batch
 * (or held: to wait for its license): the call's answer, and the
 * request's end. */
static void activated(struct activation *a, struct db *db)
{
	struct call *c = a->arg;
	struct http_req *req = c->req;

	(void)db;
	if (a->held) {
		http_resume(req, wait_write);
		return;
	}
	if (a->st != DB_OK) {
		http_db_error(req, c->resp, a->st, "activate");
	} else if (a->code == NULL) {
		http_error(c->resp, 500, "INTERNAL", "activation failed");
	} else if (strcmp(a->code, "NOT_FLOATING") == 0) {
		/* The license became floating since the lookup: its seats are
		 * licd_seat's, which the next call takes. */
		http_error(c->resp, 503, "SERVICE_UNAVAILABLE",
		    "the license changed; retry");
	} else {
		decide_written(&c->d, a->code);
		if (c->d.active) {
			c->s.first = a->first;
			c->s.last = a->last;
			remember_activated(c, a->kept);
		}
		reply(c);
	}
	finish(c);
	http_done(req);
}

/* On a resume thread: the activations of a batch its thread handed on
 * to run the next batch at once (activate.h), this call's first in it;
 * each call is answered (activated), this one last. */
static void answer_batch(struct http_req *req, struct http_resp *resp)
{
	struct call *c = http_scratch(req);

	(void)resp;
	http_defer(req);	/* activated answers it */
	activate_answer(&c->act, req->db);
}

/* activation's hand */
static void hand_batch(struct activation *a)
{
	struct call *c = a->arg;

	http_resume(c->req, answer_batch);
}

/* The call's activation, for write_activate or joined. */
static struct activation *activation(struct call *c)
{
	struct activation *a = &c->act;

	memset(a, 0, sizeof(*a));
	a->license = c->id;
	a->iid = c->iid;
	a->version = c->version;
	a->metadata = c->metadata;
	a->domain = c->rq.domain;
	a->feature = c->rq.feature;
	/* from the license's own entry: the installation was not read */
	a->unread = c->hit != NULL;
	a->then = activated;
	a->hand = hand_batch;
	a->arg = c;
	return a;
}

/* WRITE, node-locked: a seat, taken in the process's next activation
 * batch (activate.h), which answers the call (activated). The request is
 * deferred again: this thread takes the next resumed request meanwhile,
 * unless it runs the batch itself. */
static void write_activate(struct call *c)
{
	struct activation *a = activation(c);

	http_defer(c->req);
	activate_submit(c->req->db, a);
}

/* A floating seat's write answered (seat.h), on the thread that ran its
 * batch: the call's answer, and the request's end. A refused call keeps
 * the installation as the lookup saw it. */
static void seat_written(struct seat_write *w, struct db *db)
{
	struct call *c = w->arg;
	struct http_req *req = c->req;

	(void)db;
	if (w->held) {
		http_resume(req, wait_write);
		return;
	}
	if (w->st != DB_OK) {
		http_db_error(req, c->resp, w->st, "seat");
	} else if (w->s.code == NULL) {
		http_error(c->resp, 500, "INTERNAL", "seat failed");
	} else if (w->take && strcmp(w->s.code, "NOT_FLOATING") == 0) {
		/* The license became node-locked since the lookup. */
		http_error(c->resp, 503, "SERVICE_UNAVAILABLE",
		    "the license changed; retry");
	} else {
		decide_written(&c->d, w->s.code);
		/* A renewal moved the seat's end: the lease that ended
		 * with it is asked for no more. */
		if (c->d.active && c->have_lic && c->lk.seat_expires > 0 &&
		    w->s.expires != c->lk.seat_expires)
			lic_lease_forget(&c->lk.l, c->iid, c->lk.seat_expires);
		if (c->d.active) {
			if (w->take)
				c->s.first = w->s.first;
			c->s.last = w->s.last;
			c->s.expires = w->s.expires;
			c->s.borrowed = w->s.borrowed;
			c->s.overdraft = w->s.overdraft;
		}
		reply(c);
	}
	finish(c);
	http_done(req);
}

/* The call's seat write, for write_seat or seat_join. */
static struct seat_write *seat_of(struct call *c)
{
	struct seat_write *w = &c->seat;

	memset(w, 0, sizeof(*w));
	w->license = c->id;
	w->iid = c->iid;
	w->take = c->d.write == DECIDE_SEAT_TAKE;
	w->version = c->version;
	w->metadata = w->take ? c->metadata : NULL;
	w->domain = c->rq.domain;
	w->feature = c->rq.feature;
	w->then = seat_written;
	w->arg = c;
	return w;
}

/* WRITE, floating: licd_seat 'take' (validate) takes a seat or renews the
 * one held, with the request's domain and feature checked again; 'renew'
 * (heartbeat) only renews a live one; both under the license's lock
 * (sql/functions/50_floating.sql), in the process's next seat batch
 * (seat.h), which answers the call (seat_written). The request is
 * deferred again, as an activation's. */
static void write_seat(struct call *c)
{
	struct seat_write *w = seat_of(c);

	http_defer(c->req);
	seat_submit(c->req->db, w);
}

/* On a resume thread, with its connection; http.c answers after. */
static void write_step(struct http_req *req, struct http_resp *resp)
{
	struct call *c = http_scratch(req);
	int rc;

	(void)resp;
	switch (c->d.write) {
	case DECIDE_DOMAIN:
		if ((rc = write_domain(c)) <= 0)
			break;
		c->d.write = DECIDE_ACTIVATE;
		/* FALLTHROUGH */
	case DECIDE_ACTIVATE:
		write_activate(c);	/* c may be gone on return */
		return;
	default:
		write_seat(c);		/* c may be gone on return */
		return;
	}
	if (rc == 0)
		reply(c);
	finish(c);
}

/* To WRITE, the request deferred: an activation or a seat write joins
 * the batch running now when there is one (its thread answers the call),
 * so that no resume thread is woken only to queue it; anything else, or
 * with no batch running, goes to write_step on a resume thread. */
static void to_write(struct call *c)
{
	struct http_req *req = c->req;
	int joined;

	switch (c->d.write) {
	case DECIDE_ACTIVATE:
		joined = activate_join(activation(c));
		break;
	case DECIDE_SEAT_TAKE:
	case DECIDE_SEAT_RENEW:
		joined = seat_join(seat_of(c));
		break;
	default:
		joined = 0;
	}
	if (!joined)
		http_resume(req, write_step);
}

/* To WRITE from LOOKUP from memory, on the handler's thread: the call
 * deferred, its log line marked cache=how (new, write), at the clock
 * now it was decided at. */
static void from_memory_to_write(struct call *c, time_t now, const char *how)
{
	struct http_req *req = c->req;

	req->now = now;
	snprintf(req->log_subject, sizeof(req->log_subject),
	    "license=%s cache=%s", c->id, how);
	http_defer(req);
	to_write(c);
}

/* LOOKUP, on the thread that ran the lookup's batch: the row, the
 * decision, and the answer unless a write must come first. */
static void looked_up(struct http_req *req, struct db *db, int st,
    PGresult *res)
{
	struct call *c = http_scratch(req);

	req->db = db;
	c->row = res;
	if (st != DB_OK) {
		http_db_error(req, c->resp, st, "license state");
		goto done;
	}
	switch (lookup_license(req, c->resp, res, c->key, c->id, c->known,
	    &c->lk)) {
	case LIC_OK:
		c->have_lic = 1;
		c->s = (struct lic_seat){ NULL, c->lk.first_seen,
		    c->lk.last_seen, c->lk.seat_expires, c->lk.borrowed_until,
		    c->lk.seat_overdraft };
		break;
	case LIC_ERROR:
		goto done;
	default:
		break;			/* INVALID_KEY */
	}
	decide(&c->rq, c->have_lic ? &c->lk : NULL, &c->d);
	if (c->d.write != DECIDE_NO_WRITE) {
		to_write(c);		/* c may be gone on return */
		return;
	}
	reply(c);
done:
	finish(c);
	http_done(req);
}

/* LOOKUP from memory for a validate of an installation not in memory,
 * when its license's own entry is (cache.h): 1 when the decision from
 * the license's state is an activation, handed to WRITE without a
 * lookup (the installation is most likely new: its license activated one
 * before). licd_activate_batch decides it again under the license's
 * lock from the rows as they are then, and an installation it finds
 * active keeps its seat, as the lookup would have answered it (the
 * activation's "unread"); the entry (held) gives the rest of the answer,
 * as a hit's. 0 (nothing held) when the call must read the database:
 * no such entry, a key the entry cannot vouch for, or any other
 * decision (the lookup answers it with the installation as it is). */
static int from_license(struct call *c)
{
	time_t now;

	if ((c->hit = cache_get(c->id, "")) == NULL)
		return 0;
	now = cache_now();
	if ((!c->known && !cache_key_ok(c->hit, &c->tag)) ||
	    cache_read(c->hit, now, lic_touch_interval(), c->version,
	    c->metadata, &c->lk) != LIC_OK) {
		finish(c);
		return 0;
	}
	c->have_lic = 1;
	c->s = (struct lic_seat){ NULL, 0, 0, 0, 0, 0 };
	decide(&c->rq, &c->lk, &c->d);
	if (c->d.write != DECIDE_ACTIVATE) {
		finish(c);
		return 0;
	}
	/* The lease a VALID activation answers with does not depend on the
	 * write: it is signed here, on the handler's thread, while the call
	 * would wait for its batch anyway, so that the batch's thread, which
	 * answers every call of the batch one after the other, does not
	 * sign. A call the batch refuses drops it; one not signed here is
	 * signed when answered. */
	if (lic_lease_until(&c->lk.l, c->iid, c->nonce, now, 0, &c->lease,
	    &c->lease_exp) != LIC_OK)
		c->lease = NULL;
	from_memory_to_write(c, now, "new");	/* c may be gone */
	return 1;
}

/* LOOKUP from memory, on the handler's thread: 1 when answered, or
 * handed to WRITE (a floating seat to take or renew); 0 when the call
 * must read the database (no entry, the cache may not answer now, a key
 * neither in the verified-key cache nor the very text the entry was
 * filled for under the current key ring, another write is due, or a
 * floating seat is near its renewal). */
static int from_cache(struct call *c)
{
	struct http_req *req = c->req;
	time_t now;

	if ((c->hit = cache_get(c->id, c->iid)) == NULL)
		return c->rq.call == DECIDE_VALIDATE && from_license(c);
	if (!c->known && !cache_key_ok(c->hit, &c->tag)) {
		finish(c);
		return 0;
	}
	now = cache_now();
	if (cache_read(c->hit, now, lic_touch_interval(), c->version,
	    c->metadata, &c->lk) != LIC_OK) {
		finish(c);
		return 0;
	}
	c->have_lic = 1;
	c->s = (struct lic_seat){ NULL, c->lk.first_seen, c->lk.last_seen,
	    c->lk.seat_expires, c->lk.borrowed_until, c->lk.seat_overdraft };
	decide(&c->rq, &c->lk, &c->d);
	if (c->d.write == DECIDE_SEAT_TAKE || c->d.write == DECIDE_SEAT_RENEW) {
		/* A floating seat to take or renew: licd_seat decides it
		 * under the license's lock from the rows as they are then
		 * (the license's state, the request's rules, the seat), so
		 * the lookup would add nothing; the entry (held) gives the
		 * rest of the answer, as a hit's. */
		from_memory_to_write(c, now, "write");	/* c may be gone */
		return 1;
	}
	if (!decide_from_memory(&c->lk, &c->d)) {
		finish(c);
		return 0;
	}
	req->now = now;
	snprintf(req->log_subject, sizeof(req->log_subject),
	    "license=%s cache=hit", c->id);
	reply(c);
	finish(c);
	return 1;
}

void call_start(struct call *c)
{
	struct http_req *req = c->req;

	cache_start(c->rq.call == DECIDE_VALIDATE ? "validate" : "heartbeat");
	if (lic_key_id_tag(c->key, c->id, &c->known, &c->tag) != LIC_OK) {
		decide(&c->rq, NULL, &c->d);
		reply(c);
		return;
	}
	/* Before the entry or the lookup: what they read may be dropped
	 * after it, and must then not be stored. */
	c->ticket = cache_ticket(c->id);
	if (from_cache(c))
		return;
	http_defer(req);
	lookup_read_then(&c->lookup, req, req->db, c->id, c->iid,
	    lic_touch_param(), c->version, c->metadata, looked_up);
}

void call_fini(void)
{
	cache_stop();
	touch_stop();
}
