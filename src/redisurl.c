/* redisurl: parses redis.url (see redisurl.h). Pure. */
#include "rollupd/redisurl.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#define REDIS_DEFAULT_PORT 6379
#define SUN_PATH_MAX       (sizeof(((struct sockaddr_un *)0)->sun_path))

/* Percent-decodes [s, s+n) into a new string; -1 on a bad escape or an encoded NUL. */
static int pct_decode(const char *s, size_t n, char **out)
{
    struct ru_buf b = RU_BUF_INIT;
    ru_buf_reserve(&b, n);
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            ru_buf_putc(&b, s[i]);
            continue;
        }
        int hi = i + 2 < n ? ru_hex_digit((unsigned char)s[i + 1]) : -1;
        int lo = i + 2 < n ? ru_hex_digit((unsigned char)s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            ru_buf_free(&b);
            return -1;
        }
        ru_buf_putc(&b, (char)(hi * 16 + lo));
        i += 2;
    }
    if (b.p == NULL)
        ru_buf_puts(&b, "");
    *out = b.p;
    return 0;
}

/* Strict non-negative decimal in [s, s+n), at most max. */
static int parse_uint(const char *s, size_t n, int64_t max, int64_t *out)
{
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return -1;
    if (ru_parse_i64(s, n, out) < 0 || *out > max)
        return -1;
    return 0;
}

void ru_redisurl_addr_deinit(struct ru_redis_addr *a)
{
    free(a->host);
    free(a->path);
    free(a->user);
    free(a->password);
    memset(a, 0, sizeof(*a));
}

static bool host_char_ok(int c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_';
}

int ru_redisurl_parse_port(const char *s, size_t n, int *port)
{
    int64_t v;
    if (n == 0 || parse_uint(s, n, 65535, &v) < 0 || v == 0)
        return -1;
    *port = (int)v;
    return 0;
}

static int parse_tcp_url(const char *s, struct ru_redis_addr *out, const char **why)
{
    size_t alen = strcspn(s, "/?#");
    if (s[alen] == '?' || s[alen] == '#') {
        *why = "query strings and fragments are not supported in redis:// URLs";
        return -1;
    }

    const char *host = s;
    size_t hlen = alen;
    const char *at = memrchr(s, '@', alen);
    if (at != NULL) {
        /* [[user]:password@]; a bare "secret@" is a password, as in redis-cli */
        size_t ulen = (size_t)(at - s);
        const char *colon = memchr(s, ':', ulen);
        const char *pw = colon != NULL ? colon + 1 : s;
        size_t pwlen = (size_t)(at - pw);
        if (colon != NULL && colon > s && pct_decode(s, (size_t)(colon - s), &out->user) < 0) {
            *why = "bad percent-encoding in the user name";
            return -1;
        }
        if (pwlen > 0 && pct_decode(pw, pwlen, &out->password) < 0) {
            *why = "bad percent-encoding in the password";
            return -1;
        }
        host = at + 1;
        hlen = alen - ulen - 1;
    }

    const char *port = NULL;
    size_t portlen = 0;
    if (hlen > 0 && host[0] == '[') {
        const char *close = memchr(host, ']', hlen);
        char addr[INET6_ADDRSTRLEN + 64];
        size_t ilen = close != NULL ? (size_t)(close - host - 1) : 0;
        if (close == NULL || ilen == 0 || ilen >= sizeof(addr)) {
            *why = "bad IPv6 address";
            return -1;
        }
        memcpy(addr, host + 1, ilen);
        addr[ilen] = '\0';
        char *zone = strchr(addr, '%');
        if (zone != NULL) {
            /* a zone names an interface: %eth0, %2 (RFC 6874 spells the '%' as %25) */
            *zone++ = '\0';
            if (strncmp(zone, "25", 2) == 0 && zone[2] != '\0')
                zone += 2;
            size_t zl = strlen(zone);
            if (zl == 0 || zl > 15 ||
                strspn(zone, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") !=
                    zl) {
                *why = "bad IPv6 zone (an interface name or number)";
                return -1;
            }
        }
        struct in6_addr a6;
        if (inet_pton(AF_INET6, addr, &a6) != 1) {
            *why = "bad IPv6 address";
            return -1;
        }
        /* keep the decoded zone: "fe80::1%25eth0" connects as "fe80::1%eth0" */
        struct ru_buf hb = RU_BUF_INIT;
        ru_buf_printf(&hb, "%s%s%s", addr, zone ? "%" : "", zone ? zone : "");
        out->host = hb.p;
        size_t rest = hlen - ilen - 2;
        if (rest > 0) {
            if (close[1] != ':') {
                *why = "bad host";
                return -1;
            }
            port = close + 2;
            portlen = rest - 1;
        }
    } else {
        const char *colon = memchr(host, ':', hlen);
        size_t nlen = colon != NULL ? (size_t)(colon - host) : hlen;
        if (colon != NULL && memchr(colon + 1, ':', hlen - nlen - 1) != NULL) {
            *why = "IPv6 addresses must be in brackets, e.g. redis://[::1]:6379";
            return -1;
        }
        if (nlen == 0) {
            *why = "missing host";
            return -1;
        }
        for (size_t i = 0; i < nlen; i++) {
            if (!host_char_ok((unsigned char)host[i])) {
                *why = "bad host";
                return -1;
            }
        }
        out->host = ru_xstrndup(host, nlen);
        if (colon != NULL) {
            port = colon + 1;
            portlen = hlen - nlen - 1;
        }
    }
    if (port != NULL && ru_redisurl_parse_port(port, portlen, &out->port) < 0) {
        *why = "bad port (must be from 1 to 65535)";
        return -1;
    }

    if (s[alen] == '/') {
        const char *db = s + alen + 1;
        int64_t v = 0;
        if (*db != '\0' && parse_uint(db, strlen(db), INT_MAX, &v) < 0) {
            *why = "bad db (must be a non-negative integer)";
            return -1;
        }
        out->db = (int)v;
    }
    return 0;
}

static int parse_unix_url(const char *s, struct ru_redis_addr *out, const char **why)
{
    if (s[0] == '/' && s[1] == '/')
        s += 2; /* unix:///path: empty authority */
    if (s[0] != '/') {
        *why = "unix socket path must be absolute (unix:/path or unix:///path)";
        return -1;
    }
    size_t plen = strcspn(s, "?");
    if (plen >= SUN_PATH_MAX) {
        *why = "unix socket path too long";
        return -1;
    }
    out->path = ru_xstrndup(s, plen);
    out->port = 0;

    const char *q = s + plen;
    while (*q != '\0') {
        q++; /* '?' or '&' */
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        size_t klen = eq != NULL ? (size_t)(eq - q) : n;
        const char *v = eq != NULL ? eq + 1 : q + n;
        size_t vlen = (size_t)(q + n - v);
        if (n == 0) {
            /* empty parameter ("?&db=1"): ignore */
        } else if (eq == NULL) {
            *why = "bad query parameter (expected name=value)";
            return -1;
        } else if (klen == 2 && memcmp(q, "db", 2) == 0) {
            int64_t db;
            if (parse_uint(v, vlen, INT_MAX, &db) < 0) {
                *why = "bad db (must be a non-negative integer)";
                return -1;
            }
            out->db = (int)db;
        } else if (klen == 4 && memcmp(q, "user", 4) == 0) {
            free(out->user);
            out->user = NULL;
            if (vlen > 0 && pct_decode(v, vlen, &out->user) < 0) {
                *why = "bad percent-encoding in the user name";
                return -1;
            }
        } else if (klen == 8 && memcmp(q, "password", 8) == 0) {
            free(out->password);
            out->password = NULL;
            if (vlen > 0 && pct_decode(v, vlen, &out->password) < 0) {
                *why = "bad percent-encoding in the password";
                return -1;
            }
        } else {
            *why = "unknown query parameter (only db, user and password are supported)";
            return -1;
        }
        q += n;
    }
    return 0;
}

int ru_redisurl_parse(const char *url, struct ru_redis_addr *out, char *err, size_t errlen)
{
    const char *why = NULL;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    out->port = REDIS_DEFAULT_PORT;
    if (url == NULL || url[0] == '\0')
        why = "empty URL";
    else if (strncasecmp(url, "redis://", 8) == 0)
        rc = parse_tcp_url(url + 8, out, &why);
    else if (strncasecmp(url, "unix:", 5) == 0)
        rc = parse_unix_url(url + 5, out, &why);
    else
        why = "unsupported scheme (expected redis://host[:port][/db] or unix:/path)";
    if (rc < 0) {
        ru_redisurl_addr_deinit(out);
        if (err != NULL && errlen > 0)
            ru_strlcpy(err, why != NULL ? why : "bad URL", errlen);
    }
    return rc;
}
