/* common: what the rollupd-bench-* tools share. See common.h. */
#include "common.h"

#include <time.h>

bool bench_addr_opt(struct bench_addr *a, int o, const char *arg)
{
    switch (o) {
    case 'h':
        a->host = arg;
        return true;
    case 'p':
        a->port = atoi(arg);
        return true;
    case 's':
        a->stream = arg;
        return true;
    case 'd':
        a->conninfo = arg;
        return true;
    default:
        return false;
    }
}

redisContext *bench_redis(const struct bench_addr *a, int read_timeout_s)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout(a->host, a->port, tv);
    if (c == NULL || c->err)
        die("cannot connect to %s:%d: %s", a->host, a->port, c ? c->errstr : "out of memory");
    if (read_timeout_s > 0) {
        struct timeval rtv = {read_timeout_s, 0};
        redisSetTimeout(c, rtv);
    }
    return c;
}

PGconn *bench_pg(const struct bench_addr *a)
{
    PGconn *c = PQconnectdb(a->conninfo);
    if (PQstatus(c) != CONNECTION_OK)
        die("cannot connect to PostgreSQL: %s", PQerrorMessage(c));
    return c;
}

long long bench_hour(long long hour)
{
    if (hour < 0)
        hour = ((long long)time(NULL) / 3600 - 1) * 3600;
    return hour - hour % 3600;
}

int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
