/* Unit tests for src/redisurl.c: the forms of redis.url and the reasons for refusing one. */
#include <criterion/criterion.h>

#include <string.h>

#include "rollupd/redisurl.h"

Test(redisurl, parsing)
{
    struct ru_redis_addr a;
    char err[256];

    cr_assert_eq(ru_redisurl_parse("redis://example.com", &a, err, sizeof(err)), 0);
    cr_assert_str_eq(a.host, "example.com");
    cr_assert_eq(a.port, 6379);
    cr_assert_eq(a.db, 0);
    cr_assert_null(a.user);
    cr_assert_null(a.password);
    cr_assert_null(a.path);
    ru_redisurl_addr_deinit(&a);

    cr_assert_eq(ru_redisurl_parse("redis://10.0.0.1:7000/15", &a, err, sizeof(err)), 0);
    cr_assert_str_eq(a.host, "10.0.0.1");
    cr_assert_eq(a.port, 7000);
    cr_assert_eq(a.db, 15);
    ru_redisurl_addr_deinit(&a);

    cr_assert_eq(ru_redisurl_parse("redis://bob:p%40ss%3Aw@h:1/", &a, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_str_eq(a.user, "bob");
    cr_assert_str_eq(a.password, "p@ss:w");
    cr_assert_str_eq(a.host, "h");
    cr_assert_eq(a.port, 1);
    cr_assert_eq(a.db, 0);
    ru_redisurl_addr_deinit(&a);

    cr_assert_eq(ru_redisurl_parse("redis://:onlypw@h", &a, err, sizeof(err)), 0);
    cr_assert_null(a.user);
    cr_assert_str_eq(a.password, "onlypw");
    ru_redisurl_addr_deinit(&a);

    /* a bare userinfo is a password, as with redis-cli */
    cr_assert_eq(ru_redisurl_parse("redis://pw@h", &a, err, sizeof(err)), 0);
    cr_assert_null(a.user);
    cr_assert_str_eq(a.password, "pw");
    ru_redisurl_addr_deinit(&a);

    cr_assert_eq(ru_redisurl_parse("REDIS://[::1]:6380/4", &a, err, sizeof(err)), 0);
    cr_assert_str_eq(a.host, "::1");
    cr_assert_eq(a.port, 6380);
    cr_assert_eq(a.db, 4);
    ru_redisurl_addr_deinit(&a);

    cr_assert_eq(ru_redisurl_parse("redis://[fe80::1%eth0]", &a, err, sizeof(err)), 0);
    cr_assert_str_eq(a.host, "fe80::1%eth0");
    cr_assert_eq(a.port, 6379);
    ru_redisurl_addr_deinit(&a);

    cr_assert_eq(ru_redisurl_parse("unix:/run/redis.sock", &a, err, sizeof(err)), 0);
    cr_assert_null(a.host);
    cr_assert_str_eq(a.path, "/run/redis.sock");
    cr_assert_eq(a.db, 0);
    ru_redisurl_addr_deinit(&a);

    cr_assert_eq(ru_redisurl_parse("unix:///run/redis.sock?db=9&user=u&password=p%20w", &a, err,
                                   sizeof(err)),
                 0, "%s", err);
    cr_assert_str_eq(a.path, "/run/redis.sock");
    cr_assert_eq(a.db, 9);
    cr_assert_str_eq(a.user, "u");
    cr_assert_str_eq(a.password, "p w");
    ru_redisurl_addr_deinit(&a);
}

Test(redisurl, bad_urls)
{
    static const struct {
        const char *url;
        const char *why; /* a part of the reason */
    } cases[] = {
        {"", "empty"},
        {"http://h", "unsupported scheme"},
        {"rediss://h", "unsupported scheme"},
        {"127.0.0.1:6379", "unsupported scheme"},
        {"redis://", "missing host"},
        {"redis://:6379", "missing host"},
        {"redis://u:p@", "missing host"},
        {"redis://h:", "bad port"},
        {"redis://h:0", "bad port"},
        {"redis://h:65536", "bad port"},
        {"redis://h:12ab", "bad port"},
        {"redis://h:-1", "bad port"},
        {"redis://h/x", "bad db"},
        {"redis://h/-1", "bad db"},
        {"redis://h/1/2", "bad db"},
        {"redis://h/99999999999", "bad db"},
        {"redis://h?db=1", "not supported"},
        {"redis://h#x", "not supported"},
        {"redis://::1", "brackets"},
        {"redis://[::1", "IPv6"},
        {"redis://[zz::1]", "IPv6"},
        {"redis://[::1]x", "bad host"},
        {"redis://h st", "bad host"},
        {"redis://u:%zz@h", "percent-encoding"},
        {"redis://u:%00@h", "percent-encoding"},
        {"redis://u:%4@h", "percent-encoding"},
        {"unix:relative.sock", "absolute"},
        {"unix://host/path", "absolute"},
        {"unix:", "absolute"},
        {"unix:/s?db=x", "bad db"},
        {"unix:/s?foo=1", "unknown query parameter"},
        {"unix:/s?db", "name=value"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ru_redis_addr a;
        char err[256] = "";
        cr_assert_eq(ru_redisurl_parse(cases[i].url, &a, err, sizeof(err)), -1, "accepted \"%s\"",
                     cases[i].url);
        cr_assert_not_null(strstr(err, cases[i].why), "\"%s\": \"%s\" lacks \"%s\"", cases[i].url,
                           err, cases[i].why);
        cr_assert_null(a.host);
        cr_assert_null(a.path);
        cr_assert_null(a.user);
        cr_assert_null(a.password);
    }

    char longurl[200] = "unix:/";
    memset(longurl + 6, 'a', 120);
    longurl[126] = '\0';
    struct ru_redis_addr a;
    char err[256];
    cr_assert_eq(ru_redisurl_parse(longurl, &a, err, sizeof(err)), -1);
    cr_assert_not_null(strstr(err, "too long"));
}

Test(redisurl, ports)
{
    int p = 0;
    cr_assert_eq(ru_redisurl_parse_port("6379", 4, &p), 0);
    cr_assert_eq(p, 6379);
    cr_assert_eq(ru_redisurl_parse_port("65535", 5, &p), 0);
    cr_assert_eq(p, 65535);
    cr_assert_eq(ru_redisurl_parse_port("0", 1, &p), -1);
    cr_assert_eq(ru_redisurl_parse_port("65536", 5, &p), -1);
    cr_assert_eq(ru_redisurl_parse_port("", 0, &p), -1);
    cr_assert_eq(ru_redisurl_parse_port("+80", 3, &p), -1);
    cr_assert_eq(ru_redisurl_parse_port("80x", 2, &p), 0, "only [s, s+n) is read");
    cr_assert_eq(p, 80);
}
