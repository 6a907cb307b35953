#include "rollupd/sql.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollupd/pgnum.h"

#define HV(f) offsetof(struct ru_hourly_vals, f)

/* genonaut's route_analytics_hourly after its key, in its column order. */
const struct ru_sql_hourly_col ru_sql_hourly_cols[] = {
    {"total_requests", "tr", "integer NOT NULL", true, false, HV(total), 0},
    {"successful_requests", "sr", "integer NOT NULL", true, false, HV(ok), 0},
    {"client_errors", "ce", "integer NOT NULL", true, false, HV(c4xx), 0},
    {"server_errors", "se", "integer NOT NULL", true, false, HV(c5xx), 0},
    {"avg_duration_ms", "ad", "integer", false, false, HV(avg_dur), 0},
    {"p50_duration_ms", "p50", "integer", false, false, HV(p50), 0},
    {"p95_duration_ms", "p95", "integer", false, false, HV(p95), 0},
    {"p99_duration_ms", "p99", "integer", false, false, HV(p99), 0},
    {"unique_users", "uu", "integer", false, false, HV(users), 0},
    {"avg_request_size_bytes", "arq", "integer", false, false, HV(avg_req), HV(has_req)},
    {"avg_response_size_bytes", "ars", "integer", false, false, HV(avg_resp), HV(has_resp)},
    {"avg_db_query_count", "adb", "double precision", false, true, HV(avg_db), HV(has_db)},
    {"cache_hits", "ch", "integer NOT NULL", true, false, HV(hits), 0},
    {"cache_misses", "cm", "integer NOT NULL", true, false, HV(misses), 0},
};
const size_t ru_sql_hourly_ncols = RU_ARRAY_LEN(ru_sql_hourly_cols);

#define RC(f)                                                                                      \
    {                                                                                              \
#f, offsetof(struct ru_rowcounts, f)                                                       \
    }
const struct ru_sql_rowcount ru_sql_rowcounts[RU_ROWCOUNTS_N] = {
    RC(total),   RC(ok),    RC(c4xx),     RC(c5xx),   RC(hits),   RC(misses), RC(dur_sum),
    RC(req_sum), RC(req_n), RC(resp_sum), RC(resp_n), RC(db_sum), RC(db_n),   RC(users_n),
};

/* genonaut's route_analytics after its id, in its column order: the fields of a raw row
 * (ru_batch_add_raw) in this order. */
static const struct {
    const char *name, *type;
} raw_cols[] = {
    {"route", "text NOT NULL"},
    {"method", "varchar(10) NOT NULL"},
    {"user_id", "uuid"},
    {"\"timestamp\"", "timestamp without time zone NOT NULL"},
    {"duration_ms", "integer NOT NULL"},
    {"status_code", "smallint NOT NULL"},
    {"query_params", "jsonb"},
    {"query_params_normalized", "jsonb"},
    {"request_size_bytes", "integer"},
    {"response_size_bytes", "integer"},
    {"error_type", "text"},
    {"db_query_count", "integer"},
    {"cache_status", "varchar(10)"},
    {"created_at", "timestamp without time zone NOT NULL"},
};

/* The hourly table's unique key. */
#define HOURLY_KEY "\"timestamp\", route, method, query_params_normalized"

/* ---- names ---- */

/* Appends "name" quoted as an identifier (quotes doubled). */
static void put_ident(struct ru_buf *b, const char *name, size_t len)
{
    ru_buf_putc(b, '"');
    for (size_t i = 0; i < len; i++) {
        if (name[i] == '"')
            ru_buf_putc(b, '"');
        ru_buf_putc(b, name[i]);
    }
    ru_buf_putc(b, '"');
}

/* The same text PQescapeIdentifier gives (the configuration allows only
 * [A-Za-z_][A-Za-z0-9_$]* parts), without a connection: --print-schema has none. */
char *ru_sql_quote_path(const char *name, const char *suffix_table)
{
    struct ru_buf b = RU_BUF_INIT;
    const char *dot = strchr(name, '.');
    if (dot) {
        put_ident(&b, name, (size_t)(dot - name));
        ru_buf_putc(&b, '.');
    }
    const char *t = suffix_table ? suffix_table : (dot ? dot + 1 : name);
    put_ident(&b, t, strlen(t));
    return b.p;
}

void ru_sql_names_deinit(struct ru_sql_names *n)
{
    free(n->hourly);
    free(n->state);
    free(n->ckpt);
    free(n->raw);
    memset(n, 0, sizeof(*n));
}

void ru_sql_names_init(struct ru_sql_names *n, const char *hourly, const char *raw)
{
    ru_sql_names_deinit(n);
    n->hourly = ru_sql_quote_path(hourly, NULL);
    n->state = ru_sql_quote_path(hourly, "rollupd_rowstate");
    n->ckpt = ru_sql_quote_path(hourly, "rollupd_checkpoint");
    n->raw = raw[0] ? ru_sql_quote_path(raw, NULL) : NULL;
    const char *base = strchr(hourly, '.');
    n->genonaut_names = strcmp(base ? base + 1 : hourly, "route_analytics_hourly") == 0;
}

/* ---- column lists ---- */

enum list {
    LIST_NAMES,
    LIST_STAGED,
    LIST_REQUIRED,
    LIST_STAGED_TYPES,
    LIST_STATE,
    LIST_STATE_TYPES,
    LIST_RAW
};

/* Appends a comma-separated list of column names (or names and types); first: no comma
 * before the first item. */
static void put_list(struct ru_buf *o, enum list which, bool first)
{
    size_t n = which == LIST_STATE || which == LIST_STATE_TYPES ? RU_ROWCOUNTS_N
               : which == LIST_RAW                              ? RU_ARRAY_LEN(raw_cols)
                                                                : ru_sql_hourly_ncols;
    for (size_t i = 0; i < n; i++) {
        const struct ru_sql_hourly_col *c = &ru_sql_hourly_cols[i < ru_sql_hourly_ncols ? i : 0];
        if (which == LIST_REQUIRED && !c->required)
            continue;
        if (!first)
            ru_buf_puts(o, ", ");
        first = false;
        switch (which) {
        case LIST_NAMES:
        case LIST_REQUIRED:
            ru_buf_puts(o, c->name);
            break;
        case LIST_STAGED:
            ru_buf_puts(o, c->staged);
            break;
        case LIST_STAGED_TYPES:
            ru_buf_printf(o, "%s %s", c->staged, c->is_float ? "float8" : "int8");
            break;
        case LIST_STATE:
            ru_buf_puts(o, ru_sql_rowcounts[i].name);
            break;
        case LIST_STATE_TYPES:
            ru_buf_printf(o, "%s bigint NOT NULL", ru_sql_rowcounts[i].name);
            break;
        case LIST_RAW:
            ru_buf_puts(o, raw_cols[i].name);
            break;
        }
    }
}

void ru_sql_put_hourly(struct ru_buf *o, const struct ru_hourly_vals *v)
{
    const char *base = (const char *)v;
    for (size_t i = 0; i < ru_sql_hourly_ncols; i++) {
        const struct ru_sql_hourly_col *c = &ru_sql_hourly_cols[i];
        ru_buf_putc(o, '\t');
        bool present = true;
        if (c->present)
            memcpy(&present, base + c->present, sizeof(present));
        if (!present) {
            ru_buf_append(o, "\\N", 2);
        } else if (c->is_float) {
            double d;
            memcpy(&d, base + c->value, sizeof(d));
            char num[32];
            ru_buf_append(o, num, ru_pgnum_format_float8(d, num));
        } else {
            int64_t x;
            memcpy(&x, base + c->value, sizeof(x));
            ru_buf_put_i64(o, x);
        }
    }
}

/* ---- statements ---- */

/* An insert of one key with zero counters: key_vals for the key, created for created_at. */
static char *insert_key(const char *prefix, const char *table, const char *key_vals,
                        const char *created)
{
    struct ru_buf b = RU_BUF_INIT;
    ru_buf_printf(&b, "%sINSERT INTO %s (" HOURLY_KEY ", ", prefix, table);
    put_list(&b, LIST_REQUIRED, true);
    ru_buf_printf(&b, ", created_at) VALUES (%s", key_vals);
    for (size_t i = 0; i < ru_sql_hourly_ncols; i++)
        if (ru_sql_hourly_cols[i].required)
            ru_buf_puts(&b, ", 0");
    ru_buf_printf(&b, ", %s) ON CONFLICT (" HOURLY_KEY ") DO NOTHING", created);
    return b.p;
}

void ru_sql_flush_deinit(struct ru_sql_flush *f)
{
    char **all[] = {&f->staging, &f->lock,       &f->states,   &f->chunks, &f->insert,   &f->update,
                    &f->fold,    &f->copy_state, &f->copy_raw, &f->probe,  &f->key_check};
    for (size_t i = 0; i < RU_ARRAY_LEN(all); i++) {
        free(*all[i]);
        *all[i] = NULL;
    }
}

void ru_sql_flush_init(struct ru_sql_flush *f, const struct ru_sql_names *n)
{
    ru_sql_flush_deinit(f);
    struct ru_buf b = RU_BUF_INIT;
    ru_buf_puts(&b, "CREATE TEMP TABLE ru_keys (k int4, ts timestamp, route text, method text,"
                    " params jsonb) ON COMMIT DELETE ROWS;"
                    " CREATE TEMP TABLE ru_new (k int4, ts timestamp, route text, method text,"
                    " params jsonb, ");
    put_list(&b, LIST_STAGED_TYPES, true);
    ru_buf_puts(&b, ") ON COMMIT DELETE ROWS; CREATE TEMP TABLE ru_vals (id int8, ");
    put_list(&b, LIST_STAGED_TYPES, true);
    ru_buf_puts(&b, ") ON COMMIT DELETE ROWS");
    f->staging = b.p;

    /* 1. find and lock the touched rows in key order (the staged order): one index probe
     * per key, whatever the size of the table. Their state is read by the next statement,
     * whose snapshot is taken once the locks are held. */
    b = (struct ru_buf)RU_BUF_INIT;
    ru_buf_printf(&b,
                  "SELECT s.k, h.id FROM ru_keys s CROSS JOIN LATERAL (SELECT id FROM %s h"
                  " WHERE h.\"timestamp\" = s.ts AND h.route = s.route AND h.method = s.method"
                  " AND h.query_params_normalized = s.params FOR UPDATE) h ORDER BY s.k",
                  n->hourly);
    f->lock = b.p;
    /* rollupd_rowstate keeps one row per (hourly row, version): the counters as of that
     * version and a chunk (what the version added to the histogram and the user set, or
     * with seq = base_seq all of it). The newest version of an hourly row is its state. */
    b = (struct ru_buf)RU_BUF_INIT;
    ru_buf_puts(&b, "SELECT q.i, t.seq, t.base_seq, ");
    put_list(&b, LIST_STATE, true);
    ru_buf_printf(&b,
                  " FROM unnest($1::int8[]) WITH ORDINALITY AS q(id, i) CROSS JOIN LATERAL"
                  " (SELECT * FROM %s t WHERE t.hourly_id = q.id ORDER BY t.seq DESC LIMIT 1) t",
                  n->state);
    f->states = b.p;
    b = (struct ru_buf)RU_BUF_INIT;
    ru_buf_printf(&b,
                  "SELECT c.hourly_id, c.seq, c.seq = c.base_seq, c.data"
                  " FROM unnest($1::int8[], $2::int8[]) AS q(id, after) CROSS JOIN LATERAL"
                  " (SELECT * FROM %s c WHERE c.hourly_id = q.id AND c.seq > q.after OFFSET 0) c"
                  " ORDER BY 1, 2",
                  n->state);
    f->chunks = b.p;
    /* 2. new rows are written once, with their final values; the join maps each back to
     * its staged key (a key another writer inserted meanwhile is missing: retried) */
    b = (struct ru_buf)RU_BUF_INIT;
    ru_buf_printf(&b, "WITH ins AS (INSERT INTO %s (" HOURLY_KEY ", ", n->hourly);
    put_list(&b, LIST_NAMES, true);
    ru_buf_puts(&b, ", created_at) SELECT ts, route, method, params, ");
    put_list(&b, LIST_STAGED, true);
    ru_buf_puts(&b, ", now() AT TIME ZONE 'UTC' FROM ru_new ORDER BY k ON CONFLICT (" HOURLY_KEY
                    ") DO NOTHING RETURNING id, " HOURLY_KEY ")"
                    " SELECT n.k, ins.id FROM ins JOIN ru_new n ON n.ts = ins.\"timestamp\""
                    " AND n.route = ins.route AND n.method = ins.method"
                    " AND n.params = ins.query_params_normalized");
    f->insert = b.p;
    /* 3. rows that existed get their new values: a nested loop over the staged rows keeps
     * it one index probe per row */
    b = (struct ru_buf)RU_BUF_INIT;
    ru_buf_printf(&b,
                  "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off;\n"
                  "UPDATE %s h SET (",
                  n->hourly);
    put_list(&b, LIST_NAMES, true);
    ru_buf_puts(&b, ") = (");
    put_list(&b, LIST_STAGED, true);
    ru_buf_puts(&b, ") FROM ru_vals v WHERE h.id = v.id;\n"
                    "SET LOCAL enable_hashjoin = on; SET LOCAL enable_mergejoin = on;\n");
    f->update = b.p;
    /* a row folded into one base version loses its older versions */
    b = (struct ru_buf)RU_BUF_INIT;
    ru_buf_printf(&b, "DELETE FROM %s WHERE hourly_id = ANY($1::int8[])", n->state);
    f->fold = b.p;
    b = (struct ru_buf)RU_BUF_INIT;
    ru_buf_printf(&b, "COPY %s (hourly_id, seq, base_seq, ", n->state);
    put_list(&b, LIST_STATE, true);
    ru_buf_puts(&b, ", data) FROM STDIN (FORMAT binary)");
    f->copy_state = b.p;
    if (n->raw) {
        b = (struct ru_buf)RU_BUF_INIT;
        ru_buf_printf(&b, "COPY %s (", n->raw);
        put_list(&b, LIST_RAW, true);
        ru_buf_puts(&b, ") FROM STDIN");
        f->copy_raw = b.p;
    }
    f->probe =
        insert_key("", n->hourly, "$1::timestamp, $2, $3, $4::jsonb", "now() AT TIME ZONE 'UTC'");
    f->key_check = insert_key("EXPLAIN ", n->hourly, "now(), '', '', '{}'", "now()");
}

/* ---- the schema ---- */

static const struct {
    const char *name, *cols;
} genonaut_indexes[] = {
    {"idx_route_metrics_duration", "(avg_duration_ms DESC)"},
    {"idx_route_metrics_route_time", "(route, \"timestamp\" DESC)"},
    {"idx_route_metrics_timestamp", "(\"timestamp\" DESC)"},
    {"idx_route_metrics_total_requests", "(total_requests DESC)"},
    {"ix_route_analytics_hourly_timestamp", "(\"timestamp\")"},
};

static size_t add_obj(struct ru_sql_obj *o, size_t n, enum ru_sql_obj_kind kind, const char *table,
                      const char *name, struct ru_buf *ddl)
{
    o[n] = (struct ru_sql_obj){kind, table, name, kind == RU_SQL_INDEX, ddl->p};
    *ddl = (struct ru_buf)RU_BUF_INIT;
    return n + 1;
}

size_t ru_sql_objs(const struct ru_sql_names *n, struct ru_sql_obj *o)
{
    size_t k = 0;
    struct ru_buf b = RU_BUF_INIT;
    /* genonaut's definition of the hourly table */
    ru_buf_printf(&b,
                  "CREATE TABLE IF NOT EXISTS %s ("
                  " id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
                  " \"timestamp\" timestamp without time zone NOT NULL,"
                  " route text NOT NULL, method varchar(10) NOT NULL,"
                  " query_params_normalized jsonb,",
                  n->hourly);
    for (size_t i = 0; i < ru_sql_hourly_ncols; i++)
        ru_buf_printf(&b, " %s %s,", ru_sql_hourly_cols[i].name, ru_sql_hourly_cols[i].type);
    ru_buf_printf(&b,
                  " created_at timestamp without time zone NOT NULL,"
                  " CONSTRAINT %s UNIQUE (" HOURLY_KEY "));",
                  n->genonaut_names ? "uq_route_analytics_hourly_time_route_params"
                                    : "rollupd_hourly_key");
    k = add_obj(o, k, RU_SQL_TABLE, n->hourly, NULL, &b);
    for (size_t i = 0; n->genonaut_names && i < RU_ARRAY_LEN(genonaut_indexes); i++) {
        ru_buf_printf(&b, "CREATE INDEX IF NOT EXISTS %s ON %s %s;", genonaut_indexes[i].name,
                      n->hourly, genonaut_indexes[i].cols);
        k = add_obj(o, k, RU_SQL_INDEX, n->hourly, genonaut_indexes[i].name, &b);
    }
    if (n->raw) {
        ru_buf_printf(&b,
                      "CREATE TABLE IF NOT EXISTS %s ("
                      " id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                      n->raw);
        for (size_t i = 0; i < RU_ARRAY_LEN(raw_cols); i++)
            ru_buf_printf(&b, ", %s %s", raw_cols[i].name, raw_cols[i].type);
        ru_buf_puts(&b, ");");
        k = add_obj(o, k, RU_SQL_TABLE, n->raw, NULL, &b);
    }
    /* chunks are compact already: never spend CPU compressing them */
    ru_buf_printf(&b,
                  "CREATE TABLE IF NOT EXISTS %s (hourly_id bigint NOT NULL,"
                  " seq bigint NOT NULL, base_seq bigint NOT NULL, ",
                  n->state);
    put_list(&b, LIST_STATE_TYPES, true);
    ru_buf_printf(&b,
                  ", data bytea NOT NULL, PRIMARY KEY (hourly_id, seq));\n"
                  "ALTER TABLE %s ALTER COLUMN data SET STORAGE EXTERNAL;",
                  n->state);
    k = add_obj(o, k, RU_SQL_TABLE, n->state, NULL, &b);
    ru_buf_printf(&b,
                  "CREATE TABLE IF NOT EXISTS %s (stream text NOT NULL, grp text NOT NULL,"
                  " consumer text NOT NULL, last_id text NOT NULL, events bigint NOT NULL,"
                  " updated_at timestamptz NOT NULL, PRIMARY KEY (stream, grp, consumer));",
                  n->ckpt);
    k = add_obj(o, k, RU_SQL_TABLE, n->ckpt, NULL, &b);
    /* added by later builds */
    ru_buf_printf(&b,
                  "ALTER TABLE %s ADD COLUMN IF NOT EXISTS lone boolean NOT NULL"
                  " DEFAULT false;",
                  n->ckpt);
    k = add_obj(o, k, RU_SQL_COLUMN, n->ckpt, "lone", &b);
    ru_buf_printf(&b, "ALTER TABLE %s ADD COLUMN IF NOT EXISTS dead_pos text;", n->ckpt);
    k = add_obj(o, k, RU_SQL_COLUMN, n->ckpt, "dead_pos", &b);
    return k;
}

void ru_sql_objs_free(struct ru_sql_obj *o, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(o[i].ddl);
}

void ru_sql_obj_describe(const struct ru_sql_obj *o, char *out, size_t len)
{
    if (o->kind == RU_SQL_TABLE)
        snprintf(out, len, "table %s", o->table);
    else
        snprintf(out, len, "%s \"%s\" of table %s", o->kind == RU_SQL_INDEX ? "index" : "column",
                 o->name, o->table);
}

void ru_sql_schema(const char *hourly_table, const char *raw_table, struct ru_buf *out)
{
    struct ru_sql_names n = {0};
    ru_sql_names_init(&n, hourly_table, raw_table);
    struct ru_sql_obj objs[RU_SQL_MAX_OBJS];
    size_t k = ru_sql_objs(&n, objs);
    ru_buf_puts(out, "-- rollupd's schema for hourly_table = ");
    ru_buf_puts(out, hourly_table);
    if (n.raw)
        ru_buf_printf(out, ", raw_table = %s", raw_table);
    ru_buf_puts(out,
                " (rollupd --print-schema).\n-- Run it as the schema's owner; rollupd's own role"
                " then needs only the grants in the README (Least privilege).\n"
                "BEGIN;\n");
    for (size_t i = 0; i < k; i++) {
        if (objs[i].optional && (i == 0 || !objs[i - 1].optional))
            ru_buf_puts(out, "-- genonaut's indexes (rollupd does not need them)\n");
        ru_buf_printf(out, "%s\n", objs[i].ddl);
    }
    ru_buf_puts(out, "COMMIT;\n");
    ru_sql_objs_free(objs, k);
    ru_sql_names_deinit(&n);
}
