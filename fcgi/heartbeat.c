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
 * On a floating license a heartbeat also renews the seat lease when due
 * (renew(), on a resume thread); a lapsed seat is not taken again.
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
	{ "seat", "SELECT * FROM licd_seat($1, $2, 'renew', NULL, $3, NULL, "
	    "NULL)", 0 },
};

/* A heartbeat between its lookup and its answer (http_scratch). */
struct hb {
	struct state_call sc;		/* first: looked_up casts it back */
	struct http_req *req;
	struct http_resp *resp;
	const char *key, *iid, *version, *nonce;
	char id[LIC_UUID_LEN + 1];
	int known;
	PGresult *res;			/* the lookup's, for a resumed rest */
};

_Static_assert(sizeof(struct hb) <= HTTP_SCRATCH, "struct hb too large");

static void resumed(struct http_req *req, struct http_resp *resp);

/*
 * A floating seat (sql/023): a heartbeat renews a live seat once less than
 * LIC_SEAT_RENEW_LEFT of its ttl is left, with licd_seat 'renew' under the
 * license's lock on a resume thread (returns 1 when handed there); a
 * lapsed one is INSTALLATION_NOT_ACTIVE, as a heartbeat never takes a
 * seat. Returns -1 when an error was answered.
 */
static int renew(struct hb *h, struct lic_lookup *lk, PGresult *res,
    const char **code, int *active, long long *last, int can_write)
{
	const char *params[3];
	PGresult *w = NULL;
	int st;

	*active = lk->active && lk->seat_expires > (long long)h->req->now;
	if (!*active) {
		*code = "INSTALLATION_NOT_ACTIVE";
		return 0;
	}
	if (lk->seat_expires - (long long)h->req->now >=
	    LIC_SEAT_RENEW_LEFT(lk->seat_ttl))
		return 0;
	if (!can_write) {
		h->res = res;
		http_resume(h->req, resumed);
		return 1;
	}
	params[0] = h->id;
	params[1] = h->iid;
	params[2] = h->version;
	if ((st = db_exec(h->req->db, "seat", 3, params, &w)) != DB_OK) {
		http_db_error(h->req, h->resp, st, "seat");
		return -1;
	}
	if (PQntuples(w) != 1) {
		PQclear(w);
		http_error(h->resp, 500, "INTERNAL", "seat failed");
		return -1;
	}
	if (strcmp(PQgetvalue(w, 0, 0), "VALID") == 0) {
		*last = strtoll(PQgetvalue(w, 0, 2), NULL, 10);
		lk->seat_expires = strtoll(PQgetvalue(w, 0, 3), NULL, 10);
		lk->borrowed_until = PQgetisnull(w, 0, 4) ? 0 :
		    strtoll(PQgetvalue(w, 0, 4), NULL, 10);
		lk->seat_overdraft = strcmp(PQgetvalue(w, 0, 5), "t") == 0;
	} else {
		/* Lapsed, or the license changed, since the lookup. */
		*active = 0;
		*code = strcmp(PQgetvalue(w, 0, 0), "REVOKED") == 0 ?
		    "REVOKED" : strcmp(PQgetvalue(w, 0, 0), "SUSPENDED") == 0 ?
		    "SUSPENDED" : strcmp(PQgetvalue(w, 0, 0), "EXPIRED") == 0 ?
		    "EXPIRED" : "INSTALLATION_NOT_ACTIVE";
	}
	PQclear(w);
	return 0;
}

/* Answers from the lookup's row res (freed here, unless the rest is
 * handed to a resume thread: then 1). */
static int answer(struct hb *h, PGresult *res, int can_write)
{
	struct http_req *req = h->req;
	struct http_resp *resp = h->resp;
	const char *code, *eff;
	struct lic_lookup lk;
	struct json_object *out;
	long long last;
	int have_lic = 0, active;

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
	active = lk.active;
	code = lic_state(&lk.l, req->now, &eff);
	if (strcmp(code, "VALID") == 0 && lk.seat_ttl > 0) {
		switch (renew(h, &lk, res, &code, &active, &last, can_write)) {
		case 1:
			lic_free(&lk.l);
			return 1;
		case -1:
			goto out;
		}
	}
	if (lk.needs_touch && touch_queue(h->id, h->iid, (long long)req->now,
	    h->version, NULL) == 0 && last < (long long)req->now)
		last = (long long)req->now;
	if (strcmp(code, "VALID") == 0 && !active)
		code = "INSTALLATION_NOT_ACTIVE";
	out = lic_result(code, &lk.l, req->now);
	if (lk.first_seen != 0)
		lic_add_installation(out, h->iid, active ? "active" :
		    "inactive", lk.first_seen, last);
	if (strcmp(code, "VALID") == 0) {
		if ((lk.seat_ttl > 0 ? lic_add_lease_until(out, &lk.l, h->iid,
		    h->nonce, req->now, lk.seat_expires) :
		    lic_add_lease(out, &lk.l, h->iid, h->nonce, req->now)) !=
		    LIC_OK) {
			json_object_put(out);
			http_error(resp, 500, "INTERNAL", "cannot sign lease");
			goto out;
		}
		if (lk.seat_ttl > 0)
			lic_add_seat(out, lk.seat_ttl, lk.seat_expires,
			    lk.borrowed_until, lk.seat_overdraft);
		else
			json_object_object_add(out, "next_heartbeat_in",
			    json_object_new_int64(lic_heartbeat_interval()));
	}
	req->log_code = code;
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
	struct hb *h = http_scratch(req);

	(void)resp;
	answer(h, h->res, 1);
}

/* The rest, on the thread that ran the lookup's batch. */
static void looked_up(struct state_call *sc, struct db *db, int st,
    PGresult *res)
{
	struct hb *h = (struct hb *)sc;

	h->req->db = db;
	if (st != DB_OK) {
		http_db_error(h->req, h->resp, st, "license state");
		http_done(h->req);
		return;
	}
	if (answer(h, res, 0) == 0)
		http_done(h->req);
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
		.reload = lic_keys_reload,
		.fini = touch_stop,
		.defers = 1,
		.resumes = 1,
	};

	return http_main(argc, argv, &prog);
}
