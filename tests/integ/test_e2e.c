/* End-to-end tests of rollupd (Criterion suite "e2e"): the real daemon against the private
 * redis-server and PostgreSQL of scripts/testenv, fed by rollupd-loadgen or by hand, with
 * the hourly table compared to genonaut's own aggregation (the loadgen oracle).
 *
 * Every test has its own database and stream/group names, waits on observable state with
 * deadlines (status socket, XPENDING, XINFO GROUPS, SQL), and fails with a message that
 * carries the tail of every daemon's log and its last status. */
#include "e2e.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>

/* ------------------------------------------------------------------ 1 */

Test(e2e, oracle_many_hours, .timeout = 240)
{
    setup();
    struct ru_h_cfg k = base_cfg(200);
    struct ru_h_daemon d;
    start_connected(&d, &k);

    /* loadgen respells ~10% of the params (key order, spaces, escapes, duplicate keys,
     * number spellings) and users (case, braces, hyphens) */
    long long valid = ru_h_loadgen("-s %s -n 30000 --seed 11 --start-ts %lld --hours 6"
                                   " --late-frac 0.05 --invalid-frac 0.01 --oracle %s --quiet",
                                   T.stream, H0, T.oracle);
    struct ru_h_lg_result lg = *ru_h_loadgen_last();
    cr_assert_eq(lg.written, 30000);
    wait_flushed(lg.written, "oracle_many_hours");

    struct st s = status_of(&d);
    CHECK(s.flushed + s.invalid == lg.written,
          "events_flushed %lld + events_invalid %lld != %lld written", s.flushed, s.invalid,
          lg.written);
    CHECK(s.flushed == valid && s.consumed == valid,
          "events_flushed %lld, events_consumed %lld, loadgen wrote %lld valid", s.flushed,
          s.consumed, valid);
    CHECK(s.invalid == lg.invalid && s.dead_lettered == lg.invalid,
          "events_invalid %lld, events_dead_lettered %lld, loadgen wrote %lld invalid", s.invalid,
          s.dead_lettered, lg.invalid);
    CHECK(s.trimmed == 0 && s.failures == 0, "events_trimmed %lld, flush_failures %lld", s.trimmed,
          s.failures);
    long long dead = ru_h_xlen(T.r, T.dead);
    CHECK(dead == lg.invalid, "%s has %lld entries, loadgen wrote %lld invalid", T.dead, dead,
          lg.invalid);

    cr_assert_eq(ru_h_oracle_load(T.pg, T.oracle), valid);
    /* the feed did spell one params object several ways (else this proves little) */
    ru_h_pg_exec(T.pg, "CREATE TABLE oracle_txt (route text, method text, user_id text, ts text,"
                       " duration_ms int, status_code int, qpn text, req int, resp int, db int,"
                       " cache text)");
    ru_h_oracle_load_into(T.pg, "oracle_txt", T.oracle);
    long long respelled = ru_h_pg_int(T.pg, "SELECT count(*) FROM (SELECT qpn::jsonb FROM"
                                            " oracle_txt WHERE qpn IS NOT NULL GROUP BY 1"
                                            " HAVING count(DISTINCT qpn) > 1) x");
    CHECK(respelled >= 5, "only %lld params objects were spelled in several ways", respelled);
    check_rows_match_oracle("oracle_many_hours");
    long long hours =
        ru_h_pg_int(T.pg, "SELECT count(DISTINCT \"timestamp\") FROM route_analytics_hourly");
    CHECK(hours == 6, "rows cover %lld hours, want 6", hours);
    CHECK(hourly_total() == valid, "sum(total_requests) %lld != %lld valid", hourly_total(), valid);
    CHECK(checkpoint_events() == valid, "checkpoint events %lld != %lld valid", checkpoint_events(),
          valid);

    /* raw mode is off: no raw rows */
    char *reg = ru_h_pg_text(T.pg, "SELECT to_regclass('route_analytics')::text");
    long long raw = reg ? ru_h_pg_int(T.pg, "SELECT count(*) FROM route_analytics") : 0;
    CHECK(raw == 0, "raw_table is off but route_analytics holds %lld rows", raw);
    free(reg);
    finish("oracle_many_hours");
}

/* ------------------------------------------------------------------ 2 */

#define SLICES    20
#define SLICE_LEN 1000

Test(e2e, one_hour_many_flushes, .timeout = 240)
{
    setup();
    struct ru_h_cfg k = base_cfg(100);
    struct ru_h_daemon d;
    start_connected(&d, &k);

    long long written = 0, valid = 0;
    for (int i = 0; i < SLICES; i++) {
        char oracle[RU_H_PATH];
        ru_h_tmp_path(oracle, sizeof(oracle), "slice.tsv");
        valid += ru_h_loadgen("-s %s -n %d --seed %d --start-ts %lld --hours 1 --late-frac 0"
                              " --oracle %s --quiet",
                              T.stream, SLICE_LEN, 200 + i, H0, oracle);
        written += ru_h_loadgen_last()->written;
        char what[64];
        snprintf(what, sizeof(what), "one_hour_many_flushes slice %d", i + 1);
        wait_flushed(written, what);
        /* the rows are current after every flush, not only at the end of the hour */
        ru_h_oracle_load(T.pg, oracle);
        check_oracle(what, NULL);
    }
    struct st s = status_of(&d);
    cr_log_info("one_hour_many_flushes: %lld flushes for %d slices", s.flushes, SLICES);
    CHECK(s.flushes >= 10, "only %lld flushes for %d slices fed one after the other", s.flushes,
          SLICES);
    CHECK(s.flushed == valid, "events_flushed %lld != %lld valid", s.flushed, valid);
    long long hours =
        ru_h_pg_int(T.pg, "SELECT count(DISTINCT \"timestamp\") FROM route_analytics_hourly");
    CHECK(hours == 1, "rows cover %lld hours, want 1", hours);
    CHECK(ru_h_pg_intf(T.pg,
                       "SELECT count(*) FROM route_analytics_hourly WHERE \"timestamp\" <>"
                       " to_timestamp(%lld) AT TIME ZONE 'UTC'",
                       H0) == 0,
          "rows outside the hour starting at %lld", H0);
    check_rows_match_oracle("one_hour_many_flushes");
    finish("one_hour_many_flushes");
}

/* Row states shared by two writers and folded: two consumers of one group write the same
 * hourly rows in turn, so each finds its cached state behind and reads the other's
 * versions back; hot rows pass 32 versions and are folded into one base version; one
 * writer restarts half-way with an empty cache. The rows must match the oracle after every
 * few slices. */
#define STATE_SLICES    45
#define STATE_SLICE_LEN 200
#define STATE_MAX_VERS  32 /* versions kept per row before folding (pgw's MAX_CHUNKS) */

static long long state_reloads(struct ru_h_daemon *d)
{
    json_t *j = ru_h_status(d->sock);
    long long v = -1;
    if (j)
        v = json_ll(j, "state_reloads");
    json_decref(j);
    return v;
}

Test(e2e, row_states_shared_and_folded, .timeout = 240)
{
    setup();
    struct ru_h_daemon d1, d2;
    start_pair(&d1, &d2, 100);

    long long written = 0, reloads_before_restart = 0;
    for (int i = 0; i < STATE_SLICES; i++) {
        char oracle[RU_H_PATH], what[64];
        ru_h_tmp_path(oracle, sizeof(oracle), "slice.tsv");
        ru_h_loadgen("-s %s -n %d --seed %d --start-ts %lld --hours 1 --late-frac 0"
                     " --oracle %s --quiet",
                     T.stream, STATE_SLICE_LEN, 700 + i, H0, oracle);
        written += ru_h_loadgen_last()->written;
        snprintf(what, sizeof(what), "row_states slice %d", i + 1);
        wait_drained(written, what); /* (status counters restart with c1) */
        ru_h_oracle_load(T.pg, oracle);
        if (i % 5 == 4)
            check_rows_match_oracle(what);
        if (i == STATE_SLICES / 2) {
            reloads_before_restart = state_reloads(&d1);
            CHECK(ru_h_daemon_stop(&d1) == 0, "c1 did not stop cleanly");
            ru_h_daemon_restart(&d1); /* its cache starts empty */
            wait_connected(&d1);
        }
    }
    check_rows_match_oracle("row_states_shared_and_folded");
    long long most = ru_h_pg_int(T.pg, "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n"
                                       " FROM rollupd_rowstate GROUP BY hourly_id) x");
    long long folded = ru_h_pg_intf(T.pg,
                                    "SELECT count(*) FROM (SELECT hourly_id FROM rollupd_rowstate"
                                    " GROUP BY hourly_id HAVING max(seq) > %d) x",
                                    STATE_MAX_VERS);
    long long r1 = state_reloads(&d1), r2 = state_reloads(&d2);
    cr_log_info("row_states: most versions kept %lld, rows folded %lld, reloads c1 %lld+%lld"
                " c2 %lld",
                most, folded, reloads_before_restart, r1, r2);
    CHECK(most <= STATE_MAX_VERS, "a row keeps %lld versions (at most %d)", most, STATE_MAX_VERS);
    CHECK(folded > 0, "no row passed %d versions: the folding was not exercised", STATE_MAX_VERS);
    CHECK(reloads_before_restart > 0 && r1 > 0 && r2 > 0,
          "each writer must have read the other's versions back (c1 %lld then %lld, c2 %lld)",
          reloads_before_restart, r1, r2);
    finish("row_states_shared_and_folded");
}

/* ------------------------------------------------------------------ 3 */

Test(e2e, late_events_merge, .timeout = 240)
{
    setup();
    char o1[RU_H_PATH], o2[RU_H_PATH];
    ru_h_tmp_path(o1, sizeof(o1), "oracle1.tsv");
    ru_h_tmp_path(o2, sizeof(o2), "oracle2.tsv");
    struct ru_h_cfg k = base_cfg(200);
    struct ru_h_daemon d;
    start_connected(&d, &k);

    /* hours H and H+1 */
    long long written = 0;
    ru_h_loadgen("-s %s -n 6000 --seed 31 --start-ts %lld --hours 2 --late-frac 0 --oracle %s"
                 " --quiet",
                 T.stream, H0, o1);
    written += ru_h_loadgen_last()->written;
    wait_flushed(written, "late_events_merge phase 1");
    ru_h_oracle_load(T.pg, o1);
    check_rows_match_oracle("late_events_merge phase 1");
    ru_h_pg_exec(T.pg, "CREATE TABLE snap AS SELECT id, \"timestamp\", route, method,"
                       " query_params_normalized AS qpn, total_requests, created_at"
                       " FROM route_analytics_hourly");
    long long snap = ru_h_pg_int(T.pg, "SELECT count(*) FROM snap");
    long long snap_h = ru_h_pg_intf(T.pg,
                                    "SELECT count(*) FROM snap WHERE \"timestamp\" ="
                                    " to_timestamp(%lld) AT TIME ZONE 'UTC'",
                                    H0);
    CHECK(snap > 0 && snap_h > 0, "phase 1 wrote %lld rows, %lld in hour H", snap, snap_h);

    /* late: more for the old hour H, then for H-2, after H+1 was written */
    ru_h_loadgen("-s %s -n 3000 --seed 32 --start-ts %lld --hours 1 --late-frac 0 --oracle %s"
                 " --quiet",
                 T.stream, H0, o2);
    written += ru_h_loadgen_last()->written;
    ru_h_loadgen("-s %s -n 1000 --seed 33 --start-ts %lld --hours 1 --late-frac 0 --oracle %s"
                 " --quiet",
                 T.stream, H0 - 2 * HOUR_S, o2);
    written += ru_h_loadgen_last()->written;
    wait_flushed(written, "late_events_merge phase 2");
    ru_h_oracle_load(T.pg, o2);
    check_rows_match_oracle("late_events_merge phase 2");

    /* the rows written before are the same rows (same id, key and created_at), updated */
    long long kept =
        ru_h_pg_int(T.pg, "SELECT count(*) FROM snap s JOIN route_analytics_hourly h ON h.id = s.id"
                          " AND h.\"timestamp\" = s.\"timestamp\" AND h.route = s.route"
                          " AND h.method = s.method"
                          " AND h.query_params_normalized IS NOT DISTINCT FROM s.qpn"
                          " AND h.created_at = s.created_at");
    CHECK(kept == snap,
          "only %lld of the %lld rows written in phase 1 kept their id, key and"
          " created_at",
          kept, snap);
    long long grown = ru_h_pg_int(T.pg, "SELECT count(*) FROM snap s JOIN route_analytics_hourly"
                                        " h ON h.id = s.id"
                                        " WHERE h.total_requests > s.total_requests");
    CHECK(grown > 0, "no row of hour H was updated by the late events");
    long long shrunk = ru_h_pg_int(T.pg, "SELECT count(*) FROM snap s JOIN route_analytics_hourly"
                                         " h ON h.id = s.id"
                                         " WHERE h.total_requests < s.total_requests");
    CHECK(shrunk == 0, "%lld rows lost requests", shrunk);
    long long later = ru_h_pg_intf(T.pg,
                                   "SELECT count(*) FROM snap s JOIN route_analytics_hourly h"
                                   " ON h.id = s.id WHERE s.\"timestamp\" <>"
                                   " to_timestamp(%lld) AT TIME ZONE 'UTC'"
                                   " AND h.total_requests <> s.total_requests",
                                   H0);
    CHECK(later == 0, "%lld rows of hour H+1 changed, but no late event was for H+1", later);
    long long dup =
        ru_h_pg_int(T.pg, "SELECT count(*) - count(DISTINCT (\"timestamp\", route, method,"
                          " query_params_normalized)) FROM route_analytics_hourly");
    CHECK(dup == 0, "%lld duplicated keys in route_analytics_hourly", dup);
    long long older = ru_h_pg_intf(T.pg,
                                   "SELECT count(*) FROM route_analytics_hourly WHERE"
                                   " \"timestamp\" = to_timestamp(%lld) AT TIME ZONE 'UTC'",
                                   H0 - 2 * HOUR_S);
    CHECK(older > 0, "no rows for the older hour H-2");
    cr_log_info("late_events_merge: %lld rows kept, %lld grew, %lld rows for H-2", kept, grown,
                older);
    finish("late_events_merge");
}

/* Every committed flush has reached the writer's cache (status counts a flush's events
 * before the cache takes its states). */
static bool cond_cache_caught_up(void *arg)
{
    struct ru_h_daemon *d = arg;
    long long f = ru_h_status_int(d, "flushes");
    return f > 0 && ru_h_status_int(d, "state_cache_flushes") == f;
}

static bool cond_time_reached(void *arg)
{
    return ru_mono_ms() >= *(const int64_t *)arg;
}

/* Writes n events of the hour starting at hour_ts over loadgen's routes (0: its default)
 * and waits until they are flushed and their states are in the cache. */
static long long slice_routes(struct ru_h_daemon *d, long long written, int n, int seed,
                              long long hour_ts, int routes, const char *oracle, const char *what)
{
    char r[32] = "";
    if (routes > 0)
        snprintf(r, sizeof(r), " --routes %d", routes);
    written += ru_h_loadgen("-s %s -n %d --seed %d --start-ts %lld --hours 1 --late-frac 0"
                            " --oracle %s --quiet%s",
                            T.stream, n, seed, hour_ts, oracle, r);
    wait_flushed(written, what);
    CHECK(ru_h_wait(cond_cache_caught_up, d, 10000), "%s: the cache did not take the flush", what);
    return written;
}

static long long idle_slice(struct ru_h_daemon *d, long long written, int n, int seed,
                            long long hour_ts, const char *oracle, const char *what)
{
    return slice_routes(d, written, n, seed, hour_ts, 0, oracle, what);
}

/* Lets every state cached so far be idle for more than ms. */
static void idle_for(int ms)
{
    int64_t until = ru_mono_ms() + ms;
    CHECK(ru_h_wait(cond_time_reached, &until, ms + 5000), "the clock did not advance");
}

/* flush.state_idle_s: 0 keeps idle row states; reloaded to 1 s, the next flush gives back
 * hour H's states (only hour H+1 is written) and keeps its own; late events for H read
 * their states back from PostgreSQL, and every row still matches genonaut's aggregation.
 * Giving hour H's states back trims the heap (logged). */
Test(e2e, idle_row_states_given_back, .timeout = 240)
{
    setup();
    struct ru_h_cfg k = base_cfg(200);
    k.flush_extra = "state_idle_s = 0;";
    struct ru_h_daemon d;
    start_connected(&d, &k);
    char oracle[RU_H_PATH];
    ru_h_tmp_path(oracle, sizeof(oracle), "oracle.tsv");

    long long written = idle_slice(&d, 0, 3000, 41, H0, oracle, "idle phase 1 (hour H)");
    long long rows_h = ru_h_status_int(&d, "state_cache_rows");
    CHECK(rows_h > 0, "no states cached after hour H");

    /* 0: nothing is given back for being idle */
    idle_for(1500);
    written = idle_slice(&d, written, 50, 42, H0 + HOUR_S, oracle, "idle phase 2 (setting 0)");
    CHECK(!ru_h_log_has(&d, "idle row states given back"),
          "with state_idle_s = 0 the writer logged idle states given back");
    CHECK(ru_h_status_int(&d, "state_evictions") == 0 &&
              ru_h_status_int(&d, "state_cache_rows") > rows_h,
          "with state_idle_s = 0: %lld states given back, %lld cached (hour H: %lld)",
          ru_h_status_int(&d, "state_evictions"), ru_h_status_int(&d, "state_cache_rows"), rows_h);

    /* reloaded to 1 s: hour H's states and the idle ones of H+1 go, this flush's stay */
    k.flush_extra = "state_idle_s = 1;";
    rewrite_config(&d, k);
    size_t mark = ru_h_log_len(&d);
    ru_h_daemon_kill(&d, SIGHUP);
    ru_h_wait_log(&d, "configuration reloaded", mark, 5000);
    idle_for(1500);
    mark = ru_h_log_len(&d);
    written = idle_slice(&d, written, 50, 43, H0 + HOUR_S, oracle, "idle phase 3 (1 s)");
    /* hour H's states were most of the cache: their pages go back with a trim */
    ru_h_wait_log(&d, "idle row states given back, heap trimmed", mark, 5000);
    long long evicted = ru_h_status_int(&d, "state_evictions");
    long long rows_after = ru_h_status_int(&d, "state_cache_rows");
    long long rows_h1 = ru_h_pg_intf(T.pg,
                                     "SELECT count(*) FROM route_analytics_hourly WHERE"
                                     " \"timestamp\" = to_timestamp(%lld) AT TIME ZONE 'UTC'",
                                     H0 + HOUR_S);
    CHECK(evicted >= rows_h, "%lld states given back, hour H alone had %lld", evicted, rows_h);
    CHECK(ru_h_status_int(&d, "state_budget_evictions") == 0,
          "%lld states counted as given back to keep the memory bound, none was over it",
          ru_h_status_int(&d, "state_budget_evictions"));
    CHECK(rows_after > 0 && rows_after <= rows_h1,
          "%lld states cached after the flush, want this flush's own (1 to the %lld rows of"
          " hour H+1)",
          rows_after, rows_h1);
    long long reloads = ru_h_status_int(&d, "state_reloads");

    /* late events for hour H: their states are read back, the rows stay exact */
    written = idle_slice(&d, written, 1000, 99, H0, oracle, "idle phase 4 (late, hour H)");
    ru_h_oracle_load(T.pg, oracle);
    check_rows_match_oracle("idle_row_states_given_back");
    long long reloads_late = ru_h_status_int(&d, "state_reloads");
    CHECK(reloads_late > reloads,
          "state_reloads %lld -> %lld: the late events' rows were not read back", reloads,
          reloads_late);
    cr_log_info("idle_row_states: %lld states for hour H, %lld given back, %lld cached after"
                " (hour H+1: %lld rows), reloads %lld -> %lld",
                rows_h, evicted, rows_after, rows_h1, reloads, reloads_late);
    finish("idle_row_states_given_back");
}

/* limits.max_memory_mb = 64 keeps the row-state cache to 16 MiB. One hour over 400,000
 * routes writes more states than that: the least recently used are given back to keep to
 * it (state_budget_evictions, none idle), the same rows written again read theirs back
 * from PostgreSQL, and every row matches genonaut's aggregation. */
Test(e2e, row_states_given_back_to_budget, .timeout = 240)
{
    setup();
    struct ru_h_cfg k = base_cfg(200);
    k.max_memory_mb = 64;
    struct ru_h_daemon d;
    start_connected(&d, &k);
    char oracle[RU_H_PATH];
    ru_h_tmp_path(oracle, sizeof(oracle), "oracle.tsv");

    long long written =
        slice_routes(&d, 0, 150000, 51, H0, 400000, oracle, "budget phase 1 (over the budget)");
    long long budget_ev = ru_h_status_int(&d, "state_budget_evictions");
    long long all_ev = ru_h_status_int(&d, "state_evictions");
    long long cache = ru_h_status_int(&d, "state_cache_bytes");
    long long rows = ru_h_pg_intf(T.pg, "SELECT count(*) FROM route_analytics_hourly");
    CHECK(budget_ev > 0, "%lld rows, %lld B of states cached: none given back to the budget", rows,
          cache);
    CHECK(all_ev == budget_ev, "%lld states given back, %lld of them to the budget: none was idle",
          all_ev, budget_ev);
    CHECK(cache <= 16LL * 1024 * 1024, "%lld B of states cached, over the 16 MiB budget", cache);
    long long reloads = ru_h_status_int(&d, "state_reloads");

    /* the same events again: the rows whose states were given back read them back */
    written = slice_routes(&d, written, 150000, 51, H0, 400000, oracle, "budget phase 2 (again)");
    long long reloads_after = ru_h_status_int(&d, "state_reloads");
    CHECK(reloads_after > reloads, "state_reloads %lld -> %lld: no state given back was read back",
          reloads, reloads_after);
    ru_h_oracle_load(T.pg, oracle);
    check_rows_match_oracle("row_states_given_back_to_budget");
    cr_log_info("budget: %lld rows, %lld states given back to the budget (%lld B cached),"
                " reloads %lld -> %lld, %lld events",
                rows, budget_ev, cache, reloads, reloads_after, written);
    finish("row_states_given_back_to_budget");
}

/* ------------------------------------------------------------------ 4 */

/* After CLIENT PAUSE WRITE: every event read has been committed by a flush that started
 * after the pause, so its XACK waits in Redis. */
static bool cond_committed_after_pause(void *arg)
{
    struct kill_arg *a = arg;
    struct st s = status_of(a->d);
    return s.ok && s.pending == 0 && !s.in_flush && s.flushes > a->flushes0;
}

static bool cond_replay_acked(void *arg)
{
    return ru_h_status_int(arg, "events_replay_acked") > 0;
}

Test(e2e, kill9_restart_exactly_once, .timeout = 240)
{
    setup();
    struct ru_h_cfg k = base_cfg(150);
    struct ru_h_daemon d;
    start_connected(&d, &k);

    const long long n = 60000;
    struct ru_h_proc lg;
    start_kill9_feed(&lg, n, 41);
    int during_feed = 0;
    for (int i = 0; i < K_COUNT; i++) {
        struct kill_arg a = {&d, (enum kill_at)i, 0};
        bool reached = ru_h_wait(cond_kill_moment, &a, 10000);
        bool paused = false;
        long long stuck = 0;
        if (i == K_ACK_STUCK) {
            CHECK(reached, "no events waiting in memory within 10 s");
            /* writes wait in Redis (XADD, XREADGROUP, XACK); PostgreSQL goes on */
            a.flushes0 = status_of(&d).flushes;
            redis_ok("CLIENT PAUSE 4000 WRITE");
            paused = true;
            reached = ru_h_wait(cond_committed_after_pause, &a, 3000);
            stuck = ru_h_xpending(T.r, T.stream, T.group);
            if (!reached || stuck <= 0) {
                redis_ok("CLIENT UNPAUSE");
                CHECK(reached, "with Redis paused, the events in memory were not committed"
                               " within 3 s");
                CHECK(stuck > 0, "nothing pending after a commit whose XACK cannot run");
            }
        }
        long long xlen = ru_h_xlen(T.r, T.stream);
        during_feed += xlen < n;
        ru_h_daemon_kill(&d, SIGKILL);
        int rc = ru_h_daemon_wait_exit(&d, 10000);
        if (paused)
            redis_ok("CLIENT UNPAUSE");
        CHECK(rc == 128 + SIGKILL, "kill %d: rollupd exit status %d, want %d", i + 1, rc,
              128 + SIGKILL);
        cr_log_info("kill9: kill %d %s%s, stream at %lld of %lld%s", i + 1, kill_names[i],
                    reached ? "" : " (moment not seen within 10 s: killed anyway)", xlen, n,
                    paused ? ", committed entries left unacknowledged" : "");
        ru_h_daemon_restart(&d);
        if (i == K_ACK_STUCK)
            CHECK(ru_h_wait(cond_replay_acked, &d, 20000),
                  "after the restart, the %lld committed but unacknowledged entries were not"
                  " acknowledged as already applied (events_replay_acked stays 0)",
                  stuck);
    }
    long long valid = ru_h_loadgen_finish(&lg);
    struct ru_h_lg_result res = *ru_h_loadgen_last();
    cr_log_info("kill9: %d of %d kills while the feed ran (loadgen %.1f s)", during_feed, K_COUNT,
                res.seconds);
    wait_drained(res.written, "kill9_restart_exactly_once");

    long long dead = ru_h_xlen(T.r, T.dead);
    CHECK(dead == res.invalid,
          "%s has %lld entries, loadgen wrote %lld invalid (each must be"
          " dead-lettered exactly once)",
          T.dead, dead, res.invalid);
    check_exactly_once(T.oracle, valid, "kill9_restart_exactly_once");
    CHECK(ru_h_log_has(&d, "replay=1"),
          "no replay of pending entries seen in the log after kill -9");
    finish("kill9_restart_exactly_once");
}

/* ------------------------------------------------------------------ 5 */

/* "msg=stopped events_consumed=N" from the log, or -1. */
static long long stopped_consumed(struct ru_h_daemon *d)
{
    char *log = ru_h_daemon_log(d);
    long long n = -1;
    const char *last = NULL;
    for (const char *p = log; (p = strstr(p, "msg=stopped events_consumed=")) != NULL; p++)
        last = p;
    if (last)
        n = atoll(last + strlen("msg=stopped events_consumed="));
    free(log);
    return n;
}

Test(e2e, sigterm_graceful, .timeout = 240)
{
    setup();
    /* a flush interval far beyond the test: only the stop itself can commit */
    struct ru_h_cfg k = base_cfg(600000);
    struct ru_h_daemon d;
    start_connected(&d, &k);

    struct ru_h_proc lg;
    ru_h_loadgen_start(&lg,
                       "-s %s -n 20000 --rate 10000 --seed 51 --start-ts %lld --hours 3"
                       " --oracle %s --quiet",
                       T.stream, H0, T.oracle);
    struct want w = {.target = 3000};
    CHECK(ru_h_wait(cond_consumed, &w, 30000), "rollupd did not read 3000 events: %s",
          obs_text(&w.o));
    struct st before = status_of(&d);
    CHECK(before.flushed == 0, "events_flushed = %lld before the stop (interval is 600 s)",
          before.flushed);
    long long xlen_at_stop = ru_h_xlen(T.r, T.stream);

    ru_h_daemon_kill(&d, SIGTERM);
    int rc = ru_h_daemon_wait_exit(&d, 30000);
    CHECK(rc == 0, "exit status %d after SIGTERM, want 0", rc);
    CHECK(ru_h_log_has(&d, "stopping: final flush"), "no 'stopping: final flush' in the log");
    /* everything delivered to the group before the exit is committed and acknowledged */
    struct ru_h_group g = group_info();
    long long total = hourly_total(), ck = checkpoint_events(), consumed = stopped_consumed(&d);
    cr_log_info("sigterm: stream at %lld when stopped; entries-read %lld, pending %lld,"
                " committed %lld, consumed %lld",
                xlen_at_stop, g.entries_read, g.pending, total, consumed);
    CHECK(g.found && g.pending == 0,
          "%lld entries still pending in the group after a graceful stop (entries-read %lld,"
          " committed %lld)",
          g.pending, g.entries_read, total);
    CHECK(total > 0 && total == g.entries_read,
          "committed %lld events but the group delivered %lld (entries-read)", total,
          g.entries_read);
    CHECK(ck == total && consumed == total,
          "checkpoint events %lld, 'stopped events_consumed=' %lld, hourly total %lld", ck,
          consumed, total);
    CHECK(ru_h_xlen(T.r, T.dead) == 0, "dead letters without invalid input");

    /* restart (short flush interval now) and feed more */
    rewrite_config(&d, base_cfg(200));
    long long valid = ru_h_loadgen_finish(&lg);
    long long written = ru_h_loadgen_last()->written;
    ru_h_daemon_restart(&d);
    valid += ru_h_loadgen("-s %s -n 5000 --seed 52 --start-ts %lld --hours 3 --oracle %s --quiet",
                          T.stream, H0, T.oracle);
    written += ru_h_loadgen_last()->written;
    wait_drained(written, "sigterm_graceful after restart");
    cr_assert_eq(ru_h_oracle_load(T.pg, T.oracle), valid);
    CHECK(hourly_total() == valid && checkpoint_events() == valid,
          "sum(total_requests) %lld, checkpoint events %lld, want %lld", hourly_total(),
          checkpoint_events(), valid);
    check_rows_match_oracle("sigterm_graceful");
    finish("sigterm_graceful");
}

/* The daemon is idle in XREADGROUP BLOCK: nothing in memory or pending, and its first
 * XINFO GROUPS (queued behind the first live read) has been answered, so the blocked read
 * is the only command it waits for. */
static bool cond_idle_blocked(void *arg)
{
    struct st s = status_of(arg);
    return s.ok && s.redis && s.pg && s.pending == 0 && !s.in_flush && s.lag_known &&
           ru_h_xpending(T.r, T.stream, T.group) == 0;
}

#define STOP_CYCLES 3

/* SIGTERM while the daemon waits in XREADGROUP BLOCK with nothing in memory, and an entry
 * arrives while it shuts down: Redis hands that entry to the blocked read, so the daemon
 * must take it in, commit and acknowledge it before exiting (its stop deadline of
 * block_ms + 2 s exists for this), not leave it pending on the stopped consumer. */
Test(e2e, sigterm_inflight_read, .timeout = 120)
{
    setup();
    struct ru_h_cfg k = base_cfg(200);
    struct ru_h_daemon d;
    start_connected(&d, &k);

    int stranded = 0;
    struct ru_buf ids = RU_BUF_INIT;
    for (int i = 0; i < STOP_CYCLES; i++) {
        CHECK(ru_h_wait(cond_idle_blocked, &d, 20000),
              "cycle %d: the daemon did not become idle (nothing pending, group_lag reported)",
              i + 1);
        ru_h_daemon_kill(&d, SIGTERM);
        ru_h_sleep_ms(1); /* pacing: let the signal be handled first */
        redisReply *x = ru_h_redis_cmd(T.r,
                                       "XADD %s * route /api/v1/stop method GET timestamp %lld"
                                       " duration_ms 5 status_code 200",
                                       T.stream, H0 + i);
        cr_assert_eq(x->type, REDIS_REPLY_STRING);
        char id[64];
        snprintf(id, sizeof(id), "%s", x->str);
        freeReplyObject(x);
        int rc = ru_h_daemon_wait_exit(&d, 30000);
        CHECK(rc == 0, "cycle %d: exit status %d after SIGTERM, want 0", i + 1, rc);
        long long pending = ru_h_xpending(T.r, T.stream, T.group);
        cr_log_info("sigterm_inflight_read: cycle %d, entry %s added during the stop, %lld"
                    " pending after the exit",
                    i + 1, id, pending);
        if (pending > 0) {
            stranded++;
            ru_buf_printf(&ids, " %s", id);
        }
        ru_h_daemon_restart(&d); /* replays whatever was left pending */
    }
    /* nothing is lost in the end: the restarted consumer replays its pending entries */
    wait_drained(STOP_CYCLES, "sigterm_inflight_read");
    CHECK(hourly_total() == STOP_CYCLES, "sum(total_requests) %lld, want %d", hourly_total(),
          STOP_CYCLES);
    CHECK(stranded == 0,
          "DAEMON BUG (graceful stop does not wait for its in-flight XREADGROUP): in %d of %d"
          " SIGTERM stops of an idle daemon, the entry added during the shutdown (%s) was"
          " delivered by Redis to the blocked XREADGROUP but never taken in: rollupd exited 0"
          " with it still pending in the group (XPENDING > 0). Only a restart of the same"
          " consumer name recovers it. Cause: ru_stream_idle() counts the outstanding"
          " blocked read as idle, so the stop path neither waits for its reply (stop deadline"
          " block_ms + 2 s) nor flushes what it returns",
          stranded, STOP_CYCLES, ids.p ? ids.p : "");
    ru_buf_free(&ids);
    finish("sigterm_inflight_read");
}

/* ------------------------------------------------------------------ 6 */

Test(e2e, two_instances_one_group, .timeout = 240)
{
    setup();
    struct ru_h_daemon d1, d2;
    start_pair(&d1, &d2, 200);

    long long valid = ru_h_loadgen("-s %s -n 40000 --rate 20000 --seed 61 --start-ts %lld"
                                   " --hours 4 --invalid-frac 0.01 --oracle %s --quiet",
                                   T.stream, H0, T.oracle);
    struct ru_h_lg_result res = *ru_h_loadgen_last();
    wait_flushed(res.written, "two_instances_one_group");

    struct st s1 = status_of(&d1), s2 = status_of(&d2);
    cr_log_info("two instances: c1 consumed %lld (%lld invalid), c2 consumed %lld (%lld invalid)",
                s1.consumed, s1.invalid, s2.consumed, s2.invalid);
    CHECK(s1.consumed > 0 && s2.consumed > 0,
          "both consumers must get entries: c1 consumed %lld, c2 consumed %lld", s1.consumed,
          s2.consumed);
    CHECK(s1.consumed + s2.consumed == valid && s1.flushed + s2.flushed == valid,
          "consumed %lld + %lld, flushed %lld + %lld, want %lld valid", s1.consumed, s2.consumed,
          s1.flushed, s2.flushed, valid);
    CHECK(s1.invalid + s2.invalid == res.invalid, "invalid %lld + %lld, want %lld", s1.invalid,
          s2.invalid, res.invalid);
    CHECK(ru_h_xpending(T.r, T.stream, T.group) == 0, "entries still pending");
    cr_assert_eq(ru_h_oracle_load(T.pg, T.oracle), valid);
    check_rows_match_oracle("two_instances_one_group");
    long long consumers = ru_h_pg_int(T.pg, "SELECT count(*) FROM rollupd_checkpoint");
    CHECK(consumers == 2 && checkpoint_events() == valid,
          "%lld checkpoint rows (want 2) counting %lld events (want %lld)", consumers,
          checkpoint_events(), valid);
    finish("two_instances_one_group");
}

/* ------------------------------------------------------------------ 7 */

/* Fields with a literal name and value (sizeof keeps embedded NUL bytes). */
#define KV(key, val)                                                                               \
    {                                                                                              \
        key, val, sizeof(key) - 1, sizeof(val) - 1                                                 \
    }
#define KV_END                                                                                     \
    {                                                                                              \
        NULL, NULL, 0, 0                                                                           \
    }
#define MAX_KV 16

/* XADD stream * fields...; returns the new id (malloc'd). */
static char *xadd_kv(const struct ru_h_kv *f)
{
    return ru_h_xadd(T.r, T.stream, f);
}

static size_t kv_count(const struct ru_h_kv *f)
{
    size_t n = 0;
    while (f[n].k)
        n++;
    return n;
}

/* Valid events: the fields written and the oracle line (route, method, user, ts, duration,
 * status, qpn, req, resp, db, cache). */
struct valid_ev {
    struct ru_h_kv f[MAX_KV];
    const char *oracle;
};

static const struct valid_ev VALID[] = {
    {{KV("route", "/api/v1/tags"), KV("method", "GET"), KV("user_id", ""),
      KV("timestamp", "1761228001.5"), KV("duration_ms", "12"), KV("status_code", "200"),
      KV("query_params", "{\"page\": \"1\", \"sort\": \"name\"}"),
      KV("query_params_normalized", "{\"sort\": \"name\"}"), KV("request_size_bytes", "0"),
      KV("response_size_bytes", "18"), KV("error_type", ""), KV("cache_status", ""), KV_END},
     "/api/v1/tags\tGET\t\\N\t1761228001.5\t12\t200\t{\"sort\": \"name\"}\t0\t18\t\\N\t\\N"},
    {{KV("route", "/api/v1/tags"), KV("user_id", "121e194b-4caa-4b81-ad4f-86ca3919d5b9"),
      KV("timestamp", "1761228002"), KV("duration_ms", "30"), KV("status_code", "404"),
      KV("query_params_normalized", "{ \"sort\" : \"name\" }"), KV("db_query_count", "3"), KV_END},
     "/api/v1/tags\tGET\t121e194b-4caa-4b81-ad4f-86ca3919d5b9\t1761228002\t30\t404\t"
     "{\"sort\": \"name\"}\t0\t0\t3\t\\N"},
    {{KV("route", "/api/v1/tags"), KV("method", "OPTIONS"), KV("user_id", ""),
      KV("timestamp", "1761228003.25"), KV("duration_ms", "1"), KV("status_code", "200"), KV_END},
     "/api/v1/tags\tOPTIONS\t\\N\t1761228003.25\t1\t200\t\\N\t0\t0\t\\N\t\\N"},
    {{KV("route", "/api/v1/content/unified"), KV("method", "GET"),
      KV("user_id", "121E194B-4CAA-4B81-AD4F-86CA3919D5B9"), KV("timestamp", "1761228004"),
      KV("duration_ms", "111"), KV("status_code", "500"),
      KV("query_params_normalized", "{\"b\": [\"1\", \"2\"], \"a\": \"x\"}"),
      KV("request_size_bytes", "10"), KV("response_size_bytes", "0"),
      KV("error_type", "server_error"), KV("cache_status", "miss"), KV_END},
     "/api/v1/content/unified\tGET\t121e194b-4caa-4b81-ad4f-86ca3919d5b9\t1761228004\t111\t500\t"
     "{\"a\": \"x\", \"b\": [\"1\", \"2\"]}\t10\t0\t\\N\tmiss"},
    {{KV("route", "/api/v1/content/unified"), KV("method", "GET"), KV("user_id", ""),
      KV("timestamp", "1761228005"), KV("duration_ms", "222"), KV("status_code", "307"),
      KV("query_params_normalized", "{\"a\":\"x\",\"b\":[\"1\",\"2\"]}"), KV("cache_status", "hit"),
      KV("app_version", "0.4.2"), KV_END},
     "/api/v1/content/unified\tGET\t\\N\t1761228005\t222\t307\t"
     "{\"a\": \"x\", \"b\": [\"1\", \"2\"]}\t0\t0\t\\N\thit"},
    {{KV("route", "/api/v1/content/unified"), KV("method", "GET"),
      KV("user_id", "dfbb88fc-3c31-468f-a2d7-99605206c985"), KV("timestamp", "1761231601"),
      KV("duration_ms", "7"), KV("status_code", "201"), KV_END},
     "/api/v1/content/unified\tGET\tdfbb88fc-3c31-468f-a2d7-99605206c985\t1761231601\t7\t201\t"
     "\\N\t0\t0\t\\N\t\\N"},
    {{KV("route", "/api/v1/tags"), KV("method", "GET"), KV("timestamp", "1761228006.000001"),
      KV("duration_ms", "13"), KV("status_code", "200"),
      KV("query_params_normalized", "{\"sort\": \"name\"}"), KV("db_query_count", "4"), KV_END},
     "/api/v1/tags\tGET\t\\N\t1761228006.000001\t13\t200\t{\"sort\": \"name\"}\t0\t0\t4\t\\N"},
    {{KV("route", "/api/v1/users/me"), KV("method", "GET"),
      KV("user_id", "dfbb88fc-3c31-468f-a2d7-99605206c985"), KV("timestamp", "1761228007"),
      KV("duration_ms", "2"), KV("status_code", "401"), KV("error_type", "client_error"), KV_END},
     "/api/v1/users/me\tGET\tdfbb88fc-3c31-468f-a2d7-99605206c985\t1761228007\t2\t401\t"
     "\\N\t0\t0\t\\N\t\\N"},
    {{KV("route", "/api/v1/users/me"), KV("method", "GET"), KV("user_id", ""),
      KV("timestamp", "1761228008"), KV("duration_ms", "4"), KV("status_code", "200"), KV_END},
     "/api/v1/users/me\tGET\t\\N\t1761228008\t4\t200\t\\N\t0\t0\t\\N\t\\N"},
    {{KV("route", "/api/v1/tags"), KV("method", "GET"), KV("timestamp", "1761228009"),
      KV("duration_ms", "14"), KV("status_code", "200"),
      KV("query_params_normalized", "{\"sort\": \"name\"}"), KV_END},
     "/api/v1/tags\tGET\t\\N\t1761228009\t14\t200\t{\"sort\": \"name\"}\t0\t0\t\\N\t\\N"},
    {{KV("route", "/api/v1/tags"), KV("method", "GET"), KV("timestamp", "1761228010"),
      KV("duration_ms", "15"), KV("status_code", "304"),
      KV("query_params_normalized", "{\"sort\": \"name\"}"), KV_END},
     "/api/v1/tags\tGET\t\\N\t1761228010\t15\t304\t{\"sort\": \"name\"}\t0\t0\t\\N\t\\N"},
    {{KV("route", "/api/v1/tags"), KV("method", "GET"), KV("timestamp", "1761228011"),
      KV("duration_ms", "16"), KV("status_code", "503"),
      KV("query_params_normalized", "{\"sort\": \"name\"}"), KV_END},
     "/api/v1/tags\tGET\t\\N\t1761228011\t16\t503\t{\"sort\": \"name\"}\t0\t0\t\\N\t\\N"},
};

/* Malformed entries: each has exactly one defect; reason_has names the field. */
struct bad_ev {
    const char *what, *reason_has;
    struct ru_h_kv f[MAX_KV];
};

#define OK_TAIL                                                                                    \
    KV("duration_ms", "12"), KV("status_code", "200"), KV("query_params_normalized", "{}")

static const struct bad_ev BAD[] = {
    {"missing route",
     "route",
     {KV("method", "GET"), KV("timestamp", "1761228100"), OK_TAIL, KV_END}},
    {"empty route",
     "route",
     {KV("route", ""), KV("method", "GET"), KV("timestamp", "1761228100"), OK_TAIL, KV_END}},
    {"timestamp abc",
     "timestamp",
     {KV("route", "/api/v1/tags"), KV("timestamp", "abc"), OK_TAIL, KV_END}},
    {"duration 12.5",
     "duration_ms",
     {KV("route", "/api/v1/tags"), KV("timestamp", "1761228100"), KV("duration_ms", "12.5"),
      KV("status_code", "200"), KV_END}},
    {"status missing",
     "status_code",
     {KV("route", "/api/v1/tags"), KV("timestamp", "1761228100"), KV("duration_ms", "12"), KV_END}},
    {"params [1,2]",
     "query_params_normalized",
     {KV("route", "/api/v1/tags"), KV("timestamp", "1761228100"), KV("duration_ms", "12"),
      KV("status_code", "200"), KV("query_params_normalized", "[1,2]"), KV_END}},
    {"params {broken",
     "query_params_normalized",
     {KV("route", "/api/v1/tags"), KV("timestamp", "1761228100"), KV("duration_ms", "12"),
      KV("status_code", "200"), KV("query_params_normalized", "{broken"), KV_END}},
    {"route not UTF-8",
     "route",
     {KV("route", "/api/v1/\xff\xfe"), KV("timestamp", "1761228100"), OK_TAIL, KV_END}},
    {"NUL in route",
     "route",
     {KV("route", "/api/v1/ta\0gs"), KV("timestamp", "1761228100"), OK_TAIL, KV_END}},
    {"repeated field",
     "route",
     {KV("route", "/api/v1/tags"), KV("timestamp", "1761228100"), OK_TAIL,
      KV("route", "/api/v1/tags"), KV_END}},
};

#define NVALID RU_ARRAY_LEN(VALID)
#define NBAD   RU_ARRAY_LEN(BAD)

/* Finds the dead letter of entry id in reply (XRANGE of the dead stream); NULL if none. */
static const redisReply *dead_letter_of(const redisReply *all, const char *id)
{
    for (size_t i = 0; i < all->elements; i++) {
        const redisReply *f = all->element[i]->element[1];
        if (f->elements >= 2 && strcmp(f->element[0]->str, "rollupd.entry_id") == 0 &&
            strcmp(f->element[1]->str, id) == 0)
            return f;
    }
    return NULL;
}

Test(e2e, invalid_entries_dead_lettered, .timeout = 120)
{
    setup();
    FILE *of = fopen(T.oracle, "w");
    cr_assert_not_null(of);
    for (size_t i = 0; i < NVALID; i++)
        fprintf(of, "%s\n", VALID[i].oracle);
    fclose(of);

    struct ru_h_cfg k = base_cfg(200);
    struct ru_h_daemon d;
    start_connected(&d, &k);

    /* valid, bad, valid, bad, ..., then the remaining valid ones */
    char *bad_id[NBAD];
    for (size_t i = 0; i < NVALID || i < NBAD; i++) {
        if (i < NVALID)
            free(xadd_kv(VALID[i].f));
        if (i < NBAD)
            bad_id[i] = xadd_kv(BAD[i].f);
    }
    wait_flushed((long long)(NVALID + NBAD), "invalid_entries_dead_lettered");

    struct st s = status_of(&d);
    CHECK(s.invalid == (long long)NBAD && s.dead_lettered == (long long)NBAD,
          "events_invalid %lld, events_dead_lettered %lld, want %zu", s.invalid, s.dead_lettered,
          NBAD);
    CHECK(s.flushed == (long long)NVALID && s.consumed == (long long)NVALID,
          "events_flushed %lld, events_consumed %lld, want %zu", s.flushed, s.consumed, NVALID);
    CHECK(ru_h_xpending(T.r, T.stream, T.group) == 0, "entries still pending");
    long long dead_len = ru_h_xlen(T.r, T.dead);
    CHECK(dead_len == (long long)NBAD, "%s has %lld entries, want %zu", T.dead, dead_len, NBAD);

    redisReply *all = ru_h_redis_cmd(T.r, "XRANGE %s - +", T.dead);
    cr_assert_eq(all->type, REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < NBAD; i++) {
        const redisReply *f = dead_letter_of(all, bad_id[i]);
        CHECK(f != NULL, "no dead letter with rollupd.entry_id %s (%s)", bad_id[i], BAD[i].what);
        size_t nf = kv_count(BAD[i].f);
        CHECK(f->elements == 6 + 2 * nf,
              "dead letter of %s (%s): %zu field names and values,"
              " want %zu",
              bad_id[i], BAD[i].what, f->elements, 6 + 2 * nf);
        CHECK(strcmp(f->element[4]->str, "rollupd.group") == 0 &&
                  strcmp(f->element[5]->str, T.group) == 0,
              "dead letter of %s (%s): no rollupd.group %s", bad_id[i], BAD[i].what, T.group);
        CHECK(strcmp(f->element[2]->str, "rollupd.reason") == 0 && f->element[3]->len > 0,
              "dead letter of %s (%s): no non-empty rollupd.reason", bad_id[i], BAD[i].what);
        CHECK(strstr(f->element[3]->str, BAD[i].reason_has) != NULL,
              "dead letter of %s (%s): reason '%s' does not name '%s'", bad_id[i], BAD[i].what,
              f->element[3]->str, BAD[i].reason_has);
        cr_log_info("dead letter (%s): %s", BAD[i].what, f->element[3]->str);
        for (size_t j = 0; j < nf; j++) {
            const redisReply *name = f->element[6 + 2 * j], *val = f->element[7 + 2 * j];
            CHECK(
                name->len == BAD[i].f[j].klen && memcmp(name->str, BAD[i].f[j].k, name->len) == 0 &&
                    val->len == BAD[i].f[j].vlen && memcmp(val->str, BAD[i].f[j].v, val->len) == 0,
                "dead letter of %s (%s): field %zu is '%.*s'='%.*s', want '%s' (%zu bytes)",
                bad_id[i], BAD[i].what, j, (int)name->len, name->str, (int)val->len, val->str,
                BAD[i].f[j].k, BAD[i].f[j].vlen);
        }
        free(bad_id[i]);
    }
    freeReplyObject(all);

    /* the valid entries behind them were counted, with genonaut's semantics */
    CHECK(hourly_total() == (long long)NVALID, "sum(total_requests) %lld, want %zu", hourly_total(),
          NVALID);
    cr_assert_eq(ru_h_oracle_load(T.pg, T.oracle), (long long)NVALID);
    check_rows_match_oracle("invalid_entries_dead_lettered");
    finish("invalid_entries_dead_lettered");
}

/* ------------------------------------------------------------------ 8 */

/* genonaut's aggregation job over its raw table, with the compared columns. */
static const char RAW_AGG[] =
    "SELECT date_trunc('hour', r.\"timestamp\") AS \"timestamp\", r.route,"
    " r.method::text AS method, r.query_params_normalized,"
    " count(*)::integer AS total_requests,"
    " (count(*) FILTER (WHERE r.status_code BETWEEN 200 AND 299))::integer,"
    " (count(*) FILTER (WHERE r.status_code BETWEEN 400 AND 499))::integer,"
    " (count(*) FILTER (WHERE r.status_code >= 500))::integer,"
    " avg(r.duration_ms)::integer,"
    " (percentile_cont(0.5) WITHIN GROUP (ORDER BY r.duration_ms))::integer,"
    " (percentile_cont(0.95) WITHIN GROUP (ORDER BY r.duration_ms))::integer,"
    " (percentile_cont(0.99) WITHIN GROUP (ORDER BY r.duration_ms))::integer,"
    " count(DISTINCT r.user_id)::integer,"
    " avg(r.request_size_bytes)::integer, avg(r.response_size_bytes)::integer,"
    " avg(r.db_query_count)::float8,"
    " (count(*) FILTER (WHERE r.cache_status = 'hit'))::integer,"
    " (count(*) FILTER (WHERE r.cache_status = 'miss'))::integer"
    " FROM route_analytics r GROUP BY 1, 2, 3, 4";

static const char HOURLY_COLS[] =
    "SELECT \"timestamp\", route, method::text, query_params_normalized, total_requests,"
    " successful_requests, client_errors, server_errors, avg_duration_ms, p50_duration_ms,"
    " p95_duration_ms, p99_duration_ms, unique_users, avg_request_size_bytes,"
    " avg_response_size_bytes, avg_db_query_count, cache_hits, cache_misses"
    " FROM route_analytics_hourly";

/* Raw rows (what can be compared with the oracle) minus the oracle and the reverse. */
static const char RAW_ROWS[] =
    "SELECT route, method::text, user_id, (extract(epoch FROM \"timestamp\") * 1000000)::bigint,"
    " duration_ms, status_code::int, query_params_normalized, request_size_bytes,"
    " response_size_bytes, db_query_count, cache_status::text FROM route_analytics";
static const char ORACLE_ROWS[] =
    "SELECT route, method, user_id, (ts::numeric * 1000000)::bigint, duration_ms, status_code,"
    " coalesce(qpn, '{}'::jsonb), nullif(req, 0), nullif(resp, 0), db, cache FROM oracle_raw";

/* Checks route_analytics against the oracle (every valid event once) and genonaut's
 * aggregation of route_analytics against route_analytics_hourly. */
static void check_raw(const char *what, long long valid, const char *hourly_where)
{
    long long raw = ru_h_pg_int(T.pg, "SELECT count(*) FROM route_analytics");
    CHECK(raw == valid, "%s: route_analytics has %lld rows, want %lld valid events", what, raw,
          valid);
    long long d1 =
        ru_h_pg_intf(T.pg, "SELECT count(*) FROM (%s EXCEPT ALL %s) x", RAW_ROWS, ORACLE_ROWS);
    long long d2 =
        ru_h_pg_intf(T.pg, "SELECT count(*) FROM (%s EXCEPT ALL %s) x", ORACLE_ROWS, RAW_ROWS);
    CHECK(d1 == 0 && d2 == 0,
          "%s: %lld raw rows are not in the oracle, %lld oracle events are not in"
          " route_analytics",
          what, d1, d2);
    long long h1 =
        ru_h_pg_intf(T.pg, "SELECT count(*) FROM (SELECT * FROM (%s) a WHERE %s EXCEPT ALL %s) x",
                     HOURLY_COLS, hourly_where, RAW_AGG);
    long long h2 =
        ru_h_pg_intf(T.pg, "SELECT count(*) FROM (%s EXCEPT ALL SELECT * FROM (%s) a WHERE %s) x",
                     RAW_AGG, HOURLY_COLS, hourly_where);
    CHECK(h1 == 0 && h2 == 0,
          "%s: genonaut's SQL over route_analytics differs from route_analytics_hourly: %lld"
          " hourly rows not in it, %lld of its rows not in the hourly table",
          what, h1, h2);
}

Test(e2e, raw_mode, .timeout = 180)
{
    setup();
    struct ru_h_cfg k = base_cfg(200);
    k.raw_table = "route_analytics";
    struct ru_h_daemon d;
    start_connected(&d, &k);
    long long valid = ru_h_loadgen("-s %s -n 10000 --seed 81 --start-ts %lld --hours 3"
                                   " --invalid-frac 0.01 --oracle %s --quiet",
                                   T.stream, H0, T.oracle);
    struct ru_h_lg_result res = *ru_h_loadgen_last();
    wait_flushed(res.written, "raw_mode");
    struct st s = status_of(&d);
    CHECK(s.raw_written == valid && s.raw_rejected == 0,
          "raw_rows_written %lld, raw_rows_rejected %lld, want %lld and 0", s.raw_written,
          s.raw_rejected, valid);
    cr_assert_eq(ru_h_oracle_load(T.pg, T.oracle), valid);
    check_raw("raw_mode", valid, "true");
    check_rows_match_oracle("raw_mode");
    finish("raw_mode");
}

/* ------------------------------------------------------------------ 9 */

static const char OLD_ROW[] =
    "SELECT concat_ws(',', id, \"timestamp\", route, method, query_params_normalized,"
    " total_requests, p95_duration_ms, created_at) FROM route_analytics_hourly"
    " WHERE \"timestamp\" < '2021-01-01'";

Test(e2e, existing_genonaut_schema, .timeout = 180)
{
    setup();
    ru_h_genonaut_schema(T.pg);
    /* a row genonaut's own job wrote long ago: rollupd must leave it alone */
    ru_h_pg_exec(T.pg,
                 "INSERT INTO route_analytics_hourly (\"timestamp\", route, method,"
                 " query_params_normalized, total_requests, successful_requests, client_errors,"
                 " server_errors, avg_duration_ms, p50_duration_ms, p95_duration_ms,"
                 " p99_duration_ms, unique_users, cache_hits, cache_misses, created_at)"
                 " VALUES ('2020-01-01 10:00', '/api/v1/tags', 'GET', '{}', 5, 5, 0, 0, 10, 9, 20,"
                 " 21, 2, 0, 0, '2020-01-01 11:00:00')");
    char *old = ru_h_pg_text(T.pg, OLD_ROW);

    struct ru_h_cfg k = base_cfg(200);
    k.raw_table = "route_analytics";
    struct ru_h_daemon d;
    start_connected(&d, &k);
    long long valid = ru_h_loadgen("-s %s -n 8000 --seed 91 --start-ts %lld --hours 3"
                                   " --invalid-frac 0.01 --oracle %s --quiet",
                                   T.stream, H0, T.oracle);
    wait_flushed(ru_h_loadgen_last()->written, "existing_genonaut_schema");
    cr_assert_eq(ru_h_oracle_load(T.pg, T.oracle), valid);

    const char *recent = "\"timestamp\" >= '2021-01-01'";
    check_oracle("existing_genonaut_schema", recent);
    long long rows =
        ru_h_pg_intf(T.pg, "SELECT count(*) FROM route_analytics_hourly WHERE %s", recent);
    CHECK(rows == oracle_groups(), "%lld rows, want %lld", rows, oracle_groups());
    char *now = ru_h_pg_text(T.pg, OLD_ROW);
    CHECK(now && strcmp(now, old) == 0, "the old row changed: was %s, now %s", old,
          now ? now : "(gone)");
    free(old);
    free(now);
    /* genonaut's definitions are kept, not doubled */
    long long idx = ru_h_pg_int(T.pg, "SELECT count(*) FROM pg_indexes"
                                      " WHERE tablename = 'route_analytics_hourly'");
    CHECK(idx == 7, "route_analytics_hourly has %lld indexes, want genonaut's 7", idx);
    long long uq = ru_h_pg_int(T.pg, "SELECT count(*) FROM pg_constraint WHERE conrelid ="
                                     " 'route_analytics_hourly'::regclass AND contype = 'u'");
    CHECK(uq == 1, "route_analytics_hourly has %lld unique constraints, want 1", uq);
    check_raw("existing_genonaut_schema", valid, recent);
    finish("existing_genonaut_schema");
}

/* ------------------------------------------------------------------ 10 */

/* 1-based number of the line of text that contains needle; 0 when absent. */
static int line_of(const char *text, const char *needle)
{
    const char *p = strstr(text, needle);
    if (p == NULL)
        return 0;
    int line = 1;
    for (const char *q = text; q < p; q++)
        line += *q == '\n';
    return line;
}

/* State tables of an earlier build (per-value rows) cannot be carried over: rollupd must
 * not start writing, and must say why, rather than reset the rows they describe. */
static bool cond_refused_old_state(void *arg)
{
    json_t *j = ru_h_status(((struct ru_h_daemon *)arg)->sock);
    const char *e = j ? json_string_value(json_object_get(j, "postgres_last_error")) : NULL;
    bool ok = e && strstr(e, "earlier rollupd build") != NULL;
    json_decref(j);
    return ok;
}

Test(e2e, refuses_earlier_state_tables, .timeout = 60)
{
    setup();
    ru_h_pg_exec(T.pg, "CREATE TABLE rollupd_hist (hourly_id bigint, value int, cnt bigint)");
    struct ru_h_cfg k = base_cfg(200);
    struct ru_h_daemon d;
    start_daemon(&d, &k);
    CHECK(ru_h_wait(cond_refused_old_state, &d, 20000),
          "rollupd did not report the earlier build's rollupd_hist within 20 s");
    ru_h_loadgen("-s %s -n 100 --seed 5 --start-ts %lld --hours 1 --quiet", T.stream, H0);
    struct st s = status_of(&d);
    CHECK(!s.pg && s.flushed == 0, "it connected or flushed anyway (flushed %lld)", s.flushed);
    CHECK(ru_h_pg_int(T.pg, "SELECT count(*) FROM route_analytics_hourly") == 0,
          "hourly rows were written");
    finish("refuses_earlier_state_tables");
}

Test(e2e, config_check, .timeout = 60)
{
    setup();
    static const char *const test_args[] = {"-t", NULL};

    struct ru_h_cfg k = base_cfg(200);
    char *good = ru_h_config(&k);
    struct ru_h_daemon d;
    ru_h_daemon_spawn(&d, good, test_args);
    track(&d);
    int rc = ru_h_daemon_wait_exit(&d, 10000);
    CHECK(rc == 0, "rollupd -c %s -t: exit status %d for a valid file, want 0", d.conf, rc);
    CHECK(ru_h_log_has(&d, "is valid"), "rollupd -t printed no 'is valid' for a valid file");
    CHECK(ru_h_redis_int(T.r, "EXISTS %s", T.stream) == 0, "rollupd -t touched Redis (created %s)",
          T.stream);
    free(good);

    k.flush_extra = "bogus_key = 1;";
    char *bad = ru_h_config(&k);
    int line = line_of(bad, "bogus_key");
    cr_assert_gt(line, 0);
    struct ru_h_daemon b;
    ru_h_daemon_spawn(&b, bad, test_args);
    track(&b);
    rc = ru_h_daemon_wait_exit(&b, 10000);
    CHECK(rc == 1, "rollupd -c %s -t: exit status %d for a bad key, want 1", b.conf, rc);
    char where[RU_H_PATH + 16];
    snprintf(where, sizeof(where), "%s:%d:", b.conf, line);
    CHECK(ru_h_log_has(&b, where), "the error does not name '%s' (file and line of the bad key)",
          where);
    CHECK(ru_h_log_has(&b, "bogus_key"), "the error does not name the key");

    /* without -t the daemon refuses to start on the same file */
    struct ru_h_daemon b2;
    ru_h_daemon_spawn(&b2, bad, NULL);
    track(&b2);
    rc = ru_h_daemon_wait_exit(&b2, 10000);
    CHECK(rc == 1, "rollupd -c %s with a bad key: exit status %d, want 1", b2.conf, rc);
    free(bad);
    finish("config_check");
}
