/* fuzz_resp: libFuzzer target for ru_resp_scan and ru_resp_build, the in-place reader of
 * Redis replies (src/resp.c), differential against hiredis 0.14's own reader.
 *
 * Input: the bytes the socket delivered. The first byte also chooses how the input is cut
 * into the pieces the scan sees one after the other (as reads return them), so a scan that
 * resumes where it stopped is checked against a scan of the whole input.
 *
 * Checks (abort() on a violation, so libFuzzer records the input):
 *   - the scan in pieces gives the same answer as the scan of the whole input (length,
 *     incomplete, or error), and a complete reply's length is within the input;
 *   - a complete reply: hiredis, fed the same bytes, returns a reply too, having consumed
 *     exactly as many bytes, and ru_resp_build's tree equals it node by node (type, string
 *     bytes and length, integer, element count); every string of the tree lies inside the
 *     input and is NUL-terminated;
 *   - the scan's node and element counts are hiredis' and the build takes exactly that
 *     much of the arena;
 *   - the same reply built by ru_resp_build_lazy, with lazy_at 1 to 4 in turn: the first
 *     non-empty array inside lazy_at - 1 arrays is lazy exactly when it ends the reply,
 *     and the part built takes exactly its nodes' room; a lazy list's items, built one by
 *     one with ru_resp_build_item (each taking exactly its room), are hiredis' elements,
 *     ending exactly where the reply does; each item that
 *     ru_resp_entry reads straight is the entry hiredis built (id, then nil, no fields, or
 *     name/value bulk strings), ends where ru_resp_build_item ends it, and leaves the
 *     input's bytes as they were;
 *   - the index the scan in pieces noted (ru_resp_scan_indexed): one word per node of
 *     hiredis' tree in order, each at its place in the input (a bulk string's body and
 *     length, an array's type byte and count, anything else's type byte); each lazy item
 *     read from it (ru_resp_entry_indexed) is what ru_resp_entry reads from the bytes, or
 *     refused exactly when that is, ending at the node where the next item starts;
 *   - an incomplete one: hiredis returns no reply either (fed only when the arrays announced
 *     so far are no larger than the input, since hiredis allocates them up front);
 *   - a refusal: nothing (hiredis accepts looser input, e.g. "+" before an integer).
 * Each input is copied into an allocation of exactly its size, so reading past it is an
 * AddressSanitizer error. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "rollupd/reply.h"
#include "rollupd/resp.h"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_tree(const redisReply *a, const redisReply *h, const char *lo, const char *hi)
{
    CHECK(a->type == h->type);
    switch (a->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        CHECK(a->len == h->len);
        CHECK(a->str >= lo && a->str + a->len < hi);
        CHECK(a->str[a->len] == '\0');
        CHECK(memcmp(a->str, h->str, a->len) == 0);
        break;
    case REDIS_REPLY_INTEGER:
        CHECK(a->integer == h->integer);
        break;
    case REDIS_REPLY_ARRAY:
        CHECK(a->elements == h->elements);
        for (size_t i = 0; i < a->elements; i++)
            same_tree(a->element[i], h->element[i], lo, hi);
        break;
    case REDIS_REPLY_NIL:
        break;
    default:
        CHECK(!"unknown reply type");
    }
}

/* x is a bulk string with v's bytes (ru_resp_entry's strings go by length alone, and the
 * caller checks that it left the input as it was) */
static bool same_str(const redisReply *x, const struct ru_str *v)
{
    return x->type == REDIS_REPLY_STRING && x->len == v->len && memcmp(x->str, v->p, v->len) == 0;
}

static bool is_entry_of(const redisReply *h, const struct ru_str *id, const struct ru_field *f,
                        long long nf)
{
    if (h->type != REDIS_REPLY_ARRAY || h->elements != 2)
        return false;
    const redisReply *hf = h->element[1];
    if (!same_str(h->element[0], id))
        return false;
    if (nf < 0)
        return hf->type == REDIS_REPLY_NIL || (hf->type == REDIS_REPLY_ARRAY && hf->elements == 0);
    if (hf->type != REDIS_REPLY_ARRAY || hf->elements != (size_t)nf * 2)
        return false;
    for (size_t k = 0; k < hf->elements; k++) {
        if (!same_str(hf->element[k], k % 2 ? &f[k / 2].value : &f[k / 2].name))
            return false;
    }
    return true;
}

/* The index's words from *k on are hiredis' tree h in order, at their places in buf. */
static void same_index(const struct ru_resp_index *ix, size_t *k, const redisReply *h,
                       const char *buf)
{
    uint64_t w = ix->w[(*k)++];
    size_t off = (uint32_t)w;
    uint32_t what = (uint32_t)(w >> 32);
    switch (h->type) {
    case REDIS_REPLY_STRING: {
        char head[32]; /* the header right before the body */
        int hl = snprintf(head, sizeof(head), "$%zu\r\n", h->len);
        CHECK(what == h->len && off >= (size_t)hl && memcmp(buf + off - hl, head, (size_t)hl) == 0);
        CHECK(memcmp(buf + off, h->str, h->len) == 0);
        break;
    }
    case REDIS_REPLY_ARRAY:
        CHECK(buf[off] == '*' && what == (RU_RESP_IX_ARRAY | (uint32_t)h->elements));
        for (size_t i = 0; i < h->elements; i++)
            same_index(ix, k, h->element[i], buf);
        break;
    case REDIS_REPLY_NIL:
        CHECK(what == RU_RESP_IX_OTHER && (buf[off] == '$' || buf[off] == '*'));
        break;
    case REDIS_REPLY_INTEGER:
        CHECK(what == RU_RESP_IX_OTHER && buf[off] == ':');
        break;
    default: /* status, error */
        CHECK(what == RU_RESP_IX_OTHER && (buf[off] == '+' || buf[off] == '-'));
    }
}

/* Nodes and element pointers of a hiredis tree, and what they take in a reply arena. */
static void count_tree(const redisReply *h, size_t *nodes, size_t *elems)
{
    (*nodes)++;
    if (h->type != REDIS_REPLY_ARRAY)
        return;
    *elems += h->elements;
    for (size_t i = 0; i < h->elements; i++)
        count_tree(h->element[i], nodes, elems);
}

static size_t tree_bytes(size_t nodes, size_t elems)
{
    return (nodes * sizeof(redisReply) + elems * sizeof(redisReply *) + 15) & ~(size_t)15;
}

struct lazy_check {
    const struct ru_resp_index *ix;
    int lazy_at;
    bool candidate_seen; /* the first non-empty array inside lazy_at - 1 arrays was met */
    size_t nodes, elems; /* of the part that was built */
    struct ru_reply_arena *items;
};

/* a, built lazily, against hiredis' h: the first non-empty array inside lazy_at - 1 arrays
 * is lazy exactly when it ends the reply (last), every other node is built as hiredis
 * built it; a lazy list's items, read one by one, are hiredis' elements */
static void same_lazy(const redisReply *a, const redisReply *h, const char *lo, const char *hi,
                      struct lazy_check *lc, int depth, bool last)
{
    bool candidate = h->type == REDIS_REPLY_ARRAY && h->elements > 0 && depth == lc->lazy_at - 1 &&
                     !lc->candidate_seen;
    if (candidate)
        lc->candidate_seen = true;
    lc->nodes++;
    if (a->type != RU_RESP_LAZY) {
        CHECK(!(candidate && last));
        CHECK(a->type == h->type);
        if (a->type != REDIS_REPLY_ARRAY) {
            same_tree(a, h, lo, hi);
            return;
        }
        CHECK(a->elements == h->elements);
        lc->elems += a->elements;
        for (size_t i = 0; i < a->elements; i++)
            same_lazy(a->element[i], h->element[i], lo, hi, lc, depth + 1,
                      last && i + 1 == a->elements);
        return;
    }
    CHECK(candidate && last);
    CHECK(h->elements == a->elements);
    CHECK(a->str >= lo && a->str + a->len == hi);
    size_t pos = 0, node = (size_t)a->integer;
    const char *base = ru_resp_index_base(lc->ix, a);
    for (size_t i = 0; i < a->elements; i++) {
        struct ru_field f[8], g[8];
        struct ru_str id, gid;
        long long nf = 0, gnf = 0;
        size_t at = pos, straight = pos, gnode = node;
        CHECK(ru_resp_index_pos(lc->ix, base, a, node) == at);
        /* ru_resp_entry only reads: the bytes are the same afterwards */
        char *before = malloc(a->len - at + 1);
        CHECK(before != NULL);
        memcpy(before, a->str + at, a->len - at);
        int got = ru_resp_entry(a->str, &straight, a->len, &id, f, 8, &nf);
        CHECK(memcmp(before, a->str + at, a->len - at) == 0);
        free(before);
        CHECK(got == 0 ? straight == at : is_entry_of(h->element[i], &id, f, nf));
        /* from the index: the same strings, or refused as well */
        int gix = ru_resp_entry_indexed(lc->ix, base, &gnode, &gid, g, 8, &gnf);
        CHECK(gix == got);
        size_t inodes = 0, ielems = 0;
        count_tree(h->element[i], &inodes, &ielems);
        if (got) {
            CHECK(gnode == node + inodes && gnf == nf && gid.p == id.p && gid.len == id.len);
            for (long long k = 0; k < nf; k++)
                CHECK(g[k].name.p == f[k].name.p && g[k].name.len == f[k].name.len &&
                      g[k].value.p == f[k].value.p && g[k].value.len == f[k].value.len);
        } else {
            CHECK(gnode == node);
        }
        node += inodes;
        ru_reply_arena_reset(lc->items);
        same_tree(ru_resp_build_item(a->str, &pos, a->len, lc->items), h->element[i], lo, hi);
        size_t nodes = 0, elems = 0;
        count_tree(h->element[i], &nodes, &elems);
        CHECK(ru_reply_arena_used(lc->items) == tree_bytes(nodes, elems));
        CHECK(got == 0 || straight == pos);
    }
    CHECK(pos == a->len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ru_reply_arena *arena, *items;
    if (arena == NULL) {
        arena = ru_reply_arena_new();
        items = ru_reply_arena_new();
    }
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    char err[64];

    struct ru_resp_scan whole;
    ru_resp_scan_reset(&whole);
    ssize_t n = ru_resp_scan(&whole, buf, size, err, sizeof(err));
    CHECK(n <= (ssize_t)size);

    /* the same scan, resumed piece by piece */
    size_t step = size ? 1 + (size_t)data[0] % 64 : 1;
    struct ru_resp_scan sc;
    static struct ru_resp_index ix;
    if (ix.w != NULL) /* no word of an earlier input may pass for one of this input's */
        memset(ix.w, 0xff, ix.cap * sizeof(*ix.w));
    ru_resp_scan_reset(&sc);
    ssize_t m = 0;
    for (size_t have = step < size ? step : size;; have = have + step < size ? have + step : size) {
        m = ru_resp_scan_indexed(&sc, &ix, buf, have, err, sizeof(err));
        if (m != 0 || have == size)
            break;
    }
    CHECK(m == n);

    if (n > 0) {
        CHECK(sc.nodes == whole.nodes && sc.elems == whole.elems);
        redisReply *mine = ru_resp_build(buf, (size_t)n, &whole, arena);
        redisReader *r = redisReaderCreate();
        CHECK(redisReaderFeed(r, (const char *)data, size) == REDIS_OK);
        void *theirs = NULL;
        CHECK(redisReaderGetReply(r, &theirs) == REDIS_OK);
        CHECK(theirs != NULL);
        CHECK(r->pos == (size_t)n || (r->pos == 0 && r->len == size - (size_t)n));
        same_tree(mine, theirs, buf, buf + n);
        /* the scan counted what hiredis built, and the build took exactly that */
        size_t nodes = 0, elems = 0;
        count_tree(theirs, &nodes, &elems);
        CHECK(nodes == whole.nodes && elems == whole.elems);
        CHECK(ru_reply_arena_used(arena) == tree_bytes(nodes, elems));
        CHECK(ix.ok);
        size_t k = 0;
        same_index(&ix, &k, theirs, (const char *)data);
        /* lazily at each depth, each time on a fresh copy of the bytes (the NULs a build
         * writes end its status lines) and in an emptied arena */
        for (int lazy_at = 1; lazy_at <= 4; lazy_at++) {
            memcpy(buf, data, size);
            ru_reply_arena_reset(arena);
            redisReply *lazy = ru_resp_build_lazy(buf, (size_t)n, &whole, arena, lazy_at);
            struct lazy_check lc = {.ix = &ix, .lazy_at = lazy_at, .items = items};
            same_lazy(lazy, theirs, buf, buf + n, &lc, 0, true);
            CHECK(ru_reply_arena_used(arena) == tree_bytes(lc.nodes, lc.elems));
        }
        freeReplyObject(theirs);
        redisReaderFree(r);
    } else if (n == 0 && whole.elems <= size) {
        redisReader *r = redisReaderCreate();
        CHECK(redisReaderFeed(r, (const char *)data, size) == REDIS_OK);
        void *theirs = NULL;
        int rc = redisReaderGetReply(r, &theirs);
        CHECK(rc != REDIS_OK || theirs == NULL);
        if (theirs)
            freeReplyObject(theirs);
        redisReaderFree(r);
    }
    ru_reply_arena_reset(arena);
    free(buf);
    return 0;
}
