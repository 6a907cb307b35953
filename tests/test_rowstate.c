/* Unit tests for rowstate: the per-row state the writer caches, rebuilt from its stored
 * chunks (rowcodec), the derived columns and the reconciliation with the stored version.
 * The reference for every derived value is a brute-force computation over the raw values
 * (genonaut's definitions, pgnum's arithmetic). */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollupd/event.h"
#include "rollupd/pgnum.h"
#include "rollupd/rowcodec.h"
#include "rollupd/rowstate.h"
#include "rollupd/store.h"

#define HOUR (487565LL * RU_USECS_PER_HOUR)

static struct ru_str S(const char *s) {
    return (struct ru_str){s, strlen(s)};
}

static void
add(struct ru_store *st, int32_t duration, const char *user, int status)
{
    struct ru_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.route = S("/r");
    ev.method = S("GET");
    ev.user_id = S(user);
    ev.hour_us = HOUR;
    ev.ts_us = HOUR + 1;
    ev.duration_ms = duration;
    ev.status_code = status;
    ev.params_canon = S("{}");
    ev.query_params = S("{}");
    ev.error_type = S("");
    ev.cache_status = S("");
    ru_store_add(st, &ev);
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* percentile_cont(q)::integer over v[0..n) the direct way */
static int64_t pct_direct(int32_t *v, size_t n, double q)
{
    qsort(v, n, sizeof(*v), cmp_i32);
    int64_t f, s;
    double prop;
    ru_pgnum_pct_ranks(q, (int64_t)n, &f, &s, &prop);
    return ru_pgnum_round_even(ru_pgnum_lerp(v[f], v[s], prop));
}

/* Feeds the durations in nb batches through prepare/encode/commit, re-reading the state
 * from its own chunks after every batch (as a second writer would), and returns the
 * hourly values of the last batch. */
static void run_batches(const int32_t *dur, const char *const *users, size_t n, size_t nb,
                        struct ru_hourly_vals *out)
{
    struct ru_rowstate *s = ru_rowstate_new(7);
    struct ru_buf all[64];
    size_t nchunks = 0;
    struct ru_arena sc;
    ru_arena_init(&sc, 64 * 1024, SIZE_MAX);
    for (size_t b = 0; b < nb; b++) {
        struct ru_store *st = ru_store_new();
        for (size_t i = b * n / nb; i < (b + 1) * n / nb; i++)
            add(st, dur[i], users[i], 200);
        cr_assert_eq(ru_store_nkeys(st), 1);
        struct ru_rowdelta d;
        struct ru_userkey *uk = ru_userkeys_build(st);
        ru_arena_reset(&sc); /* the first batch overflows, the later ones reuse */
        ru_rowdelta_prepare(&d, s, st, uk, ru_store_agg(st, 0), &sc);
        free(uk);
        ru_rowdelta_derive(&d, out);
        bool full = b == 0 || b % 5 == 4; /* a base chunk now and then, as compaction */
        cr_assert_lt(nchunks, 64);
        all[nchunks] = (struct ru_buf)RU_BUF_INIT;
        ru_rowdelta_encode(&d, s, full, &all[nchunks]);
        nchunks++;
        ru_rowstate_commit(s, &d, (int64_t)b + 1, 1);
        ru_store_free(st);

        /* the same state rebuilt from the stored chunks */
        struct ru_rowstate *r = ru_rowstate_new(7);
        for (size_t c = 0; c < nchunks; c++) {
            bool base = c == 0 || c % 5 == 4;
            cr_assert_eq(ru_rowstate_apply_chunk(r, (const uint8_t *)all[c].p, all[c].len, base),
                         0);
        }
        cr_assert_eq(r->hist_n, s->hist_n);
        for (size_t i = 0; i < s->hist_n; i++) {
            cr_assert_eq(r->hist[i].value, s->hist[i].value);
            cr_assert_eq(r->hist[i].count, s->hist[i].count);
        }
        cr_assert_eq(r->users.uuids_n + r->users.texts_n + r->users.has_zero,
                     s->users.uuids_n + s->users.texts_n + s->users.has_zero);
        if (b % 2) {
            /* the next batch builds on the state read back, as after a reload */
            r->c = s->c;
            r->version = s->version;
            r->nchunks = s->nchunks;
            ru_rowstate_free(s);
            s = r;
        } else {
            ru_rowstate_free(r);
        }
    }
    for (size_t c = 0; c < nchunks; c++)
        ru_buf_free(&all[c]);
    ru_arena_deinit(&sc);
    ru_rowstate_free(s);
}

Test(rowstate, two_values_interpolate)
{
    /* 111 and 222: avg 166.5 -> 167 (half away), p50 166.5 -> 166 (half to even),
     * p95 216.45 -> 216, p99 220.89 -> 221 (checked against PostgreSQL 15) */
    const int32_t dur[] = {222, 111};
    const char *const users[] = {"", ""};
    struct ru_hourly_vals v;
    run_batches(dur, users, 2, 1, &v);
    cr_assert_eq(v.total, 2);
    cr_assert_eq(v.avg_dur, 167);
    cr_assert_eq(v.p50, 166);
    cr_assert_eq(v.p95, 216);
    cr_assert_eq(v.p99, 221);
    cr_assert_eq(v.users, 0);
    cr_assert_not(v.has_req);
    cr_assert_not(v.has_db);
}

Test(rowstate, batches_equal_one_pass)
{
    enum { N = 5000 };
    static int32_t dur[N], sorted[N];
    static const char *users[N];
    static char ubuf[N][40];
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    long long sum = 0;
    for (size_t i = 0; i < N; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        /* skewed durations (negative ones too), 300 users as UUIDs and as other text */
        dur[i] = (int32_t)(x % 97) * (int32_t)(x % 7 == 0 ? 40 : 1) - (x % 101 == 0 ? 500 : 0);
        unsigned u = (unsigned)((x >> 20) % 300);
        if (u % 3 == 0)
            snprintf(ubuf[i], sizeof(ubuf[i]), "user-%u", u);
        else if (u == 1)
            snprintf(ubuf[i], sizeof(ubuf[i]), "00000000-0000-0000-0000-000000000000");
        else
            snprintf(ubuf[i], sizeof(ubuf[i]), "%08x-0000-4000-8000-%012x", u * 2654435761u, u);
        users[i] = (u == 2) ? "" : ubuf[i];
        sum += dur[i];
    }
    /* distinct non-empty users, the direct way */
    int distinct = 0;
    for (size_t i = 0; i < N; i++) {
        if (users[i][0] == '\0')
            continue;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(users[i], users[j]) == 0;
        distinct += !seen;
    }
    const double qs[3] = {0.5, 0.95, 0.99};
    int64_t want[3];
    for (int i = 0; i < 3; i++) {
        memcpy(sorted, dur, sizeof(dur));
        want[i] = pct_direct(sorted, N, qs[i]);
    }
    const size_t splits[] = {1, 2, 7, 30};
    for (size_t k = 0; k < RU_ARRAY_LEN(splits); k++) {
        struct ru_hourly_vals v;
        run_batches(dur, users, N, splits[k], &v);
        cr_assert_eq(v.total, N);
        cr_assert_eq(v.avg_dur, ru_pgnum_avg_int(sum, N), "batches=%zu", splits[k]);
        cr_assert_eq(v.p50, want[0], "batches=%zu p50 %lld != %lld", splits[k], (long long)v.p50,
                     (long long)want[0]);
        cr_assert_eq(v.p95, want[1], "batches=%zu", splits[k]);
        cr_assert_eq(v.p99, want[2], "batches=%zu", splits[k]);
        cr_assert_eq(v.users, distinct, "batches=%zu users %lld != %d", splits[k],
                     (long long)v.users, distinct);
    }
}

Test(rowstate, small_counts_every_rank)
{
    /* every n from 1 to 60 over a few distinct values: the ranks of the three quantiles
     * overlap in every way */
    for (size_t n = 1; n <= 60; n++) {
        int32_t dur[60], sorted[60];
        const char *users[60];
        for (size_t i = 0; i < n; i++) {
            dur[i] = (int32_t)((i * 37) % 11) * 13;
            users[i] = "";
        }
        struct ru_hourly_vals v;
        run_batches(dur, users, n, n > 3 ? 3 : 1, &v);
        const double qs[3] = {0.5, 0.95, 0.99};
        const int64_t got[3] = {v.p50, v.p95, v.p99};
        for (int i = 0; i < 3; i++) {
            memcpy(sorted, dur, n * sizeof(*dur));
            cr_assert_eq(got[i], pct_direct(sorted, n, qs[i]), "n=%zu q=%g", n, qs[i]);
        }
    }
}

Test(rowstate, counters_and_sizes)
{
    struct ru_store *st = ru_store_new();
    add(st, 10, "", 200);
    add(st, 20, "", 404);
    add(st, 30, "", 503);
    add(st, 40, "", 307);
    struct ru_rowdelta d;
    struct ru_userkey *uk = ru_userkeys_build(st);
    struct ru_arena sc;
    ru_arena_init(&sc, 64 * 1024, SIZE_MAX);
    ru_rowdelta_prepare(&d, NULL, st, uk, ru_store_agg(st, 0), &sc);
    free(uk);
    struct ru_hourly_vals v;
    ru_rowdelta_derive(&d, &v);
    cr_assert_eq(v.total, 4);
    cr_assert_eq(v.ok, 1);
    cr_assert_eq(v.c4xx, 1);
    cr_assert_eq(v.c5xx, 1);
    cr_assert_eq(v.avg_dur, 25);
    cr_assert_eq(v.p50, 25); /* 20 + 0.5 * 10 */
    ru_arena_deinit(&sc);
    ru_store_free(st);
}

/* A state of row 9 at version v: three events (5, 7, 7 ms), two users. */
static struct ru_rowstate *state_at(int64_t v, struct ru_rowcounts *counts)
{
    const int32_t dur[] = {5, 7, 7};
    const char *const users[] = {"a", "00000000-0000-4000-8000-000000000001", "a"};
    struct ru_store *st = ru_store_new();
    for (int i = 0; i < 3; i++)
        add(st, dur[i], users[i], 200);
    struct ru_rowdelta d;
    struct ru_arena sc;
    ru_arena_init(&sc, 64 * 1024, SIZE_MAX);
    struct ru_userkey *uk = ru_userkeys_build(st);
    ru_rowdelta_prepare(&d, NULL, st, uk, ru_store_agg(st, 0), &sc);
    struct ru_rowstate *s = ru_rowstate_new(9);
    ru_rowstate_commit(s, &d, v, 2);
    *counts = d.c;
    free(uk);
    ru_arena_deinit(&sc);
    ru_store_free(st);
    return s;
}

/* Reconciling a cached state (three events, two users) with what PostgreSQL holds. */
Test(rowstate, consistency_with_counters)
{
    struct ru_rowcounts c;
    struct ru_rowstate *s = state_at(1, &c);
    cr_assert(ru_rowstate_consistent(s, &c));
    c.total++;
    cr_assert_not(ru_rowstate_consistent(s, &c), "one event more than the histogram holds");
    c.total--;
    c.users_n = 1;
    cr_assert_not(ru_rowstate_consistent(s, &c), "two users in the set, one counted");
    ru_rowstate_free(s);
}

Test(rowstate, reconcile)
{
    const struct {
        const char *what;
        int64_t cached; /* the cached version; -1: a state just put in the cache */
        bool found;     /* PostgreSQL holds a version */
        int64_t stored; /* its version */
        int64_t more;   /* events the stored counters have that the cache lacks */
        enum ru_rowsync want;
        int64_t after; /* chunks read back after this version */
        size_t hist_n; /* histogram entries left */
        bool disagreed;
    } cases[] = {
        {"nothing stored", 4, false, 0, 0, RU_ROWSYNC_FRESH, 0, 0, false},
        {"the stored version", 4, true, 4, 0, RU_ROWSYNC_CURRENT, 0, 2, false},
        {"behind: the chunks after it", 4, true, 7, 7, RU_ROWSYNC_RELOAD, 4, 2, false},
        {"ahead (versions rolled back)", 9, true, 7, 0, RU_ROWSYNC_RELOAD, 0, 0, false},
        {"same version, other contents", 4, true, 4, 1, RU_ROWSYNC_RELOAD, 0, 0, true},
        {"new in the cache", -1, true, 7, 0, RU_ROWSYNC_RELOAD, 0, 0, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ru_rowcounts c;
        struct ru_rowstate *s = state_at(cases[i].cached < 0 ? 1 : cases[i].cached, &c);
        if (cases[i].cached < 0) {
            ru_rowstate_free(s);
            s = ru_rowstate_new(9);
        }
        struct ru_rowstored st = {
            .found = cases[i].found, .version = cases[i].stored, .nchunks = 5, .c = c};
        st.c.total += cases[i].more;
        int64_t after = -1;
        bool dis = !cases[i].disagreed;
        cr_assert_eq(ru_rowstate_reconcile(s, &st, &after, &dis), cases[i].want, "%s",
                     cases[i].what);
        cr_assert_eq(after, cases[i].after, "%s", cases[i].what);
        cr_assert_eq(s->hist_n, cases[i].hist_n, "%s", cases[i].what);
        cr_assert_eq(dis, cases[i].disagreed, "%s", cases[i].what);
        /* counters, version and chunk count are the stored ones (nothing, when none is) */
        cr_assert_eq(s->version, cases[i].found ? cases[i].stored : 0, "%s", cases[i].what);
        cr_assert_eq(s->nchunks, cases[i].found ? 5 : 0, "%s", cases[i].what);
        cr_assert_eq(s->c.total, cases[i].found ? c.total + cases[i].more : 0, "%s", cases[i].what);
        ru_rowstate_free(s);
    }
}
