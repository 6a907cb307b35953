/* envcfg: ROLLUPD_* variables over the file or the defaults (see envcfg.h). */
#include "rollupd/envcfg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollupd/cfgfile.h"

/* One table: the variable of every key. Documented in rollupd(8) and the README. */
static const struct ru_envcfg_var vars[] = {
    {"ROLLUPD_REDIS_URL", "redis.url"},
    {"ROLLUPD_STREAM", "redis.stream"},
    {"ROLLUPD_GROUP", "redis.group"},
    {"ROLLUPD_CONSUMER", "redis.consumer"},
    {"ROLLUPD_REDIS_COUNT", "redis.count"},
    {"ROLLUPD_REDIS_READ_BYTES", "redis.read_bytes"},
    {"ROLLUPD_REDIS_BLOCK_MS", "redis.block_ms"},
    {"ROLLUPD_START", "redis.start"},
    {"ROLLUPD_DEAD_LETTER_STREAM", "redis.dead_letter_stream"},
    {"ROLLUPD_CLAIM_IDLE_MS", "redis.claim_idle_ms"},
    {"ROLLUPD_LONE_CONSUMER", "redis.lone_consumer"},
    {"ROLLUPD_REDIS_CONNECT_TIMEOUT_MS", "redis.connect_timeout_ms"},
    {"ROLLUPD_REDIS_CLUSTER", "redis.cluster"},
    {"ROLLUPD_REDIS_CLUSTER_SEEDS", "redis.cluster_seeds"},
    {"ROLLUPD_PG_CONNINFO", "postgres.conninfo"},
    {"ROLLUPD_HOURLY_TABLE", "postgres.hourly_table"},
    {"ROLLUPD_RAW_TABLE", "postgres.raw_table"},
    {"ROLLUPD_PG_STATEMENT_TIMEOUT_MS", "postgres.statement_timeout_ms"},
    {"ROLLUPD_PG_CONNECT_TIMEOUT_S", "postgres.connect_timeout_s"},
    {"ROLLUPD_PG_CREATE_SCHEMA", "postgres.create_schema"},
    {"ROLLUPD_FLUSH_INTERVAL_MS", "flush.interval_ms"},
    {"ROLLUPD_FLUSH_MAX_EVENTS", "flush.max_events"},
    {"ROLLUPD_FLUSH_MAX_KEYS", "flush.max_keys"},
    {"ROLLUPD_FLUSH_BACKLOG_ENTRIES", "flush.backlog_entries"},
    {"ROLLUPD_FLUSH_STATE_IDLE_S", "flush.state_idle_s"},
    {"ROLLUPD_MAX_MEMORY_MB", "limits.max_memory_mb"},
    {"ROLLUPD_STATUS_SOCKET", "status.socket"},
    {"ROLLUPD_METRICS_LISTEN", "metrics.listen"},
    {"ROLLUPD_LOG_LEVEL", "log.level"},
    {"ROLLUPD_LOG_FORMAT", "log.format"},
};

/* ROLLUPD_* variables that other programs read (rollupctl, scripts/demo): not typos. */
static const char *const others[] = {"ROLLUPD_SOCKET", "ROLLUPD_DEMO_EVENTS", "ROLLUPD_DEMO_KEEP"};

/* libpq's variables shown by the report; the value of those in secret[] never is. */
static const char *const pgvars[] = {"PGHOST",    "PGHOSTADDR",        "PGPORT",     "PGDATABASE",
                                     "PGUSER",    "PGPASSWORD",        "PGPASSFILE", "PGSERVICE",
                                     "PGSSLMODE", "PGSSLROOTCERT",     "PGSSLCERT",  "PGSSLKEY",
                                     "PGAPPNAME", "PGCONNECT_TIMEOUT", "PGOPTIONS"};

const struct ru_envcfg_var *ru_envcfg_vars(size_t *n)
{
    *n = RU_ARRAY_LEN(vars);
    return vars;
}

/* The value of name in env, or NULL. */
static const char *env_get(char *const *env, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; env != NULL && env[i] != NULL; i++)
        if (strncmp(env[i], name, n) == 0 && env[i][n] == '=')
            return env[i] + n + 1;
    return NULL;
}

static bool known_name(const char *s, size_t n)
{
    for (size_t i = 0; i < RU_ARRAY_LEN(vars); i++)
        if (strlen(vars[i].var) == n && memcmp(vars[i].var, s, n) == 0)
            return true;
    for (size_t i = 0; i < RU_ARRAY_LEN(others); i++)
        if (strlen(others[i]) == n && memcmp(others[i], s, n) == 0)
            return true;
    return false;
}

int ru_envcfg_apply(struct ru_config *cfg, char *const *env, char *err, size_t errlen)
{
    char why[256];

    for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
        const char *eq = strchr(env[i], '=');
        size_t n = eq != NULL ? (size_t)(eq - env[i]) : strlen(env[i]);
        if (strncmp(env[i], "ROLLUPD_", 8) == 0 && !known_name(env[i], n)) {
            snprintf(err, errlen, "%.*s: unknown variable (see rollupd(8) for the list)", (int)n,
                     env[i]);
            return -1;
        }
    }
    for (size_t i = 0; i < RU_ARRAY_LEN(vars); i++) {
        const char *v = env_get(env, vars[i].var);
        if (v == NULL)
            continue;
        int k = ru_config_key_index(vars[i].key);
        char origin[64];
        snprintf(origin, sizeof(origin), "environment %s", vars[i].var);
        if (k < 0 || ru_config_set(cfg, (size_t)k, v, origin, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "%s: %s", vars[i].var, k < 0 ? "no such key" : why);
            return -1;
        }
    }
    int ci = ru_config_key_index("postgres.conninfo");
    if (ci >= 0 && cfg->origin[ci] == NULL &&
        (env_get(env, "PGDATABASE") != NULL || env_get(env, "PGSERVICE") != NULL)) {
        /* the built-in "dbname=genonaut" would hide PGDATABASE from libpq */
        if (ru_config_set(cfg, (size_t)ci, "", "default, giving way to libpq's PG* variables", why,
                          sizeof(why)) < 0) {
            snprintf(err, errlen, "postgres.conninfo: %s", why);
            return -1;
        }
    }
    return ru_config_check(cfg, err, errlen);
}

int ru_envcfg_load(struct ru_config *cfg, const char *path, char *const *env, char *err,
                   size_t errlen)
{
    if (path != NULL) {
        if (ru_cfgfile_load(cfg, path, err, errlen) < 0)
            return -1;
    } else {
        ru_config_defaults(cfg);
    }
    if (ru_envcfg_apply(cfg, env, err, errlen) < 0) {
        ru_config_deinit(cfg);
        return -1;
    }
    return 0;
}

void ru_envcfg_report(const struct ru_config *cfg, char *const *env, struct ru_buf *out)
{
    char name[64];
    char value[1024];

    for (size_t i = 0; i < ru_config_key_count(); i++) {
        ru_config_key_name(i, name, sizeof(name));
        ru_config_key_value(cfg, i, value, sizeof(value));
        ru_buf_printf(out, "%s = %s;  # %s\n", name, value,
                      cfg->origin[i] != NULL ? cfg->origin[i] : "default");
    }
    for (size_t i = 0; i < RU_ARRAY_LEN(pgvars); i++) {
        const char *v = env_get(env, pgvars[i]);
        if (v == NULL)
            continue;
        if (strcmp(pgvars[i], "PGPASSWORD") == 0)
            ru_buf_printf(out, "# libpq: %s=***\n", pgvars[i]);
        else
            ru_buf_printf(out, "# libpq: %s=%s\n", pgvars[i], v);
    }
}
