/* store: in-memory hourly aggregates keyed by (hour, route, method, canonical params).
 * Pure. Holds, per key, exactly the mergeable state needed to reproduce genonaut's SQL:
 * counts, sums, a duration histogram (value -> count) and the set of distinct users.
 * A flush detaches the whole store (the caller swaps in a fresh one). Not thread-safe:
 * one owner at a time (the loop while filling, the flusher once detached). */
#ifndef ROLLUPD_STORE_H
#define ROLLUPD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "rollupd/event.h"

/* Duration histogram: open addressing, count == 0 marks an empty slot. */
struct ru_hist_slot {
    int32_t value;
    uint32_t count;
};

/* One aggregate row. Strings point into the store's arena (valid while it lives). */
struct ru_agg {
    int64_t hour_us;
    const char *route;
    const char *method;
    const char *params;
    uint32_t route_len, method_len, params_len;
    uint32_t hash_hi; /* upper hash bits, to skip most string compares */

    uint64_t total, ok, c4xx, c5xx, hits, misses;
    int64_t dur_sum;
    int64_t req_sum, resp_sum, db_sum;
    uint64_t req_n, resp_n, db_n;

    struct ru_hist_slot *hist; /* hist_cap slots */
    uint32_t hist_cap, hist_n; /* capacity (power of two), distinct values */
    uint32_t *users;           /* user index + 1, 0 = empty; users_cap slots */
    uint32_t users_cap, users_n;
};

struct ru_store;

/* A new empty store; owned by the caller (ru_store_free). */
struct ru_store *ru_store_new(void);
void ru_store_free(struct ru_store *st);

/* Adds one valid event. Strings of ev are copied. */
void ru_store_add(struct ru_store *st, const struct ru_event *ev);

size_t ru_store_nkeys(const struct ru_store *st);
uint64_t ru_store_nevents(const struct ru_store *st);
/* Bytes held by the store (tables, arena, histograms, user sets). */
size_t ru_store_mem(const struct ru_store *st);

/* Bytes the next growth step of the key array or hash table would add (they double
 * when full): what a memory bound must keep in reserve. */
size_t ru_store_next_growth(const struct ru_store *st);

/* The i-th aggregate, 0 <= i < ru_store_nkeys (insertion order). Borrowed. */
const struct ru_agg *ru_store_agg(const struct ru_store *st, size_t i);

/* The user id text of a user index taken from agg->users[] (minus one). Borrowed. */
const char *ru_store_user(const struct ru_store *st, uint32_t idx, size_t *len);

/* Number of distinct user ids in the store's dictionary. */
size_t ru_store_nusers(const struct ru_store *st);

#endif
