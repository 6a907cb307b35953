#include "rollupd/adopt.h"

#include <stdlib.h>
#include <string.h>

#include "rollupd/group.h"
#include "rollupd/rconn.h"

#define ARG(i, str) RU_RCONN_ARG(s, i, str)

static void adopt_finish(struct ru_stream *s, const char *err)
{
    s->adopt.active = false;
    if (s->cb.on_adopt_done)
        s->cb.on_adopt_done(s->cb.ud, err);
}

void ru_adopt_dropped(struct ru_stream *s, const char *why)
{
    if (s->adopt.active) {
        s->adopt.active = false;
        if (s->cb.on_adopt_done)
            s->cb.on_adopt_done(s->cb.ud, why);
    }
}

/* XRANGE id id: [[id, [f, v, ...]]] or [] when the entry was trimmed. */
static void adopt_range(struct ru_stream *s, const redisReply *r)
{
    if (!s->adopt.active || s->adopt.head == s->adopt.n)
        return;
    struct ru_sid id = s->adopt.ids[s->adopt.head++];
    size_t k = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2 &&
        r->element[0]->element[1]->type == REDIS_REPLY_ARRAY) {
        k = ru_stream_take_fields(s, r->element[0]->element[1]);
    }
    if (s->cb.on_adopt_entry)
        s->cb.on_adopt_entry(s->cb.ud, &id, k ? s->fields : NULL, k);
    if (!s->adopt.more && s->adopt.head == s->adopt.n)
        adopt_finish(s, NULL);
}

static const struct ru_rconn_cmd C_XRANGE_ADOPT = {adopt_range, "xrange", RU_RCONN_NOPERM_HANDLED,
                                                   0};

static void adopt_pending_page(struct ru_stream *s, const redisReply *r);
static const struct ru_rconn_cmd C_XPENDING_ADOPT = {adopt_pending_page, "xpending",
                                                     RU_RCONN_NOPERM_HANDLED, 0};

static void send_xpending_page(struct ru_stream *s, const struct ru_sid *after)
{
    char start[RU_SID_STRLEN + 1];
    if (after == NULL) {
        strcpy(start, "-");
    } else {
        start[0] = '(';
        ru_sid_format(after, start + 1);
    }
    ru_rconn_argv_reserve(s, 8);
    ARG(0, "XPENDING");
    ARG(1, s->stream);
    ARG(2, s->group);
    ARG(3, start);
    ARG(4, "+");
    ARG(5, "1000");
    ARG(6, s->adopt.consumer);
    ru_rconn_send(s, &C_XPENDING_ADOPT, 7);
}

int ru_adopt_fetch(struct ru_stream *s, const char *consumer)
{
    if (s->state != RU_S_LIVE || s->adopt.active)
        return -1;
    free(s->adopt.consumer);
    s->adopt.consumer = ru_xstrdup(consumer);
    s->adopt.active = true;
    s->adopt.head = s->adopt.n = 0;
    s->adopt.more = true;
    send_xpending_page(s, NULL);
    ru_rconn_flush(s);
    return 0;
}

/* One XPENDING page: [[id, consumer, idle, deliveries], ...]. Fetch each entry. */
static void adopt_pending_page(struct ru_stream *s, const redisReply *r)
{
    if (!s->adopt.active)
        return;
    if (r->type != REDIS_REPLY_ARRAY) {
        adopt_finish(s, r->type == REDIS_REPLY_ERROR ? r->str : "XPENDING: unexpected reply");
        return;
    }
    struct ru_sid last = {0, 0};
    size_t got = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        struct ru_sid id;
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 || e->element[0]->str == NULL ||
            ru_sid_parse(&id, e->element[0]->str, e->element[0]->len) < 0)
            continue;
        if (s->adopt.n == s->adopt.cap && s->adopt.head > 0) {
            /* compact the consumed head before growing */
            memmove(s->adopt.ids, s->adopt.ids + s->adopt.head,
                    (s->adopt.n - s->adopt.head) * sizeof(*s->adopt.ids));
            s->adopt.n -= s->adopt.head;
            s->adopt.head = 0;
        }
        if (s->adopt.n == s->adopt.cap) {
            s->adopt.cap = s->adopt.cap ? s->adopt.cap * 2 : 1024;
            s->adopt.ids = ru_xrealloc(s->adopt.ids, s->adopt.cap * sizeof(*s->adopt.ids));
        }
        s->adopt.ids[s->adopt.n++] = id;
        char idt[RU_SID_STRLEN];
        ru_sid_format(&id, idt);
        ru_rconn_argv_reserve(s, 4);
        ARG(0, "XRANGE");
        ARG(1, s->stream);
        ARG(2, idt);
        ARG(3, idt);
        ru_rconn_send(s, &C_XRANGE_ADOPT, 4);
        last = id;
        got++;
    }
    s->adopt.more = got == 1000;
    if (s->adopt.more)
        send_xpending_page(s, &last);
    else if (s->adopt.head == s->adopt.n)
        adopt_finish(s, NULL);
    ru_rconn_flush(s);
}

/* ---- the consumers of the group ---- */

static void parse_consumers(struct ru_stream *s, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || s->cb.on_consumer == NULL)
        return;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *c = r->element[i];
        if (c->type != REDIS_REPLY_ARRAY)
            continue;
        const char *name = NULL;
        long long pending = 0, idle = 0;
        for (size_t j = 0; j + 1 < c->elements; j += 2) {
            const redisReply *k = c->element[j], *v = c->element[j + 1];
            if (k->str == NULL)
                continue;
            if (strcmp(k->str, "name") == 0 && v->str)
                name = v->str;
            else if (strcmp(k->str, "pending") == 0 && v->type == REDIS_REPLY_INTEGER)
                pending = v->integer;
            else if (strcmp(k->str, "idle") == 0 && v->type == REDIS_REPLY_INTEGER)
                idle = v->integer;
        }
        if (name && strcmp(name, s->consumer) != 0)
            s->cb.on_consumer(s->cb.ud, name, pending, idle);
    }
}

static const struct ru_rconn_cmd C_XINFO_CONSUMERS = {parse_consumers, "xinfo|consumers",
                                                      RU_RCONN_NOPERM_FATAL, 0};

int ru_adopt_list_consumers(struct ru_stream *s)
{
    if (s->state != RU_S_LIVE)
        return -1;
    ru_group_xinfo_consumers(s, &C_XINFO_CONSUMERS);
    ru_rconn_flush(s);
    return 0;
}
