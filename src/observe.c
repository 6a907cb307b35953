/* observe: what the daemon shows of itself. Its health (ok, degraded or down, with the
 * reason) and the values of report's metric table, rendered as the status object and the
 * Prometheus text (report.h); the status commands status, health, metrics and config.
 * Part of the daemon, on the loop's thread (its state is dstate.h). */
#include "rollupd/observe.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "rollupd/backpressure.h"
#include "rollupd/dstate.h"
#include "rollupd/entries.h"
#include "rollupd/pgw.h"
#include "rollupd/redact.h"
#include "rollupd/report.h"
#include "rollupd/status.h"
#include "rollupd/store.h"
#include "rollupd/stream.h"

#define TRIM_DEGRADED_MS (3600 * 1000) /* health stays degraded this long after a trim */

/* down: no progress is possible (Redis not connected, PostgreSQL never reached);
 * degraded: working, but something needs an operator (the process's RSS above
 * limits.max_memory_mb, flushes failing while batches wait in memory, reading paused at
 * the memory bound, entries trimmed upstream before they were read, the consumer group
 * recreated). */
static enum ru_observe_health health_of(struct ru_daemon *d, char *why, size_t len)
{
    struct ru_pgw_stats ps;
    ru_pgw_get_stats(d->pgw, &ps);
    why[0] = '\0';
    if (!ru_pgw_ready(d->pgw)) {
        snprintf(why, len, "postgres not ready: %s",
                 ps.last_error[0] ? ps.last_error : "connecting");
        return RU_OBSERVE_DOWN;
    }
    if (d->suspended) {
        snprintf(why, len,
                 "postgres session lost: reading stopped until this consumer's locks are taken "
                 "again: %s",
                 ps.last_error[0] ? ps.last_error : "reconnecting");
        return RU_OBSERVE_DOWN;
    }
    if (!ru_stream_connected(d->stream)) {
        const char *e = ru_stream_last_error(d->stream);
        snprintf(why, len, "redis unreachable: %s", e[0] ? e : "connecting");
        return RU_OBSERVE_DOWN;
    }
    /* under a container limit equal to the bound, the next step is the OOM killer */
    size_t rss = ru_backpressure_rss();
    if (rss > (size_t)d->cfg.limits.max_memory_mb * 1024 * 1024) {
        snprintf(why, len, "RSS %zu MiB above limits.max_memory_mb %d", rss / (1024 * 1024),
                 d->cfg.limits.max_memory_mb);
        return RU_OBSERVE_DEGRADED;
    }
    if (!ps.connected || (ru_pgw_busy(d->pgw) && ps.last_error[0])) {
        snprintf(why, len, "postgres failing, %" PRIu64 " events waiting in memory: %s",
                 ru_entries_held(d), ps.last_error);
        return RU_OBSERVE_DEGRADED;
    }
    if (d->paused && !d->stopping) {
        snprintf(why, len, "reading paused at the memory bound (%zu MiB of %zu MiB)",
                 ru_backpressure_mem_in_use(d) / (1024 * 1024),
                 ru_backpressure_budget(d) / (1024 * 1024));
        return RU_OBSERVE_DEGRADED;
    }
    if (d->c.last_trim_ms && ru_mono_ms() - d->c.last_trim_ms < TRIM_DEGRADED_MS) {
        if (d->c.gaps)
            snprintf(why, len,
                     "entries after the checkpoint were deleted from the stream before they "
                     "were read, found by %" PRIu64
                     " recovery(ies) (data lost upstream; last %" PRId64 " s ago)",
                     d->c.gaps, (ru_mono_ms() - d->c.last_trim_ms) / 1000);
        else
            snprintf(why, len,
                     "%" PRIu64 " entries were trimmed by the producer before they were read "
                     "(data lost upstream; last %" PRId64 " s ago)",
                     d->c.trimmed, (ru_mono_ms() - d->c.last_trim_ms) / 1000);
        return RU_OBSERVE_DEGRADED;
    }
    if (d->c.group_recreated) {
        snprintf(why, len, "consumer group was recreated %" PRIu64 " time(s)",
                 d->c.group_recreated);
        return RU_OBSERVE_DEGRADED;
    }
    return RU_OBSERVE_OK;
}

void ru_observe_health_line(struct ru_daemon *d, struct ru_buf *out, enum ru_observe_health *h)
{
    char why[1024];
    *h = health_of(d, why, sizeof(why));
    if (*h == RU_OBSERVE_OK)
        ru_buf_puts(out, "ok\n");
    else
        ru_buf_printf(out, "%s: %s\n", *h == RU_OBSERVE_DOWN ? "down" : "degraded", why);
}

/* ---- the report: status JSON and Prometheus text from one table (report.h) ---- */

/* Strings the report borrows while it is rendered. */
struct report_text {
    char url[512], ci[512], seen[RU_SID_STRLEN], node[300], why[1024];
    char pg_error[sizeof(((struct ru_pgw_stats *)0)->last_error)];
};

static void fill_report(struct ru_daemon *d, struct ru_report *r, struct report_text *t)
{
    struct ru_pgw_stats ps;
    ru_pgw_get_stats(d->pgw, &ps);
    const struct ru_stream_stats *ss = ru_stream_stats(d->stream);
    ru_redact(d->cfg.redis.url, t->url, sizeof(t->url));
    ru_redact(d->cfg.postgres.conninfo, t->ci, sizeof(t->ci));
    ru_sid_format(ru_stream_last_seen(d->stream), t->seen);
    ru_stream_node(d->stream, t->node, sizeof(t->node));
    ru_strlcpy(t->pg_error, ps.last_error, sizeof(t->pg_error));
    *r = (struct ru_report){
        .version = RU_VERSION,
        .config_file = d->cfg.path,
        .consumer = d->cfg.redis.consumer,
        .stream = d->cfg.redis.stream,
        .group = d->cfg.redis.group,
        .uptime_ms = ru_mono_ms() - d->started_ms,
        .events_consumed = d->c.consumed,
        .events_flushed = ps.events_flushed,
        .events_invalid = d->c.invalid,
        .events_dead_lettered = ss->dead_lettered,
        .events_trimmed = d->c.trimmed,
        .events_replay_acked = d->c.replay_acked,
        .lone_consumer = d->cfg.redis.lone_consumer,
        .recoveries = ss->recoveries,
        .recovery_entries_read = ss->recovered,
        .events_recovered = d->c.recovered,
        .recovery_dead_known = d->c.dead_known,
        .recovery_gaps = d->c.gaps,
        .events_parked = d->parked.n,
        .key_probes = d->c.key_probes,
        .events_key_refused = d->c.key_refused,
        .key_verdicts_cached = ru_keycheck_count(d->verdicts),
        .raw_rows_rejected = d->c.raw_rejected,
        .raw_rows_written = ps.raw_rows,
        .rows_written = ps.rows_written,
        .flushes = ps.flushes,
        .flush_failures = ps.flush_failures,
        .last_flush_unix_ms = ps.last_flush_unix_ms,
        .last_flush_us = ps.last_flush_us,
        .flush_in_progress = ru_pgw_busy(d->pgw),
        .flush_seconds_sum = d->c.flush_seconds_sum,
        .pending_events = ru_entries_held(d),
        .pending_keys = ru_store_nkeys(d->cur->store),
        .memory_bytes = ru_backpressure_mem_in_use(d),
        .ids_kept_bytes = ru_batch_ids_mem(&d->spare_ids),
        .state_cache_rows = ps.cache_rows,
        .state_cache_bytes = ps.cache_bytes,
        .state_reloads = ps.state_reloads,
        .state_evictions = ps.state_evictions,
        .state_budget_evictions = ps.state_budget_evictions,
        .state_scratch_bytes = ps.scratch_bytes,
        .state_cache_flushes = ps.cache_flushes,
        .state_cache_last_us = ps.cache_last_us,
        .state_chunk_bytes = ps.chunk_bytes,
        .memory_limit_bytes = ru_backpressure_budget(d),
        .rss_bytes = ru_backpressure_rss(),
        .rss_base_bytes = d->base_rss,
        .rss_limit_bytes = (uint64_t)d->cfg.limits.max_memory_mb * 1024 * 1024,
        .reading_paused = d->paused,
        .consumer_lock_held = ru_pgw_held(d->pgw),
        .reading_suspended = d->suspended,
        .events_per_s = d->rate,
        .last_seen_id = t->seen,
        .group_lag = ss->lag,
        .group_pending = ss->group_pending,
        .group_recreated = d->c.group_recreated,
        .adoptions = d->adoptions,
        .adoption_in_progress = d->adopt.phase != RU_TAKEOVER_IDLE ? d->adopt.consumer : NULL,
        .redis_connected = ru_stream_connected(d->stream),
        .redis_url = t->url,
        .redis_reconnects = ss->reconnects,
        .shard = d->cfg.redis.stream,
        .redis_cluster = ru_stream_cluster(d->stream),
        .redis_node = t->node,
        .redis_lost_tail = ss->redis_lost_tail,
        .redis_last_error = ru_stream_last_error(d->stream),
        .postgres_connected = ps.connected,
        .postgres_conninfo = t->ci,
        .postgres_last_error = t->pg_error,
        .health_reason = t->why,
    };
    memcpy(r->flush_bucket, d->c.flush_bucket, sizeof(r->flush_bucket));
    r->health = (int)health_of(d, t->why, sizeof(t->why));
}

void ru_observe_metrics(struct ru_daemon *d, struct ru_buf *b)
{
    struct ru_report r;
    struct report_text t;
    fill_report(d, &r, &t);
    ru_report_prometheus(&r, b);
}

void ru_observe_cmd_health(void *ud, struct ru_status_req *req, const char *args)
{
    struct ru_buf b = RU_BUF_INIT;
    enum ru_observe_health h;
    ru_observe_health_line(ud, &b, &h);
    ru_status_reply(req, b.p, b.len);
    ru_buf_free(&b);
}

void ru_observe_cmd_metrics(void *ud, struct ru_status_req *req, const char *args)
{
    struct ru_buf b = RU_BUF_INIT;
    ru_observe_metrics(ud, &b);
    ru_status_reply(req, b.p, b.len);
    ru_buf_free(&b);
}

static json_t *status_json(struct ru_daemon *d)
{
    struct ru_report r;
    struct report_text t;
    fill_report(d, &r, &t);
    return ru_report_json(&r);
}

void ru_observe_cmd_config(void *ud, struct ru_status_req *req, const char *args)
{
    struct ru_daemon *d = ud;
    struct ru_buf b = RU_BUF_INIT;
    ru_config_describe(&d->cfg, &b);
    ru_status_reply(req, b.p, b.len);
    ru_buf_free(&b);
}

void ru_observe_cmd_status(void *ud, struct ru_status_req *req, const char *args)
{
    json_t *o = status_json(ud);
    char *s = json_dumps(o, JSON_COMPACT);
    ru_status_reply(req, s, strlen(s));
    free(s);
    json_decref(o);
}
