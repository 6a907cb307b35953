/* keycheck: PostgreSQL's verdict on long keys, and the entries that wait for it.
 *
 * The cache is two open-addressing tables, a current and an older generation, each
 * holding at most half the verdicts. A hit in the older one is copied into the current
 * one; when the current one is full, the older one is dropped and the current one takes
 * its place. So the verdicts used recently survive, without per-entry bookkeeping. */
#include "rollupd/keycheck.h"

#include <stdlib.h>
#include <string.h>

struct ru_keycheck_hash ru_keycheck_hash(const struct ru_event *ev)
{
    struct ru_keycheck_hash h;
    h.lo = ru_hash(ev->route.p, ev->route.len, 0x6b65796c6f);
    h.lo = ru_hash(ev->method.p, ev->method.len, h.lo);
    h.lo = ru_hash(ev->params_canon.p, ev->params_canon.len, h.lo);
    h.hi = ru_hash(ev->route.p, ev->route.len, 0x6b65796869);
    h.hi = ru_hash(ev->method.p, ev->method.len, h.hi);
    h.hi = ru_hash(ev->params_canon.p, ev->params_canon.len, h.hi);
    return h;
}

static bool hash_eq(const struct ru_keycheck_hash *a, const struct ru_keycheck_hash *b)
{
    return a->lo == b->lo && a->hi == b->hi;
}

/* ---- the verdict cache ---- */

struct slot {
    struct ru_keycheck_hash h;
    enum ru_keycheck_verdict v; /* RU_KEY_UNKNOWN = empty */
    char *reason;
};

struct gen {
    struct slot *slots;
    size_t cap, n; /* cap: a power of two, at least twice the most it holds */
    size_t reason_bytes;
};

struct ru_keycheck {
    struct gen cur, old;
    size_t per_gen; /* verdicts a generation holds before it is retired */
};

static void gen_init(struct gen *g, size_t cap)
{
    g->slots = ru_xcalloc(cap, sizeof(*g->slots));
    g->cap = cap;
    g->n = 0;
    g->reason_bytes = 0;
}

static void gen_deinit(struct gen *g)
{
    for (size_t i = 0; g->slots && i < g->cap; i++)
        free(g->slots[i].reason);
    free(g->slots);
    memset(g, 0, sizeof(*g));
}

static struct slot *gen_find(const struct gen *g, const struct ru_keycheck_hash *h)
{
    size_t mask = g->cap - 1;
    for (size_t i = (size_t)h->lo & mask;; i = (i + 1) & mask) {
        struct slot *s = &g->slots[i];
        if (s->v == RU_KEY_UNKNOWN || hash_eq(&s->h, h))
            return s;
    }
}

struct ru_keycheck *ru_keycheck_new(size_t max_verdicts)
{
    struct ru_keycheck *kc = ru_xcalloc(1, sizeof(*kc));
    kc->per_gen = max_verdicts < 2 ? 1 : max_verdicts / 2;
    size_t cap = 4;
    while (cap < 2 * kc->per_gen)
        cap *= 2;
    gen_init(&kc->cur, cap);
    gen_init(&kc->old, cap);
    return kc;
}

void ru_keycheck_free(struct ru_keycheck *kc)
{
    if (kc == NULL)
        return;
    gen_deinit(&kc->cur);
    gen_deinit(&kc->old);
    free(kc);
}

static void gen_put(struct gen *g, struct slot *s, const struct ru_keycheck_hash *h,
                    enum ru_keycheck_verdict v, const char *reason)
{
    if (s->v == RU_KEY_UNKNOWN)
        g->n++;
    else if (s->reason)
        g->reason_bytes -= strlen(s->reason) + 1;
    free(s->reason);
    s->h = *h;
    s->v = v;
    s->reason = v == RU_KEY_REFUSED ? ru_xstrdup(reason ? reason : "") : NULL;
    if (s->reason)
        g->reason_bytes += strlen(s->reason) + 1;
}

void ru_keycheck_put(struct ru_keycheck *kc, const struct ru_keycheck_hash *h,
                     enum ru_keycheck_verdict v, const char *reason)
{
    if (v == RU_KEY_UNKNOWN)
        return;
    struct slot *s = gen_find(&kc->cur, h);
    if (s->v == RU_KEY_UNKNOWN && kc->cur.n >= kc->per_gen) {
        /* retire the older generation; the current one becomes the older */
        size_t cap = kc->old.cap;
        gen_deinit(&kc->old);
        kc->old = kc->cur;
        gen_init(&kc->cur, cap);
        s = gen_find(&kc->cur, h);
    }
    gen_put(&kc->cur, s, h, v, reason);
}

enum ru_keycheck_verdict ru_keycheck_get(struct ru_keycheck *kc, const struct ru_keycheck_hash *h,
                                         const char **reason)
{
    const struct slot *s = gen_find(&kc->cur, h);
    if (s->v == RU_KEY_UNKNOWN) {
        const struct slot *o = gen_find(&kc->old, h);
        if (o->v == RU_KEY_UNKNOWN)
            return RU_KEY_UNKNOWN;
        /* used again: keep it past the older generation's end */
        enum ru_keycheck_verdict v = o->v;
        char *why = o->reason ? ru_xstrdup(o->reason) : NULL;
        ru_keycheck_put(kc, h, v, why);
        free(why);
        s = gen_find(&kc->cur, h);
    }
    if (reason)
        *reason = s->reason;
    return s->v;
}

size_t ru_keycheck_count(const struct ru_keycheck *kc)
{
    return kc->cur.n + kc->old.n;
}

size_t ru_keycheck_mem(const struct ru_keycheck *kc)
{
    return sizeof(*kc) + (kc->cur.cap + kc->old.cap) * sizeof(struct slot) + kc->cur.reason_bytes +
           kc->old.reason_bytes;
}

/* ---- probes ---- */

void ru_keycheck_probes_free(struct ru_keycheck_probe *probes, size_t n)
{
    for (size_t i = 0; probes && i < n; i++) {
        free(probes[i].route);
        free(probes[i].method);
        free(probes[i].params);
    }
    free(probes);
}

/* ---- parked entries ---- */

void ru_keycheck_parked_init(struct ru_keycheck_parked *p)
{
    memset(p, 0, sizeof(*p));
}

void ru_keycheck_entry_free(struct ru_keycheck_entry *e)
{
    free(e->fields);
    free(e->reason);
    memset(e, 0, sizeof(*e));
}

void ru_keycheck_parked_deinit(struct ru_keycheck_parked *p)
{
    for (size_t i = 0; i < p->n; i++)
        ru_keycheck_entry_free(&p->v[i]);
    free(p->v);
    memset(p, 0, sizeof(*p));
}

/* Index of the first entry whose id is >= id. */
static size_t lower_bound(const struct ru_keycheck_parked *p, const struct ru_sid *id)
{
    size_t lo = 0, hi = p->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ru_sid_cmp(&p->v[mid].id, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

bool ru_keycheck_is_parked(const struct ru_keycheck_parked *p, const struct ru_sid *id)
{
    size_t i = lower_bound(p, id);
    return i < p->n && ru_sid_cmp(&p->v[i].id, id) == 0;
}

/* Copies s into the block at *at and returns the copy. */
static struct ru_str put_str(char **at, const char *s, size_t len)
{
    struct ru_str r = {*at, len};
    if (len)
        memcpy(*at, s, len);
    (*at)[len] = '\0';
    *at += len + 1;
    return r;
}

bool ru_keycheck_park(struct ru_keycheck_parked *p, const struct ru_sid *id,
                      const struct ru_field *fields, size_t nfields, const struct ru_event *ev,
                      unsigned flags)
{
    size_t at = lower_bound(p, id);
    if (at < p->n && ru_sid_cmp(&p->v[at].id, id) == 0)
        return false;
    /* one block: the field array, then every string NUL-terminated */
    size_t bytes = nfields * sizeof(struct ru_field);
    for (size_t i = 0; i < nfields; i++)
        bytes += fields[i].name.len + fields[i].value.len + 2;
    bytes += ev->route.len + ev->method.len + ev->params_canon.len + 3;
    struct ru_keycheck_entry e = {0};
    e.id = *id;
    e.fields = ru_xmalloc(bytes);
    e.nfields = nfields;
    char *s = (char *)(e.fields + nfields);
    for (size_t i = 0; i < nfields; i++) {
        e.fields[i].name = put_str(&s, fields[i].name.p, fields[i].name.len);
        e.fields[i].value = put_str(&s, fields[i].value.p, fields[i].value.len);
    }
    e.route = put_str(&s, ev->route.p, ev->route.len);
    e.method = put_str(&s, ev->method.p, ev->method.len);
    e.params = put_str(&s, ev->params_canon.p, ev->params_canon.len);
    e.key = ru_keycheck_hash(ev);
    e.hour_us = ev->hour_us;
    e.flags = flags;
    e.verdict = RU_KEY_UNKNOWN;
    e.mem = bytes;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        p->v = ru_xrealloc(p->v, cap * sizeof(*p->v));
        p->mem += (cap - p->cap) * sizeof(*p->v);
        p->cap = cap;
    }
    memmove(&p->v[at + 1], &p->v[at], (p->n - at) * sizeof(*p->v));
    p->v[at] = e;
    p->n++;
    p->mem += e.mem;
    p->waiting++;
    return true;
}

static void set_verdict(struct ru_keycheck_parked *p, struct ru_keycheck_entry *e,
                        enum ru_keycheck_verdict v, const char *reason)
{
    if (e->verdict != RU_KEY_UNKNOWN || v == RU_KEY_UNKNOWN)
        return;
    e->verdict = v;
    if (v == RU_KEY_REFUSED) {
        e->reason = ru_xstrdup(reason ? reason : "");
        e->mem += strlen(e->reason) + 1;
        p->mem += strlen(e->reason) + 1;
    }
    p->waiting--;
}

size_t ru_keycheck_to_probe(struct ru_keycheck_parked *p, struct ru_keycheck *kc,
                            struct ru_keycheck_probe **out, size_t max)
{
    *out = NULL;
    size_t n = 0;
    for (size_t i = 0; i < p->n && n < max; i++) {
        struct ru_keycheck_entry *e = &p->v[i];
        if (e->verdict != RU_KEY_UNKNOWN)
            continue;
        const char *why = NULL;
        enum ru_keycheck_verdict v = ru_keycheck_get(kc, &e->key, &why);
        if (v != RU_KEY_UNKNOWN) {
            set_verdict(p, e, v, why);
            continue;
        }
        bool dup = false;
        for (size_t j = 0; j < n && !dup; j++)
            dup = hash_eq(&(*out)[j].key, &e->key);
        if (dup)
            continue;
        if (n == 0)
            *out = ru_xcalloc(max, sizeof(**out));
        struct ru_keycheck_probe *q = &(*out)[n++];
        q->key = e->key;
        q->hour_us = e->hour_us;
        q->route = ru_xstrndup(e->route.p, e->route.len);
        q->method = ru_xstrndup(e->method.p, e->method.len);
        q->params = ru_xstrndup(e->params.p, e->params.len);
    }
    return n;
}

void ru_keycheck_answer(struct ru_keycheck_parked *p, struct ru_keycheck *kc,
                        const struct ru_keycheck_probe *probes, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        const struct ru_keycheck_probe *q = &probes[k];
        if (q->verdict == RU_KEY_UNKNOWN)
            continue;
        ru_keycheck_put(kc, &q->key, q->verdict, q->reason);
        for (size_t i = 0; i < p->n; i++)
            if (hash_eq(&p->v[i].key, &q->key))
                set_verdict(p, &p->v[i], q->verdict, q->reason);
    }
}

static void remove_at(struct ru_keycheck_parked *p, size_t i)
{
    p->mem -= p->v[i].mem;
    if (p->v[i].verdict == RU_KEY_UNKNOWN)
        p->waiting--;
    memmove(&p->v[i], &p->v[i + 1], (p->n - i - 1) * sizeof(*p->v));
    p->n--;
}

bool ru_keycheck_take(struct ru_keycheck_parked *p, struct ru_keycheck_entry *out)
{
    for (size_t i = 0; i < p->n; i++) {
        if (p->v[i].verdict == RU_KEY_UNKNOWN)
            continue;
        *out = p->v[i];
        remove_at(p, i);
        return true;
    }
    return false;
}

size_t ru_keycheck_count_parked(const struct ru_keycheck_parked *p, unsigned mask)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n; i++)
        n += (p->v[i].flags & mask) != 0;
    return n;
}

size_t ru_keycheck_drop(struct ru_keycheck_parked *p, unsigned mask)
{
    size_t dropped = 0;
    for (size_t i = 0; i < p->n;) {
        if ((p->v[i].flags & mask) == 0) {
            i++;
            continue;
        }
        struct ru_keycheck_entry e = p->v[i];
        remove_at(p, i);
        ru_keycheck_entry_free(&e);
        dropped++;
    }
    return dropped;
}
