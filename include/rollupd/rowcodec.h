/* rowcodec: the compact stored form of a row state, one chunk per rollupd_rowstate version
 * (bytea): a base chunk holds the whole histogram and user set, another what one version
 * added to them. Pure.
 *
 * chunk := varint nhist, nhist x (zigzag varint value step, varint count),
 *          varint nuuid, nuuid x 16 bytes (big-endian), varint ntext, ntext x (varint len, bytes)
 * Histogram values ascend; the first step is from 0.
 *
 * The two functions keep the rowstate names the writer has always called them by. */
#ifndef ROLLUPD_ROWCODEC_H
#define ROLLUPD_ROWCODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollupd/rowstate.h"
#include "rollupd/util.h"

/* Applies one stored chunk: a base chunk replaces histogram and users, another adds to
 * them. Returns 0, or -1 when the bytes are not a chunk. */
int ru_rowstate_apply_chunk(struct ru_rowstate *s, const uint8_t *data, size_t len,
                            bool base) RU_MUSTCHECK;
/* Appends the chunk to store: what the delta adds, or with full the whole next state
 * (base's users included). */
void ru_rowdelta_encode(const struct ru_rowdelta *d, const struct ru_rowstate *base, bool full,
                        struct ru_buf *out);

#endif
