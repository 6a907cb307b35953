#include "rollupd/fence.h"

#include <stdlib.h>
#include <string.h>

#include "rollupd/group.h"
#include "rollupd/log.h"
#include "rollupd/rconn.h"

#define ARG(i, str) RU_RCONN_ARG(s, i, str)

static void on_client_kill(struct ru_stream *s, const redisReply *r)
{
    (void)s;
    if (r->type == REDIS_REPLY_ERROR && !ru_rconn_is_error(r, "ERR No such client"))
        ru_warn("msg=\"could not close a connection that may still read for this consumer\" "
                "error=\"%s\"",
                r->str);
}

static const struct ru_rconn_cmd C_CLIENT_KILL = {on_client_kill, "client|kill",
                                                  RU_RCONN_NOPERM_HANDLED, 0};

/* CLIENT LIST: "id=7 addr=... name=rollupd:...:S ...\n" per connection. Closes those of
 * the same consumer and those of a lone consumer of the group (for a lone consumer: all
 * of the group), other than this one. */
static void fence_kill(struct ru_stream *s, const redisReply *r)
{
    if (r->type != REDIS_REPLY_STRING) {
        if (!s->fence_warned)
            ru_warn("msg=\"CLIENT SETNAME/ID/LIST refused (an ACL?): another process that lost "
                    "this consumer's PostgreSQL lock may read on for a moment before it notices; "
                    "grant client|setname, client|id, client|list and client|kill\" error=\"%s\"",
                    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        s->fence_warned = true;
        return;
    }
    size_t plen = strlen(s->group_prefix), nlen = strlen(s->name);
    for (const char *line = r->str; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *name = NULL;
        for (const char *p = line; p < line + len; p++) {
            if ((p == line || p[-1] == ' ') && strncmp(p, "name=", 5) == 0) {
                name = p + 5;
                break;
            }
        }
        long long id = strncmp(line, "id=", 3) == 0 ? atoll(line + 3) : 0;
        size_t nl = name ? strcspn(name, " \r\n") : 0;
        bool same = nl == nlen && memcmp(name, s->name, nlen) == 0;
        bool group = nl > plen && memcmp(name, s->group_prefix, plen) == 0;
        bool lone_other = group && name[nl - 1] == 'L';
        if (id > 0 && id != s->my_id && (same || (group && (s->lone || lone_other)))) {
            char idt[24];
            snprintf(idt, sizeof(idt), "%lld", id);
            ru_warn("msg=\"closing an earlier connection of this consumer or a lone consumer of "
                    "the group before reading (a lost connection of this process, or one of a "
                    "process that lost the PostgreSQL lock)\" client_id=%s name=%.*s",
                    idt, (int)nl, name);
            ru_rconn_argv_reserve(s, 4);
            ARG(0, "CLIENT");
            ARG(1, "KILL");
            ARG(2, "ID");
            ARG(3, idt);
            ru_rconn_send(s, &C_CLIENT_KILL, 4);
        }
        line = end ? end + 1 : NULL;
    }
}

/* CLIENT SETNAME and CLIENT ID */
static void on_client_id(struct ru_stream *s, const redisReply *r)
{
    if (r->type == REDIS_REPLY_INTEGER)
        s->my_id = r->integer;
    else if (r->type == REDIS_REPLY_ERROR)
        fence_kill(s, r); /* warns once */
}

static const struct ru_rconn_cmd C_SETNAME = {on_client_id, "client|setname",
                                              RU_RCONN_NOPERM_HANDLED, 0};
static const struct ru_rconn_cmd C_CLIENT_ID = {on_client_id, "client|id", RU_RCONN_NOPERM_HANDLED,
                                                0};

static void on_client_list(struct ru_stream *s, const redisReply *r)
{
    if (s->my_id > 0)
        fence_kill(s, r);
    else if (!s->fence_warned && r->type == REDIS_REPLY_STRING)
        ru_warn("msg=\"CLIENT ID not answered: no connection closed before reading\"");
    ru_group_create(s);
    ru_rconn_flush(s);
}

static const struct ru_rconn_cmd C_CLIENT_LIST = {on_client_list, "client|list",
                                                  RU_RCONN_NOPERM_HANDLED, 0};

/* The fence: name this connection, then (on the CLIENT LIST reply) close those that
 * may still read for us before anything is read here. */
void ru_fence_start(struct ru_stream *s)
{
    ru_rconn_argv_reserve(s, 4);
    ARG(0, "CLIENT");
    ARG(1, "SETNAME");
    ARG(2, s->name);
    ru_rconn_send(s, &C_SETNAME, 3);
    ARG(1, "ID");
    ru_rconn_send(s, &C_CLIENT_ID, 2);
    ARG(1, "LIST");
    ARG(2, "TYPE");
    ARG(3, "normal");
    ru_rconn_send(s, &C_CLIENT_LIST, 4);
    ru_rconn_flush(s);
}
