/*
 * licctl license: issue (one, or --count N in chunks), update the seat
 * model, show, list, and the actions the admin API has too (revoke,
 * suspend, reinstate, reset-activations), through the same SQL functions.
 * Keys are signed with the current key; the key is stored with its kid.
 */
#include "cli.h"
#include "lic.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LICENSE_ROW "SELECT v.*, extract(epoch FROM l.issued_at)::bigint " \
	"FROM license_view v JOIN licenses l ON l.id = v.id WHERE "

/* The keys loaded once; a current signing key there. */
static void need_signer(void)
{
	static int loaded;
	char err[512];

	if (!loaded && lic_init_keys(err, sizeof(err)) != 0)
		cli_die("%s", err);
	loaded = 1;
	if (lic_keyring()->signer == NULL)
		cli_die("no current signing key (licctl keys generate)");
}

/* Row i of a LICENSE_ROW result signed: the key into *key. */
static void sign_row(PGresult *v, int i, char **key)
{
	struct lic l;
	int rc;

	if (lic_from_row(v, i, 0, &l) != LIC_OK)
		cli_die("cannot sign the key of license %s", PQgetvalue(v, i, 0));
	rc = lic_sign_key(&l, strtoll(PQgetvalue(v, i, LIC_NCOLS), NULL, 10),
	    key);
	lic_free(&l);
	if (rc != LIC_OK)
		cli_die("cannot sign the key of license %s", PQgetvalue(v, i, 0));
}

void licenses_sign(const char *id, char **key)
{
	const char *p[3] = { id, NULL, NULL };
	PGresult *v;

	need_signer();
	v = cli_q(LICENSE_ROW "v.id = $1", 1, p);
	if (PQntuples(v) != 1)
		cli_die("no license %s", id);
	sign_row(v, 0, key);
	PQclear(v);
	p[1] = *key;
	p[2] = lic_keyring()->signer->kid;
	PQclear(cli_q("UPDATE licenses SET license_key = $2, key_kid = $3 "
	    "WHERE id = $1", 3, p));
}

/* ---- show and list ---------------------------------------------------- */

/* A floating license's seats, one line each (licd_admin_license). */
static void print_seats(const char *id)
{
	const char *p[1] = { id };
	PGresult *r = cli_q("SELECT s.seats, i.id, i.seat ->> 'state', "
	    "i.seat ->> 'expires_at', i.seat ->> 'borrowed_until', "
	    "i.seat ->> 'overdraft' FROM (SELECT licd_admin_license($1)::jsonb "
	    "AS d) a, LATERAL (SELECT a.d -> 'seats' AS seats) s LEFT JOIN "
	    "LATERAL jsonb_to_recordset(a.d -> 'installations') AS i(id text, "
	    "seat jsonb) ON i.seat IS NOT NULL WHERE a.d -> 'seats' ->> "
	    "'model' = 'floating'", 1, p);
	struct json_object *s;
	int i;

	if (PQntuples(r) == 0)
		goto out;
	s = json_tokener_parse(PQgetvalue(r, 0, 0));
	printf("\nseats: %s live (%s borrowed), %s lapsed; limit %s + "
	    "overdraft %s; ttl %ss, borrow up to %s days\n",
	    cli_jstr(s, "live"), cli_jstr(s, "borrowed"), cli_jstr(s, "lapsed"),
	    cli_jstr(s, "limit") ? cli_jstr(s, "limit") : "none",
	    cli_jstr(s, "overdraft"), cli_jstr(s, "ttl"),
	    cli_jstr(s, "max_borrow_days"));
	json_object_put(s);
	for (i = 0; i < PQntuples(r); i++) {
		if (PQgetisnull(r, i, 1))
			continue;
		printf("  %-32s %-9s", PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
		if (!PQgetisnull(r, i, 3))
			printf(" %s %s", strcmp(PQgetvalue(r, i, 2), "lapsed") == 0 ?
			    "lapsed at" : "until", PQgetvalue(r, i, 3));
		if (!PQgetisnull(r, i, 4))
			printf(" borrowed until %s", PQgetvalue(r, i, 4));
		if (strcmp(PQgetvalue(r, i, 5), "true") == 0)
			printf(" overdraft");
		printf("\n");
	}
out:
	PQclear(r);
}

/* A license document: as it is with as_json, else one "name value" line
 * per member but the key. */
static void print_license(struct json_object *d, int as_json)
{
	if (as_json) {
		printf("%s\n", json_object_to_json_string_ext(d,
		    JSON_C_TO_STRING_PLAIN));
		return;
	}
	json_object_object_foreach(d, k, v) {
		if (strcmp(k, "key") == 0)
			continue;
		printf("%-21s %s\n", k, v == NULL ? "-" :
		    json_object_is_type(v, json_type_string) ?
		    json_object_get_string(v) :
		    json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
	}
}

/* license_admin_view's document of license id; put by the caller. */
static struct json_object *admin_doc(const char *id)
{
	const char *p[1] = { id };
	PGresult *r = cli_q("SELECT doc FROM license_admin_view WHERE id = $1",
	    1, p);
	struct json_object *d = PQntuples(r) == 1 ?
	    json_tokener_parse(PQgetvalue(r, 0, 0)) : NULL;

	PQclear(r);
	if (d == NULL)
		cli_die("cannot read a license document");
	return d;
}

/*
 * Licenses as operators see them (license_admin_view) with the status
 * validate would answer now (licd_now, the programs' clock): an active
 * license past its end of validity is "expired" before the lifecycle
 * job has written it, and one past its expiry but inside its payment
 * grace is "active" and in grace. Columns: doc (with "effective_status"
 * and "in_grace" added), effective status, in grace ('t'/'f'). NULL
 * parameters match everything.
 */
static PGresult *licenses_q(const char *id, const char *customer,
    const char *status)
{
	const char *p[3] = { id, customer, status };

	return cli_q("SELECT v.doc, e.eff, e.grace FROM license_admin_view v "
	    "JOIN licenses l ON l.id = v.id, LATERAL (SELECT CASE WHEN "
	    "l.status <> 'active' OR l.expires_at IS NULL OR "
	    "greatest(l.expires_at, l.grace_until) > licd_now() THEN l.status "
	    "ELSE 'expired' END AS eff, (l.status = 'active' AND "
	    "l.expires_at <= licd_now() AND l.grace_until > licd_now()) AS "
	    "grace) e WHERE ($1::uuid IS NULL OR v.id = $1::uuid) AND "
	    "($2::text IS NULL OR v.customer_id::text = $2 OR v.email = "
	    "lower($2)) AND ($3::text IS NULL OR e.eff = $3) "
	    "ORDER BY v.created_at", 3, p);
}

/* Row i's doc with its effective status; put by the caller. */
static struct json_object *license_doc(const PGresult *r, int i)
{
	struct json_object *d = json_tokener_parse(PQgetvalue(r, i, 0));

	if (d == NULL)
		cli_die("cannot read a license document");
	json_object_object_add(d, "effective_status",
	    json_object_new_string(PQgetvalue(r, i, 1)));
	json_object_object_add(d, "in_grace", json_object_new_boolean(
	    strcmp(PQgetvalue(r, i, 2), "t") == 0));
	return d;
}

int licenses_show(const struct cli_cmd *c, const struct cli_opts *o)
{
	int as_json = cli_opt(o, "json") != NULL;
	struct json_object *d, *a = NULL, *key;
	const char *id;
	PGresult *r;

	(void)c;
	if (o->npos != 1)
		cli_die("usage: licctl license show LICENSE_ID");
	id = cli_license_id(o->pos[0]);
	r = licenses_q(id, NULL, NULL);
	if (PQntuples(r) != 1)
		cli_die("no license %s", id);
	d = license_doc(r, 0);
	PQclear(r);
	if (!as_json) {
		print_license(d, 0);
		print_seats(id);
		if ((key = json_object_object_get(d, "key")) != NULL)
			printf("\nlicense key:\n%s\n",
			    json_object_get_string(key));
		goto out;
	}
	/* A floating license's seats beside the license. */
	if (cli_jstr(d, "seat_model") != NULL &&
	    strcmp(cli_jstr(d, "seat_model"), "floating") == 0) {
		const char *p[1] = { id };

		r = cli_q("SELECT licd_admin_license($1)", 1, p);
		a = json_tokener_parse(PQgetvalue(r, 0, 0));
		PQclear(r);
		json_object_object_add(d, "seats", json_object_get(
		    json_object_object_get(a, "seats")));
	}
	print_license(d, 1);
out:
	json_object_put(a);
	json_object_put(d);
	return 0;
}

int licenses_list(const struct cli_cmd *c, const struct cli_opts *o)
{
	static const char *const st[] = { "active", "expired", "suspended",
	    "revoked", NULL };
	int i, as_json = cli_opt(o, "json") != NULL;
	PGresult *r;

	(void)c;
	cli_one_of("--status", cli_opt(o, "status"), st,
	    "active, expired, suspended or revoked");
	r = licenses_q(NULL, cli_opt(o, "customer"), cli_opt(o, "status"));
	for (i = 0; i < PQntuples(r); i++) {
		struct json_object *j = license_doc(r, i);
		char stb[24];

		snprintf(stb, sizeof(stb), "%s%s", PQgetvalue(r, i, 1),
		    strcmp(PQgetvalue(r, i, 2), "t") == 0 ? ",grace" : "");
		if (as_json)
			print_license(j, 1);
		else
			printf("%s  %-10s %-12s %-28s expires %s\n",
			    cli_jstr(j, "id"), stb, cli_jstr(j, "plan"),
			    cli_jstr(j, "email"), cli_jstr(j, "expires_at") ?
			    cli_jstr(j, "expires_at") : "never");
		json_object_put(j);
	}
	PQclear(r);
	return 0;
}

/* ---- issue ------------------------------------------------------------ */

/* After an issue inserted nothing: which of the two does not exist. */
static void unknown_customer_or_plan(const char *customer, const char *plan)
{
	const char *p[1] = { customer };
	PGresult *r = cli_q("SELECT 1 FROM customers WHERE id::text = $1 OR "
	    "lower(email) = lower($1)", 1, p);
	int known = PQntuples(r) > 0;

	PQclear(r);
	if (!known)
		fprintf(stderr, "licctl: --customer: unknown customer '%s' "
		    "(licctl customer list)\n", customer);
	else
		fprintf(stderr, "licctl: --plan: unknown plan '%s' (licctl plan "
		    "list)\n", plan);
	cli_finish();
	exit(2);
}

/* The end of validity the options give, as RFC 3339 into buf, or NULL
 * for --perpetual. */
static const char *expiry(const struct cli_opts *o, char buf[32])
{
	time_t t;
	struct tm tm;

	if (cli_opt(o, "perpetual"))
		return NULL;
	if (cli_opt(o, "days")) {
		t = time(NULL) + (time_t)cli_int("--days", cli_opt(o, "days"),
		    1, 36500, "a number of days, 1-36500") * 86400;
		gmtime_r(&t, &tm);
		strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
		return buf;
	}
	if (cli_opt(o, "expires")) {
		cli_expires(cli_opt(o, "expires"), buf);
		return buf;
	}
	cli_die("give --expires DATE, --days N or --perpetual");
}

/* A growing "{a,b,...}" PostgreSQL array literal. */
struct arr {
	char *s;
	size_t len, cap;
};

static void arr_add(struct arr *a, const char *v)
{
	size_t n = strlen(v);
	char sep = a->len == 0 ? '{' : ',';

	if (a->len + n + 3 > a->cap) {
		a->cap = (a->cap + n + 3) * 2;
		if ((a->s = realloc(a->s, a->cap)) == NULL)
			cli_die("out of memory");
	}
	a->s[a->len++] = sep;
	memcpy(a->s + a->len, v, n);
	a->len += n;
	a->s[a->len] = '}';
	a->s[a->len + 1] = '\0';
}

/* license issue --count N: N licenses of one customer and plan in one
 * transaction (volume sales, load tests), inserted and signed in chunks;
 * the keys go to --keys-out (one per line, 0600) or stdout. */
static void bulk_issue(const char *const *p6, const char *count,
    const char *out_path)
{
	enum { CHUNK = 5000 };
	long total = strtol(count, NULL, 10), done = 0;
	struct arr ids = { NULL, 0, 0 }, keys = { NULL, 0, 0 };
	char n[24];
	FILE *out = stdout;

	if (out_path != NULL) {
		int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fd < 0 || (out = fdopen(fd, "w")) == NULL)
			cli_die("%s: %s", out_path, strerror(errno));
	}
	cli_exec("BEGIN");
	while (done < total) {
		long k = total - done < CHUNK ? total - done : CHUNK;
		const char *pp[7];
		PGresult *r;
		int i;

		snprintf(n, sizeof(n), "%ld", k);
		memcpy(pp, p6, sizeof(const char *) * 6);
		pp[6] = n;
		r = cli_q("INSERT INTO licenses (customer_id, plan_code, "
		    "features, limits, domains, expires_at) SELECT c.id, "
		    "p.code, coalesce($3::jsonb, p.features), p.limits || "
		    "coalesce($4::jsonb, '{}'), $5::jsonb, $6::timestamptz "
		    "FROM customers c, plans p, generate_series(1, $7::int) "
		    "WHERE (c.id::text = $1 OR lower(c.email) = lower($1)) AND "
		    "p.code = $2 RETURNING id", 7, pp);
		if (PQntuples(r) != k)
			unknown_customer_or_plan(p6[0], p6[1]);
		ids.len = 0;
		for (i = 0; i < PQntuples(r); i++)
			arr_add(&ids, PQgetvalue(r, i, 0));
		PQclear(r);
		pp[0] = ids.s;
		r = cli_q(LICENSE_ROW "v.id = ANY($1::uuid[])", 1, pp);
		/* ids again in the view's order, matching keys */
		ids.len = keys.len = 0;
		for (i = 0; i < PQntuples(r); i++) {
			char *key = NULL;

			sign_row(r, i, &key);
			fprintf(out, "%s\n", key);
			arr_add(&keys, key);
			arr_add(&ids, PQgetvalue(r, i, 0));
			free(key);
		}
		PQclear(r);
		{
			const char *pk[3] = { ids.s, keys.s,
			    lic_keyring()->signer->kid };

			PQclear(cli_q("UPDATE licenses l SET license_key = k.key, "
			    "key_kid = $3 FROM unnest($1::uuid[], $2::text[]) AS "
			    "k(id, key) WHERE l.id = k.id", 3, pk));
		}
		done += k;
	}
	snprintf(n, sizeof(n), "%ld", total);
	{
		const char *pa[2] = { n, p6[1] };

		PQclear(cli_q("SELECT licd_audit('licctl', 'license.issue_bulk', "
		    "'plan', $2, NULL, NULL, jsonb_build_object('count', "
		    "$1::bigint))", 2, pa));
	}
	cli_exec("COMMIT");
	if (out != stdout && fclose(out) != 0)
		cli_die("%s: write failed", out_path);
	fprintf(stderr, "issued %ld licenses\n", total);
	free(ids.s);
	free(keys.s);
}

int licenses_issue(const struct cli_cmd *c, const struct cli_opts *o)
{
	const char *customer = cli_opt(o, "customer"), *plan = cli_opt(o, "plan");
	char *feat = NULL, *lim = NULL, *dom = NULL, *key = NULL, *id = NULL;
	char exp[32];
	struct json_object *d;
	const char *p[10];
	PGresult *r;

	(void)c;
	if (customer == NULL || plan == NULL)
		cli_die("license issue needs --customer and --plan");
	if (!cli_slug_ok(plan))
		cli_bad("--plan", plan, "a plan code, " CLI_SLUG_ACCEPTS);
	if (!lic_uuid_valid(customer) && !cli_email_ok(customer))
		cli_bad("--customer", customer,
		    "a customer id (UUID) or e-mail address");
	if (cli_opt(o, "count") != NULL)
		cli_int("--count", cli_opt(o, "count"), 1, 10000000,
		    "a number of licenses, 1-10000000");
	need_signer();
	p[5] = expiry(o, exp);
	if (cli_opt(o, "features"))
		feat = cli_list_json(cli_opt(o, "features"), 0);
	if (cli_opt(o, "limits"))
		lim = cli_limits_json(cli_opt(o, "limits"));
	dom = cli_list_json(cli_opt(o, "domains") ? cli_opt(o, "domains") : "",
	    1);
	p[0] = customer;
	p[1] = plan;
	p[2] = feat;
	p[3] = lim;
	p[4] = dom;
	p[6] = cli_seat_opt(o, "seat-model");
	p[7] = cli_seat_opt(o, "seat-ttl");
	p[8] = cli_seat_opt(o, "max-borrow-days");
	p[9] = cli_seat_opt(o, "overdraft");
	if (cli_opt(o, "count")) {
		bulk_issue(p, cli_opt(o, "count"), cli_opt(o, "keys-out"));
		goto out;
	}
	cli_exec("BEGIN");
	/* Seat options left NULL are the plan's
	 * (licd_license_seat_defaults). */
	r = cli_q("INSERT INTO licenses (customer_id, plan_code, features, "
	    "limits, domains, expires_at, seat_model, seat_ttl, "
	    "max_borrow_days, overdraft) SELECT c.id, p.code, "
	    "coalesce($3::jsonb, p.features), p.limits || "
	    "coalesce($4::jsonb, '{}'), $5::jsonb, $6::timestamptz, "
	    "$7, $8::int, $9::int, $10::int "
	    "FROM customers c, plans p WHERE (c.id::text = $1 OR "
	    "lower(c.email) = lower($1)) AND p.code = $2 "
	    "RETURNING id", 10, p);
	if (PQntuples(r) != 1)
		unknown_customer_or_plan(customer, plan);
	id = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	if (id == NULL)
		cli_die("out of memory");
	licenses_sign(id, &key);
	cli_audit("license.issue", "license", id, NULL, NULL);
	d = admin_doc(id);
	cli_exec("COMMIT");
	print_license(d, cli_opt(o, "json") != NULL);
	if (!cli_opt(o, "json"))
		printf("\nlicense key:\n%s\n", key);
	json_object_put(d);
out:
	free(id);
	free(key);
	free(feat);
	free(lim);
	free(dom);
	return 0;
}

/* ---- update and the actions ------------------------------------------- */

int licenses_update(const struct cli_cmd *c, const struct cli_opts *o)
{
	struct json_object *d;
	const char *p[5];
	PGresult *r;

	(void)c;
	if (o->npos != 1 || !lic_uuid_valid(o->pos[0]))
		cli_die("usage: licctl license update LICENSE_ID "
		    "[--seat-model node|floating] ...");
	p[0] = o->pos[0];
	p[1] = cli_seat_opt(o, "seat-model");
	p[2] = cli_seat_opt(o, "seat-ttl");
	p[3] = cli_seat_opt(o, "max-borrow-days");
	p[4] = cli_seat_opt(o, "overdraft");
	if (!p[1] && !p[2] && !p[3] && !p[4])
		cli_die("license update needs --seat-model, --seat-ttl, "
		    "--max-borrow-days or --overdraft");
	r = cli_q("SELECT licd_license_seats_set($1, $2, $3::int, $4::int, "
	    "$5::int, 'licctl', NULL)", 5, p);
	if (strcmp(PQgetvalue(r, 0, 0), "ok") != 0)
		cli_die("no license %s", o->pos[0]);
	PQclear(r);
	d = admin_doc(o->pos[0]);
	print_license(d, cli_opt(o, "json") != NULL);
	json_object_put(d);
	return 0;
}

/* revoke, suspend, reinstate, reset-activations: the admin API's SQL
 * functions with actor "licctl". */
int licenses_action(const struct cli_cmd *c, const struct cli_opts *o)
{
	const char *action = c->verb, *reason = cli_opt(o, "reason"), *id;
	PGresult *r;

	if (o->npos != 1)
		cli_die("usage: licctl license %s LICENSE_ID [--reason TEXT]",
		    action);
	id = cli_license_id(o->pos[0]);
	if (reason != NULL && strlen(reason) > 500)
		cli_bad("--reason", reason, "at most 500 characters");
	if (strcmp(action, "revoke") == 0) {
		const char *p[3] = { id, reason, "licctl" };

		r = cli_q("SELECT result, to_char(to_timestamp(revoked_at) AT "
		    "TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
		    "changed FROM licd_revoke($1, $2, $3, NULL)", 3, p);
		if (strcmp(PQgetvalue(r, 0, 0), "ok") != 0)
			cli_die("no license %s", id);
		printf("license %s revoked at %s%s\n", id, PQgetvalue(r, 0, 1),
		    strcmp(PQgetvalue(r, 0, 2), "t") == 0 ? "" :
		    " (already revoked)");
	} else if (strcmp(action, "reset-activations") == 0) {
		const char *p[3] = { id, reason, "licctl" };

		r = cli_q("SELECT result, freed FROM licd_reset_activations($1, "
		    "$2, $3, NULL)", 3, p);
		if (strcmp(PQgetvalue(r, 0, 0), "ok") != 0)
			cli_die("no license %s", id);
		printf("license %s: %s installation(s) deactivated\n", id,
		    PQgetvalue(r, 0, 1));
	} else {
		const char *p[4] = { id, action, reason, "licctl" };

		r = cli_q("SELECT result, status, changed FROM licd_set_status("
		    "$1, $2, $3, $4, NULL)", 4, p);
		if (strcmp(PQgetvalue(r, 0, 0), "not_found") == 0)
			cli_die("no license %s", id);
		if (strcmp(PQgetvalue(r, 0, 0), "conflict") == 0)
			cli_die("cannot %s license %s: it is %s", action, id,
			    PQgetvalue(r, 0, 1));
		printf("license %s is %s%s\n", id, PQgetvalue(r, 0, 1),
		    strcmp(PQgetvalue(r, 0, 2), "t") == 0 ? "" : " (unchanged)");
	}
	PQclear(r);
	return 0;
}
