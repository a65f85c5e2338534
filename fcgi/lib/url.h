/*
 * url: query-string parameters, URL-decoded by libcurl. Its own module
 * (and object in the archive) so that only the programs that read a query
 * string link libcurl: it and the eight libraries it alone brings are
 * resident pages in every process that loads them (docs/PERFORMANCE.md).
 */
#ifndef LICD_URL_H
#define LICD_URL_H

/* Parameter `name` of query string `query` (may be NULL), with `+` as
 * space. 0: *out is a malloc'd NUL-free string (caller frees); 1: absent;
 * -1: not decodable or contains NUL. */
int url_query(const char *query, const char *name, char **out);

#endif
