/* batch: what one flush writes and what to acknowledge once it committed: the store of
 * hourly aggregates, the stream ids, the checkpoint, and the optional raw rows already in
 * PostgreSQL's COPY text format. Pure: the writer (pgw) takes a batch whole and frees it.
 * Also the COPY text helpers the writer's other COPYs share. */
#ifndef ROLLUPD_BATCH_H
#define ROLLUPD_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollupd/store.h"
#include "rollupd/util.h"

/* What one flush writes, and what to acknowledge once it committed. Owned by whoever
 * holds it: the loop while filling, the writer between submit and completion. */
struct ru_batch {
    struct ru_store *store;
    struct ru_sid *ids; /* stream entries to XACK after COMMIT */
    size_t nids, ids_cap;
    struct ru_sid checkpoint; /* highest id applied by this batch (and all before it) */
    /* Stored with the checkpoint: entries after it may have been delivered without
     * acknowledgement (a lone consumer, or one still owing that recovery), so the next
     * start must read them again from the stream rather than from a pending list. */
    bool lone;
    /* A lone consumer's first commit: the group's starting point and the lone mark, to be
     * committed even without events before any read without acknowledgement. */
    bool lone_start;
    /* Committed even without events: a shared-group consumer that recovered a lone
     * consumer's entries clears the group's mark with it. */
    bool force;
    /* The dead-letter stream's newest confirmed copy when the batch was detached: copies
     * of entries after the checkpoint were written after it (stored with the group's
     * checkpoint, where the recovery's scan of the dead letters stops). */
    struct ru_sid dead_pos;
    struct ru_buf raw; /* COPY text rows for the raw table (optional) */
    uint64_t nraw;
    struct ru_sid *raw_ids; /* the stream id of each raw row */
    size_t raw_ids_cap;
    /* Raw rows refused (by our checks at ingest, or by PostgreSQL at COPY time and then
     * isolated by bisection): their events still count in the hourly table. */
    struct ru_raw_reject {
        struct ru_sid id;
        char reason[200];
    } * rejects;
    size_t nrejects, rejects_cap;
    size_t ingest_rejects; /* rejects found at ingest (kept across retries) */
    int64_t created_ms;    /* monotonic time of the first event, for freshness */

    /* Adoption: apply under another (dead) consumer's checkpoint. NULL = our own. The
     * writer commits only if that checkpoint still equals adopt_expected and no live
     * process holds the consumer's lock; otherwise the batch comes back fenced. */
    char *adopt_consumer;
    struct ru_sid adopt_expected;

    /* filled by the writer */
    uint64_t rows_written;
    uint64_t raw_written; /* raw rows copied (nraw less those PostgreSQL refused) */
    int64_t duration_us;
    int attempts;
    struct ru_sid attempted; /* the checkpoint an attempt tried to store */
    bool attempted_set;
    bool fenced; /* not committed: the checkpoint moved under us (another process took
                  * over this consumer), or the adopted consumer is alive */
    char fence_reason[420];
};

struct ru_batch *ru_batch_new(void);
void ru_batch_free(struct ru_batch *b);
void ru_batch_add_id(struct ru_batch *b, const struct ru_sid *id);
/* An emptied entry-id array kept from a committed batch for the batch the next flush starts
 * (two arrays take turns, one filling, one in the writer's hands): a steady stream fills one of
 * about the same size every flush, and growing it again by doubling each time leaves
 * short-lived blocks among the heap's long-lived ones. */
struct ru_batch_ids {
    struct ru_sid *ids;
    size_t cap;
};
/* Bytes beyond b's id array as it is that adding `more` ids would have allocated at the
 * peak: the final array and, during its realloc, the one it grew from (0 when they fit). */
size_t ru_batch_ids_growth(const struct ru_batch *b, size_t more);
/* Moves b's id array into *spare when *spare is empty, the array takes at most max_bytes
 * and b used a quarter of it or more (an array grown by a backlog is freed with the first
 * later batch that fills less than a quarter of it, and the next batches grow one to the
 * steady size again). */
void ru_batch_keep_ids(struct ru_batch *b, struct ru_batch_ids *spare, size_t max_bytes);
/* Gives *spare's array to b, which must have none yet; *spare is left empty. */
void ru_batch_use_ids(struct ru_batch *b, struct ru_batch_ids *spare);
/* Frees b's id array when it holds no id. */
void ru_batch_ids_release(struct ru_batch *b);
/* Bytes of the kept array. */
size_t ru_batch_ids_mem(const struct ru_batch_ids *spare);
/* Frees the kept array, if any. */
void ru_batch_ids_free(struct ru_batch_ids *spare);
/* Raises the checkpoint only: an entry read without acknowledgement has nothing to XACK. */
void ru_batch_note_id(struct ru_batch *b, const struct ru_sid *id);
/* Nothing to commit: no event, no id, no checkpoint move. */
bool ru_batch_empty(const struct ru_batch *b);
/* Bytes the batch holds (store + ids + raw rows). */
size_t ru_batch_mem(const struct ru_batch *b);

/* Appends one raw row in COPY text format for genonaut's route_analytics table (ev parsed
 * with RU_EVENT_RAW).
 * Returns 0, or -1 when PostgreSQL would refuse the row (user id not a UUID,
 * query_params not JSON, cache_status too long): the refusal is recorded in
 * b->rejects with its reason instead. */
struct ru_event;
int ru_batch_add_raw(struct ru_batch *b, const struct ru_sid *id, const struct ru_event *ev);
void ru_batch_add_reject(struct ru_batch *b, const struct ru_sid *id, const char *reason);

/* COPY text escaping of [s, s+len) (backslash, tab, newline, carriage return). */
void ru_batch_copy_escape(struct ru_buf *out, const char *s, size_t len);
/* v, or COPY's NULL (\N) when not present. */
void ru_batch_put_int_or_null(struct ru_buf *b, int64_t v, bool present);

#endif
