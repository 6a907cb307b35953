#include "rollupd/stream.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <hiredis/sds.h>

#include "rollupd/cluster.h"
#include "rollupd/log.h"
#include "rollupd/reply.h"
#include "rollupd/resp.h"

#define READ_CHUNK       (256 * 1024)
#define SLOW_START       16 /* entries in the first read after a connect */
#define ACK_CHUNK        1000
#define BACKOFF_MIN_MS   100
#define BACKOFF_MAX_MS   30000
#define XINFO_EVERY_MS   5000
#define DEAD_MAXLEN      "100000"
#define DEAD_SCAN_PAGE   1000
#define DEAD_SCAN_PAGE_S "1000"
#define DEAD_SCAN_MAX    200000 /* dead-letter entries looked at by one recovery, at most */
/* The read buffer (rbuf) keeps up to this much between replies; one that a large reply
 * grew beyond it shrinks back once it is empty (input_room). */
#define READER_MAXBUF (4 * 1024 * 1024)

/* What a reply answers: each command queued carries the handler of its reply (the FIFO
 * of hiredis' callback list, as descriptors) and its name as ACL rules know it. A NOPERM
 * reply ends the connection (acl_refused) unless the handler deals with it. */
struct ru_stream;
typedef void reply_fn(struct ru_stream *s, const redisReply *r);
enum noperm {
    NOPERM_FATAL,
    NOPERM_HANDLED,      /* the handler warns or reports it */
    NOPERM_HANDLED_AUTO, /* so, with redis.cluster "auto" */
};
struct cmd {
    reply_fn *on_reply;
    const char *acl;
    enum noperm noperm;
};

static reply_fn on_auth, on_select, on_group_create, on_read_replay, on_read_live, on_ack,
    on_queued, on_exec_dl, on_xinfo, adopt_pending_page, adopt_range, parse_consumers, on_note,
    on_xadd_dl, check_consumers, on_recover_groups, on_recover_stream, dead_scan_page,
    on_read_recover, on_exec_dl_lone, on_client_id, on_client_list, on_client_kill, cluster_slots,
    id_guard, on_xsetid;

static const struct cmd C_AUTH = {on_auth, "auth", NOPERM_FATAL};
static const struct cmd C_SELECT = {on_select, "select", NOPERM_FATAL};
static const struct cmd C_GROUP_CREATE = {on_group_create, "xgroup|create", NOPERM_FATAL};
static const struct cmd C_READ_REPLAY = {on_read_replay, "xreadgroup", NOPERM_FATAL};
static const struct cmd C_READ_LIVE = {on_read_live, "xreadgroup", NOPERM_FATAL};
static const struct cmd C_ACK = {on_ack, "xack", NOPERM_FATAL};
static const struct cmd C_MULTI = {on_queued, "multi", NOPERM_FATAL};
static const struct cmd C_QUEUED = {on_queued, "xadd or xack", NOPERM_FATAL};
static const struct cmd C_EXEC_DL = {on_exec_dl, "exec", NOPERM_FATAL};
static const struct cmd C_XINFO = {on_xinfo, "xinfo|groups", NOPERM_FATAL};
static const struct cmd C_XPENDING_ADOPT = {adopt_pending_page, "xpending", NOPERM_HANDLED};
static const struct cmd C_XRANGE_ADOPT = {adopt_range, "xrange", NOPERM_HANDLED};
static const struct cmd C_XINFO_CONSUMERS = {parse_consumers, "xinfo|consumers", NOPERM_FATAL};
static const struct cmd C_NOTE = {on_note, "xadd", NOPERM_FATAL};
/* a lone consumer's dead letter: nothing to acknowledge */
static const struct cmd C_XADD_DL = {on_xadd_dl, "xadd", NOPERM_FATAL};
/* recovery: is anyone else in the group? */
static const struct cmd C_CHECK_CONSUMERS = {check_consumers, "xinfo|consumers", NOPERM_FATAL};
/* recovery: the group's last-delivered id */
static const struct cmd C_RECOVER_GROUPS = {on_recover_groups, "xinfo|groups", NOPERM_FATAL};
/* recovery: the stream's highest deleted id */
static const struct cmd C_RECOVER_STREAM = {on_recover_stream, "xinfo|stream", NOPERM_FATAL};
/* recovery: dead letters already written after the start point */
static const struct cmd C_DEAD_SCAN = {dead_scan_page, "xrevrange", NOPERM_FATAL};
/* recovery: XRANGE of what was delivered after the start point */
static const struct cmd C_READ_RECOVER = {on_read_recover, "xrange", NOPERM_FATAL};
/* EXEC of a copy of an entry without a pending entry (recovery) */
static const struct cmd C_EXEC_DL_LONE = {on_exec_dl_lone, "exec", NOPERM_FATAL};
/* the fence: this connection's name, its id, and the connections to close before reading */
static const struct cmd C_SETNAME = {on_client_id, "client|setname", NOPERM_HANDLED};
static const struct cmd C_CLIENT_ID = {on_client_id, "client|id", NOPERM_HANDLED};
static const struct cmd C_CLIENT_LIST = {on_client_list, "client|list", NOPERM_HANDLED};
static const struct cmd C_CLIENT_KILL = {on_client_kill, "client|kill", NOPERM_HANDLED};
/* Redis Cluster: which node serves the stream's slot */
static const struct cmd C_CLUSTER_SLOTS = {cluster_slots, "cluster|slots", NOPERM_HANDLED_AUTO};
/* Redis Cluster: XINFO STREAM, has the stream lost its tail? */
static const struct cmd C_ID_GUARD = {id_guard, "xinfo|stream", NOPERM_HANDLED};
static const struct cmd C_XSETID = {on_xsetid, "xsetid", NOPERM_HANDLED};

/* S_GATE: the handshake is done and the fence is up; nothing is read until the owner
 * (the daemon) has seen its PostgreSQL session alive after this point. S_CHECK and
 * S_RECOVER only for a lone consumer or one owing a recovery. */
enum conn_state { S_DOWN, S_CONNECTING, S_HANDSHAKE, S_GATE, S_CHECK, S_RECOVER, S_REPLAY, S_LIVE };

struct ru_stream {
    /* copied configuration */
    char *host, *path, *user, *password;
    int port, db;
    char *stream, *group, *consumer, *dead, *start;
    int count, block_ms, connect_timeout_ms;
    char block_s[16];

    struct ru_stream_cb cb;
    redisContext *c;
    enum conn_state state;
    bool started, paused, group_known, exec_ok, xinfo_inflight;
    bool suspended; /* no connection until ru_stream_suspend(s, false) */
    /* XREADGROUPs sent and not answered: one while replaying or when the last live read
     * came back short; two after a full one, so Redis has the next read at hand while we
     * parse (read_depth) */
    int reads_inflight, read_depth;
    int read_counts[2]; /* the COUNT each of them was sent with, oldest first */
    /* COUNT of the next read, adapted to the size of the entries (adapt_count) */
    int read_count;
    char read_count_s[16];
    size_t read_budget; /* bytes one reply may take in memory; 0 = no bound */
    size_t entry_bytes; /* bytes an entry took in memory in the last reply; 0 = unknown */
    bool in_reply;      /* a reply is being walked: its arena memory must stay */

    /* FIFO of the replies we expect, in command order */
    const struct cmd **q;
    size_t qhead, qlen, qcap;
    int64_t oldest_sent_ms; /* when the oldest outstanding command was sent */

    struct ru_sid committed, last_seen, cursor;

    /* lone consumer and recovery */
    bool lone;       /* redis.lone_consumer: live reads with NOACK */
    bool recover;    /* entries after the start point may lack a pending entry */
    bool floor_set;  /* floor found at the first connection, not yet taken */
    bool hold;       /* no NOACK read until the floor and the lone mark are committed */
    bool marked;     /* the lone mark is committed (or was found at start) */
    int dl_inflight; /* a lone consumer's dead-letter copies not yet confirmed */
    bool dl_lost;    /* some were lost with a connection: recovery writes them again */
    /* The fence. Every connection is named after the group, the consumer and the mode;
     * before it reads, it closes the connections that may still read for an owner that
     * has lost its PostgreSQL lock: those of the same consumer, and those of any lone
     * consumer of the group (a lone consumer closes every rollupd connection of the
     * group). */
    char name[64], group_prefix[40];
    long long my_id;
    bool fence_warned;
    struct ru_sid floor; /* ids at or below were in the group before this consumer read it */
    /* Dead-letter positions: the newest copy this process had confirmed, and the one
     * stored with the committed checkpoint (copies of entries after the checkpoint were
     * all written after it; unknown for a checkpoint of an earlier build). */
    struct ru_sid dead_last, dead_pos;
    bool dead_pos_known;
    /* The recovery's scan stops at the dead-letter position of its start point, taken
     * with it: a commit during the scan moves dead_pos past copies of entries the
     * recovery reads again (between the start point and the new checkpoint). */
    struct ru_sid scan_stop;
    bool scan_stop_known;
    struct ru_sid rec_end, rec_deleted;
    bool rec_deleted_known;
    struct ru_sid *dead_ids; /* dead letters of entries after the start point, ascending */
    size_t ndead, dead_cap, dead_scanned;
    int backoff_ms;
    int64_t next_attempt_ms, connect_deadline_ms, next_xinfo_ms;
    char last_err[512];

    struct ru_reply_arena *arena;
    /* the socket's input: replies are parsed in place (resp.h) from rbuf[rstart..rend) */
    char *rbuf;
    size_t rcap, rstart, rend;
    size_t reply_bytes;       /* bytes the reply being handled takes in rbuf */
    struct ru_resp_scan scan; /* of the reply at rstart */
    struct ru_field *fields;
    size_t fields_cap;
    struct ru_buf scratch;
    const char **argv;
    size_t *argvlen;
    size_t argv_cap;

    struct ru_stream_stats stats;

    /* Redis Cluster (README: Scaling out). Each connection goes to one node: the one that
     * answered MOVED or CLUSTER SLOTS for the stream's slot (target), else the next of
     * nodes (the configured host, redis.cluster_seeds, then the nodes the cluster named). */
    char cluster_mode; /* 'a'uto, 'y'es, 'n'o */
    bool cluster;      /* the server is a cluster node */
    bool target_set, cluster_warned;
    bool quiet_drop; /* a redirection before the gate: the owner was never told of it */
    unsigned slot;
    int redirects; /* redirections followed at once since the last live connection */
    struct ru_cluster_nodes nodes;
    struct ru_cluster_node at, target;

    /* adoption in progress */
    struct {
        bool active;
        char *consumer;
        struct ru_sid *ids; /* ids whose XRANGE is in flight, FIFO */
        size_t head, n, cap;
        bool more; /* another XPENDING page was requested */
    } adopt;
};

/* ---- configuration ---- */

static void set_read_count(struct ru_stream *s, size_t n)
{
    if (n > (size_t)s->count)
        n = (size_t)s->count;
    if (n < 1)
        n = 1;
    s->read_count = (int)n;
    snprintf(s->read_count_s, sizeof(s->read_count_s), "%d", s->read_count);
}

static void copy_config(struct ru_stream *s, const struct ru_config *cfg)
{
    free(s->host);
    free(s->path);
    free(s->user);
    free(s->password);
    const struct ru_redis_addr *a = &cfg->redis.addr;
    s->host = a->host ? ru_xstrdup(a->host) : NULL;
    s->path = a->path ? ru_xstrdup(a->path) : NULL;
    s->user = a->user ? ru_xstrdup(a->user) : NULL;
    s->password = a->password ? ru_xstrdup(a->password) : NULL;
    s->port = a->port;
    s->db = a->db;
    s->count = cfg->redis.count;
    s->block_ms = cfg->redis.block_ms;
    s->connect_timeout_ms = cfg->redis.connect_timeout_ms;
    s->cluster_mode = strcmp(cfg->redis.cluster, "on") == 0    ? 'y'
                      : strcmp(cfg->redis.cluster, "off") == 0 ? 'n'
                                                               : 'a';
    s->cluster = s->cluster_mode == 'y';
    s->target_set = false;
    ru_cluster_nodes_deinit(&s->nodes);
    if (a->host)
        ru_cluster_nodes_add(&s->nodes, a->host, a->port);
    if (ru_cluster_parse_seeds(cfg->redis.cluster_seeds, &s->nodes, NULL, 0) < 0)
        ru_debug("msg=\"redis.cluster_seeds not parsed (checked at load)\"");
    snprintf(s->block_s, sizeof(s->block_s), "%d", s->block_ms);
    set_read_count(s, SLOW_START);
}

/* An XREADGROUP or XRANGE has a COUNT but no limit in bytes, and its reply is held whole
 * in the arena while it is walked: the entry count is what bounds its memory. Each reply
 * measures what an entry takes (arena bytes over entries) and the next reads ask for
 * read_budget / that many, at most redis.count. After each connect reading starts at
 * SLOW_START entries and doubles with each full reply, so even the first read of a stream
 * of huge entries stays small; a shrink applies at once. sent: the COUNT of this read. */
static void adapt_count(struct ru_stream *s, size_t n, int sent)
{
    if (n == 0)
        return;
    size_t bytes = ru_reply_arena_used(s->arena) + s->reply_bytes;
    s->entry_bytes = bytes / n > 0 ? bytes / n : 1;
    size_t next = (size_t)s->read_count;
    if (n >= (size_t)sent)
        next *= 2;
    if (s->read_budget > 0 && next > s->read_budget / s->entry_bytes)
        next = s->read_budget / s->entry_bytes;
    set_read_count(s, next);
}

/* Bookkeeping of the reads in flight: at most two (read_depth). */
static void read_sent(struct ru_stream *s)
{
    s->read_counts[s->reads_inflight++] = s->read_count;
}

static int read_answered(struct ru_stream *s)
{
    int sent = s->read_counts[0];
    s->read_counts[0] = s->read_counts[1];
    s->reads_inflight--;
    return sent;
}

struct ru_stream *ru_stream_new(const struct ru_config *cfg, const struct ru_stream_cb *cb)
{
    struct ru_stream *s = ru_xcalloc(1, sizeof(*s));
    copy_config(s, cfg);
    s->stream = ru_xstrdup(cfg->redis.stream);
    s->group = ru_xstrdup(cfg->redis.group);
    s->consumer = ru_xstrdup(cfg->redis.consumer);
    s->dead = ru_xstrdup(cfg->redis.dead_letter_stream);
    s->start = ru_xstrdup(cfg->redis.start);
    s->lone = cfg->redis.lone_consumer;
    s->slot = ru_cluster_keyslot(s->stream, strlen(s->stream));
    uint64_t g = ru_hash(s->group, strlen(s->group), ru_hash(s->stream, strlen(s->stream), 0));
    uint64_t c = ru_hash(s->consumer, strlen(s->consumer), g);
    snprintf(s->group_prefix, sizeof(s->group_prefix), "rollupd:%016" PRIx64 ":", g);
    snprintf(s->name, sizeof(s->name), "%s%016" PRIx64 ":%c", s->group_prefix, c,
             s->lone ? 'L' : 'S');
    s->cb = *cb;
    s->rcap = READ_CHUNK;
    s->rbuf = ru_xmalloc(s->rcap);
    s->arena = ru_reply_arena_new();
    s->stats.lag = -1;
    s->stats.group_pending = -1;
    s->read_depth = 1;
    s->state = S_DOWN;
    return s;
}

static void disconnect(struct ru_stream *s, const char *why);
static void start_check(struct ru_stream *s);
static void start_replay(struct ru_stream *s);

void ru_stream_free(struct ru_stream *s)
{
    if (s == NULL)
        return;
    if (s->c)
        redisFree(s->c);
    ru_reply_arena_free(s->arena);
    free(s->host);
    free(s->path);
    free(s->user);
    free(s->password);
    free(s->stream);
    free(s->group);
    free(s->consumer);
    free(s->dead);
    free(s->start);
    free(s->q);
    free(s->rbuf);
    free(s->fields);
    free(s->argv);
    free(s->argvlen);
    free(s->adopt.consumer);
    free(s->adopt.ids);
    free(s->dead_ids);
    ru_cluster_nodes_deinit(&s->nodes);
    ru_buf_free(&s->scratch);
    free(s);
}

/* ---- command queue ---- */

static void q_push(struct ru_stream *s, const struct cmd *k)
{
    if (s->qlen == s->qcap) {
        size_t cap = s->qcap ? s->qcap * 2 : 64;
        const struct cmd **q = ru_xmalloc(cap * sizeof(*q));
        for (size_t i = 0; i < s->qlen; i++)
            q[i] = s->q[(s->qhead + i) % s->qcap];
        free(s->q);
        s->q = q;
        s->qhead = 0;
        s->qcap = cap;
    }
    if (s->qlen == 0)
        s->oldest_sent_ms = ru_mono_ms();
    s->q[(s->qhead + s->qlen++) % s->qcap] = k;
}

static const struct cmd *q_pop(struct ru_stream *s)
{
    const struct cmd *k = s->q[s->qhead];
    s->qhead = (s->qhead + 1) % s->qcap;
    s->qlen--;
    s->oldest_sent_ms = ru_mono_ms();
    return k;
}

static void argv_reserve(struct ru_stream *s, size_t n)
{
    if (n <= s->argv_cap)
        return;
    s->argv = ru_xrealloc(s->argv, n * sizeof(*s->argv));
    s->argvlen = ru_xrealloc(s->argvlen, n * sizeof(*s->argvlen));
    s->argv_cap = n;
}

static void send_argv(struct ru_stream *s, const struct cmd *k, int argc)
{
    if (redisAppendCommandArgv(s->c, argc, s->argv, s->argvlen) != REDIS_OK) {
        disconnect(s, "cannot format command");
        return;
    }
    q_push(s, k);
}

/* Sets argument i (evaluated once) to a NUL-terminated string. */
#define ARG(i, str)                                                                                \
    do {                                                                                           \
        size_t ix_ = (size_t)(i);                                                                  \
        s->argv[ix_] = (str);                                                                      \
        s->argvlen[ix_] = strlen(s->argv[ix_]);                                                    \
    } while (0)

/* Where recovery starts: after the checkpoint, never below the floor. Entries this
 * process holds already come back as RU_SEEN_INFLIGHT; reading them again costs little
 * and finds an invalid one whose dead-letter copy was lost with the connection. */
static struct ru_sid recover_from(const struct ru_stream *s)
{
    struct ru_sid from = s->committed;
    if (ru_sid_cmp(&s->floor, &from) > 0)
        from = s->floor;
    return from;
}

/* Queues one more XREADGROUP (or, recovering, XRANGE) if the depth allows; true when
 * it did. */
static bool send_read(struct ru_stream *s)
{
    int depth = s->state == S_LIVE ? s->read_depth : 1;
    if (depth > (int)RU_ARRAY_LEN(s->read_counts))
        depth = (int)RU_ARRAY_LEN(s->read_counts);
    /* recovery must write again the copies lost with a connection even while reading is
     * paused: until it has, no commit can free the memory that paused it */
    bool paused = s->paused && !(s->state == S_RECOVER && s->dl_lost);
    if (s->reads_inflight >= depth || s->c == NULL || paused || (s->state == S_LIVE && s->hold))
        return false;
    char cur[RU_SID_STRLEN + 1], end[RU_SID_STRLEN];
    argv_reserve(s, 13);
    if (s->state == S_RECOVER) {
        cur[0] = '('; /* exclusive: the cursor itself was taken in already */
        ru_sid_format(&s->cursor, cur + 1);
        ru_sid_format(&s->rec_end, end);
        ARG(0, "XRANGE");
        ARG(1, s->stream);
        ARG(2, cur);
        ARG(3, end);
        ARG(4, "COUNT");
        ARG(5, s->read_count_s);
        read_sent(s);
        send_argv(s, &C_READ_RECOVER, 6);
        return true;
    }
    int n = 0;
    ARG(n++, "XREADGROUP");
    ARG(n++, "GROUP");
    ARG(n++, s->group);
    ARG(n++, s->consumer);
    ARG(n++, "COUNT");
    ARG(n++, s->read_count_s);
    /* block only when caught up: while a backlog lasts (the last reply was full) a read
     * that finds nothing answers at once, so the end of the backlog shows at once */
    if (s->state == S_LIVE && s->read_depth < 2) {
        ARG(n++, "BLOCK");
        ARG(n++, s->block_s);
    }
    if (s->state == S_LIVE && s->lone) {
        ARG(n++, "NOACK");
        s->recover = true; /* from now on a lost reply can only be found by recovery */
    }
    ARG(n++, "STREAMS");
    ARG(n++, s->stream);
    if (s->state == S_LIVE) {
        ARG(n++, ">");
    } else {
        ru_sid_format(&s->cursor, cur);
        ARG(n++, cur);
    }
    read_sent(s);
    send_argv(s, s->state == S_LIVE ? &C_READ_LIVE : &C_READ_REPLAY, n);
    return true;
}

static void send_group_create(struct ru_stream *s, const char *start)
{
    argv_reserve(s, 6);
    ARG(0, "XGROUP");
    ARG(1, "CREATE");
    ARG(2, s->stream);
    ARG(3, s->group);
    ARG(4, start);
    ARG(5, "MKSTREAM");
    send_argv(s, &C_GROUP_CREATE, 6);
}

static void try_write(struct ru_stream *s)
{
    if (s->c == NULL || s->state == S_CONNECTING)
        return;
    int done = 0;
    if (redisBufferWrite(s->c, &done) != REDIS_OK) {
        char why[sizeof(s->c->errstr)]; /* disconnect frees the context that holds it */
        ru_strlcpy(why, s->c->errstr[0] ? s->c->errstr : "write failed", sizeof(why));
        disconnect(s, why);
    }
}

/* XACK of m ids, the command written here in one buffer (hiredis formatting each id as
 * an argument cost more than the rest of an entry's acknowledgement). */
static void send_ack(struct ru_stream *s, const struct ru_sid *ids, size_t m, struct ru_buf *b)
{
    ru_buf_reset(b);
    ru_buf_printf(b, "*%zu\r\n$4\r\nXACK\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n", m + 3, strlen(s->stream),
                  s->stream, strlen(s->group), s->group);
    for (size_t i = 0; i < m; i++) {
        char t[RU_SID_STRLEN + 8]; /* "$NN\r\n" + id + "\r\n" */
        size_t len = ru_sid_format(&ids[i], t + 5);
        t[5 + len] = '\r';
        t[6 + len] = '\n';
        char *h = t + 5; /* the header goes right before the id */
        *--h = '\n';
        *--h = '\r';
        size_t d = len;
        do {
            *--h = (char)('0' + d % 10);
            d /= 10;
        } while (d);
        *--h = '$';
        ru_buf_append(b, h, (size_t)(t + 7 + len - h));
    }
    if (redisAppendFormattedCommand(s->c, b->p, b->len) != REDIS_OK) {
        disconnect(s, "cannot format command");
        return;
    }
    q_push(s, &C_ACK);
}

void ru_stream_ack(struct ru_stream *s, const struct ru_sid *ids, size_t n)
{
    if (s->c == NULL || s->state < S_CHECK || n == 0)
        return;
    struct ru_buf b = RU_BUF_INIT;
    for (size_t off = 0; off < n && s->c; off += ACK_CHUNK) {
        size_t m = n - off < ACK_CHUNK ? n - off : ACK_CHUNK;
        send_ack(s, ids + off, m, &b);
        s->stats.acked += m;
    }
    ru_buf_free(&b);
    try_write(s);
}

void ru_stream_dead_letter(struct ru_stream *s, const struct ru_sid *id,
                           const struct ru_field *fields, size_t nfields, const char *reason,
                           enum ru_origin origin)
{
    if (s->c == NULL || s->state < S_RECOVER) {
        /* stays pending, or is after the checkpoint: dead-lettered when read again (no
         * commit may pass it before that recovery) */
        if (s->lone || s->recover)
            s->dl_lost = true;
        return;
    }
    char idtxt[RU_SID_STRLEN];
    size_t idlen = ru_sid_format(id, idtxt);
    argv_reserve(s, 14 + 2 * nfields);
    /* a lone consumer's live entry has no pending entry to acknowledge (the entry may be
     * copied later than it was read, once PostgreSQL judged its key: its origin decides) */
    bool plain = s->lone && origin == RU_FROM_LIVE;
    /* an entry without a pending entry: until Redis confirms the copy, no commit may pass
     * it (one from the pending list stays there until its copy and XACK are done). Not for
     * a shared-group consumer whose recovery is over: a lost copy would make it recover
     * again, over entries other consumers of the group have read since (README: Long keys) */
    bool counted = plain || (origin == RU_FROM_RECOVERY && (s->lone || s->recover));
    if (counted)
        s->dl_inflight++;
    if (!plain) {
        ARG(0, "MULTI");
        send_argv(s, &C_MULTI, 1);
    }
    int n = 0;
    ARG(n++, "XADD");
    ARG(n++, s->dead);
    ARG(n++, "MAXLEN");
    ARG(n++, "~");
    ARG(n++, DEAD_MAXLEN);
    ARG(n++, "*");
    ARG(n++, "rollupd.entry_id");
    s->argv[n] = idtxt;
    s->argvlen[n++] = idlen;
    ARG(n++, "rollupd.reason");
    ARG(n++, reason);
    ARG(n++, "rollupd.group");
    ARG(n++, s->group);
    for (size_t i = 0; i < nfields; i++) {
        s->argv[n] = fields[i].name.p;
        s->argvlen[n++] = fields[i].name.len;
        s->argv[n] = fields[i].value.p;
        s->argvlen[n++] = fields[i].value.len;
    }
    if (plain) {
        if (s->c)
            send_argv(s, &C_XADD_DL, n);
        try_write(s);
        return;
    }
    if (s->c)
        send_argv(s, &C_QUEUED, n);
    ARG(0, "XACK");
    ARG(1, s->stream);
    ARG(2, s->group);
    s->argv[3] = idtxt;
    s->argvlen[3] = idlen;
    if (s->c)
        send_argv(s, &C_QUEUED, 4);
    ARG(0, "EXEC");
    if (s->c)
        send_argv(s, counted ? &C_EXEC_DL_LONE : &C_EXEC_DL, 1);
    try_write(s);
}

void ru_stream_dead_letter_note(struct ru_stream *s, const struct ru_sid *id, const char *reason)
{
    if (s->c == NULL || s->state < S_CHECK)
        return;
    char idtxt[RU_SID_STRLEN];
    ru_sid_format(id, idtxt);
    argv_reserve(s, 10);
    ARG(0, "XADD");
    ARG(1, s->dead);
    ARG(2, "MAXLEN");
    ARG(3, "~");
    ARG(4, DEAD_MAXLEN);
    ARG(5, "*");
    ARG(6, "rollupd.entry_id");
    ARG(7, idtxt);
    ARG(8, "rollupd.reason");
    ARG(9, reason);
    send_argv(s, &C_NOTE, 10);
    try_write(s);
}

/* ---- connection ---- */

static void set_error(struct ru_stream *s, const char *why)
{
    ru_strlcpy(s->last_err, why, sizeof(s->last_err));
}

static void schedule_reconnect(struct ru_stream *s)
{
    int b = s->backoff_ms ? s->backoff_ms : BACKOFF_MIN_MS;
    /* full jitter in [b/2, b] so instances restarted together do not reconnect in step */
    int wait = b / 2 + (int)(random() % (b / 2 + 1));
    s->next_attempt_ms = ru_mono_ms() + wait;
    s->backoff_ms = b * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b * 2;
}

static void disconnect(struct ru_stream *s, const char *why)
{
    bool was_up = s->state >= S_HANDSHAKE;
    if (s->c) {
        redisFree(s->c);
        s->c = NULL;
    }
    if (!s->in_reply) { /* else the reply being walked lives on until it is done */
        ru_reply_arena_reset(s->arena);
        s->rstart = s->rend = 0;
        ru_resp_scan_reset(&s->scan);
    }
    s->state = S_DOWN;
    s->qlen = 0;
    s->qhead = 0;
    s->reads_inflight = 0;
    s->read_depth = 1;
    s->xinfo_inflight = false;
    if (s->dl_inflight > 0) {
        /* the entries are after the checkpoint: the next connection's recovery reads them
         * again (also for a shared-group consumer that was recovering) */
        s->dl_lost = true;
        s->recover = true;
    }
    s->dl_inflight = 0;
    s->my_id = 0;
    s->target_set = false; /* a redirection sets it again after this */
    set_error(s, why);
    schedule_reconnect(s);
    if (s->adopt.active) {
        s->adopt.active = false;
        if (s->cb.on_adopt_done)
            s->cb.on_adopt_done(s->cb.ud, why);
    }
    if (s->cb.on_state && !s->quiet_drop)
        s->cb.on_state(s->cb.ud, false, why);
    s->quiet_drop = false;
    (void)was_up;
}

/* Ends the connection with a formatted reason (last_error, and on_state for the owner). */
static void failf(struct ru_stream *s, const char *fmt, ...) RU_PRINTF(2, 3);
static void failf(struct ru_stream *s, const char *fmt, ...)
{
    char why[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    disconnect(s, why);
}

static void start_handshake(struct ru_stream *s)
{
    s->state = S_HANDSHAKE;
    set_read_count(s, SLOW_START);
    if (s->path == NULL)
        redisEnableKeepAlive(s->c); /* notice a peer that vanished without a FIN */
    ru_reply_arena_attach(s->arena, s->c->reader);
    /* keep the reader's buffer between replies of a usual size: freeing it whenever it
     * empties (hiredis' default above 16 KiB) reallocates and refills it for every batch */
    s->c->reader->maxbuf = READER_MAXBUF;
    if (s->password) {
        argv_reserve(s, 3);
        int n = 0;
        ARG(n++, "AUTH");
        if (s->user)
            ARG(n++, s->user);
        ARG(n++, s->password);
        send_argv(s, &C_AUTH, n);
    }
    if (s->db != 0) {
        char dbs[16];
        snprintf(dbs, sizeof(dbs), "%d", s->db);
        argv_reserve(s, 2);
        ARG(0, "SELECT");
        ARG(1, dbs);
        if (s->c)
            send_argv(s, &C_SELECT, 2);
    }
    if (s->cluster_mode != 'n' && s->path == NULL && s->db == 0 && s->c) {
        argv_reserve(s, 2);
        ARG(0, "CLUSTER");
        ARG(1, "SLOTS");
        send_argv(s, &C_CLUSTER_SLOTS, 2);
    }
    /* The fence: name this connection, then (on the CLIENT LIST reply) close those that
     * may still read for us before anything is read here. */
    argv_reserve(s, 4);
    ARG(0, "CLIENT");
    ARG(1, "SETNAME");
    ARG(2, s->name);
    if (s->c)
        send_argv(s, &C_SETNAME, 3);
    ARG(1, "ID");
    if (s->c)
        send_argv(s, &C_CLIENT_ID, 2);
    ARG(1, "LIST");
    ARG(2, "TYPE");
    ARG(3, "normal");
    if (s->c)
        send_argv(s, &C_CLIENT_LIST, 4);
    try_write(s);
}

/* Where a group that vanished is created again: after what this consumer committed (a
 * lone consumer: what the group committed), so that what the producer wrote meanwhile
 * is read whatever redis.start says; "0" when nothing was committed yet. */
static struct ru_sid recover_from(const struct ru_stream *s);

static void group_create_after_fence(struct ru_stream *s)
{
    char at[RU_SID_STRLEN];
    if (!s->group_known) {
        send_group_create(s, s->start);
        return;
    }
    struct ru_sid from = recover_from(s);
    ru_sid_format(&from, at);
    send_group_create(s, at);
}

/* CLIENT LIST: "id=7 addr=... name=rollupd:...:S ...\n" per connection. Closes those of
 * the same consumer and those of a lone consumer of the group (for a lone consumer: all
 * of the group), other than this one. */
static void fence_kill(struct ru_stream *s, const redisReply *r)
{
    if (r->type != REDIS_REPLY_STRING) {
        if (!s->fence_warned)
            ru_warn("msg=\"CLIENT SETNAME/ID/LIST refused (an ACL?): another process that lost "
                    "this consumer's PostgreSQL lock may read on for a moment before it notices; "
                    "grant client|setname, client|id, client|list and client|kill\" error=\"%s\"",
                    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        s->fence_warned = true;
        return;
    }
    size_t plen = strlen(s->group_prefix), nlen = strlen(s->name);
    for (const char *line = r->str; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *name = NULL;
        for (const char *p = line; p < line + len; p++) {
            if ((p == line || p[-1] == ' ') && strncmp(p, "name=", 5) == 0) {
                name = p + 5;
                break;
            }
        }
        long long id = strncmp(line, "id=", 3) == 0 ? atoll(line + 3) : 0;
        size_t nl = name ? strcspn(name, " \r\n") : 0;
        bool same = nl == nlen && memcmp(name, s->name, nlen) == 0;
        bool group = nl > plen && memcmp(name, s->group_prefix, plen) == 0;
        bool lone_other = group && name[nl - 1] == 'L';
        if (id > 0 && id != s->my_id && (same || (group && (s->lone || lone_other)))) {
            char idt[24];
            snprintf(idt, sizeof(idt), "%lld", id);
            ru_warn("msg=\"closing an earlier connection of this consumer or a lone consumer of "
                    "the group before reading (a lost connection of this process, or one of a "
                    "process that lost the PostgreSQL lock)\" client_id=%s name=%.*s",
                    idt, (int)nl, name);
            argv_reserve(s, 4);
            ARG(0, "CLIENT");
            ARG(1, "KILL");
            ARG(2, "ID");
            ARG(3, idt);
            send_argv(s, &C_CLIENT_KILL, 4);
        }
        line = end ? end + 1 : NULL;
    }
}

/* ---- Redis Cluster ---- */

/* The node of the next connection: the one known to serve the slot; else, in a cluster,
 * the next node in turn (a dead master's successor is found through any live node); else
 * the configured host. */
static void pick_node(struct ru_stream *s)
{
    const struct ru_cluster_node *n = NULL;
    if (s->target_set)
        n = &s->target;
    else if (s->cluster && s->nodes.n > 1)
        n = ru_cluster_nodes_next(&s->nodes);
    if (n != NULL) {
        s->at = *n;
    } else {
        ru_strlcpy(s->at.host, s->host ? s->host : "", sizeof(s->at.host));
        s->at.port = s->port;
    }
}

/* Drops this connection and connects to `to` at once: the replay of the pending list (or
 * the recovery) on the new connection keeps exactly-once as after any reconnect. After a
 * few in a row without reaching live (nodes that disagree during a failover), the usual
 * backoff applies. */
static void redirect(struct ru_stream *s, const struct ru_cluster_node *to, const char *why)
{
    int backoff = s->backoff_ms;
    ru_info("msg=\"following the stream's slot to another cluster node\" slot=%u from=%s:%d "
            "to=%s:%d reason=\"%s\"",
            s->slot, s->at.host, s->at.port, to->host, to->port, why);
    s->quiet_drop = s->state < S_GATE; /* logged above; not a lost connection */
    disconnect(s, why);
    s->target = *to;
    s->target_set = true;
    if (s->redirects++ < 3) {
        s->backoff_ms = backoff;
        s->next_attempt_ms = 0;
    }
}

/* CLUSTER SLOTS, sent first on each connection unless redis.cluster is "off". */
static void cluster_slots(struct ru_stream *s, const redisReply *r)
{
    char why[300];
    if (r->type == REDIS_REPLY_ERROR && s->cluster_mode == 'a') {
        /* "ERR This instance has cluster support disabled": a lone server */
        if (strstr(r->str, "cluster support disabled") == NULL && !s->cluster_warned)
            ru_warn("msg=\"CLUSTER SLOTS refused: if this is a Redis Cluster, rollupd follows "
                    "MOVED replies only; grant +cluster|slots or set redis.cluster\" error=\"%s\"",
                    r->str);
        s->cluster_warned = true;
        s->cluster = false;
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof(why),
                 "CLUSTER SLOTS: %s (redis.cluster is \"on\": point redis.url at a cluster "
                 "node, or set it to \"auto\")",
                 r->str);
        disconnect(s, why);
        return;
    }
    s->cluster = true;
    ru_cluster_nodes_learn(&s->nodes, r, &s->at);
    unsigned dslot = ru_cluster_keyslot(s->dead, strlen(s->dead));
    if (dslot != s->slot) {
        snprintf(why, sizeof(why),
                 "this is a Redis Cluster and the dead-letter stream %s (slot %u) is not in the "
                 "slot of %s (%u): give both the same hash tag (redis.stream \"x:{0}\" and its "
                 "default dead-letter stream); nothing is read until then",
                 s->dead, dslot, s->stream, s->slot);
        s->backoff_ms = BACKOFF_MAX_MS;
        disconnect(s, why);
        return;
    }
    struct ru_cluster_node owner;
    if (ru_cluster_owner(r, s->slot, &s->at, &owner, why, sizeof(why)) < 0) {
        disconnect(s, why);
        return;
    }
    if (!ru_cluster_node_eq(&owner, &s->at))
        redirect(s, &owner, "CLUSTER SLOTS: another node serves the stream's slot");
}

/* An error reply of a cluster node that concerns the connection, not the command:
 * follows it and returns true. MOVED: the slot is served elsewhere for good. ASK: the
 * stream is being migrated: MIGRATE moves the key whole, and the slot is finalised a
 * moment later, so rather than sending ASKING before each command to a node that does not
 * own the slot yet, reconnect with backoff until CLUSTER SLOTS (or MOVED) names the new
 * owner. CLUSTERDOWN, TRYAGAIN, READONLY (an old master turned replica), ...: back off and
 * ask the cluster again through another node. */
static bool cluster_error(struct ru_stream *s, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ERROR || s->cluster_mode == 'n' || s->path != NULL)
        return false;
    struct ru_cluster_node to;
    char why[300];
    enum ru_cluster_err e = ru_cluster_classify(r->str, &s->at, NULL, &to);
    /* a lone server's LOADING or READONLY (a replica) keeps its usual handling */
    if (e == RU_CLUSTER_RETRY && !s->cluster)
        return false;
    switch (e) {
    case RU_CLUSTER_ERR_OTHER:
        return false;
    case RU_CLUSTER_MOVED:
        s->cluster = true;
        snprintf(why, sizeof(why), "cluster: %.200s", r->str);
        redirect(s, &to, why);
        return true;
    case RU_CLUSTER_ASK:
        snprintf(why, sizeof(why), "cluster: %.200s (the stream is migrating: waiting)", r->str);
        disconnect(s, why);
        return true;
    case RU_CLUSTER_RETRY:
        snprintf(why, sizeof(why), "cluster: %.200s", r->str);
        disconnect(s, why);
        return true;
    }
    return false;
}

static const redisReply *map_get(const redisReply *m, const char *key);
static bool sid_of(const redisReply *v, struct ru_sid *out);

/* A failover can lose the last writes the old master acknowledged, entries this process
 * has already taken in among them: the new master's stream then ends below the checkpoint,
 * and an entry added now could get an id at or below it (a clock behind the old master's)
 * and be skipped as committed. XSETID raises the stream's last id to what this process has
 * seen, so every entry added from now on sorts above the checkpoint. */
static void send_id_guard(struct ru_stream *s)
{
    if (ru_sid_is_zero(&s->last_seen))
        return;
    argv_reserve(s, 3);
    ARG(0, "XINFO");
    ARG(1, "STREAM");
    ARG(2, s->stream);
    send_argv(s, &C_ID_GUARD, 3);
}

static void id_guard(struct ru_stream *s, const redisReply *r)
{
    struct ru_sid last;
    if (r->type != REDIS_REPLY_ARRAY || !sid_of(map_get(r, "last-generated-id"), &last) ||
        ru_sid_cmp(&last, &s->last_seen) >= 0)
        return;
    char have[RU_SID_STRLEN], seen[RU_SID_STRLEN];
    ru_sid_format(&last, have);
    ru_sid_format(&s->last_seen, seen);
    ru_err("msg=\"the stream ends below entries this process has already read: Redis lost "
           "acknowledged writes (a failover with asynchronous replication); those events stay "
           "counted once, and the stream's last id is raised so new entries sort above the "
           "checkpoint\" stream=%s last_generated=%s seen=%s",
           s->stream, have, seen);
    s->stats.redis_lost_tail++;
    argv_reserve(s, 3);
    ARG(0, "XSETID");
    ARG(1, s->stream);
    ARG(2, seen);
    send_argv(s, &C_XSETID, 3);
    try_write(s);
}

static void connect_now(struct ru_stream *s)
{
    if (s->path) {
        s->c = redisConnectUnixNonBlock(s->path);
    } else {
        pick_node(s);
        s->c = redisConnectNonBlock(s->at.host, s->at.port);
    }
    if (s->c == NULL) {
        disconnect(s, "cannot allocate redis context");
        return;
    }
    if (s->c->err) {
        char why[200];
        snprintf(why, sizeof(why), "connect: %s", s->c->errstr);
        disconnect(s, why);
        return;
    }
    s->state = S_CONNECTING;
    s->connect_deadline_ms = ru_mono_ms() + s->connect_timeout_ms;
    s->stats.reconnects++;
}

void ru_stream_start(struct ru_stream *s, const struct ru_stream_start *st)
{
    s->committed = st->committed;
    s->recover = st->recover;
    s->marked = st->recover;
    if (st->recover && ru_sid_cmp(&st->recover_from, &s->floor) > 0)
        s->floor = st->recover_from;
    s->dead_pos = st->dead_pos;
    s->dead_pos_known = st->dead_pos_known;
    if (ru_sid_cmp(&s->last_seen, &s->committed) < 0)
        s->last_seen = s->committed;
    s->group_known = !ru_sid_is_zero(&s->committed) || !ru_sid_is_zero(&s->floor);
    s->started = true;
    s->next_attempt_ms = 0;
    s->stats.reconnects = 0;
    connect_now(s);
    if (s->stats.reconnects)
        s->stats.reconnects--; /* the first connection is not a reconnect */
}

void ru_stream_set_committed(struct ru_stream *s, const struct ru_sid *committed,
                             const struct ru_sid *dead_pos)
{
    if (ru_sid_cmp(&s->committed, committed) < 0)
        s->committed = *committed;
    if (dead_pos && ru_sid_cmp(&s->dead_pos, dead_pos) < 0)
        s->dead_pos = *dead_pos;
    if (dead_pos)
        s->dead_pos_known = true;
}

struct ru_sid ru_stream_dead_pos(const struct ru_stream *s)
{
    return ru_sid_cmp(&s->dead_last, &s->dead_pos) > 0 ? s->dead_last : s->dead_pos;
}

void ru_stream_gate_open(struct ru_stream *s)
{
    if (s->state != S_GATE)
        return;
    if (s->lone || s->recover)
        start_check(s);
    else
        start_replay(s);
    try_write(s);
}

void ru_stream_suspend(struct ru_stream *s, bool on, const char *why)
{
    if (on == s->suspended)
        return;
    s->suspended = on;
    if (on) {
        if (s->state != S_DOWN)
            disconnect(s, why);
        else
            set_error(s, why);
    } else {
        s->backoff_ms = 0;
        s->next_attempt_ms = 0;
    }
}

void ru_stream_reconfigure(struct ru_stream *s, const struct ru_config *cfg)
{
    copy_config(s, cfg);
    if (s->started) {
        disconnect(s, "configuration reloaded");
        s->backoff_ms = 0;
        s->next_attempt_ms = 0;
    }
}

void ru_stream_pause(struct ru_stream *s, bool paused)
{
    s->paused = paused;
    if (!paused && (s->state == S_LIVE || s->state == S_REPLAY || s->state == S_RECOVER)) {
        send_read(s);
        try_write(s);
    }
}

/* ---- replies ---- */

static enum ru_seen classify(struct ru_stream *s, const struct ru_sid *id)
{
    if (ru_sid_cmp(id, &s->committed) <= 0)
        return RU_SEEN_COMMITTED;
    if (ru_sid_cmp(id, &s->last_seen) <= 0)
        return RU_SEEN_INFLIGHT;
    return RU_SEEN_NEW;
}

static bool is_error(const redisReply *r, const char *prefix)
{
    return r->type == REDIS_REPLY_ERROR && strncmp(r->str, prefix, strlen(prefix)) == 0;
}

/* The field/value pairs of one entry's reply array, as borrowed views in s->fields. */
static size_t take_fields(struct ru_stream *s, const redisReply *fr)
{
    size_t nf = fr->elements / 2;
    if (nf > s->fields_cap) {
        s->fields_cap = nf * 2;
        s->fields = ru_xrealloc(s->fields, s->fields_cap * sizeof(*s->fields));
    }
    size_t k = 0;
    for (size_t j = 0; j + 1 < fr->elements; j += 2) {
        const redisReply *fn = fr->element[j], *fv = fr->element[j + 1];
        s->fields[k].name.p = fn->str ? fn->str : "";
        s->fields[k].name.len = fn->str ? fn->len : 0;
        s->fields[k].value.p = fv->str ? fv->str : "";
        s->fields[k].value.len = fv->str ? fv->len : 0;
        k++;
    }
    return k;
}

static int sid_cmp_void(const void *a, const void *b)
{
    return ru_sid_cmp(a, b);
}

static bool is_dead_lettered(const struct ru_stream *s, const struct ru_sid *id)
{
    return s->ndead > 0 &&
           bsearch(id, s->dead_ids, s->ndead, sizeof(*s->dead_ids), sid_cmp_void) != NULL;
}

/* Walks a list of entries [[id, [f, v, ...] | nil], ...]. */
static size_t handle_entry_list(struct ru_stream *s, const redisReply *entries,
                                enum ru_origin origin)
{
    bool replay = origin == RU_FROM_PENDING;
    size_t n = 0;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING)
            continue;
        struct ru_sid id;
        if (ru_sid_parse(&id, e->element[0]->str, e->element[0]->len) < 0)
            continue;
        enum ru_seen seen = classify(s, &id);
        if (origin != RU_FROM_LIVE)
            s->cursor = id;
        if (origin == RU_FROM_RECOVERY) {
            s->stats.recovered++;
            /* also for an entry this process holds: its copy may or may not have been
             * written before the connection went */
            if (is_dead_lettered(s, &id))
                seen = RU_SEEN_DEAD;
        }
        if (ru_sid_cmp(&id, &s->last_seen) > 0)
            s->last_seen = id;
        n++;
        const redisReply *fr = e->element[1];
        if (fr->type != REDIS_REPLY_ARRAY || fr->elements == 0) {
            /* trimmed while pending: nothing left to apply (an entry already in an
             * uncommitted batch is acknowledged by that batch after its COMMIT) */
            if (seen != RU_SEEN_INFLIGHT && replay)
                ru_stream_ack(s, &id, 1);
            if (s->cb.on_trimmed)
                s->cb.on_trimmed(s->cb.ud, &id, seen);
            continue;
        }
        size_t k = take_fields(s, fr);
        s->stats.entries++;
        s->cb.on_entry(s->cb.ud, &id, s->fields, k, seen, origin);
    }
    return n;
}

/* Walks one XREADGROUP reply: [[stream, [[id, [f, v, ...] | nil], ...]]] or nil. */
static size_t handle_entries(struct ru_stream *s, const redisReply *r, bool replay)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1)
        return 0;
    const redisReply *sr = r->element[0];
    if (sr->type != REDIS_REPLY_ARRAY || sr->elements != 2 ||
        sr->element[1]->type != REDIS_REPLY_ARRAY)
        return 0;
    return handle_entry_list(s, sr->element[1], replay ? RU_FROM_PENDING : RU_FROM_LIVE);
}

/* The value of key in a flat [key, value, ...] reply, or NULL. */
static const redisReply *map_get(const redisReply *m, const char *key)
{
    if (m == NULL || m->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t j = 0; j + 1 < m->elements; j += 2) {
        const redisReply *k = m->element[j];
        if ((k->type == REDIS_REPLY_STRING || k->type == REDIS_REPLY_STATUS) &&
            strcmp(k->str, key) == 0)
            return m->element[j + 1];
    }
    return NULL;
}

/* Our group's entry in an XINFO GROUPS reply, or NULL. */
static const redisReply *our_group(const struct ru_stream *s, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *name = map_get(r->element[i], "name");
        if (name && name->str && strcmp(name->str, s->group) == 0)
            return r->element[i];
    }
    return NULL;
}

static bool sid_of(const redisReply *v, struct ru_sid *out)
{
    return v && (v->type == REDIS_REPLY_STRING || v->type == REDIS_REPLY_STATUS) &&
           ru_sid_parse(out, v->str, v->len) == 0;
}

static void parse_xinfo(struct ru_stream *s, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY)
        return;
    const redisReply *g = our_group(s, r);
    const redisReply *nc = map_get(g, "consumers");
    if (s->lone && s->state == S_LIVE && nc && nc->type == REDIS_REPLY_INTEGER && nc->integer > 1) {
        /* Entries it reads are not ours, yet a recovery after our checkpoint would read
         * them again: stop reading until it is gone (the check at connect names it). */
        char why[200];
        snprintf(why, sizeof(why),
                 "another consumer joined group %.60s (%lld consumers); a lone consumer stops "
                 "reading",
                 s->group, (long long)nc->integer);
        ru_err("msg=\"%s\"", why);
        disconnect(s, why);
        return;
    }
    const redisReply *pending = map_get(g, "pending"), *lag = map_get(g, "lag");
    if (g != NULL) {
        s->stats.group_pending =
            pending && pending->type == REDIS_REPLY_INTEGER ? pending->integer : -1;
        s->stats.lag = lag && lag->type == REDIS_REPLY_INTEGER ? lag->integer : -1;
    }
}

/* ---- adoption and consumers ---- */

static void adopt_finish(struct ru_stream *s, const char *err)
{
    s->adopt.active = false;
    if (s->cb.on_adopt_done)
        s->cb.on_adopt_done(s->cb.ud, err);
}

static void send_xpending_page(struct ru_stream *s, const struct ru_sid *after)
{
    char start[RU_SID_STRLEN + 1];
    if (after == NULL) {
        strcpy(start, "-");
    } else {
        start[0] = '(';
        ru_sid_format(after, start + 1);
    }
    argv_reserve(s, 8);
    ARG(0, "XPENDING");
    ARG(1, s->stream);
    ARG(2, s->group);
    ARG(3, start);
    ARG(4, "+");
    ARG(5, "1000");
    ARG(6, s->adopt.consumer);
    send_argv(s, &C_XPENDING_ADOPT, 7);
}

int ru_stream_adopt_fetch(struct ru_stream *s, const char *consumer)
{
    if (s->state != S_LIVE || s->adopt.active)
        return -1;
    free(s->adopt.consumer);
    s->adopt.consumer = ru_xstrdup(consumer);
    s->adopt.active = true;
    s->adopt.head = s->adopt.n = 0;
    s->adopt.more = true;
    send_xpending_page(s, NULL);
    try_write(s);
    return 0;
}

/* One XPENDING page: [[id, consumer, idle, deliveries], ...]. Fetch each entry. */
static void adopt_pending_page(struct ru_stream *s, const redisReply *r)
{
    if (!s->adopt.active)
        return;
    if (r->type != REDIS_REPLY_ARRAY) {
        adopt_finish(s, r->type == REDIS_REPLY_ERROR ? r->str : "XPENDING: unexpected reply");
        return;
    }
    struct ru_sid last = {0, 0};
    size_t got = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        struct ru_sid id;
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 || e->element[0]->str == NULL ||
            ru_sid_parse(&id, e->element[0]->str, e->element[0]->len) < 0)
            continue;
        if (s->adopt.n == s->adopt.cap && s->adopt.head > 0) {
            /* compact the consumed head before growing */
            memmove(s->adopt.ids, s->adopt.ids + s->adopt.head,
                    (s->adopt.n - s->adopt.head) * sizeof(*s->adopt.ids));
            s->adopt.n -= s->adopt.head;
            s->adopt.head = 0;
        }
        if (s->adopt.n == s->adopt.cap) {
            s->adopt.cap = s->adopt.cap ? s->adopt.cap * 2 : 1024;
            s->adopt.ids = ru_xrealloc(s->adopt.ids, s->adopt.cap * sizeof(*s->adopt.ids));
        }
        s->adopt.ids[s->adopt.n++] = id;
        char idt[RU_SID_STRLEN];
        ru_sid_format(&id, idt);
        argv_reserve(s, 4);
        ARG(0, "XRANGE");
        ARG(1, s->stream);
        ARG(2, idt);
        ARG(3, idt);
        send_argv(s, &C_XRANGE_ADOPT, 4);
        last = id;
        got++;
    }
    s->adopt.more = got == 1000;
    if (s->adopt.more)
        send_xpending_page(s, &last);
    else if (s->adopt.head == s->adopt.n)
        adopt_finish(s, NULL);
    try_write(s);
}

/* XRANGE id id: [[id, [f, v, ...]]] or [] when the entry was trimmed. */
static void adopt_range(struct ru_stream *s, const redisReply *r)
{
    if (!s->adopt.active || s->adopt.head == s->adopt.n)
        return;
    struct ru_sid id = s->adopt.ids[s->adopt.head++];
    size_t k = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2 &&
        r->element[0]->element[1]->type == REDIS_REPLY_ARRAY) {
        k = take_fields(s, r->element[0]->element[1]);
    }
    if (s->cb.on_adopt_entry)
        s->cb.on_adopt_entry(s->cb.ud, &id, k ? s->fields : NULL, k);
    if (!s->adopt.more && s->adopt.head == s->adopt.n)
        adopt_finish(s, NULL);
}

static void send_xinfo_consumers(struct ru_stream *s, const struct cmd *k)
{
    argv_reserve(s, 4);
    ARG(0, "XINFO");
    ARG(1, "CONSUMERS");
    ARG(2, s->stream);
    ARG(3, s->group);
    send_argv(s, k, 4);
}

int ru_stream_list_consumers(struct ru_stream *s)
{
    if (s->state != S_LIVE)
        return -1;
    send_xinfo_consumers(s, &C_XINFO_CONSUMERS);
    try_write(s);
    return 0;
}

static void parse_consumers(struct ru_stream *s, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || s->cb.on_consumer == NULL)
        return;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *c = r->element[i];
        if (c->type != REDIS_REPLY_ARRAY)
            continue;
        const char *name = NULL;
        long long pending = 0, idle = 0;
        for (size_t j = 0; j + 1 < c->elements; j += 2) {
            const redisReply *k = c->element[j], *v = c->element[j + 1];
            if (k->str == NULL)
                continue;
            if (strcmp(k->str, "name") == 0 && v->str)
                name = v->str;
            else if (strcmp(k->str, "pending") == 0 && v->type == REDIS_REPLY_INTEGER)
                pending = v->integer;
            else if (strcmp(k->str, "idle") == 0 && v->type == REDIS_REPLY_INTEGER)
                idle = v->integer;
        }
        if (name && strcmp(name, s->consumer) != 0)
            s->cb.on_consumer(s->cb.ud, name, pending, idle);
    }
}

/* ---- recovery (lone consumer) ---- */

static void start_replay(struct ru_stream *s)
{
    s->backoff_ms = 0;
    s->redirects = 0;
    s->last_err[0] = '\0';
    s->state = S_REPLAY;
    memset(&s->cursor, 0, sizeof(s->cursor));
    send_read(s);
}

static void start_check(struct ru_stream *s)
{
    s->state = S_CHECK;
    send_xinfo_consumers(s, &C_CHECK_CONSUMERS);
    ARG(0, "XINFO");
    ARG(1, "GROUPS");
    ARG(2, s->stream);
    if (s->c)
        send_argv(s, &C_RECOVER_GROUPS, 3);
    ARG(1, "STREAM");
    if (s->c)
        send_argv(s, &C_RECOVER_STREAM, 3);
}

static void check_consumers(struct ru_stream *s, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR) {
        char why[200];
        snprintf(why, sizeof(why), "XINFO CONSUMERS: %s", r->str);
        disconnect(s, why);
        return;
    }
    /* Other rollupd processes cannot be reading (the group's PostgreSQL lock keeps them
     * out); this guards against readers that take no lock. A lone consumer wants the
     * group to itself. A shared-group consumer recovering a lone consumer's entries only
     * waits for consumers that read recently: a stopped one is harmless. */
    long long alive_ms = 3LL * s->block_ms + 10000;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *name = map_get(r->element[i], "name");
        const redisReply *pend = map_get(r->element[i], "pending");
        const redisReply *idle = map_get(r->element[i], "idle");
        if (name == NULL || name->str == NULL || strcmp(name->str, s->consumer) == 0)
            continue;
        long long np = pend && pend->type == REDIS_REPLY_INTEGER ? pend->integer : -1;
        long long ni = idle && idle->type == REDIS_REPLY_INTEGER ? idle->integer : 0;
        if (!s->lone && ni >= alive_ms)
            continue;
        char why[600];
        if (s->lone)
            snprintf(why, sizeof(why),
                     "consumer '%.60s' is also in group %.60s (%lld pending): a lone consumer "
                     "needs the group to itself. If no rollupd runs as '%.60s': with 0 pending, "
                     "remove it (XGROUP DELCONSUMER); with entries pending, run it once more as "
                     "a shared-group consumer until they are committed, or let a shared-group "
                     "rollupd take them over (rollupctl adopt). Or set lone_consumer = false here",
                     name->str, s->group, np, name->str);
        else
            snprintf(why, sizeof(why),
                     "consumer '%.60s' of group %.60s read %lld ms ago, while entries a lone "
                     "consumer read without acknowledgement are to be recovered: waiting until no "
                     "reader that takes no rollupd lock is active",
                     name->str, s->group, ni);
        ru_err("msg=\"%s\"", why);
        disconnect(s, why);
        return;
    }
}

static void send_dead_scan(struct ru_stream *s, const struct ru_sid *before)
{
    char end[RU_SID_STRLEN + 1] = "+";
    if (before) {
        end[0] = '(';
        ru_sid_format(before, end + 1);
    }
    argv_reserve(s, 6);
    ARG(0, "XREVRANGE");
    ARG(1, s->dead);
    ARG(2, end);
    ARG(3, "-");
    ARG(4, "COUNT");
    ARG(5, DEAD_SCAN_PAGE_S);
    send_argv(s, &C_DEAD_SCAN, 6);
}

static void recovery_done(struct ru_stream *s)
{
    if (!s->lone)
        s->recover = false; /* acknowledged reading from here on */
    s->ndead = 0;
    s->dl_lost = false; /* any copy lost with a connection was found or written again */
    start_replay(s);
}

static void begin_recovery(struct ru_stream *s)
{
    struct ru_sid from = recover_from(s);
    if (!s->recover) {
        /* Nothing owed (a lone consumer's first run): what the group delivered so far was
         * never this consumer's. NOACK reads wait until that starting point and the lone
         * mark are committed together, so no recovery can ever start below it. No copy
         * can be lost yet: without a NOACK read every entry is in the pending list. */
        s->dl_lost = false;
        if (ru_sid_cmp(&s->rec_end, &s->floor) > 0)
            s->floor = s->rec_end;
        s->floor_set = true;
        s->hold = true;
        start_replay(s);
        return;
    }
    s->stats.recoveries++;
    struct ru_sid held = ru_sid_cmp(&s->last_seen, &from) > 0 ? s->last_seen : from;
    if (s->rec_deleted_known && ru_sid_cmp(&s->rec_deleted, &held) > 0 && s->cb.on_gap)
        s->cb.on_gap(s->cb.ud, &held, &s->rec_deleted);
    char a[RU_SID_STRLEN], b[RU_SID_STRLEN];
    ru_sid_format(&from, a);
    ru_sid_format(&s->rec_end, b);
    if (ru_sid_cmp(&s->rec_end, &from) <= 0) {
        ru_info("msg=\"recovery: nothing delivered after the start point\" from=%s", a);
        recovery_done(s);
        return;
    }
    ru_info("msg=\"recovery: reading again what the group delivered\" after=%s through=%s", a, b);
    s->cursor = from;
    s->scan_stop = s->dead_pos;
    s->scan_stop_known = s->dead_pos_known;
    s->ndead = 0;
    s->dead_scanned = 0;
    send_dead_scan(s, NULL);
}

/* One page of XREVRANGE <dead>: this group's dead letters of entries after the start
 * point (notes, which carry only the id and a reason, are not dead letters), newest
 * first, down to the dead-letter position stored with the checkpoint. */
static void dead_scan_page(struct ru_stream *s, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY) {
        char why[200];
        snprintf(why, sizeof(why), "XREVRANGE %s: %s", s->dead,
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        disconnect(s, why);
        return;
    }
    bool done = r->elements < DEAD_SCAN_PAGE;
    struct ru_sid last = {0, 0};
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !sid_of(e->element[0], &last))
            continue;
        s->dead_scanned++;
        /* Copies of entries after the checkpoint were all written after the dead-letter
         * position stored with it (dead-letter ids only grow), whatever the entries' own
         * ids say. A checkpoint of an earlier build has none: then the copy's time, which
         * assumes entry ids follow the clock. */
        if (s->scan_stop_known ? ru_sid_cmp(&last, &s->scan_stop) <= 0 : last.ms < s->cursor.ms) {
            done = true;
            break;
        }
        const redisReply *f = e->element[1];
        struct ru_sid x;
        if (f->type != REDIS_REPLY_ARRAY || f->elements <= 4 ||
            !sid_of(map_get(f, "rollupd.entry_id"), &x) || ru_sid_cmp(&x, &s->cursor) <= 0)
            continue;
        const redisReply *g = map_get(f, "rollupd.group");
        if (g && g->str && strcmp(g->str, s->group) != 0)
            continue; /* another group's copy (one without the field predates it) */
        if (s->ndead == s->dead_cap) {
            s->dead_cap = s->dead_cap ? s->dead_cap * 2 : 64;
            s->dead_ids = ru_xrealloc(s->dead_ids, s->dead_cap * sizeof(*s->dead_ids));
        }
        s->dead_ids[s->ndead++] = x;
    }
    if (!done && s->dead_scanned < DEAD_SCAN_MAX) {
        send_dead_scan(s, &last);
        return;
    }
    if (!done)
        ru_warn("msg=\"recovery: dead-letter scan stopped after %d entries; an invalid entry "
                "copied before that point may be copied again\" dead_letter_stream=%s",
                DEAD_SCAN_MAX, s->dead);
    if (s->ndead > 1)
        qsort(s->dead_ids, s->ndead, sizeof(*s->dead_ids), sid_cmp_void);
    s->state = S_RECOVER;
    send_read(s);
}

/* A confirmed dead-letter copy's id: the newest one is stored with the next checkpoint. */
static void note_dead_copy(struct ru_stream *s, const redisReply *id)
{
    struct ru_sid x;
    if (sid_of(id, &x) && ru_sid_cmp(&x, &s->dead_last) > 0)
        s->dead_last = x;
}

/* Entries in an XREADGROUP reply [[stream, [entry, ...]]] (0 for nil or an error). */
static size_t reply_entries(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1)
        return 0;
    const redisReply *st = r->element[0];
    if (st->type != REDIS_REPLY_ARRAY || st->elements < 2 ||
        st->element[1]->type != REDIS_REPLY_ARRAY)
        return 0;
    return st->element[1]->elements;
}

/* NOPERM: the ACL user lacks a command or a key. A reconnect does not fix that, so it is
 * one error naming the command, and the next attempt comes after BACKOFF_MAX_MS rather
 * than at reconnect speed (a changed ACL is picked up then, without a restart). The
 * fence's commands only warn (reading goes on unfenced), and an adoption reports the
 * refusal to the operator who asked for it. Returns true when r was such a refusal. */
static bool acl_refused(struct ru_stream *s, const struct cmd *k, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ERROR || !is_error(r, "NOPERM") || k->noperm == NOPERM_HANDLED ||
        (k->noperm == NOPERM_HANDLED_AUTO && s->cluster_mode == 'a'))
        return false;
    char why[sizeof(s->last_err)];
    snprintf(why, sizeof(why),
             "the Redis ACL refuses %s to user '%s' (%.150s): grant it +%s on keys %s and %s "
             "(README: Least privilege has the ACL SETUSER line of each mode); next attempt in "
             "%d s",
             k->acl, s->user ? s->user : "default", r->str, k->acl, s->stream, s->dead,
             BACKOFF_MAX_MS / 1000);
    s->backoff_ms = BACKOFF_MAX_MS;
    disconnect(s, why);
    return true;
}

/* ---- reply handlers, one per command ---- */

static void on_auth(struct ru_stream *s, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR)
        failf(s, "AUTH: %s", r->str);
}

static void on_select(struct ru_stream *s, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR)
        failf(s, "SELECT: %s", r->str);
}

static void on_group_create(struct ru_stream *s, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR && !is_error(r, "BUSYGROUP")) {
        failf(s, "XGROUP CREATE: %s", r->str);
        return;
    }
    if (r->type != REDIS_REPLY_ERROR && s->group_known) {
        s->stats.group_recreated++;
        if (s->cb.on_group_recreated)
            s->cb.on_group_recreated(s->cb.ud);
    }
    s->group_known = true;
    if (s->cluster)
        send_id_guard(s);
    if (s->state == S_HANDSHAKE) {
        /* nothing is read until the owner has seen its lock alive after the fence */
        s->state = S_GATE;
        if (s->cb.on_gate)
            s->cb.on_gate(s->cb.ud);
    }
}

static void on_recover_groups(struct ru_stream *s, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR) {
        failf(s, "XINFO GROUPS: %s", r->str);
        return;
    }
    memset(&s->rec_end, 0, sizeof(s->rec_end));
    sid_of(map_get(our_group(s, r), "last-delivered-id"), &s->rec_end);
}

static void on_recover_stream(struct ru_stream *s, const redisReply *r)
{
    /* max-deleted-entry-id exists from Redis 7.0; without it a gap goes unseen */
    s->rec_deleted_known =
        r->type == REDIS_REPLY_ARRAY && sid_of(map_get(r, "max-deleted-entry-id"), &s->rec_deleted);
    begin_recovery(s);
}

static void on_read_recover(struct ru_stream *s, const redisReply *r)
{
    int sent = read_answered(s);
    s->stats.reads++;
    if (r->type != REDIS_REPLY_ARRAY) {
        failf(s, "XRANGE: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        return;
    }
    bool full = r->elements >= (size_t)sent;
    adapt_count(s, r->elements, sent);
    size_t n = handle_entry_list(s, r, RU_FROM_RECOVERY);
    bool done = !full || ru_sid_cmp(&s->cursor, &s->rec_end) >= 0;
    if (s->cb.on_batch)
        s->cb.on_batch(s->cb.ud, n, full, true);
    if (s->c == NULL || s->state != S_RECOVER)
        return;
    if (done)
        recovery_done(s);
    else
        send_read(s);
}

/* CLIENT SETNAME and CLIENT ID */
static void on_client_id(struct ru_stream *s, const redisReply *r)
{
    if (r->type == REDIS_REPLY_INTEGER)
        s->my_id = r->integer;
    else if (r->type == REDIS_REPLY_ERROR)
        fence_kill(s, r); /* warns once */
}

static void on_client_list(struct ru_stream *s, const redisReply *r)
{
    if (s->my_id > 0)
        fence_kill(s, r);
    else if (!s->fence_warned && r->type == REDIS_REPLY_STRING)
        ru_warn("msg=\"CLIENT ID not answered: no connection closed before reading\"");
    group_create_after_fence(s);
    try_write(s);
}

static void on_xsetid(struct ru_stream *s, const redisReply *r)
{
    (void)s;
    if (r->type == REDIS_REPLY_ERROR)
        ru_warn("msg=\"XSETID refused: entries added now may get ids at or below the "
                "checkpoint and be skipped; grant +xsetid on the stream key\" error=\"%s\"",
                r->str);
}

static void on_client_kill(struct ru_stream *s, const redisReply *r)
{
    (void)s;
    if (r->type == REDIS_REPLY_ERROR && !is_error(r, "ERR No such client"))
        ru_warn("msg=\"could not close a connection that may still read for this consumer\" "
                "error=\"%s\"",
                r->str);
}

static void on_xadd_dl(struct ru_stream *s, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR) {
        /* without a pending entry the copy would be gone for good: keep it owed, and
         * let the recovery of the next connection write it again */
        failf(s, "dead-letter copy refused: %s", r->str);
        return;
    }
    if (s->dl_inflight > 0)
        s->dl_inflight--;
    note_dead_copy(s, r);
    s->stats.dead_lettered++;
}

/* XREADGROUP, replaying this consumer's pending list (replay) or live. */
static void on_read(struct ru_stream *s, const redisReply *r, bool replay)
{
    int sent = read_answered(s);
    s->stats.reads++;
    if (!replay && s->state != S_LIVE) {
        /* the second of two live reads, answered after the first found the group
         * gone: whatever it delivered is in our pending list, which the replay after
         * the group's re-creation reads (a lone consumer's recovery reads it) */
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (is_error(r, "NOGROUP")) {
            /* the group vanished under us (FLUSHALL, restart without persistence) */
            group_create_after_fence(s);
            s->state = S_HANDSHAKE;
            return;
        }
        failf(s, "XREADGROUP: %s", r->str);
        return;
    }
    size_t got = reply_entries(r);
    bool full = got >= (size_t)sent;
    adapt_count(s, got, sent); /* before the next reads leave */
    /* A lone consumer's short reply: the next read will BLOCK, and the dead-letter
     * copies of this batch must not wait behind it (commits wait for them). */
    bool after = false;
    if (!replay) {
        /* keep Redis busy while we parse this batch: the next read leaves now, not
         * after the batch, and after a full batch a second one follows it */
        s->read_depth = full ? 2 : 1;
        after = s->lone && s->read_depth < 2;
        while (!after && send_read(s))
            ;
        try_write(s);
    }
    size_t n = handle_entries(s, r, replay);
    if (after && s->c && s->state == S_LIVE) {
        send_read(s);
        try_write(s);
    }
    if (replay && n == 0) {
        s->state = S_LIVE;
        s->next_xinfo_ms = 0;
        if (s->cb.on_state)
            s->cb.on_state(s->cb.ud, true, NULL);
        send_read(s);
    } else if (replay) {
        send_read(s);
    }
    if (s->cb.on_batch)
        s->cb.on_batch(s->cb.ud, n, full, replay);
}

static void on_read_replay(struct ru_stream *s, const redisReply *r)
{
    on_read(s, r, true);
}

static void on_read_live(struct ru_stream *s, const redisReply *r)
{
    on_read(s, r, false);
}

static void on_ack(struct ru_stream *s, const redisReply *r)
{
    (void)s;
    if (r->type == REDIS_REPLY_ERROR)
        ru_debug("msg=\"XACK failed\" error=\"%s\"", r->str);
}

/* MULTI, and the XADD and XACK queued in the transaction */
static void on_queued(struct ru_stream *s, const redisReply *r)
{
    s->exec_ok = true;
    if (r->type == REDIS_REPLY_ERROR) {
        s->exec_ok = false;
        ru_warn("msg=\"dead-letter command refused\" error=\"%s\"", r->str);
    }
}

static void on_exec_dl(struct ru_stream *s, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_ERROR)
        /* Redis does not roll back: the entry was acknowledged without its copy */
        ru_err("msg=\"dead-letter copy failed inside the transaction; the invalid entry "
               "was acknowledged without a copy\" error=\"%s\"",
               r->element[0]->str);
    else if (r->type == REDIS_REPLY_ARRAY)
        s->stats.dead_lettered++;
    else
        ru_warn("msg=\"dead-letter transaction failed\" error=\"%s\"",
                r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
}

/* EXEC of a copy of an entry without a pending entry */
static void on_exec_dl_lone(struct ru_stream *s, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY ||
        (r->elements >= 1 && r->element[0]->type == REDIS_REPLY_ERROR)) {
        failf(s, "dead-letter copy refused: %s",
              r->type == REDIS_REPLY_ERROR                                 ? r->str
              : r->type == REDIS_REPLY_ARRAY && r->element[0]->str != NULL ? r->element[0]->str
                                                                           : "no reply");
        return;
    }
    if (s->dl_inflight > 0)
        s->dl_inflight--;
    note_dead_copy(s, r->element[0]);
    on_exec_dl(s, r);
}

static void on_xinfo(struct ru_stream *s, const redisReply *r)
{
    s->xinfo_inflight = false;
    parse_xinfo(s, r);
}

static void on_note(struct ru_stream *s, const redisReply *r)
{
    (void)s;
    if (r->type == REDIS_REPLY_ERROR)
        ru_warn("msg=\"dead-letter note refused\" error=\"%s\"", r->str);
}

/* Room for a read of READ_CHUNK bytes after rend: what is left of the input (the start of
 * a reply) moves to the front, and the buffer grows while one reply needs more. Emptied
 * after a reply that grew it beyond READER_MAXBUF, it shrinks back. */
static void input_room(struct ru_stream *s)
{
    if (s->rstart == s->rend) {
        s->rstart = s->rend = 0;
        if (s->rcap > READER_MAXBUF) {
            free(s->rbuf);
            s->rcap = READ_CHUNK;
            s->rbuf = ru_xmalloc(s->rcap);
        }
    }
    if (s->rcap - s->rend >= READ_CHUNK)
        return;
    if (s->rstart > 0) {
        memmove(s->rbuf, s->rbuf + s->rstart, s->rend - s->rstart);
        s->rend -= s->rstart;
        s->rstart = 0;
    }
    if (s->rcap - s->rend < READ_CHUNK) {
        while (s->rcap - s->rend < READ_CHUNK)
            s->rcap *= 2;
        s->rbuf = ru_xrealloc(s->rbuf, s->rcap);
    }
}

/* Reads what the socket has and handles each complete reply in place: no copy of its
 * strings (hiredis still formats and writes the commands). */
static void read_replies(struct ru_stream *s)
{
    for (;;) {
        input_room(s);
        ssize_t n = read(s->c->fd, s->rbuf + s->rend, READ_CHUNK);
        if (n == 0) {
            disconnect(s, "connection closed by server");
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR)
                continue;
            char why[160];
            snprintf(why, sizeof(why), "read: %s", strerror(errno));
            disconnect(s, why);
            return;
        }
        s->rend += (size_t)n;
        for (;;) {
            char err[64];
            ssize_t len =
                ru_resp_scan(&s->scan, s->rbuf + s->rstart, s->rend - s->rstart, err, sizeof(err));
            if (len < 0) {
                char why[160];
                snprintf(why, sizeof(why), "protocol error: %s", err);
                disconnect(s, why);
                return;
            }
            if (len == 0)
                break;
            if (s->qlen == 0) {
                disconnect(s, "unexpected reply");
                return;
            }
            redisReply *reply = ru_resp_build(s->rbuf + s->rstart, (size_t)len, &s->scan, s->arena);
            ru_resp_scan_reset(&s->scan);
            s->reply_bytes = (size_t)len;
            s->in_reply = true;
            const struct cmd *k = q_pop(s);
            if (!cluster_error(s, reply) && !acl_refused(s, k, reply))
                k->on_reply(s, reply);
            s->in_reply = false;
            s->reply_bytes = 0;
            s->rstart += (size_t)len;
            ru_reply_arena_reset(s->arena);
            if (s->c == NULL) { /* the handler disconnected */
                s->rstart = s->rend = 0;
                ru_resp_scan_reset(&s->scan);
                return;
            }
        }
        if ((size_t)n < READ_CHUNK)
            break;
    }
    try_write(s);
}

int ru_stream_fd(const struct ru_stream *s)
{
    return s->c ? s->c->fd : -1;
}

short ru_stream_events(const struct ru_stream *s)
{
    if (s->c == NULL)
        return 0;
    if (s->state == S_CONNECTING)
        return POLLOUT;
    short ev = POLLIN;
    if (s->c->obuf && s->c->obuf[0] != '\0')
        ev |= POLLOUT;
    return ev;
}

void ru_stream_on_ready(struct ru_stream *s, short revents)
{
    if (s->c == NULL)
        return;
    if (s->state == S_CONNECTING) {
        if (!(revents & (POLLOUT | POLLERR | POLLHUP)))
            return;
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(s->c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err) {
            char why[160];
            snprintf(why, sizeof(why), "connect: %s", strerror(err));
            disconnect(s, why);
            return;
        }
        start_handshake(s);
        return;
    }
    if (revents & (POLLIN | POLLHUP | POLLERR))
        read_replies(s);
    if (s->c && (revents & POLLOUT))
        try_write(s);
}

int ru_stream_tick(struct ru_stream *s)
{
    int64_t now = ru_mono_ms();
    if (!s->started)
        return 1000;
    if (s->state == S_DOWN) {
        if (s->suspended)
            return 1000;
        if (now >= s->next_attempt_ms)
            connect_now(s);
        else
            return (int)(s->next_attempt_ms - now);
    }
    if (s->state == S_CONNECTING && now > s->connect_deadline_ms) {
        /* no answer at all, not a refusal: packets dropped on the way, most often by a
         * firewall such as the systemd unit's IPAddressAllow= (see rollupd(8)) */
        disconnect(s, "connect timed out (no answer: packets dropped, e.g. by the unit's "
                      "IPAddressAllow=, or the host is down)");
        return 10;
    }
    /* A server that stops answering (paused, partitioned) looks like a slow BLOCK;
     * give it the block time plus the connect timeout before giving up. */
    bool may_block_forever = s->block_ms == 0 && s->reads_inflight > 0 && s->state == S_LIVE;
    if (s->c && s->qlen > 0 && !may_block_forever &&
        now - s->oldest_sent_ms > s->block_ms + s->connect_timeout_ms) {
        disconnect(s, "server did not answer in time");
        return 10;
    }
    if (s->state == S_LIVE && !s->paused && !s->xinfo_inflight && now >= s->next_xinfo_ms) {
        s->xinfo_inflight = true;
        s->next_xinfo_ms = now + XINFO_EVERY_MS;
        argv_reserve(s, 3);
        ARG(0, "XINFO");
        ARG(1, "GROUPS");
        ARG(2, s->stream);
        send_argv(s, &C_XINFO, 3);
        try_write(s);
    }
    return 1000;
}

bool ru_stream_connected(const struct ru_stream *s)
{
    return s->state >= S_RECOVER;
}

bool ru_stream_recovery_owed(const struct ru_stream *s)
{
    return s->recover || (s->lone && s->marked);
}

void ru_stream_release_noack(struct ru_stream *s, const struct ru_sid *committed)
{
    /* a commit of an earlier connection's starting point does not cover a later one */
    if (!s->hold || ru_sid_cmp(committed, &s->floor) < 0)
        return;
    s->hold = false;
    s->marked = true;
    if (s->state == S_LIVE) {
        send_read(s);
        try_write(s);
    }
}

void ru_stream_refresh_info(struct ru_stream *s)
{
    s->next_xinfo_ms = 0; /* the next tick asks, after what is queued (the XACKs) */
}

bool ru_stream_commit_blocked(const struct ru_stream *s)
{
    return s->dl_inflight > 0 || s->dl_lost;
}

bool ru_stream_take_floor(struct ru_stream *s, struct ru_sid *out)
{
    if (!s->floor_set)
        return false;
    s->floor_set = false;
    *out = s->floor;
    return true;
}

bool ru_stream_live(const struct ru_stream *s)
{
    return s->state == S_LIVE;
}

bool ru_stream_idle(const struct ru_stream *s)
{
    /* a blocked read counts as outstanding: when stopping, its reply may carry entries
     * Redis has already assigned to us, which must be taken in and flushed */
    return s->c == NULL || s->qlen == 0;
}

const char *ru_stream_last_error(const struct ru_stream *s)
{
    return s->last_err;
}

const struct ru_stream_stats *ru_stream_stats(const struct ru_stream *s)
{
    return &s->stats;
}

bool ru_stream_cluster(const struct ru_stream *s)
{
    return s->cluster;
}

void ru_stream_node(const struct ru_stream *s, char *out, size_t len)
{
    if (s->path != NULL || s->at.host[0] == '\0')
        ru_strlcpy(out, "", len);
    else
        snprintf(out, len, "%s:%d", s->at.host, s->at.port);
}

const struct ru_sid *ru_stream_last_seen(const struct ru_stream *s)
{
    return &s->last_seen;
}

void ru_stream_set_read_budget(struct ru_stream *s, size_t bytes)
{
    s->read_budget = bytes;
    if (bytes > 0 && s->entry_bytes > 0 && (size_t)s->read_count > bytes / s->entry_bytes)
        set_read_count(s, bytes / s->entry_bytes);
}

size_t ru_stream_mem(const struct ru_stream *s)
{
    return ru_reply_arena_size(s->arena) + s->rcap;
}

int ru_stream_read_count(const struct ru_stream *s)
{
    return s->read_count;
}

size_t ru_stream_entry_bytes(const struct ru_stream *s)
{
    if (s->entry_bytes > 0)
        return s->entry_bytes;
    /* nothing measured yet: as if the next read filled its budget */
    return s->read_budget > 0 ? s->read_budget / (size_t)s->read_count : 1024;
}
