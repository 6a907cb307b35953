/* Unit tests for json: canonical form under PostgreSQL jsonb equality. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "rollupd/json.h"

/* Canonical text of s (malloc'd), or NULL with the reason in err. */
static char *canon_n(const char *s, size_t len, bool require_object, char *err, size_t errlen)
{
    struct ru_buf b = RU_BUF_INIT;
    err[0] = '\0';
    if (ru_json_canon(s, len, require_object, &b, err, errlen) < 0) {
        cr_assert_eq(b.len, 0, "failure left output behind for %s", s);
        ru_buf_free(&b);
        return NULL;
    }
    char *r = ru_xstrndup(b.p, b.len);
    cr_assert_eq(strlen(r), b.len, "canonical text holds a NUL byte");
    ru_buf_free(&b);
    return r;
}

static char *canon(const char *s, bool require_object)
{
    char err[256];
    char *r = canon_n(s, strlen(s), require_object, err, sizeof(err));
    cr_assert_not_null(r, "refused %s: %s", s, err);
    return r;
}

/* Canonicalising a canonical text gives it back unchanged. */
static void assert_idempotent(const char *c)
{
    char *again = canon(c, false);
    cr_assert_str_eq(again, c, "canonical form is not a fixed point");
    free(again);
}

Test(json, canonical_forms)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"{}", "{}"},
        {" \t\r\n{ } \n", "{}"},
        {"[]", "[]"},
        {"{\"sort\": \"name-asc\", \"page_size\": \"20\"}",
         "{\"sort\":\"name-asc\",\"page_size\":\"20\"}"},
        {"{\"page_size\": \"20\", \"sort\": \"name-asc\"}",
         "{\"sort\":\"name-asc\",\"page_size\":\"20\"}"},
        {"{\"user_id\": \"121e194b-4caa-4b81-ad4f-86ca3919d5b9\"}",
         "{\"user_id\":\"121e194b-4caa-4b81-ad4f-86ca3919d5b9\"}"},
        {"{\"tag\": [\"dfbb88fc-3c31-468f-a2d7-99605206c985\", "
         "\"5381f5b4-883d-4c0e-901a-dea53bb98e35\"], \"page_size\": \"25\", \"search_term\": "
         "\"\\\"grumpy cat\\\"\", \"include_stats\": \"false\"}",
         "{\"tag\":[\"dfbb88fc-3c31-468f-a2d7-99605206c985\",\"5381f5b4-883d-4c0e-901a-"
         "dea53bb98e35\"],\"page_size\":\"25\",\"search_term\":\"\\\"grumpy cat\\\"\","
         "\"include_stats\":\"false\"}"},
        /* keys: shorter first, then bytewise */
        {"{\"bb\":1,\"a\":2,\"ab\":3,\"b\":4}", "{\"a\":2,\"b\":4,\"ab\":3,\"bb\":1}"},
        /* duplicate keys: the last value wins, wherever it is */
        {"{\"a\":1,\"b\":2,\"a\":3}", "{\"a\":3,\"b\":2}"},
        {"{\"a\":1,\"a\":2,\"a\":{\"x\":[1]}}", "{\"a\":{\"x\":[1]}}"},
        /* scalars */
        {"true", "true"},
        {" false ", "false"},
        {"null", "null"},
        {"\"x\"", "\"x\""},
        /* numbers */
        {"0", "0"},
        {"-0", "0"},
        {"-0.000e7", "0"},
        {"1", "1"},
        {"-17", "-17"},
        {"1.0", "1"},
        {"1e0", "1"},
        {"10E-1", "1"},
        {"0.1e1", "1"},
        {"1.5e3", "1500"},
        {"1E+2", "100"},
        {"100", "100"},
        {"25e-4", "0.0025"},
        {"123.4500", "123.45"},
        {"-12.5e1", "-125"},
        {"0.000001", "0.000001"},
        {"1e-3", "0.001"},
        {"12345678901234567890.123456789012345678901",
         "12345678901234567890.123456789012345678901"},
        /* strings: minimal escapes, raw UTF-8 */
        {"\"\\u00e9\"", "\"\xc3\xa9\""},
        {"\"\\/\"", "\"/\""},
        {"\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\""},
        {"\"\\u0041\\u005C\\u0022\"", "\"A\\\\\\\"\""},
        {"\"\\b\\f\\n\\r\\t\\u0001\\u001F\\u007f\"", "\"\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\""},
        {"\"\\u0008\\u000c\\u000A\\u000d\\u0009\"", "\"\\b\\f\\n\\r\\t\""},
        {"\"\\u2028 \\uFFFF \\uD800\\uDC00\"", "\"\xe2\x80\xa8 \xef\xbf\xbf \xf0\x90\x80\x80\""},
        {"[1, [2, {\"b\": null, \"a\": true}], \"x\"]", "[1,[2,{\"a\":true,\"b\":null}],\"x\"]"},
    };
    for (size_t i = 0; i < RU_ARRAY_LEN(cases); i++) {
        char *c = canon(cases[i].in, false);
        cr_assert_str_eq(c, cases[i].out, "case %zu: %s", i, cases[i].in);
        assert_idempotent(c);
        free(c);
    }
}

/* Pairs PostgreSQL considers equal as jsonb (checked against PostgreSQL 15). */
static const char *const equal_pairs[][2] = {
    {"{\"a\":1,\"b\":2}", "{\"b\":2,\"a\":1}"},
    {"{\"sort\": \"name-asc\", \"page_size\": \"20\"}",
     "{\"page_size\":\"20\",\"sort\":\"name-asc\"}"},
    {" {\n\t\"a\" : [ 1 , 2 ] \r} ", "{\"a\":[1,2]}"},
    {"1", "1.0"},
    {"1", "1e0"},
    {"1", "10E-1"},
    {"1", "0.1e1"},
    {"1", "1.00"},
    {"-0", "0"},
    {"-0.0", "0e10"},
    {"[1.50, 2e2]", "[1.5, 200]"},
    {"{\"n\": 0.0025}", "{\"n\": 25e-4}"},
    {"\"\\u00e9\"", "\"\xc3\xa9\""},
    {"\"\\u00E9\"", "\"\\u00e9\""},
    {"\"\\/\"", "\"/\""},
    {"\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\""},
    {"\"\\u0041\"", "\"A\""},
    {"\"\\u001f\"", "\"\\u001F\""},
    {"\"\\n\"", "\"\\u000a\""},
    {"{\"\\u00e9\":1}", "{\"\xc3\xa9\":1}"},
    {"{\"a\":1,\"a\":2}", "{\"a\":2}"},
    {"{\"a\":{\"x\":1,\"y\":2},\"a\":3}", "{\"a\":3}"},
    {"{\"o\":{\"z\":{\"b\":1,\"a\":2},\"y\":[{\"d\":1,\"c\":2}]}}",
     "{\"o\":{\"y\":[{\"c\":2,\"d\":1}],\"z\":{\"a\":2,\"b\":1}}}"},
    {"[true,false,null]", "[ true , false , null ]"},
};

Test(json, equal_pairs)
{
    for (size_t i = 0; i < RU_ARRAY_LEN(equal_pairs); i++) {
        char *a = canon(equal_pairs[i][0], false), *b = canon(equal_pairs[i][1], false);
        cr_assert_str_eq(a, b, "pair %zu: %s vs %s", i, equal_pairs[i][0], equal_pairs[i][1]);
        assert_idempotent(a);
        free(a);
        free(b);
    }
}

/* Pairs that are not equal as jsonb. */
static const char *const different_pairs[][2] = {
    {"{\"a\":1}", "{\"a\":\"1\"}"},
    {"[1,2]", "[2,1]"},
    {"0.1", "0.10000000000000000001"},
    {"1", "-1"},
    {"10", "1"},
    {"100", "0.01"},
    {"{\"a\":1}", "{\"A\":1}"},
    {"{\"a\":1}", "{\"a\":1,\"b\":1}"},
    {"{}", "[]"},
    {"null", "\"null\""},
    {"true", "\"true\""},
    {"[]", "[[]]"},
    {"\"a\"", "\"a \""},
    {"\"\\u00e9\"", "\"e\xcc\x81\""}, /* precomposed vs combining: no normalisation */
    {"{\"a\":{\"b\":1}}", "{\"a\":{\"b\":1},\"b\":1}"},
    {"{\"a\":1,\"a\":2}", "{\"a\":1}"},
    {"[\"a,b\"]", "[\"a\",\"b\"]"},
    {"{\"a\":\"b\",\"c\":\"d\"}", "{\"a\":\"b,c:d\"}"},
};

Test(json, different_pairs)
{
    for (size_t i = 0; i < RU_ARRAY_LEN(different_pairs); i++) {
        char *a = canon(different_pairs[i][0], false), *b = canon(different_pairs[i][1], false);
        cr_assert_str_neq(a, b, "pair %zu: %s vs %s", i, different_pairs[i][0],
                          different_pairs[i][1]);
        assert_idempotent(a);
        assert_idempotent(b);
        free(a);
        free(b);
    }
}

Test(json, refusals)
{
    static const struct {
        const char *in;
        size_t len; /* 0: strlen */
        bool require_object;
        const char *reason; /* expected prefix of the reason */
    } cases[] = {
        {"", 0, false, "unexpected end of input at byte 0"},
        {"   ", 0, false, "unexpected end of input at byte 3"},
        {"{", 0, false, "unexpected end of input at byte 1"},
        {"{\"a\":1,}", 0, false, "unexpected character '}' at byte 7"},
        {"{\"a\" 1}", 0, false, "unexpected character '1' at byte 5"},
        {"{\"a\":1 \"b\":2}", 0, false, "unexpected character '\"' at byte 7"},
        {"{a:1}", 0, false, "unexpected character 'a' at byte 1"},
        {"[1,]", 0, false, "unexpected character ']' at byte 3"},
        {"[1 2]", 0, false, "unexpected character '2' at byte 3"},
        {"{} {}", 0, false, "unexpected character '{' at byte 3"},
        {"{}x", 0, false, "unexpected character 'x' at byte 2"},
        {"\"abc", 0, false, "unterminated string at byte 0"},
        {"\"a\\", 0, false, "unterminated string at byte 0"},
        {"\"\\x\"", 0, false, "invalid escape at byte 1"},
        {"\"\\u12\"", 0, false, "invalid \\u escape at byte 1"},
        {"\"\\u12g4\"", 0, false, "invalid \\u escape at byte 1"},
        {"\"a\tb\"", 0, false, "unescaped control character 0x09 in string at byte 2"},
        {"\"a\nb\"", 0, false, "unescaped control character 0x0a in string at byte 2"},
        {"tru", 0, false, "invalid literal at byte 0"},
        {"True", 0, false, "unexpected character 'T' at byte 0"},
        {"nul", 0, false, "invalid literal at byte 0"},
        {"truex", 0, false, "unexpected character 'x' at byte 4"},
        {"'a'", 0, false, "unexpected character ''' at byte 0"},
        {"01", 0, false, "unexpected character '1' at byte 1"},
        {"-", 0, false, "invalid number at byte 0"},
        {"-a", 0, false, "invalid number at byte 0"},
        {"+1", 0, false, "unexpected character '+' at byte 0"},
        {"1.", 0, false, "invalid number at byte 0"},
        {".5", 0, false, "unexpected character '.' at byte 0"},
        {"1e", 0, false, "invalid number at byte 0"},
        {"1e+", 0, false, "invalid number at byte 0"},
        {"NaN", 0, false, "unexpected character 'N' at byte 0"},
        {"Infinity", 0, false, "unexpected character 'I' at byte 0"},
        {"0x10", 0, false, "unexpected character 'x' at byte 1"},
        {"\f1", 0, false, "unexpected byte 0x0c at byte 0"},
        {"\xc2\xa0"
         "1",
         0, false, "unexpected byte 0xc2 at byte 0"},
        /* jsonb refusals */
        {"\"\\u0000\"", 0, false, "\\u0000 is not allowed at byte 1"},
        {"{\"a\\u0000\":1}", 0, false, "\\u0000 is not allowed at byte 3"},
        {"\"\\ud800\"", 0, false, "unpaired surrogate escape at byte 1"},
        {"\"\\ud83d x\"", 0, false, "unpaired surrogate escape at byte 1"},
        {"\"\\ud83d\\u0041\"", 0, false, "unpaired surrogate escape at byte 1"},
        {"\"\\ud83d\\ud83d\"", 0, false, "unpaired surrogate escape at byte 1"},
        {"\"\\ude00\"", 0, false, "unpaired surrogate escape at byte 1"},
        {"\"\\ude00\\ud83d\"", 0, false, "unpaired surrogate escape at byte 1"},
        {"1e999999", 0, false, "number out of range at byte 0"},
        {"[1e1000]", 0, false, "number out of range at byte 1"},
        {"1e-1000", 0, false, "number out of range at byte 0"},
        {"1e1073741823", 0, false, "number out of range at byte 0"},
        {"0e1073741823", 0, false, "number out of range at byte 0"},
        {"1e-99999999999999999999", 0, false, "number out of range at byte 0"},
        {"0e-16384", 0, false, "number out of range at byte 0"},
        /* invalid UTF-8 */
        {"\"\xff\"", 0, false, "invalid UTF-8 at byte 1"},
        {"\"\xc3\"", 0, false, "invalid UTF-8 at byte 1"},
        {"\"\xc0\xaf\"", 0, false, "invalid UTF-8 at byte 1"},         /* overlong '/' */
        {"\"\xe0\x80\xaf\"", 0, false, "invalid UTF-8 at byte 1"},     /* overlong */
        {"\"\xed\xa0\x80\"", 0, false, "invalid UTF-8 at byte 1"},     /* surrogate */
        {"\"\xf4\x90\x80\x80\"", 0, false, "invalid UTF-8 at byte 1"}, /* > U+10FFFF */
        {"{\"k\":\"ok\",\"\x80\":1}", 0, false, "invalid UTF-8 at byte 11"},
        {"\"a\0b\"", 5, false, "unescaped control character 0x00 in string at byte 2"},
        {"{}\0", 3, false, "unexpected byte 0x00 at byte 2"},
        /* require_object */
        {"[]", 0, true, "not a JSON object"},
        {" \"{}\"", 0, true, "not a JSON object"},
        {"1", 0, true, "not a JSON object"},
        {"null", 0, true, "not a JSON object"},
        {"", 0, true, "unexpected end of input at byte 0"},
        {"{\"a\":}", 0, true, "unexpected character '}' at byte 5"},
    };
    for (size_t i = 0; i < RU_ARRAY_LEN(cases); i++) {
        char err[256];
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].in);
        char *r = canon_n(cases[i].in, len, cases[i].require_object, err, sizeof(err));
        cr_assert_null(r, "case %zu accepted: %s -> %s", i, cases[i].in, r);
        cr_assert(strncmp(err, cases[i].reason, strlen(cases[i].reason)) == 0,
                  "case %zu (%s): reason \"%s\", expected \"%s\"", i, cases[i].in, err,
                  cases[i].reason);
        cr_assert(strchr(err, '\n') == NULL, "reason is not one line");
    }
}

Test(json, require_object_accepts_objects)
{
    char *c = canon(" {\"b\":[1,2],\"a\":{}} ", true);
    cr_assert_str_eq(c, "{\"a\":{},\"b\":[1,2]}");
    free(c);
}

/* "[[...]]" / {"a":{"a":...}} with n levels. */
static char *nested(int n, bool objects)
{
    struct ru_buf b = RU_BUF_INIT;
    for (int i = 0; i < n; i++)
        ru_buf_puts(&b, objects ? "{\"a\":" : "[");
    ru_buf_puts(&b, "1");
    for (int i = 0; i < n; i++)
        ru_buf_putc(&b, objects ? '}' : ']');
    return b.p;
}

Test(json, depth_limit)
{
    for (int objects = 0; objects <= 1; objects++) {
        char *ok = nested(RU_JSON_MAX_DEPTH, objects);
        char *c = canon(ok, false);
        cr_assert_str_eq(c, ok, "depth %d", RU_JSON_MAX_DEPTH);
        free(c);
        free(ok);

        char *deep = nested(RU_JSON_MAX_DEPTH + 1, objects), err[256];
        char *r = canon_n(deep, strlen(deep), false, err, sizeof(err));
        cr_assert_null(r);
        cr_assert(strstr(err, "nesting too deep") != NULL, "%s", err);
        free(deep);
    }
    /* very deep input is refused quickly, without recursing further */
    struct ru_buf b = RU_BUF_INIT;
    for (int i = 0; i < 100000; i++)
        ru_buf_putc(&b, '[');
    char err[256];
    cr_assert_null(canon_n(b.p, b.len, false, err, sizeof(err)));
    cr_assert_str_eq(err, "nesting too deep at byte 64");
    ru_buf_free(&b);
}

Test(json, number_limits)
{
    char err[256];
    /* 1000 canonical digits are accepted, 1001 are not */
    char *c = canon("1e999", false);
    cr_assert_eq(strlen(c), 1000);
    cr_assert_eq(c[0], '1');
    cr_assert_eq(strspn(c + 1, "0"), 999);
    assert_idempotent(c);
    free(c);
    c = canon("-1e-999", false); /* "-0." + 998 zeros + "1": 1000 digits */
    cr_assert_eq(strlen(c), 1002);
    cr_assert(strncmp(c, "-0.000", 6) == 0);
    assert_idempotent(c);
    free(c);
    cr_assert_null(canon_n("1e1000", 6, false, err, sizeof(err)));
    cr_assert_null(canon_n("-1e-1000", 8, false, err, sizeof(err)));

    struct ru_buf b = RU_BUF_INIT;
    for (int i = 0; i < 1000; i++)
        ru_buf_putc(&b, (char)('1' + i % 9));
    c = canon(b.p, false);
    cr_assert_str_eq(c, b.p);
    free(c);
    ru_buf_putc(&b, '1');
    cr_assert_null(canon_n(b.p, b.len, false, err, sizeof(err)));
    cr_assert_str_eq(err, "number out of range at byte 0");
    ru_buf_reset(&b);

    /* zeros are fine whatever their exponent, within numeric's display-scale limit */
    c = canon("0e-16383", false);
    cr_assert_str_eq(c, "0");
    free(c);
    c = canon("0e1073741822", false);
    cr_assert_str_eq(c, "0");
    free(c);
    /* trailing zeros count towards numeric's display scale (at most 16383) */
    ru_buf_puts(&b, "1.");
    for (int i = 0; i < 16383; i++)
        ru_buf_putc(&b, '0');
    c = canon(b.p, false);
    cr_assert_str_eq(c, "1");
    free(c);
    ru_buf_putc(&b, '0');
    cr_assert_null(canon_n(b.p, b.len, false, err, sizeof(err)));
    /* ... unless an exponent takes them back */
    ru_buf_puts(&b, "e1");
    c = canon(b.p, false);
    cr_assert_str_eq(c, "10");
    free(c);
    ru_buf_free(&b);
}

Test(json, large_objects)
{
    /* more members than the on-stack index holds, in reverse order, each key twice */
    struct ru_buf in = RU_BUF_INIT, want = RU_BUF_INIT;
    ru_buf_putc(&in, '{');
    for (int i = 199; i >= 0; i--)
        ru_buf_printf(&in, "\"k%03d\": %d, ", i, -i);
    for (int i = 199; i >= 0; i--)
        ru_buf_printf(&in, "\"k%03d\": [%d.0]%s", i, i, i ? ", " : "}");
    ru_buf_putc(&want, '{');
    for (int i = 0; i < 200; i++)
        ru_buf_printf(&want, "\"k%03d\":[%d]%s", i, i, i < 199 ? "," : "}");
    char *c = canon(in.p, true);
    cr_assert_str_eq(c, want.p);
    assert_idempotent(c);
    free(c);

    /* already sorted, no duplicates: the in-place path */
    c = canon(want.p, true);
    cr_assert_str_eq(c, want.p);
    free(c);

    /* nested objects inside a large object, with long string values */
    ru_buf_reset(&in);
    ru_buf_putc(&in, '{');
    for (int i = 0; i < 40; i++)
        ru_buf_printf(&in, "%s\"%c%d\":{\"y\":\"%0200d\",\"x\":%d}", i ? "," : "",
                      'a' + (i * 7) % 26, i, i, i);
    ru_buf_putc(&in, '}');
    c = canon(in.p, true);
    assert_idempotent(c);
    cr_assert(strstr(c, "\"a0\":{\"x\":0,\"y\":\"") != NULL);
    free(c);
    ru_buf_free(&in);
    ru_buf_free(&want);
}

Test(json, appends_and_restores_output)
{
    struct ru_buf b = RU_BUF_INIT;
    char err[128];
    ru_buf_puts(&b, "prefix|");
    cr_assert_eq(ru_json_canon("{\"b\":1,\"a\":2}", 13, true, &b, err, sizeof(err)), 0);
    cr_assert_str_eq(b.p, "prefix|{\"a\":2,\"b\":1}");
    size_t len = b.len;
    cr_assert_eq(ru_json_canon("{\"b\":1,\"a\":[1,2,{\"c\":", 21, true, &b, err, sizeof(err)), -1);
    cr_assert_eq(b.len, len);
    cr_assert_str_eq(b.p, "prefix|{\"a\":2,\"b\":1}");
    /* a zero-sized err buffer is not written to */
    cr_assert_eq(ru_json_canon("[", 1, false, &b, err, 0), -1);
    ru_buf_free(&b);

    /* a failure on an empty buffer leaves it empty */
    struct ru_buf e = RU_BUF_INIT;
    cr_assert_eq(ru_json_canon("[1,", 3, false, &e, err, sizeof(err)), -1);
    cr_assert_eq(e.len, 0);
    ru_buf_free(&e);
}

Test(json, input_is_length_bounded)
{
    /* only [s, s+len) is read: the rest of the C string is ignored */
    const char *s = "{\"a\":1}garbage";
    struct ru_buf b = RU_BUF_INIT;
    char err[128];
    cr_assert_eq(ru_json_canon(s, 7, true, &b, err, sizeof(err)), 0);
    cr_assert_str_eq(b.p, "{\"a\":1}");
    ru_buf_free(&b);
}
