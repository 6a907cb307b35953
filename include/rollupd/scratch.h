/* scratch: the arena of the writer's flush. Pure. */
#ifndef ROLLUPD_SCRATCH_H
#define ROLLUPD_SCRATCH_H

#include <stddef.h>

/* Memory for the deltas of one flush: one block reused from flush to flush (sized to what
 * the last flush needed), so preparing a key allocates nothing and faults in no fresh
 * pages. Everything allocated lives until the next reset. */
struct ru_scratch {
    char *base;
    size_t used, cap;
    size_t want; /* bytes asked for since the reset */
    struct scratch_block *overflow;
};
void *ru_scratch_alloc(struct ru_scratch *sc, size_t n);
void ru_scratch_reset(struct ru_scratch *sc);
void ru_scratch_free(struct ru_scratch *sc);

#endif
