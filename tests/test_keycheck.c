/* Unit tests for keycheck: the verdict cache and the parked entries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "rollupd/keycheck.h"

#define H0 1761228000000000LL /* an hour, in microseconds */

static struct ru_event ev_of(const char *route, const char *method, const char *params)
{
    struct ru_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.route = (struct ru_str){route, strlen(route)};
    ev.method = (struct ru_str){method, strlen(method)};
    ev.params_canon = (struct ru_str){params, strlen(params)};
    ev.hour_us = H0;
    ev.ts_us = H0 + 1;
    ev.key_long = true;
    return ev;
}

static struct ru_keycheck_hash hash_of(const char *route, const char *method, const char *params)
{
    struct ru_event ev = ev_of(route, method, params);
    return ru_keycheck_hash(&ev);
}

Test(keycheck, hash_covers_every_key_field_and_their_boundaries)
{
    struct ru_keycheck_hash a = hash_of("/a", "GET", "{}");
    struct ru_keycheck_hash same = hash_of("/a", "GET", "{}");
    cr_assert(a.lo == same.lo && a.hi == same.hi);
    const struct ru_keycheck_hash others[] = {
        hash_of("/b", "GET", "{}"), hash_of("/a", "POST", "{}"), hash_of("/a", "GET", "{\"a\":1}"),
        hash_of("/aG", "ET", "{}")};
    for (size_t i = 0; i < RU_ARRAY_LEN(others); i++)
        cr_assert(others[i].lo != a.lo && others[i].hi != a.hi, "key %zu", i);
    /* the hour is not part of the key */
    struct ru_event ev = ev_of("/a", "GET", "{}");
    ev.hour_us += 3600000000LL;
    struct ru_keycheck_hash later = ru_keycheck_hash(&ev);
    cr_assert(later.lo == a.lo && later.hi == a.hi);
}

Test(keycheck, cache_keeps_verdicts_and_reasons)
{
    struct ru_keycheck *kc = ru_keycheck_new(16);
    struct ru_keycheck_hash fits = hash_of("/fits", "GET", "{}");
    struct ru_keycheck_hash bad = hash_of("/bad", "GET", "{}");
    const char *why = "unset";
    cr_assert_eq(ru_keycheck_get(kc, &fits, &why), RU_KEY_UNKNOWN);
    ru_keycheck_put(kc, &fits, RU_KEY_FITS, NULL);
    ru_keycheck_put(kc, &bad, RU_KEY_REFUSED, "index row size 6032 exceeds");
    ru_keycheck_put(kc, &bad, RU_KEY_UNKNOWN, "ignored"); /* not a verdict */
    cr_assert_eq(ru_keycheck_get(kc, &fits, &why), RU_KEY_FITS);
    cr_assert_null(why);
    cr_assert_eq(ru_keycheck_get(kc, &bad, &why), RU_KEY_REFUSED);
    cr_assert_str_eq(why, "index row size 6032 exceeds");
    cr_assert_eq(ru_keycheck_count(kc), 2);
    ru_keycheck_free(kc);
}

Test(keycheck, cache_is_bounded_and_keeps_what_is_used)
{
    struct ru_keycheck *kc = ru_keycheck_new(8); /* two generations of 4 */
    char route[32];
    struct ru_keycheck_hash hot = hash_of("/hot", "GET", "{}");
    ru_keycheck_put(kc, &hot, RU_KEY_REFUSED, "hot");
    size_t mem0 = ru_keycheck_mem(kc);
    for (int i = 0; i < 100; i++) {
        snprintf(route, sizeof(route), "/r%d", i);
        struct ru_keycheck_hash h = hash_of(route, "GET", "{}");
        ru_keycheck_put(kc, &h, RU_KEY_FITS, NULL);
        const char *why;
        cr_assert_eq(ru_keycheck_get(kc, &hot, &why), RU_KEY_REFUSED, "after %d others", i);
        cr_assert_str_eq(why, "hot");
        cr_assert_leq(ru_keycheck_count(kc), 8);
    }
    cr_assert_leq(ru_keycheck_mem(kc), mem0 + 16);
    /* an old verdict nobody asked for is gone */
    struct ru_keycheck_hash first = hash_of("/r0", "GET", "{}");
    cr_assert_eq(ru_keycheck_get(kc, &first, NULL), RU_KEY_UNKNOWN);
    ru_keycheck_free(kc);
}

static struct ru_field fields_of(const char *name, const char *value)
{
    return (struct ru_field){{name, strlen(name)}, {value, strlen(value)}};
}

static void park(struct ru_keycheck_parked *p, uint64_t ms, const char *route, unsigned flags)
{
    struct ru_sid id = {ms, 0};
    struct ru_field f[2] = {fields_of("route", route), fields_of("method", "GET")};
    struct ru_event ev = ev_of(route, "GET", "{}");
    cr_assert(ru_keycheck_park(p, &id, f, 2, &ev, flags));
}

Test(keycheck, parked_entries_wait_for_their_verdict_in_id_order)
{
    struct ru_keycheck *kc = ru_keycheck_new(64);
    struct ru_keycheck_parked p;
    ru_keycheck_parked_init(&p);
    park(&p, 30, "/a", 1);
    park(&p, 10, "/b", 2); /* a replayed entry can come after a later one */
    park(&p, 20, "/a", 4);
    struct ru_sid dup = {20, 0};
    struct ru_field f = fields_of("route", "/a");
    struct ru_event ev = ev_of("/a", "GET", "{}");
    cr_assert_not(ru_keycheck_park(&p, &dup, &f, 1, &ev, 0), "parked twice");
    cr_assert_eq(p.n, 3);
    cr_assert_eq(p.waiting, 3);
    cr_assert(ru_keycheck_is_parked(&p, &dup));
    struct ru_sid none = {15, 0};
    cr_assert_not(ru_keycheck_is_parked(&p, &none));
    cr_assert_gt(p.mem, 0);

    struct ru_keycheck_entry e;
    cr_assert_not(ru_keycheck_take(&p, &e), "an entry without a verdict was taken");

    /* each key once */
    struct ru_keycheck_probe *q;
    size_t n = ru_keycheck_to_probe(&p, kc, &q, 16);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(q[0].route, "/b");
    cr_assert_str_eq(q[1].route, "/a");
    cr_assert_str_eq(q[1].method, "GET");
    cr_assert_str_eq(q[1].params, "{}");
    cr_assert_eq(q[1].hour_us, H0);
    q[0].verdict = RU_KEY_UNKNOWN; /* lost: asked again */
    q[1].verdict = RU_KEY_REFUSED;
    snprintf(q[1].reason, sizeof(q[1].reason), "too large");
    ru_keycheck_answer(&p, kc, q, n);
    ru_keycheck_probes_free(q, n);
    cr_assert_eq(p.waiting, 1);

    /* the two entries of "/a", in id order, with the reason; "/b" stays */
    cr_assert(ru_keycheck_take(&p, &e));
    cr_assert_eq(e.id.ms, 20);
    cr_assert_eq(e.flags, 4);
    cr_assert_eq(e.verdict, RU_KEY_REFUSED);
    cr_assert_str_eq(e.reason, "too large");
    cr_assert_eq(e.nfields, 2);
    cr_assert_eq(e.fields[0].value.len, 2);
    cr_assert_str_eq(e.fields[0].value.p, "/a");
    ru_keycheck_entry_free(&e);
    cr_assert(ru_keycheck_take(&p, &e));
    cr_assert_eq(e.id.ms, 30);
    ru_keycheck_entry_free(&e);
    cr_assert_not(ru_keycheck_take(&p, &e));
    cr_assert_eq(p.n, 1);

    /* a verdict the cache learnt meanwhile needs no probe */
    struct ru_keycheck_hash b = hash_of("/b", "GET", "{}");
    ru_keycheck_put(kc, &b, RU_KEY_FITS, NULL);
    cr_assert_eq(ru_keycheck_to_probe(&p, kc, &q, 16), 0);
    cr_assert_null(q);
    cr_assert_eq(p.waiting, 0);
    cr_assert(ru_keycheck_take(&p, &e));
    cr_assert_eq(e.verdict, RU_KEY_FITS);
    ru_keycheck_entry_free(&e);
    cr_assert_eq(p.n, 0);
    cr_assert_eq(p.mem, p.cap * sizeof(struct ru_keycheck_entry));
    ru_keycheck_parked_deinit(&p);
    ru_keycheck_free(kc);
}

Test(keycheck, drop_and_count_by_flags)
{
    struct ru_keycheck_parked p;
    ru_keycheck_parked_init(&p);
    park(&p, 1, "/a", 0);
    park(&p, 2, "/b", 8);
    park(&p, 3, "/c", 8 | 1);
    cr_assert_eq(ru_keycheck_count_parked(&p, 8), 2);
    cr_assert_eq(ru_keycheck_drop(&p, 8), 2);
    cr_assert_eq(p.n, 1);
    cr_assert_eq(p.waiting, 1);
    cr_assert_eq(p.v[0].id.ms, 1);
    ru_keycheck_parked_deinit(&p);
}
