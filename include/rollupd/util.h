/* util: allocation that never returns NULL, growable byte buffers, hashing,
 * Redis stream ids and clocks. Pure; shared by every module. */
#ifndef ROLLUPD_UTIL_H
#define ROLLUPD_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* 64-bit hash of a byte string; seedable so keys can chain fields. */
uint64_t ru_hash(const void *data, size_t len, uint64_t seed);

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
