/* json: canonical form of a JSON text under PostgreSQL jsonb equality.
 *
 * A recursive-descent parser writes the canonical text straight into the caller's buffer in
 * one pass over the input. Canonical form (no white space anywhere):
 *   - object: members sorted by their canonical key text (shorter first, then bytewise),
 *     a duplicate key keeps its last value (as jsonb does); "{}" when empty;
 *   - array: elements in order;
 *   - string: raw UTF-8, escaping only '"', '\\' and characters below U+0020 (\b \f \n \r \t,
 *     otherwise \u00xx with lower-case hex), which is also what jsonb prints;
 *   - number: the exact decimal value, exponent-free: optional '-', the integer part without
 *     leading zeros ("0" when there is none), then '.' and the fraction without trailing
 *     zeros when the value has one; negative zero is "0". So 1, 1.0, 1e0, 10E-1 -> "1",
 *     -0.0 -> "0", 1.5e3 -> "1500", 25e-4 -> "0.0025";
 *   - true, false, null.
 * Because a key's canonical text is a one-to-one function of its decoded characters, sorting
 * and deduplicating on it is the same as doing so on the decoded key.
 *
 * Numbers: besides what numeric refuses (an exponent of magnitude INT_MAX/2 or more, a
 * display scale above 16383, more than 131072 integer digits), this module refuses any number
 * whose canonical form would have more than JSON_MAX_NUMBER_DIGITS (1000) digits, so a short
 * text like 1e100000 cannot expand into a huge one. Such numbers are valid jsonb but are
 * reported as "number out of range".
 *
 * Objects: each member is first written to the output as [key length][member length] header
 * + `"key":value`; once the object is closed, jsonobj puts the members in canonical order.
 * Apart from growing the caller's buffer nothing is allocated and nothing is shared between
 * calls, so any number of threads may call this concurrently. */
#include "rollupd/json.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "rollupd/jsonobj.h"
#include "rollupd/utf8.h"

#define JSON_MAX_NUMBER_DIGITS 1000
#define PG_NUMERIC_DSCALE_MAX  16383      /* digits after the point numeric can keep */
#define PG_NUMERIC_EXP_LIMIT   1073741823 /* numeric_in refuses |exponent| >= INT_MAX / 2 */
#define PG_NUMERIC_INT_DIGITS  131072     /* digits before the point numeric can keep */

struct parser {
    const unsigned char *s; /* start of the text, for byte offsets */
    const unsigned char *p;
    const unsigned char *end;
    struct ru_buf *out;
    char *err;
    size_t errlen;
    int depth;
};

/* Bytes that can be copied as they are inside a string: 0x20..0x7f except '"' and '\\'.
 * Bytes >= 0x80 are validated as UTF-8 separately. */
static const unsigned char plain_byte[256] = {
    /* clang-format off */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* clang-format on */
};

/* ---- errors ---- */

static int fail(struct parser *ps, const unsigned char *at, const char *what)
{
    if (ps->errlen > 0)
        snprintf(ps->err, ps->errlen, "%s at byte %zu", what, (size_t)(at - ps->s));
    return -1;
}

static int fail_unexpected(struct parser *ps, const unsigned char *at, const char *expected)
{
    if (ps->errlen == 0)
        return -1;
    size_t off = (size_t)(at - ps->s);
    if (at >= ps->end)
        snprintf(ps->err, ps->errlen, "unexpected end of input at byte %zu, expected %s", off,
                 expected);
    else if (*at >= 0x21 && *at < 0x7f)
        snprintf(ps->err, ps->errlen, "unexpected character '%c' at byte %zu, expected %s", *at,
                 off, expected);
    else
        snprintf(ps->err, ps->errlen, "unexpected byte 0x%02x at byte %zu, expected %s", *at, off,
                 expected);
    return -1;
}

/* ---- output: ru_buf appends with the capacity check inlined ---- */

static inline void put(struct ru_buf *out, const void *data, size_t n)
{
    if (out->len + n >= out->cap)
        ru_buf_reserve(out, n);
    memcpy(out->p + out->len, data, n);
    out->len += n;
    out->p[out->len] = '\0';
}

static inline void put1(struct ru_buf *out, char c)
{
    if (out->len + 1 >= out->cap)
        ru_buf_reserve(out, 1);
    out->p[out->len++] = c;
    out->p[out->len] = '\0';
}

/* ---- scanning helpers ---- */

static inline void skip_ws(struct parser *ps)
{
    const unsigned char *p = ps->p, *end = ps->end;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    ps->p = p;
}

/* The code unit of the \uXXXX escape whose 'u' is at p, or -1. */
static long hex4(const unsigned char *p, const unsigned char *end)
{
    if (end - p < 5)
        return -1;
    long v = 0;
    for (int i = 1; i <= 4; i++) {
        int h = ru_hex_digit(p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Appends code point cp (1..0x10FFFF, not a surrogate) in canonical string form. */
static void put_codepoint(struct ru_buf *out, unsigned long cp)
{
    static const char hex[] = "0123456789abcdef";
    char b[6];
    size_t n;
    if (cp < 0x20 || cp == '"' || cp == '\\') {
        b[0] = '\\';
        n = 2;
        switch (cp) {
        case '"':
            b[1] = '"';
            break;
        case '\\':
            b[1] = '\\';
            break;
        case '\b':
            b[1] = 'b';
            break;
        case '\f':
            b[1] = 'f';
            break;
        case '\n':
            b[1] = 'n';
            break;
        case '\r':
            b[1] = 'r';
            break;
        case '\t':
            b[1] = 't';
            break;
        default:
            b[1] = 'u';
            b[2] = '0';
            b[3] = '0';
            b[4] = hex[cp >> 4];
            b[5] = hex[cp & 15];
            n = 6;
        }
    } else if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xc0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xe0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        b[0] = (char)(0xf0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    put(out, b, n);
}

/* ---- values ---- */

static int parse_value(struct parser *ps);

/* String at ps->p (on the opening quote) -> canonical quoted string. */
static int parse_string(struct parser *ps)
{
    const unsigned char *p = ps->p + 1, *end = ps->end;
    const unsigned char *run = p;
    struct ru_buf *out = ps->out;

    put1(out, '"');
    for (;;) {
        while (p < end && plain_byte[*p])
            p++;
        if (p >= end)
            return fail(ps, ps->p, "unterminated string");
        unsigned c = *p;
        if (c == '"') {
            ru_buf_reserve(out, (size_t)(p - run) + 1);
            memcpy(out->p + out->len, run, (size_t)(p - run));
            out->len += (size_t)(p - run);
            out->p[out->len++] = '"';
            out->p[out->len] = '\0';
            ps->p = p + 1;
            return 0;
        }
        if (c >= 0x80) {
            size_t n = ru_utf8_seq(p, end);
            if (n == 0)
                return fail(ps, p, "invalid UTF-8");
            p += n;
            continue;
        }
        if (c != '\\') {
            char what[48];
            snprintf(what, sizeof(what), "unescaped control character 0x%02x in string", c);
            return fail(ps, p, what);
        }
        /* an escape: flush the plain run first */
        put(out, run, (size_t)(p - run));
        if (end - p < 2)
            return fail(ps, ps->p, "unterminated string");
        switch (p[1]) {
        case '"':
            put(out, "\\\"", 2);
            p += 2;
            break;
        case '\\':
            put(out, "\\\\", 2);
            p += 2;
            break;
        case '/':
            put1(out, '/');
            p += 2;
            break;
        case 'b':
            put(out, "\\b", 2);
            p += 2;
            break;
        case 'f':
            put(out, "\\f", 2);
            p += 2;
            break;
        case 'n':
            put(out, "\\n", 2);
            p += 2;
            break;
        case 'r':
            put(out, "\\r", 2);
            p += 2;
            break;
        case 't':
            put(out, "\\t", 2);
            p += 2;
            break;
        case 'u': {
            long u = hex4(p + 1, end);
            if (u < 0)
                return fail(ps, p, "invalid \\u escape");
            if (u == 0)
                return fail(ps, p, "\\u0000 is not allowed");
            unsigned long cp = (unsigned long)u;
            if (u >= 0xdc00 && u <= 0xdfff)
                return fail(ps, p, "unpaired surrogate escape");
            if (u >= 0xd800 && u <= 0xdbff) {
                long lo = -1;
                if (end - p >= 12 && p[6] == '\\' && p[7] == 'u')
                    lo = hex4(p + 7, end);
                if (lo < 0xdc00 || lo > 0xdfff)
                    return fail(ps, p, "unpaired surrogate escape");
                cp = 0x10000 + (((unsigned long)u - 0xd800) << 10) + ((unsigned long)lo - 0xdc00);
                p += 12;
            } else {
                p += 6;
            }
            put_codepoint(out, cp);
            break;
        }
        default:
            return fail(ps, p, "invalid escape");
        }
        run = p;
    }
}

/* Digit k of the digit string formed by the integer digits followed by the fraction. */
static inline char digit_at(const unsigned char *ip, size_t ni, const unsigned char *fp, size_t k)
{
    return (char)(k < ni ? ip[k] : fp[k - ni]);
}

/* Appends digits [k0, k1) of that digit string. */
static void put_digits(struct ru_buf *out, const unsigned char *ip, size_t ni,
                       const unsigned char *fp, size_t k0, size_t k1)
{
    if (k0 < ni) {
        size_t e = k1 < ni ? k1 : ni;
        put(out, ip + k0, e - k0);
        k0 = e;
    }
    if (k0 < k1)
        put(out, fp + (k0 - ni), k1 - k0);
}

static void put_zeros(struct ru_buf *out, size_t n)
{
    ru_buf_reserve(out, n);
    memset(out->p + out->len, '0', n);
    out->len += n;
    out->p[out->len] = '\0';
}

static int parse_number(struct parser *ps)
{
    const unsigned char *start = ps->p, *p = ps->p, *end = ps->end;
    struct ru_buf *out = ps->out;
    bool neg = false;

    if (*p == '-') {
        neg = true;
        p++;
    }
    const unsigned char *ip = p;
    if (p >= end || (unsigned)(*p - '0') > 9)
        return fail(ps, start, "invalid number");
    if (*p == '0')
        p++;
    else
        while (p < end && (unsigned)(*p - '0') <= 9)
            p++;
    size_t ni = (size_t)(p - ip);
    const unsigned char *fp = p;
    size_t nf = 0;
    if (p < end && *p == '.') {
        fp = ++p;
        while (p < end && (unsigned)(*p - '0') <= 9)
            p++;
        nf = (size_t)(p - fp);
        if (nf == 0)
            return fail(ps, start, "invalid number");
    }
    bool has_exp = false;
    int64_t e = 0;
    if (p < end && (*p | 0x20) == 'e') {
        bool eneg = false;
        has_exp = true;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        const unsigned char *e0 = p;
        while (p < end && (unsigned)(*p - '0') <= 9) {
            if (e < PG_NUMERIC_EXP_LIMIT)
                e = e * 10 + (*p - '0');
            p++;
        }
        if (p == e0)
            return fail(ps, start, "invalid number");
        if (e >= PG_NUMERIC_EXP_LIMIT)
            return fail(ps, start, "number out of range");
        if (eneg)
            e = -e;
    }
    ps->p = p;

    /* Fast path: a plain integer is already canonical ("-0" aside). */
    if (nf == 0 && !has_exp) {
        if (ni > JSON_MAX_NUMBER_DIGITS)
            return fail(ps, start, "number out of range");
        if (neg && *ip == '0')
            put1(out, '0');
        else
            put(out, start, (size_t)(p - start));
        return 0;
    }

    /* numeric's display scale: fraction digits minus the exponent */
    if ((int64_t)nf - e > PG_NUMERIC_DSCALE_MAX)
        return fail(ps, start, "number out of range");

    /* significant digits [lead, tail] of the digit string; value = sig * 10^x */
    size_t ntot = ni + nf, lead = 0, tail = ntot;
    while (lead < ntot && digit_at(ip, ni, fp, lead) == '0')
        lead++;
    if (lead == ntot) {
        put1(out, '0');
        return 0;
    }
    while (digit_at(ip, ni, fp, tail - 1) == '0')
        tail--;
    int64_t nsig = (int64_t)(tail - lead);
    int64_t x = e - (int64_t)nf + (int64_t)(ntot - tail);
    int64_t msd = x + nsig - 1; /* power of ten of the most significant digit */
    int64_t ndigits = x >= 0 ? nsig + x : (msd >= 0 ? nsig : 1 - x);
    /* msd >= PG_NUMERIC_INT_DIGITS overflows numeric; our digit limit is stricter */
    if (msd >= PG_NUMERIC_INT_DIGITS || ndigits > JSON_MAX_NUMBER_DIGITS)
        return fail(ps, start, "number out of range");

    ru_buf_reserve(out, (size_t)ndigits + 3);
    if (neg)
        put1(out, '-');
    if (x >= 0) {
        put_digits(out, ip, ni, fp, lead, tail);
        put_zeros(out, (size_t)x);
    } else if (msd >= 0) {
        size_t point = lead + (size_t)msd + 1;
        put_digits(out, ip, ni, fp, lead, point);
        put1(out, '.');
        put_digits(out, ip, ni, fp, point, tail);
    } else {
        put(out, "0.", 2);
        put_zeros(out, (size_t)(-msd - 1));
        put_digits(out, ip, ni, fp, lead, tail);
    }
    return 0;
}

static int parse_literal(struct parser *ps, const char *word, size_t n)
{
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return fail(ps, ps->p, "invalid literal");
    put(ps->out, word, n);
    ps->p += n;
    return 0;
}

static int parse_array(struct parser *ps)
{
    struct ru_buf *out = ps->out;
    if (++ps->depth > RU_JSON_MAX_DEPTH)
        return fail(ps, ps->p, "nesting too deep");
    ps->p++;
    put1(out, '[');
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        put1(out, ']');
        ps->depth--;
        return 0;
    }
    for (;;) {
        if (parse_value(ps) < 0)
            return -1;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            put1(out, ',');
            skip_ws(ps);
            continue;
        }
        if (ps->p < ps->end && *ps->p == ']') {
            ps->p++;
            put1(out, ']');
            ps->depth--;
            return 0;
        }
        return fail_unexpected(ps, ps->p, "',' or ']'");
    }
}

static int parse_object(struct parser *ps)
{
    struct ru_buf *out = ps->out;
    if (++ps->depth > RU_JSON_MAX_DEPTH)
        return fail(ps, ps->p, "nesting too deep");
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        put(out, "{}", 2);
        ps->depth--;
        return 0;
    }

    size_t r0 = out->len, n = 0;
    for (;;) {
        if (ps->p >= ps->end || *ps->p != '"')
            return fail_unexpected(ps, ps->p, "a string key");
        size_t hdr = out->len;
        ru_buf_reserve(out, RU_JSONOBJ_HDR_SIZE);
        out->len += RU_JSONOBJ_HDR_SIZE;
        size_t kstart = out->len;
        if (parse_string(ps) < 0)
            return -1;
        size_t klen = out->len - kstart;
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':')
            return fail_unexpected(ps, ps->p, "':'");
        ps->p++;
        put1(out, ':');
        skip_ws(ps);
        if (parse_value(ps) < 0)
            return -1;
        size_t mlen = out->len - kstart;
        memcpy(out->p + hdr, &klen, sizeof(klen));
        memcpy(out->p + hdr + sizeof(size_t), &mlen, sizeof(mlen));
        n++;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            skip_ws(ps);
            continue;
        }
        if (ps->p < ps->end && *ps->p == '}') {
            ps->p++;
            break;
        }
        return fail_unexpected(ps, ps->p, "',' or '}'");
    }
    ru_jsonobj_finish(out, r0, n);
    ps->depth--;
    return 0;
}

static int parse_value(struct parser *ps)
{
    if (ps->p >= ps->end)
        return fail_unexpected(ps, ps->p, "a JSON value");
    switch (*ps->p) {
    case '{':
        return parse_object(ps);
    case '[':
        return parse_array(ps);
    case '"':
        return parse_string(ps);
    case 't':
        return parse_literal(ps, "true", 4);
    case 'f':
        return parse_literal(ps, "false", 5);
    case 'n':
        return parse_literal(ps, "null", 4);
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        return parse_number(ps);
    default:
        return fail_unexpected(ps, ps->p, "a JSON value");
    }
}

int ru_json_canon(const char *s, size_t len, bool require_object, struct ru_buf *out, char *err,
                  size_t errlen)
{
    struct parser ps = {
        .s = (const unsigned char *)s,
        .p = (const unsigned char *)s,
        .end = (const unsigned char *)s + len,
        .out = out,
        .err = err,
        .errlen = errlen,
        .depth = 0,
    };
    size_t start = out->len;

    skip_ws(&ps);
    if (require_object && ps.p < ps.end && *ps.p != '{') {
        if (errlen > 0)
            snprintf(err, errlen, "not a JSON object");
        return -1;
    }
    if (parse_value(&ps) < 0)
        goto failed;
    skip_ws(&ps);
    if (ps.p < ps.end) {
        fail_unexpected(&ps, ps.p, "the end of the JSON text");
        goto failed;
    }
    return 0;

failed:
    out->len = start;
    if (out->p != NULL)
        out->p[start] = '\0';
    return -1;
}
