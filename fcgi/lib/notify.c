/* notify: see notify.h. */
#include "notify.h"
#include "config.h"
#include "sig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <json-c/json.h>

#define MAIL_MAX 16384

struct upload {
	const char *buf;
	size_t len, off;
};

int notify_email_enabled(void)
{
	const char *u = cfg_str("smtp_url");

	return *u != '\0';
}

int notify_webhook_enabled(void)
{
	const char *u = cfg_str("notify_webhook_url");

	return *u != '\0';
}

static const char *pstr(struct json_object *p, const char *k, const char *def)
{
	struct json_object *v;

	if (p == NULL || !json_object_object_get_ex(p, k, &v) || v == NULL)
		return def;
	return json_object_get_string(v);
}

void notify_subject(const struct notification *n, char *out, size_t len)
{
	struct json_object *p = json_tokener_parse(n->payload);

	if (strcmp(n->kind, "license_issued") == 0)
		snprintf(out, len, "Your license key");
	else if (strcmp(n->kind, "expiry_warning") == 0)
		snprintf(out, len, "Your license expires in %s day(s)",
		    pstr(p, "days", "?"));
	else if (strcmp(n->kind, "license_expired") == 0)
		snprintf(out, len, "Your license has expired");
	else if (strcmp(n->kind, "license_suspended") == 0)
		snprintf(out, len, "Your license is suspended");
	else if (strcmp(n->kind, "usage_warning") == 0)
		snprintf(out, len, "%s%% of this month's %s limit used",
		    pstr(p, "percent", "?"), pstr(p, "feature", "?"));
	else
		snprintf(out, len, "License notice: %s", n->kind);
	json_object_put(p);
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *arg)
{
	struct upload *u = arg;
	size_t room = size * nitems, left = u->len - u->off;

	if (left < room)
		room = left;
	memcpy(buf, u->buf + u->off, room);
	u->off += room;
	return room;
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

/* Header values come from our own config and database; still, no CR/LF. */
static int header_safe(const char *s)
{
	return s != NULL && strpbrk(s, "\r\n") == NULL;
}

/* curl_easy_perform with the reason, prefixed by what, in err. */
static int perform(CURL *c, const char *errbuf, const char *what, char *err,
    size_t errlen)
{
	CURLcode cc = curl_easy_perform(c);

	if (cc == CURLE_OK)
		return 0;
	snprintf(err, errlen, "%s: %s", what, errbuf[0] ? errbuf :
	    curl_easy_strerror(cc));
	return -1;
}

static void common_opts(CURL *c, char *errbuf)
{
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
	    cfg_int("notify_connect_timeout_ms"));
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, cfg_int("notify_timeout_ms"));
	if (*cfg_str("notify_ca_file") != '\0')
		curl_easy_setopt(c, CURLOPT_CAINFO,
		    cfg_str("notify_ca_file"));
}

int notify_send_email(const struct notification *n, char *err, size_t errlen)
{
	const char *from = cfg_str("smtp_from");
	const char *user = cfg_str("smtp_user");
	char subject[256], date[64], *mail = NULL, errbuf[CURL_ERROR_SIZE] = "";
	struct json_object *p = NULL;
	struct curl_slist *rcpt = NULL;
	struct upload up;
	CURL *c = NULL;
	time_t now = time(NULL);
	struct tm tm;
	int len, rc = -1;

	if (!header_safe(n->recipient) || !header_safe(from) ||
	    strchr(n->recipient, '@') == NULL) {
		snprintf(err, errlen, "bad recipient or sender address");
		return -1;
	}
	notify_subject(n, subject, sizeof(subject));
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	p = json_tokener_parse(n->payload);
	if ((mail = malloc(MAIL_MAX)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	len = snprintf(mail, MAIL_MAX,
	    "Date: %s\r\nFrom: %s\r\nTo: %s\r\nSubject: %s\r\n"
	    "Message-ID: <licd-notification-%s@licd>\r\n"
	    "X-Licd-Notification: %s %s\r\n"
	    "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
	    "\r\n%s.\r\n\r\nLicense: %s\r\n%s%s%s\r\n",
	    date, from, n->recipient, subject, n->id, n->id, n->kind, subject,
	    n->license_id ? n->license_id : "-",
	    pstr(p, "license_key", NULL) ? "\r\nYour license key:\r\n" : "",
	    pstr(p, "license_key", ""),
	    pstr(p, "license_key", NULL) ? "\r\n" : "");
	if (len < 0 || len >= MAIL_MAX) {
		snprintf(err, errlen, "message too long");
		goto out;
	}
	up.buf = mail;
	up.len = (size_t)len;
	up.off = 0;
	if ((c = curl_easy_init()) == NULL ||
	    (rcpt = curl_slist_append(NULL, n->recipient)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	common_opts(c, errbuf);
	curl_easy_setopt(c, CURLOPT_URL, cfg_str("smtp_url"));
	curl_easy_setopt(c, CURLOPT_MAIL_FROM, from);
	curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(c, CURLOPT_READDATA, &up);
	curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
	if (*user != '\0') {
		curl_easy_setopt(c, CURLOPT_USERNAME, user);
		curl_easy_setopt(c, CURLOPT_PASSWORD,
		    cfg_str("smtp_password"));
		curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
	}
	if (perform(c, errbuf, "smtp", err, errlen) != 0)
		goto out;
	rc = 0;
out:
	curl_slist_free_all(rcpt);
	curl_easy_cleanup(c);
	free(mail);
	json_object_put(p);
	return rc;
}

int notify_send_webhook(const struct notification *n, char *err, size_t errlen)
{
	const char *secret = cfg_str("notify_webhook_secret");
	struct json_object *o = json_object_new_object(), *p;
	char sig[SIG_HEX_LEN + 1], hdr[2][160], errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *h = NULL;
	const char *body;
	long status = 0;
	long long ts = (long long)time(NULL);
	CURL *c = NULL;
	int rc = -1;

	p = json_tokener_parse(n->payload);
	json_object_object_add(o, "id", json_object_new_string(n->id));
	json_object_object_add(o, "kind", json_object_new_string(n->kind));
	json_object_object_add(o, "created_at",
	    json_object_new_string(n->created_at));
	json_object_object_add(o, "license_id", n->license_id ?
	    json_object_new_string(n->license_id) : NULL);
	json_object_object_add(o, "recipient", n->recipient ?
	    json_object_new_string(n->recipient) : NULL);
	json_object_object_add(o, "data", p ? p : json_object_new_object());
	body = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	if (sig_sign(secret, ts, body, strlen(body), sig) != 0) {
		snprintf(err, errlen, "cannot sign");
		goto out;
	}
	snprintf(hdr[0], sizeof(hdr[0]), "Licd-Signature: t=%lld,v1=%s", ts,
	    sig);
	snprintf(hdr[1], sizeof(hdr[1]), "Idempotency-Key: licd-notification-%s",
	    n->id);
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, hdr[0]);
	h = curl_slist_append(h, hdr[1]);
	if (h == NULL || (c = curl_easy_init()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	common_opts(c, errbuf);
	curl_easy_setopt(c, CURLOPT_URL, cfg_str("notify_webhook_url"));
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "licd/1");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	if (perform(c, errbuf, "webhook", err, errlen) != 0)
		goto out;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299) {
		snprintf(err, errlen, "webhook: HTTP %ld", status);
		goto out;
	}
	rc = 0;
out:
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	json_object_put(o);
	return rc;
}
