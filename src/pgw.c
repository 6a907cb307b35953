#include "rollupd/pgw.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "rollupd/flush.h"
#include "rollupd/log.h"
#include "rollupd/owner.h"
#include "rollupd/pgerr.h"
#include "rollupd/probe.h"
#include "rollupd/rowcache.h"
#include "rollupd/rowstate.h"
#include "rollupd/schema.h"
#include "rollupd/sql.h"
#include "rollupd/writer.h"

#define LOCK_WAIT_MS  10000 /* how long set-up waits for a lock held by another session */
#define IDLE_CHECK_MS 500   /* how often an idle writer looks at its session */

void ru_pgw_copy_escape(struct ru_buf *out, const char *s, size_t len)
{
    ru_batch_copy_escape(out, s, len);
}

static void on_notice(void *arg, const char *msg)
{
    (void)arg;
    ru_debug("msg=\"postgres notice\" text=\"%.*s\"", (int)strcspn(msg, "\n"), msg);
}

int ru_pgw_connect(struct ru_pgw *w)
{
    pthread_mutex_lock(&w->mu);
    char *conninfo = ru_xstrdup(w->conninfo);
    int timeout_ms = w->statement_timeout_ms;
    int connect_timeout_s = w->connect_timeout_s;
    atomic_store(&w->reconfigured, false);
    pthread_mutex_unlock(&w->mu);

    /* the configured string may be key=value or a URI; expand it as dbname so our
     * defaults come first and anything it sets wins */
    char timeout[16];
    snprintf(timeout, sizeof(timeout), "%d", connect_timeout_s);
    const char *keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
    const char *vals[] = {timeout, "rollupd", conninfo, NULL};
    int64_t t0 = ru_mono_ms();
    w->conn = PQconnectdbParams(keys, vals, 1);
    free(conninfo);
    if (PQstatus(w->conn) != CONNECTION_OK) {
        /* Judged by the time it took, not by libpq's text: a failure after the whole
         * connect timeout means no answer, i.e. packets dropped on the way, most often by
         * a firewall such as the systemd unit's IPAddressAllow= (see rollupd(8)). */
        bool timed_out = ru_mono_ms() - t0 >= (int64_t)connect_timeout_s * 1000;
        ru_writer_error(w,
                        timed_out ? "connect timed out (no answer: packets dropped, e.g. by the "
                                    "unit's IPAddressAllow=, or the host is down)"
                                  : "connect",
                        PQerrorMessage(w->conn));
        ru_writer_drop(w);
        return -1;
    }
    PQsetNoticeProcessor(w->conn, on_notice, NULL);
    /* idle_in_transaction_session_timeout: a process paused in the middle of a flush
     * (SIGSTOP, a frozen VM) loses its session, and the row locks that would stall every
     * other instance's flushes, after the statement timeout (60 s at least: the work
     * between two statements of a flush is done here, and may take a while) */
    char set[320];
    snprintf(set, sizeof(set),
             "SET client_encoding = 'UTF8'; SET TimeZone = 'UTC'; SET statement_timeout = %d;"
             " SET lock_timeout = %d; SET idle_in_transaction_session_timeout = %d;"
             " SET application_name = 'rollupd'",
             timeout_ms, timeout_ms, timeout_ms > 60000 ? timeout_ms : 60000);
    if (ru_writer_exec(w, set, "session set-up") < 0)
        goto fail;
    /* A checkpoint acknowledged to us must survive a crash of PostgreSQL: whatever the
     * server's default, rollupd's own commits wait for the WAL flush. */
    PGresult *sc = PQexec(w->conn, "SELECT current_setting('synchronous_commit')");
    bool async = PQresultStatus(sc) == PGRES_TUPLES_OK && strcmp(PQgetvalue(sc, 0, 0), "off") == 0;
    PQclear(sc);
    if (async) {
        if (ru_writer_exec(w, "SET synchronous_commit = on", "session set-up") < 0)
            goto fail;
        if (!atomic_load(&w->ready))
            ru_notice("msg=\"synchronous_commit is off on this server; rollupd's session sets it "
                      "on, so a committed checkpoint survives a crash\"");
    }
    char lockset[128];
    snprintf(lockset, sizeof(lockset), "SET lock_timeout = %d; SET statement_timeout = %d",
             LOCK_WAIT_MS, LOCK_WAIT_MS + (timeout_ms > 0 ? timeout_ms : 60000));
    if (ru_writer_exec(w, lockset, "session set-up") < 0)
        goto fail;
    ru_sql_names_init(&w->n, w->hourly_cfg, w->raw_cfg);
    ru_sql_flush_init(&w->sql, &w->n);
    bool was_tail = w->tail_held;
    if (ru_schema_setup(w) < 0 || ru_owner_take_locks(w) < 0)
        goto fail;
    if (atomic_load(&w->ready) && w->tail_held && !was_tail) {
        ru_writer_fatal(
            w,
            "while this process's PostgreSQL session was lost, a lone consumer read "
            "group '%s' and left entries without acknowledgement; stopping, so that the "
            "next start recovers them first",
            w->group);
        goto fail;
    }
    if (ru_owner_load_checkpoint(w) < 0)
        goto fail;
    snprintf(set, sizeof(set), "SET statement_timeout = %d; SET lock_timeout = %d", timeout_ms,
             timeout_ms);
    if (ru_writer_exec(w, set, "session set-up") < 0)
        goto fail;
    if (ru_writer_exec(w, w->sql.staging, "creating staging tables") < 0)
        goto fail;
    pthread_mutex_lock(&w->mu);
    w->cancel = PQgetCancel(w->conn);
    w->stats.connected = true;
    pthread_mutex_unlock(&w->mu);
    atomic_store(&w->held, true);
    atomic_fetch_add(&w->generation, 1);
    ru_writer_notify(w);
    return 0;
fail:
    ru_writer_drop(w);
    return -1;
}

/* Hands a batch back uncommitted for good. */
static void give_back(struct ru_pgw *w, struct ru_batch *b)
{
    pthread_mutex_lock(&w->mu);
    w->job = NULL;
    w->done = b;
    pthread_mutex_unlock(&w->mu);
    ru_writer_notify(w);
}

static void run_batch(struct ru_pgw *w, struct ru_batch *b)
{
    w->inflight = b;
    for (;;) {
        if (w->conn == NULL || atomic_load(&w->reconfigured)) {
            ru_writer_drop(w);
            if (ru_pgw_connect(w) < 0) {
                if (ru_writer_is_fatal(w)) {
                    b->fenced = true;
                    pthread_mutex_lock(&w->mu);
                    ru_strlcpy(b->fence_reason, w->fatal, sizeof(b->fence_reason));
                    pthread_mutex_unlock(&w->mu);
                    give_back(w, b);
                    break;
                }
                ru_log_limited(&w->rl, RU_LOG_ERR,
                               "msg=\"postgres unavailable, batch kept\" events=%llu error=\"%s\"",
                               (unsigned long long)ru_store_nevents(b->store), w->stats.last_error);
                if (!ru_writer_backoff(w))
                    break;
                continue;
            }
        }
        int64_t t0 = ru_mono_us();
        int rc;
        if (b->attempted_set && ru_owner_committed_already(w, b)) {
            /* the COMMIT went through but its answer was lost with the connection */
            ru_log(RU_LOG_WARNING,
                   "msg=\"previous attempt had committed; not applying the "
                   "batch again\" attempt=%d",
                   b->attempts);
            ru_owner_after_commit(w, b);
            rc = 0;
        } else {
            b->attempts++;
            rc = ru_flush_once(w, b);
        }
        if (rc == RU_WRITER_FENCED) {
            /* fenced: never retried; the loop decides what to do with the batch */
            PQclear(PQexec(w->conn, "ROLLBACK"));
            give_back(w, b);
            break;
        }
        if (rc == 0) {
            w->backoff_ms = 0;
            b->duration_us = ru_mono_us() - t0;
            b->rows_written = ru_store_nkeys(b->store);
            b->raw_written = w->n.raw ? b->nraw - (b->nrejects - b->ingest_rejects) : 0;
            pthread_mutex_lock(&w->mu);
            w->stats.flushes++;
            w->stats.rows_written += b->rows_written;
            w->stats.events_flushed += ru_store_nevents(b->store);
            w->stats.raw_rows += b->raw_written;
            w->stats.last_flush_unix_ms = ru_wall_ms();
            w->stats.last_flush_us = b->duration_us;
            w->stats.last_error[0] = '\0';
            w->job = NULL;
            w->done = b;
            pthread_mutex_unlock(&w->mu);
            ru_writer_notify(w);
            ru_flush_apply_done(w);
            break;
        }
        pthread_mutex_lock(&w->mu);
        w->stats.flush_failures++;
        pthread_mutex_unlock(&w->mu);
        ru_log_limited(&w->rl, RU_LOG_ERR,
                       "msg=\"flush failed, batch kept for retry\" attempt=%d events=%llu "
                       "error=\"%s\"",
                       b->attempts, (unsigned long long)ru_store_nevents(b->store),
                       w->stats.last_error);
        if (PQstatus(w->conn) != CONNECTION_OK) {
            ru_writer_drop(w);
        } else {
            PQclear(PQexec(w->conn, "ROLLBACK"));
        }
        /* a lost race (deadlock, serialization failure, a new row another writer
         * inserted first) is retried at once; anything else waits out the backoff */
        bool now = rc == RU_WRITER_RACED || ru_pgerr_retry(w->sqlstate) == RU_PGERR_RETRY_NOW;
        if (!now && !ru_writer_backoff(w))
            break;
    }
    w->inflight = NULL;
}

/* Between flushes: a lost session (terminated, PostgreSQL restarted) is noticed within
 * IDLE_CHECK_MS, so the loop stops reading at once; a probe is answered by a round trip
 * made after it was asked. A lost session is made again with the locks. */
static void idle_check(struct ru_pgw *w)
{
    unsigned want = atomic_load(&w->probe_req);
    bool probe = want != atomic_load(&w->probe_done);
    if (w->conn && !atomic_load(&w->reconfigured)) {
        bool alive;
        if (probe) {
            PGresult *r = PQexec(w->conn, "SELECT 1");
            alive = PQresultStatus(r) == PGRES_TUPLES_OK;
            PQclear(r);
        } else {
            alive = PQconsumeInput(w->conn) == 1;
        }
        if (alive && PQstatus(w->conn) == CONNECTION_OK) {
            if (probe) {
                atomic_store(&w->probe_done, want);
                ru_writer_notify(w);
            }
            return;
        }
        ru_warn("msg=\"postgres session lost: reading stops until this consumer's locks are "
                "taken again\" error=\"%.*s\"",
                (int)strcspn(PQerrorMessage(w->conn), "\n"), PQerrorMessage(w->conn));
    }
    ru_writer_drop(w);
    while (ru_pgw_connect(w) < 0) {
        if (ru_writer_is_fatal(w))
            return;
        ru_log_limited(&w->rl, RU_LOG_WARNING,
                       "msg=\"postgres unavailable, reading stopped\" error=\"%s\"",
                       w->stats.last_error);
        if (!ru_writer_backoff(w))
            return;
    }
    w->backoff_ms = 0;
}

static void *writer_main(void *arg)
{
    struct ru_pgw *w = arg;
    /* set-up: connect, schema, checkpoint; retried until it works or we stop */
    for (;;) {
        pthread_mutex_lock(&w->mu);
        bool stop = w->stop;
        pthread_mutex_unlock(&w->mu);
        if (stop)
            return NULL;
        w->setup_blocked = false;
        if (ru_pgw_connect(w) == 0)
            break;
        if (ru_writer_is_fatal(w)) {
            ru_writer_drop(w);
            return NULL;
        }
        if (w->setup_blocked) {
            /* A missing table or privilege waits for a DBA: no point in asking often.
             * Events wait in Redis; health is down with this error; a reload or the
             * next attempt (within RU_WRITER_BACKOFF_MAX_MS) picks up the fix, no restart needed.
             */
            ru_err("msg=\"postgres set-up failed; retrying every %d s\" error=\"%s\"",
                   RU_WRITER_BACKOFF_MAX_MS / 1000, w->stats.last_error);
            w->backoff_ms = RU_WRITER_BACKOFF_MAX_MS;
        } else {
            ru_log_limited(&w->rl, RU_LOG_WARNING,
                           "msg=\"postgres set-up failed, retrying\" error=\"%s\"",
                           w->stats.last_error);
        }
        if (!ru_writer_backoff(w))
            return NULL;
    }
    w->backoff_ms = 0;
    pthread_mutex_lock(&w->mu);
    w->init_done_event = true;
    pthread_mutex_unlock(&w->mu);
    atomic_store(&w->ready, true);
    ru_writer_notify(w);

    for (;;) {
        pthread_mutex_lock(&w->mu);
        if (!w->stop && w->job == NULL && w->ck_req == NULL && w->kc_req == NULL &&
            !atomic_load(&w->adopt_release) &&
            atomic_load(&w->probe_req) == atomic_load(&w->probe_done)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += IDLE_CHECK_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        }
        if (w->stop) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        struct ru_batch *b = w->job;
        char *ck_req = w->ck_req;
        struct ru_keycheck_probe *probes = w->kc_req;
        size_t nprobes = w->kc_n;
        pthread_mutex_unlock(&w->mu);
        if (ru_writer_is_fatal(w))
            break;
        if (atomic_load(&w->adopt_release))
            ru_owner_adopt_unlock(w);
        if (b) {
            bool adoption = b->adopt_consumer != NULL;
            run_batch(w, b);
            if (adoption)
                ru_owner_adopt_unlock(w); /* committed or fenced: the adoption is over */
            continue;
        }
        if (probes) {
            ru_probe_keys(w, probes, nprobes);
            pthread_mutex_lock(&w->mu);
            w->kc_req = NULL;
            w->kc_done = probes;
            w->kc_answered = true;
            pthread_mutex_unlock(&w->mu);
            ru_writer_notify(w);
            continue;
        }
        if (ck_req == NULL) {
            idle_check(w);
            continue;
        }
        ru_probe_checkpoint(w, ck_req);
    }
    ru_writer_drop(w);
    return NULL;
}

/* What a reload changes without a new session (under mu). */
static void copy_live_settings(struct ru_pgw *w, const struct ru_config *cfg)
{
    /* a quarter of the memory bound for the states of recently written rows */
    w->cache_budget = (size_t)cfg->limits.max_memory_mb * 1024 * 1024 / 4;
    w->state_idle_ms = (int64_t)cfg->flush.state_idle_s * 1000;
    atomic_store(&w->create_schema, cfg->postgres.create_schema);
}

static void copy_settings(struct ru_pgw *w, const struct ru_config *cfg)
{
    free(w->conninfo);
    struct ru_buf ci = RU_BUF_INIT;
    ru_buf_puts(&ci, cfg->postgres.conninfo);
    w->conninfo = ci.p;
    w->statement_timeout_ms = cfg->postgres.statement_timeout_ms;
    w->connect_timeout_s = cfg->postgres.connect_timeout_s;
    copy_live_settings(w, cfg);
}

struct ru_pgw *ru_pgw_new(const struct ru_config *cfg)
{
    struct ru_pgw *w = ru_xcalloc(1, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->cache = ru_rowcache_new();
    ru_arena_init(&w->scratch, RU_WRITER_SCRATCH_MIN, SIZE_MAX);
    copy_settings(w, cfg);
    w->stream = ru_xstrdup(cfg->redis.stream);
    w->group = ru_xstrdup(cfg->redis.group);
    w->consumer = ru_xstrdup(cfg->redis.consumer);
    w->lone = cfg->redis.lone_consumer;
    w->hourly_cfg = ru_xstrdup(cfg->postgres.hourly_table);
    w->raw_cfg = ru_xstrdup(cfg->postgres.raw_table);
    w->cfg_path = ru_xstrdup(cfg->path ? cfg->path : "FILE");
    w->rl = (struct ru_ratelimit)RU_RATELIMIT_INIT(10000);
    int e = w->efd < 0 ? errno : pthread_create(&w->thread, NULL, writer_main, w);
    if (e != 0)
        goto fail;
    w->started = true;
    return w;
fail:
    ru_pgw_free(w);
    errno = e;
    return NULL;
}

void ru_pgw_free(struct ru_pgw *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    if (w->cancel) {
        char errbuf[256];
        PQcancel(w->cancel, errbuf, sizeof(errbuf));
    }
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->started)
        pthread_join(w->thread, NULL);
    ru_batch_free(w->job);
    ru_batch_free(w->done);
    free(w->ck_req);
    ru_keycheck_probes_free(w->kc_req, w->kc_n);
    ru_keycheck_probes_free(w->kc_done, w->kc_n);
    if (w->efd >= 0)
        close(w->efd);
    free(w->conninfo);
    free(w->stream);
    free(w->group);
    free(w->consumer);
    free(w->hourly_cfg);
    free(w->raw_cfg);
    free(w->cfg_path);
    ru_sql_flush_deinit(&w->sql);
    ru_flush_keys_free(w->done_keys);
    ru_arena_deinit(&w->scratch);
    ru_rowcache_free(w->cache);
    ru_sql_names_deinit(&w->n);
    ru_buf_free(&w->copybuf);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}

int ru_pgw_fd(const struct ru_pgw *w)
{
    return w->efd;
}

struct ru_batch *ru_pgw_collect(struct ru_pgw *w)
{
    uint64_t v;
    ssize_t r = read(w->efd, &v, sizeof(v));
    (void)r;
    pthread_mutex_lock(&w->mu);
    struct ru_batch *b = w->done;
    w->done = NULL;
    w->init_done_event = false;
    pthread_mutex_unlock(&w->mu);
    if (b)
        atomic_store(&w->busy, false);
    return b;
}

bool ru_pgw_ready(const struct ru_pgw *w)
{
    return atomic_load(&((struct ru_pgw *)w)->ready);
}

bool ru_pgw_busy(const struct ru_pgw *w)
{
    return atomic_load(&((struct ru_pgw *)w)->busy);
}

void ru_pgw_start_point(const struct ru_pgw *w, struct ru_pgw_start *out)
{
    *out = w->start; /* written before ready was set */
}

bool ru_pgw_held(const struct ru_pgw *w)
{
    return atomic_load(&((struct ru_pgw *)w)->held);
}

unsigned ru_pgw_generation(const struct ru_pgw *w)
{
    return atomic_load(&((struct ru_pgw *)w)->generation);
}

unsigned ru_pgw_probe(struct ru_pgw *w)
{
    unsigned t = atomic_fetch_add(&w->probe_req, 1) + 1;
    pthread_mutex_lock(&w->mu);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return t;
}

bool ru_pgw_probed(const struct ru_pgw *w, unsigned ticket)
{
    return (int)(atomic_load(&((struct ru_pgw *)w)->probe_done) - ticket) >= 0;
}

const char *ru_pgw_fatal(struct ru_pgw *w)
{
    pthread_mutex_lock(&w->mu);
    const char *f = w->fatal[0] ? w->fatal : NULL; /* set once, never changed after */
    pthread_mutex_unlock(&w->mu);
    return f;
}

void ru_pgw_submit(struct ru_pgw *w, struct ru_batch *b)
{
    atomic_store(&w->busy, true);
    pthread_mutex_lock(&w->mu);
    w->job = b;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void ru_pgw_request_checkpoint(struct ru_pgw *w, const char *consumer)
{
    atomic_store(&w->busy, true);
    pthread_mutex_lock(&w->mu);
    free(w->ck_req);
    w->ck_req = ru_xstrdup(consumer);
    w->ck_done = false;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int ru_pgw_take_checkpoint(struct ru_pgw *w, struct ru_sid *out, char *err, size_t errlen)
{
    pthread_mutex_lock(&w->mu);
    int rc = 0;
    if (w->ck_done) {
        w->ck_done = false;
        rc = w->ck_rc < 0 ? -1 : 1;
        *out = w->ck_val;
        ru_strlcpy(err, w->ck_err, errlen);
        atomic_store(&w->busy, false);
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

void ru_pgw_request_keycheck(struct ru_pgw *w, struct ru_keycheck_probe *probes, size_t n)
{
    atomic_store(&w->busy, true);
    pthread_mutex_lock(&w->mu);
    w->kc_req = probes;
    w->kc_n = n;
    w->kc_answered = false;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int ru_pgw_take_keycheck(struct ru_pgw *w, struct ru_keycheck_probe **probes, size_t *n)
{
    pthread_mutex_lock(&w->mu);
    int rc = 0;
    if (w->kc_answered) {
        w->kc_answered = false;
        *probes = w->kc_done;
        *n = w->kc_n;
        w->kc_done = NULL;
        w->kc_n = 0;
        atomic_store(&w->busy, false);
        rc = 1;
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

void ru_pgw_adopt_release(struct ru_pgw *w)
{
    atomic_store(&w->adopt_release, true);
    pthread_mutex_lock(&w->mu);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void ru_pgw_apply_live(struct ru_pgw *w, const struct ru_config *cfg)
{
    pthread_mutex_lock(&w->mu);
    copy_live_settings(w, cfg);
    pthread_mutex_unlock(&w->mu);
}

void ru_pgw_reconfigure(struct ru_pgw *w, const struct ru_config *cfg)
{
    pthread_mutex_lock(&w->mu);
    copy_settings(w, cfg);
    atomic_store(&w->reconfigured, true);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void ru_pgw_cancel(struct ru_pgw *w)
{
    pthread_mutex_lock(&w->mu);
    if (w->cancel) {
        char errbuf[256];
        PQcancel(w->cancel, errbuf, sizeof(errbuf));
    }
    pthread_mutex_unlock(&w->mu);
}

size_t ru_pgw_cache_mem(const struct ru_pgw *w)
{
    return atomic_load(&((struct ru_pgw *)w)->cache_bytes);
}

void ru_pgw_get_stats(const struct ru_pgw *w, struct ru_pgw_stats *out)
{
    struct ru_pgw *m = (struct ru_pgw *)w;
    pthread_mutex_lock(&m->mu);
    *out = m->stats;
    pthread_mutex_unlock(&m->mu);
}
