#include "rollupd/flush.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollupd/event.h"
#include "rollupd/owner.h"
#include "rollupd/pgerr.h"
#include "rollupd/rowcache.h"
#include "rollupd/rowcodec.h"
#include "rollupd/rowstate.h"
#include "rollupd/writer.h"

#define MAX_CHUNKS 32 /* chunks per row before they are folded into one base chunk */

/* What one flush decides for one batch key (index into the sorted key order). */
struct ru_flush_key {
    const struct ru_agg *a;
    int64_t id;               /* hourly row id; 0 until a new row is inserted */
    struct ru_rowstate *base; /* cached state the key builds on; NULL for a new row */
    struct ru_rowdelta d;
    int64_t version;
    int32_t nchunks;
    bool is_new, full, compact;
    struct ru_rowstored st; /* the newest stored version, read under the row lock */
};

static int agg_key_cmp(const struct ru_agg *x, const struct ru_agg *y)
{
    if (x->hour_us != y->hour_us)
        return x->hour_us < y->hour_us ? -1 : 1;
    const char *xs[3] = {x->route, x->method, x->params};
    const char *ys[3] = {y->route, y->method, y->params};
    const uint32_t xl[3] = {x->route_len, x->method_len, x->params_len};
    const uint32_t yl[3] = {y->route_len, y->method_len, y->params_len};
    for (int i = 0; i < 3; i++) {
        int c = memcmp(xs[i], ys[i], xl[i] < yl[i] ? xl[i] : yl[i]);
        if (c != 0)
            return c;
        if (xl[i] != yl[i])
            return xl[i] < yl[i] ? -1 : 1;
    }
    return 0;
}

static int fk_cmp(const void *a, const void *b)
{
    return agg_key_cmp(((const struct ru_flush_key *)a)->a, ((const struct ru_flush_key *)b)->a);
}

static void put_key(struct ru_buf *o, size_t k, const struct ru_agg *a)
{
    char ts[32];
    ru_buf_put_i64(o, (int64_t)k);
    ru_buf_putc(o, '\t');
    ru_buf_append(o, ts, ru_event_format_ts(a->hour_us, ts));
    ru_buf_putc(o, '\t');
    ru_batch_copy_escape(o, a->route, a->route_len);
    ru_buf_putc(o, '\t');
    ru_batch_copy_escape(o, a->method, a->method_len);
    ru_buf_putc(o, '\t');
    ru_batch_copy_escape(o, a->params, a->params_len);
}

static int64_t get_i64(const PGresult *r, int row, int col)
{
    int64_t v = 0;
    const char *s = PQgetvalue(r, row, col);
    if (ru_parse_i64(s, strlen(s), &v) < 0)
        v = 0;
    return v;
}

/* Brings the cached states of the listed rows up to the version PostgreSQL holds, from
 * the chunks written after the cached one (all of them for a row not cached). */
static int reload_states(struct ru_pgw *w, struct ru_flush_key *keys, const size_t *which, size_t n,
                         const int64_t *after)
{
    struct ru_buf ids = RU_BUF_INIT, afters = RU_BUF_INIT;
    ru_buf_putc(&ids, '{');
    ru_buf_putc(&afters, '{');
    for (size_t i = 0; i < n; i++) {
        if (i) {
            ru_buf_putc(&ids, ',');
            ru_buf_putc(&afters, ',');
        }
        ru_buf_put_i64(&ids, keys[which[i]].id);
        ru_buf_put_i64(&afters, after[i]);
    }
    ru_buf_putc(&ids, '}');
    ru_buf_putc(&afters, '}');
    const char *params[2] = {ids.p, afters.p};
    PGresult *r = PQexecParams(w->conn, w->sql.chunks, 2, NULL, params, NULL, NULL, 1);
    ru_buf_free(&ids);
    ru_buf_free(&afters);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        ru_writer_pg_error(w, "reading row states", r);
        PQclear(r);
        return -1;
    }
    int rows = PQntuples(r);
    for (int i = 0; i < rows; i++) {
        if (PQgetlength(r, i, 0) != 8 || PQgetlength(r, i, 1) != 8 || PQgetlength(r, i, 2) != 1) {
            ru_writer_error(w, "reading row states", "unexpected binary layout");
            PQclear(r);
            return -1;
        }
        int64_t id = (int64_t)ru_load_be64(PQgetvalue(r, i, 0));
        int64_t seq = (int64_t)ru_load_be64(PQgetvalue(r, i, 1));
        bool base = PQgetvalue(r, i, 2)[0] != 0;
        /* every row asked for is in the cache (write_rows put it there) */
        struct ru_rowstate *s = ru_rowcache_get(w->cache, id);
        if (s == NULL) {
            ru_writer_error(w, "reading row states", "a chunk for a row that was not asked for");
            PQclear(r);
            return -1;
        }
        if (ru_rowstate_apply_chunk(s, (const uint8_t *)PQgetvalue(r, i, 3),
                                    (size_t)PQgetlength(r, i, 3), base) < 0) {
            char msg[120];
            snprintf(msg, sizeof(msg), "chunk %lld of hourly row %lld is not readable",
                     (long long)seq, (long long)id);
            ru_writer_error(w, "reading row states", msg);
            PQclear(r);
            return -1;
        }
    }
    PQclear(r);
    pthread_mutex_lock(&w->mu);
    w->stats.state_reloads += n;
    pthread_mutex_unlock(&w->mu);
    return 0;
}

/* ---- write_rows, step by step ---- */

/* What the steps of one write_rows share. */
struct rows {
    struct ru_pgw *w;
    const struct ru_store *st;
    struct ru_flush_key *keys; /* sorted */
    size_t n;
    size_t *found; /* the keys whose row exists, in lock order */
    size_t nfound;
    struct ru_buf ids; /* their ids, as an int8[] literal */
    size_t nnew, nupd, ncompact;
    uint64_t chunk_bytes;
    struct ru_buf states;  /* COPY binary of the next versions */
    struct ru_buf compact; /* the ids of rows folded into one base version, int8[] */
};

/* 1. The batch's keys into ru_keys, in key order. */
static int stage_keys(struct rows *x)
{
    struct ru_buf *o = &x->w->copybuf;
    ru_buf_reset(o);
    for (size_t k = 0; k < x->n; k++) {
        put_key(o, k, x->keys[k].a);
        ru_buf_putc(o, '\n');
    }
    return ru_writer_copy_in(x->w, "COPY ru_keys FROM STDIN", o);
}

/* 2. Finds and locks the rows that exist (the others are new). */
static int lock_rows(struct rows *x)
{
    struct ru_flush_key *keys = x->keys;
    PGresult *r = PQexec(x->w->conn, x->w->sql.lock);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        ru_writer_pg_error(x->w, "locking the touched rows", r);
        PQclear(r);
        return -1;
    }
    for (size_t k = 0; k < x->n; k++) {
        keys[k].id = 0;
        keys[k].base = NULL;
        keys[k].is_new = true;
        keys[k].st.found = false;
    }
    ru_buf_putc(&x->ids, '{');
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t k = get_i64(r, i, 0);
        if (k < 0 || (size_t)k >= x->n || !keys[k].is_new)
            continue;
        keys[k].is_new = false;
        keys[k].id = get_i64(r, i, 1);
        if (x->nfound)
            ru_buf_putc(&x->ids, ',');
        ru_buf_put_i64(&x->ids, keys[k].id);
        x->found[x->nfound++] = (size_t)k;
    }
    ru_buf_putc(&x->ids, '}');
    PQclear(r);
    return 0;
}

/* 3. The newest stored version of each locked row. */
static int read_stored(struct rows *x)
{
    if (x->nfound == 0)
        return 0;
    const char *params[1] = {x->ids.p};
    PGresult *r = PQexecParams(x->w->conn, x->w->sql.states, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        ru_writer_pg_error(x->w, "reading row states", r);
        PQclear(r);
        return -1;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t ix = get_i64(r, i, 0) - 1;
        if (ix < 0 || (size_t)ix >= x->nfound)
            continue;
        struct ru_rowstored *st = &x->keys[x->found[ix]].st;
        st->found = true;
        st->version = get_i64(r, i, 1);
        st->nchunks = (int32_t)(st->version - get_i64(r, i, 2) + 1);
        for (int c = 0; c < RU_ROWCOUNTS_N; c++) {
            int64_t v = get_i64(r, i, 3 + c);
            memcpy((char *)&st->c + ru_sql_rowcounts[c].offset, &v, sizeof(v));
        }
    }
    PQclear(r);
    return 0;
}

/* 4. Brings the cached state of each locked row to its stored version (rowstate's
 * reconciliation; what it cannot do alone is read back here). */
static int sync_states(struct rows *x)
{
    struct ru_pgw *w = x->w;
    struct ru_flush_key *keys = x->keys;
    size_t *stale = ru_xmalloc(x->n * sizeof(*stale));
    int64_t *after = ru_xmalloc(x->n * sizeof(*after));
    size_t nstale = 0;
    for (size_t f = 0; f < x->nfound; f++) {
        struct ru_flush_key *fk = &keys[x->found[f]];
        struct ru_rowstate *s = ru_rowcache_get(w->cache, fk->id);
        if (s == NULL) {
            s = ru_rowstate_new(fk->id);
            ru_rowcache_put(w->cache, s);
        }
        s->used_ms = w->flush_ms;
        fk->base = s;
        bool disagreed;
        enum ru_rowsync sync = ru_rowstate_reconcile(s, &fk->st, &after[nstale], &disagreed);
        if (disagreed)
            ru_warn("msg=\"cached row state disagrees with PostgreSQL; reading it back\" "
                    "hourly_id=%lld version=%lld",
                    (long long)fk->id, (long long)fk->st.version);
        if (sync == RU_ROWSYNC_FRESH) {
            fk->full = true;
            continue;
        }
        if (sync == RU_ROWSYNC_RELOAD)
            stale[nstale++] = x->found[f];
        fk->full = fk->compact = s->nchunks + 1 > MAX_CHUNKS;
    }
    int rc = nstale ? reload_states(w, keys, stale, nstale, after) : 0;
    for (size_t i = 0; rc == 0 && i < nstale; i++) {
        const struct ru_flush_key *fk = &keys[stale[i]];
        if (!ru_rowstate_consistent(fk->base, &fk->st.c)) {
            char msg[160];
            snprintf(msg, sizeof(msg),
                     "the stored versions of hourly row %lld do not add up to its counters",
                     (long long)fk->id);
            ru_writer_error(w, "reading row states", msg);
            rc = -1;
        }
    }
    if (rc < 0) {
        /* a half-applied reload must not pass for the version it was heading to */
        for (size_t i = 0; i < nstale; i++) {
            ru_rowstate_clear(keys[stale[i]].base);
            keys[stale[i]].base->version = 0;
        }
    }
    free(stale);
    free(after);
    /* states read back count toward the memory bound now, not only after the COMMIT */
    for (size_t k = 0; k < x->n; k++)
        if (keys[k].base)
            ru_rowcache_remeasure(w->cache, keys[k].base);
    atomic_store(&w->cache_bytes, ru_rowcache_mem(w->cache) + ru_arena_size(&w->scratch));
    return rc;
}

/* 5. Next states and the new rows' values (into copybuf, for ru_new); each user id of the
 * batch is parsed once. */
static void prepare(struct rows *x)
{
    struct ru_pgw *w = x->w;
    struct ru_buf *o = &w->copybuf;
    struct ru_userkey *uk = ru_userkeys_build(x->st);
    ru_buf_reset(o);
    for (size_t k = 0; k < x->n; k++) {
        struct ru_flush_key *fk = &x->keys[k];
        ru_rowdelta_prepare(&fk->d, fk->base, x->st, uk, fk->a, &w->scratch);
        fk->version = (fk->base ? fk->base->version : 0) + 1;
        if (fk->is_new)
            fk->full = true;
        fk->nchunks = fk->full ? 1 : fk->base->nchunks + 1;
        if (!fk->is_new)
            continue;
        struct ru_hourly_vals v;
        ru_rowdelta_derive(&fk->d, &v);
        put_key(o, k, fk->a);
        ru_sql_put_hourly(o, &v);
        ru_buf_putc(o, '\n');
        x->nnew++;
    }
    free(uk);
}

/* 6. New rows are written once, with their final values. RU_WRITER_RACED when another
 * writer inserted some of them after they were looked up. */
static int insert_new(struct rows *x)
{
    struct ru_pgw *w = x->w;
    if (x->nnew == 0)
        return 0;
    if (ru_writer_copy_in(w, "COPY ru_new FROM STDIN", &w->copybuf) < 0)
        return -1;
    PGresult *r = PQexec(w->conn, w->sql.insert);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        ru_writer_pg_error(w, "inserting new hourly rows", r);
        PQclear(r);
        return -1;
    }
    size_t got = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t k = get_i64(r, i, 0);
        if (k >= 0 && (size_t)k < x->n && x->keys[k].is_new && x->keys[k].id == 0) {
            x->keys[k].id = get_i64(r, i, 1);
            got++;
        }
    }
    PQclear(r);
    if (got != x->nnew) {
        /* another writer inserted some of these keys after our lookup: start over,
         * they are existing rows now */
        ru_writer_error(w, "inserting new hourly rows",
                        "another writer created some of the rows meanwhile; retrying at once");
        return RU_WRITER_RACED;
    }
    return 0;
}

/* One version row of rollupd_rowstate in COPY binary: id, seq, base_seq, the counters in
 * their column order, the chunk. */
static void put_version(struct ru_buf *o, const struct ru_flush_key *fk, const struct ru_buf *blob)
{
    const int64_t head[3] = {fk->id, fk->version, fk->version - fk->nchunks + 1};
    ru_buf_put_be(o, 3 + RU_ROWCOUNTS_N + 1, 2);
    for (size_t i = 0; i < 3 + RU_ROWCOUNTS_N; i++) {
        int64_t v = head[i < 3 ? i : 0];
        if (i >= 3)
            memcpy(&v, (const char *)&fk->d.c + ru_sql_rowcounts[i - 3].offset, sizeof(v));
        ru_buf_put_be(o, 8, 4);
        ru_buf_put_be(o, (uint64_t)v, 8);
    }
    ru_buf_put_be(o, (uint32_t)blob->len, 4);
    ru_buf_append(o, blob->p, blob->len);
}

/* 7. The new values of the rows that existed (copybuf, for ru_vals), the next version of
 * every row's state, and the rows whose versions fold into one. */
static void encode(struct rows *x)
{
    struct ru_buf *o = &x->w->copybuf;
    struct ru_buf blob = RU_BUF_INIT;
    ru_buf_reset(o);
    /* COPY binary: signature, flags, header extension length */
    ru_buf_append(&x->states, "PGCOPY\n\377\r\n\0", 11);
    ru_buf_put_be(&x->states, 0, 4);
    ru_buf_put_be(&x->states, 0, 4);
    ru_buf_putc(&x->compact, '{');
    for (size_t k = 0; k < x->n; k++) {
        struct ru_flush_key *fk = &x->keys[k];
        if (!fk->is_new) {
            struct ru_hourly_vals v;
            ru_rowdelta_derive(&fk->d, &v);
            ru_buf_put_i64(o, fk->id);
            ru_sql_put_hourly(o, &v);
            ru_buf_putc(o, '\n');
            x->nupd++;
        }
        if (fk->compact) {
            if (x->ncompact++)
                ru_buf_putc(&x->compact, ',');
            ru_buf_put_i64(&x->compact, fk->id);
        }
        ru_buf_reset(&blob);
        ru_rowdelta_encode(&fk->d, fk->base, fk->full, &blob);
        x->chunk_bytes += blob.len;
        put_version(&x->states, fk, &blob);
    }
    ru_buf_put_be(&x->states, 0xffff, 2);
    ru_buf_putc(&x->compact, '}');
    ru_buf_free(&blob);
    pthread_mutex_lock(&x->w->mu);
    x->w->stats.chunk_bytes += x->chunk_bytes;
    pthread_mutex_unlock(&x->w->mu);
}

/* 8. Updates the rows that existed, folds, and stores the next versions. */
static int write_states(struct rows *x)
{
    struct ru_pgw *w = x->w;
    int rc = 0;
    if (x->nupd) {
        rc = ru_writer_copy_in(w, "COPY ru_vals FROM STDIN", &w->copybuf);
        if (rc == 0)
            rc = ru_writer_exec(w, w->sql.update, "updating hourly rows");
    }
    if (rc == 0 && x->ncompact) {
        /* folded into one base version: the older versions go */
        const char *params[1] = {x->compact.p};
        PGresult *dr = PQexecParams(w->conn, w->sql.fold, 1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(dr) != PGRES_COMMAND_OK) {
            ru_writer_pg_error(w, "folding row states", dr);
            rc = -1;
        }
        PQclear(dr);
    }
    if (rc == 0)
        rc = ru_writer_copy_in(w, w->sql.copy_state, &x->states);
    return rc;
}

/* Locks the batch's rows, brings their states up to date, computes their next state and
 * writes rows, states and chunks. keys[] is sorted; on success every key has its id. */
static int write_rows(struct ru_pgw *w, const struct ru_store *st, struct ru_flush_key *keys,
                      size_t n)
{
    struct rows x = {.w = w, .st = st, .keys = keys, .n = n};
    x.found = ru_xmalloc(n * sizeof(*x.found));
    int64_t t0 = ru_mono_us(), t_prep = t0, t_enc = t0;
    int rc = stage_keys(&x);
    if (rc == 0)
        rc = lock_rows(&x);
    if (rc == 0)
        rc = read_stored(&x);
    if (rc == 0)
        rc = sync_states(&x);
    if (rc == 0) {
        prepare(&x);
        t_prep = ru_mono_us();
        rc = insert_new(&x);
    }
    if (rc == 0) {
        encode(&x);
        t_enc = ru_mono_us();
        rc = write_states(&x);
        ru_debug("msg=\"flush rows\" keys=%zu new=%zu updated=%zu folded=%zu chunk_bytes=%" PRIu64
                 " lock_and_prepare_ms=%.1f insert_and_encode_ms=%.1f write_ms=%.1f",
                 n, x.nnew, x.nupd, x.ncompact, x.chunk_bytes, (double)(t_prep - t0) / 1000.0,
                 (double)(t_enc - t_prep) / 1000.0, (double)(ru_mono_us() - t_enc) / 1000.0);
    }
    free(x.found);
    ru_buf_free(&x.ids);
    ru_buf_free(&x.states);
    ru_buf_free(&x.compact);
    return rc;
}

/* After COMMIT: the cache takes the committed states, gives back the states no flush has
 * needed for flush.state_idle_s (searched for every half of that, or every 30 s if that
 * is shorter), then keeps to its budget. An hour's rows are idle soon after the hour ends,
 * unless late events come, so a steady stream holds the current hour's states and not
 * every past hour's up to the budget; a late event reads its row's state back. Idle time
 * runs from flush start to flush start, so a long outage makes every state idle: the
 * first flush after it reads back the states it needs. */
static void commit_states(struct ru_pgw *w, struct ru_flush_key *keys, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        struct ru_flush_key *fk = &keys[k];
        struct ru_rowstate *s = fk->base;
        if (s == NULL) {
            s = ru_rowstate_new(fk->id);
            s->used_ms = w->flush_ms;
            ru_rowstate_commit(s, &fk->d, fk->version, fk->nchunks);
            ru_rowcache_put(w->cache, s);
        } else {
            ru_rowstate_commit(s, &fk->d, fk->version, fk->nchunks);
            ru_rowcache_remeasure(w->cache, s);
        }
    }
    pthread_mutex_lock(&w->mu);
    size_t budget = w->cache_budget; /* set by a reload, under mu */
    int64_t idle_ms = w->state_idle_ms;
    pthread_mutex_unlock(&w->mu);
    int64_t idle_before = INT64_MIN; /* no state is idle enough */
    int64_t every = (idle_ms < 60000 ? idle_ms : 60000) / 2;
    if (idle_ms > 0 && w->flush_ms - w->idle_scan_ms >= every) {
        w->idle_scan_ms = w->flush_ms;
        idle_before = w->flush_ms - idle_ms; /* this flush's states are never idle */
    }
    size_t held = ru_rowcache_mem(w->cache);
    struct ru_evicted ev = ru_rowcache_evict(w->cache, budget, idle_before);
    if (ev.idle_bytes > 0 && ev.idle_bytes >= held / 8 &&
        (w->trim_ms == 0 || w->flush_ms - w->trim_ms >= idle_ms)) {
        /* A past hour's states go together, once an hour on a steady stream, and leave
         * their pages scattered through the writer's heap: only a trim hands those back
         * to the system. A few rare rows going idle are not worth one, nor are states
         * evicted only to keep the budget (replaced at once); at most one trim per
         * state_idle_s. */
        w->trim_ms = w->flush_ms;
        int64_t t0 = ru_mono_us();
        int released = malloc_trim(0);
        ru_info("msg=\"idle row states given back, heap trimmed\" idle=%zu idle_bytes=%zu"
                " budget=%zu trim_ms=%.1f released=%d",
                ev.idle, ev.idle_bytes, ev.budget, (double)(ru_mono_us() - t0) / 1000.0, released);
    }
    pthread_mutex_lock(&w->mu);
    w->stats.state_evictions += ev.idle + ev.budget;
    w->stats.state_budget_evictions += ev.budget;
    w->stats.cache_rows = ru_rowcache_count(w->cache);
    w->stats.cache_bytes = ru_rowcache_mem(w->cache);
    w->stats.scratch_bytes = ru_arena_size(&w->scratch);
    w->stats.cache_flushes++;
    pthread_mutex_unlock(&w->mu);
    atomic_store(&w->cache_bytes, ru_rowcache_mem(w->cache) + ru_arena_size(&w->scratch));
}

void ru_flush_keys_free(struct ru_flush_key *keys)
{
    free(keys); /* the deltas live in the writer's scratch */
}

/* Copies raw rows [lo, hi) (line offsets in off[]) under a savepoint; on a row error,
 * splits the range in two and recurses, so each refused row is found with about
 * log2(n) extra COPYs and recorded as a reject while every other row is written. */
static int copy_raw_range(struct ru_pgw *w, struct ru_batch *b, const char *sql, const size_t *off,
                          size_t lo, size_t hi)
{
    struct ru_buf part = RU_BUF_INIT;
    ru_buf_append(&part, b->raw.p + off[lo], off[hi] - off[lo]);
    int rc = ru_writer_exec(w, "SAVEPOINT ru_raw", "SAVEPOINT");
    if (rc == 0)
        rc = ru_writer_copy_in(w, sql, &part);
    ru_buf_free(&part);
    if (rc == 0)
        return ru_writer_exec(w, "RELEASE SAVEPOINT ru_raw", "RELEASE");
    if (!ru_pgerr_bad_row(w->sqlstate) || PQstatus(w->conn) != CONNECTION_OK)
        return -1;
    char reason[256];
    pthread_mutex_lock(&w->mu);
    snprintf(reason, sizeof(reason), "raw row refused by PostgreSQL: %.200s", w->stats.last_error);
    pthread_mutex_unlock(&w->mu);
    if (ru_writer_exec(w, "ROLLBACK TO SAVEPOINT ru_raw; RELEASE SAVEPOINT ru_raw", "ROLLBACK TO") <
        0)
        return -1;
    if (hi - lo == 1) {
        ru_batch_add_reject(b, &b->raw_ids[lo], reason);
        return 0;
    }
    size_t mid = lo + (hi - lo) / 2;
    if (copy_raw_range(w, b, sql, off, lo, mid) < 0)
        return -1;
    return copy_raw_range(w, b, sql, off, mid, hi);
}

static int copy_raw(struct ru_pgw *w, struct ru_batch *b)
{
    size_t *off = ru_xmalloc((b->nraw + 1) * sizeof(*off));
    size_t n = 0;
    off[0] = 0;
    for (size_t i = 0; i < b->raw.len && n < b->nraw; i++)
        if (b->raw.p[i] == '\n')
            off[++n] = i + 1;
    int rc = n == b->nraw ? copy_raw_range(w, b, w->sql.copy_raw, off, 0, n) : -1;
    free(off);
    return rc;
}

static int flush_txn(struct ru_pgw *w, struct ru_batch *b, struct ru_flush_key *keys, size_t n)
{
    /* rejects PostgreSQL found in an earlier attempt of this batch are found again */
    if (b->attempts == 1)
        b->ingest_rejects = b->nrejects;
    else
        b->nrejects = b->ingest_rejects;
    if (ru_writer_exec(w, "BEGIN", "BEGIN") < 0)
        return -1;
    int rc;
    if (n && (rc = write_rows(w, b->store, keys, n)) < 0)
        return rc;
    if (w->n.raw && b->raw.len && copy_raw(w, b) < 0)
        return -1;
    if ((rc = ru_owner_fence_adoption(w, b)) < 0 || (rc = ru_owner_save(w, b)) < 0)
        return rc;
    if (ru_writer_exec(w, "COMMIT", "COMMIT") < 0)
        return -1;
    ru_owner_after_commit(w, b);
    return 0;
}

int ru_flush_once(struct ru_pgw *w, struct ru_batch *b)
{
    size_t n = ru_store_nkeys(b->store);
    struct ru_flush_key *keys = n ? ru_xcalloc(n, sizeof(*keys)) : NULL;
    for (size_t i = 0; i < n; i++)
        keys[i].a = ru_store_agg(b->store, i);
    ru_arena_reset(&w->scratch);
    /* one key order for every writer: rows are locked and inserted in it */
    if (n > 1)
        qsort(keys, n, sizeof(*keys), fk_cmp);
    w->flush_ms = ru_mono_ms();
    int rc = flush_txn(w, b, keys, n);
    if (rc == 0) {
        /* the cache takes the committed states once the loop has been told */
        w->done_keys = keys;
        w->done_nkeys = n;
    } else {
        ru_flush_keys_free(keys);
    }
    return rc;
}

void ru_flush_apply_done(struct ru_pgw *w)
{
    if (w->done_keys == NULL)
        return;
    int64_t t0 = ru_mono_us();
    commit_states(w, w->done_keys, w->done_nkeys);
    pthread_mutex_lock(&w->mu);
    w->stats.cache_last_us = ru_mono_us() - t0;
    pthread_mutex_unlock(&w->mu);
    ru_flush_keys_free(w->done_keys);
    w->done_keys = NULL;
    w->done_nkeys = 0;
}
