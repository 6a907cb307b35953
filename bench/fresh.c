/* rollupd-bench-fresh: freshness of the hourly table under load. Every --every-ms it
 * XADDs a marker event (route /bench/fresh/TAG/<i>, a key of its own) timed with the
 * wall clock at the XADD, and every --poll-ms it asks PostgreSQL which outstanding
 * markers already have their hourly row. Latency = time the row was first seen minus the
 * event's timestamp: read, aggregated, flushed and committed, as a reader of the table
 * would notice it (so it includes up to one poll interval).
 *
 * Prints one JSON object: markers, found, p50_ms, p90_ms, p99_ms, max_ms, mean_ms
 * (percentiles by linear interpolation, as percentile_cont). --out FILE also writes one
 * latency in ms per line. */
#include "rollupd/util.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "common.h"

struct marker {
    char route[96];
    int64_t sent_us; /* wall clock, = the event's timestamp */
    int64_t seen_us; /* 0 = not yet */
};

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_until_mono_us(int64_t t)
{
    int64_t now = ru_mono_us();
    if (t <= now)
        return;
    struct timespec ts = {(time_t)((t - now) / 1000000), (long)((t - now) % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static void send_marker(redisContext *c, const char *stream, struct marker *m)
{
    char ts[40];
    m->sent_us = wall_us();
    snprintf(ts, sizeof(ts), "%lld.%06lld", (long long)(m->sent_us / 1000000),
             (long long)(m->sent_us % 1000000));
    const char *av[] = {"XADD",   stream,
                        "*",      "route",
                        m->route, "method",
                        "GET",    "user_id",
                        "",       "timestamp",
                        ts,       "duration_ms",
                        "1",      "status_code",
                        "200",    "query_params",
                        "{}",     "query_params_normalized",
                        "{}",     "request_size_bytes",
                        "0",      "response_size_bytes",
                        "0",      "error_type",
                        ""};
    redisReply *r = redisCommandArgv(c, (int)RU_ARRAY_LEN(av), av, NULL);
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        die("XADD: %s", r ? r->str : c->errstr);
    freeReplyObject(r);
}

/* Marks the outstanding markers whose hourly row exists; returns how many are left. */
static int poll_pg(PGconn *pg, const char *table, struct marker *m, int n)
{
    struct ru_buf arr = RU_BUF_INIT;
    int out = 0;
    ru_buf_putc(&arr, '{');
    for (int i = 0; i < n; i++) {
        if (m[i].seen_us)
            continue;
        ru_buf_printf(&arr, "%s\"%s\"", out ? "," : "", m[i].route);
        out++;
    }
    ru_buf_putc(&arr, '}');
    if (out == 0) {
        ru_buf_free(&arr);
        return 0;
    }
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT route FROM %s WHERE route = ANY($1::text[])", table);
    const char *params[1] = {arr.p};
    PGresult *r = PQexecParams(pg, sql, 1, NULL, params, NULL, NULL, 0);
    int64_t now = wall_us();
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        /* the table may not exist yet right after start-up */
        PQclear(r);
        ru_buf_free(&arr);
        return out;
    }
    for (int k = 0; k < PQntuples(r); k++) {
        const char *route = PQgetvalue(r, k, 0);
        for (int i = 0; i < n; i++)
            if (!m[i].seen_us && strcmp(m[i].route, route) == 0) {
                m[i].seen_us = now;
                out--;
            }
    }
    PQclear(r);
    ru_buf_free(&arr);
    return out;
}

static double pct(const double *s, int n, double q)
{
    if (n == 0)
        return NAN;
    double x = q * (n - 1);
    int lo = (int)floor(x);
    int hi = lo + 1 < n ? lo + 1 : lo;
    return s[lo] + (s[hi] - s[lo]) * (x - lo);
}

int main(int argc, char **argv)
{
    struct bench_addr addr = BENCH_ADDR_DEFAULT;
    const char *tag = "f", *table = "route_analytics_hourly", *out = NULL;
    int every_ms = 100, poll_ms = 10;
    double seconds = 30, grace = 15;
    static const struct option lopts[] = {
        {"seconds", required_argument, NULL, 'S'}, {"every-ms", required_argument, NULL, 'E'},
        {"poll-ms", required_argument, NULL, 'P'}, {"tag", required_argument, NULL, 'T'},
        {"table", required_argument, NULL, 'B'},   {"out", required_argument, NULL, 'o'},
        {"grace", required_argument, NULL, 'G'},   {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "h:p:s:d:", lopts, NULL)) != -1) {
        switch (o) {
        case 'S':
            seconds = atof(optarg);
            break;
        case 'E':
            every_ms = atoi(optarg);
            break;
        case 'P':
            poll_ms = atoi(optarg);
            break;
        case 'T':
            tag = optarg;
            break;
        case 'B':
            table = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'G':
            grace = atof(optarg);
            break;
        default:
            if (bench_addr_opt(&addr, o, optarg))
                break;
            fputs("usage: rollupd-bench-fresh -h HOST -p PORT -s STREAM -d CONNINFO"
                  " [--seconds S] [--every-ms N] [--poll-ms N] [--tag T] [--table T]"
                  " [--grace S] [--out FILE]\n",
                  stderr);
            return 2;
        }
    }
    if (every_ms < 1 || poll_ms < 1 || seconds <= 0)
        die("bad arguments");
    int nmax = (int)(seconds * 1000 / every_ms) + 1;
    struct marker *m = ru_xcalloc((size_t)nmax, sizeof(*m));

    redisContext *rc = bench_redis(&addr, 0);
    PGconn *pg = bench_pg(&addr);

    int64_t t0 = ru_mono_us(), end = t0 + (int64_t)(seconds * 1e6);
    int64_t next_marker = t0, next_poll = t0;
    int n = 0, left = 0;
    for (;;) {
        int64_t now = ru_mono_us();
        if (now >= end + (int64_t)(grace * 1e6))
            break;
        if (now < end && n < nmax && now >= next_marker) {
            snprintf(m[n].route, sizeof(m[n].route), "/bench/fresh/%s/%d", tag, n);
            send_marker(rc, addr.stream, &m[n]);
            n++;
            next_marker += (int64_t)every_ms * 1000;
        }
        if (now >= next_poll) {
            left = poll_pg(pg, table, m, n);
            next_poll = now + (int64_t)poll_ms * 1000;
            if (now >= end && left == 0)
                break;
        }
        int64_t wake = next_poll;
        if (now < end && next_marker < wake)
            wake = next_marker;
        sleep_until_mono_us(wake);
    }

    double *lat = ru_xcalloc((size_t)n + 1, sizeof(*lat));
    int found = 0;
    double sum = 0;
    FILE *f = out ? fopen(out, "w") : NULL;
    for (int i = 0; i < n; i++) {
        if (!m[i].seen_us)
            continue;
        lat[found] = (double)(m[i].seen_us - m[i].sent_us) / 1000.0;
        if (f)
            fprintf(f, "%.3f\n", lat[found]);
        sum += lat[found++];
    }
    if (f)
        fclose(f);
    qsort(lat, (size_t)found, sizeof(*lat), bench_cmp_double);
    printf("{\"markers\":%d,\"found\":%d,\"p50_ms\":%.1f,\"p90_ms\":%.1f,\"p99_ms\":%.1f,"
           "\"max_ms\":%.1f,\"mean_ms\":%.1f,\"every_ms\":%d,\"poll_ms\":%d}\n",
           n, found, pct(lat, found, 0.5), pct(lat, found, 0.9), pct(lat, found, 0.99),
           found ? lat[found - 1] : NAN, found ? sum / found : NAN, every_ms, poll_ms);
    free(lat);
    free(m);
    PQfinish(pg);
    redisFree(rc);
    return found == n ? 0 : 1;
}
