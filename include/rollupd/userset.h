/* userset: the set of distinct user ids of one hourly row. Canonical UUIDs are kept as
 * 128 bits in one open-addressing table, any other id as text in another; users_n counts
 * both. Pure. */
#ifndef ROLLUPD_USERSET_H
#define ROLLUPD_USERSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollupd/util.h"

/* A 128-bit user id (a canonical UUID); other user ids are kept as text. */
struct ru_uuid {
    uint64_t hi, lo;
};

struct ru_userset {
    struct ru_uuid *uuids; /* open addressing; the all-zero UUID is has_zero */
    size_t uuids_cap, uuids_n;
    bool has_zero;
    struct ru_textslot {
        uint64_t hash;
        char *text; /* NULL = empty */
        uint32_t len;
    } * texts;
    size_t texts_cap, texts_n;
    size_t text_bytes; /* the texts themselves, NUL included */
};

/* Canonical UUID text (36 characters, lower-case hex, dashes at 8, 13, 18, 23) -> 128 bits.
 * Returns false for any other text. */
bool ru_uuid_from_text(const char *s, size_t len, struct ru_uuid *out);

/* Whether u is the all-zero UUID (the empty slot of the table, kept as has_zero). */
bool ru_userset_uuid_is_zero(const struct ru_uuid *u);
bool ru_userset_has_uuid(const struct ru_userset *us, const struct ru_uuid *u);
/* Room for n ids in all, at a load of at most 3/4: one rehash however many arrive. */
void ru_userset_reserve_uuids(struct ru_userset *us, size_t n);
/* Adds u, known not to be in the set. */
void ru_userset_add_uuid(struct ru_userset *us, const struct ru_uuid *u);
/* The hash a text id is kept under (ru_userset_has_text, ru_userset_add_text). */
uint64_t ru_userset_text_hash(const char *s, size_t len);
bool ru_userset_has_text(const struct ru_userset *us, const char *s, size_t len, uint64_t h);
/* Adds a copy of [s, s+len), known not to be in the set. */
void ru_userset_add_text(struct ru_userset *us, const char *s, size_t len, uint64_t h);
/* Frees both tables and empties the set. */
void ru_userset_free(struct ru_userset *us);
/* Distinct ids in the set. */
size_t ru_userset_count(const struct ru_userset *us);

#endif
