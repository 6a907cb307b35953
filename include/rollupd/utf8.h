/* utf8: well-formed UTF-8 (as PostgreSQL's UTF8 encoding accepts it) and its length in
 * characters. Pure. */
#ifndef ROLLUPD_UTF8_H
#define ROLLUPD_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length of the well-formed UTF-8 sequence at p (p < end), or 0 when it is not one. */
size_t ru_utf8_seq(const unsigned char *p, const unsigned char *end);

/* True when [s, s+len) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool ru_utf8_valid(const char *s, size_t len);

/* Number of UTF-8 characters in a valid UTF-8 string (continuation bytes not counted). */
size_t ru_utf8_chars(const char *s, size_t len);

#endif
