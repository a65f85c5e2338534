/*
 * url: query-string parameters, URL-decoded. Decoded here rather than by
 * libcurl (curl_easy_unescape): the programs that read a query string
 * (usage, the admin program) would otherwise load libcurl and the eight
 * libraries it alone brings, resident pages in each of their processes.
 */
#ifndef LICD_URL_H
#define LICD_URL_H

/* Parameter `name` of query string `query` (may be NULL), with `+` as
 * space. 0: *out is a malloc'd NUL-free string (caller frees); 1: absent;
 * -1: not decodable or contains NUL. */
int url_query(const char *query, const char *name, char **out);

#endif
