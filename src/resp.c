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

redisReply *ru_resp_build(char *buf, size_t n, const struct ru_resp_scan *sc,
                          struct ru_reply_arena *arena)
{
    char *mem = ru_reply_arena_alloc(arena, sc->nodes * sizeof(redisReply) +
                                                sc->elems * sizeof(redisReply *));
    redisReply *nodes = (redisReply *)(void *)mem, *root = nodes;
    redisReply **elems = (redisReply **)(void *)(mem + sc->nodes * sizeof(redisReply));
    /* the arrays being filled, and how many elements each has so far */
    redisReply *open[RU_RESP_MAX_DEPTH + 1];
    size_t fill[RU_RESP_MAX_DEPTH + 1];
    int depth = 0;
    size_t pos = 0;
    for (;;) {
        /* the item at pos was checked by the scan: well formed and complete within n */
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
            const char *p = buf + pos + 1; /* digits up to CR LF */
            bool neg = *p == '-';
            p += neg;
            unsigned long long u = 0;
            while (*p != '\r')
                u = u * 10 + (unsigned)(*p++ - '0');
            v = neg ? (u == 0 ? 0 : -(long long)(u - 1) - 1) : (long long)u;
            pos = (size_t)(p - buf) + 2;
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
            open[depth - 1]->element[fill[depth - 1]++] = r;
        if (t == '*' && v > 0) {
            r->element = elems;
            elems += v;
            open[depth] = r;
            fill[depth++] = 0;
            continue;
        }
        /* r completes each array whose last element it is */
        while (depth > 0 && fill[depth - 1] == open[depth - 1]->elements)
            depth--;
        if (depth == 0)
            return root;
    }
}
