/* sqltext_statements: comments and layout go, quoted text stays. */
#include "sqltext.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

static int is(const char *sql, const char *want)
{
	char *got = NULL;
	int ok = sqltext_statements(sql, &got) == 0 && strcmp(got, want) == 0;

	if (!ok)
		fprintf(stderr, "  [%s] gave [%s], want [%s]\n", sql,
		    got != NULL ? got : "(null)", want);
	free(got);
	return ok;
}

int main(void)
{
	CHECK(is("", ""));
	CHECK(is("  \n-- only a comment\n\t", ""));
	CHECK(is("-- a\nCREATE  TABLE t\n(x int);  -- b\n", "CREATE TABLE t (x int);"));
	CHECK(is("SELECT 1;\r\n\r\nSELECT 2;", "SELECT 1; SELECT 2;"));
	/* a comment separates as white space does */
	CHECK(is("a/*x*/b", "a b"));
	CHECK(is("a--x\nb", "a b"));
	CHECK(is("a /* 1 /* 2 */ still */ b", "a b"));
	CHECK(is("a /* never closed", "a"));
	CHECK(is("a -- to the end", "a"));
	/* strings and identifiers are kept as written */
	CHECK(is("SELECT '--  x', 'a /* b */'", "SELECT '--  x', 'a /* b */'"));
	CHECK(is("SELECT 'it''s -- here'  -- gone", "SELECT 'it''s -- here'"));
	CHECK(is("SELECT E'\\' -- still'  -- gone", "SELECT E'\\' -- still'"));
	CHECK(is("SELECT e'a\\\\'  -- gone", "SELECT e'a\\\\'"));
	/* a backslash ends nothing in a standard string */
	CHECK(is("SELECT 'a\\'  -- gone", "SELECT 'a\\'"));
	/* ...nor after an identifier ending in E */
	CHECK(is("SELECT 1 AS xE'a\\'--x", "SELECT 1 AS xE'a\\'"));
	CHECK(is("SELECT \"a  --\"\"b\"", "SELECT \"a  --\"\"b\""));
	CHECK(is("x 'never closed -- b", "x 'never closed -- b"));
	/* function bodies are kept, their comments included */
	CHECK(is("AS $$\n  SELECT 1; -- why\n$$  LANGUAGE sql",
	    "AS $$\n  SELECT 1; -- why\n$$ LANGUAGE sql"));
	CHECK(is("AS $f$ a $$ -- b $f$ -- c", "AS $f$ a $$ -- b $f$"));
	CHECK(is("AS $body$ never closed -- x", "AS $body$ never closed -- x"));
	/* $1 is a parameter and a$b$ an identifier, neither opens a body */
	CHECK(is("WHERE x = $1 -- c\nAND y", "WHERE x = $1 AND y"));
	CHECK(is("SELECT a$b$ -- c\n, 1", "SELECT a$b$ , 1"));
	/* the same statements laid out otherwise give the same text */
	{
		char *a = NULL, *b = NULL;

		CHECK(sqltext_statements("-- v1: why\nALTER TABLE t\n  ADD c int;\n", &a) == 0);
		CHECK(sqltext_statements("-- v2: reworded\n\nALTER TABLE t ADD c int; /* x */\n", &b) == 0);
		CHECK(a != NULL && b != NULL && strcmp(a, b) == 0);
		free(a);
		free(b);
	}
	UNIT_DONE("sqltext");
}
