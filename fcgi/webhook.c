/*
 * webhook: POST /api/stripe/webhook and POST /api/paddle/webhook.
 *
 * 1. The signature is checked over the raw body before anything parses it
 *    (sig.c): 400 INVALID_SIGNATURE otherwise.
 * 2. The provider's event is mapped to a provider-neutral action by the
 *    tables in billmap.c. A type licd acts on whose fields are at none of
 *    the known paths is answered 422 UNMAPPED_EVENT and not recorded, so
 *    the provider retries it. A Stripe Checkout Session licd did not
 *    create gets its prices from the Stripe API (its line items).
 * 3. One transaction: licd_webhook_event() records the event id once
 *    (duplicates and concurrent deliveries answer 200 and change nothing),
 *    applies the action or parks it ('pending') until its subscription,
 *    customer or plan appears, and replays parked ones; keys of newly
 *    issued licenses are signed and stored, and a license_issued
 *    notification is queued.
 */
#include "billmap.h"
#include "config.h"
#include "db.h"
#include "http.h"
#include "json.h"
#include "lic.h"
#include "log.h"
#include "sig.h"
#include "stripe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct db_stmt stmts[] = {
	{ "event", "SELECT * FROM licd_webhook_event($1, $2, $3, $4, $5, $6, $7)",
	    0 },
	{ "license", LIC_KEY_ROW "v.id = $1", 0 },
	{ "store_key", "SELECT licd_license_keys_store(ARRAY[$1::uuid], "
	    "ARRAY[$2::text], $3)", 0 },
	{ "known", "SELECT EXISTS (SELECT 1 FROM checkout_sessions WHERE id = $1 "
	    "AND created_by = 'licd') OR EXISTS (SELECT 1 FROM webhook_events "
	    "WHERE provider = 'stripe' AND event_id = $2)", 0 },
	{ "notify", "SELECT licd_notify('license_issued', $1::uuid, 'issued:' || $1::uuid::text, "
	    "jsonb_build_object('license_key', $2::text))", 0 },
};

/* The prices of a Stripe Checkout Session licd did not create (Payment
 * Links, Pricing Tables): its line items from the Stripe API, as the
 * action's "prices". The event does not carry them. */
static int session_prices(struct http_req *req, struct json_object *act)
{
	const char *sid = js_path_str(act, "session");
	struct json_object *items = NULL, *prices;
	char path[400], err[512];
	int saw_null = 0;
	size_t i;

	for (i = 0; sid != NULL && sid[i] != '\0'; i++)
		if (!((sid[i] >= 'a' && sid[i] <= 'z') || (sid[i] >= 'A' &&
		    sid[i] <= 'Z') || (sid[i] >= '0' && sid[i] <= '9') ||
		    sid[i] == '_'))
			return -1;
	if (sid == NULL || i == 0 || i > 255)
		return -1;
	snprintf(path, sizeof(path), "/v1/checkout/sessions/%s/line_items"
	    "?limit=100", sid);
	if (stripe_get(path, &items, err, sizeof(err)) != STRIPE_OK) {
		log_error("rid=%s stripe line items of %s: %s", req->rid, sid,
		    err);
		return -1;
	}
	prices = bm_values(items, "data[].price.id", &saw_null);
	json_object_object_add(act, "prices", prices);
	json_object_put(items);
	return 0;
}

/* Signs and stores the key of a license the event just issued, and queues
 * the e-mail that delivers it. Runs inside the event's transaction. */
static int issue_key(struct http_req *req, const char *id)
{
	const char *params[3] = { id, NULL, NULL };
	PGresult *res = NULL;
	char *key = NULL;
	int st;

	if ((st = db_exec(req->db, "license", 1, params, &res)) != DB_OK)
		goto out;
	st = DB_ERROR;
	if (PQntuples(res) != 1 || lic_sign_row(res, 0, &key) != LIC_OK)
		goto out;
	PQclear(res);
	params[1] = key;
	params[2] = lic_keyring()->signer->kid;
	if ((st = db_exec(req->db, "store_key", 3, params, &res)) != DB_OK)
		goto out;
	PQclear(res);
	st = db_exec(req->db, "notify", 2, params, &res);
out:
	PQclear(res);
	free(key);
	return st;
}

static void receive(struct http_req *req, struct http_resp *resp,
    const char *provider)
{
	int stripe = strcmp(provider, "stripe") == 0;
	const char *header = http_param(req, stripe ? "HTTP_STRIPE_SIGNATURE" :
	    "HTTP_PADDLE_SIGNATURE");
	const char *secrets = cfg_str(stripe ? "stripe_webhook_secrets" :
	    "paddle_webhook_secrets");
	const char *id, *type, *params[7];
	struct json_object *ev = NULL, *act = NULL, *o;
	struct js_err e;
	PGresult *res = NULL;
	char grace[16], why[256];
	struct timespec now;
	int st, i, in_tx = 0;
	const char *outcome = "ignored";

	/* CLOCK_REALTIME, not time(): glibc's time() reads the kernel's
	 * coarse clock, which can lag a second boundary by a tick, and the
	 * tolerance is checked to the second. */
	clock_gettime(CLOCK_REALTIME, &now);
	st = sig_verify(stripe ? SIG_STRIPE : SIG_PADDLE, header, secrets,
	    req->body, req->body_len, now.tv_sec,
	    cfg_int("webhook_tolerance"));
	if (st != SIG_OK) {
		http_error(resp, 400, "INVALID_SIGNATURE", "%s",
		    sig_strerror(st));
		return;
	}
	if (js_parse_object(req->body, req->body_len, &ev, &e) != 0) {
		http_field_error(resp, &e);
		return;
	}
	id = js_path_str(ev, stripe ? "id" : "event_id");
	type = js_path_str(ev, stripe ? "type" : "event_type");
	if (id == NULL || type == NULL || strlen(id) > 255) {
		http_error(resp, 400, id == NULL || type == NULL ?
		    "MISSING_FIELD" : "INVALID_FIELD",
		    "the event needs an id and a type");
		goto out;
	}
	snprintf(req->log_subject, sizeof(req->log_subject), "event=%.40s",
	    id);
	/* A type licd acts on in a shape it cannot read is refused, not
	 * recorded: the provider retries it until a licd that reads it runs. */
	if (bm_map(provider, ev, type, &act, why, sizeof(why)) == BM_UNMAPPED) {
		log_warn("rid=%s %s event %.80s (%.60s) not understood: %s; "
		    "answered 422 so that %s retries it", req->rid, provider, id,
		    type, why, provider);
		http_error(resp, 422, "UNMAPPED_EVENT", "licd cannot read this "
		    "%s event: %s", type, why);
		goto out;
	}
	if (stripe && act != NULL && strcmp(js_path_str(act, "op"), "issue")
	    == 0) {
		params[0] = js_path_str(act, "session");
		params[1] = id;
		if ((st = db_exec(req->db, "known", 2, params, &res)) != DB_OK) {
			http_db_error(req, resp, st, "session");
			goto out;
		}
		st = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		PQclear(res);
		res = NULL;
		if (!st && session_prices(req, act) != 0) {
			http_error(resp, 502, "PAYMENT_PROVIDER_ERROR",
			    "the session's line items could not be read from "
			    "the payment provider; retry later");
			goto out;
		}
	}
	snprintf(grace, sizeof(grace), "%ld", cfg_int("grace_days"));
	params[0] = provider;
	params[1] = id;
	params[2] = type;
	params[3] = js_dump_jsonb(ev, NULL);
	params[4] = act ? js_dump_jsonb(act, NULL) : NULL;
	params[5] = grace;
	params[6] = req->rid;
	if ((st = db_begin(req->db)) != DB_OK) {
		http_db_error(req, resp, st, "begin");
		goto out;
	}
	in_tx = 1;
	if ((st = db_exec(req->db, "event", 7, params, &res)) != DB_OK) {
		http_db_error(req, resp, st, "webhook event");
		goto out;
	}
	/* The event's own outcome first, then licenses its replays issued. */
	if (PQntuples(res) > 0)
		outcome = PQgetvalue(res, 0, 0);
	for (i = 0; i < PQntuples(res); i++) {
		if (!PQgetisnull(res, i, 1) &&
		    (st = issue_key(req, PQgetvalue(res, i, 1))) != DB_OK) {
			http_db_error(req, resp, st, "issue key");
			goto out;
		}
	}
	o = json_object_new_object();
	json_object_object_add(o, "received", json_object_new_boolean(1));
	json_object_object_add(o, "outcome", json_object_new_string(outcome));
	if ((st = db_commit(req->db)) != DB_OK) {
		json_object_put(o);
		in_tx = 0;
		http_db_error(req, resp, st, "commit");
		goto out;
	}
	in_tx = 0;
	req->log_code = strcmp(outcome, "duplicate") == 0 ? "DUPLICATE" :
	    strcmp(outcome, "pending") == 0 ? "PENDING" :
	    strcmp(outcome, "applied") == 0 ? "APPLIED" : "IGNORED";
	http_json(resp, 200, o);
out:
	if (in_tx)
		db_rollback(req->db);
	PQclear(res);
	json_object_put(act);
	json_object_put(ev);
}

static void stripe_hook(struct http_req *req, struct http_resp *resp)
{
	receive(req, resp, "stripe");
}

static void paddle_hook(struct http_req *req, struct http_resp *resp)
{
	receive(req, resp, "paddle");
}

static const struct http_route routes[] = {
	{ "/api/stripe/webhook", 0, "POST", HTTP_BODY_RAW, stripe_hook },
	{ "/api/paddle/webhook", 0, "POST", HTTP_BODY_RAW, paddle_hook },
	{ "/healthz", 0, "GET", HTTP_BODY_NONE, http_healthz },
};

HTTP_PROGRAM(
	.name = "webhook",
	.max_body = 512 * 1024,
	.init = lic_init_deferred,
	.reload = lic_keys_reload,
	.after = http_after_write)
