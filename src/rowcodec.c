#include "rollupd/rowcodec.h"

#include <stdlib.h>
#include <string.h>

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
        if (!ru_userset_uuid_is_zero(&us->uuids[i]))
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
    size_t mn = ru_rowstate_hist_merge(m, s->hist, s->hist_n, add, nh);
    free(add);
    free(s->hist);
    s->hist = m;
    s->hist_n = mn;
    s->hist_cap = cap;
    uint64_t nu = get_varint(&r);
    if (!r.bad && nu <= (uint64_t)(r.end - r.p) / 16)
        ru_userset_reserve_uuids(&s->users, s->users.uuids_n + nu);
    for (uint64_t i = 0; i < nu && !r.bad; i++) {
        struct ru_uuid u;
        u.hi = get_u64be(&r);
        u.lo = get_u64be(&r);
        if (!r.bad && !ru_userset_has_uuid(&s->users, &u))
            ru_userset_add_uuid(&s->users, &u);
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
        uint64_t h = ru_userset_text_hash(t, l);
        if (!ru_userset_has_text(&s->users, t, l, h))
            ru_userset_add_text(&s->users, t, l, h);
    }
    if (r.bad || r.p != r.end)
        return -1;
    return 0;
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
