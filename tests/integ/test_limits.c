/* What operators' set-ups do to rollupd (Criterion suite "limits"): entries far larger
 * than the usual event at the smallest memory bound, and a second instance started with
 * the same configuration as a running one.
 *
 * Every test has its own database, stream and socket, and waits on observable state
 * (status socket, XPENDING, /proc) with deadlines. */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>

#define H0         1761228000LL /* 2025-10-23 14:00:00 UTC, an hour boundary */
#define LIMIT_MB   64           /* limits.max_memory_mb: the smallest allowed */
#define BIG_EVENTS 2500
#define BLOB_BYTES (200 * 1024) /* a field the rollup ignores */
#define XADD_BATCH 50           /* XADDs per pipeline */
#define DRAIN_MS   120000

static struct {
    char stream[128], group[128], ci[256];
    redisContext *r;
    PGconn *pg;
} T;

static void setup(void)
{
    memset(&T, 0, sizeof(T));
    ru_h_names(T.stream, T.group, NULL, sizeof(T.stream));
    ru_h_fresh_db(T.ci, sizeof(T.ci));
    T.r = ru_h_redis();
    T.pg = ru_h_pg_connect(T.ci);
}

static void teardown(void)
{
    if (T.r) {
        freeReplyObject(ru_h_redis_cmd(T.r, "DEL %s", T.stream));
        redisFree(T.r);
    }
    if (T.pg)
        PQfinish(T.pg);
}

/* n valid genonaut-shaped events, each with a BLOB_BYTES field "blob", pipelined. */
static void feed_big(int n)
{
    char *blob = ru_xmalloc(BLOB_BYTES);
    memset(blob, 'x', BLOB_BYTES);
    for (int done = 0; done < n;) {
        int m = n - done < XADD_BATCH ? n - done : XADD_BATCH;
        for (int i = 0; i < m; i++) {
            int k = done + i;
            char ts[32], dur[16];
            snprintf(ts, sizeof(ts), "%lld.%03d", H0 + k % 3600, k % 1000);
            snprintf(dur, sizeof(dur), "%d", 5 + k % 200);
            const char *route = k % 2 ? "/api/v1/content/unified" : "/api/v1/tags";
            const char *f[][2] = {{"route", route},
                                  {"method", "GET"},
                                  {"user_id", ""},
                                  {"timestamp", ts},
                                  {"duration_ms", dur},
                                  {"status_code", k % 10 ? "200" : "500"},
                                  {"query_params_normalized", "{}"},
                                  {"blob", blob}};
            const char *argv[3 + 2 * RU_ARRAY_LEN(f)] = {"XADD", T.stream, "*"};
            size_t len[RU_ARRAY_LEN(argv)];
            for (size_t j = 0; j < RU_ARRAY_LEN(f); j++) {
                argv[3 + 2 * j] = f[j][0];
                argv[4 + 2 * j] = f[j][1];
            }
            for (size_t j = 0; j < RU_ARRAY_LEN(argv); j++)
                len[j] = argv[j] == blob ? BLOB_BYTES : strlen(argv[j]);
            cr_assert_eq(redisAppendCommandArgv(T.r, (int)RU_ARRAY_LEN(argv), argv, len), REDIS_OK);
        }
        for (int i = 0; i < m; i++) {
            redisReply *rep = NULL;
            cr_assert_eq(redisGetReply(T.r, (void **)&rep), REDIS_OK, "XADD: %s", T.r->errstr);
            cr_assert_eq(rep->type, REDIS_REPLY_STRING, "XADD: %s", rep->str ? rep->str : "?");
            freeReplyObject(rep);
        }
        done += m;
    }
    free(blob);
}

struct drain {
    const struct ru_h_daemon *d;
    long long want, flushed, pending, group_pending; /* the last seen, -1 unknown */
};

/* Every event flushed, nothing held in memory, nothing pending in the group. */
static bool cond_drained(void *arg)
{
    struct drain *w = arg;
    json_t *j = ru_h_status(w->d->sock);
    if (j == NULL)
        return false;
    bool ok = ru_h_json_int(j, "events_flushed", &w->flushed) &&
              ru_h_json_int(j, "pending_events", &w->pending);
    json_decref(j);
    if (!ok || w->flushed != w->want || w->pending != 0)
        return false;
    /* the group exists once something was flushed */
    w->group_pending = ru_h_xpending(T.r, T.stream, T.group);
    return w->group_pending == 0;
}

struct rss {
    pid_t pid;
    long long kb;
};

static bool cond_rss_within(void *arg)
{
    struct rss *w = arg;
    w->kb = ru_h_proc_status_kb(w->pid, "VmRSS");
    return w->kb >= 0 && w->kb <= LIMIT_MB * 1024LL;
}

/* 2,500 events of about 200 kB each (500 MB) wait in the stream before rollupd starts,
 * at the smallest memory bound: reading must adapt to the size of the entries, so that
 * the process's peak RSS stays under the bound, and memory must go back once they are
 * flushed. Every event is counted once. */
Test(limits, big_entries_keep_the_memory_bound, .init = setup, .fini = teardown, .timeout = 300)
{
    feed_big(BIG_EVENTS);
    struct ru_h_cfg k = {
        .stream = T.stream, .group = T.group, .conninfo = T.ci, .max_memory_mb = LIMIT_MB};
    char *text = ru_h_config(&k);
    struct ru_h_daemon d;
    ru_h_daemon_start(&d, text);
    free(text);

    struct drain w = {&d, BIG_EVENTS, -1, -1, -1};
    bool drained = ru_h_wait(cond_drained, &w, DRAIN_MS);
    long long peak_kb = ru_h_proc_status_kb(d.pid, "VmHWM");
    CHECK(drained,
          "not drained within %d ms: events_flushed %lld of %d, pending_events %lld, group "
          "pending %lld, peak RSS %lld kB",
          DRAIN_MS, w.flushed, BIG_EVENTS, w.pending, w.group_pending, peak_kb);
    long long total = ru_h_pg_int(
        T.pg, "SELECT coalesce(sum(total_requests), 0)::bigint FROM route_analytics_hourly");
    cr_assert_eq(total, BIG_EVENTS, "sum(total_requests) = %lld, want %d", total, BIG_EVENTS);

    /* the flush that settled the last events gives memory back right after its XACK */
    struct rss idle = {d.pid, -1};
    bool settled = ru_h_wait(cond_rss_within, &idle, 10000);
    cr_log_info("limits: %d events of %d kB at max_memory_mb = %d: peak RSS (VmHWM) %lld kB, "
                "idle RSS %lld kB",
                BIG_EVENTS, BLOB_BYTES / 1024, LIMIT_MB, peak_kb, idle.kb);
    fprintf(stderr, "limits-detail: peak_hwm_kb=%lld idle_rss_kb=%lld limit_kb=%d\n", peak_kb,
            idle.kb, LIMIT_MB * 1024);
    /* the bound is on the process's resident set: not under AddressSanitizer, whose shadow
     * memory is outside what rollupd governs (health compares the same RSS) */
#ifndef __SANITIZE_ADDRESS__
    CHECK(peak_kb <= LIMIT_MB * 1024LL, "peak RSS (VmHWM) %lld kB, over limits.max_memory_mb = %d",
          peak_kb, LIMIT_MB);
    cr_assert(settled, "idle RSS %lld kB after the last flush, over limits.max_memory_mb = %d",
              idle.kb, LIMIT_MB);
    char last[512];
    cr_assert(ru_h_wait_answer(d.sock, "health", "ok\n", 10000, last, sizeof(last)),
              "health at the end: %s", last);
#else
    (void)settled;
#endif
    cr_assert_eq(ru_h_daemon_stop(&d), 0);
}

/* A second rollupd started with the configuration of a running one must leave the
 * running one's status socket alone and exit 1, saying why. */
Test(limits, second_instance_keeps_off_the_socket, .init = setup, .fini = teardown, .timeout = 120)
{
    struct ru_h_cfg k = {.stream = T.stream, .group = T.group, .conninfo = T.ci};
    char *text = ru_h_config(&k);
    struct ru_h_daemon a, b;
    ru_h_daemon_start(&a, text);
    char last[512];
    cr_assert(ru_h_wait_answer(a.sock, "health", "ok\n", 20000, last, sizeof(last)),
              "the first rollupd's health: %s", last);

    ru_h_daemon_spawn(&b, text, NULL);
    free(text);
    int rc = ru_h_daemon_wait_exit(&b, 20000);
    char *blog = ru_h_daemon_log(&b);
    bool said = strstr(blog, "is in use by a running rollupd") != NULL;
    free(blog);
    if (rc == -1)
        ru_h_daemon_kill(&b, SIGKILL);
    CHECK(rc == 1, "the second rollupd: exit status %d (-1: still running), want 1", rc);
    CHECK(said, "the second rollupd did not name the socket in use");

    struct stat st;
    cr_assert(lstat(a.sock, &st) == 0 && S_ISSOCK(st.st_mode),
              "the first rollupd's socket %s is gone", a.sock);
    char *h = ru_h_sock_cmd(a.sock, "health");
    cr_assert(h && strcmp(h, "ok\n") == 0,
              "the first rollupd's health after the second "
              "started: %s",
              h ? h : "(unreachable)");
    free(h);
    cr_assert_eq(ru_h_daemon_stop(&a), 0);
}
