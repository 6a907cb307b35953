/* lone: a lone consumer's recovery (README: "A lone consumer"). A lone consumer reads
 * with NOACK, so Redis keeps no pending list and the committed checkpoint is the only
 * record: each connection first checks that no other consumer is in the group, then reads
 * again with XRANGE what the group delivered after the checkpoint, skipping the invalid
 * entries whose copies the dead-letter stream already holds (a scan back to the position
 * stored with the checkpoint). A shared-group consumer that takes over a lone consumer's
 * group owes the same recovery once. Part of the stream (rconn.h has the state). */
#ifndef ROLLUPD_LONE_H
#define ROLLUPD_LONE_H

#include <stdbool.h>

#include "rollupd/util.h"

struct ru_stream;

/* After the gate: XINFO CONSUMERS, GROUPS and STREAM, then the recovery (or, nothing
 * owed, the replay). */
void ru_lone_start_check(struct ru_stream *s);
/* Where recovery starts (and where a group that vanished is created again): after the
 * checkpoint, never below the floor. */
struct ru_sid ru_lone_recover_from(const struct ru_stream *s);
/* The recovery's dead-letter scan found a copy of id. */
bool ru_lone_is_dead_lettered(const struct ru_stream *s, const struct ru_sid *id);
/* The recovery's next read (ru_stream_send_read, while recovering). */
void ru_lone_send_read(struct ru_stream *s);
/* The connection is gone: copies not confirmed are owed to the next recovery. */
void ru_lone_dropped(struct ru_stream *s);

#endif
