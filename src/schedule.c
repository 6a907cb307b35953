/* schedule: when the daemon flushes (the timer, a size limit, a drained backlog, SIGUSR1 or
 * the flush command, stop) and what a committed flush acknowledges. A flush detaches the
 * batch being filled and hands it to the writer; none is submitted while an entry of ours
 * waits for PostgreSQL's verdict on its key or a dead-letter copy it covers is
 * unconfirmed. Part of the daemon, on the loop's thread (its state is dstate.h). */
#include "rollupd/schedule.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "rollupd/backpressure.h"
#include "rollupd/dstate.h"
#include "rollupd/entries.h"
#include "rollupd/log.h"
#include "rollupd/pgw.h"
#include "rollupd/status.h"
#include "rollupd/store.h"
#include "rollupd/stream.h"
#include "rollupd/takeover.h"

void ru_schedule_on_batch(void *ud, size_t n, bool full, bool replay)
{
    struct ru_daemon *d = ud;
    ru_debug("msg=read entries=%zu full=%d replay=%d next_count=%d entry_bytes=%zu", n, (int)full,
             (int)replay, ru_stream_read_count(d->stream), ru_stream_entry_bytes(d->stream));
    const struct ru_config *c = &d->cfg;
    if (ru_store_nevents(d->cur->store) >= (uint64_t)c->flush.max_events ||
        ru_store_nkeys(d->cur->store) >= (size_t)c->flush.max_keys)
        d->flush_due = true;
    if (replay)
        return;
    /* A backlog just drained (full reads of at least flush.backlog_entries entries in a
     * row, then a short one): commit what it brought now rather than at the next tick.
     * Counted in entries, since the size of a read follows the size of the entries. A
     * steady trickle (short reads only) and a rate near the drain rate (full and short
     * reads mixed) keep to the timer; 0 turns it off. */
    if (full) {
        d->backlog_entries += n;
        return;
    }
    if (c->flush.backlog_entries > 0 && d->backlog_entries >= (uint64_t)c->flush.backlog_entries &&
        ru_store_nevents(d->cur->store) > 0) {
        ru_debug("msg=\"backlog drained, flushing now\" entries=%" PRIu64, d->backlog_entries);
        d->flush_due = true;
    }
    d->backlog_entries = 0;
}

/* Raw rows refused in a committed batch: their events are counted hourly; the refusal
 * goes to the dead-letter stream as a note and to the log. */
void ru_schedule_report_rejects(struct ru_daemon *d, const struct ru_batch *b)
{
    for (size_t i = 0; i < b->nrejects; i++) {
        char idt[RU_SID_STRLEN];
        ru_sid_format(&b->rejects[i].id, idt);
        ru_log_limited(&d->rl_invalid, RU_LOG_WARNING,
                       "msg=\"raw row refused; event still counted hourly\" id=%s reason=\"%s\"",
                       idt, b->rejects[i].reason);
        ru_stream_dead_letter_note(d->stream, &b->rejects[i].id, b->rejects[i].reason);
    }
    d->c.raw_rejected += b->nrejects;
}

static void waiters_push(struct ru_status_req ***arr, size_t *n, size_t *cap,
                         struct ru_status_req *r)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *arr = ru_xrealloc(*arr, *cap * sizeof(**arr));
    }
    (*arr)[(*n)++] = r;
}

static void answer_waiters(struct ru_daemon *d, const char *json)
{
    for (size_t i = 0; i < d->nwaiters; i++)
        ru_status_reply(d->flush_waiters[i], json, strlen(json));
    d->nwaiters = 0;
}

void ru_schedule_flush(struct ru_daemon *d)
{
    if (!ru_pgw_ready(d->pgw) || ru_pgw_busy(d->pgw))
        return;
    if (ru_entries_keycheck_step(d))
        return;
    if (!d->stopping && ru_takeover_step(d))
        return;
    bool want = d->flush_due || d->flush_asked || d->stopping;
    if (!want)
        return;
    if (ru_entries_own_parked(d) > 0)
        return; /* the checkpoint must not pass an entry waiting for PostgreSQL's verdict */
    d->dl_wait = ru_stream_commit_blocked(d->stream);
    if (d->dl_wait)
        return; /* a dead-letter copy of an entry this commit would cover is unconfirmed */
    if (d->stopping && !ru_stream_idle(d->stream) && ru_stream_connected(d->stream) &&
        ru_mono_ms() < d->stop_deadline_ms)
        return; /* let the last read deliver what Redis already sent us */
    /* waiters asked before this point are answered by this flush */
    for (size_t i = 0; i < d->nafter; i++)
        waiters_push(&d->flush_waiters, &d->nwaiters, &d->waiters_cap, d->after_waiters[i]);
    d->nafter = 0;
    d->flush_due = false;
    d->flush_asked = false;
    if (ru_batch_empty(d->cur)) {
        answer_waiters(d, "{\"flushed\":true,\"events\":0,\"rows\":0,\"ms\":0}");
        if (d->stopping)
            d->stop_final_sent = true;
        return;
    }
    struct ru_batch *b = d->cur;
    d->cur = ru_batch_new();
    ru_batch_use_ids(d->cur, &d->spare_ids);
    b->lone = ru_stream_recovery_owed(d->stream) || b->lone_start;
    b->dead_pos = ru_stream_dead_pos(d->stream);
    d->inflight_events = ru_store_nevents(b->store);
    d->inflight_mem = ru_backpressure_writer_mem(b);
    if (d->stopping)
        d->stop_final_sent = true;
    ru_debug("msg=\"flush submitted\" events=%" PRIu64 " keys=%zu", d->inflight_events,
             ru_store_nkeys(b->store));
    ru_pgw_submit(d->pgw, b);
}

void ru_schedule_cmd_flush(void *ud, struct ru_status_req *req, const char *args)
{
    struct ru_daemon *d = ud;
    waiters_push(&d->after_waiters, &d->nafter, &d->after_cap, req);
    d->flush_asked = true;
    ru_schedule_flush(d);
}

/* A flush committed: its entries acknowledged, the checkpoint the stream knows moved, the
 * waiting status commands answered; b is freed. */
void ru_schedule_committed(struct ru_daemon *d, struct ru_batch *b)
{
    ru_stream_set_committed(d->stream, &b->checkpoint,
                            d->cfg.redis.lone_consumer || d->tail_owed ? &b->dead_pos : NULL);
    if (d->tail_owed && !b->lone)
        d->tail_owed = false; /* the group's mark is cleared */
    ru_stream_ack(d->stream, b->ids, b->nids);
    if (b->lone_start)
        ru_stream_release_noack(d->stream, &b->checkpoint);
    ru_stream_refresh_info(d->stream);
    ru_schedule_report_rejects(d, b);
    uint64_t events = ru_store_nevents(b->store);
    char json[256];
    snprintf(json, sizeof(json),
             "{\"flushed\":true,\"events\":%" PRIu64 ",\"rows\":%" PRIu64 ",\"ms\":%.3f}", events,
             b->rows_written, (double)b->duration_us / 1000.0);
    answer_waiters(d, json);
    ru_info("msg=flush events=%" PRIu64 " rows=%" PRIu64 " raw_rows=%" PRIu64
            " ms=%.1f attempts=%d",
            events, b->rows_written, b->raw_written, (double)b->duration_us / 1000.0, b->attempts);
    double secs = (double)b->duration_us / 1e6;
    d->c.flush_bucket[ru_report_flush_bucket(secs)]++;
    d->c.flush_seconds_sum += secs;
    /* kept for the next batch unless larger than a 64th of the memory budget */
    ru_batch_keep_ids(b, &d->spare_ids, ru_backpressure_budget(d) / 64);
    ru_batch_free(b);
}
