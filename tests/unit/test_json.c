/* Request body parsing and field validation. */
#include "json.h"
#include "unit.h"

#include <string.h>

static int parse(const char *s, struct json_object **o)
{
	struct js_err e;

	return js_parse_object(s, strlen(s), o, &e);
}

static void test_parse(void)
{
	struct json_object *o = NULL;
	struct js_err e;
	const char nul[] = "{\"a\":1}\0";

	CHECK(parse("{\"a\":1}", &o) == 0 && o != NULL);
	json_object_put(o);
	CHECK(parse("  {\"a\": [1, 2]}\n", &o) == 0);
	json_object_put(o);
	CHECK(parse("", &o) == -1 && o == NULL);
	CHECK(parse("{", &o) == -1);
	CHECK(parse("{\"a\":1}}", &o) == -1);
	CHECK(parse("{\"a\":1} x", &o) == -1);
	CHECK(parse("[1,2]", &o) == -1);
	CHECK(parse("\"str\"", &o) == -1);
	CHECK(parse("null", &o) == -1);
	CHECK(parse("{\"a\":01}", &o) == -1);
	CHECK(parse("{\"a\":\"\xff\xfe\"}", &o) == -1);
	CHECK(parse("{\"a\":\"\xc0\xaf\"}", &o) == -1);
	CHECK(js_parse_object(nul, sizeof(nul) - 1, &o, &e) == -1);
	CHECK(parse("{\"a\":1}", &o) == 0);	/* tokener reset after errors */
	json_object_put(o);
}

static void test_utf8(void)
{
	CHECK(js_utf8_valid("plain", 5));
	CHECK(js_utf8_valid("caf\xc3\xa9", 5));
	CHECK(js_utf8_valid("\xe2\x82\xac", 3));
	CHECK(js_utf8_valid("\xf0\x9f\x98\x80", 4));
	CHECK(!js_utf8_valid("\xc3", 1));
	CHECK(!js_utf8_valid("\xe2\x82", 2));
	CHECK(!js_utf8_valid("\xed\xa0\x80", 3));	/* surrogate */
	CHECK(!js_utf8_valid("\xe0\x80\xaf", 3));	/* overlong */
	CHECK(!js_utf8_valid("\xf4\x90\x80\x80", 4));	/* > U+10FFFF */
	CHECK(!js_utf8_valid("\x80", 1));
	/* ASCII is taken eight bytes at a time: whatever follows it, at
	 * any offset, is still checked, and a sequence may straddle. */
	CHECK(js_utf8_valid("0123456789abcdef", 16));
	CHECK(js_utf8_valid("0123456\xc3\xa9" "789abcdef", 18));
	CHECK(js_utf8_valid("01234567\xf0\x9f\x98\x80" "abcdefgh", 20));
	CHECK(!js_utf8_valid("01234567\x80", 9));
	CHECK(!js_utf8_valid("0123456789abcdef\xc3", 17));
	CHECK(!js_utf8_valid("0123456\xe0\x80\xaf" "89abcdef", 18));
	CHECK(!js_utf8_valid("0123456789abcde\xed\xa0\x80", 18));
	CHECK(js_utf8_valid("0123456789abcdef", 12));	/* up to len only */
}

static void test_put(void)
{
	struct json_object *o = json_object_new_object();
	struct json_object *i = json_object_new_object();
	struct json_object *v;

	js_put(o, "valid", json_object_new_boolean(1));
	js_put(o, "code", json_object_new_string("VALID"));
	js_put(i, "id", json_object_new_string("a\"b"));
	js_put(i, "last_seen", NULL);
	js_put(o, "installation", i);
	CHECK(strcmp(js_dump(o, NULL), "{\"valid\":true,\"code\":\"VALID\","
	    "\"installation\":{\"id\":\"a\\\"b\",\"last_seen\":null}}") == 0);
	CHECK(json_object_object_get_ex(o, "code", &v) &&
	    strcmp(json_object_get_string(v), "VALID") == 0);
	/* an ordinary add of the same key still replaces the member */
	json_object_object_add(o, "code", json_object_new_string("REVOKED"));
	CHECK(json_object_object_length(o) == 3);
	CHECK(json_object_object_get_ex(o, "code", &v) &&
	    strcmp(json_object_get_string(v), "REVOKED") == 0);
	json_object_put(o);
	/* a JWS is copied as it is; anything json-c escapes is escaped */
	o = json_object_new_object();
	js_put(o, "a", js_new_plain("eyJ0.eyJp-_x.c2ln"));
	js_put(o, "b", js_new_plain("x\"y\\z/\n\x7f"));
	js_put(o, "c", js_new_plain(""));
	CHECK(strcmp(js_dump(o, NULL), "{\"a\":\"eyJ0.eyJp-_x.c2ln\","
	    "\"b\":\"x\\\"y\\\\z/\\n\x7f\",\"c\":\"\"}") == 0);
	CHECK(json_object_object_get_ex(o, "a", &v) &&
	    strcmp(json_object_get_string(v), "eyJ0.eyJp-_x.c2ln") == 0);
	json_object_put(o);
}

static void test_fields(void)
{
	struct json_object *o = NULL;
	struct js_err e;
	const char *s;
	long long n;
	struct json_object *m;

	CHECK(parse("{\"iid\":\"host-1.a:b_c\",\"bad\":\"a b\",\"num\":5,"
	    "\"str\":\"x\",\"f\":1.5,\"big\":99999999999999999999,"
	    "\"nul\":\"a\\u0000b\",\"sur\":\"\\ud800\",\"meta\":{\"h\":\"x\"},"
	    "\"arr\":[1],\"ctl\":\"a\\nb\",\"neg\":-1}", &o) == 0);
	CHECK(js_string(o, "iid", 1, 1, 128, JS_ID, &s, &e) == 0 &&
	    strcmp(s, "host-1.a:b_c") == 0);
	CHECK(js_string(o, "bad", 1, 1, 128, JS_ID, &s, &e) == -1 &&
	    strcmp(e.code, "INVALID_FIELD") == 0);
	CHECK(js_string(o, "missing", 1, 1, 128, JS_ID, &s, &e) == -1 &&
	    strcmp(e.code, "MISSING_FIELD") == 0 && strstr(e.msg, "missing"));
	CHECK(js_string(o, "missing", 0, 1, 128, JS_ID, &s, &e) == 0 &&
	    s == NULL);
	CHECK(js_string(o, "num", 1, 1, 128, JS_TEXT, &s, &e) == -1 &&
	    strcmp(e.code, "INVALID_FIELD") == 0);
	CHECK(js_string(o, "str", 1, 2, 128, JS_TEXT, &s, &e) == -1);
	CHECK(js_string(o, "nul", 1, 1, 128, JS_TEXT, &s, &e) == -1);
	/* json-c turns a lone surrogate escape into U+FFFD: valid text */
	CHECK(js_string(o, "sur", 1, 1, 128, JS_TEXT, &s, &e) == -1 ||
	    strcmp(s, "\xef\xbf\xbd") == 0);
	CHECK(js_string(o, "ctl", 1, 1, 128, JS_TEXT, &s, &e) == -1);
	CHECK(js_int(o, "num", 1, 1, 10, 1, &n, &e) == 0 && n == 5);
	CHECK(js_int(o, "num", 1, 6, 10, 1, &n, &e) == -1);
	CHECK(js_int(o, "neg", 1, 1, 10, 1, &n, &e) == -1);
	CHECK(js_int(o, "f", 1, 1, 10, 1, &n, &e) == -1);
	CHECK(js_int(o, "str", 1, 1, 10, 1, &n, &e) == -1);
	CHECK(js_int(o, "big", 1, 1, 1000000, 1, &n, &e) == -1);
	CHECK(js_int(o, "absent", 0, 1, 10, 7, &n, &e) == 0 && n == 7);
	CHECK(js_object(o, "meta", 2048, &m, &e) == 0 && m != NULL);
	CHECK(js_object(o, "meta", 4, &m, &e) == -1);
	CHECK(js_object(o, "arr", 2048, &m, &e) == -1);
	json_object_put(o);
}

static void test_path(void)
{
	struct json_object *o = json_tokener_parse(
	    "{\"data\":{\"object\":{\"id\":\"cs_1\",\"n\":5,"
	    "\"items\":{\"data\":[{\"price\":{\"id\":\"p1\"}}]}}}}");

	CHECK(strcmp(js_path_str(o, "data.object.id"), "cs_1") == 0);
	CHECK(js_path_str(o, "data.object.n") == NULL);
	CHECK(js_path(o, "data.object.n") != NULL);
	CHECK(strcmp(js_path_str(o, "data.object.items.data.0.price.id"),
	    "p1") == 0);
	CHECK(js_path(o, "data.object.items.data.1.price.id") == NULL);
	CHECK(js_path(o, "data.object.items.data.x") == NULL);
	CHECK(js_path(o, "data..object") == NULL);
	CHECK(js_path(o, "nope.id") == NULL);
	json_object_put(o);
}

/* PostgreSQL's jsonb text, through the thread's reused tokener: a failed
 * parse leaves nothing behind for the next. */
static void test_from_text(void)
{
	struct json_object *o;
	int i;

	for (i = 0; i < 3; i++) {
		o = js_from_text("{\"installations\": 3, \"seats\": [1, 2]}");
		CHECK(o != NULL && json_object_is_type(o, json_type_object));
		CHECK(json_object_get_int(js_path(o, "installations")) == 3);
		CHECK(json_object_array_length(js_path(o, "seats")) == 2);
		json_object_put(o);
		CHECK(js_from_text("{\"a\": [1, 2") == NULL);
		CHECK(js_from_text("{\"a\": tru}") == NULL);
	}
	o = js_from_text("[\"sso\", \"reports\"]");
	CHECK(o != NULL && json_object_array_length(o) == 2);
	json_object_put(o);
	CHECK(js_from_text("") == NULL);
	CHECK(js_from_text(NULL) == NULL);
	/* the empty ones, taken without a parse, are what a parse gives */
	o = js_from_text("[]");
	CHECK(o != NULL && json_object_is_type(o, json_type_array) &&
	    json_object_array_length(o) == 0 &&
	    strcmp(js_dump(o, NULL), "[]") == 0);
	json_object_array_add(o, json_object_new_int(1));
	CHECK(strcmp(js_dump(o, NULL), "[1]") == 0);
	json_object_put(o);
	o = js_from_text("{}");
	CHECK(o != NULL && json_object_is_type(o, json_type_object) &&
	    json_object_object_length(o) == 0 &&
	    strcmp(js_dump(o, NULL), "{}") == 0);
	json_object_put(o);
	CHECK(js_from_text("[] x") == NULL);
	js_thread_end();
}

/* validate's domain: one trailing dot and case normalised before the
 * length is checked, the limit the database's. */
static void test_host(void)
{
	struct json_object *o;
	struct js_err e;
	const char *h;
	char buf[600], l63[64];

	memset(l63, 'a', 63);
	l63[63] = '\0';
	/* 253 characters and a trailing dot: 254 sent, 253 kept */
	snprintf(buf, sizeof(buf), "{\"domain\":\"%s.%s.%s.%.61s.\"}", l63,
	    l63, l63, l63);
	CHECK(parse(buf, &o) == 0);
	CHECK(js_host(o, "domain", 0, &h, &e) == 0 && h != NULL &&
	    strlen(h) == 253 && h[252] == 'a');
	CHECK(strcmp(js_path_str(o, "domain"), h) == 0);
	json_object_put(o);
	/* 254 without the dot: refused as a field, not by the database */
	snprintf(buf, sizeof(buf), "{\"domain\":\"%s.%s.%s.%.62s\"}", l63,
	    l63, l63, l63);
	CHECK(parse(buf, &o) == 0);
	CHECK(js_host(o, "domain", 0, &h, &e) == -1 && h == NULL &&
	    strcmp(e.code, "INVALID_FIELD") == 0);
	json_object_put(o);
	snprintf(buf, sizeof(buf), "{\"domain\":\"%sa.com\"}", l63);
	CHECK(parse(buf, &o) == 0);
	CHECK(js_host(o, "domain", 0, &h, &e) == -1);	/* label of 64 */
	json_object_put(o);
	CHECK(parse("{\"domain\":\"App.Example.COM.\"}", &o) == 0);
	CHECK(js_host(o, "domain", 1, &h, &e) == 0 &&
	    strcmp(h, "app.example.com") == 0);
	json_object_put(o);
	CHECK(parse("{\"domain\":\"localhost\"}", &o) == 0);
	CHECK(js_host(o, "domain", 1, &h, &e) == 0 &&
	    strcmp(h, "localhost") == 0);
	json_object_put(o);
	CHECK(parse("{\"domain\":\"a..b\",\"d2\":\".\",\"d3\":\".a\","
	    "\"d4\":\"a..\",\"d5\":\"a_b\",\"d6\":\"\"}", &o) == 0);
	CHECK(js_host(o, "domain", 0, &h, &e) == -1);
	CHECK(js_host(o, "d2", 0, &h, &e) == -1);
	CHECK(js_host(o, "d3", 0, &h, &e) == -1);
	CHECK(js_host(o, "d4", 0, &h, &e) == -1);
	CHECK(js_host(o, "d5", 0, &h, &e) == -1);
	CHECK(js_host(o, "d6", 0, &h, &e) == -1);
	CHECK(js_host(o, "absent", 0, &h, &e) == 0 && h == NULL);
	CHECK(js_host(o, "absent", 1, &h, &e) == -1 &&
	    strcmp(e.code, "MISSING_FIELD") == 0);
	json_object_put(o);
}

/* A provider's event with \u0000 goes into a jsonb column. */
static void test_dump_jsonb(void)
{
	struct json_object *o;

	CHECK(parse("{\"a\":\"x\\u0000y\",\"b\":\"\\\\u0000\","
	    "\"k\\u0000\":[\"\\u0000\"]}", &o) == 0);
	CHECK(strcmp(js_dump_jsonb(o, NULL),
	    "{\"a\":\"x\\ufffdy\",\"b\":\"\\\\u0000\","
	    "\"k\":[\"\\ufffd\"]}") == 0);
	json_object_put(o);
}

int main(void)
{
	test_host();
	test_dump_jsonb();
	test_path();
	test_from_text();
	test_parse();
	test_utf8();
	test_put();
	test_fields();
	UNIT_DONE("json");
}
