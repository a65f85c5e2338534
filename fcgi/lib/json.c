/* json: see json.h. */
#include "json.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/printbuf.h>

static _Thread_local struct json_tokener *js_tok;

static struct json_tokener *tokener(void)
{
	if (js_tok == NULL) {
		js_tok = json_tokener_new_ex(16);
		if (js_tok != NULL)
			json_tokener_set_flags(js_tok,
			    JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	}
	return js_tok;
}

void js_thread_end(void)
{
	if (js_tok != NULL)
		json_tokener_free(js_tok);
	js_tok = NULL;
}

static int fail(struct js_err *err, const char *code, const char *fmt,
    const char *name)
{
	err->code = code;
	snprintf(err->msg, sizeof(err->msg), fmt, name);
	return -1;
}

int js_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		unsigned int cp;
		uint64_t w;
		size_t n, k;

		/* A request is nearly all ASCII: eight bytes at a time while
		 * none has its high bit set. */
		if (i + 8 <= len) {
			memcpy(&w, s + i, 8);
			if ((w & 0x8080808080808080ULL) == 0) {
				i += 8;
				continue;
			}
		}
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		for (k = 1; k <= n; k++) {
			if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

int js_parse_object(const char *buf, size_t len, struct json_object **out,
    struct js_err *err)
{
	struct json_tokener *tok = tokener();
	struct json_object *o;
	size_t off;

	*out = NULL;
	if (tok == NULL)
		return fail(err, "INTERNAL", "%s", "out of memory");
	if (len == 0)
		return fail(err, "MALFORMED_JSON", "%s", "empty body");
	/* json-c's VALIDATE_UTF8 lets overlong forms through: check the raw
	 * bytes ourselves. Escapes are checked per field. */
	if (!js_utf8_valid(buf, len))
		return fail(err, "MALFORMED_JSON", "%s",
		    "request body is not valid UTF-8");
	json_tokener_reset(tok);
	o = json_tokener_parse_ex(tok, buf, (int)len);
	if (o == NULL || json_tokener_get_error(tok) != json_tokener_success) {
		if (o != NULL)
			json_object_put(o);
		return fail(err, "MALFORMED_JSON", "%s",
		    "request body is not valid JSON");
	}
	off = tok->char_offset;
	while (off < len && (buf[off] == ' ' || buf[off] == '\n' ||
	    buf[off] == '\r' || buf[off] == '\t'))
		off++;
	if (off != len) {
		json_object_put(o);
		return fail(err, "MALFORMED_JSON", "%s",
		    "trailing data after the JSON value");
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return fail(err, "MALFORMED_JSON", "%s",
		    "request body must be a JSON object");
	}
	*out = o;
	return 0;
}

static int class_ok(enum js_class cls, const char *s, size_t len)
{
	size_t i;

	if (cls == JS_TEXT) {	/* license keys: the long fields */
		for (i = 0; i < len; i++)
			if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
				return 0;
		return 1;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9');

		switch (cls) {
		case JS_TEXT:
			break;
		case JS_ID:
			if (!alnum && c != '.' && c != '_' && c != ':' &&
			    c != '-')
				return 0;
			break;
		case JS_TOKEN:
			if (!alnum && c != '.' && c != '_' && c != '-')
				return 0;
			break;
		case JS_HOST:
			if (!alnum && c != '.' && c != '-')
				return 0;
			break;
		}
	}
	return 1;
}

int js_string(struct json_object *obj, const char *name, int required,
    size_t minlen, size_t maxlen, enum js_class cls, const char **out,
    struct js_err *err)
{
	struct json_object *v;
	const char *s;
	size_t len;

	*out = NULL;
	if (!json_object_object_get_ex(obj, name, &v) || v == NULL) {
		if (required)
			return fail(err, "MISSING_FIELD",
			    "field '%s' is required", name);
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return fail(err, "INVALID_FIELD", "field '%s' must be a string",
		    name);
	s = json_object_get_string(v);
	len = (size_t)json_object_get_string_len(v);
	if (strlen(s) != len || !js_utf8_valid(s, len))
		return fail(err, "INVALID_FIELD",
		    "field '%s' is not valid UTF-8 text", name);
	if (len < minlen || len > maxlen)
		return fail(err, "INVALID_FIELD",
		    "field '%s' has an invalid length", name);
	if (!class_ok(cls, s, len))
		return fail(err, "INVALID_FIELD",
		    "field '%s' contains characters that are not allowed",
		    name);
	*out = s;
	return 0;
}

int js_host(struct json_object *obj, const char *name, int required,
    const char **out, struct js_err *err)
{
	char host[JS_HOST_MAX + 2];
	const char *s;
	size_t i, n, label = 0;

	*out = NULL;
	if (js_string(obj, name, required, 1, JS_HOST_MAX + 1, JS_HOST, &s,
	    err) != 0)
		return -1;
	if (s == NULL)
		return 0;
	n = strlen(s);
	if (s[n - 1] == '.')
		n--;
	if (n == 0 || n > JS_HOST_MAX)
		return fail(err, "INVALID_FIELD",
		    "field '%s' has an invalid length", name);
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c == '.') {
			if (label == 0)
				break;
			label = 0;
		} else if (++label > 63) {
			break;
		}
		host[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	if (i < n || label == 0)
		return fail(err, "INVALID_FIELD",
		    "field '%s' is not a host name", name);
	host[n] = '\0';
	if (strcmp(host, s) != 0) {
		json_object_object_add(obj, name, json_object_new_string(host));
		s = json_object_get_string(json_object_object_get(obj, name));
	}
	*out = s;
	return 0;
}

int js_int(struct json_object *obj, const char *name, int required,
    long long min, long long max, long long def, long long *out,
    struct js_err *err)
{
	struct json_object *v;
	int64_t n;

	*out = def;
	if (!json_object_object_get_ex(obj, name, &v) || v == NULL) {
		if (required)
			return fail(err, "MISSING_FIELD",
			    "field '%s' is required", name);
		return 0;
	}
	if (!json_object_is_type(v, json_type_int))
		return fail(err, "INVALID_FIELD",
		    "field '%s' must be an integer", name);
	errno = 0;
	n = json_object_get_int64(v);
	/* json-c clamps out-of-range numbers and sets errno. */
	if (errno != 0 || n < min || n > max)
		return fail(err, "INVALID_FIELD", "field '%s' is out of range",
		    name);
	*out = n;
	return 0;
}

/* Strings nested in objects reach PostgreSQL too: reject NUL and bad
 * UTF-8 anywhere in the tree (keys included). */
static int tree_ok(struct json_object *v, int depth)
{
	if (depth > 8)
		return 0;
	switch (json_object_get_type(v)) {
	case json_type_string: {
		const char *s = json_object_get_string(v);
		size_t len = (size_t)json_object_get_string_len(v);

		return strlen(s) == len && js_utf8_valid(s, len);
	}
	case json_type_object: {
		json_object_object_foreach(v, key, child) {
			if (!js_utf8_valid(key, strlen(key)))
				return 0;
			if (child != NULL && !tree_ok(child, depth + 1))
				return 0;
		}
		return 1;
	}
	case json_type_array: {
		size_t i, n = json_object_array_length(v);

		for (i = 0; i < n; i++) {
			struct json_object *c = json_object_array_get_idx(v, i);

			if (c != NULL && !tree_ok(c, depth + 1))
				return 0;
		}
		return 1;
	}
	default:
		return 1;
	}
}

int js_object(struct json_object *obj, const char *name, size_t maxbytes,
    struct json_object **out, struct js_err *err)
{
	struct json_object *v;
	size_t len;

	*out = NULL;
	if (!json_object_object_get_ex(obj, name, &v) || v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_object))
		return fail(err, "INVALID_FIELD", "field '%s' must be an object",
		    name);
	js_dump(v, &len);
	if (len > maxbytes)
		return fail(err, "INVALID_FIELD", "field '%s' is too large",
		    name);
	if (!tree_ok(v, 0))
		return fail(err, "INVALID_FIELD",
		    "field '%s' contains invalid text", name);
	*out = v;
	return 0;
}

void js_put(struct json_object *obj, const char *key, struct json_object *v)
{
	json_object_object_add_ex(obj, key, v, JSON_C_OBJECT_ADD_KEY_IS_NEW |
	    JSON_C_OBJECT_ADD_CONSTANT_KEY);
}

static int plain_out(struct json_object *o, struct printbuf *pb, int level,
    int flags)
{
	(void)level;
	(void)flags;
	printbuf_memappend_fast(pb, "\"", 1);
	printbuf_memappend_fast(pb, json_object_get_string(o),
	    json_object_get_string_len(o));
	printbuf_memappend_fast(pb, "\"", 1);
	return 0;
}

/* The characters json-c writes as they are, with or without its flags:
 * printable ASCII but the quote, the slash and the backslash. */
static int plain_char(unsigned char c)
{
	return c >= ' ' && c <= '~' && c != '"' && c != '/' && c != '\\';
}

struct json_object *js_new_plain(const char *s)
{
	struct json_object *o = json_object_new_string(s);
	const unsigned char *p = (const unsigned char *)s;

	while (plain_char(*p))
		p++;
	if (o != NULL && *p == '\0')
		json_object_set_serializer(o, plain_out, NULL, NULL);
	return o;
}

const char *js_dump(struct json_object *obj, size_t *len)
{
	size_t n = 0;
	const char *s = json_object_to_json_string_length(obj,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);

	if (len != NULL)
		*len = n;
	return s;
}

const char *js_dump_jsonb(struct json_object *obj, size_t *len)
{
	size_t n = 0, i;
	char *s = (char *)js_dump(obj, &n);

	/* Every backslash in json-c's output starts an escape: skip the
	 * escaped character, rewrite \u0000 in place (same length). The
	 * buffer is obj's own serialisation, rebuilt on every dump. */
	for (i = 0; s != NULL && i + 1 < n; i++) {
		if (s[i] != '\\')
			continue;
		if (i + 5 < n && memcmp(s + i + 1, "u0000", 5) == 0)
			memcpy(s + i + 1, "ufffd", 5);
		i++;
	}
	if (len != NULL)
		*len = n;
	return s;
}

/* json_tokener_parse() allocates a tokener per call; the row's columns
 * (three per license read) reuse the thread's. */
struct json_object *js_from_text(const char *s)
{
	struct json_tokener *tok;
	struct json_object *o;

	if (s == NULL || *s == '\0')
		return NULL;
	/* Empty ones are the common case (a license without domain
	 * restrictions): no parse, whose locale switching costs more. */
	if (strcmp(s, "[]") == 0)
		return json_object_new_array();
	if (strcmp(s, "{}") == 0)
		return json_object_new_object();
	if ((tok = tokener()) == NULL)
		return NULL;
	json_tokener_reset(tok);
	o = json_tokener_parse_ex(tok, s, -1);
	if (o != NULL && json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(o);
		o = NULL;
	}
	return o;
}

struct json_object *js_path(struct json_object *o, const char *path)
{
	char seg[64];
	const char *p = path, *dot;
	size_t n;

	while (o != NULL && *p != '\0') {
		dot = strchr(p, '.');
		n = dot ? (size_t)(dot - p) : strlen(p);
		if (n == 0 || n >= sizeof(seg))
			return NULL;
		memcpy(seg, p, n);
		seg[n] = '\0';
		if (json_object_is_type(o, json_type_array)) {
			char *end;
			long i = strtol(seg, &end, 10);

			if (*end != '\0' || i < 0 ||
			    (size_t)i >= json_object_array_length(o))
				return NULL;
			o = json_object_array_get_idx(o, (size_t)i);
		} else if (!json_object_is_type(o, json_type_object) ||
		    !json_object_object_get_ex(o, seg, &o)) {
			return NULL;
		}
		p = dot ? dot + 1 : p + n;
	}
	return o;
}

const char *js_path_str(struct json_object *o, const char *path)
{
	struct json_object *v = js_path(o, path);

	return v != NULL && json_object_is_type(v, json_type_string) ?
	    json_object_get_string(v) : NULL;
}

int js_field(struct json_object *obj, const struct js_field *f,
    int required, const char **out, struct js_err *err)
{
	return js_string(obj, f->name, required, f->minlen, f->maxlen, f->cls,
	    out, err);
}
