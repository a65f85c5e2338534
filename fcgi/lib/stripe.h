/*
 * stripe: a minimal client for Stripe's REST API over libcurl: form-encoded
 * POSTs exactly as Stripe expects (bracketed keys, curl_easy_escape), the
 * secret key as a bearer token, an Idempotency-Key, timeouts, and the JSON
 * answer. The base URL is configurable (stripe_api_base) so tests point it
 * at a local double. The secret key and Stripe's answers never reach logs;
 * error messages from Stripe are returned for the caller to log.
 */
#ifndef LICD_STRIPE_H
#define LICD_STRIPE_H

#include <stddef.h>
#include <json-c/json.h>

#define STRIPE_FORM_MAX 8192

/* The API version licd speaks, sent as Stripe-Version on every call; the
 * webhook endpoint must be created with the same version
 * (docs/OPERATIONS.md, "Stripe setup"). billmap.c also reads the shapes
 * of earlier versions. */
#define STRIPE_API_VERSION "2026-10-28.endive"

struct stripe_form {
	char buf[STRIPE_FORM_MAX];
	size_t len;
	int overflow;
};

void stripe_form_add(struct stripe_form *f, const char *key, const char *val);

enum stripe_status {
	STRIPE_OK = 0,
	STRIPE_EUNREACHABLE = -1,	/* connect/timeout/TLS */
	STRIPE_EAPI = -2,		/* Stripe answered an error */
	STRIPE_EBADREPLY = -3,		/* not JSON */
	STRIPE_ECONFIG = -4,		/* no secret key */
};

/* POST {stripe_api_base}{path}. On STRIPE_OK *out is the parsed answer
 * (caller puts it). err gets Stripe's message or the transport error. */
int stripe_post(const char *path, const struct stripe_form *f,
    const char *idempotency_key, struct json_object **out, char *err,
    size_t errlen);

/* GET {stripe_api_base}{path} (path includes any query string). */
int stripe_get(const char *path, struct json_object **out, char *err,
    size_t errlen);

#endif
