#include "rollupd/readsize.h"

#include <stdint.h>
#include <stdio.h>

#include "rollupd/rconn.h"

void ru_readsize_set(struct ru_stream *s, size_t n)
{
    if (n > (size_t)s->count)
        n = (size_t)s->count;
    if (n < 1)
        n = 1;
    s->read_count = (int)n;
    snprintf(s->read_count_s, sizeof(s->read_count_s), "%d", s->read_count);
}

/* The COUNT that keeps a reply within what it may take: redis.read_bytes over what an
 * entry takes in the read buffer and the arena (the reply as the cache sees it), and the
 * memory bound's share (read_budget) over that and the entry's share of the scan's index
 * as well; SIZE_MAX when neither bounds it. */
static size_t count_bound(const struct ru_stream *s)
{
    size_t n = SIZE_MAX;
    if (s->read_bytes > 0)
        n = s->read_bytes / s->entry_bytes;
    if (s->read_budget > 0) {
        size_t m = s->read_budget / (s->entry_bytes + s->entry_index_bytes);
        if (m < n)
            n = m;
    }
    return n;
}

/* An XREADGROUP or XRANGE has a COUNT but no limit in bytes, and its reply is held whole
 * in the read buffer while it is walked: the entry count is what bounds its memory. Each
 * reply measures what an entry takes (its bytes and the arena's over entries; a list of
 * entries is read in place, one entry at a time, so the arena holds only the nodes around
 * it; and the 8 bytes of the scan's index for each of its items) and the next reads ask
 * for as many as count_bound allows, at most redis.count. After each connect reading
 * starts at RU_RCONN_SLOW_START entries and doubles with each full reply, so even the
 * first read of a stream of huge entries stays small; a shrink applies at once. sent: the
 * COUNT of this read. redis.read_bytes keeps a reply within the processor's cache: it is
 * scanned as it arrives, then read entry by entry, and a reply larger than the cache is
 * read back from memory for that second pass. */
void ru_readsize_adapt(struct ru_stream *s, size_t n, int sent)
{
    if (n == 0)
        return;
    size_t bytes = ru_reply_arena_used(s->arena) + s->reply_bytes;
    s->entry_bytes = bytes / n > 0 ? bytes / n : 1;
    s->entry_index_bytes = s->reply_nodes * sizeof(*s->index.w) / n;
    size_t next = (size_t)s->read_count, bound = count_bound(s);
    if (n >= (size_t)sent)
        next *= 2;
    if (next > bound)
        next = bound;
    ru_readsize_set(s, next);
}

/* Bookkeeping of the reads in flight: at most two (read_depth). */
void ru_readsize_sent(struct ru_stream *s)
{
    s->read_counts[s->reads_inflight++] = s->read_count;
}

int ru_readsize_answered(struct ru_stream *s)
{
    int sent = s->read_counts[0];
    s->read_counts[0] = s->read_counts[1];
    s->reads_inflight--;
    return sent;
}

void ru_readsize_budget(struct ru_stream *s, size_t bytes)
{
    s->read_budget = bytes;
    if (s->entry_bytes == 0)
        return;
    size_t bound = count_bound(s);
    if ((size_t)s->read_count > bound)
        ru_readsize_set(s, bound);
}

int ru_readsize_count(const struct ru_stream *s)
{
    return s->read_count;
}

size_t ru_readsize_entry_bytes(const struct ru_stream *s)
{
    if (s->entry_bytes > 0)
        return s->entry_bytes + s->entry_index_bytes;
    /* nothing measured yet: as if the next read filled the memory bound's share (not
     * redis.read_bytes, which sizes reads for speed: the memory bound plans for the worst) */
    return s->read_budget > 0 ? s->read_budget / (size_t)s->read_count : 1024;
}
