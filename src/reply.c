#include "rollupd/reply.h"

#include <stdlib.h>
#include <string.h>

#include "rollupd/arena.h"
#include "rollupd/event.h"
#include "rollupd/util.h"

#define CHUNK_MIN (1024 * 1024)
/* What a reset keeps for the next reply: enough for a full reply of usual events (1000
 * entries of ~1.5 KiB). A larger reply (large entries) is released when consumed, so its
 * peak is not kept for the life of the connection. */
#define KEEP_MAX (4 * CHUNK_MIN)

struct ru_reply_arena {
    struct ru_arena mem;
};

void *ru_reply_arena_alloc(struct ru_reply_arena *a, size_t n)
{
    return ru_arena_alloc(&a->mem, n);
}

struct ru_reply_arena *ru_reply_arena_new(void)
{
    struct ru_reply_arena *a = ru_xmalloc(sizeof(*a));
    ru_arena_init(&a->mem, CHUNK_MIN, KEEP_MAX);
    return a;
}

void ru_reply_arena_free(struct ru_reply_arena *a)
{
    if (a == NULL)
        return;
    ru_arena_deinit(&a->mem);
    free(a);
}

void ru_reply_arena_reset(struct ru_reply_arena *a)
{
    ru_arena_reset(&a->mem);
}

size_t ru_reply_arena_used(const struct ru_reply_arena *a)
{
    return ru_arena_used(&a->mem);
}

size_t ru_reply_arena_size(const struct ru_reply_arena *a)
{
    return ru_arena_size(&a->mem);
}

/* The reader passes its privdata (the arena) to every task. */
static redisReply *new_reply(const redisReadTask *task, int type)
{
    redisReply *r = ru_reply_arena_alloc(task->privdata, sizeof(*r));
    memset(r, 0, sizeof(*r));
    r->type = type;
    if (task->parent) {
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = r;
    }
    return r;
}

static void *create_string(const redisReadTask *task, char *str, size_t len)
{
    redisReply *r = new_reply(task, task->type);
    r->str = ru_reply_arena_alloc(task->privdata, len + 1);
    memcpy(r->str, str, len);
    r->str[len] = '\0';
    r->len = len;
    return r;
}

static void *create_array(const redisReadTask *task, int elements)
{
    redisReply *r = new_reply(task, REDIS_REPLY_ARRAY);
    r->elements = elements > 0 ? (size_t)elements : 0;
    if (elements > 0) {
        r->element = ru_reply_arena_alloc(task->privdata, (size_t)elements * sizeof(redisReply *));
        memset(r->element, 0, (size_t)elements * sizeof(redisReply *));
    }
    return r;
}

static void *create_integer(const redisReadTask *task, long long value)
{
    redisReply *r = new_reply(task, REDIS_REPLY_INTEGER);
    r->integer = value;
    return r;
}

static void *create_nil(const redisReadTask *task)
{
    return new_reply(task, REDIS_REPLY_NIL);
}

static void free_object(void *obj)
{
    (void)obj; /* arena memory: released by ru_reply_arena_reset */
}

static redisReplyObjectFunctions arena_fns = {create_string, create_array, create_integer,
                                              create_nil, free_object};

void ru_reply_arena_attach(struct ru_reply_arena *a, redisReader *reader)
{
    reader->fn = &arena_fns;
    reader->privdata = a;
    reader->maxbuf = 0;
}

size_t ru_reply_fields(const redisReply *fr, struct ru_field **fields, size_t *cap)
{
    size_t nf = fr->elements / 2;
    if (nf > *cap) {
        *cap = nf * 2;
        *fields = ru_xrealloc(*fields, *cap * sizeof(**fields));
    }
    for (size_t k = 0; k < nf; k++) {
        const redisReply *fn = fr->element[2 * k], *fv = fr->element[2 * k + 1];
        (*fields)[k].name.p = fn->str ? fn->str : "";
        (*fields)[k].name.len = fn->str ? fn->len : 0;
        (*fields)[k].value.p = fv->str ? fv->str : "";
        (*fields)[k].value.len = fv->str ? fv->len : 0;
    }
    return nf;
}
