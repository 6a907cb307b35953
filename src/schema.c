#include "rollupd/schema.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollupd/pgerr.h"
#include "rollupd/writer.h"

void ru_pgw_schema_sql(const struct ru_config *cfg, struct ru_buf *out)
{
    ru_sql_schema(cfg->postgres.hourly_table, cfg->postgres.raw_table, out);
}

/* 1 when o exists, 0 when it is missing, -1 on an error. */
static int obj_exists(struct ru_pgw *w, const struct ru_sql_obj *o)
{
    static const char sql[] =
        "SELECT CASE $3 WHEN 't' THEN to_regclass($1) IS NOT NULL"
        " WHEN 'i' THEN EXISTS (SELECT 1 FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
        " WHERE x.indrelid = to_regclass($1) AND i.relname = $2)"
        " ELSE EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1)"
        " AND attname = $2 AND attnum > 0 AND NOT attisdropped) END";
    const char *params[3] = {o->table, o->name ? o->name : "",
                             o->kind == RU_SQL_TABLE   ? "t"
                             : o->kind == RU_SQL_INDEX ? "i"
                                                       : "c"};
    PGresult *r = PQexecParams(w->conn, sql, 3, NULL, params, NULL, NULL, 0);
    int rc = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        rc = PQgetvalue(r, 0, 0)[0] == 't';
    else
        ru_writer_pg_error(w, "checking the schema", r);
    PQclear(r);
    return rc;
}

/* The role rollupd runs as, the schema its tables are in, and the database. */
struct pg_who {
    char role[64], schema[64], db[64];
};

static void who_am_i(struct ru_pgw *w, struct pg_who *who)
{
    PGresult *r = PQexec(w->conn, "SELECT current_user, coalesce(current_schema(), '(none)'),"
                                  " current_database()");
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    ru_strlcpy(who->role, ok ? PQgetvalue(r, 0, 0) : "?", sizeof(who->role));
    ru_strlcpy(who->schema, ok ? PQgetvalue(r, 0, 1) : "?", sizeof(who->schema));
    ru_strlcpy(who->db, ok ? PQgetvalue(r, 0, 2) : "?", sizeof(who->db));
    PQclear(r);
    const char *dot = strchr(w->hourly_cfg, '.');
    if (dot)
        snprintf(who->schema, sizeof(who->schema), "%.*s", (int)(dot - w->hourly_cfg),
                 w->hourly_cfg);
}

/* A set-up failure that only a DBA or an operator can fix (a missing table or privilege):
 * retried slowly (see writer_main). */
static void schema_error(struct ru_pgw *w, const char *fmt, ...) RU_PRINTF(2, 3);
static void schema_error(struct ru_pgw *w, const char *fmt, ...)
{
    char msg[sizeof(w->stats.last_error)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ru_writer_error(w, msg, NULL);
    w->setup_blocked = true;
}

/* Creates o inside the set-up transaction; optional objects the role may not create are
 * left out with a notice. */
static int create_obj(struct ru_pgw *w, const struct ru_sql_obj *o, const struct pg_who *who)
{
    char what[200];
    ru_sql_obj_describe(o, what, sizeof(what));
    PQclear(PQexec(w->conn, "SAVEPOINT ru_obj"));
    PGresult *r = PQexec(w->conn, o->ddl);
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
        PQclear(r);
        ru_notice("msg=\"created %s\"", what);
        return 0;
    }
    PQclear(PQexec(w->conn, "ROLLBACK TO SAVEPOINT ru_obj"));
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    bool denied = ru_pgerr_denied(st);
    const char *primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    char pgmsg[200];
    ru_strlcpy(pgmsg, primary ? primary : "?", sizeof(pgmsg));
    PQclear(r);
    if (denied && o->optional) {
        ru_notice("msg=\"%s is missing and role %s may not create it (%s); rollupd works "
                  "without it\"",
                  what, who->role, pgmsg);
        return 0;
    }
    if (!denied) {
        ru_writer_error(w, "creating the schema", pgmsg);
        return -1;
    }
    schema_error(w,
                 "%s is missing and role %s may not create it: it lacks %s%s (PostgreSQL: %s). "
                 "Have the owner apply the DDL printed by 'rollupd -c %s --print-schema', then "
                 "set postgres.create_schema = false (README: Least privilege)",
                 what, who->role,
                 o->kind == RU_SQL_TABLE ? "CREATE on schema " : "ownership of table ",
                 o->kind == RU_SQL_TABLE ? who->schema : o->table, pgmsg, w->cfg_path);
    return -1;
}

/* Creates what is missing, or with postgres.create_schema off names it. */
static int ensure_objects(struct ru_pgw *w, const struct pg_who *who)
{
    struct ru_sql_obj objs[RU_SQL_MAX_OBJS];
    size_t n = ru_sql_objs(&w->n, objs);
    bool missing[RU_SQL_MAX_OBJS];
    struct ru_buf list = RU_BUF_INIT;
    int rc = 0;
    size_t nmissing = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        int e = obj_exists(w, &objs[i]);
        missing[i] = e == 0;
        if (e < 0)
            rc = -1;
        else if (e == 0 && !objs[i].optional) {
            char what[200];
            ru_sql_obj_describe(&objs[i], what, sizeof(what));
            ru_buf_printf(&list, "%s%s", nmissing++ ? ", " : "", what);
        }
    }
    if (rc == 0 && nmissing > 0 && !w->create_schema) {
        schema_error(w,
                     "%s missing and postgres.create_schema is off: have the schema's owner "
                     "apply the DDL printed by 'rollupd -c %s --print-schema'",
                     list.p, w->cfg_path);
        rc = -1;
    }
    if (rc == 0 && w->create_schema) {
        /* one creator at a time; each object looked at again under the lock */
        char lock[64];
        snprintf(lock, sizeof(lock), "BEGIN; SELECT pg_advisory_xact_lock(%d)",
                 RU_WRITER_SCHEMA_LOCK);
        bool open = false;
        for (size_t i = 0; i < n && rc == 0; i++) {
            if (!missing[i])
                continue;
            if (!open && (rc = ru_writer_exec(w, lock, "creating the schema")) < 0)
                break;
            open = true;
            int e = obj_exists(w, &objs[i]);
            rc = e < 0 ? -1 : e == 0 ? create_obj(w, &objs[i], who) : 0;
        }
        if (open && rc == 0)
            rc = ru_writer_exec(w, "COMMIT", "creating the schema");
        if (open && rc < 0)
            PQclear(PQexec(w->conn, "ROLLBACK"));
    }
    ru_buf_free(&list);
    ru_sql_objs_free(objs, n);
    return rc;
}

/* What the flush needs on each table, as has_table_privilege names it. */
static int check_grants(struct ru_pgw *w, const struct pg_who *who)
{
    const struct {
        const char *table, *privs;
    } need[] = {
        {w->n.hourly, "SELECT, INSERT, UPDATE"},
        {w->n.state, "SELECT, INSERT, DELETE"},
        {w->n.ckpt, "SELECT, INSERT, UPDATE"},
        {w->n.raw, "INSERT"},
    };
    struct ru_buf lacks = RU_BUF_INIT, grants = RU_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; i < RU_ARRAY_LEN(need) && rc == 0; i++) {
        if (need[i].table == NULL)
            continue;
        /* a serial (not identity) id also needs USAGE on its sequence */
        const char *params[2] = {need[i].table, need[i].privs};
        PGresult *r = PQexecParams(
            w->conn,
            "SELECT (SELECT string_agg(p, ', ') FROM unnest(string_to_array($2, ', ')) p"
            " WHERE NOT has_table_privilege(to_regclass($1), p)),"
            " (SELECT s FROM pg_attribute a, pg_get_serial_sequence($1, 'id') s"
            " WHERE a.attrelid = to_regclass($1) AND a.attname = 'id' AND a.attidentity = ''"
            " AND s IS NOT NULL AND NOT has_sequence_privilege(s, 'USAGE'))",
            2, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
            ru_writer_pg_error(w, "checking privileges", r);
            rc = -1;
        } else {
            if (!PQgetisnull(r, 0, 0)) {
                ru_buf_printf(&lacks, "%s%s on %s", lacks.len ? "; " : "", PQgetvalue(r, 0, 0),
                              need[i].table);
                ru_buf_printf(&grants, " GRANT %s ON %s TO %s;", need[i].privs, need[i].table,
                              who->role);
            }
            if (!PQgetisnull(r, 0, 1)) {
                ru_buf_printf(&lacks, "%sUSAGE on sequence %s", lacks.len ? "; " : "",
                              PQgetvalue(r, 0, 1));
                ru_buf_printf(&grants, " GRANT USAGE ON SEQUENCE %s TO %s;", PQgetvalue(r, 0, 1),
                              who->role);
            }
        }
        PQclear(r);
    }
    /* the flush stages its rows in temporary tables */
    PGresult *r = rc == 0 ? PQexec(w->conn, "SELECT has_database_privilege(current_database(),"
                                            " 'TEMPORARY')")
                          : NULL;
    if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQgetvalue(r, 0, 0)[0] == 'f') {
        ru_buf_printf(&lacks,
                      "%sTEMPORARY on database %s (each flush stages its rows in "
                      "temporary tables)",
                      lacks.len ? "; " : "", who->db);
        ru_buf_printf(&grants, " GRANT TEMPORARY ON DATABASE %s TO %s;", who->db, who->role);
    }
    PQclear(r);
    if (rc == 0 && lacks.len > 0) {
        schema_error(w, "role %s lacks %s; as the owner run:%s (README: Least privilege)",
                     who->role, lacks.p, grants.p);
        rc = -1;
    }
    ru_buf_free(&lacks);
    ru_buf_free(&grants);
    return rc;
}

int ru_schema_setup(struct ru_pgw *w)
{
    struct pg_who who;
    who_am_i(w, &who);
    if (ensure_objects(w, &who) < 0)
        return -1;
    /* An earlier build kept row state in rollupd_hist and rollupd_users; its rows would
     * restart from nothing here, losing the events already acknowledged. Refuse (data
     * waits in Redis) until an operator has let that build finish its hours or dropped
     * the tables. */
    char *old = ru_sql_quote_path(w->hourly_cfg, "rollupd_hist");
    const char *oldp[1] = {old};
    PGresult *r =
        PQexecParams(w->conn, "SELECT to_regclass($1) IS NOT NULL", 1, NULL, oldp, NULL, NULL, 0);
    bool stale_tables = PQresultStatus(r) == PGRES_TUPLES_OK && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (stale_tables) {
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "%.80s from an earlier rollupd build exists; its rows cannot be carried over"
                 " (README: Upgrading)",
                 old);
        free(old);
        ru_writer_error(w, "checking the schema", msg);
        w->setup_blocked = true;
        return -1;
    }
    free(old);
    if (check_grants(w, &who) < 0)
        return -1;
    /* refuse early if the hourly table lacks genonaut's unique key */
    return ru_writer_exec(w, w->sql.key_check, "checking the hourly table's unique key");
}
