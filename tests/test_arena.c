/* arena: alignment, string copies, what a reset keeps and gives back. */
#include <criterion/criterion.h>

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "rollupd/arena.h"

#define KIB 1024

Test(arena, aligned_pieces_do_not_overlap)
{
    struct ru_arena a;
    ru_arena_init(&a, 4 * KIB, 64 * KIB);
    char *prev = NULL;
    size_t prev_n = 0;
    for (size_t n = 1; n < 3000; n += 97) {
        char *p = ru_arena_alloc(&a, n);
        cr_assert_eq((uintptr_t)p % 16, 0, "piece of %zu bytes not 16-byte aligned", n);
        memset(p, 0xab, n);
        if (prev != NULL && p > prev)
            cr_assert_geq((size_t)(p - prev), prev_n, "a piece overlaps the one before");
        prev = p;
        prev_n = n;
    }
    char *big = ru_arena_alloc(&a, 100 * KIB); /* larger than a chunk: a chunk of its own */
    memset(big, 1, 100 * KIB);
    cr_assert_geq(ru_arena_size(&a), 100 * KIB);
    ru_arena_deinit(&a);
    cr_assert_eq(ru_arena_size(&a), 0);
}

Test(arena, strings_pack_and_end_in_nul)
{
    struct ru_arena a;
    ru_arena_init(&a, 4 * KIB, 0);
    char *x = ru_arena_strndup(&a, "route/x", 5);
    char *y = ru_arena_strndup(&a, "GET", 3);
    cr_assert_str_eq(x, "route");
    cr_assert_str_eq(y, "GET");
    cr_assert_eq(y, x + 6, "strings are not packed: %p after %p", (void *)y, (void *)x);
    char *e = ru_arena_strndup(&a, "", 0);
    cr_assert_str_eq(e, "");
    ru_arena_deinit(&a);
}

Test(arena, reset_keeps_its_chunks_for_a_steady_load)
{
    struct ru_arena a;
    ru_arena_init(&a, 4 * KIB, 1024 * KIB);
    for (int i = 0; i < 40; i++) /* 40 KiB: ten chunks */
        ru_arena_alloc(&a, KIB);
    ru_arena_reset(&a);
    size_t kept = ru_arena_size(&a);
    cr_assert(kept >= 40 * KIB && kept < 50 * KIB + 64, "kept %zu bytes for 40 KiB", kept);
    for (int round = 0; round < 5; round++) { /* the same load: no new chunk */
        for (int i = 0; i < 40; i++)
            ru_arena_alloc(&a, KIB);
        cr_assert_eq(ru_arena_size(&a), kept, "round %d allocated another chunk", round);
        ru_arena_reset(&a);
        cr_assert_eq(ru_arena_size(&a), kept);
    }
    ru_arena_deinit(&a);
}

Test(arena, a_grown_load_reuses_its_memory_after_a_reset)
{
    struct ru_arena a;
    ru_arena_init(&a, 4 * KIB, SIZE_MAX);
    char *first[8];
    size_t size[8];
    for (int i = 0; i < 8; i++) { /* grows chunk by chunk, one of them larger */
        size[i] = i == 5 ? 20 * KIB : 3 * KIB;
        first[i] = ru_arena_alloc(&a, size[i]);
    }
    size_t held = ru_arena_size(&a);
    ru_arena_reset(&a);
    cr_assert_eq(ru_arena_size(&a), held, "a reset of a grown load changed %zu to %zu bytes", held,
                 ru_arena_size(&a));
    for (int i = 0; i < 8; i++) {
        char *p = ru_arena_alloc(&a, size[i]);
        memset(p, 0xcd, size[i]);
        bool old = false;
        for (int j = 0; j < 8; j++)
            old = old || p == first[j];
        cr_assert(old, "piece %d of the same load is in memory the arena did not hold", i);
    }
    cr_assert_eq(ru_arena_size(&a), held, "the same load again allocated more");
    ru_arena_deinit(&a);
}

Test(arena, reset_keeps_a_chunk_at_its_limits)
{
    struct ru_arena a;
    ru_arena_init(&a, 4 * KIB, 64 * KIB);
    char *p = ru_arena_alloc(&a, 16); /* the smallest chunk, hardly used */
    size_t held = ru_arena_size(&a);
    for (int i = 0; i < 3; i++) {
        ru_arena_reset(&a);
        cr_assert_eq(ru_arena_alloc(&a, 16), p, "reset %d replaced the smallest chunk", i);
        cr_assert_eq(ru_arena_size(&a), held);
    }
    ru_arena_alloc(&a, 100 * KIB); /* above keep_max: one chunk of keep_max comes back */
    ru_arena_reset(&a);
    held = ru_arena_size(&a);
    p = ru_arena_alloc(&a, 60 * KIB);
    for (int i = 0; i < 3; i++) { /* a chunk of exactly keep_max, well used: it stays */
        ru_arena_reset(&a);
        cr_assert_eq(ru_arena_alloc(&a, 60 * KIB), p, "reset %d replaced the kept chunk", i);
        cr_assert_eq(ru_arena_size(&a), held);
    }
    ru_arena_deinit(&a);
}

Test(arena, small_loads_between_large_ones_keep_the_large_ones_memory)
{
    struct ru_arena a;
    ru_arena_init(&a, 64 * KIB, 1024 * KIB); /* as a connection's replies: reads and XACKs */
    size_t held = 0;
    for (int round = 0; round < 40; round++) {
        ru_arena_alloc(&a, 100 * KIB); /* a read's reply: two chunks */
        ru_arena_alloc(&a, 20 * KIB);
        ru_arena_reset(&a);
        if (round == 0)
            held = ru_arena_size(&a);
        cr_assert_eq(ru_arena_size(&a), held, "round %d: %zu bytes held, not %zu", round,
                     ru_arena_size(&a), held);
        ru_arena_alloc(&a, 16); /* an XACK's reply */
        ru_arena_reset(&a);
        cr_assert_eq(ru_arena_size(&a), held, "round %d: the small load gave back memory", round);
    }
    ru_arena_deinit(&a);
}

Test(arena, reset_gives_back_a_peak)
{
    struct ru_arena a;
    ru_arena_init(&a, 4 * KIB, 256 * KIB);
    ru_arena_alloc(&a, 1024 * KIB); /* a peak above what a reset may keep */
    ru_arena_reset(&a);
    cr_assert_leq(ru_arena_size(&a), 256 * KIB + 64, "kept %zu bytes", ru_arena_size(&a));
    for (int i = 0; i < 60; i++) { /* then small loads: the peak fades, the chunk shrinks */
        ru_arena_alloc(&a, 8 * KIB);
        ru_arena_reset(&a);
    }
    cr_assert_leq(ru_arena_size(&a), 32 * KIB, "kept %zu bytes for 8 KiB", ru_arena_size(&a));
    for (int i = 0; i < 60; i++) /* nothing used: the smallest chunk stays */
        ru_arena_reset(&a);
    cr_assert_leq(ru_arena_size(&a), 4 * KIB + 64);
    ru_arena_deinit(&a);

    ru_arena_init(&a, 4 * KIB, 0); /* keep_max 0: a reset keeps nothing */
    ru_arena_alloc(&a, 100);
    ru_arena_reset(&a);
    cr_assert_eq(ru_arena_size(&a), 0);
    cr_assert_not_null(ru_arena_alloc(&a, 100));
    ru_arena_deinit(&a);
}

/* The writer's scratch: each flush prepares the next state of the rows it touches, pieces
 * of many sizes, most rows each time, every state a little larger than the last. Chunk by
 * chunk the arena once grew to four times such a use before a reset gave it back. */
Test(arena, a_slowly_growing_load_of_many_sizes_stays_near_its_use)
{
    struct ru_arena a;
    ru_arena_init(&a, 64 * KIB, SIZE_MAX);
    uint32_t x = 7; /* xorshift: the same rows and sizes on every run */
#define NEXT() (x ^= x << 13, x ^= x >> 17, x ^= x << 5, x)
    double size[106];
    for (int k = 0; k < 106; k++)
        size[k] = 500 + (NEXT() % 1000) * (k % 7 == 0 ? 150.0 : 20.0);
    size_t most = 0, most_used = 0, before = 0;
    int changed = 0; /* times memory was allocated or given back: faulted in afresh */
    for (int round = 0; round < 600; round++) {
        size_t used = 0;
        for (int k = 0; k < 106; k++) {
            if (NEXT() % 10 == 0)
                continue; /* a row this flush does not touch */
            size[k] *= 1.0005;
            size_t n = (size_t)size[k];
            memset(ru_arena_alloc(&a, n / 2), 1, n / 2);         /* its durations */
            memset(ru_arena_alloc(&a, n - n / 2), 2, n - n / 2); /* its users */
            used += n;
        }
        size_t grown = ru_arena_size(&a);
        changed += grown != before; /* this use allocated */
        ru_arena_reset(&a);
        changed += ru_arena_size(&a) != grown; /* the reset gave back (and reallocated) */
        before = ru_arena_size(&a);
        cr_assert_leq(ru_arena_size(&a), 2 * used, "round %d: %zu bytes held after a use of %zu",
                      round, ru_arena_size(&a), used);
        if (ru_arena_size(&a) > most) {
            most = ru_arena_size(&a);
            most_used = used;
        }
    }
#undef NEXT
    /* and it does not get there by allocating afresh at every reset */
    cr_assert_leq(changed, 60, "memory allocated or given back %d times in 600 rounds", changed);
    cr_log_info("most held %zu bytes, after a use of %zu; %d allocations or give-backs", most,
                most_used, changed);
    ru_arena_deinit(&a);
}

Test(arena, a_smaller_scattered_use_after_a_larger_one_keeps_the_chunks)
{
    struct ru_arena a;
    ru_arena_init(&a, 64 * KIB, SIZE_MAX);
    ru_arena_alloc(&a, 1000 * KIB); /* two chunks of 1000 KiB */
    ru_arena_alloc(&a, 1000 * KIB);
    ru_arena_reset(&a);
    size_t held = ru_arena_size(&a);
    for (int round = 0; round < 4; round++) {
        ru_arena_alloc(&a, 600 * KIB); /* through both chunks, far less than they hold */
        ru_arena_alloc(&a, 600 * KIB);
        ru_arena_reset(&a);
        cr_assert_eq(ru_arena_size(&a), held, "round %d: the smaller use changed %zu to %zu bytes",
                     round, held, ru_arena_size(&a));
        ru_arena_alloc(&a, 1000 * KIB); /* the larger one again: what it needs is there */
        ru_arena_alloc(&a, 1000 * KIB);
        ru_arena_reset(&a);
        cr_assert_eq(ru_arena_size(&a), held, "round %d: the larger use changed %zu to %zu bytes",
                     round, held, ru_arena_size(&a));
    }
    ru_arena_deinit(&a);
}
