/* Unit tests for rowcache: lookups, eviction of idle states and least-recently-used eviction. */
#include <criterion/criterion.h>

#include <stdint.h>

#include "rollupd/rowcache.h"
#include "rollupd/rowstate.h"

Test(rowcache, cache_evicts_least_recent)
{
    struct ru_rowcache *c = ru_rowcache_new();
    for (int64_t id = 1; id <= 3000; id++) {
        struct ru_rowstate *s = ru_rowstate_new(id);
        s->used_ms = id;
        ru_rowcache_put(c, s);
    }
    cr_assert_eq(ru_rowcache_count(c), 3000);
    for (int64_t id = 1; id <= 3000; id++)
        cr_assert_not_null(ru_rowcache_get(c, id));
    cr_assert_null(ru_rowcache_get(c, 3001));
    size_t before = ru_rowcache_mem(c);
    struct ru_evicted ev = ru_rowcache_evict(c, before / 2, INT64_MIN);
    size_t gone = ev.budget;
    cr_assert_gt(gone, 0);
    cr_assert_eq(ev.idle, 0);
    cr_assert_eq(ev.idle_bytes, 0);
    cr_assert_leq(ru_rowcache_mem(c), before / 2);
    cr_assert_eq(ru_rowcache_count(c), 3000 - gone);
    /* the oldest went first */
    for (int64_t id = 1; id <= (int64_t)gone; id++)
        cr_assert_null(ru_rowcache_get(c, id), "id %lld", (long long)id);
    for (int64_t id = (int64_t)gone + 1; id <= 3000; id++)
        cr_assert_not_null(ru_rowcache_get(c, id), "id %lld", (long long)id);
    ev = ru_rowcache_evict(c, ru_rowcache_mem(c), INT64_MIN);
    cr_assert_eq(ev.idle + ev.budget, 0);
    ru_rowcache_free(c);
}

/* A past hour's rows: no flush needs them once the hour is over. They go when idle long
 * enough, whatever the budget; the rest stay, and a budget still applies after. */
Test(rowcache, cache_gives_back_idle_states)
{
    struct ru_rowcache *c = ru_rowcache_new();
    for (int64_t id = 1; id <= 200; id++) {
        struct ru_rowstate *s = ru_rowstate_new(id);
        s->used_ms = id <= 120 ? 1000 : 5000 + id; /* ids 1-120 used at 1 s, the rest after 5 s */
        ru_rowcache_put(c, s);
    }
    size_t all = ru_rowcache_mem(c);
    struct ru_evicted ev = ru_rowcache_evict(c, SIZE_MAX, 1000);
    cr_assert_eq(ev.idle + ev.budget, 0, "a state used at the bound is not idle");
    ev = ru_rowcache_evict(c, SIZE_MAX, 1001);
    cr_assert_eq(ev.idle, 120);
    cr_assert_eq(ev.budget, 0);
    cr_assert_eq(ru_rowcache_count(c), 80);
    cr_assert_lt(ru_rowcache_mem(c), all);
    cr_assert_eq(ev.idle_bytes, all - ru_rowcache_mem(c), "idle bytes %zu, given back %zu",
                 ev.idle_bytes, all - ru_rowcache_mem(c));
    for (int64_t id = 1; id <= 200; id++)
        if (id <= 120)
            cr_assert_null(ru_rowcache_get(c, id), "idle id %lld kept", (long long)id);
        else
            cr_assert_not_null(ru_rowcache_get(c, id), "id %lld used at 5 s evicted",
                               (long long)id);
    /* idle and over the budget at once: the idle ones first, then the least recent */
    for (int64_t id = 201; id <= 220; id++) {
        struct ru_rowstate *s = ru_rowstate_new(id);
        s->used_ms = 2000;
        ru_rowcache_put(c, s);
    }
    size_t held = ru_rowcache_mem(c);
    size_t budget = held / 2;
    ev = ru_rowcache_evict(c, budget, 3000);
    cr_assert_eq(ev.idle, 20, "ids 201-220 are idle");
    cr_assert_gt(ev.budget, 0, "the idle ones alone were not enough");
    cr_assert(ev.idle_bytes > 0 && ev.idle_bytes < held - ru_rowcache_mem(c),
              "idle bytes %zu: the idle ones' share of the %zu given back", ev.idle_bytes,
              held - ru_rowcache_mem(c));
    cr_assert_leq(ru_rowcache_mem(c), budget);
    for (int64_t id = 201; id <= 220; id++)
        cr_assert_null(ru_rowcache_get(c, id), "idle id %lld kept", (long long)id);
    cr_assert_not_null(ru_rowcache_get(c, 200), "the most recent state went");
    ru_rowcache_free(c);
}
