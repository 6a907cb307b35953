/* ingest: the decision for one delivered entry (see ingest.h). Pure. */
#include "rollupd/ingest.h"

/* A fresh delivery (XREADGROUP >) of an entry seen before: the group was recreated.
 * Committed: acknowledge. In flight: a valid entry is in a batch that acknowledges it
 * after its COMMIT; an invalid one was dead-lettered already, so only the new group's
 * acknowledgement is due. */
static struct ru_ingest redelivered(const struct ru_ingest_in *in, struct ru_ingest r)
{
    if (in->seen != RU_SEEN_COMMITTED && in->parsed == RU_INGEST_UNPARSED) {
        r.action = RU_INGEST_NEED_PARSE;
        return r;
    }
    bool invalid = in->parsed == RU_INGEST_INVALID || in->parsed == RU_INGEST_REFUSED;
    r.action = in->seen == RU_SEEN_COMMITTED || invalid ? RU_INGEST_ACK_ONLY : RU_INGEST_SKIP;
    return r;
}

struct ru_ingest ru_ingest_decide(const struct ru_ingest_in *in)
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
        return redelivered(in, r);
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

struct ru_ingest ru_ingest_decide_adopted(bool committed, enum ru_ingest_parse parsed)
{
    struct ru_ingest_in in = {
        .seen = committed ? RU_SEEN_COMMITTED : RU_SEEN_NEW,
        .origin = RU_FROM_PENDING,
        .parsed = parsed,
    };
    return ru_ingest_decide(&in);
}
