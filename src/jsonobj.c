#include "rollupd/jsonobj.h"

#include <string.h>

#define HDR_SIZE   RU_JSONOBJ_HDR_SIZE
#define SMALL_OBJ  32 /* members indexed on the stack */
#define INSERT_MAX 16 /* insertion sort up to this many members */

static inline size_t hdr_get(const char *rec, int which)
{
    size_t v;
    memcpy(&v, rec + (size_t)which * sizeof(size_t), sizeof(v));
    return v;
}

static inline int key_cmp(const char *base, size_t a, size_t b)
{
    size_t ka = hdr_get(base + a, 0), kb = hdr_get(base + b, 0);
    if (ka != kb)
        return ka < kb ? -1 : 1;
    return memcmp(base + a + HDR_SIZE, base + b + HDR_SIZE, ka);
}

/* Total order: key, then position (so the last of equal keys sorts last). */
static inline bool member_less(const char *base, size_t a, size_t b)
{
    int c = key_cmp(base, a, b);
    return c < 0 || (c == 0 && a < b);
}

static void sift_down(const char *base, size_t *idx, size_t root, size_t n)
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n)
            return;
        if (child + 1 < n && member_less(base, idx[child], idx[child + 1]))
            child++;
        if (!member_less(base, idx[root], idx[child]))
            return;
        size_t t = idx[root];
        idx[root] = idx[child];
        idx[child] = t;
        root = child;
    }
}

static void sort_members(const char *base, size_t *idx, size_t n)
{
    if (n <= INSERT_MAX) {
        for (size_t i = 1; i < n; i++) {
            size_t v = idx[i], j = i;
            while (j > 0 && member_less(base, v, idx[j - 1])) {
                idx[j] = idx[j - 1];
                j--;
            }
            idx[j] = v;
        }
        return;
    }
    for (size_t i = n / 2; i-- > 0;)
        sift_down(base, idx, i, n);
    for (size_t i = n; i-- > 1;) {
        size_t t = idx[0];
        idx[0] = idx[i];
        idx[i] = t;
        sift_down(base, idx, 0, i);
    }
}

void ru_jsonobj_finish(struct ru_buf *out, size_t r0, size_t n)
{
    size_t region = out->len - r0;
    size_t small[SMALL_OBJ];
    size_t *idx = small;
    size_t idx_off = 0;

    /* Everything below fits in what is reserved here, so out->p stays put. */
    if (n > SMALL_OBJ) {
        idx_off = (out->len + sizeof(size_t) - 1) / sizeof(size_t) * sizeof(size_t);
        ru_buf_reserve(out, idx_off - out->len + n * sizeof(size_t) + region + 2);
        idx = (size_t *)(void *)(out->p + idx_off);
    } else {
        ru_buf_reserve(out, region + 2);
    }
    char *base = out->p + r0;

    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        idx[i] = off;
        off += HDR_SIZE + hdr_get(base + off, 1);
    }
    sort_members(base, idx, n);

    /* keep the last of each run of equal keys; note whether the order is unchanged */
    size_t u = 0;
    bool in_order = true;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && key_cmp(base, idx[i], idx[i + 1]) == 0)
            continue;
        if (u > 0 && idx[i] < idx[u - 1])
            in_order = false;
        idx[u++] = idx[i];
    }

    if (in_order) {
        /* Each member moves down (its header is dropped), so compact in place. */
        char *w = base;
        for (size_t i = 0; i < u; i++) {
            size_t mlen = hdr_get(base + idx[i], 1); /* read before anything overwrites it */
            *w++ = i == 0 ? '{' : ',';
            memmove(w, base + idx[i] + HDR_SIZE, mlen);
            w += mlen;
        }
        *w++ = '}';
        out->len = (size_t)(w - out->p);
    } else {
        char *dst = n > SMALL_OBJ ? out->p + idx_off + n * sizeof(size_t) : out->p + out->len;
        char *w = dst;
        *w++ = '{';
        for (size_t i = 0; i < u; i++) {
            size_t mlen = hdr_get(base + idx[i], 1);
            if (i > 0)
                *w++ = ',';
            memcpy(w, base + idx[i] + HDR_SIZE, mlen);
            w += mlen;
        }
        *w++ = '}';
        memmove(base, dst, (size_t)(w - dst));
        out->len = r0 + (size_t)(w - dst);
    }
    out->p[out->len] = '\0';
}
