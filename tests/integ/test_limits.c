/* What operators' set-ups do to rollupd (Criterion suite "limits"): a second instance
 * started with the same configuration as a running one.
 *
 * Every test has its own database, stream and socket, and waits on observable state
 * (status socket) with deadlines. */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <criterion/criterion.h>

#define TAIL 3000 /* bytes of a log quoted in a failure message */

static struct {
    char stream[128], group[128], ci[256];
    redisContext *r;
    PGconn *pg;
} T;

static void setup(void)
{
    memset(&T, 0, sizeof(T));
    ru_h_names(T.stream, T.group, NULL, sizeof(T.stream));
    ru_h_fresh_db(T.ci, sizeof(T.ci));
    T.r = ru_h_redis();
    T.pg = ru_h_pg_connect(T.ci);
}

static void teardown(void)
{
    if (T.r) {
        freeReplyObject(ru_h_redis_cmd(T.r, "DEL %s", T.stream));
        redisFree(T.r);
    }
    if (T.pg)
        PQfinish(T.pg);
}

/* The tail of d's log, for a failure message (static buffer). */
static const char *log_tail(const struct ru_h_daemon *d)
{
    static char buf[TAIL + 1];
    char *log = ru_h_daemon_log(d);
    size_t n = strlen(log);
    ru_strlcpy(buf, n > TAIL ? log + n - TAIL : log, sizeof(buf));
    free(log);
    return buf;
}

/* A second rollupd started with the configuration of a running one must leave the
 * running one's status socket alone and exit 1, saying why. */
Test(limits, second_instance_keeps_off_the_socket, .init = setup, .fini = teardown, .timeout = 120)
{
    struct ru_h_cfg k = {.stream = T.stream, .group = T.group, .conninfo = T.ci};
    char *text = ru_h_config(&k);
    struct ru_h_daemon a, b;
    ru_h_daemon_start(&a, text);
    char last[512];
    cr_assert(ru_h_wait_answer(a.sock, "health", "ok\n", 20000, last, sizeof(last)),
              "the first rollupd's health: %s", last);

    ru_h_daemon_spawn(&b, text, NULL);
    free(text);
    int rc = ru_h_daemon_wait_exit(&b, 20000);
    char *blog = ru_h_daemon_log(&b);
    bool said = strstr(blog, "is in use by a running rollupd") != NULL;
    char btail[TAIL + 1];
    ru_strlcpy(btail, log_tail(&b), sizeof(btail));
    free(blog);
    if (rc == -1)
        ru_h_daemon_kill(&b, SIGKILL);
    cr_assert_eq(rc, 1,
                 "the second rollupd: exit status %d (-1: still running), want 1\n---- "
                 "its log tail ----\n%s",
                 rc, btail);
    cr_assert(said, "the second rollupd did not name the socket in use\n---- its log ----\n%s",
              btail);

    struct stat st;
    cr_assert(lstat(a.sock, &st) == 0 && S_ISSOCK(st.st_mode),
              "the first rollupd's socket %s is gone", a.sock);
    char *h = ru_h_sock_cmd(a.sock, "health");
    cr_assert(h && strcmp(h, "ok\n") == 0,
              "the first rollupd's health after the second "
              "started: %s",
              h ? h : "(unreachable)");
    free(h);
    cr_assert_eq(ru_h_daemon_stop(&a), 0);
}
