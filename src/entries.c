/* entries: what the daemon does with each delivered entry, on the loop's thread: ingest's
 * decision (ingest.h) carried out (the batch's store and ids, XACK, the dead-letter copy,
 * the counters), and entries whose long key waits for PostgreSQL's verdict, parked, probed
 * through the writer and delivered again once the verdict is in. Part of the daemon (its
 * state is dstate.h); not used outside it. */
#include "rollupd/entries.h"

#include <inttypes.h>

#include "rollupd/dstate.h"
#include "rollupd/event.h"
#include "rollupd/ingest.h"
#include "rollupd/keycheck.h"
#include "rollupd/log.h"
#include "rollupd/pcache.h"
#include "rollupd/pgw.h"
#include "rollupd/stream.h"
#include "rollupd/takeover.h"

#define PROBE_MAX 256 /* keys asked about in one probe */

/* A parked entry's flags: how it was delivered, so that it can be delivered again once its
 * key has a verdict; RU_ENTRIES_PARK_ADOPTED for another consumer's entry (an adoption). */
#define PARK_FLAGS(seen, origin) ((unsigned)(seen) | (unsigned)(origin) << 4)
#define PARK_SEEN(flags)         ((enum ru_seen)((flags)&0xf))
#define PARK_ORIGIN(flags)       ((enum ru_origin)((flags) >> 4 & 0xf))

enum { ENTRY_OK = 0, ENTRY_WAIT = 1, ENTRY_INVALID = -1, ENTRY_REFUSED = -2 };

/* Parses an entry into ev (strings in d->scratch) and, for a long key, looks up
 * PostgreSQL's verdict. ENTRY_OK, ENTRY_WAIT (valid, the key has no verdict yet),
 * ENTRY_INVALID or ENTRY_REFUSED (PostgreSQL cannot store the key) with the reason in
 * why. */
static int parse_entry(struct ru_daemon *d, struct ru_event *ev, const struct ru_field *f, size_t n,
                       char *why, size_t len)
{
    ru_buf_reset(&d->scratch);
    unsigned flags = d->cfg.postgres.raw_table[0] ? RU_EVENT_RAW : 0;
    if (ru_event_parse_cached(ev, f, n, &d->scratch, d->pcache, flags, why, len) < 0)
        return ENTRY_INVALID;
    if (!ev->key_long)
        return ENTRY_OK;
    struct ru_keycheck_hash h = ru_keycheck_hash(ev);
    const char *reason = NULL;
    switch (ru_keycheck_get(d->verdicts, &h, &reason)) {
    case RU_KEY_FITS:
        return ENTRY_OK;
    case RU_KEY_REFUSED:
        ru_strlcpy(why, reason, len);
        return ENTRY_REFUSED;
    default:
        return ENTRY_WAIT;
    }
}

static enum ru_ingest_parse parse_result(int rc)
{
    switch (rc) {
    case ENTRY_OK:
        return RU_INGEST_VALID;
    case ENTRY_WAIT:
        return RU_INGEST_WAIT;
    case ENTRY_REFUSED:
        return RU_INGEST_REFUSED;
    default:
        return RU_INGEST_INVALID;
    }
}

enum ru_ingest_parse ru_entries_parse(struct ru_daemon *d, struct ru_event *ev,
                                      const struct ru_field *f, size_t n, char *why, size_t len)
{
    return parse_result(parse_entry(d, ev, f, n, why, len));
}

static void dead_letter_entry(struct ru_daemon *d, const struct ru_sid *id,
                              const struct ru_field *f, size_t n, const char *why,
                              enum ru_origin origin, const struct ru_ingest *r)
{
    char idt[RU_SID_STRLEN];
    ru_sid_format(id, idt);
    ru_log_limited(&d->rl_invalid, RU_LOG_WARNING,
                   "msg=\"invalid entry dead-lettered\" id=%s reason=\"%s\"", idt, why);
    ru_stream_dead_letter(d->stream, id, f, n, why, origin);
    if (r->note_id)
        ru_batch_note_id(d->cur, id);
    if (r->count_invalid)
        d->c.invalid++;
}

static void apply_entry(struct ru_daemon *d, const struct ru_sid *id, const struct ru_event *ev,
                        const struct ru_ingest *r)
{
    if (ru_batch_empty(d->cur))
        d->cur->created_ms = ru_mono_ms();
    ru_store_add(d->cur->store, ev);
    if (r->note_id)
        ru_batch_note_id(d->cur, id);
    else
        ru_batch_add_id(d->cur, id);
    if (r->recovered)
        d->c.recovered++;
    d->c.consumed++;
    if (d->cfg.postgres.raw_table[0])
        (void)ru_batch_add_raw(d->cur, id, ev); /* refusals are reported after COMMIT */
}

/* One delivered entry: ingest decides, this carries it out. */
void ru_entries_on_entry(void *ud, const struct ru_sid *id, const struct ru_field *f, size_t n,
                         enum ru_seen seen, enum ru_origin origin)
{
    struct ru_daemon *d = ud;
    struct ru_ingest_in in = {
        .seen = seen,
        .origin = origin,
        .lone = d->cfg.redis.lone_consumer,
        .parked = seen != RU_SEEN_NEW && ru_keycheck_is_parked(&d->parked, id),
    };
    struct ru_event ev;
    char why[RU_DAEMON_REASON_LEN];
    struct ru_ingest r = ru_ingest_decide(&in);
    if (r.action == RU_INGEST_NEED_PARSE) {
        in.parsed = ru_entries_parse(d, &ev, f, n, why, sizeof(why));
        r = ru_ingest_decide(&in);
    }
    if (r.count_refused)
        d->c.key_refused++;
    switch (r.action) {
    case RU_INGEST_NEED_PARSE:
    case RU_INGEST_SKIP:
        return;
    case RU_INGEST_DEAD_KNOWN:
        ru_stream_ack(d->stream, id, 1);
        ru_batch_note_id(d->cur, id);
        d->c.dead_known++;
        return;
    case RU_INGEST_ACK_ONLY:
        if (r.xack)
            ru_stream_ack(d->stream, id, 1);
        d->c.replay_acked++;
        return;
    case RU_INGEST_PARK:
        (void)ru_keycheck_park(&d->parked, id, f, n, &ev, PARK_FLAGS(seen, origin));
        return;
    case RU_INGEST_DEAD_LETTER:
        dead_letter_entry(d, id, f, n, why, origin, &r);
        return;
    case RU_INGEST_APPLY:
        apply_entry(d, id, &ev, &r);
        return;
    }
}

void ru_entries_on_trimmed(void *ud, const struct ru_sid *id, enum ru_seen seen)
{
    struct ru_daemon *d = ud;
    if (seen != RU_SEEN_NEW)
        return; /* applied before it was trimmed: nothing lost */
    d->c.trimmed++;
    d->c.last_trim_ms = ru_mono_ms();
    char idt[RU_SID_STRLEN];
    ru_sid_format(id, idt);
    ru_log_limited(&d->rl_trim, RU_LOG_ERR,
                   "msg=\"pending entry was trimmed by the producer before it was read: data "
                   "lost upstream\" id=%s trimmed_total=%" PRIu64,
                   idt, d->c.trimmed);
}

void ru_entries_on_gap(void *ud, const struct ru_sid *after, const struct ru_sid *deleted)
{
    struct ru_daemon *d = ud;
    d->c.gaps++;
    d->c.last_trim_ms = ru_mono_ms();
    char a[RU_SID_STRLEN], b[RU_SID_STRLEN];
    ru_sid_format(after, a);
    ru_sid_format(deleted, b);
    ru_err("msg=\"entries after the checkpoint were deleted from the stream before they were "
           "read: data lost upstream (MAXLEN too small for the time rollupd was away?)\" "
           "after=%s max_deleted=%s",
           a, b);
}

/* ---- long keys: PostgreSQL's verdict ---- */

/* Our own parked entries (not an adoption's). */
size_t ru_entries_own_parked(const struct ru_daemon *d)
{
    return d->parked.n - ru_keycheck_count_parked(&d->parked, RU_ENTRIES_PARK_ADOPTED);
}

/* Events held in memory and not yet committed: in the batch being filled, in the writer's
 * hands, or parked. */
uint64_t ru_entries_held(const struct ru_daemon *d)
{
    return ru_store_nevents(d->cur->store) + d->inflight_events + ru_entries_own_parked(d);
}

/* One parked entry whose key has its verdict: delivered again as it was delivered first,
 * now that the verdict is known, so it takes the path of every other entry (applied or
 * acknowledged if PostgreSQL stores the key, dead-lettered with its reason if not). */
static void finish_parked(struct ru_daemon *d, const struct ru_keycheck_entry *e)
{
    ru_keycheck_put(d->verdicts, &e->key, e->verdict, e->reason);
    if (e->flags & RU_ENTRIES_PARK_ADOPTED)
        ru_takeover_on_entry(d, &e->id, e->fields, e->nfields);
    else
        ru_entries_on_entry(d, &e->id, e->fields, e->nfields, PARK_SEEN(e->flags),
                            PARK_ORIGIN(e->flags));
}

/* Delivers again the parked entries that have a verdict, in id order. Only while Redis is live:
 * a refusal's dead-letter copy must reach the dead-letter stream now, like an invalid
 * entry's (the entry is then no longer parked, so nothing else would write it). */
void ru_entries_settle(struct ru_daemon *d)
{
    if (d->parked.n == d->parked.waiting || !ru_stream_live(d->stream))
        return;
    struct ru_keycheck_entry e;
    while (ru_keycheck_take(&d->parked, &e)) {
        finish_parked(d, &e);
        ru_keycheck_entry_free(&e);
    }
}

/* Asks the writer about the keys of parked entries without a verdict; true when it used
 * the writer. Keys the cache learnt meanwhile are settled instead. */
bool ru_entries_keycheck_step(struct ru_daemon *d)
{
    if (d->parked.waiting == 0)
        return false;
    struct ru_keycheck_probe *probes;
    size_t n = ru_keycheck_to_probe(&d->parked, d->verdicts, &probes, PROBE_MAX);
    if (n == 0) {
        ru_entries_settle(d);
        return false;
    }
    ru_debug("msg=\"asking postgres about long keys\" keys=%zu parked=%zu", n, d->parked.n);
    d->c.key_probes += n;
    ru_pgw_request_keycheck(d->pgw, probes, n);
    return true;
}

/* The writer answered a probe (through the same eventfd as a flush). */
void ru_entries_on_keycheck_answer(struct ru_daemon *d)
{
    struct ru_keycheck_probe *probes;
    size_t n;
    if (ru_pgw_take_keycheck(d->pgw, &probes, &n) <= 0)
        return;
    size_t fits = 0, refused = 0;
    for (size_t i = 0; i < n; i++) {
        fits += probes[i].verdict == RU_KEY_FITS;
        refused += probes[i].verdict == RU_KEY_REFUSED;
    }
    ru_debug("msg=\"long keys answered\" keys=%zu fits=%zu refused=%zu", n, fits, refused);
    ru_keycheck_answer(&d->parked, d->verdicts, probes, n);
    ru_keycheck_probes_free(probes, n);
    ru_entries_settle(d);
}
