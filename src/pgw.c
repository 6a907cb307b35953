#include "rollupd/pgw.h"

#include <errno.h>
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

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 30000
#define COPY_CHUNK     (1 << 20)
#define SCHEMA_LOCK    7250301 /* advisory lock key serialising schema creation */

/* ---- batches ---- */

struct ru_batch *ru_batch_new(void)
{
    struct ru_batch *b = ru_xcalloc(1, sizeof(*b));
    b->store = ru_store_new();
    return b;
}

void ru_batch_free(struct ru_batch *b)
{
    if (b == NULL)
        return;
    ru_store_free(b->store);
    free(b->adopt_consumer);
    free(b->raw_ids);
    free(b->rejects);
    free(b->ids);
    ru_buf_free(&b->raw);
    free(b);
}

void ru_batch_add_id(struct ru_batch *b, const struct ru_sid *id)
{
    if (b->nids == b->ids_cap) {
        b->ids_cap = b->ids_cap ? b->ids_cap * 2 : 1024;
        b->ids = ru_xrealloc(b->ids, b->ids_cap * sizeof(*b->ids));
    }
    b->ids[b->nids++] = *id;
    if (ru_sid_cmp(id, &b->checkpoint) > 0)
        b->checkpoint = *id;
}

size_t ru_batch_mem(const struct ru_batch *b)
{
    return sizeof(*b) + ru_store_mem(b->store) + b->ids_cap * sizeof(*b->ids) + b->raw.cap +
           b->raw_ids_cap * sizeof(*b->raw_ids);
}

void ru_pgw_copy_escape(struct ru_buf *out, const char *s, size_t len)
{
    ru_buf_reserve(out, len + 8);
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        char esc = 0;
        switch (s[i]) {
        case '\\':
            esc = '\\';
            break;
        case '\t':
            esc = 't';
            break;
        case '\n':
            esc = 'n';
            break;
        case '\r':
            esc = 'r';
            break;
        default:
            continue;
        }
        ru_buf_append(out, s + start, i - start);
        ru_buf_putc(out, '\\');
        ru_buf_putc(out, esc);
        start = i + 1;
    }
    ru_buf_append(out, s + start, len - start);
}

static void put_str_or_null(struct ru_buf *b, const struct ru_str *s)
{
    if (s->len == 0)
        ru_buf_append(b, "\\N", 2);
    else
        ru_pgw_copy_escape(b, s->p, s->len);
}

static void put_int_or_null(struct ru_buf *b, int64_t v, bool present)
{
    if (present)
        ru_buf_put_i64(b, v);
    else
        ru_buf_append(b, "\\N", 2);
}

void ru_batch_add_reject(struct ru_batch *b, const struct ru_sid *id, const char *reason)
{
    if (b->nrejects == b->rejects_cap) {
        b->rejects_cap = b->rejects_cap ? b->rejects_cap * 2 : 16;
        b->rejects = ru_xrealloc(b->rejects, b->rejects_cap * sizeof(*b->rejects));
    }
    b->rejects[b->nrejects].id = *id;
    ru_strlcpy(b->rejects[b->nrejects].reason, reason, sizeof(b->rejects[0].reason));
    b->nrejects++;
}

int ru_batch_add_raw(struct ru_batch *b, const struct ru_sid *id, const struct ru_event *ev)
{
    const char *why = NULL;
    if (ev->user_id.len && !ev->user_is_uuid)
        why = "raw row: user_id is not a UUID";
    else if (!ev->query_params_json)
        why = "raw row: query_params is not valid JSON";
    else if (ru_utf8_chars(ev->cache_status.p, ev->cache_status.len) > RU_EVENT_MAX_CACHE)
        why = "raw row: cache_status is longer than 10 characters";
    if (why) {
        ru_batch_add_reject(b, id, why);
        return -1;
    }
    if (b->nraw == b->raw_ids_cap) {
        b->raw_ids_cap = b->raw_ids_cap ? b->raw_ids_cap * 2 : 1024;
        b->raw_ids = ru_xrealloc(b->raw_ids, b->raw_ids_cap * sizeof(*b->raw_ids));
    }
    b->raw_ids[b->nraw] = *id;
    struct ru_buf *o = &b->raw;
    char ts[32];
    ru_pgw_copy_escape(o, ev->route.p, ev->route.len);
    ru_buf_putc(o, '\t');
    ru_pgw_copy_escape(o, ev->method.p, ev->method.len);
    ru_buf_putc(o, '\t');
    put_str_or_null(o, &ev->user_id);
    ru_buf_putc(o, '\t');
    ru_buf_append(o, ts, ru_event_format_ts(ev->ts_us, ts));
    ru_buf_putc(o, '\t');
    ru_buf_put_i64(o, ev->duration_ms);
    ru_buf_putc(o, '\t');
    ru_buf_put_i64(o, ev->status_code);
    ru_buf_putc(o, '\t');
    ru_pgw_copy_escape(o, ev->query_params.p, ev->query_params.len);
    ru_buf_putc(o, '\t');
    ru_pgw_copy_escape(o, ev->params_canon.p, ev->params_canon.len);
    ru_buf_putc(o, '\t');
    put_int_or_null(o, ev->request_size, ev->request_size != 0);
    ru_buf_putc(o, '\t');
    put_int_or_null(o, ev->response_size, ev->response_size != 0);
    ru_buf_putc(o, '\t');
    put_str_or_null(o, &ev->error_type);
    ru_buf_putc(o, '\t');
    put_int_or_null(o, ev->db_query_count, ev->has_db_query_count);
    ru_buf_putc(o, '\t');
    put_str_or_null(o, &ev->cache_status);
    ru_buf_putc(o, '\t');
    int64_t now_us = (int64_t)(ru_wall_s() * 1e6);
    ru_buf_append(o, ts, ru_event_format_ts(now_us, ts));
    ru_buf_putc(o, '\n');
    b->nraw++;
    return 0;
}

/* ---- the writer ---- */

struct sql_names {
    char *hourly, *state, *hist, *users, *ckpt, *raw; /* quoted, maybe schema-qualified */
    bool genonaut_names; /* create genonaut's index names (default table name) */
};

struct ru_pgw {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int efd;

    /* protected by mu */
    char *conninfo;
    int statement_timeout_ms, connect_timeout_s;
    _Atomic bool reconfigured;
    bool stop;
    struct ru_batch *job;  /* submitted, not yet done */
    struct ru_batch *done; /* committed, not yet collected */
    bool init_done_event;
    struct ru_pgw_stats stats;
    PGcancel *cancel;

    _Atomic bool ready, busy;
    struct ru_sid checkpoint; /* loaded at set-up */
    struct ru_sid committed;  /* what our last commit stored: the fencing token */

    /* checkpoint request (adoption), protected by mu */
    char *ck_req;
    bool ck_done;
    int ck_rc;
    struct ru_sid ck_val;
    char ck_err[256];

    /* thread-owned */
    PGconn *conn;
    char *stream, *group, *consumer;
    char *hourly_cfg, *raw_cfg;
    struct sql_names n;
    char *flush_sql;
    int backoff_ms;
    struct ru_buf copybuf;
    struct ru_ratelimit rl;
};

static void notify_loop(struct ru_pgw *w)
{
    uint64_t one = 1;
    ssize_t r = write(w->efd, &one, sizeof(one));
    (void)r;
}

static void set_error(struct ru_pgw *w, const char *what, const char *detail)
{
    pthread_mutex_lock(&w->mu);
    snprintf(w->stats.last_error, sizeof(w->stats.last_error), "%s%s%s", what,
             detail && *detail ? ": " : "", detail ? detail : "");
    /* libpq messages end with a newline; keep log lines and JSON single-line */
    for (char *p = w->stats.last_error; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    pthread_mutex_unlock(&w->mu);
}

/* Sleeps for the current backoff (with jitter) unless stopped; returns false when
 * stopping. */
static bool backoff_wait(struct ru_pgw *w)
{
    int b = w->backoff_ms ? w->backoff_ms : BACKOFF_MIN_MS;
    int wait = b / 2 + (int)(random() % (b / 2 + 1));
    w->backoff_ms = b * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b * 2;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += wait / 1000;
    ts.tv_nsec += (long)(wait % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    while (!w->stop && !atomic_load(&w->reconfigured)) {
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
            break;
    }
    bool go = !w->stop;
    pthread_mutex_unlock(&w->mu);
    return go;
}

static void drop_conn(struct ru_pgw *w)
{
    pthread_mutex_lock(&w->mu);
    if (w->cancel) {
        PQfreeCancel(w->cancel);
        w->cancel = NULL;
    }
    w->stats.connected = false;
    pthread_mutex_unlock(&w->mu);
    if (w->conn) {
        PQfinish(w->conn);
        w->conn = NULL;
    }
}

static int exec_ok(struct ru_pgw *w, const char *sql, const char *what)
{
    PGresult *r = PQexec(w->conn, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        set_error(w, what, PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    PQclear(r);
    return 0;
}

static char *quote_ident_path(PGconn *c, const char *name, const char *suffix_table)
{
    /* "schema.table" -> "schema"."table"; with suffix_table, the same schema and that
     * table name instead. */
    struct ru_buf b = RU_BUF_INIT;
    const char *dot = strchr(name, '.');
    if (dot) {
        char *q = PQescapeIdentifier(c, name, (size_t)(dot - name));
        ru_buf_puts(&b, q);
        PQfreemem(q);
        ru_buf_putc(&b, '.');
    }
    const char *t = suffix_table ? suffix_table : (dot ? dot + 1 : name);
    char *q = PQescapeIdentifier(c, t, strlen(t));
    ru_buf_puts(&b, q);
    PQfreemem(q);
    return b.p;
}

static void names_free(struct sql_names *n)
{
    free(n->hourly);
    free(n->state);
    free(n->hist);
    free(n->users);
    free(n->ckpt);
    free(n->raw);
    memset(n, 0, sizeof(*n));
}

static void build_flush_sql(struct ru_pgw *w)
{
    const struct sql_names *n = &w->n;
    struct ru_buf b = RU_BUF_INIT;
    ru_buf_printf(&b,
                  /* new rows first, in key order, so that concurrent writers insert in
                   * the same order */
                  "INSERT INTO %s (\"timestamp\", route, method, query_params_normalized,"
                  " total_requests, successful_requests, client_errors, server_errors,"
                  " cache_hits, cache_misses, created_at)"
                  " SELECT ts, route, method, params, 0, 0, 0, 0, 0, 0,"
                  " now() AT TIME ZONE 'UTC' FROM ru_rows ORDER BY ts, route, method, params"
                  " ON CONFLICT (\"timestamp\", route, method, query_params_normalized)"
                  " DO NOTHING;\n",
                  n->hourly);
    /* one index probe per staged row: cost follows the rows touched, not the table */
    ru_buf_printf(&b,
                  "INSERT INTO ru_map (k, id) SELECT s.k, (SELECT h.id FROM %s h"
                  " WHERE h.\"timestamp\" = s.ts AND h.route = s.route AND h.method = s.method"
                  " AND h.query_params_normalized = s.params) FROM ru_rows s;\n"
                  "ANALYZE ru_map;\n",
                  n->hourly);
    /* lock the touched rows in id order: writers serialise per row, never deadlock */
    ru_buf_printf(&b,
                  "SELECT count(*) FROM (SELECT 1 FROM %s WHERE id = ANY(ARRAY(SELECT id FROM"
                  " ru_map)) ORDER BY id FOR UPDATE) l;\n",
                  n->hourly);
    ru_buf_printf(&b,
                  "INSERT INTO %s AS t (hourly_id, total, ok, c4xx, c5xx, hits, misses, dur_sum,"
                  " req_sum, req_n, resp_sum, resp_n, db_sum, db_n, users_n)"
                  " SELECT m.id, s.total, s.ok, s.c4xx, s.c5xx, s.hits, s.misses, s.dur_sum,"
                  " s.req_sum, s.req_n, s.resp_sum, s.resp_n, s.db_sum, s.db_n, 0"
                  " FROM ru_rows s JOIN ru_map m USING (k) ORDER BY m.id"
                  " ON CONFLICT (hourly_id) DO UPDATE SET total = t.total + excluded.total,"
                  " ok = t.ok + excluded.ok, c4xx = t.c4xx + excluded.c4xx,"
                  " c5xx = t.c5xx + excluded.c5xx, hits = t.hits + excluded.hits,"
                  " misses = t.misses + excluded.misses, dur_sum = t.dur_sum + excluded.dur_sum,"
                  " req_sum = t.req_sum + excluded.req_sum, req_n = t.req_n + excluded.req_n,"
                  " resp_sum = t.resp_sum + excluded.resp_sum,"
                  " resp_n = t.resp_n + excluded.resp_n, db_sum = t.db_sum + excluded.db_sum,"
                  " db_n = t.db_n + excluded.db_n;\n",
                  n->state);
    ru_buf_printf(&b,
                  "INSERT INTO %s AS t (hourly_id, value, cnt) SELECT m.id, h.value, h.cnt"
                  " FROM ru_hist h JOIN ru_map m USING (k) ORDER BY 1, 2"
                  " ON CONFLICT (hourly_id, value) DO UPDATE SET cnt = t.cnt + excluded.cnt;\n",
                  n->hist);
    /* distinct users: only ids new to the row count, so the figure stays incremental */
    ru_buf_printf(&b,
                  "WITH ins AS (INSERT INTO %s (hourly_id, user_id) SELECT m.id, u.user_id"
                  " FROM ru_users u JOIN ru_map m USING (k) ORDER BY 1, 2"
                  " ON CONFLICT DO NOTHING RETURNING hourly_id),"
                  " c AS (SELECT hourly_id, count(*) AS n FROM ins GROUP BY hourly_id)"
                  " UPDATE %s t SET users_n = t.users_n + c.n FROM c"
                  " WHERE t.hourly_id = c.hourly_id;\n",
                  n->users, n->state);
    /* Derived columns, with PostgreSQL's own arithmetic: numeric division then a
     * numeric->integer cast (half away from zero) for averages, exactly as AVG(int);
     * percentile_cont's float8 interpolation at q*(n-1) then a float8->integer cast
     * (half to even). The value at 0-based rank r is the smallest value whose
     * cumulative count exceeds r. Every touched row is visited through LATERAL index
     * lookups on its own key, so the plan stays one index scan per row whatever the
     * planner believes about table sizes. */
    ru_buf_printf(&b,
                  "UPDATE %s h SET total_requests = x.total, successful_requests = x.ok,"
                  " client_errors = x.c4xx, server_errors = x.c5xx,"
                  " avg_duration_ms = (x.dur_sum::numeric / x.total)::integer,"
                  " p50_duration_ms = (x.lo50::float8 + (x.hi50::float8 - x.lo50::float8)"
                  " * (x.x50 - floor(x.x50)))::integer,"
                  " p95_duration_ms = (x.lo95::float8 + (x.hi95::float8 - x.lo95::float8)"
                  " * (x.x95 - floor(x.x95)))::integer,"
                  " p99_duration_ms = (x.lo99::float8 + (x.hi99::float8 - x.lo99::float8)"
                  " * (x.x99 - floor(x.x99)))::integer,"
                  " unique_users = x.users_n,"
                  " avg_request_size_bytes = CASE WHEN x.req_n > 0 THEN"
                  " (x.req_sum::numeric / x.req_n)::integer END,"
                  " avg_response_size_bytes = CASE WHEN x.resp_n > 0 THEN"
                  " (x.resp_sum::numeric / x.resp_n)::integer END,"
                  " avg_db_query_count = CASE WHEN x.db_n > 0 THEN"
                  " (x.db_sum::numeric / x.db_n)::float8 END,"
                  " cache_hits = x.hits, cache_misses = x.misses"
                  " FROM (SELECT st.*, p.*, q.* FROM ru_map m"
                  " CROSS JOIN LATERAL (SELECT * FROM %s t WHERE t.hourly_id = m.id) st"
                  " CROSS JOIN LATERAL (SELECT 0.5::float8 * (st.total - 1) AS x50,"
                  " 0.95::float8 * (st.total - 1) AS x95, 0.99::float8 * (st.total - 1) AS x99) p"
                  " CROSS JOIN LATERAL (SELECT"
                  " min(c.value) FILTER (WHERE c.c > floor(p.x50)) AS lo50,"
                  " min(c.value) FILTER (WHERE c.c > ceil(p.x50)) AS hi50,"
                  " min(c.value) FILTER (WHERE c.c > floor(p.x95)) AS lo95,"
                  " min(c.value) FILTER (WHERE c.c > ceil(p.x95)) AS hi95,"
                  " min(c.value) FILTER (WHERE c.c > floor(p.x99)) AS lo99,"
                  " min(c.value) FILTER (WHERE c.c > ceil(p.x99)) AS hi99"
                  " FROM (SELECT hh.value, sum(hh.cnt::float8) OVER (ORDER BY hh.value) AS c"
                  " FROM %s hh WHERE hh.hourly_id = m.id) c) q) x"
                  " WHERE h.id = x.hourly_id;\n",
                  n->hourly, n->state, n->hist);
    free(w->flush_sql);
    w->flush_sql = b.p;
}

static int create_schema(struct ru_pgw *w)
{
    const struct sql_names *n = &w->n;
    struct ru_buf b = RU_BUF_INIT;
    ru_buf_printf(&b, "BEGIN; SELECT pg_advisory_xact_lock(%d);\n", SCHEMA_LOCK);
    /* genonaut's definition of the hourly table, created only when it is missing */
    ru_buf_printf(&b,
                  "CREATE TABLE IF NOT EXISTS %s ("
                  " id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
                  " \"timestamp\" timestamp without time zone NOT NULL,"
                  " route text NOT NULL, method varchar(10) NOT NULL,"
                  " query_params_normalized jsonb,"
                  " total_requests integer NOT NULL, successful_requests integer NOT NULL,"
                  " client_errors integer NOT NULL, server_errors integer NOT NULL,"
                  " avg_duration_ms integer, p50_duration_ms integer, p95_duration_ms integer,"
                  " p99_duration_ms integer, unique_users integer,"
                  " avg_request_size_bytes integer, avg_response_size_bytes integer,"
                  " avg_db_query_count double precision,"
                  " cache_hits integer NOT NULL, cache_misses integer NOT NULL,"
                  " created_at timestamp without time zone NOT NULL,"
                  " CONSTRAINT %s UNIQUE (\"timestamp\", route, method,"
                  " query_params_normalized));\n",
                  n->hourly,
                  n->genonaut_names ? "uq_route_analytics_hourly_time_route_params"
                                    : "rollupd_hourly_key");
    if (n->genonaut_names) {
        ru_buf_printf(&b,
                      "CREATE INDEX IF NOT EXISTS idx_route_metrics_duration ON %1$s"
                      " (avg_duration_ms DESC);"
                      " CREATE INDEX IF NOT EXISTS idx_route_metrics_route_time ON %1$s"
                      " (route, \"timestamp\" DESC);"
                      " CREATE INDEX IF NOT EXISTS idx_route_metrics_timestamp ON %1$s"
                      " (\"timestamp\" DESC);"
                      " CREATE INDEX IF NOT EXISTS idx_route_metrics_total_requests ON %1$s"
                      " (total_requests DESC);"
                      " CREATE INDEX IF NOT EXISTS ix_route_analytics_hourly_timestamp ON %1$s"
                      " (\"timestamp\");\n",
                      n->hourly);
    }
    if (n->raw) {
        ru_buf_printf(&b,
                      "CREATE TABLE IF NOT EXISTS %s ("
                      " id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
                      " route text NOT NULL, method varchar(10) NOT NULL, user_id uuid,"
                      " \"timestamp\" timestamp without time zone NOT NULL,"
                      " duration_ms integer NOT NULL, status_code smallint NOT NULL,"
                      " query_params jsonb, query_params_normalized jsonb,"
                      " request_size_bytes integer, response_size_bytes integer,"
                      " error_type text, db_query_count integer, cache_status varchar(10),"
                      " created_at timestamp without time zone NOT NULL);\n",
                      n->raw);
    }
    ru_buf_printf(&b,
                  "CREATE TABLE IF NOT EXISTS %s (hourly_id bigint PRIMARY KEY,"
                  " total bigint NOT NULL, ok bigint NOT NULL, c4xx bigint NOT NULL,"
                  " c5xx bigint NOT NULL, hits bigint NOT NULL, misses bigint NOT NULL,"
                  " dur_sum bigint NOT NULL, req_sum bigint NOT NULL, req_n bigint NOT NULL,"
                  " resp_sum bigint NOT NULL, resp_n bigint NOT NULL, db_sum bigint NOT NULL,"
                  " db_n bigint NOT NULL, users_n bigint NOT NULL);\n"
                  "CREATE TABLE IF NOT EXISTS %s (hourly_id bigint NOT NULL, value integer NOT"
                  " NULL, cnt bigint NOT NULL, PRIMARY KEY (hourly_id, value));\n"
                  "CREATE TABLE IF NOT EXISTS %s (hourly_id bigint NOT NULL, user_id text NOT"
                  " NULL, PRIMARY KEY (hourly_id, user_id));\n"
                  "CREATE TABLE IF NOT EXISTS %s (stream text NOT NULL, grp text NOT NULL,"
                  " consumer text NOT NULL, last_id text NOT NULL, events bigint NOT NULL,"
                  " updated_at timestamptz NOT NULL, PRIMARY KEY (stream, grp, consumer));\n"
                  "COMMIT;\n",
                  n->state, n->hist, n->users, n->ckpt);
    int rc = exec_ok(w, b.p, "creating the schema");
    ru_buf_free(&b);
    if (rc < 0) {
        PQclear(PQexec(w->conn, "ROLLBACK"));
        return -1;
    }
    /* refuse early if the hourly table lacks genonaut's unique key */
    struct ru_buf chk = RU_BUF_INIT;
    ru_buf_printf(&chk,
                  "EXPLAIN INSERT INTO %s (\"timestamp\", route, method, query_params_normalized,"
                  " total_requests, successful_requests, client_errors, server_errors,"
                  " cache_hits, cache_misses, created_at) VALUES (now(), '', '', '{}', 0, 0, 0,"
                  " 0, 0, 0, now()) ON CONFLICT (\"timestamp\", route, method,"
                  " query_params_normalized) DO NOTHING",
                  n->hourly);
    rc = exec_ok(w, chk.p, "checking the hourly table's unique key");
    ru_buf_free(&chk);
    return rc;
}

static int query_checkpoint(struct ru_pgw *w, const char *consumer, struct ru_sid *out)
{
    struct ru_buf b = RU_BUF_INIT;
    ru_buf_printf(&b, "SELECT last_id FROM %s WHERE stream = $1 AND grp = $2 AND consumer = $3",
                  w->n.ckpt);
    const char *params[3] = {w->stream, w->group, consumer};
    PGresult *r = PQexecParams(w->conn, b.p, 3, NULL, params, NULL, NULL, 0);
    ru_buf_free(&b);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        set_error(w, "loading the checkpoint", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    struct ru_sid id = {0, 0};
    if (PQntuples(r) == 1) {
        const char *v = PQgetvalue(r, 0, 0);
        if (ru_sid_parse(&id, v, strlen(v)) < 0) {
            set_error(w, "loading the checkpoint", "stored last_id is not a stream id");
            PQclear(r);
            return -1;
        }
    }
    PQclear(r);
    *out = id;
    return 0;
}

/* At set-up only: later reconnects keep w->committed, the value this process last
 * stored, which is what fences out a takeover that happened while we were away. */
static int load_checkpoint(struct ru_pgw *w)
{
    if (atomic_load(&w->ready))
        return 0;
    if (query_checkpoint(w, w->consumer, &w->checkpoint) < 0)
        return -1;
    w->committed = w->checkpoint;
    return 0;
}

/* One session-level advisory lock per (stream, group, consumer): two processes
 * configured with the same consumer name would corrupt each other's checkpoint. */
static int lock_consumer(struct ru_pgw *w)
{
    struct ru_buf key = RU_BUF_INIT;
    ru_buf_printf(&key, "rollupd:%s:%s:%s", w->stream, w->group, w->consumer);
    const char *params[1] = {key.p};
    PGresult *r = PQexecParams(w->conn, "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", 1,
                               NULL, params, NULL, NULL, 0);
    ru_buf_free(&key);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        set_error(w, "locking the consumer name", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    bool got = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!got) {
        char msg[200];
        snprintf(msg, sizeof(msg), "consumer '%s' is held by another rollupd session", w->consumer);
        set_error(w, "locking the consumer name", msg);
        return -1;
    }
    return 0;
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
    w->conn = PQconnectdbParams(keys, vals, 1);
    free(conninfo);
    if (PQstatus(w->conn) != CONNECTION_OK) {
        set_error(w, "connect", PQerrorMessage(w->conn));
        drop_conn(w);
        return -1;
    }
    PQsetNoticeProcessor(w->conn, on_notice, NULL);
    char set[256];
    snprintf(set, sizeof(set),
             "SET client_encoding = 'UTF8'; SET TimeZone = 'UTC'; SET statement_timeout = %d;"
             " SET lock_timeout = %d; SET application_name = 'rollupd'",
             timeout_ms, timeout_ms);
    if (exec_ok(w, set, "session set-up") < 0)
        goto fail;
    names_free(&w->n);
    w->n.hourly = quote_ident_path(w->conn, w->hourly_cfg, NULL);
    w->n.state = quote_ident_path(w->conn, w->hourly_cfg, "rollupd_state");
    w->n.hist = quote_ident_path(w->conn, w->hourly_cfg, "rollupd_hist");
    w->n.users = quote_ident_path(w->conn, w->hourly_cfg, "rollupd_users");
    w->n.ckpt = quote_ident_path(w->conn, w->hourly_cfg, "rollupd_checkpoint");
    w->n.raw = w->raw_cfg[0] ? quote_ident_path(w->conn, w->raw_cfg, NULL) : NULL;
    const char *base = strchr(w->hourly_cfg, '.');
    w->n.genonaut_names = strcmp(base ? base + 1 : w->hourly_cfg, "route_analytics_hourly") == 0;
    if (create_schema(w) < 0 || lock_consumer(w) < 0 || load_checkpoint(w) < 0)
        goto fail;
    if (exec_ok(w,
                "CREATE TEMP TABLE ru_rows (k int4, ts timestamp, route text, method text,"
                " params jsonb, total int8, ok int8, c4xx int8, c5xx int8, hits int8,"
                " misses int8, dur_sum int8, req_sum int8, req_n int8, resp_sum int8,"
                " resp_n int8, db_sum int8, db_n int8) ON COMMIT DELETE ROWS;"
                " CREATE TEMP TABLE ru_hist (k int4, value int4, cnt int8) ON COMMIT DELETE ROWS;"
                " CREATE TEMP TABLE ru_users (k int4, user_id text) ON COMMIT DELETE ROWS;"
                " CREATE TEMP TABLE ru_map (k int4 PRIMARY KEY, id int8) ON COMMIT DELETE ROWS",
                "creating staging tables") < 0)
        goto fail;
    build_flush_sql(w);
    pthread_mutex_lock(&w->mu);
    w->cancel = PQgetCancel(w->conn);
    w->stats.connected = true;
    pthread_mutex_unlock(&w->mu);
    return 0;
fail:
    drop_conn(w);
    return -1;
}

/* SQLSTATE of the last failed COPY ("" when it failed in libpq itself). */
static __thread char copy_sqlstate[6];

static void note_sqlstate(const PGresult *r)
{
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    ru_strlcpy(copy_sqlstate, st ? st : "", sizeof(copy_sqlstate));
}

static int copy_in(struct ru_pgw *w, const char *sql, const struct ru_buf *data)
{
    copy_sqlstate[0] = '\0';
    PGresult *r = PQexec(w->conn, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        set_error(w, "COPY", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    PQclear(r);
    for (size_t off = 0; off < data->len; off += COPY_CHUNK) {
        size_t n = data->len - off < COPY_CHUNK ? data->len - off : COPY_CHUNK;
        if (PQputCopyData(w->conn, data->p + off, (int)n) != 1) {
            set_error(w, "COPY data", PQerrorMessage(w->conn));
            return -1;
        }
    }
    if (PQputCopyEnd(w->conn, NULL) != 1) {
        set_error(w, "COPY end", PQerrorMessage(w->conn));
        return -1;
    }
    r = PQgetResult(w->conn);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        set_error(w, "COPY", PQresultErrorMessage(r));
        note_sqlstate(r);
        rc = -1;
    }
    PQclear(r);
    while ((r = PQgetResult(w->conn)) != NULL)
        PQclear(r);
    return rc;
}

static void build_rows(struct ru_buf *o, const struct ru_store *st)
{
    char ts[32];
    size_t n = ru_store_nkeys(st);
    for (size_t i = 0; i < n; i++) {
        const struct ru_agg *a = ru_store_agg(st, i);
        ru_buf_put_i64(o, (int64_t)i);
        ru_buf_putc(o, '\t');
        ru_buf_append(o, ts, ru_event_format_ts(a->hour_us, ts));
        ru_buf_putc(o, '\t');
        ru_pgw_copy_escape(o, a->route, a->route_len);
        ru_buf_putc(o, '\t');
        ru_pgw_copy_escape(o, a->method, a->method_len);
        ru_buf_putc(o, '\t');
        ru_pgw_copy_escape(o, a->params, a->params_len);
        const int64_t v[] = {(int64_t)a->total, (int64_t)a->ok,     (int64_t)a->c4xx,
                             (int64_t)a->c5xx,  (int64_t)a->hits,   (int64_t)a->misses,
                             a->dur_sum,        a->req_sum,         (int64_t)a->req_n,
                             a->resp_sum,       (int64_t)a->resp_n, a->db_sum,
                             (int64_t)a->db_n};
        for (size_t j = 0; j < RU_ARRAY_LEN(v); j++) {
            ru_buf_putc(o, '\t');
            ru_buf_put_i64(o, v[j]);
        }
        ru_buf_putc(o, '\n');
    }
}

static void build_hist(struct ru_buf *o, const struct ru_store *st)
{
    size_t n = ru_store_nkeys(st);
    for (size_t i = 0; i < n; i++) {
        const struct ru_agg *a = ru_store_agg(st, i);
        for (uint32_t j = 0; j < a->hist_cap; j++) {
            if (a->hist[j].count == 0)
                continue;
            ru_buf_put_i64(o, (int64_t)i);
            ru_buf_putc(o, '\t');
            ru_buf_put_i64(o, a->hist[j].value);
            ru_buf_putc(o, '\t');
            ru_buf_put_i64(o, a->hist[j].count);
            ru_buf_putc(o, '\n');
        }
    }
}

static void build_users(struct ru_buf *o, const struct ru_store *st)
{
    size_t n = ru_store_nkeys(st);
    for (size_t i = 0; i < n; i++) {
        const struct ru_agg *a = ru_store_agg(st, i);
        for (uint32_t j = 0; j < a->users_cap; j++) {
            if (a->users[j] == 0)
                continue;
            size_t len;
            const char *u = ru_store_user(st, a->users[j] - 1, &len);
            ru_buf_put_i64(o, (int64_t)i);
            ru_buf_putc(o, '\t');
            ru_pgw_copy_escape(o, u, len);
            ru_buf_putc(o, '\n');
        }
    }
}

/* True for errors caused by the data of some row (class 22 data exception, class 23
 * integrity violation such as a foreign key to a deleted user): isolating the row helps.
 * Anything else (connection, timeout, permissions) fails the whole flush and is retried. */
static bool row_error(void)
{
    return copy_sqlstate[0] == '2' && (copy_sqlstate[1] == '2' || copy_sqlstate[1] == '3');
}

/* Copies raw rows [lo, hi) (line offsets in off[]) under a savepoint; on a row error,
 * splits the range in two and recurses, so each refused row is found with about
 * log2(n) extra COPYs and recorded as a reject while every other row is written. */
static int copy_raw_range(struct ru_pgw *w, struct ru_batch *b, const char *sql, const size_t *off,
                          size_t lo, size_t hi)
{
    struct ru_buf part = RU_BUF_INIT;
    ru_buf_append(&part, b->raw.p + off[lo], off[hi] - off[lo]);
    int rc = exec_ok(w, "SAVEPOINT ru_raw", "SAVEPOINT");
    if (rc == 0)
        rc = copy_in(w, sql, &part);
    ru_buf_free(&part);
    if (rc == 0)
        return exec_ok(w, "RELEASE SAVEPOINT ru_raw", "RELEASE");
    if (!row_error() || PQstatus(w->conn) != CONNECTION_OK)
        return -1;
    char reason[256];
    pthread_mutex_lock(&w->mu);
    snprintf(reason, sizeof(reason), "raw row refused by PostgreSQL: %.200s", w->stats.last_error);
    pthread_mutex_unlock(&w->mu);
    if (exec_ok(w, "ROLLBACK TO SAVEPOINT ru_raw; RELEASE SAVEPOINT ru_raw", "ROLLBACK TO") < 0)
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
    struct ru_buf sql = RU_BUF_INIT;
    ru_buf_printf(&sql,
                  "COPY %s (route, method, user_id, \"timestamp\", duration_ms, status_code,"
                  " query_params, query_params_normalized, request_size_bytes,"
                  " response_size_bytes, error_type, db_query_count, cache_status,"
                  " created_at) FROM STDIN",
                  w->n.raw);
    size_t *off = ru_xmalloc((b->nraw + 1) * sizeof(*off));
    size_t n = 0;
    off[0] = 0;
    for (size_t i = 0; i < b->raw.len && n < b->nraw; i++)
        if (b->raw.p[i] == '\n')
            off[++n] = i + 1;
    int rc = n == b->nraw ? copy_raw_range(w, b, sql.p, off, 0, n) : -1;
    free(off);
    ru_buf_free(&sql);
    return rc;
}

static int flush_once(struct ru_pgw *w, struct ru_batch *b)
{
    /* rejects PostgreSQL found in an earlier attempt of this batch are found again */
    if (b->attempts == 1)
        b->ingest_rejects = b->nrejects;
    else
        b->nrejects = b->ingest_rejects;
    struct ru_buf *o = &w->copybuf;
    if (exec_ok(w, "BEGIN", "BEGIN") < 0)
        return -1;
    ru_buf_reset(o);
    build_rows(o, b->store);
    if (copy_in(w, "COPY ru_rows FROM STDIN", o) < 0)
        return -1;
    ru_buf_reset(o);
    build_hist(o, b->store);
    if (copy_in(w, "COPY ru_hist FROM STDIN", o) < 0)
        return -1;
    ru_buf_reset(o);
    build_users(o, b->store);
    if (o->len && copy_in(w, "COPY ru_users FROM STDIN", o) < 0)
        return -1;
    /* temporary tables are never analyzed by autovacuum: give the planner real sizes */
    if (ru_store_nkeys(b->store) &&
        exec_ok(w, "ANALYZE ru_rows, ru_hist, ru_users", "ANALYZE staging") < 0)
        return -1;
    if (ru_store_nkeys(b->store) && exec_ok(w, w->flush_sql, "merging the rollup") < 0)
        return -1;
    if (w->n.raw && b->raw.len && copy_raw(w, b) < 0)
        return -1;
    /* The checkpoint doubles as a fencing token: it only moves from the value this
     * writer last committed (or, for an adoption, the value read before fetching). If
     * another process changed it, this batch must not commit. */
    const char *consumer = b->adopt_consumer ? b->adopt_consumer : w->consumer;
    struct ru_sid expected = b->adopt_consumer ? b->adopt_expected : w->committed;
    struct ru_sid next = expected;
    if (ru_sid_cmp(&b->checkpoint, &next) > 0)
        next = b->checkpoint;
    if (b->adopt_consumer) {
        struct ru_buf key = RU_BUF_INIT;
        ru_buf_printf(&key, "rollupd:%s:%s:%s", w->stream, w->group, consumer);
        const char *kp[1] = {key.p};
        PGresult *r =
            PQexecParams(w->conn, "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))", 1,
                         NULL, kp, NULL, NULL, 0);
        ru_buf_free(&key);
        bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQgetvalue(r, 0, 0)[0] == 't';
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            set_error(w, "locking the adopted consumer", PQresultErrorMessage(r));
            PQclear(r);
            return -1;
        }
        PQclear(r);
        if (!ok) {
            b->fenced = true;
            snprintf(b->fence_reason, sizeof(b->fence_reason),
                     "consumer '%s' is alive (its rollupd holds its lock)", consumer);
            return -2;
        }
    }
    b->attempted = next;
    b->attempted_set = true;
    char idtxt[RU_SID_STRLEN], exptxt[RU_SID_STRLEN], events[24];
    ru_sid_format(&next, idtxt);
    ru_sid_format(&expected, exptxt);
    snprintf(events, sizeof(events), "%llu", (unsigned long long)ru_store_nevents(b->store));
    struct ru_buf sql = RU_BUF_INIT;
    ru_buf_printf(&sql,
                  "INSERT INTO %1$s AS c (stream, grp, consumer, last_id, events, updated_at)"
                  " SELECT $1, $2, $3, $4, $5, now() WHERE $6 = '0-0' OR EXISTS (SELECT 1 FROM"
                  " %1$s WHERE stream = $1 AND grp = $2 AND consumer = $3)"
                  " ON CONFLICT (stream, grp, consumer) DO UPDATE SET last_id = excluded.last_id,"
                  " events = c.events + excluded.events, updated_at = now()"
                  " WHERE c.last_id = $6",
                  w->n.ckpt);
    const char *params[6] = {w->stream, w->group, consumer, idtxt, events, exptxt};
    PGresult *r = PQexecParams(w->conn, sql.p, 6, NULL, params, NULL, NULL, 0);
    ru_buf_free(&sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        set_error(w, "saving the checkpoint", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    bool moved = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    if (!moved) {
        b->fenced = true;
        snprintf(b->fence_reason, sizeof(b->fence_reason),
                 "checkpoint of consumer '%s' is no longer %s: another process took it over",
                 consumer, exptxt);
        return -2;
    }
    if (exec_ok(w, "COMMIT", "COMMIT") < 0)
        return -1;
    if (!b->adopt_consumer)
        w->committed = next;
    return 0;
}

/* After a failed attempt whose COMMIT may have reached the server: the checkpoint row
 * tells. It equals what that attempt wrote only if the attempt committed (checkpoints
 * only move forward and each batch writes a new, higher value). */
static bool committed_already(struct ru_pgw *w, struct ru_batch *b)
{
    struct ru_sid stored;
    const char *consumer = b->adopt_consumer ? b->adopt_consumer : w->consumer;
    struct ru_sid expected = b->adopt_consumer ? b->adopt_expected : w->committed;
    if (ru_sid_cmp(&b->attempted, &expected) == 0)
        return false; /* the attempt would not have moved it: cannot tell, and need not */
    if (query_checkpoint(w, consumer, &stored) < 0)
        return false; /* the retry will fail and come back here */
    return ru_sid_cmp(&stored, &b->attempted) == 0;
}

static void run_batch(struct ru_pgw *w, struct ru_batch *b)
{
    for (;;) {
        if (w->conn == NULL || atomic_load(&w->reconfigured)) {
            drop_conn(w);
            if (connect_db(w) < 0) {
                ru_log_limited(&w->rl, RU_LOG_ERR,
                               "msg=\"postgres unavailable, batch kept\" events=%llu error=\"%s\"",
                               (unsigned long long)ru_store_nevents(b->store), w->stats.last_error);
                if (!backoff_wait(w))
                    return;
                continue;
            }
        }
        int64_t t0 = ru_mono_us();
        int rc;
        if (b->attempted_set && committed_already(w, b)) {
            /* the COMMIT went through but its answer was lost with the connection */
            ru_log(RU_LOG_WARNING,
                   "msg=\"previous attempt had committed; not applying the "
                   "batch again\" attempt=%d",
                   b->attempts);
            if (!b->adopt_consumer)
                w->committed = b->attempted;
            rc = 0;
        } else {
            b->attempts++;
            rc = flush_once(w, b);
        }
        if (rc == -2) {
            /* fenced: never retried; the loop decides what to do with the batch */
            PQclear(PQexec(w->conn, "ROLLBACK"));
            pthread_mutex_lock(&w->mu);
            w->job = NULL;
            w->done = b;
            pthread_mutex_unlock(&w->mu);
            notify_loop(w);
            return;
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
            notify_loop(w);
            return;
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
            drop_conn(w);
        } else {
            PQclear(PQexec(w->conn, "ROLLBACK"));
        }
        /* deadlocks and serialization failures are retried at once; anything else
         * waits out the backoff */
        const char *e = w->stats.last_error;
        if (strstr(e, "deadlock") == NULL && strstr(e, "could not serialize") == NULL) {
            if (!backoff_wait(w))
                return;
        }
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
        if (connect_db(w) == 0)
            break;
        ru_log_limited(&w->rl, RU_LOG_WARNING,
                       "msg=\"postgres set-up failed, retrying\" error=\"%s\"",
                       w->stats.last_error);
        if (!backoff_wait(w))
            return NULL;
    }
    w->backoff_ms = 0;
    pthread_mutex_lock(&w->mu);
    w->init_done_event = true;
    pthread_mutex_unlock(&w->mu);
    atomic_store(&w->ready, true);
    notify_loop(w);

    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->stop && w->job == NULL && w->ck_req == NULL)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->stop) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        struct ru_batch *b = w->job;
        char *ck_req = w->ck_req;
        pthread_mutex_unlock(&w->mu);
        if (b) {
            run_batch(w, b);
            continue;
        }
        /* a checkpoint query for an adoption: one attempt, the loop retries if it wants */
        struct ru_sid val = {0, 0};
        int rc = -1;
        if (w->conn == NULL || atomic_load(&w->reconfigured)) {
            drop_conn(w);
            connect_db(w);
        }
        if (w->conn)
            rc = query_checkpoint(w, ck_req, &val);
        pthread_mutex_lock(&w->mu);
        free(w->ck_req);
        w->ck_req = NULL;
        w->ck_done = true;
        w->ck_rc = rc;
        w->ck_val = val;
        ru_strlcpy(w->ck_err, rc < 0 ? w->stats.last_error : "", sizeof(w->ck_err));
        pthread_mutex_unlock(&w->mu);
        notify_loop(w);
    }
    drop_conn(w);
    return NULL;
}

static void copy_settings(struct ru_pgw *w, const struct ru_config *cfg)
{
    free(w->conninfo);
    struct ru_buf ci = RU_BUF_INIT;
    ru_buf_puts(&ci, cfg->postgres.conninfo);
    w->conninfo = ci.p;
    w->statement_timeout_ms = cfg->postgres.statement_timeout_ms;
    w->connect_timeout_s = cfg->postgres.connect_timeout_s;
}

struct ru_pgw *ru_pgw_new(const struct ru_config *cfg)
{
    struct ru_pgw *w = ru_xcalloc(1, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    copy_settings(w, cfg);
    w->stream = ru_xstrdup(cfg->redis.stream);
    w->group = ru_xstrdup(cfg->redis.group);
    w->consumer = ru_xstrdup(cfg->redis.consumer);
    w->hourly_cfg = ru_xstrdup(cfg->postgres.hourly_table);
    w->raw_cfg = ru_xstrdup(cfg->postgres.raw_table);
    w->rl = (struct ru_ratelimit)RU_RATELIMIT_INIT(10000);
    if (w->efd < 0 || pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        fprintf(stderr, "<2>rollupd: cannot start the writer thread: %s\n", strerror(errno));
        abort();
    }
    return w;
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
    pthread_join(w->thread, NULL);
    ru_batch_free(w->job);
    ru_batch_free(w->done);
    free(w->ck_req);
    close(w->efd);
    free(w->conninfo);
    free(w->stream);
    free(w->group);
    free(w->consumer);
    free(w->hourly_cfg);
    free(w->raw_cfg);
    free(w->flush_sql);
    names_free(&w->n);
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

struct ru_sid ru_pgw_checkpoint(const struct ru_pgw *w)
{
    return w->checkpoint;
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

void ru_pgw_get_stats(const struct ru_pgw *w, struct ru_pgw_stats *out)
{
    struct ru_pgw *m = (struct ru_pgw *)w;
    pthread_mutex_lock(&m->mu);
    *out = m->stats;
    pthread_mutex_unlock(&m->mu);
}
