/* status: the Unix stream status socket. A client writes one command line; the server
 * answers and closes. Commands are a {word, handler} table supplied by the daemon; a
 * handler answers at once (ru_status_reply) or keeps the request for later (e.g.
 * "flush" answers after the COMMIT). Non-blocking: the daemon polls the fds. */
#ifndef ROLLUPD_STATUS_H
#define ROLLUPD_STATUS_H

#include <stdbool.h>
#include <stddef.h>

#include "rollupd/listener.h"
#include "rollupd/util.h"

struct ru_status;
struct ru_status_req; /* one client waiting for its answer */

/* args: the rest of the line after the word (trimmed, maybe ""). The handler must
 * eventually call ru_status_reply exactly once for req (now or later). */
typedef void (*ru_status_fn)(void *ud, struct ru_status_req *req, const char *args);

struct ru_status_cmd {
    const char *word;
    const char *help;
    ru_status_fn fn;
};

/* Listens on path (the directory must exist) with the given mode, or adopts listen_fd
 * when >= 0 (socket activation). A socket file already at path is replaced when nothing
 * listens on it any more; one that a process still accepts on (another rollupd with the
 * same configuration) is refused, as is a path that is not a socket. cmds is borrowed
 * for the server's lifetime. Returns NULL with a reason in err. */
struct ru_status *ru_status_new(const char *path, int listen_fd, unsigned mode,
                                const struct ru_status_cmd *cmds, size_t ncmds, void *ud, char *err,
                                size_t errlen);
/* Closes every client and the listener; removes the socket file it created. */
void ru_status_free(struct ru_status *s);

/* Its connections, for the owner's poll loop (ru_listener_pollfds, _on_ready, _tick:
 * a client that does not send a whole line in time is dropped). */
struct ru_listener *ru_status_listener(struct ru_status *s);

/* Sends text (a newline is added if missing) and closes the client. */
void ru_status_reply(struct ru_status_req *req, const char *text, size_t len);
void ru_status_replyf(struct ru_status_req *req, const char *fmt, ...) RU_PRINTF(2, 3);

#endif
