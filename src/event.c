/* event: one stream entry (field/value pairs) -> struct ru_event.
 *
 * One pass over the fields finds the known ones (and repeats); each is then checked and
 * converted once. Derived strings (the canonical UUID and canonical params) are appended to
 * the caller's scratch buffer, whose address may change while appending, so pointers into it
 * are taken only at the very end. */
#include "rollupd/event.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rollupd/pcache.h"
#include "rollupd/utf8.h"

enum field_id {
    F_ROUTE,
    F_METHOD,
    F_USER_ID,
    F_TIMESTAMP,
    F_DURATION,
    F_STATUS,
    F_QUERY_PARAMS,
    F_PARAMS_NORM,
    F_REQUEST_SIZE,
    F_RESPONSE_SIZE,
    F_ERROR_TYPE,
    F_CACHE_STATUS,
    F_DB_QUERY_COUNT,
    F_COUNT,
    F_UNKNOWN = -1
};

static const char *const field_names[F_COUNT] = {
    [F_ROUTE] = "route",
    [F_METHOD] = "method",
    [F_USER_ID] = "user_id",
    [F_TIMESTAMP] = "timestamp",
    [F_DURATION] = "duration_ms",
    [F_STATUS] = "status_code",
    [F_QUERY_PARAMS] = "query_params",
    [F_PARAMS_NORM] = "query_params_normalized",
    [F_REQUEST_SIZE] = "request_size_bytes",
    [F_RESPONSE_SIZE] = "response_size_bytes",
    [F_ERROR_TYPE] = "error_type",
    [F_CACHE_STATUS] = "cache_status",
    [F_DB_QUERY_COUNT] = "db_query_count",
};

/* Fields whose value is free text (must be UTF-8 without NUL); the others are numbers. */
static const bool field_is_text[F_COUNT] = {
    [F_ROUTE] = true,       [F_METHOD] = true,     [F_USER_ID] = true,      [F_QUERY_PARAMS] = true,
    [F_PARAMS_NORM] = true, [F_ERROR_TYPE] = true, [F_CACHE_STATUS] = true,
};

static const char empty_str[] = "";
static const char empty_object[] = "{}";

static inline bool name_is(const struct ru_str *n, enum field_id id)
{
    return memcmp(n->p, field_names[id], n->len) == 0;
}

static enum field_id lookup_field(const struct ru_str *n)
{
    switch (n->len) {
    case 5:
        return name_is(n, F_ROUTE) ? F_ROUTE : F_UNKNOWN;
    case 6:
        return name_is(n, F_METHOD) ? F_METHOD : F_UNKNOWN;
    case 7:
        return name_is(n, F_USER_ID) ? F_USER_ID : F_UNKNOWN;
    case 9:
        return name_is(n, F_TIMESTAMP) ? F_TIMESTAMP : F_UNKNOWN;
    case 10:
        return name_is(n, F_ERROR_TYPE) ? F_ERROR_TYPE : F_UNKNOWN;
    case 11:
        if (name_is(n, F_DURATION))
            return F_DURATION;
        return name_is(n, F_STATUS) ? F_STATUS : F_UNKNOWN;
    case 12:
        if (name_is(n, F_QUERY_PARAMS))
            return F_QUERY_PARAMS;
        return name_is(n, F_CACHE_STATUS) ? F_CACHE_STATUS : F_UNKNOWN;
    case 14:
        return name_is(n, F_DB_QUERY_COUNT) ? F_DB_QUERY_COUNT : F_UNKNOWN;
    case 18:
        return name_is(n, F_REQUEST_SIZE) ? F_REQUEST_SIZE : F_UNKNOWN;
    case 19:
        return name_is(n, F_RESPONSE_SIZE) ? F_RESPONSE_SIZE : F_UNKNOWN;
    case 23:
        return name_is(n, F_PARAMS_NORM) ? F_PARAMS_NORM : F_UNKNOWN;
    default:
        return F_UNKNOWN;
    }
}

static int bad(char *err, size_t errlen, const char *fmt, ...) RU_PRINTF(3, 4);

static int bad(char *err, size_t errlen, const char *fmt, ...)
{
    if (errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* A key field no compression can fit in PostgreSQL's index (RU_EVENT_MAX_KEY_FIELD). */
static int too_long(char *err, size_t errlen, const char *field)
{
    return bad(err, errlen,
               "%s is longer than %d bytes: too large for PostgreSQL's unique index even "
               "compressed",
               field, RU_EVENT_MAX_KEY_FIELD);
}

/* Integer text in [lo, hi]: 0, -1 not an integer, -2 out of range. */
static int parse_int_range(const struct ru_str *v, int64_t lo, int64_t hi, int32_t *out)
{
    /* the usual field: digits only, no sign */
    size_t end = 0;
    uint64_t u;
    if (v->len - 1 < 18 && ru_digits(v->p, &end, v->len, &u) == v->len) {
        if ((int64_t)u < lo || (int64_t)u > hi)
            return -2;
        *out = (int32_t)u;
        return 0;
    }
    int64_t x;
    if (ru_parse_i64(v->p, v->len, &x) < 0) {
        size_t i = v->len > 0 && (v->p[0] == '-' || v->p[0] == '+');
        if (i == v->len)
            return -1;
        for (; i < v->len; i++)
            if ((unsigned)(v->p[i] - '0') > 9)
                return -1;
        return -2; /* all digits: too large for int64 */
    }
    if (x < lo || x > hi)
        return -2;
    *out = (int32_t)x;
    return 0;
}

static int int_field(const struct ru_str *v, enum field_id id, int64_t lo, int64_t hi, int32_t *out,
                     char *err, size_t errlen)
{
    int rc = parse_int_range(v, lo, hi, out);
    if (rc == -1)
        return bad(err, errlen, "%s is not an integer", field_names[id]);
    if (rc == -2)
        return bad(err, errlen, "%s out of range", field_names[id]);
    return 0;
}

/* Optional integer: missing or "" -> *present = false. */
static int opt_int_field(const struct ru_str *v, enum field_id id, bool *present, int32_t *out,
                         char *err, size_t errlen)
{
    *present = false;
    *out = 0;
    if (v->p == NULL || v->len == 0)
        return 0;
    if (int_field(v, id, INT32_MIN, INT32_MAX, out, err, errlen) < 0)
        return -1;
    *present = true;
    return 0;
}

/* ---- timestamps ---- */

/* The common spelling, "seconds.micros" with at most 12 integer and 6 fraction digits:
 * exact without rounding. Returns false when the text is not of that form. */
static inline bool parse_ts_plain(const char *s, size_t len, int64_t *us)
{
    static const int64_t scale[7] = {1000000, 100000, 10000, 1000, 100, 10, 1};
    size_t i = 0;
    uint64_t secs, frac = 0;
    if (ru_digits(s, &i, len < 12 ? len : 12, &secs) == 0)
        return false;
    if (i < len) {
        size_t nf = len - i - 1;
        if (s[i++] != '.' || nf > 6 || nf == 0 || ru_digits(s, &i, len, &frac) != nf)
            return false;
        frac *= (uint64_t)scale[nf];
    }
    *us = (int64_t)(secs * 1000000 + frac);
    return true;
}

/* 0, -1 (not a number) or -2 (out of range). */
static int parse_ts(const char *s, size_t len, int64_t *us)
{
    if (parse_ts_plain(s, len, us))
        return *us > RU_EVENT_MAX_TS_US ? -2 : 0;

    size_t i = 0;
    bool neg = false;
    if (i < len && (s[i] == '+' || s[i] == '-')) {
        neg = s[i] == '-';
        i++;
    }
    size_t ip = i;
    while (i < len && (unsigned)(s[i] - '0') <= 9)
        i++;
    size_t ni = i - ip, fp = i, nf = 0;
    if (i < len && s[i] == '.') {
        fp = ++i;
        while (i < len && (unsigned)(s[i] - '0') <= 9)
            i++;
        nf = i - fp;
    }
    if (ni + nf == 0)
        return -1;
    int64_t e = 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        bool eneg = false;
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        size_t e0 = i;
        while (i < len && (unsigned)(s[i] - '0') <= 9) {
            if (e < 1000000000) /* saturate: far beyond any representable timestamp */
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

    /* digit string D = integer digits then fraction digits; value = D * 10^(e - nf) */
    size_t ntot = ni + nf, lead = 0, tail = ntot;
#define TS_DIGIT(k) (s[(k) < ni ? ip + (k) : fp + ((k)-ni)])
    while (lead < ntot && TS_DIGIT(lead) == '0')
        lead++;
    if (lead == ntot) {
        *us = 0;
        return 0;
    }
    while (TS_DIGIT(tail - 1) == '0')
        tail--;
    /* microseconds = sig * 10^k, sig = D[lead, tail) */
    int64_t nsig = (int64_t)(tail - lead);
    int64_t k = e - (int64_t)nf + (int64_t)(ntot - tail) + 6;
    if (nsig + k > 18)
        return -2; /* >= 10^18 us, beyond year 9999 */
    int64_t mag = 0;
    if (k >= 0) {
        for (size_t j = lead; j < tail; j++)
            mag = mag * 10 + (TS_DIGIT(j) - '0');
        for (int64_t j = 0; j < k; j++)
            mag *= 10;
    } else if (nsig + k >= 0) {
        size_t keep = (size_t)(nsig + k);
        for (size_t j = lead; j < lead + keep; j++)
            mag = mag * 10 + (TS_DIGIT(j) - '0');
        /* round half to even on the first dropped digit; later digits are non-zero iff any
         * remain, since trailing zeros were stripped */
        int d = TS_DIGIT(lead + keep) - '0';
        bool rest = lead + keep + 1 < tail;
        if (d > 5 || (d == 5 && (rest || (mag & 1))))
            mag++;
    }
    /* else: below 0.1 us, rounds to 0 */
#undef TS_DIGIT
    if (neg && mag != 0)
        return -2;
    if (mag > RU_EVENT_MAX_TS_US)
        return -2;
    *us = mag;
    return 0;
}

int ru_event_parse_ts(const char *s, size_t len, int64_t *us)
{
    return parse_ts(s, len, us) < 0 ? -1 : 0;
}

/* ---- UUIDs ---- */

/* Value of a hex digit (either case), -1 for any other byte. */
static const signed char hex_value[256] = {
    /* clang-format off */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
     0,  1,  2,  3,  4,  5,  6,  7,  8,  9, -1, -1, -1, -1, -1, -1,
    -1, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    /* clang-format on */
};

/* Whether all 8 bytes of w are lower-case hex digits, tested a word at a time: a byte
 * below 0x80 is '0'..'9' when adding 0x50 sets its top bit and adding 0x46 does not, and
 * 'a'..'f' likewise with 0x1f and 0x19 (no sum carries into the next byte). */
static inline bool word_lower_hex(uint64_t w)
{
    const uint64_t top = 0x8080808080808080ULL, ones = 0x0101010101010101ULL;
    uint64_t digit = (w + 0x50 * ones) & ~(w + 0x46 * ones);
    uint64_t lower = (w + 0x1f * ones) & ~(w + 0x19 * ones);
    return (w & top) == 0 && ((digit | lower) & top) == top;
}

/* Whether the 36 bytes at s are a UUID already in canonical form (lower-case hex, hyphens
 * at 8, 13, 18 and 23): what Python's str(uuid) writes, so nearly every user_id. */
static bool uuid_is_canonical(const char *s)
{
    if (s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-')
        return false;
    char hex[32];
    memcpy(hex, s, 8);
    memcpy(hex + 8, s + 9, 4);
    memcpy(hex + 12, s + 14, 4);
    memcpy(hex + 16, s + 19, 4);
    memcpy(hex + 20, s + 24, 12);
    uint64_t w[4];
    memcpy(w, hex, sizeof(w));
    return word_lower_hex(w[0]) && word_lower_hex(w[1]) && word_lower_hex(w[2]) &&
           word_lower_hex(w[3]);
}

int ru_event_uuid_canon(const char *s, size_t len, char out[37])
{
    if (len == 36 && uuid_is_canonical(s)) {
        memcpy(out, s, 36);
        out[36] = '\0';
        return 0;
    }
    static const char hex[] = "0123456789abcdef";
    size_t i = 0, o = 0;
    bool braces = false;
    if (len > 0 && s[0] == '{') {
        braces = true;
        i = 1;
    }
    /* as PostgreSQL's string_to_uuid: 16 hex pairs, a '-' allowed after every second pair
     * except the last */
    for (int pair = 0; pair < 16; pair++) {
        if (len - i < 2)
            return -1;
        signed char hi = hex_value[(unsigned char)s[i]], lo = hex_value[(unsigned char)s[i + 1]];
        if ((hi | lo) < 0)
            return -1;
        i += 2;
        if (pair == 4 || pair == 6 || pair == 8 || pair == 10)
            out[o++] = '-';
        out[o++] = hex[(int)hi];
        out[o++] = hex[(int)lo];
        if (i < len && s[i] == '-' && (pair % 2) == 1 && pair < 15)
            i++;
    }
    if (braces) {
        if (i >= len || s[i] != '}')
            return -1;
        i++;
    }
    if (i != len)
        return -1;
    out[36] = '\0';
    return 0;
}

/* ---- formatting ---- */

static char *put_uint(char *p, int64_t v, int width)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    while (n < width)
        tmp[n++] = '0';
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

size_t ru_event_format_ts(int64_t us, char *buf)
{
    /* floor division so that times before the epoch also come out right */
    int64_t days = us / 86400000000LL, rem = us % 86400000000LL;
    if (rem < 0) {
        rem += 86400000000LL;
        days--;
    }
    /* civil_from_days (H. Hinnant), proleptic Gregorian */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;

    int64_t secs = rem / 1000000, frac = rem % 1000000;
    char *p = buf;
    if (y < 0) {
        *p++ = '-';
        y = -y;
    }
    p = put_uint(p, y, 4);
    *p++ = '-';
    p = put_uint(p, m, 2);
    *p++ = '-';
    p = put_uint(p, d, 2);
    *p++ = ' ';
    p = put_uint(p, secs / 3600, 2);
    *p++ = ':';
    p = put_uint(p, secs / 60 % 60, 2);
    *p++ = ':';
    p = put_uint(p, secs % 60, 2);
    if (frac != 0) {
        *p++ = '.';
        p = put_uint(p, frac, 6);
    }
    *p = '\0';
    return (size_t)(p - buf);
}

/* ---- the entry ---- */

/* Drops what was appended to b after offset len. */
static void truncate_to(struct ru_buf *b, size_t len)
{
    b->len = len;
    if (b->p != NULL)
        b->p[len] = '\0';
}

/* Bits that show a byte of w is NUL (the usual test: exact on whether there is one) or
 * not ASCII: none of them set in (w - 0x01..) & ~w | w at 0x80 of each byte. */
static inline uint64_t not_plain(uint64_t w)
{
    return ((w - 0x0101010101010101ULL) & ~w) | w;
}

static inline uint64_t load64(const char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

/* True when the len bytes at s are ASCII and none is NUL, read eight bytes at a time
 * (32 per test), the tail as one overlapping word; fields under 8 bytes byte by byte. */
static inline bool text_plain(const char *s, size_t len)
{
    const uint64_t top = 0x8080808080808080ULL;
    if (len < 8) {
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)s[i] - 1u >= 0x7fu)
                return false;
        return true;
    }
    uint64_t bad = 0;
    size_t i = 0;
    for (; i + 32 <= len; i += 32) {
        bad |= not_plain(load64(s + i)) | not_plain(load64(s + i + 8)) |
               not_plain(load64(s + i + 16)) | not_plain(load64(s + i + 24));
        if (bad & top)
            return false;
    }
    for (; i + 8 <= len; i += 8)
        bad |= not_plain(load64(s + i));
    return ((bad | not_plain(load64(s + len - 8))) & top) == 0;
}

/* A text field: no NUL byte, valid UTF-8. ASCII without NUL (the usual case) is checked
 * a word at a time; anything else byte by byte, for the reason. */
static int check_text(const struct ru_str *v, enum field_id id, char *err, size_t errlen)
{
    const char *s = v->p;
    size_t len = v->len, i = 0;
    if (text_plain(s, len))
        return 0;
    for (; i < len && (unsigned char)s[i] < 0x80; i++)
        if (s[i] == '\0')
            return bad(err, errlen, "%s contains a NUL byte", field_names[id]);
    if (i == len)
        return 0;
    if (memchr(s + i, '\0', len - i) != NULL)
        return bad(err, errlen, "%s contains a NUL byte", field_names[id]);
    if (!ru_utf8_valid(s + i, len - i))
        return bad(err, errlen, "%s is not valid UTF-8", field_names[id]);
    return 0;
}

int ru_event_parse(struct ru_event *ev, const struct ru_field *fields, size_t nfields,
                   struct ru_buf *scratch, char *err, size_t errlen)
{
    return ru_event_parse_cached(ev, fields, nfields, scratch, NULL, RU_EVENT_RAW, err, errlen);
}

int ru_event_parse_cached(struct ru_event *ev, const struct ru_field *fields, size_t nfields,
                          struct ru_buf *scratch, struct ru_pcache *cache, unsigned flags,
                          char *err, size_t errlen)
{
    struct ru_str f[F_COUNT];
    for (int id = 0; id < F_COUNT; id++) /* a memset here compiled to rep stos (GCC -O2) */
        f[id] = (struct ru_str){NULL, 0};

    for (size_t i = 0; i < nfields; i++) {
        enum field_id id = lookup_field(&fields[i].name);
        if (id == F_UNKNOWN)
            continue;
        if (f[id].p != NULL)
            return bad(err, errlen, "field '%s' repeated", field_names[id]);
        f[id] = fields[i].value;
        if (f[id].p == NULL)
            f[id].p = empty_str; /* present, even if the reply gave no pointer */
    }
    for (int id = 0; id < F_COUNT; id++) {
        if (f[id].p == NULL)
            continue;
        if (id == F_ROUTE || id == F_PARAMS_NORM) {
            if (f[id].len > RU_EVENT_MAX_KEY_FIELD)
                return too_long(err, errlen, field_names[id]);
        } else if (f[id].len > RU_EVENT_MAX_VALUE) {
            return bad(err, errlen, "%s is too long", field_names[id]);
        }
        if (field_is_text[id] && check_text(&f[id], (enum field_id)id, err, errlen) < 0)
            return -1;
    }

    /* route */
    if (f[F_ROUTE].p == NULL)
        return bad(err, errlen, "route is missing");
    if (f[F_ROUTE].len == 0)
        return bad(err, errlen, "route is empty");
    ev->route = f[F_ROUTE];

    /* method */
    if (f[F_METHOD].p == NULL) {
        ev->method.p = "GET";
        ev->method.len = 3;
    } else {
        if (f[F_METHOD].len > RU_EVENT_MAX_METHOD &&
            ru_utf8_chars(f[F_METHOD].p, f[F_METHOD].len) > RU_EVENT_MAX_METHOD)
            return bad(err, errlen, "method is longer than %d characters", RU_EVENT_MAX_METHOD);
        ev->method = f[F_METHOD];
    }

    /* timestamp */
    if (f[F_TIMESTAMP].p == NULL)
        return bad(err, errlen, "timestamp is missing");
    int rc = parse_ts(f[F_TIMESTAMP].p, f[F_TIMESTAMP].len, &ev->ts_us);
    if (rc == -1)
        return bad(err, errlen, "timestamp is not a number");
    if (rc == -2)
        return bad(err, errlen, "timestamp out of range");
    ev->hour_us = ev->ts_us / RU_USECS_PER_HOUR * RU_USECS_PER_HOUR;

    /* duration, status */
    if (f[F_DURATION].p == NULL)
        return bad(err, errlen, "duration_ms is missing");
    if (int_field(&f[F_DURATION], F_DURATION, INT32_MIN, INT32_MAX, &ev->duration_ms, err, errlen) <
        0)
        return -1;
    if (f[F_STATUS].p == NULL)
        return bad(err, errlen, "status_code is missing");
    if (int_field(&f[F_STATUS], F_STATUS, -32768, 32767, &ev->status_code, err, errlen) < 0)
        return -1;

    /* sizes, db_query_count */
    bool present;
    if (opt_int_field(&f[F_REQUEST_SIZE], F_REQUEST_SIZE, &present, &ev->request_size, err,
                      errlen) < 0)
        return -1;
    if (opt_int_field(&f[F_RESPONSE_SIZE], F_RESPONSE_SIZE, &present, &ev->response_size, err,
                      errlen) < 0)
        return -1;
    if (opt_int_field(&f[F_DB_QUERY_COUNT], F_DB_QUERY_COUNT, &ev->has_db_query_count,
                      &ev->db_query_count, err, errlen) < 0)
        return -1;

    /* error_type, cache_status: "" and missing are both NULL */
    ev->error_type = f[F_ERROR_TYPE].p != NULL ? f[F_ERROR_TYPE] : (struct ru_str){empty_str, 0};
    ev->cache_status =
        f[F_CACHE_STATUS].p != NULL ? f[F_CACHE_STATUS] : (struct ru_str){empty_str, 0};

    /* From here on strings are appended to scratch: remember offsets, not pointers. */
    size_t base = scratch->len, uid_off = 0, params_off = 0, params_len = 0;
    bool uid_in_scratch = false, params_in_scratch = false;

    /* user_id */
    ev->user_is_uuid = false;
    ev->user_id = (struct ru_str){empty_str, 0};
    if (f[F_USER_ID].p != NULL && f[F_USER_ID].len > 0) {
        char uuid[37];
        if (ru_event_uuid_canon(f[F_USER_ID].p, f[F_USER_ID].len, uuid) == 0) {
            uid_off = scratch->len;
            ru_buf_append(scratch, uuid, 36);
            uid_in_scratch = true;
            ev->user_is_uuid = true;
        } else {
            ev->user_id = f[F_USER_ID];
        }
    }

    /* query_params_normalized */
    if (f[F_PARAMS_NORM].p == NULL) {
        ev->params_canon = (struct ru_str){empty_object, 2};
    } else {
        char jerr[128];
        params_off = scratch->len;
        if (ru_pcache_canon(cache, f[F_PARAMS_NORM].p, f[F_PARAMS_NORM].len, true, scratch, jerr,
                            sizeof(jerr)) < 0) {
            truncate_to(scratch, base);
            return bad(err, errlen, "query_params_normalized: %s", jerr);
        }
        params_len = scratch->len - params_off;
        if (params_len > RU_EVENT_MAX_KEY_FIELD) {
            truncate_to(scratch, base);
            return too_long(err, errlen, field_names[F_PARAMS_NORM]);
        }
        params_in_scratch = true;
    }

    /* query_params: kept as given; only record whether jsonb would accept it, for a raw
     * row */
    if (f[F_QUERY_PARAMS].p == NULL) {
        ev->query_params = (struct ru_str){empty_object, 2};
        ev->query_params_json = (flags & RU_EVENT_RAW) != 0;
    } else if (!(flags & RU_EVENT_RAW)) {
        ev->query_params = f[F_QUERY_PARAMS];
        ev->query_params_json = false;
    } else {
        const struct ru_str *qp = &f[F_QUERY_PARAMS];
        ev->query_params = *qp;
        if (params_in_scratch && qp->len == f[F_PARAMS_NORM].len &&
            memcmp(qp->p, f[F_PARAMS_NORM].p, qp->len) == 0) {
            ev->query_params_json = true; /* same text, already accepted */
        } else if (qp->len == 2 && qp->p[0] == '{' && qp->p[1] == '}') {
            ev->query_params_json = true;
        } else {
            size_t mark = scratch->len;
            char jerr[8];
            ev->query_params_json =
                ru_pcache_canon(cache, qp->p, qp->len, false, scratch, jerr, sizeof(jerr)) == 0;
            truncate_to(scratch, mark);
        }
    }

    /* all appends are done: scratch->p is final */
    if (uid_in_scratch)
        ev->user_id = (struct ru_str){scratch->p + uid_off, 36};
    if (params_in_scratch)
        ev->params_canon = (struct ru_str){scratch->p + params_off, params_len};
    ev->key_long = ev->route.len + ev->method.len + 6 * ev->params_canon.len > RU_EVENT_SURE_KEY;
    return 0;
}
