/* writer: the PostgreSQL writer's state, shared by the files that make it up, and the
 * few helpers they all use to talk to the session and report what failed. Not for use
 * outside the writer: the loop sees only pgw.h.
 *
 * The writer is one thread (pgw.c: mailbox, connect, retry, idle check) and what it does
 * on its session: set-up of the schema (schema.c), the consumer's advisory locks and
 * checkpoint rows (owner.c), the flush transaction (flush.c), and the answers to the
 * loop's key probes and an adoption's checkpoint query (probe.c). Fields marked
 * "protected by mu" are shared with the loop's thread; "thread-owned" ones only the
 * writer's thread touches.
 *
 * Errors: a failing step records what failed in stats.last_error (ru_writer_error, or
 * ru_writer_pg_error with the statement's SQLSTATE for the retry decision, pgerr.h) and
 * returns -1; the caller decides what to log and whether to retry. */
#ifndef ROLLUPD_WRITER_H
#define ROLLUPD_WRITER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "rollupd/keycheck.h"
#include "rollupd/log.h"
#include "rollupd/pgw.h"
#include "rollupd/rowcache.h"
#include "rollupd/rowstate.h"
#include "rollupd/sql.h"
#include "rollupd/util.h"

#define RU_WRITER_BACKOFF_MIN_MS 100
#define RU_WRITER_BACKOFF_MAX_MS 30000
#define RU_WRITER_SCRATCH_MIN    (64 * 1024) /* the smallest chunk of a flush's deltas */
#define RU_WRITER_SCHEMA_LOCK    7250301     /* advisory lock key serialising schema changes */

struct ru_flush_key;

/* How a step of a flush transaction (and the attempt) ended. */
enum ru_writer_rc {
    RU_WRITER_DONE = 0,
    RU_WRITER_FAILED = -1, /* rolled back; retried at once when the SQLSTATE says a race was
                            * lost (pgerr), after the backoff otherwise */
    RU_WRITER_RACED = -2,  /* another writer inserted some of the batch's new rows after they
                            * were looked up: they exist now, so an attempt at once updates them */
    RU_WRITER_FENCED = -3, /* must not commit here (the checkpoint moved, the adopted consumer
                            * is alive): handed back to the loop, never retried */
};

struct ru_pgw {
    pthread_t thread;
    bool started; /* the thread runs (until ru_pgw_free) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int efd;

    /* protected by mu */
    char *conninfo;
    int statement_timeout_ms, connect_timeout_s;
    _Atomic bool reconfigured;
    bool stop;
    struct ru_batch *job;      /* submitted, not yet done */
    struct ru_batch *inflight; /* thread-owned: the job run_batch works on */
    struct ru_batch *done;     /* committed, not yet collected */
    bool init_done_event;
    struct ru_pgw_stats stats;
    PGcancel *cancel;

    _Atomic bool ready, busy;
    _Atomic size_t cache_bytes; /* the state cache's size, for the loop's memory bound */
    struct ru_pgw_start start;  /* what set-up found */
    /* Fencing tokens: what our last commit stored in this consumer's row and in the
     * group's row. A commit moves a row only from its token. */
    struct ru_sid own, grp;
    /* A shared-group consumer holding the group lock exclusively to recover a lone
     * consumer's entries: its commits move the group row too, and the first commit after
     * the recovery clears the mark and goes back to the shared lock. */
    bool tail_held;
    _Atomic bool held;
    _Atomic unsigned generation, probe_req, probe_done;
    char fatal[400];  /* protected by mu; set once */
    char sqlstate[6]; /* thread-owned: of the error in last_error ("" when it has none) */

    /* checkpoint request (adoption), protected by mu */
    char *ck_req;
    /* the consumer being adopted, whose lock this session holds from the checkpoint
     * request until the adoption commits or is given up (thread-owned); and the loop's
     * request to release it */
    char *adopt_held;
    _Atomic bool adopt_release;
    bool ck_done;
    int ck_rc;
    struct ru_sid ck_val;
    char ck_err[256];

    /* keys to check (long keys), protected by mu: asked, then answered */
    struct ru_keycheck_probe *kc_req, *kc_done;
    size_t kc_n;
    bool kc_answered;

    /* thread-owned */
    PGconn *conn;
    char *stream, *group, *consumer;
    bool lone;
    char *hourly_cfg, *raw_cfg;
    char *cfg_path;             /* for the errors that point at --print-schema */
    _Atomic bool create_schema; /* postgres.create_schema, as of the last reload */
    bool setup_blocked;         /* set-up failed on a missing table or privilege: retry slowly */
    struct ru_sql_names n;
    struct ru_sql_flush sql;   /* the statements for n */
    struct ru_rowcache *cache; /* states of recently written rows */
    /* the deltas of the flush in progress: one chunk reused from flush to flush (sized to
     * what the last flush needed), so preparing a key allocates nothing and faults in no
     * fresh pages */
    struct ru_arena scratch;
    size_t cache_budget;            /* bytes */
    int64_t state_idle_ms;          /* flush.state_idle_s: a state idle this long is given back */
    int64_t idle_scan_ms;           /* when the cache was last searched for idle states */
    int64_t trim_ms;                /* when the heap was last trimmed after idle states went */
    int64_t flush_ms;               /* when the flush in progress started */
    struct ru_flush_key *done_keys; /* committed, not yet in the cache */
    size_t done_nkeys;
    int backoff_ms;
    struct ru_buf copybuf;
    struct ru_ratelimit rl;
};

/* (pgw.c) Opens the session: connect, the session's settings, the consumer's locks.
 * 0, or -1 with the error (the session dropped). */
int ru_pgw_connect(struct ru_pgw *w);
/* Wakes the loop: ru_pgw_fd() becomes readable. */
void ru_writer_notify(struct ru_pgw *w);
/* Records "what: detail" as the last error (one line); no SQLSTATE. */
void ru_writer_error(struct ru_pgw *w, const char *what, const char *detail);
/* Records a failed statement's message and SQLSTATE (r may be NULL). */
void ru_writer_pg_error(struct ru_pgw *w, const char *what, const PGresult *r);
/* Gives up for good: the loop stops reading and exits with this reason. */
void ru_writer_fatal(struct ru_pgw *w, const char *fmt, ...) RU_PRINTF(2, 3);
bool ru_writer_is_fatal(struct ru_pgw *w);
/* Sleeps for the current backoff (with jitter, doubling it up to the maximum) unless
 * stopped or reconfigured; returns false when stopping. */
bool ru_writer_backoff(struct ru_pgw *w);
/* Ends the session, and with it every advisory lock: if they were held, the loop stops
 * reading at once. */
void ru_writer_drop(struct ru_pgw *w);
/* Runs sql (any number of statements, no result rows wanted). 0, or -1 with the error. */
int ru_writer_exec(struct ru_pgw *w, const char *sql, const char *what) RU_MUSTCHECK;
/* COPY ... FROM STDIN of data. 0, or -1 with the error (and its SQLSTATE). */
int ru_writer_copy_in(struct ru_pgw *w, const char *sql, const struct ru_buf *data) RU_MUSTCHECK;

#endif
