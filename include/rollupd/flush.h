/* flush: one flush of a batch, as one transaction on the writer's session: the batch's
 * keys sorted (one lock order for every writer), then write_rows in its steps (stage the
 * keys, lock the rows that exist, read their stored versions, bring the cached states to
 * them, prepare the next states, insert the new rows, encode, write), the raw rows (each
 * refused row isolated by bisection), the checkpoint (owner.h), COMMIT. After the loop
 * has been told, the cache of row states takes the committed states. */
#ifndef ROLLUPD_FLUSH_H
#define ROLLUPD_FLUSH_H

#include "rollupd/batch.h"

struct ru_pgw;
struct ru_flush_key;

/* One attempt: an enum ru_writer_rc (writer.h). On RU_WRITER_DONE the committed keys wait
 * in w->done_keys for ru_flush_apply_done. */
int ru_flush_once(struct ru_pgw *w, struct ru_batch *b);
/* The cache takes the committed states of the last flush, then keeps to its budget. */
void ru_flush_apply_done(struct ru_pgw *w);
void ru_flush_keys_free(struct ru_flush_key *keys);

#endif
