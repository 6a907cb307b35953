/* keycheck: PostgreSQL's verdict on long keys, and the entries that wait for it. Pure.
 *
 * An event whose key (route, method, canonical params) is long (ru_event.key_long) might
 * not fit the hourly table's unique index; only PostgreSQL can say (event.h). The daemon
 * keeps three things here:
 *   - a bounded cache of verdicts, keyed by a 128-bit hash of the key. The hour is not
 *     part of it: the timestamp column is fixed-size, so the verdict does not depend on it;
 *   - the entries parked until their key has a verdict: id, a copy of the fields and of
 *     the key, in id order;
 *   - the keys to ask the writer about (struct ru_keycheck_probe), each once.
 * Long keys are rare, so copying a parked entry is cheap. */
#ifndef ROLLUPD_KEYCHECK_H
#define ROLLUPD_KEYCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollupd/event.h"
#include "rollupd/util.h"

enum ru_keycheck_verdict {
    RU_KEY_UNKNOWN = 0, /* not asked yet, or the answer was lost: ask (again) */
    RU_KEY_FITS,        /* PostgreSQL stores it */
    RU_KEY_REFUSED,     /* PostgreSQL cannot store it; the reason is its message */
};

struct ru_keycheck_hash {
    uint64_t lo, hi;
};

/* The hash of ev's key (route, method, canonical params). */
struct ru_keycheck_hash ru_keycheck_hash(const struct ru_event *ev);

/* ---- the verdict cache ---- */

struct ru_keycheck;

/* A cache of at most max_verdicts verdicts (at least 2). */
struct ru_keycheck *ru_keycheck_new(size_t max_verdicts);
void ru_keycheck_free(struct ru_keycheck *kc);

/* The verdict on a key; for RU_KEY_REFUSED *reason is PostgreSQL's message, borrowed
 * until the next ru_keycheck_put. A key found is kept as recently used. */
enum ru_keycheck_verdict ru_keycheck_get(struct ru_keycheck *kc, const struct ru_keycheck_hash *h,
                                         const char **reason);
/* Records RU_KEY_FITS or RU_KEY_REFUSED (reason copied; NULL for FITS). When the cache is
 * full the verdicts least recently used are dropped (two generations: the older half goes
 * at once). */
void ru_keycheck_put(struct ru_keycheck *kc, const struct ru_keycheck_hash *h,
                     enum ru_keycheck_verdict v, const char *reason);
size_t ru_keycheck_count(const struct ru_keycheck *kc);
size_t ru_keycheck_mem(const struct ru_keycheck *kc); /* bytes held */

/* ---- keys to ask PostgreSQL about ---- */

struct ru_keycheck_probe {
    struct ru_keycheck_hash key;
    int64_t hour_us;                  /* any hour will do; the entry's own */
    char *route, *method, *params;    /* owned, NUL-terminated copies */
    enum ru_keycheck_verdict verdict; /* filled by whoever asks PostgreSQL */
    char reason[256];                 /* ... and PostgreSQL's message when refused */
};

/* Frees an array of n probes (NULL is fine). */
void ru_keycheck_probes_free(struct ru_keycheck_probe *probes, size_t n);

/* ---- parked entries ---- */

/* One entry parked until its key has a verdict. */
struct ru_keycheck_entry {
    struct ru_sid id;
    struct ru_field *fields; /* a copy of the entry's fields, in one block */
    size_t nfields;
    struct ru_keycheck_hash key;
    int64_t hour_us;
    struct ru_str route, method, params; /* the key, inside the same block */
    unsigned flags;                      /* the caller's: how to finish the entry */
    enum ru_keycheck_verdict verdict;
    char *reason; /* owned; PostgreSQL's message when refused */
    size_t mem;   /* bytes this entry holds */
};

/* The parked entries, in id order. Caller-allocated: zero it or ru_keycheck_parked_init. */
struct ru_keycheck_parked {
    struct ru_keycheck_entry *v;
    size_t n, cap;
    size_t mem;     /* bytes held by the entries and the array */
    size_t waiting; /* entries without a verdict */
};

void ru_keycheck_parked_init(struct ru_keycheck_parked *p);
void ru_keycheck_parked_deinit(struct ru_keycheck_parked *p);

/* Parks one entry: fields and ev's key are copied (ev must come from parsing fields).
 * flags are kept for the caller. An id already parked is not parked twice (returns false). */
bool ru_keycheck_park(struct ru_keycheck_parked *p, const struct ru_sid *id,
                      const struct ru_field *fields, size_t nfields, const struct ru_event *ev,
                      unsigned flags);
bool ru_keycheck_is_parked(const struct ru_keycheck_parked *p, const struct ru_sid *id);

/* The distinct keys of parked entries still without a verdict, at most max of them, as a
 * new array (*out, malloc'd; NULL when none). Entries whose verdict the cache already
 * holds get it now instead. Returns the number of keys. */
size_t ru_keycheck_to_probe(struct ru_keycheck_parked *p, struct ru_keycheck *kc,
                            struct ru_keycheck_probe **out, size_t max);

/* Takes answered probes: each verdict goes into the cache and onto the parked entries
 * with that key. RU_KEY_UNKNOWN answers change nothing (those keys are asked again). */
void ru_keycheck_answer(struct ru_keycheck_parked *p, struct ru_keycheck *kc,
                        const struct ru_keycheck_probe *probes, size_t n);

/* Moves the first parked entry (in id order) that has a verdict into *out and returns
 * true; false when none has. The caller owns *out: ru_keycheck_entry_free. */
bool ru_keycheck_take(struct ru_keycheck_parked *p, struct ru_keycheck_entry *out);
void ru_keycheck_entry_free(struct ru_keycheck_entry *e);

/* Number of parked entries whose flags & mask is not zero. */
size_t ru_keycheck_count_parked(const struct ru_keycheck_parked *p, unsigned mask);
/* Drops every parked entry whose flags & mask is not zero (an abandoned adoption);
 * returns how many. */
size_t ru_keycheck_drop(struct ru_keycheck_parked *p, unsigned mask);

#endif
