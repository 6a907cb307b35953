/* fuzz: what the fuzz targets share: the invariant check, and the switch that lets a long
 * run go on past the known findings in src/ (tests/fuzz/crashes/README.md). */
#ifndef ROLLUPD_FUZZ_H
#define ROLLUPD_FUZZ_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reports "<file>:<line>: invariant violated: <what>" on stderr and aborts (a finding). */
__attribute__((noreturn)) static inline void fuzz_fail(const char *file, int line, const char *what)
{
    const char *base = strrchr(file, '/');
    fprintf(stderr, "%s:%d: invariant violated: %s\n", base ? base + 1 : file, line, what);
    abort();
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fuzz_fail(__FILE__, __LINE__, #cond);                                                  \
    } while (0)

/* True when RU_FUZZ_IGNORE_KNOWN=1 is in the environment. */
static inline bool fuzz_ignore_known(void)
{
    static int ignore = -1;
    if (ignore < 0) {
        const char *env = getenv("RU_FUZZ_IGNORE_KNOWN");
        ignore = env != NULL && strcmp(env, "1") == 0;
    }
    return ignore;
}

/* A known finding named name at file:line: aborts like any other check, unless
 * fuzz_ignore_known(); then it is reported once (*reported) on stderr and the run goes on. */
static inline void fuzz_known(const char *file, int line, const char *name, bool *reported,
                              const char *what)
{
    if (!fuzz_ignore_known())
        fuzz_fail(file, line, what);
    if (!*reported) {
        *reported = true;
        const char *base = strrchr(file, '/');
        fprintf(stderr, "%s:%d: known finding %s (ignored): %s\n", base ? base + 1 : file, line,
                name, what);
    }
}

#endif
