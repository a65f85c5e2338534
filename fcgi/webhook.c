/*
 * webhook: POST /api/stripe/webhook and POST /api/paddle/webhook.
 *
 * 1. The signature is checked over the raw body before anything parses it
 *    (sig.c): 400 INVALID_SIGNATURE otherwise.
 * 2. The provider's event is mapped to a provider-neutral action (the only
 *    provider-specific part: stripe_action / paddle_action below).
 * 3. One transaction: licd_webhook_event() records the event id once
 *    (duplicates and concurrent deliveries answer 200 and change nothing),
 *    applies the action or parks it until its subscription appears, and
 *    replays parked ones; keys of newly issued licenses are signed and
 *    stored, and a license_issued notification is queued.
 */
#include "config.h"
#include "db.h"
#include "http.h"
#include "json.h"
#include "lic.h"
#include "log.h"
#include "sig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct db_stmt stmts[] = {
	{ "event", "SELECT * FROM licd_webhook_event($1, $2, $3, $4, $5, $6, $7)",
	    0 },
	{ "license", "SELECT v.*, extract(epoch FROM l.issued_at)::bigint "
	    "FROM license_view v JOIN licenses l ON l.id = v.id WHERE v.id = $1",
	    0 },
	{ "store_key", "UPDATE licenses SET license_key = $2, key_kid = $3 "
	    "WHERE id = $1", 0 },
	{ "notify", "SELECT licd_notify('license_issued', $1::uuid, 'issued:' || $1::uuid::text, "
	    "jsonb_build_object('license_key', $2::text))", 0 },
};

static void put_str(struct json_object *a, const char *k, const char *v)
{
	if (v != NULL)
		json_object_object_add(a, k, json_object_new_string(v));
}

static void put_path(struct json_object *a, const char *k,
    struct json_object *ev, const char *path)
{
	struct json_object *v = js_path(ev, path);

	if (v != NULL && (json_object_is_type(v, json_type_string) ||
	    json_object_is_type(v, json_type_int) ||
	    json_object_is_type(v, json_type_boolean)))
		json_object_object_add(a, k, json_object_get(v));
}

static struct json_object *action(const char *op)
{
	struct json_object *a = json_object_new_object();

	put_str(a, "op", op);
	return a;
}

/* Stripe event -> action; NULL for event types licd does not act on. */
static struct json_object *stripe_action(struct json_object *ev,
    const char *type)
{
	struct json_object *a = NULL, *lines;
	const char *ps;

	if (strcmp(type, "checkout.session.completed") == 0 ||
	    strcmp(type, "checkout.session.async_payment_succeeded") == 0) {
		ps = js_path_str(ev, "data.object.payment_status");
		if (ps != NULL && strcmp(ps, "unpaid") == 0)
			return NULL;	/* async payment: wait for success */
		if (js_path_str(ev, "data.object.metadata.licd_license")) {
			a = action("addon");
			put_path(a, "target_license", ev,
			    "data.object.metadata.licd_license");
		} else {
			a = action("issue");
			put_path(a, "sub", ev, "data.object.subscription");
			put_path(a, "customer_ref", ev, "data.object.customer");
			put_path(a, "email", ev,
			    "data.object.customer_details.email");
			if (!json_object_object_get_ex(a, "email", NULL))
				put_path(a, "email", ev,
				    "data.object.customer_email");
			put_path(a, "mode", ev, "data.object.mode");
		}
		put_path(a, "plan", ev, "data.object.metadata.licd_plan");
		if (!json_object_object_get_ex(a, "plan", NULL))
			put_path(a, "plan", ev, "data.object.client_reference_id");
		put_path(a, "session", ev, "data.object.id");
	} else if (strcmp(type, "checkout.session.expired") == 0) {
		a = action("session_expired");
		put_path(a, "session", ev, "data.object.id");
	} else if (strcmp(type, "invoice.paid") == 0) {
		long long end = 0;
		size_t i, n;

		a = action("renew");
		put_path(a, "sub", ev, "data.object.subscription");
		/* The service period is on the lines; the invoice's own
		 * period_end is the previous period for subscriptions. */
		lines = js_path(ev, "data.object.lines.data");
		n = lines && json_object_is_type(lines, json_type_array) ?
		    json_object_array_length(lines) : 0;
		for (i = 0; i < n; i++) {
			struct json_object *e = js_path(
			    json_object_array_get_idx(lines, i), "period.end");

			if (e && json_object_is_type(e, json_type_int) &&
			    json_object_get_int64(e) > end)
				end = json_object_get_int64(e);
		}
		if (end > 0)
			json_object_object_add(a, "period_end",
			    json_object_new_int64(end));
		else
			put_path(a, "period_end", ev, "data.object.period_end");
	} else if (strcmp(type, "invoice.payment_failed") == 0) {
		a = action("payment_failed");
		put_path(a, "sub", ev, "data.object.subscription");
	} else if (strcmp(type, "customer.subscription.updated") == 0) {
		a = action("update");
		put_path(a, "sub", ev, "data.object.id");
		put_path(a, "price", ev, "data.object.items.data.0.price.id");
		put_path(a, "cancel_at_period_end", ev,
		    "data.object.cancel_at_period_end");
		put_path(a, "period_end", ev, "data.object.current_period_end");
		put_path(a, "status", ev, "data.object.status");
	} else if (strcmp(type, "customer.subscription.deleted") == 0) {
		a = action("cancel");
		put_path(a, "sub", ev, "data.object.id");
		put_path(a, "ends_at", ev, "data.object.current_period_end");
	} else if (strcmp(type, "customer.created") == 0 ||
	    strcmp(type, "customer.updated") == 0) {
		a = action("customer");
		put_path(a, "customer_ref", ev, "data.object.id");
		put_path(a, "email", ev, "data.object.email");
		put_path(a, "name", ev, "data.object.name");
	}
	return a;
}

/* Paddle Billing event -> action. */
static struct json_object *paddle_action(struct json_object *ev,
    const char *type)
{
	struct json_object *a = NULL;
	const char *s;

	if (strcmp(type, "subscription.created") == 0 ||
	    strcmp(type, "subscription.activated") == 0) {
		a = action("issue");
		put_path(a, "sub", ev, "data.id");
		put_path(a, "period_end_at", ev,
		    "data.current_billing_period.ends_at");
	} else if (strcmp(type, "transaction.completed") == 0) {
		if (js_path_str(ev, "data.custom_data.licd_license")) {
			a = action("addon");
			put_path(a, "target_license", ev,
			    "data.custom_data.licd_license");
		} else {
			a = action("issue");
			put_path(a, "sub", ev, "data.subscription_id");
			put_path(a, "period_end_at", ev,
			    "data.billing_period.ends_at");
			put_str(a, "mode", js_path_str(ev,
			    "data.subscription_id") ? "subscription" : "payment");
		}
		put_path(a, "session", ev, "data.id");
	} else if (strcmp(type, "subscription.updated") == 0) {
		a = action("update");
		put_path(a, "sub", ev, "data.id");
		put_path(a, "price", ev, "data.items.0.price.id");
		put_path(a, "period_end_at", ev,
		    "data.current_billing_period.ends_at");
		put_path(a, "status", ev, "data.status");
		s = js_path_str(ev, "data.scheduled_change.action");
		json_object_object_add(a, "cancel_at_period_end",
		    json_object_new_boolean(s != NULL &&
		    strcmp(s, "cancel") == 0));
		return a;
	} else if (strcmp(type, "subscription.past_due") == 0) {
		a = action("payment_failed");
		put_path(a, "sub", ev, "data.id");
		return a;
	} else if (strcmp(type, "subscription.canceled") == 0) {
		a = action("cancel");
		put_path(a, "sub", ev, "data.id");
		put_path(a, "ends_at_at", ev,
		    "data.current_billing_period.ends_at");
		return a;
	} else if (strcmp(type, "customer.created") == 0 ||
	    strcmp(type, "customer.updated") == 0) {
		a = action("customer");
		put_path(a, "customer_ref", ev, "data.id");
		put_path(a, "email", ev, "data.email");
		put_path(a, "name", ev, "data.name");
		return a;
	} else {
		return NULL;
	}
	/* Issuing events: buyer and plan. */
	put_path(a, "customer_ref", ev, "data.customer_id");
	put_path(a, "email", ev, "data.custom_data.email");
	put_path(a, "plan", ev, "data.custom_data.licd_plan");
	put_path(a, "price", ev, "data.items.0.price.id");
	return a;
}

/* Signs and stores the key of a license the event just issued, and queues
 * the e-mail that delivers it. Runs inside the event's transaction. */
static int issue_key(struct http_req *req, const char *id)
{
	const char *params[3] = { id, NULL, NULL };
	PGresult *res = NULL;
	struct lic l;
	long long issued;
	char *key = NULL;
	int st, have = 0;

	if ((st = db_exec(req->db, "license", 1, params, &res)) != DB_OK)
		goto out;
	st = DB_ERROR;
	if (PQntuples(res) != 1 || lic_from_row(res, 0, 0, &l) != LIC_OK)
		goto out;
	have = 1;
	issued = strtoll(PQgetvalue(res, 0, LIC_NCOLS), NULL, 10);
	if (lic_sign_key(&l, issued, &key) != LIC_OK)
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
	if (have)
		lic_free(&l);
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
	    "paddle_webhook_secrets", "");
	const char *id, *type, *params[7];
	struct json_object *ev = NULL, *act = NULL, *o;
	struct js_err e;
	PGresult *res = NULL;
	char grace[16];
	struct timespec now;
	int st, i, in_tx = 0;
	const char *outcome = "ignored";

	/* CLOCK_REALTIME, not time(): glibc's time() reads the kernel's
	 * coarse clock, which can lag a second boundary by a tick, and the
	 * tolerance is checked to the second. */
	clock_gettime(CLOCK_REALTIME, &now);
	st = sig_verify(stripe ? SIG_STRIPE : SIG_PADDLE, header, secrets,
	    req->body, req->body_len, now.tv_sec,
	    cfg_int("webhook_tolerance", 300));
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
	act = stripe ? stripe_action(ev, type) : paddle_action(ev, type);
	snprintf(grace, sizeof(grace), "%ld", cfg_int("grace_days", 7));
	params[0] = provider;
	params[1] = id;
	params[2] = type;
	params[3] = js_dump(ev, NULL);
	params[4] = act ? js_dump(act, NULL) : NULL;
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
	for (i = 0; i < PQntuples(res); i++) {
		outcome = PQgetvalue(res, i, 0);
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

int main(int argc, char **argv)
{
	static const struct http_program prog = {
		.name = "webhook",
		.routes = routes,
		.nroutes = sizeof(routes) / sizeof(routes[0]),
		.stmts = stmts,
		.nstmts = sizeof(stmts) / sizeof(stmts[0]),
		.max_body = 512 * 1024,
		.init = lic_init,
	};

	return http_main(argc, argv, &prog);
}
