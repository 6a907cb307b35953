/* jsonobj: the canonical order of a JSON object's members, as jsonb keeps them: sorted by
 * their canonical key text (shorter first, then bytewise), a duplicate key keeping its last
 * value. Pure.
 *
 * json's parser writes each member of an object to the output as a record, back to back:
 * a header of RU_JSONOBJ_HDR_SIZE bytes (the key's length, then the member's, each a
 * size_t) followed by the member's canonical text `"key":value`. Once the object is
 * closed, ru_jsonobj_finish sorts the members through an index and rewrites the object's
 * region of the output (in place when no reordering is needed); nothing else is
 * allocated. */
#ifndef ROLLUPD_JSONOBJ_H
#define ROLLUPD_JSONOBJ_H

#include <stddef.h>

#include "rollupd/util.h"

#define RU_JSONOBJ_HDR_SIZE (2 * sizeof(size_t)) /* key length, member length */

/* Rewrites the n member records at out[r0..] as the canonical object. */
void ru_jsonobj_finish(struct ru_buf *out, size_t r0, size_t n);

#endif
