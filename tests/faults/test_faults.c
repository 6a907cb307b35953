/* Fault-injection tests for rollupd (Criterion suite "faults").
 *
 * Each test uses a fresh stream and database, feeds genonaut-shaped events with
 * rollupd-loadgen --oracle (in the background, --rate 20000, or in slices), drives one kind
 * of fault, waits (deadlines, never bare sleeps) until every entry of the stream has been
 * delivered and acknowledged, and compares route_analytics_hourly with genonaut's SQL over
 * exactly the events the generator wrote (ru_h_oracle_load + ru_h_oracle_diff == 0).
 *
 *   kill9_cycles            kill -9 at random moments during the feed, restart each time
 *   redis_restarts          redis-server restarted between feed slices
 *   postgres_outage         PostgreSQL stopped while the feed goes on: reading stops with the
 *                           session (the consumer's lock), events wait in Redis
 *   postgres_stalled_memory commits refused (table locked) at limits.max_memory_mb = 64:
 *                           reading pauses at the bound, RSS < 64 MiB
 *   kill9_cycles_lone, redis_restarts_lone   the first two for a lone consumer
 *   slow_postgres           ACCESS EXCLUSIVE lock on the hourly table, statement_timeout 500
 *   trimmed_entries         pending entries trimmed away while the daemon was down
 *   group_deleted           XGROUP DESTROY under the running daemon
 *   two_instances_kill9     consumers c1 and c2 killed and restarted in turn
 *   commit_reply_lost       the reply to COMMIT lost (a proxy cuts the connection after
 *                           PostgreSQL committed): the retried batch must not apply twice
 *   operator_actions, operator_actions_lone
 *                           what operators do, in a shared group and as a lone consumer,
 *                           under a continuous feed, RU_FAULTS_SCALE rounds of each: the
 *                           consumer moved to another consumer name and back (stopped
 *                           cleanly and removed; killed), a second process beside it (another
 *                           name, the other mode), a second process with the same name (it
 *                           exits 1; then it takes over when the first one's PostgreSQL
 *                           session is terminated), the running process's session terminated
 *                           (it resumes), Redis restarted empty with redis.start = "$", slices
 *                           with ids a day ahead of the clock and kill -9 among them. A CTest
 *                           test of their own: ctest -L faults -R operator
 *
 * Each test also checks that every malformed entry (1 % of the feed) reached the
 * dead-letter stream exactly once.
 *
 * RU_FAULTS_SCALE (default 1) sizes the faults: 1 is the short CI run (a few minutes),
 * 10 the long one (50 kill -9 cycles, a 60 s PostgreSQL outage, 10 Redis restarts, ...).
 * RU_FAULTS_SEED fixes the random moments (each test prints the seed it used).
 *
 * Every test prints one figures line to stderr (also when it fails):
 *   faults: test=<name> events_fed=N kill9_cycles=K redis_restarts=R pg_outages=P
 *   pg_session_kills=S events_lost=L events_doubled=D invalid_fed=I dead_letters=C
 *   peak_rss_kb=M
 * (one line). events_fed counts the valid events written to the stream, invalid_fed the
 * malformed ones, dead_letters the copies in the dead-letter stream (plus those a Redis
 * restarted empty took with it; -1 before the comparison), pg_session_kills the
 * pg_terminate_backend calls. events_lost and events_doubled come from the comparison: for
 * each (hour, route, method, params) row, the oracle's total_requests minus the hourly
 * table's, positive parts summed into lost, negative parts into doubled; a row whose totals agree
 * but some other column differs (or a row with total 0 on one side only) adds 1 to lost. Both are 0
 * exactly when the diff is empty; -1 means the test stopped before the comparison. peak_rss_kb is
 * the largest VmHWM of the test's daemon processes, read before each kill and stop. Lines starting
 * "faults-info:" and "faults-detail:" give more figures for people.
 *
 * The tests restart the shared servers (scripts/testenv restart-redis, restart-redis-empty,
 * stop-pg, start-pg), so they never run concurrently: main() forces --jobs 1. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <criterion/options.h>

#define FT_MAX_D     4
#define FT_RATE      20000      /* events per second of the background feed */
#define FT_START_TS  1761228000 /* 2025-10-23 14:00 UTC; events spread over 3 hours */
#define FT_SETTLE_MS 180000     /* for everything to be delivered and acknowledged */
#define FT_TAIL      2500       /* bytes of a daemon log quoted in a failure */
#define HOURLY       "route_analytics_hourly"

/* ------------------------------------------------------------------ scale */

static int scale(void)
{
    const char *s = getenv("RU_FAULTS_SCALE");
    int v = s && *s ? atoi(s) : 1;
    return v < 1 ? 1 : v > 100 ? 100 : v;
}

/* The short value at scale 1, the long one at scale 10, linear in between (and beyond). */
static int lerp(int at1, int at10)
{
    return at1 + (at10 - at1) * (scale() - 1) / 9;
}

/* ------------------------------------------------------------------ test state */

struct obs {
    long long max_memory, memory_limit, max_rss_kb, max_failures, max_consumed;
    bool seen_paused, seen_degraded, seen_pg_down, seen_redis_down;
    char errors[1024]; /* distinct postgres_last_error texts, abridged */
};

struct ft {
    const char *name;
    unsigned seed;
    uint64_t rnd;
    int64_t t0;
    char stream[128], group[128], ci[256], oracle[RU_H_PATH];
    redisContext *r;
    struct ru_h_daemon d[FT_MAX_D];
    int nd;
    int slices;
    long long fed;       /* valid events in ft.oracle (compared) */
    long long fed_extra; /* valid events fed but not compared (trimmed_entries) */
    long long invalid;   /* malformed entries fed (dead-lettered) */
    long long dead_gone; /* dead-letter copies lost with a Redis restarted empty */
    long long dead_letters;
    int kill9, redis_restarts, pg_outages, pg_kills;
    long long peak_rss_kb;
    long long lost, doubled;
    bool printed, passed;
    struct obs obs;
    PGconn *pg;          /* the test's database (operator_actions) */
    struct ru_h_proc lg; /* the running feed slice (operator_actions) */
    bool feeding, lg_running;
    const char *id_offset; /* loadgen option for ids ahead of the clock, or NULL */
};

/* Criterion runs each test in its own process: this is per test. */
static struct ft ft;

static void info(const char *fmt, ...) RU_PRINTF(1, 2);
static void info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "faults-info: [%s +%.1fs] ", ft.name ? ft.name : "?",
            (double)(ru_mono_ms() - ft.t0) / 1000.0);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* xorshift64*: the random moments, reproducible from the seed. */
static int rnd_between(int lo, int hi)
{
    ft.rnd ^= ft.rnd >> 12;
    ft.rnd ^= ft.rnd << 25;
    ft.rnd ^= ft.rnd >> 27;
    uint64_t v = ft.rnd * 0x2545F4914F6CDD1DULL;
    return lo + (int)((v >> 33) % (uint64_t)(hi - lo + 1));
}

/* ------------------------------------------------------------------ processes */

/* True while pid exists and is not a zombie (does not reap it). */
static bool proc_alive(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* Records the daemon's VmHWM (before it is killed or stopped). */
static void note_rss(struct ru_h_daemon *d)
{
    if (!ru_h_daemon_running(d))
        return;
    long long hwm = ru_h_proc_status_kb(d->pid, "VmHWM");
    if (hwm > ft.peak_rss_kb)
        ft.peak_rss_kb = hwm;
}

/* ------------------------------------------------------------------ scripts/testenv */

static bool testenv_script(char *out, size_t n)
{
    ru_h_env_load();
    char up[RU_H_DIR + 8];
    snprintf(up, sizeof(up), "%s/..", ru_h_env.build_dir);
    const char *dirs[4];
    int nd = 0;
    if (ru_h_env.source_dir[0])
        dirs[nd++] = ru_h_env.source_dir;
#ifdef RU_FAULTS_SOURCE_DIR
    dirs[nd++] = RU_FAULTS_SOURCE_DIR;
#endif
    dirs[nd++] = ".";
    dirs[nd++] = up;
    for (int i = 0; i < nd; i++) {
        snprintf(out, n, "%s/scripts/testenv", dirs[i]);
        if (access(out, X_OK) == 0)
            return true;
    }
    return false;
}

/* Runs scripts/testenv CMD $RU_TESTENV_DIR with its output appended to a file (path in
 * out). Returns its exit status, or -1 when it could not be run. Never asserts. */
static int testenv_run(const char *cmd, char *out, size_t n)
{
    char script[RU_H_PATH];
    out[0] = '\0';
    if (!testenv_script(script, sizeof(script)))
        return -1;
    ru_h_tmp_path(out, n, "testenv.out");
    int fd = open(out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    const char *argv[] = {script, cmd, ru_h_env.testenv_dir, NULL};
    pid_t pid = ru_h_fork_exec(argv, fd, fd, NULL);
    if (pid < 0) {
        close(fd);
        return -1;
    }
    close(fd);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static const char *tail(const char *s, size_t n)
{
    size_t len = strlen(s);
    return len > n ? s + len - n : s;
}

/* scripts/testenv CMD; asserts success. */
static void testenv(const char *cmd)
{
    char out[RU_H_PATH];
    int64_t t = ru_mono_ms();
    int rc = testenv_run(cmd, out, sizeof(out));
    if (rc != 0) {
        char *text = ru_h_file_text(out);
        cr_assert_fail("scripts/testenv %s failed (status %d); output (%s):\n%s", cmd, rc, out,
                       tail(text, FT_TAIL));
    }
    info("testenv %s: %lld ms", cmd, (long long)(ru_mono_ms() - t));
}

static bool redis_alive(void)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout(ru_h_env.redis_host, ru_h_env.redis_port, tv);
    bool ok = false;
    if (c && !c->err) {
        redisSetTimeout(c, tv);
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return ok;
}

static bool pg_alive(void)
{
    char ci[256];
    snprintf(ci, sizeof(ci), "host=%s port=%d dbname=postgres user=%s connect_timeout=3",
             ru_h_env.pg_host, ru_h_env.pg_port, ru_h_env.pg_user);
    return PQping(ci) == PQPING_OK;
}

/* Brings both servers back when an earlier test left one down (it failed mid-outage, or
 * was killed by its timeout). Never asserts. */
static void ensure_servers(void)
{
    char out[RU_H_PATH];
    ru_h_env_load();
    if (!pg_alive()) {
        int rc = testenv_run("start-pg", out, sizeof(out));
        fprintf(stderr, "faults-info: PostgreSQL was down; testenv start-pg: %d\n", rc);
    }
    if (!redis_alive()) {
        int rc = testenv_run("restart-redis", out, sizeof(out));
        fprintf(stderr, "faults-info: redis-server was down; testenv restart-redis: %d\n", rc);
    }
}

/* ------------------------------------------------------------------ daemon status */

struct snap {
    long long consumed, flushed, trimmed, invalid, replay_acked, flushes, failures, pending, memory,
        memory_limit, reconnects, recreated;
    bool redis_up, pg_up, paused;
    char health[16], reason[512], pg_err[512];
};

static long long jint(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

static void jstr(const json_t *o, const char *k, char *out, size_t n)
{
    const json_t *v = json_object_get(o, k);
    ru_strlcpy(out, json_is_string(v) ? json_string_value(v) : "", n);
}

static void observe(const struct ru_h_daemon *d, const struct snap *s)
{
    struct obs *o = &ft.obs;
    if (s->memory > o->max_memory)
        o->max_memory = s->memory;
    o->memory_limit = s->memory_limit;
    if (s->failures > o->max_failures)
        o->max_failures = s->failures;
    if (s->consumed > o->max_consumed)
        o->max_consumed = s->consumed;
    o->seen_paused |= s->paused;
    o->seen_degraded |= strcmp(s->health, "degraded") == 0;
    o->seen_pg_down |= !s->pg_up;
    o->seen_redis_down |= !s->redis_up;
    if (s->pg_err[0]) {
        char ab[120];
        snprintf(ab, sizeof(ab), "%.100s", s->pg_err);
        size_t len = strlen(o->errors);
        if (strstr(o->errors, ab) == NULL && len + strlen(ab) + 4 < sizeof(o->errors))
            snprintf(o->errors + len, sizeof(o->errors) - len, "%s[%s]", len ? " " : "", ab);
    }
    long long rss = ru_h_proc_status_kb(d->pid, "VmRSS");
    if (rss > o->max_rss_kb)
        o->max_rss_kb = rss;
}

/* The daemon's status; false when it does not answer. Updates ft.obs. */
static bool snap_get(const struct ru_h_daemon *d, struct snap *s)
{
    memset(s, 0, sizeof(*s));
    json_t *j = ru_h_status(d->sock);
    if (j == NULL || !json_is_object(j)) {
        json_decref(j);
        return false;
    }
    s->consumed = jint(j, "events_consumed");
    s->flushed = jint(j, "events_flushed");
    s->trimmed = jint(j, "events_trimmed");
    s->invalid = jint(j, "events_invalid");
    s->replay_acked = jint(j, "events_replay_acked");
    s->flushes = jint(j, "flushes");
    s->failures = jint(j, "flush_failures");
    s->pending = jint(j, "pending_events");
    s->memory = jint(j, "memory_bytes");
    s->memory_limit = jint(j, "memory_limit_bytes");
    s->reconnects = jint(j, "redis_reconnects");
    s->recreated = jint(j, "group_recreated");
    s->redis_up = json_is_true(json_object_get(j, "redis_connected"));
    s->pg_up = json_is_true(json_object_get(j, "postgres_connected"));
    s->paused = json_is_true(json_object_get(j, "reading_paused"));
    jstr(j, "health", s->health, sizeof(s->health));
    jstr(j, "health_reason", s->reason, sizeof(s->reason));
    jstr(j, "postgres_last_error", s->pg_err, sizeof(s->pg_err));
    json_decref(j);
    observe(d, s);
    return true;
}

typedef bool (*snap_pred)(const struct snap *s, long long arg);

struct swait {
    const struct ru_h_daemon *d;
    snap_pred pred;
    long long arg;
    struct snap last;
};

static bool swait_cond(void *p)
{
    struct swait *w = p;
    return snap_get(w->d, &w->last) && w->pred(&w->last, w->arg);
}

/* Waits until pred(status, arg) holds; fails with the status and log tail at the deadline.
 * Returns the status that satisfied it. */
static struct snap wait_status(const struct ru_h_daemon *d, snap_pred pred, long long arg,
                               int timeout_ms, const char *what)
{
    struct swait w = {.d = d, .pred = pred, .arg = arg};
    if (!ru_h_wait(swait_cond, &w, timeout_ms))
        FAIL("%s: not reached within %d ms (arg %lld)", what, timeout_ms, arg);
    return w.last;
}

/* Keeps sampling the status until the monotonic time t_end: paces a fault's duration. */
static void observe_until(const struct ru_h_daemon *d, int64_t t_end)
{
    struct snap s;
    for (int64_t now = ru_mono_ms(); now < t_end; now = ru_mono_ms()) {
        snap_get(d, &s);
        int64_t left = t_end - ru_mono_ms();
        ru_h_sleep_ms(left < 200 ? (left > 0 ? (int)left : 0) : 200);
    }
}

static bool p_consumed_ge(const struct snap *s, long long n)
{
    return s->consumed >= n;
}

static bool p_flushed_ge(const struct snap *s, long long n)
{
    return s->flushed >= n;
}

static bool p_trimmed_ge(const struct snap *s, long long n)
{
    return s->trimmed >= n;
}

static bool p_failures_gt(const struct snap *s, long long n)
{
    return s->failures > n;
}

static bool p_redis_back(const struct snap *s, long long reconnects_before)
{
    return s->redis_up && s->reconnects > reconnects_before;
}

static bool p_recreated_gt(const struct snap *s, long long n)
{
    return s->recreated > n;
}

/* PostgreSQL refuses commits: health degraded and flushes failing. */
static bool p_pg_failing(const struct snap *s, long long failures_before)
{
    return strcmp(s->health, "degraded") == 0 && s->failures > failures_before;
}

/* PostgreSQL is gone: with its session the process lost its consumer's lock, so reading
 * has stopped and health is down, saying why. */
static bool p_pg_lost(const struct snap *s, long long unused)
{
    (void)unused;
    return strcmp(s->health, "down") == 0 && strstr(s->reason, "postgres session lost") != NULL;
}

static bool p_pending_ge(const struct snap *s, long long n)
{
    return s->pending >= n;
}

static bool p_paused(const struct snap *s, long long unused)
{
    (void)unused;
    return s->paused;
}

/* ------------------------------------------------------------------ Redis */

struct ginfo {
    bool stream_ok, group_ok;
    long long length, pending, lag;
    char last_generated[48], last_delivered[48];
};

static void group_info(struct ginfo *g)
{
    memset(g, 0, sizeof(*g));
    g->lag = -1;
    redisReply *s = ru_h_redis_cmd(ft.r, "XINFO STREAM %s", ft.stream);
    const redisReply *v;
    if (s->type == REDIS_REPLY_ARRAY) {
        g->stream_ok = true;
        if ((v = ru_h_reply_kv(s, "length")) && v->type == REDIS_REPLY_INTEGER)
            g->length = v->integer;
        if ((v = ru_h_reply_kv(s, "last-generated-id")) && v->str)
            ru_strlcpy(g->last_generated, v->str, sizeof(g->last_generated));
    }
    freeReplyObject(s);
    struct ru_h_group grp = ru_h_group_info(ft.r, ft.stream, ft.group);
    if (grp.found) {
        g->group_ok = true;
        g->pending = grp.pending < 0 ? 0 : grp.pending;
        g->lag = grp.lag;
        ru_strlcpy(g->last_delivered, grp.last_delivered, sizeof(g->last_delivered));
    }
}

static void redis_reconnect(void)
{
    if (ft.r)
        redisFree(ft.r);
    ft.r = ru_h_redis();
}

/* Pending entries of one consumer (XPENDING extended form with a large count). */
static long long consumer_pending(const char *consumer)
{
    redisReply *r =
        ru_h_redis_cmd(ft.r, "XPENDING %s %s - + 1000000 %s", ft.stream, ft.group, consumer);
    long long n = r->type == REDIS_REPLY_ARRAY ? (long long)r->elements : -1;
    freeReplyObject(r);
    return n;
}

/* Everything in the stream delivered to the group and acknowledged, and no running daemon
 * holds events: every committed event is in PostgreSQL (acknowledged only after COMMIT). */
static bool settled_cond(void *arg)
{
    (void)arg;
    struct ginfo g;
    group_info(&g);
    if (!g.stream_ok || !g.group_ok || g.pending != 0 ||
        strcmp(g.last_generated, g.last_delivered) != 0)
        return false;
    for (int i = 0; i < ft.nd; i++) {
        struct snap s;
        if (!ru_h_daemon_running(&ft.d[i]))
            continue;
        if (!snap_get(&ft.d[i], &s) || s.pending != 0)
            return false;
    }
    return true;
}

static void wait_settled(void)
{
    int64_t t = ru_mono_ms();
    if (!ru_h_wait(settled_cond, NULL, FT_SETTLE_MS)) {
        struct ginfo g;
        group_info(&g);
        FAIL("not settled within %d ms: stream length %lld, last-generated-id %s, "
             "group %s: pending %lld, last-delivered-id %s, lag %lld",
             FT_SETTLE_MS, g.length, g.last_generated, g.group_ok ? "exists" : "MISSING", g.pending,
             g.last_delivered, g.lag);
    }
    info("settled (all delivered and acknowledged) after %lld ms", (long long)(ru_mono_ms() - t));
}

/* Rewrites the AOF so that restart-redis reloads only what exists now. */
static void compact_aof(void)
{
    redisReply *r = ru_h_redis_cmd(ft.r, "BGREWRITEAOF");
    freeReplyObject(r);
    int64_t deadline = ru_mono_ms() + 120000;
    for (;;) {
        r = ru_h_redis_cmd(ft.r, "INFO persistence");
        bool busy = r->type == REDIS_REPLY_STRING && r->str &&
                    (strstr(r->str, "aof_rewrite_in_progress:1") ||
                     strstr(r->str, "aof_rewrite_scheduled:1"));
        freeReplyObject(r);
        if (!busy)
            return;
        cr_assert_lt(ru_mono_ms(), deadline, "BGREWRITEAOF did not finish within 120 s");
        ru_h_sleep_ms(50);
    }
}

/* ------------------------------------------------------------------ feeding */

static void feed_start(struct ru_h_proc *p, const char *oracle, long long n, int rate,
                       const char *extra)
{
    ru_h_loadgen_start(p,
                       "-s %s -n %lld --rate %d --seed %u --start-ts %d --hours 3"
                       " --invalid-frac 0.01 --oracle %s --quiet %s",
                       ft.stream, n, rate, ft.seed + (unsigned)ft.slices++, FT_START_TS, oracle,
                       extra ? extra : "");
}

/* Waits for a feed into ft.oracle; counts its events. */
static long long feed_finish(struct ru_h_proc *p)
{
    long long v = ru_h_loadgen_finish(p);
    ft.fed += v;
    ft.invalid += ru_h_loadgen_last()->invalid;
    return v;
}

static long long feed(long long n, int rate, const char *extra)
{
    struct ru_h_proc p;
    feed_start(&p, ft.oracle, n, rate, extra);
    return feed_finish(&p);
}

/* ------------------------------------------------------------------ daemons */

static struct ru_h_cfg base_cfg(void)
{
    struct ru_h_cfg k = {.stream = ft.stream, .group = ft.group, .conninfo = ft.ci};
    return k;
}

static struct ru_h_daemon *start_daemon(const struct ru_h_cfg *k)
{
    cr_assert_lt(ft.nd, FT_MAX_D);
    char *text = ru_h_config(k);
    struct ru_h_daemon *d = &ft.d[ft.nd++];
    ru_h_daemon_start(d, text);
    free(text);
    return d;
}

static void kill9(struct ru_h_daemon *d)
{
    note_rss(d);
    ru_h_daemon_kill(d, SIGKILL);
    int st = ru_h_daemon_wait_exit(d, 10000);
    if (st != 128 + SIGKILL)
        FAIL("rollupd did not die of SIGKILL (status %d)", st);
    ft.kill9++;
}

/* SIGTERM every running daemon; each must exit 0. */
static void stop_all(void)
{
    for (int i = 0; i < ft.nd; i++) {
        struct ru_h_daemon *d = &ft.d[i];
        if (!ru_h_daemon_running(d))
            continue;
        note_rss(d);
        int st = ru_h_daemon_stop(d);
        if (st != 0)
            FAIL("rollupd exited with status %d after SIGTERM", st);
    }
}

static bool log_has(const struct ru_h_daemon *d, const char *needle, int *count)
{
    char *log = ru_h_daemon_log(d);
    int n = 0;
    for (const char *p = log; (p = strstr(p, needle)) != NULL; p++)
        n++;
    free(log);
    if (count)
        *count = n;
    return n > 0;
}

/* ------------------------------------------------------------------ lost COMMIT replies */

/* A TCP proxy between the daemon and PostgreSQL that, for chosen COMMITs, forwards the
 * COMMIT, lets PostgreSQL commit, and then drops the reply and closes both connections:
 * the client cannot know whether its transaction committed (a network cut or a server
 * crash at the wrong moment). It follows the client's protocol messages to find simple
 * Query messages whose text is exactly "COMMIT". */
struct pxy_conn {
    int cfd, sfd;
    atomic_bool drop_reply; /* a COMMIT to lose was forwarded: the next reply is lost */
    atomic_int refs;        /* the two direction threads */
    bool closed;            /* fds closed (under pxy.mu) */
    /* client -> server message parser */
    bool startup; /* untyped start-up messages (SSLRequest, StartupMessage) */
    unsigned char hdr[5];
    size_t hdr_n;
    uint32_t body_left;
    unsigned char type;
    unsigned char body[8]; /* the first bytes of the body */
    size_t body_n;
};

#define PXY_MAX_CONNS 256

struct pxy {
    int lfd, port;
    bool running;
    pthread_t acceptor;
    atomic_bool stop;
    atomic_int commits, drops, drops_wanted, every;
    pthread_mutex_t mu;
    struct pxy_conn *conns[PXY_MAX_CONNS];
    int nconns;
};

static struct pxy pxy = {.lfd = -1, .mu = PTHREAD_MUTEX_INITIALIZER};

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* One complete client message: decides whether it is a COMMIT whose reply is lost. */
static bool pxy_message_done(struct pxy_conn *c)
{
    if (c->startup) {
        /* SSLRequest and GSSENCRequest are followed by another start-up message */
        uint32_t code = c->body_n >= 4 ? be32(c->body) : 0;
        if (code != 80877103 && code != 80877104)
            c->startup = false;
        return false;
    }
    if (c->type != 'Q' || c->body_n != 7 || memcmp(c->body, "COMMIT", 7) != 0)
        return false;
    int n = atomic_fetch_add(&pxy.commits, 1) + 1;
    if (n % atomic_load(&pxy.every) != 0)
        return false;
    if (atomic_fetch_add(&pxy.drops, 1) >= atomic_load(&pxy.drops_wanted)) {
        atomic_fetch_sub(&pxy.drops, 1);
        return false;
    }
    return true;
}

/* Follows the client's bytes; true when a COMMIT to lose ends in this chunk. */
static bool pxy_scan(struct pxy_conn *c, const unsigned char *b, size_t n)
{
    bool lose = false;
    size_t i = 0;
    while (i < n) {
        size_t need = c->startup ? 4 : 5;
        if (c->hdr_n < need) {
            c->hdr[c->hdr_n++] = b[i++];
            if (c->hdr_n < need)
                continue;
            uint32_t len = be32(c->hdr + (c->startup ? 0 : 1));
            c->type = c->startup ? 0 : c->hdr[0];
            c->body_left = len >= 4 ? len - 4 : 0;
            c->body_n = 0;
        } else {
            size_t take = n - i < c->body_left ? n - i : c->body_left;
            for (size_t k = 0; k < take && c->body_n < sizeof(c->body); k++)
                c->body[c->body_n++] = b[i + k];
            if (c->body_left != c->body_n && c->body_n == sizeof(c->body))
                c->body_n = sizeof(c->body) + 1; /* longer than we keep */
            i += take;
            c->body_left -= (uint32_t)take;
        }
        if (c->hdr_n == need && c->body_left == 0) {
            lose |= pxy_message_done(c);
            c->hdr_n = 0;
        }
    }
    return lose;
}

static bool send_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static void pxy_release(struct pxy_conn *c)
{
    shutdown(c->cfd, SHUT_RDWR);
    shutdown(c->sfd, SHUT_RDWR);
    if (atomic_fetch_sub(&c->refs, 1) == 1) {
        pthread_mutex_lock(&pxy.mu);
        close(c->cfd);
        close(c->sfd);
        c->closed = true;
        pthread_mutex_unlock(&pxy.mu);
    }
}

static void *pxy_c2s(void *arg)
{
    struct pxy_conn *c = arg;
    static _Thread_local unsigned char buf[65536];
    for (;;) {
        ssize_t n = read(c->cfd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (pxy_scan(c, buf, (size_t)n))
            atomic_store(&c->drop_reply, true); /* before PostgreSQL can answer */
        if (!send_all(c->sfd, buf, (size_t)n))
            break;
    }
    pxy_release(c);
    return NULL;
}

static void *pxy_s2c(void *arg)
{
    struct pxy_conn *c = arg;
    static _Thread_local unsigned char buf[65536];
    for (;;) {
        ssize_t n = read(c->sfd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        /* the client waits for each reply before its next query, so anything after the
         * COMMIT was forwarded is the COMMIT's reply: PostgreSQL has committed */
        if (atomic_load(&c->drop_reply))
            break;
        if (!send_all(c->cfd, buf, (size_t)n))
            break;
    }
    pxy_release(c);
    return NULL;
}

static void *pxy_accept(void *arg)
{
    (void)arg;
    while (!atomic_load(&pxy.stop)) {
        int cfd = accept4(pxy.lfd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            break;
        }
        int sfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)ru_h_env.pg_port)};
        inet_pton(AF_INET, ru_h_env.pg_host, &sa.sin_addr);
        if (sfd < 0 || connect(sfd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            if (sfd >= 0)
                close(sfd);
            close(cfd);
            continue;
        }
        struct pxy_conn *c = ru_xcalloc(1, sizeof(*c)); /* freed with the process */
        c->cfd = cfd;
        c->sfd = sfd;
        c->startup = true;
        atomic_init(&c->refs, 2);
        pthread_mutex_lock(&pxy.mu);
        if (pxy.nconns < PXY_MAX_CONNS)
            pxy.conns[pxy.nconns++] = c;
        pthread_mutex_unlock(&pxy.mu);
        pthread_t t1, t2;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t1, &at, pxy_c2s, c) != 0)
            pxy_release(c);
        if (pthread_create(&t2, &at, pxy_s2c, c) != 0)
            pxy_release(c);
        pthread_attr_destroy(&at);
    }
    return NULL;
}

/* Starts the proxy on a free loopback port (pxy.port); nothing is lost until
 * pxy.drops_wanted is raised. */
static void pxy_start(void)
{
    ru_h_env_load();
    atomic_store(&pxy.stop, false);
    atomic_store(&pxy.every, 1);
    pxy.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(pxy.lfd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    socklen_t len = sizeof(sa);
    cr_assert_eq(bind(pxy.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0, "bind: %s", strerror(errno));
    cr_assert_eq(listen(pxy.lfd, 64), 0);
    cr_assert_eq(getsockname(pxy.lfd, (struct sockaddr *)&sa, &len), 0);
    pxy.port = ntohs(sa.sin_port);
    cr_assert_eq(pthread_create(&pxy.acceptor, NULL, pxy_accept, NULL), 0);
    pxy.running = true;
}

static void pxy_stop(void)
{
    if (!pxy.running)
        return;
    atomic_store(&pxy.stop, true);
    shutdown(pxy.lfd, SHUT_RDWR);
    pthread_join(pxy.acceptor, NULL);
    close(pxy.lfd);
    pxy.lfd = -1;
    pthread_mutex_lock(&pxy.mu);
    for (int i = 0; i < pxy.nconns; i++) {
        if (!pxy.conns[i]->closed) {
            shutdown(pxy.conns[i]->cfd, SHUT_RDWR);
            shutdown(pxy.conns[i]->sfd, SHUT_RDWR);
        }
    }
    pthread_mutex_unlock(&pxy.mu);
    pxy.running = false;
}

/* ------------------------------------------------------------------ set-up, figures */

static void print_figures(void)
{
    fprintf(stderr,
            "faults: test=%s events_fed=%lld kill9_cycles=%d redis_restarts=%d pg_outages=%d "
            "pg_session_kills=%d events_lost=%lld events_doubled=%lld invalid_fed=%lld "
            "dead_letters=%lld peak_rss_kb=%lld\n",
            ft.name, ft.fed + ft.fed_extra, ft.kill9, ft.redis_restarts, ft.pg_outages, ft.pg_kills,
            ft.lost, ft.doubled, ft.invalid, ft.dead_letters, ft.peak_rss_kb);
    ft.printed = true;
}

static void ft_begin(const char *name)
{
    memset(&ft, 0, sizeof(ft));
    ft.name = name;
    ft.lost = ft.doubled = ft.dead_letters = -1;
    ft.t0 = ru_mono_ms();
    const char *s = getenv("RU_FAULTS_SEED");
    ft.seed = s && *s ? (unsigned)strtoul(s, NULL, 10) : (unsigned)(time(NULL) ^ getpid());
    ft.rnd = (uint64_t)ft.seed * 0x9E3779B97F4A7C15ULL + 1;
    ensure_servers();
    ru_h_names(ft.stream, ft.group, NULL, sizeof(ft.stream));
    ru_h_fresh_db(ft.ci, sizeof(ft.ci));
    ru_h_tmp_path(ft.oracle, sizeof(ft.oracle), "oracle.tsv");
    ft.r = ru_h_redis();
    PGconn *c = ru_h_pg_connect(ft.ci);
    ru_h_genonaut_schema(c);
    PQfinish(c);
    info("scale=%d seed=%u stream=%s conninfo=\"%s\"", scale(), ft.seed, ft.stream, ft.ci);
}

/* Criterion's .fini: runs after the test body, also when an assertion failed. Prints the
 * figures line if the test did not get that far, kills leftover daemons, brings the
 * servers back for the next test, and drops the stream of a test that passed. */
static void ft_fini(void)
{
    for (int i = 0; i < ft.nd; i++) {
        struct ru_h_daemon *d = &ft.d[i];
        if (ru_h_daemon_running(d)) {
            note_rss(d);
            ru_h_daemon_kill(d, SIGKILL);
            ru_h_daemon_wait_exit(d, 10000);
        }
    }
    pxy_stop();
    if (ft.lg_running) { /* not to leave a writer behind */
        kill(ft.lg.pid, SIGKILL);
        waitpid(ft.lg.pid, NULL, 0);
    }
    if (ft.pg)
        PQfinish(ft.pg);
    if (ft.name && !ft.printed)
        print_figures();
    ensure_servers();
    if (ft.r) {
        redisFree(ft.r);
        ft.r = NULL;
    }
    /* big streams make every later restart-redis slow (it reloads the AOF): a passed
     * test's stream goes; a failed one keeps its group, pending list and dead letters
     * for a post-mortem, but not its entries (its database and oracle file stay) */
    if (ft.name && ft.stream[0] && redis_alive()) {
        redisContext *c = ru_h_redis();
        redisReply *r = ft.passed ? redisCommand(c, "DEL %s %s:dead", ft.stream, ft.stream)
                                  : redisCommand(c, "XTRIM %s MAXLEN 0", ft.stream);
        if (r)
            freeReplyObject(r);
        redisFree(c);
    }
    if (ft.name)
        info("%s after %.1f s", ft.passed ? "passed" : "FAILED",
             (double)(ru_mono_ms() - ft.t0) / 1000.0);
}

/* ------------------------------------------------------------------ comparison */

/* Splits the comparison into events lost and doubled (see the header comment). */
static void count_loss(PGconn *c, long long *lost, long long *doubled, long long *damaged,
                       long long *hourly_sum)
{
    char *osql = ru_h_oracle_sql("oracle_raw");
    struct ru_buf b = RU_BUF_INIT;
    ru_buf_printf(&b,
                  "WITH o AS (%s), h AS (SELECT \"timestamp\", route, method::text AS method,"
                  " query_params_normalized, total_requests, successful_requests,"
                  " client_errors, server_errors, avg_duration_ms, p50_duration_ms,"
                  " p95_duration_ms, p99_duration_ms, unique_users, avg_request_size_bytes,"
                  " avg_response_size_bytes, avg_db_query_count, cache_hits, cache_misses"
                  " FROM " HOURLY "),"
                  " j AS (SELECT coalesce(o.total_requests, 0)::int8"
                  " - coalesce(h.total_requests, 0)::int8 AS d,"
                  " ROW(o.*) IS DISTINCT FROM ROW(h.*) AS differs"
                  " FROM o FULL JOIN h ON o.\"timestamp\" = h.\"timestamp\""
                  " AND o.route = h.route AND o.method = h.method"
                  " AND o.query_params_normalized = h.query_params_normalized)"
                  " SELECT coalesce(sum(greatest(d, 0)), 0), coalesce(sum(greatest(-d, 0)), 0),"
                  " count(*) FILTER (WHERE d = 0 AND differs),"
                  " (SELECT coalesce(sum(total_requests), 0) FROM h) FROM j",
                  osql);
    free(osql);
    PGresult *r = PQexec(c, b.p);
    ru_buf_free(&b);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "loss query: %s", PQresultErrorMessage(r));
    *lost = atoll(PQgetvalue(r, 0, 0));
    *doubled = atoll(PQgetvalue(r, 0, 1));
    *damaged = atoll(PQgetvalue(r, 0, 2));
    *hourly_sum = atoll(PQgetvalue(r, 0, 3));
    PQclear(r);
}

/* Loads the oracle, compares, prints the figures line, asserts an empty diff. */
static void compare(void)
{
    PGconn *c = ru_h_pg_connect(ft.ci);
    long long rows = ru_h_oracle_load(c, ft.oracle);
    long long diff = ru_h_oracle_diff(c, HOURLY);
    long long lost = 0, doubled = 0, damaged = 0;
    long long hsum = ru_h_pg_int(c, "SELECT coalesce(sum(total_requests), 0) FROM " HOURLY);
    if (diff != 0) {
        count_loss(c, &lost, &doubled, &damaged, &hsum);
        fprintf(stderr, "faults: %s: route_analytics_hourly differs from genonaut's SQL:\n",
                ft.name);
        ru_h_oracle_print_diff(c, HOURLY);
    }
    ft.lost = lost + damaged;
    ft.doubled = doubled;
    char dead[160];
    snprintf(dead, sizeof(dead), "%s:dead", ft.stream);
    ft.dead_letters = ru_h_xlen(ft.r, dead) + ft.dead_gone;
    fprintf(stderr,
            "faults-detail: test=%s oracle_events=%lld hourly_total_requests=%lld diff_rows=%lld "
            "damaged_rows=%lld invalid_fed=%lld seed=%u seconds=%.1f\n",
            ft.name, rows, hsum, diff, damaged, ft.invalid, ft.seed,
            (double)(ru_mono_ms() - ft.t0) / 1000.0);
    print_figures();
    PQfinish(c);
    cr_assert_eq(rows, ft.fed, "the oracle holds %lld events, loadgen reported %lld valid", rows,
                 ft.fed);
    cr_assert_eq(diff, 0,
                 "%s: route_analytics_hourly differs from genonaut's SQL in %lld rows "
                 "(events lost %lld, doubled %lld, rows damaged %lld; database %s)",
                 ft.name, diff, lost, doubled, damaged, ft.ci);
}

/* Every malformed entry was dead-lettered exactly once (copies that went with a Redis
 * restarted empty counted as they were before it). Returns the stream's length. */
static long long check_dead_letters(void)
{
    char dead[160];
    snprintf(dead, sizeof(dead), "%s:dead", ft.stream);
    long long n = ru_h_xlen(ft.r, dead), want = ft.invalid - ft.dead_gone;
    info("dead-letter stream holds %lld entries; malformed entries fed: %lld (%lld copies lost "
         "with Redis' data before)",
         n, ft.invalid, ft.dead_gone);
    cr_assert_eq(n, want,
                 "%s: %lld malformed entries were fed (%lld copies lost with Redis' data before) "
                 "but the dead-letter stream %s holds %lld (%s)",
                 ft.name, ft.invalid, ft.dead_gone, dead, n,
                 n > want ? "some were dead-lettered more than once" : "some are missing");
    return n;
}

/* ------------------------------------------------------------------ tests */

TestSuite(faults, .fini = ft_fini);

/* kill -9 at random moments (50-800 ms after the daemon answers) during a feed at
 * 20000 events/s, restarting each time. A lone consumer (no pending list: every restart
 * reads again with XRANGE what the group delivered after the checkpoint) goes through
 * the same. */
static void kill9_cycles(const char *name, bool lone)
{
    ft_begin(name);
    int cycles = lerp(5, 50);
    struct ru_h_cfg k = base_cfg();
    if (lone)
        k.redis_extra = "lone_consumer = true;";
    struct ru_h_daemon *d = start_daemon(&k);
    struct ru_h_proc lg;
    feed_start(&lg, ft.oracle, (long long)FT_RATE * (cycles + 3), FT_RATE, NULL);
    int during = 0;
    long long replay_acked = 0;
    for (int i = 0; i < cycles; i++) {
        ru_h_sleep_ms(rnd_between(50, 800)); /* the random moment (pacing the fault) */
        struct snap s;
        if (snap_get(d, &s))
            replay_acked += s.replay_acked;
        if (proc_alive(lg.pid))
            during++;
        kill9(d);
        ru_h_daemon_restart(d);
    }
    feed_finish(&lg);
    wait_settled();
    stop_all();
    info("kills while loadgen was writing: %d of %d; committed entries replayed and only "
         "acknowledged: %lld",
         during, cycles, replay_acked);
    compare();
    check_dead_letters();
    ft.passed = true;
}

Test(faults, kill9_cycles)
{
    kill9_cycles("kill9_cycles", false);
}

Test(faults, kill9_cycles_lone)
{
    kill9_cycles("kill9_cycles_lone", true);
}

/* redis-server restarted between feed slices (a slice that overlapped a restart would
 * fail its XADDs and leave the oracle unsure), while the daemon still digests the last. */
static void redis_restarts(const char *name, bool lone)
{
    ft_begin(name);
    int restarts = lerp(2, 10);
    compact_aof();
    struct ru_h_cfg k = base_cfg();
    if (lone)
        k.redis_extra = "lone_consumer = true;";
    struct ru_h_daemon *d = start_daemon(&k);
    for (int i = 0;; i++) {
        /* full speed (a backlog at the restart) and paced slices in turn */
        feed(lerp(15000, 20000), i % 2 ? FT_RATE : 0, NULL);
        if (i == restarts)
            break;
        struct snap s;
        if (!snap_get(d, &s))
            FAIL("no status before the restart");
        info("restart %d: daemon consumed %lld of %lld valid events fed", i + 1, s.consumed,
             ft.fed);
        testenv("restart-redis");
        ft.redis_restarts++;
        redis_reconnect();
        struct snap b = wait_status(d, p_redis_back, s.reconnects, 60000,
                                    "redis_connected again with more redis_reconnects");
        info("reconnected: redis_reconnects %lld -> %lld", s.reconnects, b.reconnects);
    }
    wait_settled();
    int lost_lines = 0;
    log_has(d, "redis connection lost", &lost_lines);
    stop_all();
    compare();
    check_dead_letters();
    cr_assert_geq(lost_lines, restarts, "the log reports %d lost connections for %d restarts",
                  lost_lines, restarts);
    ft.passed = true;
}

Test(faults, redis_restarts)
{
    redis_restarts("redis_restarts", false);
}

/* The group's last-delivered id of a lone consumer survives a restart only through the
 * AOF; whatever the restart loses or keeps, nothing is counted twice. */
Test(faults, redis_restarts_lone)
{
    redis_restarts("redis_restarts_lone", true);
}

/* PostgreSQL stopped for 5 s (60 s long) under load: the daemon keeps reading, reports
 * degraded, and catches up once PostgreSQL is back. */
Test(faults, postgres_outage)
{
    ft_begin("postgres_outage");
    int outage_s = lerp(5, 60);
    struct ru_h_cfg k = base_cfg();
    struct ru_h_daemon *d = start_daemon(&k);
    struct ru_h_proc lg;
    feed_start(&lg, ft.oracle, (long long)FT_RATE * (outage_s + 3), FT_RATE, NULL);
    wait_status(d, p_flushed_ge, 1, 30000, "a first flush");
    struct snap s0;
    snap_get(d, &s0);
    testenv("stop-pg");
    ft.pg_outages++;
    int64_t t_stop = ru_mono_ms();
    memset(&ft.obs, 0, sizeof(ft.obs));
    struct snap s1 = wait_status(d, p_pg_lost, 0, 30000,
                                 "health down: reading stopped with the PostgreSQL session");
    info("reading stopped %lld ms after PostgreSQL: %s", (long long)(ru_mono_ms() - t_stop),
         s1.reason);
    observe_until(d, t_stop + outage_s * 1000);
    struct snap s3;
    cr_assert(snap_get(d, &s3));
    info("outage of %lld ms: consumed %lld -> %lld -> %lld, flushed %lld -> %lld, "
         "max memory_bytes %lld, pending %lld",
         (long long)(ru_mono_ms() - t_stop), s0.consumed, s1.consumed, s3.consumed, s0.flushed,
         s3.flushed, ft.obs.max_memory, s3.pending);
    /* without its lock the process reads nothing: the events wait in Redis */
    cr_assert_eq(s3.consumed, s1.consumed, "events read while the consumer's lock was lost");
    cr_assert(p_pg_lost(&s3, 0), "health at the end of the outage: %s: %s", s3.health, s3.reason);
    testenv("start-pg");
    int64_t t_back = ru_mono_ms();
    feed_finish(&lg);
    wait_settled();
    info("caught up %lld ms after PostgreSQL came back; postgres errors seen: %s",
         (long long)(ru_mono_ms() - t_back), ft.obs.errors);
    stop_all();
    compare();
    check_dead_letters();
    ft.passed = true;
}

/* PostgreSQL refusing every commit for a long time (the hourly table locked past the
 * statement timeout) while the session and its lock stay, at limits.max_memory_mb = 64
 * (the smallest allowed) with a large, wide feed: reading goes on until the memory bound,
 * then pauses with the process's peak RSS below the limit, and resumes once commits go
 * through again. */
Test(faults, postgres_stalled_memory)
{
    ft_begin("postgres_stalled_memory");
    const int limit_mb = 64;
    int outage_s = lerp(5, 60);
    struct ru_h_cfg k = base_cfg();
    k.max_memory_mb = limit_mb;
    /* short enough that flushes fail on the lock soon, long enough for the flush of what
     * filled memory (some 64,000 new rows) once it is released, also under sanitizers */
    k.postgres_extra = "statement_timeout_ms = 5000;";
    struct ru_h_daemon *d = start_daemon(&k);
    long long warm = feed(20000, 0, NULL);
    wait_status(d, p_flushed_ge, warm, 30000, "the warm-up feed flushed");
    long long base_rss = ru_h_proc_status_kb(d->pid, "VmRSS");
    PGconn *lk = ru_h_pg_connect(ft.ci);
    ru_h_pg_exec(lk, "BEGIN; LOCK TABLE " HOURLY " IN ACCESS EXCLUSIVE MODE");
    ft.pg_outages++;
    int64_t t_stop = ru_mono_ms();
    memset(&ft.obs, 0, sizeof(ft.obs));
    /* a few events first: the batch the writer keeps retrying stays small, so the bound
     * is met by the batch that fills while PostgreSQL refuses commits */
    long long few = feed(200, 0, NULL);
    struct snap s0 = wait_status(d, p_pg_failing, -1, 30000, "degraded with the first events");
    wait_status(d, p_pending_ge, few, 30000, "the first events waiting");
    info("stalled: %lld events wait (%lld bytes); now a burst", few, s0.memory);
    /* 5000 hours, 2000 routes, 100000 users: nearly every event makes a new key (about
     * 400 bytes each), so the bound is met after some 100000 events */
    struct ru_h_proc lg;
    feed_start(&lg, ft.oracle, lerp(200000, 400000), 0,
               "--hours 5000 --routes 2000 --users 100000");
    struct snap s = wait_status(d, p_paused, 0, 120000, "reading_paused at the memory bound");
    info("reading paused %lld ms into the stall: %s; memory_bytes %lld of %lld",
         (long long)(ru_mono_ms() - t_stop), s.reason, s.memory, s.memory_limit);
    int64_t t_end = t_stop + outage_s * 1000;
    if (t_end < ru_mono_ms() + 3000)
        t_end = ru_mono_ms() + 3000; /* watch the paused daemon for a while */
    observe_until(d, t_end);
    struct snap s2;
    cr_assert(snap_get(d, &s2));
    cr_assert(s2.paused, "reading resumed while PostgreSQL still refused commits");
    long long outage_rss = ft.obs.max_rss_kb;
    ru_h_pg_exec(lk, "ROLLBACK");
    PQfinish(lk);
    int64_t t_back = ru_mono_ms();
    feed_finish(&lg);
    wait_settled();
    info("caught up %lld ms after the lock was released", (long long)(ru_mono_ms() - t_back));
    note_rss(d);
    fprintf(stderr,
            "faults-detail: test=%s memory_limit_bytes=%lld max_memory_bytes=%lld "
            "base_rss_kb=%lld outage_max_rss_kb=%lld peak_hwm_kb=%lld\n",
            ft.name, s.memory_limit, ft.obs.max_memory, base_rss, outage_rss, ft.peak_rss_kb);
    stop_all();
    compare();
    check_dead_letters();
    cr_assert_lt(ft.obs.max_memory, (long long)limit_mb * 1024 * 1024,
                 "memory_bytes reached %lld, limit %d MiB", ft.obs.max_memory, limit_mb);
    /* the bound is on the process: its peak resident set, code and libraries included
     * (not under AddressSanitizer, whose shadow memory is outside what rollupd governs) */
#ifndef __SANITIZE_ADDRESS__
    cr_assert_lt(ft.peak_rss_kb, (long long)limit_mb * 1024,
                 "peak RSS (VmHWM) %lld kB, over the %d MiB limit (RSS %lld kB before the "
                 "outage, %lld kB at most during it)",
                 ft.peak_rss_kb, limit_mb, base_rss, outage_rss);
#endif
    ft.passed = true;
}

/* An ACCESS EXCLUSIVE lock on the hourly table held for 3 s (30 s long), with
 * statement_timeout_ms = 500: flushes fail on the lock timeout and are retried. */
Test(faults, slow_postgres)
{
    ft_begin("slow_postgres");
    int hold_s = lerp(3, 30);
    struct ru_h_cfg k = base_cfg();
    k.postgres_extra = "statement_timeout_ms = 500;";
    struct ru_h_daemon *d = start_daemon(&k);
    struct ru_h_proc lg;
    feed_start(&lg, ft.oracle, (long long)FT_RATE * (hold_s + 2), FT_RATE, NULL);
    wait_status(d, p_flushed_ge, 1, 30000, "a first flush");
    struct snap s0;
    snap_get(d, &s0);
    PGconn *lk = ru_h_pg_connect(ft.ci);
    ru_h_pg_exec(lk, "BEGIN; LOCK TABLE " HOURLY " IN ACCESS EXCLUSIVE MODE");
    int64_t t_lock = ru_mono_ms();
    memset(&ft.obs, 0, sizeof(ft.obs));
    struct snap s1 = wait_status(d, p_failures_gt, s0.failures, hold_s * 1000 + 10000,
                                 "a flush failing on the lock");
    info("first failure %lld ms after the lock: %s", (long long)(ru_mono_ms() - t_lock), s1.pg_err);
    observe_until(d, t_lock + hold_s * 1000);
    ru_h_pg_exec(lk, "ROLLBACK");
    PQfinish(lk);
    int64_t t_free = ru_mono_ms();
    struct snap s2;
    cr_assert(snap_get(d, &s2));
    info("lock held %lld ms: flush_failures %lld -> %lld; health during the lock %s; "
         "errors: %s",
         (long long)(t_free - t_lock), s0.failures, s2.failures,
         ft.obs.seen_degraded ? "degraded" : "never degraded", ft.obs.errors);
    feed_finish(&lg);
    wait_settled();
    info("caught up %lld ms after the lock was released", (long long)(ru_mono_ms() - t_free));
    stop_all();
    compare();
    check_dead_letters();
    cr_assert(strstr(ft.obs.errors, "lock timeout") || strstr(ft.obs.errors, "statement timeout"),
              "no lock or statement timeout in postgres_last_error: %s", ft.obs.errors);
    ft.passed = true;
}

/* Entries read (pending for c1) but never flushed, then trimmed by the producer while the
 * daemon is down: after the restart they are counted in events_trimmed, acknowledged and
 * reported in health; the entries that were not trimmed are counted exactly once. */
Test(faults, trimmed_entries)
{
    ft_begin("trimmed_entries");
    long long n1 = lerp(5000, 50000), n2 = lerp(5000, 50000);
    char oracle_lost[RU_H_PATH];
    ru_h_tmp_path(oracle_lost, sizeof(oracle_lost), "oracle-trimmed.tsv");
    struct ru_h_proc p;
    feed_start(&p, oracle_lost, n1, 0, NULL);
    long long v1 = ru_h_loadgen_finish(&p);
    long long written1 = ru_h_loadgen_last()->written;
    ft.fed_extra = v1;
    ft.invalid += ru_h_loadgen_last()->invalid;

    /* a flush interval and size the daemon never reaches */
    struct ru_h_cfg k = base_cfg();
    k.flush_interval_ms = 3600000;
    k.max_events = 100000000;
    struct ru_h_daemon *d = start_daemon(&k);
    wait_status(d, p_consumed_ge, v1, 30000, "every entry read into memory");
    int64_t deadline = ru_mono_ms() + 10000;
    while (ru_h_xpending(ft.r, ft.stream, ft.group) != v1) {
        cr_assert_lt(ru_mono_ms(), deadline, "XPENDING is %lld, expected the %lld valid entries",
                     ru_h_xpending(ft.r, ft.stream, ft.group), v1);
        ru_h_sleep_ms(20);
    }
    kill9(d);
    long long pending = ru_h_xpending(ft.r, ft.stream, ft.group);

    /* the producer goes on; these entries are not read yet */
    feed(n2, 0, NULL);
    struct ginfo g;
    group_info(&g);
    redisReply *r = ru_h_redis_cmd(ft.r, "XRANGE %s (%s + COUNT 1", ft.stream, g.last_delivered);
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 1, "no entry after %s",
              g.last_delivered);
    char first_unread[48];
    ru_strlcpy(first_unread, r->element[0]->element[0]->str, sizeof(first_unread));
    freeReplyObject(r);
    long long trimmed = ru_h_redis_int(ft.r, "XTRIM %s MINID %s", ft.stream, first_unread);
    info("XTRIM MINID %s removed %lld entries (%lld of them pending for c1)", first_unread, trimmed,
         pending);
    cr_assert_eq(trimmed, written1);
    cr_assert_eq(ru_h_xlen(ft.r, ft.stream), ru_h_loadgen_last()->written);

    ru_h_daemon_restart(d);
    wait_status(d, p_trimmed_ge, pending, 30000, "events_trimmed reached the trimmed entries");
    wait_status(d, p_consumed_ge, ft.fed, 30000, "the untrimmed entries read");
    char *ans = ru_h_sock_cmd(d->sock, "flush");
    cr_assert(ans && strstr(ans, "\"flushed\":true"), "flush answered: %s", ans ? ans : "nothing");
    free(ans);
    wait_settled();
    struct snap s;
    cr_assert(snap_get(d, &s));
    char *health = ru_h_sock_cmd(d->sock, "health");
    info("events_trimmed %lld, health: %s", s.trimmed, health ? health : "(no answer)");
    cr_assert_eq(s.trimmed, pending, "events_trimmed %lld, but %lld pending entries were trimmed",
                 s.trimmed, pending);
    cr_assert_eq(ru_h_xpending(ft.r, ft.stream, ft.group), 0);
    cr_assert_str_eq(s.health, "degraded", "health %s: %s", s.health, s.reason);
    cr_assert(strstr(s.reason, "trimmed"), "health_reason: %s", s.reason);
    cr_assert(health && strncmp(health, "degraded:", 9) == 0 && strstr(health, "trimmed"),
              "health command: %s", health ? health : "(no answer)");
    free(health);
    cr_assert(log_has(d, "trimmed by the producer", NULL), "no log line about trimmed entries");
    stop_all();
    compare();
    check_dead_letters();
    ft.passed = true;
}

/* XGROUP DESTROY while the daemon runs (once; 5 times long): it recreates the group, logs
 * it, reports degraded, and counts nothing twice although the stream is delivered again.
 * The group is created again after the checkpoint, so what comes back is the batch being
 * filled (skipped as in flight, acknowledged by its COMMIT) and, only when a flush commits
 * while it is delivered again, committed entries that are only acknowledged
 * (events_replay_acked): how many of each is a matter of timing, which the test reports
 * and does not assert; compare() is what must hold. */
Test(faults, group_deleted)
{
    ft_begin("group_deleted");
    int destroys = lerp(1, 5);
    struct ru_h_cfg k = base_cfg();
    struct ru_h_daemon *d = start_daemon(&k);
    struct ru_h_proc lg;
    feed_start(&lg, ft.oracle, (long long)FT_RATE * (destroys * 2 + 3), FT_RATE, NULL);
    long long flushed = 0;
    for (int i = 0; i < destroys; i++) {
        struct snap s = wait_status(d, p_flushed_ge, flushed + 1, 30000,
                                    "a flush committed before the destroy");
        long long n = ru_h_redis_int(ft.r, "XGROUP DESTROY %s %s", ft.stream, ft.group);
        cr_assert_eq(n, 1, "XGROUP DESTROY answered %lld", n);
        struct snap s2 = wait_status(d, p_recreated_gt, s.recreated, 30000, "the group recreated");
        info("destroy %d: %lld events flushed before; group_recreated %lld", i + 1, s.flushed,
             s2.recreated);
        flushed = s2.flushed;
        ru_h_sleep_ms(rnd_between(1000, 2500)); /* feed goes on before the next destroy */
    }
    feed_finish(&lg);
    wait_settled();
    struct snap s;
    cr_assert(snap_get(d, &s));
    info("events_replay_acked %lld (committed entries delivered again, only acknowledged)",
         s.replay_acked);
    bool logged = log_has(d, "has been created again", NULL);
    stop_all();
    compare();
    cr_assert_str_eq(s.health, "degraded", "health %s: %s", s.health, s.reason);
    cr_assert(strstr(s.reason, "recreated"), "health_reason: %s", s.reason);
    cr_assert(logged, "no log line about the recreated group");
    check_dead_letters();
    ft.passed = true;
}

/* Two daemons (consumers c1 and c2) in one group, killed with -9 and restarted in turn
 * during the feed. */
Test(faults, two_instances_kill9)
{
    ft_begin("two_instances_kill9");
    int kills = lerp(4, 20);
    struct ru_h_cfg k1 = base_cfg(), k2 = base_cfg();
    k1.consumer = "c1";
    k2.consumer = "c2";
    struct ru_h_daemon *d[2];
    d[0] = start_daemon(&k1);
    d[1] = start_daemon(&k2);
    struct ru_h_proc lg;
    feed_start(&lg, ft.oracle, (long long)FT_RATE * (kills + 2), FT_RATE, NULL);
    for (int i = 0; i < kills; i++) {
        ru_h_sleep_ms(rnd_between(200, 1000)); /* the random moment (pacing the fault) */
        kill9(d[i % 2]);
        ru_h_daemon_restart(d[i % 2]);
    }
    feed_finish(&lg);
    wait_settled();
    struct snap a, b;
    cr_assert(snap_get(d[0], &a) && snap_get(d[1], &b));
    info("after the last restarts: c1 consumed %lld, c2 consumed %lld", a.consumed, b.consumed);
    cr_assert_eq(ru_h_xpending(ft.r, ft.stream, ft.group), 0);
    cr_assert_eq(consumer_pending("c1"), 0);
    cr_assert_eq(consumer_pending("c2"), 0);
    stop_all();
    compare();
    check_dead_letters();
    ft.passed = true;
}

/* The reply to COMMIT is lost (the connection drops after PostgreSQL committed) a few
 * times under load: the daemon cannot know whether the batch committed, and must not
 * apply it a second time when it retries. */
Test(faults, commit_reply_lost)
{
    ft_begin("commit_reply_lost");
    int drops = lerp(3, 20);
    pxy_start();
    char via[300], dbname[64];
    cr_assert_eq(sscanf(strstr(ft.ci, "dbname="), "dbname=%63s", dbname), 1);
    snprintf(via, sizeof(via), "host=127.0.0.1 port=%d dbname=%s user=%s sslmode=disable", pxy.port,
             dbname, ru_h_env.pg_user);
    struct ru_h_cfg k = base_cfg();
    k.conninfo = via;
    struct ru_h_daemon *d = start_daemon(&k);
    struct ru_h_proc lg;
    feed_start(&lg, ft.oracle, (long long)FT_RATE * (drops + 3), FT_RATE, NULL);
    wait_status(d, p_flushed_ge, 1, 30000, "a first flush");
    atomic_store(&pxy.every, 2);
    atomic_store(&pxy.drops_wanted, drops);
    int64_t deadline = ru_mono_ms() + 60000 + drops * 5000;
    while (atomic_load(&pxy.drops) < drops) {
        if (ru_mono_ms() > deadline)
            FAIL("only %d of %d COMMIT replies lost in time (%d COMMITs seen)",
                 atomic_load(&pxy.drops), drops, atomic_load(&pxy.commits));
        ru_h_sleep_ms(50);
    }
    info("%d COMMIT replies lost out of %d COMMITs", atomic_load(&pxy.drops),
         atomic_load(&pxy.commits));
    feed_finish(&lg);
    wait_settled();
    struct snap s;
    cr_assert(snap_get(d, &s));
    info("flush_failures %lld; postgres errors seen: %s", s.failures, ft.obs.errors);
    stop_all();
    compare();
    check_dead_letters();
    ft.passed = true;
}

/* ------------------------------------------------------------------ operator actions */

#define OP_RATE  5000                      /* events per second while operators act */
#define OP_SLICE 10000                     /* events per feed slice (2 s at OP_RATE) */
#define OP_AHEAD "--id-offset-ms 86400000" /* explicit ids a day ahead of the clock */

/* Keeps the feed going: starts the next slice once the last one has finished. Every wait
 * of the scenario calls it, so events keep arriving whatever the test waits for. */
static void pump(void)
{
    if (ft.lg_running && !proc_alive(ft.lg.pid)) {
        feed_finish(&ft.lg);
        ft.lg_running = false;
    }
    if (ft.feeding && !ft.lg_running) {
        feed_start(&ft.lg, ft.oracle, OP_SLICE, OP_RATE, NULL);
        ft.lg_running = true;
    }
}

static void feed_on(void)
{
    ft.feeding = true;
    pump();
}

/* Stops the feed after the slice being written. */
static void feed_pause(void)
{
    ft.feeding = false;
    if (ft.lg_running) {
        feed_finish(&ft.lg);
        ft.lg_running = false;
    }
}

/* ru_h_wait with the feed kept going. */
static bool wait_fed(bool (*cond)(void *), void *arg, int timeout_ms)
{
    int64_t deadline = ru_mono_ms() + timeout_ms;
    for (;;) {
        pump();
        if (cond(arg))
            return true;
        if (ru_mono_ms() > deadline)
            return false;
        ru_h_sleep_ms(20);
    }
}

struct dwant {
    struct ru_h_daemon *d;
    long long n;
    const char *text;
    struct snap s;
};

static bool c_consumed(void *p)
{
    struct dwant *w = p;
    return snap_get(w->d, &w->s) && w->s.consumed >= w->n;
}

static bool c_reason(void *p)
{
    struct dwant *w = p;
    return snap_get(w->d, &w->s) && strstr(w->s.reason, w->text) != NULL;
}

static bool c_log_count(void *p)
{
    struct dwant *w = p;
    int n = 0;
    log_has(w->d, w->text, &n);
    return n >= w->n;
}

/* Everything in the stream was delivered to the group. */
static bool c_delivered(void *p)
{
    (void)p;
    struct ginfo g;
    group_info(&g);
    return g.group_ok && strcmp(g.last_generated, g.last_delivered) == 0;
}

static bool c_exited(void *p)
{
    return !ru_h_daemon_running(p);
}

/* A session of another process waits for an advisory lock in the test's database. */
static bool c_lock_waiter(void *p)
{
    (void)p;
    return ru_h_pg_lock_waiters(ft.pg) > 0;
}

/* Terminates the sessions of the test's database that hold granted advisory locks: the
 * running process's (a process waiting for a lock holds none). */
static void terminate_lock_holders(void)
{
    long long n = ru_h_pg_terminate_lock_holders(ft.pg);
    cr_assert_geq(n, 1, "no session holding rollupd's locks to terminate");
    ft.pg_kills++;
}

/* Waits until d has read `more` entries beyond what it has read so far. */
static void reads_on(struct ru_h_daemon *d, long long more, const char *what)
{
    struct dwant w = {.d = d};
    if (!snap_get(d, &w.s))
        FAIL("%s: no status", what);
    w.n = (w.s.consumed > 0 ? w.s.consumed : 0) + more;
    if (!wait_fed(c_consumed, &w, 60000))
        FAIL("%s: events_consumed %lld, not %lld within 60 s", what, w.s.consumed, w.n);
}

static void wait_exit_status(struct ru_h_daemon *d, int status, int timeout_ms, const char *what)
{
    if (!wait_fed(c_exited, d, timeout_ms))
        FAIL("%s: still running after %d ms", what, timeout_ms);
    int st = ru_h_daemon_wait_exit(d, 1000);
    if (st != status)
        FAIL("%s: exit status %d, want %d", what, st, status);
}

static struct ru_h_cfg op_cfg(const char *consumer, bool lone)
{
    struct ru_h_cfg k = base_cfg();
    k.consumer = consumer;
    if (lone)
        k.redis_extra = "lone_consumer = true;";
    return k;
}

/* Starts a process in slot i (a new run directory, its own status socket). */
static struct ru_h_daemon *op_start(int i, const struct ru_h_cfg *k)
{
    struct ru_h_daemon *d = &ft.d[i];
    cr_assert(!ru_h_daemon_running(d));
    char *text = ru_h_config(k);
    ru_h_daemon_start(d, text);
    free(text);
    if (ft.nd < i + 1)
        ft.nd = i + 1;
    return d;
}

/* SIGTERM: final flush and acknowledgement, exit 0. */
static void stop_one(struct ru_h_daemon *d, const char *what)
{
    note_rss(d);
    int st = ru_h_daemon_stop(d);
    if (st != 0)
        FAIL("%s: exit status %d after SIGTERM", what, st);
}

static bool consumer_listed(const char *name)
{
    redisReply *r = ru_h_redis_cmd(ft.r, "XINFO CONSUMERS %s %s", ft.stream, ft.group);
    bool found = false;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *v = ru_h_reply_kv(r->element[i], "name");
        found |= v && v->str && strcmp(v->str, name) == 0;
    }
    freeReplyObject(r);
    return found;
}

/* XGROUP DELCONSUMER of a consumer with nothing pending (a lone consumer has no pending
 * list; a shared-group consumer stopped cleanly leaves none). */
static void del_consumer(const char *name)
{
    long long pending = consumer_pending(name);
    cr_assert_eq(pending, 0, "consumer %s still has %lld entries pending: not removed", name,
                 pending);
    long long n = ru_h_redis_int(ft.r, "XGROUP DELCONSUMER %s %s %s", ft.stream, ft.group, name);
    cr_assert_eq(n, 0, "XGROUP DELCONSUMER %s dropped %lld pending entries", name, n);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* No malformed entry was copied to the dead-letter stream twice so far (each copy names
 * its entry in rollupd.entry_id): checked after every operator action, which it names
 * when it fails, with the entries copied twice and their copies' ids. */
static void check_dead_once(const char *after)
{
    char dead[160];
    snprintf(dead, sizeof(dead), "%s:dead", ft.stream);
    redisReply *r = ru_h_redis_cmd(ft.r, "XRANGE %s - +", dead);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "XRANGE %s", dead);
    char **ids = ru_xcalloc(r->elements + 1, sizeof(char *));
    size_t n = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i], *v = ru_h_reply_kv(e->element[1], "rollupd.entry_id");
        if (v && v->str)
            ids[n++] = ru_xstrdup(v->str);
    }
    qsort(ids, n, sizeof(char *), cmp_str);
    struct ru_buf twice = RU_BUF_INIT;
    int dups = 0;
    for (size_t i = 1; i < n; i++) {
        if (strcmp(ids[i], ids[i - 1]) != 0 || dups++ >= 5)
            continue;
        ru_buf_printf(&twice, "\n  entry %s, copies:", ids[i]);
        for (size_t k = 0; k < r->elements; k++) {
            const redisReply *e = r->element[k],
                             *v = ru_h_reply_kv(e->element[1], "rollupd.entry_id");
            if (v && v->str && strcmp(v->str, ids[i]) == 0)
                ru_buf_printf(&twice, " %s", e->element[0]->str);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    freeReplyObject(r);
    if (dups > 0) {
        info("entries copied twice to the dead-letter stream after %s:%s", after, twice.p);
        cr_assert_fail("%s: %d malformed entries copied twice to %s after %s:%s", ft.name, dups,
                       dead, after, twice.p);
    }
    ru_buf_free(&twice);
}

/* 1. The consumer moves to another host (another consumer name, same configuration) and
 * back. Stopped cleanly, it is removed before the other host starts. Killed, what it held
 * must reach PostgreSQL once: a shared-group consumer's pending entries stay its own, so
 * its name comes back afterwards and replays them; a lone consumer has no pending list,
 * the group's checkpoint tells the next host where to read again, and the next host
 * refuses to read beside the killed one until the operator removes it, as its error
 * says. */
static void op_host_move(struct ru_h_daemon *a, bool lone, bool hard)
{
    reads_on(a, OP_SLICE / 2, "host-a before the move");
    if (hard) {
        kill9(a);
    } else {
        stop_one(a, "host-a moving away");
        del_consumer("host-a");
    }
    struct ru_h_cfg kb = op_cfg("host-b", lone);
    struct ru_h_daemon *b = op_start(1, &kb);
    if (hard && lone) {
        struct dwant w = {.d = b, .text = "is also in group"};
        if (!wait_fed(c_reason, &w, 30000))
            FAIL("host-b did not refuse to read beside the killed host-a: %s: %s", w.s.health,
                 w.s.reason);
        cr_assert_eq(w.s.consumed, 0, "host-b read beside host-a");
        del_consumer("host-a");
    }
    reads_on(b, OP_SLICE / 2, "host-b");
    stop_one(b, "host-b");
    del_consumer("host-b");
    ru_h_daemon_restart(a);
    reads_on(a, 1, "host-a back");
}

/* A process that must not read beside a: it waits for the group's lock, reads nothing
 * and does not join the group while a reads on. */
static void waits_beside(struct ru_h_daemon *a, struct ru_h_daemon *x, const char *what)
{
    if (!wait_fed(c_lock_waiter, NULL, 30000))
        FAIL("%s: not waiting for a lock", what);
    reads_on(a, OP_SLICE / 2, what);
    struct snap s;
    if (!snap_get(x, &s))
        FAIL("%s: no status", what);
    if (s.consumed != 0 || s.redis_up || consumer_listed("intruder"))
        FAIL("%s: it reads (events_consumed %lld, redis_connected %d)", what, s.consumed,
             s.redis_up);
}

/* 2. A second process started beside the running one: another consumer name of the same
 * mode (shared-group: it shares the group; lone: it waits), then one of the other mode
 * (it waits), each stopped and removed. */
static void op_intruders(struct ru_h_daemon *a, bool lone)
{
    struct ru_h_cfg k = op_cfg("intruder", lone);
    struct ru_h_daemon *x = op_start(3, &k);
    if (lone) {
        waits_beside(a, x, "a second lone consumer beside the lone consumer");
    } else {
        reads_on(x, OP_SLICE / 10, "a second shared-group consumer");
        reads_on(a, OP_SLICE / 10, "host-a beside a second shared-group consumer");
    }
    stop_one(x, "the intruder of the same mode");
    del_consumer("intruder");
    k = op_cfg("intruder", !lone);
    x = op_start(3, &k);
    waits_beside(a, x,
                 lone ? "a shared-group instance beside the lone consumer"
                      : "a lone consumer beside the shared-group consumer");
    stop_one(x, "the intruder of the other mode");
    del_consumer("intruder");
}

/* 3. A second process with the consumer name in use (its own status socket) gives up
 * with status 1; started again, it waits for the lock, the first one's PostgreSQL
 * session is terminated: the second takes the consumer over, the first exits 1. Then the
 * running process's session alone is terminated: it resumes by itself. Returns the
 * process that runs on. */
static struct ru_h_daemon *op_same_name(struct ru_h_daemon *a, const struct ru_h_cfg *ka)
{
    struct ru_h_daemon *a2 = a == &ft.d[0] ? &ft.d[2] : &ft.d[0];
    char *text = ru_h_config(ka);
    ru_h_daemon_spawn(a2, text, NULL);
    free(text);
    if (ft.nd < 3)
        ft.nd = 3;
    int64_t t = ru_mono_ms();
    wait_exit_status(a2, 1, 20000, "a second process with the consumer name in use");
    if (!log_has(a2, "is in use by another rollupd", NULL))
        FAIL("the second process did not say why it gave up");
    info("the second process gave up after %lld ms", (long long)(ru_mono_ms() - t));

    ru_h_daemon_restart(a2);
    if (!wait_fed(c_lock_waiter, NULL, 20000))
        FAIL("the second process is not waiting for the consumer's lock");
    note_rss(a);
    terminate_lock_holders();
    t = ru_mono_ms();
    wait_exit_status(a, 1, 40000, "the first process after its session was taken over");
    info("the first process exited %lld ms after its session was terminated",
         (long long)(ru_mono_ms() - t));
    reads_on(a2, OP_SLICE / 2, "the process that took the consumer over");

    struct dwant w = {.d = a2, .text = "reading resumes"};
    int resumed = 0;
    log_has(a2, w.text, &resumed);
    w.n = resumed + 1;
    terminate_lock_holders();
    if (!wait_fed(c_log_count, &w, 40000) || !ru_h_daemon_running(a2))
        FAIL("reading did not resume after the session was terminated");
    reads_on(a2, OP_SLICE / 2, "after the session was terminated");
    return a2;
}

/* 4. Redis restarted without persistence. It loses the stream, the group and the dead
 * letters: data Redis itself loses is not rollupd's to recover, so this happens only once
 * the feed is paused and every entry was delivered, committed and acknowledged (the
 * dead-letter copies are checked and counted as they were). The producer writes again
 * before rollupd comes back with redis.start = "$": the group rollupd knew is created
 * again after its checkpoint, not at the end of the stream. */
static void op_redis_empty(struct ru_h_daemon *a, struct ru_h_cfg *ka)
{
    feed_pause();
    wait_settled();
    stop_one(a, "host-a before Redis restarted empty");
    ft.dead_gone += check_dead_letters();
    testenv("restart-redis-empty");
    ft.redis_restarts++;
    redis_reconnect();
    /* after ids ahead of the clock, the producer that wrote them goes on writing ids of
     * its own: entries a fresh stream numbered from the clock would sit below rollupd's
     * checkpoint, where the group is created again, and would never be read (a limit,
     * not tested here) */
    long long v = feed(OP_SLICE, 0, ft.id_offset);
    ka->start = "$";
    struct ru_h_cfg k = *ka;
    k.socket = a->sock;
    char *text = ru_h_config(&k);
    ru_h_daemon_rewrite_config(a, text);
    free(text);
    ka->start = NULL;
    ru_h_daemon_restart(a);
    struct dwant w = {.d = a, .n = v};
    if (!ru_h_wait(c_consumed, &w, 60000))
        FAIL("the entries written after Redis came back empty were not read: %lld of "
             "%lld",
             w.s.consumed, v);
    feed_on();
}

/* 5. Slices with explicit ids a day ahead of the clock, kill -9 during and between them
 * (the entries after them follow at that millisecond): a lone consumer's recovery finds
 * the dead-letter copies it wrote by the position stored with its checkpoint. */
static void op_ids_ahead(struct ru_h_daemon *a)
{
    feed_pause();
    ft.id_offset = OP_AHEAD;
    for (int i = 0; i < 2; i++) {
        struct ru_h_proc p;
        feed_start(&p, ft.oracle, OP_SLICE, OP_RATE, OP_AHEAD);
        ru_h_sleep_ms(rnd_between(200, 1500)); /* the random moment (pacing the fault) */
        kill9(a);
        ru_h_daemon_restart(a);
        feed_finish(&p);
        /* killed again once the slice is delivered, committed or not */
        if (!ru_h_wait(c_delivered, NULL, 60000))
            FAIL("the slice of ids ahead of the clock was not delivered in 60 s");
        kill9(a);
        ru_h_daemon_restart(a);
    }
    feed_on();
}

/* What operators do, under a continuous feed, `scale` rounds of each: host moves (clean
 * and killed), intruders, a second process with the same name and terminated
 * PostgreSQL sessions, Redis restarted empty, ids ahead of the clock. */
static void operator_actions(const char *name, bool lone)
{
    ft_begin(name);
    int rounds = scale();
    ft.pg = ru_h_pg_connect(ft.ci);
    struct ru_h_cfg ka = op_cfg("host-a", lone);
    struct ru_h_daemon *a = op_start(0, &ka);
    feed_on();
    for (int r = 1; r <= rounds; r++) {
        info("round %d of %d: host move and back after SIGTERM", r, rounds);
        op_host_move(a, lone, false);
        check_dead_once("a host move after SIGTERM");
        info("round %d: host move and back after kill -9", r);
        op_host_move(a, lone, true);
        check_dead_once("a host move after kill -9");
        info("round %d: intruders", r);
        op_intruders(a, lone);
        check_dead_once("intruders");
        info("round %d: the same consumer name twice, PostgreSQL sessions terminated", r);
        a = op_same_name(a, &ka);
        check_dead_once("a same-name takeover and PostgreSQL sessions terminated");
        info("round %d: Redis restarted empty", r);
        op_redis_empty(a, &ka);
        info("round %d: ids ahead of the clock", r);
        op_ids_ahead(a);
        check_dead_once("ids ahead of the clock with kill -9");
    }
    feed_pause();
    wait_settled();
    stop_all();
    cr_assert_eq(ru_h_xpending(ft.r, ft.stream, ft.group), 0);
    compare();
    check_dead_letters();
    ft.passed = true;
}

Test(faults, operator_actions)
{
    operator_actions("operator_actions", false);
}

Test(faults, operator_actions_lone)
{
    operator_actions("operator_actions_lone", true);
}

/* ------------------------------------------------------------------ main */

int main(int argc, char *argv[])
{
    struct criterion_test_set *tests = criterion_initialize();
    int result = 0;
    if (criterion_handle_args(argc, argv, true)) {
        /* the tests restart the shared servers: never two at a time */
        criterion_options.jobs = 1;
        if (criterion_options.timeout <= 0)
            criterion_options.timeout = 300 + 150 * scale();
        result = !criterion_run_all_tests(tests);
    }
    criterion_finalize(tests);
    return result;
}
