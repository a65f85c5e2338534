/*
 * validate: POST /api/validate, POST /api/deactivate, POST /api/checkin,
 * POST /api/borrow, GET /healthz.
 *
 * validate() reads the fields of a validate and hands the rest to the
 * path it shares with heartbeat (call.h): the license and installation in
 * one read (licd_lookup, batched with other threads' lookups: lookup.h),
 * the decision (decide.h), a write only when one is needed (an activation
 * in the process's next batch of activations, activate.h; a newly allowed
 * domain by licd_touch; a floating seat by licd_seat), and the answer with
 * its lease. deactivate, checkin and borrow run one statement each on the
 * handler's thread.
 */
#include "call.h"
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
	CALL_STMTS,
	{ "deactivate", "SELECT * FROM licd_deactivate($1, $2)", 1 },
	{ "checkin", "SELECT * FROM licd_seat_checkin($1, $2)", 1 },
};

/* PARSE; the steps after it are call.h's. */
static void validate(struct http_req *req, struct http_resp *resp)
{
	struct call *c = call_new(req, resp, DECIDE_VALIDATE);
	struct json_object *meta;
	struct js_err e;

	if (js_field(req->json, &LIC_F_KEY, 1, &c->key, &e) ||
	    js_field(req->json, &LIC_F_IID, 1, &c->iid, &e) ||
	    js_host(req->json, "domain", 0, &c->rq.domain, &e) ||
	    js_field(req->json, &LIC_F_VERSION, 0, &c->version, &e) ||
	    js_string(req->json, "feature", 0, 1, 64, JS_TOKEN, &c->rq.feature,
	    &e) ||
	    js_field(req->json, &LIC_F_NONCE, 0, &c->nonce, &e) ||
	    js_object(req->json, "metadata", 2048, &meta, &e)) {
		http_field_error(resp, &e);
		return;
	}
	if (meta != NULL)
		c->metadata = js_dump(meta, NULL);
	call_start(c);
}

/* A request naming a license by its key and an installation
 * (deactivate, checkin, borrow): the key verified (403 INVALID_KEY
 * otherwise). */
static int keyed_request(struct http_req *req, struct http_resp *resp,
    const char **key, const char **iid, char id[LIC_UUID_LEN + 1],
    struct js_err *e)
{
	if (js_field(req->json, &LIC_F_KEY, 1, key, e) ||
	    js_field(req->json, &LIC_F_IID, 1, iid, e)) {
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

/* A request whose work is one statement of the license and installation
 * it names by key (deactivate, checkin): 0 with its one row in *res, the
 * caller's to PQclear; else answered. */
static int keyed_exec(struct http_req *req, struct http_resp *resp,
    const char *stmt, PGresult **res)
{
	char id[LIC_UUID_LEN + 1];
	const char *key, *iid, *params[2];
	struct js_err e;
	int st;

	*res = NULL;
	if (keyed_request(req, resp, &key, &iid, id, &e) != 0)
		return -1;
	params[0] = id;
	params[1] = iid;
	if ((st = db_exec(req->db, stmt, 2, params, res)) != DB_OK) {
		http_db_error(req, resp, st, stmt);
		return -1;
	}
	return 0;
}

static void deactivate(struct http_req *req, struct http_resp *resp)
{
	struct json_object *o;
	PGresult *res;

	if (keyed_exec(req, resp, "deactivate", &res) != 0)
		goto out;
	if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		http_error(resp, 403, "INVALID_KEY", "unknown license");
		goto out;
	}
	/* Every process's memory of the installation goes before the
	 * answer (cache.h); the deactivation stands either way. */
	if (db_cache_sync(req->db) != DB_OK)
		log_warn("license cache barrier failed after a deactivation");
	o = json_object_new_object();
	json_object_object_add(o, "deactivated", json_object_new_boolean(1));
	http_json(resp, 200, o);
out:
	PQclear(res);
}

static void not_floating(struct http_resp *resp)
{
	http_error(resp, 409, "NOT_FLOATING",
	    "the license is node-locked: seats are freed by /api/deactivate");
}

/* POST /api/checkin: releases a floating seat at once; idempotent. */
static void checkin(struct http_req *req, struct http_resp *resp)
{
	struct json_object *o;
	PGresult *res;

	if (keyed_exec(req, resp, "checkin", &res) != 0)
		goto out;
	if (PQntuples(res) != 1 ||
	    strcmp(PQgetvalue(res, 0, 0), "INVALID_KEY") == 0) {
		http_error(resp, 403, "INVALID_KEY", "unknown license");
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "NOT_FLOATING") == 0) {
		not_floating(resp);
		goto out;
	}
	/* Every process's memory of the seat goes before the answer
	 * (cache.h): the installation's next call must not find it still
	 * held while licd_seat gives it to another. */
	if (db_cache_sync(req->db) != DB_OK)
		log_warn("license cache barrier failed after a check-in");
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
	const char *params[8];
	struct json_object *out = NULL;
	struct lic_lookup lk;
	struct js_err e;
	struct lic_seat s;
	PGresult *res = NULL, *w = NULL;
	long long ndays;
	int st, have_lic = 0;

	if (keyed_request(req, resp, &key, &iid, id, &e) != 0)
		return;
	if (js_int(req->json, "days", 1, 1, 3650, 0, &ndays, &e) ||
	    js_host(req->json, "domain", 0, &domain, &e) ||
	    js_field(req->json, &LIC_F_VERSION, 0, &version, &e) ||
	    js_field(req->json, &LIC_F_NONCE, 0, &nonce, &e)) {
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
		params[7] = NULL;
		if ((st = db_exec(req->db, "seat", 8, params, &w)) != DB_OK) {
			http_db_error(req, resp, st, "seat");
			goto out;
		}
		if (PQntuples(w) != 1 || lic_seat_read(w, 0, 0, &s) != LIC_OK) {
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
		} else if (db_cache_sync(req->db) != DB_OK) {
			/* The borrow stands; a process answering the seat
			 * from memory must show it borrowed (cache.h). */
			log_warn("license cache barrier failed after a borrow");
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
	CALL_PROGRAM)
