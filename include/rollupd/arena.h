/* arena: bump allocation in chunks, for memory whose pieces all die together — one
 * Redis reply (reset after it is handled), a store's key and user strings (freed with the
 * store), one flush's deltas (reset after the flush). A piece costs a pointer bump; the
 * memory goes back to the allocator a chunk at a time. Pure: no I/O. */
#ifndef ROLLUPD_ARENA_H
#define ROLLUPD_ARENA_H

#include <stddef.h>

struct ru_arena_chunk;

struct ru_arena {
    struct ru_arena_chunk *head;  /* the chunk being filled, then the older ones */
    struct ru_arena_chunk *spare; /* chunks a reset emptied, used before new ones */
    size_t total;                 /* bytes of every chunk, headers included */
    size_t cap;                   /* what the chunks can hand out (total less headers) */
    size_t want;                  /* bytes handed out since the last reset */
    size_t peak;                  /* the recent peak of want, fading (ru_arena_reset) */
    size_t chunk_min;             /* the smallest chunk allocated */
    size_t keep_max;              /* what a reset may keep, at most */
};

/* An empty arena (allocates nothing yet); chunks of at least chunk_min bytes, and a
 * reset keeps at most keep_max (0: keeps nothing). Zeroed memory is not a valid arena. */
void ru_arena_init(struct ru_arena *a, size_t chunk_min, size_t keep_max);
/* Frees every chunk; the arena is empty again and may be used on. */
void ru_arena_deinit(struct ru_arena *a);

/* n bytes, 16-byte aligned, valid until the next reset or deinit. */
void *ru_arena_alloc(struct ru_arena *a, size_t n);
/* A NUL-terminated copy of s[0..len), not aligned (strings pack tightly). */
char *ru_arena_strndup(struct ru_arena *a, const char *s, size_t len);

/* Releases everything handed out. Keeps the chunks for what comes next (so a steady or
 * a repeated load allocates nothing and touches no new page) while they hold at most
 * keep_max, the recent peak of use is at least a quarter of them, and, if this use went
 * through more than one chunk, they hold at most half as much again as that peak;
 * otherwise gives them back and keeps one chunk of the peak and an eighth (at least
 * chunk_min, at most keep_max). The peak fades by an eighth at each reset with less use,
 * so one large load is not held for ever, and small loads between large ones do not give
 * back what the large ones need. */
void ru_arena_reset(struct ru_arena *a);

/* Bytes handed out since the last reset (alignment included). */
size_t ru_arena_used(const struct ru_arena *a);
/* Bytes the arena holds from the allocator, used or not. */
size_t ru_arena_size(const struct ru_arena *a);

#endif
