/* seat_items(): the p_items argument of licd_seat_batch, one entry per
 * seat write with its ordinal and mode ("take" or "renew"), absent fields
 * as JSON null (never an empty string), a renewal without the request's
 * domain and feature (licd_seat checks them only on a take), metadata as
 * the string it was given, "w": false on every item only when sent again
 * without waiting. seat_join() while no seat batch runs: refused, w
 * neither queued nor answered (the caller then submits it). */
#include "seat.h"
#include "unit.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

static int joined_answered;

static void joined_then(struct seat_write *w, struct db *db)
{
	(void)w;
	(void)db;
	joined_answered++;
}

static const char *str(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, k, &v))
		return "<absent>";
	return v == NULL ? NULL : json_object_get_string(v);
}

int main(void)
{
	struct seat_write a = { 0 }, b = { 0 }, *both[2] = { &a, &b };
	struct json_object *arr, *e, *v;
	char *text;

	a.license = "11111111-1111-4111-8111-111111111111";
	a.iid = "host-1";
	a.take = 1;
	a.version = "1.2.3";
	a.metadata = "{\"hostname\":\"h\\\"1\"}";
	a.domain = "a.example";
	a.feature = "sso";
	b.license = "22222222-2222-4222-8222-222222222222";
	b.iid = "host:2";
	b.version = "2.0";
	b.domain = "b.example";
	b.feature = "api";

	arr = seat_items(both, 2, 1);
	CHECK(json_object_is_type(arr, json_type_array));
	CHECK(json_object_array_length(arr) == 2);
	e = json_object_array_get_idx(arr, 0);
	CHECK(json_object_object_get_ex(e, "o", &v) &&
	    json_object_get_int(v) == 0);
	CHECK(strcmp(str(e, "l"), a.license) == 0);
	CHECK(strcmp(str(e, "i"), "host-1") == 0);
	CHECK(strcmp(str(e, "s"), "take") == 0);
	CHECK(strcmp(str(e, "v"), "1.2.3") == 0);
	CHECK(strcmp(str(e, "m"), a.metadata) == 0);
	CHECK(strcmp(str(e, "d"), "a.example") == 0);
	CHECK(strcmp(str(e, "f"), "sso") == 0);
	CHECK(strcmp(str(e, "w"), "<absent>") == 0);
	e = json_object_array_get_idx(arr, 1);
	CHECK(json_object_object_get_ex(e, "o", &v) &&
	    json_object_get_int(v) == 1);
	CHECK(strcmp(str(e, "i"), "host:2") == 0);
	CHECK(strcmp(str(e, "s"), "renew") == 0);
	CHECK(strcmp(str(e, "v"), "2.0") == 0);
	CHECK(str(e, "m") == NULL);
	CHECK(str(e, "d") == NULL);
	CHECK(str(e, "f") == NULL);
	/* The text PostgreSQL parses: the metadata stays one string. */
	text = strdup(json_object_to_json_string(arr));
	json_object_put(arr);
	arr = json_tokener_parse(text);
	free(text);
	CHECK(arr != NULL && strcmp(str(json_object_array_get_idx(arr, 0),
	    "m"), a.metadata) == 0);
	json_object_put(arr);
	/* Sent again without waiting: every item says so. */
	arr = seat_items(both, 2, 0);
	CHECK(json_object_object_get_ex(json_object_array_get_idx(arr, 0), "w",
	    &v) && v != NULL && !json_object_get_boolean(v));
	CHECK(json_object_object_get_ex(json_object_array_get_idx(arr, 1), "w",
	    &v) && v != NULL && !json_object_get_boolean(v));
	json_object_put(arr);
	arr = seat_items(both, 0, 1);
	CHECK(json_object_array_length(arr) == 0);
	json_object_put(arr);
	a.then = joined_then;
	CHECK(seat_join(&a) == 0);
	CHECK(joined_answered == 0 && a.it.next == NULL);
	UNIT_DONE("seat");
}
