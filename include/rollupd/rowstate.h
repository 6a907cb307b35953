/* rowstate: the complete mergeable state of one hourly row, as the PostgreSQL writer keeps
 * it between flushes. Pure.
 *
 * PostgreSQL holds, per hourly row, a short list of versions (rollupd_rowstate): each has
 * the counters as of that version and a chunk of what it added to the row's duration
 * histogram and user set, or, for a base version, the whole histogram and user set. The
 * writer caches the state of recently written rows, so a flush sends only what changed and
 * computes the derived columns (averages, percentiles, distinct users) here, with
 * PostgreSQL's own arithmetic (pgnum). A cached state is used only while its version equals
 * the newest one stored, read under the row lock; otherwise the versions after it are read
 * back.
 *
 * A flush of one row: ru_rowdelta_prepare (next state = cached state + one batch key),
 * ru_rowdelta_derive (the hourly row's values), ru_rowdelta_encode (rowcodec: the chunk to
 * store), and after COMMIT ru_rowstate_commit.
 *
 * The user set is userset's, the stored form rowcodec's, the flush's arena scratch's and
 * the writer's cache of states rowcache's. */
#ifndef ROLLUPD_ROWSTATE_H
#define ROLLUPD_ROWSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollupd/arena.h"
#include "rollupd/store.h"
#include "rollupd/userset.h"
#include "rollupd/util.h"

/* Counters stored with each version in rollupd_rowstate, in its column order. */
struct ru_rowcounts {
    int64_t total, ok, c4xx, c5xx, hits, misses, dur_sum, req_sum, req_n, resp_sum, resp_n, db_sum,
        db_n, users_n;
};
#define RU_ROWCOUNTS_N 14

/* One histogram entry: a duration and how many events had it. */
struct ru_hv {
    int32_t value;
    uint64_t count;
};

struct ru_rowstate {
    int64_t id;      /* route_analytics_hourly.id */
    int64_t version; /* the rollupd_rowstate seq this state reflects (0: none stored) */
    int32_t nchunks; /* chunk rows behind it in PostgreSQL */
    int64_t used_ms; /* when the flush that last used it started (ru_mono_ms): eviction's
                      * order (least recent first) and how long it has been idle */
    size_t counted;  /* bytes the cache counts for it (ru_rowcache_remeasure) */
    struct ru_rowcounts c;
    struct ru_hv *hist; /* sorted by value */
    size_t hist_n, hist_cap;
    struct ru_userset users;
};

struct ru_rowstate *ru_rowstate_new(int64_t id);
void ru_rowstate_free(struct ru_rowstate *s);
/* Forgets histogram and users (counters and version are the caller's). */
void ru_rowstate_clear(struct ru_rowstate *s);
/* Bytes the state holds. */
size_t ru_rowstate_mem(const struct ru_rowstate *s);
/* Whether the histogram and user set agree with stored counters (every event is in the
 * histogram; users_n counts the set). */
bool ru_rowstate_consistent(const struct ru_rowstate *s, const struct ru_rowcounts *c);
/* out = a + b, both sorted by value; returns the entries written (out holds an + bn). */
size_t ru_rowstate_hist_merge(struct ru_hv *out, const struct ru_hv *a, size_t an,
                              const struct ru_hv *b, size_t bn);

/* The newest version of a row PostgreSQL holds, read under the row lock. */
struct ru_rowstored {
    bool found; /* false: PostgreSQL holds no state for the row */
    int64_t version;
    int32_t nchunks; /* chunk rows behind it */
    struct ru_rowcounts c;
};

/* What reconciling a cached state with the stored version asks of the writer. */
enum ru_rowsync {
    RU_ROWSYNC_FRESH,   /* nothing stored (a row written before rollupd ran, or by another
                         * job): rollupd's figures start from nothing, in a base version */
    RU_ROWSYNC_CURRENT, /* the cached state is the stored version */
    RU_ROWSYNC_RELOAD,  /* read back the chunks after version *after (0: all of them) */
};

/* Brings s to the stored version st as far as it can without PostgreSQL: the counters,
 * version and chunk count become st's; histogram and users stay when they are that
 * version or an older one (the chunks after *after complete them), and are cleared when
 * they cannot be trusted: a cached version newer than the stored one (versions rolled
 * back, a restored database) or the same version with other contents (*disagreed set:
 * versions deleted and written again). Pure. */
enum ru_rowsync ru_rowstate_reconcile(struct ru_rowstate *s, const struct ru_rowstored *st,
                                      int64_t *after, bool *disagreed);

/* The next state of one row: base (NULL for a row with no stored state) plus one batch key. */
struct ru_rowdelta {
    struct ru_rowcounts c; /* next counters (absolute) */
    struct ru_hv *add;     /* the batch's histogram, sorted */
    size_t add_n;
    struct ru_hv *next_hist; /* base histogram + add, sorted */
    size_t next_n;
    struct ru_uuid *new_uuids; /* user ids new to the row */
    size_t new_uuids_n;
    struct ru_str *new_texts; /* copies, in the scratch */
    size_t new_texts_n;
};

struct ru_hourly_vals {
    int64_t total, ok, c4xx, c5xx, avg_dur, p50, p95, p99, users, hits, misses;
    bool has_req, has_resp, has_db;
    int64_t avg_req, avg_resp;
    double avg_db;
};

/* A user id of a store's dictionary, parsed once for all the keys of a batch. */
struct ru_userkey {
    struct ru_uuid uuid;
    uint64_t hash; /* of the text, when it is not a UUID */
    bool is_uuid;
};
/* One entry per user index of st (ru_store_nusers); the caller frees it. */
struct ru_userkey *ru_userkeys_build(const struct ru_store *st);

/* Fills d, its arrays in sc (valid until sc is reset). */
void ru_rowdelta_prepare(struct ru_rowdelta *d, const struct ru_rowstate *base,
                         const struct ru_store *st, const struct ru_userkey *uk,
                         const struct ru_agg *a, struct ru_arena *sc);
/* The hourly row's columns for the next state, as genonaut's SQL computes them. */
void ru_rowdelta_derive(const struct ru_rowdelta *d, struct ru_hourly_vals *v);
/* After COMMIT: s becomes the next state (its arrays copied out of the scratch). */
void ru_rowstate_commit(struct ru_rowstate *s, struct ru_rowdelta *d, int64_t version,
                        int32_t nchunks);

#endif
