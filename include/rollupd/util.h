/* util: allocation that never returns NULL, growable byte buffers, hashing,
 * Redis stream ids and clocks. Pure; shared by every module. */
#ifndef ROLLUPD_UTIL_H
#define ROLLUPD_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define RU_MUSTCHECK      __attribute__((warn_unused_result))
#define RU_PRINTF(fi, va) __attribute__((format(printf, fi, va)))
#define RU_UNUSED(x)      ((void)(x))
#define RU_ARRAY_LEN(a)   (sizeof(a) / sizeof((a)[0]))

/* Allocation: abort with a message on out-of-memory (the only exit in core code). */
void *ru_xmalloc(size_t n);
void *ru_xcalloc(size_t nmemb, size_t size);
void *ru_xrealloc(void *p, size_t n);
char *ru_xstrdup(const char *s);
char *ru_xstrndup(const char *s, size_t n);

/* Growable byte buffer. Always NUL-terminated after any append (p[len] == 0)
 * once something was appended. Zero-initialise (RU_BUF_INIT) before use. */
struct ru_buf {
    char *p;
    size_t len;
    size_t cap;
};
#define RU_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }
void ru_buf_reserve(struct ru_buf *b, size_t extra);
void ru_buf_append(struct ru_buf *b, const void *data, size_t n);
void ru_buf_putc(struct ru_buf *b, char c);
void ru_buf_puts(struct ru_buf *b, const char *s);
void ru_buf_printf(struct ru_buf *b, const char *fmt, ...) RU_PRINTF(2, 3);
void ru_buf_vprintf(struct ru_buf *b, const char *fmt, va_list ap) RU_PRINTF(2, 0);
void ru_buf_reset(struct ru_buf *b); /* len = 0, keeps memory */
void ru_buf_free(struct ru_buf *b);
/* Appends a signed decimal integer (no locale, no printf). */
void ru_buf_put_i64(struct ru_buf *b, int64_t v);

/* Network byte order: the low `bytes` (1..8) bytes of v at p, most significant first;
 * the same appended to a buffer; and 8 bytes read back. */
void ru_store_be(void *p, uint64_t v, int bytes);
void ru_buf_put_be(struct ru_buf *b, uint64_t v, int bytes);
uint64_t ru_load_be64(const void *p);

/* 64-bit hash of a byte string; seedable so keys can chain fields. Its values are stable:
 * use it for what outlives the process (the consumer name). */
uint64_t ru_hash(const void *data, size_t len, uint64_t seed);

/* The hash of the in-memory tables (store keys, users, the params cache). A key of several
 * fields is hashed in one pass: start from a seed, feed each field (ru_fhash_bytes: one
 * multiply per 8 bytes, in four lanes above 32 bytes, the field's length folded in), then finish
 * once (ru_fhash_end). About a third of ru_hash's latency per field, which keys of four fields per
 * event pay. Values may change between versions: never store or send them. */
static inline uint64_t ru_fhash_word(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
    return h << 31 | h >> 33; /* the well-mixed high bits down, for the next multiply */
}

static inline uint64_t ru_fhash_bytes(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t n = len;
    uint64_t w;
    if (n > 32) {
        /* long texts (query params): four independent lanes, so the multiplies overlap */
        uint64_t l1 = h ^ 0x6a09e667f3bcc908ULL, l2 = h ^ 0xbb67ae8584caa73bULL,
                 l3 = h ^ 0x3c6ef372fe94f82bULL, w2, w3, w4;
        for (; n > 32; p += 32, n -= 32) {
            memcpy(&w, p, 8);
            memcpy(&w2, p + 8, 8);
            memcpy(&w3, p + 16, 8);
            memcpy(&w4, p + 24, 8);
            h = ru_fhash_word(h, w);
            l1 = ru_fhash_word(l1, w2);
            l2 = ru_fhash_word(l2, w3);
            l3 = ru_fhash_word(l3, w4);
        }
        h = ru_fhash_word(ru_fhash_word(ru_fhash_word(h, l1), l2), l3);
    }
    for (; n > 8; p += 8, n -= 8) {
        memcpy(&w, p, 8);
        h = ru_fhash_word(h, w);
    }
    /* the last 1..8 bytes: two 4-byte loads, overlapping below 8; three bytes below 4 */
    if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + n - 4, 4);
        w = (uint64_t)a << 32 | b;
    } else if (n > 0) {
        w = (uint64_t)p[0] << 16 | (uint64_t)p[n >> 1] << 8 | p[n - 1];
    } else {
        w = 0;
    }
    /* the length as a mask spread over all 64 bits (a plain sum would let neighbouring
     * lengths cancel the tail's low bits), never zero, so an empty field counts too */
    return ru_fhash_word(h ^ (len + 1) * 0x2545f4914f6cdd1dULL, w);
}

static inline uint64_t ru_fhash_end(uint64_t h)
{
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ULL;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ULL;
    return h ^ h >> 32;
}

/* One text hashed alone: ru_hash's shape, ru_fhash's speed (the same caveat on values). */
static inline uint64_t ru_fhash(const void *data, size_t len, uint64_t seed)
{
    return ru_fhash_end(ru_fhash_bytes(seed, data, len));
}

/* The value of the 8 decimal digits at s in *out, or false (*out untouched) when any of
 * them is not a digit: ru_digits8 tests and converts all eight a word at a time on a
 * little-endian machine, ru_digits8_bytes (elsewhere) one by one. */
static inline bool ru_digits8_bytes(const char *s, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 8; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';
        if (d > 9)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static inline bool ru_digits8(const char *s, uint32_t *out)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t w;
    memcpy(&w, s, 8);
    /* each byte 0x30..0x39: its high nibble 3, and adding 6 leaves it 3 */
    const uint64_t hi = 0xf0f0f0f0f0f0f0f0ULL;
    if (((w & hi) | (((w + 0x0606060606060606ULL) & hi) >> 4)) != 0x3333333333333333ULL)
        return false;
    w -= 0x3030303030303030ULL; /* digits d0..d7, d0 (the first) in the lowest byte */
    w = w * 10 + (w >> 8);      /* byte 2k: 10 d2k + d2k+1 */
    const uint64_t mask = 0x000000ff000000ffULL;
    uint64_t pairs02 = (w & mask) * (100 + (1000000ULL << 32)); /* pairs 0 and 2, weighted */
    uint64_t pairs13 = ((w >> 16) & mask) * (1 + (10000ULL << 32));
    *out = (uint32_t)((pairs02 + pairs13) >> 32);
    return true;
#else
    return ru_digits8_bytes(s, out);
#endif
}

/* The run of decimal digits at s[*i..), at most 18 of them (too few to overflow) and not
 * past len, in *v (eight at a time where it can); sets *i past them and returns how many
 * there were. Ids, timestamps and integer fields are read with it. */
static inline size_t ru_digits(const char *s, size_t *i, size_t len, uint64_t *v)
{
    size_t start = *i, j = start, end = len - start > 18 ? start + 18 : len;
    uint64_t x = 0;
    uint32_t v8;
    if (end - j >= 8 && ru_digits8(s + j, &v8)) {
        x = v8;
        j += 8;
    }
    for (unsigned d; j < end && (d = (unsigned)(unsigned char)s[j] - '0') <= 9; j++)
        x = x * 10 + d;
    *i = j;
    *v = x;
    return j - start;
}

/* A Redis stream entry id "ms-seq". */
struct ru_sid {
    uint64_t ms;
    uint64_t seq;
};
#define RU_SID_STRLEN 44 /* "18446744073709551615-18446744073709551615" + NUL, rounded */
/* Parses "ms-seq" (or "ms", seq = 0). Returns 0, or -1 when s is not a stream id. */
int ru_sid_parse(struct ru_sid *out, const char *s, size_t len) RU_MUSTCHECK;
/* Writes "ms-seq" into buf (at least RU_SID_STRLEN bytes); returns its length. */
size_t ru_sid_format(const struct ru_sid *id, char *buf);
/* Writes v in decimal into buf (at least 20 bytes, no NUL); returns its length. */
size_t ru_u64_format(uint64_t v, char *buf);
int ru_sid_cmp(const struct ru_sid *a, const struct ru_sid *b);
bool ru_sid_is_zero(const struct ru_sid *id);

/* Clocks: monotonic milliseconds, and wall-clock time. */
int64_t ru_mono_ms(void);

/* One reconnect backoff for Redis and PostgreSQL alike: the wait before the next attempt
 * after a failure, drawn with full jitter from [step/2, step] (so instances restarted
 * together do not retry in step), where step is *step_ms (0: no failure yet, min_ms);
 * then doubles *step_ms, at most max_ms. A success sets *step_ms back to 0. */
int ru_backoff_next(int *step_ms, int min_ms, int max_ms);
int64_t ru_mono_us(void);
int64_t ru_wall_ms(void);
double ru_wall_s(void);

/* Strict decimal integer parse of exactly [s, s+len): optional sign, digits only.
 * Returns 0 and the value, or -1 (empty, junk, overflow). */
int ru_parse_i64(const char *s, size_t len, int64_t *out) RU_MUSTCHECK;

/* The value of a hex digit (either case), or -1 for any other character. */
int ru_hex_digit(int c);

/* Copies src into dst (size dst_len, always NUL-terminated); returns dst. */
char *ru_strlcpy(char *dst, const char *src, size_t dst_len);

#endif
