/* Unit tests for src/envcfg.c: ROLLUPD_* variables over the file or the defaults, the
 * origin of each value, refusals naming the variable, libpq's variables, the -t report. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rollupd/envcfg.h"

static char conf_path[64];

static void cleanup(void)
{
    if (conf_path[0] != '\0')
        unlink(conf_path);
    conf_path[0] = '\0';
}

TestSuite(envcfg, .fini = cleanup);

static const char *write_conf(const char *text)
{
    snprintf(conf_path, sizeof(conf_path), "/tmp/rollupd-envcfg-XXXXXX");
    int fd = mkstemp(conf_path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return conf_path;
}

static const char *origin(const struct ru_config *c, const char *key)
{
    int i = ru_config_key_index(key);
    cr_assert(i >= 0, "no key %s", key);
    return c->origin[i];
}

Test(envcfg, defaults_and_environment_without_a_file)
{
    char *env[] = {"ROLLUPD_REDIS_URL=redis://10.1.2.3:6380/2",
                   "ROLLUPD_STREAM=s",
                   "ROLLUPD_LONE_CONSUMER=yes",
                   "ROLLUPD_FLUSH_INTERVAL_MS=250",
                   "ROLLUPD_PG_CREATE_SCHEMA=false",
                   "HOME=/x",
                   NULL};
    struct ru_config c;
    char err[256];
    cr_assert_eq(ru_envcfg_load(&c, NULL, env, err, sizeof(err)), 0, "%s", err);
    cr_assert_null(c.path);
    cr_assert_str_eq(c.redis.addr.host, "10.1.2.3");
    cr_assert_eq(c.redis.addr.port, 6380);
    cr_assert_eq(c.redis.addr.db, 2);
    cr_assert(c.redis.lone_consumer);
    cr_assert_eq(c.flush.interval_ms, 250);
    cr_assert(!c.postgres.create_schema, "ROLLUPD_PG_CREATE_SCHEMA=false ignored");
    cr_assert_str_eq(c.redis.dead_letter_stream, "s:dead", "the dead-letter default follows");
    cr_assert_str_eq(origin(&c, "redis.url"), "environment ROLLUPD_REDIS_URL");
    cr_assert_null(origin(&c, "redis.group"));
    cr_assert_str_eq(c.postgres.conninfo, "dbname=genonaut");
    ru_config_deinit(&c);
}

Test(envcfg, environment_overrides_the_file_and_each_origin_is_recorded)
{
    const char *path = write_conf("redis: {\n  stream = \"file-stream\";\n"
                                  "  dead_letter_stream = \"dl\";\n  group = \"g\";\n};\n");
    char *env[] = {"ROLLUPD_STREAM=env-stream", NULL};
    struct ru_config c;
    char err[256], want[128];
    cr_assert_eq(ru_envcfg_load(&c, path, env, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(c.redis.stream, "env-stream");
    cr_assert_str_eq(c.redis.group, "g");
    cr_assert_str_eq(c.redis.dead_letter_stream, "dl", "an explicit dead-letter stream stays");
    snprintf(want, sizeof(want), "%s:4", path);
    cr_assert_str_eq(origin(&c, "redis.group"), want);
    cr_assert_str_eq(origin(&c, "redis.stream"), "environment ROLLUPD_STREAM");
    ru_config_deinit(&c);
}

/* flush.max_events left unset follows the mode (a shared group's pending list kept shorter);
 * a value given in the file or the environment stays in either mode. */
Test(envcfg, max_events_default_follows_the_mode)
{
    struct ru_config c;
    char err[256];
    char *shared[] = {NULL};
    cr_assert_eq(ru_envcfg_load(&c, NULL, shared, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.flush.max_events, RU_CONFIG_MAX_EVENTS_SHARED);
    cr_assert_eq(c.flush.max_events, 25000);
    cr_assert_null(origin(&c, "flush.max_events"));
    ru_config_deinit(&c);

    char *lone[] = {"ROLLUPD_LONE_CONSUMER=yes", NULL};
    cr_assert_eq(ru_envcfg_load(&c, NULL, lone, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.flush.max_events, RU_CONFIG_MAX_EVENTS_LONE);
    cr_assert_eq(c.flush.max_events, 50000);
    ru_config_deinit(&c);

    const char *path = write_conf("redis: { lone_consumer = true; };\n"
                                  "flush: { max_events = 30000; };\n");
    char *none[] = {NULL};
    cr_assert_eq(ru_envcfg_load(&c, path, none, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.flush.max_events, 30000, "a value in the file stays for a lone consumer");
    ru_config_deinit(&c);

    char *set[] = {"ROLLUPD_FLUSH_MAX_EVENTS=60000", NULL};
    cr_assert_eq(ru_envcfg_load(&c, NULL, set, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.flush.max_events, 60000, "a value in the environment stays in a shared group");
    ru_config_deinit(&c);

    path = write_conf("redis: { lone_consumer = true; };\n");
    cr_assert_eq(ru_envcfg_load(&c, path, none, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.flush.max_events, 50000, "a lone consumer from the file, the key unset");
    struct ru_buf b = RU_BUF_INIT;
    ru_config_describe(&c, &b);
    cr_assert_not_null(strstr(b.p, "flush.max_events = 50000;  # default 50000;"), "%s", b.p);
    ru_buf_free(&b);
    ru_config_deinit(&c);
}

/* The mode only changes on restart: a reload that turns redis.lone_consumer on or off keeps
 * the running mode, and an unset flush.max_events keeps following it. */
Test(envcfg, reload_keeps_the_running_modes_max_events)
{
    struct ru_config running, next;
    char err[256];
    char *shared[] = {NULL};
    char *lone[] = {"ROLLUPD_LONE_CONSUMER=yes", NULL};

    cr_assert_eq(ru_envcfg_load(&running, NULL, shared, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ru_envcfg_load(&next, NULL, lone, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(next.flush.max_events, 50000);
    ru_config_keep_restart_keys(&next, &running);
    cr_assert(!next.redis.lone_consumer);
    cr_assert_eq(next.flush.max_events, 25000, "the running shared group's default");
    ru_config_deinit(&next);
    ru_config_deinit(&running);

    cr_assert_eq(ru_envcfg_load(&running, NULL, lone, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ru_envcfg_load(&next, NULL, shared, err, sizeof(err)), 0, "%s", err);
    ru_config_keep_restart_keys(&next, &running);
    cr_assert(next.redis.lone_consumer);
    cr_assert_eq(next.flush.max_events, 50000, "the running lone consumer's default");
    ru_config_deinit(&next);
    ru_config_deinit(&running);

    char *set[] = {"ROLLUPD_FLUSH_MAX_EVENTS=30000", NULL};
    cr_assert_eq(ru_envcfg_load(&running, NULL, lone, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ru_envcfg_load(&next, NULL, set, err, sizeof(err)), 0, "%s", err);
    ru_config_keep_restart_keys(&next, &running);
    cr_assert_eq(next.flush.max_events, 30000, "a value set stays through the mode kept");
    ru_config_deinit(&next);
    ru_config_deinit(&running);
}

/* Each bad value is refused with the variable's name and the reason the file would get. */
Test(envcfg, bad_values_are_refused_naming_the_variable)
{
    static const struct {
        const char *env, *want;
    } cases[] = {
        {"ROLLUPD_REDIS_URL=http://x", "ROLLUPD_REDIS_URL: unsupported scheme"},
        {"ROLLUPD_REDIS_URL=", "ROLLUPD_REDIS_URL: empty URL"},
        {"ROLLUPD_MAX_MEMORY_MB=12", "ROLLUPD_MAX_MEMORY_MB: must be from 64 to 1048576 (got 12)"},
        {"ROLLUPD_FLUSH_INTERVAL_MS=5s", "ROLLUPD_FLUSH_INTERVAL_MS: expected an integer"},
        {"ROLLUPD_LONE_CONSUMER=maybe", "ROLLUPD_LONE_CONSUMER: expected true or false"},
        {"ROLLUPD_LOG_LEVEL=loud", "ROLLUPD_LOG_LEVEL: must be one of"},
        {"ROLLUPD_LOG_FORMAT=xml", "ROLLUPD_LOG_FORMAT: must be \"auto\""},
        {"ROLLUPD_METRICS_LISTEN=0.0.0.0", "ROLLUPD_METRICS_LISTEN: must be \"host:port\""},
        {"ROLLUPD_HOURLY_TABLE=a b", "ROLLUPD_HOURLY_TABLE: must be a table name"},
        {"ROLLUPD_START=now", "ROLLUPD_START: must be \"0\""},
        {"ROLLUPD_STREAM=", "ROLLUPD_STREAM: must not be empty"},
        {"ROLLUPD_REDIS_ULR=redis://x", "ROLLUPD_REDIS_ULR: unknown variable"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *env[] = {(char *)cases[i].env, NULL};
        struct ru_config c;
        char err[256] = "";
        cr_assert_eq(ru_envcfg_load(&c, NULL, env, err, sizeof(err)), -1, "%s accepted",
                     cases[i].env);
        cr_assert(strncmp(err, cases[i].want, strlen(cases[i].want)) == 0, "%s: got \"%s\"",
                  cases[i].env, err);
        cr_assert_null(c.redis.url, "not deinitialised after a refusal");
    }
}

Test(envcfg, checks_across_keys_name_the_origin)
{
    const char *path = write_conf("redis: {\n  claim_idle_ms = 60000;\n};\n");
    char *env[] = {"ROLLUPD_LONE_CONSUMER=true", NULL};
    struct ru_config c;
    char err[256], want[256];
    cr_assert_eq(ru_envcfg_load(&c, path, env, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:2: redis.claim_idle_ms: a lone consumer", path);
    cr_assert(strncmp(err, want, strlen(want)) == 0, "got \"%s\"", err);

    char *env2[] = {"ROLLUPD_STREAM=x", "ROLLUPD_DEAD_LETTER_STREAM=x", NULL};
    cr_assert_eq(ru_envcfg_load(&c, NULL, env2, err, sizeof(err)), -1);
    cr_assert_str_eq(err, "environment ROLLUPD_DEAD_LETTER_STREAM: redis.dead_letter_stream: "
                          "must differ from redis.stream");
}

Test(envcfg, other_programs_variables_are_not_typos)
{
    char *env[] = {"ROLLUPD_SOCKET=/tmp/s", "ROLLUPD_DEMO_EVENTS=5", NULL};
    struct ru_config c;
    char err[256];
    cr_assert_eq(ru_envcfg_load(&c, NULL, env, err, sizeof(err)), 0, "%s", err);
    ru_config_deinit(&c);
}

/* The built-in dbname=genonaut would hide PGDATABASE from libpq; a configured conninfo
 * keeps precedence (libpq uses PG* only for what it leaves out). */
Test(envcfg, libpq_variables_keep_working)
{
    char *env[] = {"PGDATABASE=analytics", "PGHOST=db.internal", NULL};
    struct ru_config c;
    char err[256];
    cr_assert_eq(ru_envcfg_load(&c, NULL, env, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(c.postgres.conninfo, "");
    ru_config_deinit(&c);

    char *env2[] = {"PGDATABASE=analytics", "ROLLUPD_PG_CONNINFO=dbname=mine", NULL};
    cr_assert_eq(ru_envcfg_load(&c, NULL, env2, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(c.postgres.conninfo, "dbname=mine");
    ru_config_deinit(&c);
}

Test(envcfg, report_shows_origins_and_no_secret)
{
    const char *path =
        write_conf("postgres: {\n  conninfo = \"host=db password=filesecret\";\n};\n");
    char *env[] = {"ROLLUPD_REDIS_URL=redis://u:envsecret@r:6379/0", "PGPASSWORD=pgsecret",
                   "PGUSER=app", NULL};
    struct ru_config c;
    char err[256], want[128];
    cr_assert_eq(ru_envcfg_load(&c, path, env, err, sizeof(err)), 0, "%s", err);
    struct ru_buf b = RU_BUF_INIT;
    ru_envcfg_report(&c, env, &b);
    cr_assert_not_null(strstr(b.p, "redis.url = \"redis://u:***@r:6379/0\";  # environment "
                                   "ROLLUPD_REDIS_URL\n"),
                       "%s", b.p);
    /* libpq's own order of options (the redaction rebuilds the string from them) */
    snprintf(want, sizeof(want), "postgres.conninfo = \"password=*** host=db\";  # %s:2\n", path);
    cr_assert_not_null(strstr(b.p, want), "%s", b.p);
    cr_assert_not_null(strstr(b.p, "redis.count = 1000;  # default\n"), "%s", b.p);
    cr_assert_not_null(strstr(b.p, "# libpq: PGUSER=app\n"), "%s", b.p);
    cr_assert_not_null(strstr(b.p, "# libpq: PGPASSWORD=***\n"), "%s", b.p);
    cr_assert_null(strstr(b.p, "secret"), "a secret in the report:\n%s", b.p);
    /* every key of the configuration is in the report, once */
    for (size_t i = 0; i < ru_config_key_count(); i++) {
        char name[64], line[80];
        snprintf(line, sizeof(line), "\n%s = ", ru_config_key_name(i, name, sizeof(name)));
        cr_assert(strstr(b.p, line) != NULL || strncmp(b.p, line + 1, strlen(line + 1)) == 0,
                  "%s missing", name);
    }
    ru_buf_free(&b);
    ru_config_deinit(&c);
}

/* Every variable names a key, and no two name the same one. */
Test(envcfg, table_names_real_keys_once)
{
    size_t n;
    const struct ru_envcfg_var *v = ru_envcfg_vars(&n);
    for (size_t i = 0; i < n; i++) {
        cr_assert(ru_config_key_index(v[i].key) >= 0, "%s: no key %s", v[i].var, v[i].key);
        cr_assert(strncmp(v[i].var, "ROLLUPD_", 8) == 0);
        for (size_t j = 0; j < i; j++)
            cr_assert_str_neq(v[i].key, v[j].key);
    }
}

/* The other way: every key of the configuration's table has a variable, so a key added
 * there without one fails here (a container may be configured by its environment only). */
Test(envcfg, every_key_has_a_variable)
{
    size_t n;
    const struct ru_envcfg_var *v = ru_envcfg_vars(&n);
    char name[64];
    for (size_t k = 0; k < ru_config_key_count(); k++) {
        ru_config_key_name(k, name, sizeof(name));
        bool found = false;
        for (size_t i = 0; i < n; i++)
            found = found || strcmp(v[i].key, name) == 0;
        cr_assert(found, "%s: no ROLLUPD_* variable in envcfg.c's table", name);
    }
    cr_assert_eq(n, ru_config_key_count());
}
