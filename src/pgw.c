#include "rollupd/pgw.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "rollupd/event.h"
#include "rollupd/json.h"
#include "rollupd/log.h"
#include "rollupd/pgerr.h"
#include "rollupd/pgnum.h"
#include "rollupd/rowstate.h"
#include "rollupd/owner.h"
#include "rollupd/schema.h"
#include "rollupd/sql.h"
#include "rollupd/writer.h"

#define RU_WRITER_BACKOFF_MIN_MS 100
#define RU_WRITER_BACKOFF_MAX_MS 30000
#define COPY_CHUNK               (1 << 20)
#define RU_WRITER_SCHEMA_LOCK    7250301 /* advisory lock key serialising schema creation */
#define LOCK_WAIT_MS             10000 /* how long set-up waits for a lock held by another session */
#define IDLE_CHECK_MS            500   /* how often an idle writer looks at its session */
#define GROUP_ROW                ""    /* rollupd_checkpoint's consumer for the group's own row */

void ru_pgw_copy_escape(struct ru_buf *out, const char *s, size_t len)
{
    ru_batch_copy_escape(out, s, len);
}

static void on_notice(void *arg, const char *msg)
{
    (void)arg;
    ru_debug("msg=\"postgres notice\" text=\"%.*s\"", (int)strcspn(msg, "\n"), msg);
}

static int connect_db(struct ru_pgw *w)
{
    pthread_mutex_lock(&w->mu);
    char *conninfo = ru_xstrdup(w->conninfo);
    int timeout_ms = w->statement_timeout_ms;
    int connect_timeout_s = w->connect_timeout_s;
    atomic_store(&w->reconfigured, false);
    pthread_mutex_unlock(&w->mu);

    /* the configured string may be key=value or a URI; expand it as dbname so our
     * defaults come first and anything it sets wins */
    char timeout[16];
    snprintf(timeout, sizeof(timeout), "%d", connect_timeout_s);
    const char *keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
    const char *vals[] = {timeout, "rollupd", conninfo, NULL};
    int64_t t0 = ru_mono_ms();
    w->conn = PQconnectdbParams(keys, vals, 1);
    free(conninfo);
    if (PQstatus(w->conn) != CONNECTION_OK) {
        /* Judged by the time it took, not by libpq's text: a failure after the whole
         * connect timeout means no answer, i.e. packets dropped on the way, most often by
         * a firewall such as the systemd unit's IPAddressAllow= (see rollupd(8)). */
        bool timed_out = ru_mono_ms() - t0 >= (int64_t)connect_timeout_s * 1000;
        ru_writer_error(w,
                        timed_out ? "connect timed out (no answer: packets dropped, e.g. by the "
                                    "unit's IPAddressAllow=, or the host is down)"
                                  : "connect",
                        PQerrorMessage(w->conn));
        ru_writer_drop(w);
        return -1;
    }
    PQsetNoticeProcessor(w->conn, on_notice, NULL);
    /* idle_in_transaction_session_timeout: a process paused in the middle of a flush
     * (SIGSTOP, a frozen VM) loses its session, and the row locks that would stall every
     * other instance's flushes, after the statement timeout (60 s at least: the work
     * between two statements of a flush is done here, and may take a while) */
    char set[320];
    snprintf(set, sizeof(set),
             "SET client_encoding = 'UTF8'; SET TimeZone = 'UTC'; SET statement_timeout = %d;"
             " SET lock_timeout = %d; SET idle_in_transaction_session_timeout = %d;"
             " SET application_name = 'rollupd'",
             timeout_ms, timeout_ms, timeout_ms > 60000 ? timeout_ms : 60000);
    if (ru_writer_exec(w, set, "session set-up") < 0)
        goto fail;
    /* A checkpoint acknowledged to us must survive a crash of PostgreSQL: whatever the
     * server's default, rollupd's own commits wait for the WAL flush. */
    PGresult *sc = PQexec(w->conn, "SELECT current_setting('synchronous_commit')");
    bool async = PQresultStatus(sc) == PGRES_TUPLES_OK && strcmp(PQgetvalue(sc, 0, 0), "off") == 0;
    PQclear(sc);
    if (async) {
        if (ru_writer_exec(w, "SET synchronous_commit = on", "session set-up") < 0)
            goto fail;
        if (!atomic_load(&w->ready))
            ru_notice("msg=\"synchronous_commit is off on this server; rollupd's session sets it "
                      "on, so a committed checkpoint survives a crash\"");
    }
    char lockset[128];
    snprintf(lockset, sizeof(lockset), "SET lock_timeout = %d; SET statement_timeout = %d",
             LOCK_WAIT_MS, LOCK_WAIT_MS + (timeout_ms > 0 ? timeout_ms : 60000));
    if (ru_writer_exec(w, lockset, "session set-up") < 0)
        goto fail;
    ru_sql_names_init(&w->n, w->hourly_cfg, w->raw_cfg);
    ru_sql_flush_init(&w->sql, &w->n);
    bool was_tail = w->tail_held;
    if (ru_schema_setup(w) < 0 || ru_owner_take_locks(w) < 0)
        goto fail;
    if (atomic_load(&w->ready) && w->tail_held && !was_tail) {
        ru_writer_fatal(
            w,
            "while this process's PostgreSQL session was lost, a lone consumer read "
            "group '%s' and left entries without acknowledgement; stopping, so that the "
            "next start recovers them first",
            w->group);
        goto fail;
    }
    if (ru_owner_load_checkpoint(w) < 0)
        goto fail;
    snprintf(set, sizeof(set), "SET statement_timeout = %d; SET lock_timeout = %d", timeout_ms,
             timeout_ms);
    if (ru_writer_exec(w, set, "session set-up") < 0)
        goto fail;
    if (ru_writer_exec(w, w->sql.staging, "creating staging tables") < 0)
        goto fail;
    pthread_mutex_lock(&w->mu);
    w->cancel = PQgetCancel(w->conn);
    w->stats.connected = true;
    pthread_mutex_unlock(&w->mu);
    atomic_store(&w->held, true);
    atomic_fetch_add(&w->generation, 1);
    ru_writer_notify(w);
    return 0;
fail:
    ru_writer_drop(w);
    return -1;
}

/* ---- one flush ---- */

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
    /* the newest stored version, read under the row lock */
    bool has_state;
    int64_t st_version;
    int32_t st_nchunks;
    struct ru_rowcounts st_c;
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

/* Locks the batch's rows, brings their states up to date, computes their next state and
 * writes rows, states and chunks. keys[] is sorted; on success every key has its id. */
static int write_rows(struct ru_pgw *w, const struct ru_store *st, struct ru_flush_key *keys,
                      size_t n)
{
    int64_t t0 = ru_mono_us();
    struct ru_buf *o = &w->copybuf;
    ru_buf_reset(o);
    for (size_t k = 0; k < n; k++) {
        put_key(o, k, keys[k].a);
        ru_buf_putc(o, '\n');
    }
    if (ru_writer_copy_in(w, "COPY ru_keys FROM STDIN", o) < 0)
        return -1;
    PGresult *r = PQexec(w->conn, w->sql.lock);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        ru_writer_pg_error(w, "locking the touched rows", r);
        PQclear(r);
        return -1;
    }
    size_t *found = ru_xmalloc(n * sizeof(*found));
    size_t nfound = 0;
    for (size_t k = 0; k < n; k++) {
        keys[k].id = 0;
        keys[k].base = NULL;
        keys[k].is_new = true;
        keys[k].has_state = false;
    }
    struct ru_buf ids = RU_BUF_INIT;
    ru_buf_putc(&ids, '{');
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t k = get_i64(r, i, 0);
        if (k < 0 || (size_t)k >= n || !keys[k].is_new)
            continue;
        keys[k].is_new = false;
        keys[k].id = get_i64(r, i, 1);
        if (nfound)
            ru_buf_putc(&ids, ',');
        ru_buf_put_i64(&ids, keys[k].id);
        found[nfound++] = (size_t)k;
    }
    ru_buf_putc(&ids, '}');
    PQclear(r);
    r = NULL;
    if (nfound) {
        const char *params[1] = {ids.p};
        r = PQexecParams(w->conn, w->sql.states, 1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            ru_writer_pg_error(w, "reading row states", r);
            PQclear(r);
            ru_buf_free(&ids);
            free(found);
            return -1;
        }
        for (int i = 0; i < PQntuples(r); i++) {
            int64_t ix = get_i64(r, i, 0) - 1;
            if (ix < 0 || (size_t)ix >= nfound)
                continue;
            struct ru_flush_key *fk = &keys[found[ix]];
            fk->has_state = true;
            fk->st_version = get_i64(r, i, 1);
            fk->st_nchunks = (int32_t)(fk->st_version - get_i64(r, i, 2) + 1);
            int64_t *cv[RU_ROWCOUNTS_N] = {&fk->st_c.total,    &fk->st_c.ok,      &fk->st_c.c4xx,
                                           &fk->st_c.c5xx,     &fk->st_c.hits,    &fk->st_c.misses,
                                           &fk->st_c.dur_sum,  &fk->st_c.req_sum, &fk->st_c.req_n,
                                           &fk->st_c.resp_sum, &fk->st_c.resp_n,  &fk->st_c.db_sum,
                                           &fk->st_c.db_n,     &fk->st_c.users_n};
            for (int c = 0; c < RU_ROWCOUNTS_N; c++)
                *cv[c] = get_i64(r, i, 3 + c);
        }
        PQclear(r);
    }
    ru_buf_free(&ids);

    size_t *stale = ru_xmalloc(n * sizeof(*stale));
    int64_t *after = ru_xmalloc(n * sizeof(*after));
    size_t nstale = 0;
    for (size_t f = 0; f < nfound; f++) {
        struct ru_flush_key *fk = &keys[found[f]];
        struct ru_rowstate *s = ru_rowcache_get(w->cache, fk->id);
        if (s == NULL) {
            s = ru_rowstate_new(fk->id);
            ru_rowcache_put(w->cache, s);
        }
        s->used = w->flush_seq;
        fk->base = s;
        if (!fk->has_state) {
            /* a row rollupd has no state for (written before rollupd ran, or by
             * another job): rollupd's figures start from nothing, in a base version */
            ru_rowstate_clear(s);
            memset(&s->c, 0, sizeof(s->c));
            s->version = 0;
            s->nchunks = 0;
            fk->full = true;
            continue;
        }
        if (s->version == fk->st_version && !ru_rowstate_consistent(s, &fk->st_c)) {
            /* same version number, other contents (versions deleted and written again,
             * a restored database): trust the stored versions */
            ru_warn("msg=\"cached row state disagrees with PostgreSQL; reading it back\" "
                    "hourly_id=%lld version=%lld",
                    (long long)fk->id, (long long)fk->st_version);
            s->version = 0;
        }
        if (s->version != fk->st_version) {
            if (s->version > fk->st_version || s->version <= 0) {
                ru_rowstate_clear(s);
                s->version = 0;
            }
            after[nstale] = s->version;
            stale[nstale++] = found[f];
            s->version = fk->st_version;
        }
        /* the counters come from the locked state row in any case */
        s->c = fk->st_c;
        s->nchunks = fk->st_nchunks;
        fk->full = fk->compact = s->nchunks + 1 > MAX_CHUNKS;
    }
    free(found);
    int rc = nstale ? reload_states(w, keys, stale, nstale, after) : 0;
    for (size_t i = 0; rc == 0 && i < nstale; i++) {
        const struct ru_flush_key *fk = &keys[stale[i]];
        if (!ru_rowstate_consistent(fk->base, &fk->st_c)) {
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
    for (size_t k = 0; k < n; k++)
        if (keys[k].base)
            ru_rowcache_remeasure(w->cache, keys[k].base);
    atomic_store(&w->cache_bytes, ru_rowcache_mem(w->cache) + w->scratch.cap);
    if (rc < 0)
        return -1;

    /* next states and the new rows' values; each user id of the batch is parsed once */
    struct ru_userkey *uk = ru_userkeys_build(st);
    size_t nnew = 0;
    ru_buf_reset(o);
    for (size_t k = 0; k < n; k++) {
        struct ru_flush_key *fk = &keys[k];
        ru_rowdelta_prepare(&fk->d, fk->base, st, uk, fk->a, &w->scratch);
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
        nnew++;
    }
    free(uk);
    int64_t t_prep = ru_mono_us();
    if (nnew) {
        if (ru_writer_copy_in(w, "COPY ru_new FROM STDIN", o) < 0)
            return -1;
        r = PQexec(w->conn, w->sql.insert);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            ru_writer_pg_error(w, "inserting new hourly rows", r);
            PQclear(r);
            return -1;
        }
        size_t got = 0;
        for (int i = 0; i < PQntuples(r); i++) {
            int64_t k = get_i64(r, i, 0);
            if (k >= 0 && (size_t)k < n && keys[k].is_new && keys[k].id == 0) {
                keys[k].id = get_i64(r, i, 1);
                got++;
            }
        }
        PQclear(r);
        if (got != nnew) {
            /* another writer inserted some of these keys after our lookup: start over,
             * they are existing rows now */
            ru_writer_error(w, "inserting new hourly rows",
                            "another writer created some of the rows meanwhile; retrying at once");
            return RU_WRITER_RACED;
        }
    }

    /* new values of the rows that existed, and the next version of every row's state */
    ru_buf_reset(o);
    struct ru_buf states = RU_BUF_INIT, blob = RU_BUF_INIT, compact = RU_BUF_INIT;
    uint64_t chunk_bytes = 0;
    size_t nupd = 0, ncompact = 0;
    /* COPY binary: signature, flags, header extension length */
    ru_buf_append(&states, "PGCOPY\n\377\r\n\0", 11);
    ru_buf_put_be(&states, 0, 4);
    ru_buf_put_be(&states, 0, 4);
    ru_buf_putc(&compact, '{');
    for (size_t k = 0; k < n; k++) {
        struct ru_flush_key *fk = &keys[k];
        if (!fk->is_new) {
            struct ru_hourly_vals v;
            ru_rowdelta_derive(&fk->d, &v);
            ru_buf_put_i64(o, fk->id);
            ru_sql_put_hourly(o, &v);
            ru_buf_putc(o, '\n');
            nupd++;
        }
        if (fk->compact) {
            if (ncompact++)
                ru_buf_putc(&compact, ',');
            ru_buf_put_i64(&compact, fk->id);
        }
        ru_buf_reset(&blob);
        ru_rowdelta_encode(&fk->d, fk->base, fk->full, &blob);
        chunk_bytes += blob.len;
        const struct ru_rowcounts *c = &fk->d.c;
        const int64_t head[3 + RU_ROWCOUNTS_N] = {
            fk->id,      fk->version, fk->version - fk->nchunks + 1,
            c->total,    c->ok,       c->c4xx,
            c->c5xx,     c->hits,     c->misses,
            c->dur_sum,  c->req_sum,  c->req_n,
            c->resp_sum, c->resp_n,   c->db_sum,
            c->db_n,     c->users_n};
        ru_buf_put_be(&states, 3 + RU_ROWCOUNTS_N + 1, 2);
        for (size_t i = 0; i < RU_ARRAY_LEN(head); i++) {
            ru_buf_put_be(&states, 8, 4);
            ru_buf_put_be(&states, (uint64_t)head[i], 8);
        }
        ru_buf_put_be(&states, (uint32_t)blob.len, 4);
        ru_buf_append(&states, blob.p, blob.len);
    }
    ru_buf_put_be(&states, 0xffff, 2);
    ru_buf_putc(&compact, '}');
    int64_t t_enc = ru_mono_us();
    ru_buf_free(&blob);
    pthread_mutex_lock(&w->mu);
    w->stats.chunk_bytes += chunk_bytes;
    pthread_mutex_unlock(&w->mu);
    rc = 0;
    if (nupd) {
        rc = ru_writer_copy_in(w, "COPY ru_vals FROM STDIN", o);
        if (rc == 0)
            rc = ru_writer_exec(w, w->sql.update, "updating hourly rows");
    }
    if (rc == 0 && ncompact) {
        /* folded into one base version: the older versions go */
        const char *params[1] = {compact.p};
        PGresult *dr = PQexecParams(w->conn, w->sql.fold, 1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(dr) != PGRES_COMMAND_OK) {
            ru_writer_pg_error(w, "folding row states", dr);
            rc = -1;
        }
        PQclear(dr);
    }
    if (rc == 0)
        rc = ru_writer_copy_in(w, w->sql.copy_state, &states);
    ru_buf_free(&states);
    ru_buf_free(&compact);
    ru_debug("msg=\"flush rows\" keys=%zu new=%zu updated=%zu folded=%zu chunk_bytes=%" PRIu64
             " lock_and_prepare_ms=%.1f insert_and_encode_ms=%.1f write_ms=%.1f",
             n, nnew, nupd, ncompact, chunk_bytes, (double)(t_prep - t0) / 1000.0,
             (double)(t_enc - t_prep) / 1000.0, (double)(ru_mono_us() - t_enc) / 1000.0);
    return rc;
}

/* After COMMIT: the cache takes the committed states, then keeps to its budget. */
static void commit_states(struct ru_pgw *w, struct ru_flush_key *keys, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        struct ru_flush_key *fk = &keys[k];
        struct ru_rowstate *s = fk->base;
        if (s == NULL) {
            s = ru_rowstate_new(fk->id);
            s->used = w->flush_seq;
            ru_rowstate_commit(s, &fk->d, fk->version, fk->nchunks);
            ru_rowcache_put(w->cache, s);
        } else {
            ru_rowstate_commit(s, &fk->d, fk->version, fk->nchunks);
            ru_rowcache_remeasure(w->cache, s);
        }
    }
    pthread_mutex_lock(&w->mu);
    size_t budget = w->cache_budget; /* set by a reload, under mu */
    pthread_mutex_unlock(&w->mu);
    size_t evicted = ru_rowcache_evict(w->cache, budget);
    pthread_mutex_lock(&w->mu);
    w->stats.state_evictions += evicted;
    w->stats.cache_rows = ru_rowcache_count(w->cache);
    w->stats.cache_bytes = ru_rowcache_mem(w->cache);
    w->stats.scratch_bytes = w->scratch.cap;
    w->stats.cache_flushes++;
    pthread_mutex_unlock(&w->mu);
    atomic_store(&w->cache_bytes, ru_rowcache_mem(w->cache) + w->scratch.cap);
}

static void free_keys(struct ru_flush_key *keys)
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

static int flush_once(struct ru_pgw *w, struct ru_batch *b)
{
    size_t n = ru_store_nkeys(b->store);
    struct ru_flush_key *keys = n ? ru_xcalloc(n, sizeof(*keys)) : NULL;
    for (size_t i = 0; i < n; i++)
        keys[i].a = ru_store_agg(b->store, i);
    ru_scratch_reset(&w->scratch);
    /* one key order for every writer: rows are locked and inserted in it */
    if (n > 1)
        qsort(keys, n, sizeof(*keys), fk_cmp);
    w->flush_seq++;
    int rc = flush_txn(w, b, keys, n);
    if (rc == 0) {
        /* the cache takes the committed states once the loop has been told */
        w->done_keys = keys;
        w->done_nkeys = n;
    } else {
        free_keys(keys);
    }
    return rc;
}

static void apply_done_keys(struct ru_pgw *w)
{
    if (w->done_keys == NULL)
        return;
    int64_t t0 = ru_mono_us();
    commit_states(w, w->done_keys, w->done_nkeys);
    pthread_mutex_lock(&w->mu);
    w->stats.cache_last_us = ru_mono_us() - t0;
    pthread_mutex_unlock(&w->mu);
    free_keys(w->done_keys);
    w->done_keys = NULL;
    w->done_nkeys = 0;
}

/* Hands a batch back uncommitted for good. */
static void give_back(struct ru_pgw *w, struct ru_batch *b)
{
    pthread_mutex_lock(&w->mu);
    w->job = NULL;
    w->done = b;
    pthread_mutex_unlock(&w->mu);
    ru_writer_notify(w);
}

static void run_batch(struct ru_pgw *w, struct ru_batch *b)
{
    w->inflight = b;
    for (;;) {
        if (w->conn == NULL || atomic_load(&w->reconfigured)) {
            ru_writer_drop(w);
            if (connect_db(w) < 0) {
                if (ru_writer_is_fatal(w)) {
                    b->fenced = true;
                    pthread_mutex_lock(&w->mu);
                    ru_strlcpy(b->fence_reason, w->fatal, sizeof(b->fence_reason));
                    pthread_mutex_unlock(&w->mu);
                    give_back(w, b);
                    break;
                }
                ru_log_limited(&w->rl, RU_LOG_ERR,
                               "msg=\"postgres unavailable, batch kept\" events=%llu error=\"%s\"",
                               (unsigned long long)ru_store_nevents(b->store), w->stats.last_error);
                if (!ru_writer_backoff(w))
                    break;
                continue;
            }
        }
        int64_t t0 = ru_mono_us();
        int rc;
        if (b->attempted_set && ru_owner_committed_already(w, b)) {
            /* the COMMIT went through but its answer was lost with the connection */
            ru_log(RU_LOG_WARNING,
                   "msg=\"previous attempt had committed; not applying the "
                   "batch again\" attempt=%d",
                   b->attempts);
            ru_owner_after_commit(w, b);
            rc = 0;
        } else {
            b->attempts++;
            rc = flush_once(w, b);
        }
        if (rc == RU_WRITER_FENCED) {
            /* fenced: never retried; the loop decides what to do with the batch */
            PQclear(PQexec(w->conn, "ROLLBACK"));
            give_back(w, b);
            break;
        }
        if (rc == 0) {
            w->backoff_ms = 0;
            b->duration_us = ru_mono_us() - t0;
            b->rows_written = ru_store_nkeys(b->store);
            b->raw_written = w->n.raw ? b->nraw - (b->nrejects - b->ingest_rejects) : 0;
            pthread_mutex_lock(&w->mu);
            w->stats.flushes++;
            w->stats.rows_written += b->rows_written;
            w->stats.events_flushed += ru_store_nevents(b->store);
            w->stats.raw_rows += b->raw_written;
            w->stats.last_flush_unix_ms = ru_wall_ms();
            w->stats.last_flush_us = b->duration_us;
            w->stats.last_error[0] = '\0';
            w->job = NULL;
            w->done = b;
            pthread_mutex_unlock(&w->mu);
            ru_writer_notify(w);
            apply_done_keys(w);
            break;
        }
        pthread_mutex_lock(&w->mu);
        w->stats.flush_failures++;
        pthread_mutex_unlock(&w->mu);
        ru_log_limited(&w->rl, RU_LOG_ERR,
                       "msg=\"flush failed, batch kept for retry\" attempt=%d events=%llu "
                       "error=\"%s\"",
                       b->attempts, (unsigned long long)ru_store_nevents(b->store),
                       w->stats.last_error);
        if (PQstatus(w->conn) != CONNECTION_OK) {
            ru_writer_drop(w);
        } else {
            PQclear(PQexec(w->conn, "ROLLBACK"));
        }
        /* a lost race (deadlock, serialization failure, a new row another writer
         * inserted first) is retried at once; anything else waits out the backoff */
        bool now = rc == RU_WRITER_RACED || ru_pgerr_retry(w->sqlstate) == RU_PGERR_RETRY_NOW;
        if (!now && !ru_writer_backoff(w))
            break;
    }
    w->inflight = NULL;
}

/* Between flushes: a lost session (terminated, PostgreSQL restarted) is noticed within
 * IDLE_CHECK_MS, so the loop stops reading at once; a probe is answered by a round trip
 * made after it was asked. A lost session is made again with the locks. */
static void idle_check(struct ru_pgw *w)
{
    unsigned want = atomic_load(&w->probe_req);
    bool probe = want != atomic_load(&w->probe_done);
    if (w->conn && !atomic_load(&w->reconfigured)) {
        bool alive;
        if (probe) {
            PGresult *r = PQexec(w->conn, "SELECT 1");
            alive = PQresultStatus(r) == PGRES_TUPLES_OK;
            PQclear(r);
        } else {
            alive = PQconsumeInput(w->conn) == 1;
        }
        if (alive && PQstatus(w->conn) == CONNECTION_OK) {
            if (probe) {
                atomic_store(&w->probe_done, want);
                ru_writer_notify(w);
            }
            return;
        }
        ru_warn("msg=\"postgres session lost: reading stops until this consumer's locks are "
                "taken again\" error=\"%.*s\"",
                (int)strcspn(PQerrorMessage(w->conn), "\n"), PQerrorMessage(w->conn));
    }
    ru_writer_drop(w);
    while (connect_db(w) < 0) {
        if (ru_writer_is_fatal(w))
            return;
        ru_log_limited(&w->rl, RU_LOG_WARNING,
                       "msg=\"postgres unavailable, reading stopped\" error=\"%s\"",
                       w->stats.last_error);
        if (!ru_writer_backoff(w))
            return;
    }
    w->backoff_ms = 0;
}

/* ---- key probes ---- */

/* Probes one key under a savepoint (see ru_pgw_request_keycheck). Returns 0 with a verdict,
 * -1 when PostgreSQL could not answer (the error is in last_error). */
static int check_key(struct ru_pgw *w, const char *sql, struct ru_keycheck_probe *q)
{
    if (ru_writer_exec(w, "SAVEPOINT ru_probe", "probing a key") < 0)
        return -1;
    char ts[32];
    ru_event_format_ts(q->hour_us, ts);
    const char *params[4] = {ts, q->route, q->method, q->params};
    PGresult *r = PQexecParams(w->conn, sql, 4, NULL, params, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
        q->verdict = RU_KEY_FITS;
    } else if (ru_pgerr_key_refused(PQresultErrorField(r, PG_DIAG_SQLSTATE))) {
        const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        q->verdict = RU_KEY_REFUSED;
        snprintf(q->reason, sizeof(q->reason), "route/params %s: %s",
                 PQresultErrorField(r, PG_DIAG_SQLSTATE)[0] == '5'
                     ? "too large for PostgreSQL's unique index"
                     : "refused by PostgreSQL",
                 m ? m : "");
    } else {
        ru_writer_pg_error(w, "probing a key", r);
        rc = -1;
    }
    PQclear(r);
    if (rc == 0 && ru_writer_exec(w, "ROLLBACK TO SAVEPOINT ru_probe", "probing a key") < 0) {
        q->verdict = RU_KEY_UNKNOWN;
        rc = -1;
    }
    return rc;
}

/* Asks PostgreSQL about each key in one transaction that is rolled back. Keys left
 * RU_KEY_UNKNOWN are asked again by the loop, after this backs off. */
static void check_keys(struct ru_pgw *w, struct ru_keycheck_probe *probes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        probes[i].verdict = RU_KEY_UNKNOWN;
    if (w->conn == NULL || atomic_load(&w->reconfigured)) {
        ru_writer_drop(w);
        if (connect_db(w) < 0) {
            ru_writer_backoff(w);
            return;
        }
    }
    size_t done = 0;
    if (ru_writer_exec(w, "BEGIN", "probing keys") == 0)
        while (done < n && check_key(w, w->sql.probe, &probes[done]) == 0)
            done++;
    bool failed = done < n;
    if (w->conn && PQstatus(w->conn) == CONNECTION_OK)
        PQclear(PQexec(w->conn, "ROLLBACK"));
    else
        ru_writer_drop(w);
    if (failed) {
        ru_log_limited(&w->rl, RU_LOG_WARNING,
                       "msg=\"key probe failed, asking again\" keys=%zu answered=%zu error=\"%s\"",
                       n, done, w->stats.last_error);
        ru_writer_backoff(w);
    } else {
        w->backoff_ms = 0;
    }
}

static void *writer_main(void *arg)
{
    struct ru_pgw *w = arg;
    /* set-up: connect, schema, checkpoint; retried until it works or we stop */
    for (;;) {
        pthread_mutex_lock(&w->mu);
        bool stop = w->stop;
        pthread_mutex_unlock(&w->mu);
        if (stop)
            return NULL;
        w->setup_blocked = false;
        if (connect_db(w) == 0)
            break;
        if (ru_writer_is_fatal(w)) {
            ru_writer_drop(w);
            return NULL;
        }
        if (w->setup_blocked) {
            /* A missing table or privilege waits for a DBA: no point in asking often.
             * Events wait in Redis; health is down with this error; a reload or the
             * next attempt (within RU_WRITER_BACKOFF_MAX_MS) picks up the fix, no restart needed.
             */
            ru_err("msg=\"postgres set-up failed; retrying every %d s\" error=\"%s\"",
                   RU_WRITER_BACKOFF_MAX_MS / 1000, w->stats.last_error);
            w->backoff_ms = RU_WRITER_BACKOFF_MAX_MS;
        } else {
            ru_log_limited(&w->rl, RU_LOG_WARNING,
                           "msg=\"postgres set-up failed, retrying\" error=\"%s\"",
                           w->stats.last_error);
        }
        if (!ru_writer_backoff(w))
            return NULL;
    }
    w->backoff_ms = 0;
    pthread_mutex_lock(&w->mu);
    w->init_done_event = true;
    pthread_mutex_unlock(&w->mu);
    atomic_store(&w->ready, true);
    ru_writer_notify(w);

    for (;;) {
        pthread_mutex_lock(&w->mu);
        if (!w->stop && w->job == NULL && w->ck_req == NULL && w->kc_req == NULL &&
            !atomic_load(&w->adopt_release) &&
            atomic_load(&w->probe_req) == atomic_load(&w->probe_done)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += IDLE_CHECK_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        }
        if (w->stop) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        struct ru_batch *b = w->job;
        char *ck_req = w->ck_req;
        struct ru_keycheck_probe *probes = w->kc_req;
        size_t nprobes = w->kc_n;
        pthread_mutex_unlock(&w->mu);
        if (ru_writer_is_fatal(w))
            break;
        if (atomic_load(&w->adopt_release))
            ru_owner_adopt_unlock(w);
        if (b) {
            bool adoption = b->adopt_consumer != NULL;
            run_batch(w, b);
            if (adoption)
                ru_owner_adopt_unlock(w); /* committed or fenced: the adoption is over */
            continue;
        }
        if (probes) {
            check_keys(w, probes, nprobes);
            pthread_mutex_lock(&w->mu);
            w->kc_req = NULL;
            w->kc_done = probes;
            w->kc_answered = true;
            pthread_mutex_unlock(&w->mu);
            ru_writer_notify(w);
            continue;
        }
        if (ck_req == NULL) {
            idle_check(w);
            continue;
        }
        /* a checkpoint query for an adoption: one attempt, the loop retries if it wants */
        struct ru_sid val = {0, 0};
        int rc = -1;
        if (w->conn == NULL || atomic_load(&w->reconfigured)) {
            ru_writer_drop(w);
            connect_db(w);
        }
        bool lone = false;
        ru_owner_adopt_unlock(w); /* an earlier adoption given up without a word */
        if (w->conn && ru_owner_adopt_lock(w, ck_req) == RU_OWNER_LOCK_DONE)
            rc = ru_owner_query_checkpoint(w, ck_req, &val, &lone);
        if (rc == 0 && lone) {
            /* its entries after the checkpoint are in no pending list to adopt */
            char msg[200];
            snprintf(msg, sizeof(msg),
                     "consumer '%.80s' read without acknowledgements (lone_consumer); start "
                     "rollupd as that consumer to recover its entries",
                     ck_req);
            ru_writer_error(w, "adopting", msg);
            rc = -1;
        }
        if (rc < 0)
            ru_owner_adopt_unlock(w);
        pthread_mutex_lock(&w->mu);
        free(w->ck_req);
        w->ck_req = NULL;
        w->ck_done = true;
        w->ck_rc = rc;
        w->ck_val = val;
        ru_strlcpy(w->ck_err, rc < 0 ? w->stats.last_error : "", sizeof(w->ck_err));
        pthread_mutex_unlock(&w->mu);
        ru_writer_notify(w);
    }
    ru_writer_drop(w);
    return NULL;
}

static void copy_settings(struct ru_pgw *w, const struct ru_config *cfg)
{
    free(w->conninfo);
    struct ru_buf ci = RU_BUF_INIT;
    ru_buf_puts(&ci, cfg->postgres.conninfo);
    w->conninfo = ci.p;
    w->statement_timeout_ms = cfg->postgres.statement_timeout_ms;
    /* a quarter of the memory bound for the states of recently written rows */
    w->cache_budget = (size_t)cfg->limits.max_memory_mb * 1024 * 1024 / 4;
    w->connect_timeout_s = cfg->postgres.connect_timeout_s;
    atomic_store(&w->create_schema, cfg->postgres.create_schema);
}

struct ru_pgw *ru_pgw_new(const struct ru_config *cfg)
{
    struct ru_pgw *w = ru_xcalloc(1, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->cache = ru_rowcache_new();
    copy_settings(w, cfg);
    w->stream = ru_xstrdup(cfg->redis.stream);
    w->group = ru_xstrdup(cfg->redis.group);
    w->consumer = ru_xstrdup(cfg->redis.consumer);
    w->lone = cfg->redis.lone_consumer;
    w->hourly_cfg = ru_xstrdup(cfg->postgres.hourly_table);
    w->raw_cfg = ru_xstrdup(cfg->postgres.raw_table);
    w->cfg_path = ru_xstrdup(cfg->path ? cfg->path : "FILE");
    w->rl = (struct ru_ratelimit)RU_RATELIMIT_INIT(10000);
    int e = w->efd < 0 ? errno : pthread_create(&w->thread, NULL, writer_main, w);
    if (e != 0)
        goto fail;
    w->started = true;
    return w;
fail:
    ru_pgw_free(w);
    errno = e;
    return NULL;
}

void ru_pgw_free(struct ru_pgw *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    if (w->cancel) {
        char errbuf[256];
        PQcancel(w->cancel, errbuf, sizeof(errbuf));
    }
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->started)
        pthread_join(w->thread, NULL);
    ru_batch_free(w->job);
    ru_batch_free(w->done);
    free(w->ck_req);
    ru_keycheck_probes_free(w->kc_req, w->kc_n);
    ru_keycheck_probes_free(w->kc_done, w->kc_n);
    if (w->efd >= 0)
        close(w->efd);
    free(w->conninfo);
    free(w->stream);
    free(w->group);
    free(w->consumer);
    free(w->hourly_cfg);
    free(w->raw_cfg);
    free(w->cfg_path);
    ru_sql_flush_deinit(&w->sql);
    free_keys(w->done_keys);
    ru_scratch_free(&w->scratch);
    ru_rowcache_free(w->cache);
    ru_sql_names_deinit(&w->n);
    ru_buf_free(&w->copybuf);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}

int ru_pgw_fd(const struct ru_pgw *w)
{
    return w->efd;
}

struct ru_batch *ru_pgw_collect(struct ru_pgw *w)
{
    uint64_t v;
    ssize_t r = read(w->efd, &v, sizeof(v));
    (void)r;
    pthread_mutex_lock(&w->mu);
    struct ru_batch *b = w->done;
    w->done = NULL;
    w->init_done_event = false;
    pthread_mutex_unlock(&w->mu);
    if (b)
        atomic_store(&w->busy, false);
    return b;
}

bool ru_pgw_ready(const struct ru_pgw *w)
{
    return atomic_load(&((struct ru_pgw *)w)->ready);
}

bool ru_pgw_busy(const struct ru_pgw *w)
{
    return atomic_load(&((struct ru_pgw *)w)->busy);
}

void ru_pgw_start_point(const struct ru_pgw *w, struct ru_pgw_start *out)
{
    *out = w->start; /* written before ready was set */
}

bool ru_pgw_held(const struct ru_pgw *w)
{
    return atomic_load(&((struct ru_pgw *)w)->held);
}

unsigned ru_pgw_generation(const struct ru_pgw *w)
{
    return atomic_load(&((struct ru_pgw *)w)->generation);
}

unsigned ru_pgw_probe(struct ru_pgw *w)
{
    unsigned t = atomic_fetch_add(&w->probe_req, 1) + 1;
    pthread_mutex_lock(&w->mu);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return t;
}

bool ru_pgw_probed(const struct ru_pgw *w, unsigned ticket)
{
    return (int)(atomic_load(&((struct ru_pgw *)w)->probe_done) - ticket) >= 0;
}

const char *ru_pgw_fatal(struct ru_pgw *w)
{
    pthread_mutex_lock(&w->mu);
    const char *f = w->fatal[0] ? w->fatal : NULL; /* set once, never changed after */
    pthread_mutex_unlock(&w->mu);
    return f;
}

void ru_pgw_submit(struct ru_pgw *w, struct ru_batch *b)
{
    atomic_store(&w->busy, true);
    pthread_mutex_lock(&w->mu);
    w->job = b;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void ru_pgw_request_checkpoint(struct ru_pgw *w, const char *consumer)
{
    atomic_store(&w->busy, true);
    pthread_mutex_lock(&w->mu);
    free(w->ck_req);
    w->ck_req = ru_xstrdup(consumer);
    w->ck_done = false;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int ru_pgw_take_checkpoint(struct ru_pgw *w, struct ru_sid *out, char *err, size_t errlen)
{
    pthread_mutex_lock(&w->mu);
    int rc = 0;
    if (w->ck_done) {
        w->ck_done = false;
        rc = w->ck_rc < 0 ? -1 : 1;
        *out = w->ck_val;
        ru_strlcpy(err, w->ck_err, errlen);
        atomic_store(&w->busy, false);
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

void ru_pgw_request_keycheck(struct ru_pgw *w, struct ru_keycheck_probe *probes, size_t n)
{
    atomic_store(&w->busy, true);
    pthread_mutex_lock(&w->mu);
    w->kc_req = probes;
    w->kc_n = n;
    w->kc_answered = false;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int ru_pgw_take_keycheck(struct ru_pgw *w, struct ru_keycheck_probe **probes, size_t *n)
{
    pthread_mutex_lock(&w->mu);
    int rc = 0;
    if (w->kc_answered) {
        w->kc_answered = false;
        *probes = w->kc_done;
        *n = w->kc_n;
        w->kc_done = NULL;
        w->kc_n = 0;
        atomic_store(&w->busy, false);
        rc = 1;
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

void ru_pgw_adopt_release(struct ru_pgw *w)
{
    atomic_store(&w->adopt_release, true);
    pthread_mutex_lock(&w->mu);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void ru_pgw_reconfigure(struct ru_pgw *w, const struct ru_config *cfg)
{
    pthread_mutex_lock(&w->mu);
    copy_settings(w, cfg);
    atomic_store(&w->reconfigured, true);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void ru_pgw_cancel(struct ru_pgw *w)
{
    pthread_mutex_lock(&w->mu);
    if (w->cancel) {
        char errbuf[256];
        PQcancel(w->cancel, errbuf, sizeof(errbuf));
    }
    pthread_mutex_unlock(&w->mu);
}

size_t ru_pgw_cache_mem(const struct ru_pgw *w)
{
    return atomic_load(&((struct ru_pgw *)w)->cache_bytes);
}

void ru_pgw_get_stats(const struct ru_pgw *w, struct ru_pgw_stats *out)
{
    struct ru_pgw *m = (struct ru_pgw *)w;
    pthread_mutex_lock(&m->mu);
    *out = m->stats;
    pthread_mutex_unlock(&m->mu);
}
