#include "rollupd/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void oom(size_t n)
{
    fprintf(stderr, "<2>rollupd: out of memory allocating %zu bytes\n", n);
    abort();
}

void *ru_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *ru_xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (p == NULL)
        oom(nmemb * size);
    return p;
}

void *ru_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

char *ru_xstrdup(const char *s)
{
    return ru_xstrndup(s, strlen(s));
}

char *ru_xstrndup(const char *s, size_t n)
{
    char *p = ru_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void ru_buf_reserve(struct ru_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->p = ru_xrealloc(b->p, cap);
    b->cap = cap;
}

void ru_buf_append(struct ru_buf *b, const void *data, size_t n)
{
    ru_buf_reserve(b, n);
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void ru_buf_putc(struct ru_buf *b, char c)
{
    ru_buf_reserve(b, 1);
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
}

void ru_buf_puts(struct ru_buf *b, const char *s)
{
    ru_buf_append(b, s, strlen(s));
}

void ru_buf_vprintf(struct ru_buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return;
    ru_buf_reserve(b, (size_t)n);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void ru_buf_printf(struct ru_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ru_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void ru_buf_reset(struct ru_buf *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = '\0';
}

void ru_buf_free(struct ru_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void ru_store_be(void *p, uint64_t v, int bytes)
{
    unsigned char *q = p;
    for (int i = bytes - 1; i >= 0; i--) {
        q[i] = (unsigned char)v;
        v >>= 8;
    }
}

void ru_buf_put_be(struct ru_buf *b, uint64_t v, int bytes)
{
    ru_buf_reserve(b, (size_t)bytes);
    ru_store_be(b->p + b->len, v, bytes);
    b->len += (size_t)bytes;
    b->p[b->len] = '\0';
}

uint64_t ru_load_be64(const void *p)
{
    const unsigned char *q = p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | q[i];
    return v;
}

void ru_buf_put_i64(struct ru_buf *b, int64_t v)
{
    char tmp[24];
    int i = (int)sizeof(tmp);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[--i] = '-';
    ru_buf_append(b, tmp + i, sizeof(tmp) - (size_t)i);
}

/* A small multiply-xorshift hash over 8-byte words: fast on short keys and good
 * enough for open addressing with power-of-two tables. */
static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    return x;
}

uint64_t ru_hash(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h = seed ^ (0x9e3779b97f4a7c15ULL * (len + 1));
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = mix64(h ^ w) + 0x9e3779b97f4a7c15ULL;
        p += 8;
        len -= 8;
    }
    uint64_t w = 0;
    if (len)
        memcpy(&w, p, len);
    return mix64(h ^ w ^ ((uint64_t)len << 56));
}

static int parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0)
        return -1;
    while (len > 1 && s[0] == '0') { /* leading zeros do not change the value */
        s++;
        len--;
    }
    if (len > 20)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        uint64_t d = (uint64_t)(s[i] - '0');
        /* 19 digits cannot overflow: only the 20th needs the check */
        if (i == 19 && v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int ru_sid_parse(struct ru_sid *out, const char *s, size_t len)
{
    /* an id Redis generates ("ms-seq", 13 digits of ms) and any other of at most 18 digits
     * each side, in one pass */
    size_t i = 0;
    uint64_t ms, seq = 0;
    if (ru_digits(s, &i, len, &ms) > 0) {
        bool ok = i == len;
        if (!ok && s[i] == '-') {
            i++;
            ok = ru_digits(s, &i, len, &seq) > 0 && i == len;
        }
        if (ok) {
            out->ms = ms;
            out->seq = seq;
            return 0;
        }
    }
    /* anything else: longer numbers (leading zeros, 19 or 20 digits), or not an id */
    const char *dash = memchr(s, '-', len);
    if (dash == NULL) {
        out->seq = 0;
        return parse_u64(s, len, &out->ms);
    }
    if (parse_u64(s, (size_t)(dash - s), &out->ms) < 0)
        return -1;
    return parse_u64(dash + 1, len - (size_t)(dash - s) - 1, &out->seq);
}

/* Two digits per division, written in place: an id's 13-digit milliseconds take 7. */
size_t ru_u64_format(uint64_t v, char *p)
{
    static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930"
                                "31323334353637383940414243444546474849505152535455565758596061"
                                "6263646566676869707172737475767778798081828384858687888990919293"
                                "949596979899";
    size_t len = 1;
    uint64_t top = v;
    for (; top >= 10000; top /= 10000)
        len += 4;
    len += (size_t)(top >= 10) + (top >= 100) + (top >= 1000);
    char *q = p + len;
    while (v >= 100) {
        size_t r = (size_t)(v % 100) * 2;
        v /= 100;
        *--q = pairs[r + 1];
        *--q = pairs[r];
    }
    if (v >= 10) {
        *--q = pairs[v * 2 + 1];
        *--q = pairs[v * 2];
    } else {
        *--q = (char)('0' + v);
    }
    return len;
}

/* Hot: every acknowledged id is formatted once (no printf). */
size_t ru_sid_format(const struct ru_sid *id, char *buf)
{
    size_t n = ru_u64_format(id->ms, buf);
    buf[n++] = '-';
    n += ru_u64_format(id->seq, buf + n);
    buf[n] = '\0';
    return n;
}

int ru_sid_cmp(const struct ru_sid *a, const struct ru_sid *b)
{
    if (a->ms != b->ms)
        return a->ms < b->ms ? -1 : 1;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return 0;
}

bool ru_sid_is_zero(const struct ru_sid *id)
{
    return id->ms == 0 && id->seq == 0;
}

int64_t ru_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t ru_mono_ms(void)
{
    return ru_mono_us() / 1000;
}

int64_t ru_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double ru_wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int ru_parse_i64(const char *s, size_t len, int64_t *out)
{
    bool neg = false;
    size_t i = 0;
    if (len > 0 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    uint64_t u;
    if (parse_u64(s + i, len - i, &u) < 0)
        return -1;
    if (neg) {
        if (u > (uint64_t)INT64_MAX + 1)
            return -1;
        *out = u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
    } else {
        if (u > (uint64_t)INT64_MAX)
            return -1;
        *out = (int64_t)u;
    }
    return 0;
}

char *ru_strlcpy(char *dst, const char *src, size_t dst_len)
{
    if (dst_len == 0)
        return dst;
    size_t n = strlen(src);
    if (n >= dst_len)
        n = dst_len - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return dst;
}

int ru_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int ru_backoff_next(int *step_ms, int min_ms, int max_ms)
{
    int b = *step_ms > 0 ? *step_ms : min_ms;
    int wait = b / 2 + (int)(random() % (b / 2 + 1));
    *step_ms = b > max_ms / 2 ? max_ms : b * 2;
    return wait;
}
