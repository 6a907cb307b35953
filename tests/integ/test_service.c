/* Service behaviour of rollupd under a supervisor: signals (SIGUSR1 flush, SIGHUP reload,
 * SIGTERM final flush, a second SIGTERM), the status socket and its commands, sd_notify
 * (READY, STATUS, WATCHDOG, RELOADING, STOPPING) while a flush is blocked, rollupctl's
 * output and exit codes, the HTTP metrics listener, and the systemd unit check script.
 *
 * Every test uses a fresh database and fresh stream names, and waits on observable state
 * (status socket, log, PostgreSQL, notify datagrams) with deadlines. A flush is made to
 * block by holding an ACCESS EXCLUSIVE lock on route_analytics_hourly from another
 * connection in an open transaction. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "rollupd/config.h"

#define START_MS 20000 /* deadline for start-up states (health ok, READY=1) */
#define STATE_MS 15000 /* deadline for a state reached by the daemon's own work */

/* ------------------------------------------------------------------ set-up */

struct svc {
    char stream[128], group[128], ci[256], sock[RU_H_PATH];
    struct ru_h_daemon d;
};

/* Fresh stream and group names, a fresh database and a fresh socket path. */
static void svc_init(struct svc *s)
{
    memset(s, 0, sizeof(*s));
    ru_h_names(s->stream, s->group, NULL, sizeof(s->stream));
    ru_h_fresh_db(s->ci, sizeof(s->ci));
    ru_h_sock_path(s->sock, sizeof(s->sock));
}

static struct ru_h_cfg svc_cfg(const struct svc *s)
{
    return (struct ru_h_cfg){
        .stream = s->stream, .group = s->group, .conninfo = s->ci, .socket = s->sock};
}

static void svc_start(struct svc *s, const struct ru_h_cfg *k)
{
    char *text = ru_h_config(k);
    ru_h_daemon_start(&s->d, text);
    free(text);
}

/* Stops the daemon with SIGTERM; it must exit 0. */
static void svc_stop(struct svc *s)
{
    int st = ru_h_daemon_stop(&s->d);
    CHECK(st == 0, "rollupd exited with status %d after SIGTERM", st);
}

/* ------------------------------------------------------------------ status socket */

struct want_int {
    const char *sock, *key;
    long long want, last;
};

static bool status_int_eq(void *arg)
{
    struct want_int *w = arg;
    long long v;
    if (!ru_h_status_get(w->sock, w->key, &v))
        return false;
    w->last = v;
    return v == w->want;
}

/* Waits until the status key equals want; fails with the last value otherwise. */
static void wait_status_int(const struct ru_h_daemon *d, const char *key, long long want,
                            int timeout_ms)
{
    struct want_int w = {d->sock, key, want, -1};
    CHECK(ru_h_wait(status_int_eq, &w, timeout_ms),
          "status %s did not reach %lld within %d ms (last %lld)", key, want, timeout_ms, w.last);
}

static long long status_int(const struct ru_h_daemon *d, const char *key)
{
    long long v = 0;
    CHECK(ru_h_status_get(d->sock, key, &v), "status has no integer '%s'", key);
    return v;
}

/* Waits until the answer to cmd starts with prefix. */
static void wait_answer(const struct ru_h_daemon *d, const char *cmd, const char *prefix,
                        int timeout_ms)
{
    char last[512];
    CHECK(ru_h_wait_answer(d->sock, cmd, prefix, timeout_ms, last, sizeof(last)),
          "'%s' did not answer '%s...' within %d ms; last answer: %s", cmd, prefix, timeout_ms,
          last);
}

static void wait_healthy(const struct ru_h_daemon *d)
{
    char last[512];
    CHECK(ru_h_wait_answer(d->sock, "health", "ok\n", START_MS, last, sizeof(last)) &&
              strcmp(last, "ok\n") == 0,
          "health did not become \"ok\" within %d ms; last answer: %s", START_MS, last);
}

/* ------------------------------------------------------------------ PostgreSQL */

/* sum(total_requests) of the hourly table, -1 while the table does not exist. */
static long long hourly_sum(PGconn *c)
{
    if (ru_h_pg_int(c, "SELECT (to_regclass('route_analytics_hourly') IS NOT NULL)::int") == 0)
        return -1;
    return ru_h_pg_int(c, "SELECT coalesce(sum(total_requests), 0) FROM route_analytics_hourly");
}

struct want_sum {
    PGconn *c;
    long long want, last;
};

static bool hourly_sum_eq(void *arg)
{
    struct want_sum *w = arg;
    w->last = hourly_sum(w->c);
    return w->last == w->want;
}

static void wait_hourly_sum(const struct ru_h_daemon *d, PGconn *c, long long want, int timeout_ms)
{
    struct want_sum w = {c, want, -2};
    CHECK(ru_h_wait(hourly_sum_eq, &w, timeout_ms),
          "hourly sum(total_requests) did not reach %lld within %d ms (last %lld)", want,
          timeout_ms, w.last);
}

/* A connection that holds ACCESS EXCLUSIVE on route_analytics_hourly in an open transaction
 * (the table must exist). Release with lock_release. */
static PGconn *lock_hourly(const char *ci)
{
    PGconn *c = ru_h_pg_connect(ci);
    ru_h_pg_exec(c, "BEGIN; LOCK TABLE route_analytics_hourly IN ACCESS EXCLUSIVE MODE");
    return c;
}

static void lock_release(PGconn *c)
{
    ru_h_pg_exec(c, "ROLLBACK");
    PQfinish(c);
}

/* Lock requests on route_analytics_hourly that wait (seen from the lock holder). */
static bool someone_waits(void *arg)
{
    return ru_h_pg_int((PGconn *)arg, "SELECT count(*) FROM pg_locks WHERE NOT granted"
                                      " AND relation = 'route_analytics_hourly'::regclass") > 0;
}

/* ------------------------------------------------------------------ processes */

struct run {
    int status; /* exit code, 128 + signal, or -1 on timeout */
    char *out, *err;
};

/* Runs argv (argv[0] a path) with stdout and stderr captured; kills it after timeout_ms. */
static void run_prog(struct run *r, int timeout_ms, const char *const *argv)
{
    char out[RU_H_PATH], err[RU_H_PATH];
    ru_h_tmp_path(out, sizeof(out), "run.out");
    ru_h_tmp_path(err, sizeof(err), "run.err");
    int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert(fo >= 0 && fe >= 0, "cannot create %s / %s: %s", out, err, strerror(errno));
    pid_t pid = ru_h_fork_exec(argv, fo, fe, NULL);
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    close(fo);
    close(fe);
    int64_t deadline = ru_mono_ms() + timeout_ms;
    int st = 0;
    r->status = -1;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) {
            r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
        if (ru_mono_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            break;
        }
        ru_h_sleep_ms(10);
    }
    r->out = ru_h_file_text(out);
    r->err = ru_h_file_text(err);
    unlink(out);
    unlink(err);
}

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

/* rollupctl -s sock ARGS... (NULL-terminated). */
static void rollupctl(struct run *r, const char *sock, const char *a1, const char *a2)
{
    char exe[RU_H_PATH];
    snprintf(exe, sizeof(exe), "%s/rollupctl", ru_h_env.build_dir);
    cr_assert(access(exe, X_OK) == 0, "%s is missing: build it first", exe);
    const char *argv[] = {exe, "-s", sock, a1, a2, NULL};
    run_prog(r, 20000, argv);
}

static int count_char(const char *s, char c)
{
    int n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

/* ------------------------------------------------------------------ sd_notify receiver */

struct note {
    char text[512]; /* one line of a datagram */
    int64_t ms;     /* monotonic time it was read */
};

struct notes {
    int fd;
    char path[RU_H_PATH];
    struct note *v;
    size_t n, cap;
};

static void notes_open(struct notes *nt)
{
    memset(nt, 0, sizeof(*nt));
    ru_h_sock_path(nt->path, sizeof(nt->path));
    nt->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    cr_assert_geq(nt->fd, 0, "socket: %s", strerror(errno));
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    ru_strlcpy(sa.sun_path, nt->path, sizeof(sa.sun_path));
    cr_assert_eq(bind(nt->fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "bind %s: %s", nt->path,
                 strerror(errno));
}

static void notes_close(struct notes *nt)
{
    close(nt->fd);
    unlink(nt->path);
    free(nt->v);
}

/* Waits up to timeout_ms for a datagram, then reads all that are queued. */
static void notes_read(struct notes *nt, int timeout_ms)
{
    struct pollfd p = {.fd = nt->fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0)
        return;
    for (;;) {
        char buf[4096];
        ssize_t n = recv(nt->fd, buf, sizeof(buf) - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return;
        buf[n] = '\0';
        int64_t now = ru_mono_ms();
        char *save = NULL;
        for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
            if (nt->n == nt->cap) {
                nt->cap = nt->cap ? nt->cap * 2 : 64;
                nt->v = ru_xrealloc(nt->v, nt->cap * sizeof(*nt->v));
            }
            ru_strlcpy(nt->v[nt->n].text, l, sizeof(nt->v[nt->n].text));
            nt->v[nt->n].ms = now;
            nt->n++;
        }
    }
}

/* Index of the first line at or after from starting with prefix, or -1. */
static long notes_find(const struct notes *nt, const char *prefix, size_t from)
{
    for (size_t i = from; i < nt->n; i++)
        if (strncmp(nt->v[i].text, prefix, strlen(prefix)) == 0)
            return (long)i;
    return -1;
}

/* The lines received so far, for failure messages (static buffer). */
static const char *notes_dump(const struct notes *nt)
{
    static char buf[4096];
    size_t off = 0;
    buf[0] = '\0';
    size_t first = nt->n > 40 ? nt->n - 40 : 0;
    for (size_t i = first; i < nt->n && off < sizeof(buf) - 1; i++) {
        int k = snprintf(buf + off, sizeof(buf) - off, "  [%zu] %.200s\n", i, nt->v[i].text);
        if (k < 0)
            break;
        off += (size_t)k;
    }
    return buf;
}

/* Reads datagrams until a line starting with prefix arrives at index >= from. */
static size_t notes_wait(const struct ru_h_daemon *d, struct notes *nt, const char *prefix,
                         size_t from, int timeout_ms)
{
    int64_t deadline = ru_mono_ms() + timeout_ms;
    for (;;) {
        long i = notes_find(nt, prefix, from);
        if (i >= 0)
            return (size_t)i;
        int64_t left = deadline - ru_mono_ms();
        if (left <= 0)
            FAIL("no notify message '%s' (after index %zu) within %d ms; received:\n%s", prefix,
                 from, timeout_ms, notes_dump(nt));
        notes_read(nt, left > 100 ? 100 : (int)left);
    }
}

/* Like ru_h_daemon_start, but with NOTIFY_SOCKET and WATCHDOG_USEC in the daemon's
 * environment. The daemon runs unwrapped even under RU_DAEMON_WRAPPER: this test measures
 * answer times and watchdog intervals, which a tool like valgrind would distort. */
static void daemon_start_env(struct ru_h_daemon *d, const char *config_text, const char *sock,
                             const char *notify_socket, const char *watchdog_usec)
{
    char ns[RU_H_PATH + 32], wd[64];
    snprintf(ns, sizeof(ns), "NOTIFY_SOCKET=%s", notify_socket);
    snprintf(wd, sizeof(wd), "WATCHDOG_USEC=%s", watchdog_usec);
    const char *const env[] = {ns, wd, NULL};
    char *wrapper = getenv("RU_DAEMON_WRAPPER") ? ru_xstrdup(getenv("RU_DAEMON_WRAPPER")) : NULL;
    unsetenv("RU_DAEMON_WRAPPER");
    ru_h_daemon_spawn_env(d, config_text, NULL, env);
    if (wrapper) {
        setenv("RU_DAEMON_WRAPPER", wrapper, 1);
        free(wrapper);
    }
    cr_assert_str_eq(d->sock, sock, "the config's status socket");
    pid_t pid = d->pid;
    CHECK(ru_h_daemon_wait_ready(d, START_MS),
          "rollupd (pid %d) did not answer on %s within %d ms (running: %d)", (int)pid, d->sock,
          START_MS, (int)ru_h_daemon_running(d));
}

/* ------------------------------------------------------------------ HTTP */

static int free_tcp_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "bind: %s", strerror(errno));
    socklen_t len = sizeof(sa);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* Sends a raw request to 127.0.0.1:port and reads the answer until EOF (5 s deadline).
 * NULL when the connection fails. */
static char *http_raw(int port, const char *request)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return NULL;
    }
    return ru_h_fd_exchange(fd, request, 5000);
}

/* The body of an HTTP answer (pointer into it), or NULL. */
static const char *http_body(const char *answer)
{
    const char *p = strstr(answer, "\r\n\r\n");
    return p ? p + 4 : NULL;
}

/* ------------------------------------------------------------------ Prometheus text */

static bool name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static bool name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

/* True when line is `name{labels} value` or `name value` (text format 0.0.4, no
 * timestamp). */
static bool sample_line_ok(const char *line)
{
    const char *p = line;
    if (!name_start(*p))
        return false;
    while (name_char(*p))
        p++;
    if (*p == '{') {
        p++;
        while (*p != '}') {
            if (!name_start(*p) || *p == ':')
                return false;
            while (name_char(*p) && *p != ':')
                p++;
            if (*p++ != '=' || *p++ != '"')
                return false;
            while (*p && *p != '"') {
                if (*p == '\\') {
                    if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
                        return false;
                    p++;
                }
                p++;
            }
            if (*p++ != '"')
                return false;
            if (*p == ',')
                p++;
            else if (*p != '}')
                return false;
        }
        p++;
    }
    if (*p++ != ' ')
        return false;
    if (strcmp(p, "+Inf") == 0 || strcmp(p, "-Inf") == 0 || strcmp(p, "NaN") == 0)
        return true;
    if (*p == '\0')
        return false;
    char *end;
    strtod(p, &end);
    return *end == '\0';
}

/* Checks every sample line of a metrics text; returns the number of samples. */
static int check_metrics_text(const struct ru_h_daemon *d, const char *text)
{
    char *copy = ru_xstrdup(text);
    int samples = 0;
    char *save = NULL;
    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (l[0] == '#') {
            CHECK(strncmp(l, "# HELP ", 7) == 0 || strncmp(l, "# TYPE ", 7) == 0,
                  "metrics comment line is neither HELP nor TYPE: '%s'", l);
            continue;
        }
        CHECK(sample_line_ok(l), "metrics sample line does not parse: '%s'", l);
        samples++;
    }
    free(copy);
    return samples;
}

/* ================================================================== tests */

/* svc_init, then rollupd on svc_cfg with flush.interval_ms = 60000 (it flushes only when
 * asked) and log.level = log_level (NULL: the harness' debug), answering healthy; returns
 * the config it runs. */
static struct ru_h_cfg svc_up(struct svc *s, const char *log_level)
{
    svc_init(s);
    struct ru_h_cfg k = svc_cfg(s);
    k.flush_interval_ms = 60000;
    k.log_level = log_level;
    svc_start(s, &k);
    wait_healthy(&s->d);
    return k;
}

/* SIGUSR1 flushes at once, long before the 60 s interval. */
Test(service, sigusr1_flushes_now, .timeout = 120)
{
    struct svc s;
    svc_up(&s, NULL);

    long long valid = ru_h_loadgen("-s %s -n 1000 --seed 11 --quiet", s.stream);
    CHECK(valid > 900, "loadgen wrote only %lld valid events", valid);
    wait_status_int(&s.d, "events_consumed", valid, STATE_MS);
    CHECK(status_int(&s.d, "flushes") == 0, "a flush happened before SIGUSR1");
    PGconn *c = ru_h_pg_connect(s.ci);
    CHECK(hourly_sum(c) == 0, "rows before SIGUSR1: sum %lld", hourly_sum(c));

    int64_t t0 = ru_mono_ms();
    ru_h_daemon_kill(&s.d, SIGUSR1);
    wait_status_int(&s.d, "flushes", 1, 10000);
    wait_hourly_sum(&s.d, c, valid, 5000);
    int64_t took = ru_mono_ms() - t0;
    CHECK(took < 10000, "SIGUSR1 flush took %lld ms", (long long)took);
    CHECK(status_int(&s.d, "events_flushed") == valid, "events_flushed %lld != %lld",
          status_int(&s.d, "events_flushed"), valid);
    ru_h_wait_log(&s.d, "flush requested by SIGUSR1", 0, 1000);

    PQfinish(c);
    svc_stop(&s);
}

/* SIGHUP with a good file: level and interval change live, restart-only keys warned. */
Test(service, sighup_reload_good, .timeout = 120)
{
    struct svc s;
    struct ru_h_cfg k = svc_up(&s, "info");
    CHECK(!ru_h_log_line(&s.d, 0, "<7>", NULL), "debug lines at log.level = info");

    char other[160];
    snprintf(other, sizeof(other), "%s:other", s.stream);
    struct ru_h_cfg k2 = k;
    k2.log_level = "debug";
    k2.flush_interval_ms = 200;
    k2.stream = other;
    char *text = ru_h_config(&k2);
    ru_h_daemon_rewrite_config(&s.d, text);
    free(text);

    size_t mark = ru_h_log_len(&s.d);
    ru_h_daemon_kill(&s.d, SIGHUP);
    ru_h_wait_log(&s.d, "configuration reloaded", mark, 5000);
    CHECK(ru_h_log_line(&s.d, mark, "<4>", "redis.stream"),
          "no warning line naming redis.stream after the reload");
    CHECK(ru_h_log_line(&s.d, mark, "<5>", "flush_interval_ms=200"),
          "the reload line does not show flush_interval_ms=200");
    /* the restart-only key keeps its running value */
    json_t *st = ru_h_status(s.d.sock);
    CHECK(st != NULL, "no status after the reload");
    const char *cur = json_string_value(json_object_get(st, "stream"));
    CHECK(cur && strcmp(cur, s.stream) == 0, "stream after reload: %s (want %s)",
          cur ? cur : "(none)", s.stream);
    json_decref(st);

    /* new interval: events are flushed without SIGUSR1, well before the old 60 s */
    long long valid = ru_h_loadgen("-s %s -n 500 --seed 12 --quiet", s.stream);
    PGconn *c = ru_h_pg_connect(s.ci);
    wait_hourly_sum(&s.d, c, valid, 10000);
    CHECK(!ru_h_log_line(&s.d, 0, "<6>info msg=\"flush requested by SIGUSR1\"", NULL),
          "a SIGUSR1 flush was logged");
    /* new level: debug lines appear after the reload */
    ru_h_wait_log(&s.d, "<7>debug ", mark, 5000);
    PQfinish(c);
    svc_stop(&s);
}

/* SIGHUP with a syntax error: rejected with file:line, the old configuration keeps running. */
Test(service, sighup_reload_bad, .timeout = 120)
{
    struct svc s;
    struct ru_h_cfg k = svc_up(&s, "info");

    struct ru_h_cfg k2 = k;
    k2.log_level = "debug";
    char *good = ru_h_config(&k2);
    int bad_line = count_char(good, '\n') + 1;
    struct ru_buf bad = RU_BUF_INIT;
    ru_buf_printf(&bad, "%sbroken = ;\n", good);
    free(good);
    ru_h_daemon_rewrite_config(&s.d, bad.p);
    ru_buf_free(&bad);

    size_t mark = ru_h_log_len(&s.d);
    ru_h_daemon_kill(&s.d, SIGHUP);
    ru_h_wait_log(&s.d, "reload rejected", mark, 5000);
    char where[RU_H_PATH + 32];
    snprintf(where, sizeof(where), "%s:%d", s.d.conf, bad_line);
    CHECK(ru_h_log_line(&s.d, mark, "<4>", "reload rejected"),
          "'reload rejected' is not a warning line");
    CHECK(ru_h_log_line(&s.d, mark, "<4>", where), "the rejection does not name %s", where);
    CHECK(!ru_h_log_line(&s.d, mark, "<5>", "configuration reloaded"),
          "a rejected file was reported as reloaded");

    /* still running, old settings (info level, 60 s interval), still flushing on demand */
    CHECK(ru_h_daemon_running(&s.d), "rollupd exited after a bad reload");
    wait_healthy(&s.d);
    long long valid = ru_h_loadgen("-s %s -n 500 --seed 13 --quiet", s.stream);
    wait_status_int(&s.d, "events_consumed", valid, STATE_MS);
    CHECK(status_int(&s.d, "flushes") == 0, "flushed before asked: interval changed?");
    char *ans = ru_h_sock_cmd(s.d.sock, "flush");
    CHECK(ans && strstr(ans, "\"flushed\":true"), "flush answered: %s", ans ? ans : "(nothing)");
    free(ans);
    PGconn *c = ru_h_pg_connect(s.ci);
    CHECK(hourly_sum(c) == valid, "after flush: sum %lld, want %lld", hourly_sum(c), valid);
    CHECK(!ru_h_log_line(&s.d, 0, "<7>", NULL), "debug lines: the bad file's level applied");
    PQfinish(c);
    svc_stop(&s);
}

/* SIGTERM: final flush of what was read, then exit 0; nothing pending in the group. */
Test(service, sigterm_final_flush, .timeout = 120)
{
    struct svc s;
    svc_up(&s, NULL);

    long long valid = ru_h_loadgen("-s %s -n 1000 --seed 14 --quiet", s.stream);
    wait_status_int(&s.d, "events_consumed", valid, STATE_MS);
    CHECK(status_int(&s.d, "flushes") == 0, "a flush happened before SIGTERM");

    ru_h_daemon_kill(&s.d, SIGTERM);
    int st = ru_h_daemon_wait_exit(&s.d, 20000);
    CHECK(st == 0, "exit status after SIGTERM: %d (-1 = still running after 20 s)", st);
    CHECK(ru_h_log_line(&s.d, 0, "<5>", "stopping: final flush"), "no stopping line");
    CHECK(ru_h_log_line(&s.d, 0, "<6>info msg=flush ", NULL), "no flush line");

    PGconn *c = ru_h_pg_connect(s.ci);
    long long sum = hourly_sum(c);
    CHECK(sum == valid, "after the final flush: sum %lld, want %lld", sum, valid);
    PQfinish(c);
    redisContext *r = ru_h_redis();
    long long pend = ru_h_xpending(r, s.stream, s.group);
    CHECK(pend == 0, "%lld entries still pending in the group after the final flush", pend);
    redisFree(r);
}

/* A second SIGTERM while the final flush hangs exits at once; nothing is lost. */
Test(service, second_sigterm_exits_at_once, .timeout = 120)
{
    struct svc s;
    svc_up(&s, NULL); /* the schema exists once PostgreSQL is ready */

    PGconn *lock = lock_hourly(s.ci);
    long long valid = ru_h_loadgen("-s %s -n 1000 --seed 15 --quiet", s.stream);
    wait_status_int(&s.d, "events_consumed", valid, STATE_MS);

    ru_h_daemon_kill(&s.d, SIGTERM);
    CHECK(ru_h_wait(someone_waits, lock, 10000), "the final flush never waited for the table lock");
    CHECK(ru_h_status_bool(s.d.sock, "flush_in_progress") == 1,
          "status does not show flush_in_progress while the final flush hangs");
    CHECK(ru_h_daemon_running(&s.d), "rollupd exited although its final flush hangs");

    int64_t t0 = ru_mono_ms();
    ru_h_daemon_kill(&s.d, SIGTERM);
    int st = ru_h_daemon_wait_exit(&s.d, 5000);
    int64_t took = ru_mono_ms() - t0;
    if (st == -1) {
        ru_h_daemon_kill(&s.d, SIGKILL);
        ru_h_daemon_wait_exit(&s.d, 5000);
    }
    CHECK(st != -1, "rollupd still ran 5 s after the second SIGTERM");
    CHECK(st == 0, "exit status after the second SIGTERM: %d", st);
    CHECK(took < 5000, "exit took %lld ms", (long long)took);
    CHECK(ru_h_log_line(&s.d, 0, "<5>", "second stop signal"), "no 'second stop signal' line");

    /* nothing was committed; the entries stay pending in Redis */
    long long sum = ru_h_pg_int(lock, "SELECT coalesce(sum(total_requests), 0)"
                                      " FROM route_analytics_hourly");
    CHECK(sum == 0, "rows committed although the flush hung: sum %lld", sum);
    redisContext *r = ru_h_redis();
    long long pend = ru_h_xpending(r, s.stream, s.group);
    CHECK(pend == ru_h_xlen(r, s.stream), "pending after the hard exit: %lld of %lld", pend,
          ru_h_xlen(r, s.stream));
    redisFree(r);
    lock_release(lock);

    /* a restart applies them exactly once */
    ru_h_daemon_restart(&s.d);
    wait_healthy(&s.d);
    wait_status_int(&s.d, "events_consumed", valid, STATE_MS);
    char *ans = ru_h_sock_cmd(s.d.sock, "flush");
    CHECK(ans && strstr(ans, "\"flushed\":true"), "flush answered: %s", ans ? ans : "(nothing)");
    free(ans);
    PGconn *c = ru_h_pg_connect(s.ci);
    wait_hourly_sum(&s.d, c, valid, 5000);
    PQfinish(c);
    svc_stop(&s);
    r = ru_h_redis();
    pend = ru_h_xpending(r, s.stream, s.group);
    CHECK(pend == 0, "%lld entries still pending after the restart", pend);
    redisFree(r);
}

/* ---- socket_commands, one step a command */

/* The socket is a socket, mode 0660. */
static void check_socket_mode(const struct svc *s)
{
    struct stat sb;
    CHECK(stat(s->d.sock, &sb) == 0, "stat %s: %s", s->d.sock, strerror(errno));
    CHECK(S_ISSOCK(sb.st_mode), "%s is not a socket", s->d.sock);
    CHECK((sb.st_mode & 07777) == 0660, "socket mode %04o, want 0660",
          (unsigned)(sb.st_mode & 07777));
}

/* status: every key, connected, this config file, healthy, valid events pending. */
static void check_status_keys(const struct svc *s, long long valid)
{
    json_t *st = ru_h_status(s->d.sock);
    CHECK(json_is_object(st), "status is not a JSON object");
    static const char *const keys[] = {"events_consumed",
                                       "events_flushed",
                                       "events_invalid",
                                       "events_trimmed",
                                       "rows_written",
                                       "flushes",
                                       "last_flush_unix",
                                       "pending_events",
                                       "pending_keys",
                                       "memory_bytes",
                                       "group_lag",
                                       "redis_connected",
                                       "postgres_connected",
                                       "redis_last_error",
                                       "postgres_last_error",
                                       "uptime_s",
                                       "version",
                                       "config_file",
                                       "health"};
    for (size_t i = 0; i < RU_ARRAY_LEN(keys); i++)
        CHECK(json_object_get(st, keys[i]) != NULL, "status lacks \"%s\"", keys[i]);
    CHECK(json_is_true(json_object_get(st, "redis_connected")), "redis_connected");
    CHECK(json_is_true(json_object_get(st, "postgres_connected")), "postgres_connected");
    CHECK(json_is_string(json_object_get(st, "version")), "version is not a string");
    const char *cf = json_string_value(json_object_get(st, "config_file"));
    CHECK(cf && strcmp(cf, s->d.conf) == 0, "config_file %s", cf ? cf : "(null)");
    const char *h = json_string_value(json_object_get(st, "health"));
    CHECK(h && strcmp(h, "ok") == 0, "status health %s", h ? h : "(null)");
    long long pending = 0;
    CHECK(ru_h_json_int(st, "pending_events", &pending) && pending == valid,
          "pending_events %lld, want %lld", pending, valid);
    json_decref(st);
}

/* health: "ok". */
static void check_health_answer(const struct svc *s)
{
    char *ans = ru_h_sock_cmd(s->d.sock, "health");
    CHECK(ans && strcmp(ans, "ok\n") == 0, "health: '%s'", ans ? ans : "(nothing)");
    free(ans);
}

/* flush: a JSON answer with the events flushed, sent after the COMMIT. */
static void check_flush_answer(const struct svc *s, long long valid)
{
    char *ans = ru_h_sock_cmd(s->d.sock, "flush");
    json_error_t jerr;
    json_t *fj = ans ? json_loads(ans, 0, &jerr) : NULL;
    CHECK(fj != NULL, "flush answer is not JSON: '%s'", ans ? ans : "(nothing)");
    CHECK(json_is_true(json_object_get(fj, "flushed")), "flush: '%s'", ans);
    long long ev = -1;
    CHECK(ru_h_json_int(fj, "events", &ev) && ev == valid, "flush events %lld, want %lld", ev,
          valid);
    json_decref(fj);
    free(ans);
    /* the answer comes after the COMMIT */
    PGconn *c = ru_h_pg_connect(s->ci);
    CHECK(hourly_sum(c) == valid, "after the flush answer: sum %lld", hourly_sum(c));
    PQfinish(c);
}

/* metrics: the Prometheus text with one flush and the events consumed. */
static void check_metrics_answer(const struct svc *s, long long valid)
{
    char *ans = ru_h_sock_cmd(s->d.sock, "metrics");
    CHECK(ans && *ans, "no metrics answer");
    CHECK(strstr(ans, "# TYPE rollupd_events_consumed_total counter\n") != NULL,
          "metrics lack the counter TYPE line:\n%.2000s", ans);
    CHECK(strstr(ans, "# TYPE rollupd_flush_duration_seconds histogram\n") != NULL,
          "metrics lack the histogram TYPE line");
    CHECK(strstr(ans, "rollupd_flush_duration_seconds_bucket{le=\"+Inf\"} 1\n") != NULL,
          "metrics lack the +Inf bucket with 1 flush:\n%.3000s", ans);
    CHECK(strstr(ans, "rollupd_flush_duration_seconds_count 1\n") != NULL, "metrics lack _count 1");
    char want[128];
    snprintf(want, sizeof(want), "\nrollupd_events_consumed_total %lld\n", valid);
    CHECK(strstr(ans, want) != NULL, "metrics lack '%s'", want + 1);
    int samples = check_metrics_text(&s->d, ans);
    CHECK(samples >= 20, "only %d samples", samples);
    free(ans);
}

/* help: lists every command. */
static void check_help_answer(const struct svc *s)
{
    char *ans = ru_h_sock_cmd(s->d.sock, "help");
    CHECK(ans != NULL, "no help answer");
    static const char *const cmds[] = {"status", "health", "flush", "metrics", "config", "help"};
    for (size_t i = 0; i < RU_ARRAY_LEN(cmds); i++) {
        char line[32];
        snprintf(line, sizeof(line), "%s ", cmds[i]);
        CHECK(strstr(ans, line) != NULL, "help does not list '%s':\n%s", cmds[i], ans);
    }
    free(ans);
}

/* config: one line per key, the running value, the default, what a reload does. */
static void check_config_answer(const struct svc *s)
{
    char *ans = ru_h_sock_cmd(s->d.sock, "config");
    CHECK(ans != NULL, "no config answer");
    CHECK((size_t)count_char(ans, '\n') == ru_config_key_count(),
          "config: %d lines for %zu keys:\n%s", count_char(ans, '\n'), ru_config_key_count(), ans);
    static const char *const cfg_lines[] = {
        "\nflush.interval_ms = 60000;  # default 5000; a reload applies it\n",
        "\npostgres.connect_timeout_s = ",
        "; a reload applies it and reconnects to PostgreSQL\n",
        "\nstatus.socket = \"",
        "; a reload keeps the running value (restart to change)\n",
        "\nlog.level = \"",
    };
    for (size_t i = 0; i < RU_ARRAY_LEN(cfg_lines); i++)
        CHECK(strstr(ans, cfg_lines[i]) != NULL, "config lacks '%s':\n%s", cfg_lines[i], ans);
    CHECK(strncmp(ans, "redis.url = \"redis://", 21) == 0, "config starts: %.80s", ans);
    free(ans);
}

/* An unknown command: one error line. */
static void check_bogus_answer(const struct svc *s)
{
    char *ans = ru_h_sock_cmd(s->d.sock, "bogus");
    CHECK(ans && strncmp(ans, "error:", 6) == 0, "bogus answered: '%s'", ans ? ans : "(nothing)");
    CHECK(count_char(ans, '\n') == 1, "bogus answer is not one line: '%s'", ans);
    free(ans);
}

/* The status socket's commands, the metrics text and the socket's mode. */
Test(service, socket_commands, .timeout = 120)
{
    struct svc s;
    svc_up(&s, NULL);
    check_socket_mode(&s);

    long long valid = ru_h_loadgen("-s %s -n 300 --seed 16 --quiet", s.stream);
    wait_status_int(&s.d, "events_consumed", valid, STATE_MS);
    check_status_keys(&s, valid);
    check_health_answer(&s);
    check_flush_answer(&s, valid);
    check_metrics_answer(&s, valid);
    check_help_answer(&s);
    check_config_answer(&s);
    check_bogus_answer(&s);
    svc_stop(&s);
}

/* While a flush hangs: the socket answers fast, WATCHDOG=1 keeps coming; READY, STATUS,
 * RELOADING, STOPPING are sent in order. */
Test(service, socket_answers_during_slow_flush_and_watchdog_beats, .timeout = 120)
{
    struct svc s;
    svc_init(&s);
    struct notes nt;
    notes_open(&nt);
    struct ru_h_cfg k = svc_cfg(&s);
    k.flush_interval_ms = 60000;
    char *text = ru_h_config(&k);
    daemon_start_env(&s.d, text, s.sock, nt.path, "2000000");
    free(text);

    size_t ready = notes_wait(&s.d, &nt, "READY=1", 0, START_MS);
    size_t status = notes_wait(&s.d, &nt, "STATUS=", ready + 1, 5000);
    CHECK(strstr(nt.v[status].text, "redis up") && strstr(nt.v[status].text, "postgres up"),
          "the STATUS= after READY=1 does not say both servers are up: %s", nt.v[status].text);
    CHECK(notes_find(&nt, "STOPPING=1", 0) < 0, "STOPPING=1 at start-up:\n%s", notes_dump(&nt));
    wait_healthy(&s.d);

    PGconn *lock = lock_hourly(s.ci);
    long long valid = ru_h_loadgen("-s %s -n 500 --seed 17 --quiet", s.stream);
    wait_status_int(&s.d, "events_consumed", valid, STATE_MS);
    ru_h_daemon_kill(&s.d, SIGUSR1);
    CHECK(ru_h_wait(someone_waits, lock, 10000), "the flush never waited for the lock");

    /* ~3 s of a hanging flush */
    int64_t start = ru_mono_ms();
    int64_t worst_us = 0;
    int asks = 0;
    while (ru_mono_ms() - start < 3000) {
        int64_t t0 = ru_mono_us();
        char *ans = ru_h_sock_cmd(s.d.sock, "status");
        int64_t dt = ru_mono_us() - t0;
        if (dt > worst_us)
            worst_us = dt;
        CHECK(ans && *ans, "no status answer during the hanging flush");
        CHECK(dt < 100000, "status took %.1f ms during the hanging flush", (double)dt / 1000.0);
        json_t *j = json_loads(ans, 0, NULL);
        CHECK(j != NULL, "status is not JSON: %s", ans);
        CHECK(json_is_true(json_object_get(j, "flush_in_progress")),
              "flush_in_progress is not true during the hanging flush: %s", ans);
        long long fl = -1;
        CHECK(ru_h_json_int(j, "flushes", &fl) && fl == 0, "flushes %lld while blocked", fl);
        json_decref(j);
        free(ans);
        asks++;
        notes_read(&nt, 100); /* paces the loop and collects datagrams */
    }
    int64_t end = ru_mono_ms();
    notes_read(&nt, 0);
    int beats = 0;
    int64_t prev = start, max_gap = 0;
    for (size_t i = 0; i < nt.n; i++) {
        if (strcmp(nt.v[i].text, "WATCHDOG=1") != 0 || nt.v[i].ms < start || nt.v[i].ms > end)
            continue;
        beats++;
        if (nt.v[i].ms - prev > max_gap)
            max_gap = nt.v[i].ms - prev;
        prev = nt.v[i].ms;
    }
    if (end - prev > max_gap)
        max_gap = end - prev;
    cr_log_info("hanging flush: %d status answers, slowest %.1f ms; %d WATCHDOG=1, max gap %lld "
                "ms",
                asks, (double)worst_us / 1000.0, beats, (long long)max_gap);
    CHECK(beats >= 2, "only %d WATCHDOG=1 during %lld ms of a hanging flush:\n%s", beats,
          (long long)(end - start), notes_dump(&nt));
    CHECK(max_gap < 2000, "WATCHDOG=1 gap of %lld ms (WATCHDOG_USEC = 2 s)", (long long)max_gap);

    lock_release(lock);
    wait_status_int(&s.d, "flushes", 1, 10000);
    PGconn *c = ru_h_pg_connect(s.ci);
    wait_hourly_sum(&s.d, c, valid, 5000);
    PQfinish(c);

    notes_read(&nt, 0);
    size_t before = nt.n;
    ru_h_daemon_kill(&s.d, SIGHUP);
    size_t reloading = notes_wait(&s.d, &nt, "RELOADING=1", before, 5000);
    notes_wait(&s.d, &nt, "READY=1", reloading + 1, 5000);

    notes_read(&nt, 0);
    before = nt.n;
    ru_h_daemon_kill(&s.d, SIGTERM);
    notes_wait(&s.d, &nt, "STOPPING=1", before, 5000);
    int st = ru_h_daemon_wait_exit(&s.d, 20000);
    CHECK(st == 0, "exit status after SIGTERM: %d", st);
    notes_close(&nt);
}

/* rollupctl: output and exit codes for ok, an error answer, unreachable, degraded and down
 * (and GET /health: 200 while degraded, 503 while down). */
Test(service, rollupctl_exit_codes, .timeout = 120)
{
    struct svc s;
    svc_init(&s);
    struct ru_h_cfg k = svc_cfg(&s);
    k.flush_interval_ms = 60000;
    k.postgres_extra = "statement_timeout_ms = 300;";
    int port1 = free_tcp_port();
    char listen1[64];
    snprintf(listen1, sizeof(listen1), "127.0.0.1:%d", port1);
    k.metrics_listen = listen1;
    svc_start(&s, &k);
    wait_healthy(&s.d);

    struct run r;
    rollupctl(&r, s.d.sock, "health", NULL);
    CHECK(r.status == 0 && strcmp(r.out, "ok\n") == 0,
          "rollupctl health: exit %d, stdout '%s', stderr '%s'", r.status, r.out, r.err);
    run_free(&r);

    rollupctl(&r, s.d.sock, "status", NULL);
    CHECK(r.status == 0, "rollupctl status: exit %d, stderr '%s'", r.status, r.err);
    CHECK(strstr(r.out, "health") && strstr(r.out, "events") && r.out[0] != '{',
          "rollupctl status is not a readable summary:\n%s", r.out);
    run_free(&r);

    rollupctl(&r, s.d.sock, "status", "--json");
    CHECK(r.status == 0, "rollupctl status --json: exit %d, stderr '%s'", r.status, r.err);
    json_t *j = json_loads(r.out, 0, NULL);
    CHECK(json_is_object(j) && json_object_get(j, "events_consumed"),
          "rollupctl status --json is not the status object:\n%s", r.out);
    json_decref(j);
    run_free(&r);

    /* the daemon answers with an error */
    rollupctl(&r, s.d.sock, "bogus", NULL);
    CHECK(r.status == 1 && strstr(r.err, "error:") && count_char(r.err, '\n') == 1,
          "rollupctl bogus: exit %d, stderr '%s'", r.status, r.err);
    run_free(&r);

    /* unreachable */
    char nosock[RU_H_PATH];
    ru_h_sock_path(nosock, sizeof(nosock));
    rollupctl(&r, nosock, "status", NULL);
    CHECK(r.status == 2, "rollupctl on a missing socket: exit %d", r.status);
    CHECK(count_char(r.err, '\n') == 1 && r.err[strlen(r.err) - 1] == '\n',
          "stderr is not one line: '%s'", r.err);
    CHECK(r.out[0] == '\0', "stdout not empty: '%s'", r.out);
    run_free(&r);
    rollupctl(&r, nosock, "health", NULL);
    CHECK(r.status == 2 && strncmp(r.out, "down:", 5) == 0,
          "rollupctl health on a missing socket: exit %d, stdout '%s'", r.status, r.out);
    CHECK(count_char(r.err, '\n') == 1, "stderr is not one line: '%s'", r.err);
    run_free(&r);

    /* degraded: flushes fail on the lock (lock_timeout = statement_timeout = 300 ms) */
    PGconn *lock = lock_hourly(s.ci);
    long long valid = ru_h_loadgen("-s %s -n 300 --seed 18 --quiet", s.stream);
    wait_status_int(&s.d, "events_consumed", valid, STATE_MS);
    ru_h_daemon_kill(&s.d, SIGUSR1);
    wait_answer(&s.d, "health", "degraded: postgres failing", 10000);
    rollupctl(&r, s.d.sock, "health", NULL);
    CHECK(r.status == 1 && strncmp(r.out, "degraded: postgres failing", 26) == 0,
          "rollupctl health while flushes fail: exit %d, stdout '%s'", r.status, r.out);
    run_free(&r);
    char *a = http_raw(port1, "GET /health HTTP/1.0\r\n\r\n");
    CHECK(a && strncmp(a, "HTTP/1.0 200", 12) == 0 && http_body(a) &&
              strncmp(http_body(a), "degraded:", 9) == 0,
          "GET /health while degraded: %.300s", a ? a : "(nothing)");
    free(a);
    CHECK(status_int(&s.d, "flush_failures") >= 1, "no flush_failures counted");
    CHECK(ru_h_log_line(&s.d, 0, "<3>", "flush failed, batch kept for retry"),
          "no 'flush failed' error line");
    lock_release(lock);
    wait_answer(&s.d, "health", "ok\n", 30000);
    rollupctl(&r, s.d.sock, "health", NULL);
    CHECK(r.status == 0 && strcmp(r.out, "ok\n") == 0,
          "rollupctl health after recovery: exit %d, stdout '%s'", r.status, r.out);
    run_free(&r);
    PGconn *c = ru_h_pg_connect(s.ci);
    wait_hourly_sum(&s.d, c, valid, 5000);
    CHECK(status_int(&s.d, "flushes") == 1, "flushes %lld after the retry",
          status_int(&s.d, "flushes"));
    PQfinish(c);
    svc_stop(&s);

    /* down: PostgreSQL unreachable from the start; the socket answers all the same */
    struct svc s2;
    svc_init(&s2);
    char badci[128];
    snprintf(badci, sizeof(badci), "host=127.0.0.1 port=1 dbname=x user=postgres");
    int port = free_tcp_port();
    char listen_addr[64];
    snprintf(listen_addr, sizeof(listen_addr), "127.0.0.1:%d", port);
    struct ru_h_cfg k2 = svc_cfg(&s2);
    k2.conninfo = badci;
    k2.metrics_listen = listen_addr;
    svc_start(&s2, &k2); /* waits until the socket answers "status" */
    CHECK(ru_h_status_bool(s2.d.sock, "postgres_connected") == 0,
          "postgres_connected is not false");
    rollupctl(&r, s2.d.sock, "health", NULL);
    CHECK(r.status == 2 && strncmp(r.out, "down:", 5) == 0,
          "rollupctl health with PostgreSQL unreachable: exit %d, stdout '%s', stderr '%s'",
          r.status, r.out, r.err);
    CHECK(strstr(r.out, "postgres") != NULL, "the reason does not name postgres: '%s'", r.out);
    run_free(&r);
    a = http_raw(port, "GET /health HTTP/1.0\r\n\r\n");
    CHECK(a && strncmp(a, "HTTP/1.0 503", 12) == 0 && http_body(a) &&
              strncmp(http_body(a), "down:", 5) == 0,
          "GET /health while down: %.300s", a ? a : "(nothing)");
    free(a);
    ru_h_daemon_kill(&s2.d, SIGTERM);
    int st = ru_h_daemon_wait_exit(&s2.d, 10000);
    CHECK(st == 0, "exit status after SIGTERM with PostgreSQL down: %d", st);
}

/* metrics.listen: GET /metrics, GET /health, 404, 405. */
Test(service, http_metrics_endpoint, .timeout = 120)
{
    struct svc s;
    svc_init(&s);
    int port = free_tcp_port();
    char listen_addr[64];
    snprintf(listen_addr, sizeof(listen_addr), "127.0.0.1:%d", port);
    struct ru_h_cfg k = svc_cfg(&s);
    k.metrics_listen = listen_addr;
    svc_start(&s, &k);
    wait_healthy(&s.d);

    long long valid = ru_h_loadgen("-s %s -n 200 --seed 19 --quiet", s.stream);
    wait_status_int(&s.d, "events_consumed", valid, STATE_MS);

    char *a = http_raw(port, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    CHECK(a != NULL, "cannot connect to %s", listen_addr);
    CHECK(strncmp(a, "HTTP/1.0 200", 12) == 0, "GET /metrics: %.300s", a);
    const char *body = http_body(a);
    CHECK(body != NULL, "GET /metrics: no header end: %.300s", a);
    char *ct = strcasestr(a, "\r\nContent-Type:");
    CHECK(ct && ct < body, "GET /metrics: no Content-Type: %.300s", a);
    char *eol = strstr(ct + 2, "\r\n");
    CHECK(eol && memmem(ct, (size_t)(eol - ct), "version=0.0.4", 13) != NULL,
          "Content-Type lacks version=0.0.4: %.300s", a);
    CHECK(strstr(body, "rollupd_events_consumed_total") != NULL,
          "body lacks rollupd_events_consumed_total");
    check_metrics_text(&s.d, body);
    free(a);

    a = http_raw(port, "GET /health HTTP/1.0\r\n\r\n");
    CHECK(a && strncmp(a, "HTTP/1.0 200", 12) == 0, "GET /health: %.300s", a ? a : "(nothing)");
    body = http_body(a);
    CHECK(body && strncmp(body, "ok", 2) == 0, "GET /health body: %.300s", a);
    free(a);

    a = http_raw(port, "GET /nope HTTP/1.0\r\n\r\n");
    CHECK(a && strncmp(a, "HTTP/1.0 404", 12) == 0, "GET /nope: %.300s", a ? a : "(nothing)");
    free(a);

    a = http_raw(port, "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
    CHECK(a && strncmp(a, "HTTP/1.0 405", 12) == 0, "POST /metrics: %.300s", a ? a : "(nothing)");
    free(a);

    svc_stop(&s);
    a = http_raw(port, "GET /health HTTP/1.0\r\n\r\n");
    CHECK(a == NULL, "the listener still answers after exit");
}

/* tests/integ/test_units.sh BUILD_DIR (the systemd unit and manual page checks), when it
 * exists; its exit status 77 means skipped. */
Test(service, units_verify, .timeout = 200)
{
    ru_h_env_load();
    if (ru_h_env.source_dir[0] == '\0')
        cr_skip_test("RU_SOURCE_DIR is not set: cannot find tests/integ/test_units.sh");
    char script[RU_H_PATH];
    snprintf(script, sizeof(script), "%s/tests/integ/test_units.sh", ru_h_env.source_dir);
    if (access(script, F_OK) != 0)
        cr_skip_test("%s does not exist yet", script);
    if (access(script, X_OK) != 0)
        cr_skip_test("%s is not executable", script);
    struct run r;
    const char *argv[] = {script, ru_h_env.build_dir, NULL};
    run_prog(&r, 180000, argv);
    if (r.status == 77) /* the script's own "skipped" (systemd-analyze missing) */
        cr_skip_test("%s skipped itself: %s", script, r.err);
    cr_assert_eq(r.status, 0,
                 "%s %s: exit %d (-1 = killed after 180 s)\n---- stdout ----\n%s\n"
                 "---- stderr ----\n%s",
                 script, ru_h_env.build_dir, r.status, r.out, r.err);
    run_free(&r);
}

/* ------------------------------------------------------------------ environment only */

/* As a container runs it: no -c, no file, every setting from ROLLUPD_* variables (JSON
 * logs). Events are flushed; -t with the same environment names each value's origin and
 * no password; SIGHUP keeps the environment's values; SIGTERM gives the final flush. */
Test(service, environment_only, .timeout = 120)
{
    if (access("/etc/rollupd/rollupd.conf", F_OK) == 0)
        cr_skip_test("/etc/rollupd/rollupd.conf exists on this machine: rollupd without -c "
                     "would read it, and this test is about running without a file");
    struct svc s;
    svc_init(&s);
    char url[128], ci[320], stream[160], group[160], sock[RU_H_PATH + 32];
    ru_h_env_load();
    snprintf(url, sizeof(url), "ROLLUPD_REDIS_URL=redis://:envsecret@127.0.0.1:%d/0",
             ru_h_env.redis_port);
    snprintf(ci, sizeof(ci), "ROLLUPD_PG_CONNINFO=%s password=pgsecret", s.ci);
    snprintf(stream, sizeof(stream), "ROLLUPD_STREAM=%s", s.stream);
    snprintf(group, sizeof(group), "ROLLUPD_GROUP=%s", s.group);
    snprintf(sock, sizeof(sock), "ROLLUPD_STATUS_SOCKET=%s", s.sock);
    const char *env[] = {url,
                         ci,
                         stream,
                         group,
                         sock,
                         "ROLLUPD_CONSUMER=env-1",
                         "ROLLUPD_FLUSH_INTERVAL_MS=60000",
                         "ROLLUPD_REDIS_BLOCK_MS=100",
                         "ROLLUPD_LOG_FORMAT=json",
                         "ROLLUPD_LOG_LEVEL=info",
                         NULL};
    /* redis-server in the test kit has no password: "envsecret" is sent with AUTH, which
     * a server without requirepass refuses; so the daemon gets the URL without it and
     * only -t sees the password */
    char url_nopw[128];
    snprintf(url_nopw, sizeof(url_nopw), "ROLLUPD_REDIS_URL=redis://127.0.0.1:%d/0",
             ru_h_env.redis_port);

    /* -t with the same environment: origins, no secret */
    for (int i = 0; env[i] != NULL; i++)
        putenv((char *)env[i]);
    putenv("PGPASSWORD=pgenvsecret");
    char exe[RU_H_PATH];
    snprintf(exe, sizeof(exe), "%s/rollupd", ru_h_env.build_dir);
    struct run r;
    run_prog(&r, 10000, (const char *const[]){exe, "-t", NULL});
    for (int i = 0; env[i] != NULL; i++) {
        char *name = strndup(env[i], strcspn(env[i], "="));
        unsetenv(name);
        free(name);
    }
    unsetenv("PGPASSWORD");
    CHECK(r.status == 0, "rollupd -t: exit %d\n%s%s", r.status, r.out, r.err);
    CHECK(strstr(r.out, "redis.url = \"redis://:***@127.0.0.1:") != NULL &&
              strstr(r.out, "# environment ROLLUPD_REDIS_URL\n") != NULL &&
              strstr(r.out, "password=***") != NULL &&
              strstr(r.out, "\";  # environment ROLLUPD_PG_CONNINFO\n") != NULL &&
              strstr(r.out, "redis.count = 1000;  # default\n") != NULL &&
              strstr(r.out, "# libpq: PGPASSWORD=***\n") != NULL,
          "rollupd -t does not show the origins:\n%s", r.out);
    CHECK(strstr(r.out, "secret") == NULL && strstr(r.err, "secret") == NULL,
          "rollupd -t shows a secret:\n%s%s", r.out, r.err);
    run_free(&r);

    env[0] = url_nopw;
    ru_h_daemon_spawn_noconf(&s.d, s.sock, env);
    CHECK(ru_h_daemon_wait_ready(&s.d, START_MS), "rollupd from the environment did not start");
    wait_healthy(&s.d);
    long long valid = ru_h_loadgen("-s %s -n 500 --seed 21 --quiet", s.stream);
    wait_status_int(&s.d, "events_consumed", valid, STATE_MS);

    /* reload: the environment's values stay (the 60 s interval, not the 5 s default) */
    char *log_now = ru_h_daemon_log(&s.d);
    size_t mark = strlen(log_now);
    free(log_now);
    ru_h_daemon_kill(&s.d, SIGHUP);
    ru_h_wait_log(&s.d, "\"flush_interval_ms\":60000", mark, STATE_MS);
    CHECK(ru_h_daemon_running(&s.d), "rollupd exited on SIGHUP");

    ru_h_daemon_kill(&s.d, SIGTERM);
    int st = ru_h_daemon_wait_exit(&s.d, 20000);
    CHECK(st == 0, "exit status after SIGTERM: %d", st);
    PGconn *c = ru_h_pg_connect(s.ci);
    CHECK(hourly_sum(c) == valid, "after the final flush: sum %lld, want %lld", hourly_sum(c),
          valid);
    PQfinish(c);

    /* every line is one JSON object with level, time and msg */
    char *log = ru_h_daemon_log(&s.d);
    int lines = 0;
    for (char *save = NULL, *l = strtok_r(log, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        json_error_t je;
        json_t *o = json_loads(l, 0, &je);
        CHECK(o != NULL && json_is_string(json_object_get(o, "level")) &&
                  json_is_string(json_object_get(o, "time")) &&
                  json_is_string(json_object_get(o, "msg")),
              "not a JSON log line: %s", l);
        json_decref(o);
        lines++;
    }
    CHECK(lines >= 3, "only %d log lines", lines);
    free(log);
}
