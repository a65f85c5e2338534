/*
 * heartbeat: POST /api/heartbeat. An installation that validated reports
 * in; it gets the license's current state and a fresh lease. Only an
 * active installation may heartbeat (INSTALLATION_NOT_ACTIVE otherwise);
 * heartbeats never activate a seat, nor take a floating seat that lapsed.
 *
 * heartbeat() reads the fields and hands the rest to the path it shares
 * with validate (call.h): one read (licd_lookup, batched: lookup.h), the
 * decision (decide.h), a write only to renew a floating seat that is due
 * (licd_seat 'renew'), and the answer with its lease.
 */
#include "call.h"
#include "config.h"
#include "db.h"
#include "decide.h"
#include "http.h"
#include "json.h"
#include "lic.h"
#include "lookup.h"
#include "touch.h"

static const struct db_stmt stmts[] = {
	CALL_STMTS,
};

/* PARSE; the steps after it are call.h's. */
static void heartbeat(struct http_req *req, struct http_resp *resp)
{
	struct call *c = call_new(req, resp, DECIDE_HEARTBEAT);
	struct js_err e;

	if (js_field(req->json, &LIC_F_KEY, 1, &c->key, &e) ||
	    js_field(req->json, &LIC_F_IID, 1, &c->iid, &e) ||
	    js_field(req->json, &LIC_F_VERSION, 0, &c->version, &e) ||
	    js_field(req->json, &LIC_F_NONCE, 0, &c->nonce, &e)) {
		http_field_error(resp, &e);
		return;
	}
	call_start(c);
}

static const struct http_route routes[] = {
	{ "/api/heartbeat", 0, "POST", HTTP_BODY_JSON, heartbeat },
	{ "/healthz", 0, "GET", HTTP_BODY_NONE, http_healthz },
};

HTTP_PROGRAM(
	.name = "heartbeat",
	CALL_PROGRAM)
