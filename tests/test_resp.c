/* Unit tests for resp (RESP2 replies scanned and built in place). */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "rollupd/reply.h"
#include "rollupd/resp.h"

static struct ru_reply_arena *arena;

static void setup(void)
{
    arena = ru_reply_arena_new();
}

static void teardown(void)
{
    ru_reply_arena_free(arena);
}

TestSuite(resp, .init = setup, .fini = teardown);

/* Scans text whole; returns the length (or 0 / -1) and leaves the scan in sc. */
static ssize_t scan(struct ru_resp_scan *sc, const char *text, size_t len)
{
    char err[64];
    ru_resp_scan_reset(sc);
    return ru_resp_scan(sc, text, len, err, sizeof(err));
}

static redisReply *parse(char *buf, size_t len)
{
    struct ru_resp_scan sc;
    ssize_t n = scan(&sc, buf, len);
    cr_assert_gt(n, 0, "not complete: %.*s", (int)len, buf);
    return ru_resp_build(buf, (size_t)n, &sc, arena);
}

/* An ru_str (by length, as ru_resp_entry gives it) equals a text. */
static void assert_str(struct ru_str s, const char *want)
{
    cr_assert(s.len == strlen(want) && memcmp(s.p, want, s.len) == 0, "got \"%.*s\", want \"%s\"",
              (int)s.len, s.p, want);
}

Test(resp, xreadgroup_reply_built_in_place)
{
    char text[] = "*1\r\n*2\r\n$1\r\ns\r\n*2\r\n"
                  "*2\r\n$3\r\n1-0\r\n*4\r\n$5\r\nroute\r\n$5\r\n/a\r\nb\r\n$0\r\n\r\n$2\r\n{}\r\n"
                  "*2\r\n$3\r\n1-1\r\n*-1\r\n";
    redisReply *r = parse(text, strlen(text));
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(r->elements, 1);
    redisReply *entries = r->element[0]->element[1];
    cr_assert_eq(entries->elements, 2);
    redisReply *f = entries->element[0]->element[1];
    cr_assert_eq(f->elements, 4);
    cr_assert_eq(f->element[1]->len, 5);
    cr_assert_eq(memcmp(f->element[1]->str, "/a\r\nb", 5), 0, "CR LF inside a string is data");
    cr_assert(f->element[1]->str > text && f->element[1]->str < text + sizeof(text),
              "strings point into the buffer");
    cr_assert_eq(f->element[1]->str[5], '\0');
    cr_assert_eq(f->element[2]->len, 0);
    cr_assert_str_eq(f->element[3]->str, "{}");
    cr_assert_eq(entries->element[1]->element[1]->type, REDIS_REPLY_NIL);
}

Test(resp, scalars)
{
    char ok[] = "+OK\r\n", err[] = "-NOGROUP no group\r\n", num[] = ":-9223372036854775808\r\n",
         nil[] = "$-1\r\n", nila[] = "*-1\r\n", empty[] = "*0\r\n";
    redisReply *r = parse(ok, strlen(ok));
    cr_assert_eq(r->type, REDIS_REPLY_STATUS);
    cr_assert_str_eq(r->str, "OK");
    r = parse(err, strlen(err));
    cr_assert_eq(r->type, REDIS_REPLY_ERROR);
    cr_assert_str_eq(r->str, "NOGROUP no group");
    r = parse(num, strlen(num));
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
    cr_assert_eq(r->integer, INT64_MIN);
    cr_assert_eq(parse(nil, strlen(nil))->type, REDIS_REPLY_NIL);
    cr_assert_eq(parse(nila, strlen(nila))->type, REDIS_REPLY_NIL);
    r = parse(empty, strlen(empty));
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(r->elements, 0);
}

Test(resp, only_the_first_reply_is_measured)
{
    struct ru_resp_scan sc;
    cr_assert_eq(scan(&sc, "+OK\r\n:3\r\n", 9), 5);
}

/* text, cut at every byte: incomplete; the same scan resumed once the rest arrives finds
 * the whole reply, with its nodes and element pointers */
static void cut_and_resume(const char *text, size_t nodes, size_t elems)
{
    size_t len = strlen(text);
    for (size_t cut = 0; cut < len; cut++) {
        struct ru_resp_scan whole, sc;
        cr_assert_eq(scan(&whole, text, cut), 0, "cut at %zu", cut);
        char err[64];
        ru_resp_scan_reset(&sc);
        cr_assert_eq(ru_resp_scan(&sc, text, cut, err, sizeof(err)), 0);
        cr_assert_eq(ru_resp_scan(&sc, text, len, err, sizeof(err)), (ssize_t)len, "cut at %zu",
                     cut);
        cr_assert_eq(sc.nodes, nodes);
        cr_assert_eq(sc.elems, elems);
    }
}

Test(resp, incomplete_at_every_cut_then_resumed)
{
    cut_and_resume("*2\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\na\r\n$3\r\nxyz\r\n:42\r\n", 7, 6);
}

/* An entry of four field pairs: the strings after the first of an array are scanned in a
 * loop of their own, which must stop and resume at any byte as the general path does. */
Test(resp, a_run_of_strings_cut_anywhere_then_resumed)
{
    cut_and_resume("*1\r\n*2\r\n$3\r\n1-0\r\n*8\r\n$5\r\nroute\r\n$2\r\n/a\r\n"
                   "$6\r\nmethod\r\n$3\r\nGET\r\n$11\r\nduration_ms\r\n$2\r\n15\r\n"
                   "$6\r\nstatus\r\n$100\r\n"
                   "0123456789012345678901234567890123456789012345678901234567890123456789"
                   "012345678901234567890123456789\r\n",
                   12, 11);
}

Test(resp, protocol_errors)
{
    static const char *bad[] = {
        "!x\r\n",                    /* unknown type byte */
        ":12a\r\n",                  /* not a number */
        ":\r\n",                     /* no digits */
        ":012\r\n",                  /* leading zero */
        ":-0\r\n",                   /* negative zero */
        ":99999999999999999999\r\n", /* beyond long long */
        "$-2\r\n",                   /* negative length other than -1 */
        "$3\r\nabcd\r\n",            /* no CR LF after the string */
        "*-2\r\n",                   /* negative count other than -1 */
        "$1x\r\n",
        "$05\r\nhello\r\n", /* leading zero in a short bulk length */
        "$00\r\n\r\n",
        "$1\rx\r\n\r\n", /* CR without LF after the length */
        "$12\r\r\n",
        /* the same faults in a run of strings (an array's second and later elements) */
        "*4\r\n$1\r\na\r\n$1\r\nbx\r\n$1\r\nc\r\n$1\r\nd\r\n",
        "*4\r\n$1\r\na\r\n$05\r\nhello\r\n$1\r\nc\r\n$1\r\nd\r\n",
        "*4\r\n$1\r\na\r\n$1\r\nb\r\n$-2\r\n$1\r\nd\r\n",
        "*4\r\n$1\r\na\r\n$1\r\nb\r\n$1\rc\r\n$1\r\nd\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ru_resp_scan sc;
        cr_assert_eq(scan(&sc, bad[i], strlen(bad[i])), -1, "%s", bad[i]);
    }
}

/* Bulk lengths of every digit count: the short headers (1 to 3 digits) are read on a
 * path of their own, longer ones by the general parser. */
Test(resp, bulk_lengths_of_each_digit_count)
{
    static const size_t lens[] = {0, 1, 9, 10, 99, 100, 999, 1000, 12345};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t n = lens[i];
        char *buf = malloc(n + 32);
        int h = snprintf(buf, 32, "$%zu\r\n", n);
        memset(buf + h, 'x', n);
        memcpy(buf + h + n, "\r\n", 2);
        size_t total = (size_t)h + n + 2;
        redisReply *r = parse(buf, total);
        cr_assert_eq(r->type, REDIS_REPLY_STRING, "length %zu", n);
        cr_assert_eq(r->len, n, "length %zu", n);
        /* cut short anywhere: more bytes are needed, never an error */
        for (size_t cut = 0; cut < total; cut++) {
            struct ru_resp_scan sc;
            cr_assert_eq(scan(&sc, buf, cut), 0, "length %zu cut at %zu", n, cut);
        }
        free(buf);
    }
}

Test(resp, nesting_limit_as_hiredis)
{
    char ok[64] = "", deep[64] = "";
    for (int i = 0; i < RU_RESP_MAX_DEPTH + 1; i++)
        strcat(ok, "*1\r\n");
    strcat(ok, ":1\r\n");
    struct ru_resp_scan sc;
    cr_assert_eq(scan(&sc, ok, strlen(ok)), (ssize_t)strlen(ok));
    for (int i = 0; i < RU_RESP_MAX_DEPTH + 2; i++)
        strcat(deep, "*1\r\n");
    strcat(deep, ":1\r\n");
    cr_assert_eq(scan(&sc, deep, strlen(deep)), -1);
}

static redisReply *parse_lazy(char *buf, size_t len, int lazy_at)
{
    struct ru_resp_scan sc;
    ssize_t n = scan(&sc, buf, len);
    cr_assert_gt(n, 0, "not complete: %.*s", (int)len, buf);
    return ru_resp_build_lazy(buf, (size_t)n, &sc, arena, lazy_at);
}

/* An XREADGROUP reply's entries left lazy, then read one by one: straight from the bytes
 * when every string is a bulk string, built alone otherwise, ending where the reply does. */
Test(resp, xreadgroup_entries_read_lazily)
{
    char text[] =
        "*1\r\n*2\r\n$1\r\ns\r\n*4\r\n"
        "*2\r\n$3\r\n1-0\r\n*4\r\n$5\r\nroute\r\n$2\r\n/a\r\n$6\r\nstatus\r\n$3\r\n200\r\n"
        "*2\r\n$3\r\n1-1\r\n*-1\r\n"
        "*2\r\n$3\r\n1-2\r\n*2\r\n$5\r\nroute\r\n:7\r\n"
        "*2\r\n$3\r\n1-3\r\n*0\r\n";
    size_t len = strlen(text); /* before the build writes its NULs */
    redisReply *r = parse_lazy(text, len, 3);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_assert_str_eq(r->element[0]->element[0]->str, "s");
    const redisReply *list = r->element[0]->element[1];
    cr_assert_eq(list->type, RU_RESP_LAZY);
    cr_assert(ru_resp_is_array(list));
    cr_assert_eq(list->elements, 4);
    cr_assert_eq(list->str + list->len, text + len);

    struct ru_field f[4];
    struct ru_str id;
    long long nf;
    size_t pos = 0;
    cr_assert_eq(ru_resp_entry(list->str, &pos, list->len, &id, f, 4, &nf), 1);
    cr_assert_eq(nf, 2);
    assert_str(id, "1-0");
    cr_assert_eq(f[0].name.len, 5);
    assert_str(f[0].name, "route");
    assert_str(f[0].value, "/a");
    assert_str(f[1].name, "status");
    assert_str(f[1].value, "200");
    cr_assert_eq(f[1].value.p[f[1].value.len], '\r', "the reply's bytes are left as they were");
    cr_assert(f[1].value.p > text && f[1].value.p < text + sizeof(text));

    cr_assert_eq(ru_resp_entry(list->str, &pos, list->len, &id, f, 4, &nf), 1);
    assert_str(id, "1-1");
    cr_assert_eq(nf, -1, "nil fields: deleted while pending");

    /* an integer among the fields: not read straight, built alone instead */
    size_t at = pos;
    cr_assert_eq(ru_resp_entry(list->str, &pos, list->len, &id, f, 4, &nf), 0);
    cr_assert_eq(pos, at, "a refused entry leaves the position");
    struct ru_reply_arena *item = ru_reply_arena_new();
    redisReply *e = ru_resp_build_item(list->str, &pos, list->len, item);
    cr_assert_eq(e->type, REDIS_REPLY_ARRAY);
    cr_assert_str_eq(e->element[0]->str, "1-2");
    cr_assert_eq(e->element[1]->element[1]->type, REDIS_REPLY_INTEGER);
    cr_assert_eq(e->element[1]->element[1]->integer, 7);
    ru_reply_arena_free(item);

    cr_assert_eq(ru_resp_entry(list->str, &pos, list->len, &id, f, 4, &nf), 1);
    cr_assert_eq(nf, -1, "no fields at all counts as none");
    cr_assert_eq(pos, list->len);
}

/* The same reply scanned with an index, in two pieces: each entry read from the index is
 * the one read from the bytes, ending at the same node as the bytes' next entry starts;
 * one of another shape is refused with the position to build it from. */
Test(resp, xreadgroup_entries_read_from_the_index)
{
    char text[] =
        "*1\r\n*2\r\n$1\r\ns\r\n*5\r\n"
        "*2\r\n$3\r\n1-0\r\n*4\r\n$5\r\nroute\r\n$2\r\n/a\r\n$6\r\nstatus\r\n$3\r\n200\r\n"
        "*2\r\n$3\r\n1-1\r\n*-1\r\n"
        "*2\r\n$3\r\n1-2\r\n$-1\r\n"
        "*2\r\n$3\r\n1-3\r\n*2\r\n$5\r\nroute\r\n:7\r\n"
        "*2\r\n$3\r\n1-4\r\n*0\r\n";
    size_t len = strlen(text), cut = 40;
    struct ru_resp_scan sc;
    struct ru_resp_index ix = {0};
    char err[64];
    ru_resp_scan_reset(&sc);
    cr_assert_eq(ru_resp_scan_indexed(&sc, &ix, text, cut, err, sizeof(err)), 0);
    cr_assert_eq(ru_resp_scan_indexed(&sc, &ix, text, len, err, sizeof(err)), (ssize_t)len);
    cr_assert(ix.ok);
    redisReply *r = ru_resp_build_lazy(text, len, &sc, arena, 3);
    const redisReply *list = r->element[0]->element[1];
    cr_assert_eq(list->type, RU_RESP_LAZY);
    cr_assert_eq(list->integer, 4, "the reply, the stream's array, its name, the list: 0-3");

    struct ru_field f[4];
    struct ru_str id;
    long long nf;
    size_t node = (size_t)list->integer;
    const char *base = ru_resp_index_base(&ix, list);
    cr_assert_eq(ru_resp_entry_indexed(&ix, base, &node, &id, f, 4, &nf), 1);
    assert_str(id, "1-0");
    cr_assert_eq(nf, 2);
    assert_str(f[0].name, "route");
    assert_str(f[0].value, "/a");
    assert_str(f[1].name, "status");
    assert_str(f[1].value, "200");
    cr_assert_eq(node, 4 + 7);

    cr_assert_eq(ru_resp_entry_indexed(&ix, base, &node, &id, f, 4, &nf), 1);
    assert_str(id, "1-1");
    cr_assert_eq(nf, -1, "a nil array: deleted while pending");

    /* a nil bulk string in place of the fields: ru_resp_entry refuses it too */
    size_t at = node, pos = ru_resp_index_pos(&ix, base, list, node), bytes = pos;
    cr_assert_eq(ru_resp_entry_indexed(&ix, base, &node, &id, f, 4, &nf), 0);
    cr_assert_eq(node, at, "a refused entry leaves the node");
    cr_assert_eq(ru_resp_entry(list->str, &bytes, list->len, &id, f, 4, &nf), 0);
    cr_assert_eq(memcmp(list->str + pos, "*2\r\n$3\r\n1-2\r\n", 13), 0);
    node += 3;

    /* an integer among the fields, and more pairs than room: refused */
    cr_assert_eq(ru_resp_entry_indexed(&ix, base, &node, &id, f, 4, &nf), 0);
    pos = ru_resp_index_pos(&ix, base, list, node);
    cr_assert_eq(memcmp(list->str + pos, "*2\r\n$3\r\n1-3\r\n", 13), 0);
    struct ru_reply_arena *item = ru_reply_arena_new();
    redisReply *e = ru_resp_build_item(list->str, &pos, list->len, item);
    cr_assert_eq(e->element[1]->element[1]->integer, 7);
    ru_reply_arena_free(item);
    node += 5;
    cr_assert_eq(ru_resp_index_pos(&ix, base, list, node), pos,
                 "the next entry: where the build ended");

    cr_assert_eq(ru_resp_entry_indexed(&ix, base, &node, &id, f, 4, &nf), 1);
    assert_str(id, "1-4");
    cr_assert_eq(nf, -1, "no fields at all counts as none");
    cr_assert_eq(node, sc.nodes, "the last node of the reply");

    node = (size_t)list->integer;
    cr_assert_eq(ru_resp_entry_indexed(&ix, base, &node, &id, f, 1, &nf), 0,
                 "two pairs, room for one");
    ru_resp_index_free(&ix);
}

/* The index's room is kept from one reply to the next, given back when a large reply is
 * followed by the next; a reply it cannot note (an array of 2^30 elements or more) is
 * marked so, and the scan still measures it. */
Test(resp, the_index_keeps_its_room_within_bounds)
{
    struct ru_resp_scan sc;
    struct ru_resp_index ix = {0};
    char err[64];
    size_t n = RU_RESP_IX_KEEP + 10;
    char *big = malloc(4 * n + 32);
    int h = snprintf(big, 32, "*%zu\r\n", n);
    for (size_t i = 0; i < n; i++)
        memcpy(big + h + 4 * i, ":1\r\n", 4);
    size_t len = (size_t)h + 4 * n;
    ru_resp_scan_reset(&sc);
    cr_assert_eq(ru_resp_scan_indexed(&sc, &ix, big, len, err, sizeof(err)), (ssize_t)len);
    cr_assert(ix.ok);
    cr_assert_gt(ix.cap, RU_RESP_IX_KEEP);
    free(big);

    char small[] = "*1\r\n$1\r\na\r\n";
    ru_resp_scan_reset(&sc);
    cr_assert_eq(ru_resp_scan_indexed(&sc, &ix, small, strlen(small), err, sizeof(err)),
                 (ssize_t)strlen(small));
    cr_assert(ix.ok);
    cr_assert_leq(ix.cap, RU_RESP_IX_KEEP);
    size_t cap = ix.cap;
    ru_resp_scan_reset(&sc);
    cr_assert_eq(ru_resp_scan_indexed(&sc, &ix, small, strlen(small), err, sizeof(err)),
                 (ssize_t)strlen(small));
    cr_assert_eq(ix.cap, cap, "kept for the next reply");

    char huge[] = "*1073741824\r\n:1\r\n"; /* incomplete, but already too many to note */
    ru_resp_scan_reset(&sc);
    cr_assert_eq(ru_resp_scan_indexed(&sc, &ix, huge, strlen(huge), err, sizeof(err)), 0);
    cr_assert(!ix.ok);
    ru_resp_scan_reset(&sc);
    cr_assert_eq(ru_resp_scan_indexed(&sc, &ix, small, strlen(small), err, sizeof(err)),
                 (ssize_t)strlen(small));
    cr_assert(ix.ok, "the next reply is noted again");
    ru_resp_index_free(&ix);
}

Test(resp, an_entry_with_more_pairs_than_room_is_refused)
{
    char text[] = "*1\r\n*2\r\n$3\r\n1-0\r\n*4\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n";
    redisReply *r = parse_lazy(text, strlen(text), 1);
    cr_assert_eq(r->type, RU_RESP_LAZY);
    struct ru_field f[2];
    struct ru_str id;
    long long nf;
    size_t pos = 0;
    cr_assert_eq(ru_resp_entry(r->str, &pos, r->len, &id, f, 1, &nf), 0);
    cr_assert_eq(pos, 0);
    cr_assert_eq(ru_resp_entry(r->str, &pos, r->len, &id, f, 2, &nf), 1);
    cr_assert_eq(nf, 2);
    assert_str(f[1].value, "d");
}

/* Only a list that ends the reply is left lazy: one followed by more (two streams in one
 * reply, XAUTOCLAIM's deleted ids) is built whole, as are empty lists and other replies. */
Test(resp, lazy_only_where_the_list_ends_the_reply)
{
    char two[] = "*2\r\n*2\r\n$1\r\na\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*-1\r\n"
                 "*2\r\n$1\r\nb\r\n*1\r\n*2\r\n$3\r\n2-0\r\n*-1\r\n";
    redisReply *r = parse_lazy(two, strlen(two), 3);
    cr_assert_eq(r->element[0]->element[1]->type, REDIS_REPLY_ARRAY);
    cr_assert_str_eq(r->element[0]->element[1]->element[0]->element[0]->str, "1-0");
    cr_assert_eq(r->element[1]->element[1]->type, REDIS_REPLY_ARRAY);
    cr_assert_str_eq(r->element[1]->element[1]->element[0]->element[0]->str, "2-0");

    char claim[] = "*3\r\n$3\r\n0-0\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*-1\r\n*1\r\n$3\r\n1-1\r\n";
    r = parse_lazy(claim, strlen(claim), 2);
    cr_assert_eq(r->element[1]->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(r->element[2]->type, REDIS_REPLY_ARRAY);
    cr_assert_str_eq(r->element[2]->element[0]->str, "1-1");

    char empty[] = "*0\r\n", nil[] = "*-1\r\n", err[] = "-NOGROUP x\r\n";
    cr_assert_eq(parse_lazy(empty, strlen(empty), 1)->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(parse_lazy(nil, strlen(nil), 3)->type, REDIS_REPLY_NIL);
    cr_assert_eq(parse_lazy(err, strlen(err), 3)->type, REDIS_REPLY_ERROR);
}
