/* schedule: when the daemon flushes, what a commit acknowledges, and the memory bound.
 * Part of the daemon, on the loop's thread; not used outside it (its state is dstate.h). */
#ifndef ROLLUPD_SCHEDULE_H
#define ROLLUPD_SCHEDULE_H

#include "rollupd/batch.h"

struct ru_daemon;

/* Raw rows refused in a committed batch: their events are counted hourly; the refusal
 * goes to the dead-letter stream as a note and to the log. */
void ru_schedule_report_rejects(struct ru_daemon *d, const struct ru_batch *b);

#endif
