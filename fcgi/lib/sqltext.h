/*
 * sqltext: what an SQL file says, without how it is laid out. licctl
 * migrate records the SHA-256 of this form of each file, so that a
 * migration's comments can be corrected after it was applied (a comment
 * is not part of the schema) while any change to a statement is still
 * refused.
 */
#ifndef LICD_SQLTEXT_H
#define LICD_SQLTEXT_H

/* sql's statements as PostgreSQL's lexer reads them: `--` and (nested)
 * C-style comments removed, every run of white space and comments
 * outside quoted text made one space, none at either end. Quoted text is
 * kept byte for byte: '…' and E'…' strings, "…" identifiers and
 * $tag$…$tag$ bodies (a comment inside a function's body is part of the
 * function). Unterminated quoted text or comment runs to the end. 0:
 * *out is malloc'd (caller frees); -1: out of memory. */
int sqltext_statements(const char *sql, char **out);

#endif
