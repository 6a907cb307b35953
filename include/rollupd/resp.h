/* resp: RESP2 replies parsed in place. The stream module owns its socket's read buffer and
 * reads each reply from it without copying: ru_resp_scan finds where the first complete
 * reply ends (walking headers only, jumping over string bodies, resuming where it stopped
 * when more bytes arrive), then ru_resp_build makes the same redisReply tree hiredis 0.14
 * would, in one block of a reply arena, with every string pointing into the buffer itself
 * (NUL-terminated in place: the CR after each string is overwritten). The tree therefore
 * lives as long as both the arena's contents and those buffer bytes. A long list of stream
 * entries can be left unbuilt (ru_resp_build_lazy) and read one entry at a time
 * (ru_resp_entry, its strings by length and the buffer left as it is; or
 * ru_resp_build_item), so that no tree of a whole reply (over a kilobyte per entry) is
 * written out and read back from beyond the core's cache. The scan can also note where
 * each item of the reply is (struct ru_resp_index), so that those entries are then read
 * from its notes instead of from the headers a second time (ru_resp_entry_indexed). Pure:
 * no I/O, no logging. */
#ifndef ROLLUPD_RESP_H
#define ROLLUPD_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

#include "rollupd/event.h"
#include "rollupd/reply.h"

/* Arrays nest at most this deep below the top-level reply, as in hiredis 0.14. */
#define RU_RESP_MAX_DEPTH 7
/* A bulk string's length, at most (Redis' proto-max-bulk-len default). */
#define RU_RESP_MAX_BULK (512LL * 1024 * 1024)

/* Where a scan of one reply stands. Zero it (ru_resp_scan_reset) before the first call for
 * a reply; keep it while the reply is incomplete. */
struct ru_resp_scan {
    size_t pos;   /* bytes of the reply scanned: where the next item starts */
    size_t nodes; /* items (redisReply objects) so far */
    size_t elems; /* array elements (pointers) so far */
    int depth;    /* arrays open */
    long long left[RU_RESP_MAX_DEPTH + 1]; /* elements still to come in each */
};

void ru_resp_scan_reset(struct ru_resp_scan *sc);

/* Where each item (node) of the reply being scanned is: word k for the k-th node in the
 * order of the bytes, its offset from the reply's first byte (of a bulk string: of its
 * body; of anything else: of its type byte) in the low 32 bits, and in the high 32 what it
 * is: a bulk string's length (below 2^30), RU_RESP_IX_ARRAY with its element count, or
 * RU_RESP_IX_OTHER (nil, status, error, integer). A reply scanned in a buffer of more
 * than 4 GiB, or with an array of 2^30 elements or more, is not noted (ok false). Zero it
 * to start (ru_resp_index_free gives its memory back); the scan keeps it from one reply
 * to the next, and lets go of room a large reply took when the next one starts. */
struct ru_resp_index {
    uint64_t *w;
    size_t cap; /* words */
    bool ok;    /* w holds every node of the reply scanned so far */
};

#define RU_RESP_IX_ARRAY (2u << 30)
#define RU_RESP_IX_OTHER (3u << 30)
/* The room an index keeps between replies, at most (words). */
#define RU_RESP_IX_KEEP (128u * 1024)

void ru_resp_index_free(struct ru_resp_index *ix);

/* Scans the reply at the start of buf[0..len), from where sc stopped (buf must start with
 * the same reply as at the previous call, len at least as large). Returns the reply's
 * length in bytes (> 0) once it is complete; 0 when more bytes are needed; -1 on a
 * protocol error, described in err (e.g. "bad bulk length"). Each line ends with CR LF;
 * integers, bulk lengths and array counts are decimal ("-1" is a nil bulk or array, other
 * negative lengths are errors); a bulk string is followed by CR LF. */
ssize_t ru_resp_scan(struct ru_resp_scan *sc, const char *buf, size_t len, char *err,
                     size_t errlen);

/* As ru_resp_scan, noting each node in ix (the same ix for every call of one reply). */
ssize_t ru_resp_scan_indexed(struct ru_resp_scan *sc, struct ru_resp_index *ix, const char *buf,
                             size_t len, char *err, size_t errlen);

/* Builds the tree of the reply sc has just found complete (n bytes at buf) in arena, as
 * hiredis with the reply arena builds it: status and error replies and bulk strings as
 * str/len (without the type byte; NUL-terminated), integers, nil, arrays with their element
 * pointers. Writes into buf (the NULs); the strings point into buf. */
redisReply *ru_resp_build(char *buf, size_t n, const struct ru_resp_scan *sc,
                          struct ru_reply_arena *arena);

/* The type of a node ru_resp_build_lazy leaves unbuilt: an array of `elements` items whose
 * bytes are str[0..len), each read with ru_resp_build_item; `integer` is the number of
 * its first item among the reply's nodes (its word in a ru_resp_index). Not a hiredis
 * type. */
#define RU_RESP_LAZY 100

/* Whether r is an array, built or lazy. */
static inline int ru_resp_is_array(const redisReply *r)
{
    return r->type == REDIS_REPLY_ARRAY || r->type == RU_RESP_LAZY;
}

/* As ru_resp_build, but the first non-empty array inside lazy_at - 1 arrays (lazy_at 1: the
 * reply itself; 3: the entries of an XREADGROUP reply [[stream, [entry, ...]]]) is left as
 * an RU_RESP_LAZY node when it is the last thing in the reply, so that a long list costs
 * one node and its items are read one by one (ru_resp_entry, ru_resp_build_item) while
 * their bytes are in the cache.
 * Otherwise (lazy_at 0, or that array is followed by more) the whole tree is built. */
redisReply *ru_resp_build_lazy(char *buf, size_t n, const struct ru_resp_scan *sc,
                               struct ru_reply_arena *arena, int lazy_at);

/* Builds the item at buf[*pos], one of a lazy array's (its first at 0 with buf = the lazy
 * node's str and n its len), in arena as ru_resp_build would, and sets *pos past it. */
redisReply *ru_resp_build_item(char *buf, size_t *pos, size_t n, struct ru_reply_arena *arena);

/* Reads the stream entry [id, [name, value, ...] | nil] at buf[*pos] of a lazy list (as
 * ru_resp_build_item) without building it, when its strings are all bulk strings: the id
 * in *id, the name/value pairs in fields[0..*nfields) (nil or no fields, an entry deleted
 * while pending: *nfields = -1); the strings point into buf, by length only (ru_str: buf is
 * not written, so they are not NUL-terminated, unlike a built tree's). Returns 1 and sets
 * *pos past the entry; 0 when the entry has another shape or more than cap pairs (*pos
 * unchanged: build it with ru_resp_build_item). */
int ru_resp_entry(const char *buf, size_t *pos, size_t n, struct ru_str *id,
                  struct ru_field *fields, size_t cap, long long *nfields);

/* The first byte of the reply the lazy list `list` belongs to, from the index the scan of
 * that reply noted (ix->ok): what the index's offsets count from. Taken once a list. The
 * index must be that reply's, not yet scanned over by another. */
const char *ru_resp_index_base(const struct ru_resp_index *ix, const redisReply *list);

/* As ru_resp_entry, the entry at node *node of a lazy list (its first: list->integer),
 * read from the index of its reply (base: ru_resp_index_base) without reading the headers
 * again: 1 and *node past the entry, or 0 (*node unchanged) for one of another shape,
 * which is then read from its bytes at ru_resp_index_pos. */
int ru_resp_entry_indexed(const struct ru_resp_index *ix, const char *base, size_t *node,
                          struct ru_str *id, struct ru_field *fields, size_t cap,
                          long long *nfields);

/* The position in list->str of the item at node `node` (as ru_resp_build_item takes it). */
size_t ru_resp_index_pos(const struct ru_resp_index *ix, const char *base, const redisReply *list,
                         size_t node);

#endif
