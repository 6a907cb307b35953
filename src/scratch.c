#include "rollupd/scratch.h"

#include <stdlib.h>
#include <string.h>

#include "rollupd/util.h"

struct scratch_block {
    struct scratch_block *next;
    size_t size;
};

void *ru_scratch_alloc(struct ru_scratch *sc, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    sc->want += n;
    if (sc->cap - sc->used >= n) {
        void *p = sc->base + sc->used;
        sc->used += n;
        return p;
    }
    /* the block is full: this flush's overflow is kept aside until the reset, which
     * then sizes the block to the whole flush */
    struct scratch_block *b = ru_xmalloc(sizeof(*b) + 16 + n);
    b->next = sc->overflow;
    b->size = n;
    sc->overflow = b;
    return (char *)b + ((sizeof(*b) + 15) & ~(size_t)15);
}

void ru_scratch_reset(struct ru_scratch *sc)
{
    size_t want = sc->want;
    while (sc->overflow) {
        struct scratch_block *b = sc->overflow;
        sc->overflow = b->next;
        free(b);
    }
    /* keep the block while flushes use a good part of it; grow it to what the last
     * flush needed, shrink it when they have become much smaller */
    if (want > sc->cap || (sc->cap > (1u << 20) && want < sc->cap / 4)) {
        free(sc->base);
        sc->cap = want < (1u << 16) ? (1u << 16) : want + want / 8;
        sc->base = ru_xmalloc(sc->cap);
    }
    sc->used = 0;
    sc->want = 0;
}

void ru_scratch_free(struct ru_scratch *sc)
{
    ru_scratch_reset(sc);
    free(sc->base);
    memset(sc, 0, sizeof(*sc));
}
