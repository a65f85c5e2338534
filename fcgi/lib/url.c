/* url: see url.h. */
#include "url.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

/* s[0..n) URL-decoded into a malloc'd string, as libcurl's
 * curl_easy_unescape does (a `%` without two hex digits after it stays as
 * it is), with `+` as space (form encoding). NULL when the result would
 * hold a NUL (%00), or out of memory. */
static char *decode(const char *s, size_t n)
{
	char *out = malloc(n + 1), *o = out;
	size_t i;
	int hi, lo;

	if (out == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (s[i] == '+') {
			*o++ = ' ';
		} else if (s[i] == '%' && i + 2 < n &&
		    (hi = OPENSSL_hexchar2int((unsigned char)s[i + 1])) >= 0 &&
		    (lo = OPENSSL_hexchar2int((unsigned char)s[i + 2])) >= 0) {
			if ((hi | lo) == 0) {
				free(out);
				return NULL;
			}
			*o++ = (char)(hi << 4 | lo);
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

int url_query(const char *query, const char *name, char **out)
{
	const char *p = query, *end;
	size_t n = strlen(name);

	*out = NULL;
	while (p != NULL && *p != '\0') {
		end = strchr(p, '&');
		if (end == NULL)
			end = p + strlen(p);
		if ((size_t)(end - p) > n && strncmp(p, name, n) == 0 &&
		    p[n] == '=') {
			*out = decode(p + n + 1, (size_t)(end - p) - n - 1);
			return *out != NULL ? 0 : -1;
		}
		p = *end ? end + 1 : end;
	}
	return 1;
}
