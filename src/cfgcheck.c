#include "rollupd/cfgcheck.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "rollupd/cluster.h"
#include "rollupd/redisurl.h"

#define IDENT_MAX    63 /* PostgreSQL NAMEDATALEN - 1 */
#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path))

/* ---- one value (why: a reason without the key) ------------------------------------- */

int ru_cfgcheck_url(const char *v, char *why, size_t whylen)
{
    struct ru_redis_addr a;
    if (ru_redisurl_parse(v, &a, why, whylen) < 0)
        return -1;
    ru_redisurl_addr_deinit(&a);
    return 0;
}

int ru_cfgcheck_nonempty(const char *v, char *why, size_t whylen)
{
    if (v[0] == '\0') {
        ru_strlcpy(why, "must not be empty", whylen);
        return -1;
    }
    return 0;
}

int ru_cfgcheck_start(const char *v, char *why, size_t whylen)
{
    if (strcmp(v, "0") != 0 && strcmp(v, "$") != 0) {
        ru_strlcpy(why, "must be \"0\" (the whole stream) or \"$\" (new entries only)", whylen);
        return -1;
    }
    return 0;
}

static bool ident_ok(const char *s, size_t n)
{
    if (n == 0 || n > IDENT_MAX)
        return false;
    if (!isalpha((unsigned char)s[0]) && s[0] != '_')
        return false;
    for (size_t i = 1; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '_' && c != '$')
            return false;
    }
    return true;
}

int ru_cfgcheck_table(const char *v, char *why, size_t whylen)
{
    const char *dot = strchr(v, '.');
    bool ok = dot == NULL ? ident_ok(v, strlen(v))
                          : ident_ok(v, (size_t)(dot - v)) && ident_ok(dot + 1, strlen(dot + 1));
    if (!ok) {
        ru_strlcpy(why,
                   "must be a table name or schema.table, each part [A-Za-z_][A-Za-z0-9_$]* "
                   "of at most 63 bytes",
                   whylen);
        return -1;
    }
    return 0;
}

int ru_cfgcheck_table_opt(const char *v, char *why, size_t whylen)
{
    return v[0] == '\0' ? 0 : ru_cfgcheck_table(v, why, whylen);
}

int ru_cfgcheck_socket(const char *v, char *why, size_t whylen)
{
    if (ru_cfgcheck_nonempty(v, why, whylen) < 0)
        return -1;
    if (strlen(v) >= SUN_PATH_MAX) {
        snprintf(why, whylen, "socket path too long (at most %zu bytes)", SUN_PATH_MAX - 1);
        return -1;
    }
    return 0;
}

int ru_cfgcheck_cluster(const char *v, char *why, size_t whylen)
{
    if (strcmp(v, "auto") != 0 && strcmp(v, "on") != 0 && strcmp(v, "off") != 0) {
        ru_strlcpy(why, "must be \"auto\" (ask the server), \"on\" (Redis Cluster) or \"off\"",
                   whylen);
        return -1;
    }
    return 0;
}

int ru_cfgcheck_seeds(const char *v, char *why, size_t whylen)
{
    char e[200];
    if (ru_cluster_parse_seeds(v, NULL, e, sizeof(e)) < 0) {
        snprintf(why, whylen, "%s", e);
        return -1;
    }
    return 0;
}

int ru_cfgcheck_log_format(const char *v, char *why, size_t whylen)
{
    if (strcmp(v, "auto") != 0 && strcmp(v, "journal") != 0 && strcmp(v, "logfmt") != 0 &&
        strcmp(v, "json") != 0) {
        ru_strlcpy(why, "must be \"auto\", \"journal\", \"logfmt\" or \"json\"", whylen);
        return -1;
    }
    return 0;
}

int ru_cfgcheck_listen(const char *v, char *why, size_t whylen)
{
    const char *port;
    char host[INET6_ADDRSTRLEN + 1];
    unsigned char abuf[sizeof(struct in6_addr)];
    bool ok;

    if (v[0] == '\0')
        return 0;
    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        size_t n = close != NULL ? (size_t)(close - v - 1) : 0;
        ok = close != NULL && n > 0 && n < sizeof(host) && close[1] == ':';
        if (ok) {
            memcpy(host, v + 1, n);
            host[n] = '\0';
            ok = inet_pton(AF_INET6, host, abuf) == 1;
        }
        port = ok ? close + 2 : NULL;
    } else {
        const char *colon = strrchr(v, ':');
        size_t n = colon != NULL ? (size_t)(colon - v) : 0;
        ok = colon != NULL && n > 0 && n < sizeof(host);
        if (ok) {
            memcpy(host, v, n);
            host[n] = '\0';
            ok = strcmp(host, "localhost") == 0 || inet_pton(AF_INET, host, abuf) == 1;
        }
        port = ok ? colon + 1 : NULL;
    }
    if (!ok) {
        ru_strlcpy(why,
                   "must be \"host:port\" with an IPv4 address, localhost or a bracketed IPv6 "
                   "address (e.g. \"127.0.0.1:9187\" or \"[::1]:9187\")",
                   whylen);
        return -1;
    }
    int p;
    if (ru_redisurl_parse_port(port, strlen(port), &p) < 0) {
        ru_strlcpy(why, "bad port (must be from 1 to 65535)", whylen);
        return -1;
    }
    return 0;
}

/* ---- across keys ------------------------------------------------------------------- */

/* Redis Cluster: a MULTI with the dead-letter copy and the XACK must stay in one slot,
 * and a cluster has neither databases nor Unix sockets between its nodes. */
static int cluster_check(const struct ru_config *c, int *bad, char *why, size_t whylen)
{
    if (strcmp(c->redis.cluster, "on") != 0)
        return 0;
    const char *st = c->redis.stream, *dl = c->redis.dead_letter_stream;
    unsigned ss = ru_cluster_keyslot(st, strlen(st)), ds = ru_cluster_keyslot(dl, strlen(dl));
    size_t sl = strlen(st);
    bool derived = strncmp(dl, st, sl) == 0 && strcmp(dl + sl, RU_CONFIG_DEAD_SUFFIX) == 0;
    if (ss != ds && derived) {
        *bad = ru_config_key_find("redis", "stream");
        snprintf(why, whylen,
                 "redis.stream: \"%s\" has no hash tag, so its dead-letter stream \"%s\" lands "
                 "in another slot (%u, not %u); in a Redis Cluster both must share a slot: name "
                 "the stream with a tag, e.g. \"%s:{0}\"",
                 st, dl, ds, ss, st);
        return -1;
    }
    if (ss != ds) {
        *bad = ru_config_key_find("redis", "dead_letter_stream");
        snprintf(why, whylen,
                 "redis.dead_letter_stream: \"%s\" hashes to slot %u and redis.stream \"%s\" "
                 "to slot %u; in a Redis Cluster both must share a slot: give both the same "
                 "hash tag (e.g. \"events:{0}\" and \"events:{0}:dead\")",
                 dl, ds, st, ss);
        return -1;
    }
    /* redis.addr is parsed after these checks: parse a copy */
    struct ru_redis_addr a;
    memset(&a, 0, sizeof(a));
    bool single =
        ru_redisurl_parse(c->redis.url, &a, NULL, 0) == 0 && (a.path != NULL || a.db != 0);
    ru_redisurl_addr_deinit(&a);
    if (single) {
        *bad = ru_config_key_find("redis", "url");
        ru_strlcpy(why,
                   "redis.url: a Redis Cluster is reached over TCP and has database 0 only; "
                   "use redis://host:port or redis.cluster = \"off\"",
                   whylen);
        return -1;
    }
    return 0;
}

int ru_cfgcheck_across(const struct ru_config *c, int *bad, char *why, size_t whylen)
{
    if (strcmp(c->redis.dead_letter_stream, c->redis.stream) == 0) {
        *bad = ru_config_key_find("redis", "dead_letter_stream");
        ru_strlcpy(why, "redis.dead_letter_stream: must differ from redis.stream", whylen);
        return -1;
    }
    if (c->postgres.raw_table[0] != '\0' &&
        strcmp(c->postgres.raw_table, c->postgres.hourly_table) == 0) {
        *bad = ru_config_key_find("postgres", "raw_table");
        ru_strlcpy(why, "postgres.raw_table: must differ from postgres.hourly_table", whylen);
        return -1;
    }
    if (cluster_check(c, bad, why, whylen) < 0)
        return -1;
    if (c->redis.lone_consumer && c->redis.claim_idle_ms > 0) {
        *bad = ru_config_key_find("redis", "claim_idle_ms");
        ru_strlcpy(why,
                   "redis.claim_idle_ms: a lone consumer has no other consumers to take over; "
                   "set it to 0 or lone_consumer to false",
                   whylen);
        return -1;
    }
    return 0;
}
