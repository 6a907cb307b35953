/* reading: when the daemon reads its stream (started at the checkpoint, suspended while
 * the consumer's locks are not held, a new connection's gate). Part of the daemon, on the
 * loop's thread; not used outside it (its state is dstate.h). */
#ifndef ROLLUPD_READING_H
#define ROLLUPD_READING_H

struct ru_daemon;

/* The writer's set-up is done: starts the stream at the checkpoint it found. */
void ru_reading_start(struct ru_daemon *d);
/* After each poll and each writer event: suspends or resumes reading with the consumer's
 * locks, and opens a new connection's gate once a probe made after it came back. */
void ru_reading_ownership_step(struct ru_daemon *d);
/* The stream's callback (ru_stream_cb.on_gate, ud the daemon): a new connection waits. */
void ru_reading_on_gate(void *ud);

#endif
