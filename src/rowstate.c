#include "rollupd/rowstate.h"

#include <stdlib.h>
#include <string.h>

#include "rollupd/pgnum.h"

/* ---- user sets ---- */

static uint64_t uuid_hash(const struct ru_uuid *u)
{
    uint64_t x = u->hi ^ (u->lo * 0x9e3779b97f4a7c15ULL);
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 29;
    return x;
}

static bool uuid_is_zero(const struct ru_uuid *u)
{
    return u->hi == 0 && u->lo == 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

bool ru_uuid_from_text(const char *s, size_t len, struct ru_uuid *out)
{
    if (len != 36)
        return false;
    uint64_t w[2] = {0, 0};
    int nib = 0;
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
            continue;
        }
        int v = hexval(s[i]);
        if (v < 0)
            return false;
        w[nib / 16] = (w[nib / 16] << 4) | (uint64_t)v;
        nib++;
    }
    out->hi = w[0];
    out->lo = w[1];
    return true;
}

static void uuid_insert_slot(struct ru_uuid *t, size_t cap, const struct ru_uuid *u)
{
    size_t j = (size_t)uuid_hash(u) & (cap - 1);
    while (!uuid_is_zero(&t[j]))
        j = (j + 1) & (cap - 1);
    t[j] = *u;
}

static bool uuid_has(const struct ru_userset *us, const struct ru_uuid *u)
{
    if (uuid_is_zero(u))
        return us->has_zero;
    if (us->uuids_cap == 0)
        return false;
    size_t mask = us->uuids_cap - 1;
    for (size_t j = (size_t)uuid_hash(u) & mask; !uuid_is_zero(&us->uuids[j]); j = (j + 1) & mask)
        if (us->uuids[j].hi == u->hi && us->uuids[j].lo == u->lo)
            return true;
    return false;
}

/* Room for n ids in all, at a load of at most 3/4: one rehash however many arrive. */
static void uuid_reserve(struct ru_userset *us, size_t n)
{
    if (n * 4 <= us->uuids_cap * 3)
        return;
    size_t cap = us->uuids_cap ? us->uuids_cap : 8;
    while (n * 4 > cap * 3)
        cap *= 2;
    struct ru_uuid *t = ru_xcalloc(cap, sizeof(*t));
    for (size_t i = 0; i < us->uuids_cap; i++)
        if (!uuid_is_zero(&us->uuids[i]))
            uuid_insert_slot(t, cap, &us->uuids[i]);
    free(us->uuids);
    us->uuids = t;
    us->uuids_cap = cap;
}

/* Adds u, known not to be in the set. */
static void uuid_add(struct ru_userset *us, const struct ru_uuid *u)
{
    if (uuid_is_zero(u)) {
        us->has_zero = true;
        return;
    }
    uuid_reserve(us, us->uuids_n + 1);
    uuid_insert_slot(us->uuids, us->uuids_cap, u);
    us->uuids_n++;
}

static bool text_has(const struct ru_userset *us, const char *s, size_t len, uint64_t h)
{
    if (us->texts_cap == 0)
        return false;
    size_t mask = us->texts_cap - 1;
    for (size_t j = (size_t)h & mask; us->texts[j].text; j = (j + 1) & mask)
        if (us->texts[j].hash == h && us->texts[j].len == len &&
            memcmp(us->texts[j].text, s, len) == 0)
            return true;
    return false;
}

static void text_insert_slot(struct ru_textslot *t, size_t cap, struct ru_textslot v)
{
    size_t j = (size_t)v.hash & (cap - 1);
    while (t[j].text)
        j = (j + 1) & (cap - 1);
    t[j] = v;
}

/* Adds a copy of [s, s+len), known not to be in the set. */
static void text_add(struct ru_userset *us, const char *s, size_t len, uint64_t h)
{
    if ((us->texts_n + 1) * 4 > us->texts_cap * 3) {
        size_t cap = us->texts_cap ? us->texts_cap * 2 : 8;
        struct ru_textslot *t = ru_xcalloc(cap, sizeof(*t));
        for (size_t i = 0; i < us->texts_cap; i++)
            if (us->texts[i].text)
                text_insert_slot(t, cap, us->texts[i]);
        free(us->texts);
        us->texts = t;
        us->texts_cap = cap;
    }
    struct ru_textslot v = {h, ru_xstrndup(s, len), (uint32_t)len};
    text_insert_slot(us->texts, us->texts_cap, v);
    us->texts_n++;
    us->text_bytes += len + 1;
}

static uint64_t text_hash(const char *s, size_t len)
{
    return ru_hash(s, len, 0x51afd7ed558ccd);
}

static void userset_free(struct ru_userset *us)
{
    for (size_t i = 0; i < us->texts_cap; i++)
        free(us->texts[i].text);
    free(us->texts);
    free(us->uuids);
    memset(us, 0, sizeof(*us));
}

static size_t userset_count(const struct ru_userset *us)
{
    return us->uuids_n + (us->has_zero ? 1 : 0) + us->texts_n;
}

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
    userset_free(&s->users);
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
    return events == (uint64_t)c->total && userset_count(&s->users) == (size_t)c->users_n;
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
static size_t hist_merge(struct ru_hv *out, const struct ru_hv *a, size_t an, const struct ru_hv *b,
                         size_t bn)
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

/* ---- chunk encoding ----
 * chunk := varint nhist, nhist x (zigzag varint value step, varint count),
 *          varint nuuid, nuuid x 16 bytes (big-endian), varint ntext, ntext x (varint len, bytes)
 * Histogram values ascend; the first step is from 0. */

/* Writers into room the caller reserved (ru_buf_reserve): no call per byte. */
static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* The end of o's data, with room for n more bytes. */
static uint8_t *room(struct ru_buf *o, size_t n)
{
    ru_buf_reserve(o, n);
    return (uint8_t *)o->p + o->len;
}

static void done(struct ru_buf *o, const uint8_t *end)
{
    o->len = (size_t)(end - (const uint8_t *)o->p);
    o->p[o->len] = '\0';
}

struct reader {
    const uint8_t *p, *end;
    bool bad;
};

static uint64_t get_varint(struct reader *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) {
            r->bad = true;
            return 0;
        }
        uint8_t c = *r->p++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return v;
    }
    r->bad = true;
    return 0;
}

static uint64_t get_u64be(struct reader *r)
{
    if (r->end - r->p < 8) {
        r->bad = true;
        return 0;
    }
    uint64_t v = ru_load_be64(r->p);
    r->p += 8;
    return v;
}

static void put_hist(struct ru_buf *o, const struct ru_hv *h, size_t n)
{
    uint8_t *p = room(o, 10 + n * 20);
    p = put_varint(p, n);
    int64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t step = (int64_t)h[i].value - prev;
        p = put_varint(p, ((uint64_t)step << 1) ^ (uint64_t)(step >> 63));
        p = put_varint(p, h[i].count);
        prev = h[i].value;
    }
    done(o, p);
}

static uint8_t *put_uuid(uint8_t *p, const struct ru_uuid *u)
{
    ru_store_be(p, u->hi, 8);
    ru_store_be(p + 8, u->lo, 8);
    return p + 16;
}

/* uuids (set slots and a list), then texts (set slots and a list) */
static void put_users(struct ru_buf *o, const struct ru_userset *us, const struct ru_rowdelta *d)
{
    size_t nu = (us ? us->uuids_n + (us->has_zero ? 1 : 0) : 0) + d->new_uuids_n;
    uint8_t *p = room(o, 10 + nu * 16);
    p = put_varint(p, nu);
    if (us && us->has_zero) {
        const struct ru_uuid zero = {0, 0};
        p = put_uuid(p, &zero);
    }
    for (size_t i = 0; us && i < us->uuids_cap; i++)
        if (!uuid_is_zero(&us->uuids[i]))
            p = put_uuid(p, &us->uuids[i]);
    for (size_t i = 0; i < d->new_uuids_n; i++)
        p = put_uuid(p, &d->new_uuids[i]);
    done(o, p);
    size_t nt = (us ? us->texts_n : 0) + d->new_texts_n;
    p = room(o, 10);
    done(o, put_varint(p, nt));
    for (size_t i = 0; us && i < us->texts_cap; i++) {
        if (us->texts[i].text == NULL)
            continue;
        p = room(o, 10 + us->texts[i].len);
        p = put_varint(p, us->texts[i].len);
        memcpy(p, us->texts[i].text, us->texts[i].len);
        done(o, p + us->texts[i].len);
    }
    for (size_t i = 0; i < d->new_texts_n; i++) {
        p = room(o, 10 + d->new_texts[i].len);
        p = put_varint(p, d->new_texts[i].len);
        memcpy(p, d->new_texts[i].p, d->new_texts[i].len);
        done(o, p + d->new_texts[i].len);
    }
}

int ru_rowstate_apply_chunk(struct ru_rowstate *s, const uint8_t *data, size_t len, bool base)
{
    struct reader r = {data, data + len, false};
    uint64_t nh = get_varint(&r);
    if (r.bad || nh > len)
        return -1;
    struct ru_hv *add = ru_xmalloc((nh ? nh : 1) * sizeof(*add));
    int64_t prev = 0;
    for (uint64_t i = 0; i < nh && !r.bad; i++) {
        uint64_t z = get_varint(&r);
        int64_t step = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
        add[i].count = get_varint(&r);
        /* prev is an int32 value, so a step outside the int32 range is corrupt (and the
         * sum below cannot overflow) */
        if (step < -((int64_t)1 << 32) || step > ((int64_t)1 << 32)) {
            r.bad = true;
            break;
        }
        int64_t v = prev + step;
        if (v < INT32_MIN || v > INT32_MAX || (i > 0 && v <= prev) || add[i].count == 0)
            r.bad = true;
        add[i].value = (int32_t)v;
        prev = v;
    }
    if (r.bad) {
        free(add);
        return -1;
    }
    if (base)
        ru_rowstate_clear(s);
    size_t cap = s->hist_n + nh ? s->hist_n + nh : 1;
    struct ru_hv *m = ru_xmalloc(cap * sizeof(*m));
    size_t mn = hist_merge(m, s->hist, s->hist_n, add, nh);
    free(add);
    free(s->hist);
    s->hist = m;
    s->hist_n = mn;
    s->hist_cap = cap;
    uint64_t nu = get_varint(&r);
    if (!r.bad && nu <= (uint64_t)(r.end - r.p) / 16)
        uuid_reserve(&s->users, s->users.uuids_n + nu);
    for (uint64_t i = 0; i < nu && !r.bad; i++) {
        struct ru_uuid u;
        u.hi = get_u64be(&r);
        u.lo = get_u64be(&r);
        if (!r.bad && !uuid_has(&s->users, &u))
            uuid_add(&s->users, &u);
    }
    uint64_t nt = r.bad ? 0 : get_varint(&r);
    for (uint64_t i = 0; i < nt && !r.bad; i++) {
        uint64_t l = get_varint(&r);
        if (r.bad || l > (uint64_t)(r.end - r.p)) {
            r.bad = true;
            break;
        }
        const char *t = (const char *)r.p;
        r.p += l;
        uint64_t h = text_hash(t, l);
        if (!text_has(&s->users, t, l, h))
            text_add(&s->users, t, l, h);
    }
    if (r.bad || r.p != r.end)
        return -1;
    return 0;
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

/* ---- scratch ---- */

struct scratch_block {
    struct scratch_block *next;
    size_t size;
};

void *ru_scratch_alloc(struct ru_scratch *sc, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    sc->want += n;
    if (sc->cap - sc->used >= n) {
        void *p = sc->base + sc->used;
        sc->used += n;
        return p;
    }
    /* the block is full: this flush's overflow is kept aside until the reset, which
     * then sizes the block to the whole flush */
    struct scratch_block *b = ru_xmalloc(sizeof(*b) + 16 + n);
    b->next = sc->overflow;
    b->size = n;
    sc->overflow = b;
    return (char *)b + ((sizeof(*b) + 15) & ~(size_t)15);
}

void ru_scratch_reset(struct ru_scratch *sc)
{
    size_t want = sc->want;
    while (sc->overflow) {
        struct scratch_block *b = sc->overflow;
        sc->overflow = b->next;
        free(b);
    }
    /* keep the block while flushes use a good part of it; grow it to what the last
     * flush needed, shrink it when they have become much smaller */
    if (want > sc->cap || (sc->cap > (1u << 20) && want < sc->cap / 4)) {
        free(sc->base);
        sc->cap = want < (1u << 16) ? (1u << 16) : want + want / 8;
        sc->base = ru_xmalloc(sc->cap);
    }
    sc->used = 0;
    sc->want = 0;
}

void ru_scratch_free(struct ru_scratch *sc)
{
    ru_scratch_reset(sc);
    free(sc->base);
    memset(sc, 0, sizeof(*sc));
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
            uk[i].hash = text_hash(t, len);
    }
    return uk;
}

void ru_rowdelta_prepare(struct ru_rowdelta *d, const struct ru_rowstate *base,
                         const struct ru_store *st, const struct ru_userkey *uk,
                         const struct ru_agg *a, struct ru_scratch *sc)
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

    d->add = ru_scratch_alloc(sc, (a->hist_n ? a->hist_n : 1) * sizeof(*d->add));
    for (uint32_t i = 0; i < a->hist_cap; i++)
        if (a->hist[i].count) {
            d->add[d->add_n].value = a->hist[i].value;
            d->add[d->add_n++].count = a->hist[i].count;
        }
    hv_sort(d->add, d->add_n);
    d->next_hist = ru_scratch_alloc(sc, (base->hist_n + d->add_n) * sizeof(*d->next_hist));
    d->next_n = hist_merge(d->next_hist, base->hist, base->hist_n, d->add, d->add_n);

    /* user ids of this batch that the row has not seen */
    if (a->users_n) {
        d->new_uuids = ru_scratch_alloc(sc, a->users_n * sizeof(*d->new_uuids));
        d->new_texts = ru_scratch_alloc(sc, a->users_n * sizeof(*d->new_texts));
    }
    for (uint32_t i = 0; i < a->users_cap; i++) {
        if (a->users[i] == 0)
            continue;
        const struct ru_userkey *k = &uk[a->users[i] - 1];
        if (k->is_uuid) {
            if (!uuid_has(&base->users, &k->uuid))
                d->new_uuids[d->new_uuids_n++] = k->uuid;
            continue;
        }
        size_t len;
        const char *t = ru_store_user(st, a->users[i] - 1, &len);
        if (!text_has(&base->users, t, len, k->hash)) {
            /* copied: the batch (and its store) may be gone before the commit applies */
            char *copy = ru_scratch_alloc(sc, len + 1);
            memcpy(copy, t, len);
            copy[len] = '\0';
            d->new_texts[d->new_texts_n].p = copy;
            d->new_texts[d->new_texts_n++].len = len;
        }
    }
    c.users_n =
        (int64_t)userset_count(&base->users) + (int64_t)d->new_uuids_n + (int64_t)d->new_texts_n;
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

void ru_rowdelta_encode(const struct ru_rowdelta *d, const struct ru_rowstate *base, bool full,
                        struct ru_buf *out)
{
    if (full) {
        put_hist(out, d->next_hist, d->next_n);
        put_users(out, base ? &base->users : NULL, d);
    } else {
        put_hist(out, d->add, d->add_n);
        put_users(out, NULL, d);
    }
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
    uuid_reserve(&s->users, s->users.uuids_n + d->new_uuids_n);
    for (size_t i = 0; i < d->new_uuids_n; i++)
        uuid_add(&s->users, &d->new_uuids[i]);
    for (size_t i = 0; i < d->new_texts_n; i++) {
        const struct ru_str *t = &d->new_texts[i];
        text_add(&s->users, t->p, t->len, text_hash(t->p, t->len));
    }
    s->c = d->c;
    s->version = version;
    s->nchunks = nchunks;
}

/* ---- the cache ---- */

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
    return (x->used > y->used) - (x->used < y->used);
}

size_t ru_rowcache_evict(struct ru_rowcache *c, size_t budget)
{
    if (c->mem <= budget || c->n == 0)
        return 0;
    struct ru_rowstate **all = ru_xmalloc(c->n * sizeof(*all));
    size_t n = 0;
    for (size_t i = 0; i < c->cap; i++)
        if (c->slots[i])
            all[n++] = c->slots[i];
    qsort(all, n, sizeof(*all), used_cmp);
    size_t gone = 0;
    while (gone < n && c->mem > budget) {
        c->mem -= all[gone]->counted;
        ru_rowstate_free(all[gone]);
        all[gone++] = NULL;
    }
    /* rebuild the table from the survivors */
    memset(c->slots, 0, c->cap * sizeof(*c->slots));
    c->n = 0;
    for (size_t i = gone; i < n; i++) {
        slot_insert(c->slots, c->cap, all[i]);
        c->n++;
    }
    free(all);
    return gone;
}
