/* activate_items(): the p_items argument of licd_activate_batch, one entry
 * per activation with its ordinal, absent fields as JSON null (never an
 * empty string), metadata as the string it was given, the request's rules
 * on, "w": false on every item only when sent again without waiting,
 * "h" only for an installation not read first;
 * and decide_written's reading of the codes the batch answers. */
#include "activate.h"
#include "decide.h"
#include "unit.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

static const char *str(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, k, &v))
		return "<absent>";
	return v == NULL ? NULL : json_object_get_string(v);
}

int main(void)
{
	struct activation a = { 0 }, b = { 0 }, *both[2] = { &a, &b };
	struct json_object *arr, *e, *v;
	struct decision d;
	char *text;

	a.license = "11111111-1111-4111-8111-111111111111";
	a.iid = "host-1";
	a.version = "1.2.3";
	a.metadata = "{\"hostname\":\"h\\\"1\"}";
	a.domain = "a.example";
	a.feature = "sso";
	b.license = "22222222-2222-4222-8222-222222222222";
	b.iid = "host:2";
	a.unread = 1;

	arr = activate_items(both, 2, 1);
	CHECK(json_object_is_type(arr, json_type_array));
	CHECK(json_object_array_length(arr) == 2);
	e = json_object_array_get_idx(arr, 0);
	CHECK(json_object_object_get_ex(e, "o", &v) &&
	    json_object_get_int(v) == 0);
	CHECK(strcmp(str(e, "l"), a.license) == 0);
	CHECK(strcmp(str(e, "i"), "host-1") == 0);
	CHECK(strcmp(str(e, "v"), "1.2.3") == 0);
	CHECK(strcmp(str(e, "m"), a.metadata) == 0);
	CHECK(strcmp(str(e, "d"), "a.example") == 0);
	CHECK(strcmp(str(e, "f"), "sso") == 0);
	CHECK(json_object_object_get_ex(e, "c", &v) &&
	    json_object_get_boolean(v));
	/* not read first: an active one keeps its seat */
	CHECK(json_object_object_get_ex(e, "h", &v) &&
	    json_object_get_boolean(v));
	e = json_object_array_get_idx(arr, 1);
	CHECK(strcmp(str(e, "h"), "<absent>") == 0);
	CHECK(json_object_object_get_ex(e, "o", &v) &&
	    json_object_get_int(v) == 1);
	CHECK(strcmp(str(e, "i"), "host:2") == 0);
	CHECK(str(e, "v") == NULL);
	CHECK(str(e, "m") == NULL);
	CHECK(str(e, "d") == NULL);
	CHECK(str(e, "f") == NULL);
	CHECK(strcmp(str(e, "w"), "<absent>") == 0);
	/* The text PostgreSQL parses: the metadata stays one string. */
	text = strdup(json_object_to_json_string(arr));
	json_object_put(arr);
	arr = json_tokener_parse(text);
	free(text);
	CHECK(arr != NULL && strcmp(str(json_object_array_get_idx(arr, 0),
	    "m"), a.metadata) == 0);
	json_object_put(arr);
	/* Sent again without waiting: every item says so. */
	arr = activate_items(both, 2, 0);
	CHECK(json_object_object_get_ex(json_object_array_get_idx(arr, 0), "w",
	    &v) && v != NULL && !json_object_get_boolean(v));
	CHECK(json_object_object_get_ex(json_object_array_get_idx(arr, 1), "w",
	    &v) && v != NULL && !json_object_get_boolean(v));
	json_object_put(arr);
	arr = activate_items(both, 0, 1);
	CHECK(json_object_array_length(arr) == 0);
	CHECK(strcmp(json_object_to_json_string(arr), "[ ]") == 0 ||
	    strcmp(json_object_to_json_string(arr), "[]") == 0);
	json_object_put(arr);

	/* The codes the batch may answer, folded into an activation's
	 * decision. */
	d = (struct decision){ "VALID", DECIDE_ACTIVATE, 0, 0, 1 };
	decide_written(&d, "TOO_MANY_INSTALLATIONS");
	CHECK(strcmp(d.code, "TOO_MANY_INSTALLATIONS") == 0 && !d.active &&
	    !d.lease);
	d = (struct decision){ "VALID", DECIDE_ACTIVATE, 0, 0, 1 };
	decide_written(&d, "DOMAIN_NOT_ALLOWED");
	CHECK(strcmp(d.code, "DOMAIN_NOT_ALLOWED") == 0 && !d.lease);
	d = (struct decision){ "VALID", DECIDE_ACTIVATE, 0, 0, 1 };
	decide_written(&d, "FEATURE_NOT_LICENSED");
	CHECK(strcmp(d.code, "FEATURE_NOT_LICENSED") == 0 && !d.lease);
	d = (struct decision){ "VALID", DECIDE_ACTIVATE, 0, 0, 0 };
	decide_written(&d, "VALID");
	CHECK(strcmp(d.code, "VALID") == 0 && d.active && d.lease);
	CHECK(decide_code("NOT_FLOATING") != NULL);
	UNIT_DONE("activate");
}
