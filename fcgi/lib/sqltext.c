/* sqltext: see sqltext.h. */
#include "sqltext.h"

#include <stdlib.h>
#include <string.h>

static int space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
	    c == '\f' || c == '\v';
}

/* A byte an identifier may hold after its first (PostgreSQL: letters,
 * digits, `_`, `$` and any non-ASCII byte). */
static int ident(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '_' || c == '$' || c >= 0x80;
}

/* The length of a dollar-quote delimiter ($$ or $tag$) at s, else 0: a
 * tag starts with a letter, `_` or non-ASCII byte ($1 is a parameter). */
static size_t dollar_tag(const unsigned char *s)
{
	size_t n = 1;

	if (s[1] >= '0' && s[1] <= '9')
		return 0;
	while (s[n] != '\0' && s[n] != '$' && ident(s[n]))
		n++;
	return s[n] == '$' ? n + 1 : 0;
}

/* The end of the quoted text that starts at s[0] (a quote character):
 * just past its closing quote, or the end of the text. */
static const unsigned char *quoted(const unsigned char *s, int backslash)
{
	unsigned char q = s[0];

	for (s++; *s != '\0'; s++) {
		if (backslash && *s == '\\' && s[1] != '\0')
			s++;
		else if (*s == q && s[1] == q)
			s++;
		else if (*s == q)
			return s + 1;
	}
	return s;
}

/* The end of the comment that starts at s: past its newline, or past
 * the `*` `/` that closes the outermost of nested ones. */
static const unsigned char *comment(const unsigned char *s)
{
	int depth = 0;

	if (s[0] == '-') {
		while (*s != '\0' && *s != '\n')
			s++;
		return *s != '\0' ? s + 1 : s;
	}
	for (; *s != '\0'; s++) {
		if (s[0] == '/' && s[1] == '*') {
			depth++;
			s++;
		} else if (s[0] == '*' && s[1] == '/') {
			s++;
			if (--depth == 0)
				return s + 1;
		}
	}
	return s;
}

int sqltext_statements(const char *sql, char **out)
{
	const unsigned char *s = (const unsigned char *)sql, *end;
	unsigned char prev;	/* the byte before this one, as written out */
	char *o;
	size_t n = 0, t;
	int gap = 0;

	if ((o = malloc(strlen(sql) + 1)) == NULL)
		return -1;
	while (*s != '\0') {
		if (space(*s) || (s[0] == '-' && s[1] == '-') ||
		    (s[0] == '/' && s[1] == '*')) {
			s = space(*s) ? s + 1 : comment(s);
			gap = n > 0;
			continue;
		}
		if (gap)
			o[n++] = ' ';
		gap = 0;
		prev = n > 0 ? (unsigned char)o[n - 1] : '\0';
		end = s + 1;
		if (*s == '\'')
			end = quoted(s, (prev == 'E' || prev == 'e') &&
			    (n < 2 || !ident((unsigned char)o[n - 2])));
		else if (*s == '"')
			end = quoted(s, 0);
		else if (*s == '$' && !ident(prev) && (t = dollar_tag(s)) > 0) {
			/* the body runs to the same delimiter */
			const char *close = NULL;
			char tag[256];

			if (t < sizeof(tag)) {
				memcpy(tag, s, t);
				tag[t] = '\0';
				close = strstr((const char *)s + t, tag);
			}
			end = close != NULL ? (const unsigned char *)close + t :
			    s + strlen((const char *)s);
		}
		memcpy(o + n, s, (size_t)(end - s));
		n += (size_t)(end - s);
		s = end;
	}
	o[n] = '\0';
	*out = o;
	return 0;
}
