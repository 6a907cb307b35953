#include "rollupd/probe.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <libpq-fe.h>

#include "rollupd/event.h"
#include "rollupd/log.h"
#include "rollupd/owner.h"
#include "rollupd/pgerr.h"
#include "rollupd/writer.h"

/* ---- key probes ---- */

/* Probes one key under a savepoint (see ru_pgw_request_keycheck). Returns 0 with a verdict,
 * -1 when PostgreSQL could not answer (the error is in last_error). */
static int check_key(struct ru_pgw *w, const char *sql, struct ru_keycheck_probe *q)
{
    if (ru_writer_exec(w, "SAVEPOINT ru_probe", "probing a key") < 0)
        return -1;
    char ts[32];
    ru_event_format_ts(q->hour_us, ts);
    const char *params[4] = {ts, q->route, q->method, q->params};
    PGresult *r = PQexecParams(w->conn, sql, 4, NULL, params, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
        q->verdict = RU_KEY_FITS;
    } else if (ru_pgerr_key_refused(PQresultErrorField(r, PG_DIAG_SQLSTATE))) {
        const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        q->verdict = RU_KEY_REFUSED;
        snprintf(q->reason, sizeof(q->reason), "route/params %s: %s",
                 PQresultErrorField(r, PG_DIAG_SQLSTATE)[0] == '5'
                     ? "too large for PostgreSQL's unique index"
                     : "refused by PostgreSQL",
                 m ? m : "");
    } else {
        ru_writer_pg_error(w, "probing a key", r);
        rc = -1;
    }
    PQclear(r);
    if (rc == 0 && ru_writer_exec(w, "ROLLBACK TO SAVEPOINT ru_probe", "probing a key") < 0) {
        q->verdict = RU_KEY_UNKNOWN;
        rc = -1;
    }
    return rc;
}

/* Asks PostgreSQL about each key in one transaction that is rolled back. Keys left
 * RU_KEY_UNKNOWN are asked again by the loop, after this backs off. */
void ru_probe_keys(struct ru_pgw *w, struct ru_keycheck_probe *probes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        probes[i].verdict = RU_KEY_UNKNOWN;
    if (w->conn == NULL || atomic_load(&w->reconfigured)) {
        ru_writer_drop(w);
        if (ru_pgw_connect(w) < 0) {
            ru_writer_backoff(w);
            return;
        }
    }
    size_t done = 0;
    if (ru_writer_exec(w, "BEGIN", "probing keys") == 0)
        while (done < n && check_key(w, w->sql.probe, &probes[done]) == 0)
            done++;
    bool failed = done < n;
    if (w->conn && PQstatus(w->conn) == CONNECTION_OK)
        PQclear(PQexec(w->conn, "ROLLBACK"));
    else
        ru_writer_drop(w);
    if (failed) {
        ru_log_limited(&w->rl, RU_LOG_WARNING,
                       "msg=\"key probe failed, asking again\" keys=%zu answered=%zu error=\"%s\"",
                       n, done, w->stats.last_error);
        ru_writer_backoff(w);
    } else {
        w->backoff_ms = 0;
    }
}

/* ---- an adoption's checkpoint ---- */

/* A checkpoint query for an adoption: one attempt, the loop retries if it wants. */
void ru_probe_checkpoint(struct ru_pgw *w, const char *ck_req)
{
    struct ru_sid val = {0, 0};
    int rc = -1;
    if (w->conn == NULL || atomic_load(&w->reconfigured)) {
        ru_writer_drop(w);
        ru_pgw_connect(w);
    }
    bool lone = false;
    ru_owner_adopt_unlock(w); /* an earlier adoption given up without a word */
    if (w->conn && ru_owner_adopt_lock(w, ck_req) == RU_OWNER_LOCK_DONE)
        rc = ru_owner_query_checkpoint(w, ck_req, &val, &lone);
    if (rc == 0 && lone) {
        /* its entries after the checkpoint are in no pending list to adopt */
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "consumer '%.80s' read without acknowledgements (lone_consumer); start "
                 "rollupd as that consumer to recover its entries",
                 ck_req);
        ru_writer_error(w, "adopting", msg);
        rc = -1;
    }
    if (rc < 0)
        ru_owner_adopt_unlock(w);
    pthread_mutex_lock(&w->mu);
    free(w->ck_req);
    w->ck_req = NULL;
    w->ck_done = true;
    w->ck_rc = rc;
    w->ck_val = val;
    ru_strlcpy(w->ck_err, rc < 0 ? w->stats.last_error : "", sizeof(w->ck_err));
    pthread_mutex_unlock(&w->mu);
    ru_writer_notify(w);
}
