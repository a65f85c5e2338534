/*
 * utf8: the one test of well-formed UTF-8 (RFC 3629), used where licd
 * checks text from outside (http) and where it escapes text for the log.
 */
#ifndef LICD_UTF8_H
#define LICD_UTF8_H

#include <stddef.h>

/* Length of the well-formed UTF-8 sequence at p (1-4), 0 if there is
 * none (a stray byte, an overlong form, a surrogate, above U+10FFFF).
 * p points at a NUL-terminated string; a NUL ends a sequence early. */
size_t utf8_len(const unsigned char *p);

#endif
