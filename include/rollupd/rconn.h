/* rconn: the Redis connection under the stream, and the state the stream's files share.
 * Not for use outside them: the daemon sees only stream.h.
 *
 * The stream is one object (struct ru_stream, below) made of eight files:
 * - rconn.c: the socket, the FIFO of commands sent (each entry carries the handler of
 *   its reply, like hiredis' callback list), connect, AUTH/SELECT, backoff, read
 *   timeouts, NOPERM, and following the stream's slot in a Redis Cluster (cluster.h);
 * - stream.c: the group read path (replay, XREADGROUP, entries, XACK), the owner's calls;
 * - readsize.c: the COUNT of the next read, sized to the entries and the memory budget
 *   (readsize.h);
 * - group.c: the consumer group on the server: XGROUP CREATE, XINFO GROUPS (lag,
 *   pending), XINFO CONSUMERS, the stream's last id after a failover (group.h);
 * - fence.c: closing other readers' connections before reading (fence.h);
 * - deadletter.c: copies of invalid entries in the dead-letter stream (deadletter.h);
 * - lone.c: a lone consumer's recovery (lone.h);
 * - adopt.c: reading another consumer's pending entries for an adoption (adopt.h).
 * Each reply handler sits next to the command that sends it.
 *
 * Errors: a handler that finds the connection unusable ends it with ru_rconn_failf (or
 * ru_rconn_drop; ru_rconn_refuse when the operator must act before reading goes on); the
 * reason becomes last_error and reaches the owner through on_state, which logs it. */
#ifndef ROLLUPD_RCONN_H
#define ROLLUPD_RCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "rollupd/cluster.h"
#include "rollupd/reply.h"
#include "rollupd/resp.h"
#include "rollupd/stream.h"
#include "rollupd/util.h"

#define RU_RCONN_SLOW_START     16           /* entries in the first read after a connect */
#define RU_RCONN_READ_CHUNK     (256 * 1024) /* bytes read from the socket at once */
#define RU_RCONN_BACKOFF_MAX_MS 30000

/* What a reply answers: the handler of its reply and its name as ACL rules know it. A
 * NOPERM reply ends the connection (the ACL will not change at the next attempt) unless
 * the handler deals with it. */
typedef void ru_rconn_reply_fn(struct ru_stream *s, const redisReply *r);
enum ru_rconn_noperm {
    RU_RCONN_NOPERM_FATAL,
    RU_RCONN_NOPERM_HANDLED,      /* the handler warns or reports it */
    RU_RCONN_NOPERM_HANDLED_AUTO, /* so, with redis.cluster "auto" */
};
struct ru_rconn_cmd {
    ru_rconn_reply_fn *on_reply;
    const char *acl;
    enum ru_rconn_noperm noperm;
    /* ru_resp_build_lazy's lazy_at for its reply: 0 builds the whole tree; for a list of
     * entries, which the handler walks with ru_stream_entry_list, the list's depth + 1 */
    int lazy_at;
};

/* RU_S_GATE: the handshake is done and the fence is up; nothing is read until the owner
 * (the daemon) has seen its PostgreSQL session alive after this point. RU_S_CHECK and
 * RU_S_RECOVER only for a lone consumer or one owing a recovery. */
enum ru_stream_state {
    RU_S_DOWN,
    RU_S_CONNECTING,
    RU_S_HANDSHAKE,
    RU_S_GATE,
    RU_S_CHECK,
    RU_S_RECOVER,
    RU_S_REPLAY,
    RU_S_LIVE
};

struct ru_stream {
    /* copied configuration */
    char *host, *path, *user, *password;
    int port, db;
    char *stream, *group, *consumer, *dead, *start;
    int count, block_ms, connect_timeout_ms;
    char block_s[16];

    struct ru_stream_cb cb;
    redisContext *c;
    enum ru_stream_state state;
    bool started, paused, group_known, xinfo_inflight;
    bool suspended; /* no connection until ru_stream_suspend(s, false) */
    /* XREADGROUPs sent and not answered: one while replaying or when the last live read
     * came back short; two after a full one, so Redis has the next read at hand while we
     * parse (read_depth) */
    int reads_inflight, read_depth;
    int read_counts[2]; /* the COUNT each of them was sent with, oldest first */
    /* COUNT of the next read, adapted to the size of the entries (ru_readsize_adapt) */
    int read_count;
    char read_count_s[16];
    size_t read_budget;       /* bytes one reply may take in memory; 0 = no bound */
    size_t read_bytes;        /* redis.read_bytes: the same for the processor's cache; 0 = none */
    size_t entry_bytes;       /* bytes an entry took in memory in the last reply; 0 = unknown */
    size_t entry_index_bytes; /* and in the scan's index (struct ru_resp_index) */
    bool in_reply;            /* a reply is being walked: its arena memory must stay */

    /* FIFO of the replies we expect, in command order */
    const struct ru_rconn_cmd **q;
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
    size_t reply_bytes;         /* bytes the reply being handled takes in rbuf */
    size_t reply_nodes;         /* and items its scan noted in the index (0: none) */
    struct ru_resp_scan scan;   /* of the reply at rstart */
    struct ru_resp_index index; /* where the scan found each of its items */
    struct ru_field *fields;
    size_t fields_cap;
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
    bool refused;    /* the drop under way is a refusal (ru_rconn_refuse) */
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

/* ---- rconn.c ---- */

/* Room for n arguments in s->argv/s->argvlen (RU_RCONN_ARG sets one). */
void ru_rconn_argv_reserve(struct ru_stream *s, size_t n);
/* Sets argument i (evaluated once) to a NUL-terminated string. */
#define RU_RCONN_ARG(s, i, str)                                                                    \
    do {                                                                                           \
        size_t ix_ = (size_t)(i);                                                                  \
        (s)->argv[ix_] = (str);                                                                    \
        (s)->argvlen[ix_] = strlen((s)->argv[ix_]);                                                \
    } while (0)
/* Queues the command in s->argv[0..argc) and the handler of its reply; written by
 * ru_rconn_flush (or when the socket is writable). Nothing when the connection is gone
 * (an earlier command of the same step ended it). */
void ru_rconn_send(struct ru_stream *s, const struct ru_rconn_cmd *k, int argc);
/* The same for a command already in RESP (len bytes). */
void ru_rconn_send_formatted(struct ru_stream *s, const struct ru_rconn_cmd *k, const char *cmd,
                             size_t len);
void ru_rconn_flush(struct ru_stream *s);
/* Ends the connection (why: last_error, on_state unless a quiet redirection) and
 * schedules the next one after the backoff. */
void ru_rconn_drop(struct ru_stream *s, const char *why);
void ru_rconn_failf(struct ru_stream *s, const char *fmt, ...) RU_PRINTF(2, 3);
/* The same for a refusal to read that the operator must resolve (RU_DOWN_REFUSED). */
void ru_rconn_refuse(struct ru_stream *s, const char *why);
void ru_rconn_set_error(struct ru_stream *s, const char *why);
void ru_rconn_connect(struct ru_stream *s);
/* Poll integration and timers (stream.h's ru_stream_fd, _events, _on_ready, _tick). The
 * tick returns ms until the next one, or -1 when the stream's own timers are due. */
int ru_rconn_fd(const struct ru_stream *s);
short ru_rconn_events(const struct ru_stream *s);
void ru_rconn_on_ready(struct ru_stream *s, short revents);
int ru_rconn_tick(struct ru_stream *s, int64_t now);
/* Reply helpers. */
bool ru_rconn_is_error(const redisReply *r, const char *prefix);
/* The value of key in a flat [key, value, ...] reply, or NULL. */
const redisReply *ru_rconn_map_get(const redisReply *m, const char *key);
bool ru_rconn_sid_of(const redisReply *v, struct ru_sid *out);

/* ---- stream.c, for the other files ---- */

/* After AUTH, SELECT and CLUSTER SLOTS are queued: the fence, then the group. */
void ru_stream_handshake(struct ru_stream *s);
/* Queues one more XREADGROUP (or, recovering, XRANGE) if the depth allows; true when
 * it did. */
bool ru_stream_send_read(struct ru_stream *s);
void ru_stream_start_replay(struct ru_stream *s);
size_t ru_stream_entry_list(struct ru_stream *s, const redisReply *entries, enum ru_origin origin);
/* The field/value pairs of one entry's reply array, as borrowed views in s->fields. */
size_t ru_stream_take_fields(struct ru_stream *s, const redisReply *fr);

#endif
