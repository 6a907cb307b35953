/* takeover: the daemon's side of adopting a consumer that is gone for good (README:
 * Several instances). Part of the daemon, on the loop's thread (its state is dstate.h).
 *
 * An adoption, manual (the status command adopt) or automatic (redis.claim_idle_ms), goes
 * through its phases: the adopted consumer's lock and checkpoint from the writer (owner.c),
 * its pending entries read from Redis without claiming them (adopt.c), each one decided by
 * ingest as for an entry of our own pending list and gathered in a batch of its own,
 * committed by the writer with the adopted consumer's checkpoint, then acknowledged. */
#include "rollupd/takeover.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "rollupd/backpressure.h"
#include "rollupd/dstate.h"
#include "rollupd/entries.h"
#include "rollupd/event.h"
#include "rollupd/ingest.h"
#include "rollupd/keycheck.h"
#include "rollupd/log.h"
#include "rollupd/pgw.h"
#include "rollupd/schedule.h"
#include "rollupd/status.h"
#include "rollupd/stream.h"

void ru_takeover_reset(struct ru_daemon *d)
{
    if (d->adopt.phase != RU_TAKEOVER_IDLE && d->adopt.phase != RU_TAKEOVER_FLUSHING)
        ru_pgw_adopt_release(d->pgw); /* the adopted consumer's lock, if taken */
    (void)ru_keycheck_drop(&d->parked, RU_ENTRIES_PARK_ADOPTED); /* they stay pending in Redis */
    ru_batch_free(d->adopt.b);
    free(d->adopt.consumer);
    memset(&d->adopt, 0, sizeof(d->adopt));
}

static void adopt_fail(struct ru_daemon *d, const char *why)
{
    ru_warn("msg=\"adoption abandoned; its entries stay pending\" consumer=%s reason=\"%s\"",
            d->adopt.consumer, why);
    if (d->adopt.req)
        ru_status_replyf(d->adopt.req, "error: adopt %s: %s", d->adopt.consumer, why);
    ru_takeover_reset(d);
}

static void adopt_start(struct ru_daemon *d, const char *consumer, struct ru_status_req *req)
{
    if (d->adopt.phase != RU_TAKEOVER_IDLE) {
        if (req)
            ru_status_replyf(req, "error: an adoption of '%s' is in progress", d->adopt.consumer);
        return;
    }
    if (strcmp(consumer, d->cfg.redis.consumer) == 0) {
        if (req)
            ru_status_replyf(req, "error: '%s' is this rollupd's own consumer", consumer);
        return;
    }
    d->adopt.consumer = ru_xstrdup(consumer);
    d->adopt.req = req;
    d->adopt.b = ru_batch_new();
    d->adopt.b->adopt_consumer = ru_xstrdup(consumer);
    d->adopt.phase = RU_TAKEOVER_CKPT_WANTED;
    ru_notice("msg=\"adopting the pending entries of another consumer\" consumer=%s mode=%s",
              consumer, req ? "manual" : "automatic");
}

void ru_takeover_on_entry(void *ud, const struct ru_sid *id, const struct ru_field *f, size_t n)
{
    struct ru_daemon *d = ud;
    struct ru_takeover *a = &d->adopt;
    /* RU_TAKEOVER_READY: a parked entry delivered again once its key has a verdict */
    if (a->phase != RU_TAKEOVER_FETCH && a->phase != RU_TAKEOVER_READY)
        return;
    bool committed = ru_sid_cmp(id, &a->ck) <= 0;
    if (f == NULL) {
        ru_batch_add_id(a->b, id); /* acknowledge with the batch */
        if (!committed) {
            a->trimmed++;
            d->c.trimmed++;
            d->c.last_trim_ms = ru_mono_ms();
        }
        return;
    }
    /* ingest decides, as for an entry of this consumer's own pending list; the adopted
     * consumer's checkpoint says which of them were committed */
    struct ru_event ev;
    char why[RU_DAEMON_REASON_LEN];
    struct ru_ingest r = ru_ingest_decide_adopted(committed, RU_INGEST_UNPARSED);
    if (r.action == RU_INGEST_NEED_PARSE)
        r = ru_ingest_decide_adopted(committed, ru_entries_parse(d, &ev, f, n, why, sizeof(why)));
    if (r.count_refused)
        d->c.key_refused++;
    switch (r.action) {
    case RU_INGEST_PARK:
        (void)ru_keycheck_park(&d->parked, id, f, n, &ev, RU_ENTRIES_PARK_ADOPTED);
        return;
    case RU_INGEST_DEAD_LETTER:
        ru_stream_dead_letter(d->stream, id, f, n, why, RU_FROM_PENDING);
        a->invalid++;
        if (r.count_invalid)
            d->c.invalid++;
        return;
    case RU_INGEST_ACK_ONLY: /* acknowledged with the adoption's batch, after its COMMIT */
        ru_batch_add_id(a->b, id);
        a->acked_only++;
        return;
    case RU_INGEST_APPLY:
        ru_batch_add_id(a->b, id);
        ru_store_add(a->b->store, &ev);
        a->applied++;
        if (d->cfg.postgres.raw_table[0])
            (void)ru_batch_add_raw(a->b, id, &ev);
        return;
    case RU_INGEST_NEED_PARSE:
    case RU_INGEST_SKIP:
    case RU_INGEST_DEAD_KNOWN:
        return; /* not decided for an adopted entry (ingest's table test) */
    }
}

void ru_takeover_on_done(void *ud, const char *err)
{
    struct ru_daemon *d = ud;
    if (d->adopt.phase != RU_TAKEOVER_FETCH)
        return;
    if (err) {
        adopt_fail(d, err);
        return;
    }
    d->adopt.phase = RU_TAKEOVER_READY;
}

void ru_takeover_on_consumer(void *ud, const char *name, long long pending, long long idle_ms)
{
    struct ru_daemon *d = ud;
    if (d->adopt.phase == RU_TAKEOVER_IDLE && pending > 0 && d->cfg.redis.claim_idle_ms > 0 &&
        idle_ms >= d->cfg.redis.claim_idle_ms && !d->stopping)
        adopt_start(d, name, NULL);
}

/* Drives an adoption one step when the writer is free; true when it used the writer. */
bool ru_takeover_step(struct ru_daemon *d)
{
    struct ru_takeover *a = &d->adopt;
    if (a->phase == RU_TAKEOVER_CKPT_WANTED) {
        ru_pgw_request_checkpoint(d->pgw, a->consumer);
        a->phase = RU_TAKEOVER_CKPT;
        return true;
    }
    if (a->phase == RU_TAKEOVER_READY) {
        if (ru_keycheck_count_parked(&d->parked, RU_ENTRIES_PARK_ADOPTED) > 0)
            return false; /* entries wait for PostgreSQL's verdict on their keys */
        if (a->b->nids == 0) {
            if (a->req)
                ru_status_replyf(a->req,
                                 "{\"adopted\":\"%s\",\"applied\":0,\"acknowledged_only\":0,"
                                 "\"invalid\":%" PRIu64 ",\"trimmed\":0}",
                                 a->consumer, a->invalid);
            ru_takeover_reset(d);
            return false;
        }
        d->inflight_mem = ru_backpressure_writer_mem(a->b);
        ru_pgw_submit(d->pgw, a->b);
        a->b = NULL;
        a->phase = RU_TAKEOVER_FLUSHING;
        return true;
    }
    return false;
}

void ru_takeover_committed(struct ru_daemon *d, struct ru_batch *b)
{
    struct ru_takeover *a = &d->adopt;
    if (b->fenced) {
        adopt_fail(d, b->fence_reason);
        ru_batch_free(b);
        return;
    }
    ru_stream_ack(d->stream, b->ids, b->nids);
    ru_schedule_report_rejects(d, b);
    d->adoptions++;
    ru_notice("msg=\"adopted consumer\" consumer=%s applied=%" PRIu64 " acknowledged_only=%" PRIu64
              " invalid=%" PRIu64 " trimmed=%" PRIu64 " ms=%.1f",
              a->consumer, a->applied, a->acked_only, a->invalid, a->trimmed,
              (double)b->duration_us / 1000.0);
    if (a->req)
        ru_status_replyf(a->req,
                         "{\"adopted\":\"%s\",\"applied\":%" PRIu64
                         ",\"acknowledged_only\":%" PRIu64 ",\"invalid\":%" PRIu64
                         ",\"trimmed\":%" PRIu64 "}",
                         a->consumer, a->applied, a->acked_only, a->invalid, a->trimmed);
    ru_batch_free(b);
    ru_takeover_reset(d);
}

void ru_takeover_cmd(void *ud, struct ru_status_req *req, const char *args)
{
    struct ru_daemon *d = ud;
    if (args[0] == '\0') {
        ru_status_replyf(req, "error: usage: adopt CONSUMER");
        return;
    }
    if (d->cfg.redis.lone_consumer) {
        ru_status_replyf(req, "error: a lone consumer (redis.lone_consumer) has no other "
                              "consumers in its group to adopt");
        return;
    }
    /* Starting up, it takes the adoption once it reads; but a set-up that keeps failing
     * (waiting for the group, no privilege) could hold the request for ever: refuse. */
    struct ru_pgw_stats ps;
    ru_pgw_get_stats(d->pgw, &ps);
    if (!ru_pgw_ready(d->pgw) && ps.last_error[0]) {
        ru_status_replyf(req,
                         "error: adopt %s: this rollupd is not reading (%s); try again once "
                         "its health is ok",
                         args, ps.last_error);
        return;
    }
    adopt_start(d, args, req);
}

/* The writer answered (ru_pgw_request_checkpoint): the adopted consumer's checkpoint, or
 * why it cannot be read. */
void ru_takeover_on_checkpoint(struct ru_daemon *d)
{
    struct ru_sid ck;
    char err[256];
    int rc = ru_pgw_take_checkpoint(d->pgw, &ck, err, sizeof(err));
    if (rc != 0 && d->adopt.phase == RU_TAKEOVER_CKPT) {
        if (rc < 0) {
            adopt_fail(d, err);
        } else {
            d->adopt.ck = ck;
            d->adopt.b->adopt_expected = ck;
            d->adopt.phase = RU_TAKEOVER_FETCH_WANTED; /* started once Redis is live */
        }
    }
}

/* After each poll: starts the fetch of the adopted consumer's entries once Redis is live,
 * and lists the group's consumers for an automatic adoption (redis.claim_idle_ms) every
 * quarter of claim_idle_ms (1 to 30 s). */
void ru_takeover_poll(struct ru_daemon *d)
{
    if (d->adopt.phase == RU_TAKEOVER_FETCH_WANTED && ru_stream_live(d->stream) &&
        ru_stream_adopt_fetch(d->stream, d->adopt.consumer) == 0)
        d->adopt.phase = RU_TAKEOVER_FETCH;
    if (d->cfg.redis.claim_idle_ms > 0 && ru_stream_live(d->stream) &&
        d->adopt.phase == RU_TAKEOVER_IDLE && ru_mono_ms() >= d->next_claim_check_ms) {
        int64_t every = d->cfg.redis.claim_idle_ms / 4;
        d->next_claim_check_ms = ru_mono_ms() + (every < 1000    ? 1000
                                                 : every > 30000 ? 30000
                                                                 : every);
        if (ru_stream_list_consumers(d->stream) < 0)
            d->next_claim_check_ms = 0;
    }
}
