#include "rollupd/daemon.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "rollupd/backpressure.h"
#include "rollupd/dstate.h"
#include "rollupd/entries.h"
#include "rollupd/http.h"
#include "rollupd/keycheck.h"
#include "rollupd/log.h"
#include "rollupd/observe.h"
#include "rollupd/pcache.h"
#include "rollupd/pgw.h"
#include "rollupd/reading.h"
#include "rollupd/reload.h"
#include "rollupd/schedule.h"
#include "rollupd/status.h"
#include "rollupd/stream.h"
#include "rollupd/takeover.h"

#define MAX_POLLFDS  160  /* signals, timer, writer, stream, two listeners of 64 */
#define KEY_VERDICTS 2048 /* PostgreSQL's verdicts on long keys kept in memory */

/* ---- stream callbacks ---- */

static void maybe_ready(struct ru_daemon *d);

static void on_stream_state(void *ud, bool up, enum ru_stream_down down, const char *err)
{
    struct ru_daemon *d = ud;
    if (up) {
        ru_info("msg=\"redis live\" stream=%s group=%s consumer=%s lone_consumer=%d",
                d->cfg.redis.stream, d->cfg.redis.group, d->cfg.redis.consumer,
                (int)d->cfg.redis.lone_consumer);
        struct ru_sid floor;
        if (ru_stream_take_floor(d->stream, &floor)) {
            /* a lone consumer's first run: commit the group's starting point with the lone
             * mark before any read without acknowledgement (the stream holds them) */
            ru_batch_note_id(d->cur, &floor);
            d->cur->lone_start = true;
            d->flush_due = true;
        }
        if (d->tail_owed && !ru_stream_recovery_owed(d->stream)) {
            /* recovered: the next commit clears the group's mark, even without events */
            d->cur->force = true;
            d->flush_due = true;
        }
        maybe_ready(d);
    } else if (down == RU_DOWN_REFUSED) {
        ru_err("msg=\"%s\"", err);
    } else {
        ru_warn("msg=\"redis connection lost, reconnecting with backoff\" error=\"%s\"", err);
    }
}

static void on_group_recreated(void *ud)
{
    struct ru_daemon *d = ud;
    d->c.group_recreated++;
    ru_err("msg=\"consumer group was missing (Redis restarted without persistence, or XGROUP "
           "DESTROY) and has been created again after the checkpoint: reading goes on from "
           "there; entries Redis itself lost with its data are not recoverable, and with several "
           "consumers in the group some may be counted twice or not at all (README: Exactly "
           "once)\" group=%s",
           d->cfg.redis.group);
}

/* STATUS= for systemctl status, sent at READY, after each flush and every STATUS_EVERY_MS
 * in between, so that the age of the last flush and the rate stay current. The rate is
 * taken over the time since the previous line (at least a second). */
#define STATUS_EVERY_MS 5000
static void send_status_line(struct ru_daemon *d)
{
    int64_t now = ru_mono_ms();
    d->next_status_ms = now + STATUS_EVERY_MS;
    if (now - d->rate_mark_ms >= 1000) {
        d->rate = (double)(d->c.consumed - d->rate_mark_events) * 1000.0 /
                  (double)(now - d->rate_mark_ms);
        d->rate_mark_events = d->c.consumed;
        d->rate_mark_ms = now;
    }
    struct ru_pgw_stats ps;
    ru_pgw_get_stats(d->pgw, &ps);
    char last[64] = "no flush yet";
    if (ps.last_flush_unix_ms) {
        int64_t s = (ru_wall_ms() - ps.last_flush_unix_ms) / 1000;
        if (s < 120)
            snprintf(last, sizeof(last), "last flush %" PRId64 " s ago", s < 0 ? 0 : s);
        else if (s < 7200)
            snprintf(last, sizeof(last), "last flush %" PRId64 " min ago", s / 60);
        else
            snprintf(last, sizeof(last), "last flush %" PRId64 " h ago", s / 3600);
    }
    sd_notifyf(0,
               "STATUS=reading %.0f events/s, %s (%" PRIu64 " rows written), %" PRIu64
               " events pending, redis %s, postgres %s",
               d->rate, last, ps.rows_written, ru_entries_held(d),
               ru_stream_connected(d->stream) ? "up" : "down", ps.connected ? "up" : "down");
}

static void stop_fatal(struct ru_daemon *d, const char *why)
{
    if (d->fatal)
        return;
    ru_err("msg=\"stopping: %s\"", why);
    d->exit_code = 1;
    d->fatal = true;
    ru_stream_suspend(d->stream, true, why);
}

static void on_writer_event(struct ru_daemon *d)
{
    struct ru_batch *b = ru_pgw_collect(d->pgw);
    if (b == NULL) {
        const char *fatal = ru_pgw_fatal(d->pgw);
        if (fatal) {
            stop_fatal(d, fatal);
            return;
        }
        if (!d->stream_started) {
            if (ru_pgw_ready(d->pgw))
                ru_reading_start(d); /* set-up finished: now we know the checkpoint */
            return;
        }
        ru_takeover_on_checkpoint(d);
        ru_reading_ownership_step(d);
        return;
    }
    /* the writer's batch is back, ours or an adoption's */
    d->inflight_events = 0;
    d->inflight_mem = 0;
    if (b->adopt_consumer != NULL) {
        ru_takeover_committed(d, b);
        return;
    }
    if (b->fenced) {
        char why[sizeof(b->fence_reason) + 64];
        snprintf(why, sizeof(why), "%s; the uncommitted batch stays in Redis", b->fence_reason);
        ru_batch_free(b);
        stop_fatal(d, why);
        return;
    }
    ru_schedule_committed(d, b);
    send_status_line(d);
    /* Give a large batch's memory back rather than keep the peak, but only when reading is
     * idle (nothing gathered since) or the RSS is above half of limits.max_memory_mb:
     * trimming after every flush of a steady stream returns pages that the next batch
     * faults straight back in. The id arrays kept for the next batches go too. */
    bool idle = ru_batch_empty(d->cur);
    if (idle || ru_backpressure_rss() > (size_t)d->cfg.limits.max_memory_mb * 1024 * 1024 / 2) {
        ru_batch_ids_free(&d->spare_ids);
        if (idle)
            ru_batch_ids_release(d->cur);
        malloc_trim(0);
    }
}

/* ---- readiness ---- */

static void maybe_ready(struct ru_daemon *d)
{
    if (d->ready_sent || !ru_pgw_ready(d->pgw) || !ru_stream_connected(d->stream))
        return;
    d->ready_sent = true;
    sd_notify(0, "READY=1");
    send_status_line(d);
    ru_notice("msg=ready version=" RU_VERSION " consumer=%s", d->cfg.redis.consumer);
}

static void on_http(void *ud, const char *path, int *status, const char **ctype,
                    struct ru_buf *body)
{
    struct ru_daemon *d = ud;
    if (strcmp(path, "/metrics") == 0) {
        *status = 200;
        *ctype = "text/plain; version=0.0.4; charset=utf-8";
        ru_observe_metrics(d, body);
    } else if (strcmp(path, "/health") == 0) {
        enum ru_observe_health h;
        ru_observe_health_line(d, body, &h);
        *status = h == RU_OBSERVE_DOWN ? 503 : 200;
    } else {
        *status = 404;
        ru_buf_puts(body, "not found: try /metrics or /health\n");
    }
}

static const struct ru_status_cmd commands[] = {
    {"status", "one JSON object with every counter and gauge", ru_observe_cmd_status},
    {"health", "ok, or degraded: <reason>, or down: <reason>", ru_observe_cmd_health},
    {"flush", "flush now; answers a JSON result after the COMMIT", ru_schedule_cmd_flush},
    {"metrics", "Prometheus text exposition format 0.0.4", ru_observe_cmd_metrics},
    {"config", "each key's running value, its default and what a reload does with it",
     ru_observe_cmd_config},
    {"adopt", "adopt CONSUMER: take over a dead consumer's pending entries", ru_takeover_cmd},
};

/* ---- signals ---- */

static void on_signal(struct ru_daemon *d)
{
    struct signalfd_siginfo si;
    while (read(d->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGUSR1:
            ru_info("msg=\"flush requested by SIGUSR1\"");
            d->flush_asked = true;
            break;
        case SIGHUP:
            ru_reload(d);
            break;
        case SIGTERM:
        case SIGINT:
            if (d->stopping) {
                ru_notice("msg=\"second stop signal: exiting now; uncommitted events stay "
                          "pending in Redis\"");
                ru_pgw_cancel(d->pgw); /* roll back now rather than when the lock frees */
                _exit(0);
            }
            ru_notice("msg=\"stopping: final flush\" signal=%s",
                      si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
            sd_notify(0, "STOPPING=1");
            d->stopping = true;
            d->stop_deadline_ms = ru_mono_ms() + d->cfg.redis.block_ms + 2000;
            ru_backpressure_step(d);
            break;
        default:
            break;
        }
    }
}

/* ---- lifecycle ---- */

struct ru_daemon *ru_daemon_new(struct ru_config *cfg, char *err, size_t errlen)
{
    struct ru_daemon *d = ru_xcalloc(1, sizeof(*d));
    d->cfg = *cfg;
    memset(cfg, 0, sizeof(*cfg));
    d->sfd = d->tfd = -1;
    d->started_ms = d->rate_mark_ms = ru_mono_ms();
    d->rl_invalid = (struct ru_ratelimit)RU_RATELIMIT_INIT(5000);
    d->rl_trim = (struct ru_ratelimit)RU_RATELIMIT_INIT(5000);
    ru_log_set_level(d->cfg.log.level);
    (void)ru_log_use_format(d->cfg.log.format);

    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGUSR1);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
        (d->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        snprintf(err, errlen, "signalfd: %s", strerror(errno));
        goto fail;
    }
    d->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (d->tfd < 0) {
        snprintf(err, errlen, "timerfd: %s", strerror(errno));
        goto fail;
    }
    int iv = d->cfg.flush.interval_ms;
    struct itimerspec its = {{iv / 1000, (long)(iv % 1000) * 1000000L},
                             {iv / 1000, (long)(iv % 1000) * 1000000L}};
    timerfd_settime(d->tfd, 0, &its, NULL);

    d->status = ru_status_new(d->cfg.status.socket, -1, 0660, commands, RU_ARRAY_LEN(commands), d,
                              err, errlen);
    if (d->status == NULL)
        goto fail;
    if (d->cfg.metrics.listen[0]) {
        d->http = ru_http_new(d->cfg.metrics.listen, on_http, d, err, errlen);
        if (d->http == NULL)
            goto fail;
    }
    struct ru_stream_cb cb = {
        .ud = d,
        .on_entry = ru_entries_on_entry,
        .on_trimmed = ru_entries_on_trimmed,
        .on_gap = ru_entries_on_gap,
        .on_batch = ru_schedule_on_batch,
        .on_state = on_stream_state,
        .on_group_recreated = on_group_recreated,
        .on_gate = ru_reading_on_gate,
        .on_adopt_entry = ru_takeover_on_entry,
        .on_adopt_done = ru_takeover_on_done,
        .on_consumer = ru_takeover_on_consumer,
    };
    d->stream = ru_stream_new(&d->cfg, &cb);
    ru_backpressure_set_read_budget(d); /* again once the fixed footprint is measured */
    d->cur = ru_batch_new();
    d->verdicts = ru_keycheck_new(KEY_VERDICTS);
    d->pcache = ru_pcache_new();
    d->pgw = ru_pgw_new(&d->cfg);
    if (d->pgw == NULL) {
        snprintf(err, errlen, "cannot start the PostgreSQL writer thread: %s", strerror(errno));
        goto fail;
    }
    uint64_t wd = 0;
    if (sd_watchdog_enabled(0, &wd) > 0)
        d->watchdog_us = wd;
    return d;
fail:
    ru_daemon_free(d);
    return NULL;
}

void ru_daemon_free(struct ru_daemon *d)
{
    if (d == NULL)
        return;
    ru_pgw_free(d->pgw);
    ru_stream_free(d->stream);
    ru_status_free(d->status);
    ru_http_free(d->http);
    ru_batch_free(d->cur);
    ru_batch_ids_free(&d->spare_ids);
    ru_takeover_reset(d);
    ru_keycheck_parked_deinit(&d->parked);
    ru_keycheck_free(d->verdicts);
    if (d->sfd >= 0)
        close(d->sfd);
    if (d->tfd >= 0)
        close(d->tfd);
    free(d->flush_waiters);
    free(d->after_waiters);
    ru_buf_free(&d->scratch);
    ru_pcache_free(d->pcache);
    ru_config_deinit(&d->cfg);
    free(d);
}

static void watchdog(struct ru_daemon *d)
{
    if (d->watchdog_us == 0)
        return;
    int64_t now = ru_mono_ms();
    if (now - d->last_watchdog_ms >= (int64_t)(d->watchdog_us / 1000 / 4)) {
        sd_notify(0, "WATCHDOG=1");
        d->last_watchdog_ms = now;
    }
}

/* ---- the loop ---- */

/* A pollable source: it adds the fds it wants watched this round (at most room; returns
 * how many) and is told about each one that is ready. */
struct source {
    const char *name;
    int (*fds)(struct ru_daemon *d, struct pollfd *fds, int room);
    void (*ready)(struct ru_daemon *d, int fd, short revents);
};

static int one_fd(struct pollfd *fds, int room, int fd, short events)
{
    if (fd < 0 || room < 1)
        return 0;
    fds[0] = (struct pollfd){fd, events, 0};
    return 1;
}

static int signal_fds(struct ru_daemon *d, struct pollfd *fds, int room)
{
    return one_fd(fds, room, d->sfd, POLLIN);
}

static void signal_ready(struct ru_daemon *d, int fd, short revents)
{
    (void)fd;
    (void)revents;
    on_signal(d);
}

static int timer_fds(struct ru_daemon *d, struct pollfd *fds, int room)
{
    return one_fd(fds, room, d->tfd, POLLIN);
}

static void timer_ready(struct ru_daemon *d, int fd, short revents)
{
    (void)revents;
    uint64_t ticks;
    ssize_t r = read(fd, &ticks, sizeof(ticks));
    (void)r;
    d->flush_due = true;
}

static int writer_fds(struct ru_daemon *d, struct pollfd *fds, int room)
{
    return one_fd(fds, room, ru_pgw_fd(d->pgw), POLLIN);
}

static void writer_ready(struct ru_daemon *d, int fd, short revents)
{
    (void)fd;
    (void)revents;
    on_writer_event(d);
    ru_entries_on_keycheck_answer(d);
}

static int stream_fds(struct ru_daemon *d, struct pollfd *fds, int room)
{
    return one_fd(fds, room, ru_stream_fd(d->stream), ru_stream_events(d->stream));
}

static void stream_ready(struct ru_daemon *d, int fd, short revents)
{
    (void)fd;
    ru_stream_on_ready(d->stream, revents);
}

static int status_fds(struct ru_daemon *d, struct pollfd *fds, int room)
{
    return ru_listener_pollfds(ru_status_listener(d->status), fds, room);
}

static void status_ready(struct ru_daemon *d, int fd, short revents)
{
    ru_listener_on_ready(ru_status_listener(d->status), fd, revents);
}

static int http_fds(struct ru_daemon *d, struct pollfd *fds, int room)
{
    return d->http ? ru_listener_pollfds(ru_http_listener(d->http), fds, room) : 0;
}

static void http_ready(struct ru_daemon *d, int fd, short revents)
{
    ru_listener_on_ready(ru_http_listener(d->http), fd, revents);
}

/* Handled in this order when several are ready. */
static const struct source sources[] = {
    {"signals", signal_fds, signal_ready},       {"flush timer", timer_fds, timer_ready},
    {"writer", writer_fds, writer_ready},        {"stream", stream_fds, stream_ready},
    {"status socket", status_fds, status_ready}, {"http", http_fds, http_ready},
};

static void status_tick(struct ru_daemon *d)
{
    ru_listener_tick(ru_status_listener(d->status));
}

static void http_tick(struct ru_daemon *d)
{
    if (d->http)
        ru_listener_tick(ru_http_listener(d->http));
}

static void status_line_step(struct ru_daemon *d)
{
    if (d->ready_sent && ru_mono_ms() >= d->next_status_ms)
        send_status_line(d);
}

/* What the loop does after each poll, in this order. */
static const struct step {
    const char *name;
    void (*run)(struct ru_daemon *d);
} steps[] = {
    {"status socket timeouts", status_tick},
    {"http timeouts", http_tick},
    {"ownership", ru_reading_ownership_step},
    {"backpressure", ru_backpressure_step},
    {"parked entries", ru_entries_settle},
    {"flush", ru_schedule_flush},
    {"ready", maybe_ready},
    {"STATUS= line", status_line_step},
    {"watchdog", watchdog},
};

/* Whether the loop ends now: stopping and done (or unable to finish), or fatal. */
static bool stop_now(struct ru_daemon *d)
{
    if (d->stopping && d->stop_final_sent && !ru_pgw_busy(d->pgw) &&
        (ru_stream_idle(d->stream) || ru_mono_ms() > d->stop_deadline_ms + 5000)) {
        if ((ru_batch_empty(d->cur) && ru_entries_own_parked(d) == 0) || !ru_pgw_ready(d->pgw))
            return true;
        d->stop_final_sent = false; /* entries arrived after the final flush: flush again */
    }
    if (d->stopping && !ru_pgw_ready(d->pgw))
        return true; /* PostgreSQL never came up: nothing was read, nothing to flush */
    if (d->stopping && !d->stop_final_sent && !ru_pgw_busy(d->pgw) &&
        ru_stream_commit_blocked(d->stream) && ru_mono_ms() > d->stop_deadline_ms + 5000) {
        ru_warn("msg=\"stopping without the final flush: a dead-letter copy is not confirmed "
                "by Redis; the next start reads the entries after the checkpoint again\"");
        return true;
    }
    if (d->stopping && !d->stop_final_sent && !ru_pgw_busy(d->pgw) &&
        ru_entries_own_parked(d) > 0 && ru_mono_ms() > d->stop_deadline_ms + 5000) {
        ru_warn("msg=\"stopping without the final flush: entries wait for PostgreSQL's verdict "
                "on their keys; the next start reads the entries after the checkpoint "
                "again\" parked=%zu",
                ru_entries_own_parked(d));
        return true;
    }
    if (d->fatal)
        return true;
    return false;
}

/* How long poll may wait: the stream's next deadline, a quarter of the watchdog period,
 * at most 250 ms. */
static int poll_timeout(const struct ru_daemon *d)
{
    int timeout = ru_stream_tick(d->stream);
    if (d->watchdog_us) {
        int wd = (int)(d->watchdog_us / 1000 / 4);
        if (wd < timeout)
            timeout = wd;
    }
    if (timeout > 250)
        timeout = 250;
    if (timeout < 0)
        timeout = 0;
    return timeout;
}

/* poll(2) failed with err (not EINTR). EFAULT and EINVAL would be this loop's own mistake:
 * stop. Anything else (ENOMEM, or an errno that a debugger's call into the process leaves
 * behind) is waited out for POLL_RETRY_MS and the loop goes on; MAX_POLL_FAILURES in a row
 * stop the daemon. Returns true to stop. */
#define POLL_RETRY_MS     10
#define MAX_POLL_FAILURES 100

static bool poll_failed(int err, int *failures)
{
    if (err == EFAULT || err == EINVAL || ++*failures >= MAX_POLL_FAILURES) {
        ru_err("msg=\"poll failed, stopping; the next start reads what was not committed "
               "again\" error=\"%s\" errno=%d failures=%d",
               strerror(err), err, *failures);
        return true;
    }
    if (*failures == 1)
        ru_warn("msg=\"poll failed, polling again\" error=\"%s\" errno=%d", strerror(err), err);
    struct timespec pause = {0, POLL_RETRY_MS * 1000000L};
    nanosleep(&pause, NULL);
    return false;
}

int ru_daemon_run(struct ru_daemon *d)
{
    struct pollfd fds[MAX_POLLFDS];
    int end[RU_ARRAY_LEN(sources)]; /* source k's fds are [end[k-1], end[k]) */
    int poll_failures = 0;
    for (;;) {
        int n = 0;
        for (size_t k = 0; k < RU_ARRAY_LEN(sources); k++) {
            n += sources[k].fds(d, fds + n, MAX_POLLFDS - n);
            end[k] = n;
        }
        int rc = poll(fds, (nfds_t)n, poll_timeout(d));
        if (rc < 0) {
            if (errno != EINTR && poll_failed(errno, &poll_failures))
                return 1;
        } else if (poll_failures > 0) {
            ru_info("msg=\"poll works again\" failures=%d", poll_failures);
            poll_failures = 0;
        }
        for (size_t k = 0, i = 0; rc > 0 && k < RU_ARRAY_LEN(sources); k++)
            for (; i < (size_t)end[k]; i++)
                if (fds[i].revents)
                    sources[k].ready(d, fds[i].fd, fds[i].revents);
        for (size_t k = 0; k < RU_ARRAY_LEN(steps); k++)
            steps[k].run(d);
        if (stop_now(d))
            break;
        ru_takeover_poll(d);
    }
    ru_notice("msg=stopped events_consumed=%" PRIu64 " events_invalid=%" PRIu64, d->c.consumed,
              d->c.invalid);
    return d->exit_code;
}
