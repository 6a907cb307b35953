/* Unit tests for src/config.c: loading, validation, error messages, secrets at rest
 * and reload rules (Redis URLs: test_redisurl.c; redaction: test_redact.c). */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rollupd/cfgfile.h"
#include "rollupd/config.h"

#ifndef RU_SOURCE_DIR
#define RU_SOURCE_DIR "."
#endif

/* ---- temp files, removed after every test ------------------------------------------- */

#define MAX_TMP 64
static char tmp_paths[MAX_TMP][64];
static int ntmp;
static char tmp_dir[64];

static void cleanup(void)
{
    for (int i = 0; i < ntmp; i++)
        unlink(tmp_paths[i]);
    ntmp = 0;
    if (tmp_dir[0] != '\0')
        rmdir(tmp_dir);
    tmp_dir[0] = '\0';
}

TestSuite(config, .fini = cleanup);

static void write_all(int fd, const char *text)
{
    size_t n = strlen(text);
    while (n > 0) {
        ssize_t w = write(fd, text, n);
        cr_assert(w > 0, "write: %s", strerror(errno));
        text += w;
        n -= (size_t)w;
    }
}

/* Writes text to a new temp file (in dir, or /tmp) and returns its path. */
static const char *write_conf_in(const char *dir, const char *name, const char *text)
{
    cr_assert(ntmp < MAX_TMP);
    char *path = tmp_paths[ntmp];
    int fd;
    if (name != NULL) {
        snprintf(path, sizeof(tmp_paths[0]), "%s/%s", dir, name);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    } else {
        snprintf(path, sizeof(tmp_paths[0]), "%s/rollupd-test-XXXXXX", dir);
        fd = mkstemp(path);
    }
    cr_assert(fd >= 0, "cannot create %s: %s", path, strerror(errno));
    ntmp++;
    write_all(fd, text);
    close(fd);
    return path;
}

static const char *write_conf(const char *text)
{
    return write_conf_in("/tmp", NULL, text);
}

/* Loads text; returns the rc, with the path in *pathp and the message in err. */
static int load_text(const char *text, struct ru_config *cfg, const char **pathp, char *err,
                     size_t errlen)
{
    const char *path = write_conf(text);
    if (pathp != NULL)
        *pathp = path;
    return ru_cfgfile_load(cfg, path, err, errlen);
}

/* Loads text that must fail and checks the whole message: fmt has one %s for the path. */
static void expect_error(const char *text, const char *fmt)
{
    struct ru_config cfg;
    const char *path;
    char err[512], want[512];

    int rc = load_text(text, &cfg, &path, err, sizeof(err));
    snprintf(want, sizeof(want), fmt, path);
    cr_assert_eq(rc, -1, "loaded although %s was expected", want);
    cr_assert_str_eq(err, want);
    cr_assert_null(cfg.path, "cfg not deinitialised after a failed load");
    cr_assert_null(cfg.redis.url);
}

/* Loads text that must fail with a message starting "path:line: " and containing part. */
static void expect_error_part(const char *text, int line, const char *part)
{
    struct ru_config cfg;
    const char *path;
    char err[512], prefix[256];

    int rc = load_text(text, &cfg, &path, err, sizeof(err));
    cr_assert_eq(rc, -1, "loaded although \"%s\" was expected", part);
    snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
    cr_assert(strncmp(err, prefix, strlen(prefix)) == 0, "\"%s\" does not start with \"%s\"", err,
              prefix);
    cr_assert_not_null(strstr(err, part), "\"%s\" does not contain \"%s\"", err, part);
    cr_assert_null(strchr(err, '\n'));
}

static void expect_load(const char *text, struct ru_config *cfg)
{
    char err[512] = "";
    int rc = load_text(text, cfg, NULL, err, sizeof(err));
    cr_assert_eq(rc, 0, "load failed: %s", err);
}

static void hostname(char *buf, size_t len)
{
    cr_assert_eq(gethostname(buf, len), 0);
    buf[len - 1] = '\0';
}

/* ---- defaults and valid files ------------------------------------------------------- */

static void assert_defaults(const struct ru_config *c)
{
    char host[256];
    hostname(host, sizeof(host));

    cr_assert_str_eq(c->redis.url, "redis://127.0.0.1:6379/0");
    cr_assert_str_eq(c->redis.addr.host, "127.0.0.1");
    cr_assert_eq(c->redis.addr.port, 6379);
    cr_assert_eq(c->redis.addr.db, 0);
    cr_assert_null(c->redis.addr.path);
    cr_assert_null(c->redis.addr.user);
    cr_assert_null(c->redis.addr.password);
    cr_assert_str_eq(c->redis.stream, "genonaut:route_analytics:stream");
    cr_assert_str_eq(c->redis.group, "rollupd");
    cr_assert_str_eq(c->redis.consumer, host);
    cr_assert_eq(c->redis.count, 1000);
    cr_assert_eq(c->redis.read_bytes, 524288);
    cr_assert_eq(c->redis.block_ms, 1000);
    cr_assert_str_eq(c->redis.start, "0");
    cr_assert_str_eq(c->redis.dead_letter_stream, "genonaut:route_analytics:stream:dead");
    cr_assert_eq(c->redis.claim_idle_ms, 0);
    cr_assert(!c->redis.lone_consumer);
    cr_assert_eq(c->redis.connect_timeout_ms, 5000);
    cr_assert_str_eq(c->redis.cluster, "auto");
    cr_assert_str_eq(c->redis.cluster_seeds, "");
    cr_assert_str_eq(c->postgres.conninfo, "dbname=genonaut");
    cr_assert_str_eq(c->postgres.hourly_table, "route_analytics_hourly");
    cr_assert_str_eq(c->postgres.raw_table, "");
    cr_assert_eq(c->postgres.statement_timeout_ms, 60000);
    cr_assert_eq(c->postgres.connect_timeout_s, 10);
    cr_assert(c->postgres.create_schema);
    cr_assert_eq(c->flush.interval_ms, 5000);
    cr_assert_eq(c->flush.max_events, 25000);
    cr_assert_eq(c->flush.max_keys, 100000);
    cr_assert_eq(c->flush.backlog_entries, 8000);
    cr_assert_eq(c->flush.state_idle_s, 900);
    cr_assert_eq(c->limits.max_memory_mb, 1024);
    cr_assert_str_eq(c->status.socket, "/run/rollupd/rollupd.sock");
    cr_assert_str_eq(c->metrics.listen, "");
    cr_assert_eq(c->log.level, RU_LOG_INFO);
    cr_assert_str_eq(c->log.format, "auto");
}

Test(config, defaults)
{
    struct ru_config c;
    ru_config_defaults(&c);
    cr_assert_null(c.path);
    assert_defaults(&c);
    ru_config_deinit(&c);
}

Test(config, empty_file_gives_defaults)
{
    struct ru_config c;
    const char *path;
    char err[256];
    cr_assert_eq(load_text("# nothing\n", &c, &path, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(c.path, path);
    assert_defaults(&c);
    ru_config_deinit(&c);
}

Test(config, example_file_documents_the_defaults)
{
    struct ru_config c;
    char err[512];
    const char *path = RU_SOURCE_DIR "/etc/rollupd.conf";
    cr_assert_eq(ru_cfgfile_load(&c, path, err, sizeof(err)), 0, "%s", err);
    assert_defaults(&c);
    ru_config_deinit(&c);

    /* and it names every key: dropping any one of them from the file is noticed */
    FILE *fp = fopen(path, "r");
    cr_assert_not_null(fp);
    char text[16384];
    size_t n = fread(text, 1, sizeof(text) - 1, fp);
    fclose(fp);
    text[n] = '\0';
    static const char *const names[] = {
        "url =",
        "stream =",
        "group =",
        "consumer =",
        "count =",
        "block_ms =",
        "start =",
        "dead_letter_stream =",
        "claim_idle_ms =",
        "lone_consumer =",
        "connect_timeout_ms =",
        "cluster =",
        "cluster_seeds =",
        "conninfo =",
        "hourly_table =",
        "raw_table =",
        "statement_timeout_ms =",
        "connect_timeout_s =",
        "create_schema =",
        "interval_ms =",
        "max_events =",
        "max_keys =",
        "backlog_entries =",
        "state_idle_s =",
        "max_memory_mb =",
        "socket =",
        "listen =",
        "level =",
        "format =",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        cr_assert_not_null(strstr(text, names[i]), "etc/rollupd.conf lacks %s", names[i]);
}

Test(config, full_file_overrides_every_key)
{
    struct ru_config c;
    expect_load("redis: {\n"
                "  url = \"redis://alice:s3cret@redis.example:6380/2\";\n"
                "  stream = \"s1\";\n"
                "  group = \"g1\";\n"
                "  consumer = \"c1\";\n"
                "  count = 50;\n"
                "  block_ms = 0;\n"
                "  start = \"$\";\n"
                "  dead_letter_stream = \"dl\";\n"
                "  claim_idle_ms = 60000;\n"
                "  connect_timeout_ms = 250;\n"
                "};\n"
                "postgres: {\n"
                "  conninfo = \"host=db dbname=x\";\n"
                "  hourly_table = \"analytics.hourly\";\n"
                "  raw_table = \"raw_events\";\n"
                "  statement_timeout_ms = 0;\n"
                "  connect_timeout_s = 3;\n"
                "  create_schema = false;\n"
                "};\n"
                "flush: { interval_ms = 100; max_events = 1000; max_keys = 100;\n"
                "         backlog_entries = 0; state_idle_s = 0; };\n"
                "limits: { max_memory_mb = 64; };\n"
                "status: { socket = \"/tmp/r.sock\"; };\n"
                "metrics: { listen = \"127.0.0.1:9187\"; };\n"
                "log: { level = \"debug\"; };\n",
                &c);
    cr_assert_str_eq(c.redis.url, "redis://alice:s3cret@redis.example:6380/2");
    cr_assert_str_eq(c.redis.addr.host, "redis.example");
    cr_assert_eq(c.redis.addr.port, 6380);
    cr_assert_eq(c.redis.addr.db, 2);
    cr_assert_str_eq(c.redis.addr.user, "alice");
    cr_assert_str_eq(c.redis.addr.password, "s3cret");
    cr_assert_str_eq(c.redis.stream, "s1");
    cr_assert_str_eq(c.redis.group, "g1");
    cr_assert_str_eq(c.redis.consumer, "c1");
    cr_assert_eq(c.redis.count, 50);
    cr_assert_eq(c.redis.block_ms, 0);
    cr_assert_str_eq(c.redis.start, "$");
    cr_assert_str_eq(c.redis.dead_letter_stream, "dl");
    cr_assert_eq(c.redis.claim_idle_ms, 60000);
    cr_assert_eq(c.redis.connect_timeout_ms, 250);
    cr_assert_str_eq(c.postgres.conninfo, "host=db dbname=x");
    cr_assert_str_eq(c.postgres.hourly_table, "analytics.hourly");
    cr_assert_str_eq(c.postgres.raw_table, "raw_events");
    cr_assert_eq(c.postgres.statement_timeout_ms, 0);
    cr_assert_eq(c.postgres.connect_timeout_s, 3);
    cr_assert(!c.postgres.create_schema);
    cr_assert_eq(c.flush.interval_ms, 100);
    cr_assert_eq(c.flush.max_events, 1000);
    cr_assert_eq(c.flush.max_keys, 100);
    cr_assert_eq(c.flush.backlog_entries, 0);
    cr_assert_eq(c.flush.state_idle_s, 0);
    cr_assert_eq(c.limits.max_memory_mb, 64);
    cr_assert_str_eq(c.status.socket, "/tmp/r.sock");
    cr_assert_str_eq(c.metrics.listen, "127.0.0.1:9187");
    cr_assert_eq(c.log.level, RU_LOG_DEBUG);
    ru_config_deinit(&c);
}

Test(config, range_bounds_are_inclusive)
{
    struct ru_config c;
    expect_load("redis: { count = 100000; block_ms = 60000; connect_timeout_ms = 600000; };\n"
                "postgres: { statement_timeout_ms = 3600000; connect_timeout_s = 600; };\n"
                "flush: { interval_ms = 3600000; max_events = 100000000; max_keys = 10000000;\n"
                "         backlog_entries = 100000000; state_idle_s = 604800; };\n"
                "limits: { max_memory_mb = 1048576; };\n",
                &c);
    cr_assert_eq(c.redis.count, 100000);
    cr_assert_eq(c.redis.block_ms, 60000);
    cr_assert_eq(c.redis.connect_timeout_ms, 600000);
    cr_assert_eq(c.postgres.statement_timeout_ms, 3600000);
    cr_assert_eq(c.postgres.connect_timeout_s, 600);
    cr_assert_eq(c.flush.interval_ms, 3600000);
    cr_assert_eq(c.flush.max_events, 100000000);
    cr_assert_eq(c.flush.max_keys, 10000000);
    cr_assert_eq(c.flush.backlog_entries, 100000000);
    cr_assert_eq(c.flush.state_idle_s, 604800);
    cr_assert_eq(c.limits.max_memory_mb, 1048576);
    ru_config_deinit(&c);
}

Test(config, int64_values_are_accepted)
{
    struct ru_config c;
    expect_load("redis: { count = 100L; claim_idle_ms = 5000000000L; };\n", &c);
    cr_assert_eq(c.redis.count, 100);
    cr_assert_eq(c.redis.claim_idle_ms, 5000000000LL);
    ru_config_deinit(&c);
}

/* libconfig 1.5 reads 5000000000 (no L) as 705032704; the loader must not. */
Test(config, wide_integers_without_suffix_keep_their_value)
{
    struct ru_config c;
    expect_load("redis: {\n  claim_idle_ms = 5000000000;\n  count = 7;\n};\n", &c);
    cr_assert_eq(c.redis.claim_idle_ms, 5000000000LL);
    cr_assert_eq(c.redis.count, 7);
    ru_config_deinit(&c);

    expect_error("redis: {\n  count = 4294967297;\n};\n",
                 "%s:2: redis.count: must be from 1 to 100000 (got 4294967297)");
    expect_error("flush: { max_keys =\n  0x100000064; };\n",
                 "%s:1: flush.max_keys: must be from 100 to 10000000 (got 4294967396)");
    expect_error("redis: { claim_idle_ms = 99999999999999999999; };\n",
                 "%s:1: redis.claim_idle_ms: integer too large");
}

Test(config, errors_in_included_files_name_that_file)
{
    struct ru_config c;
    char err[512], text[256], want[512];
    snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/rollupd-test-dir-XXXXXX");
    cr_assert_not_null(mkdtemp(tmp_dir));
    const char *inc = write_conf_in(tmp_dir, "part.conf",
                                    "\nflush: { max_keys = 5; };\nredis: {\n"
                                    "  claim_idle_ms = 5000000000; };\n");
    snprintf(text, sizeof(text), "log: { level = \"debug\"; };\n@include \"%s\"\n", inc);
    const char *main_path = write_conf_in(tmp_dir, "main.conf", text);
    cr_assert_eq(ru_cfgfile_load(&c, main_path, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:2: flush.max_keys: must be from 100 to 10000000 (got 5)", inc);
    cr_assert_str_eq(err, want);

    /* fixed: the wide literal in the included file keeps its value too */
    inc = write_conf_in(tmp_dir, "part.conf", "redis: {\n  claim_idle_ms = 5000000000; };\n");
    cr_assert_eq(ru_cfgfile_load(&c, main_path, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.redis.claim_idle_ms, 5000000000LL);
    cr_assert_eq(c.log.level, RU_LOG_DEBUG);
    ru_config_deinit(&c);
}

Test(config, dead_letter_stream_follows_the_stream)
{
    struct ru_config c;
    expect_load("redis: { stream = \"events\"; };\n", &c);
    cr_assert_str_eq(c.redis.dead_letter_stream, "events:dead");
    ru_config_deinit(&c);

    expect_load("redis: { stream = \"events\"; dead_letter_stream = \"\"; };\n", &c);
    cr_assert_str_eq(c.redis.dead_letter_stream, "events:dead");
    ru_config_deinit(&c);

    expect_load("redis: { dead_letter_stream = \"graveyard\"; stream = \"events\"; };\n", &c);
    cr_assert_str_eq(c.redis.dead_letter_stream, "graveyard");
    ru_config_deinit(&c);

    expect_error("redis: {\n  stream = \"a\";\n  dead_letter_stream = \"a\";\n};\n",
                 "%s:3: redis.dead_letter_stream: must differ from redis.stream");
}

Test(config, consumer_defaults_to_the_host_name)
{
    struct ru_config c;
    char host[256];
    hostname(host, sizeof(host));
    expect_load("redis: { consumer = \"\"; };\n", &c);
    cr_assert_str_eq(c.redis.consumer, host);
    ru_config_deinit(&c);

    expect_load("redis: { consumer = \"worker-7\"; };\n", &c);
    cr_assert_str_eq(c.redis.consumer, "worker-7");
    ru_config_deinit(&c);
}

Test(config, unix_socket_url_in_file)
{
    struct ru_config c;
    expect_load("redis: { url = \"unix:///var/run/redis/redis.sock?db=3\"; };\n", &c);
    cr_assert_null(c.redis.addr.host);
    cr_assert_str_eq(c.redis.addr.path, "/var/run/redis/redis.sock");
    cr_assert_eq(c.redis.addr.db, 3);
    ru_config_deinit(&c);
}

Test(config, deinit_is_idempotent)
{
    struct ru_config c;
    ru_config_defaults(&c);
    ru_config_deinit(&c);
    cr_assert_null(c.redis.url);
    cr_assert_null(c.redis.addr.host);
    cr_assert_null(c.status.socket);
    ru_config_deinit(&c);
    cr_assert_null(c.redis.url);

    struct ru_config z;
    memset(&z, 0, sizeof(z));
    ru_config_deinit(&z);
    cr_assert_null(z.path);
}

/* ---- errors ------------------------------------------------------------------------- */

Test(config, missing_file)
{
    struct ru_config c;
    char err[256];
    cr_assert_eq(ru_cfgfile_load(&c, "/nonexistent/rollupd-test.conf", err, sizeof(err)), -1);
    cr_assert_str_eq(err, "/nonexistent/rollupd-test.conf: cannot open: No such file or directory");
    cr_assert_null(c.path);
    cr_assert_null(c.redis.stream);

    cr_assert_eq(ru_cfgfile_load(&c, "/tmp", err, sizeof(err)), -1);
    cr_assert_str_eq(err, "/tmp: cannot open: Is a directory");
}

Test(config, syntax_error_names_file_and_line)
{
    expect_error("redis: {\n  count = 5;\n  stream = ;\n};\n", "%s:3: syntax error");
    expect_error("redis: {\n  count = 5;\n  count = 6;\n};\n", "%s:3: duplicate setting name");
}

Test(config, wrong_type_for_an_integer_key)
{
    expect_error("redis: {\n  url = \"redis://h\";\n  count = \"10\";\n};\n",
                 "%s:3: redis.count: expected an integer, got a string");
    expect_error("flush: { interval_ms = 5.5; };\n",
                 "%s:1: flush.interval_ms: expected an integer, got a float");
    expect_error("\nlimits: { max_memory_mb = true; };\n",
                 "%s:2: limits.max_memory_mb: expected an integer, got a boolean");
    expect_error("redis: { claim_idle_ms = \"1\"; };\n",
                 "%s:1: redis.claim_idle_ms: expected an integer, got a string");
}

Test(config, lone_consumer)
{
    struct ru_config c;
    expect_load("redis: { lone_consumer = true; };\n", &c);
    cr_assert(c.redis.lone_consumer);
    ru_config_deinit(&c);
    expect_load("redis: { lone_consumer = false; claim_idle_ms = 1000; };\n", &c);
    cr_assert(!c.redis.lone_consumer);
    ru_config_deinit(&c);
    expect_error("redis: {\n  lone_consumer = \"yes\";\n};\n",
                 "%s:2: redis.lone_consumer: expected true or false, got a string");
    expect_error("redis: { lone_consumer = 1; };\n",
                 "%s:1: redis.lone_consumer: expected true or false, got an integer");
    /* a lone consumer has nobody to take over from */
    expect_error("redis: {\n  lone_consumer = true;\n  claim_idle_ms = 60000;\n};\n",
                 "%s:3: redis.claim_idle_ms: a lone consumer has no other consumers to take "
                 "over; set it to 0 or lone_consumer to false");
}

Test(config, wrong_type_for_a_string_key)
{
    expect_error("redis: {\n\n  stream = 5;\n};\n",
                 "%s:3: redis.stream: expected a string, got an integer");
    expect_error("postgres: { conninfo = [\"a\"]; };\n",
                 "%s:1: postgres.conninfo: expected a string, got an array");
    expect_error("log: { level = 7; };\n", "%s:1: log.level: expected a string, got an integer");
    expect_error("status: {\n socket = { x = 1; };\n};\n",
                 "%s:2: status.socket: expected a string, got a group");
}

Test(config, out_of_range)
{
    expect_error("redis: {\n\n\n  count = 0;\n};\n",
                 "%s:4: redis.count: must be from 1 to 100000 (got 0)");
    expect_error("redis: { block_ms = 60001; };\n",
                 "%s:1: redis.block_ms: must be from 0 to 60000 (got 60001)");
    expect_error("redis: { claim_idle_ms = -1; };\n",
                 "%s:1: redis.claim_idle_ms: must be 0 or more (got -1)");
    expect_error("redis: { connect_timeout_ms = 99; };\n",
                 "%s:1: redis.connect_timeout_ms: must be from 100 to 600000 (got 99)");
    expect_error("postgres: { statement_timeout_ms = -1; };\n",
                 "%s:1: postgres.statement_timeout_ms: must be from 0 to 3600000 (got -1)");
    expect_error("postgres: { connect_timeout_s = 0; };\n",
                 "%s:1: postgres.connect_timeout_s: must be from 1 to 600 (got 0)");
    expect_error("flush: { interval_ms = 99; };\n",
                 "%s:1: flush.interval_ms: must be from 100 to 3600000 (got 99)");
    expect_error("flush: { max_events = 999; };\n",
                 "%s:1: flush.max_events: must be from 1000 to 100000000 (got 999)");
    expect_error("flush: { max_keys = 10000001; };\n",
                 "%s:1: flush.max_keys: must be from 100 to 10000000 (got 10000001)");
    expect_error("flush: { backlog_entries = -1; };\n",
                 "%s:1: flush.backlog_entries: must be from 0 to 100000000 (got -1)");
    expect_error("flush: { state_idle_s = -1; };\n",
                 "%s:1: flush.state_idle_s: must be from 0 to 604800 (got -1)");
    expect_error("flush: { state_idle_s = 604801; };\n",
                 "%s:1: flush.state_idle_s: must be from 0 to 604800 (got 604801)");
    expect_error("limits: { max_memory_mb = 63; };\n",
                 "%s:1: limits.max_memory_mb: must be from 64 to 1048576 (got 63)");
}

Test(config, unknown_key)
{
    expect_error("redis: {\n  count = 5;\n  cunt = 5;\n};\n", "%s:3: redis.cunt: unknown key");
    /* a key that exists, but in another section */
    expect_error("flush: { count = 5; };\n", "%s:1: flush.count: unknown key");
}

Test(config, unknown_section)
{
    expect_error("\nredsi: { count = 5; };\n", "%s:2: redsi: unknown section");
    expect_error("count = 5;\n", "%s:1: count: unknown section");
}

Test(config, section_that_is_not_a_group)
{
    expect_error_part("log: { level = \"info\"; };\nredis = \"redis://h\";\n", 2,
                      "redis: expected a section");
    expect_error_part("flush = 5;\n", 1, "got an integer");
}

Test(config, bad_url_in_file)
{
    expect_error("redis: {\n  stream = \"s\";\n  url = \"http://h\";\n};\n",
                 "%s:3: redis.url: unsupported scheme (expected redis://host[:port][/db] or "
                 "unix:/path)");
    expect_error("redis: { url = \"redis://h:0\"; };\n",
                 "%s:1: redis.url: bad port (must be from 1 to 65535)");
    expect_error("redis: { url = \"\"; };\n", "%s:1: redis.url: empty URL");
}

Test(config, string_values_are_validated)
{
    expect_error_part("redis: {\n start = \"1-0\";\n};\n", 2, "redis.start: must be \"0\"");
    expect_error("redis: { stream = \"\"; };\n", "%s:1: redis.stream: must not be empty");
    expect_error("redis: { group = \"\"; };\n", "%s:1: redis.group: must not be empty");
    expect_error("status: { socket = \"\"; };\n", "%s:1: status.socket: must not be empty");
    expect_error_part("status: { socket = \"/tmp/"
                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\"; };\n",
                      1, "status.socket: socket path too long");
    expect_error_part("log: { level = \"verbose\"; };\n", 1, "log.level: must be one of");
}

Test(config, table_identifiers)
{
    static const char *const bad[] = {
        "",
        "1abc",
        "a-b",
        "a b",
        "a.b.c",
        "a.",
        ".a",
        "a;drop",
        "\\\"a\\\"",
        "a..b",
        "a234567890123456789012345678901234567890123456789012345678901234",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text), "postgres: { hourly_table = \"%s\"; };\n", bad[i]);
        expect_error_part(text, 1, "postgres.hourly_table: must be a table name");
    }
    expect_error_part("postgres: { raw_table = \"x-y\"; };\n", 1,
                      "postgres.raw_table: must be a table name");
    expect_error_part("postgres: {\n hourly_table = \"t\";\n raw_table = \"t\";\n};\n", 3,
                      "postgres.raw_table: must differ from postgres.hourly_table");

    struct ru_config c;
    expect_load("postgres: { hourly_table = \"_s$1.T_2\"; raw_table = \"public.raw\"; };\n", &c);
    cr_assert_str_eq(c.postgres.hourly_table, "_s$1.T_2");
    cr_assert_str_eq(c.postgres.raw_table, "public.raw");
    ru_config_deinit(&c);
    /* exactly 63 bytes is fine */
    expect_load("postgres: { hourly_table = "
                "\"a23456789012345678901234567890123456789012345678901234567890123\"; };\n",
                &c);
    ru_config_deinit(&c);
}

Test(config, metrics_listen)
{
    static const char *const good[] = {"127.0.0.1:9187", "0.0.0.0:1", "localhost:65535",
                                       "[::1]:9187", "[::]:80"};
    static const char *const bad[] = {"9187",    ":9187",        "127.0.0.1:",     "127.0.0.1:0",
                                      "[::1]",   "::1:9187",     "example.com:80", "1.2.3.4:65536",
                                      "[::1]:x", "localhost:80x"};
    struct ru_config c;
    char text[256];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(text, sizeof(text), "metrics: { listen = \"%s\"; };\n", good[i]);
        expect_load(text, &c);
        cr_assert_str_eq(c.metrics.listen, good[i]);
        ru_config_deinit(&c);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "metrics: { listen = \"%s\"; };\n", bad[i]);
        expect_error_part(text, 1, "metrics.listen:");
    }
}

/* ---- secrets at rest ---------------------------------------------------------------- */

static bool exposed(const char *text, mode_t mode, char *why, size_t len)
{
    struct ru_config c;
    const char *path;
    char err[256];
    cr_assert_eq(load_text(text, &c, &path, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(chmod(path, mode), 0);
    bool e = ru_config_secret_exposed(&c, why, len);
    ru_config_deinit(&c);
    return e;
}

Test(config, secret_readable_by_others_is_noticed)
{
    char why[512];
    cr_assert(
        exposed("postgres: { conninfo = \"dbname=x password=s3\"; };\n", 0644, why, sizeof(why)));
    cr_assert_not_null(strstr(why, "postgres.conninfo"), "%s", why);
    cr_assert_not_null(strstr(why, "0644"), "%s", why);
    cr_assert_not_null(strstr(why, "chmod o-rwx"), "%s", why);
    cr_assert(exposed("redis: { url = \"redis://u:pw@h:1/0\"; };\n", 0604, why, sizeof(why)));
    cr_assert_not_null(strstr(why, "redis.url"), "%s", why);
    cr_assert(
        exposed("postgres: { conninfo = \"postgresql://u:pw@h/db\"; };\n", 0606, why, sizeof(why)));
    cr_assert(
        exposed("postgres: { conninfo = \"host=h sslpassword=k\"; };\n", 0644, why, sizeof(why)));
    /* not readable by others, or no password in it */
    cr_assert(
        !exposed("postgres: { conninfo = \"dbname=x password=s3\"; };\n", 0640, why, sizeof(why)));
    cr_assert(!exposed("postgres: { conninfo = \"dbname=x user=u\"; };\n", 0644, why, sizeof(why)));
    cr_assert(!exposed("redis: { url = \"redis://h:1/0\"; };\n", 0644, why, sizeof(why)));
}

/* ---- reload rules and log levels ---------------------------------------------------- */

Test(config, restart_keys)
{
    struct ru_config a, b;
    char out[512];

    ru_config_defaults(&a);
    ru_config_defaults(&b);
    ru_config_restart_keys(&a, &b, out, sizeof(out));
    cr_assert_str_eq(out, "");

    /* reloadable changes: nothing to restart */
    free(b.redis.url);
    b.redis.url = strdup("redis://other:6379/1");
    free(b.postgres.conninfo);
    b.postgres.conninfo = strdup("dbname=other");
    b.redis.count = 5;
    b.flush.interval_ms = 100;
    b.log.level = RU_LOG_DEBUG;
    ru_config_restart_keys(&a, &b, out, sizeof(out));
    cr_assert_str_eq(out, "");

    free(b.redis.stream);
    b.redis.stream = strdup("other");
    free(b.status.socket);
    b.status.socket = strdup("/tmp/x.sock");
    free(b.metrics.listen);
    b.metrics.listen = strdup("127.0.0.1:1");
    ru_config_restart_keys(&a, &b, out, sizeof(out));
    cr_assert_str_eq(out, "redis.stream, status.socket, metrics.listen");

    free(b.redis.group);
    b.redis.group = strdup("g");
    free(b.redis.consumer);
    b.redis.consumer = strdup("c");
    free(b.redis.dead_letter_stream);
    b.redis.dead_letter_stream = strdup("d");
    free(b.postgres.hourly_table);
    b.postgres.hourly_table = strdup("h");
    free(b.postgres.raw_table);
    b.postgres.raw_table = strdup("r");
    ru_config_restart_keys(&a, &b, out, sizeof(out));
    cr_assert_str_eq(out, "redis.stream, redis.group, redis.consumer, redis.dead_letter_stream, "
                          "postgres.hourly_table, postgres.raw_table, status.socket, "
                          "metrics.listen");

    ru_config_deinit(&a);
    ru_config_deinit(&b);
}

Test(config, reload_flags)
{
    /* the keys a reload keeps, and those whose change reconnects, as at 5000dcb */
    static const char *const restart[] = {"redis.stream",        "redis.group",
                                          "redis.consumer",      "redis.dead_letter_stream",
                                          "redis.lone_consumer", "postgres.hourly_table",
                                          "postgres.raw_table",  "status.socket",
                                          "metrics.listen"};
    static const char *const redis[] = {"redis.url",
                                        "redis.count",
                                        "redis.read_bytes",
                                        "redis.block_ms",
                                        "redis.connect_timeout_ms",
                                        "redis.cluster",
                                        "redis.cluster_seeds"};
    static const char *const pg[] = {"postgres.conninfo", "postgres.statement_timeout_ms",
                                     "postgres.connect_timeout_s"};
    size_t nr = 0, nredis = 0, npg = 0;
    for (size_t i = 0; i < ru_config_key_count(); i++) {
        unsigned f = ru_config_key_flags(i);
        nr += (f & RU_CONFIG_RESTART) != 0;
        nredis += (f & RU_CONFIG_REDIS) != 0;
        npg += (f & RU_CONFIG_PG) != 0;
    }
    cr_assert_eq(nr, sizeof(restart) / sizeof(restart[0]));
    cr_assert_eq(nredis, sizeof(redis) / sizeof(redis[0]));
    cr_assert_eq(npg, sizeof(pg) / sizeof(pg[0]));
    for (size_t i = 0; i < nr; i++)
        cr_assert(ru_config_key_flags((size_t)ru_config_key_index(restart[i])) & RU_CONFIG_RESTART,
                  "%s", restart[i]);
    for (size_t i = 0; i < nredis; i++)
        cr_assert(ru_config_key_flags((size_t)ru_config_key_index(redis[i])) & RU_CONFIG_REDIS,
                  "%s", redis[i]);
    for (size_t i = 0; i < npg; i++)
        cr_assert(ru_config_key_flags((size_t)ru_config_key_index(pg[i])) & RU_CONFIG_PG, "%s",
                  pg[i]);
    cr_assert_eq(ru_config_key_flags(ru_config_key_count()), 0);

    struct ru_config a, b;
    char out[512];
    ru_config_defaults(&a);
    ru_config_defaults(&b);
    cr_assert(!ru_config_changed(&a, &b, RU_CONFIG_REDIS | RU_CONFIG_PG | RU_CONFIG_RESTART));
    b.redis.count = 5;
    cr_assert(ru_config_changed(&a, &b, RU_CONFIG_REDIS));
    cr_assert(!ru_config_changed(&a, &b, RU_CONFIG_PG));
    b.postgres.connect_timeout_s = 3;
    cr_assert(ru_config_changed(&a, &b, RU_CONFIG_PG));
    b.redis.lone_consumer = true;
    free(b.metrics.listen);
    b.metrics.listen = strdup("127.0.0.1:1");
    ru_config_restart_keys(&a, &b, out, sizeof(out));
    cr_assert_str_eq(out, "redis.lone_consumer, metrics.listen");

    /* b is the new configuration, a the running one */
    ru_config_keep_restart_keys(&b, &a);
    cr_assert(!b.redis.lone_consumer);
    cr_assert_str_eq(b.metrics.listen, "");
    cr_assert_str_eq(a.metrics.listen, "127.0.0.1:1", "swapped, freed with the old one");
    cr_assert_eq(b.redis.count, 5, "reloadable keys keep their new value");
    ru_config_restart_keys(&a, &b, out, sizeof(out));
    cr_assert_str_eq(out, "metrics.listen");
    ru_config_deinit(&a);
    ru_config_deinit(&b);
}

Test(config, describe_shows_value_default_and_reload)
{
    struct ru_config c;
    char why[256];
    ru_config_defaults(&c);
    cr_assert_eq(ru_config_set(&c, (size_t)ru_config_key_index("redis.url"),
                               "redis://u:s3cret@h:1/0", NULL, why, sizeof(why)),
                 0, "%s", why);
    cr_assert_eq(ru_config_set(&c, (size_t)ru_config_key_index("postgres.conninfo"),
                               "host=h password=s3cret", NULL, why, sizeof(why)),
                 0, "%s", why);
    cr_assert_eq(
        ru_config_set(&c, (size_t)ru_config_key_index("redis.count"), "7", NULL, why, sizeof(why)),
        0);
    struct ru_buf b = RU_BUF_INIT;
    ru_config_describe(&c, &b);
    size_t lines = 0;
    for (size_t i = 0; i < b.len; i++)
        lines += b.p[i] == '\n';
    cr_assert_eq(lines, ru_config_key_count());
    cr_assert_null(strstr(b.p, "s3cret"), "a secret shows:\n%s", b.p);
    static const char *const want[] = {
        "redis.url = \"redis://u:***@h:1/0\";  # default \"redis://127.0.0.1:6379/0\"; a reload "
        "applies it and reconnects to Redis\n",
        "\npostgres.conninfo = \"password=*** host=h\";  # default \"dbname=genonaut\"; a reload "
        "applies it and reconnects to PostgreSQL\n",
        "\nredis.count = 7;  # default 1000; a reload applies it and reconnects to Redis\n",
        "\nredis.stream = \"genonaut:route_analytics:stream\";  # default "
        "\"genonaut:route_analytics:stream\"; a reload keeps the running value (restart to "
        "change)\n",
        "\nredis.lone_consumer = false;  # default false; a reload keeps the running value",
        "\nflush.interval_ms = 5000;  # default 5000; a reload applies it\n",
        "\nlog.level = \"info\";  # default \"info\"; a reload applies it\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_assert_not_null(strstr(b.p, want[i]), "lacks '%s':\n%s", want[i], b.p);
    ru_buf_free(&b);
    ru_config_deinit(&c);
}

Test(config, log_levels)
{
    static const struct {
        const char *name;
        enum ru_log_level level;
    } cases[] = {
        {"error", RU_LOG_ERR}, {"warning", RU_LOG_WARNING}, {"notice", RU_LOG_NOTICE},
        {"info", RU_LOG_INFO}, {"debug", RU_LOG_DEBUG},     {"WARNING", RU_LOG_WARNING},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ru_config c;
        char text[128];
        snprintf(text, sizeof(text), "log: { level = \"%s\"; };\n", cases[i].name);
        expect_load(text, &c);
        cr_assert_eq(c.log.level, cases[i].level, "level \"%s\"", cases[i].name);
        ru_config_deinit(&c);
    }
}

Test(config, cluster_keys)
{
    struct ru_config c;
    char err[512];
    cr_assert_eq(load_text("redis: { stream = \"s:{7}\"; cluster = \"on\";\n"
                           "  cluster_seeds = \"10.0.0.1:7000, 10.0.0.2:7000\"; };\n",
                           &c, NULL, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_str_eq(c.redis.cluster, "on");
    cr_assert_str_eq(c.redis.dead_letter_stream, "s:{7}:dead");
    ru_config_deinit(&c);
    expect_error_part("redis: {\n  cluster = \"yes\";\n};\n", 2, "redis.cluster: must be \"auto\"");
    expect_error_part("redis: {\n  cluster_seeds = \"a:1, b\";\n};\n", 2, "\"b\" is not host:port");
    /* in a cluster the dead-letter MULTI must stay in the stream's slot */
    expect_error_part("redis: {\n  stream = \"events\";\n  cluster = \"on\";\n};\n", 2,
                      "redis.stream: \"events\" has no hash tag");
    expect_error_part("redis: {\n  stream = \"e:{1}\";\n  dead_letter_stream = \"dead\";\n"
                      "  cluster = \"on\";\n};\n",
                      3, "redis.dead_letter_stream: \"dead\" hashes to slot");
    expect_error_part("redis: {\n  url = \"redis://h:1/2\";\n  stream = \"e:{1}\";\n"
                      "  cluster = \"on\";\n};\n",
                      2, "database 0 only");
    /* "auto" does not know yet: the daemon checks when a node says it is a cluster */
    cr_assert_eq(load_text("redis: { stream = \"events\"; };\n", &c, NULL, err, sizeof(err)), 0);
    ru_config_deinit(&c);
}
