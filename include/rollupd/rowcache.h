/* rowcache: the PostgreSQL writer's cache of row states (rowstate), by hourly id, with the
 * bytes they hold and least-recently-used eviction. Pure. */
#ifndef ROLLUPD_ROWCACHE_H
#define ROLLUPD_ROWCACHE_H

#include <stddef.h>
#include <stdint.h>

struct ru_rowstate;

/* The writer's cache of row states, by hourly id. */
struct ru_rowcache;
struct ru_rowcache *ru_rowcache_new(void);
void ru_rowcache_free(struct ru_rowcache *c);
struct ru_rowstate *ru_rowcache_get(const struct ru_rowcache *c, int64_t id);
/* Adds s (owned by the cache from now on); id must not be cached yet. */
void ru_rowcache_put(struct ru_rowcache *c, struct ru_rowstate *s);
size_t ru_rowcache_count(const struct ru_rowcache *c);
/* Bytes held by the cache and its states, as last measured. */
size_t ru_rowcache_mem(const struct ru_rowcache *c);
/* Measures s again after it changed (reloaded, cleared, committed). */
void ru_rowcache_remeasure(struct ru_rowcache *c, struct ru_rowstate *s);
/* How many states one ru_rowcache_evict gave back, and why. */
struct ru_evicted {
    size_t idle;       /* last used before idle_before */
    size_t budget;     /* the least recently used, to keep to the budget */
    size_t idle_bytes; /* what the idle ones held (ru_rowcache_mem's measure) */
};
/* Evicts the states last used before idle_before (ru_rowstate.used_ms; INT64_MIN: none),
 * then the least recently used until at most budget bytes are held. */
struct ru_evicted ru_rowcache_evict(struct ru_rowcache *c, size_t budget, int64_t idle_before);

#endif
