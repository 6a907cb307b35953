/* Unit tests for batch: the batch container and the raw rows' COPY text format. */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rollupd/batch.h"
#include "rollupd/event.h"
#include "rollupd/util.h"

#define UUID1 "121e194b-4caa-4b81-ad4f-86ca3919d5b9"

static struct ru_str S(const char *s) {
    return (struct ru_str){s, strlen(s)};
}

static struct ru_sid
sid(uint64_t ms, uint64_t seq)
{
    return (struct ru_sid){ms, seq};
}

Test(batch, new_is_empty)
{
    struct ru_batch *b = ru_batch_new();
    cr_assert_not_null(b->store);
    cr_assert_eq(b->nids, 0);
    cr_assert(ru_sid_is_zero(&b->checkpoint));
    cr_assert_eq(b->raw.len, 0);
    cr_assert_eq(b->nraw, 0);
    cr_assert_geq(ru_batch_mem(b), sizeof(*b) + ru_store_mem(b->store));
    ru_batch_free(b);
    ru_batch_free(NULL);
}

Test(batch, add_id_keeps_max_checkpoint)
{
    struct ru_batch *b = ru_batch_new();
    const struct ru_sid ids[] = {sid(5, 0),          sid(3, 9), sid(5, 2), sid(5, 1),
                                 sid(4, UINT64_MAX), sid(1, 0), sid(5, 2), sid(2, 7)};
    for (size_t i = 0; i < RU_ARRAY_LEN(ids); i++)
        ru_batch_add_id(b, &ids[i]);
    cr_assert_eq(b->nids, RU_ARRAY_LEN(ids));
    cr_assert_eq(b->checkpoint.ms, 5);
    cr_assert_eq(b->checkpoint.seq, 2);
    /* ids kept in the order given (they are acknowledged as they came) */
    for (size_t i = 0; i < RU_ARRAY_LEN(ids); i++) {
        cr_assert_eq(b->ids[i].ms, ids[i].ms, "id %zu", i);
        cr_assert_eq(b->ids[i].seq, ids[i].seq, "id %zu", i);
    }
    ru_batch_free(b);

    /* descending order: the first is the max */
    b = ru_batch_new();
    for (uint64_t ms = 100; ms > 0; ms--) {
        struct ru_sid id = sid(ms, 100 - ms);
        ru_batch_add_id(b, &id);
    }
    cr_assert_eq(b->checkpoint.ms, 100);
    cr_assert_eq(b->checkpoint.seq, 0);
    ru_batch_free(b);

    /* the maximum id */
    b = ru_batch_new();
    struct ru_sid a = sid(1, 1), m = sid(UINT64_MAX, UINT64_MAX);
    ru_batch_add_id(b, &a);
    ru_batch_add_id(b, &m);
    ru_batch_add_id(b, &a);
    cr_assert_eq(b->checkpoint.ms, UINT64_MAX);
    cr_assert_eq(b->checkpoint.seq, UINT64_MAX);
    ru_batch_free(b);
}

Test(batch, add_id_growth)
{
    enum { N = 5000 };
    struct ru_batch *b = ru_batch_new();
    size_t m0 = ru_batch_mem(b);
    for (uint64_t i = 0; i < N; i++) {
        /* a permutation of 0..N-1 (7919 is prime, coprime to 5000) */
        struct ru_sid id = sid(1000 + (i * 7919) % N, i);
        ru_batch_add_id(b, &id);
    }
    cr_assert_eq(b->nids, N);
    cr_assert_eq(b->checkpoint.ms, 1000 + N - 1);
    /* the id that carried ms = 1000 + N - 1 */
    cr_assert_eq((b->checkpoint.seq * 7919) % N, N - 1);
    for (uint64_t i = 0; i < N; i++)
        cr_assert_eq(b->ids[i].ms, 1000 + (i * 7919) % N);
    cr_assert_geq(ru_batch_mem(b), m0 + (N - 1024) * sizeof(struct ru_sid));
    ru_batch_free(b);
}

Test(batch, ids_growth_counts_the_peak_of_growing_the_array)
{
    const size_t S = sizeof(struct ru_sid);
    struct ru_batch *b = ru_batch_new();
    /* no array yet: the first one, doubled until the ids fit (with the one it grew from) */
    cr_assert_eq(ru_batch_ids_growth(b, 0), 0);
    cr_assert_eq(ru_batch_ids_growth(b, 1), 1024 * S);
    cr_assert_eq(ru_batch_ids_growth(b, 2000), (2048 + 1024) * S);
    for (uint64_t i = 0; i < 1000; i++)
        ru_batch_add_id(b, &(struct ru_sid){1, i});
    cr_assert_eq(b->ids_cap, 1024);
    cr_assert_eq(ru_batch_ids_growth(b, 24), 0);
    /* one doubling: the new array (the one it grows from is already counted) */
    cr_assert_eq(ru_batch_ids_growth(b, 25), 2048 * S);
    /* two: 4096 beside 2048, less the 1024 held */
    cr_assert_eq(ru_batch_ids_growth(b, 3096), (4096 + 2048 - 1024) * S);
    cr_assert_eq(ru_batch_ids_growth(b, 3097), (8192 + 4096 - 1024) * S);
    ru_batch_free(b);
}

Test(batch, ids_kept_for_the_next_batch)
{
    struct ru_batch_ids spare = {NULL, 0};
    struct ru_batch *b = ru_batch_new();
    for (uint64_t i = 0; i < 3000; i++)
        ru_batch_add_id(b, &(struct ru_sid){7, i});
    struct ru_sid *arr = b->ids;
    cr_assert_eq(b->ids_cap, 4096);
    size_t bytes = 4096 * sizeof(struct ru_sid);

    /* larger than allowed: left with the batch, freed with it */
    ru_batch_keep_ids(b, &spare, bytes - 1);
    cr_assert_null(spare.ids);
    cr_assert_eq(b->ids, arr);

    ru_batch_keep_ids(b, &spare, bytes);
    cr_assert_eq(spare.ids, arr);
    cr_assert_eq(spare.cap, 4096);
    cr_assert_null(b->ids);
    cr_assert_eq(b->ids_cap, 0);
    cr_assert_eq(b->nids, 0);
    cr_assert_eq(b->checkpoint.seq, 2999, "the checkpoint stays with the batch");
    ru_batch_free(b);

    /* a second array does not replace the one kept */
    struct ru_batch *other = ru_batch_new();
    ru_batch_add_id(other, &(struct ru_sid){8, 0});
    ru_batch_keep_ids(other, &spare, bytes);
    cr_assert_eq(spare.ids, arr);
    cr_assert_eq(other->nids, 1);
    ru_batch_free(other);

    /* an array less than a quarter full is not kept: it was grown by a backlog */
    struct ru_batch_ids other_spare = {NULL, 0};
    struct ru_batch *sparse = ru_batch_new();
    for (uint64_t i = 0; i < 1025; i++)
        ru_batch_add_id(sparse, &(struct ru_sid){8, i});
    sparse->nids = 511; /* 2048 ids of room, 511 used */
    ru_batch_keep_ids(sparse, &other_spare, bytes);
    cr_assert_null(other_spare.ids);
    sparse->nids = 512;
    ru_batch_keep_ids(sparse, &other_spare, bytes);
    cr_assert_not_null(other_spare.ids);
    cr_assert_eq(other_spare.cap, 2048);
    ru_batch_free(sparse);
    ru_batch_ids_free(&other_spare);
    cr_assert_null(other_spare.ids);
    cr_assert_eq(other_spare.cap, 0);
    ru_batch_ids_free(&other_spare); /* nothing kept: nothing to free */

    /* the next batch fills the kept array from the start, without growing it */
    struct ru_batch *next = ru_batch_new();
    size_t m0 = ru_batch_mem(next);
    ru_batch_use_ids(next, &spare);
    cr_assert_null(spare.ids);
    cr_assert_eq(spare.cap, 0);
    cr_assert_eq(next->ids, arr);
    cr_assert_eq(next->nids, 0);
    cr_assert(ru_batch_empty(next));
    cr_assert_eq(ru_batch_mem(next), m0 + bytes, "the array is counted with its batch");
    for (uint64_t i = 0; i < 4096; i++)
        ru_batch_add_id(next, &(struct ru_sid){9, i});
    cr_assert_eq(next->ids, arr, "filled in place");
    cr_assert_eq(next->ids[0].ms, 9);
    cr_assert_eq(next->checkpoint.seq, 4095);
    /* nothing to give: a batch with an array keeps its own */
    ru_batch_use_ids(next, &spare);
    cr_assert_eq(next->ids, arr);
    /* an array holding ids is not released; an empty one is */
    ru_batch_ids_release(next);
    cr_assert_eq(next->ids, arr);
    ru_batch_free(next);
    struct ru_batch *idle = ru_batch_new();
    ru_batch_add_id(idle, &(struct ru_sid){10, 0});
    idle->nids = 0;
    ru_batch_ids_release(idle);
    cr_assert_null(idle->ids);
    cr_assert_eq(idle->ids_cap, 0);
    ru_batch_ids_release(idle);
    ru_batch_free(idle);
}

static char *escaped(const char *s, size_t len)
{
    struct ru_buf b = RU_BUF_INIT;
    ru_batch_copy_escape(&b, s, len);
    cr_assert_not_null(b.p);
    cr_assert_eq(b.p[b.len], '\0');
    cr_assert_eq(strlen(b.p), b.len);
    return b.p;
}

static void check_escape(const char *in, const char *want)
{
    char *got = escaped(in, strlen(in));
    cr_assert_str_eq(got, want, "escape of \"%s\"", in);
    free(got);
}

Test(batch, copy_escape)
{
    check_escape("", "");
    check_escape("plain /api/v1", "plain /api/v1");
    check_escape("\\", "\\\\");
    check_escape("\t", "\\t");
    check_escape("\n", "\\n");
    check_escape("\r", "\\r");
    check_escape("a\tb\nc\rd\\e", "a\\tb\\nc\\rd\\\\e");
    check_escape("\\.", "\\\\."); /* the end-of-data marker is defused */
    check_escape("x\n\\.\n", "x\\n\\\\.\\n");
    check_escape("\\N", "\\\\N"); /* a literal \N is not NULL */
    check_escape("{\"a\": \"b\\\"c\"}", "{\"a\": \"b\\\\\"c\"}");
    check_escape("\\\\\t\t", "\\\\\\\\\\t\\t");
    check_escape("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80",
                 "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80");
    check_escape("\x01\x7f\v\f", "\x01\x7f\v\f"); /* other control bytes pass through */
}

Test(batch, copy_escape_appends_and_embedded_nul)
{
    struct ru_buf b = RU_BUF_INIT;
    ru_buf_puts(&b, "pre|");
    ru_batch_copy_escape(&b, "a\tb", 3);
    ru_batch_copy_escape(&b, "|\\", 2);
    cr_assert_str_eq(b.p, "pre|a\\tb|\\\\");
    cr_assert_eq(b.len, 11);
    /* only len bytes are read */
    ru_buf_reset(&b);
    ru_batch_copy_escape(&b, "ab\ncd", 2);
    cr_assert_str_eq(b.p, "ab");
    /* a long input (buffer growth) */
    ru_buf_reset(&b);
    char in[3000];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = i % 3 == 0 ? '\t' : 'x';
    ru_batch_copy_escape(&b, in, sizeof(in));
    cr_assert_eq(b.len, sizeof(in) + sizeof(in) / 3);
    for (size_t i = 0, j = 0; i < sizeof(in); i++) {
        if (in[i] == '\t') {
            cr_assert_eq(b.p[j], '\\');
            cr_assert_eq(b.p[j + 1], 't');
            j += 2;
        } else {
            cr_assert_eq(b.p[j], 'x');
            j++;
        }
    }
    ru_buf_free(&b);
}

/* A raw-table event: genonaut's first sample row. */
static struct ru_event raw_event(void)
{
    struct ru_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.route = S("/api/v1/notifications/unread/count");
    ev.hour_us = 1761235200000000LL;
    ev.ts_us = 1761235223315774LL; /* 2025-10-23 16:00:23.315774 UTC */
    ev.method = S("GET");
    ev.user_id = S(UUID1);
    ev.user_is_uuid = true;
    ev.duration_ms = 111;
    ev.status_code = 200;
    ev.query_params = S("{\"user_id\": \"" UUID1 "\"}");
    ev.params_canon = S("{\"user_id\": \"" UUID1 "\"}");
    ev.query_params_json = true;
    ev.request_size = 0;
    ev.response_size = 18;
    ev.has_db_query_count = true;
    ev.db_query_count = 3;
    ev.error_type = S("");
    ev.cache_status = S("hit");
    return ev;
}

/* Checks that the raw rows of b are exactly want[i] followed by a creation time
 * "YYYY-MM-DD HH:MM:SS[.ffffff]" close to now (UTC), then a newline. */
static void check_raw_rows(const struct ru_batch *b, const char *const *want, size_t n)
{
    cr_assert_eq(b->nraw, n);
    const char *p = b->raw.p;
    cr_assert_not_null(p);
    cr_assert_eq(strlen(p), b->raw.len);
    time_t now = time(NULL);
    for (size_t i = 0; i < n; i++) {
        const char *nl = strchr(p, '\n');
        cr_assert_not_null(nl, "row %zu has no newline", i);
        size_t wl = strlen(want[i]);
        cr_assert_geq((size_t)(nl - p), wl, "row %zu too short: %.*s", i, (int)(nl - p), p);
        cr_assert_eq(memcmp(p, want[i], wl), 0, "row %zu:\n got %.*s\nwant %s<created_at>", i,
                     (int)(nl - p), p, want[i]);
        const char *ts = p + wl;
        size_t tl = (size_t)(nl - ts);
        cr_assert(tl == 19 || tl == 26, "created_at '%.*s'", (int)tl, ts);
        struct tm tm;
        memset(&tm, 0, sizeof(tm));
        char tsbuf[32];
        memcpy(tsbuf, ts, tl);
        tsbuf[tl] = '\0';
        const char *end = strptime(tsbuf, "%Y-%m-%d %H:%M:%S", &tm);
        cr_assert_not_null(end, "created_at '%s'", tsbuf);
        cr_assert(*end == '\0' || *end == '.', "created_at '%s'", tsbuf);
        time_t t = timegm(&tm);
        cr_assert(t >= now - 60 && t <= now + 60, "created_at '%s' is not now (UTC)", tsbuf);
        p = nl + 1;
    }
    cr_assert_eq(*p, '\0', "trailing data after %zu rows", n);
}

Test(batch, add_raw_row_format)
{
    struct ru_batch *b = ru_batch_new();
    struct ru_sid id1 = sid(1761235223315, 0), id2 = sid(1761235223315, 1),
                  id3 = sid(1761235224000, 0);
    struct ru_event ev = raw_event();
    cr_assert_eq(ru_batch_add_raw(b, &id1, &ev), 0);

    /* anonymous, no sizes, no db count, no error, no cache status, whole-second time */
    struct ru_event an = raw_event();
    an.route = S("/api/v1/tab\there");
    an.method = S("OPTIONS");
    an.user_id = S("");
    an.user_is_uuid = false;
    an.ts_us = 1761235223000000LL;
    an.duration_ms = -4;
    an.status_code = 307;
    an.query_params = S("{\"q\": \"a\\\\b\\nc\"}");
    an.params_canon = S("{}");
    an.request_size = 0;
    an.response_size = 0;
    an.has_db_query_count = false;
    an.db_query_count = 12;
    an.error_type = S("");
    an.cache_status = S("");
    cr_assert_eq(ru_batch_add_raw(b, &id2, &an), 0);

    /* an error type, a zero db count (present), negative sizes, UTF-8 */
    struct ru_event er = raw_event();
    er.route = S("/api/caf\xc3\xa9");
    er.user_id = S("");
    er.user_is_uuid = false;
    er.ts_us = 0;
    er.status_code = 500;
    er.request_size = -1;
    er.response_size = INT32_MAX;
    er.db_query_count = 0;
    er.error_type = S("server_error");
    er.cache_status = S("miss");
    cr_assert_eq(ru_batch_add_raw(b, &id3, &er), 0);

    const char *want[] = {
        "/api/v1/notifications/unread/count\tGET\t" UUID1 "\t2025-10-23 16:00:23.315774\t111\t200"
        "\t{\"user_id\": \"" UUID1 "\"}\t{\"user_id\": \"" UUID1 "\"}\t\\N\t18\t\\N\t3\thit\t",
        "/api/v1/tab\\there\tOPTIONS\t\\N\t2025-10-23 16:00:23\t-4\t307"
        "\t{\"q\": \"a\\\\\\\\b\\\\nc\"}\t{}\t\\N\t\\N\t\\N\t\\N\t\\N\t",
        "/api/caf\xc3\xa9\tGET\t\\N\t1970-01-01 00:00:00\t111\t500"
        "\t{\"user_id\": \"" UUID1 "\"}\t{\"user_id\": \"" UUID1 "\"}\t-1\t2147483647"
        "\tserver_error\t0\tmiss\t",
    };
    check_raw_rows(b, want, RU_ARRAY_LEN(want));
    /* every row has 14 columns */
    size_t tabs = 0;
    for (size_t i = 0; i < b->raw.len; i++)
        tabs += b->raw.p[i] == '\t';
    cr_assert_eq(tabs, 3 * 13);
    /* each row remembers its stream id; nothing was refused */
    cr_assert_eq(ru_sid_cmp(&b->raw_ids[0], &id1), 0);
    cr_assert_eq(ru_sid_cmp(&b->raw_ids[1], &id2), 0);
    cr_assert_eq(ru_sid_cmp(&b->raw_ids[2], &id3), 0);
    cr_assert_eq(b->nrejects, 0);
    /* raw rows do not touch the ids to acknowledge nor the checkpoint */
    cr_assert_eq(b->nids, 0);
    cr_assert(ru_sid_is_zero(&b->checkpoint));
    cr_assert_geq(ru_batch_mem(b), b->raw.len);
    ru_batch_free(b);
}

Test(batch, add_raw_many_rows_keep_ids)
{
    enum { N = 1000 };
    struct ru_batch *b = ru_batch_new();
    struct ru_event ev = raw_event();
    for (uint64_t i = 0; i < N; i++) {
        struct ru_sid id = sid(1000 + i, i % 3);
        ev.duration_ms = (int32_t)i;
        cr_assert_eq(ru_batch_add_raw(b, &id, &ev), 0, "row %" PRIu64, i);
    }
    cr_assert_eq(b->nraw, N);
    for (uint64_t i = 0; i < N; i++) {
        cr_assert_eq(b->raw_ids[i].ms, 1000 + i, "raw id %" PRIu64, i);
        cr_assert_eq(b->raw_ids[i].seq, i % 3, "raw id %" PRIu64, i);
    }
    size_t lines = 0;
    for (size_t i = 0; i < b->raw.len; i++)
        lines += b->raw.p[i] == '\n';
    cr_assert_eq(lines, N);
    ru_batch_free(b);
}

/* Adds one good row, then ev, which must be refused with a reason mentioning why. */
static void check_refused(const struct ru_event *ev, const char *why)
{
    struct ru_batch *b = ru_batch_new();
    struct ru_event ok = raw_event();
    struct ru_sid id1 = sid(10, 1), id2 = sid(10, 2);
    cr_assert_eq(ru_batch_add_raw(b, &id1, &ok), 0);
    size_t len = b->raw.len;
    cr_assert_eq(ru_batch_add_raw(b, &id2, ev), -1, "accepted: %s", why);
    cr_assert_eq(b->raw.len, len, "refused row left bytes behind");
    cr_assert_eq(b->nraw, 1);
    cr_assert_eq(b->nrejects, 1);
    cr_assert_eq(ru_sid_cmp(&b->rejects[0].id, &id2), 0);
    cr_assert(strstr(b->rejects[0].reason, why) != NULL, "reason '%s' does not mention '%s'",
              b->rejects[0].reason, why);
    cr_assert_eq(ru_sid_cmp(&b->raw_ids[0], &id1), 0);
    ru_batch_free(b);
}

Test(batch, add_raw_refusals)
{
    struct ru_event ev = raw_event();
    ev.user_id = S("alice");
    ev.user_is_uuid = false;
    check_refused(&ev, "UUID");

    ev = raw_event();
    ev.user_id = S("121e194b4caa4b81ad4f86ca3919d5b9x");
    ev.user_is_uuid = false;
    check_refused(&ev, "UUID");

    ev = raw_event();
    ev.query_params = S("{bad json");
    ev.query_params_json = false;
    check_refused(&ev, "JSON");

    ev = raw_event();
    ev.cache_status = S("hit-or-miss"); /* 11 characters */
    check_refused(&ev, "cache_status");

    ev = raw_event();
    /* 11 two-byte characters */
    ev.cache_status = S("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                        "\xc3\xa9\xc3\xa9");
    check_refused(&ev, "cache_status");
}

Test(batch, add_raw_limits_accepted)
{
    struct ru_batch *b = ru_batch_new();
    struct ru_sid id = sid(1, 0);
    struct ru_event ev = raw_event();
    ev.cache_status = S("0123456789"); /* exactly 10 characters */
    cr_assert_eq(ru_batch_add_raw(b, &id, &ev), 0);
    /* 10 characters in 20 bytes */
    ev.cache_status = S("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                        "\xc3\xa9");
    cr_assert_eq(ru_batch_add_raw(b, &id, &ev), 0);
    /* an anonymous user needs no UUID */
    ev = raw_event();
    ev.user_id = S("");
    ev.user_is_uuid = false;
    cr_assert_eq(ru_batch_add_raw(b, &id, &ev), 0);
    cr_assert_eq(b->nraw, 3);
    cr_assert_eq(b->nrejects, 0);
    ru_batch_free(b);
}

Test(batch, add_reject)
{
    struct ru_batch *b = ru_batch_new();
    char longr[400];
    memset(longr, 'r', sizeof(longr) - 1);
    longr[sizeof(longr) - 1] = '\0';
    for (uint64_t i = 0; i < 40; i++) { /* past the initial capacity */
        struct ru_sid id = sid(i, 40 - i);
        char reason[32];
        snprintf(reason, sizeof(reason), "reason %" PRIu64, i);
        ru_batch_add_reject(b, &id, i == 39 ? longr : reason);
    }
    cr_assert_eq(b->nrejects, 40);
    cr_assert_eq(b->nraw, 0);
    cr_assert_eq(b->raw.len, 0);
    for (uint64_t i = 0; i < 39; i++) {
        char reason[32];
        snprintf(reason, sizeof(reason), "reason %" PRIu64, i);
        cr_assert_eq(b->rejects[i].id.ms, i);
        cr_assert_eq(b->rejects[i].id.seq, 40 - i);
        cr_assert_str_eq(b->rejects[i].reason, reason);
    }
    /* a long reason is truncated to the field, NUL-terminated */
    cr_assert_eq(strlen(b->rejects[39].reason), sizeof(b->rejects[39].reason) - 1);
    cr_assert_eq(strncmp(b->rejects[39].reason, longr, sizeof(b->rejects[39].reason) - 1), 0);
    ru_batch_free(b);
}
