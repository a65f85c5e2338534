/*
 * checkout: GET /api/public/plans, POST /api/checkout/session (creates a
 * Stripe Checkout Session), GET /api/checkout/session/{id} (its status and,
 * once the webhook issued it, the license key).
 *
 * Nothing is written before Stripe said yes: a Stripe error or timeout is
 * 502 PAYMENT_PROVIDER_ERROR with nothing stored. Redirect URLs must have
 * a browser origin on checkout_allowed_origins (origin.h) so a checkout
 * link cannot send buyers elsewhere; an add-on needs the key of the
 * license it extends.
 */
#include "config.h"
#include "db.h"
#include "http.h"
#include "json.h"
#include "lic.h"
#include "log.h"
#include "origin.h"
#include "stripe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

static const struct db_stmt stmts[] = {
	{ "plans", "SELECT coalesce(json_agg(json_build_object('code', code, "
	    "'name', name, 'interval', billing_interval, 'price_cents', "
	    "price_cents, 'currency', currency, 'features', features, "
	    "'limits', limits, 'addon', is_addon) ORDER BY price_cents NULLS "
	    "LAST, code), '[]')::text FROM plans WHERE active AND price_cents IS "
	    "NOT NULL", 1 },
	{ "plan", "SELECT billing_interval, stripe_price_id, is_addon FROM "
	    "plans WHERE code = $1 AND active", 1 },
	{ "license_ok", "SELECT status FROM licenses WHERE id = $1", 1 },
	{ "record", "INSERT INTO checkout_sessions (id, plan_code, email, mode, "
	    "target_license_id, url) VALUES ($1, $2, $3, $4, $5, $6) "
	    "ON CONFLICT (id) DO NOTHING", 1 },
	/* The key only of a license this session issued: an add-on session
	 * names the license it extended in target_license_id, never here. */
	{ "status", "SELECT cs.status, l.license_key FROM checkout_sessions cs "
	    "LEFT JOIN licenses l ON l.id = cs.license_id AND "
	    "cs.target_license_id IS NULL WHERE cs.id = $1", 1 },
};

static void plans(struct http_req *req, struct http_resp *resp)
{
	PGresult *res = NULL;
	struct json_object *o, *arr;
	int st;

	if ((st = db_exec(req->db, "plans", 0, NULL, &res)) != DB_OK) {
		http_db_error(req, resp, st, "plans");
		return;
	}
	arr = js_from_text(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (arr == NULL) {
		http_error(resp, 500, "INTERNAL", "bad plans");
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "plans", arr);
	http_json(resp, 200, o);
}

/* The Idempotency-Key sent to Stripe: a digest of everything the session
 * is made of, so a client retrying the same request gets the same
 * session, and two requests that share an X-Request-Id but not their
 * content never do. */
static void idempotency_key(char out[96], const char *const *parts, int n)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int k;

	snprintf(out, 96, "licd-checkout-");
	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return;
	}
	for (k = 0; k < n; k++) {
		const char *v = parts[k] != NULL ? parts[k] : "";

		/* each part with its NUL, so parts cannot run together */
		EVP_DigestUpdate(ctx, v, strlen(v) + 1);
	}
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	for (i = 0; i < mdlen && i < 32; i++)
		snprintf(out + 14 + 2 * i, 3, "%02x", md[i]);
}

static void create(struct http_req *req, struct http_resp *resp)
{
	const char *plan, *email, *ok_url, *cancel_url, *key, *params[6];
	const char *mode, *target = NULL;
	char success[2300], err[512], idem[96], lic_id[LIC_UUID_LEN + 1];
	struct stripe_form form = { .len = 0 };
	struct json_object *session = NULL, *v, *o;
	struct js_err e;
	PGresult *res = NULL;
	int st, addon;

	if (js_string(req->json, "plan", 1, 1, 64, JS_TOKEN, &plan, &e) ||
	    js_string(req->json, "email", 1, 3, 254, JS_TEXT, &email, &e) ||
	    js_string(req->json, "success_url", 0, 8, 2048, JS_TEXT, &ok_url,
	    &e) ||
	    js_string(req->json, "cancel_url", 0, 8, 2048, JS_TEXT, &cancel_url,
	    &e) ||
	    js_string(req->json, "license_key", 0, 1, 8192, JS_TOKEN, &key,
	    &e)) {
		http_field_error(resp, &e);
		return;
	}
	if (strchr(email, '@') == NULL || strchr(email, ' ') != NULL) {
		http_error(resp, 400, "INVALID_FIELD",
		    "field 'email' is not an e-mail address");
		return;
	}
	if (ok_url == NULL)
		ok_url = cfg_str("checkout_success_url");
	if (cancel_url == NULL)
		cancel_url = cfg_str("checkout_cancel_url");
	if (ok_url == NULL || !origin_allowed(ok_url,
	    cfg_str("checkout_allowed_origins"))) {
		http_error(resp, 400, "INVALID_FIELD",
		    "field 'success_url' is not on the allowed origins");
		return;
	}
	if (cancel_url == NULL || !origin_allowed(cancel_url,
	    cfg_str("checkout_allowed_origins"))) {
		http_error(resp, 400, "INVALID_FIELD",
		    "field 'cancel_url' is not on the allowed origins");
		return;
	}
	params[0] = plan;
	if ((st = db_exec(req->db, "plan", 1, params, &res)) != DB_OK) {
		http_db_error(req, resp, st, "plan");
		goto out;
	}
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 1)) {
		http_error(resp, 400, "INVALID_FIELD",
		    "field 'plan' names no plan for sale");
		goto out;
	}
	addon = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
	mode = addon || strcmp(PQgetvalue(res, 0, 0), "once") == 0 ?
	    "payment" : "subscription";
	/* An add-on extends the license whose key the buyer holds: the key
	 * is verified as validate verifies it, and its license must exist
	 * and not be revoked. */
	if (addon) {
		PGresult *lr = NULL;

		if (key == NULL) {
			http_error(resp, 400, "MISSING_FIELD", "an add-on needs "
			    "'license_key', the key of the license it extends");
			goto out;
		}
		if (lic_verify_key_full(key, lic_id, NULL) != LIC_OK) {
			http_error(resp, 403, "INVALID_KEY",
			    "the license key is not valid");
			goto out;
		}
		params[0] = lic_id;
		if ((st = db_exec(req->db, "license_ok", 1, params, &lr)) !=
		    DB_OK) {
			http_db_error(req, resp, st, "license");
			goto out;
		}
		st = PQntuples(lr) == 1 && strcmp(PQgetvalue(lr, 0, 0),
		    "revoked") != 0;
		PQclear(lr);
		if (!st) {
			http_error(resp, 403, "INVALID_KEY",
			    "the license key is not valid");
			goto out;
		}
		target = lic_id;
	}
	/* Stripe replaces {CHECKOUT_SESSION_ID} in the redirect. */
	snprintf(success, sizeof(success), "%s", ok_url);
	if (strstr(ok_url, "{CHECKOUT_SESSION_ID}") == NULL)
		snprintf(success, sizeof(success), "%s%csession_id="
		    "{CHECKOUT_SESSION_ID}", ok_url,
		    strchr(ok_url, '?') ? '&' : '?');
	stripe_form_add(&form, "mode", mode);
	stripe_form_add(&form, "line_items[0][price]", PQgetvalue(res, 0, 1));
	stripe_form_add(&form, "line_items[0][quantity]", "1");
	stripe_form_add(&form, "customer_email", email);
	stripe_form_add(&form, "success_url", success);
	stripe_form_add(&form, "cancel_url", cancel_url);
	stripe_form_add(&form, "client_reference_id", plan);
	stripe_form_add(&form, "metadata[licd_plan]", plan);
	if (addon)
		stripe_form_add(&form, "metadata[licd_license]", target);
	if (strcmp(mode, "subscription") == 0)
		stripe_form_add(&form, "subscription_data[metadata][licd_plan]",
		    plan);
	{
		const char *parts[] = { req->rid, plan, email, success,
		    cancel_url, target };

		idempotency_key(idem, parts, 6);
	}
	if (stripe_post("/v1/checkout/sessions", &form, idem, &session, err,
	    sizeof(err)) != STRIPE_OK) {
		log_error("rid=%s stripe checkout session failed: %s", req->rid,
		    err);
		http_error(resp, 502, "PAYMENT_PROVIDER_ERROR",
		    "the payment provider could not be reached; retry later");
		goto out;
	}
	o = json_object_new_object();
	if (!json_object_object_get_ex(session, "id", &v) ||
	    !json_object_is_type(v, json_type_string)) {
		json_object_put(o);
		log_error("rid=%s stripe answer without id", req->rid);
		http_error(resp, 502, "PAYMENT_PROVIDER_ERROR",
		    "unexpected answer from the payment provider");
		goto out;
	}
	json_object_object_add(o, "id", json_object_get(v));
	json_object_object_add(o, "url", json_object_object_get_ex(session,
	    "url", &v) ? json_object_get(v) : NULL);
	PQclear(res);
	res = NULL;
	params[0] = json_object_get_string(json_object_object_get(o, "id"));
	params[1] = plan;
	params[2] = email;
	params[3] = mode;
	params[4] = addon ? target : NULL;
	params[5] = json_object_get_string(json_object_object_get(o, "url"));
	if ((st = db_exec(req->db, "record", 6, params, &res)) != DB_OK) {
		json_object_put(o);
		http_db_error(req, resp, st, "record session");
		goto out;
	}
	snprintf(req->log_subject, sizeof(req->log_subject), "session=%s",
	    params[0]);
	http_json(resp, 201, o);
out:
	json_object_put(session);
	PQclear(res);
}

static int session_id_ok(const char *s)
{
	size_t i, n = strlen(s);

	if (n < 1 || n > 255)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
		    || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

static void status(struct http_req *req, struct http_resp *resp)
{
	const char *params[1] = { req->param };
	struct json_object *o;
	PGresult *res = NULL;
	int st;

	if (!session_id_ok(req->param)) {
		http_error(resp, 404, "NOT_FOUND", "no such checkout session");
		return;
	}
	if ((st = db_exec(req->db, "status", 1, params, &res)) != DB_OK) {
		http_db_error(req, resp, st, "session status");
		return;
	}
	if (PQntuples(res) != 1) {
		http_error(resp, 404, "NOT_FOUND", "no such checkout session");
	} else {
		o = json_object_new_object();
		json_object_object_add(o, "id", json_object_new_string(req->param));
		json_object_object_add(o, "status",
		    json_object_new_string(PQgetvalue(res, 0, 0)));
		json_object_object_add(o, "license_key", PQgetisnull(res, 0, 1) ?
		    NULL : json_object_new_string(PQgetvalue(res, 0, 1)));
		http_json(resp, 200, o);
	}
	PQclear(res);
}

static const struct http_route routes[] = {
	{ "/api/public/plans", 0, "GET", HTTP_BODY_NONE, plans },
	{ "/api/checkout/session", 0, "POST", HTTP_BODY_JSON, create },
	{ "/api/checkout/session/", 1, "GET", HTTP_BODY_NONE, status },
	{ "/healthz", 0, "GET", HTTP_BODY_NONE, http_healthz },
};

HTTP_PROGRAM(
	.name = "checkout",
	.init = lic_init_deferred)
