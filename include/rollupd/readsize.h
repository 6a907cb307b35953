/* readsize: the COUNT of the next XREADGROUP or recovery XRANGE. A reply is held whole in
 * memory while it is walked, so the entry count bounds its memory: each reply measures
 * what an entry takes and the next reads ask for the read budget over that, at most
 * redis.count, starting small after each connect. Also the bookkeeping of the (at most
 * two) reads in flight. Part of the stream (rconn.h); the daemon sees it through
 * ru_stream_set_read_budget, _read_count and _entry_bytes. */
#ifndef ROLLUPD_READSIZE_H
#define ROLLUPD_READSIZE_H

#include <stddef.h>

struct ru_stream;

/* The COUNT of the next read: n within [1, redis.count]. */
void ru_readsize_set(struct ru_stream *s, size_t n);
/* After a reply of n entries to a read sent with COUNT sent: grow or shrink. */
void ru_readsize_adapt(struct ru_stream *s, size_t n, int sent);
/* A read left with the current COUNT; a read was answered (returns its COUNT). */
void ru_readsize_sent(struct ru_stream *s);
int ru_readsize_answered(struct ru_stream *s);
/* Bytes one reply may take in memory (0: no bound); shrinks the COUNT at once. */
void ru_readsize_budget(struct ru_stream *s, size_t bytes);
int ru_readsize_count(const struct ru_stream *s);
/* Bytes an entry took in the last reply, or an estimate before any. */
size_t ru_readsize_entry_bytes(const struct ru_stream *s);

#endif
