/* stripe: see stripe.h. */
#include "stripe.h"
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#define REPLY_MAX (1024 * 1024)

struct reply {
	char *buf;
	size_t len;
};

/* libcurl, and the TLS library under it, is set up at the first call to
 * Stripe rather than at the start: most checkout and webhook processes
 * never make one, and what the set-up touches would stay resident in
 * each of them. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_rc = CURLE_FAILED_INIT;

static void curl_start(void)
{
	curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void stripe_form_add(struct stripe_form *f, const char *key, const char *val)
{
	char *k, *v;
	int n;

	if (val == NULL || f->overflow)
		return;
	k = curl_easy_escape(NULL, key, 0);
	v = curl_easy_escape(NULL, val, 0);
	if (k == NULL || v == NULL) {
		f->overflow = 1;
	} else {
		n = snprintf(f->buf + f->len, sizeof(f->buf) - f->len, "%s%s=%s",
		    f->len ? "&" : "", k, v);
		if (n < 0 || (size_t)n >= sizeof(f->buf) - f->len)
			f->overflow = 1;
		else
			f->len += (size_t)n;
	}
	curl_free(k);
	curl_free(v);
}

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct reply *r = arg;
	size_t add = size * n;
	char *nb;

	if (r->len + add > REPLY_MAX)
		return 0;
	if ((nb = realloc(r->buf, r->len + add + 1)) == NULL)
		return 0;
	r->buf = nb;
	memcpy(r->buf + r->len, p, add);
	r->len += add;
	r->buf[r->len] = '\0';
	return add;
}

/* One API call: POST with form f, or GET when f is NULL. */
static int call(const char *path, const struct stripe_form *f,
    const char *idempotency_key, struct json_object **out, char *err,
    size_t errlen)
{
	const char *key = cfg_str("stripe_secret_key");
	const char *ca = cfg_str("stripe_ca_file");
	char url[1024], auth[512], idem[300];
	struct curl_slist *hdrs = NULL;
	struct reply r = { NULL, 0 };
	struct json_object *o = NULL, *e, *m;
	CURL *c = NULL;
	CURLcode cc;
	long status = 0;
	int rc = STRIPE_EUNREACHABLE;

	*out = NULL;
	err[0] = '\0';
	if (key == NULL || *key == '\0' || (f != NULL && f->overflow)) {
		snprintf(err, errlen, "%s", key != NULL && *key != '\0' ?
		    "request too large" : "stripe_secret_key is not configured");
		return STRIPE_ECONFIG;
	}
	snprintf(url, sizeof(url), "%s%s",
	    cfg_str("stripe_api_base"), path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	hdrs = curl_slist_append(hdrs, auth);
	hdrs = curl_slist_append(hdrs, "Stripe-Version: " STRIPE_API_VERSION);
	if (f != NULL)
		hdrs = curl_slist_append(hdrs,
		    "Content-Type: application/x-www-form-urlencoded");
	if (idempotency_key != NULL) {
		snprintf(idem, sizeof(idem), "Idempotency-Key: %s",
		    idempotency_key);
		hdrs = curl_slist_append(hdrs, idem);
	}
	pthread_once(&curl_once, curl_start);
	if (curl_rc != CURLE_OK) {
		snprintf(err, errlen, "libcurl: %s", curl_easy_strerror(curl_rc));
		goto out;
	}
	if ((c = curl_easy_init()) == NULL)
		goto out;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	if (f != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, f->buf);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)f->len);
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
	    cfg_int("stripe_connect_timeout_ms"));
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, cfg_int("stripe_timeout_ms"));
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(c, CURLOPT_USERAGENT, "licd/1");
	if (ca != NULL && *ca != '\0')
		curl_easy_setopt(c, CURLOPT_CAINFO, ca);
	if ((cc = curl_easy_perform(c)) != CURLE_OK) {
		snprintf(err, errlen, "%s", curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	rc = STRIPE_EBADREPLY;
	if (r.buf == NULL || (o = json_tokener_parse(r.buf)) == NULL ||
	    !json_object_is_type(o, json_type_object)) {
		snprintf(err, errlen, "HTTP %ld with a non-JSON body", status);
		goto out;
	}
	if (status < 200 || status > 299) {
		rc = STRIPE_EAPI;
		if (json_object_object_get_ex(o, "error", &e) &&
		    json_object_object_get_ex(e, "message", &m))
			snprintf(err, errlen, "HTTP %ld: %.300s", status,
			    json_object_get_string(m));
		else
			snprintf(err, errlen, "HTTP %ld", status);
		goto out;
	}
	*out = o;
	o = NULL;
	rc = STRIPE_OK;
out:
	json_object_put(o);
	free(r.buf);
	curl_slist_free_all(hdrs);
	if (c != NULL)
		curl_easy_cleanup(c);
	return rc;
}

int stripe_post(const char *path, const struct stripe_form *f,
    const char *idempotency_key, struct json_object **out, char *err,
    size_t errlen)
{
	return call(path, f, idempotency_key, out, err, errlen);
}

int stripe_get(const char *path, struct json_object **out, char *err,
    size_t errlen)
{
	return call(path, NULL, NULL, out, err, errlen);
}
