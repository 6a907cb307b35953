/* deadletter: copies of invalid entries in the dead-letter stream (stream.h's
 * ru_stream_dead_letter and ru_stream_dead_letter_note are these). A copy and the
 * acknowledgement of its entry go in one MULTI/EXEC; a lone consumer's live entry has no
 * pending entry, so its copy is the XADD alone. A copy of an entry without a pending entry
 * is counted until Redis confirms it (no commit may pass it before), and the newest
 * confirmed copy's id is stored with the next checkpoint (where the next recovery's scan
 * stops). Part of the stream (rconn.h). */
#ifndef ROLLUPD_DEADLETTER_H
#define ROLLUPD_DEADLETTER_H

#include <stddef.h>

#include "rollupd/stream.h"

void ru_deadletter_copy(struct ru_stream *s, const struct ru_sid *id, const struct ru_field *fields,
                        size_t nfields, const char *reason, enum ru_origin origin);
void ru_deadletter_note(struct ru_stream *s, const struct ru_sid *id, const char *reason);

#endif
