/* sql: every SQL text the PostgreSQL writer sends for its tables, made from one table of
 * the hourly table's columns (and one of the row-state counters), so that the DDL, the
 * staging tables, the value lists, the COPY rows and the probes cannot drift apart. Pure:
 * no connection, so rollupd --print-schema and the unit tests see the same texts as a
 * running writer.
 *
 * The tables: the hourly table (genonaut's route_analytics_hourly, or the configured
 * name), the optional raw table (genonaut's route_analytics), and rollupd's own
 * rollupd_rowstate and rollupd_checkpoint in the hourly table's schema. */
#ifndef ROLLUPD_SQL_H
#define ROLLUPD_SQL_H

#include <stdbool.h>
#include <stddef.h>

#include "rollupd/rowstate.h"
#include "rollupd/util.h"

/* The quoted names of the tables, maybe schema-qualified (malloc'd). */
struct ru_sql_names {
    char *hourly, *state, *ckpt;
    char *raw;           /* NULL: no raw table */
    bool genonaut_names; /* create genonaut's index names (the default table name) */
};
/* For the configured hourly and raw tables ("" = none). Frees what n held before. */
void ru_sql_names_init(struct ru_sql_names *n, const char *hourly, const char *raw);
void ru_sql_names_deinit(struct ru_sql_names *n);

/* "schema.table" -> "schema"."table"; with suffix_table, the same schema and that table
 * name instead (malloc'd). */
char *ru_sql_quote_path(const char *name, const char *suffix_table);

/* One value column of the hourly table: everything but its key, id and created_at. */
struct ru_sql_hourly_col {
    const char *name;   /* in the hourly table */
    const char *staged; /* in the staging tables ru_new and ru_vals */
    const char *type;   /* in the hourly table's DDL, NOT NULL included */
    bool required;      /* NOT NULL: a probe's row writes 0 */
    bool is_float;      /* double precision (staged float8), else integer (staged int8) */
    size_t value;       /* offset of its value in struct ru_hourly_vals (int64_t or double) */
    size_t present;     /* offset of the bool saying it is not NULL; 0: never NULL */
};
extern const struct ru_sql_hourly_col ru_sql_hourly_cols[];
extern const size_t ru_sql_hourly_ncols;

/* Appends the hourly row's values in the columns' order, each after a tab, in COPY text
 * format (the staged rows of ru_new and ru_vals). */
void ru_sql_put_hourly(struct ru_buf *o, const struct ru_hourly_vals *v);

/* The statements of a flush and of the writer's session, for one set of names. */
struct ru_sql_flush {
    char *staging;    /* creates the session's temporary tables ru_keys, ru_new, ru_vals */
    char *lock;       /* finds and locks the touched rows in key order */
    char *states;     /* the newest stored version of each row ($1: ids) */
    char *chunks;     /* the chunks after a version ($1: ids, $2: versions) */
    char *insert;     /* inserts ru_new, returns (k, id) */
    char *update;     /* updates from ru_vals */
    char *fold;       /* deletes every version of rows ($1: ids) folded into one base */
    char *copy_state; /* COPY binary of the next versions */
    char *copy_raw;   /* COPY text of raw rows (NULL: no raw table) */
    char *probe;      /* inserts one key ($1 timestamp, $2 route, $3 method, $4 params)
                       * with zero counters, ON CONFLICT DO NOTHING */
    char *key_check;  /* EXPLAIN of such an insert: fails without the unique key */
};
void ru_sql_flush_init(struct ru_sql_flush *f, const struct ru_sql_names *n);
void ru_sql_flush_deinit(struct ru_sql_flush *f);

/* The counters of a rollupd_rowstate row, in its column order (ru_rowcounts' order). */
struct ru_sql_rowcount {
    const char *name;
    size_t offset; /* of its int64_t in struct ru_rowcounts */
};
extern const struct ru_sql_rowcount ru_sql_rowcounts[RU_ROWCOUNTS_N];

/* Everything rollupd would create, one object each: a table (with its keys), an index or
 * a column. Set-up creates only the objects that are missing, so a role that may only
 * read and write existing tables runs rollupd once they are there; --print-schema
 * prints the same statements for whoever owns the schema. */
enum ru_sql_obj_kind { RU_SQL_TABLE, RU_SQL_INDEX, RU_SQL_COLUMN };

struct ru_sql_obj {
    enum ru_sql_obj_kind kind;
    const char *table; /* quoted: the table, or the one the index or column belongs to */
    const char *name;  /* the index's or column's name (NULL for a table) */
    bool optional;     /* genonaut's own indexes: rollupd works without them */
    char *ddl;
};

#define RU_SQL_MAX_OBJS 12

/* Fills o (RU_SQL_MAX_OBJS entries) and returns how many; free with ru_sql_objs_free.
 * The names are borrowed from n. */
size_t ru_sql_objs(const struct ru_sql_names *n, struct ru_sql_obj *o);
void ru_sql_objs_free(struct ru_sql_obj *o, size_t n);
/* "table X", "index "Y" of table X", "column "Z" of table X" */
void ru_sql_obj_describe(const struct ru_sql_obj *o, char *out, size_t len);

/* Appends the DDL of every object for these tables as one transaction (--print-schema). */
void ru_sql_schema(const char *hourly_table, const char *raw_table, struct ru_buf *out);

#endif
