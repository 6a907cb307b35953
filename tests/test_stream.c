/* Unit tests for the stream's reply handling (suites rconn, stream, lone, adopt,
 * deadletter): the stream connects to a Unix socket this test listens on, the commands it
 * writes are read back through hiredis' redisReader, and canned RESP replies are written
 * to it, one step at a time; each test checks the commands sent and the state and
 * callbacks that follow. No server: what a real redis-server does is covered by
 * tests/integ. */
#include <criterion/criterion.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "rollupd/config.h"
#include "rollupd/rconn.h"
#include "rollupd/readsize.h"
#include "rollupd/redisurl.h"
#include "rollupd/stream.h"

struct fake {
    char dir[64], path[108];
    int lfd, fd;
    redisReader *rd;
    struct ru_config cfg;
    struct ru_stream *s;
    /* what the callbacks saw */
    int gates, ups, downs, refusals, entries, batches;
    char err[600];
    char entry_id[RU_SID_STRLEN], entry_f0[64];
    char seen[512]; /* "id n last-name=last-value " for each entry */
};

static void on_entry(void *ud, const struct ru_sid *id, const struct ru_field *f, size_t n,
                     enum ru_seen seen, enum ru_origin origin)
{
    struct fake *x = ud;
    (void)seen;
    (void)origin;
    x->entries++;
    ru_sid_format(id, x->entry_id);
    if (n > 0)
        snprintf(x->entry_f0, sizeof(x->entry_f0), "%.*s=%.*s", (int)f[0].name.len, f[0].name.p,
                 (int)f[0].value.len, f[0].value.p);
    size_t at = strlen(x->seen);
    if (n > 0)
        snprintf(x->seen + at, sizeof(x->seen) - at, "%s %zu %.*s=%.*s ", x->entry_id, n,
                 (int)f[n - 1].name.len, f[n - 1].name.p, (int)f[n - 1].value.len,
                 f[n - 1].value.p);
}

static void on_batch(void *ud, size_t n, bool full, bool replay)
{
    (void)n;
    (void)full;
    (void)replay;
    ((struct fake *)ud)->batches++;
}

static void on_state(void *ud, bool up, enum ru_stream_down down, const char *err)
{
    struct fake *x = ud;
    if (up) {
        x->ups++;
        return;
    }
    x->downs++;
    x->refusals += down == RU_DOWN_REFUSED;
    snprintf(x->err, sizeof(x->err), "%s", err);
}

static void on_gate(void *ud)
{
    ((struct fake *)ud)->gates++;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void set_str(char **field, const char *v)
{
    free(*field);
    *field = ru_xstrdup(v);
}

static void on_adopt_entry(void *ud, const struct ru_sid *id, const struct ru_field *f, size_t n);
static void on_adopt_done(void *ud, const char *err);

/* Listens, makes the stream (lone consumer or not, with a password or not, with the
 * adoption callbacks or not) and lets it connect: the next command it sends is the first
 * of its handshake. */
static void fake_start_with(struct fake *x, bool lone, const char *password, bool adopt)
{
    memset(x, 0, sizeof(*x));
    snprintf(x->dir, sizeof(x->dir), "/tmp/ru-test-stream-XXXXXX");
    cr_assert_not_null(mkdtemp(x->dir));
    snprintf(x->path, sizeof(x->path), "%s/redis.sock", x->dir);
    x->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", x->path);
    cr_assert_eq(bind(x->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0, "bind: %s", strerror(errno));
    cr_assert_eq(listen(x->lfd, 4), 0);

    ru_config_defaults(&x->cfg);
    ru_redisurl_addr_deinit(&x->cfg.redis.addr);
    memset(&x->cfg.redis.addr, 0, sizeof(x->cfg.redis.addr));
    x->cfg.redis.addr.path = ru_xstrdup(x->path);
    if (password)
        x->cfg.redis.addr.password = ru_xstrdup(password);
    set_str(&x->cfg.redis.stream, "s");
    set_str(&x->cfg.redis.group, "g");
    set_str(&x->cfg.redis.consumer, "c1");
    set_str(&x->cfg.redis.dead_letter_stream, "s:dead");
    x->cfg.redis.lone_consumer = lone;

    struct ru_stream_cb cb = {.ud = x,
                              .on_entry = on_entry,
                              .on_batch = on_batch,
                              .on_state = on_state,
                              .on_gate = on_gate};
    if (adopt) {
        cb.on_adopt_entry = on_adopt_entry;
        cb.on_adopt_done = on_adopt_done;
    }
    x->s = ru_stream_new(&x->cfg, &cb);
    struct ru_stream_start st = {0};
    ru_stream_start(x->s, &st);
    cr_assert_geq(ru_stream_fd(x->s), 0, "no socket: %s", ru_stream_last_error(x->s));
    x->fd = accept(x->lfd, NULL, NULL);
    cr_assert_geq(x->fd, 0);
    ru_stream_on_ready(x->s, POLLOUT); /* connected: the handshake is written */
    x->rd = redisReaderCreate();
}

static void fake_start(struct fake *x, bool lone, const char *password)
{
    fake_start_with(x, lone, password, false);
}

static void fake_stop(struct fake *x)
{
    ru_stream_free(x->s);
    ru_config_deinit(&x->cfg);
    redisReaderFree(x->rd);
    close(x->fd);
    close(x->lfd);
    unlink(x->path);
    rmdir(x->dir);
}

/* The next command the stream sent, as one string of its arguments joined by spaces
 * (waits up to 2 s for it to arrive). */
static void next_cmd(struct fake *x, char *out, size_t len)
{
    for (;;) {
        void *r = NULL;
        cr_assert_eq(redisReaderGetReply(x->rd, &r), REDIS_OK);
        if (r != NULL) {
            redisReply *c = r;
            cr_assert_eq(c->type, REDIS_REPLY_ARRAY);
            size_t o = 0;
            out[0] = '\0';
            for (size_t i = 0; i < c->elements && o < len; i++)
                o += (size_t)snprintf(out + o, len - o, "%s%s", i ? " " : "", c->element[i]->str);
            freeReplyObject(c);
            return;
        }
        struct pollfd p = {.fd = x->fd, .events = POLLIN};
        cr_assert_eq(poll(&p, 1, 2000), 1, "the stream sent no command within 2 s");
        char buf[4096];
        ssize_t n = read(x->fd, buf, sizeof(buf));
        cr_assert_gt(n, 0, "the stream closed the connection");
        redisReaderFeed(x->rd, buf, (size_t)n);
    }
}

static void expect_cmd(struct fake *x, const char *want)
{
    char got[512];
    next_cmd(x, got, sizeof(got));
    cr_assert_str_eq(got, want);
}

/* Writes one canned reply (RESP) and lets the stream handle it. */
static void reply(struct fake *x, const char *resp)
{
    size_t len = strlen(resp);
    cr_assert_eq(write(x->fd, resp, len), (ssize_t)len);
    ru_stream_on_ready(x->s, POLLIN);
}

static void replyf(struct fake *x, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    cr_assert_lt(n, (int)sizeof(buf), "replyf: reply too long for the test's buffer");
    reply(x, buf);
}

/* The fence answered as a server with no other connection would: then XGROUP CREATE. */
static void pass_fence(struct fake *x, const char *name_mode)
{
    char cmd[256];
    next_cmd(x, cmd, sizeof(cmd));
    cr_assert(starts_with(cmd, "CLIENT SETNAME rollupd:"), "got %s", cmd);
    cr_assert_eq(cmd[strlen(cmd) - 1], name_mode[0], "connection name %s", cmd);
    expect_cmd(x, "CLIENT ID");
    expect_cmd(x, "CLIENT LIST TYPE normal");
    reply(x, "+OK\r\n");
    reply(x, ":7\r\n");
    const char *list = "id=7 addr=/tmp/x fd=8 name=me\n";
    replyf(x, "$%zu\r\n%s\r\n", strlen(list), list);
    expect_cmd(x, "XGROUP CREATE s g 0 MKSTREAM");
}

Test(rconn, auth_refused_is_one_error_that_drops_the_connection)
{
    struct fake x;
    fake_start(&x, false, "secret");
    expect_cmd(&x, "AUTH secret");
    reply(&x, "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    cr_assert_str_eq(ru_stream_last_error(x.s),
                     "AUTH: WRONGPASS invalid username-password pair or user is disabled.");
    cr_assert_eq(x.downs, 1);
    cr_assert_eq(x.refusals, 0, "a failed AUTH is a lost connection, not a refusal");
    cr_assert_str_eq(x.err, ru_stream_last_error(x.s));
    cr_assert_eq(ru_stream_fd(x.s), -1);
    fake_stop(&x);
}

Test(rconn, noperm_names_the_command_and_drops)
{
    struct fake x;
    fake_start(&x, false, NULL);
    pass_fence(&x, "S");
    reply(&x, "-NOPERM this user has no permissions to run the 'xgroup|create' command\r\n");
    const char *err = ru_stream_last_error(x.s);
    cr_assert(starts_with(err, "the Redis ACL refuses xgroup|create to user 'default' (NOPERM"),
              "%s", err);
    cr_assert(strstr(err, "grant it +xgroup|create on keys s and s:dead") != NULL, "%s", err);
    cr_assert_eq(x.downs, 1);
    cr_assert_eq(x.gates, 0);
    fake_stop(&x);
}

Test(rconn, a_refused_fence_only_warns)
{
    struct fake x;
    fake_start(&x, false, NULL);
    char cmd[256];
    next_cmd(&x, cmd, sizeof(cmd));
    expect_cmd(&x, "CLIENT ID");
    expect_cmd(&x, "CLIENT LIST TYPE normal");
    const char *np = "-NOPERM this user has no permissions to run the 'client|setname' command\r\n";
    reply(&x, np);
    reply(&x, np);
    reply(&x, np);
    expect_cmd(&x, "XGROUP CREATE s g 0 MKSTREAM");
    reply(&x, "+OK\r\n");
    cr_assert_eq(x.downs, 0, "dropped: %s", x.err);
    cr_assert_eq(x.gates, 1);
    fake_stop(&x);
}

Test(rconn, an_unexpected_reply_drops_the_connection)
{
    struct fake x;
    fake_start(&x, false, NULL);
    pass_fence(&x, "S");
    reply(&x, "+OK\r\n+OK\r\n"); /* the second answers nothing that was sent */
    cr_assert_str_eq(ru_stream_last_error(x.s), "unexpected reply");
    cr_assert_eq(x.downs, 1);
    fake_stop(&x);
}

Test(stream, busygroup_gate_replay_live_entry)
{
    struct fake x;
    fake_start(&x, false, NULL);
    pass_fence(&x, "S");
    reply(&x, "-BUSYGROUP Consumer Group name already exists\r\n");
    cr_assert_eq(x.gates, 1);
    cr_assert_not(ru_stream_live(x.s));

    ru_stream_gate_open(x.s);
    expect_cmd(&x, "XREADGROUP GROUP g c1 COUNT 16 STREAMS s 0-0");
    reply(&x, "*1\r\n*2\r\n$1\r\ns\r\n*0\r\n"); /* the pending list is empty */
    cr_assert(ru_stream_live(x.s));
    cr_assert_eq(x.ups, 1);
    cr_assert_eq(x.batches, 1);

    expect_cmd(&x, "XREADGROUP GROUP g c1 COUNT 16 BLOCK 1000 STREAMS s >");
    reply(&x, "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n5-1\r\n*2\r\n$5\r\nroute\r\n$2\r\n/a\r\n");
    cr_assert_eq(x.entries, 1);
    cr_assert_str_eq(x.entry_id, "5-1");
    cr_assert_str_eq(x.entry_f0, "route=/a");
    cr_assert_eq(ru_stream_stats(x.s)->reads, 2);
    cr_assert_eq(ru_stream_stats(x.s)->entries, 1);
    /* a short reply: one blocked read follows it */
    expect_cmd(&x, "XREADGROUP GROUP g c1 COUNT 16 BLOCK 1000 STREAMS s >");
    cr_assert_eq(x.downs, 0, "dropped: %s", x.err);
    fake_stop(&x);
}

static void shared_to_live(struct fake *x);

/* The entries of one reply read in place: the usual ones straight from the bytes, one
 * with a value that is not a string or with more fields than there is room for built
 * alone, and one whose id is not a string skipped, each handed on in order. */
Test(stream, entries_of_every_shape_in_one_reply)
{
    struct fake x;
    fake_start(&x, false, NULL);
    shared_to_live(&x);
    struct ru_buf many = RU_BUF_INIT;
    ru_buf_printf(&many, "*80\r\n");
    for (int k = 0; k < 40; k++)
        ru_buf_printf(&many, "$%d\r\nk%d\r\n$1\r\nv\r\n", k < 10 ? 2 : 3, k);
    replyf(&x,
           "*1\r\n*2\r\n$1\r\ns\r\n*5\r\n"
           "*2\r\n$3\r\n5-1\r\n*4\r\n$5\r\nroute\r\n$2\r\n/a\r\n$6\r\nstatus\r\n$3\r\n200\r\n"
           "*2\r\n$3\r\n5-2\r\n*2\r\n$5\r\nroute\r\n:7\r\n"
           "*2\r\n$3\r\n5-3\r\n%s"
           "*2\r\n:5\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n"
           "*2\r\n$3\r\n5-4\r\n%s",
           many.p, many.p);
    ru_buf_free(&many);
    cr_assert_eq(x.downs, 0, "dropped: %s", x.err);
    cr_assert_eq(x.entries, 4);
    cr_assert_str_eq(x.seen, "5-1 2 status=200 5-2 1 route= 5-3 40 k39=v 5-4 40 k39=v ");
    cr_assert_eq(ru_stream_stats(x.s)->entries, 4);
    fake_stop(&x);
}

/* XACK as the server reads it: ids of one millisecond (which share its text), of one and
 * two-digit lengths, and the largest; more ids than one command carries go in two. */
Test(stream, xack_ids_of_every_shape)
{
    struct fake x;
    fake_start(&x, false, NULL);
    shared_to_live(&x);
    const struct ru_sid ids[] = {
        {0, 1},
        {5, 1},
        {5, 2},
        {5, 10},
        {1761235223315ULL, 0},
        {1761235223315ULL, 7},
        {1761235223316ULL, 7},
        {UINT64_MAX, UINT64_MAX},
    };
    ru_stream_ack(x.s, ids, RU_ARRAY_LEN(ids));
    expect_cmd(&x, "XACK s g 0-1 5-1 5-2 5-10 1761235223315-0 1761235223315-7 1761235223316-7 "
                   "18446744073709551615-18446744073709551615");
    size_t n = 1500;
    struct ru_sid *many = ru_xcalloc(n, sizeof(*many));
    for (size_t i = 0; i < n; i++)
        many[i] = (struct ru_sid){1761235223315ULL + i / 100, i % 100};
    ru_stream_ack(x.s, many, n);
    for (size_t part = 0; part < 2; part++) {
        size_t lo = part * 1000, hi = part ? n : 1000;
        size_t cap = 32 * (hi - lo) + 64;
        char *want = ru_xmalloc(cap), *got = ru_xmalloc(cap);
        size_t o = (size_t)snprintf(want, cap, "XACK s g");
        for (size_t i = lo; i < hi; i++)
            o += (size_t)snprintf(want + o, cap - o, " %" PRIu64 "-%" PRIu64, many[i].ms,
                                  many[i].seq);
        next_cmd(&x, got, cap);
        cr_assert_str_eq(got, want, "part %zu", part);
        free(want);
        free(got);
    }
    free(many);
    cr_assert_eq(x.downs, 0, "dropped: %s", x.err);
    fake_stop(&x);
}

Test(stream, group_create_error_drops)
{
    struct fake x;
    fake_start(&x, false, NULL);
    pass_fence(&x, "S");
    reply(&x, "-ERR The XGROUP subcommand requires the key to exist\r\n");
    cr_assert_str_eq(ru_stream_last_error(x.s),
                     "XGROUP CREATE: ERR The XGROUP subcommand requires the key to exist");
    cr_assert_eq(x.gates, 0);
    fake_stop(&x);
}

/* After the gate a lone consumer checks the group before reading anything. */
static void lone_to_check(struct fake *x)
{
    pass_fence(x, "L");
    reply(x, "+OK\r\n");
    cr_assert_eq(x->gates, 1);
    ru_stream_gate_open(x->s);
    expect_cmd(x, "XINFO CONSUMERS s g");
    expect_cmd(x, "XINFO GROUPS s");
    expect_cmd(x, "XINFO STREAM s");
}

Test(lone, another_consumer_in_the_group_is_refused)
{
    struct fake x;
    fake_start(&x, true, NULL);
    lone_to_check(&x);
    reply(&x,
          "*1\r\n*6\r\n$4\r\nname\r\n$5\r\nother\r\n$7\r\npending\r\n:3\r\n$4\r\nidle\r\n:10\r\n");
    const char *err = ru_stream_last_error(x.s);
    cr_assert(starts_with(err, "consumer 'other' is also in group g (3 pending): a lone consumer "
                               "needs the group to itself."),
              "%s", err);
    cr_assert_eq(x.downs, 1);
    cr_assert_eq(x.refusals, 1, "the owner is told to log a refusal, not a lost connection");
    cr_assert_not(ru_stream_live(x.s));
    fake_stop(&x);
}

Test(lone, first_run_reads_nothing_until_its_floor_is_committed)
{
    struct fake x;
    fake_start(&x, true, NULL);
    lone_to_check(&x);
    reply(&x, "*0\r\n"); /* no consumer yet */
    reply(&x, "*1\r\n*4\r\n$4\r\nname\r\n$1\r\ng\r\n$17\r\nlast-delivered-id\r\n$3\r\n9-0\r\n");
    reply(&x, "*2\r\n$20\r\nmax-deleted-entry-id\r\n$3\r\n0-0\r\n");
    /* nothing owed: the group's last-delivered id is the floor, and the replay of the
     * (empty) pending list goes out */
    struct ru_sid floor;
    cr_assert(ru_stream_take_floor(x.s, &floor));
    char f[RU_SID_STRLEN];
    ru_sid_format(&floor, f);
    cr_assert_str_eq(f, "9-0");
    expect_cmd(&x, "XREADGROUP GROUP g c1 COUNT 16 STREAMS s 0-0");
    reply(&x, "*1\r\n*2\r\n$1\r\ns\r\n*0\r\n");
    cr_assert(ru_stream_live(x.s));
    /* live, but held: no NOACK read before the floor is committed */
    cr_assert(ru_stream_idle(x.s));
    ru_stream_release_noack(x.s, &floor);
    expect_cmd(&x, "XREADGROUP GROUP g c1 COUNT 16 BLOCK 1000 NOACK STREAMS s >");
    cr_assert(ru_stream_recovery_owed(x.s));
    cr_assert_eq(x.downs, 0, "dropped: %s", x.err);
    fake_stop(&x);
}

/* Up to live as a shared-group consumer: fence, group, the empty pending list. */
static void shared_to_live(struct fake *x)
{
    pass_fence(x, "S");
    reply(x, "+OK\r\n");
    ru_stream_gate_open(x->s);
    expect_cmd(x, "XREADGROUP GROUP g c1 COUNT 16 STREAMS s 0-0");
    reply(x, "*1\r\n*2\r\n$1\r\ns\r\n*0\r\n");
    expect_cmd(x, "XREADGROUP GROUP g c1 COUNT 16 BLOCK 1000 STREAMS s >");
    cr_assert(ru_stream_live(x->s));
}

struct adopted {
    int entries, trimmed, done;
    char ids[128], err[128];
};

static struct adopted adopted;

static void on_adopt_entry(void *ud, const struct ru_sid *id, const struct ru_field *f, size_t n)
{
    (void)ud;
    char t[RU_SID_STRLEN];
    ru_sid_format(id, t);
    size_t o = strlen(adopted.ids);
    snprintf(adopted.ids + o, sizeof(adopted.ids) - o, "%s%s%s", o ? " " : "", t,
             f == NULL ? "(trimmed)" : "");
    if (f == NULL && n == 0)
        adopted.trimmed++;
    else
        adopted.entries++;
}

static void on_adopt_done(void *ud, const char *err)
{
    (void)ud;
    adopted.done++;
    snprintf(adopted.err, sizeof(adopted.err), "%s", err ? err : "");
}

Test(adopt, pending_entries_read_in_order_without_claiming)
{
    struct fake x;
    memset(&adopted, 0, sizeof(adopted));
    fake_start_with(&x, false, NULL, true);
    shared_to_live(&x);

    cr_assert_eq(ru_stream_adopt_fetch(x.s, "gone"), 0);
    cr_assert_eq(ru_stream_adopt_fetch(x.s, "gone"), -1, "a second adoption at once");
    expect_cmd(&x, "XPENDING s g - + 1000 gone");
    /* replies come in command order: the blocked read's (nothing), then the page */
    reply(&x, "*-1\r\n");
    expect_cmd(&x, "XREADGROUP GROUP g c1 COUNT 16 BLOCK 1000 STREAMS s >");
    reply(&x, "*2\r\n*4\r\n$3\r\n1-1\r\n$4\r\ngone\r\n:5\r\n:1\r\n"
              "*4\r\n$3\r\n2-1\r\n$4\r\ngone\r\n:5\r\n:1\r\n");
    expect_cmd(&x, "XRANGE s 1-1 1-1");
    expect_cmd(&x, "XRANGE s 2-1 2-1");
    reply(&x, "*-1\r\n"); /* the read sent before them */
    expect_cmd(&x, "XREADGROUP GROUP g c1 COUNT 16 BLOCK 1000 STREAMS s >");
    reply(&x, "*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$5\r\nroute\r\n$2\r\n/a\r\n");
    cr_assert_eq(adopted.done, 0);
    reply(&x, "*0\r\n"); /* 2-1 was trimmed */
    cr_assert_str_eq(adopted.ids, "1-1 2-1(trimmed)");
    cr_assert_eq(adopted.entries, 1);
    cr_assert_eq(adopted.trimmed, 1);
    cr_assert_eq(adopted.done, 1);
    cr_assert_str_eq(adopted.err, "");
    cr_assert_eq(x.downs, 0, "dropped: %s", x.err);
    fake_stop(&x);
}

Test(deadletter, lone_live_copy_blocks_commits_until_confirmed)
{
    struct fake x;
    fake_start(&x, true, NULL);
    lone_to_check(&x);
    reply(&x, "*0\r\n");
    reply(&x, "*1\r\n*4\r\n$4\r\nname\r\n$1\r\ng\r\n$17\r\nlast-delivered-id\r\n$3\r\n0-0\r\n");
    reply(&x, "*0\r\n");
    expect_cmd(&x, "XREADGROUP GROUP g c1 COUNT 16 STREAMS s 0-0");
    reply(&x, "*1\r\n*2\r\n$1\r\ns\r\n*0\r\n");
    cr_assert(ru_stream_live(x.s));

    struct ru_sid id = {7, 1};
    struct ru_field f = {{"route", 5}, {"", 0}};
    cr_assert_not(ru_stream_commit_blocked(x.s));
    ru_stream_dead_letter(x.s, &id, &f, 1, "route missing", RU_FROM_LIVE);
    cr_assert(ru_stream_commit_blocked(x.s), "an unconfirmed copy must hold commits back");
    expect_cmd(&x, "XADD s:dead MAXLEN ~ 100000 * rollupd.entry_id 7-1 rollupd.reason route "
                   "missing rollupd.group g route ");
    reply(&x, "$5\r\n100-0\r\n");
    cr_assert_not(ru_stream_commit_blocked(x.s));
    struct ru_sid pos = ru_stream_dead_pos(x.s);
    cr_assert(pos.ms == 100 && pos.seq == 0);
    cr_assert_eq(ru_stream_stats(x.s)->dead_lettered, 1);
    cr_assert_eq(x.downs, 0, "dropped: %s", x.err);
    fake_stop(&x);
}

/* ---- readsize: the COUNT of the next read ---- */

/* A stream as the read size sees it: redis.count, the memory bound's share, redis.read_bytes
 * and the last reply's size (bytes over its n entries). */
static void reply_of(struct ru_stream *s, size_t bytes, size_t n, int sent)
{
    s->reply_bytes = bytes;
    ru_readsize_adapt(s, n, sent);
}

Test(readsize, read_bytes_bounds_the_count_below_redis_count)
{
    struct ru_stream s = {.count = 1000, .read_bytes = 512 * 1024};
    s.arena = ru_reply_arena_new();
    ru_readsize_set(&s, 16);
    /* entries of 1 KiB: 16, 32, ... doubling while replies are full, up to 512 */
    int sent = ru_readsize_count(&s);
    for (int i = 0; i < 12; i++) {
        reply_of(&s, (size_t)sent * 1024, (size_t)sent, sent);
        sent = ru_readsize_count(&s);
    }
    cr_assert_eq(sent, 512, "COUNT %d for 1 KiB entries within 512 KiB", sent);
    /* entries of 100 bytes: redis.count bounds it */
    for (int i = 0; i < 12; i++) {
        reply_of(&s, (size_t)sent * 100, (size_t)sent, sent);
        sent = ru_readsize_count(&s);
    }
    cr_assert_eq(sent, 1000);
    /* the memory bound's share, when smaller, wins */
    ru_readsize_budget(&s, 50 * 1000);
    cr_assert_eq(ru_readsize_count(&s), 500);
    /* 0: redis.count alone (and the memory bound) */
    s.read_bytes = 0;
    ru_readsize_budget(&s, 0);
    for (int i = 0; i < 12; i++) {
        sent = ru_readsize_count(&s);
        reply_of(&s, (size_t)sent * 4096, (size_t)sent, sent);
    }
    cr_assert_eq(ru_readsize_count(&s), 1000);
    /* never below one entry, however large */
    s.read_bytes = 1024;
    reply_of(&s, 10 * 1024 * 1024, 1, 1000);
    cr_assert_eq(ru_readsize_count(&s), 1);
    ru_reply_arena_free(s.arena);
}

/* The scan's index (8 bytes an item) counts against the memory bound's share, not against
 * redis.read_bytes, which sizes a reply for the cache as both readers of bench/run do. */
Test(readsize, the_index_counts_against_the_memory_share_only)
{
    struct ru_stream s = {.count = 1000, .read_bytes = 512 * 1024};
    s.arena = ru_reply_arena_new();
    ru_readsize_set(&s, 1000);
    s.reply_nodes = 1000 * 64; /* 512 bytes of index an entry */
    reply_of(&s, 1000 * 512, 1000, 1000);
    cr_assert_eq(ru_readsize_count(&s), 1000, "512-byte entries: read_bytes allows 1024");
    cr_assert_eq(ru_readsize_entry_bytes(&s), 1024, "an entry's memory includes its index");
    ru_readsize_budget(&s, 1000 * 1024);
    cr_assert_eq(ru_readsize_count(&s), 1000);
    ru_readsize_budget(&s, 500 * 1024);
    cr_assert_eq(ru_readsize_count(&s), 500, "the budget over reply and index: 1 KiB an entry");
    s.reply_nodes = 0; /* a reply not noted */
    reply_of(&s, 500 * 512, 500, 500);
    cr_assert_eq(ru_readsize_count(&s), 1000);
    ru_reply_arena_free(s.arena);
}
