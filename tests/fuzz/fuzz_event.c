/* fuzz_event: libFuzzer target for ru_event_parse and ru_json_canon (and, through them,
 * ru_event_parse_ts, ru_event_uuid_canon and the UTF-8 checks).
 *
 * Input framing: the input is split on the byte 0xff into segments, read as alternating
 * field name and value, exactly as a stream entry's field/value list:
 *
 *     route 0xff /api/v1/tags 0xff timestamp 0xff 1761235223.315774 0xff ...
 *
 * An odd number of segments gives the last name a value with a NULL pointer (what a Redis
 * reply may hold). 0xff never occurs in UTF-8, so every valid text value can be written;
 * other invalid bytes (0x80..0xfe) and NUL bytes still can. Each name and value is copied
 * into its own allocation of exactly its length, so reading one byte past a value (they
 * are not NUL-terminated) is caught by AddressSanitizer.
 *
 * Checks (abort() on a violation, so libFuzzer records the input):
 *   - ru_json_canon, on the raw input and on every value, in both require_object modes:
 *     a refusal leaves the buffer as it was; an accepted text's output is valid UTF-8, in
 *     the documented canonical form (no white space, keys strictly sorted by length then
 *     bytes, canonical numbers and strings), re-canonicalises to identical bytes, and the
 *     two modes agree. Differential against jansson: where jansson accepts, we accept
 *     (except nesting deeper than RU_JSON_MAX_DEPTH and numbers outside our digit limit),
 *     and where we accept, jansson accepts (except numbers beyond its int64/double range).
 *   - ru_event_parse: accepts exactly the entries an independent re-statement of the rules
 *     in event.h accepts (own UTF-8, integer, timestamp and UUID oracles); on success every
 *     string is inside a value, the scratch buffer or a literal, and all invariants hold
 *     (route non-empty and <= RU_EVENT_MAX_KEY_FIELD bytes, key_long exactly when route +
 *     method + 6 x canonical params exceeds RU_EVENT_SURE_KEY, hour_us <= ts_us < hour_us +
 *     RU_USECS_PER_HOUR, hour_us % RU_USECS_PER_HOUR == 0, ...); a second parse into a
 *     scratch buffer that already holds data gives the same event and keeps that data, also
 *     through the params cache (ru_event_parse_cached; the first pass a miss or an earlier
 *     input's hit, the second a hit), and a third without RU_EVENT_RAW gives the same
 *     event but for query_params_json, false. */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollupd/event.h"
#include "rollupd/json.h"
#include "rollupd/utf8.h"
#include "rollupd/pcache.h"
#include "rollupd/util.h"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SEP 0xff

/* Known findings in src/ (tests/fuzz/crashes/README.md). Their checks abort like any other,
 * unless RU_FUZZ_IGNORE_KNOWN=1 is in the environment (fuzz.h): then each kind is reported
 * once on stderr and the run goes on, so that a long run can look for new findings before
 * src/ is fixed. Only inputs matching a finding's exact pattern are let through. */
enum known { KNOWN_INT_LEADING_ZEROS, KNOWN_COUNT };
static const char *const known_names[KNOWN_COUNT] = {
    [KNOWN_INT_LEADING_ZEROS] = "int-leading-zeros",
};

static void known_finding(enum known k, int line, const char *what)
{
    static bool reported[KNOWN_COUNT];
    fuzz_known(__FILE__, line, known_names[k], &reported[k], what);
}

/* ---- independent oracles ---------------------------------------------------------- */

/* Well-formed UTF-8 (RFC 3629), decoded one code point at a time; *chars gets the number
 * of code points. Written separately from ru_utf8_valid on purpose. */
static bool utf8_oracle(const unsigned char *s, size_t len, size_t *chars)
{
    size_t n = 0;
    for (size_t i = 0; i < len; n++) {
        unsigned c = s[i];
        uint32_t cp;
        size_t k;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            cp = c & 0x1f;
            k = 1;
        } else if ((c & 0xf0) == 0xe0) {
            cp = c & 0x0f;
            k = 2;
        } else if ((c & 0xf8) == 0xf0) {
            cp = c & 0x07;
            k = 3;
        } else {
            return false;
        }
        if (len - i - 1 < k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    if (chars != NULL)
        *chars = n;
    return true;
}

/* Strict decimal integer ([+-]?[0-9]+) within [lo, hi]. */
static bool int_oracle(const unsigned char *s, size_t len, int64_t lo, int64_t hi, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (len > 0 && (s[0] == '+' || s[0] == '-')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == len)
        return false;
    int64_t mag = 0; /* saturates just above any bound used here */
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        if (mag <= (int64_t)1 << 40)
            mag = mag * 10 + (s[i] - '0');
    }
    int64_t v = neg ? -mag : mag;
    if (v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* Decimal seconds ([+-]?D*(.D*)?([eE][+-]?D+)?, at least one digit) to microseconds,
 * rounded half to even, in [0, RU_EVENT_MAX_TS_US]: 0, or -1 when not a number / out of
 * range. Done on the digit string (digits, room for len bytes), by moving the point. */
static int ts_digits(const unsigned char *s, size_t len, char *digits, int64_t *us)
{
    size_t nd = 0, i = 0;
    bool neg = false;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    int64_t point = 0; /* digits before the decimal point */
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        digits[nd++] = (char)s[i++];
        point++;
    }
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            digits[nd++] = (char)s[i++];
    }
    if (nd == 0)
        return -1;
    int64_t e = 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        bool eneg = false;
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        size_t e0 = i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (e < (int64_t)1 << 40)
                e = e * 10 + (s[i] - '0');
            i++;
        }
        if (i == e0)
            return -1;
        if (eneg)
            e = -e;
    }
    if (i != len)
        return -1;

    size_t lead = 0;
    while (lead < nd && digits[lead] == '0')
        lead++;
    if (lead == nd) {
        *us = 0;
        return 0;
    }
    /* p: digits of the integer part of the value in microseconds */
    int64_t p = point - (int64_t)lead + e + 6;
    if (p > 18)
        return -1; /* >= 10^18 us */
    uint64_t mag = 0;
    if (p >= 0) {
        for (int64_t k = 0; k < p; k++) {
            size_t at = lead + (size_t)k;
            mag = mag * 10 + (at < nd ? (uint64_t)(digits[at] - '0') : 0);
        }
        size_t at = lead + (size_t)p; /* first dropped digit */
        if (at < nd) {
            int d = digits[at] - '0';
            bool rest = false;
            for (size_t k = at + 1; k < nd; k++)
                rest |= digits[k] != '0';
            if (d > 5 || (d == 5 && (rest || (mag & 1))))
                mag++;
        }
    }
    /* p < 0: below 0.1 us, rounds to 0 */
    if (neg && mag != 0)
        return -1;
    if (mag > (uint64_t)RU_EVENT_MAX_TS_US)
        return -1;
    *us = (int64_t)mag;
    return 0;
}

static int ts_oracle(const unsigned char *s, size_t len, int64_t *us)
{
    char *digits = malloc(len + 1);
    if (digits == NULL)
        abort();
    int rc = ts_digits(s, len, digits, us);
    free(digits);
    return rc;
}

/* PostgreSQL's uuid input: optional braces, 32 hex digits, a '-' allowed after every
 * group of four except the last. Writes the 8-4-4-4-12 lower-case form. */
static bool uuid_oracle(const unsigned char *s, size_t len, char out[37])
{
    static const char hex[] = "0123456789abcdef";
    size_t i = 0, end = len, nhex = 0, o = 0;
    if (len > 0 && s[0] == '{') {
        if (len < 2 || s[len - 1] != '}')
            return false;
        i = 1;
        end = len - 1;
    }
    bool prev_dash = false;
    for (; i < end; i++) {
        unsigned c = s[i];
        if (c == '-') {
            if (prev_dash || nhex == 0 || nhex % 4 != 0 || nhex >= 32)
                return false;
            prev_dash = true;
            continue;
        }
        prev_dash = false;
        int v;
        if (c >= '0' && c <= '9')
            v = (int)(c - '0');
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            v = (int)((c | 0x20) - 'a' + 10);
        else
            return false;
        if (nhex == 32)
            return false;
        if (nhex == 8 || nhex == 12 || nhex == 16 || nhex == 20)
            out[o++] = '-';
        out[o++] = hex[v];
        nhex++;
    }
    if (nhex != 32 || prev_dash)
        return false;
    out[36] = '\0';
    return true;
}

/* ---- canonical JSON form -------------------------------------------------------- */

struct cv {
    const unsigned char *p, *end;
    int depth;
};

static bool cv_value(struct cv *c);

static bool cv_string(struct cv *c, const unsigned char **start, size_t *len)
{
    const unsigned char *s = c->p;
    if (c->p >= c->end || *c->p != '"')
        return false;
    c->p++;
    for (;;) {
        if (c->p >= c->end)
            return false;
        unsigned b = *c->p;
        if (b == '"')
            break;
        if (b < 0x20)
            return false;
        if (b != '\\') {
            c->p++;
            continue;
        }
        if (c->end - c->p < 2)
            return false;
        unsigned e = c->p[1];
        if (e == '"' || e == '\\' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') {
            c->p += 2;
            continue;
        }
        /* only \u00xx (lower-case hex) for control characters without a short escape */
        if (e != 'u' || c->end - c->p < 6 || c->p[2] != '0' || c->p[3] != '0')
            return false;
        static const char hex[] = "0123456789abcdef";
        const char *h1 = memchr(hex, c->p[4], 16), *h2 = memchr(hex, c->p[5], 16);
        if (h1 == NULL || h2 == NULL || c->p[4] == '\0' || c->p[5] == '\0')
            return false;
        unsigned cp = (unsigned)((h1 - hex) * 16 + (h2 - hex));
        if (cp >= 0x20 || cp == 0 || cp == '\b' || cp == '\f' || cp == '\n' || cp == '\r' ||
            cp == '\t')
            return false;
        c->p += 6;
    }
    c->p++;
    *start = s;
    *len = (size_t)(c->p - s);
    return true;
}

static bool cv_number(struct cv *c)
{
    const unsigned char *p = c->p, *end = c->end;
    bool neg = false;
    size_t ndigits = 0;
    if (p < end && *p == '-') {
        neg = true;
        p++;
    }
    if (p >= end || *p < '0' || *p > '9')
        return false;
    bool zero = *p == '0';
    if (zero) {
        p++;
        ndigits++;
    } else {
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
            ndigits++;
        }
    }
    bool frac = false;
    if (p < end && *p == '.') {
        frac = true;
        p++;
        const unsigned char *f0 = p;
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
            ndigits++;
        }
        if (p == f0 || p[-1] == '0')
            return false; /* empty fraction, or a trailing zero */
    }
    if (neg && zero && !frac)
        return false; /* "-0" */
    if (ndigits > 1000)
        return false;
    c->p = p;
    return true;
}

static bool cv_object(struct cv *c)
{
    if (++c->depth > RU_JSON_MAX_DEPTH)
        return false;
    c->p++;
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        c->depth--;
        return true;
    }
    const unsigned char *prev = NULL;
    size_t prev_len = 0;
    for (;;) {
        const unsigned char *k;
        size_t klen;
        if (!cv_string(c, &k, &klen))
            return false;
        /* strictly increasing: shorter first, then bytewise; so no duplicates */
        if (prev != NULL && !(prev_len < klen || (prev_len == klen && memcmp(prev, k, klen) < 0)))
            return false;
        prev = k;
        prev_len = klen;
        if (c->p >= c->end || *c->p != ':')
            return false;
        c->p++;
        if (!cv_value(c))
            return false;
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        if (c->p < c->end && *c->p == '}') {
            c->p++;
            c->depth--;
            return true;
        }
        return false;
    }
}

static bool cv_array(struct cv *c)
{
    if (++c->depth > RU_JSON_MAX_DEPTH)
        return false;
    c->p++;
    if (c->p < c->end && *c->p == ']') {
        c->p++;
        c->depth--;
        return true;
    }
    for (;;) {
        if (!cv_value(c))
            return false;
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        if (c->p < c->end && *c->p == ']') {
            c->p++;
            c->depth--;
            return true;
        }
        return false;
    }
}

static bool cv_literal(struct cv *c, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0)
        return false;
    c->p += n;
    return true;
}

static bool cv_value(struct cv *c)
{
    const unsigned char *k;
    size_t klen;
    if (c->p >= c->end)
        return false;
    switch (*c->p) {
    case '{':
        return cv_object(c);
    case '[':
        return cv_array(c);
    case '"':
        return cv_string(c, &k, &klen);
    case 't':
        return cv_literal(c, "true");
    case 'f':
        return cv_literal(c, "false");
    case 'n':
        return cv_literal(c, "null");
    default:
        return cv_number(c);
    }
}

/* True when [s, s+len) is a complete text in the documented canonical form. */
static bool canonical_form(const char *s, size_t len)
{
    struct cv c = {(const unsigned char *)s, (const unsigned char *)s + len, 0};
    return cv_value(&c) && c.p == c.end;
}

/* ---- ru_json_canon ---------------------------------------------------------------- */

/* Canonicalises [s, s+len) after `pad` bytes already in out; checks what holds whatever
 * the outcome. Returns the rc; on success the text is out->p + pad, out->len - pad. */
static int canon_checked(const char *s, size_t len, bool require_object, struct ru_buf *out,
                         size_t pad, char *err, size_t errlen)
{
    ru_buf_reset(out);
    for (size_t i = 0; i < pad; i++)
        ru_buf_putc(out, (char)('a' + i % 26));
    err[0] = '\0';
    int rc = ru_json_canon(s, len, require_object, out, err, errlen);
    CHECK(rc == 0 || rc == -1);
    for (size_t i = 0; i < pad; i++)
        CHECK(out->p[i] == (char)('a' + i % 26));
    if (rc < 0) {
        CHECK(out->len == pad);
        CHECK(out->p == NULL || out->p[pad] == '\0');
        CHECK(err[0] != '\0' && memchr(err, '\0', errlen) != NULL);
        return rc;
    }
    CHECK(out->len > pad);
    CHECK(out->p[out->len] == '\0');
    return rc;
}

/* Both modes on one text, the canonical-form and idempotence checks, and the jansson
 * differential. */
static void check_json(const char *s, size_t len)
{
    static struct ru_buf any = RU_BUF_INIT, obj = RU_BUF_INIT, again = RU_BUF_INIT;
    char err_any[160], err_obj[160], err2[160];
    size_t pad = len % 11; /* vary the offset the output starts at (alignment, growth) */

    int rc_any = canon_checked(s, len, false, &any, pad, err_any, sizeof(err_any));
    int rc_obj = canon_checked(s, len, true, &obj, 0, err_obj, sizeof(err_obj));

    if (rc_any == 0) {
        const char *c = any.p + pad;
        size_t clen = any.len - pad;
        CHECK(ru_utf8_valid(c, clen));
        CHECK(utf8_oracle((const unsigned char *)c, clen, NULL));
        CHECK(memchr(c, '\0', clen) == NULL);
        CHECK(canonical_form(c, clen));
        /* canonical text is a fixed point, in either mode */
        CHECK(canon_checked(c, clen, false, &again, 0, err2, sizeof(err2)) == 0);
        CHECK(again.len == clen && memcmp(again.p, c, clen) == 0);
        /* the modes agree: an object is accepted by both, anything else only without */
        if (c[0] == '{') {
            CHECK(rc_obj == 0);
            CHECK(obj.len == clen && memcmp(obj.p, c, clen) == 0);
        } else {
            CHECK(rc_obj < 0);
        }
    } else {
        CHECK(rc_obj < 0);
    }

    /* differential against jansson (JSON syntax, UTF-8, escapes, \u0000, surrogates);
     * jansson's buffer reader takes a NUL byte for the end of the input */
    if (memchr(s, '\0', len) != NULL)
        return;
    json_error_t jerr;
    json_t *j = json_loadb(s, len, JSON_DECODE_ANY, &jerr);
    if (j != NULL && rc_any < 0)
        CHECK(strstr(err_any, "nesting too deep") != NULL ||
              strstr(err_any, "number out of range") != NULL);
    if (j == NULL && rc_any == 0)
        CHECK(strstr(jerr.text, "too big") != NULL || strstr(jerr.text, "overflow") != NULL);
    json_decref(j);
}

/* ---- the entry -------------------------------------------------------------------- */

enum {
    K_ROUTE,
    K_METHOD,
    K_USER_ID,
    K_TIMESTAMP,
    K_DURATION,
    K_STATUS,
    K_QUERY_PARAMS,
    K_PARAMS_NORM,
    K_REQUEST_SIZE,
    K_RESPONSE_SIZE,
    K_ERROR_TYPE,
    K_CACHE_STATUS,
    K_DB_QUERY_COUNT,
    K_COUNT
};

static const char *const field_names[K_COUNT] = {
    "route",
    "method",
    "user_id",
    "timestamp",
    "duration_ms",
    "status_code",
    "query_params",
    "query_params_normalized",
    "request_size_bytes",
    "response_size_bytes",
    "error_type",
    "cache_status",
    "db_query_count",
};

static const bool known_text[K_COUNT] = {
    [K_ROUTE] = true,       [K_METHOD] = true,     [K_USER_ID] = true,      [K_QUERY_PARAMS] = true,
    [K_PARAMS_NORM] = true, [K_ERROR_TYPE] = true, [K_CACHE_STATUS] = true,
};

struct val {
    const unsigned char *p; /* NULL: field missing */
    size_t len;
};

/* The fields, each in its own exact-size allocation. */
struct entry {
    struct ru_field *f;
    size_t n;
    char **blocks; /* allocations, to free and for the bounds check */
    size_t *block_len;
    size_t nblocks;
};

static char *copy_block(struct entry *e, const uint8_t *p, size_t len)
{
    char *b = malloc(len > 0 ? len : 1);
    if (b == NULL)
        abort();
    if (len > 0)
        memcpy(b, p, len);
    e->blocks[e->nblocks] = b;
    e->block_len[e->nblocks] = len;
    e->nblocks++;
    return b;
}

static void split_entry(struct entry *e, const uint8_t *data, size_t size)
{
    size_t nseg = 1;
    for (size_t i = 0; i < size; i++)
        nseg += data[i] == SEP;
    e->n = (nseg + 1) / 2;
    e->f = calloc(e->n, sizeof(*e->f));
    e->blocks = calloc(nseg, sizeof(*e->blocks));
    e->block_len = calloc(nseg, sizeof(*e->block_len));
    e->nblocks = 0;
    if (e->f == NULL || e->blocks == NULL || e->block_len == NULL)
        abort();
    size_t start = 0, seg = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i < size && data[i] != SEP)
            continue;
        struct ru_str *dst = seg % 2 == 0 ? &e->f[seg / 2].name : &e->f[seg / 2].value;
        dst->p = copy_block(e, data + start, i - start);
        dst->len = i - start;
        seg++;
        start = i + 1;
    }
    /* odd: the last name's value stays {NULL, 0} */
}

static void free_entry(struct entry *e)
{
    for (size_t i = 0; i < e->nblocks; i++)
        free(e->blocks[i]);
    free(e->blocks);
    free(e->block_len);
    free(e->f);
}

static volatile unsigned char sink; /* keeps the reads in check_bounds */

/* Where a string of the event may point: into one value, into the scratch buffer's data,
 * or (len <= 3) at a literal; every byte is read so that ASan sees a stray pointer. */
static void check_bounds(const struct entry *e, const struct ru_buf *scratch, struct ru_str s)
{
    CHECK(s.p != NULL);
    const char *end = s.p + s.len;
    bool inside = false;
    for (size_t i = 0; i < e->nblocks && !inside; i++)
        inside = s.p >= e->blocks[i] && end <= e->blocks[i] + e->block_len[i];
    if (!inside && scratch->p != NULL)
        inside = s.p >= scratch->p && end <= scratch->p + scratch->len;
    if (!inside)
        CHECK(s.len <= 3);
    unsigned char x = 0;
    for (size_t i = 0; i < s.len; i++)
        x ^= (unsigned char)s.p[i];
    sink = x;
}

static bool str_is(struct ru_str s, const void *p, size_t len)
{
    return s.len == len && (len == 0 || memcmp(s.p, p, len) == 0);
}

/* What ru_event_parse must conclude, from the rules in event.h. */
struct expect {
    bool ok;
    bool long_int; /* an integer field of more than 20 digits (finding int-leading-zeros) */
    struct val v[K_COUNT];
    int64_t ts_us, duration, status, req, resp, db;
    bool has_db;
    bool is_uuid;
    char uuid[37];
};

static void expect_entry(struct expect *x, const struct entry *e, struct ru_buf *canon)
{
    memset(x, 0, sizeof(*x));
    bool repeated = false;
    for (size_t i = 0; i < e->n; i++) {
        const struct ru_str *nm = &e->f[i].name;
        for (int k = 0; k < K_COUNT; k++) {
            if (nm->len != strlen(field_names[k]) || memcmp(nm->p, field_names[k], nm->len) != 0)
                continue;
            if (x->v[k].p != NULL)
                repeated = true;
            x->v[k].p = e->f[i].value.p != NULL ? (const unsigned char *)e->f[i].value.p
                                                : (const unsigned char *)"";
            x->v[k].len = e->f[i].value.len;
        }
    }
    x->ok = false;
    if (repeated)
        return;
    for (int k = 0; k < K_COUNT; k++) {
        const struct val *v = &x->v[k];
        if (v->p == NULL)
            continue;
        bool key_field = k == K_ROUTE || k == K_PARAMS_NORM;
        if (v->len > (key_field ? RU_EVENT_MAX_KEY_FIELD : RU_EVENT_MAX_VALUE))
            return;
        if (known_text[k] &&
            (memchr(v->p, '\0', v->len) != NULL || !utf8_oracle(v->p, v->len, NULL)))
            return;
    }
    const struct val *v = x->v;
    size_t chars;
    if (v[K_ROUTE].p == NULL || v[K_ROUTE].len == 0)
        return;
    if (v[K_METHOD].p != NULL && utf8_oracle(v[K_METHOD].p, v[K_METHOD].len, &chars) &&
        chars > RU_EVENT_MAX_METHOD)
        return;
    if (v[K_TIMESTAMP].p == NULL || ts_oracle(v[K_TIMESTAMP].p, v[K_TIMESTAMP].len, &x->ts_us) < 0)
        return;
    if (v[K_DURATION].p == NULL ||
        !int_oracle(v[K_DURATION].p, v[K_DURATION].len, INT32_MIN, INT32_MAX, &x->duration))
        return;
    if (v[K_STATUS].p == NULL ||
        !int_oracle(v[K_STATUS].p, v[K_STATUS].len, -32768, 32767, &x->status))
        return;
    const int opt[3] = {K_REQUEST_SIZE, K_RESPONSE_SIZE, K_DB_QUERY_COUNT};
    int64_t *optv[3] = {&x->req, &x->resp, &x->db};
    for (int i = 0; i < 3; i++) {
        const struct val *o = &v[opt[i]];
        if (o->p != NULL && o->len > 0 && !int_oracle(o->p, o->len, INT32_MIN, INT32_MAX, optv[i]))
            return;
    }
    x->has_db = v[K_DB_QUERY_COUNT].p != NULL && v[K_DB_QUERY_COUNT].len > 0;
    const int ints[5] = {K_DURATION, K_STATUS, K_REQUEST_SIZE, K_RESPONSE_SIZE, K_DB_QUERY_COUNT};
    for (int i = 0; i < 5; i++) {
        const struct val *o = &v[ints[i]];
        if (o->p != NULL && o->len > 0)
            x->long_int |= o->len - (o->p[0] == '+' || o->p[0] == '-') > 20;
    }
    if (v[K_PARAMS_NORM].p != NULL) {
        char jerr[160];
        if (canon_checked((const char *)v[K_PARAMS_NORM].p, v[K_PARAMS_NORM].len, true, canon, 0,
                          jerr, sizeof(jerr)) < 0 ||
            canon->len > RU_EVENT_MAX_KEY_FIELD)
            return;
    }
    if (v[K_USER_ID].p != NULL && v[K_USER_ID].len > 0)
        x->is_uuid = uuid_oracle(v[K_USER_ID].p, v[K_USER_ID].len, x->uuid);
    x->ok = true;
}

static void check_event(const struct ru_event *ev, const struct expect *x, const struct entry *e,
                        const struct ru_buf *scratch, const struct ru_buf *canon)
{
    const struct val *v = x->v;
    /* every string: inside a value, the scratch buffer or a literal; UTF-8 without NUL */
    const struct ru_str texts[] = {ev->route,        ev->method,       ev->user_id,
                                   ev->params_canon, ev->query_params, ev->error_type,
                                   ev->cache_status};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        check_bounds(e, scratch, texts[i]);
        CHECK(memchr(texts[i].p, '\0', texts[i].len) == NULL);
        CHECK(ru_utf8_valid(texts[i].p, texts[i].len));
    }

    /* the required invariants */
    CHECK(ev->route.len > 0 && ev->route.len <= RU_EVENT_MAX_KEY_FIELD);
    CHECK(ev->ts_us >= RU_EVENT_MIN_TS_US && ev->ts_us <= RU_EVENT_MAX_TS_US);
    CHECK(ev->hour_us % RU_USECS_PER_HOUR == 0);
    CHECK(ev->hour_us <= ev->ts_us && ev->ts_us < ev->hour_us + RU_USECS_PER_HOUR);
    CHECK(ev->status_code >= -32768 && ev->status_code <= 32767);
    CHECK(ev->params_canon.len <= RU_EVENT_MAX_KEY_FIELD);
    CHECK(ev->key_long ==
          (ev->route.len + ev->method.len + 6 * ev->params_canon.len > RU_EVENT_SURE_KEY));
    size_t chars;
    CHECK(utf8_oracle((const unsigned char *)ev->method.p, ev->method.len, &chars));
    CHECK(chars <= RU_EVENT_MAX_METHOD);

    /* the values, as the oracles computed them */
    CHECK(str_is(ev->route, v[K_ROUTE].p, v[K_ROUTE].len));
    if (v[K_METHOD].p == NULL)
        CHECK(str_is(ev->method, "GET", 3));
    else
        CHECK(str_is(ev->method, v[K_METHOD].p, v[K_METHOD].len));
    CHECK(ev->ts_us == x->ts_us);
    int64_t rt;
    CHECK(ru_event_parse_ts((const char *)v[K_TIMESTAMP].p, v[K_TIMESTAMP].len, &rt) == 0);
    CHECK(rt == x->ts_us);
    CHECK(ev->duration_ms == x->duration);
    CHECK(ev->status_code == x->status);
    CHECK(ev->request_size == x->req);
    CHECK(ev->response_size == x->resp);
    CHECK(ev->has_db_query_count == x->has_db);
    CHECK(ev->db_query_count == (x->has_db ? x->db : 0));
    CHECK(str_is(ev->error_type, v[K_ERROR_TYPE].p, v[K_ERROR_TYPE].p ? v[K_ERROR_TYPE].len : 0));
    CHECK(str_is(ev->cache_status, v[K_CACHE_STATUS].p,
                 v[K_CACHE_STATUS].p ? v[K_CACHE_STATUS].len : 0));

    CHECK(ev->user_is_uuid == x->is_uuid);
    if (x->is_uuid) {
        CHECK(str_is(ev->user_id, x->uuid, 36));
        char again[37];
        CHECK(ru_event_uuid_canon(x->uuid, 36, again) == 0 && memcmp(again, x->uuid, 37) == 0);
    } else if (v[K_USER_ID].p == NULL || v[K_USER_ID].len == 0) {
        CHECK(ev->user_id.len == 0);
    } else {
        CHECK(str_is(ev->user_id, v[K_USER_ID].p, v[K_USER_ID].len));
    }

    if (v[K_PARAMS_NORM].p == NULL)
        CHECK(str_is(ev->params_canon, "{}", 2));
    else
        CHECK(str_is(ev->params_canon, canon->p, canon->len));
    CHECK(ev->params_canon.p[0] == '{');

    if (v[K_QUERY_PARAMS].p == NULL) {
        CHECK(str_is(ev->query_params, "{}", 2));
        CHECK(ev->query_params_json);
    } else {
        CHECK(str_is(ev->query_params, v[K_QUERY_PARAMS].p, v[K_QUERY_PARAMS].len));
        static struct ru_buf qp = RU_BUF_INIT;
        char jerr[160];
        bool json = canon_checked((const char *)v[K_QUERY_PARAMS].p, v[K_QUERY_PARAMS].len, false,
                                  &qp, 0, jerr, sizeof(jerr)) == 0;
        CHECK(ev->query_params_json == json);
    }

    /* COPY formatting of the timestamp: fixed shape, never past its 32 bytes */
    char *ts = malloc(32);
    if (ts == NULL)
        abort();
    size_t n = ru_event_format_ts(ev->ts_us, ts);
    CHECK(n == strlen(ts) && (n == 19 || n == 26));
    CHECK(ts[4] == '-' && ts[7] == '-' && ts[10] == ' ' && ts[13] == ':' && ts[16] == ':');
    free(ts);
}

static bool same_str(struct ru_str a, struct ru_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static bool same_event(const struct ru_event *a, const struct ru_event *b)
{
    return same_str(a->route, b->route) && same_str(a->method, b->method) &&
           same_str(a->user_id, b->user_id) && a->ts_us == b->ts_us && a->hour_us == b->hour_us &&
           a->duration_ms == b->duration_ms && a->status_code == b->status_code &&
           same_str(a->params_canon, b->params_canon) &&
           same_str(a->query_params, b->query_params) &&
           a->query_params_json == b->query_params_json && a->user_is_uuid == b->user_is_uuid &&
           a->request_size == b->request_size && a->response_size == b->response_size &&
           a->has_db_query_count == b->has_db_query_count &&
           a->db_query_count == b->db_query_count && same_str(a->error_type, b->error_type) &&
           same_str(a->cache_status, b->cache_status);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* reused across inputs, as the daemon reuses its scratch buffer */
    static struct ru_buf scratch = RU_BUF_INIT, dirty = RU_BUF_INIT, canon = RU_BUF_INIT;

    check_json((const char *)data, size);

    struct entry e;
    split_entry(&e, data, size);
    for (size_t i = 0; i < e.n; i++)
        if (e.f[i].value.p != NULL)
            check_json(e.f[i].value.p, e.f[i].value.len);

    struct expect x;
    expect_entry(&x, &e, &canon);

    struct ru_event ev, ev2;
    char err[256], err2[256];
    err[0] = '\0';
    ru_buf_reset(&scratch);
    int rc = ru_event_parse(&ev, e.f, e.n, &scratch, err, sizeof(err));
    CHECK(rc == 0 || rc == -1);
    if (rc != 0 && x.ok && x.long_int) {
        char what[320];
        snprintf(what, sizeof(what), "an integer of more than 20 digits is refused: %s", err);
        known_finding(KNOWN_INT_LEADING_ZEROS, __LINE__, what);
        x.ok = false;
    }
    CHECK((rc == 0) == x.ok);
    if (rc == 0) {
        check_event(&ev, &x, &e, &scratch, &canon);
    } else {
        CHECK(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);
        CHECK(strchr(err, '\n') == NULL);
        CHECK(scratch.len == 0);
    }

    /* again, appending to a scratch buffer that holds data, through the params cache (kept
     * across inputs, so both its misses and its hits are taken): same outcome, data kept */
    static struct ru_pcache *cache;
    if (cache == NULL)
        cache = ru_pcache_new();
    for (int pass = 0; pass < 3; pass++) {
        size_t pad = size % 53;
        ru_buf_reset(&dirty);
        for (size_t i = 0; i < pad; i++)
            ru_buf_putc(&dirty, (char)('A' + i % 26));
        /* the third pass without RU_EVENT_RAW: the same but for query_params_json */
        unsigned flags = pass < 2 ? RU_EVENT_RAW : 0;
        int rc2 = ru_event_parse_cached(&ev2, e.f, e.n, &dirty, cache, flags, err2, sizeof(err2));
        CHECK(rc2 == rc);
        CHECK(dirty.len >= pad);
        for (size_t i = 0; i < pad; i++)
            CHECK(dirty.p[i] == (char)('A' + i % 26));
        if (rc == 0) {
            if (!(flags & RU_EVENT_RAW)) {
                CHECK(!ev2.query_params_json);
                ev2.query_params_json = ev.query_params_json;
            }
            check_event(&ev2, &x, &e, &dirty, &canon);
            CHECK(same_event(&ev, &ev2));
        } else {
            CHECK(dirty.len == pad);
            CHECK(strcmp(err, err2) == 0);
        }
    }

    /* the helpers on their own, on the exact-size value copies */
    if (x.v[K_USER_ID].p != NULL) {
        char out[37], want[37];
        bool ok = uuid_oracle(x.v[K_USER_ID].p, x.v[K_USER_ID].len, want);
        int rc_uuid = ru_event_uuid_canon((const char *)x.v[K_USER_ID].p, x.v[K_USER_ID].len, out);
        CHECK((rc_uuid == 0) == ok);
        if (ok)
            CHECK(memcmp(out, want, 37) == 0);
    }
    if (x.v[K_TIMESTAMP].p != NULL) {
        int64_t got = -1, want = -1;
        int rw = ts_oracle(x.v[K_TIMESTAMP].p, x.v[K_TIMESTAMP].len, &want);
        int rg = ru_event_parse_ts((const char *)x.v[K_TIMESTAMP].p, x.v[K_TIMESTAMP].len, &got);
        CHECK(rg == rw);
        if (rw == 0)
            CHECK(got == want);
    }

    free_entry(&e);
    return 0;
}
