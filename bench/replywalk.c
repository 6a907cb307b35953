/* rollupd-bench-replywalk: what one XREADGROUP-sized reply costs rollupd's reader to walk,
 * read from its bytes twice (ru_resp_scan, then ru_resp_entry over each entry: the reader
 * before the scan kept an index) against once (ru_resp_scan_indexed, then
 * ru_resp_entry_indexed). One reply of up to COUNT entries is taken from the stream with
 * XRANGE, as the bytes Redis sends (hiredis formats the command; the reply's bytes are
 * read from the socket as they are). Then, ROUNDS times each way in alternating blocks:
 * the bytes are copied into the read buffer (as read() does, leaving them where the
 * cache has them after a read), scanned in two halves (two reads), the list left lazy
 * and every entry read, each value's length and first byte summed as a parse would touch
 * them; both ways must come to the same sums. The reply is XRANGE's list of entries, the
 * list an XREADGROUP reply ends with (which has two more arrays and the stream's name
 * before it). Prints the time per reply and per entry each way, and the ratio, as one JSON
 * line.
 * A time on a shared machine moves with its load; the ratio of the interleaved blocks is
 * the figure to read. */
#include <getopt.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#include "rollupd/reply.h"
#include "rollupd/resp.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The raw bytes of the reply to XRANGE stream - + COUNT count, in *len. */
static char *fetch_reply(const struct bench_addr *a, long count, size_t *len)
{
    redisContext *c = bench_redis(a, 30);
    char cnt[32];
    snprintf(cnt, sizeof(cnt), "%ld", count);
    const char *argv[] = {"XRANGE", a->stream, "-", "+", "COUNT", cnt};
    if (redisAppendCommandArgv(c, 6, argv, NULL) != REDIS_OK)
        die("XRANGE: %s", c->errstr);
    int done = 0;
    while (!done)
        if (redisBufferWrite(c, &done) != REDIS_OK)
            die("write: %s", c->errstr);
    size_t cap = 1 << 20, n = 0;
    char *buf = ru_xmalloc(cap);
    struct ru_resp_scan sc;
    ru_resp_scan_reset(&sc);
    char err[64];
    for (;;) {
        if (cap - n < 65536)
            buf = ru_xrealloc(buf, cap *= 2);
        ssize_t got = read(c->fd, buf + n, cap - n);
        if (got <= 0)
            die("read: the connection ended before the reply did");
        n += (size_t)got;
        ssize_t whole = ru_resp_scan(&sc, buf, n, err, sizeof(err));
        if (whole < 0)
            die("reply: %s", err);
        if (whole > 0) {
            *len = (size_t)whole;
            break;
        }
    }
    if (buf[0] != '*' || sc.nodes < 2)
        die("XRANGE %s: no entries (is the stream filled?)", a->stream);
    redisFree(c);
    return buf;
}

static void usage(FILE *f)
{
    fputs("usage: rollupd-bench-replywalk [-h HOST] [-p PORT] [-s STREAM] [--count N] "
          "[--rounds R]\n"
          "  --count N   entries in the reply (default 1000, COUNT's bound in rollupd's reads)\n"
          "  --rounds R  replies walked each way (default 2000, in blocks of 100)\n",
          f);
}

int main(int argc, char **argv)
{
    struct bench_addr a = BENCH_ADDR_DEFAULT;
    long count = 1000, rounds = 2000;
    static const struct option lopts[] = {{"count", required_argument, NULL, 'n'},
                                          {"rounds", required_argument, NULL, 'r'},
                                          {"help", no_argument, NULL, 'H'},
                                          {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "h:p:s:", lopts, NULL)) != -1) {
        if (bench_addr_opt(&a, o, optarg))
            continue;
        switch (o) {
        case 'n':
            count = atol(optarg);
            break;
        case 'r':
            rounds = atol(optarg);
            break;
        case 'H':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (count <= 0 || rounds < 100)
        die("--count must be positive and --rounds at least 100");
    size_t n;
    char *src = fetch_reply(&a, count, &n);
    char *buf = ru_xmalloc(n);
    struct ru_reply_arena *arena = ru_reply_arena_new();
    struct ru_resp_index ix = {0};
    struct ru_field fields[64];
    size_t entries = 0, sink[2] = {0, 0};
    double t[2] = {0, 0};
    for (long done = 0; done < rounds; done += 100) {
        for (int way = 0; way < 2; way++) {
            double t0 = now();
            for (int r = 0; r < 100; r++) {
                memcpy(buf, src, n);
                struct ru_resp_scan sc;
                ru_resp_scan_reset(&sc);
                char err[64];
                ssize_t len;
                if (way == 0) {
                    ru_resp_scan(&sc, buf, n / 2, err, sizeof(err));
                    len = ru_resp_scan(&sc, buf, n, err, sizeof(err));
                } else {
                    ru_resp_scan_indexed(&sc, &ix, buf, n / 2, err, sizeof(err));
                    len = ru_resp_scan_indexed(&sc, &ix, buf, n, err, sizeof(err));
                    if (!ix.ok)
                        die("the reply was not noted");
                }
                if (len != (ssize_t)n)
                    die("the reply scans as %zd bytes, not %zu", len, n);
                redisReply *list = ru_resp_build_lazy(buf, (size_t)len, &sc, arena, 1);
                if (list->type != RU_RESP_LAZY)
                    die("the reply is not a list of entries");
                size_t pos = 0, node = (size_t)list->integer;
                const char *base = way == 1 ? ru_resp_index_base(&ix, list) : NULL;
                for (size_t i = 0; i < list->elements; i++) {
                    struct ru_str id;
                    long long nf;
                    int ok = way == 0
                                 ? ru_resp_entry(list->str, &pos, list->len, &id, fields, 64, &nf)
                                 : ru_resp_entry_indexed(&ix, base, &node, &id, fields, 64, &nf);
                    if (!ok)
                        die("entry %zu is not of the usual shape", i);
                    sink[way] += id.len;
                    for (long long k = 0; k < nf; k++)
                        sink[way] +=
                            fields[k].value.len +
                            (fields[k].value.len ? (unsigned char)fields[k].value.p[0] : 0);
                }
                if (way == 0 && done == 0 && r == 0)
                    entries = list->elements;
                ru_reply_arena_reset(arena);
            }
            t[way] += now() - t0;
        }
    }
    if (sink[0] != sink[1])
        die("the two ways read different bytes (%zu, %zu)", sink[0], sink[1]);
    double per = (double)(rounds / 100 * 100);
    printf("{\"reply_bytes\": %zu, \"entries\": %zu, \"rounds\": %.0f, "
           "\"twice_us_per_reply\": %.1f, \"once_us_per_reply\": %.1f, "
           "\"twice_ns_per_entry\": %.1f, \"once_ns_per_entry\": %.1f, \"ratio\": %.3f, "
           "\"sink\": %zu}\n",
           n, entries, per, t[0] / per * 1e6, t[1] / per * 1e6, t[0] / per / (double)entries * 1e9,
           t[1] / per / (double)entries * 1e9, t[1] / t[0], sink[0]);
    ru_resp_index_free(&ix);
    ru_reply_arena_free(arena);
    free(buf);
    free(src);
    return 0;
}
