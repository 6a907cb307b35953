#include "rollupd/arena.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rollupd/util.h"

struct ru_arena_chunk {
    struct ru_arena_chunk *next;
    size_t used, cap;
    _Alignas(16) char data[];
};

void ru_arena_init(struct ru_arena *a, size_t chunk_min, size_t keep_max)
{
    *a = (struct ru_arena){.chunk_min = chunk_min, .keep_max = keep_max};
}

static void free_list(struct ru_arena_chunk *c)
{
    while (c) {
        struct ru_arena_chunk *n = c->next;
        free(c);
        c = n;
    }
}

static void free_chunks(struct ru_arena *a)
{
    free_list(a->head);
    free_list(a->spare);
    a->head = a->spare = NULL;
    a->total = a->cap = 0;
}

void ru_arena_deinit(struct ru_arena *a)
{
    free_chunks(a);
    a->want = 0;
}

static struct ru_arena_chunk *new_chunk(struct ru_arena *a, size_t cap)
{
    struct ru_arena_chunk *c = ru_xmalloc(sizeof(*c) + cap);
    c->cap = cap;
    c->used = 0;
    c->next = a->head;
    a->head = c;
    a->total += sizeof(*c) + cap;
    a->cap += cap;
    return c;
}

/* A spare chunk of at least n bytes, moved to the head; NULL when none is that large. */
static struct ru_arena_chunk *reuse_chunk(struct ru_arena *a, size_t n)
{
    for (struct ru_arena_chunk **p = &a->spare; *p; p = &(*p)->next) {
        struct ru_arena_chunk *c = *p;
        if (c->cap < n)
            continue;
        *p = c->next;
        c->next = a->head;
        a->head = c;
        return c;
    }
    return NULL;
}

/* n bytes at an offset that is a multiple of align (a power of two) in the current chunk,
 * else in a spare one, else in a new one */
static void *take(struct ru_arena *a, size_t n, size_t align)
{
    struct ru_arena_chunk *c = a->head;
    size_t at = c ? (c->used + align - 1) & ~(align - 1) : 0;
    if (c == NULL || at > c->cap || c->cap - at < n) {
        c = reuse_chunk(a, n);
        if (c == NULL)
            c = new_chunk(a, n > a->chunk_min ? n : a->chunk_min);
        at = 0;
    }
    a->want += n + (at - c->used);
    c->used = at + n;
    return c->data + at;
}

void *ru_arena_alloc(struct ru_arena *a, size_t n)
{
    return take(a, (n + 15) & ~(size_t)15, 16);
}

char *ru_arena_strndup(struct ru_arena *a, const char *s, size_t len)
{
    char *p = take(a, len + 1, 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void ru_arena_reset(struct ru_arena *a)
{
    /* the recent peak: this use, or the last peak less an eighth, whichever is larger, so
     * a small use right after a large one (an XACK's reply after a read's) does not give
     * back what the next large one needs; a peak fades after about a dozen small uses */
    a->peak = a->want > a->peak - a->peak / 8 ? a->want : a->peak - a->peak / 8;
    a->want = 0;
    if (a->total == 0)
        return;
    /* The chunks stay, as spares, unless one of the two rules below gives them back: the
     * next load as large then allocates nothing and touches only pages it touched before.
     * Putting a grown load's chunks together into one new chunk at every reset would
     * allocate that much again each time, and a large block is fresh memory from the
     * kernel, faulted in page by page (a flush of 1M events spent about a third of its own
     * CPU so). When either rule gives them back, one chunk of the recent peak and an eighth
     * comes in their place (at least chunk_min, at most keep_max).
     * Shrunk: the recent peak is under a quarter of what the chunks hold, or they hold more
     * than may be kept. */
    bool shrunk = a->cap > a->keep_max || (a->cap > a->chunk_min && a->peak < a->cap / 4);
    /* Scattered: this use went through more than one chunk and they hold half as much again
     * as the recent peak. A use spread over several chunks leaves each one's tail unused
     * wherever the next piece did not fit, and spares are taken first fit, so a load of
     * pieces of many sizes that grows a little each time (the writer's next states, flush
     * after flush) added a chunk now and then and held up to four times its use before
     * shrunk gave the chunks back. Measured against the peak, not this use, a smaller use
     * after a larger one keeps the chunks the larger one will need again. */
    size_t nused = 0;
    for (const struct ru_arena_chunk *c = a->head; c != NULL && nused < 2; c = c->next)
        nused++;
    bool scattered = nused > 1 && a->cap > a->peak + a->peak / 2;
    if (!shrunk && !scattered) {
        while (a->head) {
            struct ru_arena_chunk *c = a->head;
            a->head = c->next;
            c->used = 0;
            c->next = a->spare;
            a->spare = c;
        }
        return;
    }
    free_chunks(a);
    size_t keep = a->peak + a->peak / 8;
    if (keep < a->chunk_min)
        keep = a->chunk_min;
    if (keep > a->keep_max)
        keep = a->keep_max;
    if (keep > 0)
        new_chunk(a, keep);
}

size_t ru_arena_used(const struct ru_arena *a)
{
    return a->want;
}

size_t ru_arena_size(const struct ru_arena *a)
{
    return a->total;
}
