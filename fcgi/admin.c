/*
 * admin: the admin API (docs/API.md, "Admin"), built as the `revoke`
 * program (its socket, unit and nginx upstream keep the name of the
 * design's program list; Makefile). POST /api/revoke and everything
 * under /api/admin/: the lists and the overview behind the
 * console, license actions, customers, plans, notifications, signing keys,
 * and console sessions. Every request needs an admin bearer token or a
 * console session with its CSRF header (auth.c). Reads and writes are one
 * SQL function each (sql/functions/91_console_reads.sql and
 * 92_console_writes.sql) that takes the query string or body as jsonb
 * and returns the answer's JSON, and every write and its
 * audit row are one transaction, so an action is never recorded without
 * taking effect or the reverse. Only issuing a license, reissuing its key
 * and signing an offline lease need C in between (the signature). After a write the
 * answer waits for the license caches' barrier (http_after_write, cache.h),
 * so validate and heartbeat in every process answer the change from the
 * next call on; usage reads the license on every call.
 */
#include "auth.h"
#include "config.h"
#include "db.h"
#include "http.h"
#include "json.h"
#include "jwt.h"
#include "lic.h"
#include "url.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

static const struct db_stmt stmts[] = {
	{ "revoke", "SELECT * FROM licd_revoke($1, $2, $3, $4)", 1 },
	{ "status", "SELECT * FROM licd_set_status($1, $2, $3, $4, $5)", 0 },
	{ "reset", "SELECT * FROM licd_reset_activations($1, $2, $3, $4)", 0 },
	{ "show", "SELECT licd_admin_license($1)", 1 },
	{ "show_full", "SELECT licd_admin_license_full($1)", 1 },
	{ "licenses", "SELECT licd_admin_licenses($1::jsonb)", 1 },
	{ "customers", "SELECT licd_admin_customers($1::jsonb)", 1 },
	{ "installations", "SELECT licd_admin_installations($1::jsonb)", 1 },
	{ "plans", "SELECT licd_admin_plans($1::jsonb)", 1 },
	{ "audit", "SELECT licd_admin_audit($1::jsonb)", 1 },
	{ "notifications", "SELECT licd_admin_notifications($1::jsonb)", 1 },
	{ "webhook_events", "SELECT licd_admin_webhook_events($1::jsonb)", 1 },
	{ "overview", "SELECT licd_admin_overview($1::jsonb)", 1 },
	{ "customer_create", "SELECT licd_admin_customer_create($1::jsonb, $2, $3)",
	    0 },
	{ "plan_set", "SELECT licd_admin_plan_set($1::jsonb, $2, $3)", 0 },
	{ "issue", "SELECT licd_admin_license_issue($1::jsonb, $2, $3)", 0 },
	{ "issued", LIC_KEY_ROW "v.id = $1", 0 },
	{ "keyed", "SELECT licd_license_keys_store(ARRAY[$1::uuid], "
	    "ARRAY[$2::text], $3)", 0 },
	{ "reissued", "SELECT licd_audit($1, 'license.reissue', 'license', $2, "
	    "$3, $4, jsonb_build_object('kid', $5::text))", 0 },
	{ "edit", "SELECT licd_admin_license_edit($1, $2::jsonb, $3, $4)", 0 },
	{ "deactivate", "SELECT licd_admin_deactivate($1, $2, $3, $4, $5)", 0 },
	{ "retry", "SELECT licd_admin_notification_retry($1::bigint, $2, $3)",
	    0 },
	{ "lease_model", "SELECT seat_model FROM licenses WHERE id = $1", 0 },
	{ "lease_activate", "SELECT a.code FROM licd_activate($1, $2, NULL, "
	    "$3::jsonb, NULL) a", 0 },
	{ "lease_borrow", "SELECT s.code FROM licd_seat($1, $2, 'offline', "
	    "$4::int, NULL, $3::jsonb, NULL) s", 0 },
	{ "lease_read", "SELECT v.*, extract(epoch FROM licd_now())::bigint "
	    "FROM license_view v WHERE v.id = $1", 0 },
	{ "lease_hold", "UPDATE installations SET offline_until = greatest("
	    "offline_until, to_timestamp($3::bigint)) WHERE license_id = $1 "
	    "AND installation_id = $2", 0 },
	{ "lease_audit", "SELECT licd_audit($3, 'lease.offline', 'license', $1,"
	    " NULL, $4, jsonb_build_object('installation_id', $2::text, "
	    "'lease_expires_at', $5::text))", 0 },
	{ "session_open", "SELECT licd_session_open($1::bytea, $2, $3, $4, "
	    "$5::int, $6)", 0 },
	{ "session_end", "SELECT licd_session_end($1::bytea, $2)", 0 },
	AUTH_STMTS,
};

/* SQLSTATEs the admin functions raise (sql/functions/90_console_args.sql)
 * and what the API answers for them; the function's message is the
 * error's message. */
static const struct {
	const char *state;
	int status;
	const char *code;
} sql_errors[] = {
	{ "22023", 400, "INVALID_FIELD" },
	{ "22004", 400, "MISSING_FIELD" },
	{ "P0002", 404, "NOT_FOUND" },
	{ "55000", 409, "CONFLICT" },
};

static void sql_error(struct http_req *req, struct http_resp *resp, int st,
    PGresult *res, const char *what)
{
	size_t i;

	if (st == DB_ERROR && res != NULL)
		for (i = 0; i < sizeof(sql_errors) / sizeof(sql_errors[0]); i++)
			if (strcmp(db_sqlstate(res), sql_errors[i].state) == 0) {
				const char *m = PQresultErrorField(res,
				    PG_DIAG_MESSAGE_PRIMARY);

				http_error(resp, sql_errors[i].status,
				    sql_errors[i].code, "%s", m ? m : what);
				return;
			}
	if (st == DB_ERROR && res != NULL &&
	    strncmp(db_sqlstate(res), "23", 2) == 0) {
		http_error(resp, 400, "INVALID_FIELD",
		    "a value is not allowed here (%s)", what);
		return;
	}
	http_db_error(req, resp, st, what);
}

/* Runs stmt, whose one column is the answer's JSON text, and answers it
 * with status (404 when the function found nothing). */
static void json_answer(struct http_req *req, struct http_resp *resp,
    int status, const char *stmt, int n, const char *const *params)
{
	PGresult *res = NULL;
	struct json_object *o;
	int st;

	if ((st = db_exec(req->db, stmt, n, params, &res)) != DB_OK) {
		sql_error(req, resp, st, res, stmt);
		goto out;
	}
	if (PQntuples(res) < 1 || PQgetisnull(res, 0, 0)) {
		http_error(resp, 404, "NOT_FOUND", "not found");
		goto out;
	}
	if ((o = js_from_text(PQgetvalue(res, 0, 0))) == NULL) {
		http_error(resp, 500, "INTERNAL", "bad %s document", stmt);
		goto out;
	}
	http_json(resp, status, o);
out:
	PQclear(res);
}

static const char *body_text(struct http_req *req)
{
	size_t len;

	return req->json != NULL ? js_dump(req->json, &len) : "{}";
}

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

	if ((st = db_exec(req->db, "show_full", 1, params, &res)) != DB_OK) {
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

/* The read endpoints: path, statement, the query parameters passed on
 * (others are ignored), and whether q is searched for a license key
 * (key_search). */
static const struct list {
	const char *path;
	const char *stmt;
	const char *params[9];
	int key_q;
} lists[] = {
	{ "/api/admin/licenses", "licenses", { "q", "status", "plan",
	    "expiring_days", "in_grace", "past_due", "cursor", "limit" }, 1 },
	{ "/api/admin/customers", "customers", { "q", "cursor", "limit" }, 1 },
	{ "/api/admin/installations", "installations", { "version",
	    "seen_within_days", "not_seen_days", "status", "cursor",
	    "limit" }, 0 },
	{ "/api/admin/plans", "plans", { NULL }, 0 },
	{ "/api/admin/audit", "audit", { "actor", "action", "target", "since",
	    "until", "cursor", "limit" }, 0 },
	{ "/api/admin/notifications", "notifications", { "status", "license",
	    "cursor", "limit" }, 0 },
	{ "/api/admin/webhook-events", "webhook_events", { "status",
	    "provider", "cursor", "limit" }, 0 },
	{ "/api/admin/overview", "overview", { NULL }, 0 },
};

/* A license key is a compact JWS: three non-empty base64url segments joined
 * by dots. Surrounding blanks (a pasted key) are ignored; *start and *len
 * give the key itself. */
static int key_shaped(const char *s, const char **start, size_t *len)
{
	size_t n, i, dots = 0, seg = 0;

	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' ||
	    s[n - 1] == '\r' || s[n - 1] == '\n'))
		n--;
	if (n < 40)
		return 0;
	for (i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (seg == 0 || ++dots > 2)
				return 0;
			seg = 0;
		} else if (isalnum((unsigned char)s[i]) || s[i] == '-' ||
		    s[i] == '_') {
			seg++;
		} else {
			return 0;
		}
	}
	if (dots != 2 || seg == 0)
		return 0;
	*start = s;
	*len = n;
	return 1;
}

/* q holding a license key searches by the key's license: the key is
 * verified here, so a key this server did not sign finds nothing. Only
 * POST …/licenses/search takes a key: a URL reaches nginx's error log whole
 * (when the program is down or a rate limit refuses it), key included, so
 * every list whose q may be pasted a key (licenses, customers) refuses one
 * in its URL. */
static int key_search(struct json_object *args, struct http_resp *resp,
    int from_url)
{
	struct json_object *q = json_object_object_get(args, "q");
	char id[LIC_UUID_LEN + 1], *key;
	const char *s = json_object_is_type(q, json_type_string) ?
	    json_object_get_string(q) : NULL, *k;
	size_t n;
	int rc;

	if (s == NULL || !key_shaped(s, &k, &n))
		return 0;
	if (from_url) {
		http_error(resp, 400, "INVALID_FIELD", "parameter 'q' holds a "
		    "license key: search by key with POST "
		    "/api/admin/licenses/search, which keeps it out of URLs "
		    "and logs");
		return 1;
	}
	if ((key = strndup(k, n)) == NULL) {
		http_error(resp, 500, "INTERNAL", "out of memory");
		return 1;
	}
	rc = lic_verify_key(key, id, NULL);
	free(key);
	if (rc != LIC_OK) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "licenses", json_object_new_array());
		json_object_object_add(o, "next_cursor", NULL);
		http_json(resp, 200, o);
		return 1;
	}
	json_object_object_add(args, "q", json_object_new_string(id));
	return 0;
}

/* A list's arguments come from the query string, or for POST
 * /api/admin/licenses/search from the body (body not NULL), so that a
 * license key searched for never is part of a URL. */
static void list(struct http_req *req, struct http_resp *resp,
    const char *actor, const struct list *l, struct json_object *body)
{
	struct json_object *args, *val;
	const char *params[1];
	size_t i, len;
	char *v;
	int q;

	if (l == NULL) {
		for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
			if (strcmp(req->path, lists[i].path) == 0)
				l = &lists[i];
	}
	if (l == NULL) {
		http_error(resp, 404, "NOT_FOUND", "no such endpoint");
		return;
	}
	snprintf(req->log_subject, sizeof(req->log_subject), "actor=%s",
	    actor);
	args = json_object_new_object();
	for (i = 0; l->params[i] != NULL; i++) {
		if (body != NULL) {
			if (json_object_object_get_ex(body, l->params[i], &val))
				json_object_object_add(args, l->params[i],
				    json_object_get(val));
			continue;
		}
		if ((q = url_query(req->query, l->params[i], &v)) < 0 ||
		    (q == 0 && !js_utf8_valid(v, strlen(v)))) {
			if (q == 0)
				free(v);
			http_error(resp, 400, "INVALID_FIELD",
			    "parameter '%s' is not valid", l->params[i]);
			goto out;
		}
		if (q == 0) {
			json_object_object_add(args, l->params[i],
			    json_object_new_string(v));
			free(v);
		}
	}
	if (l->key_q && key_search(args, resp, body == NULL))
		goto out;
	params[0] = js_dump(args, &len);
	json_answer(req, resp, 200, l->stmt, 1, params);
out:
	json_object_put(args);
}

/* POST …/{id}/edit: end, domains, limits, features. */
static void edit(struct http_req *req, struct http_resp *resp,
    const char *id, const char *actor)
{
	const char *params[4] = { id, body_text(req), actor, req->rid };
	PGresult *res = NULL;
	struct json_object *doc;
	int st;

	if ((st = db_exec(req->db, "edit", 4, params, &res)) != DB_OK) {
		sql_error(req, resp, st, res, "edit");
		goto out;
	}
	if ((doc = js_from_text(PQgetvalue(res, 0, 0))) == NULL) {
		http_error(resp, 500, "INTERNAL", "bad license document");
		goto out;
	}
	/* The stored key is a credential: only issuing shows it. */
	json_object_object_del(json_object_object_get(doc, "license"), "key");
	http_json(resp, 200, doc);
out:
	PQclear(res);
}

/* POST …/{id}/installations/{iid}/deactivate */
static void deactivate(struct http_req *req, struct http_resp *resp,
    const char *id, const char *rest, const char *actor)
{
	char iid[129];
	const char *end = strchr(rest, '/'), *reason, *params[5];
	size_t n = end != NULL ? (size_t)(end - rest) : 0;

	if (end == NULL || strcmp(end, "/deactivate") != 0 || n == 0 ||
	    n >= sizeof(iid) || strspn(rest, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789._:-") != n) {
		http_error(resp, 404, "NOT_FOUND", "no such endpoint");
		return;
	}
	memcpy(iid, rest, n);
	iid[n] = '\0';
	if (reason_field(req, resp, &reason) != 0)
		return;
	params[0] = id;
	params[1] = iid;
	params[2] = reason;
	params[3] = actor;
	params[4] = req->rid;
	json_answer(req, resp, 200, "deactivate", 5, params);
}

/* A write's audit statement (stmt), then the commit of its transaction:
 * 0, or -1 answered (what names the write), the caller rolling back. */
static int audit_commit(struct http_req *req, struct http_resp *resp,
    const char *stmt, int n, const char *const *params, const char *what)
{
	PGresult *res = NULL;
	int st;

	if ((st = db_exec(req->db, stmt, n, params, &res)) != DB_OK)
		http_db_error(req, resp, st, what);
	else if ((st = db_commit(req->db)) != DB_OK)
		http_db_error(req, resp, st, "commit");
	PQclear(res);
	return st == DB_OK ? 0 : -1;
}

/* POST …/{id}/lease {installation_id, days, metadata?, nonce?}: what
 * `licctl lease offline` does: the seat is taken like an online validate
 * and held while the lease runs (a floating license's borrowed for the
 * lease's days, within its max_borrow_days, as licd_seat counts seats);
 * the lease is signed here. */
static void lease(struct http_req *req, struct http_resp *resp,
    const char *id, const char *actor)
{
	const char *iid, *nonce, *meta = NULL, *params[5];
	struct json_object *mo, *o;
	long long days;
	struct js_err e;
	char *signed_lease = NULL, ts[32], exps[24], ndays[24];
	struct lic l;
	int st, have = 0, open = 0, floating;
	PGresult *res = NULL;
	time_t exp, now;
	size_t len;

	if (req->json == NULL) {
		http_error(resp, 400, "MISSING_FIELD",
		    "field 'installation_id' is required");
		return;
	}
	if (js_string(req->json, "installation_id", 1, 1, 128, JS_ID, &iid,
	    &e) || js_int(req->json, "days", 1, 1, 3650, 0, &days, &e) ||
	    js_string(req->json, "nonce", 0, 1, 128, JS_TEXT, &nonce, &e) ||
	    js_object(req->json, "metadata", 2048, &mo, &e)) {
		http_field_error(resp, &e);
		return;
	}
	if (mo != NULL)
		meta = js_dump(mo, &len);
	if ((st = db_begin(req->db)) != DB_OK) {
		http_db_error(req, resp, st, "begin");
		return;
	}
	open = 1;
	params[0] = id;
	if ((st = db_exec(req->db, "lease_model", 1, params, &res)) != DB_OK) {
		sql_error(req, resp, st, res, "activate");
		goto out;
	}
	if (PQntuples(res) != 1) {
		http_error(resp, 404, "NOT_FOUND", "no such license");
		goto out;
	}
	floating = strcmp(PQgetvalue(res, 0, 0), "floating") == 0;
	PQclear(res);
	res = NULL;
	snprintf(ndays, sizeof(ndays), "%lld", days);
	params[1] = iid;
	params[2] = meta;
	params[3] = ndays;
	if ((st = floating ? db_exec(req->db, "lease_borrow", 4, params, &res) :
	    db_exec(req->db, "lease_activate", 3, params, &res)) != DB_OK) {
		sql_error(req, resp, st, res, "activate");
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "INVALID_KEY") == 0) {
		http_error(resp, 404, "NOT_FOUND", "no such license");
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "VALID") != 0) {
		http_error(resp, 409, "CONFLICT", "cannot activate '%s': %s",
		    iid, PQgetvalue(res, 0, 0));
		goto out;
	}
	PQclear(res);
	if ((st = db_exec(req->db, "lease_read", 1, params, &res)) != DB_OK) {
		http_db_error(req, resp, st, "lease");
		goto out;
	}
	if (PQntuples(res) != 1 || lic_from_row(res, 0, 0, &l) != LIC_OK) {
		http_error(resp, 500, "INTERNAL", "cannot read the license");
		goto out;
	}
	have = 1;
	now = (time_t)strtoll(PQgetvalue(res, 0, LIC_NCOLS), NULL, 10);
	{
		const char *eff, *code = lic_state(&l, now, &eff);

		if (strcmp(code, "VALID") != 0) {
			http_error(resp, 409, "CONFLICT", "the license is %s",
			    eff);
			goto out;
		}
	}
	if (lic_lease(&l, iid, nonce, now, (long)days * 86400L,
	    &signed_lease, &exp) != LIC_OK) {
		http_error(resp, 500, "INTERNAL", "cannot sign the lease");
		goto out;
	}
	lic_ts(exp, ts);
	snprintf(exps, sizeof(exps), "%lld", (long long)exp);
	params[2] = exps;
	PQclear(res);
	res = NULL;
	if ((st = db_exec(req->db, "lease_hold", 3, params, &res)) != DB_OK) {
		http_db_error(req, resp, st, "lease");
		goto out;
	}
	PQclear(res);
	res = NULL;
	params[2] = actor;
	params[3] = req->rid;
	params[4] = ts;
	if (audit_commit(req, resp, "lease_audit", 5, params, "lease") != 0)
		goto out;
	open = 0;
	o = json_object_new_object();
	json_object_object_add(o, "license_id", json_object_new_string(id));
	json_object_object_add(o, "installation_id",
	    json_object_new_string(iid));
	json_object_object_add(o, "lease", json_object_new_string(signed_lease));
	json_object_object_add(o, "lease_expires_at", json_object_new_string(ts));
	http_json(resp, 200, o);
out:
	if (open)
		db_rollback(req->db);
	if (have)
		lic_free(&l);
	free(signed_lease);
	PQclear(res);
}

/* A transaction begun for a write that signs a key: 0, or -1 answered
 * (no current signing key: 503). */
static int begin_signed(struct http_req *req, struct http_resp *resp)
{
	int st;

	if (lic_keyring()->signer == NULL) {
		http_error(resp, 503, "SERVICE_UNAVAILABLE",
		    "no current signing key");
		return -1;
	}
	if ((st = db_begin(req->db)) != DB_OK) {
		http_db_error(req, resp, st, "begin");
		return -1;
	}
	return 0;
}

/* In the caller's transaction: license id's key signed with the current
 * key and stored with the kid its header names (kid). 0 with *key (the
 * caller's to free), 1 when there is no such license, else -1 and
 * answered. */
static int sign_store(struct http_req *req, struct http_resp *resp,
    const char *id, char **key, char kid[JWS_KID_MAX])
{
	const char *params[3] = { id, NULL, NULL };
	PGresult *res = NULL;
	int st, rc = -1;

	*key = NULL;
	if ((st = db_exec(req->db, "issued", 1, params, &res)) != DB_OK) {
		http_db_error(req, resp, st, "sign");
		goto out;
	}
	if (PQntuples(res) != 1) {
		rc = 1;
		goto out;
	}
	if (lic_sign_row(res, 0, key) != LIC_OK) {
		http_error(resp, 500, "INTERNAL", "cannot sign the key");
		goto out;
	}
	PQclear(res);
	res = NULL;
	if (jws_token_key(lic_keyring(), *key, strlen(*key), "JWT", kid) ==
	    NULL || kid[0] == '\0') {
		http_error(resp, 500, "INTERNAL", "cannot sign the key");
		goto out;
	}
	params[1] = *key;
	params[2] = kid;
	if ((st = db_exec(req->db, "keyed", 3, params, &res)) != DB_OK) {
		http_db_error(req, resp, st, "sign");
		goto out;
	}
	rc = 0;
out:
	if (rc != 0) {
		free(*key);
		*key = NULL;
	}
	PQclear(res);
	return rc;
}

/* POST /api/admin/licenses/{id}/reissue: the key signed again with the
 * current key, stored and audited in one transaction (licctl license
 * reissue); the key is in this answer only. The key the customer holds
 * keeps verifying until its kid is retired. */
static void reissue(struct http_req *req, struct http_resp *resp,
    const char *id, const char *actor)
{
	const char *params[5], *reason;
	char *key = NULL, kid[JWS_KID_MAX];
	struct json_object *o;
	int open = 0, rc;

	if (reason_field(req, resp, &reason) != 0)
		return;
	if (begin_signed(req, resp) != 0)
		return;
	open = 1;
	if ((rc = sign_store(req, resp, id, &key, kid)) != 0) {
		if (rc == 1)
			http_error(resp, 404, "NOT_FOUND", "no such license");
		goto out;
	}
	params[0] = actor;
	params[1] = id;
	params[2] = reason;
	params[3] = req->rid;
	params[4] = kid;
	if (audit_commit(req, resp, "reissued", 5, params, "reissue") != 0)
		goto out;
	open = 0;
	o = json_object_new_object();
	json_object_object_add(o, "license_id", json_object_new_string(id));
	json_object_object_add(o, "license_key", json_object_new_string(key));
	json_object_object_add(o, "kid", json_object_new_string(kid));
	http_json(resp, 200, o);
out:
	if (open)
		db_rollback(req->db);
	free(key);
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
	if (strcmp(req->param, "search") == 0) {
		if (is_get) {
			resp->allow = "POST";
			http_error(resp, 405, "METHOD_NOT_ALLOWED", "use POST");
			return;
		}
		o = req->json != NULL ? json_object_get(req->json) :
		    json_object_new_object();
		list(req, resp, actor, &lists[0], o);
		json_object_put(o);
		return;
	}
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
	    strcmp(action, "reset-activations") != 0 &&
	    strcmp(action, "revoke") != 0 && strcmp(action, "edit") != 0 &&
	    strcmp(action, "lease") != 0 && strcmp(action, "reissue") != 0 &&
	    strncmp(action, "installations/", 14) != 0) {
		http_error(resp, 404, "NOT_FOUND", "no such endpoint");
		return;
	}
	if (is_get) {
		resp->allow = "POST";
		http_error(resp, 405, "METHOD_NOT_ALLOWED", "use POST");
		return;
	}
	if (strcmp(action, "edit") == 0) {
		edit(req, resp, id, actor);
		return;
	}
	if (strcmp(action, "lease") == 0) {
		lease(req, resp, id, actor);
		return;
	}
	if (strcmp(action, "reissue") == 0) {
		reissue(req, resp, id, actor);
		return;
	}
	if (strncmp(action, "installations/", 14) == 0) {
		deactivate(req, resp, id, action + 14, actor);
		return;
	}
	if (reason_field(req, resp, &reason) != 0)
		return;
	params[0] = id;
	if (strcmp(action, "revoke") == 0) {
		params[1] = reason;
		params[2] = actor;
		params[3] = req->rid;
		if ((st = db_exec(req->db, "revoke", 4, params, &res)) !=
		    DB_OK) {
			http_db_error(req, resp, st, action);
			goto out;
		}
		if (strcmp(PQgetvalue(res, 0, 0), "ok") != 0) {
			http_error(resp, 404, "NOT_FOUND", "no such license");
			goto out;
		}
		o = json_object_new_object();
		json_object_object_add(o, "license_id",
		    json_object_new_string(id));
		json_object_object_add(o, "status",
		    json_object_new_string("revoked"));
		json_object_object_add(o, "revoked_at",
		    lic_ts_json(strtoll(PQgetvalue(res, 0, 1), NULL, 10)));
		json_object_object_add(o, "changed", json_object_new_boolean(
		    strcmp(PQgetvalue(res, 0, 2), "t") == 0));
		http_json(resp, 200, o);
		goto out;
	}
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

/* POST /api/admin/licenses: the row and audit in SQL, the key signed
 * here with the current key, all one transaction. The key is in this
 * answer only; GET never shows it. */
static void issue(struct http_req *req, struct http_resp *resp,
    const char *actor)
{
	const char *params[3] = { body_text(req), actor, req->rid };
	char id[LIC_UUID_LEN + 1], kid[JWS_KID_MAX], *key = NULL;
	struct json_object *o, *doc;
	PGresult *res = NULL;
	int st, open = 0;

	if (begin_signed(req, resp) != 0)
		return;
	open = 1;
	if ((st = db_exec(req->db, "issue", 3, params, &res)) != DB_OK) {
		sql_error(req, resp, st, res, "issue");
		goto out;
	}
	snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	res = NULL;
	params[0] = id;
	if ((st = sign_store(req, resp, id, &key, kid)) != 0) {
		if (st == 1)
			http_error(resp, 500, "INTERNAL",
			    "cannot read the new license");
		goto out;
	}
	if ((st = db_exec(req->db, "show", 1, params, &res)) != DB_OK) {
		http_db_error(req, resp, st, "issue");
		goto out;
	}
	if ((st = db_commit(req->db)) != DB_OK) {
		http_db_error(req, resp, st, "commit");
		goto out;
	}
	open = 0;
	if ((doc = js_from_text(PQgetvalue(res, 0, 0))) == NULL) {
		http_error(resp, 500, "INTERNAL", "bad license document");
		goto out;
	}
	o = json_object_get(json_object_object_get(doc, "license"));
	json_object_put(doc);
	json_object_object_del(o, "key");
	doc = json_object_new_object();
	json_object_object_add(doc, "license", o);
	json_object_object_add(doc, "license_key", json_object_new_string(key));
	snprintf(req->log_subject, sizeof(req->log_subject),
	    "license=%s actor=%s", id, actor);
	http_json(resp, 201, doc);
out:
	if (open)
		db_rollback(req->db);
	free(key);
	PQclear(res);
}

/* Writes whose whole work is one SQL function of the body. */
static void write_call(struct http_req *req, struct http_resp *resp,
    const char *stmt, const char *actor, int status)
{
	const char *params[3] = { body_text(req), actor, req->rid };

	snprintf(req->log_subject, sizeof(req->log_subject), "actor=%s",
	    actor);
	json_answer(req, resp, status, stmt, 3, params);
}

/* /api/admin/licenses, /customers, /plans and the other lists. */
static void collection(struct http_req *req, struct http_resp *resp)
{
	const char *actor;
	int post = strcmp(req->method, "POST") == 0;

	if (auth_admin(req, resp, &actor) != 0)
		return;
	if (!post) {
		list(req, resp, actor, NULL, NULL);
	} else if (strcmp(req->path, "/api/admin/licenses") == 0) {
		issue(req, resp, actor);
	} else if (strcmp(req->path, "/api/admin/customers") == 0) {
		write_call(req, resp, "customer_create", actor, 200);
	} else if (strcmp(req->path, "/api/admin/plans") == 0) {
		write_call(req, resp, "plan_set", actor, 200);
	} else {
		resp->allow = "GET";
		http_error(resp, 405, "METHOD_NOT_ALLOWED", "use GET");
	}
}

/* POST /api/admin/notifications/{id}/retry */
static void notification(struct http_req *req, struct http_resp *resp)
{
	const char *actor, *params[3];
	char id[24];
	size_t n = strspn(req->param, "0123456789");

	if (auth_admin(req, resp, &actor) != 0)
		return;
	if (n == 0 || n > 18 || strcmp(req->param + n, "/retry") != 0) {
		http_error(resp, 404, "NOT_FOUND", "no such endpoint");
		return;
	}
	if (strcmp(req->method, "POST") != 0) {
		resp->allow = "POST";
		http_error(resp, 405, "METHOD_NOT_ALLOWED", "use POST");
		return;
	}
	memcpy(id, req->param, n);
	id[n] = '\0';
	params[0] = id;
	params[1] = actor;
	params[2] = req->rid;
	json_answer(req, resp, 200, "retry", 3, params);
}

/* GET /api/admin/keys: the published JWKS and which key signs now. */
static void keys(struct http_req *req, struct http_resp *resp)
{
	const char *actor, *path = cfg_str("jwks_file");
	const struct jws_key *signer = lic_keyring()->signer;
	struct json_object *o = NULL, *jwks = NULL;
	char buf[65536];
	size_t n = 0;
	FILE *f;

	if (auth_admin(req, resp, &actor) != 0)
		return;
	if ((f = fopen(path, "r")) != NULL) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	if (n == 0 || (jwks = js_from_text(buf)) == NULL) {
		http_error(resp, 500, "INTERNAL", "cannot read the JWKS file");
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "current_kid", signer != NULL ?
	    json_object_new_string(signer->kid) : NULL);
	json_object_object_add(o, "keys",
	    json_object_get(json_object_object_get(jwks, "keys")));
	json_object_put(jwks);
	http_json(resp, 200, o);
}

/* Console sessions (auth.h). The cookie value and CSRF token are random;
 * only the cookie's hash is stored. */
static _Thread_local char cookie_header[256];

static void set_cookie(struct http_req *req, struct http_resp *resp,
    const char *value, long max_age)
{
	const char *https = http_param(req, "HTTPS");

	snprintf(cookie_header, sizeof(cookie_header),
	    "%s=%s; Path=/api/admin/; Max-Age=%ld; HttpOnly; "
	    "SameSite=Strict%s", AUTH_COOKIE, value, max_age,
	    https != NULL && strcasecmp(https, "on") == 0 ? "; Secure" : "");
	resp->set_cookie = cookie_header;
}

static void session_open(struct http_req *req, struct http_resp *resp)
{
	unsigned char rnd[32];
	char cookie[48], csrf[48], hash[67], ttl[16], token_hash[65];
	const char *token, *name, *params[6];
	long secs = cfg_int("admin_session_ttl");
	struct json_object *o;
	struct js_err e;
	PGresult *res = NULL;
	int st;

	if (req->json == NULL) {
		http_error(resp, 400, "MISSING_FIELD", "field 'token' is required");
		return;
	}
	if (js_string(req->json, "token", 1, 1, 256, JS_TOKEN, &token, &e)) {
		http_field_error(resp, &e);
		return;
	}
	if ((name = auth_token_name(token)) == NULL) {
		http_error(resp, 401, "UNAUTHORIZED", "that is not an admin token");
		return;
	}
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		http_error(resp, 500, "INTERNAL", "no randomness");
		return;
	}
	jws_b64url_encode(rnd, sizeof(rnd), cookie);
	if (RAND_bytes(rnd, 24) != 1) {
		http_error(resp, 500, "INTERNAL", "no randomness");
		return;
	}
	jws_b64url_encode(rnd, 24, csrf);
	auth_hash_bytea(cookie, hash);
	snprintf(ttl, sizeof(ttl), "%ld", secs);
	params[0] = hash;
	params[1] = csrf;
	auth_hash_hex(token, token_hash);
	params[2] = name;
	params[3] = token_hash;
	params[4] = ttl;
	params[5] = req->rid;
	if ((st = db_exec(req->db, "session_open", 6, params, &res)) != DB_OK) {
		http_db_error(req, resp, st, "session");
		goto out;
	}
	snprintf(req->log_subject, sizeof(req->log_subject), "actor=%s", name);
	set_cookie(req, resp, cookie, secs);
	o = json_object_new_object();
	json_object_object_add(o, "actor", json_object_new_string(name));
	json_object_object_add(o, "csrf", json_object_new_string(csrf));
	json_object_object_add(o, "expires_at",
	    json_object_new_string(PQgetvalue(res, 0, 0)));
	http_json(resp, 201, o);
out:
	PQclear(res);
}

/* GET: the signed-in console's session, with its CSRF token (a page
 * reload keeps no secret in the browser but the HttpOnly cookie; only
 * same-origin script can read this answer). Not signed in is an answer
 * too (signed_in false), not an error: the console asks on every load. */
static void session_get(struct http_req *req, struct http_resp *resp)
{
	char cookie[128], hash[67];
	const char *params[1] = { hash };
	struct json_object *o;
	PGresult *res = NULL;
	int st, live;

	o = json_object_new_object();
	if (auth_cookie(req, cookie, sizeof(cookie)) != 0) {
		json_object_object_add(o, "signed_in",
		    json_object_new_boolean(0));
		http_json(resp, 200, o);
		return;
	}
	auth_hash_bytea(cookie, hash);
	if ((st = db_exec(req->db, "auth_session", 1, params, &res)) != DB_OK) {
		json_object_put(o);
		http_db_error(req, resp, st, "session");
		goto out;
	}
	live = PQntuples(res) == 1 && auth_session_token_ok(PQgetvalue(res,
	    0, 0), PQgetvalue(res, 0, 3));
	json_object_object_add(o, "signed_in", json_object_new_boolean(live));
	if (!live) {
		http_json(resp, 200, o);
		goto out;
	}
	json_object_object_add(o, "actor",
	    json_object_new_string(PQgetvalue(res, 0, 0)));
	json_object_object_add(o, "csrf",
	    json_object_new_string(PQgetvalue(res, 0, 1)));
	json_object_object_add(o, "expires_at",
	    json_object_new_string(PQgetvalue(res, 0, 2)));
	http_json(resp, 200, o);
out:
	PQclear(res);
}

static void session(struct http_req *req, struct http_resp *resp)
{
	if (strcmp(req->method, "POST") == 0)
		session_open(req, resp);
	else
		session_get(req, resp);
}

/* POST /api/admin/session/end: signs the console out (needs the CSRF
 * header like every other session request). */
static void session_end(struct http_req *req, struct http_resp *resp)
{
	char cookie[128], hash[67];
	const char *actor, *params[2] = { hash, req->rid };
	struct json_object *o;
	PGresult *res = NULL;
	int st;

	if (auth_cookie(req, cookie, sizeof(cookie)) != 0) {
		http_error(resp, 401, "UNAUTHORIZED", "not signed in");
		return;
	}
	if (auth_admin(req, resp, &actor) != 0)
		return;
	auth_hash_bytea(cookie, hash);
	if ((st = db_exec(req->db, "session_end", 2, params, &res)) != DB_OK) {
		http_db_error(req, resp, st, "session");
		goto out;
	}
	set_cookie(req, resp, "", 0);
	o = json_object_new_object();
	json_object_object_add(o, "signed_out", json_object_new_boolean(1));
	http_json(resp, 200, o);
out:
	PQclear(res);
}

static int init(void)
{
	return lic_init_deferred() == 0 && auth_init() == 0 ? 0 : -1;
}

static const struct http_route routes[] = {
	{ "/api/revoke", 0, "POST", HTTP_BODY_JSON, revoke },
	{ "/api/admin/licenses", 0, "GET,POST", HTTP_BODY_JSON, collection },
	{ "/api/admin/licenses/", 1, "GET,POST", HTTP_BODY_JSON_OPT, admin },
	{ "/api/admin/customers", 0, "GET,POST", HTTP_BODY_JSON, collection },
	{ "/api/admin/plans", 0, "GET,POST", HTTP_BODY_JSON, collection },
	{ "/api/admin/installations", 0, "GET", HTTP_BODY_NONE, collection },
	{ "/api/admin/audit", 0, "GET", HTTP_BODY_NONE, collection },
	{ "/api/admin/notifications", 0, "GET", HTTP_BODY_NONE, collection },
	{ "/api/admin/notifications/", 1, "POST", HTTP_BODY_JSON_OPT,
	    notification },
	{ "/api/admin/webhook-events", 0, "GET", HTTP_BODY_NONE, collection },
	{ "/api/admin/overview", 0, "GET", HTTP_BODY_NONE, collection },
	{ "/api/admin/keys", 0, "GET", HTTP_BODY_NONE, keys },
	{ "/api/admin/session", 0, "GET,POST", HTTP_BODY_JSON_OPT, session },
	{ "/api/admin/session/end", 0, "POST", HTTP_BODY_JSON_OPT, session_end },
	{ "/healthz", 0, "GET", HTTP_BODY_NONE, http_healthz },
};

HTTP_PROGRAM(
	.name = "revoke",
	.init = init,
	.reload = lic_keys_reload,
	.after = http_after_write)
