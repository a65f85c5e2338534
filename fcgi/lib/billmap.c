/* billmap: see billmap.h. */
#include "billmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum bm_kind {
	BM_STR,		/* the first string */
	BM_STRS,	/* every string, as an array */
	BM_MAX_INT,	/* the largest integer */
	BM_BOOL,	/* the first boolean */
	BM_EQ,		/* true when the first string equals eq (else false) */
};

struct bm_path {
	const char *path;
	const char *versions;	/* API versions that send it there */
};

struct bm_field {
	const char *key;	/* in the action */
	enum bm_kind kind;
	int required;		/* the event cannot be applied without it */
	const char *eq;		/* BM_EQ */
	struct bm_path paths[4];
};

struct bm_event {
	const char *type;
	const char *op;
	/* The event is ignored when the string at skip_path is skip_value. */
	const char *skip_path, *skip_value;
	struct bm_field fields[8];
};

#define STRIPE_ALL "all"
#define STRIPE_NEW "2025-03-31.basil and later (2026-10-28 included)"
#define STRIPE_OLD "up to 2025-02-24.acacia"

/*
 * Stripe, snapshot events. Since 2025-03-31.basil an invoice names its
 * subscription under parent.subscription_details (and each line under
 * parent.subscription_item_details), and a subscription's periods are
 * on its items; earlier versions had invoice.subscription and
 * subscription.current_period_end.
 */
/* Field lists that more than one event type shares. */
#define STRIPE_SESSION_FIELDS \
		{ "session", BM_STR, 1, NULL, { { "data.object.id", STRIPE_ALL } } }, \
		{ "sub", BM_STR, 0, NULL, \
		  { { "data.object.subscription", STRIPE_ALL } } }, \
		{ "customer_ref", BM_STR, 0, NULL, \
		  { { "data.object.customer", STRIPE_ALL } } }, \
		{ "email", BM_STR, 0, NULL, \
		  { { "data.object.customer_details.email", STRIPE_ALL }, \
		    { "data.object.customer_email", STRIPE_ALL } } },
#define STRIPE_INVOICE_SUB \
		{ "sub", BM_STR, 1, NULL, { \
		    { "data.object.parent.subscription_details.subscription", \
		      STRIPE_NEW }, \
		    { "data.object.lines.data[].parent." \
		      "subscription_item_details.subscription", STRIPE_NEW }, \
		    { "data.object.subscription", STRIPE_OLD } } }
#define STRIPE_PERIOD_END(name) \
		{ name, BM_MAX_INT, 0, NULL, { \
		    { "data.object.items.data[].current_period_end", STRIPE_NEW }, \
		    { "data.object.current_period_end", STRIPE_OLD } } }
#define STRIPE_CUSTOMER_FIELDS \
		{ "customer_ref", BM_STR, 1, NULL, \
		  { { "data.object.id", STRIPE_ALL } } }, \
		{ "email", BM_STR, 0, NULL, { { "data.object.email", STRIPE_ALL } } }, \
		{ "name", BM_STR, 0, NULL, { { "data.object.name", STRIPE_ALL } } },

static const struct bm_event stripe_events[] = {
	{ "checkout.session.completed", "issue",
	  "data.object.payment_status", "unpaid", {
		STRIPE_SESSION_FIELDS
	} },
	{ "checkout.session.async_payment_succeeded", "issue", NULL, NULL, {
		STRIPE_SESSION_FIELDS
	} },
	{ "checkout.session.expired", "session_expired", NULL, NULL, {
		{ "session", BM_STR, 1, NULL, { { "data.object.id", STRIPE_ALL } } },
	} },
	{ "invoice.paid", "renew", NULL, NULL, {
		STRIPE_INVOICE_SUB,
		/* The service period is on the lines; the invoice's own
		 * period_end is the previous period for subscriptions. */
		{ "period_end", BM_MAX_INT, 1, NULL, {
		    { "data.object.lines.data[].period.end", STRIPE_ALL },
		    { "data.object.period_end", STRIPE_ALL } } },
	} },
	{ "invoice.payment_failed", "payment_failed", NULL, NULL, {
		STRIPE_INVOICE_SUB,
	} },
	{ "customer.subscription.updated", "update", NULL, NULL, {
		{ "sub", BM_STR, 1, NULL, { { "data.object.id", STRIPE_ALL } } },
		{ "prices", BM_STRS, 0, NULL,
		  { { "data.object.items.data[].price.id", STRIPE_ALL } } },
		{ "cancel_at_period_end", BM_BOOL, 0, NULL,
		  { { "data.object.cancel_at_period_end", STRIPE_ALL } } },
		STRIPE_PERIOD_END("period_end"),
		{ "status", BM_STR, 0, NULL,
		  { { "data.object.status", STRIPE_ALL } } },
	} },
	{ "customer.subscription.deleted", "cancel", NULL, NULL, {
		{ "sub", BM_STR, 1, NULL, { { "data.object.id", STRIPE_ALL } } },
		STRIPE_PERIOD_END("ends_at"),
	} },
	{ "customer.created", "customer", NULL, NULL, {
		STRIPE_CUSTOMER_FIELDS
	} },
	{ "customer.updated", "customer", NULL, NULL, {
		STRIPE_CUSTOMER_FIELDS
	} },
};

/* Paddle Billing (API v1 notifications: event_id, event_type,
 * occurred_at, notification_id, data = the entity). One version. */
#define PADDLE "Paddle Billing v1"

#define PADDLE_SUBSCRIPTION_FIELDS \
		{ "customer_ref", BM_STR, 1, NULL, { { "data.customer_id", PADDLE } } }, \
		{ "prices", BM_STRS, 1, NULL, { { "data.items[].price.id", PADDLE } } }, \
		{ "period_end_at", BM_STR, 0, NULL, \
		  { { "data.current_billing_period.ends_at", PADDLE } } },
#define PADDLE_CUSTOMER_FIELDS \
		{ "customer_ref", BM_STR, 1, NULL, { { "data.id", PADDLE } } }, \
		{ "email", BM_STR, 0, NULL, { { "data.email", PADDLE } } }, \
		{ "name", BM_STR, 0, NULL, { { "data.name", PADDLE } } },

static const struct bm_event paddle_events[] = {
	/* subscription.created carries transaction_id, the purchase's
	 * transaction, so it and transaction.completed name the same
	 * session and subscription. */
	{ "subscription.created", "issue", NULL, NULL, {
		{ "sub", BM_STR, 1, NULL, { { "data.id", PADDLE } } },
		{ "session", BM_STR, 0, NULL, { { "data.transaction_id", PADDLE } } },
		PADDLE_SUBSCRIPTION_FIELDS
	} },
	{ "subscription.activated", "issue", NULL, NULL, {
		{ "sub", BM_STR, 1, NULL, { { "data.id", PADDLE } } },
		PADDLE_SUBSCRIPTION_FIELDS
	} },
	/* The first transaction of a subscription issues (with the
	 * subscription.created above, once); later ones renew it. */
	{ "transaction.completed", "issue", NULL, NULL, {
		{ "session", BM_STR, 1, NULL, { { "data.id", PADDLE } } },
		{ "sub", BM_STR, 0, NULL, { { "data.subscription_id", PADDLE } } },
		{ "customer_ref", BM_STR, 1, NULL, { { "data.customer_id", PADDLE } } },
		{ "prices", BM_STRS, 1, NULL, { { "data.items[].price.id", PADDLE } } },
		{ "period_end_at", BM_STR, 0, NULL,
		  { { "data.billing_period.ends_at", PADDLE } } },
	} },
	{ "subscription.updated", "update", NULL, NULL, {
		{ "sub", BM_STR, 1, NULL, { { "data.id", PADDLE } } },
		{ "prices", BM_STRS, 0, NULL, { { "data.items[].price.id", PADDLE } } },
		{ "period_end_at", BM_STR, 0, NULL,
		  { { "data.current_billing_period.ends_at", PADDLE } } },
		{ "status", BM_STR, 0, NULL, { { "data.status", PADDLE } } },
		{ "cancel_at_period_end", BM_EQ, 0, "cancel",
		  { { "data.scheduled_change.action", PADDLE } } },
	} },
	{ "subscription.past_due", "payment_failed", NULL, NULL, {
		{ "sub", BM_STR, 1, NULL, { { "data.id", PADDLE } } },
	} },
	{ "subscription.canceled", "cancel", NULL, NULL, {
		{ "sub", BM_STR, 1, NULL, { { "data.id", PADDLE } } },
		{ "ends_at_at", BM_STR, 0, NULL,
		  { { "data.current_billing_period.ends_at", PADDLE } } },
	} },
	{ "customer.created", "customer", NULL, NULL, {
		PADDLE_CUSTOMER_FIELDS
	} },
	{ "customer.updated", "customer", NULL, NULL, {
		PADDLE_CUSTOMER_FIELDS
	} },
};

static const struct {
	const char *name;
	const struct bm_event *events;
	size_t n;
} providers[] = {
	{ "stripe", stripe_events,
	  sizeof(stripe_events) / sizeof(stripe_events[0]) },
	{ "paddle", paddle_events,
	  sizeof(paddle_events) / sizeof(paddle_events[0]) },
};

static int is_index(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 6)
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* Appends to out every leaf at path below o. */
static void walk(struct json_object *o, const char *path,
    struct json_object *out, int *saw_null)
{
	const char *dot, *seg = path;
	size_t n;
	int each;
	char key[128];

	if (o == NULL) {
		*saw_null = 1;
		return;
	}
	if (*path == '\0') {
		json_object_array_add(out, json_object_get(o));
		return;
	}
	dot = strchr(seg, '.');
	n = dot ? (size_t)(dot - seg) : strlen(seg);
	each = n > 2 && seg[n - 2] == '[' && seg[n - 1] == ']';
	if (each)
		n -= 2;
	if (n >= sizeof(key))
		return;
	memcpy(key, seg, n);
	key[n] = '\0';
	path = dot ? dot + 1 : seg + strlen(seg);
	if (json_object_is_type(o, json_type_array) && is_index(key, n)) {
		size_t i = (size_t)strtoul(key, NULL, 10);

		if (i < json_object_array_length(o))
			walk(json_object_array_get_idx(o, i), path, out,
			    saw_null);
		return;
	}
	if (!json_object_is_type(o, json_type_object))
		return;
	if (!json_object_object_get_ex(o, key, &o))
		return;
	if (!each) {
		walk(o, path, out, saw_null);
	} else if (o == NULL) {
		*saw_null = 1;
	} else if (json_object_is_type(o, json_type_array)) {
		size_t i, len = json_object_array_length(o);

		for (i = 0; i < len; i++)
			walk(json_object_array_get_idx(o, i), path, out,
			    saw_null);
	}
}

struct json_object *bm_values(struct json_object *o, const char *path,
    int *saw_null)
{
	struct json_object *out = json_object_new_array();

	walk(o, path, out, saw_null);
	return out;
}

/* The field's value from vals (leaves of one path), or NULL if none of
 * the right type. */
static struct json_object *pick(const struct bm_field *f,
    struct json_object *vals)
{
	struct json_object *v, *arr = NULL;
	size_t i, n = json_object_array_length(vals);
	long long best = 0;
	int have = 0;

	for (i = 0; i < n; i++) {
		v = json_object_array_get_idx(vals, i);
		switch (f->kind) {
		case BM_STR:
		case BM_EQ:
			if (json_object_is_type(v, json_type_string))
				return f->kind == BM_STR ? json_object_get(v) :
				    json_object_new_boolean(strcmp(
				    json_object_get_string(v), f->eq) == 0);
			break;
		case BM_STRS:
			if (!json_object_is_type(v, json_type_string))
				break;
			if (arr == NULL)
				arr = json_object_new_array();
			json_object_array_add(arr, json_object_get(v));
			break;
		case BM_MAX_INT:
			if (json_object_is_type(v, json_type_int) &&
			    (!have || json_object_get_int64(v) > best)) {
				best = json_object_get_int64(v);
				have = 1;
			}
			break;
		case BM_BOOL:
			if (json_object_is_type(v, json_type_boolean))
				return json_object_get(v);
			break;
		}
	}
	if (f->kind == BM_MAX_INT && have)
		return json_object_new_int64(best);
	return arr;
}

static int map_event(const struct bm_event *e, struct json_object *ev,
    struct json_object **action, char *why, size_t whylen)
{
	struct json_object *a, *vals, *v;
	const struct bm_field *f;
	size_t i, j;
	int saw_null;

	if (e->skip_path != NULL) {
		const char *s;

		saw_null = 0;
		vals = bm_values(ev, e->skip_path, &saw_null);
		s = json_object_array_length(vals) > 0 ? json_object_get_string(
		    json_object_array_get_idx(vals, 0)) : NULL;
		i = s != NULL && strcmp(s, e->skip_value) == 0;
		json_object_put(vals);
		if (i)
			return BM_IGNORE;
	}
	a = json_object_new_object();
	json_object_object_add(a, "op", json_object_new_string(e->op));
	for (i = 0; i < sizeof(e->fields) / sizeof(e->fields[0]); i++) {
		f = &e->fields[i];
		if (f->key == NULL)
			break;
		v = NULL;
		saw_null = 0;
		for (j = 0; j < 4 && f->paths[j].path != NULL && v == NULL; j++) {
			vals = bm_values(ev, f->paths[j].path, &saw_null);
			v = pick(f, vals);
			json_object_put(vals);
		}
		if (v == NULL && f->kind == BM_EQ)
			v = json_object_new_boolean(0);
		if (v != NULL) {
			json_object_object_add(a, f->key, v);
			continue;
		}
		if (!f->required)
			continue;
		json_object_put(a);
		/* Present as null (an invoice without a subscription): the
		 * event is not about a purchase. Absent everywhere: a shape
		 * licd does not know. */
		if (saw_null)
			return BM_IGNORE;
		snprintf(why, whylen, "no '%s' at %s%s", f->key,
		    f->paths[0].path, f->paths[1].path ? " or the older paths" :
		    "");
		return BM_UNMAPPED;
	}
	*action = a;
	return BM_ACTION;
}

int bm_map(const char *provider, struct json_object *ev, const char *type,
    struct json_object **action, char *why, size_t whylen)
{
	size_t p, i;

	*action = NULL;
	if (whylen > 0)
		why[0] = '\0';
	for (p = 0; p < sizeof(providers) / sizeof(providers[0]); p++) {
		if (strcmp(providers[p].name, provider) != 0)
			continue;
		for (i = 0; i < providers[p].n; i++)
			if (strcmp(providers[p].events[i].type, type) == 0)
				return map_event(&providers[p].events[i], ev,
				    action, why, whylen);
	}
	return BM_IGNORE;
}
