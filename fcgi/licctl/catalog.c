/*
 * licctl plan and customer: what is sold and to whom. A plan set creates or
 * updates (only the options given change an existing plan); a customer
 * create is idempotent per e-mail address.
 */
#include "cli.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* One plan, as plan list and plan set print it. */
static void print_plan(struct json_object *p)
{
	struct json_object *f = json_object_object_get(p, "features");
	struct json_object *l = json_object_object_get(p, "limits");
	const char *model = cli_jstr(p, "seat_model");

	printf("%-16s %-24s features=%s limits=%s seats=%s",
	    cli_jstr(p, "code"), cli_jstr(p, "name"),
	    json_object_to_json_string_ext(f, JSON_C_TO_STRING_PLAIN),
	    json_object_to_json_string_ext(l, JSON_C_TO_STRING_PLAIN), model);
	if (model != NULL && strcmp(model, "floating") == 0)
		printf(" ttl=%s borrow=%sd overdraft=%s",
		    cli_jstr(p, "seat_ttl"), cli_jstr(p, "max_borrow_days"),
		    cli_jstr(p, "overdraft"));
	printf("\n");
}

/* A JSON array of plans (or one plan) as text lines, or as it is. */
static void print_plans(const char *json, int as_json)
{
	struct json_object *a;
	size_t k;

	if (as_json) {
		printf("%s\n", json);
		return;
	}
	if ((a = json_tokener_parse(json)) == NULL)
		return;
	if (json_object_is_type(a, json_type_array)) {
		for (k = 0; k < json_object_array_length(a); k++)
			print_plan(json_object_array_get_idx(a, k));
	} else {
		print_plan(a);
	}
	json_object_put(a);
}

int catalog_plan_list(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	PGresult *r;

	(void)c;
	r = cli_q(e, "SELECT coalesce(json_agg(json_build_object('code', code, "
	    "'name', name, 'features', features, 'limits', limits, "
	    "'interval', billing_interval, 'price_cents', price_cents, "
	    "'currency', currency, 'stripe_price_id', stripe_price_id, "
	    "'addon', is_addon, 'active', active, 'seat_model', "
	    "seat_model, 'seat_ttl', seat_ttl, 'max_borrow_days', "
	    "max_borrow_days, 'overdraft', overdraft) ORDER BY code), "
	    "'[]') FROM plans", 0, NULL);
	if (r == NULL)
		return -1;
	print_plans(PQgetvalue(r, 0, 0), cli_opt(o, "json") != NULL);
	PQclear(r);
	return 0;
}

static int check_plan_opts(struct cli_err *e, const struct cli_opts *o)
{
	static const char *const iv[] = { "month", "year", "once", NULL };
	const char *name = cli_opt(o, "name"), *c = cli_opt(o, "currency");

	if (!cli_slug_ok(o->pos[0]))
		return cli_bad(e, "CODE", o->pos[0], CLI_SLUG_ACCEPTS);
	if (name != NULL && (strlen(name) < 1 || strlen(name) > 200))
		return cli_bad(e, "--name", name, "1-200 characters");
	if (cli_one_of(e, "--interval", cli_opt(o, "interval"), iv,
	    "month, year or once") != 0)
		return -1;
	if (cli_opt(o, "price-cents") != NULL && cli_int(e, "--price-cents",
	    cli_opt(o, "price-cents"), 0, 1000000000000LL,
	    "a non-negative integer (cents)", NULL) != 0)
		return -1;
	if (c != NULL && (strlen(c) != 3 || !isalpha((unsigned char)c[0]) ||
	    !isalpha((unsigned char)c[1]) || !isalpha((unsigned char)c[2])))
		return cli_bad(e, "--currency", c,
		    "a three-letter ISO 4217 code (usd)");
	return 0;
}

int catalog_plan_set(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	char *feat = NULL, *lim = NULL;
	const char *seat[4];
	PGresult *r = NULL;
	int rc = -1;

	(void)c;
	if (o->npos != 1)
		return cli_fail(e, 2, "usage: licctl plan set CODE --name NAME "
		    "... (see --help)");
	if (check_plan_opts(e, o) != 0 ||
	    cli_features_limits(e, o, &feat, &lim) != 0 ||
	    cli_seat_opts(e, o, seat) != 0)
		goto out;
	{
		const char *p[15] = { o->pos[0], cli_opt(o, "name"), feat, lim,
		    cli_opt(o, "interval"), cli_opt(o, "price-cents"),
		    cli_opt(o, "currency"), cli_opt(o, "stripe-price"),
		    cli_opt(o, "addon") ? "t" : "f",
		    cli_opt(o, "inactive") ? "f" : "t",
		    cli_opt(o, "paddle-price"), seat[0], seat[1], seat[2],
		    seat[3] };

		if (cli_exec(e, "BEGIN") != 0)
			goto out;
		/* Only the options given change an existing plan. */
		r = cli_q(e, "INSERT INTO plans AS p (code, name, features, "
		    "limits, billing_interval, price_cents, currency, "
		    "stripe_price_id, is_addon, active, paddle_price_id, "
		    "seat_model, seat_ttl, max_borrow_days, overdraft) VALUES "
		    "($1, coalesce($2, $1), coalesce($3::jsonb, '[]'), "
		    "coalesce($4::jsonb, '{}'), $5, $6::bigint, lower($7), $8, "
		    "$9::boolean, $10::boolean, $11, coalesce($12, 'node'), "
		    "coalesce($13::int, 900), coalesce($14::int, 0), "
		    "coalesce($15::int, 0)) "
		    "ON CONFLICT (code) DO UPDATE SET "
		    "name = coalesce($2, p.name), "
		    "seat_model = coalesce($12, p.seat_model), "
		    "seat_ttl = coalesce($13::int, p.seat_ttl), "
		    "max_borrow_days = coalesce($14::int, p.max_borrow_days), "
		    "overdraft = coalesce($15::int, p.overdraft), "
		    "features = coalesce($3::jsonb, p.features), "
		    "limits = coalesce($4::jsonb, p.limits), "
		    "billing_interval = coalesce($5, p.billing_interval), "
		    "price_cents = coalesce($6::bigint, p.price_cents), "
		    "currency = coalesce(lower($7), p.currency), "
		    "stripe_price_id = coalesce($8, p.stripe_price_id), "
		    "paddle_price_id = coalesce($11, p.paddle_price_id), "
		    "is_addon = $9::boolean, active = $10::boolean, "
		    "updated_at = now() "
		    "RETURNING json_build_object('code', code, 'name', name, "
		    "'features', features, 'limits', limits, 'seat_model', "
		    "seat_model, 'seat_ttl', seat_ttl, 'max_borrow_days', "
		    "max_borrow_days, 'overdraft', overdraft)::text", 15, p);
	}
	if (r == NULL || cli_audit(e, "plan.set", "plan", o->pos[0], NULL,
	    PQgetvalue(r, 0, 0)) != 0 || cli_exec(e, "COMMIT") != 0)
		goto out;
	print_plans(PQgetvalue(r, 0, 0), cli_opt(o, "json") != NULL);
	rc = 0;
out:
	PQclear(r);
	free(feat);
	free(lim);
	return rc;
}

int catalog_customer_list(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	(void)c;
	return cli_list(e, o, "SELECT json_build_object('id', id, 'email', "
	    "email, 'name', name, 'created_at', created_at)::text, id, email, "
	    "name FROM customers ORDER BY created_at", 0, NULL,
	    "%s  %-32s %s\n");
}

int catalog_customer_create(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	const char *email = cli_opt(o, "email"), *name = cli_opt(o, "name");
	const char *p[2] = { email, name };
	PGresult *r = NULL;
	int rc = -1;

	(void)c;
	if (email == NULL)
		return cli_fail(e, 2, "usage: licctl customer create --email "
		    "EMAIL [--name NAME]");
	if (!cli_email_ok(email))
		return cli_bad(e, "--email", email, CLI_EMAIL_ACCEPTS);
	if (name != NULL && strlen(name) > 200)
		return cli_bad(e, "--name", name, "at most 200 characters");
	if (cli_exec(e, "BEGIN") != 0)
		goto out;
	/* The no-op update makes RETURNING give the existing row. */
	r = cli_q(e, "INSERT INTO customers AS c (email, name) VALUES ($1, "
	    "coalesce($2, '')) ON CONFLICT (lower(email)) DO UPDATE SET "
	    "name = coalesce($2, c.name) RETURNING id, email, name, "
	    "(xmax = 0) AS created", 2, p);
	if (r == NULL || (strcmp(PQgetvalue(r, 0, 3), "t") == 0 &&
	    cli_audit(e, "customer.create", "customer", PQgetvalue(r, 0, 0),
	    NULL, NULL) != 0) || cli_exec(e, "COMMIT") != 0)
		goto out;
	if (cli_opt(o, "json"))
		printf("{\"id\":\"%s\"}\n", PQgetvalue(r, 0, 0));
	else
		printf("%s\n", PQgetvalue(r, 0, 0));
	rc = 0;
out:
	PQclear(r);
	return rc;
}
