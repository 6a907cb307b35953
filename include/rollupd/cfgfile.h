/* cfgfile: the configuration file (libconfig syntax) read over the defaults into struct
 * ru_config, each setting checked against config's key table. Pure: reads the file and
 * what it @includes (see libcfg.h for what libconfig 1.5 needs worked around). */
#ifndef ROLLUPD_CFGFILE_H
#define ROLLUPD_CFGFILE_H

#include <stddef.h>

#include "rollupd/config.h"
#include "rollupd/util.h"

/* Loads path over the defaults and validates it. On failure returns -1, leaves cfg
 * deinitialised, and writes one line to err naming the file, the line when known and
 * the key, e.g. "/etc/rollupd.conf:12: redis.count: must be an integer from 1 to 100000"
 * or "/etc/rollupd.conf:3: syntax error". Unknown groups and keys are refused, naming
 * the key (a typo must not silently fall back to a default). Returns 0 on success. */
int ru_cfgfile_load(struct ru_config *cfg, const char *path, char *err, size_t errlen) RU_MUSTCHECK;

#endif
