/* Provider events -> actions: any JSON under every event type. */
#include "billmap.h"

#include <stdint.h>
#include <stdlib.h>

static const char *const types[][2] = {
	{ "stripe", "checkout.session.completed" },
	{ "stripe", "invoice.paid" },
	{ "stripe", "customer.subscription.updated" },
	{ "stripe", "customer.subscription.deleted" },
	{ "stripe", "customer.updated" },
	{ "paddle", "subscription.created" },
	{ "paddle", "transaction.completed" },
	{ "paddle", "subscription.updated" },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_tokener *tok = json_tokener_new_ex(64);
	struct json_object *ev, *a;
	char why[128];
	size_t i;

	if (tok == NULL)
		return 0;
	ev = json_tokener_parse_ex(tok, (const char *)data, (int)size);
	json_tokener_free(tok);
	if (ev == NULL)
		return 0;
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		a = NULL;
		if (bm_map(types[i][0], ev, types[i][1], &a, why, sizeof(why)) ==
		    BM_ACTION && a == NULL)
			abort();
		json_object_put(a);
	}
	json_object_put(ev);
	return 0;
}
