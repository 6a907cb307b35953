/* Unit tests for util: buffers, hashing, stream ids, integer parsing, strings, clocks. */
#include <criterion/criterion.h>

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rollupd/util.h"

/* ---- allocation ---- */

Test(util, xalloc)
{
    char *p = ru_xmalloc(0);
    cr_assert_not_null(p);
    free(p);
    unsigned char *z = ru_xcalloc(100, 1);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(z[i], 0);
    z = ru_xrealloc(z, 1000);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(z[i], 0, "realloc lost byte %d", i);
    free(z);
    char *s = ru_xstrdup("hello");
    cr_assert_str_eq(s, "hello");
    free(s);
    s = ru_xstrndup("hello world", 5);
    cr_assert_str_eq(s, "hello");
    free(s);
    s = ru_xstrndup("a\0b", 3);
    cr_assert_eq(memcmp(s, "a\0b\0", 4), 0);
    free(s);
}

/* ---- ru_buf ---- */

Test(util, buf_append)
{
    struct ru_buf b = RU_BUF_INIT;
    ru_buf_append(&b, "abc", 3);
    cr_assert_eq(b.len, 3);
    cr_assert_str_eq(b.p, "abc");
    cr_assert_geq(b.cap, 4);
    ru_buf_append(&b, "", 0);
    cr_assert_eq(b.len, 3);
    cr_assert_str_eq(b.p, "abc");
    ru_buf_putc(&b, 'd');
    ru_buf_puts(&b, "ef");
    cr_assert_eq(b.len, 6);
    cr_assert_str_eq(b.p, "abcdef");
    /* binary data */
    ru_buf_append(&b, "\0x", 2);
    cr_assert_eq(b.len, 8);
    cr_assert_eq(memcmp(b.p, "abcdef\0x\0", 9), 0);
    ru_buf_free(&b);
    cr_assert_null(b.p);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, 0);

    /* an empty append still makes a NUL-terminated string */
    struct ru_buf e = RU_BUF_INIT;
    ru_buf_append(&e, NULL, 0);
    cr_assert_not_null(e.p);
    cr_assert_eq(e.len, 0);
    cr_assert_str_eq(e.p, "");
    ru_buf_free(&e);
}

Test(util, buf_growth)
{
    struct ru_buf b = RU_BUF_INIT;
    for (int i = 0; i < 100000; i++) {
        ru_buf_putc(&b, (char)('a' + i % 26));
        cr_assert_lt(b.len, b.cap);
        cr_assert_eq(b.p[b.len], '\0');
    }
    cr_assert_eq(b.len, 100000);
    for (int i = 0; i < 100000; i++)
        cr_assert_eq(b.p[i], (char)('a' + i % 26), "byte %d", i);
    /* reset keeps the memory */
    size_t cap = b.cap;
    char *p = b.p;
    ru_buf_reset(&b);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, cap);
    cr_assert_eq(b.p, p);
    cr_assert_str_eq(b.p, "");
    ru_buf_puts(&b, "again");
    cr_assert_str_eq(b.p, "again");
    ru_buf_free(&b);

    /* reserve */
    struct ru_buf r = RU_BUF_INIT;
    ru_buf_reserve(&r, 1000);
    cr_assert_geq(r.cap, 1001);
    cr_assert_eq(r.len, 0);
    p = r.p;
    ru_buf_append(&r, "x", 1);
    for (int i = 0; i < 998; i++)
        ru_buf_putc(&r, 'y');
    cr_assert_eq(r.p, p, "reserved space was not enough");
    cr_assert_eq(r.len, 999);
    ru_buf_free(&r);

    /* reset of a never-used buffer */
    struct ru_buf n = RU_BUF_INIT;
    ru_buf_reset(&n);
    cr_assert_eq(n.len, 0);
    ru_buf_free(&n);
}

Test(util, buf_printf)
{
    struct ru_buf b = RU_BUF_INIT;
    ru_buf_printf(&b, "%d-%s", 42, "x");
    cr_assert_eq(b.len, 4);
    cr_assert_str_eq(b.p, "42-x");
    ru_buf_printf(&b, "|%05.1f|%c", 3.14159, 'z');
    cr_assert_str_eq(b.p, "42-x|003.1|z");
    cr_assert_eq(b.len, strlen("42-x|003.1|z"));
    ru_buf_printf(&b, "%s", "");
    cr_assert_eq(b.len, 12);
    /* longer than any initial capacity */
    char big[5000];
    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ru_buf_printf(&b, "<%s>", big);
    cr_assert_eq(b.len, 12 + 2 + 4999);
    cr_assert_eq(b.p[12], '<');
    cr_assert_eq(b.p[13], 'q');
    cr_assert_eq(b.p[12 + 4999], 'q');
    cr_assert_eq(b.p[13 + 4999], '>');
    cr_assert_eq(b.p[b.len], '\0');
    cr_assert_str_eq(b.p + b.len - 3, "qq>");
    ru_buf_free(&b);

    /* an empty printf into a fresh buffer leaves a valid empty string */
    struct ru_buf e = RU_BUF_INIT;
    ru_buf_printf(&e, "%s", "");
    cr_assert_not_null(e.p);
    cr_assert_eq(e.len, 0);
    cr_assert_str_eq(e.p, "");
    ru_buf_free(&e);
}

static void check_i64(int64_t v, const char *want)
{
    struct ru_buf b = RU_BUF_INIT;
    ru_buf_puts(&b, "[");
    ru_buf_put_i64(&b, v);
    ru_buf_puts(&b, "]");
    char w[64];
    snprintf(w, sizeof(w), "[%s]", want);
    cr_assert_str_eq(b.p, w);
    cr_assert_eq(b.len, strlen(w));
    ru_buf_free(&b);
}

Test(util, buf_put_i64)
{
    check_i64(0, "0");
    check_i64(1, "1");
    check_i64(-1, "-1");
    check_i64(9, "9");
    check_i64(10, "10");
    check_i64(-10, "-10");
    check_i64(1234567890, "1234567890");
    check_i64(-987654321, "-987654321");
    check_i64(INT32_MAX, "2147483647");
    check_i64(INT32_MIN, "-2147483648");
    check_i64(INT64_MAX, "9223372036854775807");
    check_i64(INT64_MIN, "-9223372036854775808");
    check_i64(INT64_MIN + 1, "-9223372036854775807");
    /* agrees with printf over a spread of values */
    for (int64_t v = -100000; v <= 100000; v += 7) {
        int64_t x = v * (int64_t)92233720368;
        char w[32];
        snprintf(w, sizeof(w), "%" PRId64, x);
        check_i64(x, w);
    }
}

/* ---- hash ---- */

Test(util, hash_equal_inputs)
{
    const char *s = "/api/v1/content/unified";
    char copy[64];
    strcpy(copy, s);
    cr_assert_eq(ru_hash(s, strlen(s), 0), ru_hash(copy, strlen(copy), 0));
    cr_assert_eq(ru_hash(s, strlen(s), 12345), ru_hash(copy, strlen(copy), 12345));
    /* alignment does not matter */
    char buf[80];
    for (size_t off = 0; off < 8; off++) {
        memcpy(buf + off, s, strlen(s));
        cr_assert_eq(ru_hash(buf + off, strlen(s), 7), ru_hash(s, strlen(s), 7), "offset %zu", off);
    }
    /* only len bytes are read */
    cr_assert_eq(ru_hash("abcdefghijXYZ", 10, 1), ru_hash("abcdefghijQRS", 10, 1));
    cr_assert_eq(ru_hash("", 0, 3), ru_hash("x", 0, 3));
}

Test(util, fhash_equal_inputs_and_bounds)
{
    /* up to 72 bytes: the one-lane path and the four-lane path of long texts */
    const char *s = "/api/v1/content/unified?page=2&sort=created_at&tag=0c8a2f0e&lang=en-GB";
    char buf[96];
    for (size_t len = 0; len <= strlen(s); len++)
        for (size_t off = 0; off < 8; off++) {
            memcpy(buf + off, s, len);
            buf[off + len] = 'Z'; /* a byte past the end is never read */
            cr_assert_eq(ru_fhash(buf + off, len, 7), ru_fhash(s, len, 7), "len %zu offset %zu",
                         len, off);
        }
    cr_assert_neq(ru_fhash(s, 10, 1), ru_fhash(s, 10, 2), "the seed is ignored");
}

/* Every prefix length of one text, and fields split at every point, hash apart: the
 * length is folded into each field. */
Test(util, fhash_lengths_and_field_splits_differ)
{
    const char *s =
        "{\"page\":\"2\",\"sort\":\"created_at\",\"tag\":[\"0c8a2f0e\",\"9b1d\"],\"q\":\"x\"}";
    size_t n = strlen(s);
    uint64_t seen[160];
    size_t k = 0;
    for (size_t len = 0; len <= n; len++)
        seen[k++] = ru_fhash(s, len, 0);
    for (size_t cut = 0; cut <= n; cut++) /* the same bytes as two fields */
        seen[k++] = ru_fhash_end(ru_fhash_bytes(ru_fhash_bytes(0, s, cut), s + cut, n - cut));
    for (size_t i = 0; i < k; i++)
        for (size_t j = i + 1; j < k; j++)
            cr_assert_neq(seen[i], seen[j], "inputs %zu and %zu collide", i, j);
}

/* Short keys that differ in one byte spread over the low bits a table indexes by. */
Test(util, fhash_spreads_low_bits)
{
    enum { N = 4096, CAP = 8192 };
    static unsigned char used[CAP];
    size_t collisions = 0;
    char key[16];
    for (unsigned i = 0; i < N; i++) {
        int len = snprintf(key, sizeof(key), "/r/%u", i);
        size_t j = (size_t)ru_fhash(key, (size_t)len, 0) & (CAP - 1);
        collisions += used[j]++ > 0;
    }
    /* a uniform hash puts 4096 keys into 8192 slots with ~850 on an occupied slot */
    cr_assert_lt(collisions, 1100, "%zu of %d keys landed on an occupied slot", collisions, N);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

Test(util, hash_seeds_and_inputs_differ)
{
    const char *s = "GET";
    cr_assert_neq(ru_hash(s, 3, 0), ru_hash(s, 3, 1));
    cr_assert_neq(ru_hash(s, 3, 0x5bd1e995), ru_hash(s, 3, 0x27d4eb2f));
    cr_assert_neq(ru_hash("", 0, 0), ru_hash("", 0, 1));
    /* length is part of the hash: trailing NUL bytes are not invisible */
    cr_assert_neq(ru_hash("a", 1, 0), ru_hash("a\0", 2, 0));
    cr_assert_neq(ru_hash("", 0, 0), ru_hash("\0", 1, 0));
    cr_assert_neq(ru_hash("abcdefgh", 8, 0), ru_hash("abcdefgh\0", 9, 0));
    cr_assert_neq(ru_hash("GET", 3, 0), ru_hash("GEt", 3, 0));
    cr_assert_neq(ru_hash("abcdefgh1", 9, 0), ru_hash("abcdefgh2", 9, 0));
    cr_assert_neq(ru_hash("1bcdefgh", 8, 0), ru_hash("2bcdefgh", 8, 0));

    /* no 64-bit collisions, and well-spread low bits, over many short keys */
    enum { N = 20000 };
    uint64_t *h = malloc(N * sizeof(*h));
    unsigned buckets[1024] = {0};
    char k[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(k, sizeof(k), "/r/%d", i);
        h[i] = ru_hash(k, (size_t)n, 0);
        buckets[h[i] & 1023]++;
    }
    qsort(h, N, sizeof(*h), cmp_u64);
    for (int i = 1; i < N; i++)
        cr_assert_neq(h[i - 1], h[i], "64-bit collision among %d keys", N);
    for (int i = 0; i < 1024; i++)
        cr_assert_lt(buckets[i], 60, "bucket %d holds %u of %d keys", i, buckets[i], N);
    free(h);
}

/* ---- eight digits a word at a time ---- */

Test(util, digits8)
{
    char s[9];
    uint32_t v, b;
    /* values spread over the whole range, and each digit at each place; the byte-by-byte
     * version (other machines') agrees */
    for (uint32_t x = 0; x < 100000000u; x += 999983u) {
        snprintf(s, sizeof(s), "%08" PRIu32, x);
        cr_assert(ru_digits8(s, &v), "%s", s);
        cr_assert_eq(v, x, "%s", s);
        cr_assert(ru_digits8_bytes(s, &b), "%s", s);
        cr_assert_eq(b, x, "%s", s);
    }
    for (int place = 0; place < 8; place++) {
        for (int d = 0; d <= 9; d++) {
            memcpy(s, "99999999", 9);
            s[place] = (char)('0' + d);
            cr_assert(ru_digits8(s, &v));
            cr_assert_eq(v, (uint32_t)strtoul(s, NULL, 10), "%s", s);
        }
    }
    /* any other byte anywhere: refused, the output untouched */
    for (int place = 0; place < 8; place++) {
        for (int c = 0; c < 256; c++) {
            if (c >= '0' && c <= '9')
                continue;
            memcpy(s, "12345678", 9);
            s[place] = (char)c;
            v = b = 7;
            cr_assert_not(ru_digits8(s, &v), "byte %d = %d", place, c);
            cr_assert_not(ru_digits8_bytes(s, &b), "byte %d = %d", place, c);
            cr_assert(v == 7 && b == 7);
        }
    }
}

/* ---- stream ids ---- */

static struct ru_sid parse_ok(const char *s)
{
    struct ru_sid id = {12345, 6789};
    cr_assert_eq(ru_sid_parse(&id, s, strlen(s)), 0, "refused \"%s\"", s);
    return id;
}

static void parse_bad(const char *s)
{
    struct ru_sid id;
    cr_assert_eq(ru_sid_parse(&id, s, strlen(s)), -1, "accepted \"%s\"", s);
}

Test(util, sid_parse_valid)
{
    struct ru_sid id = parse_ok("1-2");
    cr_assert_eq(id.ms, 1);
    cr_assert_eq(id.seq, 2);
    id = parse_ok("123");
    cr_assert_eq(id.ms, 123);
    cr_assert_eq(id.seq, 0);
    id = parse_ok("0-0");
    cr_assert_eq(id.ms, 0);
    cr_assert_eq(id.seq, 0);
    cr_assert(ru_sid_is_zero(&id));
    id = parse_ok("0");
    cr_assert(ru_sid_is_zero(&id));
    id = parse_ok("1761235223315-0");
    cr_assert_eq(id.ms, 1761235223315ULL);
    cr_assert_eq(id.seq, 0);
    id = parse_ok("18446744073709551615-18446744073709551615");
    cr_assert_eq(id.ms, UINT64_MAX);
    cr_assert_eq(id.seq, UINT64_MAX);
    id = parse_ok("18446744073709551615");
    cr_assert_eq(id.ms, UINT64_MAX);
    cr_assert_eq(id.seq, 0);
    /* only len bytes are read */
    cr_assert_eq(ru_sid_parse(&id, "17-42junk", 5), 0);
    cr_assert_eq(id.ms, 17);
    cr_assert_eq(id.seq, 42);
    cr_assert_eq(ru_sid_parse(&id, "99-1", 2), 0);
    cr_assert_eq(id.ms, 99);
    cr_assert_eq(id.seq, 0);
}

Test(util, sid_parse_refusals)
{
    parse_bad("");
    parse_bad("-");
    parse_bad("-1");
    parse_bad("1-");
    parse_bad("a-1");
    parse_bad("1-a");
    parse_bad("1-2-3");
    parse_bad("1--2");
    parse_bad(" 1-2");
    parse_bad("1-2 ");
    parse_bad("+1-2");
    parse_bad("1-+2");
    parse_bad("1.5-2");
    parse_bad("*");
    parse_bad("0x10-0");
    parse_bad("18446744073709551616-0");
    parse_bad("0-18446744073709551616");
    parse_bad("99999999999999999999-0");
    parse_bad("184467440737095516150-0");
    struct ru_sid id;
    cr_assert_eq(ru_sid_parse(&id, "1-2", 0), -1);
    cr_assert_eq(ru_sid_parse(&id, "1\0-2", 4), -1);
}

static void check_format(uint64_t ms, uint64_t seq, const char *want)
{
    struct ru_sid id = {ms, seq};
    char buf[RU_SID_STRLEN];
    memset(buf, 'x', sizeof(buf));
    size_t n = ru_sid_format(&id, buf);
    cr_assert_str_eq(buf, want);
    cr_assert_eq(n, strlen(want));
    struct ru_sid back;
    cr_assert_eq(ru_sid_parse(&back, buf, n), 0);
    cr_assert_eq(ru_sid_cmp(&back, &id), 0, "round trip of %s", want);
}

Test(util, sid_format)
{
    check_format(0, 0, "0-0");
    check_format(1, 2, "1-2");
    check_format(1761235223315ULL, 7, "1761235223315-7");
    check_format(UINT64_MAX, UINT64_MAX, "18446744073709551615-18446744073709551615");
    check_format(UINT64_MAX, 0, "18446744073709551615-0");
    cr_assert_leq(strlen("18446744073709551615-18446744073709551615") + 1, RU_SID_STRLEN);
}

/* Every length of number, on both sides of each power of ten: the formatter counts digits
 * before writing them, and the parser reads up to 18 digits in one pass and longer numbers
 * (or leading zeros beyond 18 characters) another way. */
Test(util, sid_every_length)
{
    uint64_t p = 1;
    for (int digits = 1; digits <= 20; digits++) {
        uint64_t vals[] = {p, p + 1, digits < 20 ? p * 10 - 1 : UINT64_MAX};
        for (size_t k = 0; k < RU_ARRAY_LEN(vals); k++) {
            struct ru_sid id = {vals[k], vals[RU_ARRAY_LEN(vals) - 1 - k]}, back;
            char buf[RU_SID_STRLEN], want[RU_SID_STRLEN];
            snprintf(want, sizeof(want), "%" PRIu64 "-%" PRIu64, id.ms, id.seq);
            size_t n = ru_sid_format(&id, buf);
            cr_assert_str_eq(buf, want);
            cr_assert_eq(n, strlen(want));
            cr_assert_eq(ru_sid_parse(&back, buf, n), 0, "refused %s", buf);
            cr_assert_eq(ru_sid_cmp(&back, &id), 0, "round trip of %s", want);
        }
        if (digits < 20)
            p *= 10;
    }
    static const struct {
        const char *text;
        uint64_t ms, seq;
    } longer[] = {
        {"0001-0002", 1, 2},
        {"0000000000000000000000007-00000000000000000000000000008", 7, 8},
        {"999999999999999999-999999999999999999", 999999999999999999ULL,
         999999999999999999ULL},                              /* 18 digits each */
        {"1000000000000000000-1", 1000000000000000000ULL, 1}, /* 19 */
    };
    for (size_t i = 0; i < RU_ARRAY_LEN(longer); i++) {
        struct ru_sid id = parse_ok(longer[i].text);
        cr_assert(id.ms == longer[i].ms && id.seq == longer[i].seq, "%s", longer[i].text);
    }
    parse_bad("1-0000000000000000000x");
    parse_bad("1234567890123456789x-0");
}

Test(util, sid_cmp)
{
    struct ru_sid a = {1, 2}, b = {2, 0}, c = {1, 3}, d = {1, 2}, z = {0, 0};
    struct ru_sid m = {UINT64_MAX, UINT64_MAX}, m1 = {UINT64_MAX, UINT64_MAX - 1};
    struct ru_sid big_seq = {1, UINT64_MAX};
    cr_assert_eq(ru_sid_cmp(&a, &b), -1);
    cr_assert_eq(ru_sid_cmp(&b, &a), 1);
    cr_assert_eq(ru_sid_cmp(&a, &c), -1);
    cr_assert_eq(ru_sid_cmp(&c, &a), 1);
    cr_assert_eq(ru_sid_cmp(&a, &d), 0);
    cr_assert_eq(ru_sid_cmp(&z, &a), -1);
    cr_assert_eq(ru_sid_cmp(&m1, &m), -1);
    cr_assert_eq(ru_sid_cmp(&m, &m1), 1);
    cr_assert_eq(ru_sid_cmp(&m, &m), 0);
    /* ms first: a huge sequence never outweighs a larger ms */
    cr_assert_eq(ru_sid_cmp(&big_seq, &b), -1);
    cr_assert_eq(ru_sid_cmp(&b, &big_seq), 1);
    cr_assert(ru_sid_is_zero(&z));
    cr_assert_not(ru_sid_is_zero(&a));
    struct ru_sid s1 = {0, 1}, m0 = {1, 0};
    cr_assert_not(ru_sid_is_zero(&s1));
    cr_assert_not(ru_sid_is_zero(&m0));
}

/* ---- ru_parse_i64 ---- */

static int64_t i64_ok(const char *s)
{
    int64_t v = 0x5a5a5a5a;
    cr_assert_eq(ru_parse_i64(s, strlen(s), &v), 0, "refused \"%s\"", s);
    return v;
}

static void i64_bad(const char *s)
{
    int64_t v = 0x5a5a5a5a;
    cr_assert_eq(ru_parse_i64(s, strlen(s), &v), -1, "accepted \"%s\" as %" PRId64, s, v);
}

Test(util, parse_i64_valid)
{
    cr_assert_eq(i64_ok("0"), 0);
    cr_assert_eq(i64_ok("-0"), 0);
    cr_assert_eq(i64_ok("+0"), 0);
    cr_assert_eq(i64_ok("7"), 7);
    cr_assert_eq(i64_ok("+7"), 7);
    cr_assert_eq(i64_ok("-7"), -7);
    cr_assert_eq(i64_ok("007"), 7);
    cr_assert_eq(i64_ok("-007"), -7);
    cr_assert_eq(i64_ok("111"), 111);
    cr_assert_eq(i64_ok("2147483648"), 2147483648LL);
    cr_assert_eq(i64_ok("-2147483649"), -2147483649LL);
    cr_assert_eq(i64_ok("9223372036854775807"), INT64_MAX);
    cr_assert_eq(i64_ok("+9223372036854775807"), INT64_MAX);
    cr_assert_eq(i64_ok("-9223372036854775807"), -INT64_MAX);
    cr_assert_eq(i64_ok("-9223372036854775808"), INT64_MIN);
    int64_t v;
    cr_assert_eq(ru_parse_i64("12345", 3, &v), 0);
    cr_assert_eq(v, 123);
    cr_assert_eq(ru_parse_i64("-5x", 2, &v), 0);
    cr_assert_eq(v, -5);
}

Test(util, parse_i64_refusals)
{
    i64_bad("");
    i64_bad("-");
    i64_bad("+");
    i64_bad("--1");
    i64_bad("+-1");
    i64_bad("-+1");
    i64_bad(" 1");
    i64_bad("1 ");
    i64_bad("1a");
    i64_bad("a1");
    i64_bad("1.0");
    i64_bad("1e3");
    i64_bad("0x10");
    i64_bad("1,000");
    i64_bad("9223372036854775808");
    i64_bad("+9223372036854775808");
    i64_bad("-9223372036854775809");
    i64_bad("18446744073709551615");
    i64_bad("18446744073709551616");
    i64_bad("-18446744073709551616");
    i64_bad("99999999999999999999");
    i64_bad("999999999999999999999999");
    int64_t v = 77;
    cr_assert_eq(ru_parse_i64("1\0"
                              "2",
                              3, &v),
                 -1);
    cr_assert_eq(ru_parse_i64("5", 0, &v), -1);
    cr_assert_eq(v, 77, "a refusal changed the output");
}

/* ---- strings ---- */

Test(util, strlcpy)
{
    char buf[8];
    memset(buf, 'x', sizeof(buf));
    cr_assert_eq(ru_strlcpy(buf, "abc", sizeof(buf)), buf);
    cr_assert_str_eq(buf, "abc");
    ru_strlcpy(buf, "1234567", sizeof(buf)); /* exactly fits */
    cr_assert_str_eq(buf, "1234567");
    ru_strlcpy(buf, "12345678", sizeof(buf)); /* one too many */
    cr_assert_str_eq(buf, "1234567");
    ru_strlcpy(buf, "a much longer string than eight", sizeof(buf));
    cr_assert_str_eq(buf, "a much ");
    cr_assert_eq(buf[7], '\0');
    ru_strlcpy(buf, "", sizeof(buf));
    cr_assert_str_eq(buf, "");
    char one[1] = {'z'};
    ru_strlcpy(one, "abc", 1);
    cr_assert_eq(one[0], '\0');
    char none[2] = {'q', 'r'};
    cr_assert_eq(ru_strlcpy(none, "abc", 0), none);
    cr_assert_eq(none[0], 'q', "dst_len 0 wrote a byte");
    cr_assert_eq(none[1], 'r');
    /* no write past dst_len */
    char guard[12];
    memset(guard, '#', sizeof(guard));
    ru_strlcpy(guard, "0123456789", 4);
    cr_assert_str_eq(guard, "012");
    for (size_t i = 4; i < sizeof(guard); i++)
        cr_assert_eq(guard[i], '#', "byte %zu overwritten", i);
}

/* ---- clocks ---- */

Test(util, clocks)
{
    int64_t a = ru_mono_us();
    int64_t ms = ru_mono_ms();
    int64_t b = ru_mono_us();
    cr_assert_leq(a, b);
    cr_assert(ms >= a / 1000 && ms <= b / 1000,
              "mono ms %" PRId64 " outside [%" PRId64 ", %" PRId64 "]", ms, a / 1000, b / 1000);
    struct timespec sl = {0, 20 * 1000000L};
    nanosleep(&sl, NULL);
    int64_t c = ru_mono_us();
    cr_assert_geq(c - b, 19000, "slept 20 ms, monotonic clock moved %" PRId64 " us", c - b);
    time_t now = time(NULL);
    int64_t wall = ru_wall_ms();
    cr_assert(wall / 1000 >= now - 2 && wall / 1000 <= now + 2, "wall ms %" PRId64, wall);
    double ws = ru_wall_s();
    cr_assert(ws >= (double)now - 2 && ws <= (double)now + 2, "wall s %f", ws);
}

Test(util, hex_digit)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        cr_assert_eq(ru_hex_digit(digits[i]), i);
        cr_assert_eq(ru_hex_digit(toupper((unsigned char)digits[i])), i);
    }
    cr_assert_eq(ru_hex_digit('g'), -1);
    cr_assert_eq(ru_hex_digit('/'), -1);
    cr_assert_eq(ru_hex_digit(0), -1);
}

Test(util, backoff)
{
    int step = 0;
    int want[] = {100,  200,  400,  800,
                  1600, 3200, 3200, 3200}; /* the step each wait is drawn from */
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        for (int k = 0; k < 50; k++) { /* the jitter: every draw in [step/2, step] */
            int s = step;
            int w = ru_backoff_next(&s, 100, 3200);
            cr_assert(w >= want[i] / 2 && w <= want[i], "wait %d outside [%d, %d]", w, want[i] / 2,
                      want[i]);
        }
        ru_backoff_next(&step, 100, 3200);
        cr_assert_eq(step, want[i] * 2 > 3200 ? 3200 : want[i] * 2);
    }
    step = 0; /* a success starts again from the minimum */
    cr_assert_leq(ru_backoff_next(&step, 100, 3200), 100);
    step = 3000; /* a step above half the bound stops at the bound */
    ru_backoff_next(&step, 100, 3200);
    cr_assert_eq(step, 3200);
}
