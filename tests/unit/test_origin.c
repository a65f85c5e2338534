/* Redirect URLs judged by their browser origin (origin.h), over forms a
 * browser's WHATWG parser and libcurl read differently. */
#include "origin.h"
#include "unit.h"

#include <string.h>

#define ALLOWED "https://shop.example.com, http://127.0.0.1:8080"

static int is(const char *url, const char *want)
{
	char o[ORIGIN_MAX];

	return origin_of(url, o) == 0 && strcmp(o, want) == 0;
}

static int refused(const char *url)
{
	char o[ORIGIN_MAX];

	return origin_of(url, o) == -1 && !origin_allowed(url, ALLOWED);
}

static void test_accepted(void)
{
	CHECK(is("https://shop.example.com/", "https://shop.example.com:443"));
	CHECK(is("https://shop.example.com", "https://shop.example.com:443"));
	CHECK(is("HTTPS://Shop.Example.COM/Done", "https://shop.example.com:443"));
	CHECK(is("https://shop.example.com:443/x", "https://shop.example.com:443"));
	CHECK(is("https://shop.example.com:0443/x", "https://shop.example.com:443"));
	CHECK(is("https://shop.example.com:/x", "https://shop.example.com:443"));
	CHECK(is("http://shop.example.com/", "http://shop.example.com:80"));
	CHECK(is("https://shop.example.com?session_id={CHECKOUT_SESSION_ID}",
	    "https://shop.example.com:443"));
	CHECK(is("https://shop.example.com#frag", "https://shop.example.com:443"));
	/* '@' after the host is path, query or fragment to every parser */
	CHECK(is("https://shop.example.com/@evil.example",
	    "https://shop.example.com:443"));
	CHECK(is("https://shop.example.com?x=@evil.example",
	    "https://shop.example.com:443"));
	CHECK(is("https://shop.example.com#@evil.example",
	    "https://shop.example.com:443"));
	CHECK(is("http://127.0.0.1:8080/ok", "http://127.0.0.1:8080"));

	CHECK(origin_allowed("https://shop.example.com/thanks", ALLOWED));
	CHECK(origin_allowed("https://SHOP.example.com:443/", ALLOWED));
	CHECK(origin_allowed("http://127.0.0.1:8080/x?y=1", ALLOWED));
	CHECK(!origin_allowed("http://shop.example.com/", ALLOWED));
	CHECK(!origin_allowed("https://shop.example.com:8443/", ALLOWED));
	CHECK(!origin_allowed("http://127.0.0.1:8081/", ALLOWED));
	CHECK(!origin_allowed("https://shop.example.com.evil.example/", ALLOWED));
	CHECK(!origin_allowed("https://evilshop.example.com/", ALLOWED));
	CHECK(!origin_allowed("https://x.shop.example.com/", ALLOWED));
	CHECK(!origin_allowed("https://shop.example.com/", NULL));
	CHECK(!origin_allowed("https://shop.example.com/", ""));
	CHECK(!origin_allowed("https://shop.example.com/", "not a url, ftp://x"));
}

static void test_refused(void)
{
	/* libcurl reads the host after '@' or up to the backslash; browsers
	 * turn '\' into '/' and read the host before it */
	CHECK(refused("http://evil.example\\@shop.example.com/"));
	CHECK(refused("https://shop.example.com\\@evil.example/"));
	CHECK(refused("https://shop.example.com\\.evil.example/"));
	CHECK(refused("https:\\\\evil.example/"));
	CHECK(refused("https:/\\evil.example/"));
	CHECK(refused("https://shop.example.com/\\evil"));
	/* user info */
	CHECK(refused("https://shop.example.com@evil.example/"));
	CHECK(refused("https://user:pw@shop.example.com/"));
	CHECK(refused("https://shop.example.com:443@evil.example/"));
	CHECK(refused("https://@shop.example.com/"));
	/* slashes browsers forgive */
	CHECK(refused("https:evil.example/"));
	CHECK(refused("https:/shop.example.com/"));
	CHECK(refused("https:///shop.example.com/"));
	CHECK(refused("//shop.example.com/"));
	CHECK(refused("/relative"));
	/* whitespace and control characters browsers strip or skip */
	CHECK(refused(" https://shop.example.com/"));
	CHECK(refused("https://shop.example.com/ "));
	CHECK(refused("https://shop.exa\tmple.com/"));
	CHECK(refused("https://shop.example.com\n.evil.example/"));
	CHECK(refused("https://shop.example.com/\r"));
	CHECK(refused("https://shop.example.com/a b"));
	CHECK(refused("https://shop.example.com/\x7f"));
	CHECK(refused("https://shop.example.com/\x01"));
	/* non-ASCII: IDNA maps fullwidth dots and letters to ASCII ones */
	CHECK(refused("https://shop\xef\xbc\x8e" "example.com/"));
	CHECK(refused("https://shop.example.com/\xc3\xa9"));
	/* percent-encoded hosts are decoded by browsers */
	CHECK(refused("https://shop%2eexample.com/"));
	CHECK(refused("https://evil.example%2f@shop.example.com/"));
	/* schemes */
	CHECK(refused("javascript:alert(1)//shop.example.com/"));
	CHECK(refused("data:text/html,hi"));
	CHECK(refused("ftp://shop.example.com/"));
	CHECK(refused("file:///etc/passwd"));
	CHECK(refused("httpx://shop.example.com/"));
	CHECK(refused("https//shop.example.com/"));
	/* numeric hosts: browsers read 0x7f.1 and 2130706433 as 127.0.0.1 */
	CHECK(refused("http://2130706433:8080/"));
	CHECK(refused("http://0x7f.0.0.1:8080/"));
	CHECK(refused("http://0177.0.0.1:8080/"));
	CHECK(refused("http://127.1:8080/"));
	CHECK(refused("http://127.0.0.256:8080/"));
	CHECK(refused("http://shop.0x1/"));
	CHECK(refused("http://[::1]:8080/"));
	/* hosts and ports */
	CHECK(refused("https://shop.example.com./"));
	CHECK(refused("https://.shop.example.com/"));
	CHECK(refused("https://shop..example.com/"));
	CHECK(refused("https:///"));
	CHECK(refused("https://:443/"));
	CHECK(refused("https://shop_example.com/"));
	CHECK(refused("https://shop.example.com:65536/"));
	CHECK(refused("https://shop.example.com:99999999999999999999/"));
	CHECK(refused("https://shop.example.com:-1/"));
	CHECK(refused("https://shop.example.com:44a/"));
	CHECK(refused("https://shop.example.com:443:443/"));
	CHECK(refused(""));
	CHECK(refused(NULL));
}

static void test_lengths(void)
{
	char url[ORIGIN_URL_MAX + 2], o[ORIGIN_MAX];
	size_t i;

	strcpy(url, "https://");
	for (i = 8; i < 8 + 253; i++)
		url[i] = (i % 50 == 0) ? '.' : 'a';
	url[i] = '\0';
	CHECK(origin_of(url, o) == 0 && strlen(o) == 8 + 253 + 4);
	url[i] = 'a';
	url[i + 1] = '\0';
	CHECK(origin_of(url, o) == -1);
	strcpy(url, "https://shop.example.com/");
	for (i = strlen(url); i < ORIGIN_URL_MAX; i++)
		url[i] = 'x';
	url[i] = '\0';
	CHECK(origin_of(url, o) == 0);
	url[i] = 'x';
	url[i + 1] = '\0';
	CHECK(origin_of(url, o) == -1);
}

int main(void)
{
	test_accepted();
	test_refused();
	test_lengths();
	UNIT_DONE("origin");
}
