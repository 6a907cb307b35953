/* Shared by the benchmark tools (loadgen, ceiling, keygen, upsert, fresh): define
 * BENCH_PROG (the tool's name) before including. */
#ifndef ROLLUPD_BENCH_COMMON_H
#define ROLLUPD_BENCH_COMMON_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

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

#endif
