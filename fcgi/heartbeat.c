/*
 * heartbeat: POST /api/heartbeat. An installation that validated reports
 * in; it gets the license's current state and a fresh lease. Only an
 * active installation may heartbeat (INSTALLATION_NOT_ACTIVE otherwise);
 * heartbeats never activate a seat. A heartbeat takes the steps of
 * decide.h, each a function here:
 *   PARSE   heartbeat()    the fields; the license id the key names
 *   LOOKUP  looked_up()    licd_lookup's row (lookup.h, batched with other
 *                          threads' lookups), then decide() (decide.h)
 *   WRITE   write_step()   on a resume thread, only on a floating license
 *                          whose seat is due a renewal: licd_seat 'renew'
 *                          under the license's lock (a lapsed seat is not
 *                          taken again)
 *   REPLY   reply()        the answer; a due last_seen/version refresh is
 *                          queued for the process's writer (touch.h), not
 *                          written in the request
 */
#include "config.h"
#include "db.h"
#include "decide.h"
#include "http.h"
#include "json.h"
#include "lic.h"
#include "lookup.h"
#include "touch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct db_stmt stmts[] = {
	LOOKUP_STMTS,
	{ "seat", "SELECT * FROM licd_seat($1, $2, 'renew', NULL, $3, NULL, "
	    "NULL)", 0 },
};

/* A heartbeat in flight, from its handler to its answer (http_scratch). */
struct hcall {
	enum decide_step step;
	struct http_req *req;
	struct http_resp *resp;
	const char *key, *iid, *version, *nonce;
	char id[LIC_UUID_LEN + 1];
	int known;			/* lic_key_id's */
	struct lookup_call lookup;
	PGresult *row;			/* the lookup's; lk points into it */
	int have_lic;			/* lk holds a license (lic_free) */
	struct lic_lookup lk;
	struct decision d;
	struct lic_seat s;		/* the installation as answered */
};

_Static_assert(sizeof(struct hcall) <= HTTP_SCRATCH, "struct hcall too large");

static void decide_call(struct hcall *h)
{
	const struct decide_req rq = { DECIDE_HEARTBEAT, NULL, NULL };

	decide(&rq, h->have_lic ? &h->lk : NULL, &h->d);
}

/* REPLY: the answer, from the decision and the installation as it is
 * now. */
static void reply(struct hcall *h)
{
	struct http_req *req = h->req;
	const struct lic_lookup *lk = &h->lk;
	const struct lic *l = h->have_lic ? &lk->l : NULL;
	struct json_object *out;
	int rc;

	h->step = DECIDE_REPLY;
	if (h->d.touch && touch_queue(h->id, h->iid, (long long)req->now,
	    h->version, NULL) == 0 && h->s.last < (long long)req->now)
		h->s.last = (long long)req->now;
	out = lic_result(h->d.code, l, req->now);
	if (h->s.first != 0)
		lic_add_installation(out, h->iid, h->d.active ? "active" :
		    "inactive", h->s.first, h->s.last);
	if (h->d.lease) {
		rc = lk->seat_ttl > 0 ?
		    lic_add_lease_until(out, l, h->iid, h->nonce, req->now,
		    h->s.expires) :
		    lic_add_lease(out, l, h->iid, h->nonce, req->now);
		if (rc != LIC_OK) {
			json_object_put(out);
			http_error(h->resp, 500, "INTERNAL",
			    "cannot sign lease");
			return;
		}
		if (lk->seat_ttl > 0)
			lic_add_seat(out, lk->seat_ttl, h->s.expires,
			    h->s.borrowed, h->s.overdraft);
		else
			json_object_object_add(out, "next_heartbeat_in",
			    json_object_new_int64(lic_heartbeat_interval()));
	}
	req->log_code = h->d.code;
	http_json(h->resp, 200, out);
}

/* Frees what the call holds past its answer. */
static void finish(struct hcall *h)
{
	if (h->have_lic)
		lic_free(&h->lk.l);
	h->have_lic = 0;
	PQclear(h->row);
	h->row = NULL;
}

/* WRITE: licd_seat 'renew' (sql/functions/50_floating.sql). A seat that
 * lapsed, or a license that changed, since the lookup is not renewed. */
static int write_seat(struct hcall *h)
{
	struct http_req *req = h->req;
	const char *params[3] = { h->id, h->iid, h->version };
	struct lic_seat s;
	PGresult *w = NULL;
	int st, rc = -1;

	if ((st = db_exec(req->db, "seat", 3, params, &w)) != DB_OK) {
		http_db_error(req, h->resp, st, "seat");
		goto out;
	}
	if (lic_seat_read(w, &s) != LIC_OK) {
		http_error(h->resp, 500, "INTERNAL", "seat failed");
		goto out;
	}
	decide_written(&h->d, s.code);
	if (h->d.active) {
		h->s.last = s.last;
		h->s.expires = s.expires;
		h->s.borrowed = s.borrowed;
		h->s.overdraft = s.overdraft;
	}
	rc = 0;
out:
	PQclear(w);
	return rc;
}

/* On a resume thread, with its connection; http.c answers after. */
static void write_step(struct http_req *req, struct http_resp *resp)
{
	struct hcall *h = http_scratch(req);

	(void)resp;
	h->step = DECIDE_WRITE;
	if (write_seat(h) == 0)
		reply(h);
	finish(h);
}

/* LOOKUP, on the thread that ran the lookup's batch: the row, the
 * decision, and the answer unless a renewal must come first. */
static void looked_up(struct http_req *req, struct db *db, int st,
    PGresult *res)
{
	struct hcall *h = http_scratch(req);

	req->db = db;
	h->row = res;
	if (st != DB_OK) {
		http_db_error(req, h->resp, st, "license state");
		goto done;
	}
	switch (lookup_license(req, h->resp, res, h->key, h->id, h->known,
	    &h->lk)) {
	case LIC_OK:
		h->have_lic = 1;
		h->s = (struct lic_seat){ NULL, h->lk.first_seen,
		    h->lk.last_seen, h->lk.seat_expires, h->lk.borrowed_until,
		    h->lk.seat_overdraft };
		break;
	case LIC_ERROR:
		goto done;
	default:
		break;			/* INVALID_KEY */
	}
	decide_call(h);
	if (h->d.write != DECIDE_NO_WRITE) {
		http_resume(req, write_step);
		return;
	}
	reply(h);
done:
	finish(h);
	http_done(req);
}

/* PARSE: checks the call and hands its lookup to the batch (lookup.h);
 * this thread goes on to its next request meanwhile. */
static void heartbeat(struct http_req *req, struct http_resp *resp)
{
	struct hcall *h = http_scratch(req);
	struct js_err e;

	memset(h, 0, sizeof(*h));
	h->step = DECIDE_PARSE;
	h->req = req;
	h->resp = resp;
	if (js_string(req->json, "license_key", 1, 1, 16384, JS_TEXT, &h->key,
	    &e) ||
	    js_string(req->json, "installation_id", 1, 1, 128, JS_ID, &h->iid,
	    &e) ||
	    js_string(req->json, "version", 0, 1, 64, JS_TEXT, &h->version,
	    &e) ||
	    js_string(req->json, "nonce", 0, 1, 128, JS_TEXT, &h->nonce, &e)) {
		http_field_error(resp, &e);
		return;
	}
	if (lic_key_id(h->key, h->id, &h->known) != LIC_OK) {
		decide_call(h);
		reply(h);
		return;
	}
	h->step = DECIDE_LOOKUP;
	http_defer(req);
	lookup_read_then(&h->lookup, req, req->db, h->id, h->iid,
	    lic_touch_param(), h->version, NULL, looked_up);
}

static const struct http_route routes[] = {
	{ "/api/heartbeat", 0, "POST", HTTP_BODY_JSON, heartbeat },
	{ "/healthz", 0, "GET", HTTP_BODY_NONE, http_healthz },
};

HTTP_PROGRAM(
	.name = "heartbeat",
	.init = lic_init,
	.reload = lic_keys_reload,
	.fini = touch_stop,
	.defers = 1,
	.resumes = 1)
