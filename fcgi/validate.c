/*
 * validate: POST /api/validate, POST /api/deactivate, POST /api/checkin,
 * POST /api/borrow, GET /healthz.
 *
 * A validate takes the steps of decide.h, each a function here:
 *   PARSE   validate()     the fields; the license id the key names
 *   LOOKUP  looked_up()    licd_lookup's row (lookup.h: shared with the
 *                          lookups of other threads arriving at the same
 *                          time), then decide() (decide.h, pure)
 *   WRITE   write_step()   on a resume thread, only when decided: a new
 *                          installation through licd_activate(), which
 *                          holds the license row lock while it counts
 *                          seats; a newly allowed domain through
 *                          licd_touch(); a floating seat taken or renewed
 *                          through licd_seat()
 *                          (sql/functions/50_floating.sql, docs/DESIGN.md
 *                          "Floating seats")
 *   REPLY   reply()        the answer; a due last_seen refresh is queued
 *                          for the process's writer (touch.h), not
 *                          written in the request
 * The handler's thread goes on to its next request once the lookup is
 * queued (http_defer); the thread that runs the lookup's batch answers
 * (http_done), or hands a call that must write to a resume thread
 * (http_resume), since the other lookups queued behind it must not wait
 * for a disk flush. checkin and borrow are licd_seat's other uses.
 */
#include "config.h"
#include "db.h"
#include "decide.h"
#include "http.h"
#include "json.h"
#include "lic.h"
#include "log.h"
#include "lookup.h"
#include "touch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct db_stmt stmts[] = {
	LOOKUP_STMTS,
	{ "touch", "SELECT * FROM licd_touch($1, $2, $3, $4, $5)", 1 },
	{ "activate", "SELECT * FROM licd_activate($1, $2, $3, $4, $5)", 1 },
	{ "deactivate", "SELECT * FROM licd_deactivate($1, $2)", 1 },
	{ "seat", "SELECT * FROM licd_seat($1, $2, $3, $4, $5, $6, $7)", 0 },
	{ "checkin", "SELECT * FROM licd_seat_checkin($1, $2)", 1 },
};

struct vreq {
	const char *key, *iid, *domain, *version, *feature, *nonce;
	const char *metadata;		/* serialised, or NULL */
};

/* A validate in flight, from its handler to its answer (http_scratch). */
struct vcall {
	enum decide_step step;
	struct http_req *req;
	struct http_resp *resp;
	struct vreq v;
	char id[LIC_UUID_LEN + 1];
	int known;			/* lic_key_id's */
	struct lookup_call lookup;
	PGresult *row;			/* the lookup's; lk points into it */
	int have_lic;			/* lk holds a license (lic_free) */
	struct lic_lookup lk;
	struct decision d;
	struct lic_seat s;		/* the installation as answered */
};

_Static_assert(sizeof(struct vcall) <= HTTP_SCRATCH, "struct vcall too large");

static int parse(struct http_req *req, struct http_resp *resp,
    struct vreq *v)
{
	struct json_object *meta;
	struct js_err e;

	memset(v, 0, sizeof(*v));
	if (js_string(req->json, "license_key", 1, 1, 16384, JS_TEXT,
	    &v->key, &e) ||
	    js_string(req->json, "installation_id", 1, 1, 128, JS_ID, &v->iid,
	    &e) ||
	    js_host(req->json, "domain", 0, &v->domain, &e) ||
	    js_string(req->json, "version", 0, 1, 64, JS_TEXT, &v->version,
	    &e) ||
	    js_string(req->json, "feature", 0, 1, 64, JS_TOKEN, &v->feature,
	    &e) ||
	    js_string(req->json, "nonce", 0, 1, 128, JS_TEXT, &v->nonce, &e) ||
	    js_object(req->json, "metadata", 2048, &meta, &e)) {
		http_field_error(resp, &e);
		return -1;
	}
	if (meta != NULL)
		v->metadata = js_dump(meta, NULL);
	return 0;
}

static void decide_call(struct vcall *x)
{
	const struct decide_req rq = { DECIDE_VALIDATE, x->v.domain,
	    x->v.feature };

	decide(&rq, x->have_lic ? &x->lk : NULL, &x->d);
}

/* REPLY: the answer, from the decision and the installation as it is
 * now. */
static void reply(struct vcall *x)
{
	struct http_req *req = x->req;
	const struct lic_lookup *lk = &x->lk;
	const struct lic *l = x->have_lic ? &lk->l : NULL;
	struct json_object *out;
	int rc;

	x->step = DECIDE_REPLY;
	if (x->d.touch && touch_queue(x->id, x->v.iid, (long long)req->now,
	    x->v.version, x->v.metadata) == 0)
		x->s.last = (long long)req->now;
	out = lic_result(x->d.code, l, req->now);
	if (x->s.first != 0)
		lic_add_installation(out, x->v.iid, x->d.active ? "active" :
		    "inactive", x->s.first, x->s.last);
	if (x->d.lease) {
		rc = lk->seat_ttl > 0 ?
		    lic_add_lease_until(out, l, x->v.iid, x->v.nonce, req->now,
		    x->s.expires) :
		    lic_add_lease(out, l, x->v.iid, x->v.nonce, req->now);
		if (rc != LIC_OK) {
			json_object_put(out);
			http_error(x->resp, 500, "INTERNAL",
			    "cannot sign lease");
			return;
		}
		if (lk->seat_ttl > 0)
			lic_add_seat(out, lk->seat_ttl, x->s.expires,
			    x->s.borrowed, x->s.overdraft);
	}
	req->log_code = x->d.code;
	touch_count(req->log_code);
	http_json(x->resp, 200, out);
}

/* Frees what the call holds past its answer. */
static void finish(struct vcall *x)
{
	if (x->have_lic)
		lic_free(&x->lk.l);
	x->have_lic = 0;
	PQclear(x->row);
	x->row = NULL;
}

/* WRITE, node-locked: licd_touch records a newly allowed domain (and
 * refreshes last_seen with it); licd_activate takes a seat, also for an
 * installation deactivated between the lookup and licd_touch. */
static int write_node(struct vcall *x)
{
	struct http_req *req = x->req;
	const char *params[5] = { x->id, x->v.iid, x->v.version,
	    x->v.metadata, x->v.domain };
	PGresult *w = NULL;
	int st, rc = -1;

	if (x->d.write == DECIDE_DOMAIN) {
		if ((st = db_exec(req->db, "touch", 5, params, &w)) != DB_OK) {
			http_db_error(req, x->resp, st, "touch");
			goto out;
		}
		if (PQntuples(w) == 1) {
			x->s.first = strtoll(PQgetvalue(w, 0, 0), NULL, 10);
			x->s.last = strtoll(PQgetvalue(w, 0, 1), NULL, 10);
			decide_written(&x->d, "VALID");
			rc = 0;
			goto out;
		}
		if (PQntuples(w) != 0) {
			http_error(x->resp, 500, "INTERNAL",
			    "activation failed");
			goto out;
		}
		/* Deactivated between our read and write. */
		PQclear(w);
		w = NULL;
		x->d.write = DECIDE_ACTIVATE;
	}
	if ((st = db_exec(req->db, "activate", 5, params, &w)) != DB_OK) {
		http_db_error(req, x->resp, st, "activate");
		goto out;
	}
	if (PQntuples(w) != 1) {
		http_error(x->resp, 500, "INTERNAL", "activation failed");
		goto out;
	}
	decide_written(&x->d, PQgetvalue(w, 0, 0));
	if (x->d.active) {
		x->s.first = strtoll(PQgetvalue(w, 0, 1), NULL, 10);
		x->s.last = strtoll(PQgetvalue(w, 0, 2), NULL, 10);
	}
	rc = 0;
out:
	PQclear(w);
	return rc;
}

/* WRITE, floating: licd_seat 'take' takes a seat or renews the one held,
 * under the license's lock (sql/functions/50_floating.sql). A refused call
 * keeps the installation as the lookup saw it. */
static int write_seat(struct vcall *x)
{
	struct http_req *req = x->req;
	const char *params[7] = { x->id, x->v.iid, "take", NULL, x->v.version,
	    x->v.metadata, x->v.domain };
	struct lic_seat s;
	PGresult *w = NULL;
	int st, rc = -1;

	if ((st = db_exec(req->db, "seat", 7, params, &w)) != DB_OK) {
		http_db_error(req, x->resp, st, "seat");
		goto out;
	}
	if (lic_seat_read(w, &s) != LIC_OK) {
		http_error(x->resp, 500, "INTERNAL", "seat failed");
		goto out;
	}
	if (strcmp(s.code, "NOT_FLOATING") == 0) {
		/* The license became node-locked since the lookup. */
		http_error(x->resp, 503, "SERVICE_UNAVAILABLE",
		    "the license changed; retry");
		goto out;
	}
	decide_written(&x->d, s.code);
	if (x->d.active)
		x->s = s;
	x->s.code = NULL;		/* s.code is w's */
	rc = 0;
out:
	PQclear(w);
	return rc;
}

/* On a resume thread, with its connection; http.c answers after. */
static void write_step(struct http_req *req, struct http_resp *resp)
{
	struct vcall *x = http_scratch(req);

	(void)resp;
	x->step = DECIDE_WRITE;
	if ((x->d.write == DECIDE_SEAT_TAKE ? write_seat(x) :
	    write_node(x)) == 0)
		reply(x);
	finish(x);
}

/* LOOKUP, on the thread that ran the lookup's batch: the row, the
 * decision, and the answer unless a write must come first. */
static void looked_up(struct http_req *req, struct db *db, int st,
    PGresult *res)
{
	struct vcall *x = http_scratch(req);

	req->db = db;
	x->row = res;
	if (st != DB_OK) {
		http_db_error(req, x->resp, st, "license state");
		goto done;
	}
	switch (lookup_license(req, x->resp, res, x->v.key, x->id, x->known,
	    &x->lk)) {
	case LIC_OK:
		x->have_lic = 1;
		x->s = (struct lic_seat){ NULL, x->lk.first_seen,
		    x->lk.last_seen, x->lk.seat_expires, x->lk.borrowed_until,
		    x->lk.seat_overdraft };
		break;
	case LIC_ERROR:
		goto done;
	default:
		break;			/* INVALID_KEY */
	}
	decide_call(x);
	if (x->d.write != DECIDE_NO_WRITE) {
		http_resume(req, write_step);
		return;
	}
	reply(x);
done:
	finish(x);
	http_done(req);
}

/* PARSE: checks the call and hands its lookup to the batch (lookup.h);
 * this thread goes on to its next request meanwhile. */
static void validate(struct http_req *req, struct http_resp *resp)
{
	struct vcall *x = http_scratch(req);

	memset(x, 0, sizeof(*x));
	x->step = DECIDE_PARSE;
	x->req = req;
	x->resp = resp;
	if (parse(req, resp, &x->v) != 0)
		return;
	if (lic_key_id(x->v.key, x->id, &x->known) != LIC_OK) {
		decide_call(x);
		reply(x);
		return;
	}
	x->step = DECIDE_LOOKUP;
	http_defer(req);
	lookup_read_then(&x->lookup, req, req->db, x->id, x->v.iid,
	    lic_touch_param(), x->v.version, x->v.metadata, looked_up);
}

static void deactivate(struct http_req *req, struct http_resp *resp)
{
	char id[LIC_UUID_LEN + 1];
	const char *key, *iid, *params[2];
	struct json_object *o;
	struct js_err e;
	PGresult *res = NULL;
	int st;

	if (js_string(req->json, "license_key", 1, 1, 16384, JS_TEXT, &key,
	    &e) ||
	    js_string(req->json, "installation_id", 1, 1, 128, JS_ID, &iid,
	    &e)) {
		http_field_error(resp, &e);
		return;
	}
	if (lic_verify_key(key, id, NULL) != LIC_OK) {
		http_error(resp, 403, "INVALID_KEY", "the license key is not valid");
		return;
	}
	snprintf(req->log_subject, sizeof(req->log_subject), "license=%s", id);
	params[0] = id;
	params[1] = iid;
	if ((st = db_exec(req->db, "deactivate", 2, params, &res)) != DB_OK) {
		http_db_error(req, resp, st, "deactivate");
		goto out;
	}
	if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		http_error(resp, 403, "INVALID_KEY", "unknown license");
		goto out;
	}
	o = json_object_new_object();
	json_object_object_add(o, "deactivated", json_object_new_boolean(1));
	http_json(resp, 200, o);
out:
	PQclear(res);
}

/* A request naming a license by its key and an installation, on a
 * floating-seat endpoint: the key verified (403 INVALID_KEY otherwise). */
static int seat_request(struct http_req *req, struct http_resp *resp,
    const char **key, const char **iid, char id[LIC_UUID_LEN + 1],
    struct js_err *e)
{
	if (js_string(req->json, "license_key", 1, 1, 16384, JS_TEXT, key,
	    e) ||
	    js_string(req->json, "installation_id", 1, 1, 128, JS_ID, iid,
	    e)) {
		http_field_error(resp, e);
		return -1;
	}
	if (lic_verify_key(*key, id, NULL) != LIC_OK) {
		http_error(resp, 403, "INVALID_KEY", "the license key is not valid");
		return -1;
	}
	snprintf(req->log_subject, sizeof(req->log_subject), "license=%s", id);
	return 0;
}

static void not_floating(struct http_resp *resp)
{
	http_error(resp, 409, "NOT_FLOATING",
	    "the license is node-locked: seats are freed by /api/deactivate");
}

/* POST /api/checkin: releases a floating seat at once; idempotent. */
static void checkin(struct http_req *req, struct http_resp *resp)
{
	char id[LIC_UUID_LEN + 1];
	const char *key, *iid, *params[2];
	struct json_object *o;
	struct js_err e;
	PGresult *res = NULL;
	int st;

	if (seat_request(req, resp, &key, &iid, id, &e) != 0)
		return;
	params[0] = id;
	params[1] = iid;
	if ((st = db_exec(req->db, "checkin", 2, params, &res)) != DB_OK) {
		http_db_error(req, resp, st, "checkin");
		goto out;
	}
	if (PQntuples(res) != 1 ||
	    strcmp(PQgetvalue(res, 0, 0), "INVALID_KEY") == 0) {
		http_error(resp, 403, "INVALID_KEY", "unknown license");
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "NOT_FLOATING") == 0) {
		not_floating(resp);
		goto out;
	}
	o = json_object_new_object();
	json_object_object_add(o, "checked_in", json_object_new_boolean(1));
	json_object_object_add(o, "released", json_object_new_boolean(
	    strcmp(PQgetvalue(res, 0, 1), "t") == 0));
	http_json(resp, 200, o);
out:
	PQclear(res);
}

/* POST /api/borrow: holds a floating seat for `days` days (licd_seat
 * 'borrow') and answers as validate does, with a lease lasting as long.
 * Rare, so it reads its license itself rather than through the batch. */
static void borrow(struct http_req *req, struct http_resp *resp)
{
	char id[LIC_UUID_LEN + 1], days[24];
	const char *key, *iid, *domain, *version, *nonce, *code, *eff;
	const char *params[7];
	struct json_object *out = NULL;
	struct lic_lookup lk;
	struct js_err e;
	struct lic_seat s;
	PGresult *res = NULL, *w = NULL;
	long long ndays;
	int st, have_lic = 0;

	if (seat_request(req, resp, &key, &iid, id, &e) != 0)
		return;
	if (js_int(req->json, "days", 1, 1, 3650, 0, &ndays, &e) ||
	    js_string(req->json, "domain", 0, 1, 254, JS_HOST, &domain, &e) ||
	    js_string(req->json, "version", 0, 1, 64, JS_TEXT, &version,
	    &e) ||
	    js_string(req->json, "nonce", 0, 1, 128, JS_TEXT, &nonce, &e)) {
		http_field_error(resp, &e);
		return;
	}
	params[0] = id;
	params[1] = iid;
	params[2] = "0";
	params[3] = NULL;
	params[4] = NULL;
	if ((st = db_exec(req->db, "lookup", 5, params, &res)) != DB_OK) {
		http_db_error(req, resp, st, "license state");
		goto out;
	}
	switch (lookup_license(req, resp, res, key, id, 1, &lk)) {
	case LIC_OK:
		break;
	case LIC_ERROR:
		goto out;
	default:
		http_error(resp, 403, "INVALID_KEY", "unknown license");
		goto out;
	}
	have_lic = 1;
	if (lk.seat_ttl == 0) {
		not_floating(resp);
		goto out;
	}
	s.first = lk.first_seen;
	s.last = lk.last_seen;
	code = lic_state(&lk.l, req->now, &eff);
	if (strcmp(code, "VALID") == 0 && !lic_domain_allowed(&lk.l, domain))
		code = "DOMAIN_NOT_ALLOWED";
	if (strcmp(code, "VALID") == 0) {
		snprintf(days, sizeof(days), "%lld", ndays);
		params[2] = "borrow";
		params[3] = days;
		params[4] = version;
		params[5] = NULL;
		params[6] = domain;
		if ((st = db_exec(req->db, "seat", 7, params, &w)) != DB_OK) {
			http_db_error(req, resp, st, "seat");
			goto out;
		}
		if (lic_seat_read(w, &s) != LIC_OK) {
			http_error(resp, 500, "INTERNAL", "seat failed");
			goto out;
		}
		if ((code = decide_code(s.code)) == NULL)
			code = "INVALID_KEY";
		if (strcmp(code, "NOT_FLOATING") == 0) {
			not_floating(resp);
			goto out;
		}
		if (strcmp(code, "BORROW_LIMIT_EXCEEDED") == 0) {
			http_error(resp, 403, code,
			    "days is beyond the license's max_borrow_days");
			json_object_object_add(resp->body, "max_borrow_days",
			    json_object_new_int64(strtoll(PQgetvalue(w, 0, 6),
			    NULL, 10)));
			req->log_code = code;
			goto out;
		}
		if (strcmp(code, "VALID") != 0) {
			s.first = lk.first_seen;
			s.last = lk.last_seen;
		}
	}
	out = lic_result(code, &lk.l, req->now);
	if (s.first != 0)
		lic_add_installation(out, iid, strcmp(code, "VALID") == 0 ||
		    (lk.active && lk.seat_expires > (long long)req->now) ?
		    "active" : "inactive", s.first, s.last);
	if (strcmp(code, "VALID") == 0) {
		if (lic_add_lease_until(out, &lk.l, iid, nonce, req->now,
		    s.expires) != LIC_OK) {
			json_object_put(out);
			http_error(resp, 500, "INTERNAL", "cannot sign lease");
			goto out;
		}
		lic_add_seat(out, lk.seat_ttl, s.expires, s.borrowed,
		    s.overdraft);
	}
	req->log_code = code;
	http_json(resp, 200, out);
out:
	if (have_lic)
		lic_free(&lk.l);
	PQclear(w);
	PQclear(res);
}

static const struct http_route routes[] = {
	{ "/api/validate", 0, "POST", HTTP_BODY_JSON, validate },
	{ "/api/deactivate", 0, "POST", HTTP_BODY_JSON, deactivate },
	{ "/api/checkin", 0, "POST", HTTP_BODY_JSON, checkin },
	{ "/api/borrow", 0, "POST", HTTP_BODY_JSON, borrow },
	{ "/healthz", 0, "GET", HTTP_BODY_NONE, http_healthz },
};

HTTP_PROGRAM(
	.name = "validate",
	.init = lic_init,
	.reload = lic_keys_reload,
	.fini = touch_stop,
	.defers = 1,
	.resumes = 1)
