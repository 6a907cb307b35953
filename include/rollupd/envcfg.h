/* envcfg: configuration from the environment, as a container runtime supplies it.
 * ROLLUPD_* variables override the file (or the defaults when there is no file), each
 * checked as the file's key would be; libpq's own PG* variables keep working. Pure: the
 * environment is passed in ("K=V" entries, NULL-terminated), nothing is printed. */
#ifndef ROLLUPD_ENVCFG_H
#define ROLLUPD_ENVCFG_H

#include <stddef.h>

#include "rollupd/config.h"
#include "rollupd/util.h"

/* One documented variable and the key it sets. */
struct ru_envcfg_var {
    const char *var; /* "ROLLUPD_REDIS_URL" */
    const char *key; /* "redis.url" */
};

/* The table of variables (n entries in *n). */
const struct ru_envcfg_var *ru_envcfg_vars(size_t *n);

/* Applies env over cfg (already loaded or defaulted), records "environment VAR" as each
 * value's origin and runs the checks across keys. A value that fails its key's check, and
 * an unknown ROLLUPD_* variable (a typo must not fall back to a default silently), are
 * refused: -1 with "VAR: reason" in err and cfg partly changed (deinit it). When
 * postgres.conninfo is still the default and PGDATABASE or PGSERVICE is set, the default
 * dbname gives way to libpq's variables (conninfo ""). Returns 0 on success. */
int ru_envcfg_apply(struct ru_config *cfg, char *const *env, char *err, size_t errlen) RU_MUSTCHECK;

/* ru_cfgfile_load of path, or the defaults when path is NULL, then ru_envcfg_apply. On
 * failure cfg is deinitialised and err holds one line. */
int ru_envcfg_load(struct ru_config *cfg, const char *path, char *const *env, char *err,
                   size_t errlen) RU_MUSTCHECK;

/* Appends to out one line per key, "key = value;  # origin", secrets redacted, followed by
 * "# libpq: NAME=value" for each libpq variable that is set (PGPASSWORD's value never
 * shown). */
void ru_envcfg_report(const struct ru_config *cfg, char *const *env, struct ru_buf *out);

#endif
