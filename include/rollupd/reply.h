/* reply: hiredis reply objects built in a bump arena. hiredis 0.14.1 lets a reader use
 * custom reply-object functions; these place every redisReply, element array and string
 * of a reply in one growing chunk, so a 1000-entry XREADGROUP reply costs a few bump
 * allocations instead of ~50 mallocs per entry. The objects are ordinary redisReply
 * structs; they are never passed to freeReplyObject. Used by the stream module and by the
 * benchmark's ceiling reader, so both parse replies the same way. */
#ifndef ROLLUPD_REPLY_H
#define ROLLUPD_REPLY_H

#include <hiredis/hiredis.h>

struct ru_reply_arena;

struct ru_reply_arena *ru_reply_arena_new(void);
void ru_reply_arena_free(struct ru_reply_arena *a);

/* Makes reader build its replies in a (borrowed while the reader lives). Also stops the
 * reader from shrinking its input buffer after every reply. */
void ru_reply_arena_attach(struct ru_reply_arena *a, redisReader *reader);

/* Releases every reply built so far. Call only between complete replies (right after
 * one was handled): a partly built reply lives in the arena too. Keeps one chunk as large
 * as everything used so far, up to 4 MiB, so a steady stream of replies of a usual size
 * allocates nothing while a reply of large entries gives its memory back. */
void ru_reply_arena_reset(struct ru_reply_arena *a);

/* n bytes from the arena, 16-byte aligned, valid until the next reset (for ru_resp_build,
 * which builds replies in the arena without a hiredis reader). */
void *ru_reply_arena_alloc(struct ru_reply_arena *a, size_t n);

/* Bytes of the replies built since the last reset (right after a reply: its size in
 * memory, redisReply objects included). */
size_t ru_reply_arena_used(const struct ru_reply_arena *a);
/* Bytes the arena holds from the allocator, used or not. */
size_t ru_reply_arena_size(const struct ru_reply_arena *a);

/* The field/value pairs of one stream entry's reply array fr ([f, v, ...]) as borrowed
 * views into its strings, in *fields (grown to hold them; *cap its capacity, the caller
 * frees it). Returns the number of pairs; an odd last element is left out. */
struct ru_field;
size_t ru_reply_fields(const redisReply *fr, struct ru_field **fields, size_t *cap);

#endif
