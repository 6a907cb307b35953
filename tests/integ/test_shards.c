/* Integration: rollupd on a Redis Cluster (README: Scaling out). A private 6-node cluster
 * on loopback (tests/cluster/rcluster: 3 masters, 3 replicas), four shards
 * "<prefix>:{0}".."{3}" spread over the masters, one rollupd per shard (shards 0-2 a
 * consumer of a shared group, shard 3 a lone consumer), and a producer that writes
 * genonaut-shaped events to the shard crc32(request id) mod 4 while the cluster is put
 * through a master crash (kill -9, its replica promoted), a CLUSTER FAILOVER, a live
 * migration of one shard's slot to another master and a kill -9 of a rollupd.
 *
 * Then, event by event (check_counts): every entry the streams hold counted exactly once
 * (the raw rows say which events were counted), and a copy counted that the streams no
 * longer hold accepted only when a master's crash can have taken it: the producer's XADD
 * was in flight to the killed master (an instance read and committed that copy, the
 * replica never had it, the producer wrote the event again), or the killed master had
 * acknowledged it. route_analytics_hourly must equal genonaut's aggregation of the
 * streams' events plus those copies. A second test makes that crash happen on purpose.
 *
 * RU_SHARDS_SECONDS (default 4) sets the load phase between two faults and
 * RU_SHARDS_ROUNDS (default 1) how many times each fault comes (each round to another
 * shard); the long run (tests/faults/run-long) raises both. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "e2e.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rollupd/cluster.h"

#define SHARDS     4
#define NODES      6
#define MAX_EVENTS 2000000
#define RATE       1500 /* events per second over all shards */

static char cdir[RU_H_PATH];
static int ports[NODES];
static char prefix[128], keys[SHARDS][160];

/* ------------------------------------------------------------------ the cluster */

static int rcluster(const char *verb, int port)
{
    char cmd[RU_H_PATH * 3];
    if (port > 0)
        snprintf(cmd, sizeof(cmd), "%s/tests/cluster/rcluster %s %s %d", ru_h_env.source_dir, verb,
                 cdir, port);
    else
        snprintf(cmd, sizeof(cmd), "%s/tests/cluster/rcluster %s %s", ru_h_env.source_dir, verb,
                 cdir);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void cluster_up(void)
{
    ru_h_env_load();
    ru_h_tmp_path(cdir, sizeof(cdir), "cluster");
    cr_assert_eq(rcluster("start", 0), 0, "the Redis Cluster did not start (rcluster start)");
    char pf[RU_H_PATH + 8];
    snprintf(pf, sizeof(pf), "%s/ports", cdir);
    FILE *f = fopen(pf, "r");
    cr_assert_not_null(f);
    for (int i = 0; i < NODES; i++)
        cr_assert_eq(fscanf(f, "%d", &ports[i]), 1);
    fclose(f);
}

static void cluster_down(void)
{
    if (cdir[0])
        (void)rcluster("stop", 0);
}

/* A connection to one node (NULL when it does not answer). */
static redisContext *node(int port)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c == NULL || c->err) {
        redisFree(c);
        return NULL;
    }
    struct timeval rt = {3, 0};
    redisSetTimeout(c, rt);
    return c;
}

static redisReply *node_cmd(int port, const char *fmt, ...)
{
    redisContext *c = node(port);
    if (c == NULL)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

/* The port of the master serving slot as the first live node sees it; 0 unknown. */
static int owner_port(unsigned slot)
{
    for (int i = 0; i < NODES; i++) {
        redisReply *r = node_cmd(ports[i], "CLUSTER SLOTS");
        if (r == NULL)
            continue;
        struct ru_cluster_node self = {"127.0.0.1", ports[i]}, o;
        char err[200];
        int port = ru_cluster_owner(r, slot, &self, &o, err, sizeof(err)) == 0 ? o.port : 0;
        freeReplyObject(r);
        if (port)
            return port;
    }
    return 0;
}

/* The node id of port, and the port of a healthy replica of it (CLUSTER NODES lines:
 * "<id> <ip:port@bus> <flags> <master id|-> ..."). */
static bool node_ids(int port, char *id, size_t idlen, int *replica)
{
    redisReply *r = node_cmd(port, "CLUSTER NODES");
    if (r == NULL || r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return false;
    }
    char want[32];
    snprintf(want, sizeof(want), ":%d@", port);
    id[0] = '\0';
    *replica = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (char *line = r->str; line && *line;) {
            char nid[64], addr[128], flags[128], master[64];
            if (sscanf(line, "%63s %127s %127s %63s", nid, addr, flags, master) == 4) {
                if (pass == 0 && strstr(addr, want))
                    ru_strlcpy(id, nid, idlen);
                if (pass == 1 && id[0] && strcmp(master, id) == 0 && !strstr(flags, "fail"))
                    *replica = atoi(strchr(addr, ':') + 1);
            }
            line = strchr(line, '\n');
            line = line ? line + 1 : NULL;
        }
    }
    freeReplyObject(r);
    return id[0] != '\0';
}

/* A master other than the one serving slot. */
static int other_master(unsigned slot)
{
    int owner = owner_port(slot), other = 0;
    redisReply *r = NULL;
    for (int i = 0; i < NODES && r == NULL; i++)
        r = node_cmd(ports[i], "CLUSTER SLOTS");
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements && !other; i++) {
        const redisReply *m = r->element[i]->element[2];
        if (m->element[1]->integer != owner)
            other = (int)m->element[1]->integer;
    }
    freeReplyObject(r);
    cr_assert_neq(other, 0, "no master other than %d", owner);
    return other;
}

/* ------------------------------------------------------------------ the producer */

/* An XADD whose reply never came (the connection broke or timed out): Redis may or may
 * not have written that copy of the event. */
struct unsure {
    long long event;
    int port;
    int64_t sent_ms, failed_ms;
};

struct producer {
    pthread_t th;
    atomic_bool stop;
    atomic_llong acked, retried;
    long long n;        /* events made (index of the next) */
    char **lines;       /* oracle line of event i */
    unsigned char *ack; /* 1: its XADD was acknowledged */
    int *ack_port;      /* the node that acknowledged it */
    int64_t *ack_ms;    /* when */
    int64_t *us;        /* its timestamp field, in microseconds */
    unsigned char *shard;
    int64_t t0; /* ru_mono_ms() at the start */
    struct unsure *unsure;
    size_t nunsure, unsure_cap;
    redisContext *conn[NODES];
    int owner[SHARDS]; /* index into ports, -1 unknown */
    char tag[32];
};
static struct producer P;

/* A master killed with kill -9, between t0 (before the signal) and t1 (its slot served by
 * another node). Only such a crash can take away a write it already made. */
struct crash {
    int port;
    int64_t t0, t1;
};
static struct crash crashes[64];
static int ncrashes;

static void note_unsure(long long i, int port, int64_t sent_ms)
{
    if (P.nunsure == P.unsure_cap) {
        P.unsure_cap = P.unsure_cap ? P.unsure_cap * 2 : 256;
        P.unsure = ru_xrealloc(P.unsure, P.unsure_cap * sizeof(*P.unsure));
    }
    P.unsure[P.nunsure++] = (struct unsure){i, port, sent_ms, ru_mono_ms()};
}

static void note_ack(long long i, int port)
{
    P.ack[i] = 1;
    P.ack_port[i] = port;
    P.ack_ms[i] = ru_mono_ms();
    atomic_fetch_add(&P.acked, 1);
}

static int port_index(int port)
{
    for (int i = 0; i < NODES; i++)
        if (ports[i] == port)
            return i;
    return -1;
}

static redisContext *conn_of(int i)
{
    if (P.conn[i] == NULL)
        P.conn[i] = node(ports[i]);
    return P.conn[i];
}

static void drop_conn(int i)
{
    redisFree(P.conn[i]);
    P.conn[i] = NULL;
}

/* One event: a route of 8, GET or POST, one of 50 users, now, and the genonaut fields. */
static void make_event(long long i, char *ts, size_t tslen, char *line, size_t linelen,
                       const char **argv, int *argc, char bufs[][64])
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(ts, tslen, "%lld.%06ld", (long long)now.tv_sec, now.tv_nsec / 1000);
    P.us[i] = (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
    int route = (int)(i % 8), user = (int)(i * 7 % 50), status = i % 13 == 0 ? 500 : 200;
    int dur = (int)(i * 37 % 900) + 1, req = (int)(i % 300), resp = (int)(i * 11 % 5000);
    int db = (int)(i % 4);
    const char *method = i % 3 ? "GET" : "POST", *cache = i % 2 ? "hit" : "miss";
    snprintf(bufs[0], 64, "/api/v1/shard-test/%d", route);
    snprintf(bufs[1], 64, "00000000-0000-4000-8000-%012d", user);
    snprintf(bufs[2], 64, "%d", dur);
    snprintf(bufs[3], 64, "%d", status);
    snprintf(bufs[4], 64, "%d", req);
    snprintf(bufs[5], 64, "%d", resp);
    snprintf(bufs[6], 64, "%d", db);
    snprintf(bufs[7], 64, "%s-%lld", P.tag, i);
    const char *kv[] = {"route",
                        bufs[0],
                        "method",
                        method,
                        "user_id",
                        bufs[1],
                        "timestamp",
                        ts,
                        "duration_ms",
                        bufs[2],
                        "status_code",
                        bufs[3],
                        "query_params_normalized",
                        "{}",
                        "request_size_bytes",
                        bufs[4],
                        "response_size_bytes",
                        bufs[5],
                        "db_query_count",
                        bufs[6],
                        "cache_status",
                        cache,
                        "request_id",
                        bufs[7]};
    *argc = 3;
    for (size_t k = 0; k < RU_ARRAY_LEN(kv); k++)
        argv[(*argc)++] = kv[k];
    snprintf(line, linelen, "%s\t%s\t%s\t%s\t%d\t%d\t{}\t%d\t%d\t%d\t%s\n", bufs[0], method,
             bufs[1], ts, dur, status, req, resp, db, cache);
}

/* XADD to the master of the shard's slot, following MOVED and ASK (ASKING + XADD on the
 * importing node) and retrying through any live node after a failure. A retry after a
 * lost reply may write the event twice: the streams, not this log, are the truth. */
struct xadd {
    char ts[40], bufs[8][64];
    const char *argv[32];
    int argc;
    unsigned shard;
};

/* Makes event i and its XADD (the same arguments for every attempt). */
static void prepare(long long i, struct xadd *x)
{
    char line[1024];
    make_event(i, x->ts, sizeof(x->ts), line, sizeof(line), x->argv, &x->argc, x->bufs);
    x->shard = ru_cluster_shard(x->bufs[7], strlen(x->bufs[7]), SHARDS);
    P.shard[i] = (unsigned char)x->shard;
    x->argv[0] = "XADD";
    x->argv[1] = keys[x->shard];
    x->argv[2] = "*";
    P.lines[i] = ru_xstrdup(line);
}

static void send_event(long long i, const struct xadd *x)
{
    const char *const *argv = x->argv;
    int argc = x->argc;
    unsigned sh = x->shard;
    for (int attempt = 0; !atomic_load(&P.stop) || attempt < 400; attempt++) {
        int at = P.owner[sh] >= 0 ? P.owner[sh] : attempt % NODES;
        redisContext *c = conn_of(at);
        if (c == NULL) {
            P.owner[sh] = -1;
            ru_h_sleep_ms(20); /* pacing the retries of a dead node */
            continue;
        }
        int64_t sent = ru_mono_ms();
        redisReply *r = redisCommandArgv(c, argc, (const char **)argv, NULL);
        if (r == NULL) {
            note_unsure(i, ports[at], sent);
            drop_conn(at);
            P.owner[sh] = -1;
            atomic_fetch_add(&P.retried, 1);
            continue;
        }
        if (r->type == REDIS_REPLY_STRING) {
            freeReplyObject(r);
            note_ack(i, ports[at]);
            return;
        }
        struct ru_cluster_node self = {"127.0.0.1", ports[at]}, to;
        enum ru_cluster_err e = r->type == REDIS_REPLY_ERROR
                                    ? ru_cluster_classify(r->str, &self, NULL, &to)
                                    : RU_CLUSTER_RETRY;
        freeReplyObject(r);
        atomic_fetch_add(&P.retried, 1);
        if (e == RU_CLUSTER_MOVED) {
            P.owner[sh] = port_index(to.port);
        } else if (e == RU_CLUSTER_ASK && port_index(to.port) >= 0) {
            redisContext *t = conn_of(port_index(to.port));
            if (t == NULL)
                continue;
            redisReply *a = redisCommand(t, "ASKING");
            freeReplyObject(a);
            int64_t asked = ru_mono_ms();
            r = a ? redisCommandArgv(t, argc, (const char **)argv, NULL) : NULL;
            bool ok = r && r->type == REDIS_REPLY_STRING;
            freeReplyObject(r);
            if (ok) {
                note_ack(i, to.port);
                return;
            }
            if (a && r == NULL)
                note_unsure(i, to.port, asked);
            if (r == NULL)
                drop_conn(port_index(to.port));
        } else {
            P.owner[sh] = -1;
            ru_h_sleep_ms(20); /* CLUSTERDOWN during a failover: pacing the retries */
        }
    }
}

static void produce_one(long long i)
{
    struct xadd x;
    prepare(i, &x);
    send_event(i, &x);
}

static void *produce(void *arg)
{
    (void)arg;
    int64_t t0 = ru_mono_ms();
    while (!atomic_load(&P.stop) && P.n < MAX_EVENTS) {
        /* pacing the load at RATE events per second */
        int64_t due = t0 + P.n * 1000 / RATE;
        int64_t now = ru_mono_ms();
        if (due > now)
            ru_h_sleep_ms((int)(due - now));
        produce_one(P.n);
        P.n++;
    }
    return NULL;
}

static void producer_init(void)
{
    memset(&P, 0, sizeof(P));
    snprintf(P.tag, sizeof(P.tag), "r%d", (int)getpid());
    P.lines = ru_xcalloc(MAX_EVENTS, sizeof(*P.lines));
    P.ack = ru_xcalloc(MAX_EVENTS, 1);
    P.ack_port = ru_xcalloc(MAX_EVENTS, sizeof(*P.ack_port));
    P.ack_ms = ru_xcalloc(MAX_EVENTS, sizeof(*P.ack_ms));
    P.us = ru_xcalloc(MAX_EVENTS, sizeof(*P.us));
    P.shard = ru_xcalloc(MAX_EVENTS, 1);
    P.t0 = ru_mono_ms();
    ncrashes = 0;
    for (int s = 0; s < SHARDS; s++)
        P.owner[s] = -1;
}

static void producer_start(void)
{
    producer_init();
    cr_assert_eq(pthread_create(&P.th, NULL, produce, NULL), 0);
}

static void producer_stop(void)
{
    atomic_store(&P.stop, true);
    pthread_join(P.th, NULL);
    for (int i = 0; i < NODES; i++)
        drop_conn(i);
}

/* ------------------------------------------------------------------ the daemons */

static struct ru_h_daemon D[SHARDS];
static char ci[256], group[128];
static PGconn *pg;

static void daemon_start(int s)
{
    char url[128], extra[512];
    /* shards 0 and 1: redis.cluster "auto" from one master; 2 and 3: "on" from a replica,
     * with seeds (each is redirected to the master serving its slot) */
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", s < 2 ? ports[0] : ports[3]);
    extra[0] = '\0';
    if (s >= 2)
        snprintf(extra, sizeof(extra),
                 "cluster = \"on\"; cluster_seeds = \"127.0.0.1:%d, 127.0.0.1:%d\"; %s", ports[1],
                 ports[2], s == 3 ? "lone_consumer = true;" : "");
    char consumer[16], sock[RU_H_PATH + 16];
    snprintf(consumer, sizeof(consumer), "c%d", s);
    snprintf(sock, sizeof(sock), "%s/sock/%d.sock", cdir, s);
    struct ru_h_cfg k = {.stream = keys[s],
                         .group = group,
                         .consumer = consumer,
                         .conninfo = ci,
                         .redis_url = url,
                         .flush_interval_ms = 300,
                         .log_level = "info",
                         .redis_extra = extra,
                         /* the raw rows say which events were counted, and how often */
                         .raw_table = "route_analytics",
                         .socket = sock};
    char *text = ru_h_config(&k);
    ru_h_daemon_start(&D[s], text);
    free(text);
}

/* rollupctl --all status: one line per instance, each naming its shard. */
static void check_rollupctl_all(void)
{
    char cmd[RU_H_PATH * 3], line[1024];
    snprintf(cmd, sizeof(cmd), "%s/rollupctl --all -d %s/sock status", ru_h_env.build_dir, cdir);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    int lines = 0, named[SHARDS] = {0};
    while (fgets(line, sizeof(line), p) != NULL) {
        fputs(line, stderr);
        lines++;
        for (int s = 0; s < SHARDS; s++)
            if (strstr(line, keys[s]) != NULL && strstr(line, "127.0.0.1:") != NULL)
                named[s]++;
    }
    int rc = pclose(p);
    /* the exit status is the worst health: an instance may be degraded for a moment */
    cr_expect(WIFEXITED(rc) && WEXITSTATUS(rc) <= 2, "%s exited with %d", cmd, rc);
    cr_expect_eq(lines, SHARDS, "%s printed %d lines", cmd, lines);
    for (int s = 0; s < SHARDS; s++)
        cr_expect_eq(named[s], 1, "%s: shard %d (and its node) not listed once", cmd, s);
}

static long long flushed(int s)
{
    return ru_h_checkpoint_events(pg, keys[s], group);
}

struct grow {
    int shard;
    long long from;
};

static bool cond_grew(void *arg)
{
    const struct grow *g = arg;
    return flushed(g->shard) >= g->from + 100;
}

static void dump_logs(void)
{
    for (int s = 0; s < SHARDS; s++) {
        char *log = ru_h_daemon_log(&D[s]);
        size_t n = strlen(log);
        fprintf(stderr, "---- rollupd shard %d (last 3000 bytes) ----\n%s\n", s,
                n > 3000 ? log + n - 3000 : log);
        free(log);
    }
}

/* Each shard's checkpoint moves on by 100 events (every instance reads and commits). */
static void wait_progress(const char *after)
{
    for (int s = 0; s < SHARDS; s++) {
        struct grow g = {s, flushed(s)};
        if (!ru_h_wait(cond_grew, &g, 60000)) {
            dump_logs();
            cr_assert_fail("after %s: shard %d committed nothing new in 60 s (at %lld events)",
                           after, s, flushed(s));
        }
    }
}

static int load_seconds(void)
{
    const char *v = getenv("RU_SHARDS_SECONDS");
    int n = v ? atoi(v) : 0;
    return n > 0 ? n : 4;
}

static int load_rounds(void)
{
    const char *v = getenv("RU_SHARDS_ROUNDS");
    int n = v ? atoi(v) : 0;
    return n > 0 ? n : 1;
}

/* Load keeps flowing for a while (pacing only: the checks wait on state). */
static void load_phase(const char *after)
{
    ru_h_sleep_ms(load_seconds() * 1000);
    wait_progress(after);
}

struct slot_move {
    unsigned slot;
    int from;
};

static bool cond_owner_changed(void *arg)
{
    const struct slot_move *m = arg;
    int o = owner_port(m->slot);
    return o != 0 && o != m->from;
}

/* ------------------------------------------------------------------ the faults */

static void crash_master(unsigned slot)
{
    struct slot_move m = {slot, owner_port(slot)};
    cr_assert_neq(m.from, 0);
    cr_log_info("kill -9 of master %d (slot %u)", m.from, slot);
    cr_assert_lt(ncrashes, (int)RU_ARRAY_LEN(crashes));
    int64_t t0 = ru_mono_ms();
    cr_assert_eq(rcluster("kill", m.from), 0);
    cr_assert(ru_h_wait(cond_owner_changed, &m, 60000), "no replica of %d was promoted within 60 s",
              m.from);
    crashes[ncrashes++] = (struct crash){m.from, t0, ru_mono_ms()};
    cr_assert_eq(rcluster("revive", m.from), 0);
    cr_assert_eq(rcluster("wait", 0), 0);
}

/* CLUSTER FAILOVER answers OK at once and fails quietly when the replica is not ready (a
 * node revived a moment ago still syncing): asked again, up to three times. */
static void manual_failover(unsigned slot)
{
    int master = owner_port(slot), replica = 0;
    char id[64];
    struct slot_move m = {slot, master};
    for (int attempt = 0; attempt < 3; attempt++) {
        cr_assert(node_ids(master, id, sizeof(id), &replica) && replica > 0,
                  "no healthy replica of %d", master);
        cr_log_info("CLUSTER FAILOVER on %d (replica of %d, slot %u)", replica, master, slot);
        redisReply *r = node_cmd(replica, "CLUSTER FAILOVER");
        bool ok = r && r->type == REDIS_REPLY_STATUS;
        if (!ok)
            cr_log_warn("CLUSTER FAILOVER on %d: %s", replica, r && r->str ? r->str : "no reply");
        freeReplyObject(r);
        if (ok && ru_h_wait(cond_owner_changed, &m, 20000)) {
            cr_assert_eq(rcluster("wait", 0), 0);
            return;
        }
        ru_h_sleep_ms(1000); /* pacing the next attempt */
    }
    cr_assert_fail("three CLUSTER FAILOVERs of slot %u's master %d did not happen", slot, master);
}

static void setslot_ok(int port, const char *fmt, ...)
{
    redisContext *c = node(port);
    cr_assert_not_null(c);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    cr_assert(r && r->type == REDIS_REPLY_STATUS, "node %d: %s: %s", port, fmt,
              r && r->str ? r->str : "no reply");
    freeReplyObject(r);
    redisFree(c);
}

/* The live resharding redis-cli --cluster reshard does, for one slot: IMPORTING on the
 * target, MIGRATING on the source, MIGRATE of its keys, then NODE on every master. */
static void migrate_slot(unsigned slot, int to)
{
    int from = owner_port(slot), unused;
    char from_id[64], to_id[64];
    cr_assert(node_ids(from, from_id, sizeof(from_id), &unused));
    cr_assert(node_ids(to, to_id, sizeof(to_id), &unused));
    cr_log_info("migrating slot %u from %d to %d", slot, from, to);
    setslot_ok(to, "CLUSTER SETSLOT %u IMPORTING %s", slot, from_id);
    setslot_ok(from, "CLUSTER SETSLOT %u MIGRATING %s", slot, to_id);
    for (;;) {
        redisReply *k = node_cmd(from, "CLUSTER GETKEYSINSLOT %u 100", slot);
        cr_assert(k && k->type == REDIS_REPLY_ARRAY);
        size_t n = k->elements;
        for (size_t i = 0; i < n; i++) {
            redisReply *r =
                node_cmd(from, "MIGRATE 127.0.0.1 %d %s 0 10000", to, k->element[i]->str);
            cr_assert(r && r->type == REDIS_REPLY_STATUS, "MIGRATE %s: %s", k->element[i]->str,
                      r && r->str ? r->str : "no reply");
            freeReplyObject(r);
        }
        freeReplyObject(k);
        if (n == 0)
            break;
    }
    setslot_ok(to, "CLUSTER SETSLOT %u NODE %s", slot, to_id);
    setslot_ok(from, "CLUSTER SETSLOT %u NODE %s", slot, to_id);
    for (int i = 0; i < NODES; i++) {
        if (ports[i] == to || ports[i] == from)
            continue;
        redisReply *r = node_cmd(ports[i], "CLUSTER SETSLOT %u NODE %s", slot, to_id);
        freeReplyObject(r); /* a replica refuses: only masters need it */
    }
    cr_assert_eq(rcluster("wait", 0), 0);
}

/* ------------------------------------------------------------------ the check */

/* The id of shard s's last entry: false when it cannot be read, zero when the stream is
 * empty. */
static bool last_entry(int s, struct ru_sid *out)
{
    memset(out, 0, sizeof(*out));
    int o = owner_port(ru_cluster_keyslot(keys[s], strlen(keys[s])));
    redisReply *r = o ? node_cmd(o, "XREVRANGE %s + - COUNT 1", keys[s]) : NULL;
    bool ok = r && r->type == REDIS_REPLY_ARRAY;
    if (ok && r->elements > 0)
        ok = ru_sid_parse(out, r->element[0]->element[0]->str, r->element[0]->element[0]->len) == 0;
    freeReplyObject(r);
    return ok;
}

/* The highest id shard s's instance committed (its consumer's row, or the group's for the
 * lone consumer). */
static struct ru_sid committed_id(int s)
{
    struct ru_sid best = {0, 0};
    char *st = PQescapeLiteral(pg, keys[s], strlen(keys[s]));
    char *g = PQescapeLiteral(pg, group, strlen(group));
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "SELECT last_id FROM rollupd_checkpoint WHERE stream = %s AND grp = %s", st, g);
    PQfreemem(st);
    PQfreemem(g);
    PGresult *r = PQexec(pg, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(pg));
    for (int row = 0; row < PQntuples(r); row++) {
        struct ru_sid id;
        const char *v = PQgetvalue(r, row, 0);
        if (ru_sid_parse(&id, v, strlen(v)) == 0 && ru_sid_cmp(&id, &best) > 0)
            best = id;
    }
    PQclear(r);
    return best;
}

/* Every shard's checkpoint is at or past its stream's last entry (entries reach an
 * instance in id order). Comparing counts instead would pass too early when the
 * checkpoint counts an entry that Redis lost. */
static bool cond_drained_all(void *arg)
{
    (void)arg;
    for (int s = 0; s < SHARDS; s++) {
        struct ru_sid last, done = committed_id(s);
        if (!last_entry(s, &last) || ru_sid_cmp(&done, &last) < 0)
            return false;
    }
    return true;
}

/* Reads every stream whole from its master: copies[i] is how many entries carry event i's
 * request id (two when a retried XADD was written twice); returns the entries read. */
static long long collect(unsigned char *copies, long long *unacked, long long per_shard[SHARDS])
{
    long long total = 0;
    for (int s = 0; s < SHARDS; s++) {
        int o = owner_port(ru_cluster_keyslot(keys[s], strlen(keys[s])));
        cr_assert_neq(o, 0);
        redisContext *c = node(o);
        cr_assert_not_null(c);
        char after[64] = "-";
        per_shard[s] = 0;
        for (;;) {
            redisReply *r = redisCommand(c, "XRANGE %s %s + COUNT 1000", keys[s], after);
            cr_assert(r && r->type == REDIS_REPLY_ARRAY);
            for (size_t i = 0; i < r->elements; i++) {
                redisReply *e = r->element[i], *f = e->element[1];
                snprintf(after, sizeof(after), "(%s", e->element[0]->str);
                long long idx = -1;
                for (size_t j = 0; j + 1 < f->elements; j += 2)
                    if (strcmp(f->element[j]->str, "request_id") == 0)
                        idx = atoll(strchr(f->element[j + 1]->str, '-') + 1);
                cr_assert(idx >= 0 && idx < P.n && P.lines[idx], "entry %s: unknown request id",
                          e->element[0]->str);
                if (!P.ack[idx])
                    (*unacked)++;
                cr_assert_lt(copies[idx], 255);
                copies[idx]++;
                per_shard[s]++;
                total++;
            }
            size_t n = r->elements;
            freeReplyObject(r);
            if (n < 1000)
                break;
        }
        redisFree(c);
    }
    return total;
}

static int cmp_by_us(const void *a, const void *b)
{
    int64_t x = P.us[*(const long long *)a], y = P.us[*(const long long *)b];
    return x < y ? -1 : x > y;
}

/* counted[i]: the raw rows of event i (each counted copy writes one, in the transaction
 * that counts it), found by its timestamp; returns the rows no event matches. */
static long long counted_events(int *counted)
{
    long long *by_us = ru_xcalloc((size_t)P.n + 1, sizeof(*by_us));
    for (long long i = 0; i < P.n; i++)
        by_us[i] = i;
    qsort(by_us, (size_t)P.n, sizeof(*by_us), cmp_by_us);
    PGresult *r = PQexec(pg, "SELECT (extract(epoch FROM \"timestamp\") * 1000000)::bigint,"
                             " count(*) FROM route_analytics GROUP BY 1");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(pg));
    long long unmatched = 0;
    for (int row = 0; row < PQntuples(r); row++) {
        int64_t us = atoll(PQgetvalue(r, row, 0));
        int n = atoi(PQgetvalue(r, row, 1));
        long long lo = 0, hi = P.n; /* first event with P.us >= us */
        while (lo < hi) {
            long long mid = (lo + hi) / 2;
            if (P.us[by_us[mid]] < us)
                lo = mid + 1;
            else
                hi = mid;
        }
        long long best = -1;
        for (long long k = lo - 1; k <= lo; k++)
            if (k >= 0 && k < P.n && llabs((long long)(P.us[by_us[k]] - us)) <= 1 &&
                (best < 0 ||
                 llabs((long long)(P.us[by_us[k]] - us)) < llabs((long long)(P.us[best] - us))))
                best = by_us[k];
        if (best < 0)
            unmatched += n;
        else
            counted[best] += n;
    }
    PQclear(r);
    free(by_us);
    return unmatched;
}

/* Copies of event i that a crash may have taken from Redis after they were written: its
 * XADDs in flight to a master when it was killed, and its acknowledged one if a master
 * killed later had acknowledged it. */
static int lost_with_a_crash(long long i)
{
    int n = 0;
    for (int k = 0; k < ncrashes; k++) {
        const struct crash *c = &crashes[k];
        for (size_t u = 0; u < P.nunsure; u++)
            if (P.unsure[u].event == i && P.unsure[u].port == c->port &&
                P.unsure[u].sent_ms <= c->t1 && P.unsure[u].failed_ms >= c->t0)
                n++;
        if (P.ack[i] && P.ack_port[i] == c->port && P.ack_ms[i] <= c->t1)
            n++;
    }
    return n;
}

static void print_event(const char *what, long long i, int copies, int counted)
{
    fprintf(stderr, "shards: %s: event %lld (shard %d): %d in the stream, counted %d; ", what, i,
            P.shard[i], copies, counted);
    if (P.ack[i])
        fprintf(stderr, "acknowledged by %d at %lld ms", P.ack_port[i],
                (long long)(P.ack_ms[i] - P.t0));
    else
        fprintf(stderr, "never acknowledged");
    for (size_t u = 0; u < P.nunsure; u++)
        if (P.unsure[u].event == i)
            fprintf(stderr, "; no reply from %d (sent at %lld ms, failed at %lld ms)",
                    P.unsure[u].port, (long long)(P.unsure[u].sent_ms - P.t0),
                    (long long)(P.unsure[u].failed_ms - P.t0));
    fprintf(stderr, "\n");
}

/* The lines of shard s's log that tell of Redis losing writes or of a recovery. */
static void print_log_lines(int s)
{
    static const char *const marks[] = {
        "lost acknowledged writes", "recovery", "created again", "error msg=", "level=error",
        "\"level\":\"error\""};
    char *log = ru_h_daemon_log(&D[s]);
    for (char *line = log; line && *line;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        for (size_t m = 0; m < RU_ARRAY_LEN(marks); m++)
            if (strstr(line, marks[m])) {
                fprintf(stderr, "shards: shard %d log: %s\n", s, line);
                break;
            }
        line = end ? end + 1 : NULL;
    }
    free(log);
}

struct counts {
    long long in_streams, counted, lost_by_crash, lost_tail[SHARDS];
};

/* Once the producer has stopped and every instance has committed its stream's last entry:
 * the hourly rows, the checkpoints and the raw rows against what the streams hold, event
 * by event. Every entry the streams hold must be counted exactly once. A copy counted
 * that the streams do not hold is Redis' loss only if a crash can have taken it (an XADD
 * in flight to the killed master, or acknowledged by it: lost_with_a_crash); the hourly
 * rows must then equal genonaut's aggregation over the streams plus those copies. */
static void check_counts(struct counts *out)
{
    /* what each instance says Redis lost under it, before the forced lost tail below */
    long long lost_tail_of[SHARDS];
    for (int s = 0; s < SHARDS; s++)
        lost_tail_of[s] = ru_h_status_int(&D[s], "redis_lost_tail");

    unsigned char *copies = ru_xcalloc((size_t)P.n + 1, 1);
    int *counted = ru_xcalloc((size_t)P.n + 1, sizeof(*counted));
    long long unacked = 0, in_shard[SHARDS];
    long long in_streams = collect(copies, &unacked, in_shard);
    long long unmatched = counted_events(counted);

    char path[RU_H_PATH];
    ru_h_tmp_path(path, sizeof(path), "shards-oracle");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    long long lost = 0, acked = 0, missing = 0, doubled = 0, by_crash = 0, oracle = 0;
    long long by_crash_of[SHARDS] = {0}, raw_of[SHARDS] = {0};
    int shown = 0;
    for (long long i = 0; i < P.n; i++) {
        acked += P.ack[i];
        if (P.ack[i] && !copies[i])
            lost++;
        raw_of[P.shard[i]] += counted[i];
        int c = copies[i], n = counted[i], lines = c;
        if (n < c) {
            missing += c - n;
            if (shown++ < 40)
                print_event("not counted", i, c, n);
        } else if (n > c && n - c <= lost_with_a_crash(i)) {
            by_crash += n - c;
            by_crash_of[P.shard[i]] += n - c;
            lines = n;
            if (shown++ < 40)
                print_event("counted, then lost by Redis in a crash", i, c, n);
        } else if (n > c) {
            doubled += n - c;
            if (shown++ < 40)
                print_event("counted twice", i, c, n);
        }
        for (int k = 0; k < lines; k++)
            fputs(P.lines[i], f);
        oracle += lines;
    }
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(ru_h_oracle_load_into(pg, "oracle_raw", path), oracle);
    long long total = ru_h_pg_int(pg, "SELECT coalesce(sum(total_requests), 0) FROM "
                                      "route_analytics_hourly");
    long long ck = 0;
    for (int s = 0; s < SHARDS; s++) {
        long long cks = flushed(s);
        ck += cks;
        fprintf(stderr,
                "shards: shard %d: in_stream=%lld checkpoint=%lld raw=%lld lost_by_crash=%lld "
                "redis_lost_tail=%lld\n",
                s, in_shard[s], cks, raw_of[s], by_crash_of[s], lost_tail_of[s]);
        if (cks != in_shard[s] || by_crash_of[s] || lost_tail_of[s])
            print_log_lines(s);
    }
    fprintf(stderr,
            "shards: produced=%lld acked=%lld in_streams=%lld lost_by_redis=%lld "
            "written_without_ack=%lld retried=%lld counted=%lld checkpoints=%lld\n",
            P.n, acked, in_streams, lost, unacked, (long long)atomic_load(&P.retried), total, ck);
    fprintf(stderr,
            "shards: unsure_xadds=%zu crashes=%d counted_then_lost_by_redis=%lld "
            "not_counted=%lld counted_twice=%lld raw_rows_unmatched=%lld\n",
            P.nunsure, ncrashes, by_crash, missing, doubled, unmatched);
    free(copies);
    free(counted);
    long long diff = ru_h_oracle_diff_ex(pg, "oracle_raw", "route_analytics_hourly", NULL);
    if (diff != 0)
        ru_h_oracle_print_diff_ex(pg, "oracle_raw", "route_analytics_hourly", NULL);
    cr_expect_eq(unmatched, 0, "%lld raw rows match no event produced", unmatched);
    cr_expect_eq(missing, 0, "%lld entries the streams hold were not counted", missing);
    cr_expect_eq(doubled, 0, "%lld entries were counted twice", doubled);
    cr_expect_eq(total, oracle,
                 "counted %lld events: the streams hold %lld, plus %lld counted "
                 "before a crash took them",
                 total, in_streams, by_crash);
    cr_expect_eq(ck, oracle, "the checkpoints count %lld events, want %lld", ck, oracle);
    cr_expect_eq(diff, 0, "route_analytics_hourly differs from genonaut's aggregation in %lld rows",
                 diff);
    if (out) {
        out->in_streams = in_streams;
        out->counted = total;
        out->lost_by_crash = by_crash;
        memcpy(out->lost_tail, lost_tail_of, sizeof(lost_tail_of));
    }
}

/* XINFO STREAM last-generated-id of shard s; false when the stream does not exist. */
static bool last_generated(int s, struct ru_sid *out)
{
    int o = owner_port(ru_cluster_keyslot(keys[s], strlen(keys[s])));
    redisReply *r = o ? node_cmd(o, "XINFO STREAM %s", keys[s]) : NULL;
    bool ok = false;
    for (size_t j = 0; r && r->type == REDIS_REPLY_ARRAY && j + 1 < r->elements; j += 2)
        if (strcmp(r->element[j]->str, "last-generated-id") == 0)
            ok = ru_sid_parse(out, r->element[j + 1]->str, r->element[j + 1]->len) == 0;
    freeReplyObject(r);
    return ok;
}

static struct ru_sid lost_tail_at;

static bool cond_tail_raised(void *arg)
{
    struct ru_sid now;
    return last_generated(*(int *)arg, &now) && ru_sid_cmp(&now, &lost_tail_at) >= 0;
}

/* A stream that lost its tail, as a failover with asynchronous replication can leave it:
 * the instance raises the stream's last id to what it had read, so that entries added
 * later cannot get ids at or below its checkpoint (and be skipped as committed). */
static void lost_tail(int s)
{
    cr_assert(last_generated(s, &lost_tail_at));
    int o = owner_port(ru_cluster_keyslot(keys[s], strlen(keys[s])));
    redisReply *r = node_cmd(o, "DEL %s", keys[s]);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1);
    freeReplyObject(r);
    if (!ru_h_wait(cond_tail_raised, &s, 30000)) {
        dump_logs();
        cr_assert_fail("shard %d: the stream's last id was not raised after it lost its tail", s);
    }
    char *log = ru_h_daemon_log(&D[s]);
    cr_expect(strstr(log, "Redis lost acknowledged writes") != NULL,
              "shard %d: no error logged for the lost tail", s);
    free(log);
}

/* The cluster, a fresh database and one instance per shard. */
static void shards_up(void)
{
    cluster_up();
    char sockdir[RU_H_PATH + 8];
    snprintf(sockdir, sizeof(sockdir), "%s/sock", cdir);
    cr_assert(strlen(sockdir) < 90, "%s: too long for the status sockets", sockdir);
    cr_assert_eq(mkdir(sockdir, 0700), 0);
    char dbname[128], stream[128];
    ru_h_names(stream, group, dbname, sizeof(stream));
    snprintf(prefix, sizeof(prefix), "%s", stream);
    for (int s = 0; s < SHARDS; s++)
        snprintf(keys[s], sizeof(keys[s]), "%s:{%d}", prefix, s);
    ru_h_fresh_db(ci, sizeof(ci));
    pg = ru_h_pg_connect(ci);
    ru_h_genonaut_schema(pg);

    for (int s = 0; s < SHARDS; s++)
        daemon_start(s);
}

static void shards_down(void)
{
    for (int s = 0; s < SHARDS; s++) {
        int rc = ru_h_daemon_stop(&D[s]);
        cr_expect_eq(rc, 0, "rollupd shard %d exited with %d after SIGTERM", s, rc);
    }
    PQfinish(pg);
    for (long long i = 0; i < P.n; i++)
        free(P.lines[i]);
    free(P.lines);
    free(P.ack);
    free(P.ack_port);
    free(P.ack_ms);
    free(P.us);
    free(P.shard);
    free(P.unsure);
}

Test(shards, four_shards_through_failovers_and_resharding, .fini = cluster_down, .timeout = 600)
{
    shards_up();
    producer_start();
    load_phase("start");
    check_rollupctl_all();

    unsigned slot[SHARDS];
    for (int s = 0; s < SHARDS; s++)
        slot[s] = ru_cluster_keyslot(keys[s], strlen(keys[s]));

    /* each round puts another shard through each fault */
    int rounds = load_rounds();
    for (int r = 0; r < rounds; r++) {
        int a = r % SHARDS, b = (r + 1) % SHARDS, c = (r + 2) % SHARDS, k = (r + 3) % SHARDS;
        crash_master(slot[a]);
        load_phase("the crash of a master");

        manual_failover(slot[b]);
        load_phase("CLUSTER FAILOVER");

        migrate_slot(slot[c], other_master(slot[c]));
        load_phase("the migration of a slot");

        cr_log_info("kill -9 of rollupd shards %d and %d", k, a);
        ru_h_daemon_kill(&D[k], SIGKILL);
        ru_h_daemon_kill(&D[a], SIGKILL);
        ru_h_daemon_wait_exit(&D[k], 10000);
        ru_h_daemon_wait_exit(&D[a], 10000);
        ru_h_daemon_restart(&D[k]);
        ru_h_daemon_restart(&D[a]);
        load_phase("kill -9 of two instances");
    }

    producer_stop();
    if (!ru_h_wait(cond_drained_all, NULL, 90000)) {
        dump_logs();
        cr_assert_fail("the instances did not commit every entry of their streams in 90 s");
    }

    check_counts(NULL);
    lost_tail(1);
    shards_down();
}

static unsigned shard_of(long long i)
{
    char id[64];
    snprintf(id, sizeof(id), "%s-%lld", P.tag, i);
    return ru_cluster_shard(id, strlen(id), SHARDS);
}

static pid_t node_pid(int port)
{
    char path[RU_H_PATH + 32];
    snprintf(path, sizeof(path), "%s/%d/pid", cdir, port);
    FILE *f = fopen(path, "r");
    int pid = 0;
    cr_assert(f && fscanf(f, "%d", &pid) == 1 && pid > 0, "%s: no pid", path);
    fclose(f);
    return (pid_t)pid;
}

struct past {
    int shard;
    struct ru_sid id;
};

static bool cond_committed_past(void *arg)
{
    const struct past *p = arg;
    struct ru_sid done = committed_id(p->shard);
    return ru_sid_cmp(&done, &p->id) >= 0;
}

static bool cond_lost_tail_seen(void *arg)
{
    return ru_h_status_int(&D[*(int *)arg], "redis_lost_tail") >= 1;
}

/* What an unlucky kill -9 of a master does, made to happen: the master writes an event,
 * shard 0's instance reads and commits it, and the master dies before its replica has it
 * and before the producer has the reply. The producer writes the event again on the new
 * master. The stream then holds the event once and rollupd has counted it twice, once
 * per copy, as it must (each copy is an entry it read; README, Guarantees under
 * failover): the check tells this from a double count by the XADD that was in flight to
 * the killed master, and the instance reports the lost tail. */
Test(shards, a_retry_whose_first_copy_the_crash_took, .fini = cluster_down, .timeout = 300)
{
    shards_up();
    producer_init();
    for (; P.n < 400; P.n++)
        produce_one(P.n);
    while (shard_of(P.n) != 0) {
        produce_one(P.n);
        P.n++;
    }
    if (!ru_h_wait(cond_drained_all, NULL, 60000)) {
        dump_logs();
        cr_assert_fail("the instances did not commit the first events in 60 s");
    }

    /* the replica takes in nothing more: stopped, and its link closed by the master */
    unsigned slot = ru_cluster_keyslot(keys[0], strlen(keys[0]));
    int master = owner_port(slot), replica = 0;
    char id[64];
    cr_assert(node_ids(master, id, sizeof(id), &replica) && replica > 0);
    pid_t rpid = node_pid(replica);
    cr_assert_eq(kill(rpid, SIGSTOP), 0);
    redisReply *r = node_cmd(master, "CLIENT KILL TYPE replica");
    cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1, "CLIENT KILL TYPE replica");
    freeReplyObject(r);

    /* the first copy: written by the master, read and committed by the instance */
    long long e = P.n++;
    struct xadd x;
    prepare(e, &x);
    redisContext *c = node(master);
    cr_assert_not_null(c);
    int64_t sent = ru_mono_ms();
    r = redisCommandArgv(c, x.argc, x.argv, NULL);
    cr_assert(r && r->type == REDIS_REPLY_STRING);
    struct past first = {0, {0, 0}};
    cr_assert_eq(ru_sid_parse(&first.id, r->str, r->len), 0);
    freeReplyObject(r);
    redisFree(c);
    cr_assert(ru_h_wait(cond_committed_past, &first, 20000),
              "shard 0 did not commit the first copy in 20 s");

    /* the crash, the reply with it; the replica is promoted without the copy */
    struct slot_move m = {slot, master};
    int64_t t0 = ru_mono_ms();
    cr_assert_eq(rcluster("kill", master), 0);
    cr_assert_eq(kill(rpid, SIGCONT), 0);
    cr_assert(ru_h_wait(cond_owner_changed, &m, 60000), "no replica of %d was promoted", master);
    crashes[ncrashes++] = (struct crash){master, t0, ru_mono_ms()};
    note_unsure(e, master, sent);
    int zero = 0;
    cr_assert(ru_h_wait(cond_lost_tail_seen, &zero, 30000),
              "shard 0 did not report the stream's lost tail");

    /* the producer's retry: the same event, on the new master */
    send_event(e, &x);
    cr_assert_eq(rcluster("revive", master), 0);
    cr_assert_eq(rcluster("wait", 0), 0);
    for (long long end = P.n + 200; P.n < end; P.n++)
        produce_one(P.n);
    if (!ru_h_wait(cond_drained_all, NULL, 60000)) {
        dump_logs();
        cr_assert_fail("the instances did not commit every entry of their streams in 60 s");
    }

    struct counts k;
    check_counts(&k);
    cr_expect_eq(k.lost_by_crash, 1, "%lld copies counted and then lost in the crash, want 1",
                 k.lost_by_crash);
    cr_expect_eq(k.counted, k.in_streams + 1, "counted %lld, the streams hold %lld", k.counted,
                 k.in_streams);
    cr_expect_geq(k.lost_tail[0], 1);
    shards_down();
}

static bool cond_log_refusal(void *arg)
{
    char *log = ru_h_daemon_log(arg);
    bool found = strstr(log, "is not in the slot of") != NULL;
    free(log);
    return found;
}

/* redis.cluster "auto" cannot check the dead-letter stream's slot at load: the instance
 * refuses to read once a node says it is a cluster, with the reason, and creates nothing. */
Test(shards, auto_refuses_a_dead_letter_stream_in_another_slot, .fini = cluster_down,
     .timeout = 120)
{
    cluster_up();
    char dbname[128], stream[128];
    ru_h_names(stream, group, dbname, sizeof(stream));
    ru_h_fresh_db(ci, sizeof(ci));
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", ports[0]);
    struct ru_h_cfg k = {.stream = stream, .group = group, .conninfo = ci, .redis_url = url};
    char *text = ru_h_config(&k);
    struct ru_h_daemon d;
    ru_h_daemon_start(&d, text);
    free(text);
    cr_assert(ru_h_wait(cond_log_refusal, &d, 20000),
              "no refusal of the dead-letter stream's slot in the log");
    json_t *j = ru_h_status(d.sock);
    cr_assert_not_null(j);
    cr_expect(json_is_false(json_object_get(j, "redis_connected")));
    cr_expect(json_is_true(json_object_get(j, "redis_cluster")));
    cr_expect(strstr(json_string_value(json_object_get(j, "redis_last_error")),
                     "give both the same hash tag") != NULL);
    json_decref(j);
    int o = owner_port(ru_cluster_keyslot(stream, strlen(stream)));
    redisReply *r = node_cmd(o, "EXISTS %s", stream);
    cr_expect(r && r->type == REDIS_REPLY_INTEGER && r->integer == 0,
              "the stream was created although reading was refused");
    freeReplyObject(r);
    cr_expect_eq(ru_h_daemon_stop(&d), 0);
}
