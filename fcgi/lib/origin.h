/*
 * origin: the browser origin of a redirect URL, judged as a browser's
 * WHATWG URL parser would read it, and refused wherever a browser and
 * another parser (libcurl, a server's) could read it differently. No
 * libcurl: its reading is what must not decide.
 *
 * Accepted: ASCII "http" or "https" (any case), then exactly "//", a host
 * of letters, digits, '-' and '.' (no empty label, no trailing dot; a
 * host whose last label is numeric must be a dotted-decimal IPv4 address
 * as browsers print it), an optional ":port" (0-65535), then nothing or
 * a path, query or fragment starting with '/', '?' or '#'. Refused: any
 * byte outside printable ASCII (whitespace, control characters, non-ASCII),
 * backslashes anywhere, user info ('@' before the path), '%' in the host,
 * IPv6 literals, other schemes, scheme-relative URLs.
 */
#ifndef LICD_ORIGIN_H
#define LICD_ORIGIN_H

#include <stddef.h>

/* Longest URL judged (longer ones are refused). */
#define ORIGIN_URL_MAX 2048
/* "https://" + 253-byte host + ":65535" and the NUL. */
#define ORIGIN_MAX 272

/* 0: out is "scheme://host:port", lowercased, with the scheme's default
 * port written out; -1: refused. */
int origin_of(const char *url, char out[ORIGIN_MAX]);

/* 1 when url's origin is one of the comma- or space-separated origins in
 * list (each judged by origin_of; entries it refuses match nothing). */
int origin_allowed(const char *url, const char *list);

#endif
