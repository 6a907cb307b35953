/* takeover: the daemon's side of adopting a dead consumer's pending entries. Part of the
 * daemon, on the loop's thread; not used outside it (its state is dstate.h). The Redis side
 * is adopt.h, the PostgreSQL side (the adopted consumer's lock and checkpoint) owner.h. */
#ifndef ROLLUPD_TAKEOVER_H
#define ROLLUPD_TAKEOVER_H

#include <stddef.h>

#include "rollupd/stream.h"

struct ru_daemon;

/* The stream's callback for one of the adopted consumer's pending entries (f NULL: trimmed
 * away); also a parked one delivered again once its key has a verdict. ud is the daemon. */
void ru_takeover_on_entry(void *ud, const struct ru_sid *id, const struct ru_field *f, size_t n);

#endif
