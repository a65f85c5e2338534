/*
 * json: request-body parsing and typed field access on top of json-c.
 * Prefix js_ (json-c owns json_). Every string handed to a handler is valid
 * UTF-8 without NUL bytes, so it can go to PostgreSQL and logs unchanged.
 */
#ifndef LICD_JSON_H
#define LICD_JSON_H

#include <stddef.h>
#include <json-c/json.h>

/* Field error: the contract's code and a message naming the field. */
struct js_err {
	const char *code;	/* MISSING_FIELD, INVALID_FIELD, MALFORMED_JSON */
	char msg[192];
};

/* Character classes a string field may be restricted to. */
enum js_class {
	JS_TEXT,	/* any UTF-8 text without control characters */
	JS_ID,		/* [A-Za-z0-9._:-] installation ids */
	JS_TOKEN,	/* [A-Za-z0-9._-] keys, slugs, idempotency keys */
	JS_HOST,	/* [A-Za-z0-9.-] host names, trailing dot allowed */
};

/* Frees this thread's parser (call when a worker thread ends). */
void js_thread_end(void);

/* Parses one JSON object from buf. 0 on success (*out owned by caller),
 * -1 with err filled (MALFORMED_JSON) otherwise. Uses a per-thread
 * tokener. */
int js_parse_object(const char *buf, size_t len, struct json_object **out,
    struct js_err *err);

/* String field: *out NULL when absent and !required. 0 ok, -1 err. */
int js_string(struct json_object *obj, const char *name, int required,
    size_t minlen, size_t maxlen, enum js_class cls, const char **out,
    struct js_err *err);

/* A string field's rules, for fields that several requests share
 * (lic.h's LIC_F_*): js_field is js_string with them. */
struct js_field {
	const char *name;
	size_t minlen, maxlen;
	enum js_class cls;
};
int js_field(struct json_object *obj, const struct js_field *f,
    int required, const char **out, struct js_err *err);

/* A host name field (validate's domain): [A-Za-z0-9.-], one trailing
 * dot allowed, normalised to lower case without that dot (the field is
 * replaced in obj, *out points into it), then 1-JS_HOST_MAX characters in
 * labels of 1-63. The limit is the installations.domain column's. */
#define JS_HOST_MAX 253
int js_host(struct json_object *obj, const char *name, int required,
    const char **out, struct js_err *err);

/* Integer field in [min, max]; absent and !required gives def. Floats,
 * strings and out-of-range numbers are INVALID_FIELD. */
int js_int(struct json_object *obj, const char *name, int required,
    long long min, long long max, long long def, long long *out,
    struct js_err *err);

/* Object field whose serialised size is at most maxbytes; *out borrowed. */
int js_object(struct json_object *obj, const char *name, size_t maxbytes,
    struct json_object **out, struct js_err *err);

/* 1 when s[0..len) is valid UTF-8 (no overlongs, no surrogates). */
int js_utf8_valid(const char *s, size_t len);

/* Adds key: v to obj, which has no member key yet, where key outlives obj
 * (a string literal): json-c neither looks it up nor copies it. An
 * answer is built of such members. */
void js_put(struct json_object *obj, const char *key, struct json_object *v);

/* A JSON string of s, which serialisation copies as it is when none of
 * its characters needs an escape (a JWS: base64url and dots), instead of
 * json-c's pass over every character; an ordinary string otherwise. */
struct json_object *js_new_plain(const char *s);

/* Compact serialisation; the string lives as long as obj. */
const char *js_dump(struct json_object *obj, size_t *len);
/* The same for a jsonb value: PostgreSQL's jsonb cannot hold U+0000, so
 * a \u0000 in any string (a provider's event may carry one) is written
 * as \ufffd instead of failing the statement. */
const char *js_dump_jsonb(struct json_object *obj, size_t *len);

/* The value at a dotted path ("data.object.id"; a numeric segment indexes
 * an array), borrowed; NULL if any step is missing. js_path_str gives a
 * string value only. */
struct json_object *js_path(struct json_object *o, const char *path);
const char *js_path_str(struct json_object *o, const char *path);

/* Parses a trusted JSON text (from PostgreSQL); NULL on failure. */
struct json_object *js_from_text(const char *s);

#endif
