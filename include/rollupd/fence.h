/* fence: before a new connection reads, it closes the connections that may still read for
 * an owner that has lost its PostgreSQL lock. Every connection is named after the group,
 * the consumer and the mode (CLIENT SETNAME); on the CLIENT LIST reply, those of the same
 * consumer and those of any lone consumer of the group (for a lone consumer: every
 * rollupd connection of the group) are closed with CLIENT KILL, then the group is created
 * (or found) and the connection waits at the gate. An ACL that refuses the CLIENT
 * commands leaves reading unfenced, with one warning. Part of the stream (rconn.h). */
#ifndef ROLLUPD_FENCE_H
#define ROLLUPD_FENCE_H

struct ru_stream;

/* Queues CLIENT SETNAME, ID and LIST after the handshake's first commands. */
void ru_fence_start(struct ru_stream *s);

#endif
