/* origin: see origin.h. */
#include "origin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* A browser reads a host whose last label is all digits or starts with
 * "0x" as an IPv4 address, in decimal, octal or hex parts ("0x7f.1" is
 * 127.0.0.1). Only the one spelling every parser agrees on is taken:
 * four decimal parts 0-255 without leading zeros. 1: the host is not
 * numeric; 0: canonical IPv4; -1: refused. */
static int numeric_host(const char *h, size_t n)
{
	const char *last = h, *p;
	int parts = 0;

	for (p = h; p < h + n; p++)
		if (*p == '.')
			last = p + 1;
	if (!(is_digit(*last) || (last[0] == '0' && lower(last[1]) == 'x')))
		return 1;
	p = h;
	while (p < h + n) {
		const char *s = p;
		int v = 0;

		while (p < h + n && is_digit(*p)) {
			v = v * 10 + (*p - '0');
			if (v > 255)
				return -1;
			p++;
		}
		if (p == s || (p - s > 1 && *s == '0'))
			return -1;
		parts++;
		if (p < h + n) {
			if (*p != '.')
				return -1;
			p++;
		}
	}
	return parts == 4 ? 0 : -1;
}

int origin_of(const char *url, char out[ORIGIN_MAX])
{
	const char *p, *host, *hend, *auth_end;
	char scheme[6];
	size_t n, i;
	long port = -1;
	int https;

	out[0] = '\0';
	if (url == NULL || (n = strlen(url)) == 0 || n > ORIGIN_URL_MAX)
		return -1;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)url[i];

		if (c <= 0x20 || c >= 0x7f || c == '\\')
			return -1;
	}
	for (i = 0; i < sizeof(scheme) - 1 && url[i] != ':' && url[i]; i++)
		scheme[i] = (char)lower(url[i]);
	scheme[i] = '\0';
	if (url[i] != ':')
		return -1;
	if (strcmp(scheme, "https") == 0)
		https = 1;
	else if (strcmp(scheme, "http") == 0)
		https = 0;
	else
		return -1;
	p = url + i + 1;
	if (p[0] != '/' || p[1] != '/' || p[2] == '/')
		return -1;
	host = p + 2;
	auth_end = host + strcspn(host, "/?#");
	if (memchr(host, '@', (size_t)(auth_end - host)) != NULL)
		return -1;
	hend = memchr(host, ':', (size_t)(auth_end - host));
	if (hend == NULL)
		hend = auth_end;
	n = (size_t)(hend - host);
	if (n == 0 || n > 253)
		return -1;
	for (i = 0; i < n; i++) {
		char c = host[i];

		if (c == '.') {
			if (i == 0 || i == n - 1 || host[i - 1] == '.')
				return -1;
		} else if (!(is_digit(c) || (lower(c) >= 'a' && lower(c) <= 'z')
		    || c == '-')) {
			return -1;
		}
	}
	if (numeric_host(host, n) < 0)
		return -1;
	if (hend < auth_end) {
		const char *q = hend + 1;

		if (q < auth_end)
			port = 0;
		for (; q < auth_end; q++) {
			if (!is_digit(*q) || port > 65535)
				return -1;
			port = port * 10 + (*q - '0');
		}
		if (port > 65535)
			return -1;
	}
	if (port < 0)
		port = https ? 443 : 80;
	i = (size_t)snprintf(out, ORIGIN_MAX, "%s://", scheme);
	for (p = host; p < hend; p++)
		out[i++] = (char)lower(*p);
	snprintf(out + i, ORIGIN_MAX - i, ":%ld", port);
	return 0;
}

int origin_allowed(const char *url, const char *list)
{
	char want[ORIGIN_MAX], have[ORIGIN_MAX], *copy, *tok, *save = NULL;
	int ok = 0;

	if (list == NULL || origin_of(url, want) != 0 ||
	    (copy = strdup(list)) == NULL)
		return 0;
	for (tok = strtok_r(copy, ", ", &save); tok != NULL && !ok;
	    tok = strtok_r(NULL, ", ", &save))
		ok = origin_of(tok, have) == 0 && strcmp(want, have) == 0;
	free(copy);
	return ok;
}
