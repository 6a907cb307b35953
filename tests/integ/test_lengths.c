/* Long routes and params (Criterion suite "lengths"): rollupd counts every event whose
 * key PostgreSQL can store in the hourly table's unique index, as genonaut's own SQL
 * does, and dead-letters only the keys PostgreSQL refuses, with PostgreSQL's reason.
 *
 * The events are written by hand: a 2.4 kB route of path segments (fits the index
 * uncompressed), the same route with params (long enough that PostgreSQL is asked), a
 * 4 kB route of repeated segments (fits only compressed), params of 1.9 kB, and a 6 kB
 * route of random base64 (fits in no way). The rows must equal genonaut's aggregation of
 * exactly the storable events (the oracle), in a shared group and as a lone consumer,
 * and across a kill -9 while an entry waits for PostgreSQL's verdict. */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>

#define H0      1761228000LL /* 2025-10-23 14:00:00 UTC, an hour boundary */
#define WAIT_MS 60000

/* Criterion runs each test in its own process, so this is per test. */
static struct {
    char stream[128], group[128], dbname[128], dead[160];
    char ci[256];
    PGconn *pg;
    redisContext *r;
    struct ru_h_daemon d;
    bool lone;
    FILE *oracle;
    char oracle_path[RU_H_PATH];
    long long valid, refused;
    char *route_path, *route_repeated, *route_random, *params_long;
} T;

/* ------------------------------------------------------------------ the events */

/* A deterministic generator (xorshift64*), so every run writes the same bytes. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

/* genonaut-shaped path of len bytes: /api/v1/content/<segment>/<uuid>/... */
static char *route_of_segments(size_t len)
{
    static const char *const words[] = {"related", "gallery", "items", "versions", "tags"};
    struct ru_buf b = RU_BUF_INIT;
    ru_buf_puts(&b, "/api/v1/content");
    while (b.len < len) {
        uint64_t a = rng(), c = rng();
        ru_buf_printf(&b, "/%s/%08x-%04x-4%03x-a%03x-%012llx", words[a % 5], (unsigned)(a >> 32),
                      (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xfff, (unsigned)(c >> 52),
                      (unsigned long long)(c & 0xffffffffffffULL));
    }
    b.len = len;
    b.p[len] = '\0';
    return b.p;
}

/* 4 kB of tag filters from a small vocabulary: pglz compresses it under the limit. */
static char *route_repeated(size_t len)
{
    static const char *const tags[] = {"landscape", "portrait", "abstract", "sci-fi"};
    struct ru_buf b = RU_BUF_INIT;
    ru_buf_puts(&b, "/api/v1/images/search");
    while (b.len < len)
        ru_buf_printf(&b, "/tag/%s", tags[rng() % 4]);
    b.len = len;
    b.p[len] = '\0';
    return b.p;
}

/* Random base64: no compression helps, and 6 kB exceeds the index entry limit. */
static char *route_random(size_t len)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *s = ru_xmalloc(len + 1);
    s[0] = '/';
    for (size_t i = 1; i < len; i++)
        s[i] = b64[rng() % 64];
    s[len] = '\0';
    return s;
}

/* {"sort": "name-asc", "tags": ["tag-0001", ...]}: 1.9 kB canonical. */
static char *params_long(void)
{
    struct ru_buf b = RU_BUF_INIT;
    ru_buf_puts(&b, "{\"sort\": \"name-asc\", \"tags\": [");
    for (int i = 1; i <= 150; i++)
        ru_buf_printf(&b, "%s\"tag-%04d\"", i > 1 ? ", " : "", i);
    ru_buf_puts(&b, "]}");
    return b.p;
}

/* Writes one event to the stream (and, when valid, its line to the oracle); returns its
 * id (malloc'd). */
static char *event(const char *route, const char *method, const char *params, long long ts,
                   int duration, int status, bool storable)
{
    char tstext[32], dur[16], st[16];
    snprintf(tstext, sizeof(tstext), "%lld.25", ts);
    snprintf(dur, sizeof(dur), "%d", duration);
    snprintf(st, sizeof(st), "%d", status);
#define F(name, val)                                                                               \
    {                                                                                              \
        name, val, strlen(name), strlen(val)                                                       \
    }
    struct ru_h_kv f[] = {F("route", route),
                          F("method", method),
                          F("user_id", ""),
                          F("timestamp", tstext),
                          F("duration_ms", dur),
                          F("status_code", st),
                          F("query_params", params),
                          F("query_params_normalized", params),
                          F("request_size_bytes", "0"),
                          F("response_size_bytes", "18"),
                          F("error_type", status >= 500   ? "server_error"
                                          : status >= 400 ? "client_error"
                                                          : ""),
                          F("cache_status", ""),
                          {NULL, NULL, 0, 0}};
#undef F
    char *id = ru_h_xadd(T.r, T.stream, f);
    if (storable) {
        /* oracle: route, method, user, ts, duration, status, qpn, req, resp, db, cache */
        fprintf(T.oracle, "%s\t%s\t\\N\t%s\t%d\t%d\t%s\t0\t18\t\\N\t\\N\n", route, method, tstext,
                duration, status, params);
        T.valid++;
    } else {
        T.refused++;
    }
    return id;
}

/* Ordinary events around the long ones. */
static void short_events(long long ts, int n)
{
    for (int i = 0; i < n; i++)
        free(event("/api/v1/tags", "GET", "{}", ts + i, 10 + i, 200, true));
}

/* The long keys of one hour; the refused entry's id goes to refused_id (malloc'd). */
static void long_events(long long ts, char **refused_id)
{
    /* 2.4 kB route: fits uncompressed, not even asked about */
    free(event(T.route_path, "GET", "{}", ts + 10, 120, 200, true));
    free(event(T.route_path, "GET", "{}", ts + 11, 130, 404, true));
    free(event(T.route_path, "GET", "{}", ts + 12, 140, 500, true));
    /* the same route with params: long, PostgreSQL is asked, it fits */
    free(event(T.route_path, "GET", "{\"tags\": [\"a\", \"b\"], \"sort\": \"name-asc\"}", ts + 13,
               150, 200, true));
    /* 4 kB, but compressible: fits */
    free(event(T.route_repeated, "GET", "{}", ts + 14, 160, 200, true));
    /* 1.9 kB of params: fits */
    free(event("/api/v1/images", "GET", T.params_long, ts + 15, 170, 200, true));
    /* 6 kB of random base64: refused by PostgreSQL, dead-lettered */
    *refused_id = event(T.route_random, "GET", "{}", ts + 16, 180, 200, false);
    /* everything after it is counted */
    free(event("/api/v1/images", "POST", "{}", ts + 17, 190, 201, true));
}

/* ------------------------------------------------------------------ context */

static void setup(bool lone)
{
    memset(&T, 0, sizeof(T));
    T.lone = lone;
    ru_h_names(T.stream, T.group, T.dbname, sizeof(T.stream));
    snprintf(T.dead, sizeof(T.dead), "%s:dead", T.stream);
    ru_h_fresh_db(T.ci, sizeof(T.ci));
    T.pg = ru_h_pg_connect(T.ci);
    T.r = ru_h_redis();
    ru_h_genonaut_schema(T.pg); /* with all its indexes, the route index included */
    ru_h_tmp_path(T.oracle_path, sizeof(T.oracle_path), "oracle.tsv");
    T.oracle = fopen(T.oracle_path, "w");
    cr_assert_not_null(T.oracle);
    T.route_path = route_of_segments(2400);
    T.route_repeated = route_repeated(4000);
    T.route_random = route_random(6000);
    T.params_long = params_long();
}

static bool cond_connected(void *arg)
{
    (void)arg;
    json_t *j = ru_h_status(T.d.sock);
    bool up = j && json_is_true(json_object_get(j, "postgres_connected")) &&
              json_is_true(json_object_get(j, "redis_connected"));
    json_decref(j);
    return up;
}

/* Starts rollupd for this test and waits until both servers are set up. */
static void start(const char *raw_table)
{
    struct ru_h_cfg k = {.stream = T.stream,
                         .group = T.group,
                         .conninfo = T.ci,
                         .flush_interval_ms = 200,
                         .raw_table = raw_table,
                         .redis_extra = T.lone ? "lone_consumer = true;" : NULL};
    char *text = ru_h_config(&k);
    ru_h_daemon_start(&T.d, text);
    free(text);
    cr_assert(ru_h_wait(cond_connected, NULL, 30000), "rollupd did not connect within 30 s");
}

static void finish(void)
{
    if (ru_h_daemon_running(&T.d))
        cr_assert_eq(ru_h_daemon_stop(&T.d), 0, "rollupd did not stop cleanly");
    freeReplyObject(ru_h_redis_cmd(T.r, "DEL %s %s", T.stream, T.dead));
    PQfinish(T.pg);
    redisFree(T.r);
    free(T.route_path);
    free(T.route_repeated);
    free(T.route_random);
    free(T.params_long);
}

/* ------------------------------------------------------------------ observing */

static long long hourly_total(void)
{
    return ru_h_pg_int(T.pg, "SELECT coalesce(sum(total_requests), 0) FROM route_analytics_hourly");
}

/* Every valid event is committed (the checkpoint counts it), every refused one is in the
 * dead-letter stream, nothing waits in memory or in the group's pending list. */
static bool cond_settled(void *arg)
{
    (void)arg;
    return ru_h_checkpoint_events(T.pg, T.stream, T.group) >= T.valid &&
           ru_h_xlen(T.r, T.dead) >= T.refused && ru_h_status_int(&T.d, "pending_events") == 0 &&
           ru_h_status_int(&T.d, "events_parked") == 0 &&
           ru_h_xpending(T.r, T.stream, T.group) == 0;
}

static void wait_settled(const char *what)
{
    bool ok = ru_h_wait(cond_settled, NULL, WAIT_MS);
    CHECK(ok,
          "%s: not settled within %d ms: checkpoint counts %lld of %lld valid events,"
          " %lld of %lld dead letters, pending_events %lld, events_parked %lld",
          what, WAIT_MS, ru_h_checkpoint_events(T.pg, T.stream, T.group), T.valid,
          ru_h_xlen(T.r, T.dead), T.refused, ru_h_status_int(&T.d, "pending_events"),
          ru_h_status_int(&T.d, "events_parked"));
}

/* Counted exactly once, rows equal genonaut's SQL over the storable events, each refused
 * entry dead-lettered once with PostgreSQL's reason. */
static void check_counted(const char *what, char *const *refused_ids, size_t nrefused)
{
    fflush(T.oracle);
    cr_assert_eq(ru_h_oracle_load(T.pg, T.oracle_path), T.valid);
    long long total = hourly_total(), ck = ru_h_checkpoint_events(T.pg, T.stream, T.group);
    cr_assert_eq(total, T.valid, "%s: sum(total_requests) = %lld, want %lld", what, total, T.valid);
    cr_assert_eq(ck, T.valid, "%s: the checkpoint counts %lld events, want %lld", what, ck,
                 T.valid);
    long long diff = ru_h_oracle_diff(T.pg, "route_analytics_hourly");
    if (diff != 0)
        ru_h_oracle_print_diff(T.pg, "route_analytics_hourly");
    cr_assert_eq(diff, 0, "%s: %lld rows differ from genonaut's SQL (printed on stderr)", what,
                 diff);
    long long rows = ru_h_pg_int(T.pg, "SELECT count(*) FROM route_analytics_hourly");
    cr_assert_eq(rows, ru_h_oracle_groups(T.pg, "oracle_raw"));
    long long longest =
        ru_h_pg_int(T.pg, "SELECT max(octet_length(route)) FROM route_analytics_hourly");
    cr_assert_eq(longest, 4000, "%s: the longest route stored is %lld bytes", what, longest);

    long long dead = ru_h_xlen(T.r, T.dead);
    cr_assert_eq(dead, (long long)nrefused, "%s: %lld dead letters, want %zu", what, dead,
                 nrefused);
    redisReply *all = ru_h_redis_cmd(T.r, "XRANGE %s - +", T.dead);
    cr_assert_eq(all->type, REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < nrefused; i++) {
        const redisReply *f = NULL;
        for (size_t j = 0; j < all->elements && f == NULL; j++) {
            const redisReply *e = all->element[j]->element[1];
            if (strcmp(e->element[1]->str, refused_ids[i]) == 0)
                f = e;
        }
        cr_assert_not_null(f, "%s: no dead letter for %s", what, refused_ids[i]);
        cr_assert_str_eq(f->element[2]->str, "rollupd.reason");
        const char *reason = f->element[3]->str;
        cr_assert(strstr(reason, "route/params too large for PostgreSQL's unique index: index"
                                 " row size") != NULL &&
                      strstr(reason, "exceeds btree version 4 maximum 2704") != NULL,
                  "%s: reason '%s' does not give PostgreSQL's index limit", what, reason);
        cr_log_info("%s: dead letter %s: %s", what, refused_ids[i], reason);
    }
    freeReplyObject(all);
}

/* ------------------------------------------------------------------ counting */

static void counted_as_genonaut(bool lone)
{
    const char *what = lone ? "lone consumer" : "shared group";
    setup(lone);
    start(lone ? NULL : "route_analytics");
    char *refused[2];
    for (int h = 0; h < 2; h++) {
        long long ts = H0 + h * 3600;
        short_events(ts, 4);
        long_events(ts + 100, &refused[h]);
        short_events(ts + 200, 3);
    }
    wait_settled(what);
    check_counted(what, refused, 2);
    /* four distinct long keys, each asked about once; the hour does not matter */
    cr_assert_eq(ru_h_status_int(&T.d, "key_probes"), 4);
    cr_assert_eq(ru_h_status_int(&T.d, "events_key_refused"), 2);
    cr_assert_eq(ru_h_status_int(&T.d, "events_invalid"), 2);
    if (!lone) {
        long long raw = ru_h_pg_int(T.pg, "SELECT count(*) FROM route_analytics");
        cr_assert_eq(raw, T.valid, "%s: %lld raw rows, want %lld", what, raw, T.valid);
    }
    char *metrics = ru_h_sock_cmd(T.d.sock, "metrics");
    cr_assert(metrics && strstr(metrics, "\nrollupd_events_key_refused_total 2\n"), "metrics: %s",
              metrics ? metrics : "(none)");
    free(metrics);
    free(refused[0]);
    free(refused[1]);
    finish();
}

Test(lengths, counted_as_genonaut_shared_group, .timeout = 180)
{
    counted_as_genonaut(false);
}

Test(lengths, counted_as_genonaut_lone_consumer, .timeout = 180)
{
    counted_as_genonaut(true);
}

/* ------------------------------------------------------------------ kill -9 while parked */

/* An entry waits for PostgreSQL's verdict (parked) and the probe waits for a table lock. */
static bool cond_probe_waits(void *arg)
{
    (void)arg;
    return ru_h_status_int(&T.d, "events_parked") >= 1 &&
           ru_h_pg_int(T.pg, "SELECT count(*) FROM pg_stat_activity WHERE application_name ="
                             " 'rollupd' AND wait_event_type = 'Lock'") >= 1;
}

static bool cond_committed(void *arg)
{
    return ru_h_checkpoint_events(T.pg, T.stream, T.group) >= *(const long long *)arg &&
           ru_h_status_int(&T.d, "pending_events") == 0;
}

static void kill9_while_parked(bool lone)
{
    const char *what = lone ? "lone consumer" : "shared group";
    setup(lone);
    start(NULL);
    short_events(H0, 20);
    long long first = T.valid;
    cr_assert(ru_h_wait(cond_committed, &first, WAIT_MS), "%s: the first events were not committed",
              what);

    /* hold PostgreSQL's verdict: the probe's INSERT waits for this lock */
    PGconn *lock = ru_h_pg_connect(T.ci);
    ru_h_pg_exec(lock, "BEGIN; LOCK TABLE route_analytics_hourly IN SHARE MODE");
    char *refused;
    short_events(H0 + 100, 5);
    long_events(H0 + 200, &refused);
    short_events(H0 + 300, 5);
    bool waiting = ru_h_wait(cond_probe_waits, NULL, 20000);
    if (!waiting)
        ru_h_pg_exec(lock, "ROLLBACK");
    cr_assert(waiting, "%s: no entry parked with its probe waiting for the lock within 20 s", what);
    long long ck = ru_h_checkpoint_events(T.pg, T.stream, T.group);
    cr_assert_eq(ck, first, "%s: the checkpoint moved past a parked entry (%lld events)", what, ck);

    ru_h_daemon_kill(&T.d, SIGKILL);
    cr_assert_eq(ru_h_daemon_wait_exit(&T.d, 10000), 128 + SIGKILL);
    ru_h_daemon_restart(&T.d);
    ru_h_pg_exec(lock, "ROLLBACK");
    PQfinish(lock);

    wait_settled(what);
    check_counted(what, &refused, 1);
    free(refused);
    finish();
}

Test(lengths, kill9_while_parked_shared_group, .timeout = 180)
{
    kill9_while_parked(false);
}

Test(lengths, kill9_while_parked_lone_consumer, .timeout = 180)
{
    kill9_while_parked(true);
}
