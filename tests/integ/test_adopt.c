/* Consumer takeover (Criterion suite "adopt"): the pending entries of a consumer that is
 * gone for good are applied exactly once under its own checkpoint, by hand (`adopt`) or
 * automatically (redis.claim_idle_ms), and never while that consumer's rollupd is alive.
 * Each test has its own database and stream; the hourly table is compared with genonaut's
 * SQL over exactly the events the load generator wrote. */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#define WAIT_MS 60000

static char stream[128], group[128], ci[256], oracle[RU_H_PATH];

static void setup(void)
{
    ru_h_names(stream, group, NULL, sizeof(stream));
    ru_h_fresh_db(ci, sizeof(ci));
    ru_h_tmp_path(oracle, sizeof(oracle), "oracle.tsv");
}

TestSuite(adopt, .init = setup, .timeout = 180);

static char *config(const char *consumer, int interval_ms, long long claim_idle_ms)
{
    struct ru_h_cfg c = {.stream = stream,
                         .group = group,
                         .consumer = consumer,
                         .conninfo = ci,
                         .flush_interval_ms = interval_ms,
                         .claim_idle_ms = claim_idle_ms,
                         .log_level = "info"};
    return ru_h_config(&c);
}

struct want {
    struct ru_h_daemon *d;
    const char *key;
    long long value;
};

static bool cond_status_ge(void *arg)
{
    struct want *w = arg;
    return ru_h_status_int(w->d, w->key) >= w->value;
}

static bool cond_nothing_pending(void *arg)
{
    (void)arg;
    redisContext *r = ru_h_redis();
    long long n = ru_h_xpending(r, stream, group);
    redisFree(r);
    return n == 0;
}

/* A first daemon (c1) reads everything into memory, never flushes, and dies: its
 * entries stay pending on c1. Returns the number of valid events fed. */
static long long strand_on_c1(int n, int seed)
{
    struct ru_h_daemon c1;
    char *cfg = config("c1", 600000, 0);
    ru_h_daemon_start(&c1, cfg);
    free(cfg);
    long long valid = ru_h_loadgen("-s %s -n %d --seed %d --invalid-frac 0.01 --oracle %s -q",
                                   stream, n, seed, oracle);
    struct want w = {&c1, "events_consumed", valid};
    cr_assert(ru_h_wait(cond_status_ge, &w, WAIT_MS), "c1 did not read the feed");
    ru_h_daemon_kill(&c1, SIGKILL);
    ru_h_daemon_wait_exit(&c1, 10000);
    redisContext *r = ru_h_redis();
    long long pending = ru_h_xpending(r, stream, group);
    redisFree(r);
    /* (invalid entries whose dead-letter transaction had not run yet are pending too) */
    cr_assert_geq(pending, valid, "c1 should leave its %lld valid entries pending, not %lld", valid,
                  pending);
    return valid;
}

static bool oracle_loaded;

/* Runs "rollupctl -s SOCK CMD" (which waits up to two minutes for an adoption, where
 * the status socket helper gives up after 5 s) and returns its output (malloc'd). */
static char *rollupctl(const struct ru_h_daemon *d, const char *cmd)
{
    char line[1024];
    snprintf(line, sizeof(line), "%s/rollupctl -s %s -t 120000 %s 2>&1", ru_h_env.build_dir,
             d->sock, cmd);
    FILE *p = popen(line, "r");
    cr_assert(p != NULL, "cannot run %s", line);
    struct ru_buf out = RU_BUF_INIT;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
        ru_buf_append(&out, buf, n);
    pclose(p);
    return out.p ? out.p : ru_xstrdup("");
}

static void assert_oracle(const char *what)
{
    PGconn *pg = ru_h_pg_connect(ci);
    if (!oracle_loaded) /* the feed is complete by the first comparison */
        ru_h_oracle_load(pg, oracle);
    oracle_loaded = true;
    long long diff = ru_h_oracle_diff(pg, "route_analytics_hourly");
    if (diff != 0)
        ru_h_oracle_print_diff(pg, "route_analytics_hourly");
    cr_assert_eq(diff, 0, "%s: route_analytics_hourly differs from genonaut's SQL (%lld rows)",
                 what, diff);
    PQfinish(pg);
}

Test(adopt, manual_adopt_applies_exactly_once)
{
    long long valid = strand_on_c1(8000, 11);
    /* more events arrive for c2 itself */
    long long more = ru_h_loadgen("-s %s -n 2000 --seed 12 --oracle %s -q", stream, oracle);
    struct ru_h_daemon c2;
    char *cfg = config("c2", 200, 0);
    ru_h_daemon_start(&c2, cfg);
    free(cfg);
    char *ans = rollupctl(&c2, "adopt c1");
    cr_assert(ans != NULL, "no answer to adopt");
    char want[128];
    snprintf(want, sizeof(want), "\"applied\":%lld", valid);
    cr_assert(strstr(ans, "\"adopted\":\"c1\"") && strstr(ans, want),
              "adopt answered %s, expected %s", ans, want);
    free(ans);
    cr_assert(ru_h_wait(cond_nothing_pending, NULL, WAIT_MS), "entries still pending");
    struct want w = {&c2, "events_flushed", more};
    cr_assert(ru_h_wait(cond_status_ge, &w, WAIT_MS), "c2 did not flush its own events");
    assert_oracle("after adopting c1");
    PGconn *pg = ru_h_pg_connect(ci);
    cr_assert_eq(ru_h_pg_int(pg, "SELECT events FROM rollupd_checkpoint WHERE consumer = 'c1'"),
                 valid, "c1's checkpoint should record the adopted events");
    PQfinish(pg);
    /* adopting again finds nothing left and changes nothing */
    ans = rollupctl(&c2, "adopt c1");
    cr_assert(ans && strstr(ans, "\"applied\":0"), "second adopt answered %s", ans ? ans : "");
    free(ans);
    assert_oracle("after adopting c1 twice");
    cr_assert_eq(ru_h_daemon_stop(&c2), 0);
}

Test(adopt, refused_while_the_consumer_is_alive)
{
    struct ru_h_daemon c1, c2;
    char *cfg = config("c1", 600000, 0);
    ru_h_daemon_start(&c1, cfg);
    free(cfg);
    long long valid = ru_h_loadgen("-s %s -n 3000 --seed 13 --oracle %s -q", stream, oracle);
    struct want w = {&c1, "events_consumed", valid};
    cr_assert(ru_h_wait(cond_status_ge, &w, WAIT_MS), "c1 did not read the feed");
    cfg = config("c2", 200, 0);
    ru_h_daemon_start(&c2, cfg);
    free(cfg);
    char *ans = rollupctl(&c2, "adopt c1");
    cr_assert(ans && strstr(ans, "error:") && strstr(ans, "alive"),
              "adopting a live consumer must be refused, got: %s", ans ? ans : "(nothing)");
    free(ans);
    /* c1 still owns its entries and commits them itself, once */
    ans = ru_h_sock_cmd(c1.sock, "flush");
    cr_assert(ans && strstr(ans, "\"flushed\":true"), "c1 flush answered %s", ans ? ans : "");
    free(ans);
    cr_assert(ru_h_wait(cond_nothing_pending, NULL, WAIT_MS), "entries still pending");
    assert_oracle("after a refused adoption");
    cr_assert_eq(ru_h_daemon_stop(&c1), 0);
    cr_assert_eq(ru_h_daemon_stop(&c2), 0);
}

Test(adopt, idle_consumer_claimed_automatically)
{
    long long valid = strand_on_c1(6000, 14);
    struct ru_h_daemon c2;
    char *cfg = config("c2", 200, 500);
    ru_h_daemon_start(&c2, cfg);
    free(cfg);
    struct want w = {&c2, "adoptions", 1};
    cr_assert(ru_h_wait(cond_status_ge, &w, WAIT_MS), "c2 did not adopt the idle consumer c1");
    cr_assert(ru_h_wait(cond_nothing_pending, NULL, WAIT_MS), "entries still pending");
    assert_oracle("after the automatic claim");
    PGconn *pg = ru_h_pg_connect(ci);
    cr_assert_eq(ru_h_pg_int(pg, "SELECT sum(total_requests) FROM route_analytics_hourly"), valid);
    PQfinish(pg);
    cr_assert_eq(ru_h_daemon_stop(&c2), 0);
}

/* Entries of the dead-letter stream and how many distinct rollupd.entry_id values they
 * carry (each invalid entry must be copied once). */
static long long dead_distinct(long long *total)
{
    char dead[160];
    snprintf(dead, sizeof(dead), "%s:dead", stream);
    redisContext *r = ru_h_redis();
    redisReply *rep = ru_h_redis_cmd(r, "XRANGE %s - +", dead);
    size_t n = rep->type == REDIS_REPLY_ARRAY ? rep->elements : 0;
    char **ids = n ? ru_xcalloc(n, sizeof(*ids)) : NULL;
    long long distinct = 0;
    for (size_t i = 0; i < n; i++) {
        const redisReply *f = rep->element[i]->element[1];
        for (size_t j = 0; j + 1 < f->elements; j += 2)
            if (strcmp(f->element[j]->str, "rollupd.entry_id") == 0)
                ids[i] = f->element[j + 1]->str;
        bool seen = ids[i] == NULL;
        for (size_t k = 0; k < i && !seen; k++)
            seen = ids[k] != NULL && strcmp(ids[k], ids[i]) == 0;
        distinct += !seen;
    }
    *total = (long long)n;
    free(ids);
    freeReplyObject(rep);
    redisFree(r);
    return distinct;
}

/* Adoptions of a live consumer, tried again and again while it reads and dead-letters a
 * feed with invalid entries: each is refused before anything of that consumer is read,
 * so no invalid entry is copied twice (once by its owner, once by the adoption). */
Test(adopt, refused_adoption_touches_nothing)
{
    struct ru_h_daemon c1, c2;
    char *cfg = config("c1", 500, 0);
    ru_h_daemon_start(&c1, cfg);
    free(cfg);
    cfg = config("c2", 500, 0);
    ru_h_daemon_start(&c2, cfg);
    free(cfg);
    struct ru_h_proc lg;
    ru_h_loadgen_start(&lg,
                       "-s %s -n 60000 --rate 15000 --seed 15 --invalid-frac 0.05 --oracle %s -q",
                       stream, oracle);
    /* "ready" is the status socket answering; c1 holds its consumer's lock once it reads,
     * and an adoption before that is rightly no refusal */
    struct want live = {&c1, "events_consumed", 1};
    cr_assert(ru_h_wait(cond_status_ge, &live, WAIT_MS), "c1 did not start reading");
    for (int i = 0; i < 10; i++) {
        char *ans = rollupctl(&c2, "adopt c1");
        cr_assert(ans && strstr(ans, "alive"), "adoption %d of the live c1 answered %s", i + 1,
                  ans ? ans : "(nothing)");
        free(ans);
        struct want w = {&c1, "events_consumed", 3000LL * (i + 1)};
        ru_h_wait(cond_status_ge, &w, 2000); /* paced by the feed, not a condition */
    }
    ru_h_loadgen_finish(&lg);
    long long invalid = ru_h_loadgen_last()->invalid;
    cr_assert(ru_h_wait(cond_nothing_pending, NULL, WAIT_MS), "entries still pending");
    long long total = 0, distinct = dead_distinct(&total);
    cr_assert_eq(distinct, invalid, "%lld distinct invalid entries copied, %lld fed", distinct,
                 invalid);
    cr_assert_eq(total, invalid, "%lld dead letters for %lld invalid entries: some copied twice",
                 total, invalid);
    assert_oracle("after ten refused adoptions");
    cr_assert_eq(ru_h_daemon_stop(&c1), 0);
    cr_assert_eq(ru_h_daemon_stop(&c2), 0);
}
