/* Request bodies: parse, then read every field the handlers read. */
#include "json.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_object *o = NULL, *m;
	struct js_err e;
	const char *s;
	long long n;

	if (js_parse_object((const char *)data, size, &o, &e) != 0)
		return 0;
	js_string(o, "license_key", 1, 1, 16384, JS_TEXT, &s, &e);
	js_string(o, "installation_id", 1, 1, 128, JS_ID, &s, &e);
	js_string(o, "domain", 0, 1, 254, JS_HOST, &s, &e);
	js_string(o, "feature", 0, 1, 64, JS_TOKEN, &s, &e);
	js_int(o, "quantity", 0, 1, 1000000, 1, &n, &e);
	js_object(o, "metadata", 2048, &m, &e);
	js_path(o, "data.object.items.data.0.price.id");
	json_object_put(o);
	return 0;
}
