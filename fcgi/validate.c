/*
 * validate: POST /api/validate, POST /api/deactivate, POST /api/checkin,
 * POST /api/borrow, GET /healthz.
 *
 * The common case (a known, active installation) is one read, licd_lookup()
 * (shared with the lookups of other threads arriving at the same time:
 * state.h): the license and installation. When last_seen is older than
 * touch_interval or version/metadata changed, the refresh is queued for
 * the process's writer (touch.h), not written in the request. A new
 * installation goes through licd_activate(), which holds the license row
 * lock while it counts seats; a newly allowed domain is recorded by
 * licd_touch() at once.
 *
 * The handler checks the call and hands the lookup on (http_defer); the
 * thread that runs the lookup's batch answers (looked_up), or passes a
 * call that must write to a resume thread (http_resume), since the other
 * lookups queued behind it must not wait for a disk flush.
 *
 * On a floating license (lookup's seat_ttl > 0) the seat is a lease:
 * floating() answers a live seat from the lookup and takes or renews one
 * with licd_seat() under the license's lock (sql/023, docs/DESIGN.md
 * "Floating seats"); checkin and borrow are that function's other uses.
 */
#include "config.h"
#include "db.h"
#include "http.h"
#include "json.h"
#include "lic.h"
#include "log.h"
#include "state.h"
#include "touch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct db_stmt stmts[] = {
	STATE_STMTS,
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

/* A validate between its lookup and its answer (http_scratch). */
struct vcall {
	struct state_call sc;		/* first: looked_up casts it back */
	struct http_req *req;
	struct http_resp *resp;
	struct vreq v;
	char id[LIC_UUID_LEN + 1];
	int known;
	PGresult *res;			/* the lookup's, for a resumed rest */
	struct json_object *out;	/* floating()'s answer */
};

_Static_assert(sizeof(struct vcall) <= HTTP_SCRATCH, "struct vcall too large");

static void resumed(struct http_req *req, struct http_resp *resp);

/* The seat of an installation of a floating license, as seat_row's
 * columns (licd_seat, sql/023): code, first_seen, last_seen,
 * seat_expires, borrowed_until, overdraft. */
struct seat {
	const char *code;
	long long first, last, expires, borrowed;
	int overdraft;
};

/* licd_seat's code as a static string (the result is freed first). */
static const char *seat_code(const char *c)
{
	static const char *const codes[] = { "VALID",
	    "TOO_MANY_INSTALLATIONS", "INSTALLATION_NOT_ACTIVE", "REVOKED",
	    "SUSPENDED", "EXPIRED", "INVALID_KEY", "BORROW_LIMIT_EXCEEDED",
	    "NOT_FLOATING" };
	size_t i;

	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strcmp(c, codes[i]) == 0)
			return codes[i];
	return "INVALID_KEY";
}

static void seat_row(const PGresult *res, struct seat *s)
{
	s->code = PQgetvalue(res, 0, 0);
	s->first = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	s->last = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
	s->expires = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
	s->borrowed = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
	s->overdraft = strcmp(PQgetvalue(res, 0, 5), "t") == 0;
}

/*
 * validate on a floating license: the seat is held while its lease is
 * live. A live seat with more than LIC_SEAT_RENEW_LEFT of its ttl left is
 * answered from the lookup; otherwise (no seat, a lapsed one, one due a
 * renewal, a newly allowed domain) licd_seat takes or renews it under the
 * license's lock, on a resume thread (returns 1 when handed there).
 * Fills x->out and *code; -1 when an error was answered; frees *res.
 */
static int floating(struct vcall *x, struct lic_lookup *lk,
    const char **code, PGresult **res, int can_write)
{
	struct vreq *v = &x->v;
	time_t now = x->req->now;
	struct seat s = { NULL, lk->first_seen, lk->last_seen, lk->seat_expires,
	    lk->borrowed_until, lk->seat_overdraft };
	int live = lk->active && lk->seat_expires > (long long)now, st;
	const char *params[7];
	PGresult *w = NULL;

	if (strcmp(*code, "VALID") == 0 && (!live ||
	    lk->seat_expires - (long long)now < LIC_SEAT_RENEW_LEFT(lk->seat_ttl) ||
	    (v->domain != NULL && (lk->domain == NULL ||
	    strcmp(lk->domain, v->domain) != 0)))) {
		if (!can_write) {
			x->res = *res;
			http_resume(x->req, resumed);
			return 1;
		}
		params[0] = x->id;
		params[1] = v->iid;
		params[2] = "take";
		params[3] = NULL;
		params[4] = v->version;
		params[5] = v->metadata;
		params[6] = v->domain;
		if ((st = db_exec(x->req->db, "seat", 7, params, &w)) != DB_OK) {
			http_db_error(x->req, x->resp, st, "seat");
			goto fail;
		}
		if (PQntuples(w) != 1) {
			http_error(x->resp, 500, "INTERNAL", "seat failed");
			goto fail;
		}
		seat_row(w, &s);
		if (strcmp(s.code, "NOT_FLOATING") == 0) {
			/* The license became node-locked since the lookup. */
			http_error(x->resp, 503, "SERVICE_UNAVAILABLE",
			    "the license changed; retry");
			goto fail;
		}
		*code = seat_code(s.code);
		if (strcmp(*code, "VALID") == 0) {
			live = 1;
		} else {
			/* Refused: as the lookup saw it, lapsed. */
			live = 0;
			s.first = lk->first_seen;
			s.last = lk->last_seen;
		}
	} else if (lk->needs_touch && touch_queue(x->id, v->iid,
	    (long long)now, v->version, v->metadata) == 0) {
		s.last = (long long)now;
	}
	x->out = lic_result(*code, &lk->l, now);
	if (s.first != 0)
		lic_add_installation(x->out, v->iid, live ? "active" :
		    "inactive", s.first, s.last);
	if (strcmp(*code, "VALID") == 0) {
		if (lic_add_lease_until(x->out, &lk->l, v->iid, v->nonce, now,
		    s.expires) != LIC_OK) {
			json_object_put(x->out);
			x->out = NULL;
			http_error(x->resp, 500, "INTERNAL",
			    "cannot sign lease");
			goto fail;
		}
		lic_add_seat(x->out, lk->seat_ttl, s.expires, s.borrowed,
		    s.overdraft);
	}
	PQclear(w);
	PQclear(*res);
	*res = NULL;
	return 0;
fail:
	PQclear(w);
	PQclear(*res);
	*res = NULL;
	return -1;
}

/* Answers from the lookup's row res (freed here). Where the call must
 * write in the request and may not (can_write 0: this is the thread that
 * ran the lookup batch, which others wait on), hands the rest to a resume
 * thread instead, keeping res, and returns 1. */
static int answer(struct vcall *x, PGresult *res, int can_write)
{
	struct http_req *req = x->req;
	struct http_resp *resp = x->resp;
	struct vreq *v = &x->v;
	struct lic_lookup lk;
	const char *code, *eff, *params[5];
	struct json_object *out = NULL;
	long long first, last;
	int st, have_lic = 0, active;

	/* The row vouches for the key (lic.h). */
	switch (lic_lookup_read(res, v->key, x->id, x->known, &lk)) {
	case LIC_OK:
		break;
	case LIC_ERROR:
		http_error(resp, 500, "INTERNAL", "bad license row");
		goto out;
	default:
		code = "INVALID_KEY";
		out = lic_result(code, NULL, req->now);
		goto answer;
	}
	have_lic = 1;
	snprintf(req->log_subject, sizeof(req->log_subject), "license=%s",
	    x->id);
	active = lk.active;
	first = lk.first_seen;
	last = lk.last_seen;
	req->now = lk.now;

	code = lic_state(&lk.l, req->now, &eff);
	if (strcmp(code, "VALID") == 0 &&
	    !lic_domain_allowed(&lk.l, v->domain))
		code = "DOMAIN_NOT_ALLOWED";
	if (strcmp(code, "VALID") == 0 && v->feature != NULL &&
	    !lic_has_feature(&lk.l, v->feature))
		code = "FEATURE_NOT_LICENSED";

	if (lk.seat_ttl > 0) {
		st = floating(x, &lk, &code, &res, can_write);
		if (st == 1) {
			lic_free(&lk.l);
			return 1;
		}
		if (st < 0)
			goto out;
		goto answered;
	}

	/* Written in the request: an activation, or a domain that may be
	 * recorded only now that it is allowed (licd_touch refreshes
	 * last_seen with it). Otherwise a due refresh goes to the writer,
	 * refused calls included: they are contacts too. */
	if (strcmp(code, "VALID") == 0 && (!active || (v->domain != NULL &&
	    (lk.domain == NULL || strcmp(lk.domain, v->domain) != 0)))) {
		const char *stmt = active ? "touch" : "activate";

		if (!can_write) {
			lic_free(&lk.l);
			x->res = res;
			http_resume(req, resumed);
			return 1;
		}
		params[0] = x->id;
		params[1] = v->iid;
		params[2] = v->version;
		params[3] = v->metadata;
		params[4] = v->domain;
		PQclear(res);
		res = NULL;
		if ((st = db_exec(req->db, stmt, 5, params, &res)) != DB_OK) {
			http_db_error(req, resp, st, stmt);
			goto out;
		}
		if (active && PQntuples(res) == 0) {
			/* Deactivated between our read and write. */
			PQclear(res);
			res = NULL;
			active = 0;
			if ((st = db_exec(req->db, "activate", 5, params,
			    &res)) != DB_OK) {
				http_db_error(req, resp, st, "activate");
				goto out;
			}
		}
		if (PQntuples(res) != 1) {
			http_error(resp, 500, "INTERNAL", "activation failed");
			goto out;
		}
		if (active) {
			first = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
			last = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		} else {
			code = strcmp(PQgetvalue(res, 0, 0), "VALID") == 0 ?
			    "VALID" : PQgetvalue(res, 0, 0);
			if (strcmp(code, "VALID") == 0) {
				active = 1;
				first = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
				last = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
			}
		}
	} else if (lk.needs_touch && touch_queue(x->id, v->iid,
	    (long long)req->now, v->version, v->metadata) == 0) {
		last = (long long)req->now;
	}
	out = lic_result(code, &lk.l, req->now);
	if (first != 0)
		lic_add_installation(out, v->iid, active ? "active" : "inactive",
		    first, last);
	if (strcmp(code, "VALID") == 0 &&
	    lic_add_lease(out, &lk.l, v->iid, v->nonce, req->now) != LIC_OK) {
		json_object_put(out);
		out = NULL;
		http_error(resp, 500, "INTERNAL", "cannot sign lease");
		goto out;
	}
	goto answer;
answered:
	out = x->out;
	x->out = NULL;
answer:
	req->log_code = json_object_get_string(
	    json_object_object_get(out, "code"));
	touch_count(req->log_code);
	http_json(resp, 200, out);
out:
	if (have_lic)
		lic_free(&lk.l);
	PQclear(res);
	return 0;
}

/* On a resume thread, with its connection; http.c answers after. */
static void resumed(struct http_req *req, struct http_resp *resp)
{
	struct vcall *x = http_scratch(req);

	(void)resp;
	answer(x, x->res, 1);
}

/* On the thread that ran the lookup's batch. */
static void looked_up(struct state_call *sc, struct db *db, int st,
    PGresult *res)
{
	struct vcall *x = (struct vcall *)sc;

	x->req->db = db;
	if (st != DB_OK) {
		http_db_error(x->req, x->resp, st, "license state");
		http_done(x->req);
		return;
	}
	if (answer(x, res, 0) == 0)
		http_done(x->req);
}

/* Checks the call and hands its lookup to the batch (state.h); this
 * thread goes on to its next request meanwhile. */
static void validate(struct http_req *req, struct http_resp *resp)
{
	struct vcall *x = http_scratch(req);

	memset(x, 0, sizeof(*x));
	x->req = req;
	x->resp = resp;
	if (parse(req, resp, &x->v) != 0)
		return;
	if (lic_key_id(x->v.key, x->id, &x->known) != LIC_OK) {
		req->log_code = "INVALID_KEY";
		touch_count(req->log_code);
		http_json(resp, 200, lic_result("INVALID_KEY", NULL, req->now));
		return;
	}
	http_defer(req);
	state_read_then(&x->sc, req->db, x->id, x->v.iid, lic_touch_param(),
	    x->v.version, x->v.metadata, looked_up);
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
	struct seat s;
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
	if ((st = db_exec(req->db, "state", 5, params, &res)) != DB_OK) {
		http_db_error(req, resp, st, "license state");
		goto out;
	}
	switch (lic_lookup_read(res, key, id, 1, &lk)) {
	case LIC_OK:
		break;
	case LIC_ERROR:
		http_error(resp, 500, "INTERNAL", "bad license row");
		goto out;
	default:
		http_error(resp, 403, "INVALID_KEY", "unknown license");
		goto out;
	}
	have_lic = 1;
	req->now = lk.now;
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
		if (PQntuples(w) != 1) {
			http_error(resp, 500, "INTERNAL", "seat failed");
			goto out;
		}
		seat_row(w, &s);
		code = seat_code(s.code);
		if (strcmp(code, "NOT_FLOATING") == 0) {
			not_floating(resp);
			goto out;
		}
		if (strcmp(code, "BORROW_LIMIT_EXCEEDED") == 0) {
			out = json_object_new_object();
			json_object_object_add(out, "error", json_object_new_object());
			json_object_object_add(json_object_object_get(out, "error"),
			    "code", json_object_new_string(code));
			json_object_object_add(json_object_object_get(out, "error"),
			    "message", json_object_new_string(
			    "days is beyond the license's max_borrow_days"));
			json_object_object_add(out, "max_borrow_days",
			    json_object_new_int64(strtoll(PQgetvalue(w, 0, 6),
			    NULL, 10)));
			req->log_code = code;
			http_json(resp, 403, out);
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

int main(int argc, char **argv)
{
	static const struct http_program prog = {
		.name = "validate",
		.routes = routes,
		.nroutes = sizeof(routes) / sizeof(routes[0]),
		.stmts = stmts,
		.nstmts = sizeof(stmts) / sizeof(stmts[0]),
		.init = lic_init,
		.reload = lic_keys_reload,
		.fini = touch_stop,
		.defers = 1,
		.resumes = 1,
	};

	return http_main(argc, argv, &prog);
}
