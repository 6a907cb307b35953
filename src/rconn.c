#include "rollupd/rconn.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rollupd/adopt.h"
#include "rollupd/cluster.h"
#include "rollupd/log.h"
#include "rollupd/lone.h"

#define BACKOFF_MIN_MS 100
/* The read buffer (rbuf) keeps up to this much between replies; one that a large reply
 * grew beyond it shrinks back once it is empty (input_room). */
#define READER_MAXBUF (4 * 1024 * 1024)
/* The read buffer's live part moves to the front only once what was handled before it is
 * this many times as large (input_room). */
#define COMPACT_RATIO 4

#define ARG(i, str) RU_RCONN_ARG(s, i, str)

/* ---- command queue ---- */

static void q_push(struct ru_stream *s, const struct ru_rconn_cmd *k)
{
    if (s->qlen == s->qcap) {
        size_t cap = s->qcap ? s->qcap * 2 : 64;
        const struct ru_rconn_cmd **q = ru_xmalloc(cap * sizeof(*q));
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

static const struct ru_rconn_cmd *q_pop(struct ru_stream *s)
{
    const struct ru_rconn_cmd *k = s->q[s->qhead];
    s->qhead = (s->qhead + 1) % s->qcap;
    s->qlen--;
    s->oldest_sent_ms = ru_mono_ms();
    return k;
}

void ru_rconn_argv_reserve(struct ru_stream *s, size_t n)
{
    if (n <= s->argv_cap)
        return;
    s->argv = ru_xrealloc(s->argv, n * sizeof(*s->argv));
    s->argvlen = ru_xrealloc(s->argvlen, n * sizeof(*s->argvlen));
    s->argv_cap = n;
}

void ru_rconn_send(struct ru_stream *s, const struct ru_rconn_cmd *k, int argc)
{
    if (s->c == NULL)
        return; /* an earlier command of the same step ended the connection */
    if (redisAppendCommandArgv(s->c, argc, s->argv, s->argvlen) != REDIS_OK) {
        ru_rconn_drop(s, "cannot format command");
        return;
    }
    q_push(s, k);
}

void ru_rconn_send_formatted(struct ru_stream *s, const struct ru_rconn_cmd *k, const char *cmd,
                             size_t len)
{
    if (s->c == NULL)
        return; /* an earlier command of the same step ended the connection */
    if (redisAppendFormattedCommand(s->c, cmd, len) != REDIS_OK) {
        ru_rconn_drop(s, "cannot format command");
        return;
    }
    q_push(s, k);
}

void ru_rconn_flush(struct ru_stream *s)
{
    if (s->c == NULL || s->state == RU_S_CONNECTING)
        return;
    int done = 0;
    if (redisBufferWrite(s->c, &done) != REDIS_OK) {
        char why[sizeof(s->c->errstr)]; /* ru_rconn_drop frees the context that holds it */
        ru_strlcpy(why, s->c->errstr[0] ? s->c->errstr : "write failed", sizeof(why));
        ru_rconn_drop(s, why);
    }
}

/* ---- connection ---- */

void ru_rconn_set_error(struct ru_stream *s, const char *why)
{
    ru_strlcpy(s->last_err, why, sizeof(s->last_err));
}

static void schedule_reconnect(struct ru_stream *s)
{
    s->next_attempt_ms =
        ru_mono_ms() + ru_backoff_next(&s->backoff_ms, BACKOFF_MIN_MS, RU_RCONN_BACKOFF_MAX_MS);
}

void ru_rconn_drop(struct ru_stream *s, const char *why)
{
    if (s->c) {
        redisFree(s->c);
        s->c = NULL;
    }
    if (!s->in_reply) { /* else the reply being walked lives on until it is done */
        ru_reply_arena_reset(s->arena);
        s->rstart = s->rend = 0;
        ru_resp_scan_reset(&s->scan);
    }
    s->state = RU_S_DOWN;
    s->qlen = 0;
    s->qhead = 0;
    s->reads_inflight = 0;
    s->read_depth = 1;
    s->xinfo_inflight = false;
    ru_lone_dropped(s);
    s->my_id = 0;
    s->target_set = false; /* a redirection sets it again after this */
    ru_rconn_set_error(s, why);
    schedule_reconnect(s);
    ru_adopt_dropped(s, why);
    if (s->cb.on_state && !s->quiet_drop)
        s->cb.on_state(s->cb.ud, false, s->refused ? RU_DOWN_REFUSED : RU_DOWN_LOST, why);
    s->quiet_drop = false;
    s->refused = false;
}

void ru_rconn_refuse(struct ru_stream *s, const char *why)
{
    s->refused = true;
    ru_rconn_drop(s, why);
}

void ru_rconn_failf(struct ru_stream *s, const char *fmt, ...)
{
    char why[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    ru_rconn_drop(s, why);
}

static void on_auth(struct ru_stream *s, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR)
        ru_rconn_failf(s, "AUTH: %s", r->str);
}

static const struct ru_rconn_cmd C_AUTH = {on_auth, "auth", RU_RCONN_NOPERM_FATAL, 0};

static void on_select(struct ru_stream *s, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR)
        ru_rconn_failf(s, "SELECT: %s", r->str);
}

static const struct ru_rconn_cmd C_SELECT = {on_select, "select", RU_RCONN_NOPERM_FATAL, 0};

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
    s->quiet_drop = s->state < RU_S_GATE; /* logged above; not a lost connection */
    ru_rconn_drop(s, why);
    s->target = *to;
    s->target_set = true;
    if (s->redirects++ < 3) {
        s->backoff_ms = backoff;
        s->next_attempt_ms = 0;
    }
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
        ru_rconn_drop(s, why);
        return true;
    case RU_CLUSTER_RETRY:
        snprintf(why, sizeof(why), "cluster: %.200s", r->str);
        ru_rconn_drop(s, why);
        return true;
    }
    return false;
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
        ru_rconn_failf(s,
                       "CLUSTER SLOTS: %s (redis.cluster is \"on\": point redis.url at a cluster "
                       "node, or set it to \"auto\")",
                       r->str);
        return;
    }
    s->cluster = true;
    ru_cluster_nodes_learn(&s->nodes, r, &s->at);
    unsigned dslot = ru_cluster_keyslot(s->dead, strlen(s->dead));
    if (dslot != s->slot) {
        s->backoff_ms = RU_RCONN_BACKOFF_MAX_MS;
        ru_rconn_failf(s,
                       "this is a Redis Cluster and the dead-letter stream %s (slot %u) is not in "
                       "the slot of %s (%u): give both the same hash tag (redis.stream \"x:{0}\" "
                       "and its default dead-letter stream); nothing is read until then",
                       s->dead, dslot, s->stream, s->slot);
        return;
    }
    struct ru_cluster_node owner;
    if (ru_cluster_owner(r, s->slot, &s->at, &owner, why, sizeof(why)) < 0) {
        ru_rconn_drop(s, why);
        return;
    }
    if (!ru_cluster_node_eq(&owner, &s->at))
        redirect(s, &owner, "CLUSTER SLOTS: another node serves the stream's slot");
}

static const struct ru_rconn_cmd C_CLUSTER_SLOTS = {cluster_slots, "cluster|slots",
                                                    RU_RCONN_NOPERM_HANDLED_AUTO, 0};

static void start_handshake(struct ru_stream *s)
{
    s->state = RU_S_HANDSHAKE;
    if (s->path == NULL)
        redisEnableKeepAlive(s->c); /* notice a peer that vanished without a FIN */
    ru_reply_arena_attach(s->arena, s->c->reader);
    /* keep the reader's buffer between replies of a usual size: freeing it whenever it
     * empties (hiredis' default above 16 KiB) reallocates and refills it for every batch */
    s->c->reader->maxbuf = READER_MAXBUF;
    if (s->password) {
        ru_rconn_argv_reserve(s, 3);
        int n = 0;
        ARG(n++, "AUTH");
        if (s->user)
            ARG(n++, s->user);
        ARG(n++, s->password);
        ru_rconn_send(s, &C_AUTH, n);
    }
    if (s->db != 0) {
        char dbs[16];
        snprintf(dbs, sizeof(dbs), "%d", s->db);
        ru_rconn_argv_reserve(s, 2);
        ARG(0, "SELECT");
        ARG(1, dbs);
        ru_rconn_send(s, &C_SELECT, 2);
    }
    if (s->cluster_mode != 'n' && s->path == NULL && s->db == 0 && s->c) {
        ru_rconn_argv_reserve(s, 2);
        ARG(0, "CLUSTER");
        ARG(1, "SLOTS");
        ru_rconn_send(s, &C_CLUSTER_SLOTS, 2);
    }
    ru_stream_handshake(s);
}

void ru_rconn_connect(struct ru_stream *s)
{
    if (s->path) {
        s->c = redisConnectUnixNonBlock(s->path);
    } else {
        pick_node(s);
        s->c = redisConnectNonBlock(s->at.host, s->at.port);
    }
    if (s->c == NULL) {
        ru_rconn_drop(s, "cannot allocate redis context");
        return;
    }
    if (s->c->err) {
        ru_rconn_failf(s, "connect: %s", s->c->errstr);
        return;
    }
    s->state = RU_S_CONNECTING;
    s->connect_deadline_ms = ru_mono_ms() + s->connect_timeout_ms;
    s->stats.reconnects++;
}

/* ---- replies ---- */

bool ru_rconn_is_error(const redisReply *r, const char *prefix)
{
    return r->type == REDIS_REPLY_ERROR && strncmp(r->str, prefix, strlen(prefix)) == 0;
}

/* The value of key in a flat [key, value, ...] reply, or NULL. */
const redisReply *ru_rconn_map_get(const redisReply *m, const char *key)
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

bool ru_rconn_sid_of(const redisReply *v, struct ru_sid *out)
{
    return v && (v->type == REDIS_REPLY_STRING || v->type == REDIS_REPLY_STATUS) &&
           ru_sid_parse(out, v->str, v->len) == 0;
}

/* NOPERM: the ACL user lacks a command or a key. A reconnect does not fix that, so it is
 * one error naming the command, and the next attempt comes after RU_RCONN_BACKOFF_MAX_MS rather
 * than at reconnect speed (a changed ACL is picked up then, without a restart). The
 * fence's commands only warn (reading goes on unfenced), and an adoption reports the
 * refusal to the operator who asked for it. Returns true when r was such a refusal. */
static bool acl_refused(struct ru_stream *s, const struct ru_rconn_cmd *k, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ERROR || !ru_rconn_is_error(r, "NOPERM") ||
        k->noperm == RU_RCONN_NOPERM_HANDLED ||
        (k->noperm == RU_RCONN_NOPERM_HANDLED_AUTO && s->cluster_mode == 'a'))
        return false;
    s->backoff_ms = RU_RCONN_BACKOFF_MAX_MS;
    ru_rconn_failf(s,
                   "the Redis ACL refuses %s to user '%s' (%.150s): grant it +%s on keys %s and %s "
                   "(README: Least privilege has the ACL SETUSER line of each mode); next attempt "
                   "in %d s",
                   k->acl, s->user ? s->user : "default", r->str, k->acl, s->stream, s->dead,
                   RU_RCONN_BACKOFF_MAX_MS / 1000);
    return true;
}

/* Room for a read of RU_RCONN_READ_CHUNK bytes after rend. What is left of the input (the
 * start of a reply) moves to the front once what was handled before it is COMPACT_RATIO
 * times as large, or the buffer holds READER_MAXBUF; until then the buffer grows. With two
 * reads in flight the start of the next reply is nearly always there, and moving it after
 * every reply copied most of the input a second time; so a byte is moved a fraction
 * (1 / COMPACT_RATIO) of the times it is read, at the price of a larger buffer (counted
 * in ru_stream_mem). Emptied after a reply that grew it beyond READER_MAXBUF, it shrinks
 * back. */
static void input_room(struct ru_stream *s)
{
    if (s->rstart == s->rend) {
        s->rstart = s->rend = 0;
        if (s->rcap > READER_MAXBUF) {
            free(s->rbuf);
            s->rcap = RU_RCONN_READ_CHUNK;
            s->rbuf = ru_xmalloc(s->rcap);
        }
    }
    if (s->rcap - s->rend >= RU_RCONN_READ_CHUNK)
        return;
    size_t live = s->rend - s->rstart;
    if (s->rstart > 0 && (s->rstart >= COMPACT_RATIO * live || s->rcap >= READER_MAXBUF)) {
        memmove(s->rbuf, s->rbuf + s->rstart, live);
        s->rend -= s->rstart;
        s->rstart = 0;
    }
    if (s->rcap - s->rend < RU_RCONN_READ_CHUNK) {
        while (s->rcap - s->rend < RU_RCONN_READ_CHUNK)
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
        ssize_t n = read(s->c->fd, s->rbuf + s->rend, RU_RCONN_READ_CHUNK);
        if (n == 0) {
            ru_rconn_drop(s, "connection closed by server");
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR)
                continue;
            ru_rconn_failf(s, "read: %s", strerror(errno));
            return;
        }
        s->rend += (size_t)n;
        for (;;) {
            char err[64];
            ssize_t len = ru_resp_scan_indexed(&s->scan, &s->index, s->rbuf + s->rstart,
                                               s->rend - s->rstart, err, sizeof(err));
            if (len < 0) {
                ru_rconn_failf(s, "protocol error: %s", err);
                return;
            }
            if (len == 0)
                break;
            if (s->qlen == 0) {
                ru_rconn_drop(s, "unexpected reply");
                return;
            }
            const struct ru_rconn_cmd *k = q_pop(s);
            redisReply *reply = ru_resp_build_lazy(s->rbuf + s->rstart, (size_t)len, &s->scan,
                                                   s->arena, k->lazy_at);
            s->reply_nodes = s->index.ok ? s->scan.nodes : 0;
            ru_resp_scan_reset(&s->scan);
            s->reply_bytes = (size_t)len;
            s->in_reply = true;
            if (!cluster_error(s, reply) && !acl_refused(s, k, reply))
                k->on_reply(s, reply);
            s->in_reply = false;
            s->reply_bytes = 0;
            s->reply_nodes = 0;
            s->rstart += (size_t)len;
            ru_reply_arena_reset(s->arena);
            if (s->c == NULL) { /* the handler disconnected */
                s->rstart = s->rend = 0;
                ru_resp_scan_reset(&s->scan);
                return;
            }
        }
        if ((size_t)n < RU_RCONN_READ_CHUNK)
            break;
    }
    ru_rconn_flush(s);
}

/* ---- poll integration ---- */

int ru_rconn_fd(const struct ru_stream *s)
{
    return s->c ? s->c->fd : -1;
}

short ru_rconn_events(const struct ru_stream *s)
{
    if (s->c == NULL)
        return 0;
    if (s->state == RU_S_CONNECTING)
        return POLLOUT;
    short ev = POLLIN;
    if (s->c->obuf && s->c->obuf[0] != '\0')
        ev |= POLLOUT;
    return ev;
}

void ru_rconn_on_ready(struct ru_stream *s, short revents)
{
    if (s->c == NULL)
        return;
    if (s->state == RU_S_CONNECTING) {
        if (!(revents & (POLLOUT | POLLERR | POLLHUP)))
            return;
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(s->c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err) {
            ru_rconn_failf(s, "connect: %s", strerror(err));
            return;
        }
        start_handshake(s);
        return;
    }
    if (revents & (POLLIN | POLLHUP | POLLERR))
        read_replies(s);
    if (s->c && (revents & POLLOUT))
        ru_rconn_flush(s);
}

int ru_rconn_tick(struct ru_stream *s, int64_t now)
{
    if (s->state == RU_S_DOWN) {
        if (s->suspended)
            return 1000;
        if (now >= s->next_attempt_ms)
            ru_rconn_connect(s);
        else
            return (int)(s->next_attempt_ms - now);
    }
    if (s->state == RU_S_CONNECTING && now > s->connect_deadline_ms) {
        /* no answer at all, not a refusal: packets dropped on the way, most often by a
         * firewall such as the systemd unit's IPAddressAllow= (see rollupd(8)) */
        ru_rconn_drop(s, "connect timed out (no answer: packets dropped, e.g. by the unit's "
                         "IPAddressAllow=, or the host is down)");
        return 10;
    }
    /* A server that stops answering (paused, partitioned) looks like a slow BLOCK;
     * give it the block time plus the connect timeout before giving up. */
    bool may_block_forever = s->block_ms == 0 && s->reads_inflight > 0 && s->state == RU_S_LIVE;
    if (s->c && s->qlen > 0 && !may_block_forever &&
        now - s->oldest_sent_ms > s->block_ms + s->connect_timeout_ms) {
        ru_rconn_drop(s, "server did not answer in time");
        return 10;
    }
    return -1;
}
