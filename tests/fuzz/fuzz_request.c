/* A request's CGI parameters as a program's socket may receive them:
 * REQUEST_METHOD, DOCUMENT_URI, CONTENT_TYPE, CONTENT_LENGTH and the
 * request id, NUL-separated, through http_check and the log escaping. */
#include "http.h"
#include "log.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void h(struct http_req *req, struct http_resp *resp)
{
	(void)req;
	(void)resp;
}

static const struct http_route routes[] = {
	{ "/api/validate", 0, "POST", HTTP_BODY_JSON, h },
	{ "/api/usage", 0, "GET,POST", HTTP_BODY_JSON, h },
	{ "/api/admin/licenses/", 1, "GET,POST", HTTP_BODY_JSON_OPT, h },
	{ "/api/stripe/webhook", 0, "POST", HTTP_BODY_RAW, h },
	{ "/healthz", 0, "GET", HTTP_BODY_NONE, h },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *f[5] = { NULL }, *p, out[512];
	struct http_check c;
	size_t i, nf = 0;

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	/* a field missing altogether when the input has fewer parts */
	for (p = buf; nf < 5 && p <= buf + size; p += strlen(p) + 1)
		f[nf++] = p;
	if (http_check(routes, sizeof(routes) / sizeof(routes[0]), f[0], f[1],
	    f[2], f[3], 16384, &c) == 0) {
		if (c.route == NULL || c.param == NULL || f[1] == NULL)
			abort();
	} else if (c.code == NULL || c.msg == NULL ||
	    (c.status == 405 && c.route == NULL)) {
		abort();
	}
	(void)http_rid_valid(f[4]);
	for (i = 0; i < nf; i++) {
		size_t n = log_escape(f[i], out, sizeof(out));

		if (n >= sizeof(out) || strlen(out) != n ||
		    strpbrk(out, "\n\r") != NULL)
			abort();
		p = (char *)log_field(f[i], out, sizeof(out));
		if (strlen(p) >= sizeof(out) || strpbrk(p, " \n\r\t") != NULL)
			abort();
	}
	free(buf);
	return 0;
}
