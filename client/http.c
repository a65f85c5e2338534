/*
 * http: the default transport, one libcurl easy handle per request (the
 * client calls rarely; a pooled handle would be state to share between
 * threads). No redirects are followed and bodies are capped.
 */
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "internal.h"

#define BODY_MAX (256 * 1024)

struct buf {
	char *p;
	size_t n;
	int over;
};

static size_t on_data(char *d, size_t sz, size_t nm, void *arg)
{
	struct buf *b = arg;
	size_t n = sz * nm;
	char *p;

	if (b->n + n > BODY_MAX) {
		b->over = 1;
		return 0;
	}
	if ((p = realloc(b->p, b->n + n + 1)) == NULL)
		return 0;
	b->p = p;
	memcpy(b->p + b->n, d, n);
	b->n += n;
	b->p[b->n] = '\0';
	return n;
}

int lcl_http_post(void *arg, const char *url, const char *body, size_t len,
    long timeout_ms, struct licd_response *resp)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	struct buf b = { NULL, 0, 0 };
	long code = 0;
	CURLcode rc = CURLE_FAILED_INIT;

	(void)arg;
	memset(resp, 0, sizeof(*resp));
	if (c == NULL)
		return -1;
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Accept: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
	    timeout_ms < 5000 ? timeout_ms : 5000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_USERAGENT,
	    "liblicd-client/" LICD_CLIENT_VERSION);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	if (rc != CURLE_OK || b.over) {
		free(b.p);
		return -1;
	}
	resp->status = (int)code;
	resp->body = b.p;
	resp->len = b.n;
	return 0;
}
