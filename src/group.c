#include "rollupd/group.h"

#include <stdio.h>
#include <string.h>

#include "rollupd/log.h"
#include "rollupd/lone.h"
#include "rollupd/rconn.h"

#define XINFO_EVERY_MS 5000

#define ARG(i, str) RU_RCONN_ARG(s, i, str)

/* ---- Redis Cluster: the stream's last id after a failover ---- */

static void on_xsetid(struct ru_stream *s, const redisReply *r)
{
    (void)s;
    if (r->type == REDIS_REPLY_ERROR)
        ru_warn("msg=\"XSETID refused: entries added now may get ids at or below the "
                "checkpoint and be skipped; grant +xsetid on the stream key\" error=\"%s\"",
                r->str);
}

static const struct ru_rconn_cmd C_XSETID = {on_xsetid, "xsetid", RU_RCONN_NOPERM_HANDLED, 0};

static void id_guard(struct ru_stream *s, const redisReply *r)
{
    struct ru_sid last;
    if (r->type != REDIS_REPLY_ARRAY ||
        !ru_rconn_sid_of(ru_rconn_map_get(r, "last-generated-id"), &last) ||
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
    ru_rconn_argv_reserve(s, 3);
    ARG(0, "XSETID");
    ARG(1, s->stream);
    ARG(2, seen);
    ru_rconn_send(s, &C_XSETID, 3);
    ru_rconn_flush(s);
}

static const struct ru_rconn_cmd C_ID_GUARD = {id_guard, "xinfo|stream", RU_RCONN_NOPERM_HANDLED,
                                               0};

/* A failover can lose the last writes the old master acknowledged, entries this process
 * has already taken in among them: the new master's stream then ends below the checkpoint,
 * and an entry added now could get an id at or below it (a clock behind the old master's)
 * and be skipped as committed. XSETID raises the stream's last id to what this process has
 * seen, so every entry added from now on sorts above the checkpoint. */
static void send_id_guard(struct ru_stream *s)
{
    if (ru_sid_is_zero(&s->last_seen))
        return;
    ru_rconn_argv_reserve(s, 3);
    ARG(0, "XINFO");
    ARG(1, "STREAM");
    ARG(2, s->stream);
    ru_rconn_send(s, &C_ID_GUARD, 3);
}

/* ---- creation ---- */

static void on_group_create(struct ru_stream *s, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR && !ru_rconn_is_error(r, "BUSYGROUP")) {
        ru_rconn_failf(s, "XGROUP CREATE: %s", r->str);
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
    if (s->state == RU_S_HANDSHAKE) {
        /* nothing is read until the owner has seen its lock alive after the fence */
        s->state = RU_S_GATE;
        if (s->cb.on_gate)
            s->cb.on_gate(s->cb.ud);
    }
}

static const struct ru_rconn_cmd C_GROUP_CREATE = {on_group_create, "xgroup|create",
                                                   RU_RCONN_NOPERM_FATAL, 0};

static void send_group_create(struct ru_stream *s, const char *start)
{
    ru_rconn_argv_reserve(s, 6);
    ARG(0, "XGROUP");
    ARG(1, "CREATE");
    ARG(2, s->stream);
    ARG(3, s->group);
    ARG(4, start);
    ARG(5, "MKSTREAM");
    ru_rconn_send(s, &C_GROUP_CREATE, 6);
}

/* Where a group that vanished is created again: after what this consumer committed (a
 * lone consumer: what the group committed), so that what the producer wrote meanwhile
 * is read whatever redis.start says; "0" when nothing was committed yet. */
void ru_group_create(struct ru_stream *s)
{
    char at[RU_SID_STRLEN];
    if (!s->group_known) {
        send_group_create(s, s->start);
        return;
    }
    struct ru_sid from = ru_lone_recover_from(s);
    ru_sid_format(&from, at);
    send_group_create(s, at);
}

/* ---- XINFO ---- */

/* Our group's entry in an XINFO GROUPS reply, or NULL. */
const redisReply *ru_group_of(const struct ru_stream *s, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *name = ru_rconn_map_get(r->element[i], "name");
        if (name && name->str && strcmp(name->str, s->group) == 0)
            return r->element[i];
    }
    return NULL;
}

static void parse_xinfo(struct ru_stream *s, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY)
        return;
    const redisReply *g = ru_group_of(s, r);
    const redisReply *nc = ru_rconn_map_get(g, "consumers");
    if (s->lone && s->state == RU_S_LIVE && nc && nc->type == REDIS_REPLY_INTEGER &&
        nc->integer > 1) {
        /* Entries it reads are not ours, yet a recovery after our checkpoint would read
         * them again: stop reading until it is gone (the check at connect names it). */
        char why[200];
        snprintf(why, sizeof(why),
                 "another consumer joined group %.60s (%lld consumers); a lone consumer stops "
                 "reading",
                 s->group, (long long)nc->integer);
        ru_rconn_refuse(s, why);
        return;
    }
    const redisReply *pending = ru_rconn_map_get(g, "pending"), *lag = ru_rconn_map_get(g, "lag");
    if (g != NULL) {
        s->stats.group_pending =
            pending && pending->type == REDIS_REPLY_INTEGER ? pending->integer : -1;
        s->stats.lag = lag && lag->type == REDIS_REPLY_INTEGER ? lag->integer : -1;
    }
}

static void on_xinfo(struct ru_stream *s, const redisReply *r)
{
    s->xinfo_inflight = false;
    parse_xinfo(s, r);
}

static const struct ru_rconn_cmd C_XINFO = {on_xinfo, "xinfo|groups", RU_RCONN_NOPERM_FATAL, 0};

void ru_group_xinfo_consumers(struct ru_stream *s, const struct ru_rconn_cmd *k)
{
    ru_rconn_argv_reserve(s, 4);
    ARG(0, "XINFO");
    ARG(1, "CONSUMERS");
    ARG(2, s->stream);
    ARG(3, s->group);
    ru_rconn_send(s, k, 4);
}

/* XINFO GROUPS every XINFO_EVERY_MS while live (ru_stream_refresh_info: at the next tick). */
void ru_group_info_tick(struct ru_stream *s, int64_t now)
{
    if (s->state == RU_S_LIVE && !s->paused && !s->xinfo_inflight && now >= s->next_xinfo_ms) {
        s->xinfo_inflight = true;
        s->next_xinfo_ms = now + XINFO_EVERY_MS;
        ru_rconn_argv_reserve(s, 3);
        ARG(0, "XINFO");
        ARG(1, "GROUPS");
        ARG(2, s->stream);
        ru_rconn_send(s, &C_XINFO, 3);
        ru_rconn_flush(s);
    }
}
