/* takeover: the daemon's side of adopting the pending entries of a consumer that is gone
 * for good. Part of the daemon, on the loop's thread; not used outside it (its state is
 * struct ru_takeover in dstate.h). The Redis side is adopt.h, the PostgreSQL side (the
 * adopted consumer's lock and checkpoint) owner.h: the whole takeover reads in those three
 * files. */
#ifndef ROLLUPD_TAKEOVER_H
#define ROLLUPD_TAKEOVER_H

#include <stdbool.h>
#include <stddef.h>

#include "rollupd/batch.h"
#include "rollupd/status.h"
#include "rollupd/stream.h"

struct ru_daemon;

/* The stream's callbacks (ru_stream_cb), ud being the daemon: one of the adopted consumer's
 * pending entries (f NULL: trimmed away; also a parked one delivered again once its key
 * has a verdict), the end of that read (err NULL when it succeeded), and one consumer of
 * the group with its pending count and idle time (an automatic adoption). */
void ru_takeover_on_entry(void *ud, const struct ru_sid *id, const struct ru_field *f, size_t n);
void ru_takeover_on_done(void *ud, const char *err);
void ru_takeover_on_consumer(void *ud, const char *name, long long pending, long long idle_ms);

/* The status command "adopt CONSUMER"; answered when the adoption ends. */
void ru_takeover_cmd(void *ud, struct ru_status_req *req, const char *args);

/* Drives an adoption one step when the writer is free; true when it used the writer. */
bool ru_takeover_step(struct ru_daemon *d);
/* The writer answered the checkpoint request made by ru_takeover_step. */
void ru_takeover_on_checkpoint(struct ru_daemon *d);
/* The writer committed (or fenced) the adoption's batch, b (consumed). */
void ru_takeover_committed(struct ru_daemon *d, struct ru_batch *b);
/* After each poll: the fetch started once Redis is live, the automatic adoption's check. */
void ru_takeover_poll(struct ru_daemon *d);
/* Abandons an adoption in progress (its entries stay pending) and clears its state. */
void ru_takeover_reset(struct ru_daemon *d);

#endif
