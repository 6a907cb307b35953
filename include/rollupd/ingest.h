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

/* The decision for an entry taken over from another consumer (adopt): as for an entry of
 * this consumer's own pending list, at or below the adopted consumer's checkpoint
 * (committed) or above it. The takeover (takeover.c) carries it out into the adoption's
 * batch: an ACK_ONLY entry's id is acknowledged with that batch, after its COMMIT. */
struct ru_ingest ru_ingest_decide_adopted(bool committed, enum ru_ingest_parse parsed);

/* The decision for one delivered entry, defined here (inline) because it runs twice for
 * every entry read (before and after its parse): a call into another file cost about 1 %
 * of rollupd's instructions per event (bench/instr). */
/* A fresh delivery (XREADGROUP >) of an entry seen before: the group was recreated.
 * Committed: acknowledge. In flight: a valid entry is in a batch that acknowledges it
 * after its COMMIT; an invalid one was dead-lettered already, so only the new group's
 * acknowledgement is due. */
static inline struct ru_ingest ru_ingest_redelivered(const struct ru_ingest_in *in,
                                                      struct ru_ingest r)
{
    if (in->seen != RU_SEEN_COMMITTED && in->parsed == RU_INGEST_UNPARSED) {
        r.action = RU_INGEST_NEED_PARSE;
        return r;
    }
    bool invalid = in->parsed == RU_INGEST_INVALID || in->parsed == RU_INGEST_REFUSED;
    r.action = in->seen == RU_SEEN_COMMITTED || invalid ? RU_INGEST_ACK_ONLY : RU_INGEST_SKIP;
    return r;
}

static inline struct ru_ingest ru_ingest_decide(const struct ru_ingest_in *in)
{
    /* a lone consumer's live entries have no pending entry: nothing to acknowledge */
    bool noack = in->lone && in->origin == RU_FROM_LIVE;
    bool first = in->origin != RU_FROM_RECOVERY || in->seen == RU_SEEN_NEW;
    struct ru_ingest r = {.action = RU_INGEST_SKIP, .xack = !noack};

    if (in->seen == RU_SEEN_DEAD) {
        /* read again by recovery; its dead-letter copy was written before */
        r.action = RU_INGEST_DEAD_KNOWN;
        r.note_id = true;
        r.xack = true; /* pending only if an earlier run acknowledged */
        return r;
    }
    if (in->seen != RU_SEEN_NEW && in->parked)
        return r; /* this process holds it: delivered again once the verdict is in */
    if (in->origin == RU_FROM_LIVE && in->seen != RU_SEEN_NEW)
        return ru_ingest_redelivered(in, r);
    switch (in->parsed) {
    case RU_INGEST_UNPARSED:
        r.action = RU_INGEST_NEED_PARSE;
        return r;
    case RU_INGEST_WAIT:
        /* New: applied or refused once PostgreSQL has answered. Committed (a replayed
         * entry whose XACK was lost): acknowledged, or dead-lettered if PostgreSQL
         * refuses its key (its dead-letter copy was then lost with a connection). In
         * flight: applied in a batch not yet committed (a parked one returned above). */
        if (in->seen != RU_SEEN_INFLIGHT)
            r.action = RU_INGEST_PARK;
        return r;
    case RU_INGEST_INVALID:
    case RU_INGEST_REFUSED:
        /* From the pending list or recovery, an entry seen before is dead-lettered again:
         * its copy cannot be in the dead-letter stream (pending: the copy and the XACK go
         * together; recovery: the scan found none), it was lost with a connection.
         * Without a pending entry the checkpoint covers it (the commit waits for the
         * copy). */
        r.action = RU_INGEST_DEAD_LETTER;
        r.note_id = noack || in->origin == RU_FROM_RECOVERY;
        r.count_invalid = first;
        r.count_refused = first && in->parsed == RU_INGEST_REFUSED;
        return r;
    case RU_INGEST_VALID:
        break;
    }
    if (in->seen == RU_SEEN_COMMITTED) {
        r.action = RU_INGEST_ACK_ONLY;
    } else if (in->seen == RU_SEEN_NEW) {
        r.action = RU_INGEST_APPLY;
        r.note_id = noack;
        r.recovered = in->origin == RU_FROM_RECOVERY;
    }
    return r;
}

#endif
