/* harness: helpers for rollupd's Criterion integration tests. See harness.h. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <wordexp.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "rollupd/stream.h"

struct ru_h_env ru_h_env;

/* ------------------------------------------------------------------ files */

/* Reads a whole file (NUL-terminated, malloc'd); NULL when it cannot be read. */
static char *read_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    struct ru_buf b = RU_BUF_INIT;
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        ru_buf_append(&b, tmp, n);
    fclose(f);
    if (b.p == NULL)
        b.p = ru_xstrdup("");
    if (len_out)
        *len_out = b.len;
    return b.p;
}

char *ru_h_read_file(const char *path)
{
    char *t = read_file(path, NULL);
    if (t == NULL)
        FAIL("harness: cannot read %s: %s", path, strerror(errno));
    return t;
}

static void write_file(const char *path, const char *text)
{
    char tmp[RU_H_PATH + 16];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (f == NULL)
        FAIL("harness: cannot write %s: %s", tmp, strerror(errno));
    size_t n = strlen(text);
    if (fwrite(text, 1, n, f) != n || fclose(f) != 0)
        FAIL("harness: cannot write %s: %s", tmp, strerror(errno));
    if (rename(tmp, path) != 0)
        FAIL("harness: cannot rename %s: %s", tmp, strerror(errno));
}

static void mkdir_p(const char *path)
{
    char tmp[RU_H_PATH];
    ru_strlcpy(tmp, path, sizeof(tmp));
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                FAIL("harness: mkdir %s: %s", tmp, strerror(errno));
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        FAIL("harness: mkdir %s: %s", tmp, strerror(errno));
}

/* The last RU_H_LOG_TAIL bytes of a text (pointer into it). */
static const char *tail_of(const char *text)
{
    size_t n = strlen(text);
    return n > RU_H_LOG_TAIL ? text + n - RU_H_LOG_TAIL : text;
}

/* ------------------------------------------------------------------ failing */

/* Every rollupd this process started, for the failure message: copies, not pointers, so a
 * daemon struct that has gone out of scope cannot be read. */
#define MAX_STARTED 16
static struct started {
    pid_t pid;
    char log[RU_H_PATH], sock[RU_H_PATH];
} started[MAX_STARTED];
static int nstarted;

/* Records d after a (re)start; a restart (same log) replaces its pid. */
static void remember(const struct ru_h_daemon *d)
{
    int i = 0;
    while (i < nstarted && strcmp(started[i].log, d->log) != 0)
        i++;
    if (i == MAX_STARTED)
        return;
    if (i == nstarted)
        nstarted++;
    started[i].pid = d->pid;
    ru_strlcpy(started[i].log, d->log, sizeof(started[i].log));
    ru_strlcpy(started[i].sock, d->sock, sizeof(started[i].sock));
}

/* The log at path without its "postgres notice" debug lines (malloc'd). */
static char *log_quiet(const char *path)
{
    static const char NOTICE[] = "msg=\"postgres notice\"";
    char *log = read_file(path, NULL);
    struct ru_buf b = RU_BUF_INIT;
    for (char *line = log ? log : ""; *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);
        if (memmem(line, len, NOTICE, sizeof(NOTICE) - 1) == NULL)
            ru_buf_append(&b, line, len);
        line += len;
    }
    free(log);
    return b.p ? b.p : ru_xstrdup("");
}

void ru_h_fail(const char *file, int line, const char *fmt, ...)
{
    /* static: the assertion does not return, so nothing could free it (and the leak
     * checker sees it still reachable) */
    static struct ru_buf b = RU_BUF_INIT;
    ru_buf_printf(&b, "%s:%d: ", strrchr(file, '/') ? strrchr(file, '/') + 1 : file, line);
    va_list ap;
    va_start(ap, fmt);
    ru_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    for (int i = 0; i < nstarted; i++) {
        const struct started *d = &started[i];
        bool running = d->pid > 0 && kill(d->pid, 0) == 0;
        char *st = running && d->sock[0] ? ru_h_sock_cmd(d->sock, "status") : NULL;
        if (st != NULL)
            st[strcspn(st, "\n")] = '\0';
        char *log = log_quiet(d->log);
        ru_buf_printf(&b,
                      "\n---- rollupd #%d (pid %d, %s) status: %s\n---- log tail (%s, without"
                      " postgres notices) ----\n%s",
                      i, (int)d->pid, running ? "running" : "not running", st ? st : "(none)",
                      d->log, tail_of(log));
        free(st);
        free(log);
    }
    /* whole on stderr too: Criterion's report cuts long messages short */
    fprintf(stderr, "%s\n", b.p);
    cr_assert_fail("%s", b.p);
    abort(); /* not reached: cr_assert_fail ends the test */
}

/* ------------------------------------------------------------------ environment */

static void env_set(const char *key, const char *val)
{
    struct ru_h_env *e = &ru_h_env;
    if (strlen(val) >= RU_H_DIR)
        FAIL("%s in %s is longer than %d bytes", key, e->env_file, RU_H_DIR - 1);
    if (strcmp(key, "RU_REDIS_HOST") == 0)
        ru_strlcpy(e->redis_host, val, sizeof(e->redis_host));
    else if (strcmp(key, "RU_REDIS_PORT") == 0)
        e->redis_port = atoi(val);
    else if (strcmp(key, "RU_PG_HOST") == 0)
        ru_strlcpy(e->pg_host, val, sizeof(e->pg_host));
    else if (strcmp(key, "RU_PG_PORT") == 0)
        e->pg_port = atoi(val);
    else if (strcmp(key, "RU_PG_DB") == 0)
        ru_strlcpy(e->pg_db, val, sizeof(e->pg_db));
    else if (strcmp(key, "RU_PG_USER") == 0)
        ru_strlcpy(e->pg_user, val, sizeof(e->pg_user));
    else if (strcmp(key, "RU_TESTENV_DIR") == 0)
        ru_strlcpy(e->testenv_dir, val, sizeof(e->testenv_dir));
    else if (strcmp(key, "RU_REDIS_PIDFILE") == 0)
        ru_strlcpy(e->redis_pidfile, val, sizeof(e->redis_pidfile));
    else if (strcmp(key, "RU_PG_DATA") == 0)
        ru_strlcpy(e->pg_data, val, sizeof(e->pg_data));
}

void ru_h_env_load(void)
{
    struct ru_h_env *e = &ru_h_env;
    if (e->loaded)
        return;
    const char *path = getenv("RU_TESTENV");
    if (path == NULL || *path == '\0')
        FAIL("RU_TESTENV is not set: run the tests through ctest, or start the servers with "
             "'scripts/testenv start DIR' and set RU_TESTENV=DIR/env");
    char *text = read_file(path, NULL);
    if (text == NULL)
        FAIL("cannot read RU_TESTENV=%s (%s): are the servers started (testenv start)?", path,
             strerror(errno));
    memset(e, 0, sizeof(*e));
    ru_strlcpy(e->env_file, path, sizeof(e->env_file));
    ru_strlcpy(e->redis_host, "127.0.0.1", sizeof(e->redis_host));
    ru_strlcpy(e->pg_host, "127.0.0.1", sizeof(e->pg_host));
    ru_strlcpy(e->pg_db, "rollupd_test", sizeof(e->pg_db));
    ru_strlcpy(e->pg_user, "postgres", sizeof(e->pg_user));
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (eq == NULL || line[0] == '#')
            continue;
        *eq = '\0';
        env_set(line, eq + 1);
    }
    free(text);
    if (e->redis_port <= 0 || e->pg_port <= 0 || e->testenv_dir[0] == '\0')
        FAIL("%s is incomplete (RU_REDIS_PORT, RU_PG_PORT and RU_TESTENV_DIR are needed)", path);

    const char *bd = getenv("RU_BUILD_DIR");
    if (bd && *bd) {
        if (strlen(bd) >= sizeof(e->build_dir))
            FAIL("RU_BUILD_DIR is longer than %d bytes", RU_H_DIR - 1);
        ru_strlcpy(e->build_dir, bd, sizeof(e->build_dir));
    } else {
        /* run by hand: the test binaries live in the build directory */
        ssize_t n = readlink("/proc/self/exe", e->build_dir, sizeof(e->build_dir) - 1);
        if (n > 0) {
            e->build_dir[n] = '\0';
            char *slash = strrchr(e->build_dir, '/');
            if (slash)
                *slash = '\0';
        }
    }
    const char *sd = getenv("RU_SOURCE_DIR");
    if (sd)
        ru_strlcpy(e->source_dir, sd, sizeof(e->source_dir));
    e->loaded = true;
}

/* ------------------------------------------------------------------ unique names */

int ru_h_next_id(void)
{
    static int counter;
    return ++counter;
}

void ru_h_tmp_path(char *out, size_t n, const char *suffix)
{
    ru_h_env_load();
    char dir[RU_H_SUBDIR];
    snprintf(dir, sizeof(dir), "%s/run", ru_h_env.testenv_dir);
    mkdir_p(dir);
    snprintf(out, n, "%s/%d-%d-%s", dir, (int)getpid(), ru_h_next_id(), suffix);
}

void ru_h_sock_path(char *out, size_t n)
{
    ru_h_env_load();
    char p[RU_H_PATH];
    int id = ru_h_next_id();
    snprintf(p, sizeof(p), "%s/run/%d-%d.sock", ru_h_env.testenv_dir, (int)getpid(), id);
    if (strlen(p) > 107)
        snprintf(p, sizeof(p), "/tmp/ru-h-%d-%d.sock", (int)getpid(), id);
    unlink(p);
    ru_strlcpy(out, p, n);
}

void ru_h_names(char *stream, char *group, char *dbname, size_t n)
{
    redisContext *c = ru_h_redis();
    for (int tries = 0;; tries++) {
        int id = ru_h_next_id();
        int pid = (int)getpid();
        snprintf(stream, n, "t:%d:%d:stream", pid, id);
        if (ru_h_redis_int(c, "EXISTS %s", stream) != 0 && tries < 100)
            continue; /* a leftover of an earlier process with the same pid */
        if (group)
            snprintf(group, n, "t:%d:%d:group", pid, id);
        if (dbname)
            snprintf(dbname, n, "t_%d_%d", pid, id);
        break;
    }
    redisFree(c);
}

void ru_h_fresh_db(char *out_conninfo, size_t n)
{
    PGconn *c = ru_h_pg();
    for (int tries = 0;; tries++) {
        char name[64], sql[128];
        snprintf(name, sizeof(name), "t_%d_%d", (int)getpid(), ru_h_next_id());
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) == PGRES_COMMAND_OK) {
            PQclear(r);
            snprintf(out_conninfo, n, "host=%s port=%d dbname=%s user=%s", ru_h_env.pg_host,
                     ru_h_env.pg_port, name, ru_h_env.pg_user);
            break;
        }
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        bool retry = state && (strcmp(state, "42P04") == 0 || /* duplicate_database */
                               strcmp(state, "55006") == 0);  /* template1 in use */
        if (!retry || tries >= 100) {
            char msg[512];
            ru_strlcpy(msg, PQresultErrorMessage(r), sizeof(msg));
            PQclear(r);
            PQfinish(c);
            FAIL("harness: %s failed: %s", sql, msg);
        }
        PQclear(r);
        ru_h_sleep_ms(50);
    }
    PQfinish(c);
}

/* ------------------------------------------------------------------ Redis */

redisContext *ru_h_redis(void)
{
    ru_h_env_load();
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout(ru_h_env.redis_host, ru_h_env.redis_port, tv);
    if (c == NULL || c->err) {
        char msg[160];
        ru_strlcpy(msg, c ? c->errstr : "out of memory", sizeof(msg));
        if (c)
            redisFree(c);
        FAIL("harness: cannot connect to redis %s:%d: %s", ru_h_env.redis_host, ru_h_env.redis_port,
             msg);
    }
    struct timeval rtv = {30, 0};
    redisSetTimeout(c, rtv);
    return c;
}

static redisReply *redis_vcmd(redisContext *c, const char *fmt, va_list ap)
{
    redisReply *r = redisvCommand(c, fmt, ap);
    if (r == NULL)
        FAIL("harness: redis command '%s' failed: %s", fmt, c->errstr);
    return r;
}

redisReply *ru_h_redis_cmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redis_vcmd(c, fmt, ap);
    va_end(ap);
    return r;
}

long long ru_h_redis_int(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redis_vcmd(c, fmt, ap);
    va_end(ap);
    if (r->type != REDIS_REPLY_INTEGER) {
        char msg[256];
        snprintf(msg, sizeof(msg), "type %d%s%s", r->type, r->str ? ": " : "",
                 r->str ? r->str : "");
        freeReplyObject(r);
        FAIL("harness: redis command '%s': expected an integer, got %s", fmt, msg);
    }
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

int ru_h_redis_kill_readers(redisContext *c, const char *stream, const char *group)
{
    char prefix[64] = " name=";
    ru_stream_conn_prefix(stream, group, prefix + 6, sizeof(prefix) - 6);
    redisReply *r = ru_h_redis_cmd(c, "CLIENT LIST TYPE normal");
    if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS) {
        freeReplyObject(r);
        FAIL("harness: CLIENT LIST did not answer with a list");
    }
    int cut = 0;
    for (const char *line = r->str; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *hit = memmem(line, len, prefix, strlen(prefix));
        long long id;
        if (hit && sscanf(line, "id=%lld", &id) == 1 &&
            ru_h_redis_int(c, "CLIENT KILL ID %lld", id) == 1)
            cut++;
        line = end ? end + 1 : NULL;
    }
    freeReplyObject(r);
    return cut;
}

long long ru_h_xlen(redisContext *c, const char *stream)
{
    return ru_h_redis_int(c, "XLEN %s", stream);
}

char *ru_h_xadd(redisContext *c, const char *stream, const struct ru_h_kv *f)
{
    size_t nf = 0;
    while (f[nf].k)
        nf++;
    const char **argv = ru_xmalloc((3 + 2 * nf) * sizeof(*argv));
    size_t *len = ru_xmalloc((3 + 2 * nf) * sizeof(*len));
    int n = 0;
    argv[n] = "XADD", len[n++] = 4;
    argv[n] = stream, len[n++] = strlen(stream);
    argv[n] = "*", len[n++] = 1;
    for (size_t i = 0; i < nf; i++) {
        argv[n] = f[i].k, len[n++] = f[i].klen;
        argv[n] = f[i].v, len[n++] = f[i].vlen;
    }
    redisReply *r = redisCommandArgv(c, n, argv, len);
    free(argv);
    free(len);
    if (r == NULL)
        FAIL("harness: XADD %s: %s", stream, c->errstr);
    if (r->type != REDIS_REPLY_STRING) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", r->str ? r->str : "?");
        freeReplyObject(r);
        FAIL("harness: XADD %s: %s", stream, msg);
    }
    char *id = ru_xstrdup(r->str);
    freeReplyObject(r);
    return id;
}

long long ru_h_xpending(redisContext *c, const char *stream, const char *group)
{
    redisReply *r = ru_h_redis_cmd(c, "XPENDING %s %s", stream, group);
    if (r->type == REDIS_REPLY_ERROR) {
        char msg[256];
        ru_strlcpy(msg, r->str, sizeof(msg));
        freeReplyObject(r);
        FAIL("harness: XPENDING %s %s: %s", stream, group, msg);
    }
    long long n = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_INTEGER)
        n = r->element[0]->integer;
    freeReplyObject(r);
    return n;
}

/* ------------------------------------------------------------------ PostgreSQL */

PGconn *ru_h_pg_connect(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        char msg[512];
        ru_strlcpy(msg, c ? PQerrorMessage(c) : "out of memory", sizeof(msg));
        PQfinish(c);
        FAIL("harness: cannot connect to PostgreSQL (%s): %s", conninfo, msg);
    }
    PGresult *r = PQexec(c, "SET client_min_messages = warning");
    PQclear(r);
    return c;
}

PGconn *ru_h_pg(void)
{
    ru_h_env_load();
    char ci[256];
    snprintf(ci, sizeof(ci), "host=%s port=%d dbname=%s user=%s connect_timeout=10",
             ru_h_env.pg_host, ru_h_env.pg_port, ru_h_env.pg_db, ru_h_env.pg_user);
    return ru_h_pg_connect(ci);
}

int ru_h_pg_try_exec(PGconn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        if (err)
            ru_strlcpy(err, r ? PQresultErrorMessage(r) : PQerrorMessage(c), errlen);
        rc = -1;
    }
    PQclear(r);
    return rc;
}

void ru_h_pg_exec(PGconn *c, const char *sql)
{
    char err[1024];
    if (ru_h_pg_try_exec(c, sql, err, sizeof(err)) != 0)
        FAIL("harness: SQL failed: %s\n  in: %.600s", err, sql);
}

static char *vfmt(const char *fmt, va_list ap)
{
    struct ru_buf b = RU_BUF_INIT;
    ru_buf_vprintf(&b, fmt, ap);
    return b.p ? b.p : ru_xstrdup("");
}

void ru_h_pg_execf(PGconn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = vfmt(fmt, ap);
    va_end(ap);
    ru_h_pg_exec(c, sql);
    free(sql);
}

/* Runs a query that must return one row and one column. */
static PGresult *pg_one(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char msg[1024];
        ru_strlcpy(msg, PQresultErrorMessage(r), sizeof(msg));
        PQclear(r);
        FAIL("harness: SQL failed: %s\n  in: %.600s", msg, sql);
    }
    if (PQntuples(r) != 1 || PQnfields(r) != 1) {
        int rows = PQntuples(r), cols = PQnfields(r);
        PQclear(r);
        FAIL("harness: expected 1 row and 1 column, got %d rows and %d columns\n  in: %.600s", rows,
             cols, sql);
    }
    return r;
}

long long ru_h_pg_int(PGconn *c, const char *sql)
{
    PGresult *r = pg_one(c, sql);
    if (PQgetisnull(r, 0, 0)) {
        PQclear(r);
        FAIL("harness: expected an integer, got NULL\n  in: %.600s", sql);
    }
    int64_t v;
    const char *s = PQgetvalue(r, 0, 0);
    if (ru_parse_i64(s, strlen(s), &v) != 0) {
        char val[64];
        ru_strlcpy(val, s, sizeof(val));
        PQclear(r);
        FAIL("harness: expected an integer, got '%s'\n  in: %.600s", val, sql);
    }
    PQclear(r);
    return (long long)v;
}

long long ru_h_pg_intf(PGconn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = vfmt(fmt, ap);
    va_end(ap);
    long long v = ru_h_pg_int(c, sql);
    free(sql);
    return v;
}

long long ru_h_pg_lock_waiters(PGconn *c)
{
    return ru_h_pg_int(c, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT"
                          " granted AND database = (SELECT oid FROM pg_database WHERE"
                          " datname = current_database())");
}

long long ru_h_pg_terminate_lock_holders(PGconn *c)
{
    return ru_h_pg_int(c, "SELECT count(pg_terminate_backend(pid)) FROM (SELECT DISTINCT pid"
                          " FROM pg_locks WHERE locktype = 'advisory' AND granted AND"
                          " database = (SELECT oid FROM pg_database WHERE datname ="
                          " current_database()) AND pid <> pg_backend_pid()) x");
}

char *ru_h_pg_text(PGconn *c, const char *sql)
{
    PGresult *r = pg_one(c, sql);
    char *out = PQgetisnull(r, 0, 0) ? NULL : ru_xstrdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
}

char *ru_h_pg_textf(PGconn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = vfmt(fmt, ap);
    va_end(ap);
    char *v = ru_h_pg_text(c, sql);
    free(sql);
    return v;
}

/* genonaut's two tables (shared/genonaut/schema.sql, migration 564cc0b09f6c). */
static const char GENONAUT_SCHEMA[] =
    "CREATE TABLE route_analytics_hourly ("
    " id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    " \"timestamp\" timestamp without time zone NOT NULL,"
    " route text NOT NULL,"
    " method varchar(10) NOT NULL,"
    " query_params_normalized jsonb,"
    " total_requests integer NOT NULL,"
    " successful_requests integer NOT NULL,"
    " client_errors integer NOT NULL,"
    " server_errors integer NOT NULL,"
    " avg_duration_ms integer,"
    " p50_duration_ms integer,"
    " p95_duration_ms integer,"
    " p99_duration_ms integer,"
    " unique_users integer,"
    " avg_request_size_bytes integer,"
    " avg_response_size_bytes integer,"
    " avg_db_query_count double precision,"
    " cache_hits integer NOT NULL,"
    " cache_misses integer NOT NULL,"
    " created_at timestamp without time zone NOT NULL,"
    " CONSTRAINT uq_route_analytics_hourly_time_route_params"
    "  UNIQUE (\"timestamp\", route, method, query_params_normalized));"
    "CREATE INDEX idx_route_metrics_duration ON route_analytics_hourly (avg_duration_ms DESC);"
    "CREATE INDEX idx_route_metrics_route_time ON route_analytics_hourly"
    " (route, \"timestamp\" DESC);"
    "CREATE INDEX idx_route_metrics_timestamp ON route_analytics_hourly (\"timestamp\" DESC);"
    "CREATE INDEX idx_route_metrics_total_requests ON route_analytics_hourly"
    " (total_requests DESC);"
    "CREATE INDEX ix_route_analytics_hourly_timestamp ON route_analytics_hourly (\"timestamp\");"
    "CREATE TABLE route_analytics ("
    " id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    " route text NOT NULL,"
    " method varchar(10) NOT NULL,"
    " user_id uuid,"
    " \"timestamp\" timestamp without time zone NOT NULL,"
    " duration_ms integer NOT NULL,"
    " status_code smallint NOT NULL,"
    " query_params jsonb,"
    " query_params_normalized jsonb,"
    " request_size_bytes integer,"
    " response_size_bytes integer,"
    " error_type text,"
    " db_query_count integer,"
    " cache_status varchar(10),"
    " created_at timestamp without time zone NOT NULL);"
    "CREATE INDEX idx_route_analytics_duration ON route_analytics (duration_ms DESC);"
    "CREATE INDEX idx_route_analytics_route_time ON route_analytics (route, \"timestamp\" DESC);"
    "CREATE INDEX idx_route_analytics_timestamp ON route_analytics (\"timestamp\" DESC);"
    "CREATE INDEX idx_route_analytics_user_time ON route_analytics (user_id, \"timestamp\" DESC);"
    "CREATE INDEX ix_route_analytics_route ON route_analytics (route);"
    "CREATE INDEX ix_route_analytics_timestamp ON route_analytics (\"timestamp\");";

void ru_h_genonaut_schema(PGconn *c)
{
    ru_h_pg_exec(c, GENONAUT_SCHEMA);
}

/* ------------------------------------------------------------------ config */

/* Appends s as a libconfig string literal. */
static void cfg_str(struct ru_buf *b, const char *s)
{
    ru_buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            ru_buf_putc(b, '\\');
        ru_buf_putc(b, *s);
    }
    ru_buf_putc(b, '"');
}

static void cfg_kv_str(struct ru_buf *b, const char *key, const char *val)
{
    ru_buf_printf(b, "  %s = ", key);
    cfg_str(b, val);
    ru_buf_puts(b, ";\n");
}

char *ru_h_config(const struct ru_h_cfg *cfg)
{
    ru_h_env_load();
    if (cfg->stream == NULL || cfg->group == NULL || cfg->conninfo == NULL)
        FAIL("ru_h_config: stream, group and conninfo are required");
    struct ru_buf b = RU_BUF_INIT;
    char url[256], sock[RU_H_PATH];
    if (cfg->redis_url)
        ru_strlcpy(url, cfg->redis_url, sizeof(url));
    else
        snprintf(url, sizeof(url), "redis://%s:%d/0", ru_h_env.redis_host, ru_h_env.redis_port);
    if (cfg->socket)
        ru_strlcpy(sock, cfg->socket, sizeof(sock));
    else
        ru_h_sock_path(sock, sizeof(sock));

    ru_buf_puts(&b, "# written by tests/integ/harness.c\nredis: {\n");
    cfg_kv_str(&b, "url", url);
    cfg_kv_str(&b, "stream", cfg->stream);
    cfg_kv_str(&b, "group", cfg->group);
    cfg_kv_str(&b, "consumer", cfg->consumer ? cfg->consumer : "c1");
    cfg_kv_str(&b, "start", cfg->start ? cfg->start : "0");
    ru_buf_printf(&b, "  block_ms = %d;\n", cfg->block_ms ? cfg->block_ms : 100);
    if (cfg->count)
        ru_buf_printf(&b, "  count = %d;\n", cfg->count);
    if (cfg->claim_idle_ms)
        ru_buf_printf(&b, "  claim_idle_ms = %lldL;\n", cfg->claim_idle_ms);
    if (cfg->redis_extra)
        ru_buf_printf(&b, "  %s\n", cfg->redis_extra);
    ru_buf_puts(&b, "};\npostgres: {\n");
    cfg_kv_str(&b, "conninfo", cfg->conninfo);
    if (cfg->hourly_table)
        cfg_kv_str(&b, "hourly_table", cfg->hourly_table);
    if (cfg->raw_table)
        cfg_kv_str(&b, "raw_table", cfg->raw_table);
    if (cfg->postgres_extra)
        ru_buf_printf(&b, "  %s\n", cfg->postgres_extra);
    ru_buf_puts(&b, "};\nflush: {\n");
    ru_buf_printf(&b, "  interval_ms = %d;\n",
                  cfg->flush_interval_ms ? cfg->flush_interval_ms : 200);
    if (cfg->max_events)
        ru_buf_printf(&b, "  max_events = %d;\n", cfg->max_events);
    if (cfg->max_keys)
        ru_buf_printf(&b, "  max_keys = %d;\n", cfg->max_keys);
    if (cfg->flush_extra)
        ru_buf_printf(&b, "  %s\n", cfg->flush_extra);
    ru_buf_puts(&b, "};\n");
    if (cfg->max_memory_mb)
        ru_buf_printf(&b, "limits: {\n  max_memory_mb = %d;\n};\n", cfg->max_memory_mb);
    ru_buf_puts(&b, "status: {\n");
    cfg_kv_str(&b, "socket", sock);
    ru_buf_puts(&b, "};\n");
    if (cfg->metrics_listen) {
        ru_buf_puts(&b, "metrics: {\n");
        cfg_kv_str(&b, "listen", cfg->metrics_listen);
        ru_buf_puts(&b, "};\n");
    }
    ru_buf_puts(&b, "log: {\n  format = \"journal\";\n");
    cfg_kv_str(&b, "level", cfg->log_level ? cfg->log_level : "debug");
    ru_buf_puts(&b, "};\n");
    return b.p;
}

/* Finds the value of the first `socket = "..."` (or `socket: "..."`) setting. */
static bool config_socket(const char *text, char *out, size_t n)
{
    const char *p = text;
    while ((p = strstr(p, "socket")) != NULL) {
        bool word_start = p == text || !(p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z') ||
                                         (p[-1] >= 'A' && p[-1] <= 'Z'));
        const char *q = p + 6;
        p = q;
        if (!word_start)
            continue;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q != '=' && *q != ':')
            continue;
        q++;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q != '"')
            continue;
        q++;
        size_t k = 0;
        while (*q && *q != '"' && k + 1 < n) {
            if (*q == '\\' && q[1])
                q++;
            out[k++] = *q++;
        }
        out[k] = '\0';
        return *q == '"';
    }
    return false;
}

/* ------------------------------------------------------------------ daemon */

static void reset_child_signals(void)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    static const int sigs[] = {SIGHUP, SIGINT, SIGTERM, SIGPIPE, SIGUSR1, SIGUSR2, SIGCHLD};
    for (size_t i = 0; i < RU_ARRAY_LEN(sigs); i++)
        signal(sigs[i], SIG_DFL);
}

pid_t ru_h_fork_exec(const char *const *argv, int out_fd, int err_fd, const char *const *env)
{
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* a test that dies (assertion, timeout) must not leave its processes behind */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0)
        dup2(nul, 0);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    reset_child_signals();
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_PID");
    for (size_t i = 0; env && env[i]; i++)
        putenv((char *)env[i]);
    execvp(argv[0], (char *const *)argv);
    dprintf(2, "harness: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* ru_h_fork_exec with stdout and stderr appended to out_path (asserts). */
static pid_t spawn(const char *const *argv, const char *out_path, const char *const *env)
{
    int fd = open(out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        FAIL("harness: cannot open %s: %s", out_path, strerror(errno));
    pid_t pid = ru_h_fork_exec(argv, fd, fd, env);
    if (pid < 0)
        FAIL("harness: fork: %s", strerror(errno));
    close(fd);
    return pid;
}

/* Under RU_DAEMON_WRAPPER (valgrind in CI), every daemon a test leaves running is
 * stopped gracefully when the test process exits, so the tool gets to report; valgrind
 * runs with --error-exitcode=99, and such an exit fails the test process. */
#define MAX_TRACKED 64
static struct {
    pid_t pid;
    char log[RU_H_PATH];
} tracked[MAX_TRACKED];
static int ntracked;

static int check_exit(pid_t pid, int st, const char *log)
{
    if (WIFEXITED(st) && WEXITSTATUS(st) == 99) {
        fprintf(stderr, "harness: the tool wrapping rollupd (pid %d) reported errors: see %s\n",
                (int)pid, log);
        char *t = read_file(log, NULL);
        if (t) {
            size_t n = strlen(t);
            fprintf(stderr, "%s\n", n > 6000 ? t + n - 6000 : t);
            free(t);
        }
        return 1;
    }
    return 0;
}

static void stop_tracked(void)
{
    int bad = 0;
    for (int i = 0; i < ntracked; i++) {
        pid_t pid = tracked[i].pid;
        if (pid <= 0 || waitpid(pid, NULL, WNOHANG) != 0)
            continue; /* already reaped by the test (checked there) or gone */
        kill(pid, SIGTERM);
        int st = 0;
        int64_t deadline = ru_mono_ms() + 120000;
        pid_t r;
        while ((r = waitpid(pid, &st, WNOHANG)) == 0 && ru_mono_ms() < deadline)
            usleep(20000);
        if (r == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
        }
        bad |= check_exit(pid, st, tracked[i].log);
    }
    if (bad)
        _exit(99);
}

static void track(pid_t pid, const char *log)
{
    if (getenv("RU_DAEMON_WRAPPER") == NULL || ntracked >= MAX_TRACKED)
        return;
    if (ntracked == 0)
        atexit(stop_tracked);
    tracked[ntracked].pid = pid;
    ru_strlcpy(tracked[ntracked].log, log, sizeof(tracked[ntracked].log));
    ntracked++;
}

static void daemon_exec(struct ru_h_daemon *d, const char *const *extra_args,
                        const char *const *env)
{
    char exe[RU_H_PATH + 16];
    snprintf(exe, sizeof(exe), "%s/rollupd", ru_h_env.build_dir);
    if (access(exe, X_OK) != 0)
        FAIL("harness: %s is missing (%s): build it first (RU_BUILD_DIR=%s)", exe, strerror(errno),
             ru_h_env.build_dir);
    const char *argv[48];
    int n = 0;
    /* RU_DAEMON_WRAPPER (e.g. "valgrind --error-exitcode=99 --leak-check=full") runs the
     * daemon under a tool; its words come first */
    static char wrapper[512];
    const char *wr = getenv("RU_DAEMON_WRAPPER");
    if (wr && *wr) {
        ru_strlcpy(wrapper, wr, sizeof(wrapper));
        for (char *tok = strtok(wrapper, " "); tok && n < 16; tok = strtok(NULL, " "))
            argv[n++] = tok;
    }
    argv[n++] = exe;
    if (d->conf[0] != '\0') {
        argv[n++] = "-c";
        argv[n++] = d->conf;
    }
    for (int i = 0; extra_args && extra_args[i] && n < 47; i++)
        argv[n++] = extra_args[i];
    argv[n] = NULL;
    d->pid = spawn(argv, d->log, env);
    track(d->pid, d->log);
    remember(d);
    d->exited = false;
    d->exit_status = -1;

    char pdir[RU_H_SUBDIR];
    snprintf(pdir, sizeof(pdir), "%s/pids", ru_h_env.testenv_dir);
    mkdir_p(pdir);
    snprintf(d->pidfile, sizeof(d->pidfile), "%s/%d.pid", pdir, (int)d->pid);
    char pidtext[32];
    snprintf(pidtext, sizeof(pidtext), "%d\n", (int)d->pid);
    write_file(d->pidfile, pidtext);
}

void ru_h_daemon_spawn(struct ru_h_daemon *d, const char *config_text,
                       const char *const *extra_args)
{
    ru_h_daemon_spawn_env(d, config_text, extra_args, NULL);
}

/* A fresh d with its run directory and log path; with config_text, its file too. */
static void daemon_prepare(struct ru_h_daemon *d, const char *config_text)
{
    ru_h_env_load();
    memset(d, 0, sizeof(*d));
    snprintf(d->dir, sizeof(d->dir), "%s/run/%d-%d", ru_h_env.testenv_dir, (int)getpid(),
             ru_h_next_id());
    mkdir_p(d->dir);
    snprintf(d->log, sizeof(d->log), "%s/rollupd.log", d->dir);
    if (config_text == NULL)
        return;
    snprintf(d->conf, sizeof(d->conf), "%s/rollupd.conf", d->dir);
    write_file(d->conf, config_text);
    if (!config_socket(config_text, d->sock, sizeof(d->sock)))
        d->sock[0] = '\0';
}

void ru_h_daemon_spawn_env(struct ru_h_daemon *d, const char *config_text,
                           const char *const *extra_args, const char *const *env)
{
    daemon_prepare(d, config_text);
    daemon_exec(d, extra_args, env);
}

void ru_h_daemon_spawn_noconf(struct ru_h_daemon *d, const char *sock, const char *const *env)
{
    daemon_prepare(d, NULL);
    ru_strlcpy(d->sock, sock, sizeof(d->sock));
    daemon_exec(d, NULL, env);
}

bool ru_h_daemon_running(struct ru_h_daemon *d)
{
    if (d->pid <= 0 || d->exited)
        return false;
    int st;
    pid_t r = waitpid(d->pid, &st, WNOHANG);
    if (r == 0)
        return true;
    d->exited = true;
    if (r == d->pid) {
        d->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (getenv("RU_DAEMON_WRAPPER") && check_exit(r, st, d->log))
            cr_assert_fail("the tool wrapping rollupd reported errors (log %s)", d->log);
    } else
        d->exit_status = -1; /* not our child any more: cannot know */
    if (d->pidfile[0])
        unlink(d->pidfile);
    return false;
}

bool ru_h_daemon_wait_ready(struct ru_h_daemon *d, int timeout_ms)
{
    if (d->sock[0] == '\0')
        FAIL("harness: the config text has no status socket setting");
    int64_t deadline = ru_mono_ms() + timeout_ms;
    for (;;) {
        if (!ru_h_daemon_running(d))
            return false;
        char *ans = ru_h_sock_cmd(d->sock, "status");
        if (ans && *ans) {
            free(ans);
            return true;
        }
        free(ans);
        if (ru_mono_ms() >= deadline)
            return false;
        ru_h_sleep_ms(20);
    }
}

static void daemon_ready_or_fail(struct ru_h_daemon *d)
{
    if (ru_h_daemon_wait_ready(d, 20000))
        return;
    bool running = ru_h_daemon_running(d);
    if (running)
        ru_h_daemon_stop(d);
    FAIL("rollupd (pid %d) %s\n  config: %s\n  socket: %s", (int)d->pid,
         running ? "did not answer on its status socket within 20 s" : "exited during start-up",
         d->conf, d->sock);
}

void ru_h_daemon_start(struct ru_h_daemon *d, const char *config_text)
{
    ru_h_daemon_spawn(d, config_text, NULL);
    daemon_ready_or_fail(d);
}

void ru_h_daemon_restart(struct ru_h_daemon *d)
{
    if (ru_h_daemon_running(d))
        FAIL("ru_h_daemon_restart: rollupd (pid %d) is still running", (int)d->pid);
    FILE *f = fopen(d->log, "a");
    if (f) {
        fputs("---- harness: restart ----\n", f);
        fclose(f);
    }
    daemon_exec(d, NULL, NULL);
    daemon_ready_or_fail(d);
}

void ru_h_daemon_rewrite_config(struct ru_h_daemon *d, const char *config_text)
{
    write_file(d->conf, config_text);
}

void ru_h_daemon_kill(struct ru_h_daemon *d, int sig)
{
    if (ru_h_daemon_running(d))
        kill(d->pid, sig);
}

int ru_h_daemon_wait_exit(struct ru_h_daemon *d, int timeout_ms)
{
    int64_t deadline = ru_mono_ms() + timeout_ms;
    while (ru_h_daemon_running(d)) {
        if (ru_mono_ms() >= deadline)
            return -1;
        ru_h_sleep_ms(10);
    }
    return d->exit_status;
}

int ru_h_daemon_stop(struct ru_h_daemon *d)
{
    if (!ru_h_daemon_running(d))
        return d->exit_status;
    kill(d->pid, SIGTERM);
    int st = ru_h_daemon_wait_exit(d, 30000);
    if (st == -1) {
        cr_log_warn("rollupd (pid %d) ignored SIGTERM for 30 s; sending SIGKILL", (int)d->pid);
        kill(d->pid, SIGKILL);
        st = ru_h_daemon_wait_exit(d, 10000);
    }
    /* the event loop's own failure is expected in no test */
    char *log = ru_h_file_text(d->log);
    bool poll_failed = strstr(log, "poll failed") != NULL;
    free(log);
    if (poll_failed)
        FAIL("rollupd's log says \"poll failed\": %s", d->log);
    return st;
}

char *ru_h_file_text(const char *path)
{
    char *t = read_file(path, NULL);
    return t ? t : ru_xstrdup("");
}

char *ru_h_daemon_log(const struct ru_h_daemon *d)
{
    return ru_h_file_text(d->log);
}

char *ru_h_daemon_log_quiet(const struct ru_h_daemon *d)
{
    return log_quiet(d->log);
}

long long ru_h_proc_status_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long long v = -1;
    size_t fl = strlen(field);
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
            v = atoll(line + fl + 1);
            break;
        }
    }
    fclose(f);
    return v;
}

/* ------------------------------------------------------------------ status socket */

char *ru_h_sock_cmd(const char *path, const char *cmd)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path))
        return NULL;
    memcpy(sa.sun_path, path, strlen(path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return NULL;
    }
    struct ru_buf out = RU_BUF_INIT;
    ru_buf_puts(&out, cmd);
    if (out.len == 0 || out.p[out.len - 1] != '\n')
        ru_buf_putc(&out, '\n');
    char *answer = ru_h_fd_exchange(fd, out.p, 5000);
    ru_buf_free(&out);
    return answer;
}

char *ru_h_fd_exchange(int fd, const char *request, int timeout_ms)
{
    size_t len = strlen(request), off = 0;
    while (off < len) {
        ssize_t n = send(fd, request + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            return NULL;
        }
        off += (size_t)n;
    }
    struct ru_buf in = RU_BUF_INIT;
    int64_t deadline = ru_mono_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - ru_mono_ms();
        if (left <= 0)
            break; /* answer so far */
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            break;
        char tmp[8192];
        ssize_t n = read(fd, tmp, sizeof(tmp));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        ru_buf_append(&in, tmp, (size_t)n);
    }
    close(fd);
    return in.p ? in.p : ru_xstrdup("");
}

json_t *ru_h_status(const char *socket_path)
{
    char *text = ru_h_sock_cmd(socket_path, "status");
    if (text == NULL)
        return NULL;
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (j == NULL && *text)
        cr_log_warn("status answer is not JSON (%s): %.200s", jerr.text, text);
    free(text);
    return j;
}

bool ru_h_json_int(const json_t *root, const char *path, long long *out)
{
    const json_t *cur = root;
    char buf[256];
    ru_strlcpy(buf, path, sizeof(buf));
    char *save = NULL;
    for (char *tok = strtok_r(buf, ".", &save); tok && cur; tok = strtok_r(NULL, ".", &save)) {
        if (json_is_object(cur)) {
            cur = json_object_get(cur, tok);
        } else if (json_is_array(cur)) {
            char *end;
            long idx = strtol(tok, &end, 10);
            cur = (*end || idx < 0) ? NULL : json_array_get(cur, (size_t)idx);
        } else {
            cur = NULL;
        }
    }
    if (cur == NULL)
        return false;
    if (json_is_integer(cur))
        *out = (long long)json_integer_value(cur);
    else if (json_is_real(cur))
        *out = (long long)json_real_value(cur);
    else
        return false;
    return true;
}

struct want_answer {
    const char *sock, *cmd, *prefix;
    char *last;
    size_t lastlen;
};

static bool answer_starts(void *arg)
{
    struct want_answer *w = arg;
    char *a = ru_h_sock_cmd(w->sock, w->cmd);
    if (w->last)
        ru_strlcpy(w->last, a ? a : "(unreachable)", w->lastlen);
    bool ok = a && strncmp(a, w->prefix, strlen(w->prefix)) == 0;
    free(a);
    return ok;
}

bool ru_h_wait_answer(const char *sock, const char *cmd, const char *prefix, int timeout_ms,
                      char *last, size_t lastlen)
{
    struct want_answer w = {sock, cmd, prefix, last, lastlen};
    return ru_h_wait(answer_starts, &w, timeout_ms);
}

bool ru_h_status_get(const char *sock, const char *key, long long *out)
{
    json_t *j = ru_h_status(sock);
    if (j == NULL)
        return false;
    bool ok = ru_h_json_int(j, key, out);
    json_decref(j);
    return ok;
}

long long ru_h_status_int(struct ru_h_daemon *d, const char *key)
{
    long long v = -1;
    if (!ru_h_daemon_running(d) || !ru_h_status_get(d->sock, key, &v))
        return -1;
    return v;
}

int ru_h_status_bool(const char *sock, const char *key)
{
    json_t *j = ru_h_status(sock);
    if (j == NULL)
        return -1;
    json_t *v = json_object_get(j, key);
    int r = json_is_boolean(v) ? json_is_true(v) : -1;
    json_decref(j);
    return r;
}

/* ------------------------------------------------------------------ daemon log */

bool ru_h_log_has(const struct ru_h_daemon *d, const char *needle)
{
    char *log = ru_h_daemon_log(d);
    bool found = strstr(log, needle) != NULL;
    free(log);
    return found;
}

size_t ru_h_log_len(const struct ru_h_daemon *d)
{
    char *log = ru_h_daemon_log(d);
    size_t n = strlen(log);
    free(log);
    return n;
}

bool ru_h_log_line(const struct ru_h_daemon *d, size_t from, const char *prefix, const char *needle)
{
    char *log = ru_h_daemon_log(d);
    bool found = false;
    if (strlen(log) >= from) {
        char *save = NULL;
        for (char *l = strtok_r(log + from, "\n", &save); l && !found;
             l = strtok_r(NULL, "\n", &save))
            found = strncmp(l, prefix, strlen(prefix)) == 0 &&
                    (needle == NULL || strstr(l, needle) != NULL);
    }
    free(log);
    return found;
}

struct want_log {
    const struct ru_h_daemon *d;
    const char *needle;
    size_t from;
};

static bool log_has_after(void *arg)
{
    struct want_log *w = arg;
    char *log = ru_h_daemon_log(w->d);
    bool ok = strlen(log) >= w->from && strstr(log + w->from, w->needle) != NULL;
    free(log);
    return ok;
}

void ru_h_wait_log(const struct ru_h_daemon *d, const char *needle, size_t from, int timeout_ms)
{
    struct want_log w = {d, needle, from};
    CHECK(ru_h_wait(log_has_after, &w, timeout_ms), "the log did not show '%s' within %d ms",
          needle, timeout_ms);
}

/* ------------------------------------------------------------------ consumer group */

const redisReply *ru_h_reply_kv(const redisReply *r, const char *key)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i];
        if ((k->type == REDIS_REPLY_STRING || k->type == REDIS_REPLY_STATUS) &&
            strcmp(k->str, key) == 0)
            return r->element[i + 1];
    }
    return NULL;
}

static long long kv_int(const redisReply *r, const char *key)
{
    const redisReply *v = ru_h_reply_kv(r, key);
    return v && v->type == REDIS_REPLY_INTEGER ? v->integer : -1;
}

struct ru_h_group ru_h_group_info(redisContext *c, const char *stream, const char *group)
{
    struct ru_h_group g = {false, -1, -1, -1, ""};
    redisReply *rep = ru_h_redis_cmd(c, "XINFO GROUPS %s", stream);
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
        const redisReply *e = rep->element[i];
        const redisReply *name = ru_h_reply_kv(e, "name");
        if (name == NULL || name->str == NULL || strcmp(name->str, group) != 0)
            continue;
        g.found = true;
        g.pending = kv_int(e, "pending");
        g.entries_read = kv_int(e, "entries-read");
        g.lag = kv_int(e, "lag");
        const redisReply *v = ru_h_reply_kv(e, "last-delivered-id");
        if (v && v->str)
            ru_strlcpy(g.last_delivered, v->str, sizeof(g.last_delivered));
    }
    freeReplyObject(rep);
    return g;
}

/* ------------------------------------------------------------------ waiting */

void ru_h_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

bool ru_h_wait(bool (*cond)(void *), void *arg, int timeout_ms)
{
    int64_t deadline = ru_mono_ms() + timeout_ms;
    for (;;) {
        if (cond(arg))
            return true;
        if (ru_mono_ms() >= deadline)
            return cond(arg);
        ru_h_sleep_ms(20);
    }
}

/* ------------------------------------------------------------------ load generator */

static struct ru_h_lg_result lg_last;

const struct ru_h_lg_result *ru_h_loadgen_last(void)
{
    return &lg_last;
}

static void loadgen_vstart(struct ru_h_proc *p, const char *fmt, va_list ap)
{
    ru_h_env_load();
    char *args = vfmt(fmt, ap);
    wordexp_t we;
    int rc = wordexp(args, &we, WRDE_NOCMD);
    if (rc != 0)
        FAIL("ru_h_loadgen: cannot split arguments '%s' (wordexp error %d)", args, rc);
    char exe[RU_H_PATH + 32], port[16];
    snprintf(exe, sizeof(exe), "%s/rollupd-loadgen", ru_h_env.build_dir);
    if (access(exe, X_OK) != 0)
        FAIL("harness: %s is missing (%s): build it first", exe, strerror(errno));
    snprintf(port, sizeof(port), "%d", ru_h_env.redis_port);
    const char **argv = ru_xcalloc(we.we_wordc + 6, sizeof(char *));
    size_t n = 0;
    argv[n++] = exe;
    argv[n++] = "-h";
    argv[n++] = ru_h_env.redis_host;
    argv[n++] = "-p";
    argv[n++] = port;
    for (size_t i = 0; i < we.we_wordc; i++)
        argv[n++] = we.we_wordv[i];
    argv[n] = NULL;
    ru_h_tmp_path(p->out, sizeof(p->out), "loadgen.out");
    p->pid = spawn(argv, p->out, NULL);
    free(argv);
    wordfree(&we);
    free(args);
}

void ru_h_loadgen_start(struct ru_h_proc *p, const char *args_fmt, ...)
{
    va_list ap;
    va_start(ap, args_fmt);
    loadgen_vstart(p, args_fmt, ap);
    va_end(ap);
}

long long ru_h_loadgen_finish(struct ru_h_proc *p)
{
    int st = 0;
    pid_t r;
    while ((r = waitpid(p->pid, &st, 0)) < 0 && errno == EINTR) {
    }
    char *out = read_file(p->out, NULL);
    if (out == NULL)
        out = ru_xstrdup("");
    if (r != p->pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char msg[RU_H_LOG_TAIL + 256];
        snprintf(msg, sizeof(msg), "rollupd-loadgen failed (%s %d); output:\n%s",
                 r != p->pid     ? "waitpid error"
                 : WIFEXITED(st) ? "exit"
                                 : "signal",
                 r != p->pid     ? errno
                 : WIFEXITED(st) ? WEXITSTATUS(st)
                                 : WTERMSIG(st),
                 tail_of(out));
        free(out);
        FAIL("%s", msg);
    }
    const char *line = NULL;
    for (const char *s = out; (s = strstr(s, "loadgen: written=")) != NULL; s++)
        line = s;
    struct ru_h_lg_result res = {0};
    if (line == NULL || sscanf(line, "loadgen: written=%lld valid=%lld invalid=%lld seconds=%lf",
                               &res.written, &res.valid, &res.invalid, &res.seconds) != 4) {
        char msg[RU_H_LOG_TAIL + 128];
        snprintf(msg, sizeof(msg), "rollupd-loadgen: no summary line in its output:\n%s",
                 tail_of(out));
        free(out);
        FAIL("%s", msg);
    }
    free(out);
    lg_last = res;
    p->pid = 0;
    return res.valid;
}

long long ru_h_loadgen(const char *args_fmt, ...)
{
    struct ru_h_proc p;
    va_list ap;
    va_start(ap, args_fmt);
    loadgen_vstart(&p, args_fmt, ap);
    va_end(ap);
    return ru_h_loadgen_finish(&p);
}

/* ------------------------------------------------------------------ oracle */

long long ru_h_oracle_load_into(PGconn *c, const char *oracle_table, const char *oracle_file)
{
    ru_h_pg_execf(c,
                  "CREATE TABLE IF NOT EXISTS %s (route text, method text, user_id uuid, ts text,"
                  " duration_ms int, status_code int, qpn jsonb, req int, resp int, db int,"
                  " cache text)",
                  oracle_table);
    FILE *f = fopen(oracle_file, "rb");
    if (f == NULL)
        FAIL("harness: cannot read oracle file %s: %s", oracle_file, strerror(errno));
    char sql[RU_H_PATH];
    snprintf(sql, sizeof(sql), "COPY %s FROM STDIN", oracle_table);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        char msg[512];
        ru_strlcpy(msg, PQresultErrorMessage(r), sizeof(msg));
        PQclear(r);
        fclose(f);
        FAIL("harness: %s: %s", sql, msg);
    }
    PQclear(r);
    char buf[65536];
    size_t n;
    bool ok = true;
    while (ok && (n = fread(buf, 1, sizeof(buf), f)) > 0)
        ok = PQputCopyData(c, buf, (int)n) == 1;
    fclose(f);
    if (PQputCopyEnd(c, ok ? NULL : "harness: sending failed") != 1)
        ok = false;
    long long rows = -1;
    char msg[1024] = "";
    while ((r = PQgetResult(c)) != NULL) {
        if (PQresultStatus(r) == PGRES_COMMAND_OK)
            rows = atoll(PQcmdTuples(r));
        else if (msg[0] == '\0')
            ru_strlcpy(msg, PQresultErrorMessage(r), sizeof(msg));
        PQclear(r);
    }
    if (!ok || rows < 0)
        FAIL("harness: COPY of %s into %s failed: %s%s", oracle_file, oracle_table, msg,
             ok ? "" : PQerrorMessage(c));
    return rows;
}

long long ru_h_oracle_load(PGconn *c, const char *oracle_file)
{
    return ru_h_oracle_load_into(c, "oracle_raw", oracle_file);
}

char *ru_h_oracle_sql(const char *oracle_table)
{
    struct ru_buf b = RU_BUF_INIT;
    ru_buf_printf(
        &b,
        "SELECT date_trunc('hour', r.t) AS \"timestamp\", r.route, r.method,"
        " r.qpn AS query_params_normalized,"
        " count(*)::integer AS total_requests,"
        " (count(*) FILTER (WHERE r.status_code BETWEEN 200 AND 299))::integer"
        " AS successful_requests,"
        " (count(*) FILTER (WHERE r.status_code BETWEEN 400 AND 499))::integer AS client_errors,"
        " (count(*) FILTER (WHERE r.status_code >= 500))::integer AS server_errors,"
        " avg(r.duration_ms)::integer AS avg_duration_ms,"
        " (percentile_cont(0.5) WITHIN GROUP (ORDER BY r.duration_ms))::integer"
        " AS p50_duration_ms,"
        " (percentile_cont(0.95) WITHIN GROUP (ORDER BY r.duration_ms))::integer"
        " AS p95_duration_ms,"
        " (percentile_cont(0.99) WITHIN GROUP (ORDER BY r.duration_ms))::integer"
        " AS p99_duration_ms,"
        " count(DISTINCT r.user_id)::integer AS unique_users,"
        " avg(r.req)::integer AS avg_request_size_bytes,"
        " avg(r.resp)::integer AS avg_response_size_bytes,"
        " avg(r.db)::float8 AS avg_db_query_count,"
        " (count(*) FILTER (WHERE r.cache = 'hit'))::integer AS cache_hits,"
        " (count(*) FILTER (WHERE r.cache = 'miss'))::integer AS cache_misses"
        " FROM (SELECT (to_timestamp(o.ts::float8) AT TIME ZONE 'UTC') AS t, o.route, o.method,"
        " o.user_id, o.duration_ms, o.status_code, coalesce(o.qpn, '{}'::jsonb) AS qpn,"
        " nullif(o.req, 0) AS req, nullif(o.resp, 0) AS resp, o.db, o.cache"
        " FROM %s o) r"
        " GROUP BY 1, 2, 3, 4",
        oracle_table);
    return b.p;
}

/* "WITH o AS (...), h AS (...)" over the compared columns, each filtered by where. */
static void diff_ctes(struct ru_buf *b, const char *oracle_table, const char *hourly_table,
                      const char *where)
{
    char *osql = ru_h_oracle_sql(oracle_table);
    const char *w = where && *where ? where : "true";
    ru_buf_printf(b,
                  "WITH o AS (SELECT * FROM (%s) x WHERE %s),"
                  " h AS (SELECT * FROM (SELECT \"timestamp\", route, method::text AS method,"
                  " query_params_normalized, total_requests, successful_requests,"
                  " client_errors, server_errors, avg_duration_ms, p50_duration_ms,"
                  " p95_duration_ms, p99_duration_ms, unique_users, avg_request_size_bytes,"
                  " avg_response_size_bytes, avg_db_query_count, cache_hits, cache_misses"
                  " FROM %s) y WHERE %s) ",
                  osql, w, hourly_table, w);
    free(osql);
}

long long ru_h_oracle_groups(PGconn *c, const char *oracle_table)
{
    char *osql = ru_h_oracle_sql(oracle_table);
    long long n = ru_h_pg_intf(c, "SELECT count(*) FROM (%s) x", osql);
    free(osql);
    return n;
}

long long ru_h_checkpoint_events(PGconn *c, const char *stream, const char *group)
{
    char *s = PQescapeLiteral(c, stream, strlen(stream));
    char *g = PQescapeLiteral(c, group, strlen(group));
    long long n = ru_h_pg_intf(c,
                               "SELECT coalesce(sum(events), 0) FROM rollupd_checkpoint"
                               " WHERE stream = %s AND grp = %s",
                               s, g);
    PQfreemem(s);
    PQfreemem(g);
    return n;
}

long long ru_h_oracle_diff_ex(PGconn *c, const char *oracle_table, const char *hourly_table,
                              const char *where)
{
    struct ru_buf b = RU_BUF_INIT;
    diff_ctes(&b, oracle_table, hourly_table, where);
    ru_buf_puts(&b, "SELECT (SELECT count(*) FROM (SELECT * FROM h EXCEPT ALL SELECT * FROM o) a)"
                    " + (SELECT count(*) FROM (SELECT * FROM o EXCEPT ALL SELECT * FROM h) b)");
    long long n = ru_h_pg_int(c, b.p);
    ru_buf_free(&b);
    return n;
}

long long ru_h_oracle_diff(PGconn *c, const char *hourly_table)
{
    return ru_h_oracle_diff_ex(c, "oracle_raw", hourly_table, NULL);
}

static void print_side(PGconn *c, const char *oracle_table, const char *hourly_table,
                       const char *where, const char *label, const char *a, const char *bside)
{
    struct ru_buf b = RU_BUF_INIT;
    diff_ctes(&b, oracle_table, hourly_table, where);
    ru_buf_printf(&b,
                  "SELECT (d.*)::text FROM (SELECT * FROM %s EXCEPT ALL SELECT * FROM %s) d"
                  " ORDER BY d.\"timestamp\", d.route, d.method,"
                  " d.query_params_normalized::text LIMIT 10",
                  a, bside);
    PGresult *r = PQexec(c, b.p);
    ru_buf_free(&b);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "oracle diff (%s): query failed: %s", label, PQresultErrorMessage(r));
        PQclear(r);
        return;
    }
    fprintf(stderr, "---- %s (up to 10 rows) ----\n", label);
    for (int i = 0; i < PQntuples(r); i++)
        fprintf(stderr, "  %s\n", PQgetvalue(r, i, 0));
    PQclear(r);
}

void ru_h_oracle_print_diff_ex(PGconn *c, const char *oracle_table, const char *hourly_table,
                               const char *where)
{
    fprintf(stderr,
            "columns: (timestamp, route, method, query_params_normalized, total, successful, "
            "client_errors, server_errors, avg, p50, p95, p99, unique_users, avg_req, "
            "avg_resp, avg_db, cache_hits, cache_misses)\n");
    print_side(c, oracle_table, hourly_table, where, "only in the hourly table", "h", "o");
    print_side(c, oracle_table, hourly_table, where, "only in the oracle", "o", "h");
}

void ru_h_oracle_print_diff(PGconn *c, const char *hourly_table)
{
    ru_h_oracle_print_diff_ex(c, "oracle_raw", hourly_table, NULL);
}
