#include "e2e.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>

struct e2e_ctx T;

void setup(void)
{
    memset(&T, 0, sizeof(T));
    T.t0 = ru_mono_ms();
    ru_h_names(T.stream, T.group, T.dbname, sizeof(T.stream));
    snprintf(T.dead, sizeof(T.dead), "%s:dead", T.stream);
    ru_h_tmp_path(T.oracle, sizeof(T.oracle), "oracle.tsv");
    ru_h_fresh_db(T.ci, sizeof(T.ci));
    T.pg = ru_h_pg_connect(T.ci);
    T.r = ru_h_redis();
}

void track(struct ru_h_daemon *d)
{
    cr_assert_lt(T.nd, MAX_DAEMONS);
    T.d[T.nd++] = d;
}

/* A config for this test's stream, group and database. */
struct ru_h_cfg base_cfg(int flush_ms)
{
    struct ru_h_cfg k = {
        .stream = T.stream, .group = T.group, .conninfo = T.ci, .flush_interval_ms = flush_ms};
    return k;
}

void start_daemon(struct ru_h_daemon *d, const struct ru_h_cfg *k)
{
    char *text = ru_h_config(k);
    ru_h_daemon_start(d, text);
    free(text);
    track(d);
}

void start_connected(struct ru_h_daemon *d, const struct ru_h_cfg *k)
{
    start_daemon(d, k);
    wait_connected(d);
}

void start_kill9_feed(struct ru_h_proc *lg, long long n, int seed)
{
    ru_h_loadgen_start(lg,
                       "-s %s -n %lld --rate 20000 --seed %d --start-ts %lld --hours 4"
                       " --invalid-frac 0.005 --oracle %s --quiet",
                       T.stream, n, seed, H0, T.oracle);
}

void kill9(struct ru_h_daemon *d)
{
    ru_h_daemon_kill(d, SIGKILL);
    CHECK(ru_h_daemon_wait_exit(d, 10000) == 128 + SIGKILL, "rollupd did not die of SIGKILL");
}

/* Rewrites d's config file from k (send SIGHUP or restart to use it), keeping d's socket. */
void rewrite_config(struct ru_h_daemon *d, struct ru_h_cfg k)
{
    k.socket = d->sock;
    char *text = ru_h_config(&k);
    ru_h_daemon_rewrite_config(d, text);
    free(text);
}

/* base_cfg for a lone consumer (redis.lone_consumer = true). */
struct ru_h_cfg lone_cfg(int flush_ms)
{
    struct ru_h_cfg k = base_cfg(flush_ms);
    k.redis_extra = "lone_consumer = true;";
    return k;
}

/* Stops every daemon still running with SIGTERM (each must exit 0), deletes the test's
 * streams (a failed test keeps them for inspection), closes connections and logs how long
 * the test took. */
void finish(const char *name)
{
    for (int i = 0; i < T.nd; i++) {
        if (!ru_h_daemon_running(T.d[i]))
            continue;
        int rc = ru_h_daemon_stop(T.d[i]);
        CHECK(rc == 0, "%s: rollupd #%d exited with status %d after SIGTERM", name, i, rc);
    }
    if (T.r)
        freeReplyObject(ru_h_redis_cmd(T.r, "DEL %s %s", T.stream, T.dead));
    if (T.pg)
        PQfinish(T.pg);
    if (T.r)
        redisFree(T.r);
    T.pg = NULL;
    T.r = NULL;
    cr_log_info("e2e/%s: %.1f s", name, (double)(ru_mono_ms() - T.t0) / 1000.0);
}

/* ------------------------------------------------------------------ observing */

bool json_bool(const json_t *o, const char *key)
{
    return json_is_true(json_object_get(o, key));
}

long long json_ll(const json_t *o, const char *key)
{
    long long v = -1;
    if (!ru_h_json_int(o, key, &v))
        return -1;
    return v;
}

/* One status answer of d; ok = false when it does not answer. */
struct st status_of(struct ru_h_daemon *d)
{
    struct st s = {0};
    if (!ru_h_daemon_running(d))
        return s;
    json_t *j = ru_h_status(d->sock);
    if (j == NULL)
        return s;
    s.ok = true;
    s.redis = json_bool(j, "redis_connected");
    s.pg = json_bool(j, "postgres_connected");
    s.in_flush = json_bool(j, "flush_in_progress");
    s.lag_known = json_is_integer(json_object_get(j, "group_lag"));
    s.consumed = json_ll(j, "events_consumed");
    s.flushed = json_ll(j, "events_flushed");
    s.invalid = json_ll(j, "events_invalid");
    s.dead_lettered = json_ll(j, "events_dead_lettered");
    s.trimmed = json_ll(j, "events_trimmed");
    s.pending = json_ll(j, "pending_events");
    s.flushes = json_ll(j, "flushes");
    s.rows = json_ll(j, "rows_written");
    s.failures = json_ll(j, "flush_failures");
    s.raw_written = json_ll(j, "raw_rows_written");
    s.raw_rejected = json_ll(j, "raw_rows_rejected");
    json_decref(j);
    return s;
}

struct ru_h_group group_info(void)
{
    return ru_h_group_info(T.r, T.stream, T.group);
}

void observe(struct obs *o)
{
    memset(o, 0, sizeof(*o));
    for (int i = 0; i < T.nd; i++) {
        struct st s = status_of(T.d[i]);
        if (!s.ok)
            continue;
        o->answered++;
        o->in_flush |= s.in_flush;
        o->consumed += s.consumed;
        o->flushed += s.flushed;
        o->invalid += s.invalid;
        o->pending += s.pending;
        o->flushes += s.flushes;
    }
    o->g = group_info();
    o->xlen = ru_h_xlen(T.r, T.stream);
    o->dead_len = ru_h_xlen(T.r, T.dead);
}

const char *obs_text(const struct obs *o)
{
    static char buf[512];
    snprintf(buf, sizeof(buf),
             "daemons answering=%d consumed=%lld flushed=%lld invalid=%lld pending_events=%lld"
             " flushes=%lld flush_in_progress=%d | XLEN=%lld dead XLEN=%lld | group %s"
             " pending=%lld entries-read=%lld lag=%lld",
             o->answered, o->consumed, o->flushed, o->invalid, o->pending, o->flushes,
             (int)o->in_flush, o->xlen, o->dead_len, o->g.found ? "found" : "MISSING", o->g.pending,
             o->g.entries_read, o->g.lag);
    return buf;
}

/* This process's daemons have flushed or dead-lettered target entries, nothing is
 * pending in the group and nothing waits in memory. */
bool cond_flushed(void *arg)
{
    struct want *w = arg;
    observe(&w->o);
    return w->o.answered == T.nd && w->o.flushed + w->o.invalid >= w->target && w->o.g.found &&
           w->o.g.pending == 0 && w->o.pending == 0;
}

/* The stream holds target entries, all delivered to the group (entries-read == XLEN),
 * none pending, and the daemons hold nothing in memory (works across restarts, where
 * the status counters start again from zero). */
bool cond_drained(void *arg)
{
    struct want *w = arg;
    observe(&w->o);
    return w->o.answered >= 1 && w->o.xlen >= w->target && w->o.g.found &&
           w->o.g.entries_read == w->o.xlen && (w->o.g.lag == 0 || w->o.g.lag == -1) &&
           w->o.g.pending == 0 && w->o.pending == 0 && !w->o.in_flush;
}

void wait_flushed(long long target, const char *what)
{
    struct want w = {.target = target};
    bool ok = ru_h_wait(cond_flushed, &w, WAIT_MS);
    CHECK(ok,
          "%s: not everything was flushed and acknowledged within %d ms (want flushed+invalid"
          " >= %lld, group pending 0, pending_events 0); last seen: %s",
          what, WAIT_MS, target, obs_text(&w.o));
}

void wait_drained(long long target, const char *what)
{
    struct want w = {.target = target};
    bool ok = ru_h_wait(cond_drained, &w, WAIT_MS);
    CHECK(ok,
          "%s: the stream was not drained within %d ms (want XLEN >= %lld, entries-read =="
          " XLEN, lag 0, group pending 0, pending_events 0); last seen: %s",
          what, WAIT_MS, target, obs_text(&w.o));
}

bool cond_connected(void *arg)
{
    struct st s = status_of(arg);
    return s.ok && s.redis && s.pg;
}

/* Waits until d has its PostgreSQL set-up done and its group handshake (so the group
 * exists and XPENDING can be asked). */
void wait_connected(struct ru_h_daemon *d)
{
    CHECK(ru_h_wait(cond_connected, d, 30000),
          "rollupd (pid %d) did not report redis_connected and postgres_connected within 30 s",
          (int)d->pid);
}

/* Two daemons of one group, consumers c1 and c2, both connected. */
void start_pair(struct ru_h_daemon *d1, struct ru_h_daemon *d2, int flush_ms)
{
    struct ru_h_cfg k1 = base_cfg(flush_ms), k2 = base_cfg(flush_ms);
    k1.consumer = "c1";
    k2.consumer = "c2";
    start_daemon(d1, &k1);
    start_daemon(d2, &k2);
    wait_connected(d1);
    wait_connected(d2);
}

/* ------------------------------------------------------------------ oracle checks */

/* Oracle diff of route_analytics_hourly (optionally filtered) must be 0. */
void check_oracle(const char *what, const char *where)
{
    long long d = ru_h_oracle_diff_ex(T.pg, "oracle_raw", "route_analytics_hourly", where);
    if (d != 0) {
        ru_h_oracle_print_diff_ex(T.pg, "oracle_raw", "route_analytics_hourly", where);
        FAIL("%s: route_analytics_hourly differs from genonaut's aggregation of the oracle"
             " in %lld rows (both directions; rows printed on stderr)",
             what, d);
    }
}

/* Number of groups in genonaut's aggregation of oracle_raw. */
long long oracle_groups(void)
{
    return ru_h_oracle_groups(T.pg, "oracle_raw");
}

long long hourly_rows(void)
{
    return ru_h_pg_int(T.pg, "SELECT count(*) FROM route_analytics_hourly");
}

long long hourly_total(void)
{
    return ru_h_pg_int(T.pg, "SELECT coalesce(sum(total_requests), 0) FROM route_analytics_hourly");
}

/* Sum of the events recorded in rollupd's checkpoint rows of this stream and group. */
long long checkpoint_events(void)
{
    return ru_h_checkpoint_events(T.pg, T.stream, T.group);
}

/* The row count and the hourly row count must match the oracle exactly. */
void check_rows_match_oracle(const char *what)
{
    check_oracle(what, NULL);
    long long rows = hourly_rows(), groups = oracle_groups();
    CHECK(rows == groups, "%s: route_analytics_hourly has %lld rows, the oracle %lld groups", what,
          rows, groups);
}

/* The oracle loaded from its file has valid events; the hourly table and the checkpoint
 * count each exactly once, and every row matches genonaut's SQL. */
void check_exactly_once(const char *oracle, long long valid, const char *what)
{
    cr_assert_eq(ru_h_oracle_load(T.pg, oracle), valid);
    long long total = hourly_total(), ck = checkpoint_events();
    CHECK(total == valid, "sum(total_requests) = %lld, want %lld (lost or doubled events)", total,
          valid);
    CHECK(ck == valid, "rollupd_checkpoint counts %lld events committed, want %lld", ck, valid);
    check_rows_match_oracle(what);
}

/* ------------------------------------------------------------------ more observing */

/* Runs a command without arguments to format (split on spaces); must answer +OK. */
void redis_ok(const char *cmd)
{
    redisReply *r = ru_h_redis_cmd(T.r, cmd);
    bool ok = r->type == REDIS_REPLY_STATUS;
    char err[256];
    snprintf(err, sizeof(err), "%s", r->str ? r->str : "?");
    freeReplyObject(r);
    CHECK(ok, "redis %s: %s", cmd, err);
}

/* A lone consumer reads with NOACK: events wait in memory while the group's pending list
 * stays empty. */
bool cond_pg_up(void *arg)
{
    struct st s = status_of(arg);
    return s.ok && s.pg;
}

bool cond_in_memory(void *arg)
{
    struct st s = status_of(arg);
    return s.ok && s.pending >= 500;
}

long long lone_rows(void)
{
    return ru_h_pg_intf(T.pg, "SELECT count(*) FROM rollupd_checkpoint WHERE grp = '%s' AND lone",
                        T.group);
}

bool cond_checkpointed(void *arg)
{
    return checkpoint_events() >= *(const long long *)arg;
}

/* A lone consumer leaves nothing in the pending list, so a drained group says nothing
 * about a restarted daemon that has not read its entries again yet: wait for the
 * checkpoint to count every valid event as well. */
void wait_lone_drained(long long written, long long valid, const char *what)
{
    CHECK(ru_h_wait(cond_checkpointed, &valid, WAIT_MS),
          "%s: rollupd_checkpoint counts %lld events after %d ms, want %lld", what,
          checkpoint_events(), WAIT_MS, valid);
    wait_drained(written, what);
}

/* A lone consumer's dead letter has no pending entry to wait for: the group is drained
 * before the copy of the last invalid entry is written. */
bool cond_dead_letters(void *arg)
{
    return ru_h_xlen(T.r, T.dead) >= *(const long long *)arg;
}

void check_dead_letters(long long want, const char *what)
{
    ru_h_wait(cond_dead_letters, &want, 10000);
    long long dead = ru_h_xlen(T.r, T.dead);
    CHECK(dead == want,
          "%s: %s has %lld entries, loadgen wrote %lld invalid (each must be dead-lettered"
          " exactly once)",
          what, T.dead, dead, want);
}

void redis_cmd_ok(const char *fmt, const char *a, const char *b, const char *c)
{
    redisReply *r = ru_h_redis_cmd(T.r, fmt, a, b, c);
    bool ok = r->type != REDIS_REPLY_ERROR;
    char err[256];
    snprintf(err, sizeof(err), "%s", r->str ? r->str : "?");
    freeReplyObject(r);
    CHECK(ok, "redis %s: %s", fmt, err);
}

bool cond_consumed(void *arg)
{
    struct want *w = arg;
    observe(&w->o);
    return w->o.consumed >= w->target;
}

const char *const kill_names[K_COUNT] = {"after reading", "during a flush", "right after start",
                                         "between COMMIT and XACK (Redis paused)",
                                         "after three commits"};

bool cond_kill_moment(void *arg)
{
    struct kill_arg *a = arg;
    struct st s = status_of(a->d);
    if (!s.ok)
        return false;
    switch (a->at) {
    case K_CONSUMED:
        return s.consumed >= 500;
    case K_IN_FLUSH:
        return s.in_flush;
    case K_AT_START:
        return true;
    case K_ACK_STUCK:
        return s.pending > 0 && s.pg && s.redis;
    case K_FLUSHES_3:
        return s.flushes >= 3;
    default:
        return true;
    }
}
