#include "rollupd/store.h"

#include <stdlib.h>
#include <string.h>

#include "rollupd/arena.h"

struct strdict_slot {
    uint64_t hash;
    uint32_t idx; /* index + 1; 0 = empty */
};

struct ru_store {
    /* aggregates, dense, insertion order; table maps hash -> index + 1 */
    struct ru_agg *aggs;
    size_t naggs, aggs_cap;
    uint32_t *table;
    size_t table_cap; /* power of two */

    /* user dictionary: text -> index */
    const char **user_text;
    uint32_t *user_len;
    size_t nusers, users_cap;
    struct strdict_slot *udict;
    size_t udict_cap;

    /* key and user-id strings: they live exactly as long as the store, so one free per
     * chunk instead of one per string */
    struct ru_arena strings;
    size_t mem; /* beyond the strings */
    uint64_t nevents;
};

static char *arena_copy(struct ru_store *st, const char *s, size_t len)
{
    return ru_arena_strndup(&st->strings, s, len);
}

struct ru_store *ru_store_new(void)
{
    struct ru_store *st = ru_xcalloc(1, sizeof(*st));
    ru_arena_init(&st->strings, 64 * 1024, 0);
    st->table_cap = 1024;
    st->table = ru_xcalloc(st->table_cap, sizeof(*st->table));
    st->udict_cap = 1024;
    st->udict = ru_xcalloc(st->udict_cap, sizeof(*st->udict));
    st->mem = sizeof(*st) + st->table_cap * sizeof(*st->table) + st->udict_cap * sizeof(*st->udict);
    return st;
}

void ru_store_free(struct ru_store *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->naggs; i++) {
        free(st->aggs[i].hist);
        free(st->aggs[i].users);
    }
    free(st->aggs);
    free(st->table);
    free(st->user_text);
    free(st->user_len);
    free(st->udict);
    ru_arena_deinit(&st->strings);
    free(st);
}

/* The hash of a key (hour, route, method, params), in one pass over its fields. */
static uint64_t key_hash(int64_t hour_us, const char *route, size_t route_len, const char *method,
                         size_t method_len, const char *params, size_t params_len)
{
    uint64_t h = ru_fhash_word(0x5bd1e995, (uint64_t)hour_us);
    h = ru_fhash_bytes(h, route, route_len);
    h = ru_fhash_bytes(h, method, method_len);
    return ru_fhash_end(ru_fhash_bytes(h, params, params_len));
}

static bool key_eq(const struct ru_agg *a, const struct ru_event *ev)
{
    return a->hour_us == ev->hour_us && a->route_len == ev->route.len &&
           a->method_len == ev->method.len && a->params_len == ev->params_canon.len &&
           memcmp(a->route, ev->route.p, ev->route.len) == 0 &&
           memcmp(a->method, ev->method.p, ev->method.len) == 0 &&
           memcmp(a->params, ev->params_canon.p, ev->params_canon.len) == 0;
}

static void table_grow(struct ru_store *st)
{
    size_t cap = st->table_cap * 2;
    uint32_t *t = ru_xcalloc(cap, sizeof(*t));
    for (size_t i = 0; i < st->naggs; i++) {
        /* rehash from the stored upper bits plus a recomputed hash of the key */
        const struct ru_agg *a = &st->aggs[i];
        uint64_t h = key_hash(a->hour_us, a->route, a->route_len, a->method, a->method_len,
                              a->params, a->params_len);
        size_t j = (size_t)h & (cap - 1);
        while (t[j])
            j = (j + 1) & (cap - 1);
        t[j] = (uint32_t)i + 1;
    }
    st->mem += (cap - st->table_cap) * sizeof(*t);
    free(st->table);
    st->table = t;
    st->table_cap = cap;
}

static struct ru_agg *agg_get(struct ru_store *st, const struct ru_event *ev)
{
    uint64_t h = key_hash(ev->hour_us, ev->route.p, ev->route.len, ev->method.p, ev->method.len,
                          ev->params_canon.p, ev->params_canon.len);
    uint32_t hi = (uint32_t)(h >> 32);
    size_t mask = st->table_cap - 1;
    size_t j = (size_t)h & mask;
    for (;;) {
        uint32_t ix = st->table[j];
        if (ix == 0)
            break;
        struct ru_agg *a = &st->aggs[ix - 1];
        if (a->hash_hi == hi && key_eq(a, ev))
            return a;
        j = (j + 1) & mask;
    }
    if (st->naggs == st->aggs_cap) {
        size_t cap = st->aggs_cap ? st->aggs_cap * 2 : 256;
        st->aggs = ru_xrealloc(st->aggs, cap * sizeof(*st->aggs));
        st->mem += (cap - st->aggs_cap) * sizeof(*st->aggs);
        st->aggs_cap = cap;
    }
    struct ru_agg *a = &st->aggs[st->naggs];
    memset(a, 0, sizeof(*a));
    a->hour_us = ev->hour_us;
    a->route = arena_copy(st, ev->route.p, ev->route.len);
    a->method = arena_copy(st, ev->method.p, ev->method.len);
    a->params = arena_copy(st, ev->params_canon.p, ev->params_canon.len);
    a->route_len = (uint32_t)ev->route.len;
    a->method_len = (uint32_t)ev->method.len;
    a->params_len = (uint32_t)ev->params_canon.len;
    a->hash_hi = hi;
    st->table[j] = (uint32_t)++st->naggs;
    if (st->naggs * 2 > st->table_cap)
        table_grow(st);
    return a;
}

static inline uint32_t int_hash(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

static void hist_insert_slot(struct ru_hist_slot *t, uint32_t cap, int32_t value, uint32_t count)
{
    uint32_t j = int_hash((uint32_t)value) & (cap - 1);
    while (t[j].count != 0 && t[j].value != value)
        j = (j + 1) & (cap - 1);
    t[j].value = value;
    t[j].count += count;
}

static void hist_add(struct ru_store *st, struct ru_agg *a, int32_t value)
{
    if (a->hist_cap == 0 || (a->hist_n + 1) * 4 > a->hist_cap * 3) {
        uint32_t cap = a->hist_cap ? a->hist_cap * 2 : 8;
        struct ru_hist_slot *t = ru_xcalloc(cap, sizeof(*t));
        for (uint32_t i = 0; i < a->hist_cap; i++)
            if (a->hist[i].count)
                hist_insert_slot(t, cap, a->hist[i].value, a->hist[i].count);
        st->mem += (cap - a->hist_cap) * sizeof(*t);
        free(a->hist);
        a->hist = t;
        a->hist_cap = cap;
    }
    uint32_t mask = a->hist_cap - 1;
    uint32_t j = int_hash((uint32_t)value) & mask;
    while (a->hist[j].count != 0) {
        if (a->hist[j].value == value) {
            a->hist[j].count++;
            return;
        }
        j = (j + 1) & mask;
    }
    a->hist[j].value = value;
    a->hist[j].count = 1;
    a->hist_n++;
}

static uint32_t user_index(struct ru_store *st, const char *s, size_t len)
{
    uint64_t h = ru_fhash(s, len, 0x27d4eb2f);
    size_t mask = st->udict_cap - 1;
    size_t j = (size_t)h & mask;
    while (st->udict[j].idx) {
        uint32_t ix = st->udict[j].idx - 1;
        if (st->udict[j].hash == h && st->user_len[ix] == len &&
            memcmp(st->user_text[ix], s, len) == 0)
            return ix;
        j = (j + 1) & mask;
    }
    if (st->nusers == st->users_cap) {
        size_t cap = st->users_cap ? st->users_cap * 2 : 256;
        st->user_text = ru_xrealloc(st->user_text, cap * sizeof(*st->user_text));
        st->user_len = ru_xrealloc(st->user_len, cap * sizeof(*st->user_len));
        st->mem += (cap - st->users_cap) * (sizeof(*st->user_text) + sizeof(*st->user_len));
        st->users_cap = cap;
    }
    uint32_t ix = (uint32_t)st->nusers++;
    st->user_text[ix] = arena_copy(st, s, len);
    st->user_len[ix] = (uint32_t)len;
    st->udict[j].hash = h;
    st->udict[j].idx = ix + 1;
    if (st->nusers * 2 > st->udict_cap) {
        size_t cap = st->udict_cap * 2;
        struct strdict_slot *t = ru_xcalloc(cap, sizeof(*t));
        for (size_t i = 0; i < st->udict_cap; i++) {
            if (!st->udict[i].idx)
                continue;
            size_t k = (size_t)st->udict[i].hash & (cap - 1);
            while (t[k].idx)
                k = (k + 1) & (cap - 1);
            t[k] = st->udict[i];
        }
        st->mem += (cap - st->udict_cap) * sizeof(*t);
        free(st->udict);
        st->udict = t;
        st->udict_cap = cap;
    }
    return ix;
}

static void users_insert_slot(uint32_t *t, uint32_t cap, uint32_t v)
{
    uint32_t j = int_hash(v) & (cap - 1);
    while (t[j] != 0 && t[j] != v)
        j = (j + 1) & (cap - 1);
    t[j] = v;
}

static void users_add(struct ru_store *st, struct ru_agg *a, uint32_t ix)
{
    uint32_t v = ix + 1;
    if (a->users_cap == 0 || (a->users_n + 1) * 4 > a->users_cap * 3) {
        uint32_t cap = a->users_cap ? a->users_cap * 2 : 4;
        uint32_t *t = ru_xcalloc(cap, sizeof(*t));
        for (uint32_t i = 0; i < a->users_cap; i++)
            if (a->users[i])
                users_insert_slot(t, cap, a->users[i]);
        st->mem += (cap - a->users_cap) * sizeof(*t);
        free(a->users);
        a->users = t;
        a->users_cap = cap;
    }
    uint32_t mask = a->users_cap - 1;
    uint32_t j = int_hash(v) & mask;
    while (a->users[j] != 0) {
        if (a->users[j] == v)
            return;
        j = (j + 1) & mask;
    }
    a->users[j] = v;
    a->users_n++;
}

static bool str_is(const struct ru_str *s, const char *lit, size_t n)
{
    return s->len == n && memcmp(s->p, lit, n) == 0;
}

void ru_store_add(struct ru_store *st, const struct ru_event *ev)
{
    struct ru_agg *a = agg_get(st, ev);
    a->total++;
    if (ev->status_code >= 200 && ev->status_code <= 299)
        a->ok++;
    else if (ev->status_code >= 400 && ev->status_code <= 499)
        a->c4xx++;
    else if (ev->status_code >= 500)
        a->c5xx++;
    if (str_is(&ev->cache_status, "hit", 3))
        a->hits++;
    else if (str_is(&ev->cache_status, "miss", 4))
        a->misses++;
    a->dur_sum += ev->duration_ms;
    if (ev->request_size != 0) {
        a->req_sum += ev->request_size;
        a->req_n++;
    }
    if (ev->response_size != 0) {
        a->resp_sum += ev->response_size;
        a->resp_n++;
    }
    if (ev->has_db_query_count) {
        a->db_sum += ev->db_query_count;
        a->db_n++;
    }
    hist_add(st, a, ev->duration_ms);
    if (ev->user_id.len)
        users_add(st, a, user_index(st, ev->user_id.p, ev->user_id.len));
    st->nevents++;
}

size_t ru_store_nkeys(const struct ru_store *st)
{
    return st->naggs;
}

uint64_t ru_store_nevents(const struct ru_store *st)
{
    return st->nevents;
}

size_t ru_store_mem(const struct ru_store *st)
{
    return st->mem + ru_arena_size(&st->strings);
}

size_t ru_store_next_growth(const struct ru_store *st)
{
    size_t aggs = (st->aggs_cap ? st->aggs_cap : 256) * sizeof(*st->aggs);
    size_t table = st->table_cap * sizeof(*st->table);
    size_t users =
        st->udict_cap * sizeof(*st->udict) +
        (st->users_cap ? st->users_cap : 256) * (sizeof(*st->user_text) + sizeof(*st->user_len));
    /* the key array is reallocated (old and new copies live for a moment) */
    return 2 * aggs + table + users;
}

const struct ru_agg *ru_store_agg(const struct ru_store *st, size_t i)
{
    return &st->aggs[i];
}

const char *ru_store_user(const struct ru_store *st, uint32_t idx, size_t *len)
{
    *len = st->user_len[idx];
    return st->user_text[idx];
}

size_t ru_store_nusers(const struct ru_store *st)
{
    return st->nusers;
}
