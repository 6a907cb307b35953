#include "rollupd/resp.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollupd/util.h"

/* Index of the CR of the first CR LF at or after pos, or -1 when buf[0..len) has none. */
static ssize_t line_end(const char *buf, size_t pos, size_t len)
{
    while (pos < len) {
        const char *cr = memchr(buf + pos, '\r', len - pos);
        if (cr == NULL)
            return -1;
        size_t i = (size_t)(cr - buf);
        if (i + 1 >= len)
            return -1;
        if (buf[i + 1] == '\n')
            return (ssize_t)i;
        pos = i + 1;
    }
    return -1;
}

/* The decimal number of a header line starting at buf[i] ("0", or an optional '-' and 1 to
 * 19 digits without a leading zero, within long long, then CR LF: what Redis writes and
 * hiredis accepts). Returns the index just past the CR LF; 0 when buf[0..len)
 * ends first; -1 when the line is anything else. */
static inline ssize_t header_num(const char *buf, size_t i, size_t len, long long *out)
{
    bool neg = i < len && buf[i] == '-';
    if (neg)
        i++;
    size_t first = i;
    unsigned long long v = 0;
    unsigned d;
    if (len - i >= 22) {
        /* the usual case: the line's end is in the buffer, no bound to check per digit */
        while ((d = (unsigned)(unsigned char)buf[i] - '0') <= 9 && i - first < 20) {
            v = v * 10 + d;
            i++;
        }
        if (i - first > 19)
            return -1;
    } else {
        for (; i < len; i++) {
            d = (unsigned)(unsigned char)buf[i] - '0';
            if (d > 9)
                break;
            if (i - first == 19)
                return -1;
            v = v * 10 + d; /* 19 digits stay below 2^64 */
        }
        if (i >= len)
            return 0;
    }
    if (buf[i] != '\r' || i == first || (buf[first] == '0' && (neg || i - first > 1)))
        return -1;
    if (i + 1 >= len)
        return 0;
    if (buf[i + 1] != '\n' || v > (unsigned long long)LLONG_MAX + (neg ? 1u : 0u))
        return -1;
    *out = neg ? (v == 0 ? 0 : -(long long)(v - 1) - 1) : (long long)v;
    return (ssize_t)(i + 2);
}

/* The usual bulk header, "$" and 1 to 3 digits without a leading zero (or "$0") then CR
 * LF, read without header_num's general checks when the buffer holds at least 6 bytes
 * from pos. Returns the index just past the CR LF with the length in *out, or 0 when the
 * header is not of that form (header_num then decides). */
static inline size_t short_bulk(const char *buf, size_t pos, size_t len, long long *out)
{
    if (len - pos < 6)
        return 0;
    const unsigned char *p = (const unsigned char *)buf + pos + 1;
    unsigned d0 = p[0] - (unsigned)'0', d1 = p[1] - (unsigned)'0', d2 = p[2] - (unsigned)'0';
    if (d0 <= 9 && p[1] == '\r' && p[2] == '\n') {
        *out = d0;
        return pos + 4;
    }
    if (d0 - 1u > 8u || d1 > 9)
        return 0;
    if (p[2] == '\r' && p[3] == '\n') {
        *out = d0 * 10 + d1;
        return pos + 5;
    }
    if (d2 <= 9 && p[3] == '\r' && p[4] == '\n') {
        *out = d0 * 100 + d1 * 10 + d2;
        return pos + 6;
    }
    return 0;
}

static ssize_t fail(char *err, size_t errlen, const char *why)
{
    if (errlen > 0)
        snprintf(err, errlen, "%s", why);
    return -1;
}

void ru_resp_scan_reset(struct ru_resp_scan *sc)
{
    sc->pos = 0;
    sc->nodes = 0;
    sc->elems = 0;
    sc->depth = 0;
}

void ru_resp_index_free(struct ru_resp_index *ix)
{
    free(ix->w);
    ix->w = NULL;
    ix->cap = 0;
    ix->ok = false;
}

/* Notes node number `node` (offset at, what: see struct ru_resp_index) in ix, whose words
 * are w[0..*cap) as the scan holds them; returns w, moved when it had to grow. */
static inline uint64_t *note(struct ru_resp_index *ix, uint64_t *w, size_t *cap, size_t node,
                             size_t at, uint32_t what)
{
    if (node >= *cap) {
        size_t n = *cap ? *cap : 1024;
        while (n <= node)
            n *= 2;
        w = ix->w = ru_xrealloc(ix->w, n * sizeof(*w));
        *cap = ix->cap = n;
    }
    w[node] = (uint64_t)what << 32 | (uint32_t)at;
    return w;
}

/* The scan; rec says whether to note nodes in ix (a constant in each caller, so that the
 * plain scan carries none of it). */
static inline ssize_t scan(struct ru_resp_scan *sc, struct ru_resp_index *ix, bool rec,
                           const char *buf, size_t len, char *err, size_t errlen)
{
    /* locals, not sc->: stores through sc could alias buf and force reloads */
    size_t pos = sc->pos, nodes = sc->nodes, elems = sc->elems;
    int depth = sc->depth;
    long long left[RU_RESP_MAX_DEPTH + 1];
    memcpy(left, sc->left, sizeof(left));
    uint64_t *w = NULL;
    size_t wcap = 0;
    if (rec) {
        if (pos == 0 && nodes == 0) { /* a new reply */
            if (ix->cap > RU_RESP_IX_KEEP)
                ru_resp_index_free(ix);
            ix->ok = true;
        }
        if (len > UINT32_MAX) /* offsets are noted in 32 bits */
            ix->ok = false;
        rec = ix->ok;
        w = ix->w;
        wcap = ix->cap;
    }
    ssize_t done = 0;
    for (;;) {
        if (pos >= len)
            break;
        char t = buf[pos];
        long long v = 0;
        ssize_t next;
        size_t at = pos;                  /* where the node is noted */
        uint32_t what = RU_RESP_IX_OTHER; /* and as what */
        switch (t) {
        case '+':
        case '-': {
            ssize_t e = line_end(buf, pos + 1, len);
            next = e < 0 ? 0 : e + 2;
            break;
        }
        case ':':
            next = header_num(buf, pos + 1, len, &v);
            if (next < 0)
                return fail(err, errlen, "bad integer");
            break;
        case '$':
            next = (ssize_t)short_bulk(buf, pos, len, &v);
            if (next == 0) {
                next = header_num(buf, pos + 1, len, &v);
                if (next < 0 || (next > 0 && (v < -1 || v > RU_RESP_MAX_BULK)))
                    return fail(err, errlen, "bad bulk length");
            }
            if (next > 0 && v >= 0) {
                if (len - (size_t)next < (size_t)v + 2) {
                    next = 0;
                    break;
                }
                const char *end = buf + next + v;
                if (end[0] != '\r' || end[1] != '\n')
                    return fail(err, errlen, "bulk string not followed by CR LF");
                at = (size_t)next;
                what = (uint32_t)v;
                next += v + 2;
            }
            break;
        case '*':
            if (depth > RU_RESP_MAX_DEPTH)
                return fail(err, errlen, "arrays nested too deep");
            next = header_num(buf, pos + 1, len, &v);
            if (next < 0 || (next > 0 && (v < -1 || v > INT_MAX)))
                return fail(err, errlen, "bad array length");
            if (v >= 0) {
                if (v >= (1LL << 30) && rec)
                    rec = ix->ok = false; /* more than the index can say */
                what = RU_RESP_IX_ARRAY | (uint32_t)v;
            }
            break;
        default:
            return fail(err, errlen, "unknown reply type byte");
        }
        if (next == 0)
            break; /* this item is incomplete: scan it again with more bytes */
        if (rec)
            w = note(ix, w, &wcap, nodes, at, what);
        pos = (size_t)next;
        nodes++;
        if (t == '*' && v > 0) {
            elems += (size_t)v;
            left[depth++] = v;
            continue;
        }
        /* the bulk strings that follow in the same array (a stream entry's fields: most of
         * a reply) in a tighter loop, up to its last element, which the general path takes:
         * the '$' case above for short headers, its checks repeated here (one helper for
         * both cost 3-5 % more instructions per event) */
        while (depth > 0 && left[depth - 1] > 2 && pos < len && buf[pos] == '$') {
            long long b;
            size_t body = short_bulk(buf, pos, len, &b);
            if (body == 0 || len - body < (size_t)b + 2)
                break; /* a long or incomplete string: the general path decides */
            if (buf[body + (size_t)b] != '\r' || buf[body + (size_t)b + 1] != '\n')
                return fail(err, errlen, "bulk string not followed by CR LF");
            if (rec)
                w = note(ix, w, &wcap, nodes, body, (uint32_t)b);
            pos = body + (size_t)b + 2;
            nodes++;
            left[depth - 1]--;
        }
        /* one item is complete, and with it each array whose last element it was */
        while (depth > 0 && --left[depth - 1] == 0)
            depth--;
        if (depth == 0) {
            done = (ssize_t)pos;
            break;
        }
    }
    sc->pos = pos;
    sc->nodes = nodes;
    sc->elems = elems;
    sc->depth = depth;
    memcpy(sc->left, left, sizeof(left));
    return done;
}

ssize_t ru_resp_scan(struct ru_resp_scan *sc, const char *buf, size_t len, char *err, size_t errlen)
{
    return scan(sc, NULL, false, buf, len, err, errlen);
}

ssize_t ru_resp_scan_indexed(struct ru_resp_scan *sc, struct ru_resp_index *ix, const char *buf,
                             size_t len, char *err, size_t errlen)
{
    return scan(sc, ix, true, buf, len, err, errlen);
}

/* The number of a header line at buf[pos] (just after its type byte; checked by the scan)
 * in *out; returns the index just past its CR LF. */
static inline size_t line_num(const char *buf, size_t pos, long long *out)
{
    const char *p = buf + pos;
    bool neg = *p == '-';
    p += neg;
    unsigned long long u = 0;
    while (*p != '\r')
        u = u * 10 + (unsigned)(*p++ - '0');
    *out = neg ? (u == 0 ? 0 : -(long long)(u - 1) - 1) : (long long)u;
    return (size_t)(p - buf) + 2;
}

/* Whether the item about to be read, inside depth open arrays with left[k] elements still
 * to come in each (this item included), is the last thing in all of them. */
static inline bool ends_all(const long long *left, int depth)
{
    for (int k = 0; k < depth; k++)
        if (left[k] != 1)
            return false;
    return true;
}

/* Walks the complete (scanned) item at buf[pos], within buf[0..n), adding its nodes and
 * element pointers to *nodes and *elems; returns the index just past it. With lazy_at > 0
 * it stops at the first non-empty array inside lazy_at - 1 arrays: when that array ends the
 * item it is counted as one node without elements and the index just past its header is
 * returned (below the item's end, since elements follow); when it does not, 0 (no lazy
 * build). */
static size_t walk(const char *buf, size_t pos, size_t n, int lazy_at, size_t *nodes, size_t *elems)
{
    long long left[RU_RESP_MAX_DEPTH + 1];
    int depth = 0;
    for (;;) {
        char t = buf[pos];
        long long v = 0;
        (*nodes)++;
        if (t == '+' || t == '-') {
            pos = (size_t)line_end(buf, pos + 1, n) + 2;
        } else {
            pos = line_num(buf, pos + 1, &v);
            if (t == '$' && v >= 0)
                pos += (size_t)v + 2;
        }
        if (t == '*' && v > 0) {
            if (depth == lazy_at - 1) {
                return ends_all(left, depth) ? pos : 0;
            }
            *elems += (size_t)v;
            left[depth++] = v;
            continue;
        }
        while (depth > 0 && --left[depth - 1] == 0)
            depth--;
        if (depth == 0)
            return pos;
    }
}

/* Builds the complete (scanned) item at buf[*pos], within buf[0..n), from nnodes nodes and
 * nelems element pointers (as walk counts them) taken from arena; leaves an array inside
 * lazy_at - 1 arrays unbuilt as walk does (lazy_at 0: none). Sets *pos past the item. */
static redisReply *build(char *buf, size_t *pos_io, size_t n, size_t nnodes, size_t nelems,
                         struct ru_reply_arena *arena, int lazy_at)
{
    char *mem =
        ru_reply_arena_alloc(arena, nnodes * sizeof(redisReply) + nelems * sizeof(redisReply *));
    redisReply *nodes = (redisReply *)(void *)mem, *root = nodes;
    redisReply **elems = (redisReply **)(void *)(mem + nnodes * sizeof(redisReply));
    /* where the next element of each open array goes, and how many are still to come */
    redisReply **slot[RU_RESP_MAX_DEPTH + 1];
    long long left[RU_RESP_MAX_DEPTH + 1];
    int depth = 0;
    size_t pos = *pos_io;
    for (;;) {
        redisReply *r = nodes++;
        char t = buf[pos];
        long long v = 0;
        if (t == '+' || t == '-') {
            size_t e = (size_t)line_end(buf, pos + 1, n);
            *r = (redisReply){.type = t == '+' ? REDIS_REPLY_STATUS : REDIS_REPLY_ERROR,
                              .str = buf + pos + 1,
                              .len = e - pos - 1};
            buf[e] = '\0';
            pos = e + 2;
        } else {
            pos = line_num(buf, pos + 1, &v);
            if (t == ':') {
                *r = (redisReply){.type = REDIS_REPLY_INTEGER, .integer = v};
            } else if (v < 0) {
                *r = (redisReply){.type = REDIS_REPLY_NIL};
            } else if (t == '$') {
                *r = (redisReply){.type = REDIS_REPLY_STRING, .str = buf + pos, .len = (size_t)v};
                pos += (size_t)v;
                buf[pos] = '\0';
                pos += 2;
            } else {
                *r = (redisReply){.type = REDIS_REPLY_ARRAY, .elements = (size_t)v};
            }
        }
        if (depth > 0)
            *slot[depth - 1]++ = r;
        if (t == '*' && v > 0) {
            if (depth == lazy_at - 1) { /* walk found that it ends the item */
                *r = (redisReply){.type = RU_RESP_LAZY,
                                  .elements = (size_t)v,
                                  .integer = (long long)(r - root) + 1, /* its first item */
                                  .str = buf + pos,
                                  .len = n - pos};
                *pos_io = n;
                return root;
            }
            r->element = elems;
            elems += v;
            slot[depth] = r->element;
            left[depth++] = v;
            continue;
        }
        /* r completes each array whose last element it is */
        while (depth > 0 && --left[depth - 1] == 0)
            depth--;
        if (depth == 0) {
            *pos_io = pos;
            return root;
        }
    }
}

redisReply *ru_resp_build(char *buf, size_t n, const struct ru_resp_scan *sc,
                          struct ru_reply_arena *arena)
{
    size_t pos = 0;
    return build(buf, &pos, n, sc->nodes, sc->elems, arena, 0);
}

redisReply *ru_resp_build_lazy(char *buf, size_t n, const struct ru_resp_scan *sc,
                               struct ru_reply_arena *arena, int lazy_at)
{
    size_t nodes = 0, elems = 0, pos = 0;
    size_t stop = lazy_at > 0 ? walk(buf, 0, n, lazy_at, &nodes, &elems) : 0;
    if (stop > 0 && stop < n) /* stopped at a list that ends the reply */
        return build(buf, &pos, n, nodes, elems, arena, lazy_at);
    return build(buf, &pos, n, sc->nodes, sc->elems, arena, 0);
}

redisReply *ru_resp_build_item(char *buf, size_t *pos, size_t n, struct ru_reply_arena *arena)
{
    size_t nodes = 0, elems = 0;
    walk(buf, *pos, n, 0, &nodes, &elems);
    return build(buf, pos, n, nodes, elems, arena, 0);
}

/* The non-nil bulk string at buf[pos] of a scanned reply in *out (not NUL-terminated: the
 * byte after it is not written, which would cost a store into each line of the buffer);
 * returns the index just past it, or 0 when the item there is anything else. */
static inline size_t bulk_at(const char *buf, size_t pos, size_t n, struct ru_str *out)
{
    if (buf[pos] != '$')
        return 0;
    long long v;
    size_t p = short_bulk(buf, pos, n, &v);
    if (p == 0) {
        p = line_num(buf, pos + 1, &v);
        if (v < 0)
            return 0;
    }
    out->p = buf + p;
    out->len = (size_t)v;
    return p + (size_t)v + 2;
}

int ru_resp_entry(const char *buf, size_t *pos_io, size_t n, struct ru_str *id,
                  struct ru_field *fields, size_t cap, long long *nfields)
{
    size_t pos = *pos_io;
    long long v;
    if (buf[pos] != '*')
        return 0;
    pos = line_num(buf, pos + 1, &v);
    if (v != 2 || (pos = bulk_at(buf, pos, n, id)) == 0 || buf[pos] != '*')
        return 0;
    pos = line_num(buf, pos + 1, &v);
    if (v <= 0) {
        *nfields = -1;
        *pos_io = pos;
        return 1;
    }
    if ((v & 1) != 0 || (size_t)v / 2 > cap)
        return 0;
    for (size_t k = 0; k < (size_t)v / 2; k++) {
        if ((pos = bulk_at(buf, pos, n, &fields[k].name)) == 0 ||
            (pos = bulk_at(buf, pos, n, &fields[k].value)) == 0)
            return 0;
    }
    *nfields = v / 2;
    *pos_io = pos;
    return 1;
}

static inline size_t ix_off(uint64_t w)
{
    return (uint32_t)w;
}

static inline uint32_t ix_what(uint64_t w)
{
    return (uint32_t)(w >> 32);
}

/* Where the node of word w starts: its type byte. A bulk string's word gives its body;
 * its header before it is "$", the length's digits (the scan takes no leading zeros) and
 * CR LF. */
static inline size_t ix_start(uint64_t w)
{
    uint32_t what = ix_what(w);
    if (what >= RU_RESP_IX_ARRAY)
        return ix_off(w);
    size_t digits = 1;
    for (uint32_t v = what; v >= 10; v /= 10)
        digits++;
    return ix_off(w) - 3 - digits;
}

const char *ru_resp_index_base(const struct ru_resp_index *ix, const redisReply *list)
{
    return list->str - ix_start(ix->w[list->integer]);
}

int ru_resp_entry_indexed(const struct ru_resp_index *ix, const char *base, size_t *node,
                          struct ru_str *id, struct ru_field *fields, size_t cap,
                          long long *nfields)
{
    const uint64_t *w = ix->w + *node;
    /* [id, fields]: an array of two, a bulk string */
    if (ix_what(w[0]) != (RU_RESP_IX_ARRAY | 2) || ix_what(w[1]) >= RU_RESP_IX_ARRAY)
        return 0;
    id->p = base + ix_off(w[1]);
    id->len = ix_what(w[1]);
    uint32_t what = ix_what(w[2]);
    if (what == RU_RESP_IX_ARRAY || (what == RU_RESP_IX_OTHER && base[ix_off(w[2])] == '*')) {
        *nfields = -1; /* no fields, or a nil array: deleted while pending */
        *node += 3;
        return 1;
    }
    if ((what & RU_RESP_IX_OTHER) != RU_RESP_IX_ARRAY)
        return 0;
    size_t v = what & ~RU_RESP_IX_OTHER;
    if ((v & 1) != 0 || v / 2 > cap)
        return 0;
    const uint64_t *f = w + 3;
    for (size_t k = 0; k < v / 2; k++) {
        uint64_t a = f[2 * k], b = f[2 * k + 1];
        if (ix_what(a) >= RU_RESP_IX_ARRAY || ix_what(b) >= RU_RESP_IX_ARRAY)
            return 0;
        fields[k].name = (struct ru_str){base + ix_off(a), ix_what(a)};
        fields[k].value = (struct ru_str){base + ix_off(b), ix_what(b)};
    }
    *nfields = (long long)(v / 2);
    *node += 3 + v;
    return 1;
}

size_t ru_resp_index_pos(const struct ru_resp_index *ix, const char *base, const redisReply *list,
                         size_t node)
{
    return (size_t)(base + ix_start(ix->w[node]) - list->str);
}
