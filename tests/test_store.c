/* Unit tests for store (hourly aggregates). */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rollupd/event.h"
#include "rollupd/store.h"
#include "rollupd/util.h"

#define HOUR  RU_USECS_PER_HOUR
#define H0    (487565LL * HOUR) /* 2025-08-15 05:00 UTC */
#define UUID1 "121e194b-4caa-4b81-ad4f-86ca3919d5b9"
#define UUID2 "00000000-0000-0000-0000-000000000002"

static struct ru_str S(const char *s) {
    return (struct ru_str){s, strlen(s)};
}

/* A valid event of the key (hour, route, GET, {}): status 200, 10 ms, anonymous, no sizes,
 * no db count, no cache status. */
static struct ru_event
ev_make(int64_t hour_us, const char *route)
{
    struct ru_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.route = S(route);
    ev.method = S("GET");
    ev.user_id = S("");
    ev.ts_us = hour_us + 1234567;
    ev.hour_us = hour_us;
    ev.duration_ms = 10;
    ev.status_code = 200;
    ev.params_canon = S("{}");
    ev.query_params = S("{}");
    ev.query_params_json = true;
    ev.user_is_uuid = false;
    ev.error_type = S("");
    ev.cache_status = S("");
    return ev;
}

/* The aggregate with exactly this key, or NULL. */
static const struct ru_agg *find_agg(const struct ru_store *st, int64_t hour_us, const char *route,
                                     const char *method, const char *params)
{
    const struct ru_agg *found = NULL;
    for (size_t i = 0; i < ru_store_nkeys(st); i++) {
        const struct ru_agg *a = ru_store_agg(st, i);
        if (a->hour_us == hour_us && a->route_len == strlen(route) &&
            a->method_len == strlen(method) && a->params_len == strlen(params) &&
            memcmp(a->route, route, a->route_len) == 0 &&
            memcmp(a->method, method, a->method_len) == 0 &&
            memcmp(a->params, params, a->params_len) == 0) {
            cr_assert_null(found, "key %s %s %s is held twice", route, method, params);
            found = a;
        }
    }
    return found;
}

/* Count of value in a's histogram (summing every slot that holds it), and checks of the
 * histogram's invariants: hist_n distinct values, each in one slot only. */
static uint64_t hist_count(const struct ru_agg *a, int32_t value)
{
    uint64_t n = 0;
    uint32_t slots = 0;
    for (uint32_t i = 0; i < a->hist_cap; i++) {
        if (a->hist[i].count == 0)
            continue;
        if (a->hist[i].value == value) {
            n += a->hist[i].count;
            slots++;
        }
    }
    cr_assert_leq(slots, 1, "value %" PRId32 " is in %u slots", value, slots);
    return n;
}

static void hist_check(const struct ru_agg *a)
{
    uint64_t sum = 0;
    uint32_t used = 0;
    cr_assert_eq(a->hist_cap & (a->hist_cap - 1), 0, "hist_cap %u not a power of two", a->hist_cap);
    for (uint32_t i = 0; i < a->hist_cap; i++) {
        if (a->hist[i].count == 0)
            continue;
        used++;
        sum += a->hist[i].count;
        for (uint32_t j = i + 1; j < a->hist_cap; j++)
            if (a->hist[j].count != 0)
                cr_assert_neq(a->hist[i].value, a->hist[j].value, "duplicate value %" PRId32,
                              a->hist[i].value);
    }
    cr_assert_eq(used, a->hist_n, "hist_n %u but %u slots used", a->hist_n, used);
    cr_assert_eq(sum, a->total, "histogram holds %" PRIu64 " events, total %" PRIu64, sum,
                 a->total);
}

/* Whether the user text is in a's user set (and that the set has users_n members). */
static bool has_user(const struct ru_store *st, const struct ru_agg *a, const char *user)
{
    bool found = false;
    uint32_t used = 0;
    for (uint32_t i = 0; i < a->users_cap; i++) {
        if (a->users[i] == 0)
            continue;
        used++;
        cr_assert_leq(a->users[i], ru_store_nusers(st), "user index out of range");
        size_t len;
        const char *u = ru_store_user(st, a->users[i] - 1, &len);
        if (len == strlen(user) && memcmp(u, user, len) == 0) {
            cr_assert_not(found, "user %s twice in a set", user);
            found = true;
        }
    }
    cr_assert_eq(used, a->users_n, "users_n %u but %u slots used", a->users_n, used);
    return found;
}

static void uuid_of(char out[37], unsigned n)
{
    snprintf(out, 37, "%08x-0000-4000-8000-%012x", n, n * 7u);
}

/* ---- keys ---- */

Test(store, empty_store)
{
    struct ru_store *st = ru_store_new();
    cr_assert_eq(ru_store_nkeys(st), 0);
    cr_assert_eq(ru_store_nevents(st), 0);
    cr_assert_eq(ru_store_nusers(st), 0);
    cr_assert_gt(ru_store_mem(st), 0);
    ru_store_free(st);
    ru_store_free(NULL);
}

Test(store, same_key_merges)
{
    struct ru_store *st = ru_store_new();
    for (int i = 0; i < 5; i++) {
        struct ru_event ev = ev_make(H0, "/api/v1/x");
        ev.ts_us = H0 + i * 1000000LL; /* same hour, different times */
        ev.duration_ms = 100 + i;
        ru_store_add(st, &ev);
    }
    cr_assert_eq(ru_store_nkeys(st), 1);
    cr_assert_eq(ru_store_nevents(st), 5);
    const struct ru_agg *a = ru_store_agg(st, 0);
    cr_assert_eq(a->hour_us, H0);
    cr_assert_eq(a->route_len, 9);
    cr_assert_str_eq(a->route, "/api/v1/x");
    cr_assert_str_eq(a->method, "GET");
    cr_assert_str_eq(a->params, "{}");
    cr_assert_eq(a->total, 5);
    cr_assert_eq(a->ok, 5);
    cr_assert_eq(a->dur_sum, 100 + 101 + 102 + 103 + 104);
    ru_store_free(st);
}

Test(store, strings_are_copied)
{
    struct ru_store *st = ru_store_new();
    char route[] = "/api/a", method[] = "POST", params[] = "{\"a\": 1}", user[] = UUID1;
    struct ru_event ev = ev_make(H0, route);
    ev.method = S(method);
    ev.params_canon = S(params);
    ev.user_id = S(user);
    ru_store_add(st, &ev);
    memset(route, 'x', sizeof(route) - 1);
    memset(method, 'y', sizeof(method) - 1);
    memset(params, 'z', sizeof(params) - 1);
    memset(user, 'w', sizeof(user) - 1);
    const struct ru_agg *a = ru_store_agg(st, 0);
    cr_assert_str_eq(a->route, "/api/a");
    cr_assert_str_eq(a->method, "POST");
    cr_assert_str_eq(a->params, "{\"a\": 1}");
    cr_assert(has_user(st, a, UUID1));
    /* the same key, spelled from other buffers, still merges */
    struct ru_event ev2 = ev_make(H0, "/api/a");
    ev2.method = S("POST");
    ev2.params_canon = S("{\"a\": 1}");
    ru_store_add(st, &ev2);
    cr_assert_eq(ru_store_nkeys(st), 1);
    cr_assert_eq(a->total, 2);
    ru_store_free(st);
}

Test(store, long_strings)
{
    /* long routes, and strings larger than an arena chunk */
    struct ru_store *st = ru_store_new();
    size_t lens[] = {1024, 1024 + 256, 100000, 64 * 1024 - 1, 300};
    char *routes[RU_ARRAY_LEN(lens)];
    for (size_t i = 0; i < RU_ARRAY_LEN(lens); i++) {
        routes[i] = malloc(lens[i] + 1);
        for (size_t j = 0; j < lens[i]; j++)
            routes[i][j] = (char)('a' + (j * 7 + i) % 26);
        routes[i][0] = '/';
        routes[i][lens[i]] = '\0';
        struct ru_event e = ev_make(H0, routes[i]);
        e.params_canon = (struct ru_str){routes[i], lens[i] < 1536 ? lens[i] : 1536};
        ru_store_add(st, &e);
        ru_store_add(st, &e);
    }
    /* a prefix is another key */
    struct ru_event e = ev_make(H0, "x");
    e.route = (struct ru_str){routes[2], 44};
    e.params_canon = (struct ru_str){routes[2], 1536};
    ru_store_add(st, &e);
    cr_assert_eq(ru_store_nkeys(st), RU_ARRAY_LEN(lens) + 1);
    for (size_t i = 0; i < RU_ARRAY_LEN(lens); i++) {
        const struct ru_agg *a = ru_store_agg(st, i);
        cr_assert_eq(a->route_len, lens[i]);
        cr_assert_eq(strlen(a->route), lens[i]);
        cr_assert_eq(memcmp(a->route, routes[i], lens[i]), 0, "route %zu", i);
        cr_assert_eq(a->total, 2);
        free(routes[i]);
    }
    cr_assert_eq(ru_store_agg(st, RU_ARRAY_LEN(lens))->route_len, 44);
    cr_assert_eq(ru_store_agg(st, RU_ARRAY_LEN(lens))->total, 1);
    cr_assert_geq(ru_store_mem(st), 100000 + 64 * 1024);
    ru_store_free(st);
}

Test(store, each_key_field_distinguishes)
{
    struct ru_store *st = ru_store_new();
    struct ru_event base = ev_make(H0, "/api/a");
    ru_store_add(st, &base);

    struct ru_event e = base;
    e.route = S("/api/b");
    ru_store_add(st, &e);
    e = base;
    e.route = S("/api/a/");
    ru_store_add(st, &e);
    e = base;
    e.method = S("POST");
    ru_store_add(st, &e);
    e = base;
    e.method = S("get"); /* methods are case-sensitive */
    ru_store_add(st, &e);
    e = base;
    e.params_canon = S("{\"a\": \"1\"}");
    ru_store_add(st, &e);
    e = base;
    e.hour_us = H0 + HOUR;
    ru_store_add(st, &e);
    cr_assert_eq(ru_store_nkeys(st), 7);
    cr_assert_eq(ru_store_nevents(st), 7);

    cr_assert_not_null(find_agg(st, H0, "/api/a", "GET", "{}"));
    cr_assert_not_null(find_agg(st, H0, "/api/b", "GET", "{}"));
    cr_assert_not_null(find_agg(st, H0, "/api/a/", "GET", "{}"));
    cr_assert_not_null(find_agg(st, H0, "/api/a", "POST", "{}"));
    cr_assert_not_null(find_agg(st, H0, "/api/a", "get", "{}"));
    cr_assert_not_null(find_agg(st, H0, "/api/a", "GET", "{\"a\": \"1\"}"));
    cr_assert_not_null(find_agg(st, H0 + HOUR, "/api/a", "GET", "{}"));
    for (size_t i = 0; i < ru_store_nkeys(st); i++)
        cr_assert_eq(ru_store_agg(st, i)->total, 1, "key %zu", i);

    /* a second round merges into each of the seven */
    ru_store_add(st, &base);
    e = base;
    e.method = S("get");
    ru_store_add(st, &e);
    cr_assert_eq(ru_store_nkeys(st), 7);
    cr_assert_eq(find_agg(st, H0, "/api/a", "GET", "{}")->total, 2);
    cr_assert_eq(find_agg(st, H0, "/api/a", "get", "{}")->total, 2);
    cr_assert_eq(find_agg(st, H0, "/api/a", "POST", "{}")->total, 1);
    ru_store_free(st);
}

Test(store, field_boundaries_do_not_blur)
{
    /* the same bytes split differently between route, method and params are other keys */
    struct ru_store *st = ru_store_new();
    struct ru_event e = ev_make(H0, "/ab");
    e.method = S("C");
    e.params_canon = S("{}");
    ru_store_add(st, &e);
    e.route = S("/a");
    e.method = S("bC");
    ru_store_add(st, &e);
    e.route = S("/a");
    e.method = S("b");
    e.params_canon = S("C{}");
    ru_store_add(st, &e);
    cr_assert_eq(ru_store_nkeys(st), 3);
    cr_assert_not_null(find_agg(st, H0, "/ab", "C", "{}"));
    cr_assert_not_null(find_agg(st, H0, "/a", "bC", "{}"));
    cr_assert_not_null(find_agg(st, H0, "/a", "b", "C{}"));
    ru_store_free(st);
}

Test(store, binary_safe_route)
{
    struct ru_store *st = ru_store_new();
    struct ru_event e = ev_make(H0, "x");
    e.route = (struct ru_str){"/a\0b", 4};
    ru_store_add(st, &e);
    e.route = (struct ru_str){"/a\0c", 4};
    ru_store_add(st, &e);
    e.route = (struct ru_str){"/a", 2};
    ru_store_add(st, &e);
    cr_assert_eq(ru_store_nkeys(st), 3);
    cr_assert_eq(ru_store_agg(st, 0)->route_len, 4);
    cr_assert_eq(memcmp(ru_store_agg(st, 0)->route, "/a\0b", 4), 0);
    cr_assert_eq(memcmp(ru_store_agg(st, 1)->route, "/a\0c", 4), 0);
    cr_assert_eq(ru_store_agg(st, 2)->route_len, 2);
    ru_store_free(st);
}

/* Keys whose 64-bit hashes collide, so that only the key comparison tells them apart.
 * Built from ru_fhash_bytes' structure (a 16-byte field is one word w1, then the last 8
 * bytes t as one word after the length mask m is applied: h = step(step(h, w1) ^ m, t), and
 * step(h, w) depends on h ^ w only); the test checks through agg->hash_hi that the
 * collision really happened, and fails if the store's key hash changed so that it no
 * longer does. */

/* Given 16 bytes a and a different first word for b, fills b[8..16) so that
 * ru_fhash_bytes(seed, a, 16) == ru_fhash_bytes(seed, b, 16). */
static void collide16(const char a[16], char b[16], uint64_t seed)
{
    uint64_t a1, b1;
    uint32_t hi, lo;
    memcpy(&a1, a, 8);
    memcpy(&b1, b, 8);
    memcpy(&hi, a + 8, 4);
    memcpy(&lo, a + 12, 4);
    uint64_t ta = (uint64_t)hi << 32 | lo;
    uint64_t sa = ru_fhash_word(seed, a1), sb = ru_fhash_word(seed, b1); /* the mask cancels */
    uint64_t tb = sa ^ ta ^ sb;
    hi = (uint32_t)(tb >> 32);
    lo = (uint32_t)tb;
    memcpy(b + 8, &hi, 4);
    memcpy(b + 12, &lo, 4);
    cr_assert_eq(ru_fhash_bytes(seed, a, 16), ru_fhash_bytes(seed, b, 16),
                 "collision construction no longer matches ru_fhash_bytes");
    cr_assert_neq(memcmp(a, b, 16), 0);
}

/* The store's key hash before the route: the seed and the hour. */
static uint64_t key_seed(int64_t hour_us)
{
    return ru_fhash_word(0x5bd1e995, (uint64_t)hour_us);
}

Test(store, colliding_hashes_stay_distinct)
{
    struct ru_store *st = ru_store_new();
    /* routes that differ, same hour, method and params */
    char ra[16] = "/api/collide/aaa", rb[16] = "/api/other/bbbbb";
    collide16(ra, rb, key_seed(H0));
    /* params that differ, same hour, route and method */
    char pa[16] = "{\"k\": \"vvvvvv\"} ", pb[16] = "{\"q\": \"wwwwwwww";
    uint64_t hm = ru_fhash_bytes(ru_fhash_bytes(key_seed(H0), "/p", 2), "GET", 3);
    collide16(pa, pb, hm);

    struct ru_event e = ev_make(H0, "x");
    e.route = (struct ru_str){ra, 16};
    ru_store_add(st, &e);
    e.route = (struct ru_str){rb, 16};
    ru_store_add(st, &e);
    ru_store_add(st, &e);
    struct ru_event p = ev_make(H0, "/p");
    p.params_canon = (struct ru_str){pa, 16};
    ru_store_add(st, &p);
    p.params_canon = (struct ru_str){pb, 16};
    ru_store_add(st, &p);
    ru_store_add(st, &p);
    ru_store_add(st, &p);

    cr_assert_eq(ru_store_nkeys(st), 4, "colliding keys were merged");
    const struct ru_agg *a0 = ru_store_agg(st, 0), *a1 = ru_store_agg(st, 1);
    const struct ru_agg *a2 = ru_store_agg(st, 2), *a3 = ru_store_agg(st, 3);
    cr_assert_eq(a0->hash_hi, a1->hash_hi, "route keys do not collide: update the test");
    cr_assert_eq(a2->hash_hi, a3->hash_hi, "params keys do not collide: update the test");
    cr_assert_eq(memcmp(a0->route, ra, 16), 0);
    cr_assert_eq(memcmp(a1->route, rb, 16), 0);
    cr_assert_eq(memcmp(a2->params, pa, 16), 0);
    cr_assert_eq(memcmp(a3->params, pb, 16), 0);
    cr_assert_eq(a0->total, 1);
    cr_assert_eq(a1->total, 2);
    cr_assert_eq(a2->total, 1);
    cr_assert_eq(a3->total, 3);

    /* still apart and found after the table grew (rehash keeps both in one chain) */
    char route[32];
    for (unsigned i = 0; i < 5000; i++) {
        snprintf(route, sizeof(route), "/fill/%u", i);
        struct ru_event f = ev_make(H0, route);
        ru_store_add(st, &f);
    }
    e.route = (struct ru_str){ra, 16};
    ru_store_add(st, &e);
    p.params_canon = (struct ru_str){pa, 16};
    ru_store_add(st, &p);
    cr_assert_eq(ru_store_nkeys(st), 5004);
    cr_assert_eq(ru_store_agg(st, 0)->total, 2);
    cr_assert_eq(ru_store_agg(st, 1)->total, 2);
    cr_assert_eq(ru_store_agg(st, 2)->total, 2);
    cr_assert_eq(ru_store_agg(st, 3)->total, 3);
    ru_store_free(st);
}

Test(store, adjacent_hours)
{
    struct ru_store *st = ru_store_new();
    /* the caller floors: last microsecond of one hour and first of the next */
    struct ru_event a = ev_make(H0, "/api/h");
    a.ts_us = H0 + HOUR - 1;
    struct ru_event b = ev_make(H0 + HOUR, "/api/h");
    b.ts_us = H0 + HOUR;
    struct ru_event c = ev_make(H0 - HOUR, "/api/h");
    struct ru_event z = ev_make(0, "/api/h"); /* hour 0 (1970) is a valid key */
    ru_store_add(st, &a);
    ru_store_add(st, &b);
    ru_store_add(st, &b);
    ru_store_add(st, &c);
    ru_store_add(st, &z);
    cr_assert_eq(ru_store_nkeys(st), 4);
    cr_assert_eq(find_agg(st, H0, "/api/h", "GET", "{}")->total, 1);
    cr_assert_eq(find_agg(st, H0 + HOUR, "/api/h", "GET", "{}")->total, 2);
    cr_assert_eq(find_agg(st, H0 - HOUR, "/api/h", "GET", "{}")->total, 1);
    cr_assert_eq(find_agg(st, 0, "/api/h", "GET", "{}")->total, 1);
    cr_assert_null(find_agg(st, H0 + 2 * HOUR, "/api/h", "GET", "{}"));
    ru_store_free(st);
}

Test(store, insertion_order)
{
    struct ru_store *st = ru_store_new();
    const char *routes[] = {"/z", "/a", "/m", "/a", "/b", "/z", "/c"};
    const char *order[] = {"/z", "/a", "/m", "/b", "/c"};
    const uint64_t totals[] = {2, 2, 1, 1, 1};
    for (size_t i = 0; i < RU_ARRAY_LEN(routes); i++) {
        struct ru_event e = ev_make(H0, routes[i]);
        ru_store_add(st, &e);
    }
    cr_assert_eq(ru_store_nkeys(st), 5);
    cr_assert_eq(ru_store_nevents(st), 7);
    for (size_t i = 0; i < 5; i++) {
        cr_assert_str_eq(ru_store_agg(st, i)->route, order[i]);
        cr_assert_eq(ru_store_agg(st, i)->total, totals[i], "key %s", order[i]);
    }
    ru_store_free(st);
}

/* ---- counters ---- */

Test(store, status_buckets)
{
    static const struct {
        int32_t status;
        int ok, c4xx, c5xx;
    } cases[] = {
        {-1, 0, 0, 0},  {0, 0, 0, 0},   {100, 0, 0, 0}, {199, 0, 0, 0},   {200, 1, 0, 0},
        {204, 1, 0, 0}, {299, 1, 0, 0}, {300, 0, 0, 0}, {304, 0, 0, 0},   {307, 0, 0, 0},
        {399, 0, 0, 0}, {400, 0, 1, 0}, {404, 0, 1, 0}, {499, 0, 1, 0},   {500, 0, 0, 1},
        {503, 0, 0, 1}, {599, 0, 0, 1}, {600, 0, 0, 1}, {32767, 0, 0, 1},
    };
    /* one key per status, checked separately */
    struct ru_store *st = ru_store_new();
    for (size_t i = 0; i < RU_ARRAY_LEN(cases); i++) {
        struct ru_event e = ev_make(H0 + (int64_t)i * HOUR, "/s");
        e.status_code = cases[i].status;
        ru_store_add(st, &e);
    }
    cr_assert_eq(ru_store_nkeys(st), RU_ARRAY_LEN(cases));
    for (size_t i = 0; i < RU_ARRAY_LEN(cases); i++) {
        const struct ru_agg *a = ru_store_agg(st, i);
        cr_assert_eq(a->hour_us, H0 + (int64_t)i * HOUR);
        cr_assert_eq(a->total, 1);
        cr_assert_eq(a->ok, (uint64_t)cases[i].ok, "status %d ok", cases[i].status);
        cr_assert_eq(a->c4xx, (uint64_t)cases[i].c4xx, "status %d 4xx", cases[i].status);
        cr_assert_eq(a->c5xx, (uint64_t)cases[i].c5xx, "status %d 5xx", cases[i].status);
    }
    ru_store_free(st);

    /* and all in one key */
    st = ru_store_new();
    for (size_t i = 0; i < RU_ARRAY_LEN(cases); i++) {
        struct ru_event e = ev_make(H0, "/s");
        e.status_code = cases[i].status;
        ru_store_add(st, &e);
    }
    const struct ru_agg *a = ru_store_agg(st, 0);
    cr_assert_eq(ru_store_nkeys(st), 1);
    cr_assert_eq(a->total, RU_ARRAY_LEN(cases));
    cr_assert_eq(a->ok, 3);
    cr_assert_eq(a->c4xx, 3);
    cr_assert_eq(a->c5xx, 5);
    ru_store_free(st);
}

Test(store, cache_status_exact)
{
    static const struct {
        const char *cs;
        int hit, miss;
    } cases[] = {
        {"hit", 1, 0},  {"miss", 0, 1},   {"", 0, 0},       {"HIT", 0, 0},  {"Hit", 0, 0},
        {"MISS", 0, 0}, {"hit ", 0, 0},   {" hit", 0, 0},   {"hits", 0, 0}, {"hi", 0, 0},
        {"mis", 0, 0},  {"missed", 0, 0}, {"bypass", 0, 0},
    };
    struct ru_store *st = ru_store_new();
    for (size_t i = 0; i < RU_ARRAY_LEN(cases); i++) {
        struct ru_event e = ev_make(H0 + (int64_t)i * HOUR, "/c");
        e.cache_status = S(cases[i].cs);
        ru_store_add(st, &e);
    }
    for (size_t i = 0; i < RU_ARRAY_LEN(cases); i++) {
        const struct ru_agg *a = ru_store_agg(st, i);
        cr_assert_eq(a->hits, (uint64_t)cases[i].hit, "cache_status '%s'", cases[i].cs);
        cr_assert_eq(a->misses, (uint64_t)cases[i].miss, "cache_status '%s'", cases[i].cs);
    }
    ru_store_free(st);

    /* "hit" followed by a NUL byte is not "hit" */
    st = ru_store_new();
    struct ru_event e = ev_make(H0, "/c");
    e.cache_status = (struct ru_str){"hit\0", 4};
    ru_store_add(st, &e);
    e.cache_status = S("hit");
    ru_store_add(st, &e);
    ru_store_add(st, &e);
    e.cache_status = S("miss");
    ru_store_add(st, &e);
    cr_assert_eq(ru_store_agg(st, 0)->hits, 2);
    cr_assert_eq(ru_store_agg(st, 0)->misses, 1);
    cr_assert_eq(ru_store_agg(st, 0)->total, 4);
    ru_store_free(st);
}

Test(store, sizes_zero_not_counted)
{
    struct ru_store *st = ru_store_new();
    static const int32_t req[] = {0, 100, 0, 300, INT32_MAX, -5};
    static const int32_t resp[] = {18, 0, 0, 0, 7, 0};
    for (size_t i = 0; i < RU_ARRAY_LEN(req); i++) {
        struct ru_event e = ev_make(H0, "/sz");
        e.request_size = req[i];
        e.response_size = resp[i];
        ru_store_add(st, &e);
    }
    const struct ru_agg *a = ru_store_agg(st, 0);
    cr_assert_eq(a->total, 6);
    /* non-zero request sizes: 100, 300, INT32_MAX, -5 (only 0 means NULL) */
    cr_assert_eq(a->req_n, 4);
    cr_assert_eq(a->req_sum, 100 + 300 + (int64_t)INT32_MAX - 5);
    cr_assert_eq(a->resp_n, 2);
    cr_assert_eq(a->resp_sum, 25);

    /* a key that never saw a size has n == 0 */
    struct ru_event e = ev_make(H0, "/none");
    ru_store_add(st, &e);
    a = find_agg(st, H0, "/none", "GET", "{}");
    cr_assert_eq(a->req_n, 0);
    cr_assert_eq(a->req_sum, 0);
    cr_assert_eq(a->resp_n, 0);
    cr_assert_eq(a->resp_sum, 0);
    ru_store_free(st);
}

Test(store, sizes_sum_beyond_int32)
{
    struct ru_store *st = ru_store_new();
    for (int i = 0; i < 1000; i++) {
        struct ru_event e = ev_make(H0, "/big");
        e.request_size = INT32_MAX;
        e.response_size = INT32_MAX - i;
        ru_store_add(st, &e);
    }
    const struct ru_agg *a = ru_store_agg(st, 0);
    cr_assert_eq(a->req_n, 1000);
    cr_assert_eq(a->req_sum, 1000LL * INT32_MAX);
    cr_assert_eq(a->resp_sum, 1000LL * INT32_MAX - 999LL * 1000 / 2);
    ru_store_free(st);
}

Test(store, db_query_count_only_when_present)
{
    struct ru_store *st = ru_store_new();
    struct ru_event e = ev_make(H0, "/db");
    e.has_db_query_count = false;
    e.db_query_count = 99; /* ignored: not present */
    ru_store_add(st, &e);
    e.has_db_query_count = true;
    e.db_query_count = 0; /* present and zero: counts */
    ru_store_add(st, &e);
    e.db_query_count = 7;
    ru_store_add(st, &e);
    e.db_query_count = -2;
    ru_store_add(st, &e);
    e.has_db_query_count = false;
    e.db_query_count = 1000;
    ru_store_add(st, &e);
    const struct ru_agg *a = ru_store_agg(st, 0);
    cr_assert_eq(a->total, 5);
    cr_assert_eq(a->db_n, 3);
    cr_assert_eq(a->db_sum, 5);

    struct ru_event n = ev_make(H0, "/nodb");
    n.db_query_count = 5;
    ru_store_add(st, &n);
    a = find_agg(st, H0, "/nodb", "GET", "{}");
    cr_assert_eq(a->db_n, 0);
    cr_assert_eq(a->db_sum, 0);
    ru_store_free(st);
}

/* ---- duration histogram ---- */

Test(store, hist_repeated_values)
{
    struct ru_store *st = ru_store_new();
    static const int32_t d[] = {5, 5, 5, 7, 5, 7, 0, 0, -1};
    for (size_t i = 0; i < RU_ARRAY_LEN(d); i++) {
        struct ru_event e = ev_make(H0, "/h");
        e.duration_ms = d[i];
        ru_store_add(st, &e);
    }
    const struct ru_agg *a = ru_store_agg(st, 0);
    hist_check(a);
    cr_assert_eq(a->hist_n, 4);
    cr_assert_eq(hist_count(a, 5), 4);
    cr_assert_eq(hist_count(a, 7), 2);
    cr_assert_eq(hist_count(a, 0), 2);
    cr_assert_eq(hist_count(a, -1), 1);
    cr_assert_eq(hist_count(a, 6), 0);
    cr_assert_eq(hist_count(a, 1), 0);
    cr_assert_eq(a->dur_sum, 5 * 4 + 7 * 2 - 1);
    ru_store_free(st);
}

Test(store, hist_extreme_values)
{
    struct ru_store *st = ru_store_new();
    static const int32_t d[] = {INT32_MAX, INT32_MIN, INT32_MAX,     -1,           0, INT32_MIN,
                                INT32_MAX, 1,         INT32_MIN + 1, INT32_MAX - 1};
    int64_t sum = 0;
    for (size_t i = 0; i < RU_ARRAY_LEN(d); i++) {
        struct ru_event e = ev_make(H0, "/x");
        e.duration_ms = d[i];
        sum += d[i];
        ru_store_add(st, &e);
    }
    const struct ru_agg *a = ru_store_agg(st, 0);
    hist_check(a);
    cr_assert_eq(a->hist_n, 7);
    cr_assert_eq(hist_count(a, INT32_MAX), 3);
    cr_assert_eq(hist_count(a, INT32_MIN), 2);
    cr_assert_eq(hist_count(a, INT32_MIN + 1), 1);
    cr_assert_eq(hist_count(a, INT32_MAX - 1), 1);
    cr_assert_eq(hist_count(a, -1), 1);
    cr_assert_eq(hist_count(a, 0), 1);
    cr_assert_eq(hist_count(a, 1), 1);
    cr_assert_eq(a->dur_sum, sum);
    ru_store_free(st);

    /* the mean of huge durations needs 64 bits */
    st = ru_store_new();
    for (int i = 0; i < 100; i++) {
        struct ru_event e = ev_make(H0, "/x");
        e.duration_ms = INT32_MAX;
        ru_store_add(st, &e);
    }
    a = ru_store_agg(st, 0);
    cr_assert_eq(a->dur_sum, 100LL * INT32_MAX);
    cr_assert_eq(a->hist_n, 1);
    cr_assert_eq(hist_count(a, INT32_MAX), 100);
    ru_store_free(st);
}

Test(store, hist_growth_many_values)
{
    /* 5000 distinct values (negative and positive, some multiples of the table size so
     * they collide in a naive hash), value v seen (|v| % 4) + 1 times, interleaved */
    enum { N = 5000 };
    struct ru_store *st = ru_store_new();
    int64_t sum = 0;
    uint64_t total = 0;
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < N; i++) {
            int32_t v = (i % 2 ? -1 : 1) * (int32_t)(i * 1024 + (i % 3));
            int32_t times = (int32_t)((i % 4) + 1);
            if (round >= times)
                continue;
            struct ru_event e = ev_make(H0, "/grow");
            e.duration_ms = v;
            sum += v;
            total++;
            ru_store_add(st, &e);
        }
    }
    const struct ru_agg *a = ru_store_agg(st, 0);
    cr_assert_eq(a->total, total);
    cr_assert_eq(a->dur_sum, sum);
    cr_assert_eq(a->hist_n, N);
    cr_assert_geq(a->hist_cap, N + N / 3, "hist_cap %u too small for %d values", a->hist_cap, N);
    /* per-value counts: sum every slot's count per value */
    uint64_t seen = 0;
    for (uint32_t s = 0; s < a->hist_cap; s++) {
        if (a->hist[s].count == 0)
            continue;
        int32_t v = a->hist[s].value;
        int64_t av = v < 0 ? -(int64_t)v : v;
        int64_t i = av / 1024;
        cr_assert(i >= 0 && i < N, "unexpected value %" PRId32, v);
        cr_assert_eq(av, i * 1024 + (i % 3), "unexpected value %" PRId32, v);
        cr_assert_eq(v < 0, i % 2 == 1, "unexpected sign of %" PRId32, v);
        cr_assert_eq(a->hist[s].count, (uint32_t)(i % 4) + 1, "value %" PRId32, v);
        seen++;
    }
    cr_assert_eq(seen, N);
    /* a slow but independent check of the invariants */
    hist_check(a);
    ru_store_free(st);
}

Test(store, hist_per_key)
{
    struct ru_store *st = ru_store_new();
    for (int i = 0; i < 100; i++) {
        struct ru_event e = ev_make(H0, i % 2 ? "/odd" : "/even");
        e.duration_ms = i;
        ru_store_add(st, &e);
    }
    const struct ru_agg *odd = find_agg(st, H0, "/odd", "GET", "{}");
    const struct ru_agg *even = find_agg(st, H0, "/even", "GET", "{}");
    hist_check(odd);
    hist_check(even);
    cr_assert_eq(odd->hist_n, 50);
    cr_assert_eq(even->hist_n, 50);
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(hist_count(odd, i), (uint64_t)(i % 2), "odd %d", i);
        cr_assert_eq(hist_count(even, i), (uint64_t)(1 - i % 2), "even %d", i);
    }
    ru_store_free(st);
}

/* ---- distinct users ---- */

Test(store, users_same_many_times_anonymous_not_counted)
{
    struct ru_store *st = ru_store_new();
    for (int i = 0; i < 1000; i++) {
        struct ru_event e = ev_make(H0, "/u");
        e.user_id = S(i % 3 == 0 ? "" : UUID1);
        e.user_is_uuid = i % 3 != 0;
        ru_store_add(st, &e);
    }
    const struct ru_agg *a = ru_store_agg(st, 0);
    cr_assert_eq(a->total, 1000);
    cr_assert_eq(a->users_n, 1);
    cr_assert_eq(ru_store_nusers(st), 1);
    cr_assert(has_user(st, a, UUID1));
    size_t len;
    const char *u = ru_store_user(st, 0, &len);
    cr_assert_eq(len, 36);
    cr_assert_str_eq(u, UUID1);

    /* only anonymous */
    struct ru_event e = ev_make(H0, "/anon");
    for (int i = 0; i < 10; i++)
        ru_store_add(st, &e);
    a = find_agg(st, H0, "/anon", "GET", "{}");
    cr_assert_eq(a->users_n, 0);
    cr_assert_eq(ru_store_nusers(st), 1);
    ru_store_free(st);
}

Test(store, users_many_forcing_growth)
{
    enum { N = 3000 };
    struct ru_store *st = ru_store_new();
    char uid[37];
    for (int round = 0; round < 3; round++) {
        for (unsigned i = 0; i < N; i++) {
            uuid_of(uid, i);
            struct ru_event e = ev_make(H0, "/many");
            e.user_id = S(uid);
            e.user_is_uuid = true;
            ru_store_add(st, &e);
        }
    }
    const struct ru_agg *a = ru_store_agg(st, 0);
    cr_assert_eq(a->total, 3 * N);
    cr_assert_eq(a->users_n, N);
    cr_assert_eq(ru_store_nusers(st), N);
    /* every user is in the set exactly once, and the dictionary maps back to each */
    bool *seen = calloc(N, 1);
    uint32_t used = 0;
    for (uint32_t s = 0; s < a->users_cap; s++) {
        if (a->users[s] == 0)
            continue;
        used++;
        size_t len;
        const char *u = ru_store_user(st, a->users[s] - 1, &len);
        cr_assert_eq(len, 36);
        unsigned n = (unsigned)strtoul(u, NULL, 16);
        cr_assert_lt(n, N);
        uuid_of(uid, n);
        cr_assert_eq(memcmp(u, uid, 36), 0, "user %.*s", (int)len, u);
        cr_assert_not(seen[n], "user %u twice", n);
        seen[n] = true;
    }
    cr_assert_eq(used, N);
    free(seen);
    /* dictionary texts are all distinct and in first-seen order */
    for (unsigned i = 0; i < N; i++) {
        size_t len;
        const char *u = ru_store_user(st, i, &len);
        uuid_of(uid, i);
        cr_assert_eq(len, 36);
        cr_assert_eq(memcmp(u, uid, 36), 0, "dictionary entry %u is %.*s", i, (int)len, u);
    }
    ru_store_free(st);
}

Test(store, user_shared_by_two_keys)
{
    struct ru_store *st = ru_store_new();
    struct ru_event e = ev_make(H0, "/one");
    e.user_id = S(UUID1);
    e.user_is_uuid = true;
    ru_store_add(st, &e);
    ru_store_add(st, &e);
    e.route = S("/two");
    ru_store_add(st, &e);
    e.user_id = S(UUID2);
    ru_store_add(st, &e);
    e.hour_us = H0 + HOUR; /* the same user in the next hour counts again there */
    e.user_id = S(UUID1);
    ru_store_add(st, &e);

    const struct ru_agg *one = find_agg(st, H0, "/one", "GET", "{}");
    const struct ru_agg *two = find_agg(st, H0, "/two", "GET", "{}");
    const struct ru_agg *next = find_agg(st, H0 + HOUR, "/two", "GET", "{}");
    cr_assert_eq(one->users_n, 1);
    cr_assert_eq(two->users_n, 2);
    cr_assert_eq(next->users_n, 1);
    cr_assert(has_user(st, one, UUID1));
    cr_assert_not(has_user(st, one, UUID2));
    cr_assert(has_user(st, two, UUID1));
    cr_assert(has_user(st, two, UUID2));
    cr_assert(has_user(st, next, UUID1));
    cr_assert_eq(ru_store_nusers(st), 2);
    ru_store_free(st);
}

Test(store, users_across_many_keys)
{
    /* 20000 users over 50 keys: user i in key i % 50 and key (i + 1) % 50 */
    enum { NU = 20000, NK = 50 };
    struct ru_store *st = ru_store_new();
    char uid[37], route[16];
    for (unsigned i = 0; i < NU; i++) {
        uuid_of(uid, i);
        for (unsigned k = 0; k < 2; k++) {
            snprintf(route, sizeof(route), "/k%u", (i + k) % NK);
            struct ru_event e = ev_make(H0, route);
            e.user_id = S(uid);
            e.user_is_uuid = true;
            ru_store_add(st, &e);
        }
    }
    cr_assert_eq(ru_store_nusers(st), NU);
    cr_assert_eq(ru_store_nkeys(st), NK);
    for (unsigned k = 0; k < NK; k++) {
        snprintf(route, sizeof(route), "/k%u", k);
        const struct ru_agg *a = find_agg(st, H0, route, "GET", "{}");
        cr_assert_not_null(a);
        cr_assert_eq(a->total, 2 * NU / NK);
        cr_assert_eq(a->users_n, 2 * NU / NK, "key %s has %u users", route, a->users_n);
        /* spot check membership */
        uuid_of(uid, k);
        cr_assert(has_user(st, a, uid), "user %u in %s", k, route);
        uuid_of(uid, (k + NK - 1) % NK);
        cr_assert(has_user(st, a, uid), "user %u in %s", (k + NK - 1) % NK, route);
        uuid_of(uid, (k + 1) % NK);
        cr_assert_not(has_user(st, a, uid), "user %u not in %s", (k + 1) % NK, route);
    }
    ru_store_free(st);
}

/* ---- memory, counts, stress ---- */

Test(store, mem_grows_plausibly)
{
    struct ru_store *st = ru_store_new();
    size_t m0 = ru_store_mem(st);
    cr_assert_geq(m0, 1024 * sizeof(uint32_t), "empty store %zu bytes", m0);
    cr_assert_lt(m0, 1 << 20, "empty store %zu bytes", m0);

    struct ru_event e = ev_make(H0, "/m");
    ru_store_add(st, &e);
    size_t m1 = ru_store_mem(st);
    cr_assert_gt(m1, m0);

    /* the same key again allocates nothing */
    ru_store_add(st, &e);
    cr_assert_eq(ru_store_mem(st), m1);

    enum { N = 10000 };
    char route[32], uid[37];
    size_t prev = m1;
    for (unsigned i = 0; i < N; i++) {
        snprintf(route, sizeof(route), "/mem/%u", i);
        uuid_of(uid, i);
        e = ev_make(H0, route);
        e.user_id = S(uid);
        e.user_is_uuid = true;
        ru_store_add(st, &e);
        size_t m = ru_store_mem(st);
        cr_assert_geq(m, prev, "mem shrank from %zu to %zu", prev, m);
        prev = m;
    }
    size_t mn = ru_store_mem(st);
    /* at least the aggregates, the key strings and the user texts */
    size_t lo = N * (sizeof(struct ru_agg) + 8 + 37 + 3 + 4 + 8 * sizeof(struct ru_hist_slot));
    cr_assert_geq(mn, lo, "mem %zu below %zu", mn, lo);
    /* and not wildly more (about 200 bytes per key above) */
    cr_assert_lt(mn, (size_t)N * 2000, "mem %zu implausibly large", mn);
    ru_store_free(st);
}

Test(store, nkeys_nevents)
{
    struct ru_store *st = ru_store_new();
    char route[16];
    uint64_t n = 0;
    for (unsigned i = 0; i < 300; i++) {
        snprintf(route, sizeof(route), "/n%u", i % 37);
        struct ru_event e = ev_make(H0 + (int64_t)(i % 2) * HOUR, route);
        ru_store_add(st, &e);
        n++;
        cr_assert_eq(ru_store_nevents(st), n);
    }
    /* (i % 37, i % 2) takes 74 distinct values over 300 consecutive i */
    cr_assert_eq(ru_store_nkeys(st), 74);
    uint64_t sum = 0;
    for (size_t i = 0; i < ru_store_nkeys(st); i++)
        sum += ru_store_agg(st, i)->total;
    cr_assert_eq(sum, 300);
    ru_store_free(st);
}

Test(store, stress_100k_keys)
{
    enum { N = 100000 };
    struct ru_store *st = ru_store_new();
    char route[32];
    uint64_t events = 0;
    /* key i: route /r/(i / 4), method GET or POST, hour H0 + (i % 2): count i % 3 + 1 */
    for (int round = 0; round < 3; round++) {
        for (unsigned i = 0; i < N; i++) {
            if ((unsigned)round > i % 3)
                continue;
            snprintf(route, sizeof(route), "/r/%u", i / 4);
            struct ru_event e = ev_make(H0 + (int64_t)(i % 2) * HOUR, route);
            e.method = S((i / 2) % 2 ? "POST" : "GET");
            e.duration_ms = (int32_t)i;
            ru_store_add(st, &e);
            events++;
        }
    }
    cr_assert_eq(ru_store_nkeys(st), N);
    cr_assert_eq(ru_store_nevents(st), events);
    /* insertion order is i, each with its count */
    for (unsigned i = 0; i < N; i++) {
        const struct ru_agg *a = ru_store_agg(st, i);
        snprintf(route, sizeof(route), "/r/%u", i / 4);
        cr_assert_eq(a->hour_us, H0 + (int64_t)(i % 2) * HOUR, "key %u", i);
        cr_assert_str_eq(a->route, route, "key %u", i);
        cr_assert_str_eq(a->method, (i / 2) % 2 ? "POST" : "GET", "key %u", i);
        cr_assert_eq(a->total, i % 3 + 1, "key %u total %" PRIu64, i, a->total);
        cr_assert_eq(a->dur_sum, (int64_t)i * (i % 3 + 1), "key %u", i);
        cr_assert_eq(a->hist_n, 1);
    }
    /* every key is found again after all the growth: one more event each, no new key */
    for (unsigned i = N; i-- > 0;) {
        snprintf(route, sizeof(route), "/r/%u", i / 4);
        struct ru_event e = ev_make(H0 + (int64_t)(i % 2) * HOUR, route);
        e.method = S((i / 2) % 2 ? "POST" : "GET");
        e.duration_ms = (int32_t)i;
        ru_store_add(st, &e);
    }
    cr_assert_eq(ru_store_nkeys(st), N);
    cr_assert_eq(ru_store_nevents(st), events + N);
    for (unsigned i = 0; i < N; i++) {
        const struct ru_agg *a = ru_store_agg(st, i);
        cr_assert_eq(a->total, i % 3 + 2, "key %u total %" PRIu64, i, a->total);
        cr_assert_eq(a->hist_n, 1);
        cr_assert_eq(hist_count(a, (int32_t)i), i % 3 + 2);
    }
    cr_assert_gt(ru_store_mem(st), (size_t)N * sizeof(struct ru_agg));
    ru_store_free(st);
}
