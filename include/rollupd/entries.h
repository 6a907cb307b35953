/* entries: each delivered entry carried out as ingest decides, and the entries parked until
 * PostgreSQL's verdict on their long key. Part of the daemon, on the loop's thread; not used
 * outside it (its state is dstate.h). */
#ifndef ROLLUPD_ENTRIES_H
#define ROLLUPD_ENTRIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollupd/event.h"
#include "rollupd/ingest.h"
#include "rollupd/stream.h"

struct ru_daemon;

/* The parked flag of another consumer's entry (an adoption, takeover.h). */
#define RU_ENTRIES_PARK_ADOPTED (1u << 8)

/* Parses an entry into ev (strings in the daemon's scratch buffer, valid until the next
 * entry) and, for a long key, looks up PostgreSQL's verdict; an invalid or refused entry's
 * reason in why. */
enum ru_ingest_parse ru_entries_parse(struct ru_daemon *d, struct ru_event *ev,
                                      const struct ru_field *f, size_t n, char *why, size_t len);

/* The stream's callbacks (ru_stream_cb): one delivered entry, a pending entry trimmed
 * away, entries deleted after the checkpoint before a recovery read them. ud is the
 * daemon. */
void ru_entries_on_entry(void *ud, const struct ru_sid *id, const struct ru_field *f, size_t n,
                         enum ru_seen seen, enum ru_origin origin);
void ru_entries_on_trimmed(void *ud, const struct ru_sid *id, enum ru_seen seen);
void ru_entries_on_gap(void *ud, const struct ru_sid *after, const struct ru_sid *deleted);

/* Our own parked entries (not an adoption's). */
size_t ru_entries_own_parked(const struct ru_daemon *d);
/* Events held in memory and not yet committed: filling, in the writer's hands, parked. */
uint64_t ru_entries_held(const struct ru_daemon *d);
/* Delivers again the parked entries that have a verdict (a post-poll step). */
void ru_entries_settle(struct ru_daemon *d);
/* Asks the writer about parked keys without a verdict; true when it used the writer. */
bool ru_entries_keycheck_step(struct ru_daemon *d);
/* The writer answered a probe. */
void ru_entries_on_keycheck_answer(struct ru_daemon *d);

#endif
