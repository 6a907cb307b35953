/* owner: who may read the consumer, and where it stands. The writer's session holds the
 * consumer's advisory lock (and the group's: exclusive for a lone consumer or while it
 * recovers a lone consumer's entries, shared otherwise) for as long as the process reads;
 * rollupd_checkpoint holds each consumer's checkpoint (a lone consumer's: the group's row,
 * consumer '') and doubles as a fencing token, moved only from the value this writer last
 * committed. Adoption takes a dead consumer's lock and commits under its checkpoint.
 * README: "Exactly once" and "A lone consumer". */
#ifndef ROLLUPD_OWNER_H
#define ROLLUPD_OWNER_H

#include <stdbool.h>

#include "rollupd/batch.h"
#include "rollupd/util.h"

struct ru_pgw;

/* What an advisory lock function came to. */
enum ru_owner_lock_rc {
    RU_OWNER_LOCK_DONE = 0,
    RU_OWNER_LOCK_ERROR = -1,
    RU_OWNER_LOCK_BUSY = 1, /* another session holds the lock (lock_timeout ran out) */
};

/* Takes this process's locks on a fresh session: the consumer's, exclusively (two
 * processes with one consumer name would share one checkpoint and pending list), and the
 * group's: exclusively for a lone consumer (its entries after the checkpoint belong to
 * the group), shared for a shared-group consumer, which upgrades to exclusive while it
 * recovers what a lone consumer left (w->tail_held). */
enum ru_owner_locks {
    RU_OWNER_HELD = 0,
    RU_OWNER_RETRY = -1,  /* an error, or the group is held by others: try again later */
    RU_OWNER_IN_USE = -2, /* another process holds this consumer: fatal (ru_writer_fatal called) */
};
int ru_owner_take_locks(struct ru_pgw *w);
/* The rows that set-up starts from (first connection: w->start and the tokens), or, after
 * a reconnect, a check that nobody moved them while the session was lost (fatal if one
 * did). 0 or -1. */
int ru_owner_load_checkpoint(struct ru_pgw *w);
/* consumer's stored checkpoint (0-0 when it has none) and its lone mark. 0 or -1. */
int ru_owner_query_checkpoint(struct ru_pgw *w, const char *consumer, struct ru_sid *out,
                              bool *lone);

/* In the flush transaction, before the checkpoint: an adoption is fenced (returns
 * RU_WRITER_FENCED, b->fence_reason set) while the adopted consumer's rollupd lives. */
int ru_owner_fence_adoption(struct ru_pgw *w, struct ru_batch *b);
/* In the flush transaction: moves the batch's checkpoint rows from their tokens (records
 * the attempt in b->attempted). 0, -1, or RU_WRITER_FENCED when a row was moved by
 * another process (b->fence_reason says which). */
int ru_owner_save(struct ru_pgw *w, struct ru_batch *b);
/* After COMMIT: the tokens follow; a recovered group goes back to the shared lock. */
void ru_owner_after_commit(struct ru_pgw *w, const struct ru_batch *b);
/* After a failed attempt whose COMMIT may have reached the server: whether it did. */
bool ru_owner_committed_already(struct ru_pgw *w, struct ru_batch *b);

/* Adoption: takes consumer's lock at once or not at all (RU_OWNER_LOCK_BUSY: it is
 * alive), held until ru_owner_adopt_unlock or the session ends. */
int ru_owner_adopt_lock(struct ru_pgw *w, const char *consumer);
void ru_owner_adopt_unlock(struct ru_pgw *w);

#endif
