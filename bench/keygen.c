/* rollupd-bench-keygen: writes an exact number of hourly keys into a Redis stream, for the
 * flush benchmark: ROWS distinct routes (/api/v1/bench/TAG/<i>, GET, params {}) in one
 * hour, EVENTS events each, interleaved row by row (e0 of every row, then e1, ...).
 * rollupd-loadgen cannot do this: its keys follow from its route/method/params universe.
 *
 * Per event: a duration drawn like genonaut traffic (mostly 1..200 ms, log-uniform; a
 * tail to 10 s) or a constant (--durations const), a user from a pool of --users ids
 * (0 = anonymous), status 200 (1 in 20 is a 404), response size 512.
 *
 * Prints one JSON object: events, rows, distinct (row, duration) pairs, distinct (row,
 * user) pairs, distinct users, and the histogram and user-set slots rollupd's store
 * allocates for them (store.c's growth rule replayed), so memory per key can be computed
 * without counting the per-value structures. */
#include "rollupd/util.h"

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "common.h"

#define MAX_DURATION 10000

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double unit(uint64_t *s)
{
    return (double)(splitmix64(s) >> 11) * 0x1.0p-53;
}

/* The value for (row, event): a pure function, so the same row gets the same sequence in
 * the simulation below and in the stream. */
static int duration_of(uint64_t seed, long row, long ev, bool constant)
{
    if (constant)
        return 100;
    uint64_t s = seed ^ ((uint64_t)row * 0x100000001b3ULL) ^ ((uint64_t)ev << 40);
    splitmix64(&s);
    double u = unit(&s);
    if (u < 0.02)
        return 0;
    if (u < 0.85)
        return (int)floor(exp(unit(&s) * log(201.0)));
    if (u < 0.98)
        return 200 + (int)floor(exp(unit(&s) * log(1800.0)));
    return 2000 + (int)(unit(&s) * 8001.0);
}

static int user_of(uint64_t seed, long row, long ev, int users)
{
    if (users <= 0)
        return -1;
    uint64_t s = (seed * 31) ^ ((uint64_t)row * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)ev << 32);
    splitmix64(&s);
    return (int)(unit(&s) * users);
}

static void uuid_of(uint64_t seed, int i, char out[37])
{
    uint64_t s = seed ^ 0xabcdef12345ULL ^ (uint64_t)i * 0x2545f4914f6cdd1dULL;
    uint64_t a = splitmix64(&s), b = splitmix64(&s);
    uint8_t x[16];
    memcpy(x, &a, 8);
    memcpy(x + 8, &b, 8);
    x[6] = (uint8_t)((x[6] & 0x0f) | 0x40);
    x[8] = (uint8_t)((x[8] & 0x3f) | 0x80);
    static const char hx[] = "0123456789abcdef";
    int k = 0;
    for (int j = 0; j < 16; j++) {
        if (j == 4 || j == 6 || j == 8 || j == 10)
            out[k++] = '-';
        out[k++] = hx[x[j] >> 4];
        out[k++] = hx[x[j] & 15];
    }
    out[k] = '\0';
}

/* store.c grows a per-key table before each add when (n + 1) * 4 > cap * 3, starting
 * at `first` slots; replays that for one key given its sequence of "is this value new". */
struct growth {
    uint32_t cap, n;
};

static void growth_add(struct growth *g, bool is_new, uint32_t first)
{
    if (g->cap == 0 || (g->n + 1) * 4 > g->cap * 3)
        g->cap = g->cap ? g->cap * 2 : first;
    if (is_new)
        g->n++;
}

static void usage(FILE *f)
{
    fputs("usage: rollupd-bench-keygen [options]\n"
          "  -h HOST, -p PORT      Redis address (default 127.0.0.1:6379)\n"
          "  -s STREAM             stream key\n"
          "  --rows R              distinct hourly keys (default 10000)\n"
          "  --events E            events per key (default 1)\n"
          "  --tag T               route component making the keys unique (default t)\n"
          "  --hour EPOCH          start of the hour (default: the previous hour)\n"
          "  --users U             user pool (default 200; 0 = anonymous)\n"
          "  --durations real|const  (default real)\n"
          "  --seed S              (default 1)\n"
          "  --pipeline N          commands per round trip (default 1000)\n",
          f);
}

/* What the command line asks for. */
struct keygen {
    struct bench_addr addr;
    const char *tag;
    int users, pipeline;
    long rows, events;
    long long hour;
    uint64_t seed;
    bool constant;
};

/* Reads the options into k; returns -1 to go on, or the exit status (0 after --help). */
static int parse_args(struct keygen *k, int argc, char **argv)
{
    *k = (struct keygen){BENCH_ADDR_DEFAULT, "t", 200, 1000, 10000, 1, -1, 1, false};
    static const struct option lopts[] = {
        {"rows", required_argument, NULL, 'R'},  {"events", required_argument, NULL, 'E'},
        {"tag", required_argument, NULL, 'T'},   {"hour", required_argument, NULL, 'O'},
        {"users", required_argument, NULL, 'U'}, {"durations", required_argument, NULL, 'D'},
        {"seed", required_argument, NULL, 'S'},  {"pipeline", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'H'},        {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "h:p:s:", lopts, NULL)) != -1) {
        switch (o) {
        case 'R':
            k->rows = atol(optarg);
            break;
        case 'E':
            k->events = atol(optarg);
            break;
        case 'T':
            k->tag = optarg;
            break;
        case 'O':
            k->hour = atoll(optarg);
            break;
        case 'U':
            k->users = atoi(optarg);
            break;
        case 'D':
            if (strcmp(optarg, "const") == 0)
                k->constant = true;
            else if (strcmp(optarg, "real") != 0)
                die("--durations: real or const");
            break;
        case 'S':
            k->seed = strtoull(optarg, NULL, 10);
            break;
        case 'P':
            k->pipeline = atoi(optarg);
            break;
        case 'H':
            usage(stdout);
            return 0;
        default:
            if (bench_addr_opt(&k->addr, o, optarg))
                break;
            usage(stderr);
            return 2;
        }
    }
    if (k->rows < 1 || k->events < 1 || k->users < 0 || k->pipeline < 1 || k->addr.port < 1 ||
        k->addr.port > 65535)
        die("bad arguments (see --help)");
    k->hour = bench_hour(k->hour);
    return -1;
}

/* The per-key structures rollupd's store will allocate, replaying store.c's growth. */
struct expect {
    uint64_t hist_slots, user_slots, row_durations, row_users;
    long distinct_users;
};

static struct expect simulate(const struct keygen *k)
{
    struct expect x = {0, 0, 0, 0, 0};
    uint8_t *seen_d = ru_xcalloc(MAX_DURATION + 1, 1);
    uint8_t *seen_u = ru_xcalloc((size_t)k->users + 1, 1);
    uint8_t *any_u = ru_xcalloc((size_t)k->users + 1, 1);
    for (long r = 0; r < k->rows; r++) {
        struct growth gh = {0, 0}, gu = {0, 0};
        memset(seen_d, 0, MAX_DURATION + 1);
        memset(seen_u, 0, (size_t)k->users + 1);
        for (long e = 0; e < k->events; e++) {
            int d = duration_of(k->seed, r, e, k->constant);
            growth_add(&gh, !seen_d[d], 8);
            seen_d[d] = 1;
            int u = user_of(k->seed, r, e, k->users);
            if (u >= 0) {
                growth_add(&gu, !seen_u[u], 4);
                seen_u[u] = 1;
                any_u[u] = 1;
            }
        }
        x.hist_slots += gh.cap;
        x.user_slots += gu.cap;
        x.row_durations += gh.n;
        x.row_users += gu.n;
    }
    for (int u = 0; u < k->users; u++)
        x.distinct_users += any_u[u];
    free(seen_d);
    free(seen_u);
    free(any_u);
    return x;
}

/* Appends the XADD of event i (row i % rows, its event i / rows) to c's output buffer;
 * tsr draws the timestamps, in order. */
static void append_event(redisContext *c, const struct keygen *k, long long i, uint64_t *tsr)
{
    char route[256], ts[40], dur[16], uid[37], status[8];
    const char *av[26];
    long e = (long)(i / k->rows), r = (long)(i % k->rows);
    snprintf(route, sizeof(route), "/api/v1/bench/%s/%ld", k->tag, r);
    long long off_us = (long long)(unit(tsr) * 3599999999.0);
    snprintf(ts, sizeof(ts), "%lld.%06lld", k->hour + off_us / 1000000, off_us % 1000000);
    snprintf(dur, sizeof(dur), "%d", duration_of(k->seed, r, e, k->constant));
    int u = user_of(k->seed, r, e, k->users);
    if (u >= 0)
        uuid_of(k->seed, u, uid);
    else
        uid[0] = '\0';
    snprintf(status, sizeof(status), "%d", (r + e) % 20 == 19 ? 404 : 200);
    int a = 0;
    av[a++] = "XADD";
    av[a++] = k->addr.stream;
    av[a++] = "*";
    av[a++] = "route";
    av[a++] = route;
    av[a++] = "method";
    av[a++] = "GET";
    av[a++] = "user_id";
    av[a++] = uid;
    av[a++] = "timestamp";
    av[a++] = ts;
    av[a++] = "duration_ms";
    av[a++] = dur;
    av[a++] = "status_code";
    av[a++] = status;
    av[a++] = "query_params";
    av[a++] = "{}";
    av[a++] = "query_params_normalized";
    av[a++] = "{}";
    av[a++] = "request_size_bytes";
    av[a++] = "0";
    av[a++] = "response_size_bytes";
    av[a++] = "512";
    av[a++] = "error_type";
    av[a++] = status[0] == '4' ? "client_error" : "";
    if (redisAppendCommandArgv(c, a, av, NULL) != REDIS_OK)
        die("XADD: %s", c->errstr);
}

/* Writes every event, --pipeline commands a round trip; returns the seconds it took. */
static double send_events(redisContext *c, const struct keygen *k, long long total)
{
    int64_t t0 = ru_mono_us();
    uint64_t tsr = k->seed ^ 0x7357ULL;
    long long sent = 0;
    while (sent < total) {
        long long n = total - sent < k->pipeline ? total - sent : k->pipeline;
        for (long long j = 0; j < n; j++)
            append_event(c, k, sent + j, &tsr);
        for (long long j = 0; j < n; j++) {
            redisReply *rep = NULL;
            if (redisGetReply(c, (void **)&rep) != REDIS_OK || rep == NULL)
                die("XADD: %s", c->errstr[0] ? c->errstr : "no reply");
            if (rep->type == REDIS_REPLY_ERROR)
                die("XADD: %s", rep->str);
            freeReplyObject(rep);
        }
        sent += n;
    }
    return (double)(ru_mono_us() - t0) / 1e6;
}

int main(int argc, char **argv)
{
    struct keygen k;
    int rc = parse_args(&k, argc, argv);
    if (rc >= 0)
        return rc;
    struct expect x = simulate(&k);
    redisContext *c = bench_redis(&k.addr, 60);
    long long total = (long long)k.rows * k.events;
    double secs = send_events(c, &k, total);
    redisFree(c);
    printf("{\"events\":%lld,\"rows\":%ld,\"events_per_row\":%ld,\"hour\":%lld,"
           "\"row_durations\":%" PRIu64 ",\"row_users\":%" PRIu64 ",\"distinct_users\":%ld,"
           "\"hist_slots\":%" PRIu64 ",\"user_slots\":%" PRIu64 ",\"seconds\":%.3f}\n",
           total, k.rows, k.events, k.hour, x.row_durations, x.row_users, x.distinct_users,
           x.hist_slots, x.user_slots, secs);
    return 0;
}
