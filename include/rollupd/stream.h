/* stream: the one Redis connection. Owns the hiredis context, the consumer group
 * handshake (AUTH, SELECT, XGROUP CREATE ... MKSTREAM), the replay of this consumer's
 * pending entries, XREADGROUP reading, XACK, dead-lettering and reconnection with
 * exponential backoff and jitter. Non-blocking: the daemon polls ru_stream_fd() for
 * ru_stream_events() and calls ru_stream_on_ready(); ru_stream_tick() drives timers.
 *
 * Replies are built by hiredis into a per-connection arena (custom reply-object
 * functions), so a 1000-entry reply costs a few bump allocations, not ~50k mallocs. */
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
};

struct ru_stream_cb {
    void *ud;
    /* One entry. fields borrowed until return. replay: it came from this consumer's own
     * pending list (so any dead-lettering it needed has not happened yet); otherwise it
     * is a fresh delivery, which for an id already seen means the group was recreated
     * and Redis is handing out old entries again. */
    void (*on_entry)(void *ud, const struct ru_sid *id, const struct ru_field *fields,
                     size_t nfields, enum ru_seen seen, bool replay);
    /* A pending entry that came back without fields: the producer trimmed it. The
     * stream has already queued its XACK. */
    void (*on_trimmed)(void *ud, const struct ru_sid *id, enum ru_seen seen);
    /* End of one XREADGROUP reply (n entries, replay or live). */
    void (*on_batch)(void *ud, size_t n, bool replay);
    /* Connected and live (after replay), or lost (err != NULL). */
    void (*on_state)(void *ud, bool up, const char *err);
    /* The group did not exist on a connection that had seen it before. */
    void (*on_group_recreated)(void *ud);

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
    uint64_t acked;         /* ids sent in XACK */
    uint64_t dead_lettered; /* MULTI/XADD/XACK/EXEC confirmed */
    uint64_t reconnects;
    uint64_t group_recreated;
    int64_t lag;           /* XINFO GROUPS lag, -1 unknown */
    int64_t group_pending; /* XINFO GROUPS pending, -1 unknown */
};

struct ru_stream;

/* Copies what it needs from cfg. Does not connect until ru_stream_start. */
struct ru_stream *ru_stream_new(const struct ru_config *cfg, const struct ru_stream_cb *cb);
void ru_stream_free(struct ru_stream *s);

/* Sets the committed checkpoint (loaded from PostgreSQL, then raised after each flush)
 * and begins connecting. Entries at or below it are never applied again. */
void ru_stream_start(struct ru_stream *s, const struct ru_sid *committed);
void ru_stream_set_committed(struct ru_stream *s, const struct ru_sid *committed);

/* Connection settings changed (reload): drop the connection and reconnect with the new
 * URL. Stream, group and consumer cannot change live. */
void ru_stream_reconfigure(struct ru_stream *s, const struct ru_config *cfg);

/* Stop or resume issuing XREADGROUP (backpressure, shutdown). Replies in flight are
 * still delivered. */
void ru_stream_pause(struct ru_stream *s, bool paused);

/* Queue an XACK for ids (sent in chunks). Harmless when disconnected: unacknowledged
 * entries come back in the next replay and are acknowledged then. */
void ru_stream_ack(struct ru_stream *s, const struct ru_sid *ids, size_t n);

/* Dead-letter one entry: MULTI; XADD <dead> * rollupd.entry_id <id> rollupd.reason
 * <reason> <original fields...>; XACK <id>; EXEC — so the copy and the acknowledgement
 * happen together or not at all. */
void ru_stream_dead_letter(struct ru_stream *s, const struct ru_sid *id,
                           const struct ru_field *fields, size_t nfields, const char *reason);

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
/* The highest id this process has taken in (applied, in flight or committed). */
const struct ru_sid *ru_stream_last_seen(const struct ru_stream *s);

#endif
