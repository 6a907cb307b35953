/* schedule: when the daemon flushes, and what a committed flush acknowledges. Part of the
 * daemon, on the loop's thread; not used outside it (its state is dstate.h). */
#ifndef ROLLUPD_SCHEDULE_H
#define ROLLUPD_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>

#include "rollupd/batch.h"
#include "rollupd/status.h"

struct ru_daemon;

/* The stream's callback after each read (ru_stream_cb.on_batch, ud the daemon): a flush is
 * due at a size limit or when a backlog has drained. */
void ru_schedule_on_batch(void *ud, size_t n, bool full, bool replay);
/* After each poll: hands the writer what it should do next, when it is free (a key probe,
 * an adoption's step, then a due flush). */
void ru_schedule_flush(struct ru_daemon *d);
/* The status command "flush": answered after the COMMIT of the flush it causes. */
void ru_schedule_cmd_flush(void *ud, struct ru_status_req *req, const char *args);
/* The writer committed b, a flush of this consumer's (consumed). */
void ru_schedule_committed(struct ru_daemon *d, struct ru_batch *b);
/* Raw rows refused in a committed batch: their events are counted hourly; the refusal
 * goes to the dead-letter stream as a note and to the log. */
void ru_schedule_report_rejects(struct ru_daemon *d, const struct ru_batch *b);

#endif
