/* Least privilege and hostile clients (Criterion suite "privilege", issue 16):
 *
 *  - PostgreSQL: the schema applied by its owner from `rollupd --print-schema`, then
 *    rollupd under a role holding exactly the README's GRANT lines (and nothing PUBLIC
 *    has by default), in both modes, raw mode on and off: every event counted once. A
 *    privilege missing, or a table missing with postgres.create_schema off, is one error
 *    naming it, shown by health, retried slowly; the fix is picked up without a restart.
 *  - Redis: rollupd under a user made by exactly the README's ACL SETUSER line of each
 *    mode; a NOPERM is one error naming the command, not a reconnect loop.
 *  - Listeners: hundreds of idle and slow clients and an oversized request on the HTTP
 *    listener and the status socket: health answers within a second, ingestion goes on.
 *
 * The grants and ACL lines are read from README.md, so the documentation is what is
 * tested. */
#include "e2e.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>

/* ------------------------------------------------------------------ README */

/* The README's "Least privilege" section (malloc'd). */
static char *least_privilege_section(void)
{
    char path[RU_H_PATH];
    ru_h_env_load();
    snprintf(path, sizeof(path), "%s/README.md", ru_h_env.source_dir);
    char *readme = ru_h_read_file(path);
    const char *start = strstr(readme, "\n## Least privilege");
    CHECK(start != NULL, "README.md has no \"## Least privilege\" section");
    const char *end = strstr(start + 1, "\n## ");
    char *sec = ru_xstrndup(start, end ? (size_t)(end - start) : strlen(start));
    free(readme);
    return sec;
}

/* Replaces every occurrence of from in s by to (malloc'd result; s is freed). */
static char *replace_all(char *s, const char *from, const char *to)
{
    struct ru_buf b = RU_BUF_INIT;
    size_t flen = strlen(from);
    const char *p = s;
    for (const char *q; (q = strstr(p, from)) != NULL; p = q + flen) {
        ru_buf_append(&b, p, (size_t)(q - p));
        ru_buf_puts(&b, to);
    }
    ru_buf_puts(&b, p);
    free(s);
    return b.p;
}

/* The lines of the section's code blocks that start with prefix, in order (at most max;
 * each malloc'd). */
static size_t section_lines(const char *sec, const char *prefix, char **out, size_t max)
{
    size_t n = 0;
    bool code = false;
    for (const char *line = sec; line && *line && n < max;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (strncmp(line, "```", 3) == 0)
            code = !code;
        else if (code && strncmp(line, prefix, strlen(prefix)) == 0)
            out[n++] = ru_xstrndup(line, len);
        line = nl ? nl + 1 : NULL;
    }
    return n;
}

/* ------------------------------------------------------------------ PostgreSQL role */

struct pgrole {
    char name[64];
    char ci[320]; /* the test database as this role */
};

/* The name of this test's database (from its conninfo). */
static const char *dbname(void)
{
    static char name[128];
    const char *p = strstr(T.ci, "dbname=");
    cr_assert_not_null(p);
    snprintf(name, sizeof(name), "%.*s", (int)strcspn(p + 7, " "), p + 7);
    return name;
}

/* Stops every daemon with SIGTERM (each must exit 0), before what they log in as is
 * dropped. */
static void stop_all(void)
{
    for (int i = 0; i < T.nd; i++) {
        if (!ru_h_daemon_running(T.d[i]))
            continue;
        int rc = ru_h_daemon_stop(T.d[i]);
        CHECK(rc == 0, "rollupd #%d exited with status %d after SIGTERM", i, rc);
    }
}

/* A login role with nothing granted, and a database where PUBLIC has nothing either
 * (no CONNECT, no TEMPORARY, no USAGE on public): only what the README grants counts. */
static void role_new(struct pgrole *r)
{
    snprintf(r->name, sizeof(r->name), "ru_role_%d_%d", (int)getpid(), ru_h_next_id());
    ru_h_pg_execf(T.pg, "CREATE ROLE %s LOGIN", r->name);
    ru_h_pg_execf(T.pg, "REVOKE ALL ON DATABASE %s FROM PUBLIC", dbname());
    ru_h_pg_exec(T.pg, "REVOKE ALL ON SCHEMA public FROM PUBLIC");
    snprintf(r->ci, sizeof(r->ci), "host=%s port=%d dbname=%s user=%s", ru_h_env.pg_host,
             ru_h_env.pg_port, dbname(), r->name);
}

static void role_drop(struct pgrole *r)
{
    char err[256];
    char sql[256];
    snprintf(sql, sizeof(sql), "DROP OWNED BY %s; DROP ROLE %s", r->name, r->name);
    if (ru_h_pg_try_exec(T.pg, sql, err, sizeof(err)) < 0)
        cr_log_warn("dropping role %s: %s", r->name, err);
}

/* Runs the README's GRANT lines for role r on this test's database; the raw table's
 * line only when raw. Returns how many ran. */
static int apply_readme_grants(const struct pgrole *r, bool raw, const char *skip)
{
    char *sec = least_privilege_section();
    char *lines[16];
    size_t n = section_lines(sec, "GRANT ", lines, 16);
    CHECK(n >= 4, "README's Least privilege section has %zu GRANT lines", n);
    int ran = 0;
    char to[96];
    snprintf(to, sizeof(to), " TO %s;", r->name);
    for (size_t i = 0; i < n; i++) {
        bool raw_line = strstr(lines[i], " ON route_analytics TO ") != NULL;
        char *g = lines[i];
        char *cut = strstr(g, "--"); /* a trailing comment */
        if (cut)
            *cut = '\0';
        g = replace_all(g, " TO rollupd;", to);
        char db[160];
        snprintf(db, sizeof(db), " DATABASE %s TO", dbname());
        g = replace_all(g, " DATABASE genonaut TO", db);
        if ((!raw_line || raw) && (skip == NULL || strstr(g, skip) == NULL)) {
            ru_h_pg_exec(T.pg, g);
            ran++;
        }
        free(g);
    }
    free(sec);
    return ran;
}

/* The output of `rollupd -c conf --print-schema` (malloc'd). */
static char *print_schema(const char *config_text)
{
    char conf[RU_H_PATH], out[RU_H_PATH];
    ru_h_tmp_path(conf, sizeof(conf), "schema.conf");
    ru_h_tmp_path(out, sizeof(out), "schema.sql");
    FILE *fp = fopen(conf, "w");
    cr_assert_not_null(fp);
    fputs(config_text, fp);
    fclose(fp);
    char cmd[3 * RU_H_PATH];
    snprintf(cmd, sizeof(cmd), "%s/rollupd -c %s --print-schema > %s", ru_h_env.build_dir, conf,
             out);
    int rc = system(cmd);
    CHECK(rc == 0, "%s: exit status %d", cmd, rc);
    return ru_h_read_file(out);
}

/* ------------------------------------------------------------------ feeding */

struct fed {
    char oracle[RU_H_PATH];
    long long valid, written, invalid;
};

static void feed(struct fed *f, long long n, int seed)
{
    if (f->oracle[0] == '\0')
        ru_h_tmp_path(f->oracle, sizeof(f->oracle), "oracle.tsv");
    f->valid += ru_h_loadgen("-s %s -n %lld --seed %d --start-ts %lld --hours 2"
                             " --invalid-frac 0.01 --oracle %s --quiet",
                             T.stream, n, seed, H0, f->oracle);
    f->written += ru_h_loadgen_last()->written;
    f->invalid += ru_h_loadgen_last()->invalid;
}

/* Everything fed is committed (both modes; status counters may have restarted). */
static void wait_counted(const struct fed *f, bool lone, const char *what)
{
    if (lone)
        wait_lone_drained(f->written, f->valid, what);
    else
        wait_drained(f->written, what);
}

/* ... and counted once, dead letters included (once per test: it loads the oracle). */
static void check_counted(const struct fed *f, bool lone, const char *what)
{
    wait_counted(f, lone, what);
    check_dead_letters(f->invalid, what);
    check_exactly_once(f->oracle, f->valid, what);
}

/* ------------------------------------------------------------------ 1: DML-only role */

/* The owner applies the printed DDL; rollupd runs as a role with exactly the README's
 * grants. With create_schema on (the default) it must create nothing: it looks first. */
static void dml_only(bool lone, bool raw, bool create_schema)
{
    setup();
    struct pgrole role;
    role_new(&role);
    struct ru_h_cfg k = lone ? lone_cfg(200) : base_cfg(200);
    k.conninfo = role.ci;
    k.raw_table = raw ? "route_analytics" : NULL;
    k.postgres_extra = create_schema ? NULL : "create_schema = false;";
    char *text = ru_h_config(&k);
    char *ddl = print_schema(text);
    free(text);
    CHECK(strstr(ddl, "CREATE TABLE IF NOT EXISTS \"rollupd_checkpoint\"") &&
              (strstr(ddl, "\"route_analytics\" (") != NULL) == raw,
          "--print-schema printed:\n%s", ddl);
    ru_h_pg_exec(T.pg, ddl); /* as the owner (the harness's superuser) */
    free(ddl);
    apply_readme_grants(&role, raw, NULL);

    struct ru_h_daemon d;
    start_connected(&d, &k);
    struct fed f = {0};
    feed(&f, 3000, 1601);
    check_counted(&f, lone, "DML-only role");
    if (raw) {
        long long rows = ru_h_pg_int(T.pg, "SELECT count(*) FROM route_analytics");
        CHECK(rows == f.valid, "route_analytics has %lld rows, want %lld", rows, f.valid);
    }
    char *log = ru_h_daemon_log(&d);
    CHECK(strstr(log, "created ") == NULL && strstr(log, "set-up failed") == NULL,
          "rollupd tried to create something or failed its set-up");
    free(log);
    stop_all();
    role_drop(&role);
    finish("dml_only");
}

Test(privilege, dml_role_shared_group, .timeout = 180)
{
    dml_only(false, false, true);
}

Test(privilege, dml_role_shared_group_raw, .timeout = 180)
{
    dml_only(false, true, false);
}

Test(privilege, dml_role_lone_consumer, .timeout = 180)
{
    dml_only(true, false, false);
}

Test(privilege, dml_role_lone_consumer_raw, .timeout = 180)
{
    dml_only(true, true, true);
}

/* ------------------------------------------------------------------ 2: one clear error */

/* text (may be NULL) holds every one of the NULL-terminated needles. */
static bool has_all(const char *text, const char *const *needles)
{
    bool ok = text != NULL;
    for (size_t i = 0; ok && needles[i]; i++)
        ok = strstr(text, needles[i]) != NULL;
    return ok;
}

static bool cond_health_has(void *arg)
{
    const char *const *want = arg; /* {socket, needle1, needle2, NULL} */
    char *h = ru_h_sock_cmd(want[0], "health");
    bool ok = has_all(h, want + 1);
    free(h);
    return ok;
}

/* Sessions opened in this test's database so far (pg_stat_database counts each one). */
static long long sessions(void)
{
    ru_h_pg_exec(T.pg, "SELECT pg_stat_clear_snapshot()");
    return ru_h_pg_intf(T.pg, "SELECT sessions FROM pg_stat_database WHERE datname = '%s'",
                        dbname());
}

/* Over 4 s, rollupd opens at most one more session: a retry, not a loop. */
static void check_slow_retry(struct ru_h_daemon *d, const char *what)
{
    long long before = sessions();
    int64_t until = ru_mono_ms() + 4000;
    while (ru_mono_ms() < until)
        ru_h_sleep_ms(100); /* an interval to count over, not a wait for a state */
    long long after = sessions();
    CHECK(after - before <= 1, "%s: rollupd opened %lld PostgreSQL sessions in 4 s", what,
          after - before);
    CHECK(ru_h_daemon_running(d), "%s: rollupd exited", what);
}

/* A privilege the README lists, missing: one error naming it, the table and the GRANT,
 * in health; retried slowly; a reload after the GRANT picks it up. */
Test(privilege, missing_privilege_is_one_clear_error, .timeout = 180)
{
    setup();
    struct pgrole role;
    role_new(&role);
    struct ru_h_cfg k = base_cfg(200);
    k.conninfo = role.ci;
    char *text = ru_h_config(&k);
    char *ddl = print_schema(text);
    free(text);
    ru_h_pg_exec(T.pg, ddl);
    free(ddl);
    /* everything but the line that grants DELETE on rollupd_rowstate */
    apply_readme_grants(&role, false, "DELETE");

    struct ru_h_daemon d;
    start_daemon(&d, &k);
    const char *want[] = {d.sock, "down", "DELETE on \"rollupd_rowstate\"",
                          "GRANT SELECT, INSERT, DELETE ON \"rollupd_rowstate\"", NULL};
    CHECK(ru_h_wait(cond_health_has, want, 20000),
          "health does not name the missing privilege, the table and the GRANT");
    check_slow_retry(&d, "missing DELETE");

    ru_h_pg_execf(T.pg, "GRANT SELECT, INSERT, DELETE ON rollupd_rowstate TO %s", role.name);
    ru_h_daemon_kill(&d, SIGHUP); /* a reload retries at once */
    wait_connected(&d);
    struct fed f = {0};
    feed(&f, 1000, 1602);
    check_counted(&f, false, "after the GRANT");
    stop_all();
    role_drop(&role);
    finish("missing_privilege");
}

/* create_schema = false and nothing there: one error naming what is missing and the
 * command that prints the DDL; applying that output is picked up without a restart. */
Test(privilege, create_schema_off_names_what_is_missing, .timeout = 180)
{
    setup();
    struct ru_h_cfg k = base_cfg(200);
    k.postgres_extra = "create_schema = false;";
    struct ru_h_daemon d;
    start_daemon(&d, &k);
    const char *want[] = {d.sock,
                          "down",
                          "table \"route_analytics_hourly\"",
                          "postgres.create_schema is off",
                          "--print-schema",
                          NULL};
    CHECK(ru_h_wait(cond_health_has, want, 20000),
          "health does not name the missing tables and --print-schema");
    check_slow_retry(&d, "tables missing");
    CHECK(ru_h_pg_int(T.pg, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0,
          "rollupd created tables with create_schema = false");

    char *text = ru_h_config(&k);
    char *ddl = print_schema(text);
    free(text);
    ru_h_pg_exec(T.pg, ddl);
    free(ddl);
    ru_h_daemon_kill(&d, SIGHUP);
    wait_connected(&d);
    struct fed f = {0};
    feed(&f, 1000, 1603);
    check_counted(&f, false, "after the DDL");
    finish("create_schema_off");
}

/* ------------------------------------------------------------------ 3: Redis ACL */

struct acluser {
    char name[64], pw[32], url[160];
};

/* Creates user u from the README's ACL SETUSER line of the mode (the first line is the
 * shared group's, the second the lone consumer's), for this test's streams. drop: a
 * command to leave out ("+xreadgroup"), or NULL. */
static void acl_user(struct acluser *u, bool lone, const char *drop)
{
    snprintf(u->name, sizeof(u->name), "ru_acl_%d_%d", (int)getpid(), ru_h_next_id());
    snprintf(u->pw, sizeof(u->pw), "pw%d", ru_h_next_id());
    snprintf(u->url, sizeof(u->url), "redis://%s:%s@127.0.0.1:%d/0", u->name, u->pw,
             ru_h_env.redis_port);
    char *sec = least_privilege_section();
    char *lines[4];
    size_t n = section_lines(sec, "ACL SETUSER rollupd ", lines, 4);
    free(sec);
    CHECK(n == 2, "README's Least privilege section has %zu ACL SETUSER lines, want 2", n);
    CHECK(strstr(lines[0], "xrevrange") == NULL && strstr(lines[1], "+xrevrange") != NULL,
          "the first ACL line is the shared group's, the second the lone consumer's");
    char *line = lines[lone ? 1 : 0];
    free(lines[lone ? 0 : 1]);
    char user[80], pw[40];
    snprintf(user, sizeof(user), "SETUSER %s ", u->name);
    snprintf(pw, sizeof(pw), ">%s ", u->pw);
    line = replace_all(line, "SETUSER rollupd ", user);
    line = replace_all(line, ">PASSWORD ", pw);
    line = replace_all(line, "genonaut:route_analytics:stream", T.stream);
    if (drop) {
        char d[64];
        snprintf(d, sizeof(d), " %s", drop);
        line = replace_all(line, d, "");
    }
    redis_ok(line);
    free(line);
}

static void acl_drop(const struct acluser *u)
{
    freeReplyObject(ru_h_redis_cmd(T.r, "ACL DELUSER %s", u->name));
}

/* setup(), the mode's ACL user (less drop) and rollupd started as that user. */
static void start_as_acl_user(struct acluser *u, bool lone, const char *drop, struct ru_h_daemon *d)
{
    setup();
    acl_user(u, lone, drop);
    struct ru_h_cfg k = lone ? lone_cfg(200) : base_cfg(200);
    k.redis_url = u->url;
    start_daemon(d, &k);
}

static void acl_mode(bool lone)
{
    struct acluser u;
    struct ru_h_daemon d;
    start_as_acl_user(&u, lone, NULL, &d);
    wait_connected(&d);
    struct fed f = {0};
    feed(&f, 3000, lone ? 1605 : 1604);
    wait_counted(&f, lone, "restricted ACL user");
    /* a restart recovers (a lone consumer's recovery reads with XRANGE, XREVRANGE and
     * XINFO) under the same user */
    CHECK(ru_h_daemon_stop(&d) == 0, "rollupd did not stop cleanly");
    feed(&f, 1000, lone ? 1607 : 1606);
    ru_h_daemon_restart(&d);
    check_counted(&f, lone, "restricted ACL user, after a restart");
    char *log = ru_h_daemon_log(&d);
    CHECK(strstr(log, "NOPERM") == NULL && strstr(log, "refused") == NULL &&
              strstr(log, "ACL") == NULL,
          "the log shows a refused command under the README's ACL line");
    free(log);
    stop_all();
    acl_drop(&u);
    finish(lone ? "acl_lone" : "acl_shared");
}

Test(privilege, acl_user_shared_group, .timeout = 180)
{
    acl_mode(false);
}

Test(privilege, acl_user_lone_consumer, .timeout = 180)
{
    acl_mode(true);
}

static bool cond_redis_error_has(void *arg)
{
    const char *const *want = arg; /* {socket, needle...} */
    json_t *j = ru_h_status(want[0]);
    bool ok =
        has_all(j ? json_string_value(json_object_get(j, "redis_last_error")) : NULL, want + 1);
    json_decref(j);
    return ok;
}

/* A command the ACL lacks: one error naming it, and no reconnect loop. */
static void noperm(bool lone, const char *drop, const char *cmd)
{
    struct acluser u;
    struct ru_h_daemon d;
    start_as_acl_user(&u, lone, drop, &d);
    feed(&(struct fed){0}, 100, 1608);
    const char *want[] = {d.sock, "NOPERM", cmd, "Least privilege", NULL};
    CHECK(ru_h_wait(cond_redis_error_has, want, 20000),
          "redis_last_error does not name NOPERM and %s", cmd);
    long long before = ru_h_status_int(&d, "redis_reconnects");
    int64_t until = ru_mono_ms() + 4000;
    while (ru_mono_ms() < until)
        ru_h_sleep_ms(100); /* an interval to count over */
    long long after = ru_h_status_int(&d, "redis_reconnects");
    CHECK(after - before <= 1, "%lld reconnects in 4 s after NOPERM on %s", after - before, cmd);
    char *h = ru_h_sock_cmd(d.sock, "health");
    CHECK(h && strncmp(h, "down", 4) == 0 && strstr(h, cmd), "health: %s", h ? h : "(none)");
    free(h);
    stop_all();
    acl_drop(&u);
    finish("noperm");
}

Test(privilege, noperm_shared_group_is_one_clear_error, .timeout = 120)
{
    noperm(false, "+xreadgroup", "xreadgroup");
}

Test(privilege, noperm_lone_consumer_is_one_clear_error, .timeout = 120)
{
    noperm(true, "+xinfo|stream", "xinfo|stream");
}

/* ------------------------------------------------------------------ 4: listeners */

static int free_tcp_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* A non-blocking connection to the HTTP port (tcp) or the socket path; -1 when refused
 * at once. The connect may still be in progress. */
static int open_conn(int port, const char *path)
{
    int fd;
    int rc;
    if (path) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    } else {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    }
    if (rc != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One request on a new connection, answered within timeout_ms (connect included):
 * the answer, or NULL (malloc'd). */
static char *timed_request(int port, const char *path, const char *req, int timeout_ms)
{
    int64_t t0 = ru_mono_ms();
    int fd = open_conn(port, path);
    if (fd < 0)
        return NULL;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int err = 0;
    socklen_t len = sizeof(err);
    if (poll(&p, 1, timeout_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ||
        err != 0) {
        close(fd);
        return NULL;
    }
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    int left = timeout_ms - (int)(ru_mono_ms() - t0);
    char *a = ru_h_fd_exchange(fd, req, left > 0 ? left : 1);
    if (a && a[0] == '\0') {
        free(a);
        a = NULL;
    }
    return a;
}

struct siege {
    int fds[2000];
    int n;
    int slow[200]; /* indexes into fds of the slow clients */
    int nslow;
};

/* idle connections that send nothing, and slow ones that send a request one byte a
 * second; each -1 when refused */
static void siege_open(struct siege *s, int port, const char *path, int idle, int slow)
{
    for (int i = 0; i < idle + slow && s->n < (int)RU_ARRAY_LEN(s->fds); i++) {
        int fd = open_conn(port, path);
        if (fd < 0)
            continue;
        if (i >= idle && s->nslow < (int)RU_ARRAY_LEN(s->slow))
            s->slow[s->nslow++] = s->n;
        s->fds[s->n++] = fd;
    }
}

/* The next byte of each slow client's request (a request that never ends). */
static void siege_drip(struct siege *s)
{
    for (int i = 0; i < s->nslow; i++) {
        ssize_t w = send(s->fds[s->slow[i]], "G", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
    }
}

static void siege_close(struct siege *s)
{
    for (int i = 0; i < s->n; i++)
        close(s->fds[i]);
    s->n = s->nslow = 0;
}

static long long flushed_now(struct ru_h_daemon *d)
{
    return ru_h_status_int(d, "events_flushed");
}

/* Hundreds of idle and slow clients on both listeners, plus an oversized request on each:
 * health answers within a second on both, the whole time, and ingestion goes on. */
Test(privilege, listeners_cannot_be_held, .timeout = 240)
{
    setup();
    int port = free_tcp_port();
    char listen_addr[64];
    snprintf(listen_addr, sizeof(listen_addr), "127.0.0.1:%d", port);
    struct ru_h_cfg k = base_cfg(200);
    k.metrics_listen = listen_addr;
    k.log_level = "info";
    struct ru_h_daemon d;
    start_connected(&d, &k);

    struct ru_h_proc lg;
    ru_h_loadgen_start(&lg,
                       "-s %s -n 40000 --rate 4000 --seed 1609 --start-ts %lld --hours 2"
                       " --oracle %s --quiet",
                       T.stream, H0, T.oracle);

    static struct siege http, sock;
    siege_open(&http, port, NULL, 300, 50);
    siege_open(&sock, 0, d.sock, 300, 50);
    cr_log_info("siege: %d TCP and %d Unix connections held", http.n, sock.n);
    CHECK(http.n >= 300 && sock.n >= 64, "only %d TCP and %d Unix connections opened", http.n,
          sock.n);

    /* an oversized request on each */
    struct ru_buf big = RU_BUF_INIT;
    ru_buf_puts(&big, "GET /health HTTP/1.0\r\nX-Pad: ");
    for (int i = 0; i < 9000; i++)
        ru_buf_putc(&big, 'a');
    char *a = timed_request(port, NULL, big.p, 3000);
    CHECK(a && strstr(a, " 431 "), "oversized HTTP request: %s", a ? a : "(no answer)");
    free(a);
    ru_buf_reset(&big);
    for (int i = 0; i < 4000; i++)
        ru_buf_putc(&big, 'h');
    a = timed_request(0, d.sock, big.p, 3000);
    CHECK(a && strstr(a, "too long"), "oversized status command: %s", a ? a : "(no answer)");
    free(a);
    ru_buf_free(&big);

    long long flushed0 = flushed_now(&d);
    int64_t end = ru_mono_ms() + 8000;
    int probes = 0;
    while (ru_mono_ms() < end) {
        siege_drip(&http);
        siege_drip(&sock);
        /* more idle clients keep arriving, as from a scanner that reconnects */
        siege_open(&http, port, NULL, 20, 0);
        siege_open(&sock, 0, d.sock, 20, 0);
        int64_t t0 = ru_mono_ms();
        char *h = timed_request(port, NULL, "GET /health HTTP/1.0\r\n\r\n", 1000);
        int64_t t1 = ru_mono_ms();
        CHECK(h && strstr(h, "HTTP/1.0 200"), "GET /health during the siege (%lld ms): %s",
              (long long)(t1 - t0), h ? h : "(no answer within 1 s)");
        free(h);
        h = timed_request(0, d.sock, "health\n", 1000);
        CHECK(h && strncmp(h, "ok", 2) == 0, "status socket health during the siege (%lld ms): %s",
              (long long)(ru_mono_ms() - t1), h ? h : "(no answer within 1 s)");
        free(h);
        probes++;
        ru_h_sleep_ms(1000 - (int)((ru_mono_ms() - t0) % 1000)); /* one byte a second */
    }
    long long flushed1 = flushed_now(&d);
    CHECK(flushed1 > flushed0, "nothing was flushed during the siege (%lld, then %lld)", flushed0,
          flushed1);
    siege_close(&http);
    siege_close(&sock);
    cr_log_info("siege: %d probes answered within 1 s; %lld events flushed meanwhile", probes,
                flushed1 - flushed0);

    long long valid = ru_h_loadgen_finish(&lg);
    wait_flushed(valid, "after the siege");
    check_exactly_once(T.oracle, valid, "after the siege");
    finish("listeners");
}
