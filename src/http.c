#include "rollupd/http.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLIENTS 16
#define REQ_MAX     8192
#define TIMEOUT_MS  5000

struct client {
    int fd;
    bool writing;
    char in[REQ_MAX];
    size_t inlen;
    struct ru_buf out;
    size_t outoff;
    int64_t deadline_ms;
};

struct ru_http {
    int lfd;
    ru_http_fn fn;
    void *ud;
    struct client c[MAX_CLIENTS];
};

static int split_listen(const char *listen, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon;
    if (listen[0] == '[') {
        const char *end = strchr(listen, ']');
        if (end == NULL || end[1] != ':')
            return -1;
        snprintf(host, hostlen, "%.*s", (int)(end - listen - 1), listen + 1);
        colon = end + 1;
    } else {
        colon = strrchr(listen, ':');
        if (colon == NULL)
            return -1;
        snprintf(host, hostlen, "%.*s", (int)(colon - listen), listen);
    }
    snprintf(port, portlen, "%s", colon + 1);
    return 0;
}

struct ru_http *ru_http_new(const char *listen_addr, ru_http_fn fn, void *ud, char *err,
                            size_t errlen)
{
    char host[256], port[16];
    if (split_listen(listen_addr, host, sizeof(host), port, sizeof(port)) < 0) {
        snprintf(err, errlen, "metrics.listen: '%s' is not host:port", listen_addr);
        return NULL;
    }
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "metrics.listen: %s: %s", listen_addr, gai_strerror(rc));
        return NULL;
    }
    struct ru_http *h = ru_xcalloc(1, sizeof(*h));
    h->fn = fn;
    h->ud = ud;
    for (size_t i = 0; i < MAX_CLIENTS; i++)
        h->c[i].fd = -1;
    h->lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (h->lfd < 0 || setsockopt(h->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(h->lfd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(h->lfd, 16) < 0) {
        snprintf(err, errlen, "metrics.listen: %s: %s", listen_addr, strerror(errno));
        freeaddrinfo(ai);
        ru_http_free(h);
        return NULL;
    }
    freeaddrinfo(ai);
    return h;
}

static void client_close(struct client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->writing = false;
    c->inlen = 0;
    c->outoff = 0;
    ru_buf_free(&c->out);
}

void ru_http_free(struct ru_http *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i < MAX_CLIENTS; i++)
        client_close(&h->c[i]);
    if (h->lfd >= 0)
        close(h->lfd);
    free(h);
}

int ru_http_pollfds(struct ru_http *h, struct pollfd *fds, int max)
{
    int n = 0;
    if (n < max)
        fds[n++] = (struct pollfd){h->lfd, POLLIN, 0};
    for (size_t i = 0; i < MAX_CLIENTS && n < max; i++)
        if (h->c[i].fd >= 0)
            fds[n++] = (struct pollfd){h->c[i].fd, h->c[i].writing ? POLLOUT : POLLIN, 0};
    return n;
}

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

static void respond(struct ru_http *h, struct client *c)
{
    c->in[c->inlen] = '\0';
    int status = 400;
    const char *ctype = "text/plain; charset=utf-8";
    struct ru_buf body = RU_BUF_INIT;
    char method[8] = "", path[256] = "";
    if (sscanf(c->in, "%7s %255s", method, path) == 2) {
        char *q = strchr(path, '?');
        if (q)
            *q = '\0';
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
            status = 405;
            ru_buf_puts(&body, "only GET\n");
        } else {
            h->fn(h->ud, path, &status, &ctype, &body);
        }
    } else {
        ru_buf_puts(&body, "bad request\n");
    }
    ru_buf_printf(&c->out,
                  "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                  "Connection: close\r\n\r\n",
                  status, reason(status), ctype, body.len);
    if (strcmp(method, "HEAD") != 0)
        ru_buf_append(&c->out, body.p ? body.p : "", body.len);
    ru_buf_free(&body);
    c->writing = true;
    c->outoff = 0;
}

static void on_write(struct client *c)
{
    while (c->outoff < c->out.len) {
        ssize_t n = send(c->fd, c->out.p + c->outoff, c->out.len - c->outoff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                client_close(c);
            return;
        }
        c->outoff += (size_t)n;
    }
    client_close(c);
}

void ru_http_on_ready(struct ru_http *h, int fd, short revents)
{
    if (fd == h->lfd) {
        for (;;) {
            int cfd = accept4(h->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (cfd < 0)
                return;
            struct client *c = NULL;
            for (size_t i = 0; i < MAX_CLIENTS; i++)
                if (h->c[i].fd < 0) {
                    c = &h->c[i];
                    break;
                }
            if (c == NULL) {
                close(cfd);
                continue;
            }
            c->fd = cfd;
            c->inlen = 0;
            c->writing = false;
            c->deadline_ms = ru_mono_ms() + TIMEOUT_MS;
        }
    }
    for (size_t i = 0; i < MAX_CLIENTS; i++) {
        struct client *c = &h->c[i];
        if (c->fd != fd)
            continue;
        if (c->writing) {
            on_write(c);
            return;
        }
        ssize_t n = read(c->fd, c->in + c->inlen, sizeof(c->in) - 1 - c->inlen);
        if (n <= 0) {
            if (n == 0 || (errno != EAGAIN && errno != EINTR))
                client_close(c);
            return;
        }
        c->inlen += (size_t)n;
        c->in[c->inlen] = '\0';
        if (strstr(c->in, "\r\n\r\n") || strstr(c->in, "\n\n") || c->inlen >= sizeof(c->in) - 1) {
            respond(h, c);
            on_write(c);
        }
        return;
    }
}

void ru_http_tick(struct ru_http *h)
{
    int64_t now = ru_mono_ms();
    for (size_t i = 0; i < MAX_CLIENTS; i++)
        if (h->c[i].fd >= 0 && now > h->c[i].deadline_ms)
            client_close(&h->c[i]);
}
