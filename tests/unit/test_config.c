/* config: file syntax, inline comments, environment overrides. */
#include "config.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int load(const char *text)
{
	char path[] = "/tmp/licd-unit-config.XXXXXX", err[256];
	int fd = mkstemp(path), rc;
	FILE *f = fdopen(fd, "w");

	fputs(text, f);
	fclose(f);
	rc = cfg_load(path, err, sizeof(err));
	unlink(path);
	return rc;
}

int main(void)
{
	const char *v;

	CHECK(load("# comment\n\n  a = 5   # five\nb = x#y\nc =    # empty\n"
	    "url = https://h.example/p#frag\nsecret = whsec_a b\n") == 0);
	CHECK(strcmp(cfg_str("a", ""), "5") == 0);
	CHECK(cfg_int("a", 0) == 5);
	CHECK(strcmp(cfg_str("b", ""), "x#y") == 0);
	CHECK(strcmp(cfg_str("c", "def"), "") == 0);
	CHECK(strcmp(cfg_str("url", ""), "https://h.example/p#frag") == 0);
	CHECK(strcmp(cfg_str("secret", ""), "whsec_a b") == 0);
	CHECK(cfg_int("missing", 42) == 42);
	CHECK(cfg_str("missing", NULL) == NULL);
	setenv("LICD_A", "7", 1);
	CHECK(cfg_int("a", 0) == 7);		/* the environment wins */
	unsetenv("LICD_A");
	v = cfg_str("a", NULL);
	CHECK(v != NULL && strcmp(v, "5") == 0);
	CHECK(load("no equals sign\n") != 0);
	CHECK(load("= value\n") != 0);
	UNIT_DONE("config");
}
