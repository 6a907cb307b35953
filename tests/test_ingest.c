/* Unit tests for src/ingest.c: the decision for one delivered entry, as a table. */
#include <criterion/criterion.h>

#include "rollupd/ingest.h"

#define NEW   RU_SEEN_NEW
#define INFL  RU_SEEN_INFLIGHT
#define COMM  RU_SEEN_COMMITTED
#define DEAD  RU_SEEN_DEAD
#define LIVE  RU_FROM_LIVE
#define PEND  RU_FROM_PENDING
#define RECO  RU_FROM_RECOVERY
#define UNP   RU_INGEST_UNPARSED
#define OK    RU_INGEST_VALID
#define WAIT  RU_INGEST_WAIT
#define BAD   RU_INGEST_INVALID
#define REF   RU_INGEST_REFUSED
#define PARSE RU_INGEST_NEED_PARSE
#define APPLY RU_INGEST_APPLY
#define ACK   RU_INGEST_ACK_ONLY
#define SKIP  RU_INGEST_SKIP
#define DL    RU_INGEST_DEAD_LETTER
#define PARK  RU_INGEST_PARK
#define KNOWN RU_INGEST_DEAD_KNOWN

/* flags of the expected decision */
#define XACK  1  /* xack */
#define NOTE  2  /* note_id */
#define CINV  4  /* count_invalid */
#define CREF  8  /* count_refused */
#define RECOV 16 /* recovered */

struct row {
    int line;
    enum ru_seen seen;
    enum ru_origin origin;
    bool lone, parked;
    enum ru_ingest_parse parsed;
    enum ru_ingest_action action;
    unsigned flags; /* only those that matter for the action are compared */
};

static const struct row rows[] = {
    /* a new entry is parsed first, then applied, parked or dead-lettered */
    {__LINE__, NEW, LIVE, false, false, UNP, PARSE, 0},
    {__LINE__, NEW, LIVE, false, false, OK, APPLY, 0},
    {__LINE__, NEW, LIVE, true, false, OK, APPLY, NOTE}, /* lone: no pending entry */
    {__LINE__, NEW, PEND, true, false, OK, APPLY, 0},    /* lone, pending: acknowledged */
    {__LINE__, NEW, RECO, true, false, OK, APPLY, RECOV},
    {__LINE__, NEW, RECO, false, false, OK, APPLY, RECOV},
    {__LINE__, NEW, LIVE, false, false, WAIT, PARK, 0},
    {__LINE__, NEW, LIVE, false, false, BAD, DL, CINV},
    {__LINE__, NEW, LIVE, true, false, BAD, DL, NOTE | CINV},
    {__LINE__, NEW, LIVE, false, false, REF, DL, CINV | CREF},
    {__LINE__, NEW, RECO, false, false, BAD, DL, NOTE | CINV},
    {__LINE__, NEW, PEND, false, false, REF, DL, CINV | CREF},
    /* parked is asked about only for an entry seen before */
    {__LINE__, NEW, PEND, false, true, OK, APPLY, 0},
    /* the pending list: committed entries are acknowledged, in-flight ones skipped */
    {__LINE__, COMM, PEND, false, false, UNP, PARSE, 0},
    {__LINE__, COMM, PEND, false, false, OK, ACK, XACK},
    {__LINE__, COMM, PEND, true, false, OK, ACK, XACK},
    {__LINE__, COMM, PEND, false, false, WAIT, PARK, 0},
    {__LINE__, COMM, PEND, false, false, BAD, DL, CINV},
    {__LINE__, COMM, PEND, false, false, REF, DL, CINV | CREF},
    {__LINE__, INFL, PEND, false, false, OK, SKIP, 0},
    {__LINE__, INFL, PEND, false, false, WAIT, SKIP, 0},
    {__LINE__, INFL, PEND, false, false, BAD, DL, CINV},
    {__LINE__, COMM, PEND, false, true, UNP, SKIP, 0}, /* held by this process */
    {__LINE__, INFL, RECO, false, true, UNP, SKIP, 0},
    /* recovery reading an entry again counts nothing again */
    {__LINE__, COMM, RECO, false, false, OK, ACK, XACK},
    {__LINE__, COMM, RECO, false, false, BAD, DL, NOTE},
    {__LINE__, INFL, RECO, false, false, REF, DL, NOTE},
    {__LINE__, DEAD, RECO, false, false, UNP, KNOWN, XACK | NOTE},
    {__LINE__, DEAD, RECO, true, true, UNP, KNOWN, XACK | NOTE},
    /* a live entry seen before: the group was recreated */
    {__LINE__, COMM, LIVE, false, false, UNP, ACK, XACK},
    {__LINE__, COMM, LIVE, true, false, UNP, ACK, 0}, /* lone: no XACK */
    {__LINE__, INFL, LIVE, false, false, UNP, PARSE, 0},
    {__LINE__, INFL, LIVE, false, false, OK, SKIP, 0},
    {__LINE__, INFL, LIVE, false, false, WAIT, SKIP, 0},
    {__LINE__, INFL, LIVE, false, false, BAD, ACK, XACK},
    {__LINE__, INFL, LIVE, false, false, REF, ACK, XACK}, /* not counted again */
    {__LINE__, INFL, LIVE, true, false, BAD, ACK, 0},
    {__LINE__, INFL, LIVE, false, true, UNP, SKIP, 0}, /* parked: never parsed again */
};

static unsigned flags_of(const struct ru_ingest *r)
{
    unsigned f = 0;
    if (r->action == ACK || r->action == KNOWN)
        f |= r->xack ? XACK : 0;
    if (r->action == APPLY || r->action == DL || r->action == KNOWN)
        f |= r->note_id ? NOTE : 0;
    f |= r->count_invalid ? CINV : 0;
    f |= r->count_refused ? CREF : 0;
    f |= r->recovered ? RECOV : 0;
    return f;
}

Test(ingest, table)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *w = &rows[i];
        struct ru_ingest_in in = {w->seen, w->origin, w->lone, w->parked, w->parsed};
        struct ru_ingest r = ru_ingest_decide(&in);
        cr_assert_eq(r.action, w->action, "row at line %d: action %d, want %d", w->line,
                     (int)r.action, (int)w->action);
        cr_assert_eq(flags_of(&r), w->flags, "row at line %d: flags %#x, want %#x", w->line,
                     flags_of(&r), w->flags);
    }
}

/* Over every input: a parsed entry is never asked to be parsed again, counts go only
 * with a dead-letter copy, and an entry held by this process is left alone. */
Test(ingest, every_input)
{
    static const enum ru_ingest_parse parses[] = {UNP, OK, WAIT, BAD, REF};
    for (int seen = NEW; seen <= DEAD; seen++)
        for (int origin = LIVE; origin <= RECO; origin++)
            for (int lone = 0; lone < 2; lone++)
                for (int parked = 0; parked < 2; parked++)
                    for (size_t p = 0; p < 5; p++) {
                        struct ru_ingest_in in = {(enum ru_seen)seen, (enum ru_origin)origin,
                                                  lone != 0, parked != 0, parses[p]};
                        struct ru_ingest r = ru_ingest_decide(&in);
                        cr_assert(parses[p] == UNP || r.action != PARSE);
                        cr_assert(!r.count_invalid || r.action == DL);
                        cr_assert(!r.count_refused || (r.count_invalid && parses[p] == REF));
                        if (parked && seen != NEW && seen != DEAD)
                            cr_assert_eq(r.action, SKIP);
                        if (seen == DEAD)
                            cr_assert_eq(r.action, KNOWN);
                    }
}

/* An adopted entry takes the path of one from this consumer's pending list. */
Test(ingest, adopted)
{
    static const struct {
        bool committed;
        enum ru_ingest_parse parsed;
        enum ru_ingest_action action;
        unsigned flags;
    } cases[] = {
        {false, UNP, PARSE, 0}, {false, OK, APPLY, 0},        {true, OK, ACK, XACK},
        {false, WAIT, PARK, 0}, {true, WAIT, PARK, 0},        {false, BAD, DL, CINV},
        {true, BAD, DL, CINV},  {true, REF, DL, CINV | CREF}, {false, REF, DL, CINV | CREF},
        {true, UNP, PARSE, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ru_ingest r = ru_ingest_decide_adopted(cases[i].committed, cases[i].parsed);
        cr_assert_eq(r.action, cases[i].action, "case %zu", i);
        cr_assert_eq(flags_of(&r), cases[i].flags, "case %zu: flags %#x", i, flags_of(&r));
    }
}
