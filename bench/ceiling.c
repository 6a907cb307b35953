/* rollupd-bench-ceiling: the least any consumer of the stream must do, done as fast as
 * this machine allows: XREADGROUP ... COUNT n STREAMS key > in a consumer group, then
 * XACK of the ids it returned, and nothing else. With --noack it reads with XREADGROUP ...
 * NOACK and acknowledges nothing: the like-for-like ceiling of rollupd's lone consumer
 * (redis.lone_consumer), which reads so too.
 *
 * Reply handling is the fastest we know: hiredis builds replies through custom object
 * functions into an arena (src/reply.c, as rollupd does: no malloc per element), the socket is
 * read in 256 KiB chunks, and the next XREADGROUP is written together with the XACK of
 * the previous batch *before* the current batch is walked; after a full batch two reads
 * are kept in flight (rollupd's policy), so Redis always has the next read queued while
 * we work. Its drain rate of a pre-filled stream is the physical limit
 * for any consumer on this machine; bench/run compares rollupd with it.
 *
 * With --read-bytes it sizes each read as rollupd's redis.read_bytes does: the entries
 * that fit so many bytes of reply as Redis sent it (RESP), judged by the last reply.
 * rollupd reads its replies in place, so those bytes are what a reply takes in its
 * memory; counting this reader's own tree of reply objects instead would make its reads
 * several times smaller than rollupd's, and Redis would no longer do the same work for
 * both. The same reads as rollupd, so the comparison stays like for like.
 *
 * With --hold N it acknowledges only once N entries are held, all of them, in XACKs of at
 * most 1000 ids, as rollupd does after a flush's COMMIT (flush.max_events): Redis then
 * keeps up to N entries in the group's pending list, as it does for rollupd. It measures
 * what a pending list that size costs Redis; the ceiling itself acknowledges each batch.
 *
 * With --work parse it also does what rollupd's reading thread does with each entry
 * before it adds it: the id parsed, the fields parsed and checked into an event with the
 * query parameters' canonical text from a cache (ru_event_parse_cached, without
 * RU_EVENT_RAW: rollupd's default has no raw table). With --work
 * aggregate it adds each event to a store of hourly aggregates as well (ru_store_add),
 * handed off and freed every --flush-every events, as a flush does (flush.max_events;
 * by default as rollupd's: 25,000 in a shared group, 50,000 with --noack).
 * The same library code as rollupd, without its event loop, its dead letters, its batch
 * ids and its writer thread: what the bare work costs on top of reading (bench/owncost).
 *
 * Prints one JSON object on stdout: events, seconds, events_per_s, reads, acked,
 * utime_s, stime_s, vmhwm_kb (the process's own CPU and peak RSS), noack, work,
 * invalid (entries --work found invalid). */
#include "rollupd/config.h"
#include "rollupd/event.h"
#include "rollupd/pcache.h"
#include "rollupd/reply.h"
#include "rollupd/store.h"
#include "rollupd/util.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "common.h"

#define READ_CHUNK (256 * 1024)
#define QCAP       16384 /* replies awaited: two reads and the XACKs of --hold (at most 10M ids) */
#define ACK_CHUNK  1000  /* ids per XACK with --hold, as rollupd's */

/* ---- connection ---- */

enum kind { K_READ, K_ACK };

enum work { W_READ, W_PARSE, W_AGGREGATE };
static const char *const work_names[] = {"read", "parse", "aggregate"};

struct ceil {
    redisContext *c;
    struct ru_reply_arena *arena;
    char *rbuf;
    enum kind q[QCAP]; /* replies we wait for, in command order */
    int qhead, qlen;
    const char *stream, *group, *consumer;
    long long count, max, requested;
    /* --read-bytes: the COUNT of the next read, as many entries as fit that many bytes of
     * reply as Redis sent it (rollupd's redis.read_bytes rule), within count; 0 = count
     * always */
    long long read_bytes, next_count;
    long long sent[2]; /* the COUNT of each read in flight, oldest first */
    /* bytes fed to hiredis' reader, and of them those its replies took so far */
    unsigned long long fed, taken;
    long long reply_bytes; /* the last reply's, as Redis sent it */
    int reads_inflight;
    bool noack;     /* XREADGROUP ... NOACK, no XACK */
    long long hold; /* --hold: acknowledge once this many are held; 0 = every batch */
    /* ids walked and not yet acknowledged */
    char (*ids)[RU_SID_STRLEN];
    size_t *idlen;
    const char **argv;
    size_t *argvlen;
    long long nids;
    /* --work */
    enum work work;
    long long flush_every;
    struct ru_field *fields;
    size_t fields_cap;
    struct ru_buf scratch;
    struct ru_pcache *pcache;
    struct ru_store *store;
    long long invalid;
};

static void q_push(struct ceil *cl, enum kind k)
{
    if (cl->qlen == QCAP)
        die("internal: reply queue full");
    cl->q[(cl->qhead + cl->qlen++) % QCAP] = k;
}

static enum kind q_pop(struct ceil *cl)
{
    enum kind k = cl->q[cl->qhead];
    cl->qhead = (cl->qhead + 1) % QCAP;
    cl->qlen--;
    return k;
}

static void flush_out(struct ceil *cl)
{
    int done = 0;
    while (!done)
        if (redisBufferWrite(cl->c, &done) != REDIS_OK)
            die("write: %s", cl->c->errstr);
}

static redisReply *next_reply(struct ceil *cl)
{
    for (;;) {
        void *rep = NULL;
        if (redisReaderGetReply(cl->c->reader, &rep) != REDIS_OK)
            die("protocol error: %s", cl->c->reader->errstr);
        if (rep) {
            /* what the reader holds unparsed stays len - pos when it compacts */
            const redisReader *rd = cl->c->reader;
            unsigned long long upto = cl->fed - (unsigned long long)(rd->len - rd->pos);
            cl->reply_bytes = (long long)(upto - cl->taken);
            cl->taken = upto;
            return rep;
        }
        ssize_t n = read(cl->c->fd, cl->rbuf, READ_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("read: %s", n == 0 ? "connection closed" : strerror(errno));
        if (redisReaderFeed(cl->c->reader, cl->rbuf, (size_t)n) != REDIS_OK)
            die("protocol error");
        cl->fed += (unsigned long long)n;
    }
}

/* Queues XREADGROUP for the next batch; false when -n is reached. */
static bool send_read(struct ceil *cl)
{
    long long cnt = cl->next_count;
    if (cl->max > 0 && cl->max - cl->requested < cnt)
        cnt = cl->max - cl->requested;
    if (cnt <= 0)
        return false;
    char cnts[24];
    snprintf(cnts, sizeof(cnts), "%lld", cnt);
    const char *argv[] = {"XREADGROUP", "GROUP", cl->group, cl->consumer, "COUNT",
                          cnts,         "NOACK", "STREAMS", cl->stream,   ">"};
    const char *argv_ack[] = {"XREADGROUP", "GROUP",   cl->group,  cl->consumer, "COUNT",
                              cnts,         "STREAMS", cl->stream, ">"};
    int ok = cl->noack ? redisAppendCommandArgv(cl->c, (int)RU_ARRAY_LEN(argv), argv, NULL)
                       : redisAppendCommandArgv(cl->c, (int)RU_ARRAY_LEN(argv_ack), argv_ack, NULL);
    if (ok != REDIS_OK)
        die("XREADGROUP: %s", cl->c->errstr);
    cl->requested += cnt;
    cl->sent[cl->reads_inflight++] = cnt;
    q_push(cl, K_READ);
    return true;
}

/* XACK of the ids held: one command for all without --hold, else once at least --hold
 * are held (or with force: the last), in commands of at most ACK_CHUNK ids. */
static void send_ack(struct ceil *cl, bool force)
{
    if (cl->nids == 0 || (!force && cl->nids < cl->hold))
        return;
    long long chunk = cl->hold > 0 ? ACK_CHUNK : cl->nids;
    cl->argv[0] = "XACK";
    cl->argvlen[0] = 4;
    cl->argv[1] = cl->stream;
    cl->argvlen[1] = strlen(cl->stream);
    cl->argv[2] = cl->group;
    cl->argvlen[2] = strlen(cl->group);
    for (long long off = 0; off < cl->nids; off += chunk) {
        long long n = cl->nids - off < chunk ? cl->nids - off : chunk;
        for (long long j = 0; j < n; j++) {
            cl->argv[3 + j] = cl->ids[off + j];
            cl->argvlen[3 + j] = cl->idlen[off + j];
        }
        if (redisAppendCommandArgv(cl->c, (int)(n + 3), cl->argv, cl->argvlen) != REDIS_OK)
            die("XACK: %s", cl->c->errstr);
        q_push(cl, K_ACK);
    }
    cl->nids = 0; /* hiredis copied the arguments into its output buffer */
}

/* --work: one entry parsed as rollupd parses it, and with aggregate added to the store. */
static void work_entry(struct ceil *cl, const redisReply *e)
{
    struct ru_sid id;
    if (ru_sid_parse(&id, e->element[0]->str, e->element[0]->len) < 0)
        die("XREADGROUP: entry id %s does not parse", e->element[0]->str);
    const redisReply *fr = e->elements == 2 ? e->element[1] : NULL;
    if (fr == NULL || fr->type != REDIS_REPLY_ARRAY) {
        cl->invalid++;
        return;
    }
    size_t nf = ru_reply_fields(fr, &cl->fields, &cl->fields_cap);
    struct ru_event ev;
    char why[256];
    ru_buf_reset(&cl->scratch);
    if (ru_event_parse_cached(&ev, cl->fields, nf, &cl->scratch, cl->pcache, 0, why, sizeof(why)) <
        0) {
        cl->invalid++;
        return;
    }
    if (cl->work != W_AGGREGATE)
        return;
    ru_store_add(cl->store, &ev);
    if (ru_store_nevents(cl->store) >= (uint64_t)cl->flush_every) {
        ru_store_free(cl->store);
        cl->store = ru_store_new();
    }
}

/* Walks [[stream, [[id, fields], ...]]] and keeps the ids for the next XACK. */
static long long take_ids(struct ceil *cl, const redisReply *r)
{
    if (r->type == REDIS_REPLY_NIL)
        return 0;
    if (r->type == REDIS_REPLY_ERROR)
        die("XREADGROUP: %s", r->str);
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements != 2)
        die("XREADGROUP: unexpected reply shape");
    const redisReply *entries = r->element[0]->element[1];
    if (entries->type != REDIS_REPLY_ARRAY)
        die("XREADGROUP: unexpected entries");
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 ||
            e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len >= RU_SID_STRLEN)
            die("XREADGROUP: unexpected entry");
        if (cl->work != W_READ)
            work_entry(cl, e);
        if (cl->noack)
            continue; /* nothing to acknowledge */
        long long k = cl->nids++;
        memcpy(cl->ids[k], e->element[0]->str, e->element[0]->len + 1);
        cl->idlen[k] = e->element[0]->len;
    }
    return (long long)entries->elements;
}

static long vmhwm_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

static void usage(FILE *f)
{
    fputs("usage: rollupd-bench-ceiling [options]\n"
          "  -h HOST, -p PORT   Redis address (default 127.0.0.1:6379)\n"
          "  -s STREAM          stream key (default genonaut_demo:route_analytics:stream)\n"
          "  -g GROUP           consumer group, created at --start if missing (default ceiling)\n"
          "  -c CONSUMER        consumer name (default ceiling)\n"
          "  --count N          XREADGROUP COUNT (default 1000, as rollupd's redis.count)\n"
          "  --read-bytes N     each read asks for as many entries as fit N bytes of reply\n"
          "                     as Redis sent it, judged by the last reply, within --count\n"
          "                     (rollupd's redis.read_bytes; default 0: --count always)\n"
          "  -n N               stop after N entries (default 0: at the first empty read)\n"
          "  --start ID         where a new group starts (default 0)\n"
          "  --noack            read with XREADGROUP ... NOACK and acknowledge nothing (the\n"
          "                     ceiling of a lone consumer)\n"
          "  --hold N           acknowledge only once N entries are held, all of them, in\n"
          "                     XACKs of at most 1000 ids (what rollupd's pending list costs\n"
          "                     Redis; default 0: each batch)\n"
          "  --work W           what is done with each entry: read (default: nothing),\n"
          "                     parse (as rollupd parses it), aggregate (parsed and added\n"
          "                     to hourly aggregates)\n"
          "  --flush-every N    with --work aggregate, the aggregates are handed off and\n"
          "                     freed every N events (default rollupd's flush.max_events:\n"
          "                     25000, or 50000 with --noack)\n",
          f);
}

int main(int argc, char **argv)
{
    struct ceil cl;
    memset(&cl, 0, sizeof(cl));
    struct bench_addr addr = BENCH_ADDR_DEFAULT;
    const char *start = "0";
    cl.group = "ceiling";
    cl.consumer = "ceiling";
    cl.count = 1000;
    cl.flush_every = -1; /* rollupd's default for the mode, once the options are read */
    static const struct option lopts[] = {{"count", required_argument, NULL, 'C'},
                                          {"start", required_argument, NULL, 'S'},
                                          {"noack", no_argument, NULL, 'N'},
                                          {"read-bytes", required_argument, NULL, 'B'},
                                          {"hold", required_argument, NULL, 'K'},
                                          {"work", required_argument, NULL, 'W'},
                                          {"flush-every", required_argument, NULL, 'F'},
                                          {"help", no_argument, NULL, 'H'},
                                          {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "h:p:s:g:c:n:", lopts, NULL)) != -1) {
        switch (o) {
        case 'g':
            cl.group = optarg;
            break;
        case 'c':
            cl.consumer = optarg;
            break;
        case 'n':
            cl.max = atoll(optarg);
            break;
        case 'C':
            cl.count = atoll(optarg);
            break;
        case 'S':
            start = optarg;
            break;
        case 'N':
            cl.noack = true;
            break;
        case 'B':
            cl.read_bytes = atoll(optarg);
            break;
        case 'K':
            cl.hold = atoll(optarg);
            break;
        case 'W': {
            size_t w = 0;
            while (w < RU_ARRAY_LEN(work_names) && strcmp(optarg, work_names[w]) != 0)
                w++;
            if (w == RU_ARRAY_LEN(work_names))
                die("--work: read, parse or aggregate, not %s", optarg);
            cl.work = (enum work)w;
            break;
        }
        case 'F':
            cl.flush_every = atoll(optarg);
            break;
        case 'H':
            usage(stdout);
            return 0;
        default:
            if (bench_addr_opt(&addr, o, optarg))
                break;
            usage(stderr);
            return 2;
        }
    }
    if (cl.flush_every == -1)
        cl.flush_every = ru_config_max_events_default(cl.noack);
    if (cl.count < 1 || cl.count > 100000 || addr.port < 1 || addr.port > 65535 || cl.max < 0 ||
        cl.read_bytes < 0 || cl.hold < 0 || cl.hold > 10000000 || (cl.hold > 0 && cl.noack) ||
        cl.flush_every < 1)
        die("bad arguments (see --help)");
    cl.next_count = cl.count;

    cl.stream = addr.stream;
    cl.c = bench_redis(&addr, 60);
    cl.arena = ru_reply_arena_new();
    ru_reply_arena_attach(cl.arena, cl.c->reader);
    cl.c->reader->maxbuf = 0;
    cl.rbuf = ru_xmalloc(READ_CHUNK);
    if (cl.work != W_READ) {
        cl.pcache = ru_pcache_new();
        cl.store = ru_store_new();
    }
    /* held: fewer than --hold, plus a batch; an XACK takes a batch, or ACK_CHUNK of them */
    size_t held = (size_t)(cl.hold + cl.count);
    size_t per_xack = cl.hold > 0 ? ACK_CHUNK : (size_t)cl.count;
    cl.ids = ru_xmalloc(held * sizeof(*cl.ids));
    cl.idlen = ru_xmalloc(held * sizeof(*cl.idlen));
    cl.argv = ru_xmalloc((per_xack + 3) * sizeof(*cl.argv));
    cl.argvlen = ru_xmalloc((per_xack + 3) * sizeof(*cl.argvlen));

    const char *mk[] = {"XGROUP", "CREATE", cl.stream, cl.group, start, "MKSTREAM"};
    if (redisAppendCommandArgv(cl.c, (int)RU_ARRAY_LEN(mk), mk, NULL) != REDIS_OK)
        die("XGROUP: %s", cl.c->errstr);
    flush_out(&cl);
    redisReply *r = next_reply(&cl);
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0)
        die("XGROUP CREATE: %s", r->str);
    ru_reply_arena_reset(cl.arena);

    int64_t t0 = ru_mono_us();
    long long events = 0, reads = 0, acked = 0;
    send_read(&cl);
    flush_out(&cl);
    while (cl.qlen > 0) {
        enum kind k = q_pop(&cl);
        r = next_reply(&cl);
        if (k == K_ACK) {
            if (r->type != REDIS_REPLY_INTEGER)
                die("XACK: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
            acked += r->integer;
            ru_reply_arena_reset(cl.arena);
            continue;
        }
        reads++;
        long long sent = cl.sent[0];
        cl.sent[0] = cl.sent[1];
        cl.reads_inflight--;
        long long entries = 0;
        if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
            r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2 &&
            r->element[0]->element[1]->type == REDIS_REPLY_ARRAY)
            entries = (long long)r->element[0]->element[1]->elements;
        if (cl.read_bytes > 0 && entries > 0) {
            /* the reply's bytes as they came, rollupd's measure (see the head) */
            long long per = cl.reply_bytes / entries;
            long long fit = per > 0 ? cl.read_bytes / per : cl.count;
            cl.next_count = fit < 1 ? 1 : fit > cl.count ? cl.count : fit;
        }
        /* Redis gets the previous batch's XACK and the next read(s) before we walk this
         * one: two reads in flight after a full batch, one after a short one, none after
         * an empty one (the stream is drained) */
        send_ack(&cl, false);
        if (entries > 0) {
            int depth = entries >= sent ? 2 : 1;
            while (cl.reads_inflight < depth && send_read(&cl))
                ;
        }
        flush_out(&cl);
        events += take_ids(&cl, r);
        ru_reply_arena_reset(cl.arena);
        if (cl.reads_inflight == 0) {
            /* no read follows: acknowledge what is held now */
            send_ack(&cl, true);
            flush_out(&cl);
        }
    }
    double secs = (double)(ru_mono_us() - t0) / 1e6;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"events\":%lld,\"seconds\":%.6f,\"events_per_s\":%.1f,\"reads\":%lld,"
           "\"acked\":%lld,\"utime_s\":%.3f,\"stime_s\":%.3f,\"vmhwm_kb\":%ld,\"noack\":%s,"
           "\"work\":\"%s\",\"invalid\":%lld}\n",
           events, secs, secs > 0 ? (double)events / secs : 0.0, reads, acked,
           (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6, vmhwm_kb(),
           cl.noack ? "true" : "false", work_names[cl.work], cl.invalid);
    if (!cl.noack && acked != events)
        die("acknowledged %lld of %lld entries", acked, events);
    ru_store_free(cl.store);
    ru_pcache_free(cl.pcache);
    ru_buf_free(&cl.scratch);
    free(cl.fields);
    redisFree(cl.c);
    return 0;
}
