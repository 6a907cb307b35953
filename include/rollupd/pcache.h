/* pcache: canonical JSON by raw text. The same few query_params strings repeat in a
 * stream; ru_pcache_canon gives what ru_json_canon gives (the canonical text appended to
 * out, or the refusal and its reason) but parses each distinct text only once while it
 * stays in the cache. Bounded: texts longer than RU_PCACHE_MAX_TEXT are not kept, and the
 * cache empties itself when it holds RU_PCACHE_MAX_ENTRIES texts or RU_PCACHE_MAX_BYTES.
 * Pure: no I/O, no logging. */
#ifndef ROLLUPD_PCACHE_H
#define ROLLUPD_PCACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "rollupd/util.h"

#define RU_PCACHE_MAX_TEXT    1024
#define RU_PCACHE_MAX_ENTRIES 4096
#define RU_PCACHE_MAX_BYTES   (1024 * 1024)

struct ru_pcache;

struct ru_pcache *ru_pcache_new(void);
void ru_pcache_free(struct ru_pcache *c);

/* ru_json_canon(s, len, require_object, out, err, errlen), answered from the cache when the
 * same text was canonicalised in the same mode before (c may be NULL: no cache). */
int ru_pcache_canon(struct ru_pcache *c, const char *s, size_t len, bool require_object,
                    struct ru_buf *out, char *err, size_t errlen) RU_MUSTCHECK;

/* Bytes the cache holds. */
size_t ru_pcache_mem(const struct ru_pcache *c);

#endif
