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

static void free_chunks(struct ru_arena *a)
{
    while (a->head) {
        struct ru_arena_chunk *n = a->head->next;
        free(a->head);
        a->head = n;
    }
    a->total = 0;
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
    return c;
}

/* n bytes at an offset that is a multiple of align (a power of two) in the current chunk,
 * or in a new one */
static void *take(struct ru_arena *a, size_t n, size_t align)
{
    struct ru_arena_chunk *c = a->head;
    size_t at = c ? (c->used + align - 1) & ~(align - 1) : 0;
    if (c == NULL || at > c->cap || c->cap - at < n) {
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
    size_t want = a->want;
    a->want = 0;
    struct ru_arena_chunk *c = a->head;
    if (c == NULL)
        return;
    /* one chunk that held everything, not outgrown by far: used again as it is */
    bool shrunk = c->cap > a->chunk_min && want < c->cap / 4;
    if (c->next == NULL && c->cap <= a->keep_max && !shrunk) {
        c->used = 0;
        return;
    }
    free_chunks(a);
    size_t keep = want + want / 8;
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
