/*
 * heartbeat: POST /api/heartbeat. An installation that validated reports
 * in; it gets the license's current state and a fresh lease. Only an
 * active installation may heartbeat (INSTALLATION_NOT_ACTIVE otherwise);
 * heartbeats never activate a seat. One read, licd_lookup() (batched with
 * other threads' lookups: state.h), gets the license and installation;
 * when last_seen is older than touch_interval or the version changed, the
 * refresh is queued for the process's writer (touch.h), not written in
 * the request. The handler checks the call and hands the lookup on; the
 * thread that runs the lookup's batch answers (http_defer, looked_up).
 */
#include "config.h"
#include "db.h"
#include "http.h"
#include "json.h"
#include "lic.h"
#include "state.h"
#include "touch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct db_stmt stmts[] = {
	STATE_STMTS,
};

/* A heartbeat between its lookup and its answer (http_scratch). */
struct hb {
	struct state_call sc;		/* first: looked_up casts it back */
	struct http_req *req;
	struct http_resp *resp;
	const char *key, *iid, *version, *nonce;
	char id[LIC_UUID_LEN + 1];
	int known;
};

_Static_assert(sizeof(struct hb) <= HTTP_SCRATCH, "struct hb too large");

/* The rest, on the thread that ran the lookup's batch. */
static void looked_up(struct state_call *sc, struct db *db, int st,
    PGresult *res)
{
	struct hb *h = (struct hb *)sc;
	struct http_req *req = h->req;
	struct http_resp *resp = h->resp;
	const char *code, *eff;
	struct lic_lookup lk;
	struct json_object *out;
	long long last;
	int have_lic = 0;

	req->db = db;
	if (st != DB_OK) {
		http_db_error(req, resp, st, "license state");
		goto out;
	}
	/* The row vouches for the key (lic.h). */
	switch (lic_lookup_read(res, h->key, h->id, h->known, &lk)) {
	case LIC_OK:
		break;
	case LIC_ERROR:
		http_error(resp, 500, "INTERNAL", "bad license row");
		goto out;
	default:
		req->log_code = "INVALID_KEY";
		http_json(resp, 200, lic_result("INVALID_KEY", NULL, req->now));
		goto out;
	}
	have_lic = 1;
	snprintf(req->log_subject, sizeof(req->log_subject), "license=%s",
	    h->id);
	req->now = lk.now;
	last = lk.last_seen;
	if (lk.needs_touch && touch_queue(h->id, h->iid, (long long)req->now,
	    h->version, NULL) == 0)
		last = (long long)req->now;
	code = lic_state(&lk.l, req->now, &eff);
	if (strcmp(code, "VALID") == 0 && !lk.active)
		code = "INSTALLATION_NOT_ACTIVE";
	out = lic_result(code, &lk.l, req->now);
	if (lk.first_seen != 0)
		lic_add_installation(out, h->iid, lk.active ? "active" :
		    "inactive", lk.first_seen, last);
	if (strcmp(code, "VALID") == 0) {
		if (lic_add_lease(out, &lk.l, h->iid, h->nonce, req->now) !=
		    LIC_OK) {
			json_object_put(out);
			http_error(resp, 500, "INTERNAL", "cannot sign lease");
			goto out;
		}
		json_object_object_add(out, "next_heartbeat_in",
		    json_object_new_int64(lic_heartbeat_interval()));
	}
	req->log_code = code;
	http_json(resp, 200, out);
out:
	if (have_lic)
		lic_free(&lk.l);
	PQclear(res);
	http_done(req);
}

/* Checks the call and hands its lookup to the batch (state.h); this
 * thread goes on to its next request meanwhile. */
static void heartbeat(struct http_req *req, struct http_resp *resp)
{
	struct hb *h = http_scratch(req);
	struct js_err e;

	memset(h, 0, sizeof(*h));
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
		req->log_code = "INVALID_KEY";
		http_json(resp, 200, lic_result("INVALID_KEY", NULL, req->now));
		return;
	}
	http_defer(req);
	state_read_then(&h->sc, req->db, h->id, h->iid, lic_touch_param(),
	    h->version, NULL, looked_up);
}

static const struct http_route routes[] = {
	{ "/api/heartbeat", 0, "POST", HTTP_BODY_JSON, heartbeat },
	{ "/healthz", 0, "GET", HTTP_BODY_NONE, http_healthz },
};

int main(int argc, char **argv)
{
	static const struct http_program prog = {
		.name = "heartbeat",
		.routes = routes,
		.nroutes = sizeof(routes) / sizeof(routes[0]),
		.stmts = stmts,
		.nstmts = sizeof(stmts) / sizeof(stmts[0]),
		.init = lic_init,
		.fini = touch_stop,
		.defers = 1,
	};

	return http_main(argc, argv, &prog);
}
