#include "rollupd/rowcache.h"

#include <stdlib.h>
#include <string.h>

#include "rollupd/rowstate.h"
#include "rollupd/util.h"

struct ru_rowcache {
    struct ru_rowstate **slots; /* open addressing by id; NULL = empty */
    size_t cap, n;
    size_t mem;
};

static size_t id_slot(int64_t id, size_t mask)
{
    uint64_t x = (uint64_t)id * 0x9e3779b97f4a7c15ULL;
    return (size_t)(x ^ (x >> 32)) & mask;
}

struct ru_rowcache *ru_rowcache_new(void)
{
    struct ru_rowcache *c = ru_xcalloc(1, sizeof(*c));
    c->cap = 1024;
    c->slots = ru_xcalloc(c->cap, sizeof(*c->slots));
    c->mem = sizeof(*c) + c->cap * sizeof(*c->slots);
    return c;
}

void ru_rowcache_free(struct ru_rowcache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->cap; i++)
        ru_rowstate_free(c->slots[i]);
    free(c->slots);
    free(c);
}

struct ru_rowstate *ru_rowcache_get(const struct ru_rowcache *c, int64_t id)
{
    size_t mask = c->cap - 1;
    for (size_t j = id_slot(id, mask); c->slots[j]; j = (j + 1) & mask)
        if (c->slots[j]->id == id)
            return c->slots[j];
    return NULL;
}

static void slot_insert(struct ru_rowstate **t, size_t cap, struct ru_rowstate *s)
{
    size_t j = id_slot(s->id, cap - 1);
    while (t[j])
        j = (j + 1) & (cap - 1);
    t[j] = s;
}

static void rehash(struct ru_rowcache *c, size_t cap)
{
    struct ru_rowstate **t = ru_xcalloc(cap, sizeof(*t));
    for (size_t i = 0; i < c->cap; i++)
        if (c->slots[i])
            slot_insert(t, cap, c->slots[i]);
    free(c->slots);
    c->mem += (cap - c->cap) * sizeof(*t);
    c->slots = t;
    c->cap = cap;
}

void ru_rowcache_put(struct ru_rowcache *c, struct ru_rowstate *s)
{
    if ((c->n + 1) * 2 > c->cap)
        rehash(c, c->cap * 2);
    slot_insert(c->slots, c->cap, s);
    c->n++;
    s->counted = ru_rowstate_mem(s);
    c->mem += s->counted;
}

size_t ru_rowcache_count(const struct ru_rowcache *c)
{
    return c->n;
}

size_t ru_rowcache_mem(const struct ru_rowcache *c)
{
    return c->mem;
}

void ru_rowcache_remeasure(struct ru_rowcache *c, struct ru_rowstate *s)
{
    size_t now = ru_rowstate_mem(s);
    c->mem = c->mem - s->counted + now;
    s->counted = now;
}

static int used_cmp(const void *a, const void *b)
{
    const struct ru_rowstate *x = *(struct ru_rowstate *const *)a;
    const struct ru_rowstate *y = *(struct ru_rowstate *const *)b;
    return (x->used_ms > y->used_ms) - (x->used_ms < y->used_ms);
}

static void drop(struct ru_rowcache *c, struct ru_rowstate *s)
{
    c->mem -= s->counted;
    ru_rowstate_free(s);
}

struct ru_evicted ru_rowcache_evict(struct ru_rowcache *c, size_t budget, int64_t idle_before)
{
    if ((c->mem <= budget && idle_before == INT64_MIN) || c->n == 0)
        return (struct ru_evicted){0, 0, 0};
    struct ru_rowstate **all = ru_xmalloc(c->n * sizeof(*all));
    size_t n = 0, idle = 0, idle_bytes = 0;
    for (size_t i = 0; i < c->cap; i++) {
        struct ru_rowstate *s = c->slots[i];
        if (s == NULL)
            continue;
        if (s->used_ms < idle_before) {
            idle_bytes += s->counted;
            drop(c, s);
            idle++;
        } else {
            all[n++] = s;
        }
    }
    size_t lru = 0;
    if (c->mem > budget) {
        qsort(all, n, sizeof(*all), used_cmp);
        while (lru < n && c->mem > budget)
            drop(c, all[lru++]);
    }
    if (idle + lru > 0) { /* rebuild the table from the survivors */
        memset(c->slots, 0, c->cap * sizeof(*c->slots));
        c->n = 0;
        for (size_t i = lru; i < n; i++) {
            slot_insert(c->slots, c->cap, all[i]);
            c->n++;
        }
    }
    free(all);
    return (struct ru_evicted){idle, lru, idle_bytes};
}
