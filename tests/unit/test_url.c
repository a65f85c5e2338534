/* Query-string parameters (url.h), decoded as libcurl's
 * curl_easy_unescape decoded them before, with `+` as space. */
#include "url.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

/* url_query(q, name) returned 0 with value want. */
static int is(const char *q, const char *name, const char *want)
{
	char *v = NULL;
	int ok = url_query(q, name, &v) == 0 && v != NULL &&
	    strcmp(v, want) == 0;

	free(v);
	return ok;
}

static int gives(const char *q, const char *name, int rc)
{
	char *v = (char *)"x";
	int got = url_query(q, name, &v);

	if (got == 0)
		free(v);
	return got == rc && (rc == 0 || v == NULL);
}

int main(void)
{
	CHECK(is("license_key=abc&period=2026-11", "license_key", "abc"));
	CHECK(is("license_key=abc&period=2026-11", "period", "2026-11"));
	CHECK(is("a=1&q=x+y", "q", "x y"));
	CHECK(is("q=a%2Bb%2bc", "q", "a+b+c"));
	CHECK(is("q=%41%62%7e", "q", "Ab~"));
	CHECK(is("q=%7E%7e%4A%4a", "q", "~~JJ"));
	CHECK(is("q=%C3%A9t%C3%A9", "q", "\xc3\xa9t\xc3\xa9"));
	CHECK(is("q=", "q", ""));
	CHECK(is("q=%25", "q", "%"));
	/* a % without two hex digits after it stays as it is */
	CHECK(is("q=50%", "q", "50%"));
	CHECK(is("q=%4", "q", "%4"));
	CHECK(is("q=%zz1", "q", "%zz1"));
	CHECK(is("q=%%41", "q", "%A"));
	/* the first of a repeated name; names match whole */
	CHECK(is("q=1&q=2", "q", "1"));
	CHECK(is("qq=1&q=2", "q", "2"));
	CHECK(is("xq=1&q=2", "q", "2"));
	CHECK(gives("q", "q", 1));
	CHECK(gives("qq=1", "q", 1));
	CHECK(gives("", "q", 1));
	CHECK(gives(NULL, "q", 1));
	CHECK(gives("a=1&&b=2", "q", 1));
	/* a NUL in the value is refused */
	CHECK(gives("q=a%00b", "q", -1));
	CHECK(gives("q=%00", "q", -1));
	UNIT_DONE("url");
}
