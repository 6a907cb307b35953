#include "rollupd/writer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define COPY_CHUNK (1 << 20)

void ru_writer_notify(struct ru_pgw *w)
{
    uint64_t one = 1;
    ssize_t r = write(w->efd, &one, sizeof(one));
    (void)r;
}

void ru_writer_error(struct ru_pgw *w, const char *what, const char *detail)
{
    pthread_mutex_lock(&w->mu);
    snprintf(w->stats.last_error, sizeof(w->stats.last_error), "%s%s%s", what,
             detail && *detail ? ": " : "", detail ? detail : "");
    /* libpq messages end with a newline; keep log lines and JSON single-line */
    for (char *p = w->stats.last_error; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    pthread_mutex_unlock(&w->mu);
    w->sqlstate[0] = '\0';
}

/* The error of a failed statement: its message, and its SQLSTATE for the decisions. */
void ru_writer_pg_error(struct ru_pgw *w, const char *what, const PGresult *r)
{
    ru_writer_error(w, what, PQresultErrorMessage(r));
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    ru_strlcpy(w->sqlstate, st ? st : "", sizeof(w->sqlstate));
}

/* Sleeps for the current backoff (with jitter) unless stopped; returns false when
 * stopping. */
bool ru_writer_backoff(struct ru_pgw *w)
{
    int wait = ru_backoff_next(&w->backoff_ms, RU_WRITER_BACKOFF_MIN_MS, RU_WRITER_BACKOFF_MAX_MS);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += wait / 1000;
    ts.tv_nsec += (long)(wait % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    while (!w->stop && !atomic_load(&w->reconfigured)) {
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
            break;
    }
    bool go = !w->stop;
    pthread_mutex_unlock(&w->mu);
    return go;
}

/* Gives up for good: the loop stops reading and exits with this reason. */
void ru_writer_fatal(struct ru_pgw *w, const char *fmt, ...)
{
    char msg[sizeof(w->fatal)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ru_writer_error(w, msg, NULL);
    pthread_mutex_lock(&w->mu);
    if (w->fatal[0] == '\0')
        ru_strlcpy(w->fatal, msg, sizeof(w->fatal));
    pthread_mutex_unlock(&w->mu);
    ru_writer_notify(w);
}

bool ru_writer_is_fatal(struct ru_pgw *w)
{
    pthread_mutex_lock(&w->mu);
    bool f = w->fatal[0] != '\0';
    pthread_mutex_unlock(&w->mu);
    return f;
}

/* Ends the session, and with it every advisory lock: if they were held, the loop stops
 * reading at once. */
void ru_writer_drop(struct ru_pgw *w)
{
    pthread_mutex_lock(&w->mu);
    if (w->cancel) {
        PQfreeCancel(w->cancel);
        w->cancel = NULL;
    }
    w->stats.connected = false;
    pthread_mutex_unlock(&w->mu);
    if (w->conn) {
        PQfinish(w->conn);
        w->conn = NULL;
    }
    free(w->adopt_held); /* its lock went with the session */
    w->adopt_held = NULL;
    if (atomic_exchange(&w->held, false))
        ru_writer_notify(w);
}

int ru_writer_exec(struct ru_pgw *w, const char *sql, const char *what)
{
    PGresult *r = PQexec(w->conn, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        ru_writer_pg_error(w, what, r);
        PQclear(r);
        return -1;
    }
    PQclear(r);
    return 0;
}

int ru_writer_copy_in(struct ru_pgw *w, const char *sql, const struct ru_buf *data)
{
    PGresult *r = PQexec(w->conn, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        ru_writer_pg_error(w, "COPY", r);
        PQclear(r);
        return -1;
    }
    PQclear(r);
    for (size_t off = 0; off < data->len; off += COPY_CHUNK) {
        size_t n = data->len - off < COPY_CHUNK ? data->len - off : COPY_CHUNK;
        if (PQputCopyData(w->conn, data->p + off, (int)n) != 1) {
            ru_writer_error(w, "COPY data", PQerrorMessage(w->conn));
            return -1;
        }
    }
    if (PQputCopyEnd(w->conn, NULL) != 1) {
        ru_writer_error(w, "COPY end", PQerrorMessage(w->conn));
        return -1;
    }
    r = PQgetResult(w->conn);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        ru_writer_pg_error(w, "COPY", r);
        rc = -1;
    }
    PQclear(r);
    while ((r = PQgetResult(w->conn)) != NULL)
        PQclear(r);
    return rc;
}
