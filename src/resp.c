#include "rollupd/resp.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

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

ssize_t ru_resp_scan(struct ru_resp_scan *sc, const char *buf, size_t len, char *err, size_t errlen)
{
    /* locals, not sc->: stores through sc could alias buf and force reloads */
    size_t pos = sc->pos, nodes = sc->nodes, elems = sc->elems;
    int depth = sc->depth;
    long long left[RU_RESP_MAX_DEPTH + 1];
    memcpy(left, sc->left, sizeof(left));
    ssize_t done = 0;
    for (;;) {
        if (pos >= len)
            break;
        char t = buf[pos];
        long long v = 0;
        ssize_t next;
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
            next = header_num(buf, pos + 1, len, &v);
            if (next < 0 || (next > 0 && (v < -1 || v > RU_RESP_MAX_BULK)))
                return fail(err, errlen, "bad bulk length");
            if (next > 0 && v >= 0) {
                if (len - (size_t)next < (size_t)v + 2) {
                    next = 0;
                    break;
                }
                const char *end = buf + next + v;
                if (end[0] != '\r' || end[1] != '\n')
                    return fail(err, errlen, "bulk string not followed by CR LF");
                next += v + 2;
            }
            break;
        case '*':
            if (depth > RU_RESP_MAX_DEPTH)
                return fail(err, errlen, "arrays nested too deep");
            next = header_num(buf, pos + 1, len, &v);
            if (next < 0 || (next > 0 && (v < -1 || v > INT_MAX)))
                return fail(err, errlen, "bad array length");
            break;
        default:
            return fail(err, errlen, "unknown reply type byte");
        }
        if (next == 0)
            break; /* this item is incomplete: scan it again with more bytes */
        pos = (size_t)next;
        nodes++;
        if (t == '*' && v > 0) {
            elems += (size_t)v;
            left[depth++] = v;
            continue;
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

struct builder {
    size_t pos;
    redisReply *nodes;
    redisReply **elems;
};

/* Builds the item at b->pos (scanned: well formed and complete within n). */
static redisReply *build(char *buf, size_t n, struct builder *b)
{
    size_t at = b->pos;
    char t = buf[at];
    redisReply *r = b->nodes++;
    if (t == '+' || t == '-') {
        size_t e = (size_t)line_end(buf, at + 1, n);
        *r = (redisReply){.type = t == '+' ? REDIS_REPLY_STATUS : REDIS_REPLY_ERROR,
                          .str = buf + at + 1,
                          .len = e - at - 1};
        buf[e] = '\0';
        b->pos = e + 2;
        return r;
    }
    /* the header was checked by the scan: digits up to CR LF */
    const char *p = buf + at + 1;
    bool neg = *p == '-';
    p += neg;
    unsigned long long u = 0;
    while (*p != '\r')
        u = u * 10 + (unsigned)(*p++ - '0');
    long long v = neg ? (u == 0 ? 0 : -(long long)(u - 1) - 1) : (long long)u;
    size_t next = (size_t)(p - buf) + 2;
    if (t == ':') {
        *r = (redisReply){.type = REDIS_REPLY_INTEGER, .integer = v};
    } else if (v < 0) {
        *r = (redisReply){.type = REDIS_REPLY_NIL};
    } else if (t == '$') {
        char *str = buf + next;
        *r = (redisReply){.type = REDIS_REPLY_STRING, .str = str, .len = (size_t)v};
        next += (size_t)v + 2;
        str[v] = '\0';
    } else {
        redisReply **el = b->elems;
        *r = (redisReply){.type = REDIS_REPLY_ARRAY, .elements = (size_t)v};
        b->pos = next;
        if (v > 0) {
            r->element = el;
            b->elems = el + v;
            for (size_t i = 0; i < (size_t)v; i++)
                el[i] = build(buf, n, b);
        }
        return r;
    }
    b->pos = next;
    return r;
}

redisReply *ru_resp_build(char *buf, size_t n, const struct ru_resp_scan *sc,
                          struct ru_reply_arena *arena)
{
    char *mem = ru_reply_arena_alloc(arena, sc->nodes * sizeof(redisReply) +
                                                sc->elems * sizeof(redisReply *));
    struct builder b = {0, (redisReply *)(void *)mem,
                        (redisReply **)(void *)(mem + sc->nodes * sizeof(redisReply))};
    return build(buf, n, &b);
}
