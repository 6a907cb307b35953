#include "rollupd/reply.h"

#include <stdlib.h>
#include <string.h>

#include "rollupd/util.h"

#define CHUNK_MIN (1024 * 1024)
/* What a reset keeps for the next reply: enough for a full reply of usual events (1000
 * entries of ~1.5 KiB). A larger reply (large entries) is released when consumed, so its
 * peak is not kept for the life of the connection. */
#define KEEP_MAX (4 * CHUNK_MIN)

struct chunk {
    struct chunk *next;
    size_t used, cap;
    char data[];
};

struct ru_reply_arena {
    struct chunk *head;
    size_t total; /* bytes of every chunk */
    size_t used;  /* bytes handed out since the last reset */
};

static void *arena_alloc(struct ru_reply_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct chunk *c = a->head;
    if (c == NULL || c->cap - c->used < n) {
        size_t cap = n > CHUNK_MIN ? n : CHUNK_MIN;
        c = ru_xmalloc(sizeof(*c) + cap);
        c->cap = cap;
        c->used = 0;
        c->next = a->head;
        a->head = c;
        a->total += cap;
    }
    void *p = c->data + c->used;
    c->used += n;
    a->used += n;
    return p;
}

void *ru_reply_arena_alloc(struct ru_reply_arena *a, size_t n)
{
    return arena_alloc(a, n);
}

static void free_chunks(struct ru_reply_arena *a)
{
    while (a->head) {
        struct chunk *n = a->head->next;
        free(a->head);
        a->head = n;
    }
    a->total = 0;
}

struct ru_reply_arena *ru_reply_arena_new(void)
{
    return ru_xcalloc(1, sizeof(struct ru_reply_arena));
}

void ru_reply_arena_free(struct ru_reply_arena *a)
{
    if (a == NULL)
        return;
    free_chunks(a);
    free(a);
}

void ru_reply_arena_reset(struct ru_reply_arena *a)
{
    a->used = 0;
    if (a->head == NULL)
        return;
    if (a->head->next == NULL && a->total <= KEEP_MAX) {
        a->head->used = 0;
        return;
    }
    size_t keep = a->total < KEEP_MAX ? a->total : KEEP_MAX;
    free_chunks(a);
    struct chunk *c = ru_xmalloc(sizeof(*c) + keep);
    c->cap = keep;
    c->used = 0;
    c->next = NULL;
    a->head = c;
    a->total = keep;
}

size_t ru_reply_arena_used(const struct ru_reply_arena *a)
{
    return a->used;
}

size_t ru_reply_arena_size(const struct ru_reply_arena *a)
{
    return a->total;
}

/* The reader passes its privdata (the arena) to every task. */
static redisReply *new_reply(const redisReadTask *task, int type)
{
    redisReply *r = arena_alloc(task->privdata, sizeof(*r));
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
    r->str = arena_alloc(task->privdata, len + 1);
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
        r->element = arena_alloc(task->privdata, (size_t)elements * sizeof(redisReply *));
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
