/* e2e: the kit of the end-to-end suites: a per-test context (names, database, Redis and
 * PostgreSQL connections, the daemons started), observation of status, group and stream,
 * and the checks against genonaut's own aggregation (the loadgen oracle). Linked into every
 * integration test. */
#ifndef ROLLUPD_TEST_E2E_H
#define ROLLUPD_TEST_E2E_H

#include "harness.h"

#include <jansson.h>

#define H0          1761228000LL /* 2025-10-23 14:00:00 UTC, an hour boundary */
#define HOUR_S      3600LL
#define WAIT_MS     60000 /* deadline for "everything is flushed" */
#define MAX_DAEMONS 3

/* ------------------------------------------------------------------ per-test context */

/* Criterion runs each test in its own process, so this is per test. */
struct e2e_ctx {
    char stream[128], group[128], dbname[128], dead[160];
    char ci[256];
    char oracle[RU_H_PATH]; /* a path for loadgen --oracle */
    PGconn *pg;
    redisContext *r;
    struct ru_h_daemon *d[MAX_DAEMONS];
    int nd;
    int64_t t0;
};
extern struct e2e_ctx T;

struct st {
    bool ok, redis, pg, in_flush;
    bool lag_known; /* group_lag reported: an XINFO GROUPS was answered */
    long long consumed, flushed, invalid, dead_lettered, trimmed, pending, flushes, rows, failures,
        raw_written, raw_rejected;
};

/* Everything observable at once: status sums over the running daemons, the group, the
 * stream and the dead-letter stream. */
struct obs {
    int answered;
    bool in_flush;
    long long consumed, flushed, invalid, pending, flushes;
    struct ru_h_group g;
    long long xlen, dead_len;
};

struct want {
    long long target;
    struct obs o;
};

void setup(void);
void track(struct ru_h_daemon *d);
struct ru_h_cfg base_cfg(int flush_ms);
void start_daemon(struct ru_h_daemon *d, const struct ru_h_cfg *k);
/* start_daemon, then wait_connected. */
void start_connected(struct ru_h_daemon *d, const struct ru_h_cfg *k);
/* The feed of the kill -9 tests, in the background: n events at 20,000/s over four hours,
 * 0.5 % invalid, the oracle in T.oracle. */
void start_kill9_feed(struct ru_h_proc *lg, long long n, int seed);
/* kill -9 d; it must die of SIGKILL within 10 s. */
void kill9(struct ru_h_daemon *d);
void rewrite_config(struct ru_h_daemon *d, struct ru_h_cfg k);
struct ru_h_cfg lone_cfg(int flush_ms);
void finish(const char *name);
bool json_bool(const json_t *o, const char *key);
long long json_ll(const json_t *o, const char *key);
struct st status_of(struct ru_h_daemon *d);
/* ru_h_group_info of this test's group. */
struct ru_h_group group_info(void);
void observe(struct obs *o);
const char *obs_text(const struct obs *o);
bool cond_flushed(void *arg);
bool cond_drained(void *arg);
void wait_flushed(long long target, const char *what);
void wait_drained(long long target, const char *what);
bool cond_connected(void *arg);
void wait_connected(struct ru_h_daemon *d);
void start_pair(struct ru_h_daemon *d1, struct ru_h_daemon *d2, int flush_ms);
void check_oracle(const char *what, const char *where);
long long oracle_groups(void);
long long hourly_rows(void);
long long hourly_total(void);
long long checkpoint_events(void);
void check_rows_match_oracle(const char *what);
void check_exactly_once(const char *oracle, long long valid, const char *what);
void redis_ok(const char *cmd);
bool cond_pg_up(void *arg);
bool cond_in_memory(void *arg);
long long lone_rows(void);
bool cond_checkpointed(void *arg);
void wait_lone_drained(long long written, long long valid, const char *what);
bool cond_dead_letters(void *arg);
void check_dead_letters(long long want, const char *what);
void redis_cmd_ok(const char *fmt, const char *a, const char *b, const char *c);
bool cond_consumed(void *arg);

/* Kill moments, one per kill. */
enum kill_at {
    K_CONSUMED,  /* events read into memory, maybe not flushed */
    K_IN_FLUSH,  /* a flush transaction in progress */
    K_AT_START,  /* as soon as the socket answers: PostgreSQL set-up, replay */
    K_ACK_STUCK, /* a flush committed whose XACK Redis has not processed */
    K_FLUSHES_3, /* three flushes committed by this incarnation */
    K_COUNT
};

extern const char *const kill_names[K_COUNT];

struct kill_arg {
    struct ru_h_daemon *d;
    enum kill_at at;
    long long flushes0; /* K_ACK_STUCK: flushes when Redis was paused */
};

/* arg: a struct kill_arg; true once its moment has come. */
bool cond_kill_moment(void *arg);

#endif
