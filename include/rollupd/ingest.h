/* ingest: what to do with one delivered stream entry, decided in one place for live,
 * replayed, recovered and adopted entries alike. Pure: no I/O, no state; the daemon
 * carries the decision out (store, batch ids, XACK, dead-letter copy, parking).
 *
 * The decision needs the entry parsed only in some cases (an entry already
 * dead-lettered, or one this process holds, is never parsed again), so it is asked in
 * two steps: first with parsed = RU_INGEST_UNPARSED, and, when the answer is
 * RU_INGEST_NEED_PARSE, again with the parse's result. */
#ifndef ROLLUPD_INGEST_H
#define ROLLUPD_INGEST_H

#include <stdbool.h>

#include "rollupd/stream.h"

/* What parsing the entry (and looking up PostgreSQL's verdict on a long key) found. */
enum ru_ingest_parse {
    RU_INGEST_UNPARSED = 0,
    RU_INGEST_VALID,   /* a valid event (a long key PostgreSQL stores) */
    RU_INGEST_WAIT,    /* valid, but its long key has no verdict yet */
    RU_INGEST_INVALID, /* not an event: the reason goes with its dead-letter copy */
    RU_INGEST_REFUSED, /* valid, but PostgreSQL cannot store its key */
};

enum ru_ingest_action {
    RU_INGEST_NEED_PARSE,  /* parse it and ask again */
    RU_INGEST_APPLY,       /* into the batch's store; its id acknowledged after COMMIT */
    RU_INGEST_ACK_ONLY,    /* applied before: acknowledge it, nothing else */
    RU_INGEST_SKIP,        /* in memory or in a flush already: nothing to do */
    RU_INGEST_DEAD_LETTER, /* copy it to the dead-letter stream (with its XACK) */
    RU_INGEST_PARK,        /* hold it until PostgreSQL's verdict on its key is in */
    RU_INGEST_DEAD_KNOWN,  /* recovery: its dead-letter copy exists; acknowledge it */
};

struct ru_ingest_in {
    enum ru_seen seen;
    enum ru_origin origin;
    bool lone;   /* the process reads as a lone consumer (NOACK) */
    bool parked; /* this process already holds the entry, parked for a verdict */
    enum ru_ingest_parse parsed;
};

struct ru_ingest {
    enum ru_ingest_action action;
    /* ACK_ONLY: send the XACK now (false: a lone consumer's live entry has no pending
     * entry). */
    bool xack;
    /* APPLY, DEAD_LETTER: the entry has no pending entry to acknowledge, so only the
     * checkpoint covers it (ru_batch_note_id rather than ru_batch_add_id). */
    bool note_id;
    /* First sight of an entry (not a recovery reading one again): count it as invalid
     * (DEAD_LETTER) and as refused by PostgreSQL (when parsed is REFUSED). */
    bool count_invalid, count_refused;
    /* APPLY of an entry a recovery read again. */
    bool recovered;
};

/* The decision for one delivered entry. */
struct ru_ingest ru_ingest_decide(const struct ru_ingest_in *in);

/* The decision for an entry taken over from another consumer (adopt): as for an entry of
 * this consumer's own pending list, at or below the adopted consumer's checkpoint
 * (committed) or above it. The takeover (takeover.c) carries it out into the adoption's
 * batch: an ACK_ONLY entry's id is acknowledged with that batch, after its COMMIT. */
struct ru_ingest ru_ingest_decide_adopted(bool committed, enum ru_ingest_parse parsed);

#endif
