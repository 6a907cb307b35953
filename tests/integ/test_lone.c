/* A lone consumer (redis.lone_consumer, README: "A lone consumer") end to end (Criterion
 * suite "lone"): reading with NOACK, so the committed checkpoint is the only record, it
 * must count each valid event once and dead-letter each invalid one once across kill -9
 * (recovery reads again what the group delivered after the checkpoint), refuse company
 * in its group, start after the group's floor, refuse a reload that switches the mode,
 * and leave a shared-group successor a recovery to do. The real daemon against the private
 * redis-server and PostgreSQL of scripts/testenv; e2e.h has the shared steps. */
#include "e2e.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>

static bool cond_reloaded(void *arg)
{
    return ru_h_log_has(arg, "configuration reloaded");
}

/* kill -9 at four moments while a feed with invalid entries runs: every valid event is
 * counted once although Redis kept no pending entry, every invalid one is dead-lettered
 * once although recovery reads it again. */
Test(lone, lone_consumer_kill9_exactly_once, .timeout = 240)
{
    setup();
    struct ru_h_cfg k = lone_cfg(1000);
    struct ru_h_daemon d;
    start_connected(&d, &k);

    const long long n = 60000;
    struct ru_h_proc lg;
    start_kill9_feed(&lg, n, 43);
    CHECK(ru_h_wait(cond_in_memory, &d, 10000), "no events waiting in memory within 10 s");
    struct ru_h_group g = group_info();
    CHECK(g.pending == 0, "a lone consumer left %lld entries in the pending list", g.pending);
    static const enum kill_at moments[] = {K_CONSUMED, K_IN_FLUSH, K_AT_START, K_FLUSHES_3,
                                           K_CONSUMED};
    long long recovered = 0, dead_known = 0;
    for (size_t i = 0; i < sizeof(moments) / sizeof(moments[0]); i++) {
        struct kill_arg a = {&d, moments[i], 0};
        bool reached = ru_h_wait(cond_kill_moment, &a, 10000);
        long long r = ru_h_status_int(&d, "events_recovered"),
                  dk = ru_h_status_int(&d, "recovery_dead_known");
        recovered += r > 0 ? r : 0;
        dead_known += dk > 0 ? dk : 0;
        ru_h_daemon_kill(&d, SIGKILL);
        int rc = ru_h_daemon_wait_exit(&d, 10000);
        CHECK(rc == 128 + SIGKILL, "kill %zu: rollupd exit status %d", i + 1, rc);
        cr_log_info("lone kill9: kill %zu %s%s, stream at %lld of %lld", i + 1,
                    kill_names[moments[i]], reached ? "" : " (moment not seen: killed anyway)",
                    ru_h_xlen(T.r, T.stream), n);
        ru_h_daemon_restart(&d);
    }
    long long valid = ru_h_loadgen_finish(&lg);
    struct ru_h_lg_result res = *ru_h_loadgen_last();
    wait_lone_drained(res.written, valid, "lone_consumer_kill9_exactly_once");
    long long r = ru_h_status_int(&d, "events_recovered");
    recovered += r > 0 ? r : 0;

    check_dead_letters(res.invalid, "lone_consumer_kill9_exactly_once");
    check_exactly_once(T.oracle, valid, "lone_consumer_kill9_exactly_once");
    CHECK(recovered > 0, "no event was recovered after five kills with events in memory");
    CHECK(ru_h_log_has(&d, "recovery: reading again"), "no recovery seen in the log");
    CHECK(lone_rows() == 1, "the checkpoint row is not marked as a lone consumer's");
    cr_log_info("lone kill9: %lld events recovered, %lld invalid entries found already"
                " dead-lettered",
                recovered, dead_known);
    finish("lone_consumer_kill9_exactly_once");
}

static bool cond_refused(void *arg)
{
    struct ru_h_daemon *d = arg;
    if (!ru_h_daemon_running(d))
        return false;
    json_t *j = ru_h_status(d->sock);
    const char *e = j ? json_string_value(json_object_get(j, "redis_last_error")) : NULL;
    bool refused = e && strstr(e, "consumer 'other' is also in group") &&
                   !json_is_true(json_object_get(j, "redis_connected"));
    json_decref(j);
    return refused;
}

static bool cond_left(void *arg)
{
    struct ru_h_daemon *d = arg;
    struct st s = status_of(d);
    return s.ok && !s.redis && ru_h_log_has(d, "another consumer joined group");
}

/* A lone consumer does not read while another consumer is in its group, and stops
 * reading when one joins. */
Test(lone, lone_consumer_refuses_company, .timeout = 120)
{
    setup();
    redis_cmd_ok("XGROUP CREATE %s %s 0 MKSTREAM", T.stream, T.group, "");
    redis_cmd_ok("XGROUP CREATECONSUMER %s %s %s", T.stream, T.group, "other");
    struct ru_h_cfg k = lone_cfg(200);
    struct ru_h_daemon d;
    start_daemon(&d, &k);
    CHECK(ru_h_wait(cond_refused, &d, 20000),
          "with consumer 'other' in the group, rollupd did not refuse within 20 s");
    redis_cmd_ok("XGROUP DELCONSUMER %s %s %s", T.stream, T.group, "other");
    wait_connected(&d);

    long long valid = ru_h_loadgen("-s %s -n 3000 --seed 44 --start-ts %lld --hours 2"
                                   " --invalid-frac 0.01 --oracle %s --quiet",
                                   T.stream, H0, T.oracle);
    const struct ru_h_lg_result *res = ru_h_loadgen_last();
    wait_lone_drained(res->written, valid, "lone_consumer_refuses_company");
    cr_assert_eq(ru_h_oracle_load(T.pg, T.oracle), valid);
    check_rows_match_oracle("lone_consumer_refuses_company");
    check_dead_letters(res->invalid, "lone_consumer_refuses_company");

    redis_cmd_ok("XGROUP CREATECONSUMER %s %s %s", T.stream, T.group, "intruder");
    CHECK(ru_h_wait(cond_left, &d, 20000),
          "a consumer joined the group, but rollupd did not stop reading within 20 s");
    redis_cmd_ok("XGROUP DELCONSUMER %s %s %s", T.stream, T.group, "intruder");
    wait_connected(&d);
    finish("lone_consumer_refuses_company");
}

static bool cond_recovered_dead(void *arg)
{
    return ru_h_status_int(arg, "recovery_dead_known") >= 3;
}

static bool cond_recovered(void *arg)
{
    return ru_h_status_int(arg, "recoveries") >= 1;
}

/* a recovery that found the copies, or had nothing to read (the checkpoint had passed them) */
static bool cond_recovery_over(void *arg)
{
    return ru_h_status_int(arg, "recoveries") >= 1 &&
           (ru_h_status_int(arg, "recovery_dead_known") >= 3 ||
            ru_h_status_int(arg, "recovery_entries_read") == 0);
}

static bool cond_flushed_one(void *arg)
{
    return ru_h_status_int(arg, "events_flushed") >= 1;
}

/* Does the group's checkpoint (read while no rollupd runs) cover stream id `id`? */
static bool checkpoint_covers(const char *id)
{
    char *ck = ru_h_pg_textf(T.pg,
                             "SELECT last_id FROM rollupd_checkpoint WHERE stream = '%s' AND"
                             " grp = '%s' AND consumer = ''",
                             T.stream, T.group);
    long long cms = 0, cseq = 0, ims = 0, iseq = 0;
    CHECK(ck && sscanf(ck, "%lld-%lld", &cms, &cseq) == 2, "no group checkpoint row: %s",
          ck ? ck : "(none)");
    CHECK(sscanf(id, "%lld-%lld", &ims, &iseq) == 2, "bad stream id %s", id);
    free(ck);
    return cms > ims || (cms == ims && cseq >= iseq);
}

/* Invalid entries at the end of the stream, after the last valid one, are read again by
 * every recovery that starts below them; their copies must not be written twice, after a
 * lost connection (the entries are still in memory) or a kill -9 (they are not). Once
 * their copies are confirmed, a later commit may move the checkpoint past them (then a
 * recovery has nothing to read): which of the two a kill -9 meets depends on timing, so
 * the test reads the checkpoint while nothing runs and expects what it says. */
Test(lone, lone_consumer_dead_letters_once, .timeout = 180)
{
    setup();
    struct ru_h_cfg k = lone_cfg(200);
    struct ru_h_daemon d;
    start_connected(&d, &k);
    long long valid = ru_h_loadgen("-s %s -n 2000 --seed 46 --start-ts %lld --hours 1"
                                   " --oracle %s --quiet",
                                   T.stream, H0, T.oracle);
    const struct ru_h_lg_result res = *ru_h_loadgen_last();
    wait_lone_drained(res.written, valid, "lone_consumer_dead_letters_once");
    char last_bad[64] = "";
    for (int i = 0; i < 3; i++) {
        redisReply *r = ru_h_redis_cmd(T.r, "XADD %s * route /broken", T.stream);
        CHECK(r->type == REDIS_REPLY_STRING, "XADD of an invalid entry failed");
        snprintf(last_bad, sizeof(last_bad), "%s", r->str);
        freeReplyObject(r);
    }
    long long want = res.invalid + 3;
    check_dead_letters(want, "three invalid entries at the end");

    /* the connection is cut: recovery reads them again from the checkpoint, unless a
     * commit has already moved it past their confirmed copies */
    CHECK(ru_h_redis_kill_readers(T.r, T.stream, T.group) >= 1, "no rollupd connection to cut");
    CHECK(ru_h_wait(cond_recovery_over, &d, 60000),
          "after a lost connection, no recovery within 60 s");
    check_dead_letters(want, "after a lost connection");

    kill9(&d);
    bool covered = checkpoint_covers(last_bad);
    ru_h_daemon_restart(&d);
    if (covered)
        CHECK(ru_h_wait(cond_recovered, &d, 60000), "after kill -9, no recovery within 60 s");
    else
        CHECK(ru_h_wait(cond_recovered_dead, &d, 60000),
              "after kill -9, recovery did not find the three copies within 60 s");
    /* one valid entry after them: once it is committed, the recovery is long over */
    redisReply *r = ru_h_redis_cmd(T.r,
                                   "XADD %s * route /api/v1/after method GET timestamp %lld"
                                   " duration_ms 12 status_code 200",
                                   T.stream, H0 + 60);
    freeReplyObject(r);
    CHECK(ru_h_wait(cond_flushed_one, &d, 60000), "the entry after the recovery was not committed");
    check_dead_letters(want, covered ? "after kill -9 (checkpoint past the invalid entries)"
                                     : "after kill -9 (recovery read them again)");
    cr_assert_eq(ru_h_oracle_load(T.pg, T.oracle), valid);
    CHECK(hourly_total() == valid + 1, "sum(total_requests) = %lld, want %lld", hourly_total(),
          valid + 1);
    finish("lone_consumer_dead_letters_once");
}

static bool cond_blocked_start(void *arg)
{
    struct st s = status_of(arg);
    return s.ok && s.redis && s.in_flush;
}

/* A new lone consumer of a group created at "$" on a stream with history commits the
 * group's starting point before it reads anything without acknowledgement. Here that
 * commit is held back by a lock and the process killed: nothing may have been read, and
 * the restart must not count the history. */
Test(lone, lone_consumer_starts_after_its_floor, .timeout = 120)
{
    setup();
    ru_h_loadgen("-s %s -n 1000 --seed 47 --start-ts %lld --hours 1 --quiet", T.stream, H0);
    char url[128];
    snprintf(url, sizeof(url), "redis://127.0.0.1:1/0"); /* nobody listens: Redis "down" */
    struct ru_h_cfg k = lone_cfg(600000);
    k.start = "$";
    k.redis_url = url;
    struct ru_h_daemon d;
    start_daemon(&d, &k);
    CHECK(ru_h_wait(cond_pg_up, &d, 30000), "PostgreSQL set-up not done within 30 s");
    PGconn *locker = ru_h_pg_connect(T.ci);
    ru_h_pg_exec(locker, "BEGIN");
    ru_h_pg_exec(locker, "LOCK TABLE rollupd_checkpoint IN ACCESS EXCLUSIVE MODE");
    k.redis_url = NULL;
    rewrite_config(&d, k);
    ru_h_daemon_kill(&d, SIGHUP);
    CHECK(ru_h_wait(cond_blocked_start, &d, 30000),
          "no Redis connection with the starting point's commit waiting on the lock");
    long long valid = ru_h_loadgen("-s %s -n 2000 --seed 48 --start-ts %lld --hours 1"
                                   " --oracle %s --quiet",
                                   T.stream, H0, T.oracle);
    const struct ru_h_lg_result res = *ru_h_loadgen_last();
    struct ru_h_group g = group_info();
    CHECK(g.entries_read <= 1000,
          "the group delivered %lld entries before the starting point was committed",
          g.entries_read);
    kill9(&d);
    ru_h_pg_exec(locker, "ROLLBACK");
    PQfinish(locker);
    k.flush_interval_ms = 200;
    rewrite_config(&d, k);
    ru_h_daemon_restart(&d);
    wait_lone_drained(res.written, valid, "lone_consumer_starts_after_its_floor");
    cr_assert_eq(ru_h_oracle_load(T.pg, T.oracle), valid);
    CHECK(hourly_total() == valid,
          "sum(total_requests) = %lld, want %lld (the 1000 entries from"
          " before the group counted?)",
          hourly_total(), valid);
    check_rows_match_oracle("lone_consumer_starts_after_its_floor");
    finish("lone_consumer_starts_after_its_floor");
}

/* lone_consumer changes only at restart: a reload that turns it on keeps acknowledging. */
Test(lone, lone_consumer_not_reloaded, .timeout = 120)
{
    setup();
    struct ru_h_cfg k = base_cfg(200);
    struct ru_h_daemon d;
    start_connected(&d, &k);
    k.redis_extra = "lone_consumer = true;";
    rewrite_config(&d, k);
    ru_h_daemon_kill(&d, SIGHUP);
    CHECK(ru_h_wait(cond_reloaded, &d, 10000), "no reload seen within 10 s");
    CHECK(ru_h_log_has(&d, "redis.lone_consumer"),
          "the reload did not warn that lone_consumer waits"
          " for a restart");
    long long valid = ru_h_loadgen("-s %s -n 2000 --seed 49 --start-ts %lld --hours 1"
                                   " --oracle %s --quiet",
                                   T.stream, H0, T.oracle);
    /* drained: every entry acknowledged, none left pending */
    wait_drained(ru_h_loadgen_last()->written, "lone_consumer_not_reloaded");
    cr_assert_eq(ru_h_oracle_load(T.pg, T.oracle), valid);
    check_rows_match_oracle("lone_consumer_not_reloaded");
    finish("lone_consumer_not_reloaded");
}

/* A lone consumer killed with events in memory, restarted as a shared-group consumer:
 * the stored mark makes the first run read after the checkpoint again. */
Test(lone, lone_then_shared_recovers, .timeout = 120)
{
    setup();
    struct ru_h_cfg k = lone_cfg(600000); /* no timed flush: everything stays in memory */
    struct ru_h_daemon d;
    start_connected(&d, &k);
    long long valid = ru_h_loadgen("-s %s -n 5000 --seed 45 --start-ts %lld --hours 2"
                                   " --invalid-frac 0.01 --oracle %s --quiet",
                                   T.stream, H0, T.oracle);
    const struct ru_h_lg_result res = *ru_h_loadgen_last();
    struct want w = {.target = valid};
    CHECK(ru_h_wait(cond_consumed, &w, 20000), "not all %lld events taken in within 20 s: %s",
          valid, obs_text(&w.o));
    CHECK(w.o.g.pending == 0 && w.o.flushed == 0,
          "want nothing pending and nothing flushed before the kill: %s", obs_text(&w.o));
    kill9(&d);

    rewrite_config(&d, base_cfg(200));
    ru_h_daemon_restart(&d);
    wait_lone_drained(res.written, valid, "lone_then_shared_recovers");
    cr_assert_eq(ru_h_oracle_load(T.pg, T.oracle), valid);
    CHECK(hourly_total() == valid, "sum(total_requests) = %lld, want %lld", hourly_total(), valid);
    check_rows_match_oracle("lone_then_shared_recovers");
    check_dead_letters(res.invalid, "lone_then_shared_recovers");
    CHECK(ru_h_log_has(&d, "entries delivered after it are read again first"),
          "the shared-group run did not announce the recovery");
    CHECK(lone_rows() == 0, "the shared-group run left the lone mark on its checkpoint");
    finish("lone_then_shared_recovers");
}
