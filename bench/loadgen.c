/* rollupd-loadgen: writes genonaut-shaped route analytics events into a Redis stream with
 * pipelined XADD, optionally at a fixed rate, and optionally appends every valid event to an
 * "oracle" file (PostgreSQL COPY text) so tests can recompute genonaut's aggregation in SQL.
 *
 * Deterministic: the same --seed, --start-ts, --hours, -n and fractions give the same
 * events (except with --now-ts). The route/user/params universe depends only on --routes
 * and --users, so runs with different seeds share routes, users and parameter sets. */
#include "rollupd/util.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#define BENCH_PROG "loadgen"
#include "common.h"

#define USEC_PER_SEC  INT64_C(1000000)
#define USEC_PER_HOUR INT64_C(3600000000)
#define MAX_FIELDS    24
#define MAX_KV        12
#define MAX_LIST      6
/* --mix light: routes of at most this many bytes (genonaut's real sample averages 27) */
#define LIGHT_ROUTE_MAX 26

/* ------------------------------------------------------------------ options */

struct opts {
    char host[256];
    int port;
    const char *stream;
    long long count;
    uint64_t seed;
    double rate;
    bool have_start;
    double start_ts;
    double hours;
    bool have_late;
    double late_frac;
    double invalid_frac;
    int routes;
    int users;
    const char *oracle;
    bool now_ts;
    bool quiet;
    long long maxlen;
    int pipeline;
    bool have_id_offset;
    long long id_offset_ms;
    bool light;          /* --mix light */
    double hour_seconds; /* --hour-seconds: 0 = event time runs with the clock */
};

static void usage(FILE *f)
{
    fputs("usage: rollupd-loadgen [options]\n"
          "  -u HOST:PORT         Redis address (default 127.0.0.1:6379)\n"
          "  -h HOST, -p PORT     Redis host and port\n"
          "  -s STREAM            stream key (default genonaut_demo:route_analytics:stream)\n"
          "  -n COUNT             entries to write (default 10000)\n"
          "  --seed S             random seed (default 1)\n"
          "  --rate EPS           entries per second, 0 = full speed (default 0)\n"
          "  --start-ts EPOCH     time of the first event (default now - HOURS; with\n"
          "                       --hour-seconds, now)\n"
          "  --hours H            spread event times over H hours (default 3)\n"
          "  --late-frac F        fraction of events timed in an earlier hour (default 0.05;\n"
          "                       0 with --now-ts unless given)\n"
          "  --invalid-frac F     fraction of malformed entries (default 0)\n"
          "  --routes N           distinct routes (default 25)\n"
          "  --users N            distinct users (default 200)\n"
          "  --oracle FILE        append every valid event to FILE (COPY text)\n"
          "  --now-ts             time every event with the current clock\n"
          "  --hour-seconds S     with --now-ts: event time runs 3600/S times faster than the\n"
          "                       clock, an hour of it every S seconds; at --start-ts (default\n"
          "                       now) it reads the start of that hour\n"
          "  --maxlen N           XADD MAXLEN ~ N\n"
          "  --pipeline N         commands per pipeline (default 500)\n"
          "  --id-offset-ms MS    explicit entry ids MS milliseconds from now (e.g. 86400000:\n"
          "                       a day ahead of the clock), rising within the run\n"
          "  --mix MIX            heavy (default: every field, the long routes too) or light\n"
          "                       (like genonaut's real sample: routes of at most 26 bytes, half\n"
          "                       the events with empty params, no user, sizes, cache or db\n"
          "                       count)\n"
          "  --quiet              no progress output (the final line is always printed)\n",
          f);
}

static double parse_double(const char *opt, const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        die("%s: '%s' is not a number from %g to %g", opt, s, lo, hi);
    return v;
}

static long long parse_ll(const char *opt, const char *s, long long lo, long long hi)
{
    int64_t v;
    if (ru_parse_i64(s, strlen(s), &v) < 0 || v < lo || v > hi)
        die("%s: '%s' is not an integer from %lld to %lld", opt, s, lo, hi);
    return (long long)v;
}

static void parse_hostport(struct opts *o, const char *s)
{
    if (strncmp(s, "redis://", 8) == 0)
        s += 8;
    const char *colon = strrchr(s, ':');
    if (colon == NULL) {
        ru_strlcpy(o->host, s, sizeof(o->host));
        return;
    }
    size_t hl = (size_t)(colon - s);
    if (hl == 0 || hl >= sizeof(o->host))
        die("-u: bad address '%s'", s);
    memcpy(o->host, s, hl);
    o->host[hl] = '\0';
    o->port = (int)parse_ll("-u", colon + 1, 1, 65535);
}

enum {
    OPT_SEED = 1000,
    OPT_RATE,
    OPT_START,
    OPT_HOURS,
    OPT_LATE,
    OPT_INVALID,
    OPT_ROUTES,
    OPT_USERS,
    OPT_ORACLE,
    OPT_NOW,
    OPT_QUIET,
    OPT_MAXLEN,
    OPT_PIPELINE,
    OPT_ID_OFFSET,
    OPT_MIX,
    OPT_HOUR_SECONDS,
    OPT_HELP,
};

static void parse_opts(struct opts *o, int argc, char **argv)
{
    static const struct option lopts[] = {
        {"seed", required_argument, NULL, OPT_SEED},
        {"rate", required_argument, NULL, OPT_RATE},
        {"start-ts", required_argument, NULL, OPT_START},
        {"hours", required_argument, NULL, OPT_HOURS},
        {"late-frac", required_argument, NULL, OPT_LATE},
        {"invalid-frac", required_argument, NULL, OPT_INVALID},
        {"routes", required_argument, NULL, OPT_ROUTES},
        {"users", required_argument, NULL, OPT_USERS},
        {"oracle", required_argument, NULL, OPT_ORACLE},
        {"now-ts", no_argument, NULL, OPT_NOW},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {"maxlen", required_argument, NULL, OPT_MAXLEN},
        {"pipeline", required_argument, NULL, OPT_PIPELINE},
        {"id-offset-ms", required_argument, NULL, OPT_ID_OFFSET},
        {"mix", required_argument, NULL, OPT_MIX},
        {"hour-seconds", required_argument, NULL, OPT_HOUR_SECONDS},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    ru_strlcpy(o->host, "127.0.0.1", sizeof(o->host));
    o->port = 6379;
    o->stream = "genonaut_demo:route_analytics:stream";
    o->count = 10000;
    o->seed = 1;
    o->hours = 3;
    o->late_frac = 0.05;
    o->routes = 25;
    o->users = 200;
    o->pipeline = 500;
    int c;
    while ((c = getopt_long(argc, argv, "u:h:p:s:n:q", lopts, NULL)) != -1) {
        switch (c) {
        case 'u':
            parse_hostport(o, optarg);
            break;
        case 'h':
            ru_strlcpy(o->host, optarg, sizeof(o->host));
            break;
        case 'p':
            o->port = (int)parse_ll("-p", optarg, 1, 65535);
            break;
        case 's':
            o->stream = optarg;
            break;
        case 'n':
            o->count = parse_ll("-n", optarg, 0, INT64_MAX / 2);
            break;
        case OPT_SEED:
            o->seed = (uint64_t)parse_ll("--seed", optarg, INT64_MIN, INT64_MAX);
            break;
        case OPT_RATE:
            o->rate = parse_double("--rate", optarg, 0, 1e9);
            break;
        case OPT_START:
            o->start_ts = parse_double("--start-ts", optarg, 0, 253402297200.0);
            o->have_start = true;
            break;
        case OPT_HOURS:
            o->hours = parse_double("--hours", optarg, 1e-6, 24 * 366 * 10);
            break;
        case OPT_LATE:
            o->late_frac = parse_double("--late-frac", optarg, 0, 1);
            o->have_late = true;
            break;
        case OPT_INVALID:
            o->invalid_frac = parse_double("--invalid-frac", optarg, 0, 1);
            break;
        case OPT_ROUTES:
            o->routes = (int)parse_ll("--routes", optarg, 1, 1000000);
            break;
        case OPT_USERS:
            o->users = (int)parse_ll("--users", optarg, 1, 10000000);
            break;
        case OPT_ORACLE:
            o->oracle = optarg;
            break;
        case OPT_NOW:
            o->now_ts = true;
            break;
        case 'q':
        case OPT_QUIET:
            o->quiet = true;
            break;
        case OPT_MAXLEN:
            o->maxlen = parse_ll("--maxlen", optarg, 1, INT64_MAX);
            break;
        case OPT_PIPELINE:
            o->pipeline = (int)parse_ll("--pipeline", optarg, 1, 100000);
            break;
        case OPT_MIX:
            if (strcmp(optarg, "light") != 0 && strcmp(optarg, "heavy") != 0)
                die("--mix: expected heavy or light, not '%s'", optarg);
            o->light = strcmp(optarg, "light") == 0;
            break;
        case OPT_HOUR_SECONDS:
            o->hour_seconds = parse_double("--hour-seconds", optarg, 1, 3600);
            break;
        case OPT_ID_OFFSET:
            o->id_offset_ms = parse_ll("--id-offset-ms", optarg, -1000000000000LL, 1000000000000LL);
            o->have_id_offset = true;
            break;
        case OPT_HELP:
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc)
        die("unexpected argument '%s' (see --help)", argv[optind]);
    if (o->now_ts && !o->have_late)
        o->late_frac = 0;
    if (o->hour_seconds > 0 && !o->now_ts)
        die("--hour-seconds: only with --now-ts");
    if (!o->have_start)
        o->start_ts = floor(ru_wall_s() - (o->hour_seconds > 0 ? 0 : o->hours * 3600.0));
}

/* ------------------------------------------------------------------ random numbers */

/* xoshiro256** seeded with splitmix64: fast, and identical on every platform. */
struct rng {
    uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1). */
static double rng_unit(struct rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform in [0, n) (n > 0). */
static uint64_t rng_below(struct rng *r, uint64_t n)
{
    return (uint64_t)(rng_unit(r) * (double)n);
}

static bool rng_chance(struct rng *r, double p)
{
    return rng_unit(r) < p;
}

/* Zipf-like pick from [0, n): index i has weight 1 / (i + 1)^s, by inversion of the
 * continuous approximation (cheap, deterministic, good enough for a load shape). */
static uint64_t rng_zipf(struct rng *r, uint64_t n, double s)
{
    if (n <= 1)
        return 0;
    double u = rng_unit(r);
    double x;
    if (fabs(s - 1.0) < 1e-9) {
        x = exp(u * log((double)n + 1.0)) - 1.0;
    } else {
        double a = 1.0 - s;
        double hi = pow((double)n + 1.0, a);
        x = pow(1.0 + u * (hi - 1.0), 1.0 / a) - 1.0;
    }
    uint64_t i = (uint64_t)x;
    return i < n ? i : n - 1;
}

static void rng_uuid(struct rng *r, char out[37])
{
    uint8_t b[16];
    uint64_t a = rng_next(r), c = rng_next(r);
    memcpy(b, &a, 8);
    memcpy(b + 8, &c, 8);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    static const char hx[] = "0123456789abcdef";
    int k = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[k++] = '-';
        out[k++] = hx[b[i] >> 4];
        out[k++] = hx[b[i] & 15];
    }
    out[k] = '\0';
}

/* ------------------------------------------------------------------ the universe */

/* A query parameter value: a string, a list of strings or a number. */
enum pkind { PV_STR, PV_LIST, PV_NUM };
struct pkv {
    const char *key;
    enum pkind kind;
    const char *s;              /* PV_STR */
    const char *list[MAX_LIST]; /* PV_LIST */
    int nlist;
    long num; /* PV_NUM */
};
struct pset {
    int n;
    struct pkv kv[MAX_KV];
};

enum status_profile { SP_NORMAL, SP_NOTFOUND, SP_REDIRECT, SP_CREATE, SP_AUTH };

enum params_kind {
    PK_NONE,
    PK_USER,
    PK_TAGS,
    PK_HISTORY,
    PK_UNIFIED,
    PK_NOTIF,
    PK_MODELS,
    PK_JOBS,
    PK_ANALYTICS,
    PK_SEARCH,
    PK_POPULAR,
    PK_STATS,
};

#define M_GET     1u
#define M_OPTIONS 2u
#define M_POST    4u
#define M_PUT     8u
#define M_DELETE  16u

struct tmpl {
    const char *pattern; /* "%U" = a user id, "%I" = a numeric id, "%J" = a job uuid */
    unsigned methods;
    int resp_size;
    enum params_kind params;
    enum status_profile status;
};

/* Ordered roughly by popularity (the Zipf pick favours the first ones). */
static const struct tmpl TEMPLATES[] = {
    {"/api/v1/notifications/unread/count", M_GET | M_OPTIONS, 18, PK_USER, SP_NORMAL},
    {"/api/v1/content/unified", M_GET | M_OPTIONS, 43703, PK_UNIFIED, SP_NORMAL},
    {"/api/v1/users/%U", M_GET | M_OPTIONS | M_PUT, 315, PK_NONE, SP_NORMAL},
    {"/api/v1/tags/", M_GET | M_OPTIONS, 22483, PK_TAGS, SP_NORMAL},
    {"/api/v1/tags", M_GET | M_OPTIONS, 0, PK_TAGS, SP_REDIRECT},
    {"/api/v1/images/%I", M_GET, 28, PK_NONE, SP_NOTFOUND},
    {"/api/v1/users/%U/search-history", M_GET | M_OPTIONS | M_POST, 846, PK_HISTORY, SP_NORMAL},
    {"/api/v1/checkpoint-models/", M_GET | M_OPTIONS, 5120, PK_MODELS, SP_NORMAL},
    {"/api/v1/lora-models/", M_GET | M_OPTIONS, 7340, PK_MODELS, SP_NORMAL},
    {"/api/v1/generation-jobs/", M_GET | M_OPTIONS | M_POST, 2210, PK_JOBS, SP_CREATE},
    {"/api/v1/generation-jobs/%J", M_GET | M_DELETE, 612, PK_NONE, SP_NORMAL},
    {"/api/v1/notifications/", M_GET | M_OPTIONS, 3150, PK_NOTIF, SP_NORMAL},
    {"/api/v1/content/%I", M_GET | M_OPTIONS, 1450, PK_NONE, SP_NOTFOUND},
    {"/api/v1/tags/hierarchy", M_GET, 61234, PK_NONE, SP_NORMAL},
    {"/api/v1/tags/popular", M_GET, 2048, PK_POPULAR, SP_NORMAL},
    {"/api/v1/users/%U/favorites", M_GET | M_POST | M_DELETE, 980, PK_HISTORY, SP_NORMAL},
    {"/api/v1/content/stats/unified", M_GET, 212, PK_STATS, SP_NORMAL},
    {"/api/v1/search", M_GET | M_OPTIONS, 8800, PK_SEARCH, SP_NORMAL},
    {"/api/v1/auth/me", M_GET, 240, PK_NONE, SP_AUTH},
    {"/api/v1/analytics/routes/cache-priorities", M_GET, 4096, PK_ANALYTICS, SP_NORMAL},
    {"/api/v1/analytics/routes/performance", M_GET, 5400, PK_ANALYTICS, SP_NORMAL},
    {"/api/v1/interactions/", M_POST | M_OPTIONS, 96, PK_NONE, SP_CREATE},
    {"/api/v1/recommendations/", M_GET, 3300, PK_USER, SP_NORMAL},
    {"/api/v1/admin/flagged-content/", M_GET, 1200, PK_JOBS, SP_AUTH},
    {"/api/v1/health", M_GET, 15, PK_NONE, SP_NORMAL},
};

struct route {
    char *path;
    const struct tmpl *t;
    struct pset *sets;
    int nsets;
};

struct universe {
    struct route *routes;
    int nroutes;
    int *short_routes; /* indexes of the routes of at most LIGHT_ROUTE_MAX bytes */
    int nshort;
    char (*users)[37];
    int nusers;
    char (*tags)[37];
    int ntags;
};

static const char *SEARCH_TERMS[] = {
    "\"grumpy cat\"", "sunset", "café au lait", "C:\\temp\\x",
    "tab\there",      "日本",   "a/b?c=d",      "grumpy 🐱",
};
static const char *SORTS[] = {"name-asc", "name-desc", "created-desc", "popularity"};
static const char *SOURCES[] = {"user-regular", "community-regular", "community-auto", "user-auto"};
static const char *STATES[] = {"pending", "running", "completed", "failed"};

static const char *uni_tag(const struct universe *u, struct rng *r)
{
    return u->tags[rng_below(r, (uint64_t)u->ntags)];
}

static const char *uni_user(const struct universe *u, struct rng *r)
{
    return u->users[rng_zipf(r, (uint64_t)u->nusers, 0.8)];
}

static void ps_str(struct pset *p, const char *k, const char *v)
{
    struct pkv *kv = &p->kv[p->n++];
    kv->key = k;
    kv->kind = PV_STR;
    kv->s = v;
}

static void ps_num(struct pset *p, const char *k, long v)
{
    struct pkv *kv = &p->kv[p->n++];
    kv->key = k;
    kv->kind = PV_NUM;
    kv->num = v;
}

static struct pkv *ps_list(struct pset *p, const char *k)
{
    struct pkv *kv = &p->kv[p->n++];
    kv->key = k;
    kv->kind = PV_LIST;
    kv->nlist = 0;
    return kv;
}

static void make_sets(struct route *rt, const struct universe *u, struct rng *r)
{
    static const char *sizes[] = {"10", "20", "25", "50", "100"};
    int n = 1;
    switch (rt->t->params) {
    case PK_NONE:
        n = 1;
        break;
    case PK_USER:
    case PK_HISTORY:
    case PK_MODELS:
    case PK_POPULAR:
        n = 1 + (int)rng_below(r, 2);
        break;
    default:
        n = 2 + (int)rng_below(r, 3);
        break;
    }
    rt->sets = ru_xcalloc((size_t)n, sizeof(struct pset));
    rt->nsets = n;
    for (int i = 0; i < n; i++) {
        struct pset *p = &rt->sets[i];
        struct pkv *kv;
        switch (rt->t->params) {
        case PK_NONE:
            break;
        case PK_USER:
            ps_str(p, "user_id", uni_user(u, r));
            break;
        case PK_TAGS:
            if (rng_chance(r, 0.6))
                ps_str(p, "sort", SORTS[rng_below(r, RU_ARRAY_LEN(SORTS))]);
            ps_str(p, "page_size", sizes[rng_below(r, RU_ARRAY_LEN(sizes))]);
            break;
        case PK_HISTORY:
            ps_str(p, "page_size", sizes[rng_below(r, 2)]);
            break;
        case PK_UNIFIED:
            kv = ps_list(p, "tag");
            for (int k = 0, m = 1 + (int)rng_below(r, 3); k < m; k++)
                kv->list[kv->nlist++] = uni_tag(u, r);
            ps_str(p, "user_id", uni_user(u, r));
            ps_str(p, "page_size", "25");
            ps_str(p, "sort_field", rng_chance(r, 0.7) ? "created_at" : "quality_score");
            ps_str(p, "sort_order", rng_chance(r, 0.8) ? "desc" : "asc");
            if (rng_chance(r, 0.7))
                ps_str(p, "search_term", SEARCH_TERMS[rng_below(r, RU_ARRAY_LEN(SEARCH_TERMS))]);
            ps_str(p, "include_stats", "false");
            kv = ps_list(p, "content_source_types");
            for (int k = 0, m = 1 + (int)rng_below(r, 4); k < m; k++)
                kv->list[kv->nlist++] = SOURCES[k];
            break;
        case PK_NOTIF:
            ps_str(p, "page_size", sizes[rng_below(r, 3)]);
            if (rng_chance(r, 0.5))
                ps_str(p, "unread_only", rng_chance(r, 0.5) ? "true" : "false");
            if (rng_chance(r, 0.3))
                ps_str(p, "user_id", uni_user(u, r));
            break;
        case PK_MODELS:
            if (rng_chance(r, 0.5))
                ps_str(p, "sort", SORTS[rng_below(r, RU_ARRAY_LEN(SORTS))]);
            break;
        case PK_JOBS:
            kv = ps_list(p, "status");
            for (int k = 0, m = 1 + (int)rng_below(r, 3); k < m; k++)
                kv->list[kv->nlist++] = STATES[k];
            ps_str(p, "page_size", sizes[rng_below(r, RU_ARRAY_LEN(sizes))]);
            break;
        case PK_ANALYTICS:
            /* numeric values: exercise 20 vs 20.0 */
            ps_num(p, "days", (long)(1 + rng_below(r, 30)));
            ps_num(p, "n", (long)(10 * (1 + rng_below(r, 5))));
            if (rng_chance(r, 0.5))
                ps_str(p, "system", rng_chance(r, 0.5) ? "relative" : "absolute");
            break;
        case PK_SEARCH:
            ps_str(p, "q", SEARCH_TERMS[rng_below(r, RU_ARRAY_LEN(SEARCH_TERMS))]);
            if (rng_chance(r, 0.5))
                ps_str(p, "sort", SORTS[rng_below(r, RU_ARRAY_LEN(SORTS))]);
            break;
        case PK_POPULAR:
            ps_num(p, "min_count", (long)rng_below(r, 50));
            break;
        case PK_STATS:
            ps_str(p, "user_id", uni_user(u, r));
            if (rng_chance(r, 0.5))
                ps_num(p, "window_hours", 24);
            break;
        }
    }
}

static void universe_build(struct universe *u, int nroutes, int nusers)
{
    struct rng r;
    rng_seed(&r, 0x5eed0f6e6e0a75ULL);
    u->nusers = nusers;
    u->users = ru_xcalloc((size_t)nusers, sizeof(*u->users));
    for (int i = 0; i < nusers; i++)
        rng_uuid(&r, u->users[i]);
    u->ntags = 40;
    u->tags = ru_xcalloc((size_t)u->ntags, sizeof(*u->tags));
    for (int i = 0; i < u->ntags; i++)
        rng_uuid(&r, u->tags[i]);

    u->nroutes = nroutes;
    u->routes = ru_xcalloc((size_t)nroutes, sizeof(struct route));
    size_t nt = RU_ARRAY_LEN(TEMPLATES);
    for (int i = 0; i < nroutes; i++) {
        struct route *rt = &u->routes[i];
        const struct tmpl *t = &TEMPLATES[(size_t)i % nt];
        /* templates without a placeholder can only appear once */
        if (i >= (int)nt && strchr(t->pattern, '%') == NULL) {
            for (size_t k = 0; k < nt; k++) {
                const struct tmpl *c = &TEMPLATES[(k + (size_t)i) % nt];
                if (strchr(c->pattern, '%')) {
                    t = c;
                    break;
                }
            }
        }
        rt->t = t;
        struct ru_buf b = RU_BUF_INIT;
        for (const char *p = t->pattern; *p; p++) {
            if (p[0] == '%' && p[1] == 'U') {
                /* the first instance shows the most active user; later ones (more routes
                 * than templates) show other profiles, so every path stays distinct */
                char id[37];
                if (i < (int)nt)
                    ru_strlcpy(id, u->users[0], sizeof(id));
                else
                    rng_uuid(&r, id);
                ru_buf_puts(&b, id);
                p++;
            } else if (p[0] == '%' && p[1] == 'J') {
                char id[37];
                rng_uuid(&r, id);
                ru_buf_puts(&b, id);
                p++;
            } else if (p[0] == '%' && p[1] == 'I') {
                /* distinct per route index */
                ru_buf_printf(&b, "%" PRIu64, 1000 + (uint64_t)i * 64 + rng_below(&r, 64));
                p++;
            } else {
                ru_buf_putc(&b, *p);
            }
        }
        rt->path = b.p;
        make_sets(rt, u, &r);
    }
    u->short_routes = ru_xcalloc((size_t)nroutes, sizeof(int));
    for (int i = 0; i < nroutes; i++)
        if (strlen(u->routes[i].path) <= LIGHT_ROUTE_MAX)
            u->short_routes[u->nshort++] = i;
}

static void universe_free(struct universe *u)
{
    for (int i = 0; i < u->nroutes; i++) {
        free(u->routes[i].path);
        free(u->routes[i].sets);
    }
    free(u->routes);
    free(u->short_routes);
    free(u->users);
    free(u->tags);
    memset(u, 0, sizeof(*u));
}

/* ------------------------------------------------------------------ JSON spelling */

/* Spelling variations of one JSON object; all of them are jsonb-equal to the plain one. */
struct spell {
    bool shuffle;   /* different key order */
    bool spaces;    /* extra white space, including newlines and tabs */
    bool esc_key;   /* one key character written as a \u escape (e.g. \u0073ort) */
    bool dup;       /* a duplicate key whose last value is the real one */
    bool num_float; /* 20 -> 20.0 / 2e1 / 20.00 */
    bool raw_utf8;  /* non-ASCII written as UTF-8 rather than \u escapes */
    int num_style;
};

/* Appends a JSON string, Python json.dumps style (ensure_ascii) unless raw_utf8. With
 * esc_one, one ASCII character (the first 's', else the first one) is written as a \u
 * escape instead: "\u0073ort" for "sort". */
static void json_str(struct ru_buf *b, const char *s, bool raw_utf8, bool esc_one)
{
    static const char hx[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *esc = NULL;
    if (esc_one && *s) {
        const char *k = strchr(s, 's');
        esc = (const unsigned char *)(k ? k : s);
    }
    ru_buf_putc(b, '"');
    while (*p) {
        unsigned c = *p;
        if (p == esc && c < 0x80) {
            ru_buf_printf(b, "\\u%04x", c);
            p++;
            continue;
        }
        if (c == '"' || c == '\\') {
            ru_buf_putc(b, '\\');
            ru_buf_putc(b, (char)c);
            p++;
        } else if (c == '\n') {
            ru_buf_puts(b, "\\n");
            p++;
        } else if (c == '\t') {
            ru_buf_puts(b, "\\t");
            p++;
        } else if (c == '\r') {
            ru_buf_puts(b, "\\r");
            p++;
        } else if (c < 0x20) {
            ru_buf_printf(b, "\\u%04x", c);
            p++;
        } else if (c < 0x80 || raw_utf8) {
            ru_buf_putc(b, (char)c);
            p++;
        } else {
            /* decode one UTF-8 sequence (the inputs are our own valid constants) */
            unsigned cp;
            int len;
            if (c >= 0xf0) {
                cp = c & 0x07;
                len = 4;
            } else if (c >= 0xe0) {
                cp = c & 0x0f;
                len = 3;
            } else {
                cp = c & 0x1f;
                len = 2;
            }
            for (int i = 1; i < len; i++)
                cp = (cp << 6) | (p[i] & 0x3f);
            p += len;
            if (cp >= 0x10000) {
                cp -= 0x10000;
                unsigned hi = 0xd800 + (cp >> 10), lo = 0xdc00 + (cp & 0x3ff);
                ru_buf_printf(b, "\\u%04x\\u%04x", hi, lo);
            } else {
                ru_buf_puts(b, "\\u");
                ru_buf_putc(b, hx[(cp >> 12) & 15]);
                ru_buf_putc(b, hx[(cp >> 8) & 15]);
                ru_buf_putc(b, hx[(cp >> 4) & 15]);
                ru_buf_putc(b, hx[cp & 15]);
            }
        }
    }
    ru_buf_putc(b, '"');
}

static void json_ws(struct ru_buf *b, struct rng *r, const struct spell *sp)
{
    static const char *ws[] = {" ", "  ", "\n", "\t", " \n  ", ""};
    if (sp->spaces)
        ru_buf_puts(b, ws[rng_below(r, RU_ARRAY_LEN(ws))]);
}

static void json_num(struct ru_buf *b, long v, const struct spell *sp)
{
    if (!sp->num_float) {
        ru_buf_printf(b, "%ld", v);
        return;
    }
    switch (sp->num_style % 4) {
    case 0:
        ru_buf_printf(b, "%ld.0", v);
        break;
    case 1:
        ru_buf_printf(b, "%ld.00", v);
        break;
    case 2:
        ru_buf_printf(b, "%ld0e-1", v);
        break;
    default:
        ru_buf_printf(b, "%ldE0", v);
        break;
    }
}

static void json_value(struct ru_buf *b, const struct pkv *kv, struct rng *r,
                       const struct spell *sp)
{
    switch (kv->kind) {
    case PV_STR:
        json_str(b, kv->s, sp->raw_utf8, false);
        break;
    case PV_NUM:
        json_num(b, kv->num, sp);
        break;
    case PV_LIST:
        ru_buf_putc(b, '[');
        for (int i = 0; i < kv->nlist; i++) {
            if (i) {
                json_ws(b, r, sp);
                ru_buf_puts(b, sp->spaces ? "," : ", ");
            }
            json_ws(b, r, sp);
            json_str(b, kv->list[i], sp->raw_utf8, false);
        }
        json_ws(b, r, sp);
        ru_buf_putc(b, ']');
        break;
    }
}

/* Writes the object made of set (plus, for query_params, the paging keys in extra). */
static void json_object(struct ru_buf *b, const struct pset *set, const struct pset *extra,
                        struct rng *r, const struct spell *sp)
{
    const struct pkv *items[2 * MAX_KV];
    int n = 0;
    if (extra)
        for (int i = 0; i < extra->n; i++)
            items[n++] = &extra->kv[i];
    for (int i = 0; i < set->n; i++)
        items[n++] = &set->kv[i];
    if (sp->shuffle && n > 1) {
        for (int i = n - 1; i > 0; i--) {
            int j = (int)rng_below(r, (uint64_t)i + 1);
            const struct pkv *t = items[i];
            items[i] = items[j];
            items[j] = t;
        }
    }
    int esc_at = sp->esc_key && n > 0 ? (int)rng_below(r, (uint64_t)n) : -1;
    int dup_at = sp->dup && n > 0 ? (int)rng_below(r, (uint64_t)n) : -1;
    ru_buf_putc(b, '{');
    bool first = true;
    for (int i = 0; i < n; i++) {
        if (i == dup_at) {
            /* an earlier spelling of the same key with another value; the last one wins */
            if (!first)
                ru_buf_puts(b, sp->spaces ? " ," : ", ");
            json_ws(b, r, sp);
            json_str(b, items[i]->key, false, false);
            ru_buf_puts(b, ": ");
            if (rng_chance(r, 0.5))
                ru_buf_puts(b, "\"stale\"");
            else
                ru_buf_puts(b, "[\"x\", 1, null]");
            first = false;
        }
        if (!first)
            ru_buf_puts(b, sp->spaces ? " ," : ", ");
        json_ws(b, r, sp);
        json_str(b, items[i]->key, false, i == esc_at);
        json_ws(b, r, sp);
        ru_buf_puts(b, sp->spaces ? ":" : ": ");
        json_ws(b, r, sp);
        json_value(b, items[i], r, sp);
        json_ws(b, r, sp);
        first = false;
    }
    ru_buf_putc(b, '}');
}

/* ------------------------------------------------------------------ events */

/* One event as written (field texts) plus what the oracle needs. */
struct event {
    const char *route;
    const char *method; /* NULL = field omitted (GET) */
    char user[48];      /* as sent; "" = anonymous */
    char ts[40];
    int duration;
    int status;
    struct ru_buf qp;  /* query_params text */
    struct ru_buf qpn; /* query_params_normalized text */
    bool qp_omitted, qpn_omitted;
    char req[16]; /* request_size_bytes text as sent ("" allowed) */
    int req_val;
    int resp;
    bool has_db;
    int db;
    const char *cache; /* NULL = omitted */
    const char *error_type;
    bool extra_field;
};

static int pick_status(struct rng *r, const struct tmpl *t, const char *method)
{
    if (strcmp(method, "OPTIONS") == 0)
        return rng_chance(r, 0.995) ? 200 : 400;
    double u = rng_unit(r);
    switch (t->status) {
    case SP_NOTFOUND:
        if (u < 0.6)
            return 404;
        break;
    case SP_REDIRECT:
        if (u < 0.85)
            return 307;
        break;
    case SP_CREATE:
        if (strcmp(method, "POST") == 0) {
            if (u < 0.85)
                return 201;
            if (u < 0.93)
                return 422;
        }
        break;
    case SP_AUTH:
        if (u < 0.15)
            return 401;
        break;
    case SP_NORMAL:
        break;
    }
    if (strcmp(method, "DELETE") == 0 && u < 0.8)
        return 204;
    u = rng_unit(r);
    static const struct {
        double p;
        int status;
    } dist[] = {
        {0.020, 304}, {0.010, 307}, {0.015, 400}, {0.010, 401}, {0.030, 404},
        {0.015, 422}, {0.012, 500}, {0.006, 503}, {0.010, 201}, {0.010, 204},
    };
    double acc = 0;
    for (size_t i = 0; i < RU_ARRAY_LEN(dist); i++) {
        acc += dist[i].p;
        if (u < acc)
            return dist[i].status;
    }
    return 200;
}

static int pick_duration(struct rng *r, const char *method)
{
    if (strcmp(method, "OPTIONS") == 0)
        return (int)rng_below(r, 6);
    double u = rng_unit(r);
    if (u < 0.02)
        return 0;
    if (u < 0.85)
        return (int)floor(exp(rng_unit(r) * log(201.0))); /* 1..200, log-uniform */
    if (u < 0.98)
        return 200 + (int)floor(exp(rng_unit(r) * log(1800.0)));
    return 2000 + (int)rng_below(r, 8001);
}

static const char *pick_method(struct rng *r, unsigned m)
{
    double u = rng_unit(r);
    if ((m & M_OPTIONS) && u < 0.12)
        return "OPTIONS";
    u = rng_unit(r);
    if ((m & M_POST) && (u < 0.25 || !(m & M_GET)))
        return "POST";
    if ((m & M_PUT) && u < 0.30)
        return "PUT";
    if ((m & M_DELETE) && u < 0.33)
        return "DELETE";
    if (m & M_GET)
        return "GET";
    return "POST";
}

/* Spells a user id: usually lower-case, ~2% upper-case, braced or without hyphens. */
static void spell_user(struct rng *r, const char *uuid, char *out, size_t n)
{
    if (!rng_chance(r, 0.02)) {
        ru_strlcpy(out, uuid, n);
        return;
    }
    char tmp[40];
    switch (rng_below(r, 4)) {
    case 0:
        for (size_t i = 0; i <= strlen(uuid); i++)
            tmp[i] = (char)toupper((unsigned char)uuid[i]);
        ru_strlcpy(out, tmp, n);
        break;
    case 1:
        snprintf(out, n, "{%s}", uuid);
        break;
    case 2: {
        size_t k = 0;
        for (size_t i = 0; uuid[i]; i++)
            if (uuid[i] != '-')
                tmp[k++] = uuid[i];
        tmp[k] = '\0';
        ru_strlcpy(out, tmp, n);
        break;
    }
    default:
        for (size_t i = 0; i <= strlen(uuid); i++)
            tmp[i] = (char)toupper((unsigned char)uuid[i]);
        snprintf(out, n, "{%s}", tmp);
        break;
    }
}

struct gen {
    const struct opts *o;
    struct universe u;
    struct rng r;
    int64_t start_us;
    int64_t span_us;
};

static int64_t floor_hour(int64_t us)
{
    return us - us % USEC_PER_HOUR;
}

static int64_t pick_ts(struct gen *g, long long i)
{
    struct rng *r = &g->r;
    int64_t base;
    int64_t start = g->start_us;
    if (g->o->now_ts) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        base = (int64_t)now.tv_sec * USEC_PER_SEC + now.tv_nsec / 1000;
        if (g->o->hour_seconds > 0) {
            /* a faster event clock: from the start of --start-ts's hour at --start-ts */
            double fast = (double)(base - start) * 3600.0 / g->o->hour_seconds;
            base = floor_hour(start) + (int64_t)fast;
        }
        start = floor_hour(base) - 3 * USEC_PER_HOUR;
    } else {
        double step = (double)g->span_us / (double)(g->o->count ? g->o->count : 1);
        base = start + (int64_t)(step * (double)i) + (int64_t)(rng_unit(r) * step);
    }
    if (g->o->late_frac > 0 && rng_chance(r, g->o->late_frac)) {
        /* an earlier hour than the stream order suggests: mostly the previous one */
        int k = 1;
        while (k < 24 && rng_chance(r, 0.35))
            k++;
        int64_t hour = floor_hour(base) - k * USEC_PER_HOUR;
        if (hour + USEC_PER_HOUR <= start)
            hour = floor_hour(start);
        if (hour < floor_hour(base)) {
            int64_t lo = hour < start ? start : hour;
            int64_t hi = hour + USEC_PER_HOUR;
            if (hi > lo)
                return lo + (int64_t)(rng_unit(r) * (double)(hi - lo));
        }
    }
    return base;
}

static void make_event(struct gen *g, struct event *ev, long long i)
{
    struct rng *r = &g->r;
    bool light = g->o->light && g->u.nshort > 0;
    const struct route *rt =
        light ? &g->u.routes[g->u.short_routes[rng_zipf(r, (uint64_t)g->u.nshort, 1.0)]]
              : &g->u.routes[rng_zipf(r, (uint64_t)g->u.nroutes, 1.0)];
    const struct tmpl *t = rt->t;

    ev->route = rt->path;
    const char *method = pick_method(r, t->methods);
    ev->method = rng_chance(r, 0.01) && strcmp(method, "GET") == 0 ? NULL : method;
    if (light || rng_chance(r, 0.3))
        ev->user[0] = '\0';
    else
        spell_user(r, uni_user(&g->u, r), ev->user, sizeof(ev->user));

    int64_t ts = pick_ts(g, i);
    snprintf(ev->ts, sizeof(ev->ts), "%" PRId64 ".%06" PRId64, ts / USEC_PER_SEC,
             ts % USEC_PER_SEC);
    ev->duration = pick_duration(r, method);
    ev->status = pick_status(r, t, method);

    /* params: one of the route's sets, sometimes with paging keys in query_params */
    const struct pset *set = &rt->sets[rng_zipf(r, (uint64_t)rt->nsets, 1.0)];
    struct pset extra = {0};
    static const char *pages[] = {"1", "2", "3", "10"};
    if (rng_chance(r, 0.4))
        ps_str(&extra, "page", pages[rng_below(r, RU_ARRAY_LEN(pages))]);
    if (rng_chance(r, 0.05))
        ps_str(&extra, "offset", "40");
    if (rng_chance(r, 0.05))
        ps_str(&extra, "limit", "20");
    if (rng_chance(r, 0.03))
        ps_str(&extra, "cursor", "eyJpZCI6IDQyfQ==");
    static const struct pset empty_set = {0};
    if (light && rng_chance(r, 0.5)) {
        /* genonaut's real sample: 48 of 100 events carry "{}" */
        set = &empty_set;
        memset(&extra, 0, sizeof(extra));
    }
    struct spell plain = {0};
    ru_buf_reset(&ev->qp);
    ru_buf_reset(&ev->qpn);
    json_object(&ev->qp, set, &extra, r, &plain);
    struct spell sp = {0};
    if (!light && rng_chance(r, 0.10)) {
        int m = 1 + (int)rng_below(r, 2);
        for (int k = 0; k < m; k++) {
            switch (rng_below(r, 6)) {
            case 0:
                sp.shuffle = true;
                break;
            case 1:
                sp.spaces = true;
                break;
            case 2:
                sp.esc_key = true;
                break;
            case 3:
                sp.dup = true;
                break;
            case 4:
                sp.num_float = true;
                sp.num_style = (int)rng_below(r, 4);
                break;
            default:
                sp.raw_utf8 = true;
                break;
            }
        }
    }
    json_object(&ev->qpn, set, NULL, r, &sp);
    ev->qpn_omitted = rng_chance(r, 0.03);
    ev->qp_omitted = ev->qpn_omitted && rng_chance(r, 0.5);

    /* sizes */
    bool body = strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0;
    ev->req_val = body ? 40 + (int)rng_below(r, 2000) : 0;
    if (!body && rng_chance(r, 0.01))
        ev->req[0] = '\0'; /* empty text = no size */
    else
        snprintf(ev->req, sizeof(ev->req), "%d", ev->req_val);
    if (strcmp(method, "OPTIONS") == 0)
        ev->resp = 2;
    else if (ev->status == 304 || ev->status == 307 || ev->status == 204 || rng_chance(r, 0.03))
        ev->resp = 0;
    else if (ev->status >= 400)
        ev->resp = 20 + (int)rng_below(r, 200);
    else
        ev->resp =
            t->resp_size ? t->resp_size + (int)rng_below(r, (uint64_t)t->resp_size / 10 + 1) : 0;

    ev->has_db = rng_chance(r, 0.5);
    ev->db = ev->has_db ? (int)rng_zipf(r, 40, 1.0) : 0;
    double u = rng_unit(r);
    ev->cache = u < 0.03 ? NULL : u < 0.11 ? "hit" : u < 0.15 ? "miss" : "";
    ev->error_type = ev->status >= 500 ? "server_error" : ev->status >= 400 ? "client_error" : "";
    ev->extra_field = rng_chance(r, 0.02);
    if (light) {
        /* the real sample has no request size, cache status or db count */
        ev->req[0] = '\0';
        ev->req_val = 0;
        ev->has_db = false;
        ev->db = 0;
        ev->cache = NULL;
        ev->extra_field = false;
    }
}

/* ------------------------------------------------------------------ XADD arguments */

struct cmd {
    struct ru_buf b; /* every argument, back to back */
    int argc;
    size_t off[2 * MAX_FIELDS + 8];
    size_t len[2 * MAX_FIELDS + 8];
};

static void cmd_arg(struct cmd *c, const char *s, size_t n)
{
    if (c->argc >= (int)RU_ARRAY_LEN(c->off))
        die("internal: too many arguments");
    c->off[c->argc] = c->b.len;
    c->len[c->argc] = n;
    ru_buf_append(&c->b, s, n);
    c->argc++;
}

static void cmd_argz(struct cmd *c, const char *s)
{
    cmd_arg(c, s, strlen(s));
}

static void cmd_field(struct cmd *c, const char *name, const char *val)
{
    cmd_argz(c, name);
    cmd_argz(c, val);
}

enum bad {
    BAD_NO_ROUTE,
    BAD_TS,
    BAD_DURATION,
    BAD_STATUS,
    BAD_PARAMS,
    BAD_UTF8,
    BAD_REPEAT,
    BAD_COUNT,
};

/* Builds "XADD stream [MAXLEN ~ N] ID field value ..." for ev, corrupted when bad >= 0. */
static void build_xadd(struct cmd *c, const struct opts *o, const char *id, const struct event *ev,
                       int bad, struct rng *r)
{
    static const char *bad_ts[] = {"now", "", "1761235223.31x", "17612352e", "12:00:00"};
    static const char *bad_num[] = {"abc", "12ms", "", "twelve", "1 2"};
    static const char *bad_status[] = {"OK", "2OO", "", "status", "20O"};
    static const char *bad_params[] = {"[\"sort\", \"name-asc\"]",
                                       "\"page_size=20\"",
                                       "{\"sort\": }",
                                       "null",
                                       "{\"a\": 1",
                                       "42",
                                       "not json"};
    static const char *bad_bytes[] = {"\xff", "\xc3\x28", "\xed\xa0\x80", "\xe2\x82"};
    char tmp[64];

    ru_buf_reset(&c->b);
    c->argc = 0;
    cmd_argz(c, "XADD");
    cmd_argz(c, o->stream);
    if (o->maxlen > 0) {
        cmd_argz(c, "MAXLEN");
        cmd_argz(c, "~");
        snprintf(tmp, sizeof(tmp), "%lld", o->maxlen);
        cmd_argz(c, tmp);
    }
    cmd_argz(c, id);

    int utf8_target = bad == BAD_UTF8 ? (int)rng_below(r, 3) : -1;
    const char *junk = bad_bytes[rng_below(r, RU_ARRAY_LEN(bad_bytes))];

    if (bad == BAD_NO_ROUTE) {
        if (rng_chance(r, 0.5))
            cmd_field(c, "route", "");
    } else if (utf8_target == 0) {
        struct ru_buf t = RU_BUF_INIT;
        ru_buf_printf(&t, "%s/%s", ev->route, junk);
        cmd_field(c, "route", t.p);
        ru_buf_free(&t);
    } else {
        cmd_field(c, "route", ev->route);
    }
    if (utf8_target == 1) {
        snprintf(tmp, sizeof(tmp), "GE%s", junk);
        cmd_field(c, "method", tmp);
    } else if (ev->method) {
        cmd_field(c, "method", ev->method);
    }
    cmd_field(c, "user_id", ev->user);
    cmd_field(c, "timestamp", bad == BAD_TS ? bad_ts[rng_below(r, RU_ARRAY_LEN(bad_ts))] : ev->ts);
    snprintf(tmp, sizeof(tmp), "%d", ev->duration);
    cmd_field(c, "duration_ms",
              bad == BAD_DURATION ? bad_num[rng_below(r, RU_ARRAY_LEN(bad_num))] : tmp);
    snprintf(tmp, sizeof(tmp), "%d", ev->status);
    cmd_field(c, "status_code",
              bad == BAD_STATUS ? bad_status[rng_below(r, RU_ARRAY_LEN(bad_status))] : tmp);
    if (!ev->qp_omitted)
        cmd_field(c, "query_params", ev->qp.p);
    if (bad == BAD_PARAMS)
        cmd_field(c, "query_params_normalized", bad_params[rng_below(r, RU_ARRAY_LEN(bad_params))]);
    else if (!ev->qpn_omitted)
        cmd_field(c, "query_params_normalized", ev->qpn.p);
    if (!o->light || ev->req[0] != '\0') /* the light mix leaves it out, as the sample does */
        cmd_field(c, "request_size_bytes", ev->req);
    snprintf(tmp, sizeof(tmp), "%d", ev->resp);
    cmd_field(c, "response_size_bytes", tmp);
    cmd_field(c, "error_type", ev->error_type);
    if (utf8_target == 2) {
        snprintf(tmp, sizeof(tmp), "hi%s", junk);
        cmd_field(c, "cache_status", tmp);
    } else if (ev->cache) {
        cmd_field(c, "cache_status", ev->cache);
    }
    if (ev->has_db) {
        snprintf(tmp, sizeof(tmp), "%d", ev->db);
        cmd_field(c, "db_query_count", tmp);
    }
    if (ev->extra_field)
        cmd_field(c, "app_version", "0.4.2");
    if (bad == BAD_REPEAT) {
        switch (rng_below(r, 3)) {
        case 0:
            cmd_field(c, "route", ev->route);
            break;
        case 1:
            cmd_field(c, "status_code", "500");
            break;
        default:
            cmd_field(c, "timestamp", ev->ts);
            break;
        }
    }
}

/* ------------------------------------------------------------------ oracle */

static void copy_text(struct ru_buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '\\':
            ru_buf_puts(b, "\\\\");
            break;
        case '\t':
            ru_buf_puts(b, "\\t");
            break;
        case '\n':
            ru_buf_puts(b, "\\n");
            break;
        case '\r':
            ru_buf_puts(b, "\\r");
            break;
        default:
            ru_buf_putc(b, *s);
            break;
        }
    }
}

/* route, method, user_id, ts, duration_ms, status_code, qpn, req, resp, db, cache */
static void oracle_line(struct ru_buf *b, const struct event *ev)
{
    copy_text(b, ev->route);
    ru_buf_putc(b, '\t');
    copy_text(b, ev->method ? ev->method : "GET");
    ru_buf_putc(b, '\t');
    if (ev->user[0])
        copy_text(b, ev->user);
    else
        ru_buf_puts(b, "\\N");
    ru_buf_printf(b, "\t%s\t%d\t%d\t", ev->ts, ev->duration, ev->status);
    if (ev->qpn_omitted)
        ru_buf_puts(b, "\\N");
    else
        copy_text(b, ev->qpn.p);
    ru_buf_printf(b, "\t%d\t%d\t", ev->req_val, ev->resp);
    if (ev->has_db)
        ru_buf_printf(b, "%d", ev->db);
    else
        ru_buf_puts(b, "\\N");
    ru_buf_putc(b, '\t');
    if (ev->cache && ev->cache[0])
        copy_text(b, ev->cache);
    else
        ru_buf_puts(b, "\\N");
    ru_buf_putc(b, '\n');
}

/* ------------------------------------------------------------------ main loop */

static void sleep_until_us(int64_t mono_us)
{
    struct timespec ts = {.tv_sec = mono_us / USEC_PER_SEC,
                          .tv_nsec = (long)(mono_us % USEC_PER_SEC) * 1000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static void check_reply(redisContext *rc, redisReply *rep, long long idx)
{
    if (rep == NULL)
        die("XADD #%lld: connection error: %s", idx, rc->errstr[0] ? rc->errstr : "no reply");
    if (rep->type == REDIS_REPLY_ERROR)
        die("XADD #%lld: redis error: %s", idx, rep->str);
    if (rep->type != REDIS_REPLY_STRING)
        die("XADD #%lld: unexpected reply type %d", idx, rep->type);
}

int main(int argc, char **argv)
{
    struct opts o;
    parse_opts(&o, argc, argv);

    struct gen g = {.o = &o};
    universe_build(&g.u, o.routes, o.users);
    rng_seed(&g.r, o.seed);
    g.start_us = (int64_t)llround(o.start_ts * 1e6);
    g.span_us = (int64_t)llround(o.hours * (double)USEC_PER_HOUR);

    FILE *oracle = NULL;
    if (o.oracle) {
        oracle = fopen(o.oracle, "a");
        if (oracle == NULL)
            die("--oracle %s: %s", o.oracle, strerror(errno));
    }

    struct timeval tv = {5, 0};
    redisContext *rc = redisConnectWithTimeout(o.host, o.port, tv);
    if (rc == NULL || rc->err)
        die("cannot connect to redis at %s:%d: %s", o.host, o.port,
            rc ? rc->errstr : "out of memory");
    struct timeval rtv = {60, 0};
    redisSetTimeout(rc, rtv);

    int batch = o.pipeline;
    if (o.rate > 0) {
        /* about 100 batches a second, never more than the pipeline depth */
        double b = o.rate / 100.0;
        batch = b < 1 ? 1 : b > o.pipeline ? o.pipeline : (int)b;
    }
    if (!o.quiet)
        fprintf(stderr,
                "loadgen: %s:%d stream=%s n=%lld seed=%" PRIu64 " rate=%g start=%.0f hours=%g "
                "routes=%d users=%d hour_seconds=%g\n",
                o.host, o.port, o.stream, o.count, o.seed, o.rate, o.start_ts, o.hours, o.routes,
                o.users, o.hour_seconds > 0 ? o.hour_seconds : 3600);

    struct event ev;
    memset(&ev, 0, sizeof(ev));
    struct cmd cmd;
    memset(&cmd, 0, sizeof(cmd));
    struct ru_buf obuf = RU_BUF_INIT;
    struct rng bad_rng;
    rng_seed(&bad_rng, o.seed ^ 0xbadbadbadULL);
    const char *argvv[RU_ARRAY_LEN(cmd.off)];

    long long written = 0, valid = 0, invalid = 0;
    /* --id-offset-ms: "<ms>-*" lets Redis number entries within one millisecond; ms never
     * goes back, even when the wall clock does */
    char id[32] = "*";
    int64_t id_ms = 0;
    int64_t t0 = ru_mono_us();
    int64_t last_report = t0;
    while (written < o.count) {
        if (o.rate > 0)
            sleep_until_us(t0 + (int64_t)((double)written * 1e6 / o.rate));
        long long n = o.count - written < batch ? o.count - written : batch;
        ru_buf_reset(&obuf);
        for (long long k = 0; k < n; k++) {
            long long idx = written + k;
            make_event(&g, &ev, idx);
            int bad = -1;
            if (o.invalid_frac > 0 && rng_chance(&bad_rng, o.invalid_frac))
                bad = (int)rng_below(&bad_rng, BAD_COUNT);
            if (o.have_id_offset) {
                int64_t ms = ru_wall_ms() + o.id_offset_ms;
                id_ms = ms > id_ms ? ms : id_ms;
                snprintf(id, sizeof(id), "%" PRId64 "-*", id_ms);
            }
            build_xadd(&cmd, &o, id, &ev, bad, &bad_rng);
            for (int a = 0; a < cmd.argc; a++)
                argvv[a] = cmd.b.p + cmd.off[a];
            if (redisAppendCommandArgv(rc, cmd.argc, argvv, cmd.len) != REDIS_OK)
                die("XADD #%lld: %s", idx, rc->errstr);
            if (bad < 0) {
                valid++;
                if (oracle)
                    oracle_line(&obuf, &ev);
            } else {
                invalid++;
            }
        }
        for (long long k = 0; k < n; k++) {
            void *rep = NULL;
            if (redisGetReply(rc, &rep) != REDIS_OK)
                rep = NULL;
            check_reply(rc, rep, written + k);
            freeReplyObject(rep);
        }
        written += n;
        if (oracle && obuf.len && fwrite(obuf.p, 1, obuf.len, oracle) != obuf.len)
            die("--oracle %s: write failed: %s", o.oracle, strerror(errno));
        if (!o.quiet) {
            int64_t now = ru_mono_us();
            if (now - last_report >= 5 * USEC_PER_SEC) {
                fprintf(stderr, "loadgen: %lld/%lld written\n", written, o.count);
                last_report = now;
            }
        }
    }
    if (oracle && fclose(oracle) != 0)
        die("--oracle %s: %s", o.oracle, strerror(errno));
    double secs = (double)(ru_mono_us() - t0) / 1e6;
    redisFree(rc);
    fprintf(stderr, "loadgen: written=%lld valid=%lld invalid=%lld seconds=%.3f rate=%.0f/s\n",
            written, valid, invalid, secs, secs > 0 ? (double)written / secs : 0.0);
    ru_buf_free(&obuf);
    ru_buf_free(&cmd.b);
    ru_buf_free(&ev.qp);
    ru_buf_free(&ev.qpn);
    universe_free(&g.u);
    return 0;
}
