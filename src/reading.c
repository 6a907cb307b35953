/* reading: when the daemon reads its stream. Reading starts once the writer's set-up is
 * done, at the checkpoint it found (a recovery first when a lone consumer read past it);
 * it stops while the writer has no PostgreSQL session holding this consumer's locks and
 * resumes when the same locks are taken again; a new Redis connection waits at its gate
 * until the session is proved alive after it. Part of the daemon, on the loop's thread
 * (its state is dstate.h). */
#include "rollupd/reading.h"

#include "rollupd/backpressure.h"
#include "rollupd/dstate.h"
#include "rollupd/log.h"
#include "rollupd/pgw.h"
#include "rollupd/stream.h"

/* A new Redis connection is fenced and waits: the writer proves its session (and with it
 * the consumer's locks) alive by a round trip made after this point. */
void ru_reading_on_gate(void *ud)
{
    struct ru_daemon *d = ud;
    d->gate_ticket = ru_pgw_probe(d->pgw);
    d->gate_wait = true;
}

/* Reads only while this process owns the consumer: a lost PostgreSQL session (its locks
 * gone with it) stops reading at once; the same consumer's locks taken again on a new
 * session, with the checkpoint as this process left it, start a new connection, which
 * replays or recovers what was in flight. */
void ru_reading_ownership_step(struct ru_daemon *d)
{
    if (!d->stream_started || d->fatal)
        return;
    bool held = ru_pgw_held(d->pgw);
    unsigned gen = ru_pgw_generation(d->pgw);
    if (!held || gen != d->pg_gen) {
        if (!d->suspended) {
            ru_warn("msg=\"postgres session lost: reading stopped until this consumer's locks "
                    "are taken again\"");
            ru_stream_suspend(d->stream, true, "postgres session lost: reading stopped");
            d->suspended = true;
            d->gate_wait = false;
        }
        if (!held)
            return;
        d->pg_gen = gen;
        ru_notice("msg=\"postgres session made again with this consumer's locks and the "
                  "checkpoint unchanged: reading resumes\"");
        d->suspended = false;
        ru_stream_suspend(d->stream, false, NULL);
        return;
    }
    if (d->gate_wait && ru_pgw_probed(d->pgw, d->gate_ticket)) {
        d->gate_wait = false;
        ru_stream_gate_open(d->stream);
    }
}

void ru_reading_start(struct ru_daemon *d)
{
    d->stream_started = true;
    d->pg_gen = ru_pgw_generation(d->pgw);
    struct ru_pgw_start ps;
    ru_pgw_start_point(d->pgw, &ps);
    char idt[RU_SID_STRLEN];
    ru_sid_format(&ps.committed, idt);
    d->base_rss = ru_backpressure_rss();
    ru_backpressure_set_read_budget(d);
    ru_info("msg=\"postgres ready\" checkpoint=%s rss_mb=%.1f memory_budget_mb=%.1f", idt,
            (double)d->base_rss / 1048576.0, (double)ru_backpressure_budget(d) / 1048576.0);
    if (ps.recover) {
        char g[RU_SID_STRLEN];
        ru_sid_format(&ps.group_ckpt, g);
        ru_info("msg=\"a lone consumer of the group read without acknowledgement after its "
                "checkpoint: entries delivered after it are read again first\" group_checkpoint=%s",
                g);
    }
    d->tail_owed = ps.recover && !d->cfg.redis.lone_consumer;
    struct ru_stream_start st = {
        .committed = ps.committed,
        .recover = ps.recover,
        .recover_from = ps.group_ckpt,
        .dead_pos = ps.dead_pos,
        .dead_pos_known = ps.dead_pos_known,
    };
    ru_stream_start(d->stream, &st);
}
