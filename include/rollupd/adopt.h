/* adopt: the Redis side of an adoption: every pending entry of another consumer of the
 * group (XPENDING ... consumer, then XRANGE of each id), read without claiming it, and
 * the consumers of the group (XINFO CONSUMERS). The daemon drives the takeover. Part of
 * the stream (rconn.h has the state); stream.h's ru_stream_adopt_fetch and
 * ru_stream_list_consumers are these. */
#ifndef ROLLUPD_ADOPT_H
#define ROLLUPD_ADOPT_H

#include "rollupd/util.h"

struct ru_stream;

int ru_adopt_fetch(struct ru_stream *s, const char *consumer) RU_MUSTCHECK;
int ru_adopt_list_consumers(struct ru_stream *s) RU_MUSTCHECK;
/* The connection is gone: an adoption in progress ends with why. */
void ru_adopt_dropped(struct ru_stream *s, const char *why);

#endif
