/* json: canonical form of a JSON text under PostgreSQL jsonb equality. Pure.
 *
 * Two texts that PostgreSQL considers equal once cast to jsonb (key order, white space,
 * number spelling such as 1 / 1.0 / 1e0 / 10E-1, string escapes, duplicate keys where the
 * last one wins) canonicalise to the same bytes, and texts that are not jsonb-equal never
 * do. The canonical text is itself valid JSON that PostgreSQL accepts as jsonb and that is
 * jsonb-equal to the input, so it can be written to a jsonb column as it is. */
#ifndef ROLLUPD_JSON_H
#define ROLLUPD_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "rollupd/util.h"

#define RU_JSON_MAX_DEPTH 64

/* Canonicalises the JSON text [s, s+len) and appends the result to out.
 * With require_object, a valid text whose top-level value is not an object is refused.
 * Refuses (returns -1 with a reason in err) what PostgreSQL's jsonb input would refuse:
 * syntax errors, invalid UTF-8, \u0000 and unpaired surrogate escapes, numbers outside
 * numeric's range, nesting deeper than RU_JSON_MAX_DEPTH. On failure out is left with
 * its length unchanged. Returns 0 on success. */
int ru_json_canon(const char *s, size_t len, bool require_object, struct ru_buf *out, char *err,
                  size_t errlen) RU_MUSTCHECK;

#endif
