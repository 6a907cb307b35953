#include "rollupd/lone.h"

#include <stdlib.h>
#include <string.h>

#include "rollupd/group.h"
#include "rollupd/log.h"
#include "rollupd/rconn.h"
#include "rollupd/readsize.h"

#define DEAD_SCAN_PAGE   1000
#define DEAD_SCAN_PAGE_S "1000"
#define DEAD_SCAN_MAX    200000 /* dead-letter entries looked at by one recovery, at most */

#define ARG(i, str) RU_RCONN_ARG(s, i, str)

/* Where recovery starts: after the checkpoint, never below the floor. Entries this
 * process holds already come back as RU_SEEN_INFLIGHT; reading them again costs little
 * and finds an invalid one whose dead-letter copy was lost with the connection. */
struct ru_sid ru_lone_recover_from(const struct ru_stream *s)
{
    struct ru_sid from = s->committed;
    if (ru_sid_cmp(&s->floor, &from) > 0)
        from = s->floor;
    return from;
}

void ru_lone_dropped(struct ru_stream *s)
{
    if (s->dl_inflight > 0) {
        /* the entries are after the checkpoint: the next connection's recovery reads them
         * again (also for a shared-group consumer that was recovering) */
        s->dl_lost = true;
        s->recover = true;
    }
    s->dl_inflight = 0;
}

/* ---- the check: XINFO CONSUMERS, GROUPS, STREAM ---- */

static void check_consumers(struct ru_stream *s, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR) {
        ru_rconn_failf(s, "XINFO CONSUMERS: %s", r->str);
        return;
    }
    /* Other rollupd processes cannot be reading (the group's PostgreSQL lock keeps them
     * out); this guards against readers that take no lock. A lone consumer wants the
     * group to itself. A shared-group consumer recovering a lone consumer's entries only
     * waits for consumers that read recently: a stopped one is harmless. */
    long long alive_ms = 3LL * s->block_ms + 10000;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *name = ru_rconn_map_get(r->element[i], "name");
        const redisReply *pend = ru_rconn_map_get(r->element[i], "pending");
        const redisReply *idle = ru_rconn_map_get(r->element[i], "idle");
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
        ru_rconn_refuse(s, why);
        return;
    }
}

static const struct ru_rconn_cmd C_CHECK_CONSUMERS = {check_consumers, "xinfo|consumers",
                                                      RU_RCONN_NOPERM_FATAL, 0};

static void on_recover_groups(struct ru_stream *s, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR) {
        ru_rconn_failf(s, "XINFO GROUPS: %s", r->str);
        return;
    }
    memset(&s->rec_end, 0, sizeof(s->rec_end));
    ru_rconn_sid_of(ru_rconn_map_get(ru_group_of(s, r), "last-delivered-id"), &s->rec_end);
}

static const struct ru_rconn_cmd C_RECOVER_GROUPS = {on_recover_groups, "xinfo|groups",
                                                     RU_RCONN_NOPERM_FATAL, 0};

static void begin_recovery(struct ru_stream *s);

static void on_recover_stream(struct ru_stream *s, const redisReply *r)
{
    /* max-deleted-entry-id exists from Redis 7.0; without it a gap goes unseen */
    s->rec_deleted_known =
        r->type == REDIS_REPLY_ARRAY &&
        ru_rconn_sid_of(ru_rconn_map_get(r, "max-deleted-entry-id"), &s->rec_deleted);
    begin_recovery(s);
}

static const struct ru_rconn_cmd C_RECOVER_STREAM = {on_recover_stream, "xinfo|stream",
                                                     RU_RCONN_NOPERM_FATAL, 0};

void ru_lone_start_check(struct ru_stream *s)
{
    s->state = RU_S_CHECK;
    ru_group_xinfo_consumers(s, &C_CHECK_CONSUMERS);
    ARG(0, "XINFO");
    ARG(1, "GROUPS");
    ARG(2, s->stream);
    ru_rconn_send(s, &C_RECOVER_GROUPS, 3);
    ARG(1, "STREAM");
    ru_rconn_send(s, &C_RECOVER_STREAM, 3);
}

/* ---- the dead-letter scan ---- */

static void dead_scan_page(struct ru_stream *s, const redisReply *r);
static const struct ru_rconn_cmd C_DEAD_SCAN = {dead_scan_page, "xrevrange", RU_RCONN_NOPERM_FATAL,
                                                0};

static void send_dead_scan(struct ru_stream *s, const struct ru_sid *before)
{
    char end[RU_SID_STRLEN + 1] = "+";
    if (before) {
        end[0] = '(';
        ru_sid_format(before, end + 1);
    }
    ru_rconn_argv_reserve(s, 6);
    ARG(0, "XREVRANGE");
    ARG(1, s->dead);
    ARG(2, end);
    ARG(3, "-");
    ARG(4, "COUNT");
    ARG(5, DEAD_SCAN_PAGE_S);
    ru_rconn_send(s, &C_DEAD_SCAN, 6);
}

static void recovery_done(struct ru_stream *s)
{
    if (!s->lone)
        s->recover = false; /* acknowledged reading from here on */
    s->ndead = 0;
    s->dl_lost = false; /* any copy lost with a connection was found or written again */
    ru_stream_start_replay(s);
}

static void begin_recovery(struct ru_stream *s)
{
    struct ru_sid from = ru_lone_recover_from(s);
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
        ru_stream_start_replay(s);
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

static int sid_cmp_void(const void *a, const void *b)
{
    return ru_sid_cmp(a, b);
}

/* One page of XREVRANGE <dead>: this group's dead letters of entries after the start
 * point (notes, which carry only the id and a reason, are not dead letters), newest
 * first, down to the dead-letter position stored with the checkpoint. */
static void dead_scan_page(struct ru_stream *s, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY) {
        ru_rconn_failf(s, "XREVRANGE %s: %s", s->dead,
                       r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        return;
    }
    bool done = r->elements < DEAD_SCAN_PAGE;
    struct ru_sid last = {0, 0};
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            !ru_rconn_sid_of(e->element[0], &last))
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
            !ru_rconn_sid_of(ru_rconn_map_get(f, "rollupd.entry_id"), &x) ||
            ru_sid_cmp(&x, &s->cursor) <= 0)
            continue;
        const redisReply *g = ru_rconn_map_get(f, "rollupd.group");
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
    s->state = RU_S_RECOVER;
    ru_stream_send_read(s);
}

bool ru_lone_is_dead_lettered(const struct ru_stream *s, const struct ru_sid *id)
{
    return s->ndead > 0 &&
           bsearch(id, s->dead_ids, s->ndead, sizeof(*s->dead_ids), sid_cmp_void) != NULL;
}

/* ---- reading again ---- */

static void on_read_recover(struct ru_stream *s, const redisReply *r)
{
    int sent = ru_readsize_answered(s);
    s->stats.reads++;
    if (!ru_resp_is_array(r)) {
        ru_rconn_failf(s, "XRANGE: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        return;
    }
    bool full = r->elements >= (size_t)sent;
    ru_readsize_adapt(s, r->elements, sent);
    size_t n = ru_stream_entry_list(s, r, RU_FROM_RECOVERY);
    bool done = !full || ru_sid_cmp(&s->cursor, &s->rec_end) >= 0;
    if (s->cb.on_batch)
        s->cb.on_batch(s->cb.ud, n, full, true);
    if (s->c == NULL || s->state != RU_S_RECOVER)
        return;
    if (done)
        recovery_done(s);
    else
        ru_stream_send_read(s);
}
/* [entry, ...]: the reply itself lazy */
static const struct ru_rconn_cmd C_READ_RECOVER = {on_read_recover, "xrange", RU_RCONN_NOPERM_FATAL,
                                                   1};

/* XRANGE of what the group delivered after the start point, from the cursor. */
void ru_lone_send_read(struct ru_stream *s)
{
    char cur[RU_SID_STRLEN + 1], end[RU_SID_STRLEN];
    ru_rconn_argv_reserve(s, 6);
    cur[0] = '('; /* exclusive: the cursor itself was taken in already */
    ru_sid_format(&s->cursor, cur + 1);
    ru_sid_format(&s->rec_end, end);
    ARG(0, "XRANGE");
    ARG(1, s->stream);
    ARG(2, cur);
    ARG(3, end);
    ARG(4, "COUNT");
    ARG(5, s->read_count_s);
    ru_readsize_sent(s);
    ru_rconn_send(s, &C_READ_RECOVER, 6);
}
