/* pgw: the PostgreSQL writer. Owns the PGconn and a flusher thread, so a slow or absent
 * PostgreSQL never stalls the event loop: the loop hands over a detached batch
 * (ru_pgw_submit), keeps reading into a fresh store, and learns of the COMMIT through
 * ru_pgw_fd() becoming readable. A batch is retried (with backoff, after reconnecting)
 * until it commits or the writer is stopped: data is never dropped.
 *
 * One flush is one transaction: lock the touched rows of route_analytics_hourly in key
 * order, bring the writer's cached state of each up to the version PostgreSQL holds
 * (rowstate), compute every derived column here with PostgreSQL's own arithmetic
 * (pgnum), insert new rows once with their final values, update the others, store each
 * row's counters and one chunk of what the flush added to its histogram and user set,
 * optional COPY of raw rows, and the consumer's checkpoint.
 *
 * This header is the writer's whole interface. Inside, one concept a file: pgw.c (thread,
 * mailbox, connect, retry, idle check), schema.c (set-up), owner.c (locks, checkpoint
 * rows, adoption), flush.c (the transaction), their shared state in writer.h; the pure
 * parts are batch, sql (the SQL texts), pgerr (SQLSTATE decisions) and rowstate. */
#ifndef ROLLUPD_PGW_H
#define ROLLUPD_PGW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollupd/batch.h"
#include "rollupd/config.h"
#include "rollupd/keycheck.h"
#include "rollupd/store.h"
#include "rollupd/util.h"

/* COPY text escaping of [s, s+len) (backslash, tab, newline, carriage return); the same as
 * ru_batch_copy_escape. */
void ru_pgw_copy_escape(struct ru_buf *out, const char *s, size_t len);

enum ru_pgw_state { RU_PGW_CONNECTING, RU_PGW_READY, RU_PGW_FLUSHING, RU_PGW_RETRYING };

struct ru_pgw_stats {
    uint64_t flushes, flush_failures, rows_written, events_flushed, raw_rows;
    /* row states: rows whose cached state was behind PostgreSQL's and was read back,
     * states evicted (all, and those only to keep the memory bound), chunk bytes written,
     * and the cache's current size */
    uint64_t state_reloads, state_evictions, state_budget_evictions, chunk_bytes;
    uint64_t cache_rows, cache_bytes;
    uint64_t scratch_bytes; /* the reused block the next states are prepared in */
    uint64_t cache_flushes; /* committed flushes whose states the cache has taken */
    int64_t cache_last_us;  /* how long the last of those took (after the COMMIT) */
    int64_t last_flush_unix_ms, last_flush_us;
    bool connected;
    char last_error[640];
};

struct ru_pgw;

/* Appends the DDL of every table, index and column rollupd would create for cfg's
 * hourly and raw tables (what set-up runs for the missing ones when
 * postgres.create_schema is on), as one transaction, for rollupd --print-schema. */
void ru_pgw_schema_sql(const struct ru_config *cfg, struct ru_buf *out);

/* Copies the settings it needs. The thread starts at once and connects, creates the
 * schema if missing and loads this consumer's checkpoint; ru_pgw_ready() tells when.
 * NULL with errno set when the eventfd or the thread cannot be made (out of file
 * descriptors, memory or threads): nothing started, nothing to free. */
struct ru_pgw *ru_pgw_new(const struct ru_config *cfg);
/* Stops the thread (abandoning a flush in progress, which rolls back) and frees. */
void ru_pgw_free(struct ru_pgw *w);

/* Readable when the initial set-up or a submitted batch finished. */
int ru_pgw_fd(const struct ru_pgw *w);
/* Clears the fd's readiness; returns the finished batch (or NULL when the event was
 * the initial set-up). The batch has committed: acknowledge its ids and free it. */
struct ru_batch *ru_pgw_collect(struct ru_pgw *w);

bool ru_pgw_ready(const struct ru_pgw *w); /* set-up done: schema and checkpoint */
bool ru_pgw_busy(const struct ru_pgw *w);  /* a batch is in the writer's hands */

/* What set-up found in rollupd_checkpoint. committed: this consumer's row (a lone
 * consumer: the group's row, consumer ''). A lone consumer's entries belong to the group,
 * not to its name: the group row holds the checkpoint of whichever lone consumer read it
 * last and whether entries after it may have been read without acknowledgement. */
struct ru_pgw_start {
    struct ru_sid committed;
    bool recover;             /* the group row's lone mark */
    struct ru_sid group_ckpt; /* the group row's checkpoint */
    struct ru_sid dead_pos;   /* the dead-letter position stored with it */
    bool dead_pos_known;
};
void ru_pgw_start_point(const struct ru_pgw *w, struct ru_pgw_start *out);

/* Ownership. A process reads only while its PostgreSQL session holds the consumer's
 * advisory lock (and the group's: exclusive for a lone consumer or while recovering a
 * lone consumer's entries, shared otherwise). held: the session is believed alive;
 * generation: counts the times the locks were taken (and the checkpoint found as this
 * process left it), so a change means a new session. */
bool ru_pgw_held(const struct ru_pgw *w);
unsigned ru_pgw_generation(const struct ru_pgw *w);
/* Asks the writer to prove its session alive by a round trip (or a commit) made after
 * this call; returns a ticket for ru_pgw_probed. */
unsigned ru_pgw_probe(struct ru_pgw *w);
bool ru_pgw_probed(const struct ru_pgw *w, unsigned ticket);
/* Non-NULL when the writer gave up for good (another process holds this consumer, or
 * the checkpoint moved under us): the loop must stop reading and exit. */
const char *ru_pgw_fatal(struct ru_pgw *w);

/* Hands a batch to the writer (consumed). Only when ready and not busy. */
void ru_pgw_submit(struct ru_pgw *w, struct ru_batch *b);

/* Asks the writer for another consumer's checkpoint (for adoption). Only when ready and
 * not busy. The answer arrives like a finished batch: ru_pgw_collect returns NULL and
 * ru_pgw_take_checkpoint then returns 1 with the result (0 when there is none, -1 with a
 * reason in err when the query failed). */
void ru_pgw_request_checkpoint(struct ru_pgw *w, const char *consumer);
int ru_pgw_take_checkpoint(struct ru_pgw *w, struct ru_sid *out, char *err, size_t errlen);
/* The checkpoint request also takes the adopted consumer's advisory lock (refused at once,
 * before anything is read, when that consumer's rollupd is alive) and holds it until the
 * adoption's batch committed or was fenced, or until this call: an adoption given up. */
void ru_pgw_adopt_release(struct ru_pgw *w);

/* Asks the writer whether PostgreSQL can store each key in the hourly table (keys that
 * might not fit its unique index: keycheck.h). Only when ready and not busy; probes are
 * consumed. The writer inserts each key with ON CONFLICT DO NOTHING under a savepoint
 * that it rolls back, in a transaction it rolls back: nothing is written. A class 22 or
 * 54 error (data exception, program limit exceeded: "index row size ... exceeds btree
 * version 4 maximum 2704") is a refusal with PostgreSQL's message; any other failure
 * leaves the remaining keys RU_KEY_UNKNOWN (the writer backs off before answering). The
 * answer arrives like a finished batch: ru_pgw_collect returns NULL and
 * ru_pgw_take_keycheck then returns 1 and hands the probes back with their verdicts (owned
 * by the caller); 0 while there is no answer. */
void ru_pgw_request_keycheck(struct ru_pgw *w, struct ru_keycheck_probe *probes, size_t n);
int ru_pgw_take_keycheck(struct ru_pgw *w, struct ru_keycheck_probe **probes, size_t *n);

/* New conninfo and statement timeout on reload: the writer reconnects before its next
 * transaction. */
void ru_pgw_reconfigure(struct ru_pgw *w, const struct ru_config *cfg);
/* Applies what a reload changes without a new session: the row-state cache's budget
 * (limits.max_memory_mb), flush.state_idle_s and postgres.create_schema. Called on every
 * reload; ru_pgw_reconfigure applies them too. */
void ru_pgw_apply_live(struct ru_pgw *w, const struct ru_config *cfg);

/* Asks PostgreSQL to cancel the statement in progress (thread-safe; for an immediate
 * exit, so the server session does not linger holding locks). */
void ru_pgw_cancel(struct ru_pgw *w);

/* Bytes held by the cache of row states (thread-safe; at most a quarter of
 * limits.max_memory_mb once a flush has ended). */
size_t ru_pgw_cache_mem(const struct ru_pgw *w);

/* A consistent copy of the writer's figures (thread-safe). */
void ru_pgw_get_stats(const struct ru_pgw *w, struct ru_pgw_stats *out);

#endif
