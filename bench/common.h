/* Shared by the benchmark tools (loadgen, ceiling, keygen, upsert, fresh). die() needs
 * BENCH_PROG (the tool's name): bench.cmake defines it for the rollupd-bench-* tools and
 * common.c; loadgen defines it before including. The rest is in common.c, linked into the
 * rollupd-bench-* tools. */
#ifndef ROLLUPD_BENCH_COMMON_H
#define ROLLUPD_BENCH_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "rollupd/util.h"

/* Prints "<prog>: error: <message>" and exits 1. */
static void die(const char *fmt, ...) RU_PRINTF(1, 2) __attribute__((noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(BENCH_PROG ": error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* The addresses the tools take: -h HOST -p PORT (Redis), -s STREAM, -d CONNINFO. */
struct bench_addr {
    const char *host;
    int port;
    const char *stream, *conninfo;
};
#define BENCH_ADDR_DEFAULT                                                                         \
    {                                                                                              \
        "127.0.0.1", 6379, "genonaut_demo:route_analytics:stream", ""                              \
    }

/* Takes getopt's option o with its argument when it is h, p, s or d (true). */
bool bench_addr_opt(struct bench_addr *a, int o, const char *arg);

/* A connection to Redis at a's host and port (5 s to connect; read_timeout_s > 0 bounds
 * each reply), or die. */
redisContext *bench_redis(const struct bench_addr *a, int read_timeout_s);

/* A connection to PostgreSQL with a's conninfo, or die. */
PGconn *bench_pg(const struct bench_addr *a);

/* The start of the hour holding the Unix time hour; a negative hour: the previous hour. */
long long bench_hour(long long hour);

/* qsort comparison of doubles, ascending. */
int bench_cmp_double(const void *a, const void *b);

#endif
