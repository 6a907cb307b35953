/* Unit tests for rowcache: lookups and least-recently-used eviction. */
#include <criterion/criterion.h>

#include <stdint.h>

#include "rollupd/rowcache.h"
#include "rollupd/rowstate.h"

Test(rowcache, cache_evicts_least_recent)
{
    struct ru_rowcache *c = ru_rowcache_new();
    for (int64_t id = 1; id <= 3000; id++) {
        struct ru_rowstate *s = ru_rowstate_new(id);
        s->used = (uint64_t)id;
        ru_rowcache_put(c, s);
    }
    cr_assert_eq(ru_rowcache_count(c), 3000);
    for (int64_t id = 1; id <= 3000; id++)
        cr_assert_not_null(ru_rowcache_get(c, id));
    cr_assert_null(ru_rowcache_get(c, 3001));
    size_t before = ru_rowcache_mem(c);
    size_t gone = ru_rowcache_evict(c, before / 2);
    cr_assert_gt(gone, 0);
    cr_assert_leq(ru_rowcache_mem(c), before / 2);
    cr_assert_eq(ru_rowcache_count(c), 3000 - gone);
    /* the oldest went first */
    for (int64_t id = 1; id <= (int64_t)gone; id++)
        cr_assert_null(ru_rowcache_get(c, id), "id %lld", (long long)id);
    for (int64_t id = (int64_t)gone + 1; id <= 3000; id++)
        cr_assert_not_null(ru_rowcache_get(c, id), "id %lld", (long long)id);
    cr_assert_eq(ru_rowcache_evict(c, ru_rowcache_mem(c)), 0);
    ru_rowcache_free(c);
}
