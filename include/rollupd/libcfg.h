/* libcfg: what libconfig 1.5 (Debian 12) gets wrong, worked around for config. Pure:
 * reads the configuration files, never prints.
 *
 * 1. Integer literals that do not fit in 32 bits and carry no L suffix are silently
 *    wrapped (5000000000 reads as 705032704): each file is scanned once for such
 *    literals, and an int setting at the same place takes the true value from the scan.
 * 2. An @include of a directory exits the process, and one of a FIFO blocks: every
 *    @include is checked first, and anything but a regular file is refused. */
#ifndef ROLLUPD_LIBCFG_H
#define ROLLUPD_LIBCFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollupd/util.h"

/* One unsuffixed integer literal outside the 32-bit range. */
struct ru_libcfg_lit {
    char *file;
    char name[64];      /* the setting name written before the literal */
    unsigned name_line; /* where that name is */
    unsigned lit_line;  /* where the literal is */
    int64_t value;
    bool overflow; /* beyond int64 */
    bool used;
};

/* The scan of every file read so far. Zero it to start; ru_libcfg_wide_deinit frees it. */
struct ru_libcfg_wide {
    struct ru_libcfg_lit *lits;
    size_t nlits, litcap;
    char **scanned;
    size_t nscanned;
};

/* For the int setting called name that libconfig read at file:line: scans file (once)
 * and, when a wide literal stands there, replaces *value with its true value. -1 when
 * that literal is beyond int64 (*value untouched); 0 otherwise. */
int ru_libcfg_wide_value(struct ru_libcfg_wide *w, const char *file, const char *name,
                         unsigned line, int64_t *value) RU_MUSTCHECK;
void ru_libcfg_wide_deinit(struct ru_libcfg_wide *w);

/* Where an @include was refused: the including file, its line (0: none), the reason. */
struct ru_libcfg_include_err {
    char file[4096];
    unsigned line;
    char why[4200];
};

/* Checks every @include of path, recursively (relative paths resolved as libconfig does:
 * from the working directory), up to 10 deep. A file that cannot be opened is left to
 * libconfig's own message. 0, or -1 with *e filled. */
int ru_libcfg_check_includes(const char *path, struct ru_libcfg_include_err *e) RU_MUSTCHECK;

#endif
