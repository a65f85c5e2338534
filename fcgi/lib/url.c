/* url: see url.h. */
#include "url.h"

#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

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
			char *raw = strndup(p + n + 1, (size_t)(end - p) - n - 1);
			char *dec, *c;
			int len = 0;

			if (raw == NULL)
				return -1;
			for (c = raw; *c; c++)	/* form encoding */
				if (*c == '+')
					*c = ' ';
			dec = curl_easy_unescape(NULL, raw, 0, &len);
			free(raw);
			if (dec == NULL)
				return -1;
			if ((size_t)len != strlen(dec)) {
				curl_free(dec);
				return -1;
			}
			*out = strdup(dec);
			curl_free(dec);
			return *out != NULL ? 0 : -1;
		}
		p = *end ? end + 1 : end;
	}
	return 1;
}
