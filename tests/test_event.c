/* Unit tests for event: stream entry -> struct ru_event. */
#include <criterion/criterion.h>

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rollupd/event.h"

#define MAXF 32

/* An entry under construction: field/value pairs (binary-safe). */
struct entry {
    struct ru_field f[MAXF];
    size_t n;
};

static void add_n(struct entry *e, const char *name, const char *value, size_t len)
{
    cr_assert_lt(e->n, MAXF);
    e->f[e->n].name = (struct ru_str){name, strlen(name)};
    e->f[e->n].value = (struct ru_str){value, len};
    e->n++;
}

static void add(struct entry *e, const char *name, const char *value)
{
    add_n(e, name, value, strlen(value));
}

static void del(struct entry *e, const char *name)
{
    for (size_t i = 0; i < e->n; i++) {
        if (strcmp(e->f[i].name.p, name) == 0) {
            memmove(&e->f[i], &e->f[i + 1], (e->n - i - 1) * sizeof(e->f[0]));
            e->n--;
            return;
        }
    }
    cr_assert_fail("no field %s", name);
}

static void set(struct entry *e, const char *name, const char *value)
{
    for (size_t i = 0; i < e->n; i++) {
        if (strcmp(e->f[i].name.p, name) == 0) {
            e->f[i].value = (struct ru_str){value, strlen(value)};
            return;
        }
    }
    add(e, name, value);
}

/* The first event of genonaut's sample (route_analytics.tsv, id 1), as the middleware
 * writes it to the stream. */
static struct entry genonaut_entry(void)
{
    struct entry e = {.n = 0};
    add(&e, "route", "/api/v1/notifications/unread/count");
    add(&e, "method", "GET");
    add(&e, "user_id", "121e194b-4caa-4b81-ad4f-86ca3919d5b9");
    add(&e, "timestamp", "1761235223.315774");
    add(&e, "duration_ms", "111");
    add(&e, "status_code", "200");
    add(&e, "query_params", "{\"user_id\": \"121e194b-4caa-4b81-ad4f-86ca3919d5b9\"}");
    add(&e, "query_params_normalized", "{\"user_id\": \"121e194b-4caa-4b81-ad4f-86ca3919d5b9\"}");
    add(&e, "request_size_bytes", "0");
    add(&e, "response_size_bytes", "18");
    add(&e, "error_type", "");
    add(&e, "cache_status", "");
    return e;
}

/* Minimal entry: only the required fields. */
static struct entry minimal_entry(void)
{
    struct entry e = {.n = 0};
    add(&e, "route", "/api/v1/tags");
    add(&e, "timestamp", "1761235299.698441");
    add(&e, "duration_ms", "1");
    add(&e, "status_code", "200");
    return e;
}

static bool str_is(struct ru_str s, const char *want)
{
    return s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

#define assert_str(s, want)                                                                        \
    cr_assert(str_is((s), (want)), "%s is \"%.*s\", expected \"%s\"", #s, (int)(s).len, (s).p,     \
              (want))

static struct ru_buf scratch;

static void setup(void)
{
    scratch = (struct ru_buf)RU_BUF_INIT;
}

static void teardown(void)
{
    ru_buf_free(&scratch);
}

static void parse_ok(const struct entry *e, struct ru_event *ev)
{
    char err[256] = "";
    ru_buf_reset(&scratch);
    int rc = ru_event_parse(ev, e->f, e->n, &scratch, err, sizeof(err));
    cr_assert_eq(rc, 0, "refused: %s", err);
}

static void parse_bad(const struct entry *e, const char *reason)
{
    struct ru_event ev;
    char err[256] = "";
    ru_buf_reset(&scratch);
    int rc = ru_event_parse(&ev, e->f, e->n, &scratch, err, sizeof(err));
    cr_assert_eq(rc, -1, "accepted, expected \"%s\"", reason);
    cr_assert_str_eq(err, reason);
}

TestSuite(event, .init = setup, .fini = teardown);

Test(event, genonaut_entry)
{
    struct entry e = genonaut_entry();
    add(&e, "some_future_field", "ignored");
    struct ru_event ev;
    parse_ok(&e, &ev);
    assert_str(ev.route, "/api/v1/notifications/unread/count");
    assert_str(ev.method, "GET");
    assert_str(ev.user_id, "121e194b-4caa-4b81-ad4f-86ca3919d5b9");
    cr_assert(ev.user_is_uuid);
    cr_assert_eq(ev.ts_us, 1761235223315774LL);
    cr_assert_eq(ev.hour_us, 1761235200000000LL); /* 2025-10-23 16:00:00 UTC */
    cr_assert_eq(ev.duration_ms, 111);
    cr_assert_eq(ev.status_code, 200);
    assert_str(ev.params_canon, "{\"user_id\":\"121e194b-4caa-4b81-ad4f-86ca3919d5b9\"}");
    assert_str(ev.query_params, "{\"user_id\": \"121e194b-4caa-4b81-ad4f-86ca3919d5b9\"}");
    cr_assert(ev.query_params_json);
    cr_assert_eq(ev.request_size, 0);
    cr_assert_eq(ev.response_size, 18);
    cr_assert_not(ev.has_db_query_count);
    cr_assert_eq(ev.error_type.len, 0);
    cr_assert_eq(ev.cache_status.len, 0);

    char ts[32];
    cr_assert_eq(ru_event_format_ts(ev.ts_us, ts), 26);
    cr_assert_str_eq(ts, "2025-10-23 16:00:23.315774");
}

Test(event, full_entry_with_everything)
{
    struct entry e = genonaut_entry();
    set(&e, "route", "/api/v1/content/unified");
    set(&e, "method", "OPTIONS");
    set(&e, "user_id", "");
    set(&e, "status_code", "404");
    set(&e, "query_params", "{\"page\": \"1\", \"sort\": \"name-asc\", \"page_size\": \"20\"}");
    set(&e, "query_params_normalized", "{\"sort\": \"name-asc\", \"page_size\": \"20\"}");
    set(&e, "request_size_bytes", "512");
    set(&e, "response_size_bytes", "2");
    set(&e, "error_type", "client_error");
    set(&e, "cache_status", "miss");
    add(&e, "db_query_count", "3");
    struct ru_event ev;
    parse_ok(&e, &ev);
    assert_str(ev.method, "OPTIONS");
    cr_assert_eq(ev.user_id.len, 0);
    cr_assert_not(ev.user_is_uuid);
    cr_assert_eq(ev.status_code, 404);
    assert_str(ev.params_canon, "{\"sort\":\"name-asc\",\"page_size\":\"20\"}");
    assert_str(ev.query_params, "{\"page\": \"1\", \"sort\": \"name-asc\", \"page_size\": \"20\"}");
    cr_assert(ev.query_params_json);
    cr_assert_eq(ev.request_size, 512);
    cr_assert_eq(ev.response_size, 2);
    cr_assert(ev.has_db_query_count);
    cr_assert_eq(ev.db_query_count, 3);
    assert_str(ev.error_type, "client_error");
    assert_str(ev.cache_status, "miss");
}

Test(event, defaults_for_missing_fields)
{
    struct entry e = minimal_entry();
    struct ru_event ev;
    parse_ok(&e, &ev);
    assert_str(ev.route, "/api/v1/tags");
    assert_str(ev.method, "GET");
    cr_assert_eq(ev.user_id.len, 0);
    cr_assert_not(ev.user_is_uuid);
    assert_str(ev.params_canon, "{}");
    assert_str(ev.query_params, "{}");
    cr_assert(ev.query_params_json);
    cr_assert_eq(ev.request_size, 0);
    cr_assert_eq(ev.response_size, 0);
    cr_assert_not(ev.has_db_query_count);
    cr_assert_eq(ev.error_type.len, 0);
    cr_assert_eq(ev.cache_status.len, 0);

    /* empty optional fields mean the same as missing ones */
    add(&e, "user_id", "");
    add(&e, "request_size_bytes", "");
    add(&e, "response_size_bytes", "");
    add(&e, "db_query_count", "");
    add(&e, "error_type", "");
    add(&e, "cache_status", "");
    parse_ok(&e, &ev);
    cr_assert_eq(ev.user_id.len, 0);
    cr_assert_eq(ev.request_size, 0);
    cr_assert_eq(ev.response_size, 0);
    cr_assert_not(ev.has_db_query_count);
    cr_assert_eq(ev.error_type.len, 0);
    cr_assert_eq(ev.cache_status.len, 0);

    /* a present but empty method is kept as it is */
    add(&e, "method", "");
    parse_ok(&e, &ev);
    cr_assert_eq(ev.method.len, 0);
}

Test(event, zero_db_query_count_is_present)
{
    struct entry e = minimal_entry();
    add(&e, "db_query_count", "0");
    struct ru_event ev;
    parse_ok(&e, &ev);
    cr_assert(ev.has_db_query_count);
    cr_assert_eq(ev.db_query_count, 0);
}

Test(event, repeated_fields)
{
    static const char *const names[] = {
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
    for (size_t i = 0; i < RU_ARRAY_LEN(names); i++) {
        struct entry e = genonaut_entry();
        add(&e, "db_query_count", "1");
        add(&e, names[i], "");
        char want[64];
        snprintf(want, sizeof(want), "field '%s' repeated", names[i]);
        parse_bad(&e, want);
    }
    /* unknown fields may repeat */
    struct entry e = minimal_entry();
    add(&e, "x", "1");
    add(&e, "x", "2");
    struct ru_event ev;
    parse_ok(&e, &ev);
}

Test(event, unknown_fields_are_ignored_entirely)
{
    struct entry e = minimal_entry();
    add_n(&e, "extra", "\xff\0\xfe", 3);
    add(&e, "Route", "not the route");
    add(&e, "route_", "x");
    struct ru_event ev;
    parse_ok(&e, &ev);
    assert_str(ev.route, "/api/v1/tags");
}

Test(event, route)
{
    struct entry e = minimal_entry();
    del(&e, "route");
    parse_bad(&e, "route is missing");
    add(&e, "route", "");
    parse_bad(&e, "route is empty");

    /* routes genonaut stores (2.4 kB and more) are valid; only what no compression can fit
     * in PostgreSQL's index is refused here */
    char *long_route = malloc(RU_EVENT_MAX_KEY_FIELD + 2);
    memset(long_route, 'a', RU_EVENT_MAX_KEY_FIELD + 1);
    long_route[0] = '/';
    long_route[RU_EVENT_MAX_KEY_FIELD + 1] = '\0';
    set(&e, "route", long_route);
    parse_bad(&e, "route is longer than 1048576 bytes: too large for PostgreSQL's unique index "
                  "even compressed");
    long_route[RU_EVENT_MAX_KEY_FIELD] = '\0';
    set(&e, "route", long_route);
    struct ru_event ev;
    parse_ok(&e, &ev);
    cr_assert_eq(ev.route.len, RU_EVENT_MAX_KEY_FIELD);
    cr_assert(ev.key_long);
    long_route[2400] = '\0';
    set(&e, "route", long_route);
    parse_ok(&e, &ev);
    cr_assert_eq(ev.route.len, 2400);
    free(long_route);
}

/* Replaces b's text with head, n times item separated by sep, then tail. */
static void json_list(struct ru_buf *b, const char *head, const char *item, const char *sep, int n,
                      const char *tail)
{
    ru_buf_reset(b);
    ru_buf_puts(b, head);
    for (int i = 0; i < n; i++) {
        if (i)
            ru_buf_puts(b, sep);
        ru_buf_puts(b, item);
    }
    ru_buf_puts(b, tail);
}

/* A key is long (PostgreSQL's verdict needed) when route + method + 6 x canonical params
 * exceeds RU_EVENT_SURE_KEY bytes; shorter keys surely fit the index uncompressed. */
Test(event, key_long)
{
    struct entry e = minimal_entry();
    char route[RU_EVENT_SURE_KEY + 1];
    memset(route, 'r', sizeof(route) - 1);
    route[0] = '/';
    /* minimal_entry: method missing (GET), params missing ({}) */
    size_t sure = RU_EVENT_SURE_KEY - 3 - 6 * 2;
    route[sure] = '\0';
    set(&e, "route", route);
    struct ru_event ev;
    parse_ok(&e, &ev);
    cr_assert_not(ev.key_long, "route %zu bytes + GET + {}", sure);
    route[sure] = 'r';
    route[sure + 1] = '\0';
    set(&e, "route", route);
    parse_ok(&e, &ev);
    cr_assert(ev.key_long, "route %zu bytes + GET + {}", sure + 1);

    /* params weigh six times their canonical length (jsonb's binary form of "[0,0,...]") */
    set(&e, "route", "/api/v1/tags");
    set(&e, "method", "GET");
    struct ru_buf p = RU_BUF_INIT;
    json_list(&p, "{\"ids\": [", "0", ", ", 200, "]}");
    set(&e, "query_params_normalized", p.p);
    parse_ok(&e, &ev);
    cr_assert_eq(ev.params_canon.len, 9 + 2 * 200); /* {"ids":[0,0,...]} */
    cr_assert_not(ev.key_long);
    json_list(&p, "{\"ids\": [", "0", ", ", 210, "]}");
    set(&e, "query_params_normalized", p.p);
    parse_ok(&e, &ev);
    cr_assert(ev.key_long, "canonical params %zu bytes", ev.params_canon.len);
    ru_buf_free(&p);
}

Test(event, text_fields_must_be_utf8_without_nul)
{
    static const char *const text[] = {
        "route",      "method",      "user_id", "query_params", "query_params_normalized",
        "error_type", "cache_status"};
    for (size_t i = 0; i < RU_ARRAY_LEN(text); i++) {
        char want[80];
        struct entry e = minimal_entry();
        if (strcmp(text[i], "route") == 0)
            del(&e, "route");
        add_n(&e, text[i], "{\xc3(}", 4);
        snprintf(want, sizeof(want), "%s is not valid UTF-8", text[i]);
        parse_bad(&e, want);

        e = minimal_entry();
        if (strcmp(text[i], "route") == 0)
            del(&e, "route");
        add_n(&e, text[i], "{}\0", 3);
        snprintf(want, sizeof(want), "%s contains a NUL byte", text[i]);
        parse_bad(&e, want);
    }
    struct entry e = minimal_entry();
    add(&e, "user_id", "\xed\xa0\x80"); /* an encoded surrogate */
    parse_bad(&e, "user_id is not valid UTF-8");
}

Test(event, text_check_at_every_position)
{
    /* NUL bytes and bad UTF-8 are found wherever they are (the 32-byte and the word loops,
     * the tail, short strings) */
    char buf[88];
    for (size_t len = 1; len <= 80; len++) {
        for (size_t pos = 0; pos < len; pos++) {
            struct entry e = minimal_entry();
            struct ru_event ev;
            memset(buf, 'e', len);
            buf[pos] = '\0';
            add_n(&e, "error_type", buf, len);
            parse_bad(&e, "error_type contains a NUL byte");

            buf[pos] = (char)0x80;
            e = minimal_entry();
            add_n(&e, "error_type", buf, len);
            parse_bad(&e, "error_type is not valid UTF-8");

            if (pos + 1 < len) {
                buf[pos] = (char)0xc3;
                buf[pos + 1] = (char)0xa9;
                e = minimal_entry();
                add_n(&e, "error_type", buf, len);
                parse_ok(&e, &ev);
                cr_assert_eq(ev.error_type.len, len);
            }
        }
    }
}

Test(event, values_are_length_limited)
{
    char *big = malloc(RU_EVENT_MAX_VALUE + 2);
    memset(big, 'x', RU_EVENT_MAX_VALUE + 1);
    big[RU_EVENT_MAX_VALUE + 1] = '\0';

    struct entry e = minimal_entry();
    add(&e, "query_params", big);
    parse_bad(&e, "query_params is too long");
    e = minimal_entry();
    add(&e, "error_type", big);
    parse_bad(&e, "error_type is too long");
    e = minimal_entry();
    add(&e, "user_id", big);
    parse_bad(&e, "user_id is too long");

    /* exactly at the limit is fine */
    big[RU_EVENT_MAX_VALUE] = '\0';
    e = minimal_entry();
    add(&e, "query_params", big);
    struct ru_event ev;
    parse_ok(&e, &ev);
    cr_assert_eq(ev.query_params.len, RU_EVENT_MAX_VALUE);
    cr_assert_not(ev.query_params_json);
    free(big);
}

Test(event, method)
{
    struct entry e = minimal_entry();
    struct ru_event ev;
    add(&e, "method", "PROPFIND");
    parse_ok(&e, &ev);
    assert_str(ev.method, "PROPFIND");
    set(&e, "method", "ABCDEFGHIJ");
    parse_ok(&e, &ev);
    set(&e, "method", "ABCDEFGHIJK");
    parse_bad(&e, "method is longer than 10 characters");
    /* characters, not bytes: ten two-byte characters fit varchar(10) */
    set(&e, "method",
        "\xc3\x89\xc3\x89\xc3\x89\xc3\x89\xc3\x89\xc3\x89\xc3\x89\xc3\x89\xc3\x89"
        "\xc3\x89");
    parse_ok(&e, &ev);
    cr_assert_eq(ev.method.len, 20);
    set(&e, "method",
        "\xc3\x89\xc3\x89\xc3\x89\xc3\x89\xc3\x89\xc3\x89\xc3\x89\xc3\x89\xc3\x89"
        "\xc3\x89X");
    parse_bad(&e, "method is longer than 10 characters");
    /* methods are kept as given (no case folding) */
    set(&e, "method", "get");
    parse_ok(&e, &ev);
    assert_str(ev.method, "get");
}

Test(event, user_id)
{
    static const char *const uuids[] = {
        "121e194b-4caa-4b81-ad4f-86ca3919d5b9",    "121E194B-4CAA-4B81-AD4F-86CA3919D5B9",
        "{121e194b-4caa-4b81-ad4f-86ca3919d5b9}",  "121e194b4caa4b81ad4f86ca3919d5b9",
        "121e-194b-4caa-4b81-ad4f-86ca-3919-d5b9", "{121E194B4CAA4B81AD4F86CA3919D5B9}",
    };
    struct ru_event ev;
    for (size_t i = 0; i < RU_ARRAY_LEN(uuids); i++) {
        struct entry e = minimal_entry();
        add(&e, "user_id", uuids[i]);
        parse_ok(&e, &ev);
        cr_assert(ev.user_is_uuid, "%s", uuids[i]);
        assert_str(ev.user_id, "121e194b-4caa-4b81-ad4f-86ca3919d5b9");
    }
    /* not a UUID: kept as given, still a user */
    static const char *const others[] = {"alice", "42", "121e194b-4caa-4b81-ad4f-86ca3919d5b",
                                         " 121e194b-4caa-4b81-ad4f-86ca3919d5b9"};
    for (size_t i = 0; i < RU_ARRAY_LEN(others); i++) {
        struct entry e = minimal_entry();
        add(&e, "user_id", others[i]);
        parse_ok(&e, &ev);
        cr_assert_not(ev.user_is_uuid, "%s", others[i]);
        assert_str(ev.user_id, others[i]);
    }
}

Test(event, uuid_canon)
{
    static const char *const good[] = {
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",    "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
        "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",  "a0eebc999c0b4ef8bb6d6bb9bd380a11",
        "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11", "{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}",
        "a0eebc999c0b-4ef8bb6d6bb9-bd380a11",      "A0eEbC99-9c0B-4Ef8-bB6d-6bB9bD380a11",
    };
    for (size_t i = 0; i < RU_ARRAY_LEN(good); i++) {
        char out[37];
        memset(out, 'z', sizeof(out));
        cr_assert_eq(ru_event_uuid_canon(good[i], strlen(good[i]), out), 0, "%s", good[i]);
        cr_assert_str_eq(out, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "%s", good[i]);
    }
    static const char *const bad_uuids[] = {
        "",
        "{}",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",     /* 31 digits */
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111",   /* 33 digits */
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g",    /* not hex */
        "a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11",   /* two hyphens */
        "-a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",   /* leading hyphen */
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-",   /* trailing hyphen */
        "a0eeb-c99-9c0b-4ef8-bb6d-6bb9bd380a11",   /* hyphen inside a group of four */
        "a0e-ebc99-9c0b-4ef8-bb6d-6bb9bd380a11",   /* hyphen after three digits */
        "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",   /* unclosed brace */
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",   /* brace without opening */
        "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-}", /* hyphen before the brace */
        "{{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}}",
        "(a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11)",
        " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11 ",
        "a0eebc99 9c0b 4ef8 bb6d 6bb9bd380a11",
        "0xa0eebc999c0b4ef8bb6d6bb9bd380a",
    };
    for (size_t i = 0; i < RU_ARRAY_LEN(bad_uuids); i++) {
        char out[37];
        cr_assert_eq(ru_event_uuid_canon(bad_uuids[i], strlen(bad_uuids[i]), out), -1, "%s",
                     bad_uuids[i]);
    }
    /* an embedded NUL byte is not a UUID */
    char out[37];
    cr_assert_eq(ru_event_uuid_canon("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1\0", 36, out), -1);
}

/* Each byte of a canonical UUID replaced by each of the 256 values: only a hex digit (either
 * case) where a digit was, or the hyphen where it was, keeps it a UUID, in lower case. */
Test(event, uuid_canon_every_byte)
{
    static const char canon[] = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
    for (int i = 0; i < 36; i++) {
        for (int c = 0; c < 256; c++) {
            char in[36], out[37], want[37];
            memcpy(in, canon, 36);
            in[i] = (char)c;
            bool hyphen = i == 8 || i == 13 || i == 18 || i == 23;
            bool ok = hyphen ? c == '-' : isxdigit(c) != 0;
            int rc = ru_event_uuid_canon(in, 36, out);
            cr_assert_eq(rc, ok ? 0 : -1, "byte %d = %d", i, c);
            if (!ok)
                continue;
            memcpy(want, canon, 37);
            want[i] = (char)tolower(c);
            cr_assert_str_eq(out, want, "byte %d = %d", i, c);
        }
    }
    /* 36 bytes with the hyphens elsewhere (after groups of four) are still a UUID */
    char out[37];
    cr_assert_eq(ru_event_uuid_canon("a0ee-bc99-9c0b-4ef8-bb6d6bb9bd380a11", 36, out), 0);
    cr_assert_str_eq(out, canon);
}

Test(event, timestamp_invalid)
{
    struct entry e = minimal_entry();
    del(&e, "timestamp");
    parse_bad(&e, "timestamp is missing");
    static const char *const not_numbers[] = {
        "",
        " 1761235223.3",
        "1761235223.3 ",
        "inf",
        "-inf",
        "nan",
        "NaN",
        "Infinity",
        "0x10",
        "1e",
        "e5",
        ".",
        "-",
        "+",
        "1.2.3",
        "1,5",
        "1e+",
        "1e5.5",
        "2025-10-23",
        "1_000",
        "--1",
        "\xd9\xa1",
    };
    for (size_t i = 0; i < RU_ARRAY_LEN(not_numbers); i++) {
        set(&e, "timestamp", not_numbers[i]);
        parse_bad(&e, "timestamp is not a number");
    }
    static const char *const out_of_range[] = {
        "-1",
        "-0.0000006",
        "253402300800",
        "253402300800.000000",
        "999999999999.999999",
        "253402300799.9999995",
        "1e18",
        "1e100",
        "1e999999999999999999999",
        "-1e-5",
    };
    for (size_t i = 0; i < RU_ARRAY_LEN(out_of_range); i++) {
        set(&e, "timestamp", out_of_range[i]);
        parse_bad(&e, "timestamp out of range");
    }
}

Test(event, timestamp_rounding)
{
    static const struct {
        const char *in;
        int64_t us;
    } cases[] = {
        {"1761235223.315774", 1761235223315774LL},
        {"1761235223.315774000000000000", 1761235223315774LL},
        {"1761235223.3157745", 1761235223315774LL}, /* tie, even stays */
        {"1761235223.3157735", 1761235223315774LL}, /* tie, odd goes up */
        {"1761235223.31577450000000001", 1761235223315775LL},
        {"1761235223.3157744999999", 1761235223315774LL},
        {"1761235223", 1761235223000000LL},
        {"1761235223.0", 1761235223000000LL},
        {"0", 0},
        {"0.0", 0},
        {"-0", 0},
        {"+0", 0},
        {"-0.0000005", 0}, /* -0.5 us rounds to even 0 */
        {"-0.0000004", 0},
        {"0.0000005", 0},
        {"0.0000015", 2},
        {"0.0000025", 2},
        {"0.0000035", 4},
        {"0.00000050001", 1},
        {"0.0000004999999999", 0},
        {"0.000001", 1},
        {"1e-6", 1},
        {"5e-7", 0},
        {"1.5e-6", 2},
        {"15E-7", 2},
        {"1.5e3", 1500000000LL},
        {"1.5E+3", 1500000000LL},
        {"+1", 1000000},
        {"000001761235223.5", 1761235223500000LL},
        {"0.5", 500000},
        {".5", 500000},
        {"5.", 5000000},
        {"1761235223315774e-6", 1761235223315774LL},
        {"0.0000000000000000000000000000001e31", 1000000},
        {"0e999999999999999999", 0},
        {"1e-9999999999999999", 0},
        {"253402300799.999999", RU_EVENT_MAX_TS_US},
        {"253402300799", 253402300799000000LL},
        {"1761235223.3157742", 1761235223315774LL}, /* seven fraction digits */
        {"1761235223.3", 1761235223300000LL},
        {"253402300799.9999994", RU_EVENT_MAX_TS_US},
        {"253402300799999999e-6", RU_EVENT_MAX_TS_US},
    };
    for (size_t i = 0; i < RU_ARRAY_LEN(cases); i++) {
        int64_t us = -42;
        cr_assert_eq(ru_event_parse_ts(cases[i].in, strlen(cases[i].in), &us), 0, "%s",
                     cases[i].in);
        cr_assert_eq(us, cases[i].us, "%s -> %lld, expected %lld", cases[i].in, (long long)us,
                     (long long)cases[i].us);
    }
    int64_t us;
    cr_assert_eq(ru_event_parse_ts("1.5", 1, &us), 0); /* length-bounded: just "1" */
    cr_assert_eq(us, 1000000);
    cr_assert_eq(ru_event_parse_ts("253402300799.9999995", 20, &us), -1);
    cr_assert_eq(ru_event_parse_ts("nan", 3, &us), -1);
}

Test(event, hour_bucketing)
{
    static const struct {
        const char *ts;
        int64_t us, hour;
    } cases[] = {
        /* 1761235200 = 2025-10-23 16:00:00 UTC; 1761238800 = 17:00:00 */
        {"1761238799.9999994", 1761238799999999LL, 1761235200000000LL},
        {"1761238799.9999995", 1761238800000000LL, 1761238800000000LL},
        {"1761238800", 1761238800000000LL, 1761238800000000LL},
        {"1761238800.000000", 1761238800000000LL, 1761238800000000LL},
        {"1761235200.0000001", 1761235200000000LL, 1761235200000000LL},
        {"1761235199.999999", 1761235199999999LL, 1761231600000000LL},
        {"0", 0, 0},
        {"3599.9999995", 3600000000LL, 3600000000LL},
        {"3599.999999", 3599999999LL, 0},
        {"253402300799.999999", RU_EVENT_MAX_TS_US, 253402297200000000LL},
    };
    for (size_t i = 0; i < RU_ARRAY_LEN(cases); i++) {
        struct entry e = minimal_entry();
        set(&e, "timestamp", cases[i].ts);
        struct ru_event ev;
        parse_ok(&e, &ev);
        cr_assert_eq(ev.ts_us, cases[i].us, "%s", cases[i].ts);
        cr_assert_eq(ev.hour_us, cases[i].hour, "%s", cases[i].ts);
        cr_assert_eq(ev.hour_us % RU_USECS_PER_HOUR, 0);
    }
}

Test(event, duration_and_status)
{
    struct entry e = minimal_entry();
    struct ru_event ev;
    del(&e, "duration_ms");
    parse_bad(&e, "duration_ms is missing");
    static const char *const not_int[] = {"",    "111.0", "1e2", " 1", "1 ",
                                          "abc", "0x10",  "-",   "1.5"};
    for (size_t i = 0; i < RU_ARRAY_LEN(not_int); i++) {
        set(&e, "duration_ms", not_int[i]);
        parse_bad(&e, "duration_ms is not an integer");
    }
    set(&e, "duration_ms", "2147483648");
    parse_bad(&e, "duration_ms out of range");
    set(&e, "duration_ms", "-2147483649");
    parse_bad(&e, "duration_ms out of range");
    set(&e, "duration_ms", "99999999999999999999999");
    parse_bad(&e, "duration_ms out of range");
    set(&e, "duration_ms", "2147483647");
    parse_ok(&e, &ev);
    cr_assert_eq(ev.duration_ms, 2147483647);
    set(&e, "duration_ms", "-2147483648");
    parse_ok(&e, &ev);
    cr_assert_eq(ev.duration_ms, INT32_MIN);
    set(&e, "duration_ms", "0");
    parse_ok(&e, &ev);
    cr_assert_eq(ev.duration_ms, 0);

    e = minimal_entry();
    del(&e, "status_code");
    parse_bad(&e, "status_code is missing");
    add(&e, "status_code", "");
    parse_bad(&e, "status_code is not an integer");
    set(&e, "status_code", "200.0");
    parse_bad(&e, "status_code is not an integer");
    set(&e, "status_code", "32768");
    parse_bad(&e, "status_code out of range");
    set(&e, "status_code", "-32769");
    parse_bad(&e, "status_code out of range");
    set(&e, "status_code", "32767");
    parse_ok(&e, &ev);
    cr_assert_eq(ev.status_code, 32767);
    set(&e, "status_code", "-32768");
    parse_ok(&e, &ev);
    cr_assert_eq(ev.status_code, -32768);
    set(&e, "status_code", "307");
    parse_ok(&e, &ev);
    cr_assert_eq(ev.status_code, 307);
}

Test(event, sizes_and_db_query_count)
{
    static const char *const names[] = {"request_size_bytes", "response_size_bytes",
                                        "db_query_count"};
    for (size_t i = 0; i < RU_ARRAY_LEN(names); i++) {
        char want[80];
        struct entry e = minimal_entry();
        add(&e, names[i], "12.5");
        snprintf(want, sizeof(want), "%s is not an integer", names[i]);
        parse_bad(&e, want);
        set(&e, names[i], "x");
        parse_bad(&e, want);
        set(&e, names[i], "2147483648");
        snprintf(want, sizeof(want), "%s out of range", names[i]);
        parse_bad(&e, want);
        set(&e, names[i], "2147483647");
        struct ru_event ev;
        parse_ok(&e, &ev);
    }
    struct entry e = minimal_entry();
    add(&e, "request_size_bytes", "1024");
    add(&e, "response_size_bytes", "+18");
    add(&e, "db_query_count", "-1");
    struct ru_event ev;
    parse_ok(&e, &ev);
    cr_assert_eq(ev.request_size, 1024);
    cr_assert_eq(ev.response_size, 18);
    cr_assert(ev.has_db_query_count);
    cr_assert_eq(ev.db_query_count, -1);
}

Test(event, error_type_and_cache_status)
{
    struct entry e = minimal_entry();
    add(&e, "error_type", "server_error");
    add(&e, "cache_status", "a-very-long-cache-status");
    struct ru_event ev;
    parse_ok(&e, &ev);
    assert_str(ev.error_type, "server_error");
    /* longer than varchar(10): not an event error, kept */
    assert_str(ev.cache_status, "a-very-long-cache-status");
}

Test(event, query_params_normalized)
{
    struct entry e = minimal_entry();
    struct ru_event ev;
    add(&e, "query_params_normalized", " { \"page_size\" : \"20\" , \"sort\":\"name-asc\" } ");
    parse_ok(&e, &ev);
    assert_str(ev.params_canon, "{\"sort\":\"name-asc\",\"page_size\":\"20\"}");

    set(&e, "query_params_normalized", "{\"n\": 1.50, \"n\": 2.0, \"s\": \"\\u00e9\"}");
    parse_ok(&e, &ev);
    assert_str(ev.params_canon, "{\"n\":2,\"s\":\"\xc3\xa9\"}");

    set(&e, "query_params_normalized", "{}");
    parse_ok(&e, &ev);
    assert_str(ev.params_canon, "{}");

    set(&e, "query_params_normalized", "[\"sort\"]");
    parse_bad(&e, "query_params_normalized: not a JSON object");
    set(&e, "query_params_normalized", "");
    parse_bad(&e, "query_params_normalized: unexpected end of input at byte 0, expected a JSON "
                  "value");
    set(&e, "query_params_normalized", "{\"sort\": 'name-asc'}");
    parse_bad(&e, "query_params_normalized: unexpected character ''' at byte 9, expected a JSON "
                  "value");
    set(&e, "query_params_normalized", "{\"a\": \"\\u0000\"}");
    parse_bad(&e, "query_params_normalized: \\u0000 is not allowed at byte 7");
    set(&e, "query_params_normalized", "{\"a\": 1e999999}");
    parse_bad(&e, "query_params_normalized: number out of range at byte 6");

    /* long params are valid (PostgreSQL decides whether the index holds them); over
     * RU_EVENT_MAX_KEY_FIELD, as given or once canonical, no compression could */
    struct ru_buf big = RU_BUF_INIT;
    ru_buf_puts(&big, "{\"k\": \"");
    for (size_t i = 0; i < 1600; i++)
        ru_buf_putc(&big, 'v');
    ru_buf_puts(&big, "\"}");
    set(&e, "query_params_normalized", big.p);
    parse_ok(&e, &ev);
    cr_assert_eq(ev.params_canon.len, 1600 + 8);
    cr_assert(ev.key_long);
    ru_buf_reset(&big);
    ru_buf_puts(&big, "{\"k\":\"");
    for (size_t i = 0; i < RU_EVENT_MAX_KEY_FIELD - 8; i++)
        ru_buf_putc(&big, 'v');
    ru_buf_puts(&big, "\"}"); /* canonical: {"k":"v...v"} = RU_EVENT_MAX_KEY_FIELD bytes */
    set(&e, "query_params_normalized", big.p);
    parse_ok(&e, &ev);
    cr_assert_eq(ev.params_canon.len, RU_EVENT_MAX_KEY_FIELD);
    static const char too_long[] = "query_params_normalized is longer than 1048576 bytes: too "
                                   "large for PostgreSQL's unique index even compressed";
    big.len -= 2;
    ru_buf_puts(&big, "v\"}");
    set(&e, "query_params_normalized", big.p);
    parse_bad(&e, too_long);
    /* the text as given is bounded too (it bounds the work), white space included */
    big.len -= 3;
    ru_buf_puts(&big, "\" }");
    set(&e, "query_params_normalized", big.p);
    parse_bad(&e, too_long);
    /* canonical form longer than the text: numbers written out */
    ru_buf_reset(&big);
    json_list(&big, "{\"a\":[", "1e999", ",", 1200, "]}");
    set(&e, "query_params_normalized", big.p);
    parse_bad(&e, too_long);
    json_list(&big, "{\"a\": [", "1", ", ", 100001, "]}");
    set(&e, "query_params_normalized", big.p);
    parse_ok(&e, &ev);
    cr_assert_eq(ev.params_canon.len, 9 + 2 * 100000);
    ru_buf_free(&big);
}

Test(event, query_params_json_flag)
{
    static const struct {
        const char *qp;
        bool json;
    } cases[] = {
        {"{}", true},
        {"{\"page\": \"1\", \"page_size\": \"100\"}", true},
        {"[1, 2]", true}, /* any JSON value jsonb accepts */
        {"\"text\"", true},
        {"", false},
        {"page=1&sort=name-asc", false},
        {"{\"page\": 1,}", false},
        {"{\"a\": \"\\u0000\"}", false},
        {"{\"a\": \"\\ud800\"}", false},
    };
    for (size_t i = 0; i < RU_ARRAY_LEN(cases); i++) {
        struct entry e = minimal_entry();
        add(&e, "query_params_normalized", "{\"sort\": \"name-asc\"}");
        add(&e, "query_params", cases[i].qp);
        struct ru_event ev;
        parse_ok(&e, &ev);
        assert_str(ev.query_params, cases[i].qp);
        cr_assert_eq(ev.query_params_json, cases[i].json, "%s", cases[i].qp);
        /* the check leaves nothing behind in scratch */
        assert_str(ev.params_canon, "{\"sort\":\"name-asc\"}");
        cr_assert_eq(scratch.len, ev.params_canon.len);

        /* without RU_EVENT_RAW (no raw table) the text is not checked: the same event,
         * valid either way, query_params_json false */
        struct ru_event lean;
        char err[128];
        ru_buf_reset(&scratch);
        cr_assert_eq(ru_event_parse_cached(&lean, e.f, e.n, &scratch, NULL, 0, err, sizeof(err)), 0,
                     "%s", err);
        assert_str(lean.query_params, cases[i].qp);
        cr_assert_not(lean.query_params_json, "%s", cases[i].qp);
        assert_str(lean.params_canon, "{\"sort\":\"name-asc\"}");
        cr_assert_eq(scratch.len, lean.params_canon.len);
    }
}

Test(event, scratch_may_move)
{
    /* scratch starts tiny and non-empty: appends reallocate it, pointers must be taken after */
    struct entry e = genonaut_entry();
    set(&e, "user_id", "{121E194B4CAA4B81AD4F86CA3919D5B9}");
    set(&e, "query_params_normalized",
        "{\"tag\": [\"dfbb88fc-3c31-468f-a2d7-99605206c985\", "
        "\"5381f5b4-883d-4c0e-901a-dea53bb98e35\"], \"user_id\": "
        "\"121e194b-4caa-4b81-ad4f-86ca3919d5b9\", \"page_size\": \"25\", \"sort_field\": "
        "\"created_at\", \"sort_order\": \"desc\", \"search_term\": \"\\\"grumpy cat\\\"\"}");
    set(&e, "query_params", "{\"page\": \"1\", \"z\": [1, 2, 3, {\"b\": 1, \"a\": 2}]}");
    for (int round = 0; round < 3; round++) {
        struct ru_buf small = RU_BUF_INIT;
        ru_buf_puts(&small, "previous contents");
        struct ru_event ev;
        char err[128];
        cr_assert_eq(ru_event_parse(&ev, e.f, e.n, &small, err, sizeof(err)), 0, "%s", err);
        assert_str(ev.user_id, "121e194b-4caa-4b81-ad4f-86ca3919d5b9");
        assert_str(ev.params_canon,
                   "{\"tag\":[\"dfbb88fc-3c31-468f-a2d7-99605206c985\",\"5381f5b4-883d-4c0e-"
                   "901a-dea53bb98e35\"],\"user_id\":\"121e194b-4caa-4b81-ad4f-86ca3919d5b9\","
                   "\"page_size\":\"25\",\"sort_field\":\"created_at\",\"sort_order\":\"desc\","
                   "\"search_term\":\"\\\"grumpy cat\\\"\"}");
        cr_assert(ev.query_params_json);
        cr_assert(ev.user_id.p >= small.p && ev.user_id.p < small.p + small.len);
        cr_assert(ev.params_canon.p >= small.p &&
                  ev.params_canon.p + ev.params_canon.len <= small.p + small.len);
        cr_assert(strncmp(small.p, "previous contents", 17) == 0);
        ru_buf_free(&small);
    }
}

Test(event, failure_leaves_scratch_as_it_was)
{
    struct entry e = genonaut_entry();
    set(&e, "query_params_normalized", "{\"a\": [1, 2, 3");
    ru_buf_puts(&scratch, "keep");
    struct ru_event ev;
    char err[128];
    cr_assert_eq(ru_event_parse(&ev, e.f, e.n, &scratch, err, sizeof(err)), -1);
    cr_assert_eq(scratch.len, 4);
    cr_assert_str_eq(scratch.p, "keep");
}

Test(event, format_ts)
{
    static const struct {
        int64_t us;
        const char *want;
    } cases[] = {
        {0, "1970-01-01 00:00:00"},
        {1, "1970-01-01 00:00:00.000001"},
        {500000, "1970-01-01 00:00:00.500000"},
        {86399999999LL, "1970-01-01 23:59:59.999999"},
        {951782400000000LL, "2000-02-29 00:00:00"}, /* leap day, divisible by 400 */
        {951868800000000LL, "2000-03-01 00:00:00"},
        {1709210096000001LL, "2024-02-29 12:34:56.000001"}, /* leap day */
        {4107542400000000LL, "2100-03-01 00:00:00"},        /* 2100 is not a leap year */
        {1761235223315774LL, "2025-10-23 16:00:23.315774"},
        {1761235200000000LL, "2025-10-23 16:00:00"},
        {253402300799999999LL, "9999-12-31 23:59:59.999999"},
        {253402300799000000LL, "9999-12-31 23:59:59"},
    };
    for (size_t i = 0; i < RU_ARRAY_LEN(cases); i++) {
        char buf[32];
        memset(buf, 'z', sizeof(buf));
        size_t n = ru_event_format_ts(cases[i].us, buf);
        cr_assert_str_eq(buf, cases[i].want, "%lld", (long long)cases[i].us);
        cr_assert_eq(n, strlen(cases[i].want));
    }
}

Test(event, format_ts_matches_gmtime_over_the_whole_range)
{
    /* every day boundary would be too many; step by a prime number of seconds */
    for (int64_t s = 0; s <= 253402300799LL; s += 7919LL * 3571) {
        int64_t us = s * 1000000 + (s % 1000000);
        time_t t = (time_t)s;
        struct tm tm;
        cr_assert_not_null(gmtime_r(&t, &tm));
        char want[64], got[32];
        int n = snprintf(want, sizeof(want), "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900,
                         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        if (s % 1000000 != 0)
            snprintf(want + n, sizeof(want) - (size_t)n, ".%06lld", (long long)(s % 1000000));
        ru_event_format_ts(us, got);
        cr_assert_str_eq(got, want);
    }
    /* and each of the first days of every year */
    for (int y = 1970; y <= 9999; y++) {
        struct tm tm = {.tm_year = y - 1900, .tm_mon = 0, .tm_mday = 1};
        time_t t = timegm(&tm);
        char want[32], got[32];
        snprintf(want, sizeof(want), "%04d-01-01 00:00:00", y);
        ru_event_format_ts((int64_t)t * 1000000, got);
        cr_assert_str_eq(got, want);
        /* the microsecond before is the last of the previous year */
        if (y > 1970) {
            snprintf(want, sizeof(want), "%04d-12-31 23:59:59.999999", y - 1);
            ru_event_format_ts((int64_t)t * 1000000 - 1, got);
            cr_assert_str_eq(got, want);
        }
    }
}

Test(event, parsed_timestamps_round_trip_through_format)
{
    static const char *const ts[] = {"1761235223.315774", "0.000001", "951782399.999999",
                                     "253402300799.999999"};
    static const char *const want[] = {"2025-10-23 16:00:23.315774", "1970-01-01 00:00:00.000001",
                                       "2000-02-28 23:59:59.999999", "9999-12-31 23:59:59.999999"};
    for (size_t i = 0; i < RU_ARRAY_LEN(ts); i++) {
        int64_t us;
        char buf[32];
        cr_assert_eq(ru_event_parse_ts(ts[i], strlen(ts[i]), &us), 0);
        ru_event_format_ts(us, buf);
        cr_assert_str_eq(buf, want[i]);
    }
}
