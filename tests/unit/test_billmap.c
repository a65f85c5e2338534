/* Provider events -> actions (billmap.h): Stripe's current shapes and the
 * older ones, events that say they are not about a purchase, and shapes
 * licd cannot read. */
#include "billmap.h"
#include "unit.h"

#include <string.h>

static struct json_object *map(const char *provider, const char *type,
    const char *json, int *rc)
{
	struct json_object *ev = json_tokener_parse(json), *a = NULL;
	char why[256];

	*rc = bm_map(provider, ev, type, &a, why, sizeof(why));
	json_object_put(ev);
	return a;
}

static const char *str(struct json_object *a, const char *k)
{
	struct json_object *v;

	return a && json_object_object_get_ex(a, k, &v) ?
	    json_object_get_string(v) : NULL;
}

static long long num(struct json_object *a, const char *k)
{
	struct json_object *v;

	return a && json_object_object_get_ex(a, k, &v) ?
	    json_object_get_int64(v) : -1;
}

static int eq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static void test_stripe_invoice(void)
{
	struct json_object *a;
	int rc;

	/* 2025-03-31.basil and later */
	a = map("stripe", "invoice.paid", "{\"data\":{\"object\":{\"parent\":"
	    "{\"type\":\"subscription_details\",\"subscription_details\":"
	    "{\"subscription\":\"sub_new\"}},\"period_end\":100,\"lines\":"
	    "{\"data\":[{\"period\":{\"end\":500}},{\"period\":{\"end\":900}}]}}}}",
	    &rc);
	CHECK(rc == BM_ACTION && eq(str(a, "op"), "renew"));
	CHECK(eq(str(a, "sub"), "sub_new") && num(a, "period_end") == 900);
	json_object_put(a);
	/* only the line names it */
	a = map("stripe", "invoice.payment_failed", "{\"data\":{\"object\":"
	    "{\"parent\":null,\"lines\":{\"data\":[{\"parent\":{\"type\":"
	    "\"subscription_item_details\",\"subscription_item_details\":"
	    "{\"subscription\":\"sub_line\"}}}]}}}}", &rc);
	CHECK(rc == BM_ACTION && eq(str(a, "op"), "payment_failed"));
	CHECK(eq(str(a, "sub"), "sub_line"));
	json_object_put(a);
	/* up to 2025-02-24.acacia */
	a = map("stripe", "invoice.paid", "{\"data\":{\"object\":{\"subscription\":"
	    "\"sub_old\",\"lines\":{\"data\":[{\"period\":{\"end\":700}}]}}}}", &rc);
	CHECK(rc == BM_ACTION && eq(str(a, "sub"), "sub_old") &&
	    num(a, "period_end") == 700);
	json_object_put(a);
	/* a one-off invoice, either shape: not about a subscription */
	a = map("stripe", "invoice.paid", "{\"data\":{\"object\":{\"parent\":null,"
	    "\"lines\":{\"data\":[{\"parent\":null,\"period\":{\"end\":1}}]}}}}",
	    &rc);
	CHECK(rc == BM_IGNORE && a == NULL);
	a = map("stripe", "invoice.paid", "{\"data\":{\"object\":{\"subscription\":"
	    "null,\"lines\":{\"data\":[]}}}}", &rc);
	CHECK(rc == BM_IGNORE && a == NULL);
	/* a shape licd does not know */
	a = map("stripe", "invoice.paid", "{\"data\":{\"object\":{\"billing\":"
	    "{\"sub\":\"sub_x\"},\"lines\":{\"data\":[{\"period\":{\"end\":1}}]}}}}",
	    &rc);
	CHECK(rc == BM_UNMAPPED && a == NULL);
	a = map("stripe", "invoice.paid", "[]", &rc);
	CHECK(rc == BM_UNMAPPED && a == NULL);
}

static void test_stripe_subscription(void)
{
	struct json_object *a, *v;
	int rc;

	a = map("stripe", "customer.subscription.updated", "{\"data\":{\"object\":"
	    "{\"id\":\"sub_1\",\"status\":\"active\",\"cancel_at_period_end\":true,"
	    "\"items\":{\"data\":[{\"current_period_end\":300,\"price\":{\"id\":"
	    "\"price_a\"}},{\"current_period_end\":400,\"price\":{\"id\":"
	    "\"price_b\"}}]}}}}", &rc);
	CHECK(rc == BM_ACTION && eq(str(a, "op"), "update"));
	CHECK(num(a, "period_end") == 400);
	CHECK(json_object_object_get_ex(a, "prices", &v) &&
	    json_object_array_length(v) == 2 && eq(json_object_get_string(
	    json_object_array_get_idx(v, 1)), "price_b"));
	CHECK(json_object_object_get_ex(a, "cancel_at_period_end", &v) &&
	    json_object_get_boolean(v));
	json_object_put(a);
	a = map("stripe", "customer.subscription.deleted", "{\"data\":{\"object\":"
	    "{\"id\":\"sub_1\",\"current_period_end\":250}}}", &rc);
	CHECK(rc == BM_ACTION && eq(str(a, "op"), "cancel") &&
	    num(a, "ends_at") == 250);
	json_object_put(a);
	a = map("stripe", "customer.subscription.deleted", "{\"data\":{\"object\":"
	    "{\"items\":{\"data\":[]}}}}", &rc);
	CHECK(rc == BM_UNMAPPED);
}

static void test_stripe_checkout(void)
{
	struct json_object *a;
	int rc;

	a = map("stripe", "checkout.session.completed", "{\"data\":{\"object\":"
	    "{\"id\":\"cs_1\",\"payment_status\":\"paid\",\"subscription\":"
	    "\"sub_9\",\"customer\":\"cus_9\",\"customer_details\":{\"email\":"
	    "\"b@example.com\"},\"client_reference_id\":\"enterprise\","
	    "\"metadata\":{\"licd_plan\":\"enterprise\",\"licd_license\":\"x\"}}}}",
	    &rc);
	CHECK(rc == BM_ACTION && eq(str(a, "op"), "issue"));
	CHECK(eq(str(a, "session"), "cs_1") && eq(str(a, "sub"), "sub_9"));
	CHECK(eq(str(a, "email"), "b@example.com"));
	/* nothing the buyer sets is carried */
	CHECK(str(a, "plan") == NULL && str(a, "target_license") == NULL);
	CHECK(json_object_object_length(a) == 5);
	json_object_put(a);
	a = map("stripe", "checkout.session.completed", "{\"data\":{\"object\":"
	    "{\"id\":\"cs_1\",\"payment_status\":\"unpaid\"}}}", &rc);
	CHECK(rc == BM_IGNORE && a == NULL);
	a = map("stripe", "charge.refunded", "{\"data\":{}}", &rc);
	CHECK(rc == BM_IGNORE && a == NULL);
}

static void test_paddle(void)
{
	struct json_object *a, *v;
	int rc;

	a = map("paddle", "transaction.completed", "{\"data\":{\"id\":\"txn_1\","
	    "\"subscription_id\":\"sub_1\",\"customer_id\":\"ctm_1\",\"items\":"
	    "[{\"price\":{\"id\":\"pri_1\"}}],\"custom_data\":{\"licd_plan\":\"x\","
	    "\"email\":\"victim@example.com\",\"licd_license\":\"y\"},"
	    "\"billing_period\":{\"ends_at\":\"2027-01-01T00:00:00Z\"}}}", &rc);
	CHECK(rc == BM_ACTION && eq(str(a, "op"), "issue"));
	CHECK(eq(str(a, "session"), "txn_1") && eq(str(a, "sub"), "sub_1"));
	CHECK(eq(str(a, "customer_ref"), "ctm_1"));
	CHECK(str(a, "email") == NULL && str(a, "plan") == NULL);
	CHECK(json_object_object_get_ex(a, "prices", &v) &&
	    eq(json_object_get_string(json_object_array_get_idx(v, 0)), "pri_1"));
	CHECK(eq(str(a, "period_end_at"), "2027-01-01T00:00:00Z"));
	json_object_put(a);
	a = map("paddle", "subscription.updated", "{\"data\":{\"id\":\"sub_1\","
	    "\"scheduled_change\":{\"action\":\"cancel\"}}}", &rc);
	CHECK(rc == BM_ACTION && json_object_object_get_ex(a,
	    "cancel_at_period_end", &v) && json_object_get_boolean(v));
	json_object_put(a);
	a = map("paddle", "subscription.updated", "{\"data\":{\"id\":\"sub_1\","
	    "\"scheduled_change\":null}}", &rc);
	CHECK(rc == BM_ACTION && json_object_object_get_ex(a,
	    "cancel_at_period_end", &v) && !json_object_get_boolean(v));
	json_object_put(a);
	a = map("paddle", "transaction.completed", "{\"data\":{\"id\":\"txn_1\","
	    "\"customer_id\":\"ctm_1\"}}", &rc);
	CHECK(rc == BM_UNMAPPED && a == NULL);
	a = map("paddle", "transaction.completed", "{\"data\":{\"id\":\"txn_1\","
	    "\"customer_id\":\"ctm_1\",\"items\":null}}", &rc);
	CHECK(rc == BM_IGNORE && a == NULL);
}

int main(void)
{
	test_stripe_invoice();
	test_stripe_subscription();
	test_stripe_checkout();
	test_paddle();
	UNIT_DONE("billmap");
}
