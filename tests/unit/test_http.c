/* http_check: the request's CGI parameters as hostile input. */
#include "http.h"
#include "unit.h"

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

static int chk(const char *m, const char *p, const char *ct, const char *cl,
    struct http_check *c)
{
	return http_check(routes, sizeof(routes) / sizeof(routes[0]), m, p,
	    ct, cl, 16384, c);
}

int main(void)
{
	struct http_check c;
	const char *json = "application/json";

	CHECK(chk("POST", "/api/validate", json, "10", &c) == 0);
	CHECK(c.read_body && c.route == &routes[0]);
	/* the method that spun a worker: empty, missing, odd */
	CHECK(chk("", "/api/validate", json, "10", &c) == 400);
	CHECK(strcmp(c.code, "BAD_REQUEST") == 0);
	CHECK(chk(NULL, "/api/validate", json, "10", &c) == 400);
	CHECK(chk("post", "/api/validate", json, "10", &c) == 400);
	CHECK(chk("PO ST", "/api/validate", json, "10", &c) == 400);
	CHECK(chk("POST\n", "/api/validate", json, "10", &c) == 400);
	CHECK(chk("AAAAAAAAAAAAAAAAA", "/api/validate", json, "10", &c) == 400);
	/* a method list is matched as a list, not as a substring */
	CHECK(chk("OS", "/api/validate", json, "10", &c) == 405);
	CHECK(chk("POS", "/api/validate", json, "10", &c) == 405);
	CHECK(chk("GET,POST", "/api/usage", json, "1", &c) == 400);
	CHECK(chk("T", "/api/usage", NULL, NULL, &c) == 405);
	CHECK(c.route == &routes[1]);
	CHECK(chk("GET", "/api/usage", NULL, NULL, &c) == 0 && !c.read_body);
	CHECK(chk("POST", "/api/usage", json, "5", &c) == 0 && c.read_body);
	CHECK(chk("DELETE", "/healthz", NULL, NULL, &c) == 405);
	/* paths */
	CHECK(chk("GET", NULL, NULL, NULL, &c) == 400);
	CHECK(chk("GET", "", NULL, NULL, &c) == 400);
	CHECK(chk("GET", "healthz", NULL, NULL, &c) == 400);
	CHECK(chk("GET", "/healthz\n", NULL, NULL, &c) == 400);
	CHECK(chk("GET", "/api/admin/licenses/\x01", NULL, NULL, &c) == 400);
	CHECK(chk("GET", "/api/admin/licenses/\xff", NULL, NULL, &c) == 400);
	CHECK(chk("GET", "/api/admin/licenses/\xc0\xaf", NULL, NULL, &c) == 400);
	CHECK(chk("GET", "/api/admin/licenses/caf\xc3\xa9", NULL, NULL, &c) == 0);
	CHECK(strcmp(c.param, "caf\xc3\xa9") == 0);
	CHECK(chk("GET", "/nope", NULL, NULL, &c) == 404);
	{
		char big[HTTP_PATH_MAX + 2];

		memset(big, 'a', sizeof(big));
		big[0] = '/';
		big[sizeof(big) - 1] = '\0';
		CHECK(chk("GET", big, NULL, NULL, &c) == 400);
	}
	/* Content-Length */
	CHECK(chk("POST", "/api/validate", json, "", &c) == 0);
	CHECK(chk("POST", "/api/validate", json, NULL, &c) == 0);
	CHECK(chk("POST", "/api/validate", json, "-1", &c) == 400);
	CHECK(chk("POST", "/api/validate", json, "+5", &c) == 400);
	CHECK(chk("POST", "/api/validate", json, " 5", &c) == 400);
	CHECK(chk("POST", "/api/validate", json, "5x", &c) == 400);
	CHECK(chk("POST", "/api/validate", json, "16384", &c) == 0);
	CHECK(chk("POST", "/api/validate", json, "16385", &c) == 413);
	CHECK(chk("POST", "/api/validate", json, "99999999999999999999", &c)
	    == 400);
	CHECK(chk("POST", "/api/validate", json, "9999999999999999999", &c)
	    == 413);
	/* Content-Type */
	CHECK(chk("POST", "/api/validate", NULL, "5", &c) == 415);
	CHECK(chk("POST", "/api/validate", "", "5", &c) == 415);
	CHECK(chk("POST", "/api/validate", "text/plain", "5", &c) == 415);
	CHECK(chk("POST", "/api/validate", "application/jsonx", "5", &c) == 415);
	CHECK(chk("POST", "/api/validate", "Application/JSON; charset=UTF-8",
	    "5", &c) == 0);
	CHECK(chk("POST", "/api/stripe/webhook", NULL, "5", &c) == 0 &&
	    c.read_body);
	/* an optional body */
	CHECK(chk("POST", "/api/admin/licenses/x/revoke", NULL, NULL, &c) == 0 &&
	    !c.read_body);
	CHECK(chk("POST", "/api/admin/licenses/x/revoke", NULL, "0", &c) == 0 &&
	    !c.read_body);
	CHECK(chk("POST", "/api/admin/licenses/x/revoke", json, "2", &c) == 0 &&
	    c.read_body);
	CHECK(chk("POST", "/api/admin/licenses/x/revoke", json, "x", &c) == 400);
	UNIT_DONE("http");
}
