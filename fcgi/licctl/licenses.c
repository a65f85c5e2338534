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

/* The keys loaded once; a current signing key there. */
static int need_signer(struct cli_err *e)
{
	static int loaded;
	char err[512];

	if (!loaded && lic_init_keys(err, sizeof(err)) != 0)
		return cli_fail(e, 1, "%s", err);
	loaded = 1;
	if (lic_keyring()->signer == NULL)
		return cli_fail(e, 1, "no current signing key (licctl keys "
		    "generate)");
	return 0;
}

/* Row i of a LIC_KEY_ROW result signed: the key into *key. */
static int sign_row(struct cli_err *e, const PGresult *v, int i, char **key)
{
	if (lic_sign_row(v, i, key) != LIC_OK)
		return cli_fail(e, 1, "cannot sign the key of license %s",
		    PQgetvalue(v, i, 0));
	return 0;
}

int licenses_sign(struct cli_err *e, const char *id, char **key)
{
	const char *p[3] = { id, NULL, NULL };
	PGresult *v = NULL;
	int rc = -1;

	*key = NULL;
	if (need_signer(e) != 0 ||
	    (v = cli_q(e, LIC_KEY_ROW "v.id = $1", 1, p)) == NULL)
		goto out;
	if (PQntuples(v) != 1) {
		cli_fail(e, 1, "no license %s", id);
		goto out;
	}
	if (sign_row(e, v, 0, key) != 0)
		goto out;
	PQclear(v);
	p[1] = *key;
	p[2] = lic_keyring()->signer->kid;
	v = cli_q(e, "SELECT licd_license_keys_store(ARRAY[$1::uuid], "
	    "ARRAY[$2::text], $3)", 3, p);
	rc = v != NULL ? 0 : -1;
out:
	PQclear(v);
	if (rc != 0) {
		free(*key);
		*key = NULL;
	}
	return rc;
}

/* ---- show and list ---------------------------------------------------- */

/* A floating license's seats, one line each (licd_admin_license). */
static int print_seats(struct cli_err *e, const char *id)
{
	const char *p[1] = { id };
	PGresult *r = cli_q(e, "SELECT s.seats, i.id, i.seat ->> 'state', "
	    "i.seat ->> 'expires_at', i.seat ->> 'borrowed_until', "
	    "i.seat ->> 'overdraft' FROM (SELECT licd_admin_license($1)::jsonb "
	    "AS d) a, LATERAL (SELECT a.d -> 'seats' AS seats) s LEFT JOIN "
	    "LATERAL jsonb_to_recordset(a.d -> 'installations') AS i(id text, "
	    "seat jsonb) ON i.seat IS NOT NULL WHERE a.d -> 'seats' ->> "
	    "'model' = 'floating'", 1, p);
	struct json_object *s;
	int i;

	if (r == NULL)
		return -1;
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
	return 0;
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

/* The JSON document in row 0, column 0 of the statement's result into
 * *doc (put by the caller). */
static int json_q(struct cli_err *e, const char *sql, const char *id,
    struct json_object **doc)
{
	const char *p[1] = { id };
	PGresult *r = cli_q(e, sql, 1, p);

	*doc = NULL;
	if (r == NULL)
		return -1;
	if (PQntuples(r) == 1)
		*doc = json_tokener_parse(PQgetvalue(r, 0, 0));
	PQclear(r);
	if (*doc == NULL)
		return cli_fail(e, 1, "cannot read a license document");
	return 0;
}

#define ADMIN_DOC "SELECT doc FROM license_admin_view WHERE id = $1"

/*
 * Licenses as operators see them (license_admin_view) with the status
 * validate would answer now (licd_now, the programs' clock): an active
 * license past its end of validity is "expired" before the lifecycle
 * job has written it, and one past its expiry but inside its payment
 * grace is "active" and in grace. Columns: doc, effective status, in
 * grace ('t'/'f'). NULL parameters match everything.
 */
static PGresult *licenses_q(struct cli_err *e, const char *id,
    const char *customer, const char *status)
{
	const char *p[3] = { id, customer, status };

	return cli_q(e, "SELECT v.doc, e.eff, e.grace FROM license_admin_view "
	    "v JOIN licenses l ON l.id = v.id, LATERAL (SELECT CASE WHEN "
	    "l.status <> 'active' OR l.expires_at IS NULL OR "
	    "greatest(l.expires_at, l.grace_until) > licd_now() THEN l.status "
	    "ELSE 'expired' END AS eff, (l.status = 'active' AND "
	    "l.expires_at <= licd_now() AND l.grace_until > licd_now()) AS "
	    "grace) e WHERE ($1::uuid IS NULL OR v.id = $1::uuid) AND "
	    "($2::text IS NULL OR v.customer_id::text = $2 OR v.email = "
	    "lower($2)) AND ($3::text IS NULL OR e.eff = $3) "
	    "ORDER BY v.created_at", 3, p);
}

/* Row i's doc with "effective_status" and "in_grace" added, into *doc
 * (put by the caller). */
static int license_doc(struct cli_err *e, const PGresult *r, int i,
    struct json_object **doc)
{
	if ((*doc = json_tokener_parse(PQgetvalue(r, i, 0))) == NULL)
		return cli_fail(e, 1, "cannot read a license document");
	json_object_object_add(*doc, "effective_status",
	    json_object_new_string(PQgetvalue(r, i, 1)));
	json_object_object_add(*doc, "in_grace", json_object_new_boolean(
	    strcmp(PQgetvalue(r, i, 2), "t") == 0));
	return 0;
}

int licenses_show(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	int as_json = cli_opt(o, "json") != NULL, rc = -1;
	struct json_object *d = NULL, *a = NULL, *key;
	const char *id = o->npos == 1 ? o->pos[0] : NULL, *model;
	PGresult *r;

	(void)c;
	if (id == NULL)
		return cli_fail(e, 2, "usage: licctl license show LICENSE_ID");
	if (cli_license_id(e, id) != 0 ||
	    (r = licenses_q(e, id, NULL, NULL)) == NULL)
		return -1;
	if (PQntuples(r) != 1)
		cli_fail(e, 1, "no license %s", id);
	else
		license_doc(e, r, 0, &d);
	PQclear(r);
	if (d == NULL)
		goto out;
	if (!as_json) {
		print_license(d, 0);
		if (print_seats(e, id) != 0)
			goto out;
		if ((key = json_object_object_get(d, "key")) != NULL)
			printf("\nlicense key:\n%s\n",
			    json_object_get_string(key));
		rc = 0;
		goto out;
	}
	/* A floating license's seats beside the license. */
	model = cli_jstr(d, "seat_model");
	if (model != NULL && strcmp(model, "floating") == 0) {
		if (json_q(e, "SELECT licd_admin_license($1)", id, &a) != 0)
			goto out;
		json_object_object_add(d, "seats", json_object_get(
		    json_object_object_get(a, "seats")));
	}
	print_license(d, 1);
	rc = 0;
out:
	json_object_put(a);
	json_object_put(d);
	return rc;
}

int licenses_list(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	static const char *const st[] = { "active", "expired", "suspended",
	    "revoked", NULL };
	int i, as_json = cli_opt(o, "json") != NULL, rc = -1;
	PGresult *r = NULL;

	(void)c;
	if (cli_one_of(e, "--status", cli_opt(o, "status"), st,
	    "active, expired, suspended or revoked") != 0 ||
	    (r = licenses_q(e, NULL, cli_opt(o, "customer"),
	    cli_opt(o, "status"))) == NULL)
		return -1;
	for (i = 0; i < PQntuples(r); i++) {
		struct json_object *j;
		char stb[24];

		if (license_doc(e, r, i, &j) != 0)
			goto out;
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
	rc = 0;
out:
	PQclear(r);
	return rc;
}

/* ---- issue ------------------------------------------------------------ */

/* After an issue inserted nothing: which of the two does not exist. */
static int unknown_customer_or_plan(struct cli_err *e, const char *customer,
    const char *plan)
{
	const char *p[1] = { customer };
	PGresult *r = cli_q(e, "SELECT 1 FROM customers WHERE id::text = $1 "
	    "OR lower(email) = lower($1)", 1, p);
	int known = r != NULL && PQntuples(r) > 0;

	if (r == NULL)
		return -1;
	PQclear(r);
	if (!known)
		return cli_fail(e, 2, "--customer: unknown customer '%s' "
		    "(licctl customer list)", customer);
	return cli_fail(e, 2, "--plan: unknown plan '%s' (licctl plan list)",
	    plan);
}

/* The end of validity the options give, as RFC 3339 into buf, or *exp
 * NULL for --perpetual. */
static int expiry(struct cli_err *e, const struct cli_opts *o, char buf[32],
    const char **exp)
{
	long long days;
	struct tm tm;
	time_t t;

	*exp = NULL;
	if (cli_opt(o, "perpetual"))
		return 0;
	if (cli_opt(o, "days")) {
		if (cli_int(e, "--days", cli_opt(o, "days"), 1, 36500,
		    "a number of days, 1-36500", &days) != 0)
			return -1;
		t = time(NULL) + (time_t)days * 86400;
		gmtime_r(&t, &tm);
		strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
	} else if (cli_opt(o, "expires")) {
		if (cli_expires(e, cli_opt(o, "expires"), buf) != 0)
			return -1;
	} else {
		return cli_fail(e, 2, "give --expires DATE, --days N or "
		    "--perpetual");
	}
	*exp = buf;
	return 0;
}

/* A growing "{a,b,...}" PostgreSQL array literal. */
struct arr {
	char *s;
	size_t len, cap;
};

static int arr_add(struct cli_err *e, struct arr *a, const char *v)
{
	size_t n = strlen(v);
	char sep = a->len == 0 ? '{' : ',', *s;

	if (a->len + n + 3 > a->cap) {
		if ((s = realloc(a->s, (a->cap + n + 3) * 2)) == NULL)
			return cli_fail(e, 1, "out of memory");
		a->s = s;
		a->cap = (a->cap + n + 3) * 2;
	}
	a->s[a->len++] = sep;
	memcpy(a->s + a->len, v, n);
	a->len += n;
	a->s[a->len] = '}';
	a->s[a->len + 1] = '\0';
	return 0;
}

/* Signs every row of v (a result whose first columns are LIC_KEY_COLS)
 * and stores the keys under the signer's kid (licd_license_keys_store),
 * writing one line per key to out: the key alone, or when mail_col >= 0
 * the license id, the e-mail in column mail_col and the key,
 * tab-separated. ids and keys are the caller's buffers. */
static int sign_store(struct cli_err *e, const PGresult *v, int mail_col,
    FILE *out, struct arr *ids, struct arr *keys)
{
	const char *pp[3];
	char *key = NULL;
	PGresult *r = NULL;
	int i, rc = -1;

	ids->len = keys->len = 0;
	for (i = 0; i < PQntuples(v); i++) {
		if (sign_row(e, v, i, &key) != 0 ||
		    arr_add(e, keys, key) != 0 ||
		    arr_add(e, ids, PQgetvalue(v, i, 0)) != 0)
			goto out;
		if (mail_col >= 0)
			fprintf(out, "%s\t%s\t%s\n", PQgetvalue(v, i, 0),
			    PQgetvalue(v, i, mail_col), key);
		else
			fprintf(out, "%s\n", key);
		free(key);
		key = NULL;
	}
	pp[0] = ids->s;
	pp[1] = keys->s;
	pp[2] = lic_keyring()->signer->kid;
	r = cli_q(e, "SELECT licd_license_keys_store($1::uuid[], $2::text[], "
	    "$3)", 3, pp);
	rc = r != NULL ? 0 : -1;
out:
	free(key);
	PQclear(r);
	return rc;
}

/* One chunk of a bulk issue: k licenses inserted, signed, their keys
 * written to out and stored. */
static int issue_chunk(struct cli_err *e, const char *const *p6, long k,
    FILE *out, struct arr *ids, struct arr *keys)
{
	const char *pp[7];
	char n[24];
	PGresult *r;
	int i, rc = -1;

	snprintf(n, sizeof(n), "%ld", k);
	memcpy(pp, p6, sizeof(const char *) * 6);
	pp[6] = n;
	r = cli_q(e, "INSERT INTO licenses (customer_id, plan_code, features, "
	    "limits, domains, expires_at) SELECT c.id, p.code, "
	    "coalesce($3::jsonb, p.features), p.limits || coalesce($4::jsonb, "
	    "'{}'), $5::jsonb, $6::timestamptz FROM customers c, plans p, "
	    "generate_series(1, $7::int) WHERE (c.id::text = $1 OR "
	    "lower(c.email) = lower($1)) AND p.code = $2 RETURNING id", 7, pp);
	if (r == NULL)
		return -1;
	if (PQntuples(r) != k) {
		unknown_customer_or_plan(e, p6[0], p6[1]);
		goto out;
	}
	ids->len = 0;
	for (i = 0; i < PQntuples(r); i++)
		if (arr_add(e, ids, PQgetvalue(r, i, 0)) != 0)
			goto out;
	PQclear(r);
	pp[0] = ids->s;
	if ((r = cli_q(e, LIC_KEY_ROW "v.id = ANY($1::uuid[])", 1, pp)) == NULL)
		goto out;
	rc = sign_store(e, r, -1, out, ids, keys);
out:
	PQclear(r);
	return rc;
}

/* --keys-out FILE opened for writing, 0600 (NULL with e filled), or
 * stdout without one. */
static FILE *keys_out(struct cli_err *e, const char *path)
{
	FILE *f;
	int fd;

	if (path == NULL)
		return stdout;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		if (fd >= 0)
			close(fd);
		cli_fail(e, 1, "%s: %s", path, strerror(errno));
		return NULL;
	}
	return f;
}

/* license issue --count N: N licenses of one customer and plan in one
 * transaction (volume sales, load tests), inserted and signed in chunks;
 * the keys go to --keys-out (one per line, 0600) or stdout. */
static int bulk_issue(struct cli_err *e, const char *const *p6,
    const char *count, const char *out_path)
{
	enum { CHUNK = 5000 };
	long total = strtol(count, NULL, 10), done = 0, k;
	struct arr ids = { NULL, 0, 0 }, keys = { NULL, 0, 0 };
	const char *pa[2] = { NULL, p6[1] };
	char n[24];
	FILE *out;
	PGresult *r;
	int rc = -1;

	if ((out = keys_out(e, out_path)) == NULL)
		return -1;
	if (cli_exec(e, "BEGIN") != 0)
		goto out;
	for (; done < total; done += k) {
		k = total - done < CHUNK ? total - done : CHUNK;
		if (issue_chunk(e, p6, k, out, &ids, &keys) != 0)
			goto out;
	}
	snprintf(n, sizeof(n), "%ld", total);
	pa[0] = n;
	r = cli_q(e, "SELECT licd_audit('licctl', 'license.issue_bulk', "
	    "'plan', $2, NULL, NULL, jsonb_build_object('count', $1::bigint))",
	    2, pa);
	PQclear(r);
	if (r == NULL || cli_exec(e, "COMMIT") != 0)
		goto out;
	rc = 0;
out:
	if (out != stdout && fclose(out) != 0 && rc == 0)
		rc = cli_fail(e, 1, "%s: write failed", out_path);
	if (rc == 0)
		fprintf(stderr, "issued %ld licenses\n", total);
	free(ids.s);
	free(keys.s);
	return rc;
}

/* The options of issue checked, converted, in the INSERT's order
 * ($1-$10); the JSON texts into json[3] for the caller to free. */
static int issue_params(struct cli_err *e, const struct cli_opts *o,
    const char *p[10], char *json[3], char exp[32])
{
	const char *customer = cli_opt(o, "customer"), *plan = cli_opt(o, "plan");

	if (customer == NULL || plan == NULL)
		return cli_fail(e, 2, "license issue needs --customer and --plan");
	if (!cli_slug_ok(plan))
		return cli_bad(e, "--plan", plan, "a plan code, "
		    CLI_SLUG_ACCEPTS);
	if (!lic_uuid_valid(customer) && !cli_email_ok(customer))
		return cli_bad(e, "--customer", customer,
		    "a customer id (UUID) or e-mail address");
	if (cli_opt(o, "count") != NULL && cli_int(e, "--count",
	    cli_opt(o, "count"), 1, 10000000, "a number of licenses, "
	    "1-10000000", NULL) != 0)
		return -1;
	if (need_signer(e) != 0 || expiry(e, o, exp, &p[5]) != 0 ||
	    cli_features_limits(e, o, &json[0], &json[1]) != 0 ||
	    cli_list_json(e, cli_opt(o, "domains") ? cli_opt(o, "domains") :
	    "", 1, &json[2]) != 0 || cli_seat_opts(e, o, p + 6) != 0)
		return -1;
	p[0] = customer;
	p[1] = plan;
	p[2] = json[0];
	p[3] = json[1];
	p[4] = json[2];
	return 0;
}

int licenses_issue(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	char *json[3] = { NULL, NULL, NULL }, *key = NULL, *id = NULL;
	char exp[32];
	struct json_object *d = NULL;
	const char *p[10];
	PGresult *r;
	int rc = -1;

	(void)c;
	if (issue_params(e, o, p, json, exp) != 0)
		goto out;
	if (cli_opt(o, "count")) {
		rc = bulk_issue(e, p, cli_opt(o, "count"),
		    cli_opt(o, "keys-out"));
		goto out;
	}
	if (cli_exec(e, "BEGIN") != 0)
		goto out;
	/* Seat options left NULL are the plan's
	 * (licd_license_seat_defaults). */
	r = cli_q(e, "INSERT INTO licenses (customer_id, plan_code, features, "
	    "limits, domains, expires_at, seat_model, seat_ttl, "
	    "max_borrow_days, overdraft) SELECT c.id, p.code, "
	    "coalesce($3::jsonb, p.features), p.limits || "
	    "coalesce($4::jsonb, '{}'), $5::jsonb, $6::timestamptz, "
	    "$7, $8::int, $9::int, $10::int "
	    "FROM customers c, plans p WHERE (c.id::text = $1 OR "
	    "lower(c.email) = lower($1)) AND p.code = $2 "
	    "RETURNING id", 10, p);
	if (r == NULL)
		goto out;
	if (PQntuples(r) == 1 && (id = strdup(PQgetvalue(r, 0, 0))) == NULL)
		cli_fail(e, 1, "out of memory");
	else if (PQntuples(r) != 1)
		unknown_customer_or_plan(e, p[0], p[1]);
	PQclear(r);
	if (id == NULL || licenses_sign(e, id, &key) != 0 ||
	    cli_audit(e, "license.issue", "license", id, NULL, NULL) != 0 ||
	    json_q(e, ADMIN_DOC, id, &d) != 0 || cli_exec(e, "COMMIT") != 0)
		goto out;
	print_license(d, cli_opt(o, "json") != NULL);
	if (!cli_opt(o, "json"))
		printf("\nlicense key:\n%s\n", key);
	rc = 0;
out:
	json_object_put(d);
	free(id);
	free(key);
	free(json[0]);
	free(json[1]);
	free(json[2]);
	return rc;
}

/* ---- update and the actions ------------------------------------------- */

/*
 * license reissue --kid KID: every license not revoked whose key KID
 * signed, reissued as one license is, a chunk per transaction (its rows
 * locked, its keys stored, one license.reissue audit entry per license),
 * in id order from where the last chunk ended: one pass over the primary
 * key, however many there are. A run stopped half way is resumed by
 * running it again: what it reissued no longer has KID. Each chunk's
 * lines, "id<TAB>e-mail<TAB>key", are flushed to --keys-out (0600) or
 * stdout before its COMMIT, so no stored key goes unprinted (a key printed
 * but not stored still verifies: it is signed for its license).
 */
static int bulk_reissue(struct cli_err *e, const char *kid,
    const char *out_path)
{
	struct arr ids = { NULL, 0, 0 }, keys = { NULL, 0, 0 };
	char after[LIC_UUID_LEN + 1] = "00000000-0000-0000-0000-000000000000";
	const char *p[2] = { kid, after }, *pa[3];
	long total = 0;
	PGresult *v = NULL, *r;
	FILE *out = NULL;
	int n = 0, rc = -1;

	if (need_signer(e) != 0)
		return -1;
	if (strcmp(lic_keyring()->signer->kid, kid) == 0)
		return cli_fail(e, 1, "%s is the current key: what it signed "
		    "needs no reissue", kid);
	if ((out = keys_out(e, out_path)) == NULL)
		return -1;
	do {
		if (cli_exec(e, "BEGIN") != 0 || (v = cli_q(e, "SELECT "
		    LIC_KEY_COLS ", c.email FROM " LIC_KEY_FROM " JOIN "
		    "customers c ON c.id = l.customer_id WHERE l.key_kid = $1 "
		    "AND l.status <> 'revoked' AND l.id > $2 ORDER BY l.id "
		    "LIMIT 1000 FOR UPDATE OF l", 2, p)) == NULL)
			goto out;
		if ((n = PQntuples(v)) > 0) {
			if (sign_store(e, v, LIC_NCOLS + 1, out, &ids,
			    &keys) != 0)
				goto out;
			pa[0] = kid;
			pa[1] = ids.s;
			pa[2] = lic_keyring()->signer->kid;
			r = cli_q(e, "INSERT INTO audit_log (actor, action, "
			    "target_type, target_id, details) SELECT 'licctl', "
			    "'license.reissue', 'license', u::text, "
			    "jsonb_build_object('kid', $3::text, 'from_kid', "
			    "$1::text) FROM unnest($2::uuid[]) u", 3, pa);
			PQclear(r);
			if (r == NULL)
				goto out;
			snprintf(after, sizeof(after), "%s",
			    PQgetvalue(v, n - 1, 0));
			if (fflush(out) != 0 || (out != stdout &&
			    fsync(fileno(out)) != 0)) {
				cli_fail(e, 1, "%s: %s", out_path ? out_path :
				    "stdout", strerror(errno));
				goto out;
			}
		}
		if (cli_exec(e, "COMMIT") != 0)
			goto out;
		total += n;
		PQclear(v);
		v = NULL;
	} while (n > 0);
	rc = 0;
out:
	PQclear(v);
	if (out != stdout && fclose(out) != 0 && rc == 0)
		rc = cli_fail(e, 1, "%s: write failed", out_path);
	fprintf(stderr, "reissued %ld licenses signed with %s%s\n", total, kid,
	    rc == 0 ? "" : "; run the command again to go on");
	free(ids.s);
	free(keys.s);
	return rc;
}

/*
 * license reissue: the license's key signed again with the current key,
 * stored and audited in one transaction, and printed. Before a key is
 * retired, what it signed is reissued and sent to its customers: the key
 * they hold keeps verifying until its kid is retired. With --kid, every
 * license that kid signed (bulk_reissue).
 */
int licenses_reissue(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	const char *kid = cli_opt(o, "kid");
	struct json_object *d = NULL;
	char *key = NULL;
	int rc = -1;

	if (kid != NULL) {
		if (o->npos != 0 || cli_opt(o, "json") != NULL)
			return cli_usage(e, c);
		if (!cli_kid_ok(kid))
			return cli_bad(e, "--kid", kid, "a key id (licctl keys "
			    "list)");
		return bulk_reissue(e, kid, cli_opt(o, "keys-out"));
	}
	if (o->npos != 1 || !lic_uuid_valid(o->pos[0]) ||
	    cli_opt(o, "keys-out") != NULL)
		return cli_usage(e, c);
	if (cli_exec(e, "BEGIN") != 0 ||
	    licenses_sign(e, o->pos[0], &key) != 0)
		goto out;
	d = json_object_new_object();
	json_object_object_add(d, "kid",
	    json_object_new_string(lic_keyring()->signer->kid));
	if (cli_audit(e, "license.reissue", "license", o->pos[0], NULL,
	    json_object_to_json_string(d)) != 0 || cli_exec(e, "COMMIT") != 0)
		goto out;
	if (cli_opt(o, "json") != NULL) {
		struct json_object *j = json_object_new_object();

		json_object_object_add(j, "id",
		    json_object_new_string(o->pos[0]));
		json_object_object_add(j, "license_key",
		    json_object_new_string(key));
		json_object_object_add(j, "kid",
		    json_object_new_string(lic_keyring()->signer->kid));
		printf("%s\n", json_object_to_json_string_ext(j,
		    JSON_C_TO_STRING_PLAIN));
		json_object_put(j);
	} else
		printf("license %s reissued (kid %s); license key:\n%s\n",
		    o->pos[0], lic_keyring()->signer->kid, key);
	rc = 0;
out:
	json_object_put(d);
	free(key);
	return rc;
}

int licenses_update(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	struct json_object *d;
	const char *p[5];
	PGresult *r;
	int ok;

	(void)c;
	if (o->npos != 1 || !lic_uuid_valid(o->pos[0]))
		return cli_fail(e, 2, "usage: licctl license update LICENSE_ID "
		    "[--seat-model node|floating] ...");
	p[0] = o->pos[0];
	if (cli_seat_opts(e, o, p + 1) != 0)
		return -1;
	if (!p[1] && !p[2] && !p[3] && !p[4])
		return cli_fail(e, 2, "license update needs --seat-model, "
		    "--seat-ttl, --max-borrow-days or --overdraft");
	if ((r = cli_q(e, "SELECT licd_license_seats_set($1, $2, $3::int, "
	    "$4::int, $5::int, 'licctl', NULL)", 5, p)) == NULL)
		return -1;
	ok = strcmp(PQgetvalue(r, 0, 0), "ok") == 0;
	PQclear(r);
	if (!ok)
		return cli_fail(e, 1, "no license %s", o->pos[0]);
	if (json_q(e, ADMIN_DOC, o->pos[0], &d) != 0)
		return -1;
	print_license(d, cli_opt(o, "json") != NULL);
	json_object_put(d);
	return 0;
}

/* revoke, suspend, reinstate, reset-activations: the admin API's SQL
 * functions with actor "licctl" ($1 the license, $2 the reason, $3 the
 * actor, $4 the action), each answering its result and what fmt prints
 * after the license id. */
static const struct {
	const char *verb;
	int nparams;
	const char *sql, *fmt;
} actions[] = {
	{ "revoke", 3, "SELECT result, to_char(to_timestamp(revoked_at) AT "
	    "TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), CASE WHEN "
	    "changed THEN '' ELSE ' (already revoked)' END FROM licd_revoke($1, "
	    "$2, $3, NULL)", "license %s revoked at %s%s\n" },
	{ "reset-activations", 3, "SELECT result, freed, '' FROM "
	    "licd_reset_activations($1, $2, $3, NULL)",
	    "license %s: %s installation(s) deactivated%s\n" },
	{ NULL, 4, "SELECT result, status, CASE WHEN changed THEN '' ELSE "
	    "' (unchanged)' END FROM licd_set_status($1, $4, $2, $3, NULL)",
	    "license %s is %s%s\n" },
};

int licenses_action(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	const char *reason = cli_opt(o, "reason"), *result, *p[4];
	PGresult *r;
	size_t i;
	int rc = -1;

	if (o->npos != 1)
		return cli_fail(e, 2, "usage: licctl license %s LICENSE_ID "
		    "[--reason TEXT]", c->verb);
	if (cli_license_id(e, o->pos[0]) != 0)
		return -1;
	if (reason != NULL && strlen(reason) > 500)
		return cli_bad(e, "--reason", reason, "at most 500 characters");
	for (i = 0; actions[i].verb != NULL &&
	    strcmp(actions[i].verb, c->verb) != 0; i++)
		;
	p[0] = o->pos[0];
	p[1] = reason;
	p[2] = "licctl";
	p[3] = c->verb;
	if ((r = cli_q(e, actions[i].sql, actions[i].nparams, p)) == NULL)
		return -1;
	result = PQgetvalue(r, 0, 0);
	if (strcmp(result, "conflict") == 0) {
		cli_fail(e, 1, "cannot %s license %s: it is %s", c->verb, p[0],
		    PQgetvalue(r, 0, 1));
		goto out;
	}
	if (strcmp(result, "ok") != 0) {
		cli_fail(e, 1, "no license %s", p[0]);
		goto out;
	}
	printf(actions[i].fmt, p[0], PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
	rc = 0;
out:
	PQclear(r);
	return rc;
}
