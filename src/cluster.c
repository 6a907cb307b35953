#include "rollupd/cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

uint16_t ru_cluster_crc16(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned ru_cluster_keyslot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open != NULL) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close != NULL && close > open + 1)
            return ru_cluster_crc16(open + 1, (size_t)(close - open - 1)) % RU_CLUSTER_SLOTS;
    }
    return ru_cluster_crc16(key, len) % RU_CLUSTER_SLOTS;
}

uint32_t ru_cluster_crc32(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc & 1) ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
    }
    return ~crc;
}

unsigned ru_cluster_shard(const char *id, size_t len, unsigned n)
{
    return n ? ru_cluster_crc32(id, len) % n : 0;
}

bool ru_cluster_node_eq(const struct ru_cluster_node *a, const struct ru_cluster_node *b)
{
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}

/* "host:port" (the last colon splits, so an IPv6 address needs no brackets here) or
 * "[v6]:port". An empty host takes self's. */
static int parse_addr(const char *s, size_t len, const struct ru_cluster_node *self,
                      struct ru_cluster_node *out)
{
    const char *colon = NULL;
    for (size_t i = 0; i < len; i++)
        if (s[i] == ':')
            colon = s + i;
    if (colon == NULL)
        return -1;
    size_t hl = (size_t)(colon - s);
    const char *h = s;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    int64_t port;
    size_t pl = len - (size_t)(colon - s) - 1;
    if (ru_parse_i64(colon + 1, pl, &port) < 0 || port < 1 || port > 65535)
        return -1;
    if (hl >= RU_CLUSTER_HOST)
        return -1;
    if (hl == 0) {
        if (self == NULL)
            return -1;
        ru_strlcpy(out->host, self->host, sizeof(out->host));
    } else {
        memcpy(out->host, h, hl);
        out->host[hl] = '\0';
    }
    out->port = (int)port;
    return 0;
}

static bool starts(const char *s, const char *word)
{
    size_t n = strlen(word);
    return strncmp(s, word, n) == 0 && (s[n] == ' ' || s[n] == '\0');
}

enum ru_cluster_err ru_cluster_classify(const char *err, const struct ru_cluster_node *self,
                                        int *slot, struct ru_cluster_node *to)
{
    /* UNBLOCKED: a blocked read ended because the node turned replica */
    static const char *const retry[] = {"CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN",
                                        "READONLY",    "LOADING",  "UNBLOCKED"};
    for (size_t i = 0; i < RU_ARRAY_LEN(retry); i++)
        if (starts(err, retry[i]))
            return RU_CLUSTER_RETRY;
    enum ru_cluster_err kind;
    if (starts(err, "MOVED"))
        kind = RU_CLUSTER_MOVED;
    else if (starts(err, "ASK"))
        kind = RU_CLUSTER_ASK;
    else
        return RU_CLUSTER_ERR_OTHER;
    /* "MOVED <slot> <host>:<port>" */
    const char *p = strchr(err, ' ');
    char *end;
    long sl = strtol(p + 1, &end, 10);
    if (end == p + 1 || *end != ' ' || sl < 0 || sl >= RU_CLUSTER_SLOTS)
        return RU_CLUSTER_RETRY; /* garbled: ask the cluster where the slot is */
    const char *addr = end + 1;
    struct ru_cluster_node n;
    if (parse_addr(addr, strcspn(addr, " \r\n"), self, &n) < 0)
        return RU_CLUSTER_RETRY;
    if (slot)
        *slot = (int)sl;
    if (to)
        *to = n;
    return kind;
}

/* One node of a slot range: [ip, port, id, ...]. */
static int node_of(const redisReply *e, const struct ru_cluster_node *self,
                   struct ru_cluster_node *out)
{
    if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_INTEGER)
        return -1;
    const redisReply *ip = e->element[0];
    long long port = e->element[1]->integer;
    if (port < 1 || port > 65535 || ip->len >= RU_CLUSTER_HOST)
        return -1;
    if (ip->len == 0 || (ip->len == 1 && ip->str[0] == '?')) {
        if (self == NULL)
            return -1;
        ru_strlcpy(out->host, self->host, sizeof(out->host));
    } else {
        memcpy(out->host, ip->str, ip->len);
        out->host[ip->len] = '\0';
    }
    out->port = (int)port;
    return 0;
}

static bool range_ok(const redisReply *rg)
{
    return rg->type == REDIS_REPLY_ARRAY && rg->elements >= 3 &&
           rg->element[0]->type == REDIS_REPLY_INTEGER &&
           rg->element[1]->type == REDIS_REPLY_INTEGER;
}

int ru_cluster_owner(const redisReply *slots, unsigned slot, const struct ru_cluster_node *self,
                     struct ru_cluster_node *out, char *err, size_t errlen)
{
    if (slots == NULL || slots->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "CLUSTER SLOTS: not an array");
        return -1;
    }
    for (size_t i = 0; i < slots->elements; i++) {
        const redisReply *rg = slots->element[i];
        if (!range_ok(rg)) {
            snprintf(err, errlen, "CLUSTER SLOTS: malformed range #%zu", i);
            return -1;
        }
        if ((long long)slot < rg->element[0]->integer || (long long)slot > rg->element[1]->integer)
            continue;
        if (node_of(rg->element[2], self, out) < 0) {
            snprintf(err, errlen, "CLUSTER SLOTS: malformed master of range #%zu", i);
            return -1;
        }
        return 0;
    }
    snprintf(err, errlen, "no node serves slot %u (the cluster is missing a master)", slot);
    return -1;
}

void ru_cluster_nodes_init(struct ru_cluster_nodes *ns)
{
    memset(ns, 0, sizeof(*ns));
}

void ru_cluster_nodes_deinit(struct ru_cluster_nodes *ns)
{
    free(ns->v);
    memset(ns, 0, sizeof(*ns));
}

void ru_cluster_nodes_add(struct ru_cluster_nodes *ns, const char *host, int port)
{
    struct ru_cluster_node n;
    ru_strlcpy(n.host, host, sizeof(n.host));
    n.port = port;
    for (size_t i = 0; i < ns->n; i++)
        if (ru_cluster_node_eq(&ns->v[i], &n))
            return;
    if (ns->n == ns->cap) {
        ns->cap = ns->cap ? ns->cap * 2 : 8;
        ns->v = ru_xrealloc(ns->v, ns->cap * sizeof(*ns->v));
    }
    ns->v[ns->n++] = n;
}

void ru_cluster_nodes_learn(struct ru_cluster_nodes *ns, const redisReply *slots,
                            const struct ru_cluster_node *self)
{
    if (slots == NULL || slots->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < slots->elements; i++) {
        const redisReply *rg = slots->element[i];
        if (!range_ok(rg))
            continue;
        for (size_t j = 2; j < rg->elements; j++) {
            struct ru_cluster_node n;
            if (node_of(rg->element[j], self, &n) == 0)
                ru_cluster_nodes_add(ns, n.host, n.port);
        }
    }
}

const struct ru_cluster_node *ru_cluster_nodes_next(struct ru_cluster_nodes *ns)
{
    if (ns->n == 0)
        return NULL;
    if (ns->next >= ns->n)
        ns->next = 0;
    return &ns->v[ns->next++];
}

int ru_cluster_parse_seeds(const char *text, struct ru_cluster_nodes *ns, char *err, size_t errlen)
{
    const char *p = text;
    while (*p) {
        p += strspn(p, " \t");
        size_t len = strcspn(p, ",");
        size_t tl = len;
        while (tl > 0 && (p[tl - 1] == ' ' || p[tl - 1] == '\t'))
            tl--;
        struct ru_cluster_node n;
        if (tl == 0 || parse_addr(p, tl, NULL, &n) < 0) {
            snprintf(err, errlen, "\"%.*s\" is not host:port (e.g. \"10.0.0.5:6379\")", (int)tl, p);
            return -1;
        }
        if (ns)
            ru_cluster_nodes_add(ns, n.host, n.port);
        p += len;
        if (*p == ',')
            p++;
    }
    return 0;
}
