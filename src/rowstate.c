#include "rollupd/rowstate.h"

#include <stdlib.h>
#include <string.h>

#include "rollupd/pgnum.h"

/* ---- states ---- */

struct ru_rowstate *ru_rowstate_new(int64_t id)
{
    struct ru_rowstate *s = ru_xcalloc(1, sizeof(*s));
    s->id = id;
    return s;
}

void ru_rowstate_clear(struct ru_rowstate *s)
{
    free(s->hist);
    s->hist = NULL;
    s->hist_n = s->hist_cap = 0;
    ru_userset_free(&s->users);
}

void ru_rowstate_free(struct ru_rowstate *s)
{
    if (s == NULL)
        return;
    ru_rowstate_clear(s);
    free(s);
}

bool ru_rowstate_consistent(const struct ru_rowstate *s, const struct ru_rowcounts *c)
{
    uint64_t events = 0;
    for (size_t i = 0; i < s->hist_n; i++)
        events += s->hist[i].count;
    return events == (uint64_t)c->total && ru_userset_count(&s->users) == (size_t)c->users_n;
}

enum ru_rowsync ru_rowstate_reconcile(struct ru_rowstate *s, const struct ru_rowstored *st,
                                      int64_t *after, bool *disagreed)
{
    *after = 0;
    *disagreed = false;
    if (!st->found) {
        ru_rowstate_clear(s);
        memset(&s->c, 0, sizeof(s->c));
        s->version = 0;
        s->nchunks = 0;
        return RU_ROWSYNC_FRESH;
    }
    enum ru_rowsync r = RU_ROWSYNC_CURRENT;
    if (s->version == st->version && !ru_rowstate_consistent(s, &st->c)) {
        /* same version number, other contents: trust the stored versions */
        *disagreed = true;
        s->version = 0;
    }
    if (s->version != st->version) {
        if (s->version > st->version || s->version <= 0) {
            ru_rowstate_clear(s);
            s->version = 0;
        }
        *after = s->version;
        s->version = st->version;
        r = RU_ROWSYNC_RELOAD;
    }
    /* the counters come from the locked state row in any case */
    s->c = st->c;
    s->nchunks = st->nchunks;
    return r;
}

size_t ru_rowstate_mem(const struct ru_rowstate *s)
{
    return sizeof(*s) + s->hist_cap * sizeof(*s->hist) +
           s->users.uuids_cap * sizeof(*s->users.uuids) +
           s->users.texts_cap * sizeof(*s->users.texts) + s->users.text_bytes;
}

/* out = a + b, both sorted by value; returns the entries written (out holds an + bn). */
size_t ru_rowstate_hist_merge(struct ru_hv *out, const struct ru_hv *a, size_t an,
                              const struct ru_hv *b, size_t bn)
{
    size_t i = 0, j = 0, n = 0;
    while (i < an && j < bn) {
        if (a[i].value < b[j].value) {
            out[n++] = a[i++];
        } else if (b[j].value < a[i].value) {
            out[n++] = b[j++];
        } else {
            out[n] = a[i++];
            out[n++].count += b[j++].count;
        }
    }
    while (i < an)
        out[n++] = a[i++];
    while (j < bn)
        out[n++] = b[j++];
    return n;
}

/* ---- deltas ---- */

/* Sorts by value: insertion sort for short runs, quicksort (median of three, recursing
 * into the smaller side) above; the histograms of one key are short. */
static void hv_sort(struct ru_hv *v, size_t n)
{
    while (n > 16) {
        struct ru_hv *m = &v[n / 2], *l = &v[n - 1], t;
        if (m->value < v->value)
            t = *m, *m = *v, *v = t;
        if (l->value < m->value) {
            t = *l, *l = *m, *m = t;
            if (m->value < v->value)
                t = *m, *m = *v, *v = t;
        }
        int32_t pivot = m->value;
        size_t i = 0, j = n - 1;
        for (;;) {
            while (v[i].value < pivot)
                i++;
            while (pivot < v[j].value)
                j--;
            if (i >= j)
                break;
            t = v[i], v[i] = v[j], v[j] = t;
            i++;
            j--;
        }
        size_t left = j + 1;
        if (left < n - left) {
            hv_sort(v, left);
            v += left;
            n -= left;
        } else {
            hv_sort(v + left, n - left);
            n = left;
        }
    }
    for (size_t i = 1; i < n; i++) {
        struct ru_hv x = v[i];
        size_t j = i;
        while (j > 0 && v[j - 1].value > x.value) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

struct ru_userkey *ru_userkeys_build(const struct ru_store *st)
{
    size_t n = ru_store_nusers(st);
    struct ru_userkey *uk = ru_xcalloc(n ? n : 1, sizeof(*uk));
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *t = ru_store_user(st, (uint32_t)i, &len);
        uk[i].is_uuid = ru_uuid_from_text(t, len, &uk[i].uuid);
        if (!uk[i].is_uuid)
            uk[i].hash = ru_userset_text_hash(t, len);
    }
    return uk;
}

void ru_rowdelta_prepare(struct ru_rowdelta *d, const struct ru_rowstate *base,
                         const struct ru_store *st, const struct ru_userkey *uk,
                         const struct ru_agg *a, struct ru_arena *sc)
{
    static const struct ru_rowstate empty;
    if (base == NULL)
        base = &empty;
    memset(d, 0, sizeof(*d));
    struct ru_rowcounts c = base->c;
    c.total += (int64_t)a->total;
    c.ok += (int64_t)a->ok;
    c.c4xx += (int64_t)a->c4xx;
    c.c5xx += (int64_t)a->c5xx;
    c.hits += (int64_t)a->hits;
    c.misses += (int64_t)a->misses;
    c.dur_sum += a->dur_sum;
    c.req_sum += a->req_sum;
    c.req_n += (int64_t)a->req_n;
    c.resp_sum += a->resp_sum;
    c.resp_n += (int64_t)a->resp_n;
    c.db_sum += a->db_sum;
    c.db_n += (int64_t)a->db_n;

    d->add = ru_arena_alloc(sc, (a->hist_n ? a->hist_n : 1) * sizeof(*d->add));
    for (uint32_t i = 0; i < a->hist_cap; i++)
        if (a->hist[i].count) {
            d->add[d->add_n].value = a->hist[i].value;
            d->add[d->add_n++].count = a->hist[i].count;
        }
    hv_sort(d->add, d->add_n);
    d->next_hist = ru_arena_alloc(sc, (base->hist_n + d->add_n) * sizeof(*d->next_hist));
    d->next_n = ru_rowstate_hist_merge(d->next_hist, base->hist, base->hist_n, d->add, d->add_n);

    /* user ids of this batch that the row has not seen */
    if (a->users_n) {
        d->new_uuids = ru_arena_alloc(sc, a->users_n * sizeof(*d->new_uuids));
        d->new_texts = ru_arena_alloc(sc, a->users_n * sizeof(*d->new_texts));
    }
    for (uint32_t i = 0; i < a->users_cap; i++) {
        if (a->users[i] == 0)
            continue;
        const struct ru_userkey *k = &uk[a->users[i] - 1];
        if (k->is_uuid) {
            if (!ru_userset_has_uuid(&base->users, &k->uuid))
                d->new_uuids[d->new_uuids_n++] = k->uuid;
            continue;
        }
        size_t len;
        const char *t = ru_store_user(st, a->users[i] - 1, &len);
        if (!ru_userset_has_text(&base->users, t, len, k->hash)) {
            /* copied: the batch (and its store) may be gone before the commit applies */
            char *copy = ru_arena_alloc(sc, len + 1);
            memcpy(copy, t, len);
            copy[len] = '\0';
            d->new_texts[d->new_texts_n].p = copy;
            d->new_texts[d->new_texts_n++].len = len;
        }
    }
    c.users_n =
        (int64_t)ru_userset_count(&base->users) + (int64_t)d->new_uuids_n + (int64_t)d->new_texts_n;
    d->c = c;
}

void ru_rowdelta_derive(const struct ru_rowdelta *d, struct ru_hourly_vals *v)
{
    const struct ru_rowcounts *c = &d->c;
    memset(v, 0, sizeof(*v));
    v->total = c->total;
    v->ok = c->ok;
    v->c4xx = c->c4xx;
    v->c5xx = c->c5xx;
    v->hits = c->hits;
    v->misses = c->misses;
    v->users = c->users_n;
    v->avg_dur = ru_pgnum_avg_int(c->dur_sum, c->total);
    if ((v->has_req = c->req_n > 0))
        v->avg_req = ru_pgnum_avg_int(c->req_sum, c->req_n);
    if ((v->has_resp = c->resp_n > 0))
        v->avg_resp = ru_pgnum_avg_int(c->resp_sum, c->resp_n);
    if ((v->has_db = c->db_n > 0))
        v->avg_db = ru_pgnum_avg_float8(c->db_sum, c->db_n);

    /* percentile_cont at 0.5, 0.95 and 0.99: the value at 0-based rank r is the first
     * whose cumulative count exceeds r. The ranks of one quantile ascend, those of the
     * next start at or after its first one: one walk, stepping back only within a run. */
    static const double q[3] = {0.5, 0.95, 0.99};
    int64_t rank[6];
    double prop[3], val[6];
    for (int i = 0; i < 3; i++)
        ru_pgnum_pct_ranks(q[i], c->total, &rank[2 * i], &rank[2 * i + 1], &prop[i]);
    size_t j = 0;
    uint64_t before = 0; /* events with values before entry j */
    for (int i = 0; i < 6; i++) {
        uint64_t r = (uint64_t)rank[i];
        if (r < before) {
            j = 0;
            before = 0;
        }
        while (j + 1 < d->next_n && before + d->next_hist[j].count <= r)
            before += d->next_hist[j++].count;
        val[i] = d->next_n ? (double)d->next_hist[j].value : 0.0;
    }
    int64_t *out[3] = {&v->p50, &v->p95, &v->p99};
    for (int i = 0; i < 3; i++)
        *out[i] = ru_pgnum_round_even(ru_pgnum_lerp(val[2 * i], val[2 * i + 1], prop[i]));
}

void ru_rowstate_commit(struct ru_rowstate *s, struct ru_rowdelta *d, int64_t version,
                        int32_t nchunks)
{
    if (d->next_n > s->hist_cap) {
        /* room for the values still to come this hour */
        s->hist_cap = d->next_n + d->next_n / 8 + 4;
        free(s->hist);
        s->hist = ru_xmalloc(s->hist_cap * sizeof(*s->hist));
    }
    memcpy(s->hist, d->next_hist, d->next_n * sizeof(*s->hist));
    s->hist_n = d->next_n;
    ru_userset_reserve_uuids(&s->users, s->users.uuids_n + d->new_uuids_n);
    for (size_t i = 0; i < d->new_uuids_n; i++)
        ru_userset_add_uuid(&s->users, &d->new_uuids[i]);
    for (size_t i = 0; i < d->new_texts_n; i++) {
        const struct ru_str *t = &d->new_texts[i];
        ru_userset_add_text(&s->users, t->p, t->len, ru_userset_text_hash(t->p, t->len));
    }
    s->c = d->c;
    s->version = version;
    s->nchunks = nchunks;
}
