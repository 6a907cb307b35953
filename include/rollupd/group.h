/* group: the consumer group on the server. XGROUP CREATE ... MKSTREAM after the fence
 * (again where recovery starts when the group vanished), whose reply opens the gate; in a
 * Redis Cluster the id guard (XINFO STREAM, then XSETID when a failover lost entries this
 * process has read); XINFO GROUPS every few seconds while live (lag, pending, and for a
 * lone consumer the refusal when another consumer joins); XINFO CONSUMERS for the lone
 * check and adoption. Part of the stream (rconn.h). */
#ifndef ROLLUPD_GROUP_H
#define ROLLUPD_GROUP_H

#include <stdint.h>

#include <hiredis/hiredis.h>

struct ru_stream;
struct ru_rconn_cmd;

/* XGROUP CREATE ... MKSTREAM: at redis.start the first time, else where recovery starts
 * (a group that vanished); its reply opens the gate after a handshake. */
void ru_group_create(struct ru_stream *s);
/* Our group's entry in an XINFO GROUPS reply, or NULL. */
const redisReply *ru_group_of(const struct ru_stream *s, const redisReply *r);
/* XINFO CONSUMERS of our group, its reply to k. */
void ru_group_xinfo_consumers(struct ru_stream *s, const struct ru_rconn_cmd *k);
/* XINFO GROUPS when due (live, not paused, none in flight); on every stream tick. */
void ru_group_info_tick(struct ru_stream *s, int64_t now);

#endif
