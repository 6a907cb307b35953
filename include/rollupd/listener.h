/* listener: the connection table shared by the status socket and the HTTP listener. One
 * request per connection: read until the request is whole, answer, close. Built so that
 * clients cannot hold it: a request must be whole within a short deadline from the
 * accept (one byte a second does not keep a connection), a request already in the socket
 * is read at the accept, and when every slot is taken a new connection evicts the oldest
 * one that has not sent a whole request (then the oldest still being answered); only
 * requests a handler kept for later are never evicted. Non-blocking; the daemon polls
 * the fds. */
#ifndef ROLLUPD_LISTENER_H
#define ROLLUPD_LISTENER_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollupd/util.h"

enum ru_lconn_state { RU_LCONN_FREE, RU_LCONN_READING, RU_LCONN_HANDLING, RU_LCONN_WRITING };

/* One connection slot. in holds what was read, NUL-terminated. */
struct ru_listener;

struct ru_lconn {
    struct ru_listener *l;
    int fd;
    enum ru_lconn_state state;
    size_t slot; /* its index, stable for the listener's lifetime */
    char *in;
    size_t inlen;
    struct ru_buf out;
    size_t outoff;
    int64_t accepted_ms, deadline_ms;
};

/* How a request ends: true when in[0, len) holds a whole one (eof: the client closed its
 * side, nothing more will come). */
typedef bool (*ru_listener_whole_fn)(const char *in, size_t len, bool eof);
/* A whole request (too_long: max_request bytes came without one). The handler answers
 * with ru_listener_reply, now or later (the connection stays RU_LCONN_HANDLING). */
typedef void (*ru_listener_handle_fn)(void *ud, struct ru_lconn *c, bool too_long);

struct ru_listener_ops {
    size_t max_conns;   /* slots */
    size_t max_request; /* bytes of one request */
    int request_ms;     /* a request must be whole this long after the accept */
    int write_ms;       /* the answer must be taken this long after it is ready */
    ru_listener_whole_fn whole;
    ru_listener_handle_fn handle;
    void *ud;
    const char *full_text; /* sent to a connection refused because every slot is kept */
};

/* Takes lfd (a listening socket, made non-blocking here). ops is copied. */
struct ru_listener *ru_listener_new(int lfd, const struct ru_listener_ops *ops);
/* Closes every connection and the listening socket. */
void ru_listener_free(struct ru_listener *l);

/* Appends its pollfds to fds (at most max); returns how many. */
int ru_listener_pollfds(struct ru_listener *l, struct pollfd *fds, int max);
/* Handles readiness of fd if it is one of the listener's. */
void ru_listener_on_ready(struct ru_listener *l, int fd, short revents);
/* Closes connections past their deadline; call on every loop tick. */
void ru_listener_tick(struct ru_listener *l);

/* Sends the answer and closes the connection once it is taken. */
void ru_listener_reply(struct ru_lconn *c, const char *text, size_t len);

/* Connections closed to make room for a new one, since the start. */
uint64_t ru_listener_evicted(const struct ru_listener *l);

#endif
