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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ru_reply_arena *arena;
    if (arena == NULL)
        arena = ru_reply_arena_new();
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
    ru_resp_scan_reset(&sc);
    ssize_t m = 0;
    for (size_t have = step < size ? step : size;; have = have + step < size ? have + step : size) {
        m = ru_resp_scan(&sc, buf, have, err, sizeof(err));
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
