/*
 * licctl's day-to-day operations: the usage report, the audit log, the
 * notification outbox, provider events not yet applied, and offline
 * leases for machines that never reach the server.
 */
#include "cli.h"
#include "config.h"
#include "lic.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The rows to show: --limit N (default 50) of 1-100000. */
static int limit_opt(struct cli_err *e, const struct cli_opts *o,
    const char **v)
{
	*v = cli_opt(o, "limit") ? cli_opt(o, "limit") : "50";
	return cli_int(e, "--limit", *v, 1, 100000,
	    "a number of rows, 1-100000", NULL);
}

int ops_usage(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	int i, as_json = cli_opt(o, "json") != NULL, rc = -1;
	const char *p[2];
	PGresult *r, *k = NULL;

	if (o->npos != 1 || !lic_uuid_valid(o->pos[0]))
		return cli_usage(e, c);
	p[0] = o->pos[0];
	p[1] = cli_opt(o, "period");
	if (cli_period(e, p[1]) != 0 ||
	    (r = cli_q(e, "SELECT g.feature, g.used, (l.limits ->> (g.feature "
	    "|| '_per_month')), (SELECT coalesce(sum(quantity), 0) FROM "
	    "usage_log u WHERE u.license_id = l.id AND u.feature = "
	    "g.feature AND to_char(u.period, 'YYYY-MM') = g.period), "
	    "g.period FROM licenses l, licd_usage_get($1, $2) g "
	    "WHERE l.id = $1 ORDER BY 1", 2, p)) == NULL)
		return -1;
	for (i = 0; i < PQntuples(r); i++) {
		if (as_json)
			printf("{\"period\":\"%s\",\"feature\":\"%s\",\"used\":%s,"
			    "\"limit\":%s,\"logged\":%s}\n", PQgetvalue(r, i, 4),
			    PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
			    PQgetisnull(r, i, 2) ? "null" : PQgetvalue(r, i, 2),
			    PQgetvalue(r, i, 3));
		else
			printf("%s  %-24s used %-12s limit %-12s logged %s\n",
			    PQgetvalue(r, i, 4), PQgetvalue(r, i, 0),
			    PQgetvalue(r, i, 1), PQgetisnull(r, i, 2) ? "-" :
			    PQgetvalue(r, i, 2), PQgetvalue(r, i, 3));
	}
	/* Peak concurrent floating seats, per UTC day of the month. */
	k = cli_q(e, "SELECT '{\"day\":\"' || to_char(k.day, 'YYYY-MM-DD') || "
	    "'\",\"peak_seats\":' || k.peak || '}', to_char(k.day, "
	    "'YYYY-MM-DD'), k.peak FROM (SELECT coalesce(to_date($2, "
	    "'YYYY-MM'), licd_period(licd_now())) AS m) m, licd_seat_peaks($1, "
	    "m.m, (m.m + interval '1 month' - interval '1 day')::date) k "
	    "ORDER BY 2", 2, p);
	if (k == NULL)
		goto out;
	cli_rows(k, as_json, "%s  peak concurrent seats %s\n");
	if (PQntuples(r) == 0 && PQntuples(k) == 0 && !as_json)
		printf("no usage recorded\n");
	rc = 0;
out:
	PQclear(k);
	PQclear(r);
	return rc;
}

int ops_audit(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	const char *p[2] = { cli_opt(o, "license"), NULL };

	(void)c;
	if (limit_opt(e, o, &p[1]) != 0)
		return -1;
	return cli_list(e, o, "SELECT json_build_object('at', to_char(at AT TIME "
	    "ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), 'actor', actor, "
	    "'action', action, 'target_type', target_type, 'target_id', "
	    "target_id, 'reason', reason, 'request_id', request_id, "
	    "'details', details)::text, to_char(at AT TIME ZONE 'UTC', "
	    "'YYYY-MM-DD HH24:MI:SS'), actor, action, target_id, "
	    "coalesce(reason, ''), CASE WHEN coalesce(request_id, '') <> '' "
	    "THEN '  rid=' || request_id ELSE '' END "
	    "FROM audit_log WHERE $1::text IS NULL OR target_id = $1 "
	    "ORDER BY id DESC LIMIT $2::int", 2, p,
	    "%s  %-12s %-26s %s %s%s\n");
}

/* The outbox, newest first, with attempts and the last error. */
int ops_notifications_list(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	static const char *const st[] = { "pending", "delivered", NULL };
	const char *p[3] = { cli_opt(o, "status"), cli_opt(o, "license"),
	    NULL };

	if (o->npos != 0)
		return cli_usage(e, c);
	if (cli_one_of(e, "--status", p[0], st, "pending or delivered") != 0 ||
	    limit_opt(e, o, &p[2]) != 0)
		return -1;
	if (p[1] != NULL && !lic_uuid_valid(p[1]))
		return cli_bad(e, "--license", p[1], "a license id (UUID)");
	return cli_list(e, o, "SELECT json_build_object('id', id, 'kind', kind, "
	    "'license_id', license_id, 'recipient', recipient, 'status', "
	    "status, 'attempts', attempts, 'next_attempt_at', "
	    "next_attempt_at, 'last_error', last_error, 'created_at', "
	    "created_at, 'delivered_at', delivered_at, 'payload', "
	    "payload - 'license_key')::text, id, kind, status, attempts, "
	    "coalesce(recipient, '-'), coalesce(last_error, '') "
	    "FROM notifications WHERE ($1::text IS NULL OR status = $1) "
	    "AND ($2::text IS NULL OR license_id::text = $2) "
	    "ORDER BY id DESC LIMIT $3::int", 3, p,
	    "%-8s %-18s %-10s attempts=%-3s %s %s\n");
}

/* Pending notifications due now: the next licd-lifecycle run sends them. */
int ops_notifications_retry(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	const char *p[1] = { o->npos > 0 ? o->pos[0] : NULL };
	PGresult *r = NULL;
	int rc = -1;

	if (o->npos > 1)
		return cli_usage(e, c);
	if (p[0] == NULL && !cli_opt(o, "all"))
		return cli_fail(e, 2, "give a notification id or --all");
	if (p[0] != NULL && cli_int(e, "ID", p[0], 1, 9223372036854775807LL,
	    "a notification id (a positive integer)", NULL) != 0)
		return -1;
	if (cli_exec(e, "BEGIN") != 0 ||
	    (r = cli_q(e, "UPDATE notifications SET next_attempt_at = "
	    "licd_now(), locked_until = NULL WHERE status = 'pending' AND "
	    "($1::bigint IS NULL OR id = $1::bigint) RETURNING id", 1,
	    p)) == NULL ||
	    cli_audit(e, "notifications.retry", "notification",
	    p[0] ? p[0] : "all", NULL, NULL) != 0 ||
	    cli_exec(e, "COMMIT") != 0)
		goto out;
	printf("%d notification(s) due now\n", PQntuples(r));
	rc = 0;
out:
	PQclear(r);
	return rc;
}

/* Webhook events still waiting (status pending): what for, since when. */
int ops_webhook_pending(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	if (o->npos != 0)
		return cli_usage(e, c);
	return cli_list(e, o, "SELECT json_build_object('provider', provider, "
	    "'event_id', event_id, 'type', type, 'subject', subject, 'reason', "
	    "reason, 'received_at', to_char(received_at AT TIME ZONE 'UTC', "
	    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), 'age_seconds', "
	    "extract(epoch FROM licd_now() - received_at)::bigint)::text, "
	    "to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), "
	    "provider, event_id, type, coalesce(reason, ''), "
	    "coalesce(subject, '-') FROM webhook_events WHERE "
	    "status = 'pending' ORDER BY received_at", 0, NULL,
	    "%s  %-6s %-32s %-30s %s (%s)\n");
}

/* A license the replayed event issued: its key signed, stored and sent. */
static int replay_issued(struct cli_err *e, const char *id)
{
	const char *p[2] = { id, NULL };
	PGresult *r = NULL;
	char *key = NULL;

	if (licenses_sign(e, id, &key) == 0) {
		p[1] = key;
		r = cli_q(e, "SELECT licd_notify('license_issued', $1::uuid, "
		    "'issued:' || $1::uuid::text, jsonb_build_object("
		    "'license_key', $2::text))", 2, p);
	}
	PQclear(r);
	free(key);
	return r != NULL ? 0 : -1;
}

/* Applies a pending event again (after its plan was created, say) and
 * signs the key of a license it issues, as the webhook program does. */
int ops_webhook_replay(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	const char *p[3] = { NULL, NULL, NULL };
	char grace[16];
	int i, issued = 0, rc = -1;
	PGresult *r;

	if (o->npos != 2)
		return cli_usage(e, c);
	p[0] = o->pos[0];
	p[1] = o->pos[1];
	snprintf(grace, sizeof(grace), "%ld", cfg_int("grace_days"));
	p[2] = grace;
	if (cli_exec(e, "BEGIN") != 0 ||
	    (r = cli_q(e, "SELECT 1 FROM webhook_events WHERE provider = $1 "
	    "AND event_id = $2 AND status = 'pending'", 2, p)) == NULL)
		return -1;
	i = PQntuples(r);
	PQclear(r);
	if (i != 1)
		return cli_fail(e, 1, "no pending %s event %s", p[0], p[1]);
	if ((r = cli_q(e, "SELECT outcome, new_license FROM "
	    "licd_webhook_apply($1, $2, $3::int)", 3, p)) == NULL)
		return -1;
	for (i = 0; i < PQntuples(r); i++) {
		if (PQgetisnull(r, i, 1))
			continue;
		if (replay_issued(e, PQgetvalue(r, i, 1)) != 0)
			goto out;
		issued++;
	}
	if (cli_audit(e, "webhook.replay", "webhook_event", p[1], NULL,
	    NULL) != 0 || cli_exec(e, "COMMIT") != 0)
		goto out;
	printf("%s %s: %s%s\n", p[0], p[1], PQntuples(r) > 0 ?
	    PQgetvalue(r, 0, 0) : "ignored", issued ? ", license issued" : "");
	rc = 0;
out:
	PQclear(r);
	return rc;
}

/* ---- lease offline ---------------------------------------------------- */

/* What the air-gapped machine printed: its installation, metadata, nonce
 * and (liblicd-client's request) license; members not there stay as
 * they are, and a --license given wins over the request's. */
struct lease_req {
	const char *lid, *iid, *meta, *nonce;
};

static int read_request(struct cli_err *e, const char *path,
    struct lease_req *q, struct json_object **req)
{
	static const struct {
		const char *key;
		json_type type;
		size_t at;
	} fields[] = {
		{ "installation_id", json_type_string,
		    offsetof(struct lease_req, iid) },
		{ "nonce", json_type_string, offsetof(struct lease_req, nonce) },
		{ "metadata", json_type_object, offsetof(struct lease_req, meta) },
		{ "license_id", json_type_string, offsetof(struct lease_req, lid) },
	};
	struct json_object *v;
	char *txt;
	size_t i;

	if (cli_slurp(e, path, &txt) != 0)
		return -1;
	*req = json_tokener_parse(txt);
	free(txt);
	if (*req == NULL || !json_object_is_type(*req, json_type_object))
		return cli_fail(e, 1, "%s: not a JSON object", path);
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const char **dst = (const char **)((char *)q + fields[i].at);

		if (!json_object_object_get_ex(*req, fields[i].key, &v) ||
		    !json_object_is_type(v, fields[i].type) ||
		    (fields[i].at == offsetof(struct lease_req, lid) &&
		    *dst != NULL))
			continue;
		*dst = fields[i].type == json_type_string ?
		    json_object_get_string(v) : json_object_to_json_string_ext(v,
		    JSON_C_TO_STRING_PLAIN);
	}
	return 0;
}

/* The seat: a floating license's borrowed for the lease's days (within its
 * max_borrow_days), a node-locked one's installation activated; audited.
 * Within the caller's transaction. */
static int take_seat(struct cli_err *e, const struct lease_req *q,
    const char *days)
{
	const char *p[4] = { q->lid, q->iid, q->meta, days };
	PGresult *r;
	int floating, rc = -1;

	if ((r = cli_q(e, "SELECT seat_model FROM licenses WHERE id = $1", 1,
	    p)) == NULL)
		return -1;
	floating = PQntuples(r) == 1 &&
	    strcmp(PQgetvalue(r, 0, 0), "floating") == 0;
	PQclear(r);
	r = floating ? cli_q(e, "SELECT s.code FROM licd_seat($1, $2, "
	    "'offline', $4::int, NULL, $3::jsonb, NULL) s", 4, p) :
	    cli_q(e, "SELECT a.code FROM licd_activate($1, $2, NULL, "
	    "$3::jsonb, NULL) a", 3, p);
	if (r == NULL)
		return -1;
	if (strcmp(PQgetvalue(r, 0, 0), "VALID") != 0) {
		cli_fail(e, 1, "cannot activate %s: %s", q->iid,
		    PQgetvalue(r, 0, 0));
		goto out;
	}
	PQclear(r);
	r = cli_q(e, "SELECT licd_audit('licctl', 'lease.offline', 'license', "
	    "$1, NULL, NULL, jsonb_build_object('installation_id', $2::text))",
	    2, p);
	rc = r != NULL ? 0 : -1;
out:
	PQclear(r);
	return rc;
}

/* The license as validate sees it now, signed into a lease for iid that
 * runs days (capped at the license's end); the seat kept while it runs. */
static int sign_lease(struct cli_err *e, const struct lease_req *q,
    long days, struct lic *l, char **lease, time_t *exp)
{
	const char *p[3] = { q->lid, q->iid, NULL }, *eff;
	char e24[24];
	PGresult *r;
	time_t now;
	int rc;

	if ((r = cli_q(e, "SELECT v.*, extract(epoch FROM licd_now())::bigint "
	    "FROM license_view v WHERE v.id = $1", 1, p)) == NULL)
		return -1;
	rc = lic_from_row(r, 0, 0, l);
	now = rc == LIC_OK ? (time_t)strtoll(PQgetvalue(r, 0, LIC_NCOLS),
	    NULL, 10) : 0;
	PQclear(r);
	if (rc != LIC_OK)
		return cli_fail(e, 1, "cannot read license");
	if (strcmp(lic_state(l, now, &eff), "VALID") != 0)
		return cli_fail(e, 1, "license is %s", eff);
	if (lic_lease(l, q->iid, q->nonce, now, days * 86400L, lease, exp) !=
	    LIC_OK)
		return cli_fail(e, 1, "signing failed");
	/* The seat stays taken while the offline lease runs: the lifecycle
	 * job does not free it as stale. */
	snprintf(e24, sizeof(e24), "%lld", (long long)*exp);
	p[0] = l->id;
	p[2] = e24;
	r = cli_q(e, "UPDATE installations SET offline_until = greatest("
	    "offline_until, to_timestamp($3::bigint)) WHERE license_id = $1 "
	    "AND installation_id = $2", 3, p);
	PQclear(r);
	return r != NULL ? 0 : -1;
}

/* Offline activation for a machine that never reaches the server: seat
 * counted like an online validate, lease signed with the same keys. */
int ops_lease_offline(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	struct lease_req q = { cli_opt(o, "license"),
	    cli_opt(o, "installation"), NULL, NULL };
	struct json_object *req = NULL;
	char err[512], *lease = NULL, ts[32];
	struct lic l;
	time_t exp;
	long days;
	int rc = -1;

	memset(&l, 0, sizeof(l));
	if (o->npos != 0)
		return cli_usage(e, c);
	if (cli_opt(o, "request") &&
	    read_request(e, cli_opt(o, "request"), &q, &req) != 0)
		goto out;
	if (q.lid == NULL || !lic_uuid_valid(q.lid) || !cli_opt(o, "days")) {
		cli_fail(e, 2, "lease offline needs --license UUID (or a "
		    "--request with license_id) and --days N");
		goto out;
	}
	days = strtol(cli_opt(o, "days"), NULL, 10);
	if (days < 1 || days > 3650) {
		cli_fail(e, 2, "--days must be 1..3650");
		goto out;
	}
	if (q.iid == NULL) {
		cli_fail(e, 2, "give --installation or a --request with "
		    "installation_id");
		goto out;
	}
	if (lic_init_keys(err, sizeof(err)) != 0) {
		cli_fail(e, 1, "%s", err);
		goto out;
	}
	if (cli_exec(e, "BEGIN") != 0 ||
	    take_seat(e, &q, cli_opt(o, "days")) != 0)
		goto out;
	if (sign_lease(e, &q, days, &l, &lease, &exp) != 0 ||
	    cli_exec(e, "COMMIT") != 0)
		goto out;
	lic_ts(exp, ts);
	if (cli_opt(o, "json"))
		printf("{\"license_id\":\"%s\",\"installation_id\":\"%s\","
		    "\"lease\":\"%s\",\"lease_expires_at\":\"%s\"}\n", l.id,
		    q.iid, lease, ts);
	else
		printf("lease for %s on license %s, valid until %s:\n%s\n",
		    q.iid, l.id, ts, lease);
	rc = 0;
out:
	free(lease);
	lic_free(&l);
	json_object_put(req);
	return rc;
}
