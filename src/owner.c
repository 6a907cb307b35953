#include "rollupd/owner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollupd/pgerr.h"
#include "rollupd/writer.h"

#define GROUP_ROW "" /* rollupd_checkpoint's consumer for the group's own row */

/* One row of rollupd_checkpoint. */
struct ckpt_row {
    bool found, lone, dead_known;
    struct ru_sid last, dead;
};

static int read_row(struct ru_pgw *w, const char *consumer, struct ckpt_row *out)
{
    memset(out, 0, sizeof(*out));
    struct ru_buf b = RU_BUF_INIT;
    ru_buf_printf(&b,
                  "SELECT last_id, lone, dead_pos FROM %s WHERE stream = $1 AND grp = $2 AND"
                  " consumer = $3",
                  w->n.ckpt);
    const char *params[3] = {w->stream, w->group, consumer};
    PGresult *r = PQexecParams(w->conn, b.p, 3, NULL, params, NULL, NULL, 0);
    ru_buf_free(&b);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        ru_writer_pg_error(w, "loading the checkpoint", r);
        PQclear(r);
        return -1;
    }
    int rc = 0;
    if (PQntuples(r) == 1) {
        const char *v = PQgetvalue(r, 0, 0), *d = PQgetvalue(r, 0, 2);
        out->found = true;
        out->lone = PQgetvalue(r, 0, 1)[0] == 't';
        out->dead_known = !PQgetisnull(r, 0, 2) && ru_sid_parse(&out->dead, d, strlen(d)) == 0;
        if (ru_sid_parse(&out->last, v, strlen(v)) < 0) {
            ru_writer_error(w, "loading the checkpoint", "stored last_id is not a stream id");
            rc = -1;
        }
    }
    PQclear(r);
    return rc;
}

int ru_owner_query_checkpoint(struct ru_pgw *w, const char *consumer, struct ru_sid *out,
                              bool *lone)
{
    struct ckpt_row row;
    if (read_row(w, consumer, &row) < 0)
        return -1;
    *out = row.last;
    if (lone)
        *lone = row.lone;
    return 0;
}

/* The advisory lock keys: one per (stream, group, consumer), one per (stream, group). */
static char *lock_key(const struct ru_pgw *w, const char *consumer)
{
    struct ru_buf key = RU_BUF_INIT;
    if (consumer)
        ru_buf_printf(&key, "rollupd:%s:%s:%s", w->stream, w->group, consumer);
    else
        ru_buf_printf(&key, "rollupd-group:%s:%s", w->stream, w->group);
    return key.p;
}

/* The sessions holding the lock on key, for an error that names them. */
static void lock_holders(struct ru_pgw *w, const char *key, char *out, size_t n)
{
    const char *params[1] = {key};
    PGresult *r = PQexecParams(
        w->conn,
        "SELECT coalesce(string_agg(format('PostgreSQL session %s of %s since %s', a.pid,"
        " coalesce(host(a.client_addr), 'a local socket'),"
        " to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS UTC')), '; '),"
        " 'a session that has just ended') FROM pg_locks l JOIN pg_stat_activity a ON"
        " a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND"
        " l.pid <> pg_backend_pid() AND"
        " ((l.classid::int8 << 32) | l.objid::int8) = hashtextextended($1, 0)",
        1, NULL, params, NULL, NULL, 0);
    ru_strlcpy(out,
               PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? PQgetvalue(r, 0, 0)
                                                                         : "another session",
               n);
    PQclear(r);
}

/* fn(key), one of PostgreSQL's advisory lock functions, waiting at most LOCK_WAIT_MS.
 * RU_OWNER_LOCK_BUSY: another session holds it (holders described in who). */
static int advisory(struct ru_pgw *w, const char *fn, const char *key, char *who, size_t n)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT %s(hashtextextended($1, 0))", fn);
    const char *params[1] = {key};
    PGresult *r = PQexecParams(w->conn, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        PQclear(r);
        return RU_OWNER_LOCK_DONE;
    }
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    bool busy = ru_pgerr_lock_busy(st);
    if (!busy)
        ru_writer_pg_error(w, "taking the consumer's lock", r);
    PQclear(r);
    if (busy && who)
        lock_holders(w, key, who, n);
    return busy ? RU_OWNER_LOCK_BUSY : RU_OWNER_LOCK_ERROR;
}

/* A row marked lone by an earlier build (one row per consumer) becomes the group's row:
 * the lone consumer's entries belong to the group. */
static int migrate_lone_rows(struct ru_pgw *w)
{
    struct ru_buf b = RU_BUF_INIT;
    ru_buf_printf(&b,
                  "INSERT INTO %1$s (stream, grp, consumer, last_id, events, updated_at, lone)"
                  " SELECT stream, grp, '', last_id, 0, now(), true FROM %1$s WHERE stream = $1"
                  " AND grp = $2 AND consumer <> '' AND lone ORDER BY"
                  " split_part(last_id, '-', 1)::numeric DESC,"
                  " split_part(last_id, '-', 2)::numeric DESC LIMIT 1"
                  " ON CONFLICT (stream, grp, consumer) DO NOTHING",
                  w->n.ckpt);
    const char *params[2] = {w->stream, w->group};
    char lock[64];
    snprintf(lock, sizeof(lock), "BEGIN; SELECT pg_advisory_xact_lock(%d)", RU_WRITER_SCHEMA_LOCK);
    int rc = ru_writer_exec(w, lock, "moving a lone checkpoint to its group");
    PGresult *r = rc == 0 ? PQexecParams(w->conn, b.p, 2, NULL, params, NULL, NULL, 0) : NULL;
    if (r && PQresultStatus(r) != PGRES_COMMAND_OK) {
        ru_writer_pg_error(w, "moving a lone checkpoint to its group", r);
        rc = -1;
    }
    PQclear(r);
    ru_buf_reset(&b);
    ru_buf_printf(&b,
                  "UPDATE %s SET lone = false WHERE stream = $1 AND grp = $2 AND consumer <> ''"
                  " AND lone",
                  w->n.ckpt);
    r = rc == 0 ? PQexecParams(w->conn, b.p, 2, NULL, params, NULL, NULL, 0) : NULL;
    if (r && PQresultStatus(r) != PGRES_COMMAND_OK) {
        ru_writer_pg_error(w, "moving a lone checkpoint to its group", r);
        rc = -1;
    }
    PQclear(r);
    ru_buf_free(&b);
    if (rc == 0)
        rc = ru_writer_exec(w, "COMMIT", "moving a lone checkpoint to its group");
    if (rc < 0)
        PQclear(PQexec(w->conn, "ROLLBACK"));
    return rc;
}

int ru_owner_take_locks(struct ru_pgw *w)
{
    char who[300];
    char *ckey = lock_key(w, w->consumer), *gkey = lock_key(w, NULL);
    int rc = migrate_lone_rows(w);
    if (rc == 0) {
        rc = advisory(w, "pg_advisory_lock", ckey, who, sizeof(who));
        if (rc == RU_OWNER_LOCK_BUSY) {
            ru_writer_fatal(
                w,
                "consumer '%s' of group '%s' is in use by another rollupd (%s): another "
                "process with this name, or one adopting this consumer's pending entries "
                "(rollupctl adopt; start again once it is done). Each process needs its "
                "own redis.consumer (the default is the host name, so two containers "
                "with one host name need one set each)",
                w->consumer, w->group, who);
            rc = RU_OWNER_IN_USE;
        }
    }
    w->tail_held = false;
    if (rc == 0) {
        rc = advisory(w, w->lone ? "pg_advisory_lock" : "pg_advisory_lock_shared", gkey, who,
                      sizeof(who));
        if (rc == RU_OWNER_LOCK_BUSY) {
            char msg[600];
            snprintf(msg, sizeof(msg),
                     w->lone ? "a lone consumer needs group '%s' to itself, and other rollupd "
                               "processes read it (%s): stop them, or set lone_consumer = false"
                             : "a lone consumer reads group '%s' (%s): stop it, or set "
                               "lone_consumer = false on it, before shared-group consumers start",
                     w->group, who);
            ru_writer_error(w, "waiting for the group", msg);
            rc = RU_OWNER_RETRY;
        }
    }
    struct ckpt_row g;
    if (rc == 0 && !w->lone && (rc = read_row(w, GROUP_ROW, &g)) == 0 && g.lone) {
        /* a lone consumer left entries without a pending entry: recover them alone */
        rc = advisory(w, "pg_advisory_unlock_shared", gkey, NULL, 0);
        if (rc == 0)
            rc = advisory(w, "pg_advisory_lock", gkey, who, sizeof(who));
        if (rc == RU_OWNER_LOCK_BUSY) {
            char msg[600];
            snprintf(msg, sizeof(msg),
                     "entries a lone consumer of group '%s' read without acknowledgement are "
                     "to be recovered, and other rollupd processes hold the group (%s): one "
                     "process recovers them before the others read; waiting",
                     w->group, who);
            ru_writer_error(w, "waiting for the group", msg);
            rc = RU_OWNER_RETRY;
        }
        if (rc == 0 && (rc = read_row(w, GROUP_ROW, &g)) == 0) {
            w->tail_held = g.lone;
            if (!g.lone && (rc = advisory(w, "pg_advisory_lock_shared", gkey, NULL, 0)) == 0)
                rc = advisory(w, "pg_advisory_unlock", gkey, NULL, 0);
        }
        if (rc == RU_OWNER_LOCK_BUSY)
            rc = RU_OWNER_RETRY;
    }
    free(ckey);
    free(gkey);
    return rc;
}

/* The rows that set-up starts from (first connection), or, after a reconnect, a check
 * that nobody moved them while the session was lost. */
int ru_owner_load_checkpoint(struct ru_pgw *w)
{
    struct ckpt_row own = {0}, grp;
    if ((!w->lone && read_row(w, w->consumer, &own) < 0) || read_row(w, GROUP_ROW, &grp) < 0)
        return -1;
    if (!atomic_load(&w->ready)) {
        struct ru_pgw_start *st = &w->start;
        st->committed = w->lone ? grp.last : own.last;
        st->recover = grp.lone;
        st->group_ckpt = grp.last;
        st->dead_pos = grp.dead;
        st->dead_pos_known = grp.dead_known || !grp.found;
        w->own = own.last;
        w->grp = grp.last;
        return 0;
    }
    /* What the commit in flight (if any) may have stored is accepted too: run_batch
     * finds out whether it did. */
    const struct ru_batch *b = w->inflight;
    struct {
        const char *what;
        bool check;
        struct ru_sid token, stored, attempted;
    } rows[2] = {
        {"this consumer's", !w->lone, w->own, own.last, w->own},
        {"the group's", w->lone || w->tail_held, w->grp, grp.last, w->grp},
    };
    if (b && b->attempted_set && !b->adopt_consumer) {
        rows[0].attempted = b->attempted;
        rows[1].attempted = w->lone                                   ? b->attempted
                            : ru_sid_cmp(&b->checkpoint, &w->grp) > 0 ? b->checkpoint
                                                                      : w->grp;
    }
    for (int i = 0; i < 2; i++) {
        if (!rows[i].check || ru_sid_cmp(&rows[i].stored, &rows[i].token) == 0 ||
            ru_sid_cmp(&rows[i].stored, &rows[i].attempted) == 0)
            continue;
        char t[RU_SID_STRLEN], st[RU_SID_STRLEN];
        ru_sid_format(&rows[i].token, t);
        ru_sid_format(&rows[i].stored, st);
        if (ru_sid_cmp(&rows[i].stored, &rows[i].token) < 0)
            ru_writer_fatal(
                w,
                "%s checkpoint went backwards from %s to %s: PostgreSQL lost commits it "
                "had acknowledged (a failover to a replica that lagged, or a crash of a "
                "server run with fsync or synchronous_commit off). Stopping; a lone "
                "consumer's restart reads those entries again from the stream; a "
                "shared-group consumer's were acknowledged in Redis, so the events after "
                "the second id up to the first are missing (README: Exactly once)",
                rows[i].what, t, st);
        else
            ru_writer_fatal(w,
                            "%s checkpoint moved from %s to %s while this process's PostgreSQL "
                            "session was lost: another process took the consumer over. Stopping; "
                            "what this process held and did not commit is read again by the owner",
                            rows[i].what, t, st);
        return -1;
    }
    return 0;
}

/* One checkpoint row a commit moves: from expected (the fencing token) to next. */
struct ckpt_move {
    const char *consumer; /* GROUP_ROW for the group's row */
    struct ru_sid expected, next;
    bool lone;      /* the mark stored with it */
    bool keep_lone; /* an adoption keeps the adopted consumer's mark */
    bool dead;      /* store b->dead_pos */
    bool events;    /* count the batch's events in this row (one row per batch does) */
};

/* The rows a batch moves: a lone consumer's group row; a shared-group consumer's own
 * row, and the group's while it holds the group to recover a lone consumer's entries
 * (the mark goes with the first commit after the recovery); an adoption, the adopted
 * consumer's row. The first is the one ru_owner_committed_already reads back. */
static int plan_moves(const struct ru_pgw *w, const struct ru_batch *b, struct ckpt_move *m)
{
    struct ru_sid top = b->checkpoint;
    if (b->adopt_consumer) {
        m[0] = (struct ckpt_move){
            b->adopt_consumer, b->adopt_expected, b->adopt_expected, false, true, false, true};
    } else if (w->lone) {
        m[0] = (struct ckpt_move){GROUP_ROW, w->grp, w->grp, true, false, true, true};
    } else {
        m[0] = (struct ckpt_move){w->consumer, w->own, w->own, false, false, false, true};
    }
    if (ru_sid_cmp(&top, &m[0].next) > 0)
        m[0].next = top;
    if (b->adopt_consumer || w->lone || !w->tail_held)
        return 1;
    m[1] = (struct ckpt_move){GROUP_ROW, w->grp, w->grp, b->lone, false, true, false};
    if (ru_sid_cmp(&top, &m[1].next) > 0)
        m[1].next = top;
    return 2;
}

static int save_row(struct ru_pgw *w, struct ru_batch *b, const struct ckpt_move *m)
{
    char idtxt[RU_SID_STRLEN], exptxt[RU_SID_STRLEN], deadtxt[RU_SID_STRLEN], events[24];
    ru_sid_format(&m->next, idtxt);
    ru_sid_format(&m->expected, exptxt);
    ru_sid_format(&b->dead_pos, deadtxt);
    snprintf(events, sizeof(events), "%llu",
             m->events ? (unsigned long long)ru_store_nevents(b->store) : 0ULL);
    struct ru_buf sql = RU_BUF_INIT;
    ru_buf_printf(&sql,
                  "INSERT INTO %1$s AS c (stream, grp, consumer, last_id, events, updated_at,"
                  " lone, dead_pos) SELECT $1, $2, $3, $4, $5, now(), $7, $9 WHERE $6 = '0-0' OR"
                  " EXISTS (SELECT 1 FROM %1$s WHERE stream = $1 AND grp = $2 AND consumer = $3)"
                  " ON CONFLICT (stream, grp, consumer) DO UPDATE SET last_id = excluded.last_id,"
                  " events = c.events + excluded.events, updated_at = now(),"
                  " lone = CASE WHEN $8 THEN c.lone ELSE excluded.lone END,"
                  " dead_pos = coalesce(excluded.dead_pos, c.dead_pos) WHERE c.last_id = $6",
                  w->n.ckpt);
    const char *params[9] = {w->stream,
                             w->group,
                             m->consumer,
                             idtxt,
                             events,
                             exptxt,
                             m->lone ? "true" : "false",
                             m->keep_lone ? "true" : "false",
                             m->dead ? deadtxt : NULL};
    PGresult *r = PQexecParams(w->conn, sql.p, 9, NULL, params, NULL, NULL, 0);
    ru_buf_free(&sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        ru_writer_pg_error(w, "saving the checkpoint", r);
        PQclear(r);
        return -1;
    }
    bool moved = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    if (moved)
        return 0;
    struct ckpt_row now;
    if (read_row(w, m->consumer, &now) < 0)
        return -1;
    char st[RU_SID_STRLEN];
    ru_sid_format(&now.last, st);
    const char *whose = m->consumer[0] ? "checkpoint of consumer" : "group checkpoint of";
    const char *name = m->consumer[0] ? m->consumer : w->group;
    b->fenced = true;
    if (now.found && ru_sid_cmp(&now.last, &m->expected) < 0)
        snprintf(b->fence_reason, sizeof(b->fence_reason),
                 "%s '%s' went backwards from %s to %s: PostgreSQL lost commits it had "
                 "acknowledged (README: Exactly once)",
                 whose, name, exptxt, st);
    else
        snprintf(b->fence_reason, sizeof(b->fence_reason),
                 "%s '%s' is no longer %s but %s: another process took it over", whose, name,
                 exptxt, now.found ? st : "gone");
    return RU_WRITER_FENCED;
}

/* The tokens follow what was committed; a recovered group goes back to the shared lock. */
void ru_owner_after_commit(struct ru_pgw *w, const struct ru_batch *b)
{
    struct ckpt_move m[2];
    int nm = plan_moves(w, b, m);
    if (b->adopt_consumer)
        return;
    if (w->lone) {
        w->grp = m[0].next;
        return;
    }
    w->own = m[0].next;
    if (nm < 2)
        return;
    w->grp = m[1].next;
    if (b->lone)
        return;
    w->tail_held = false;
    char *gkey = lock_key(w, NULL);
    if (advisory(w, "pg_advisory_lock_shared", gkey, NULL, 0) != 0 ||
        advisory(w, "pg_advisory_unlock", gkey, NULL, 0) != 0) {
        /* the next connection takes the shared lock */
        ru_warn("msg=\"could not go back to the shared group lock; reconnecting\" error=\"%s\"",
                w->stats.last_error);
        ru_writer_drop(w);
    }
    free(gkey);
    ru_info("msg=\"recovered what a lone consumer left; the group is shared again\" group=%s",
            w->group);
}

/* After a failed attempt whose COMMIT may have reached the server: the checkpoint row
 * tells. It equals what that attempt wrote only if the attempt committed (checkpoints
 * only move forward and each batch writes a new, higher value). */
bool ru_owner_committed_already(struct ru_pgw *w, struct ru_batch *b)
{
    struct ru_sid stored;
    struct ckpt_move m[2];
    plan_moves(w, b, m);
    if (ru_sid_cmp(&b->attempted, &m[0].expected) == 0)
        return false; /* the attempt would not have moved it: cannot tell, and need not */
    if (ru_owner_query_checkpoint(w, m[0].consumer, &stored, NULL) < 0)
        return false; /* the retry will fail and come back here */
    return ru_sid_cmp(&stored, &b->attempted) == 0;
}

/* An adoption holds the adopted consumer's lock from the moment it reads its checkpoint:
 * while it is held, that consumer's rollupd cannot start, and one that is alive makes the
 * adoption fail before anything of it is read (its dead letters included). */
int ru_owner_adopt_lock(struct ru_pgw *w, const char *consumer)
{
    char *key = lock_key(w, consumer);
    const char *kp[1] = {key};
    PGresult *r = PQexecParams(w->conn, "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", 1,
                               NULL, kp, NULL, NULL, 0);
    free(key);
    int rc = PQresultStatus(r) != PGRES_TUPLES_OK ? RU_OWNER_LOCK_ERROR
             : PQgetvalue(r, 0, 0)[0] == 't'      ? RU_OWNER_LOCK_DONE
                                                  : RU_OWNER_LOCK_BUSY;
    if (rc == RU_OWNER_LOCK_ERROR)
        ru_writer_pg_error(w, "locking the adopted consumer", r);
    PQclear(r);
    if (rc == RU_OWNER_LOCK_BUSY) {
        char msg[200];
        snprintf(msg, sizeof(msg), "consumer '%.80s' is alive (its rollupd holds its lock)",
                 consumer);
        ru_writer_error(w, "adopting", msg);
    }
    if (rc == RU_OWNER_LOCK_DONE)
        w->adopt_held = ru_xstrdup(consumer);
    return rc;
}

void ru_owner_adopt_unlock(struct ru_pgw *w)
{
    atomic_store(&w->adopt_release, false);
    if (w->adopt_held == NULL)
        return;
    if (w->conn) {
        char *key = lock_key(w, w->adopt_held);
        const char *kp[1] = {key};
        PQclear(PQexecParams(w->conn, "SELECT pg_advisory_unlock(hashtextextended($1, 0))", 1, NULL,
                             kp, NULL, NULL, 0));
        free(key);
    }
    free(w->adopt_held);
    w->adopt_held = NULL;
}

/* An adoption commits only while no live process holds the adopted consumer's lock. */
int ru_owner_fence_adoption(struct ru_pgw *w, struct ru_batch *b)
{
    if (b->adopt_consumer == NULL)
        return 0;
    char *key = lock_key(w, b->adopt_consumer);
    const char *kp[1] = {key};
    PGresult *r = PQexecParams(w->conn, "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))",
                               1, NULL, kp, NULL, NULL, 0);
    free(key);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQgetvalue(r, 0, 0)[0] == 't';
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        ru_writer_pg_error(w, "locking the adopted consumer", r);
        PQclear(r);
        return -1;
    }
    PQclear(r);
    if (!ok) {
        b->fenced = true;
        snprintf(b->fence_reason, sizeof(b->fence_reason),
                 "consumer '%s' is alive (its rollupd holds its lock)", b->adopt_consumer);
        return RU_WRITER_FENCED;
    }
    return 0;
}

/* The checkpoint doubles as a fencing token: it only moves from the value this
 * writer last committed (or, for an adoption, the value read before fetching). If
 * another process changed it, this batch must not commit. */
int ru_owner_save(struct ru_pgw *w, struct ru_batch *b)
{
    struct ckpt_move m[2];
    int nm = plan_moves(w, b, m);
    b->attempted = m[0].next;
    b->attempted_set = true;
    for (int i = 0; i < nm; i++) {
        int rc = save_row(w, b, &m[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}
