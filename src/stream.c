#include "rollupd/stream.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "rollupd/adopt.h"
#include "rollupd/cluster.h"
#include "rollupd/deadletter.h"
#include "rollupd/fence.h"
#include "rollupd/group.h"
#include "rollupd/log.h"
#include "rollupd/lone.h"
#include "rollupd/rconn.h"
#include "rollupd/readsize.h"

#define ACK_CHUNK 1000

#define ARG(i, str) RU_RCONN_ARG(s, i, str)

/* ---- configuration ---- */

static void copy_config(struct ru_stream *s, const struct ru_config *cfg)
{
    free(s->host);
    free(s->path);
    free(s->user);
    free(s->password);
    const struct ru_redis_addr *a = &cfg->redis.addr;
    s->host = a->host ? ru_xstrdup(a->host) : NULL;
    s->path = a->path ? ru_xstrdup(a->path) : NULL;
    s->user = a->user ? ru_xstrdup(a->user) : NULL;
    s->password = a->password ? ru_xstrdup(a->password) : NULL;
    s->port = a->port;
    s->db = a->db;
    s->count = cfg->redis.count;
    s->read_bytes = (size_t)cfg->redis.read_bytes;
    s->block_ms = cfg->redis.block_ms;
    s->connect_timeout_ms = cfg->redis.connect_timeout_ms;
    s->cluster_mode = strcmp(cfg->redis.cluster, "on") == 0    ? 'y'
                      : strcmp(cfg->redis.cluster, "off") == 0 ? 'n'
                                                               : 'a';
    s->cluster = s->cluster_mode == 'y';
    s->target_set = false;
    ru_cluster_nodes_deinit(&s->nodes);
    if (a->host)
        ru_cluster_nodes_add(&s->nodes, a->host, a->port);
    if (ru_cluster_parse_seeds(cfg->redis.cluster_seeds, &s->nodes, NULL, 0) < 0)
        ru_debug("msg=\"redis.cluster_seeds not parsed (checked at load)\"");
    snprintf(s->block_s, sizeof(s->block_s), "%d", s->block_ms);
    ru_readsize_set(s, RU_RCONN_SLOW_START);
}

/* Names the (stream, group) pair in connection names */
static uint64_t group_hash(const char *stream, const char *group)
{
    return ru_hash(group, strlen(group), ru_hash(stream, strlen(stream), 0));
}

void ru_stream_conn_prefix(const char *stream, const char *group, char *out, size_t len)
{
    snprintf(out, len, "rollupd:%016" PRIx64 ":", group_hash(stream, group));
}

struct ru_stream *ru_stream_new(const struct ru_config *cfg, const struct ru_stream_cb *cb)
{
    struct ru_stream *s = ru_xcalloc(1, sizeof(*s));
    copy_config(s, cfg);
    s->stream = ru_xstrdup(cfg->redis.stream);
    s->group = ru_xstrdup(cfg->redis.group);
    s->consumer = ru_xstrdup(cfg->redis.consumer);
    s->dead = ru_xstrdup(cfg->redis.dead_letter_stream);
    s->start = ru_xstrdup(cfg->redis.start);
    s->lone = cfg->redis.lone_consumer;
    s->slot = ru_cluster_keyslot(s->stream, strlen(s->stream));
    uint64_t c = ru_hash(s->consumer, strlen(s->consumer), group_hash(s->stream, s->group));
    ru_stream_conn_prefix(s->stream, s->group, s->group_prefix, sizeof(s->group_prefix));
    snprintf(s->name, sizeof(s->name), "%s%016" PRIx64 ":%c", s->group_prefix, c,
             s->lone ? 'L' : 'S');
    s->cb = *cb;
    s->rcap = RU_RCONN_READ_CHUNK;
    s->rbuf = ru_xmalloc(s->rcap);
    s->arena = ru_reply_arena_new();
    /* room for the usual entry, so that ru_resp_entry reads it from the first reply on */
    s->fields_cap = 32;
    s->fields = ru_xmalloc(s->fields_cap * sizeof(*s->fields));
    s->stats.lag = -1;
    s->stats.group_pending = -1;
    s->read_depth = 1;
    s->state = RU_S_DOWN;
    return s;
}

void ru_stream_free(struct ru_stream *s)
{
    if (s == NULL)
        return;
    if (s->c)
        redisFree(s->c);
    ru_reply_arena_free(s->arena);
    free(s->host);
    free(s->path);
    free(s->user);
    free(s->password);
    free(s->stream);
    free(s->group);
    free(s->consumer);
    free(s->dead);
    free(s->start);
    free(s->q);
    free(s->rbuf);
    ru_resp_index_free(&s->index);
    free(s->fields);
    free(s->argv);
    free(s->argvlen);
    free(s->adopt.consumer);
    free(s->adopt.ids);
    free(s->dead_ids);
    ru_cluster_nodes_deinit(&s->nodes);
    free(s);
}

/* ---- reading ---- */

static enum ru_seen classify(struct ru_stream *s, const struct ru_sid *id)
{
    if (ru_sid_cmp(id, &s->committed) <= 0)
        return RU_SEEN_COMMITTED;
    if (ru_sid_cmp(id, &s->last_seen) <= 0)
        return RU_SEEN_INFLIGHT;
    return RU_SEEN_NEW;
}

/* The field/value pairs of one entry's reply array, as borrowed views in s->fields. */
size_t ru_stream_take_fields(struct ru_stream *s, const redisReply *fr)
{
    return ru_reply_fields(fr, &s->fields, &s->fields_cap);
}

/* One entry of a list: its id's text, and its fields in s->fields[0..nf) (nf < 0: none,
 * the entry was deleted while pending). Returns 1 when it counts (its id parses), else 0. */
static size_t take_entry(struct ru_stream *s, const char *idp, size_t idlen, long long nf,
                         enum ru_origin origin)
{
    struct ru_sid id;
    if (ru_sid_parse(&id, idp, idlen) < 0)
        return 0;
    enum ru_seen seen = classify(s, &id);
    if (origin != RU_FROM_LIVE)
        s->cursor = id;
    if (origin == RU_FROM_RECOVERY) {
        s->stats.recovered++;
        /* also for an entry this process holds: its copy may or may not have been
         * written before the connection went */
        if (ru_lone_is_dead_lettered(s, &id))
            seen = RU_SEEN_DEAD;
    }
    if (ru_sid_cmp(&id, &s->last_seen) > 0)
        s->last_seen = id;
    if (nf < 0) {
        /* trimmed while pending: nothing left to apply (an entry already in an
         * uncommitted batch is acknowledged by that batch after its COMMIT) */
        if (seen != RU_SEEN_INFLIGHT && origin == RU_FROM_PENDING)
            ru_stream_ack(s, &id, 1);
        if (s->cb.on_trimmed)
            s->cb.on_trimmed(s->cb.ud, &id, seen);
        return 1;
    }
    s->stats.entries++;
    s->cb.on_entry(s->cb.ud, &id, s->fields, (size_t)nf, seen, origin);
    return 1;
}

/* Walks a list of entries [[id, [f, v, ...] | nil], ...], built or lazy. A lazy list's
 * entries are read straight from where the scan of the reply noted its strings
 * (ru_resp_entry_indexed; from the reply's bytes, ru_resp_entry, when it could not note
 * them); one of another shape (or with more fields than s->fields holds) is built alone in
 * the reply's arena, and the entries after it are read from the bytes. */
size_t ru_stream_entry_list(struct ru_stream *s, const redisReply *entries, enum ru_origin origin)
{
    size_t n = 0, pos = 0;
    bool indexed = entries->type == RU_RESP_LAZY && s->index.ok;
    size_t node = indexed ? (size_t)entries->integer : 0;
    const char *base = indexed ? ru_resp_index_base(&s->index, entries) : NULL;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e;
        if (entries->type == RU_RESP_LAZY) {
            struct ru_str id;
            long long nf;
            if (indexed) {
                if (ru_resp_entry_indexed(&s->index, base, &node, &id, s->fields, s->fields_cap,
                                          &nf)) {
                    n += take_entry(s, id.p, id.len, nf, origin);
                    continue;
                }
                pos = ru_resp_index_pos(&s->index, base, entries, node);
                indexed = false;
            } else if (ru_resp_entry(entries->str, &pos, entries->len, &id, s->fields,
                                     s->fields_cap, &nf)) {
                n += take_entry(s, id.p, id.len, nf, origin);
                continue;
            }
            e = ru_resp_build_item(entries->str, &pos, entries->len, s->arena);
        } else {
            e = entries->element[i];
        }
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING)
            continue;
        const redisReply *fr = e->element[1];
        long long nf = fr->type != REDIS_REPLY_ARRAY || fr->elements == 0
                           ? -1
                           : (long long)ru_stream_take_fields(s, fr);
        n += take_entry(s, e->element[0]->str, e->element[0]->len, nf, origin);
    }
    return n;
}

/* Walks one XREADGROUP reply: [[stream, [[id, [f, v, ...] | nil], ...]]] or nil. */
static size_t handle_entries(struct ru_stream *s, const redisReply *r, bool replay)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1)
        return 0;
    const redisReply *sr = r->element[0];
    if (sr->type != REDIS_REPLY_ARRAY || sr->elements != 2 || !ru_resp_is_array(sr->element[1]))
        return 0;
    return ru_stream_entry_list(s, sr->element[1], replay ? RU_FROM_PENDING : RU_FROM_LIVE);
}

/* Entries in an XREADGROUP reply [[stream, [entry, ...]]] (0 for nil or an error). */
static size_t reply_entries(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1)
        return 0;
    const redisReply *st = r->element[0];
    if (st->type != REDIS_REPLY_ARRAY || st->elements < 2 || !ru_resp_is_array(st->element[1]))
        return 0;
    return st->element[1]->elements;
}

void ru_stream_start_replay(struct ru_stream *s)
{
    s->backoff_ms = 0;
    s->redirects = 0;
    s->last_err[0] = '\0';
    s->state = RU_S_REPLAY;
    memset(&s->cursor, 0, sizeof(s->cursor));
    ru_stream_send_read(s);
}

/* XREADGROUP, replaying this consumer's pending list (replay) or live. */
static void on_read(struct ru_stream *s, const redisReply *r, bool replay)
{
    int sent = ru_readsize_answered(s);
    s->stats.reads++;
    if (!replay && s->state != RU_S_LIVE) {
        /* the second of two live reads, answered after the first found the group
         * gone: whatever it delivered is in our pending list, which the replay after
         * the group's re-creation reads (a lone consumer's recovery reads it) */
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (ru_rconn_is_error(r, "NOGROUP")) {
            /* the group vanished under us (FLUSHALL, restart without persistence) */
            ru_group_create(s);
            s->state = RU_S_HANDSHAKE;
            return;
        }
        ru_rconn_failf(s, "XREADGROUP: %s", r->str);
        return;
    }
    size_t got = reply_entries(r);
    bool full = got >= (size_t)sent;
    ru_readsize_adapt(s, got, sent); /* before the next reads leave */
    /* A lone consumer's short reply: the next read will BLOCK, and the dead-letter
     * copies of this batch must not wait behind it (commits wait for them). */
    bool after = false;
    if (!replay) {
        /* keep Redis busy while we parse this batch: the next read leaves now, not
         * after the batch, and after a full batch a second one follows it */
        s->read_depth = full ? 2 : 1;
        after = s->lone && s->read_depth < 2;
        while (!after && ru_stream_send_read(s))
            ;
        ru_rconn_flush(s);
    }
    size_t n = handle_entries(s, r, replay);
    if (after && s->c && s->state == RU_S_LIVE) {
        ru_stream_send_read(s);
        ru_rconn_flush(s);
    }
    if (replay && n == 0) {
        s->state = RU_S_LIVE;
        s->next_xinfo_ms = 0;
        if (s->cb.on_state)
            s->cb.on_state(s->cb.ud, true, RU_DOWN_LOST, NULL);
        ru_stream_send_read(s);
    } else if (replay) {
        ru_stream_send_read(s);
    }
    if (s->cb.on_batch)
        s->cb.on_batch(s->cb.ud, n, full, replay);
}

static void on_read_replay(struct ru_stream *s, const redisReply *r)
{
    on_read(s, r, true);
}

/* [[stream, [entry, ...]]]: the entries lazy (depth 2) */
static const struct ru_rconn_cmd C_READ_REPLAY = {on_read_replay, "xreadgroup",
                                                  RU_RCONN_NOPERM_FATAL, 3};

static void on_read_live(struct ru_stream *s, const redisReply *r)
{
    on_read(s, r, false);
}

static const struct ru_rconn_cmd C_READ_LIVE = {on_read_live, "xreadgroup", RU_RCONN_NOPERM_FATAL,
                                                3};

/* Queues one more XREADGROUP (or, recovering, XRANGE) if the depth allows; true when
 * it did. */
bool ru_stream_send_read(struct ru_stream *s)
{
    int depth = s->state == RU_S_LIVE ? s->read_depth : 1;
    if (depth > (int)RU_ARRAY_LEN(s->read_counts))
        depth = (int)RU_ARRAY_LEN(s->read_counts);
    /* recovery must write again the copies lost with a connection even while reading is
     * paused: until it has, no commit can free the memory that paused it */
    bool paused = s->paused && !(s->state == RU_S_RECOVER && s->dl_lost);
    if (s->reads_inflight >= depth || s->c == NULL || paused || (s->state == RU_S_LIVE && s->hold))
        return false;
    char cur[RU_SID_STRLEN + 1];
    if (s->state == RU_S_RECOVER) {
        ru_lone_send_read(s);
        return true;
    }
    ru_rconn_argv_reserve(s, 13);
    int n = 0;
    ARG(n++, "XREADGROUP");
    ARG(n++, "GROUP");
    ARG(n++, s->group);
    ARG(n++, s->consumer);
    ARG(n++, "COUNT");
    ARG(n++, s->read_count_s);
    /* block only when caught up: while a backlog lasts (the last reply was full) a read
     * that finds nothing answers at once, so the end of the backlog shows at once */
    if (s->state == RU_S_LIVE && s->read_depth < 2) {
        ARG(n++, "BLOCK");
        ARG(n++, s->block_s);
    }
    if (s->state == RU_S_LIVE && s->lone) {
        ARG(n++, "NOACK");
        s->recover = true; /* from now on a lost reply can only be found by recovery */
    }
    ARG(n++, "STREAMS");
    ARG(n++, s->stream);
    if (s->state == RU_S_LIVE) {
        ARG(n++, ">");
    } else {
        ru_sid_format(&s->cursor, cur);
        ARG(n++, cur);
    }
    ru_readsize_sent(s);
    ru_rconn_send(s, s->state == RU_S_LIVE ? &C_READ_LIVE : &C_READ_REPLAY, n);
    return true;
}

/* After AUTH, SELECT and CLUSTER SLOTS: the fence, then (on its last reply) the group. */
void ru_stream_handshake(struct ru_stream *s)
{
    ru_readsize_set(s, RU_RCONN_SLOW_START);
    ru_fence_start(s);
}

/* ---- acknowledgement ---- */

static void on_ack(struct ru_stream *s, const redisReply *r)
{
    (void)s;
    if (r->type == REDIS_REPLY_ERROR)
        ru_debug("msg=\"XACK failed\" error=\"%s\"", r->str);
}

static const struct ru_rconn_cmd C_ACK = {on_ack, "xack", RU_RCONN_NOPERM_FATAL, 0};

/* XACK of m ids, the command written here in one buffer (hiredis formatting each id as
 * an argument cost more than the rest of an entry's acknowledgement). */
static void send_ack(struct ru_stream *s, const struct ru_sid *ids, size_t m, struct ru_buf *b)
{
    ru_buf_reset(b);
    ru_buf_printf(b, "*%zu\r\n$4\r\nXACK\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n", m + 3, strlen(s->stream),
                  s->stream, strlen(s->group), s->group);
    /* each id as "$NN\r\n<ms>-<seq>\r\n", formatted straight into the buffer; ids of one
     * millisecond (a busy stream has dozens) share the text of ms. Numbers are copied 24
     * bytes at a time (fixed-size copies, no call): room for that is reserved past each. */
    enum { COPY = 24 }; /* bytes copied of each number's text (at most 20 used) */
    _Static_assert(RU_SID_STRLEN + 8 >= 5 + 20 + 1 + COPY,
                   "room for an id's header, its ms, '-' and a full copy of its seq");
    ru_buf_reserve(b, m * (RU_SID_STRLEN + 8));
    char *w = b->p + b->len, ms_txt[COPY] = {0}, seq_txt[COPY] = {0};
    size_t ms_len = 0;
    for (size_t i = 0; i < m; i++) {
        if (i == 0 || ids[i].ms != ids[i - 1].ms)
            ms_len = ru_u64_format(ids[i].ms, ms_txt);
        size_t seq_len = ru_u64_format(ids[i].seq, seq_txt);
        size_t len = ms_len + 1 + seq_len;
        *w++ = '$';
        if (len >= 10)
            *w++ = (char)('0' + len / 10);
        *w++ = (char)('0' + len % 10);
        *w++ = '\r';
        *w++ = '\n';
        memcpy(w, ms_txt, sizeof(ms_txt));
        w += ms_len;
        *w++ = '-';
        memcpy(w, seq_txt, sizeof(seq_txt));
        w += seq_len;
        *w++ = '\r';
        *w++ = '\n';
    }
    b->len = (size_t)(w - b->p);
    b->p[b->len] = '\0';
    ru_rconn_send_formatted(s, &C_ACK, b->p, b->len);
}

void ru_stream_ack(struct ru_stream *s, const struct ru_sid *ids, size_t n)
{
    if (s->c == NULL || s->state < RU_S_CHECK || n == 0)
        return;
    struct ru_buf b = RU_BUF_INIT;
    for (size_t off = 0; off < n && s->c; off += ACK_CHUNK) {
        size_t m = n - off < ACK_CHUNK ? n - off : ACK_CHUNK;
        send_ack(s, ids + off, m, &b);
        /* written chunk by chunk: hiredis' output buffer would otherwise grow to the whole
         * batch's XACKs (a MiB for 25,000 ids) and be mapped and unmapped every flush */
        ru_rconn_flush(s);
    }
    ru_buf_free(&b);
}

/* ---- the owner's calls ---- */

void ru_stream_start(struct ru_stream *s, const struct ru_stream_start *st)
{
    s->committed = st->committed;
    s->recover = st->recover;
    s->marked = st->recover;
    if (st->recover && ru_sid_cmp(&st->recover_from, &s->floor) > 0)
        s->floor = st->recover_from;
    s->dead_pos = st->dead_pos;
    s->dead_pos_known = st->dead_pos_known;
    if (ru_sid_cmp(&s->last_seen, &s->committed) < 0)
        s->last_seen = s->committed;
    s->group_known = !ru_sid_is_zero(&s->committed) || !ru_sid_is_zero(&s->floor);
    s->started = true;
    s->next_attempt_ms = 0;
    s->stats.reconnects = 0;
    ru_rconn_connect(s);
    if (s->stats.reconnects)
        s->stats.reconnects--; /* the first connection is not a reconnect */
}

void ru_stream_set_committed(struct ru_stream *s, const struct ru_sid *committed,
                             const struct ru_sid *dead_pos)
{
    if (ru_sid_cmp(&s->committed, committed) < 0)
        s->committed = *committed;
    if (dead_pos && ru_sid_cmp(&s->dead_pos, dead_pos) < 0)
        s->dead_pos = *dead_pos;
    if (dead_pos)
        s->dead_pos_known = true;
}

struct ru_sid ru_stream_dead_pos(const struct ru_stream *s)
{
    return ru_sid_cmp(&s->dead_last, &s->dead_pos) > 0 ? s->dead_last : s->dead_pos;
}

void ru_stream_gate_open(struct ru_stream *s)
{
    if (s->state != RU_S_GATE)
        return;
    if (s->lone || s->recover)
        ru_lone_start_check(s);
    else
        ru_stream_start_replay(s);
    ru_rconn_flush(s);
}

void ru_stream_suspend(struct ru_stream *s, bool on, const char *why)
{
    if (on == s->suspended)
        return;
    s->suspended = on;
    if (on) {
        if (s->state != RU_S_DOWN)
            ru_rconn_drop(s, why);
        else
            ru_rconn_set_error(s, why);
    } else {
        s->backoff_ms = 0;
        s->next_attempt_ms = 0;
    }
}

void ru_stream_reconfigure(struct ru_stream *s, const struct ru_config *cfg)
{
    copy_config(s, cfg);
    if (s->started) {
        ru_rconn_drop(s, "configuration reloaded");
        s->backoff_ms = 0;
        s->next_attempt_ms = 0;
    }
}

void ru_stream_pause(struct ru_stream *s, bool paused)
{
    s->paused = paused;
    if (!paused && (s->state == RU_S_LIVE || s->state == RU_S_REPLAY || s->state == RU_S_RECOVER)) {
        ru_stream_send_read(s);
        ru_rconn_flush(s);
    }
}

void ru_stream_dead_letter(struct ru_stream *s, const struct ru_sid *id,
                           const struct ru_field *fields, size_t nfields, const char *reason,
                           enum ru_origin origin)
{
    ru_deadletter_copy(s, id, fields, nfields, reason, origin);
}

void ru_stream_dead_letter_note(struct ru_stream *s, const struct ru_sid *id, const char *reason)
{
    ru_deadletter_note(s, id, reason);
}

int ru_stream_adopt_fetch(struct ru_stream *s, const char *consumer)
{
    return ru_adopt_fetch(s, consumer);
}

int ru_stream_list_consumers(struct ru_stream *s)
{
    return ru_adopt_list_consumers(s);
}

int ru_stream_fd(const struct ru_stream *s)
{
    return ru_rconn_fd(s);
}

short ru_stream_events(const struct ru_stream *s)
{
    return ru_rconn_events(s);
}

void ru_stream_on_ready(struct ru_stream *s, short revents)
{
    ru_rconn_on_ready(s, revents);
}

int ru_stream_tick(struct ru_stream *s)
{
    int64_t now = ru_mono_ms();
    if (!s->started)
        return 1000;
    int wait = ru_rconn_tick(s, now);
    if (wait >= 0)
        return wait;
    ru_group_info_tick(s, now);
    return 1000;
}

bool ru_stream_connected(const struct ru_stream *s)
{
    return s->state >= RU_S_RECOVER;
}

bool ru_stream_recovery_owed(const struct ru_stream *s)
{
    return s->recover || (s->lone && s->marked);
}

void ru_stream_release_noack(struct ru_stream *s, const struct ru_sid *committed)
{
    /* a commit of an earlier connection's starting point does not cover a later one */
    if (!s->hold || ru_sid_cmp(committed, &s->floor) < 0)
        return;
    s->hold = false;
    s->marked = true;
    if (s->state == RU_S_LIVE) {
        ru_stream_send_read(s);
        ru_rconn_flush(s);
    }
}

void ru_stream_refresh_info(struct ru_stream *s)
{
    s->next_xinfo_ms = 0; /* the next tick asks, after what is queued (the XACKs) */
}

bool ru_stream_commit_blocked(const struct ru_stream *s)
{
    return s->dl_inflight > 0 || s->dl_lost;
}

bool ru_stream_take_floor(struct ru_stream *s, struct ru_sid *out)
{
    if (!s->floor_set)
        return false;
    s->floor_set = false;
    *out = s->floor;
    return true;
}

bool ru_stream_live(const struct ru_stream *s)
{
    return s->state == RU_S_LIVE;
}

bool ru_stream_idle(const struct ru_stream *s)
{
    /* a blocked read counts as outstanding: when stopping, its reply may carry entries
     * Redis has already assigned to us, which must be taken in and flushed */
    return s->c == NULL || s->qlen == 0;
}

const char *ru_stream_last_error(const struct ru_stream *s)
{
    return s->last_err;
}

const struct ru_stream_stats *ru_stream_stats(const struct ru_stream *s)
{
    return &s->stats;
}

bool ru_stream_cluster(const struct ru_stream *s)
{
    return s->cluster;
}

void ru_stream_node(const struct ru_stream *s, char *out, size_t len)
{
    if (s->path != NULL || s->at.host[0] == '\0')
        ru_strlcpy(out, "", len);
    else
        snprintf(out, len, "%s:%d", s->at.host, s->at.port);
}

const struct ru_sid *ru_stream_last_seen(const struct ru_stream *s)
{
    return &s->last_seen;
}

size_t ru_stream_mem(const struct ru_stream *s)
{
    return ru_reply_arena_size(s->arena) + s->rcap + s->index.cap * sizeof(*s->index.w);
}

void ru_stream_set_read_budget(struct ru_stream *s, size_t bytes)
{
    ru_readsize_budget(s, bytes);
}

int ru_stream_read_count(const struct ru_stream *s)
{
    return ru_readsize_count(s);
}

size_t ru_stream_entry_bytes(const struct ru_stream *s)
{
    return ru_readsize_entry_bytes(s);
}
