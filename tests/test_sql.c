/* Unit tests for sql: the writer's SQL texts, made from the column tables, are the texts
 * rollupd has always sent (written out here once, as PostgreSQL reads them). */
#include <criterion/criterion.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollupd/rowstate.h"
#include "rollupd/sql.h"
#include "rollupd/util.h"

static struct ru_sql_names names;
static struct ru_sql_flush flush;

static void setup(void)
{
    ru_sql_names_init(&names, "route_analytics_hourly", "route_analytics");
    ru_sql_flush_init(&flush, &names);
}

static void teardown(void)
{
    ru_sql_flush_deinit(&flush);
    ru_sql_names_deinit(&names);
}

TestSuite(sql, .init = setup, .fini = teardown);

Test(sql, names)
{
    cr_assert_str_eq(names.hourly, "\"route_analytics_hourly\"");
    cr_assert_str_eq(names.state, "\"rollupd_rowstate\"");
    cr_assert_str_eq(names.ckpt, "\"rollupd_checkpoint\"");
    cr_assert_str_eq(names.raw, "\"route_analytics\"");
    cr_assert(names.genonaut_names);
    struct ru_sql_names n = {0};
    ru_sql_names_init(&n, "metrics.hourly", "");
    cr_assert_str_eq(n.hourly, "\"metrics\".\"hourly\"");
    cr_assert_str_eq(n.state, "\"metrics\".\"rollupd_rowstate\"");
    cr_assert_str_eq(n.ckpt, "\"metrics\".\"rollupd_checkpoint\"");
    cr_assert_null(n.raw);
    cr_assert_not(n.genonaut_names);
    ru_sql_names_init(&n, "x.route_analytics_hourly", "a\"b");
    cr_assert(n.genonaut_names);
    cr_assert_str_eq(n.raw, "\"a\"\"b\"");
    ru_sql_names_deinit(&n);
    ru_sql_names_deinit(&n);
}

#define VALS                                                                                       \
    "total_requests, successful_requests, client_errors, server_errors, avg_duration_ms,"          \
    " p50_duration_ms, p95_duration_ms, p99_duration_ms, unique_users, avg_request_size_bytes,"    \
    " avg_response_size_bytes, avg_db_query_count, cache_hits, cache_misses"
#define STAGED "tr, sr, ce, se, ad, p50, p95, p99, uu, arq, ars, adb, ch, cm"
#define STATE                                                                                      \
    "total, ok, c4xx, c5xx, hits, misses, dur_sum, req_sum, req_n, resp_sum, resp_n, db_sum,"      \
    " db_n, users_n"

Test(sql, flush_statements)
{
    cr_assert_str_eq(
        flush.staging,
        "CREATE TEMP TABLE ru_keys (k int4, ts timestamp, route text, method text,"
        " params jsonb) ON COMMIT DELETE ROWS;"
        " CREATE TEMP TABLE ru_new (k int4, ts timestamp, route text, method text,"
        " params jsonb, tr int8, sr int8, ce int8, se int8, ad int8, p50 int8, p95 int8,"
        " p99 int8, uu int8, arq int8, ars int8, adb float8, ch int8, cm int8)"
        " ON COMMIT DELETE ROWS;"
        " CREATE TEMP TABLE ru_vals (id int8, tr int8, sr int8, ce int8, se int8,"
        " ad int8, p50 int8, p95 int8, p99 int8, uu int8, arq int8, ars int8,"
        " adb float8, ch int8, cm int8) ON COMMIT DELETE ROWS");
    cr_assert_str_eq(flush.states,
                     "SELECT q.i, t.seq, t.base_seq, " STATE
                     " FROM unnest($1::int8[]) WITH ORDINALITY AS q(id, i) CROSS JOIN LATERAL"
                     " (SELECT * FROM \"rollupd_rowstate\" t WHERE t.hourly_id = q.id ORDER BY"
                     " t.seq DESC LIMIT 1) t");
    cr_assert_str_eq(flush.insert,
                     "WITH ins AS (INSERT INTO \"route_analytics_hourly\" (\"timestamp\", route,"
                     " method, query_params_normalized, " VALS ", created_at)"
                     " SELECT ts, route, method, params, " STAGED ", now() AT TIME ZONE 'UTC'"
                     " FROM ru_new ORDER BY k ON CONFLICT (\"timestamp\", route, method,"
                     " query_params_normalized) DO NOTHING"
                     " RETURNING id, \"timestamp\", route, method, query_params_normalized)"
                     " SELECT n.k, ins.id FROM ins JOIN ru_new n ON n.ts = ins.\"timestamp\""
                     " AND n.route = ins.route AND n.method = ins.method"
                     " AND n.params = ins.query_params_normalized");
    cr_assert_str_eq(flush.update,
                     "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off;\n"
                     "UPDATE \"route_analytics_hourly\" h SET (" VALS ") = (" STAGED ")"
                     " FROM ru_vals v WHERE h.id = v.id;\n"
                     "SET LOCAL enable_hashjoin = on; SET LOCAL enable_mergejoin = on;\n");
    cr_assert_str_eq(flush.copy_state, "COPY \"rollupd_rowstate\" (hourly_id, seq, base_seq, " STATE
                                       ", data) FROM STDIN (FORMAT binary)");
    cr_assert_str_eq(flush.copy_raw,
                     "COPY \"route_analytics\" (route, method, user_id, \"timestamp\","
                     " duration_ms, status_code, query_params, query_params_normalized,"
                     " request_size_bytes, response_size_bytes, error_type, db_query_count,"
                     " cache_status, created_at) FROM STDIN");
    cr_assert_str_eq(flush.probe,
                     "INSERT INTO \"route_analytics_hourly\" (\"timestamp\", route, method,"
                     " query_params_normalized, total_requests, successful_requests,"
                     " client_errors, server_errors, cache_hits, cache_misses, created_at)"
                     " VALUES ($1::timestamp, $2, $3, $4::jsonb, 0, 0, 0, 0, 0, 0, now() AT"
                     " TIME ZONE 'UTC') ON CONFLICT (\"timestamp\", route, method,"
                     " query_params_normalized) DO NOTHING");
    cr_assert_str_eq(flush.key_check,
                     "EXPLAIN INSERT INTO \"route_analytics_hourly\" (\"timestamp\", route,"
                     " method, query_params_normalized, total_requests, successful_requests,"
                     " client_errors, server_errors, cache_hits, cache_misses, created_at)"
                     " VALUES (now(), '', '', '{}', 0, 0, 0, 0, 0, 0, now()) ON CONFLICT"
                     " (\"timestamp\", route, method, query_params_normalized) DO NOTHING");
    struct ru_sql_names n = {0};
    struct ru_sql_flush f = {0};
    ru_sql_names_init(&n, "h", "");
    ru_sql_flush_init(&f, &n);
    cr_assert_null(f.copy_raw);
    ru_sql_flush_deinit(&f);
    ru_sql_names_deinit(&n);
}

Test(sql, schema_objects)
{
    struct ru_sql_obj o[RU_SQL_MAX_OBJS];
    size_t k = ru_sql_objs(&names, o);
    cr_assert_eq(k, 11); /* hourly, 5 indexes, raw, state, checkpoint, 2 columns */
    cr_assert_str_eq(
        o[0].ddl,
        "CREATE TABLE IF NOT EXISTS \"route_analytics_hourly\" ("
        " id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
        " \"timestamp\" timestamp without time zone NOT NULL,"
        " route text NOT NULL, method varchar(10) NOT NULL,"
        " query_params_normalized jsonb,"
        " total_requests integer NOT NULL, successful_requests integer NOT NULL,"
        " client_errors integer NOT NULL, server_errors integer NOT NULL,"
        " avg_duration_ms integer, p50_duration_ms integer, p95_duration_ms integer,"
        " p99_duration_ms integer, unique_users integer,"
        " avg_request_size_bytes integer, avg_response_size_bytes integer,"
        " avg_db_query_count double precision,"
        " cache_hits integer NOT NULL, cache_misses integer NOT NULL,"
        " created_at timestamp without time zone NOT NULL,"
        " CONSTRAINT uq_route_analytics_hourly_time_route_params UNIQUE (\"timestamp\", route,"
        " method, query_params_normalized));");
    cr_assert_str_eq(o[6].ddl, "CREATE TABLE IF NOT EXISTS \"route_analytics\" ("
                               " id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
                               " route text NOT NULL, method varchar(10) NOT NULL, user_id uuid,"
                               " \"timestamp\" timestamp without time zone NOT NULL,"
                               " duration_ms integer NOT NULL, status_code smallint NOT NULL,"
                               " query_params jsonb, query_params_normalized jsonb,"
                               " request_size_bytes integer, response_size_bytes integer,"
                               " error_type text, db_query_count integer, cache_status varchar(10),"
                               " created_at timestamp without time zone NOT NULL);");
    cr_assert_str_eq(o[7].ddl,
                     "CREATE TABLE IF NOT EXISTS \"rollupd_rowstate\" (hourly_id bigint NOT NULL,"
                     " seq bigint NOT NULL, base_seq bigint NOT NULL,"
                     " total bigint NOT NULL, ok bigint NOT NULL, c4xx bigint NOT NULL,"
                     " c5xx bigint NOT NULL, hits bigint NOT NULL, misses bigint NOT NULL,"
                     " dur_sum bigint NOT NULL, req_sum bigint NOT NULL, req_n bigint NOT NULL,"
                     " resp_sum bigint NOT NULL, resp_n bigint NOT NULL, db_sum bigint NOT NULL,"
                     " db_n bigint NOT NULL, users_n bigint NOT NULL, data bytea NOT NULL,"
                     " PRIMARY KEY (hourly_id, seq));\n"
                     "ALTER TABLE \"rollupd_rowstate\" ALTER COLUMN data SET STORAGE EXTERNAL;");
    char what[200];
    ru_sql_obj_describe(&o[1], what, sizeof(what));
    cr_assert_str_eq(what,
                     "index \"idx_route_metrics_duration\" of table \"route_analytics_hourly\"");
    cr_assert(o[1].optional);
    cr_assert_not(o[0].optional);
    ru_sql_obj_describe(&o[10], what, sizeof(what));
    cr_assert_str_eq(what, "column \"dead_pos\" of table \"rollupd_checkpoint\"");
    ru_sql_objs_free(o, k);
}

/* Every column of the table is in the DDL, in each value list and in each staging table;
 * a column added to the table reaches every one of them. */
Test(sql, one_table_drives_every_list)
{
    struct ru_sql_obj o[RU_SQL_MAX_OBJS];
    size_t k = ru_sql_objs(&names, o);
    for (size_t i = 0; i < ru_sql_hourly_ncols; i++) {
        const struct ru_sql_hourly_col *c = &ru_sql_hourly_cols[i];
        cr_assert_not_null(strstr(o[0].ddl, c->name), "%s", c->name);
        cr_assert_not_null(strstr(flush.insert, c->name), "%s", c->name);
        cr_assert_not_null(strstr(flush.update, c->name), "%s", c->name);
        char staged[40];
        snprintf(staged, sizeof(staged), " %s %s", c->staged, c->is_float ? "float8" : "int8");
        cr_assert_not_null(strstr(flush.staging, staged), "%s", staged);
        if (c->required)
            cr_assert_not_null(strstr(flush.probe, c->name), "%s", c->name);
    }
    ru_sql_objs_free(o, k);
}

static size_t count_tabs(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\t';
    return n;
}

Test(sql, put_hourly)
{
    struct ru_hourly_vals v = {.total = 10,
                               .ok = 7,
                               .c4xx = 2,
                               .c5xx = 1,
                               .avg_dur = 12,
                               .p50 = 11,
                               .p95 = 30,
                               .p99 = 40,
                               .users = 3,
                               .hits = 4,
                               .misses = 5,
                               .has_req = true,
                               .avg_req = 100,
                               .has_resp = false,
                               .avg_resp = 999,
                               .has_db = true,
                               .avg_db = 2.5};
    struct ru_buf b = RU_BUF_INIT;
    ru_sql_put_hourly(&b, &v);
    cr_assert_str_eq(b.p, "\t10\t7\t2\t1\t12\t11\t30\t40\t3\t100\t\\N\t2.5\t4\t5");
    cr_assert_eq(count_tabs(b.p), ru_sql_hourly_ncols);
    ru_buf_reset(&b);
    v.has_req = false;
    v.has_db = false;
    v.has_resp = true;
    v.avg_db = 1.0 / 3.0;
    ru_sql_put_hourly(&b, &v);
    cr_assert_str_eq(b.p, "\t10\t7\t2\t1\t12\t11\t30\t40\t3\t\\N\t999\t\\N\t4\t5");
    ru_buf_reset(&b);
    v.has_db = true;
    ru_sql_put_hourly(&b, &v);
    cr_assert_str_eq(b.p, "\t10\t7\t2\t1\t12\t11\t30\t40\t3\t\\N\t999\t0.3333333333333333\t4\t5");
    ru_buf_free(&b);
}

Test(sql, rowcounts_table_matches_struct)
{
    struct ru_rowcounts c;
    int64_t *fields[RU_ROWCOUNTS_N] = {&c.total,  &c.ok,      &c.c4xx,    &c.c5xx,   &c.hits,
                                       &c.misses, &c.dur_sum, &c.req_sum, &c.req_n,  &c.resp_sum,
                                       &c.resp_n, &c.db_sum,  &c.db_n,    &c.users_n};
    for (size_t i = 0; i < RU_ROWCOUNTS_N; i++)
        cr_assert_eq((char *)fields[i] - (char *)&c, (ptrdiff_t)ru_sql_rowcounts[i].offset, "%s",
                     ru_sql_rowcounts[i].name);
}

Test(sql, print_schema)
{
    struct ru_buf b = RU_BUF_INIT;
    ru_sql_schema("route_analytics_hourly", "", &b);
    cr_assert(strncmp(b.p, "-- rollupd's schema for hourly_table = route_analytics_hourly (", 63) ==
              0);
    cr_assert_not_null(
        strstr(b.p, "BEGIN;\nCREATE TABLE IF NOT EXISTS \"route_analytics_hourly\""));
    cr_assert_not_null(strstr(b.p, "-- genonaut's indexes (rollupd does not need them)\n"));
    cr_assert_null(strstr(b.p, "\"route_analytics\" ("));
    cr_assert(strcmp(b.p + b.len - 8, "COMMIT;\n") == 0);
    ru_buf_free(&b);
}
