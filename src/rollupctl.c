/* rollupctl: command-line client of rollupd's status socket. */
#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "rollupd/util.h"

#define DEFAULT_SOCKET "/run/rollupd/rollupd.sock"
#define DEFAULT_DIR    "/run/rollupd" /* --all: every *.sock here (rollupd@.service) */

static void usage(FILE *out)
{
    fprintf(out, "usage: rollupctl [-s SOCKET] [-t TIMEOUT_MS] COMMAND [ARGS]\n"
                 "       rollupctl --all [-d DIR] [-t TIMEOUT_MS] COMMAND [ARGS]\n"
                 "\n"
                 "  status [--json]   a readable summary (or the raw JSON object)\n"
                 "  health            prints ok / degraded: ... / down: ...; exits 0, 1 or 2\n"
                 "  flush             flush now and wait for the COMMIT\n"
                 "  metrics           Prometheus text format\n"
                 "  config            each key's running value (secrets as ***), its default\n"
                 "                    and whether a reload applies it\n"
                 "  adopt CONSUMER    take over a dead consumer's pending entries\n"
                 "  help              the daemon's command list\n"
                 "\n"
                 "  -s SOCKET   status socket (default $ROLLUPD_SOCKET, $ROLLUPD_STATUS_SOCKET "
                 "or " DEFAULT_SOCKET ")\n"
                 "  -t MS       answer timeout (default 5000; flush and adopt: 600000)\n"
                 "  -a, --all   every instance of this host: each socket DIR/*.sock (one per\n"
                 "              shard, rollupd@.service); status prints one line each\n"
                 "  -d DIR      with --all: where the sockets are (default " DEFAULT_DIR ")\n"
                 "Exit status: 0 ok, 1 the daemon answered with an error (or degraded), 2 down,\n"
                 "unreachable or no answer (--all: the worst of the instances).\n");
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : "";
}

static long long jint(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (json_is_integer(v))
        return (long long)json_integer_value(v);
    if (json_is_real(v))
        return (long long)json_real_value(v);
    return -1;
}

static double jreal(json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

/* The readable form of "status". */
static int print_summary(const char *text)
{
    json_error_t e;
    json_t *o = json_loads(text, 0, &e);
    if (o == NULL) {
        fprintf(stderr, "rollupctl: status answer is not JSON: %s\n", e.text);
        return 1;
    }
    double last = jreal(o, "last_flush_unix");
    double ago = last > 0 ? ru_wall_s() - last : -1;
    printf("rollupd %s, up %lld s, config %s\n", jstr(o, "version"), jint(o, "uptime_s"),
           jstr(o, "config_file"));
    printf("health      %s%s%s\n", jstr(o, "health"), jstr(o, "health_reason")[0] ? ": " : "",
           jstr(o, "health_reason"));
    printf("stream      %s  group %s  consumer %s\n", jstr(o, "stream"), jstr(o, "group"),
           jstr(o, "consumer"));
    printf("redis       %s  %s  reconnects %lld%s%s\n",
           json_is_true(json_object_get(o, "redis_connected")) ? "connected" : "DISCONNECTED",
           jstr(o, "redis_url"), jint(o, "redis_reconnects"),
           jstr(o, "redis_last_error")[0] ? "  last error: " : "", jstr(o, "redis_last_error"));
    printf("postgres    %s  %s%s%s\n",
           json_is_true(json_object_get(o, "postgres_connected")) ? "connected" : "DISCONNECTED",
           jstr(o, "postgres_conninfo"), jstr(o, "postgres_last_error")[0] ? "  last error: " : "",
           jstr(o, "postgres_last_error"));
    printf("events      consumed %lld  flushed %lld  invalid %lld  trimmed %lld  %.0f/s\n",
           jint(o, "events_consumed"), jint(o, "events_flushed"), jint(o, "events_invalid"),
           jint(o, "events_trimmed"), jreal(o, "events_per_s"));
    printf("pending     %lld events, %lld keys, %.1f MiB of %.0f MiB%s\n",
           jint(o, "pending_events"), jint(o, "pending_keys"),
           (double)jint(o, "memory_bytes") / 1048576.0,
           (double)jint(o, "memory_limit_bytes") / 1048576.0,
           json_is_true(json_object_get(o, "reading_paused")) ? "  (reading paused)" : "");
    printf("group       lag %lld  pending %lld\n", jint(o, "group_lag"), jint(o, "group_pending"));
    if (ago >= 0)
        printf("flushes     %lld (%lld failed), %lld rows written, last %.1f s ago in %.1f ms\n",
               jint(o, "flushes"), jint(o, "flush_failures"), jint(o, "rows_written"), ago,
               jreal(o, "last_flush_ms"));
    else
        printf("flushes     none yet\n");
    json_decref(o);
    return 0;
}

/* --all status: one line per instance. */
static int print_line(const char *sock, const char *text)
{
    json_t *o = json_loads(text, 0, NULL);
    if (o == NULL) {
        printf("%-28s  (answer is not JSON)\n", sock);
        return 1;
    }
    const char *h = jstr(o, "health");
    printf("%-28s  %-40s  %-8s  %-21s  lag %-8lld  flushed %-10lld  %6.0f/s\n", sock,
           jstr(o, "shard")[0] ? jstr(o, "shard") : jstr(o, "stream"), h,
           jstr(o, "redis_node")[0] ? jstr(o, "redis_node") : "-", jint(o, "group_lag"),
           jint(o, "events_flushed"), jreal(o, "events_per_s"));
    int rc = strcmp(h, "ok") == 0 ? 0 : strcmp(h, "degraded") == 0 ? 1 : 2;
    json_decref(o); /* h dies with it */
    return rc;
}

/* Sends one line, reads the answer until the server closes. Returns 0 or -1. */
static int ask(const char *path, const char *line, int timeout_ms, struct ru_buf *out)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "rollupctl: %s: socket path too long\n", path);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        fprintf(stderr, "rollupctl: cannot connect to %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    size_t len = strlen(line);
    if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len) {
        fprintf(stderr, "rollupctl: %s: write failed: %s\n", path, strerror(errno));
        close(fd);
        return -1;
    }
    int64_t deadline = ru_mono_ms() + timeout_ms;
    char buf[4096];
    for (;;) {
        int left = (int)(deadline - ru_mono_ms());
        if (left <= 0) {
            fprintf(stderr, "rollupctl: %s: no answer within %d ms\n", path, timeout_ms);
            close(fd);
            return -1;
        }
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, left) <= 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "rollupctl: %s: read failed: %s\n", path, strerror(errno));
            close(fd);
            return -1;
        }
        if (n == 0)
            break;
        ru_buf_append(out, buf, (size_t)n);
    }
    close(fd);
    return 0;
}

/* One instance: the answer to line on path, shown as cmd wants. Returns the exit status. */
static int run_one(const char *path, const char *cmd, const char *line, bool json, bool all,
                   int timeout_ms)
{
    struct ru_buf out = RU_BUF_INIT;
    int rc = ask(path, line, timeout_ms, &out);
    const char *text = out.p ? out.p : "";
    if (rc < 0) {
        rc = 2;
        if (strcmp(cmd, "health") == 0)
            printf("down: rollupd unreachable at %s\n", path);
        else if (all && strcmp(cmd, "status") == 0 && !json)
            printf("%-28s  (unreachable)\n", path);
    } else if (strncmp(text, "error:", 6) == 0) {
        fprintf(stderr, "rollupctl: %s", text);
        rc = 1;
    } else if (strcmp(cmd, "health") == 0) {
        fputs(text, stdout);
        rc = strncmp(text, "ok", 2) == 0 ? 0 : strncmp(text, "degraded", 8) == 0 ? 1 : 2;
    } else if (strcmp(cmd, "status") == 0 && !json) {
        rc = all ? print_line(path, text) : print_summary(text);
    } else {
        fwrite(text, 1, out.len, stdout);
        if (all && json)
            putchar('\n');
    }
    ru_buf_free(&out);
    return rc;
}

int main(int argc, char **argv)
{
    /* ROLLUPD_STATUS_SOCKET is the daemon's own variable: a container's health check
     * then finds the socket the daemon was told to use */
    const char *path = getenv("ROLLUPD_SOCKET")          ? getenv("ROLLUPD_SOCKET")
                       : getenv("ROLLUPD_STATUS_SOCKET") ? getenv("ROLLUPD_STATUS_SOCKET")
                                                         : DEFAULT_SOCKET;
    const char *dir = DEFAULT_DIR;
    bool json = false, all = false;
    int timeout_ms = 0;
    int c;
    static const struct option lopts[] = {
        {"all", no_argument, NULL, 'a'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    while ((c = getopt_long(argc, argv, "+s:t:ad:h", lopts, NULL)) != -1) {
        switch (c) {
        case 'a':
            all = true;
            break;
        case 'd':
            dir = optarg;
            break;
        case 's':
            path = optarg;
            break;
        case 't':
            timeout_ms = atoi(optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[optind];
    struct ru_buf line = RU_BUF_INIT;
    ru_buf_puts(&line, cmd);
    for (int i = optind + 1; i < argc; i++) {
        if (strcmp(cmd, "status") == 0 && strcmp(argv[i], "--json") == 0) {
            json = true;
            continue;
        }
        ru_buf_putc(&line, ' ');
        ru_buf_puts(&line, argv[i]);
    }
    ru_buf_putc(&line, '\n');
    if (timeout_ms <= 0)
        timeout_ms = strcmp(cmd, "flush") == 0 || strcmp(cmd, "adopt") == 0 ? 600000 : 5000;
    int rc = 0;
    if (!all) {
        rc = run_one(path, cmd, line.p, json, false, timeout_ms);
    } else {
        char pattern[4096];
        snprintf(pattern, sizeof(pattern), "%s/*.sock", dir);
        glob_t g;
        memset(&g, 0, sizeof(g));
        if (glob(pattern, 0, NULL, &g) != 0 || g.gl_pathc == 0) {
            fprintf(stderr, "rollupctl: no status socket matches %s (is any rollupd running?)\n",
                    pattern);
            rc = 2;
        }
        for (size_t i = 0; i < g.gl_pathc; i++) {
            /* status: a line (or a JSON object) each, with its socket; others: a header */
            if (strcmp(cmd, "status") != 0)
                printf("%s== %s\n", i ? "\n" : "", g.gl_pathv[i]);
            int r = run_one(g.gl_pathv[i], cmd, line.p, json, true, timeout_ms);
            rc = r > rc ? r : rc;
        }
        globfree(&g);
    }
    ru_buf_free(&line);
    return rc;
}
