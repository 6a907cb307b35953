/* cluster: pure helpers for Redis Cluster, which Debian's hiredis 0.14.1 does not know.
 * The hash slot of a key (CRC16/XMODEM of the key or of its {hash tag}, mod 16384), the
 * master serving a slot in a CLUSTER SLOTS reply, the redirections and refusals a cluster
 * node answers with (-MOVED, -ASK, -CLUSTERDOWN, ...), and the list of nodes to try when
 * the one serving the stream is gone (the configured seeds, then every node a CLUSTER
 * SLOTS reply named). No I/O: the stream module owns the connections. */
#ifndef ROLLUPD_CLUSTER_H
#define ROLLUPD_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "rollupd/util.h"

#define RU_CLUSTER_SLOTS 16384
#define RU_CLUSTER_HOST  256 /* bytes for a host name or address, NUL included */

/* CRC16/XMODEM (polynomial 0x1021, initial 0), as Redis Cluster uses it. */
uint16_t ru_cluster_crc16(const void *buf, size_t len);

/* The hash slot of a key: only the part between the first '{' and the next '}' counts
 * when that part is not empty ("a:{7}" and "b:{7}" share a slot; "{}x" hashes whole). */
unsigned ru_cluster_keyslot(const char *key, size_t len);

/* The producer's shard of an event: CRC-32 (IEEE, as zlib.crc32) of its request id,
 * modulo n (n > 0). The stream key of shard i is "<prefix>:{i}" (README: Scaling out). */
uint32_t ru_cluster_crc32(const void *buf, size_t len);
unsigned ru_cluster_shard(const char *id, size_t len, unsigned n);

/* What an error reply of a cluster node means for the connection. */
enum ru_cluster_err {
    RU_CLUSTER_ERR_OTHER = 0, /* not a cluster error: the caller handles it */
    RU_CLUSTER_MOVED,         /* the slot is served elsewhere for good: go there */
    RU_CLUSTER_ASK,           /* the key is migrating: only this one command goes there */
    RU_CLUSTER_RETRY,         /* CLUSTERDOWN, TRYAGAIN, MASTERDOWN, READONLY, LOADING, UNBLOCKED:
                               * the node cannot serve the key now; ask the cluster again */
};

struct ru_cluster_node {
    char host[RU_CLUSTER_HOST];
    int port;
};

/* Classifies the text of an error reply (without the leading '-'). For MOVED and ASK
 * the slot and the address are filled in; an empty host ("-MOVED 12 :7001", a node that
 * does not know its own address) becomes `self` (the node that answered). */
enum ru_cluster_err ru_cluster_classify(const char *err, const struct ru_cluster_node *self,
                                        int *slot, struct ru_cluster_node *to);

/* The master serving slot in a CLUSTER SLOTS reply (borrowed). 0 and *out filled; -1 with
 * the reason in err when the reply is malformed or no range holds the slot. An empty or
 * "?" address means the node that answered (`self`). */
int ru_cluster_owner(const redisReply *slots, unsigned slot, const struct ru_cluster_node *self,
                     struct ru_cluster_node *out, char *err, size_t errlen) RU_MUSTCHECK;

/* The nodes to try, in turn: the seeds first, then those learnt from CLUSTER SLOTS. */
struct ru_cluster_nodes {
    struct ru_cluster_node *v;
    size_t n, cap;
    size_t next; /* index of the node ru_cluster_nodes_next returns */
};

void ru_cluster_nodes_init(struct ru_cluster_nodes *ns);
void ru_cluster_nodes_deinit(struct ru_cluster_nodes *ns);
/* Adds host:port unless already there (copied). */
void ru_cluster_nodes_add(struct ru_cluster_nodes *ns, const char *host, int port);
/* Adds every node (masters and replicas) of a CLUSTER SLOTS reply; self as above. */
void ru_cluster_nodes_learn(struct ru_cluster_nodes *ns, const redisReply *slots,
                            const struct ru_cluster_node *self);
/* The next node to try, round robin; NULL when the list is empty. Borrowed until the
 * next add. */
const struct ru_cluster_node *ru_cluster_nodes_next(struct ru_cluster_nodes *ns);

/* Parses "host:port[,host:port...]" (spaces allowed around commas; an IPv6 address in
 * brackets, "[::1]:7000"). Adds each to ns (may be NULL: check only). 0, or -1 with the
 * reason in err. */
int ru_cluster_parse_seeds(const char *text, struct ru_cluster_nodes *ns, char *err,
                           size_t errlen) RU_MUSTCHECK;

bool ru_cluster_node_eq(const struct ru_cluster_node *a, const struct ru_cluster_node *b);

#endif
