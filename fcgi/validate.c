/*
 * validate: POST /api/validate, POST /api/deactivate, GET /healthz.
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
	    js_string(req->json, "domain", 0, 1, 254, JS_HOST, &v->domain, &e) ||
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
};

_Static_assert(sizeof(struct vcall) <= HTTP_SCRATCH, "struct vcall too large");

static void resumed(struct http_req *req, struct http_resp *resp);

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

static const struct http_route routes[] = {
	{ "/api/validate", 0, "POST", HTTP_BODY_JSON, validate },
	{ "/api/deactivate", 0, "POST", HTTP_BODY_JSON, deactivate },
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
		.fini = touch_stop,
		.defers = 1,
		.resumes = 1,
	};

	return http_main(argc, argv, &prog);
}
