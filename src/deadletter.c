#include "rollupd/deadletter.h"

#include <string.h>

#include "rollupd/log.h"
#include "rollupd/rconn.h"

#define DEAD_MAXLEN "100000"

#define ARG(i, str) RU_RCONN_ARG(s, i, str)

/* MULTI, and the XADD and XACK queued in the transaction */
static void on_queued(struct ru_stream *s, const redisReply *r)
{
    (void)s;
    if (r->type == REDIS_REPLY_ERROR)
        ru_warn("msg=\"dead-letter command refused\" error=\"%s\"", r->str);
}

static const struct ru_rconn_cmd C_MULTI = {on_queued, "multi", RU_RCONN_NOPERM_FATAL, 0};
static const struct ru_rconn_cmd C_QUEUED = {on_queued, "xadd or xack", RU_RCONN_NOPERM_FATAL, 0};

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

static const struct ru_rconn_cmd C_EXEC_DL = {on_exec_dl, "exec", RU_RCONN_NOPERM_FATAL, 0};

/* A confirmed dead-letter copy's id: the newest one is stored with the next checkpoint. */
static void note_dead_copy(struct ru_stream *s, const redisReply *id)
{
    struct ru_sid x;
    if (ru_rconn_sid_of(id, &x) && ru_sid_cmp(&x, &s->dead_last) > 0)
        s->dead_last = x;
}

/* EXEC of a copy of an entry without a pending entry */
static void on_exec_dl_lone(struct ru_stream *s, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY ||
        (r->elements >= 1 && r->element[0]->type == REDIS_REPLY_ERROR)) {
        ru_rconn_failf(s, "dead-letter copy refused: %s",
                       r->type == REDIS_REPLY_ERROR ? r->str
                       : r->type == REDIS_REPLY_ARRAY && r->element[0]->str != NULL
                           ? r->element[0]->str
                           : "no reply");
        return;
    }
    if (s->dl_inflight > 0)
        s->dl_inflight--;
    note_dead_copy(s, r->element[0]);
    on_exec_dl(s, r);
}

/* EXEC of a copy of an entry without a pending entry (recovery) */
static const struct ru_rconn_cmd C_EXEC_DL_LONE = {on_exec_dl_lone, "exec", RU_RCONN_NOPERM_FATAL,
                                                   0};

static void on_xadd_dl(struct ru_stream *s, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR) {
        /* without a pending entry the copy would be gone for good: keep it owed, and
         * let the recovery of the next connection write it again */
        ru_rconn_failf(s, "dead-letter copy refused: %s", r->str);
        return;
    }
    if (s->dl_inflight > 0)
        s->dl_inflight--;
    note_dead_copy(s, r);
    s->stats.dead_lettered++;
}

/* a lone consumer's dead letter: nothing to acknowledge */
static const struct ru_rconn_cmd C_XADD_DL = {on_xadd_dl, "xadd", RU_RCONN_NOPERM_FATAL, 0};

void ru_deadletter_copy(struct ru_stream *s, const struct ru_sid *id, const struct ru_field *fields,
                        size_t nfields, const char *reason, enum ru_origin origin)
{
    if (s->c == NULL || s->state < RU_S_RECOVER) {
        /* stays pending, or is after the checkpoint: dead-lettered when read again (no
         * commit may pass it before that recovery) */
        if (s->lone || s->recover)
            s->dl_lost = true;
        return;
    }
    char idtxt[RU_SID_STRLEN];
    size_t idlen = ru_sid_format(id, idtxt);
    ru_rconn_argv_reserve(s, 14 + 2 * nfields);
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
        ru_rconn_send(s, &C_MULTI, 1);
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
        ru_rconn_send(s, &C_XADD_DL, n);
        ru_rconn_flush(s);
        return;
    }
    ru_rconn_send(s, &C_QUEUED, n);
    ARG(0, "XACK");
    ARG(1, s->stream);
    ARG(2, s->group);
    s->argv[3] = idtxt;
    s->argvlen[3] = idlen;
    ru_rconn_send(s, &C_QUEUED, 4);
    ARG(0, "EXEC");
    ru_rconn_send(s, counted ? &C_EXEC_DL_LONE : &C_EXEC_DL, 1);
    ru_rconn_flush(s);
}

static void on_note(struct ru_stream *s, const redisReply *r)
{
    (void)s;
    if (r->type == REDIS_REPLY_ERROR)
        ru_warn("msg=\"dead-letter note refused\" error=\"%s\"", r->str);
}

static const struct ru_rconn_cmd C_NOTE = {on_note, "xadd", RU_RCONN_NOPERM_FATAL, 0};

void ru_deadletter_note(struct ru_stream *s, const struct ru_sid *id, const char *reason)
{
    if (s->c == NULL || s->state < RU_S_CHECK)
        return;
    char idtxt[RU_SID_STRLEN];
    ru_sid_format(id, idtxt);
    ru_rconn_argv_reserve(s, 10);
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
    ru_rconn_send(s, &C_NOTE, 10);
    ru_rconn_flush(s);
}
