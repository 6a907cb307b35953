/* stream: the one Redis connection. Owns the hiredis context, the consumer group
 * handshake (AUTH, SELECT, XGROUP CREATE ... MKSTREAM), the replay of this consumer's
 * pending entries, XREADGROUP reading, XACK, dead-lettering and reconnection with
 * exponential backoff and jitter.
 *
 * A lone consumer (redis.lone_consumer) reads with NOACK: Redis keeps no pending list,
 * and the committed checkpoint is the only record. Each connection then first checks
 * that no other consumer is in the group, and reads again with XRANGE what the group
 * delivered after the checkpoint (or after the last entry this process saw), skipping
 * invalid entries the dead-letter stream already holds. Non-blocking: the daemon polls
 * ru_stream_fd() for ru_stream_events() and calls ru_stream_on_ready(); ru_stream_tick() drives
 * timers.
 *
 * Replies are built by hiredis into a per-connection arena (custom reply-object
 * functions), so a 1000-entry reply costs a few bump allocations, not ~50k mallocs.
 *
 * Its parts (connection, fence, group reads, dead letters, lone-consumer recovery,
 * adoption) are described in rconn.h. */
#ifndef ROLLUPD_STREAM_H
#define ROLLUPD_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollupd/config.h"
#include "rollupd/event.h"
#include "rollupd/util.h"

/* How a delivered entry relates to what this process has already taken in. */
enum ru_seen {
    RU_SEEN_NEW = 0,   /* never seen: apply it */
    RU_SEEN_INFLIGHT,  /* already in memory or in a flush not yet committed: skip */
    RU_SEEN_COMMITTED, /* at or below the committed checkpoint: acknowledge only */
    RU_SEEN_DEAD,      /* recovery: the dead-letter stream already holds its copy */
};

/* Where a delivered entry came from. */
enum ru_origin {
    RU_FROM_LIVE = 0, /* XREADGROUP >: a fresh delivery (acknowledged unless lone) */
    RU_FROM_PENDING,  /* this consumer's own pending list: dead-lettering not yet done */
    RU_FROM_RECOVERY, /* XRANGE after the checkpoint: delivered before without a pending
                       * entry; dead-lettering done only if RU_SEEN_DEAD says so */
};

/* Why reading stopped, for the owner's log line. */
enum ru_stream_down {
    RU_DOWN_LOST,    /* the connection failed or was closed: it reconnects with backoff */
    RU_DOWN_REFUSED, /* rollupd will not read until the operator acts; err says how */
};

struct ru_stream_cb {
    void *ud;
    /* One entry. fields borrowed until return. A fresh delivery (RU_FROM_LIVE) of an id
     * already seen means the group was recreated and Redis is handing out old entries
     * again. */
    void (*on_entry)(void *ud, const struct ru_sid *id, const struct ru_field *fields,
                     size_t nfields, enum ru_seen seen, enum ru_origin origin);
    /* A pending entry that came back without fields: the producer trimmed it. The
     * stream has already queued its XACK. */
    void (*on_trimmed)(void *ud, const struct ru_sid *id, enum ru_seen seen);
    /* Recovery found entries after `after` deleted from the stream (the highest deleted
     * id is `deleted`) before this consumer read them: lost upstream. */
    void (*on_gap)(void *ud, const struct ru_sid *after, const struct ru_sid *deleted);
    /* End of one XREADGROUP or recovery XRANGE reply (n entries; full: as many as the
     * read asked for, so more may be waiting; replay unless live). */
    void (*on_batch)(void *ud, size_t n, bool full, bool replay);
    /* Connected and live (after replay), or reading stopped (err != NULL, also
     * ru_stream_last_error). The stream logs neither: the owner does, once. */
    void (*on_state)(void *ud, bool up, enum ru_stream_down down, const char *err);
    /* The group did not exist on a connection that had seen it before. */
    void (*on_group_recreated)(void *ud);
    /* A new connection is fenced (earlier connections of this consumer closed) and waits:
     * the owner confirms that it still holds its PostgreSQL lock, then calls
     * ru_stream_gate_open. */
    void (*on_gate)(void *ud);

    /* Adoption (ru_stream_adopt_fetch): each pending entry of the other consumer, in id
     * order (fields NULL and n 0 when the producer trimmed it), then done (err NULL on
     * success). */
    void (*on_adopt_entry)(void *ud, const struct ru_sid *id, const struct ru_field *fields,
                           size_t nfields);
    void (*on_adopt_done)(void *ud, const char *err);
    /* One consumer of the group (ru_stream_list_consumers). */
    void (*on_consumer)(void *ud, const char *name, long long pending, long long idle_ms);
};

struct ru_stream_stats {
    uint64_t reads;         /* XREADGROUP replies */
    uint64_t entries;       /* entries delivered */
    uint64_t dead_lettered; /* MULTI/XADD/XACK/EXEC confirmed */
    uint64_t reconnects;
    uint64_t group_recreated;
    uint64_t recovered; /* entries read again by recovery (XRANGE after the checkpoint) */
    uint64_t recoveries;
    /* Redis Cluster: connections that found the stream ending below what this process had
     * read (writes lost in a failover) */
    uint64_t redis_lost_tail;
    int64_t lag;           /* XINFO GROUPS lag, -1 unknown */
    int64_t group_pending; /* XINFO GROUPS pending, -1 unknown */
};

struct ru_stream;

/* The prefix of the name (CLIENT SETNAME) every rollupd reading stream in group gives its
 * connection, "rollupd:<hash of both>:" (the consumer's hash and mode follow). */
void ru_stream_conn_prefix(const char *stream, const char *group, char *out, size_t len);

/* Copies what it needs from cfg. Does not connect until ru_stream_start. */
struct ru_stream *ru_stream_new(const struct ru_config *cfg, const struct ru_stream_cb *cb);
void ru_stream_free(struct ru_stream *s);

/* What PostgreSQL holds when reading begins. */
struct ru_stream_start {
    struct ru_sid committed; /* this consumer's checkpoint (a lone consumer: the group's) */
    /* A lone consumer of the group read without acknowledgement after recover_from (the
     * group's lone checkpoint): those entries are read again before anything else. */
    bool recover;
    struct ru_sid recover_from;
    /* The dead-letter stream's position stored with recover_from: copies of entries
     * after it were written after this position. Unknown for an earlier build's row. */
    struct ru_sid dead_pos;
    bool dead_pos_known;
};

/* Begins connecting. Entries at or below the committed checkpoint are never applied
 * again. */
void ru_stream_start(struct ru_stream *s, const struct ru_stream_start *st);
/* True while entries after the committed checkpoint may have been delivered without a
 * pending entry: always for a lone consumer, else until the owed recovery is done. The
 * checkpoint stored with the next flush carries this mark. */
bool ru_stream_recovery_owed(const struct ru_stream *s);
/* Lone consumer, first run: the group's last-delivered id when this consumer began,
 * returned once per connection. Entries at or below it were never this consumer's. The
 * caller commits it as the checkpoint together with the lone mark, then calls
 * ru_stream_release_noack: no NOACK read is sent before. */
bool ru_stream_take_floor(struct ru_stream *s, struct ru_sid *out);
void ru_stream_release_noack(struct ru_stream *s, const struct ru_sid *committed);
/* A lone consumer's dead-letter copy is unconfirmed (or was lost with a connection and
 * recovery has not written it again): a commit now could move the checkpoint past the
 * invalid entry and lose its copy for good. */
bool ru_stream_commit_blocked(const struct ru_stream *s);
/* Ask XINFO GROUPS (lag, pending) at the next tick rather than on the 5 s schedule: after
 * a commit, so that status does not show what the flush has just settled. */
void ru_stream_refresh_info(struct ru_stream *s);
/* After a COMMIT: the checkpoint and the dead-letter position stored with it (NULL:
 * none stored). */
void ru_stream_set_committed(struct ru_stream *s, const struct ru_sid *committed,
                             const struct ru_sid *dead_pos);
/* The dead-letter position to store with a checkpoint that covers everything taken in
 * so far: the newest confirmed copy (or the position stored before). */
struct ru_sid ru_stream_dead_pos(const struct ru_stream *s);
/* The connection waiting at the gate may read now. */
void ru_stream_gate_open(struct ru_stream *s);
/* on: drop the connection and make no other until called with off (the PostgreSQL lock
 * was lost: nothing may be read); off: reconnect at once. */
void ru_stream_suspend(struct ru_stream *s, bool on, const char *why);

/* Connection settings changed (reload): drop the connection and reconnect with the new
 * URL. Stream, group and consumer cannot change live. */
void ru_stream_reconfigure(struct ru_stream *s, const struct ru_config *cfg);

/* Bytes one read's reply may take in memory (0: no bound). Each read asks for as many
 * entries as fit, from the size entries took in the last reply, at most redis.count;
 * after each connect reading starts small and grows while replies fit. A single entry
 * larger than the budget is still read, alone. */
void ru_stream_set_read_budget(struct ru_stream *s, size_t bytes);
/* Bytes held for replies now: the reply arena and hiredis' input buffer. */
size_t ru_stream_mem(const struct ru_stream *s);
/* COUNT of the next read, and the bytes an entry is expected to take in memory (measured
 * in the last reply; before any, the budget's share per entry). */
int ru_stream_read_count(const struct ru_stream *s);
size_t ru_stream_entry_bytes(const struct ru_stream *s);

/* Stop or resume issuing XREADGROUP (backpressure, shutdown). Replies in flight are
 * still delivered. */
void ru_stream_pause(struct ru_stream *s, bool paused);

/* Queue an XACK for ids (sent in chunks). Harmless when disconnected: unacknowledged
 * entries come back in the next replay and are acknowledged then. */
void ru_stream_ack(struct ru_stream *s, const struct ru_sid *ids, size_t n);

/* Dead-letter one entry: MULTI; XADD <dead> * rollupd.entry_id <id> rollupd.reason
 * <reason> rollupd.group <group> <original fields...>; XACK <id>; EXEC — so the copy and
 * the acknowledgement happen together or not at all (a lone consumer's live entry: the
 * XADD alone). */
void ru_stream_dead_letter(struct ru_stream *s, const struct ru_sid *id,
                           const struct ru_field *fields, size_t nfields, const char *reason,
                           enum ru_origin origin);

/* Reads every pending entry of another consumer of the group (XPENDING ... consumer,
 * then XRANGE of each id) without claiming it: nothing changes in Redis until the
 * caller acknowledges. Returns -1 when not live or an adoption is already running. */
int ru_stream_adopt_fetch(struct ru_stream *s, const char *consumer) RU_MUSTCHECK;
/* XINFO CONSUMERS: on_consumer for each. Returns -1 when not live. */
int ru_stream_list_consumers(struct ru_stream *s) RU_MUSTCHECK;

/* Records a note in the dead-letter stream without acknowledging anything (for an
 * event that was counted but whose raw row was refused). */
void ru_stream_dead_letter_note(struct ru_stream *s, const struct ru_sid *id, const char *reason);

/* Poll integration. fd is -1 while there is no socket. */
int ru_stream_fd(const struct ru_stream *s);
short ru_stream_events(const struct ru_stream *s); /* POLLIN / POLLOUT */
void ru_stream_on_ready(struct ru_stream *s, short revents);
/* Timers: reconnect backoff, periodic XINFO. Returns ms until it wants the next tick. */
int ru_stream_tick(struct ru_stream *s);

bool ru_stream_connected(const struct ru_stream *s); /* handshake done */
bool ru_stream_live(const struct ru_stream *s);      /* replay finished */
bool ru_stream_idle(
    const struct ru_stream *s); /* nothing queued or in flight, blocked reads included */
const char *ru_stream_last_error(const struct ru_stream *s);
const struct ru_stream_stats *ru_stream_stats(const struct ru_stream *s);
/* Redis Cluster: true once a node said it is one (redis.cluster "on", or "auto" and
 * CLUSTER SLOTS answered); out gets "host:port" of the node of the current (or last)
 * connection, "" for a Unix socket. */
bool ru_stream_cluster(const struct ru_stream *s);
void ru_stream_node(const struct ru_stream *s, char *out, size_t len);
/* The highest id this process has taken in (applied, in flight or committed). */
const struct ru_sid *ru_stream_last_seen(const struct ru_stream *s);

#endif
