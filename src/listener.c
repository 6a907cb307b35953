#include "rollupd/listener.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct ru_listener {
    int lfd;
    struct ru_listener_ops ops;
    struct ru_lconn *c;
    uint64_t evicted;
};

struct ru_listener *ru_listener_new(int lfd, const struct ru_listener_ops *ops)
{
    struct ru_listener *l = ru_xcalloc(1, sizeof(*l));
    l->lfd = lfd;
    l->ops = *ops;
    l->c = ru_xcalloc(ops->max_conns, sizeof(*l->c));
    for (size_t i = 0; i < ops->max_conns; i++) {
        l->c[i].l = l;
        l->c[i].fd = -1;
        l->c[i].slot = i;
        l->c[i].in = ru_xmalloc(ops->max_request + 1);
    }
    int fl = fcntl(lfd, F_GETFL);
    if (fl >= 0)
        fcntl(lfd, F_SETFL, fl | O_NONBLOCK);
    return l;
}

static void conn_close(struct ru_lconn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = RU_LCONN_FREE;
    c->inlen = 0;
    c->outoff = 0;
    ru_buf_free(&c->out);
}

void ru_listener_free(struct ru_listener *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->ops.max_conns; i++) {
        conn_close(&l->c[i]);
        free(l->c[i].in);
    }
    free(l->c);
    if (l->lfd >= 0)
        close(l->lfd);
    free(l);
}

int ru_listener_pollfds(struct ru_listener *l, struct pollfd *fds, int max)
{
    int n = 0;
    if (n < max)
        fds[n++] = (struct pollfd){l->lfd, POLLIN, 0};
    for (size_t i = 0; i < l->ops.max_conns && n < max; i++) {
        const struct ru_lconn *c = &l->c[i];
        if (c->state == RU_LCONN_READING || c->state == RU_LCONN_WRITING)
            fds[n++] = (struct pollfd){c->fd, c->state == RU_LCONN_READING ? POLLIN : POLLOUT, 0};
    }
    return n;
}

/* After a failed read or send: true to try again at once (EINTR); else false, with the
 * connection closed unless the socket merely has nothing to give or take now. */
static bool again(struct ru_lconn *c)
{
    if (errno == EINTR)
        return true;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
        conn_close(c);
    return false;
}

static void handle(struct ru_lconn *c, bool too_long)
{
    c->state = RU_LCONN_HANDLING;
    c->l->ops.handle(c->l->ops.ud, c, too_long);
}

static void on_readable(struct ru_lconn *c)
{
    const struct ru_listener_ops *ops = &c->l->ops;
    while (c->state == RU_LCONN_READING) {
        ssize_t n = read(c->fd, c->in + c->inlen, ops->max_request - c->inlen);
        if (n < 0) {
            if (again(c))
                continue;
            return;
        }
        c->inlen += (size_t)n;
        c->in[c->inlen] = '\0';
        if (n == 0) {
            /* the client closed its side: what came is the request, or nothing */
            if (c->inlen > 0 && ops->whole(c->in, c->inlen, true))
                handle(c, false);
            else
                conn_close(c);
            return;
        }
        if (ops->whole(c->in, c->inlen, false))
            handle(c, false);
        else if (c->inlen >= ops->max_request)
            handle(c, true);
    }
}

static void on_writable(struct ru_lconn *c)
{
    while (c->outoff < c->out.len) {
        ssize_t n = send(c->fd, c->out.p + c->outoff, c->out.len - c->outoff, MSG_NOSIGNAL);
        if (n < 0) {
            if (again(c))
                continue;
            return;
        }
        c->outoff += (size_t)n;
    }
    conn_close(c);
}

void ru_listener_reply(struct ru_lconn *c, const char *text, size_t len)
{
    ru_buf_reset(&c->out);
    ru_buf_append(&c->out, text, len);
    c->outoff = 0;
    c->state = RU_LCONN_WRITING;
    c->deadline_ms = ru_mono_ms() + c->l->ops.write_ms;
    on_writable(c); /* most answers fit the socket buffer at once */
}

/* A free slot, or the one to give up for a new connection: the oldest that has not sent
 * a whole request, else the oldest whose answer is not taken. NULL when every slot holds
 * a request a handler kept for later. */
static struct ru_lconn *slot_for_new(struct ru_listener *l)
{
    struct ru_lconn *oldest[RU_LCONN_WRITING + 1] = {NULL};
    for (size_t i = 0; i < l->ops.max_conns; i++) {
        struct ru_lconn *c = &l->c[i];
        if (c->state == RU_LCONN_FREE)
            return c;
        if (oldest[c->state] == NULL || c->accepted_ms < oldest[c->state]->accepted_ms)
            oldest[c->state] = c;
    }
    struct ru_lconn *c =
        oldest[RU_LCONN_READING] ? oldest[RU_LCONN_READING] : oldest[RU_LCONN_WRITING];
    if (c) {
        conn_close(c);
        l->evicted++;
    }
    return c;
}

static void accept_all(struct ru_listener *l)
{
    /* bounded, so that a flood of connections cannot keep the loop from the stream */
    for (size_t i = 0; i < 4 * l->ops.max_conns; i++) {
        int fd = accept4(l->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct ru_lconn *c = slot_for_new(l);
        if (c == NULL) {
            if (l->ops.full_text) {
                ssize_t w = send(fd, l->ops.full_text, strlen(l->ops.full_text), MSG_NOSIGNAL);
                (void)w;
            }
            close(fd);
            continue;
        }
        c->fd = fd;
        c->state = RU_LCONN_READING;
        c->inlen = 0;
        c->accepted_ms = ru_mono_ms();
        c->deadline_ms = c->accepted_ms + l->ops.request_ms;
        /* a client that wrote its request with the connect is served now, before later
         * connections of this round can take its slot */
        on_readable(c);
    }
}

void ru_listener_on_ready(struct ru_listener *l, int fd, short revents)
{
    if (fd == l->lfd) {
        accept_all(l);
        return;
    }
    for (size_t i = 0; i < l->ops.max_conns; i++) {
        struct ru_lconn *c = &l->c[i];
        if (c->fd != fd)
            continue;
        if (c->state == RU_LCONN_READING && (revents & (POLLIN | POLLHUP | POLLERR)))
            on_readable(c);
        else if (c->state == RU_LCONN_WRITING && (revents & (POLLOUT | POLLHUP | POLLERR)))
            on_writable(c);
        return;
    }
}

void ru_listener_tick(struct ru_listener *l)
{
    int64_t now = ru_mono_ms();
    for (size_t i = 0; i < l->ops.max_conns; i++) {
        struct ru_lconn *c = &l->c[i];
        if ((c->state == RU_LCONN_READING || c->state == RU_LCONN_WRITING) && now > c->deadline_ms)
            conn_close(c);
    }
}

uint64_t ru_listener_evicted(const struct ru_listener *l)
{
    return l->evicted;
}
