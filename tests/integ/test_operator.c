/* Exactly once under what operators do (Criterion suite "operator"): a consumer moved to
 * another host and back, a shared-group instance started beside a lone consumer, a mode
 * switched, a second process with the same consumer name while the first one's
 * PostgreSQL session is lost, a group lost with Redis' data, stream ids ahead of Redis'
 * clock, a server that runs without synchronous commit, a checkpoint that went backwards.
 *
 * Each test feeds events with rollupd-loadgen (its oracle file collects every valid event
 * of every feed) or by hand, and ends with every event counted exactly once: the hourly
 * table equals genonaut's SQL over the oracle, and rollupd_checkpoint counts each once. */
#include "e2e.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>

/* What a test has fed: every valid event in one oracle file, the totals of all feeds. */
struct fed {
    char oracle[RU_H_PATH];
    long long valid, written, invalid;
};

/* setup() and an empty feed record. */
static void begin(struct fed *f)
{
    setup();
    memset(f, 0, sizeof(*f));
    ru_h_tmp_path(f->oracle, sizeof(f->oracle), "oracle.tsv");
}

/* begin(), and one shared-group consumer reading (flush every 200 ms). */
static void begin_running(struct fed *f, struct ru_h_daemon *a)
{
    begin(f);
    struct ru_h_cfg k = base_cfg(200);
    start_daemon(a, &k);
    wait_connected(a);
}

/* One feed of n events (1 % invalid), added to the oracle file and the totals. */
static void feed(struct fed *f, long long n, int seed)
{
    f->valid += ru_h_loadgen("-s %s -n %lld --seed %d --start-ts %lld --hours 2"
                             " --invalid-frac 0.01 --oracle %s --quiet",
                             T.stream, n, seed, H0, f->oracle);
    const struct ru_h_lg_result *res = ru_h_loadgen_last();
    f->written += res->written;
    f->invalid += res->invalid;
}

static void wait_counted(long long valid, long long written, const char *what);

/* A feed, then every valid event fed so far committed. */
static void feed_counted(struct fed *f, long long n, int seed, const char *what)
{
    feed(f, n, seed);
    wait_counted(f->valid, f->written, what);
}

static void del_consumer(const char *name)
{
    redis_cmd_ok("XGROUP DELCONSUMER %s %s %s", T.stream, T.group, name);
}

static struct ru_h_cfg named(struct ru_h_cfg k, const char *consumer)
{
    k.consumer = consumer;
    return k;
}

/* Stops d with SIGTERM; it must exit 0 (final flush, nothing left behind). */
static void stop_clean(struct ru_h_daemon *d, const char *what)
{
    int rc = ru_h_daemon_stop(d);
    CHECK(rc == 0, "%s: rollupd exited with status %d after SIGTERM", what, rc);
}

static bool cond_lone_drained_here(void *arg)
{
    struct want *w = arg;
    observe(&w->o);
    return checkpoint_events() >= w->target && w->o.pending == 0 && !w->o.in_flush;
}

/* Every valid event fed so far is committed (a lone consumer leaves no pending list). */
static void wait_counted(long long valid, long long written, const char *what)
{
    struct want w = {.target = valid};
    CHECK(ru_h_wait(cond_lone_drained_here, &w, WAIT_MS),
          "%s: rollupd_checkpoint counts %lld events after %d ms, want %lld; %s", what,
          checkpoint_events(), WAIT_MS, valid, obs_text(&w.o));
    wait_drained(written, what);
}

static void check_all(const struct fed *f, const char *what)
{
    check_dead_letters(f->invalid, what);
    check_exactly_once(f->oracle, f->valid, what);
}

/* ------------------------------------------------------------------ 1: the group owns it */

/* A lone consumer moved to another host (another consumer name) and back: what the other
 * host counted is the group's, not to be read again by the first one's recovery; the
 * first host killed with events in memory leaves them to the second. */
Test(operator, lone_host_move_and_back, .timeout = 300)
{
    struct fed f;
    begin(&f);
    struct ru_h_daemon a, b;
    struct ru_h_cfg ka = named(lone_cfg(200), "host-a"), kb = named(lone_cfg(200), "host-b");

    start_connected(&a, &ka);
    feed_counted(&f, 2000, 61, "host a, first run");
    stop_clean(&a, "host a, first run");
    del_consumer("host-a");

    start_connected(&b, &kb);
    feed_counted(&f, 5000, 62, "host b");
    stop_clean(&b, "host b");
    del_consumer("host-b");

    /* back on host a, then killed with events only in memory */
    ka.flush_interval_ms = 600000;
    rewrite_config(&a, ka);
    ru_h_daemon_restart(&a);
    wait_connected(&a);
    feed(&f, 3000, 63);
    struct want w = {.target = 2000};
    CHECK(ru_h_wait(cond_consumed, &w, 20000), "host a: nothing taken in: %s", obs_text(&w.o));
    kill9(&a);
    del_consumer("host-a");

    /* host b takes over what host a left in memory */
    ru_h_daemon_restart(&b);
    wait_counted(f.valid, f.written, "host b after host a's kill -9");
    stop_clean(&b, "host b, second run");
    del_consumer("host-b");

    ka.flush_interval_ms = 200;
    rewrite_config(&a, ka);
    ru_h_daemon_restart(&a);
    feed_counted(&f, 100, 64, "host a, last run");
    check_all(&f, "lone_host_move_and_back");
    CHECK(lone_rows() == 1, "want one group row with the lone mark, found %lld", lone_rows());
    finish("lone_host_move_and_back");
}

static bool cond_waits_for_lone(void *arg)
{
    struct ru_h_daemon *d = arg;
    if (!ru_h_daemon_running(d))
        return false;
    json_t *j = ru_h_status(d->sock);
    const char *e = j ? json_string_value(json_object_get(j, "postgres_last_error")) : NULL;
    bool waits = e && strstr(e, "a lone consumer reads group") &&
                 !json_is_true(json_object_get(j, "redis_connected"));
    json_decref(j);
    return waits;
}

static long long group_consumers(void)
{
    redisReply *r = ru_h_redis_cmd(T.r, "XINFO CONSUMERS %s %s", T.stream, T.group);
    long long n = r->type == REDIS_REPLY_ARRAY ? (long long)r->elements : -1;
    freeReplyObject(r);
    return n;
}

/* A shared-group instance started beside a running lone consumer does not read; once the
 * lone consumer stops it takes over, and after it is stopped and removed the lone
 * consumer counts none of its events again. */
Test(operator, shared_instance_beside_lone, .timeout = 300)
{
    struct fed f;
    begin(&f);
    struct ru_h_daemon a, s;
    struct ru_h_cfg ka = named(lone_cfg(200), "lone"), ks = named(base_cfg(200), "shared");

    start_connected(&a, &ka);
    feed_counted(&f, 2000, 71, "lone consumer");

    start_daemon(&s, &ks);
    CHECK(ru_h_wait(cond_waits_for_lone, &s, 30000),
          "the shared-group instance did not report that it waits for the lone consumer");
    CHECK(ru_h_status_int(&s, "events_consumed") == 0 && group_consumers() == 1,
          "the shared-group instance read beside the lone consumer");
    feed_counted(&f, 1000, 72, "lone consumer with a shared instance waiting");

    stop_clean(&a, "lone consumer");
    wait_connected(&s);
    feed_counted(&f, 5000, 73, "shared-group instance");
    stop_clean(&s, "shared-group instance");
    del_consumer("shared");

    ru_h_daemon_restart(&a);
    feed_counted(&f, 100, 74, "lone consumer again");
    check_all(&f, "shared_instance_beside_lone");
    finish("shared_instance_beside_lone");
}

/* A lone consumer stopped cleanly, a shared-group instance started, then the old one
 * restarted as a shared-group consumer: it reads at once (nothing to recover) and counts
 * nothing twice. */
Test(operator, lone_to_shared_switch, .timeout = 300)
{
    struct fed f;
    begin(&f);
    struct ru_h_daemon a, s;
    struct ru_h_cfg ka = named(lone_cfg(200), "a"), ks = named(base_cfg(200), "s");

    start_connected(&a, &ka);
    feed_counted(&f, 2000, 81, "lone consumer");
    stop_clean(&a, "lone consumer");

    start_connected(&s, &ks);
    feed_counted(&f, 5000, 82, "shared-group instance");
    stop_clean(&s, "shared-group instance");

    rewrite_config(&a, named(base_cfg(200), "a"));
    ru_h_daemon_restart(&a);
    wait_connected(&a);
    feed_counted(&f, 100, 83, "a as a shared-group consumer");
    CHECK(!ru_h_log_has(&a, "did not stop cleanly"), "a refused with a false reason");
    check_all(&f, "lone_to_shared_switch");
    CHECK(lone_rows() == 0, "the group's lone mark was not cleared");
    finish("lone_to_shared_switch");
}

/* ------------------------------------------------------------------ 2: one name, one owner */

static bool cond_exited(void *arg)
{
    return !ru_h_daemon_running(arg);
}

/* A second process with a consumer name in use refuses with an error that says so. */
Test(operator, same_name_refused, .timeout = 120)
{
    setup();
    struct ru_h_daemon a, b;
    struct ru_h_cfg k = base_cfg(200);
    start_connected(&a, &k);
    start_daemon(&b, &k); /* same consumer, its own status socket */
    CHECK(ru_h_wait(cond_exited, &b, 30000), "the second process did not give up within 30 s");
    CHECK(ru_h_daemon_wait_exit(&b, 1000) == 1, "the second process did not exit with status 1");
    CHECK(ru_h_log_has(&b, "is in use by another rollupd"), "the second process did not say why");
    CHECK(ru_h_status_int(&b, "events_consumed") < 0 && ru_h_status_int(&a, "events_consumed") >= 0,
          "the first process stopped answering");
    finish("same_name_refused");
}

static bool cond_lock_waiter(void *arg)
{
    (void)arg;
    return ru_h_pg_lock_waiters(T.pg) > 0;
}

/* Two processes with one consumer name under load: the second waits for the lock; the
 * first one's PostgreSQL session is terminated, the second takes the consumer over, the
 * first stops reading at once and exits; nothing is lost or counted twice. */
static void same_name_takeover(bool lone, const char *what)
{
    struct fed f;
    begin(&f);
    struct ru_h_daemon a, b;
    struct ru_h_cfg k = lone ? lone_cfg(500) : base_cfg(500);
    start_connected(&a, &k);
    struct ru_h_proc lg;
    ru_h_loadgen_start(&lg,
                       "-s %s -n 60000 --rate 15000 --seed 91 --start-ts %lld --hours 3"
                       " --invalid-frac 0.005 --oracle %s --quiet",
                       T.stream, H0, f.oracle);
    CHECK(ru_h_wait(cond_in_memory, &a, 20000), "no events in memory within 20 s");
    start_daemon(&b, &k);
    CHECK(ru_h_wait(cond_lock_waiter, NULL, 20000),
          "the second process is not waiting for the consumer's lock");
    CHECK(ru_h_pg_terminate_lock_holders(T.pg) >= 1,
          "no session of the first process to terminate");
    CHECK(ru_h_wait(cond_exited, &a, 30000),
          "the first process went on after its session and lock were lost");
    CHECK(ru_h_daemon_wait_exit(&a, 1000) == 1, "the first process did not exit with status 1");
    CHECK(ru_h_log_has(&a, "is in use by another rollupd") ||
              ru_h_log_has(&a, "took the consumer over") || ru_h_log_has(&a, "took it over"),
          "the first process did not say why it stopped");
    f.valid = ru_h_loadgen_finish(&lg);
    f.written = ru_h_loadgen_last()->written;
    f.invalid = ru_h_loadgen_last()->invalid;
    wait_counted(f.valid, f.written, what);
    check_all(&f, what);
    finish(what);
}

Test(operator, same_name_session_lost_shared, .timeout = 300)
{
    same_name_takeover(false, "same_name_session_lost_shared");
}

Test(operator, same_name_session_lost_lone, .timeout = 300)
{
    same_name_takeover(true, "same_name_session_lost_lone");
}

/* ------------------------------------------------------------------ 3: the group lost */

/* start = "$": the group vanished with Redis' data (a restart without persistence) and
 * the producer wrote before rollupd came back. The group rollupd knew is created again
 * after its checkpoint, not at the end of the stream. */
Test(operator, group_lost_with_start_dollar, .timeout = 240)
{
    struct fed f;
    begin(&f);
    struct ru_h_daemon a;
    struct ru_h_cfg k = base_cfg(200);
    k.start = "$";
    start_connected(&a, &k);
    feed_counted(&f, 1000, 101, "first feed");
    stop_clean(&a, "first run");
    freeReplyObject(ru_h_redis_cmd(T.r, "DEL %s %s", T.stream, T.dead));
    f.written = f.invalid = 0; /* the stream and its dead letters start again */
    feed(&f, 2500, 102);
    ru_h_daemon_restart(&a);
    wait_counted(f.valid, f.written, "after the group was lost");
    CHECK(ru_h_log_has(&a, "has been created again"), "the lost group was not reported");
    check_all(&f, "group_lost_with_start_dollar");
    finish("group_lost_with_start_dollar");
}

/* ------------------------------------------------------------------ 4: ids ahead */

/* XADD of one genonaut-shaped entry with an explicit id; route NULL makes it invalid. */
static void xadd_at(long long ms, long long seq, const char *route)
{
    redisReply *r;
    if (route)
        r = ru_h_redis_cmd(T.r,
                           "XADD %s %lld-%lld route %s method GET timestamp %lld duration_ms 12"
                           " status_code 200",
                           T.stream, ms, seq, route, H0 + seq);
    else
        r = ru_h_redis_cmd(T.r, "XADD %s %lld-%lld method GET", T.stream, ms, seq);
    CHECK(r->type == REDIS_REPLY_STRING, "XADD %lld-%lld failed", ms, seq);
    freeReplyObject(r);
}

static bool cond_dead3(void *arg)
{
    (void)arg;
    return ru_h_xlen(T.r, T.dead) >= 3;
}

static bool cond_read100(void *arg)
{
    return ru_h_status_int(arg, "events_consumed") >= 100;
}

static bool cond_recovered_all(void *arg)
{
    return ru_h_status_int(arg, "events_recovered") >= 97 &&
           ru_h_status_int(arg, "recovery_dead_known") >= 3;
}

/* Stream ids a day ahead of Redis' clock (explicit ids, a clock stepped back): invalid
 * entries after the checkpoint are read again by every recovery, and their copies are
 * found, not written again, whatever their ids say about time. */
Test(operator, lone_ids_ahead_of_clock, .timeout = 180)
{
    setup();
    struct ru_h_daemon a;
    struct ru_h_cfg k = lone_cfg(600000); /* commits only when asked */
    start_connected(&a, &k);
    long long ahead = (long long)time(NULL) * 1000 + 86400000LL;
    for (int i = 1; i <= 100; i++)
        xadd_at(ahead, i, "/api/v1/ahead");
    CHECK(ru_h_wait(cond_read100, &a, 20000), "the 100 entries were not read");
    char *r = ru_h_sock_cmd(a.sock, "flush");
    CHECK(r && strstr(r, "\"events\":100"), "the flush did not commit the 100 events: %s",
          r ? r : "(no answer)");
    free(r);
    for (int i = 101; i <= 200; i++)
        xadd_at(ahead, i, i % 40 == 0 ? NULL : "/api/v1/ahead");
    CHECK(ru_h_wait(cond_dead3, NULL, 20000), "the three invalid entries were not dead-lettered");
    for (int round = 1; round <= 2; round++) {
        kill9(&a);
        ru_h_daemon_restart(&a);
        CHECK(ru_h_wait(cond_recovered_all, &a, 30000),
              "kill %d: recovery did not read the 97 valid entries again and find the three copies",
              round);
        long long dead = ru_h_xlen(T.r, T.dead);
        CHECK(dead == 3, "kill %d: %s has %lld entries, want 3 (copies written again)", round,
              T.dead, dead);
    }
    r = ru_h_sock_cmd(a.sock, "flush");
    free(r);
    CHECK(hourly_total() == 197, "sum(total_requests) = %lld, want 197", hourly_total());
    finish("lone_ids_ahead_of_clock");
}

/* ------------------------------------------------------------------ 7: durable commits */

/* A server with synchronous_commit = off: rollupd's own session commits synchronously. */
Test(operator, synchronous_commit_forced, .timeout = 120)
{
    setup();
    ru_h_pg_exec(T.pg, "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET synchronous_commit"
                       " = off', current_database()); END $$");
    struct ru_h_daemon a;
    struct ru_h_cfg k = base_cfg(200);
    start_connected(&a, &k);
    CHECK(
        ru_h_log_has(&a, "synchronous_commit is off on this server; rollupd's session sets it on"),
        "rollupd did not override synchronous_commit = off");
    CHECK(ru_h_pg_int(T.pg, "SELECT count(*) FROM pg_stat_activity WHERE datname ="
                            " current_database() AND application_name = 'rollupd'") >= 1,
          "no rollupd session");
    finish("synchronous_commit_forced");
}

/* The stored checkpoint went backwards (PostgreSQL lost commits it had acknowledged):
 * rollupd names it and stops instead of blaming another process. */
Test(operator, checkpoint_went_backwards, .timeout = 120)
{
    struct fed f;
    struct ru_h_daemon a;
    begin_running(&f, &a);
    feed_counted(&f, 2000, 111, "before the loss");
    ru_h_pg_execf(T.pg, "UPDATE rollupd_checkpoint SET last_id = '1-0' WHERE grp = '%s'", T.group);
    CHECK(ru_h_pg_terminate_lock_holders(T.pg) >= 1, "no rollupd session to terminate");
    CHECK(ru_h_wait(cond_exited, &a, 30000), "rollupd went on with a checkpoint that went back");
    CHECK(ru_h_daemon_wait_exit(&a, 1000) == 1, "rollupd did not exit with status 1");
    CHECK(ru_h_log_has(&a, "went backwards"), "rollupd did not name the lost commits");
    finish("checkpoint_went_backwards");
}

/* ------------------------------------------------------------------ 5: a lost race */

static long long deadlocks_seen(void)
{
    ru_h_pg_exec(T.pg, "SELECT pg_stat_clear_snapshot()");
    return ru_h_pg_int(T.pg, "SELECT deadlocks FROM pg_stat_database WHERE datname ="
                             " current_database()");
}

static bool cond_deadlock_counted(void *arg)
{
    return deadlocks_seen() > *(long long *)arg;
}

static bool cond_row_lock_waiter(void *arg)
{
    (void)arg;
    return ru_h_pg_int(T.pg, "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype IN"
                             " ('transactionid', 'tuple') AND database IS DISTINCT FROM 0") > 0;
}

/* A flush that PostgreSQL aborts with a real deadlock (SQLSTATE 40P01: another session
 * holds the last row the flush locks and then asks for the first) is retried and commits
 * once; the retry decision is the SQLSTATE's (pgerr), so it does not hang on the language
 * of the server's messages. */
Test(operator, deadlock_retried, .timeout = 180)
{
    struct fed f;
    struct ru_h_daemon a;
    begin(&f);
    struct ru_h_cfg k = base_cfg(200);
    /* the 500 events of a feed in one read, so that one flush touches every row (reads
     * sized to redis.read_bytes would bring them in three, and a flush of the first could
     * lack the row this session locks second) */
    k.redis_extra = "read_bytes = 0;";
    start_daemon(&a, &k);
    wait_connected(&a);
    feed_counted(&f, 500, 121, "the rows exist");
    /* the flush locks its rows in key order, the hour first: first of the first hour,
     * then last of the last one */
    long long first = ru_h_pg_int(T.pg, "SELECT id FROM route_analytics_hourly ORDER BY"
                                        " \"timestamp\", id LIMIT 1");
    long long last = ru_h_pg_int(T.pg, "SELECT id FROM route_analytics_hourly ORDER BY"
                                       " \"timestamp\" DESC, id LIMIT 1");
    CHECK(first != last && ru_h_pg_int(T.pg, "SELECT count(DISTINCT \"timestamp\") FROM"
                                             " route_analytics_hourly") == 2,
          "the feed did not span two hours");
    long long before = deadlocks_seen();
    PGconn *x = ru_h_pg_connect(T.ci);
    /* this session never finds the cycle first: the flush's own check does, one second
     * after it began to wait (a superuser setting; without it the flush still is the first
     * to look, as long as this session asks within that second) */
    (void)ru_h_pg_try_exec(x, "SET deadlock_timeout = '30s'", NULL, 0);
    ru_h_pg_exec(x, "BEGIN");
    ru_h_pg_execf(x, "SELECT id FROM route_analytics_hourly WHERE id = %lld FOR UPDATE", last);
    feed(&f, 500, 121); /* the same keys again: every row is touched */
    CHECK(ru_h_wait(cond_row_lock_waiter, NULL, 30000),
          "the flush did not wait for the row this session holds");
    /* the cycle: PostgreSQL aborts one of the two (the flush, which waited first) */
    char sql[160], err[512];
    snprintf(sql, sizeof(sql), "SELECT id FROM route_analytics_hourly WHERE id = %lld FOR UPDATE",
             first);
    err[0] = '\0';
    int xrc = ru_h_pg_try_exec(x, sql, err, sizeof(err));
    ru_h_pg_exec(x, "ROLLBACK");
    PQfinish(x);
    CHECK(xrc == 0, "the other session, not the flush, was aborted: %s", err);
    CHECK(ru_h_wait(cond_deadlock_counted, &before, 30000),
          "PostgreSQL counted no deadlock in this database");
    wait_counted(f.valid, f.written, "after the deadlock");
    check_all(&f, "deadlock_retried");
    CHECK(ru_h_status_int(&a, "flush_failures") >= 1, "the flush did not fail on the deadlock");
    finish("deadlock_retried");
}
