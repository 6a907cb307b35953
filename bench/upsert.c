/* rollupd-bench-upsert: the bare cost of writing N finished hourly rows into genonaut's
 * hourly table, the yardstick for rollupd's flush: one transaction of
 *   COPY into a temp table (created once per session, ON COMMIT DELETE ROWS, as rollupd's
 *   staging tables are), then INSERT INTO route_analytics_hourly ... SELECT ... FROM it
 *   ON CONFLICT (timestamp, route, method, query_params_normalized) DO UPDATE SET <every
 *   aggregate column> = excluded.<column>, then COMMIT.
 * Measured from BEGIN to the end of COMMIT, with the COPY text built beforehand. Each
 * repetition writes N new rows (new keys), then updates the same N rows with different
 * values (total_requests and avg_duration_ms are indexed, so updates are not HOT, as
 * rollupd's are not).
 *
 * With --settle, each timed transaction starts after a CHECKPOINT and a sync(2) (not
 * timed), as bench/harness.py's flush benchmark starts each of rollupd's flushes, so no
 * checkpoint or write-back that earlier writes started lands in one side's timing
 * (CHECKPOINT needs a superuser or pg_checkpoint; the sync helps only a server on this
 * machine).
 *
 * Prints one JSON object: rows, new_ms[] and updated_ms[] per repetition and their
 * medians. */
#include "rollupd/util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "common.h"

#define MAX_REPS 20

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        die("%.60s...: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

static void copy_in(PGconn *c, const char *sql, const struct ru_buf *data)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN)
        die("COPY: %s", PQresultErrorMessage(r));
    PQclear(r);
    if (data->len && PQputCopyData(c, data->p, (int)data->len) != 1)
        die("COPY data: %s", PQerrorMessage(c));
    if (PQputCopyEnd(c, NULL) != 1)
        die("COPY end: %s", PQerrorMessage(c));
    r = PQgetResult(c);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        die("COPY: %s", PQresultErrorMessage(r));
    PQclear(r);
    while ((r = PQgetResult(c)) != NULL)
        PQclear(r);
}

/* N rows of the staging table's columns; `v` varies the values between passes. */
static void build(struct ru_buf *b, const char *hour, const char *tag, int rep, long n, int v)
{
    ru_buf_reset(b);
    for (long i = 0; i < n; i++) {
        long total = 1 + (i * 7 + v * 13) % 97;
        long p50 = 10 + (i + v) % 50;
        ru_buf_printf(b,
                      "%s\t/api/v1/bare/%s/%d/%ld\tGET\t{}\t%ld\t%ld\t%ld\t0\t%ld\t%ld\t%ld\t%ld"
                      "\t%ld\t\\N\t512\t\\N\t0\t0\n",
                      hour, tag, rep, i, total, total - total / 20, total / 20, p50 + 5, p50,
                      p50 * 4, p50 * 9, total < 50 ? total : 50);
    }
}

static double now_ms(void)
{
    return (double)ru_mono_us() / 1000.0;
}

/* Ends any checkpoint in progress and writes the dirty pages out, so the next timed
 * transaction does not share the machine with them. */
static void settle_writes(PGconn *c)
{
    exec_ok(c, "CHECKPOINT");
    sync();
}

static double timed_upsert(PGconn *c, const struct ru_buf *data, const char *table)
{
    char sql[2048];
    snprintf(sql, sizeof(sql),
             "INSERT INTO %s (\"timestamp\", route, method, query_params_normalized,"
             " total_requests, successful_requests, client_errors, server_errors,"
             " avg_duration_ms, p50_duration_ms, p95_duration_ms, p99_duration_ms,"
             " unique_users, avg_request_size_bytes, avg_response_size_bytes,"
             " avg_db_query_count, cache_hits, cache_misses, created_at)"
             " SELECT ts, route, method, params, total, ok, c4xx, c5xx, avg_ms, p50, p95, p99,"
             " users, avg_req, avg_resp, avg_db, hits, misses, now() AT TIME ZONE 'UTC'"
             " FROM bare_stage"
             " ON CONFLICT (\"timestamp\", route, method, query_params_normalized) DO UPDATE SET"
             " total_requests = excluded.total_requests,"
             " successful_requests = excluded.successful_requests,"
             " client_errors = excluded.client_errors, server_errors = excluded.server_errors,"
             " avg_duration_ms = excluded.avg_duration_ms,"
             " p50_duration_ms = excluded.p50_duration_ms,"
             " p95_duration_ms = excluded.p95_duration_ms,"
             " p99_duration_ms = excluded.p99_duration_ms,"
             " unique_users = excluded.unique_users,"
             " avg_request_size_bytes = excluded.avg_request_size_bytes,"
             " avg_response_size_bytes = excluded.avg_response_size_bytes,"
             " avg_db_query_count = excluded.avg_db_query_count,"
             " cache_hits = excluded.cache_hits, cache_misses = excluded.cache_misses",
             table);
    double t0 = now_ms();
    exec_ok(c, "BEGIN");
    copy_in(c, "COPY bare_stage FROM STDIN", data);
    exec_ok(c, sql);
    exec_ok(c, "COMMIT");
    return now_ms() - t0;
}

static double median(const double *v, int n)
{
    double s[MAX_REPS];
    memcpy(s, v, (size_t)n * sizeof(*v));
    qsort(s, (size_t)n, sizeof(*s), bench_cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void put_list(const double *v, int n)
{
    putchar('[');
    for (int i = 0; i < n; i++)
        printf("%s%.3f", i ? "," : "", v[i]);
    putchar(']');
}

int main(int argc, char **argv)
{
    struct bench_addr addr = BENCH_ADDR_DEFAULT;
    const char *tag = "t", *table = "route_analytics_hourly";
    long rows = 10000;
    int reps = 3;
    long long hour = -1;
    bool settle = false;
    static const struct option lopts[] = {{"rows", required_argument, NULL, 'R'},
                                          {"reps", required_argument, NULL, 'N'},
                                          {"tag", required_argument, NULL, 'T'},
                                          {"hour", required_argument, NULL, 'O'},
                                          {"table", required_argument, NULL, 'B'},
                                          {"settle", no_argument, NULL, 'S'},
                                          {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "d:", lopts, NULL)) != -1) {
        switch (o) {
        case 'R':
            rows = atol(optarg);
            break;
        case 'N':
            reps = atoi(optarg);
            break;
        case 'T':
            tag = optarg;
            break;
        case 'O':
            hour = atoll(optarg);
            break;
        case 'B':
            table = optarg;
            break;
        case 'S':
            settle = true;
            break;
        default:
            if (bench_addr_opt(&addr, o, optarg))
                break;
            fputs("usage: rollupd-bench-upsert -d CONNINFO [--rows N] [--reps K] [--tag T]"
                  " [--hour EPOCH] [--table NAME] [--settle]\n",
                  stderr);
            return 2;
        }
    }
    if (rows < 1 || reps < 1 || reps > MAX_REPS)
        die("bad arguments");
    time_t h = (time_t)bench_hour(hour);
    struct tm tmv;
    gmtime_r(&h, &tmv);
    char hs[32];
    strftime(hs, sizeof(hs), "%Y-%m-%d %H:%M:%S", &tmv);

    PGconn *c = bench_pg(&addr);
    exec_ok(c, "SET TimeZone = 'UTC'");
    exec_ok(c, "CREATE TEMP TABLE bare_stage (ts timestamp, route text, method text,"
               " params jsonb, total int4, ok int4, c4xx int4, c5xx int4, avg_ms int4, p50 int4,"
               " p95 int4, p99 int4, users int4, avg_req int4, avg_resp int4, avg_db float8,"
               " hits int4, misses int4) ON COMMIT DELETE ROWS");

    double new_ms[MAX_REPS], upd_ms[MAX_REPS];
    struct ru_buf b = RU_BUF_INIT;
    for (int r = 0; r < reps; r++) {
        build(&b, hs, tag, r, rows, 0);
        if (settle)
            settle_writes(c);
        new_ms[r] = timed_upsert(c, &b, table);
        build(&b, hs, tag, r, rows, 1);
        if (settle)
            settle_writes(c);
        upd_ms[r] = timed_upsert(c, &b, table);
    }
    printf("{\"rows\":%ld,\"reps\":%d,\"new_ms\":", rows, reps);
    put_list(new_ms, reps);
    printf(",\"updated_ms\":");
    put_list(upd_ms, reps);
    printf(",\"new_median_ms\":%.3f,\"updated_median_ms\":%.3f}\n", median(new_ms, reps),
           median(upd_ms, reps));
    ru_buf_free(&b);
    PQfinish(c);
    return 0;
}
