/*
 * revoke: the admin API. POST /api/revoke and, under /api/admin/licenses/,
 * {id}/suspend, {id}/reinstate, {id}/reset-activations and GET {id}.
 * Every request needs an admin bearer token (auth.c); every action and its
 * audit row are one SQL function call, so an action is never recorded
 * without taking effect or the reverse. Validate, heartbeat and usage read
 * the license row on every call, so a change applies to the next call.
 */
#include "auth.h"
#include "db.h"
#include "http.h"
#include "json.h"
#include "lic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct db_stmt stmts[] = {
	{ "revoke", "SELECT * FROM licd_revoke($1, $2, $3, $4)", 1 },
	{ "status", "SELECT * FROM licd_set_status($1, $2, $3, $4, $5)", 0 },
	{ "reset", "SELECT * FROM licd_reset_activations($1, $2, $3, $4)", 0 },
	{ "show", "SELECT licd_admin_license($1)", 1 },
};

static int reason_field(struct http_req *req, struct http_resp *resp,
    const char **reason)
{
	struct js_err e;

	*reason = NULL;
	if (req->json != NULL &&
	    js_string(req->json, "reason", 0, 1, 500, JS_TEXT, reason, &e)) {
		http_field_error(resp, &e);
		return -1;
	}
	return 0;
}

static void revoke(struct http_req *req, struct http_resp *resp)
{
	const char *actor, *lid, *key, *reason, *params[4];
	char id[LIC_UUID_LEN + 1];
	struct json_object *o;
	struct js_err e;
	PGresult *res = NULL;
	int st;

	if (auth_admin(req, resp, &actor) != 0)
		return;
	if (js_string(req->json, "license_id", 0, 36, 36, JS_TOKEN, &lid, &e) ||
	    js_string(req->json, "license_key", 0, 1, 16384, JS_TEXT, &key,
	    &e) || reason_field(req, resp, &reason)) {
		if (resp->body == NULL)
			http_field_error(resp, &e);
		return;
	}
	if (lid == NULL && key == NULL) {
		http_error(resp, 400, "MISSING_FIELD",
		    "field 'license_id' or 'license_key' is required");
		return;
	}
	if (lid != NULL) {
		if (!lic_uuid_valid(lid)) {
			http_error(resp, 400, "INVALID_FIELD",
			    "field 'license_id' must be a UUID");
			return;
		}
		snprintf(id, sizeof(id), "%s", lid);
	} else if (lic_verify_key(key, id, NULL) != LIC_OK) {
		http_error(resp, 400, "INVALID_FIELD",
		    "field 'license_key' is not a license key of this server");
		return;
	}
	snprintf(req->log_subject, sizeof(req->log_subject),
	    "license=%s actor=%s", id, actor);
	params[0] = id;
	params[1] = reason;
	params[2] = actor;
	params[3] = req->rid;
	if ((st = db_exec(req->db, "revoke", 4, params, &res)) != DB_OK) {
		http_db_error(req, resp, st, "revoke");
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "ok") != 0) {
		http_error(resp, 404, "NOT_FOUND", "no such license");
		goto out;
	}
	o = json_object_new_object();
	json_object_object_add(o, "license_id", json_object_new_string(id));
	json_object_object_add(o, "status", json_object_new_string("revoked"));
	json_object_object_add(o, "revoked_at",
	    lic_ts_json(strtoll(PQgetvalue(res, 0, 1), NULL, 10)));
	http_json(resp, 200, o);
out:
	PQclear(res);
}

/* /api/admin/licenses/{id}[/{action}] -> id and action ("" for GET). */
static int split(const char *param, char id[LIC_UUID_LEN + 1],
    const char **action)
{
	if (strlen(param) < LIC_UUID_LEN)
		return -1;
	memcpy(id, param, LIC_UUID_LEN);
	id[LIC_UUID_LEN] = '\0';
	if (!lic_uuid_valid(id))
		return -1;
	if (param[LIC_UUID_LEN] == '\0') {
		*action = "";
		return 0;
	}
	if (param[LIC_UUID_LEN] != '/')
		return -1;
	*action = param + LIC_UUID_LEN + 1;
	return 0;
}

static void show(struct http_req *req, struct http_resp *resp,
    const char *id)
{
	const char *params[1] = { id };
	PGresult *res = NULL;
	struct json_object *o;
	int st;

	if ((st = db_exec(req->db, "show", 1, params, &res)) != DB_OK) {
		http_db_error(req, resp, st, "show");
		goto out;
	}
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
		http_error(resp, 404, "NOT_FOUND", "no such license");
		goto out;
	}
	if ((o = js_from_text(PQgetvalue(res, 0, 0))) == NULL) {
		http_error(resp, 500, "INTERNAL", "bad license document");
		goto out;
	}
	/* The stored key is a credential: the admin API does not echo it. */
	json_object_object_del(json_object_object_get(o, "license"), "key");
	http_json(resp, 200, o);
out:
	PQclear(res);
}

static void admin(struct http_req *req, struct http_resp *resp)
{
	char id[LIC_UUID_LEN + 1];
	const char *actor, *action, *reason, *params[5];
	struct json_object *o;
	PGresult *res = NULL;
	int st, is_get = strcmp(req->method, "GET") == 0;

	if (auth_admin(req, resp, &actor) != 0)
		return;
	if (split(req->param, id, &action) != 0) {
		http_error(resp, 404, "NOT_FOUND", "no such endpoint");
		return;
	}
	snprintf(req->log_subject, sizeof(req->log_subject),
	    "license=%s actor=%s", id, actor);
	if (*action == '\0') {
		if (!is_get) {
			resp->allow = "GET";
			http_error(resp, 405, "METHOD_NOT_ALLOWED", "use GET");
			return;
		}
		show(req, resp, id);
		return;
	}
	if (strcmp(action, "suspend") != 0 && strcmp(action, "reinstate") != 0 &&
	    strcmp(action, "reset-activations") != 0) {
		http_error(resp, 404, "NOT_FOUND", "no such endpoint");
		return;
	}
	if (is_get) {
		resp->allow = "POST";
		http_error(resp, 405, "METHOD_NOT_ALLOWED", "use POST");
		return;
	}
	if (reason_field(req, resp, &reason) != 0)
		return;
	params[0] = id;
	if (strcmp(action, "reset-activations") == 0) {
		params[1] = reason;
		params[2] = actor;
		params[3] = req->rid;
		st = db_exec(req->db, "reset", 4, params, &res);
	} else {
		params[1] = action;
		params[2] = reason;
		params[3] = actor;
		params[4] = req->rid;
		st = db_exec(req->db, "status", 5, params, &res);
	}
	if (st != DB_OK) {
		http_db_error(req, resp, st, action);
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "not_found") == 0) {
		http_error(resp, 404, "NOT_FOUND", "no such license");
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "conflict") == 0) {
		http_error(resp, 409, "CONFLICT", "cannot %s a license that is %s",
		    action, PQgetvalue(res, 0, 1));
		goto out;
	}
	o = json_object_new_object();
	json_object_object_add(o, "license_id", json_object_new_string(id));
	if (strcmp(action, "reset-activations") == 0) {
		json_object_object_add(o, "deactivated",
		    json_object_new_int64(strtoll(PQgetvalue(res, 0, 1), NULL,
		    10)));
	} else {
		json_object_object_add(o, "status",
		    json_object_new_string(PQgetvalue(res, 0, 1)));
		json_object_object_add(o, "changed", json_object_new_boolean(
		    strcmp(PQgetvalue(res, 0, 3), "t") == 0));
	}
	http_json(resp, 200, o);
out:
	PQclear(res);
}

static int init(void)
{
	return lic_init() == 0 && auth_init() == 0 ? 0 : -1;
}

static const struct http_route routes[] = {
	{ "/api/revoke", 0, "POST", HTTP_BODY_JSON, revoke },
	{ "/api/admin/licenses/", 1, "GET,POST", HTTP_BODY_JSON_OPT, admin },
	{ "/healthz", 0, "GET", HTTP_BODY_NONE, http_healthz },
};

int main(int argc, char **argv)
{
	static const struct http_program prog = {
		.name = "revoke",
		.routes = routes,
		.nroutes = sizeof(routes) / sizeof(routes[0]),
		.stmts = stmts,
		.nstmts = sizeof(stmts) / sizeof(stmts[0]),
		.init = init,
	};

	return http_main(argc, argv, &prog);
}
