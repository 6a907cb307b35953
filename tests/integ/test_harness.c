/* Self-test of the integration-test tools: scripts/testenv's servers, rollupd-loadgen,
 * and the harness (names, PostgreSQL helpers, the oracle aggregation and diff, the status
 * socket client, waiting, config text). Needs no rollupd, except daemon_smoke, which is
 * skipped when rollupd is not built. */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "rollupd/cfgfile.h"
#include "rollupd/config.h"

Test(harness, env_and_servers)
{
    ru_h_env_load();
    cr_assert_gt(ru_h_env.redis_port, 0);
    cr_assert_gt(ru_h_env.pg_port, 0);
    cr_assert_neq(ru_h_env.redis_port, ru_h_env.pg_port);

    redisContext *r = ru_h_redis();
    redisReply *rep = ru_h_redis_cmd(r, "PING");
    cr_assert_eq(rep->type, REDIS_REPLY_STATUS);
    cr_assert_str_eq(rep->str, "PONG");
    freeReplyObject(rep);
    redisFree(r);

    PGconn *c = ru_h_pg();
    cr_assert_eq(ru_h_pg_int(c, "SELECT 41 + 1"), 42);
    char *db = ru_h_pg_text(c, "SELECT current_database()");
    cr_assert_str_eq(db, "rollupd_test");
    free(db);
    cr_assert_null(ru_h_pg_text(c, "SELECT NULL::text"));
    char err[256];
    cr_assert_eq(ru_h_pg_try_exec(c, "SELECT * FROM no_such_table", err, sizeof(err)), -1);
    cr_assert(strstr(err, "no_such_table") != NULL, "error: %s", err);
    PQfinish(c);
}

Test(harness, unique_names)
{
    char s1[128], g1[128], d1[128], s2[128], g2[128], d2[128];
    ru_h_names(s1, g1, d1, sizeof(s1));
    ru_h_names(s2, g2, d2, sizeof(s2));
    cr_assert_str_neq(s1, s2);
    cr_assert_str_neq(g1, g2);
    cr_assert_str_neq(d1, d2);
    cr_assert(strncmp(s1, "t:", 2) == 0, "stream %s", s1);

    char ci1[256], ci2[256];
    ru_h_fresh_db(ci1, sizeof(ci1));
    ru_h_fresh_db(ci2, sizeof(ci2));
    cr_assert_str_neq(ci1, ci2);
    PGconn *a = ru_h_pg_connect(ci1);
    PGconn *b = ru_h_pg_connect(ci2);
    ru_h_pg_exec(a, "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)");
    ru_h_pg_exec(b, "CREATE TABLE t (x int)");
    cr_assert_eq(ru_h_pg_int(a, "SELECT count(*) FROM t"), 2);
    cr_assert_eq(ru_h_pg_int(b, "SELECT count(*) FROM t"), 0);
    ru_h_genonaut_schema(b);
    cr_assert_eq(ru_h_pg_int(b, "SELECT count(*) FROM pg_indexes"
                                " WHERE tablename = 'route_analytics_hourly'"),
                 7); /* pkey, unique, 5 indexes */
    PQfinish(a);
    PQfinish(b);
}

/* ---- loadgen_oracle, in steps */

/* 5000 events with 2 % invalid into stream, the oracle in oracle; returns the valid ones. */
static long long loadgen_counts(const char *stream, const char *oracle)
{
    long long valid = ru_h_loadgen("-s %s -n 5000 --seed 1 --start-ts 1761228000 --oracle %s"
                                   " --invalid-frac 0.02 --quiet",
                                   stream, oracle);
    const struct ru_h_lg_result *res = ru_h_loadgen_last();
    cr_assert_eq(res->written, 5000);
    cr_assert_eq(res->valid + res->invalid, 5000);
    cr_assert_eq(res->valid, valid);
    cr_assert(res->invalid > 40 && res->invalid < 180, "invalid = %lld", res->invalid);

    redisContext *r = ru_h_redis();
    cr_assert_eq(ru_h_xlen(r, stream), res->written);
    redisFree(r);
    return valid;
}

/* The same seed and start write the same events (into stream:again, oracle in oracle2). */
static void loadgen_same_seed(const char *stream, const char *oracle2)
{
    redisContext *r = ru_h_redis();
    char stream2[160];
    snprintf(stream2, sizeof(stream2), "%s:again", stream);
    ru_h_loadgen("-s %s -n 5000 --seed 1 --start-ts 1761228000 --oracle %s --invalid-frac 0.02"
                 " --quiet --pipeline 37",
                 stream2, oracle2);
    redisReply *a = ru_h_redis_cmd(r, "XRANGE %s - + COUNT 50", stream);
    redisReply *b = ru_h_redis_cmd(r, "XRANGE %s - + COUNT 50", stream2);
    cr_assert_eq(a->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(a->elements, b->elements);
    for (size_t i = 0; i < a->elements; i++) {
        redisReply *fa = a->element[i]->element[1], *fb = b->element[i]->element[1];
        cr_assert_eq(fa->elements, fb->elements);
        for (size_t k = 0; k < fa->elements; k++)
            cr_assert(fa->element[k]->len == fb->element[k]->len &&
                          memcmp(fa->element[k]->str, fb->element[k]->str, fa->element[k]->len) ==
                              0,
                      "entry %zu field %zu differs", i, k);
    }
    freeReplyObject(a);
    freeReplyObject(b);
    redisFree(r);
}

/* Both oracles load (into oracle_raw and oracle_again) and are the same; a fresh database. */
static PGconn *load_both_oracles(const char *oracle, const char *oracle2, long long valid)
{
    char ci[256];
    ru_h_fresh_db(ci, sizeof(ci));
    PGconn *c = ru_h_pg_connect(ci);
    cr_assert_eq(ru_h_oracle_load(c, oracle), valid);
    cr_assert_eq(ru_h_oracle_load_into(c, "oracle_again", oracle2), valid);
    cr_assert_eq(ru_h_pg_int(c, "SELECT count(*) FROM (SELECT * FROM oracle_raw"
                                " EXCEPT ALL SELECT * FROM oracle_again) x"),
                 0);
    return c;
}

/* The events are genonaut-shaped. */
static void check_genonaut_shape(PGconn *c, long long valid)
{
    cr_assert_eq(ru_h_pg_int(c, "SELECT count(*) FROM oracle_raw WHERE status_code NOT IN"
                                " (200, 201, 204, 304, 307, 400, 401, 404, 422, 500, 503)"),
                 0);
    long long anon = ru_h_pg_int(c, "SELECT count(*) FROM oracle_raw WHERE user_id IS NULL");
    cr_assert(anon > valid / 5 && anon < valid * 2 / 5, "anonymous: %lld of %lld", anon, valid);
    cr_assert_eq(ru_h_pg_int(c, "SELECT count(DISTINCT date_trunc('hour',"
                                " to_timestamp(ts::float8) AT TIME ZONE 'UTC')) FROM oracle_raw"),
                 3);
    cr_assert(ru_h_pg_int(c, "SELECT count(DISTINCT route) FROM oracle_raw") >= 20);
    cr_assert(ru_h_pg_int(c, "SELECT max(duration_ms) FROM oracle_raw") > 2000);
    cr_assert(ru_h_pg_int(c, "SELECT count(*) FROM oracle_raw WHERE qpn IS NULL") > 0);
    cr_assert(ru_h_pg_int(c, "SELECT count(*) FROM oracle_raw WHERE db IS NULL") > valid / 3);
}

/* Spellings: the same jsonb written differently, the same user written differently. */
static void check_spellings(PGconn *c, const char *oracle)
{
    ru_h_pg_exec(c, "CREATE TABLE oracle_txt (route text, method text, user_id text, ts text,"
                    " duration_ms int, status_code int, qpn text, req int, resp int, db int,"
                    " cache text)");
    ru_h_oracle_load_into(c, "oracle_txt", oracle);
    long long respelled = ru_h_pg_int(c, "SELECT count(*) FROM (SELECT qpn::jsonb FROM oracle_txt"
                                         " WHERE qpn IS NOT NULL GROUP BY 1"
                                         " HAVING count(DISTINCT qpn) > 1) x");
    cr_assert(respelled >= 5, "jsonb values with several spellings: %lld", respelled);
    cr_assert(ru_h_pg_int(c, "SELECT count(*) FROM oracle_txt WHERE qpn LIKE '%\\u00%'") > 0);
    cr_assert(ru_h_pg_int(c, "SELECT count(DISTINCT user_id) - count(DISTINCT user_id::uuid)"
                             " FROM oracle_txt") > 0);
}

/* The aggregation sums to the valid events; an hourly table filled from it is identical,
 * and a changed, missing or duplicated row is found. */
static void check_oracle_diff(PGconn *c, long long valid)
{
    char *osql = ru_h_oracle_sql("oracle_raw");
    long long groups = ru_h_pg_intf(c, "SELECT count(*) FROM (%s) x", osql);
    cr_assert_gt(groups, 0);
    cr_assert_eq(ru_h_pg_intf(c, "SELECT sum(total_requests) FROM (%s) x", osql), valid);

    /* an hourly table filled from the aggregation is identical; a changed row is found */
    ru_h_genonaut_schema(c);
    ru_h_pg_execf(c,
                  "INSERT INTO route_analytics_hourly (\"timestamp\", route, method,"
                  " query_params_normalized, total_requests, successful_requests, client_errors,"
                  " server_errors, avg_duration_ms, p50_duration_ms, p95_duration_ms,"
                  " p99_duration_ms, unique_users, avg_request_size_bytes,"
                  " avg_response_size_bytes, avg_db_query_count, cache_hits, cache_misses,"
                  " created_at) SELECT *, now() AT TIME ZONE 'UTC' FROM (%s) x",
                  osql);
    free(osql);
    cr_assert_eq(ru_h_pg_int(c, "SELECT count(*) FROM route_analytics_hourly"), groups);
    long long d = ru_h_oracle_diff(c, "route_analytics_hourly");
    if (d != 0)
        ru_h_oracle_print_diff(c, "route_analytics_hourly");
    cr_assert_eq(d, 0);
    long long id1 = ru_h_pg_int(c, "SELECT min(id) FROM route_analytics_hourly");
    ru_h_pg_execf(c,
                  "UPDATE route_analytics_hourly SET p95_duration_ms = p95_duration_ms + 1"
                  " WHERE id = %lld",
                  id1);
    cr_assert_eq(ru_h_oracle_diff(c, "route_analytics_hourly"), 2);
    /* the filter applies to both sides */
    char *route = ru_h_pg_textf(c, "SELECT route FROM route_analytics_hourly WHERE id = %lld", id1);
    char where[512];
    snprintf(where, sizeof(where), "route <> '%s'", route);
    cr_assert_eq(ru_h_oracle_diff_ex(c, "oracle_raw", "route_analytics_hourly", where), 0);
    snprintf(where, sizeof(where), "route = '%s'", route);
    cr_assert_eq(ru_h_oracle_diff_ex(c, "oracle_raw", "route_analytics_hourly", where), 2);
    free(route);
    /* floats are compared exactly */
    long long id2 = ru_h_pg_intf(c,
                                 "SELECT max(id) FROM route_analytics_hourly"
                                 " WHERE avg_db_query_count > 0 AND id <> %lld",
                                 id1);
    ru_h_pg_execf(c,
                  "UPDATE route_analytics_hourly"
                  " SET avg_db_query_count = avg_db_query_count * (1 + 1e-15) WHERE id = %lld",
                  id2);
    cr_assert_eq(ru_h_oracle_diff(c, "route_analytics_hourly"), 4);
    /* a missing row */
    ru_h_pg_execf(c,
                  "DELETE FROM route_analytics_hourly WHERE id = (SELECT max(id)"
                  " FROM route_analytics_hourly WHERE id NOT IN (%lld, %lld))",
                  id1, id2);
    cr_assert_eq(ru_h_oracle_diff(c, "route_analytics_hourly"), 5);
    /* a duplicated row counts too (EXCEPT ALL) */
    ru_h_pg_exec(c, "CREATE TABLE h2 AS SELECT * FROM route_analytics_hourly;"
                    " INSERT INTO h2 SELECT * FROM route_analytics_hourly"
                    " WHERE id = (SELECT max(id) FROM route_analytics_hourly)");
    cr_assert_eq(ru_h_oracle_diff(c, "h2"), 6);
    ru_h_oracle_print_diff(c, "route_analytics_hourly");
}

/* loadgen -> stream and oracle; oracle -> genonaut's aggregation; diff finds changes. */
Test(harness, loadgen_oracle, .timeout = 300)
{
    char stream[128], group[128], dbname[128], oracle[512], oracle2[512];
    ru_h_names(stream, group, dbname, sizeof(stream));
    ru_h_tmp_path(oracle, sizeof(oracle), "oracle.tsv");
    ru_h_tmp_path(oracle2, sizeof(oracle2), "oracle2.tsv");

    long long valid = loadgen_counts(stream, oracle);
    loadgen_same_seed(stream, oracle2);
    PGconn *c = load_both_oracles(oracle, oracle2, valid);
    check_genonaut_shape(c, valid);
    check_spellings(c, oracle);
    check_oracle_diff(c, valid);
    PQfinish(c);
}

/* Writes lines to a fresh file and returns its path in out. */
static void write_lines(char *out, size_t n, const char *text)
{
    ru_h_tmp_path(out, n, "tiny.tsv");
    FILE *f = fopen(out, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

/* The aggregation's rounding and edge cases, computed by hand. */
Test(harness, oracle_tiny)
{
    char ci[256], file[512];
    ru_h_fresh_db(ci, sizeof(ci));
    PGconn *c = ru_h_pg_connect(ci);
    ru_h_pg_exec(c, "CREATE SCHEMA tiny");
    /* route, method, user, ts, duration, status, qpn, req, resp, db, cache */
    write_lines(file, sizeof(file),
                /* /a: durations 1, 2 -> avg 1.5 -> 2 (numeric, half away from zero);
                 * p50 1.5 -> 2 (float8, half to even); p95 1.95 -> 2; p99 1.99 -> 2 */
                "/a\tGET\t121e194b-4caa-4b81-ad4f-86ca3919d5b9\t1761235200.000000\t1\t200\t{}"
                "\t0\t0\t\\N\thit\n"
                "/a\tGET\t\\N\t1761238799.999999\t2\t404\t\\N\t10\t18\t3\t\\N\n"
                /* 15:59:59.999999 belongs to the hour before */
                "/a\tGET\t\\N\t1761235199.999999\t7\t200\t{}\t0\t0\t\\N\t\\N\n"
                /* /b: durations 1..4 -> avg 2.5 -> 3, p50 2.5 -> 2, p95 3.85 -> 4;
                 * one jsonb object in four spellings; one user in three spellings */
                "/b\tGET\t121E194B-4CAA-4B81-AD4F-86CA3919D5B9\t1761235300.5\t4\t201\t"
                "{\"x\": \"1\", \"n\": 20}\t100\t0\t1\tmiss\n"
                "/b\tGET\t{121e194b-4caa-4b81-ad4f-86ca3919d5b9}\t1761235301.25\t3\t500\t"
                "{ \"n\":20.0 ,\"x\" :\"1\" }\t0\t5\t1\thit\n"
                "/b\tGET\t\\N\t1761235302\t2\t304\t{\"x\": \"0\", \"n\": 2e1, \"x\": \"1\"}"
                "\t0\t6\t2\tmiss\n"
                "/b\tGET\tdfbb88fc-3c31-468f-a2d7-99605206c985\t1761235303\t1\t307\t"
                "{\"\\\\u0078\": \"1\", \"n\": 20.00}\t0\t0\t\\N\t\\N\n"
                /* /b OPTIONS is another group, and a missing qpn is {} */
                "/b\tOPTIONS\t\\N\t1761235304\t0\t200\t\\N\t0\t2\t\\N\t\\N\n");
    cr_assert_eq(ru_h_oracle_load_into(c, "tiny.oracle_raw", file), 8);

    char *osql = ru_h_oracle_sql("tiny.oracle_raw");
    ru_h_pg_execf(c, "CREATE TABLE tiny.agg AS %s", osql);
    free(osql);
    cr_assert_eq(ru_h_pg_int(c, "SELECT count(*) FROM tiny.agg"), 4);

    char *row = ru_h_pg_text(
        c,
        "SELECT concat_ws(',', \"timestamp\", total_requests, successful_requests,"
        " client_errors, server_errors, avg_duration_ms, p50_duration_ms, p95_duration_ms,"
        " p99_duration_ms, unique_users, avg_request_size_bytes,"
        " coalesce(avg_response_size_bytes::text, 'null'), avg_db_query_count, cache_hits,"
        " cache_misses) FROM tiny.agg WHERE route = '/a' AND \"timestamp\" = '2025-10-23 16:00'");
    cr_assert_str_eq(row, "2025-10-23 16:00:00,2,1,1,0,2,2,2,2,1,10,18,3,1,0");
    free(row);
    row =
        ru_h_pg_text(c, "SELECT concat_ws(',', \"timestamp\", total_requests, avg_duration_ms,"
                        " p50_duration_ms, unique_users,"
                        " coalesce(avg_request_size_bytes::text, 'null'),"
                        " coalesce(avg_db_query_count::text, 'null'), query_params_normalized)"
                        " FROM tiny.agg WHERE route = '/a' AND \"timestamp\" < '2025-10-23 16:00'");
    cr_assert_str_eq(row, "2025-10-23 15:00:00,1,7,7,0,null,null,{}");
    free(row);
    row = ru_h_pg_text(
        c, "SELECT concat_ws(',', total_requests, successful_requests, client_errors,"
           " server_errors, avg_duration_ms, p50_duration_ms, p95_duration_ms, p99_duration_ms,"
           " unique_users, avg_request_size_bytes, avg_response_size_bytes, avg_db_query_count,"
           " cache_hits, cache_misses, query_params_normalized = '{\"x\": \"1\", \"n\": 20}')"
           " FROM tiny.agg WHERE route = '/b' AND method = 'GET'");
    /* avg resp over 5, 6 = 5.5 -> 6; avg db over 1, 1, 2 = 1.3333333333333333 */
    cr_assert_str_eq(row, "4,1,0,1,3,2,4,4,2,100,6,1.3333333333333333,1,2,t");
    free(row);
    cr_assert_eq(ru_h_pg_int(c, "SELECT count(*) FROM tiny.agg WHERE route = '/b'"
                                " AND method = 'OPTIONS' AND query_params_normalized = '{}'"
                                " AND avg_request_size_bytes IS NULL AND unique_users = 0"),
                 1);

    /* the diff against a hand-made hourly table */
    ru_h_pg_exec(c, "CREATE TABLE tiny.h AS SELECT * FROM tiny.agg");
    cr_assert_eq(ru_h_oracle_diff_ex(c, "tiny.oracle_raw", "tiny.h", NULL), 0);
    ru_h_pg_exec(c, "UPDATE tiny.h SET query_params_normalized = '{\"n\": 20.0, \"x\": \"1\"}'"
                    " WHERE route = '/b' AND method = 'GET'");
    cr_assert_eq(ru_h_oracle_diff_ex(c, "tiny.oracle_raw", "tiny.h", NULL), 0,
                 "jsonb equality, not text equality");
    ru_h_pg_exec(c, "UPDATE tiny.h SET query_params_normalized = NULL WHERE method = 'OPTIONS'");
    cr_assert_eq(ru_h_oracle_diff_ex(c, "tiny.oracle_raw", "tiny.h", NULL), 2, "NULL is not {}");
    cr_assert_eq(ru_h_oracle_diff_ex(c, "tiny.oracle_raw", "tiny.h", "method = 'GET'"), 0);
    ru_h_oracle_print_diff_ex(c, "tiny.oracle_raw", "tiny.h", NULL);

    /* search_path resolves the unqualified oracle_raw of the short forms */
    ru_h_pg_exec(c, "SET search_path = tiny, public");
    cr_assert_eq(ru_h_oracle_diff(c, "h"), 2);
    PQfinish(c);
}

/* A one-shot Unix socket server answering every connection with `answer`. */
static pid_t fake_status_server(const char *path, const char *answer, int conns)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    ru_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(fd, 8), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        for (int i = 0; i < conns; i++) {
            int c = accept(fd, NULL, NULL);
            if (c < 0)
                _exit(1);
            char buf[256];
            ssize_t n = read(c, buf, sizeof(buf) - 1);
            if (n > 0 && (size_t)n > 0 && buf[n - 1] == '\n')
                (void)!write(c, answer, strlen(answer));
            close(c);
        }
        _exit(0);
    }
    close(fd);
    return pid;
}

Test(harness, status_socket)
{
    char path[512];
    ru_h_sock_path(path, sizeof(path));
    cr_assert_null(ru_h_status(path), "nothing listens yet");
    cr_assert_null(ru_h_sock_cmd(path, "status"));

    pid_t srv = fake_status_server(path,
                                   "{\"state\": \"running\", \"events\": {\"valid\": 12,"
                                   " \"rate\": 2.5}, \"hours\": [{\"rows\": 3}]}\n",
                                   2);
    char *raw = ru_h_sock_cmd(path, "status");
    cr_assert_not_null(raw);
    cr_assert(strstr(raw, "running") != NULL, "%s", raw);
    free(raw);
    json_t *j = ru_h_status(path);
    cr_assert_not_null(j);
    long long v = 0;
    cr_assert(ru_h_json_int(j, "events.valid", &v));
    cr_assert_eq(v, 12);
    cr_assert(ru_h_json_int(j, "events.rate", &v));
    cr_assert_eq(v, 2);
    cr_assert(ru_h_json_int(j, "hours.0.rows", &v));
    cr_assert_eq(v, 3);
    cr_assert_not(ru_h_json_int(j, "events.missing", &v));
    cr_assert_not(ru_h_json_int(j, "state", &v));
    json_decref(j);
    int st;
    cr_assert_eq(waitpid(srv, &st, 0), srv);
    unlink(path);
}

static bool after_n_calls(void *arg)
{
    int *n = arg;
    return --*n <= 0;
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

Test(harness, wait)
{
    int n = 5;
    int64_t t0 = ru_mono_ms();
    cr_assert(ru_h_wait(after_n_calls, &n, 5000));
    int64_t took = ru_mono_ms() - t0;
    cr_assert(took >= 60 && took < 1000, "took %lld ms", (long long)took);
    t0 = ru_mono_ms();
    cr_assert_not(ru_h_wait(never, NULL, 300));
    took = ru_mono_ms() - t0;
    cr_assert(took >= 300 && took < 1500, "took %lld ms", (long long)took);
}

/* ru_h_config's text is accepted by the daemon's own config loader. */
Test(harness, config_text)
{
    char sock[512], path[512], err[512];
    ru_h_sock_path(sock, sizeof(sock));
    struct ru_h_cfg k = {
        .stream = "t:1:stream",
        .group = "g\"1",
        .conninfo = "host=127.0.0.1 port=5 dbname=x user=postgres",
        .socket = sock,
        .raw_table = "route_analytics",
        .count = 7,
        .claim_idle_ms = 5000000000LL,
        .max_events = 2000,
        .postgres_extra = "statement_timeout_ms = 500;",
    };
    char *text = ru_h_config(&k);
    ru_h_tmp_path(path, sizeof(path), "rollupd.conf");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    struct ru_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cr_assert_eq(ru_cfgfile_load(&cfg, path, err, sizeof(err)), 0, "%s\n%s", err, text);
    cr_assert_str_eq(cfg.redis.stream, "t:1:stream");
    cr_assert_str_eq(cfg.redis.group, "g\"1");
    cr_assert_str_eq(cfg.redis.consumer, "c1");
    cr_assert_eq(cfg.redis.count, 7);
    cr_assert_eq(cfg.redis.block_ms, 100);
    cr_assert_eq(cfg.redis.claim_idle_ms, 5000000000LL);
    cr_assert_eq(cfg.redis.addr.port, ru_h_env.redis_port);
    cr_assert_str_eq(cfg.postgres.raw_table, "route_analytics");
    cr_assert_eq(cfg.postgres.statement_timeout_ms, 500);
    cr_assert_eq(cfg.flush.interval_ms, 200);
    cr_assert_eq(cfg.flush.max_events, 2000);
    cr_assert_str_eq(cfg.status.socket, sock);
    ru_config_deinit(&cfg);
    free(text);

    /* defaults: a socket path is chosen */
    struct ru_h_cfg k2 = {.stream = "s", .group = "g", .conninfo = "dbname=x"};
    text = ru_h_config(&k2);
    cr_assert(strstr(text, "socket = \"") != NULL, "%s", text);
    free(text);
}

/* Starts the real daemon when it is built: it answers status and stops on SIGTERM. */
Test(harness, daemon_smoke, .timeout = 120)
{
    ru_h_env_load();
    char exe[600];
    snprintf(exe, sizeof(exe), "%s/rollupd", ru_h_env.build_dir);
    if (access(exe, X_OK) != 0)
        cr_skip_test("%s is not built", exe);

    char stream[128], group[128], dbname[128], ci[256];
    ru_h_names(stream, group, dbname, sizeof(stream));
    ru_h_fresh_db(ci, sizeof(ci));
    struct ru_h_cfg k = {.stream = stream, .group = group, .conninfo = ci};
    char *text = ru_h_config(&k);
    struct ru_h_daemon d;
    ru_h_daemon_start(&d, text);
    free(text);
    cr_assert(access(d.pidfile, F_OK) == 0, "pid file %s", d.pidfile);
    json_t *st = ru_h_status(d.sock);
    CHECK(st != NULL, "status is not JSON");
    json_decref(st);
    ru_h_daemon_kill(&d, SIGTERM);
    int rc = ru_h_daemon_wait_exit(&d, 30000);
    CHECK(rc == 0, "exit status %d", rc);
    cr_assert(access(d.pidfile, F_OK) != 0, "pid file removed");
}
