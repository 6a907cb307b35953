/* backpressure: the daemon's memory bound (limits.max_memory_mb). What is held is counted
 * (batches, the row-state cache, the stream's buffers, parked entries, caches), a flush is
 * asked for at half the budget, and reading pauses before the next read could cross it.
 * Part of the daemon, on the loop's thread (its state is dstate.h). */
#include "rollupd/backpressure.h"

#include <stdio.h>
#include <unistd.h>

#include "rollupd/dstate.h"
#include "rollupd/keycheck.h"
#include "rollupd/log.h"
#include "rollupd/pcache.h"
#include "rollupd/pgw.h"
#include "rollupd/store.h"
#include "rollupd/stream.h"

size_t ru_backpressure_mem_in_use(const struct ru_daemon *d)
{
    return ru_batch_mem(d->cur) + ru_batch_ids_mem(&d->spare_ids) + d->inflight_mem +
           (d->adopt.b ? ru_batch_mem(d->adopt.b) : 0) + ru_pgw_cache_mem(d->pgw) +
           ru_stream_mem(d->stream) + d->parked.mem + ru_keycheck_mem(d->verdicts) +
           ru_pcache_mem(d->pcache);
}

/* What flushing a row needs beyond the batch: its next state, its COPY lines and the
 * writer's bookkeeping, about 1.6 KiB in the memory fault test. Counted for the batch
 * in the writer's hands and reserved for the one filling, so that flushing what is held
 * also fits under the bound. */
#define FLUSH_BYTES_PER_KEY 2048
#define NEW_KEY_BYTES       1024 /* a new key in the store, at worst */

size_t ru_backpressure_flush_reserve(const struct ru_batch *b)
{
    return ru_store_nkeys(b->store) * FLUSH_BYTES_PER_KEY;
}

size_t ru_backpressure_writer_mem(const struct ru_batch *b)
{
    return ru_batch_mem(b) + ru_backpressure_flush_reserve(b);
}

/* The process's resident set now, from /proc/self/statm (0 when unreadable). */
size_t ru_backpressure_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f == NULL)
        return 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    return n == 2 ? (size_t)resident * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

/* What rollupd may hold (memory_bytes) so that its RSS stays under limits.max_memory_mb:
 * the limit less the process's own footprint (code, libraries, both connections, measured
 * once both are up) and an eighth of the limit for the allocator's slack. */
size_t ru_backpressure_budget(const struct ru_daemon *d)
{
    size_t limit = (size_t)d->cfg.limits.max_memory_mb * 1024 * 1024;
    size_t fixed = d->base_rss + limit / 8;
    return fixed < limit - limit / 4 ? limit - fixed : limit / 4;
}

/* What one read's reply may take: an eighth of the budget. Two reads can be in flight,
 * and while a reply is walked its entries exist twice at worst, in the read buffer with
 * their reply objects in the arena (a list of entries read in place has almost none), and
 * (the one being received) raw: four eighths. The
 * other half is left to the batches and the row-state cache, which backpressure keeps
 * within it. At the default limit this is about 110 MiB a read, far above a full read
 * of usual events (1000 of ~1.5 KiB); at 64 MiB about 5 MiB, some 25 entries of 200 kB. */
void ru_backpressure_set_read_budget(struct ru_daemon *d)
{
    ru_stream_set_read_budget(d->stream, ru_backpressure_budget(d) / 8);
}

void ru_backpressure_step(struct ru_daemon *d)
{
    size_t limit = ru_backpressure_budget(d);
    size_t used = ru_backpressure_mem_in_use(d) + ru_backpressure_flush_reserve(d->cur);
    if (used >= limit / 2)
        d->flush_due = true;
    /* Pause before the next step could cross the bound: the XREADGROUP replies still on
     * their way (at most two of the stream's current COUNT, each entry taking the size
     * measured in the last reply, and at worst making a new key: about 1 KiB), the next
     * doubling of the store's tables, the id array's growth for those entries and the
     * parked ones, and the raw rows' buffer doubling. The bound holds; memory is never
     * freed by dropping data. */
    size_t per_entry = ru_stream_entry_bytes(d->stream) + NEW_KEY_BYTES;
    size_t in_flight = 2 * (size_t)ru_stream_read_count(d->stream);
    size_t reserve = in_flight * per_entry + ru_store_next_growth(d->cur->store) +
                     ru_batch_ids_growth(d->cur, in_flight + d->parked.n) + d->cur->raw.cap;
    /* with nothing held there is nothing to wait for: a reserve larger than the bound
     * (a huge redis.count) must not stop reading for good */
    bool holding = !ru_batch_empty(d->cur) || d->inflight_mem > 0 || d->parked.n > 0;
    bool want_pause = d->stopping || (holding && used + reserve >= limit);
    /* a flush waiting for dead-letter copies: read nothing more until they are confirmed,
     * or a backlog full of invalid entries keeps new copies in flight and never commits */
    bool stream_pause = want_pause || d->dl_wait;
    if (stream_pause != d->stream_paused) {
        d->stream_paused = stream_pause;
        ru_stream_pause(d->stream, stream_pause);
    }
    if (want_pause != d->paused) {
        d->paused = want_pause;
        if (!d->stopping)
            ru_log(want_pause ? RU_LOG_WARNING : RU_LOG_INFO,
                   "msg=\"%s\" memory_mb=%zu limit_mb=%d",
                   want_pause ? "memory bound reached: reading paused until PostgreSQL catches up"
                              : "reading resumed",
                   used / (1024 * 1024), (int)(limit / (1024 * 1024)));
    }
}
