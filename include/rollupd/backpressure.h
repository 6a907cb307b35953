/* backpressure: the daemon's memory bound, limits.max_memory_mb. Part of the daemon, on the
 * loop's thread; not used outside it (its state is dstate.h). */
#ifndef ROLLUPD_BACKPRESSURE_H
#define ROLLUPD_BACKPRESSURE_H

#include <stddef.h>

#include "rollupd/batch.h"

struct ru_daemon;

/* What the daemon holds now (memory_bytes in status). */
size_t ru_backpressure_mem_in_use(const struct ru_daemon *d);
/* What flushing b needs beyond the batch itself, reserved while it fills. */
size_t ru_backpressure_flush_reserve(const struct ru_batch *b);
/* What a batch in the writer's hands holds: the batch and what flushing it needs. */
size_t ru_backpressure_writer_mem(const struct ru_batch *b);
/* The process's resident set now, from /proc/self/statm (0 when unreadable). */
size_t ru_backpressure_rss(void);
/* What the daemon may hold (memory_limit_bytes): the limit less the fixed footprint. */
size_t ru_backpressure_budget(const struct ru_daemon *d);
/* Tells the stream what one read's reply may take (after a reload or a new footprint). */
void ru_backpressure_set_read_budget(struct ru_daemon *d);
/* After each poll: asks for a flush at half the budget; pauses or resumes reading. */
void ru_backpressure_step(struct ru_daemon *d);

#endif
