/* Unit tests for cluster: key slots, CLUSTER SLOTS replies, redirections, seed lists.
 * The slots below were asked once of redis-server 7.0.15 with CLUSTER KEYSLOT. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "rollupd/cluster.h"

static unsigned slot_of(const char *k)
{
    return ru_cluster_keyslot(k, strlen(k));
}

Test(cluster, crc16_xmodem_check_value)
{
    cr_assert_eq(ru_cluster_crc16("123456789", 9), 0x31C3);
    cr_assert_eq(ru_cluster_crc16("", 0), 0);
}

Test(cluster, keyslot_matches_redis)
{
    static const struct {
        const char *key;
        unsigned slot;
    } known[] = {
        {"foo", 12182},
        {"bar", 5061},
        {"123456789", 12739},
        {"", 0},
        {"genonaut:route_analytics:stream:{0}", 13907},
        {"genonaut:route_analytics:stream:{1}", 9842},
        {"genonaut:route_analytics:stream:{2}", 5649},
        {"genonaut:route_analytics:stream:{3}", 1584},
        {"genonaut:route_analytics:stream:{0}:dead", 13907},
        {"{}x", 10595},    /* empty tag: the whole key */
        {"a{}{b}", 15033}, /* the first '{' and the next '}' only */
        {"x{y", 2740},     /* no closing brace: the whole key */
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        cr_expect_eq(slot_of(known[i].key), known[i].slot, "%s: %u, redis says %u", known[i].key,
                     slot_of(known[i].key), known[i].slot);
}

Test(cluster, hash_tag_shares_slot)
{
    cr_assert_eq(slot_of("s:{user1}:a"), slot_of("other{user1}"));
    cr_assert_eq(slot_of("s:{user1}:a"), slot_of("user1"));
}

static redisReply *parse(const char *resp)
{
    redisReader *rd = redisReaderCreate();
    cr_assert_eq(redisReaderFeed(rd, resp, strlen(resp)), REDIS_OK);
    void *r = NULL;
    cr_assert_eq(redisReaderGetReply(rd, &r), REDIS_OK);
    cr_assert_not_null(r);
    redisReaderFree(rd);
    return r;
}

/* Two ranges as Redis 7.0 answers: master then replica, each ip, port, id, metadata. */
static const char slots_resp[] = "*2\r\n"
                                 "*4\r\n:0\r\n:8191\r\n"
                                 "*4\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n*0\r\n"
                                 "*4\r\n$9\r\n127.0.0.1\r\n:7003\r\n$2\r\nid\r\n*0\r\n"
                                 "*4\r\n:8192\r\n:16383\r\n"
                                 "*4\r\n$0\r\n\r\n:7001\r\n$2\r\nid\r\n*0\r\n"
                                 "*3\r\n$8\r\n10.0.0.9\r\n:7004\r\n$2\r\nid\r\n";

Test(cluster, owner_from_cluster_slots)
{
    redisReply *r = parse(slots_resp);
    struct ru_cluster_node self = {"10.0.0.1", 7009}, n;
    char err[128];
    cr_assert_eq(ru_cluster_owner(r, 0, &self, &n, err, sizeof(err)), 0);
    cr_assert_str_eq(n.host, "127.0.0.1");
    cr_assert_eq(n.port, 7000);
    cr_assert_eq(ru_cluster_owner(r, 8191, &self, &n, err, sizeof(err)), 0);
    cr_assert_eq(n.port, 7000);
    cr_assert_eq(ru_cluster_owner(r, 13907, &self, &n, err, sizeof(err)), 0);
    cr_assert_str_eq(n.host, "10.0.0.1", "an empty address is the node that answered");
    cr_assert_eq(n.port, 7001);

    struct ru_cluster_nodes ns;
    ru_cluster_nodes_init(&ns);
    ru_cluster_nodes_add(&ns, "127.0.0.1", 7000);
    ru_cluster_nodes_learn(&ns, r, &self);
    cr_assert_eq(ns.n, 4, "seed kept once, then 7003, 7001 (self's host) and 7004: %zu", ns.n);
    cr_assert_eq(ru_cluster_nodes_next(&ns)->port, 7000);
    cr_assert_eq(ru_cluster_nodes_next(&ns)->port, 7003);
    cr_assert_eq(ru_cluster_nodes_next(&ns)->port, 7001);
    cr_assert_eq(ru_cluster_nodes_next(&ns)->port, 7004);
    cr_assert_eq(ru_cluster_nodes_next(&ns)->port, 7000, "round robin");
    ru_cluster_nodes_deinit(&ns);
    freeReplyObject(r);
}

Test(cluster, owner_missing_or_malformed)
{
    char err[128];
    struct ru_cluster_node n;
    redisReply *r = parse("*1\r\n*3\r\n:0\r\n:99\r\n*2\r\n$1\r\na\r\n:1\r\n");
    cr_assert_eq(ru_cluster_owner(r, 100, NULL, &n, err, sizeof(err)), -1);
    cr_assert(strstr(err, "no node serves slot 100") != NULL, "%s", err);
    freeReplyObject(r);
    r = parse("*1\r\n*3\r\n:0\r\n:99\r\n:5\r\n");
    cr_assert_eq(ru_cluster_owner(r, 1, NULL, &n, err, sizeof(err)), -1);
    cr_assert(strstr(err, "malformed") != NULL, "%s", err);
    freeReplyObject(r);
    r = parse("$2\r\nno\r\n");
    cr_assert_eq(ru_cluster_owner(r, 1, NULL, &n, err, sizeof(err)), -1);
    freeReplyObject(r);
}

Test(cluster, classify_errors)
{
    struct ru_cluster_node self = {"10.1.1.1", 6379}, to;
    int slot = -1;
    cr_assert_eq(ru_cluster_classify("MOVED 3999 127.0.0.1:6381", &self, &slot, &to),
                 RU_CLUSTER_MOVED);
    cr_assert_eq(slot, 3999);
    cr_assert_str_eq(to.host, "127.0.0.1");
    cr_assert_eq(to.port, 6381);
    cr_assert_eq(ru_cluster_classify("ASK 12 :7002", &self, &slot, &to), RU_CLUSTER_ASK);
    cr_assert_str_eq(to.host, "10.1.1.1");
    cr_assert_eq(to.port, 7002);
    cr_assert_eq(ru_cluster_classify("MOVED 1 [::1]:7000", &self, &slot, &to), RU_CLUSTER_MOVED);
    cr_assert_str_eq(to.host, "::1");
    cr_assert_eq(ru_cluster_classify("MOVED 1 ::1:7000", &self, &slot, &to), RU_CLUSTER_MOVED);
    cr_assert_str_eq(to.host, "::1");
    cr_assert_eq(ru_cluster_classify("MOVED 99999 h:1", &self, &slot, &to), RU_CLUSTER_RETRY);
    cr_assert_eq(ru_cluster_classify("MOVED x", &self, &slot, &to), RU_CLUSTER_RETRY);
    cr_assert_eq(ru_cluster_classify("CLUSTERDOWN The cluster is down", &self, NULL, NULL),
                 RU_CLUSTER_RETRY);
    cr_assert_eq(ru_cluster_classify("READONLY You can't write against a read only replica.", &self,
                                     NULL, NULL),
                 RU_CLUSTER_RETRY);
    cr_assert_eq(ru_cluster_classify("TRYAGAIN Multiple keys request during rehashing of slot",
                                     &self, NULL, NULL),
                 RU_CLUSTER_RETRY);
    cr_assert_eq(ru_cluster_classify("NOGROUP No such key", &self, NULL, NULL),
                 RU_CLUSTER_ERR_OTHER);
    cr_assert_eq(ru_cluster_classify("MOVEDX 1 a:1", &self, NULL, NULL), RU_CLUSTER_ERR_OTHER);
    cr_assert_eq(ru_cluster_classify("ASKING", &self, NULL, NULL), RU_CLUSTER_ERR_OTHER);
}

Test(cluster, seeds)
{
    struct ru_cluster_nodes ns;
    ru_cluster_nodes_init(&ns);
    char err[128];
    cr_assert_eq(
        ru_cluster_parse_seeds("a:1, b.example:6379 ,[::1]:7000,a:1", &ns, err, sizeof(err)), 0,
        "%s", err);
    cr_assert_eq(ns.n, 3);
    cr_assert_str_eq(ns.v[1].host, "b.example");
    cr_assert_str_eq(ns.v[2].host, "::1");
    cr_assert_eq(ns.v[2].port, 7000);
    cr_assert_eq(ru_cluster_parse_seeds("", NULL, err, sizeof(err)), 0);
    cr_assert_eq(ru_cluster_parse_seeds("a:1,,b:2", NULL, err, sizeof(err)), -1);
    cr_assert_eq(ru_cluster_parse_seeds("host", NULL, err, sizeof(err)), -1);
    cr_assert(strstr(err, "\"host\" is not host:port") != NULL, "%s", err);
    cr_assert_eq(ru_cluster_parse_seeds(":5", NULL, err, sizeof(err)), -1);
    cr_assert_eq(ru_cluster_parse_seeds("h:70000", NULL, err, sizeof(err)), -1);
    ru_cluster_nodes_deinit(&ns);
}

Test(cluster, crc32_is_zlibs)
{
    cr_assert_eq(ru_cluster_crc32("123456789", 9), 0xCBF43926u);
    cr_assert_eq(ru_cluster_crc32("", 0), 0);
}

/* The producer recipe (examples/sharding/shard.py) and rollupd agree on every shard, and
 * 40,000 request ids spread evenly over 4 shards. */
Test(cluster, shard_recipe_agrees_with_python)
{
    const char *py = "/usr/bin/python3";
    if (access(py, X_OK) != 0)
        cr_skip_test("%s is missing", py);
    char cmd[1024], path[] = "/tmp/rollupd-shard-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    enum { N = 40000, SHARDS = 4 };
    unsigned count[SHARDS] = {0};
    for (int i = 0; i < N; i++) {
        char id[64];
        int len = snprintf(id, sizeof(id), "req-%d-%08x", i, (unsigned)i * 2654435761u);
        count[ru_cluster_shard(id, (size_t)len, SHARDS)]++;
        fprintf(f, "%s\n", id);
    }
    fclose(f);
    snprintf(cmd, sizeof(cmd), "%s %s/examples/sharding/shard.py %d < %s", py, RU_SOURCE_DIR,
             SHARDS, path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char line[256];
    int i = 0, bad = 0;
    while (fgets(line, sizeof(line), p) != NULL) {
        char id[64], want[128];
        int len = snprintf(id, sizeof(id), "req-%d-%08x", i, (unsigned)i * 2654435761u);
        unsigned sh = ru_cluster_shard(id, (size_t)len, SHARDS);
        snprintf(want, sizeof(want), "%u genonaut:route_analytics:stream:{%u}\n", sh, sh);
        if (strcmp(line, want) != 0 && bad++ < 5)
            cr_log_error("%s: python says %s, rollupd %s", id, line, want);
        i++;
    }
    int rc = pclose(p);
    unlink(path);
    cr_assert_eq(rc, 0, "%s exited with %d", cmd, rc);
    cr_assert_eq(i, N, "python printed %d lines", i);
    cr_assert_eq(bad, 0, "%d ids differ", bad);
    for (int s = 0; s < SHARDS; s++)
        cr_expect(count[s] > N / SHARDS * 95 / 100 && count[s] < N / SHARDS * 105 / 100,
                  "shard %d has %u of %d ids (want within 5%% of an even spread)", s, count[s], N);
}
