/* redisurl: the Redis URL of redis.url, parsed. Pure. */
#ifndef ROLLUPD_REDISURL_H
#define ROLLUPD_REDISURL_H

#include <stddef.h>

#include "rollupd/util.h"

/* Where Redis is: parsed from redis.url. Every string is owned. */
struct ru_redis_addr {
    char *host;     /* NULL for a Unix socket */
    int port;       /* default 6379 */
    char *path;     /* Unix socket path, or NULL */
    char *user;     /* ACL user or NULL */
    char *password; /* or NULL */
    int db;         /* SELECT db, default 0 */
};

/* Parses a Redis URL: redis://[[user]:password@]host[:port][/db] or unix:/path[?db=N]
 * (also unix:///path). Returns 0 or -1 with a reason in err (err may be NULL); on
 * failure out holds nothing to free. */
int ru_redisurl_parse(const char *url, struct ru_redis_addr *out, char *err,
                      size_t errlen) RU_MUSTCHECK;
/* Frees a's strings and zeroes it. Safe on a zeroed struct. */
void ru_redisurl_addr_deinit(struct ru_redis_addr *a);

/* A TCP port, 1..65535, in exactly [s, s+n): decimal digits only. 0 or -1. */
int ru_redisurl_parse_port(const char *s, size_t n, int *port) RU_MUSTCHECK;

#endif
