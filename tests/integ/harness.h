/* harness: helpers for rollupd's Criterion integration tests (tests/integ/test_*.c).
 *
 * The servers come from scripts/testenv; CTest passes RU_TESTENV (path of DIR/env),
 * RU_BUILD_DIR (where rollupd and rollupd-loadgen are) and RU_SOURCE_DIR. Every helper
 * that can fail asserts with cr_assert_fail (the test stops with a message), unless its
 * comment says it returns an error instead. Criterion runs each test in its own process,
 * so the globals here are per test. */
#ifndef ROLLUPD_TESTS_HARNESS_H
#define ROLLUPD_TESTS_HARNESS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "rollupd/util.h"

#define RU_H_DIR    256 /* directories from the environment */
#define RU_H_SUBDIR 384 /* a directory below one of those */
#define RU_H_PATH   512 /* a file path */

/* ------------------------------------------------------------------ failing */

/* Bytes of each daemon log quoted in a failure message. */
#define RU_H_LOG_TAIL 4000

/* Fails the test with "file:line: " and the message, then, for every rollupd this test
 * process started (ru_h_daemon_start, _spawn, _restart), its pid, whether it runs, its
 * status answer and the tail of its log without the "postgres notice" lines. */
void ru_h_fail(const char *file, int line, const char *fmt, ...) RU_PRINTF(3, 4)
    __attribute__((noreturn));

/* The one check of the integration tests: fails through ru_h_fail when cond is false. */
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ru_h_fail(__FILE__, __LINE__, __VA_ARGS__);                                            \
    } while (0)
#define FAIL(...) ru_h_fail(__FILE__, __LINE__, __VA_ARGS__)

/* ------------------------------------------------------------------ environment */

struct ru_h_env {
    bool loaded;
    char redis_host[64];
    int redis_port;
    char pg_host[64];
    int pg_port;
    char pg_db[64];
    char pg_user[64];
    char testenv_dir[RU_H_DIR];   /* RU_TESTENV_DIR */
    char redis_pidfile[RU_H_DIR]; /* RU_REDIS_PIDFILE */
    char pg_data[RU_H_DIR];       /* RU_PG_DATA */
    char env_file[RU_H_DIR];      /* $RU_TESTENV */
    char build_dir[RU_H_DIR];     /* $RU_BUILD_DIR, else the test binary's directory */
    char source_dir[RU_H_DIR];    /* $RU_SOURCE_DIR, may be empty */
};
extern struct ru_h_env ru_h_env;

/* Reads $RU_TESTENV into ru_h_env (once per process; later calls do nothing). Fails the
 * test when the variable or the file is missing or incomplete. Every other helper calls it. */
void ru_h_env_load(void);

/* ------------------------------------------------------------------ unique names */

/* Next value of a per-process counter (starts at 1). */
int ru_h_next_id(void);

/* A fresh namespace for one test: stream "t:<pid>:<n>:stream", group "t:<pid>:<n>:group",
 * dbname "t_<pid>_<n>" (each buffer n bytes; group and dbname may be NULL). Skips n whose
 * stream key already exists. The dbname is only a name: ru_h_fresh_db creates databases. */
void ru_h_names(char *stream, char *group, char *dbname, size_t n);

/* Creates a new empty database t_<pid>_<n> and writes its conninfo
 * "host=127.0.0.1 port=P dbname=t_<pid>_<n> user=postgres" into out. */
void ru_h_fresh_db(char *out_conninfo, size_t n);

/* A whole file, NUL-terminated (malloc'd); asserts that it can be read. */
char *ru_h_read_file(const char *path);

/* A whole file, NUL-terminated (malloc'd); "" when it cannot be read. */
char *ru_h_file_text(const char *path);

/* A path for a file of this test: RU_TESTENV_DIR/run/<pid>-<n>-<suffix> (not created). */
void ru_h_tmp_path(char *out, size_t n, const char *suffix);

/* A fresh Unix socket path (at most 107 bytes): under RU_TESTENV_DIR/run, or under /tmp
 * when that would be too long. */
void ru_h_sock_path(char *out, size_t n);

/* ------------------------------------------------------------------ Redis */

/* A connection to the test redis-server (asserts). Free with redisFree. */
redisContext *ru_h_redis(void);

/* Runs a command (hiredis format). Asserts that the connection worked; an error reply is
 * returned like any other reply. Free with freeReplyObject. */
redisReply *ru_h_redis_cmd(redisContext *c, const char *fmt, ...);

/* Runs a command whose reply must be an integer (asserts), e.g. "XLEN %s". */
long long ru_h_redis_int(redisContext *c, const char *fmt, ...);

/* Cuts the connections of every rollupd reading stream in group (found by the name each
 * gives its connection, CLIENT LIST, then CLIENT KILL ID), and no other client: the test
 * redis-server is shared by tests running at the same time. Returns how many were cut. */
int ru_h_redis_kill_readers(redisContext *c, const char *stream, const char *group);

/* XLEN of stream (0 when it does not exist). */
long long ru_h_xlen(redisContext *c, const char *stream);

/* Number of entries pending in group (XPENDING summary); 0 when nothing is pending. Asserts
 * that the group exists. */
long long ru_h_xpending(redisContext *c, const char *stream, const char *group);

/* One field of a stream entry: name and value with their lengths (NUL bytes allowed). A
 * list ends with an entry whose k is NULL. */
struct ru_h_kv {
    const char *k, *v;
    size_t klen, vlen;
};

/* XADD stream * with the fields of f (binary-safe); returns the new id (malloc'd). */
char *ru_h_xadd(redisContext *c, const char *stream, const struct ru_h_kv *f);

/* ------------------------------------------------------------------ PostgreSQL */

/* A connection to the rollupd_test database (asserts). Free with PQfinish. */
PGconn *ru_h_pg(void);

/* A connection with this conninfo, e.g. from ru_h_fresh_db (asserts). */
PGconn *ru_h_pg_connect(const char *conninfo);

/* Runs sql (may hold several statements); asserts success. */
void ru_h_pg_exec(PGconn *c, const char *sql);
void ru_h_pg_execf(PGconn *c, const char *fmt, ...) RU_PRINTF(2, 3);

/* Runs sql; returns 0 on success, -1 on failure with the server's message in err. */
int ru_h_pg_try_exec(PGconn *c, const char *sql, char *err, size_t errlen);

/* One row, one column, an integer (asserts: not NULL, an integer). */
long long ru_h_pg_int(PGconn *c, const char *sql);
long long ru_h_pg_intf(PGconn *c, const char *fmt, ...) RU_PRINTF(2, 3);
/* Sessions of c's database waiting for an advisory lock (rollupd waiting for its consumer's
 * or its group's lock). */
long long ru_h_pg_lock_waiters(PGconn *c);
/* Terminates the other sessions of c's database that hold granted advisory locks (a
 * running rollupd's; one that waits for a lock holds none); returns how many. */
long long ru_h_pg_terminate_lock_holders(PGconn *c);

/* One row, one column, as text (malloc'd, free it); NULL when the value is SQL NULL.
 * Asserts exactly one row and one column. */
char *ru_h_pg_text(PGconn *c, const char *sql);
char *ru_h_pg_textf(PGconn *c, const char *fmt, ...) RU_PRINTF(2, 3);

/* Creates genonaut's route_analytics_hourly and route_analytics tables (schema.sql,
 * with all their indexes) in c's database. */
void ru_h_genonaut_schema(PGconn *c);

/* ------------------------------------------------------------------ config and daemon */

/* Knobs for ru_h_config. Zero/NULL fields take the defaults shown. */
struct ru_h_cfg {
    const char *stream;         /* required */
    const char *group;          /* required */
    const char *consumer;       /* NULL = "c1" */
    const char *conninfo;       /* required */
    const char *socket;         /* NULL = a fresh ru_h_sock_path() */
    const char *redis_url;      /* NULL = redis://127.0.0.1:<port>/0 */
    const char *hourly_table;   /* NULL = key omitted (daemon default) */
    const char *raw_table;      /* NULL = key omitted (daemon default: off) */
    const char *start;          /* NULL = "0" */
    const char *log_level;      /* NULL = "debug" */
    int flush_interval_ms;      /* 0 = 200 */
    int count;                  /* 0 = key omitted */
    int block_ms;               /* 0 = 100 */
    long long claim_idle_ms;    /* 0 = key omitted */
    int max_events;             /* 0 = key omitted */
    int max_keys;               /* 0 = key omitted */
    int max_memory_mb;          /* 0 = key omitted */
    const char *metrics_listen; /* NULL = key omitted */
    /* Raw libconfig text appended inside a group (e.g. "statement_timeout_ms = 500;"). */
    const char *redis_extra;
    const char *postgres_extra;
    const char *flush_extra;
};

/* Builds a complete rollupd.conf text (malloc'd, free it). */
char *ru_h_config(const struct ru_h_cfg *cfg);

struct ru_h_daemon {
    pid_t pid;               /* 0 when not running */
    char dir[RU_H_SUBDIR];   /* RU_TESTENV_DIR/run/<pid>-<n> */
    char conf[RU_H_PATH];    /* dir/rollupd.conf */
    char log[RU_H_PATH];     /* dir/rollupd.log: the daemon's stdout and stderr */
    char pidfile[RU_H_PATH]; /* RU_TESTENV_DIR/pids/<pid>.pid */
    char sock[RU_H_PATH];    /* status.socket from the config text */
    int exit_status;         /* after ru_h_daemon_wait_exit */
    bool exited;
};

/* Writes config_text to a new run directory, starts $RU_BUILD_DIR/rollupd -c FILE (stdout
 * and stderr appended to d->log), records its pid under RU_TESTENV_DIR/pids/ and waits (20 s)
 * until its status socket answers "status". Asserts, showing the log, when it exits or
 * does not answer in time. d is initialised here. */
void ru_h_daemon_start(struct ru_h_daemon *d, const char *config_text);

/* Like ru_h_daemon_start without waiting for the socket (for start-up failures: follow
 * with ru_h_daemon_wait_exit). extra_args (NULL-terminated, may be NULL) go after -c FILE. */
void ru_h_daemon_spawn(struct ru_h_daemon *d, const char *config_text,
                       const char *const *extra_args);

/* ru_h_daemon_spawn with env ("K=V" entries, NULL-terminated) added to the daemon's
 * environment, e.g. NOTIFY_SOCKET, which the harness otherwise keeps from the child. */
void ru_h_daemon_spawn_env(struct ru_h_daemon *d, const char *config_text,
                           const char *const *extra_args, const char *const *env);

/* Starts $RU_BUILD_DIR/rollupd with no -c and no file of its own (d->conf stays empty), its
 * settings from env ("K=V" entries added to the inherited environment); sock is the status
 * socket env names (ROLLUPD_STATUS_SOCKET). Does not wait. */
void ru_h_daemon_spawn_noconf(struct ru_h_daemon *d, const char *sock, const char *const *env);

/* Waits until the status socket answers; false when the daemon exited or time ran out. */
bool ru_h_daemon_wait_ready(struct ru_h_daemon *d, int timeout_ms);

/* Starts the daemon again with the same config file and log (after it exited; asserts
 * that it is not running) and waits until it answers. */
void ru_h_daemon_restart(struct ru_h_daemon *d);

/* Replaces the config file's text (send SIGHUP yourself to reload). */
void ru_h_daemon_rewrite_config(struct ru_h_daemon *d, const char *config_text);

/* Sends sig to the daemon (no-op when it is not running). */
void ru_h_daemon_kill(struct ru_h_daemon *d, int sig);

/* Waits for the daemon to exit. Returns its exit code (0..255), 128 + N when signal N
 * killed it, or -1 when it is still running at the deadline. Removes its pid file. */
int ru_h_daemon_wait_exit(struct ru_h_daemon *d, int timeout_ms);

/* SIGTERM, wait up to 30 s, then SIGKILL. Returns the exit status as above (the SIGKILL
 * case returns 128 + 9). No-op (returns the old status) when it is not running. */
int ru_h_daemon_stop(struct ru_h_daemon *d);

/* True while the daemon process runs (reaps it when it has exited). */
bool ru_h_daemon_running(struct ru_h_daemon *d);

/* The log so far (malloc'd, free it; "" when empty). */
char *ru_h_daemon_log(const struct ru_h_daemon *d);

/* The log so far without its "postgres notice" debug lines (malloc'd, free it). */
char *ru_h_daemon_log_quiet(const struct ru_h_daemon *d);

/* A field of /proc/<pid>/status in kB ("VmHWM" for the peak resident set, "VmRSS" for the
 * current one); -1 when unreadable. */
long long ru_h_proc_status_kb(pid_t pid, const char *field);

/* fork + exec argv (execvp) with stdin from /dev/null, stdout on out_fd, stderr on err_fd,
 * signals reset, without the systemd variables (NOTIFY_SOCKET, WATCHDOG_*, LISTEN_*), plus
 * env ("K=V" entries, NULL-terminated; may be NULL); the child dies with the test process.
 * Returns its pid, or -1 when fork failed (errno set). Never asserts. */
pid_t ru_h_fork_exec(const char *const *argv, int out_fd, int err_fd, const char *const *env);

/* ------------------------------------------------------------------ status socket */

/* Connects to the Unix socket, writes cmd (plus "\n" when missing), reads until EOF
 * (5 s deadline). Returns the answer (malloc'd) or NULL when unreachable. */
char *ru_h_sock_cmd(const char *path, const char *cmd);

/* On a connected socket fd: sends request whole, reads until EOF or timeout_ms, closes fd.
 * Returns the answer so far (malloc'd), or NULL when the send failed. */
char *ru_h_fd_exchange(int fd, const char *request, int timeout_ms);

/* ru_h_sock_cmd(path, "status") parsed with jansson; NULL when unreachable or not JSON.
 * Free with json_decref. */
json_t *ru_h_status(const char *socket_path);

/* Looks up a dotted path ("events.valid", "hours.0.rows") in a JSON value. Returns false
 * when a step is missing or the value is not a number (integers and reals accepted). */
bool ru_h_json_int(const json_t *root, const char *path, long long *out);

/* Reads an integer (dotted path, as ru_h_json_int) from the status answer on sock; false
 * when unreachable or not a number. */
bool ru_h_status_get(const char *sock, const char *key, long long *out);

/* One integer of d's status; -1 when d does not run, does not answer or has no such
 * number. */
long long ru_h_status_int(struct ru_h_daemon *d, const char *key);

/* A boolean of the status answer on sock: 1 true, 0 false, -1 unreachable or missing. */
int ru_h_status_bool(const char *sock, const char *key);

/* ------------------------------------------------------------------ daemon log */

/* True when d's log holds needle. */
bool ru_h_log_has(const struct ru_h_daemon *d, const char *needle);

/* The length of d's log so far (a mark for ru_h_log_line and ru_h_wait_log). */
size_t ru_h_log_len(const struct ru_h_daemon *d);

/* True when a line of d's log after offset from starts with prefix and holds needle
 * (needle may be NULL). */
bool ru_h_log_line(const struct ru_h_daemon *d, size_t from, const char *prefix,
                   const char *needle);

/* Waits until d's log after offset from holds needle; fails the test after timeout_ms. */
void ru_h_wait_log(const struct ru_h_daemon *d, const char *needle, size_t from, int timeout_ms);

/* ------------------------------------------------------------------ consumer group */

/* The value after key in a flat [k, v, k, v, ...] reply (XINFO); NULL when absent. */
const redisReply *ru_h_reply_kv(const redisReply *r, const char *key);

/* What XINFO GROUPS says about one group; numbers -1 when nil or absent. */
struct ru_h_group {
    bool found;
    long long pending, entries_read, lag;
    char last_delivered[48]; /* "" when absent */
};
struct ru_h_group ru_h_group_info(redisContext *c, const char *stream, const char *group);

/* ------------------------------------------------------------------ waiting */

/* Polls cond(arg) every 20 ms until it returns true (-> true) or timeout_ms passes
 * (-> false, after one last try). */
bool ru_h_wait(bool (*cond)(void *), void *arg, int timeout_ms);

/* Waits until the answer to cmd on the status socket starts with prefix (true), or
 * timeout_ms passes (false). last (lastlen bytes; may be NULL) gets the last answer, or
 * "(unreachable)". */
bool ru_h_wait_answer(const char *sock, const char *cmd, const char *prefix, int timeout_ms,
                      char *last, size_t lastlen);

/* Sleeps ms milliseconds (only for pacing load, never to wait for a state). */
void ru_h_sleep_ms(int ms);

/* ------------------------------------------------------------------ load generator */

struct ru_h_lg_result {
    long long written, valid, invalid;
    double seconds;
};

/* Runs $RU_BUILD_DIR/rollupd-loadgen -h 127.0.0.1 -p <redis port> ARGS, where ARGS is the
 * printf-formatted text split into words like a shell would (quotes allowed, no $(...)).
 * Asserts exit 0 and returns the number of valid events written. */
long long ru_h_loadgen(const char *args_fmt, ...) RU_PRINTF(1, 2);

/* The counts of the last ru_h_loadgen / ru_h_loadgen_finish in this process. */
const struct ru_h_lg_result *ru_h_loadgen_last(void);

/* Background variant: start now, collect later (asserts exit 0; returns valid). */
struct ru_h_proc {
    pid_t pid;
    char out[RU_H_PATH]; /* its stdout + stderr */
};
void ru_h_loadgen_start(struct ru_h_proc *p, const char *args_fmt, ...) RU_PRINTF(2, 3);
long long ru_h_loadgen_finish(struct ru_h_proc *p);

/* ------------------------------------------------------------------ oracle */

/* Creates table oracle_raw (route text, method text, user_id uuid, ts text,
 * duration_ms int, status_code int, qpn jsonb, req int, resp int, db int, cache text)
 * when missing (resolved through search_path) and COPYs oracle_file (loadgen --oracle)
 * into it. Returns the number of rows copied. */
long long ru_h_oracle_load(PGconn *c, const char *oracle_file);
long long ru_h_oracle_load_into(PGconn *c, const char *oracle_table, const char *oracle_file);

/* genonaut's aggregation over oracle_table as a SELECT with the compared columns:
 * "timestamp", route, method, query_params_normalized, total_requests, successful_requests,
 * client_errors, server_errors, avg_duration_ms, p50_duration_ms, p95_duration_ms,
 * p99_duration_ms, unique_users, avg_request_size_bytes, avg_response_size_bytes,
 * avg_db_query_count, cache_hits, cache_misses. Malloc'd; free it. */
char *ru_h_oracle_sql(const char *oracle_table);

/* Number of groups (hourly rows) in genonaut's aggregation of oracle_table. */
long long ru_h_oracle_groups(PGconn *c, const char *oracle_table);

/* Sum of the events rollupd_checkpoint records as committed for this stream and group
 * (every consumer). */
long long ru_h_checkpoint_events(PGconn *c, const char *stream, const char *group);

/* Rows in hourly_table but not in the aggregation of oracle_raw plus rows in the
 * aggregation but not in hourly_table (EXCEPT ALL both ways; jsonb compared by jsonb
 * equality, floats exactly). 0 = identical. */
long long ru_h_oracle_diff(PGconn *c, const char *hourly_table);

/* The same with an explicit oracle table and an optional filter (SQL boolean over the
 * compared columns, applied to both sides, e.g. "route LIKE '/api/v1/tags%'"; NULL = all). */
long long ru_h_oracle_diff_ex(PGconn *c, const char *oracle_table, const char *hourly_table,
                              const char *where);

/* Prints up to 10 differing rows from each side to stderr. */
void ru_h_oracle_print_diff(PGconn *c, const char *hourly_table);
void ru_h_oracle_print_diff_ex(PGconn *c, const char *oracle_table, const char *hourly_table,
                               const char *where);

#endif
