#include "rollupd/http.h"

#include "rollupd/listener.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLIENTS 64
#define REQ_MAX     8192 /* bytes of the request line and headers */
#define REQUEST_MS  2000 /* the whole request within this long of the connect */
#define WRITE_MS    5000

struct ru_http {
    struct ru_listener *l;
    ru_http_fn fn;
    void *ud;
};

static bool whole_request(const char *in, size_t len, bool eof)
{
    return strstr(in, "\r\n\r\n") != NULL || strstr(in, "\n\n") != NULL;
}

static void on_request(void *ud, struct ru_lconn *c, bool too_long);

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
    int lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    /* a deep backlog: see ru_listener; a new scrape is not refused during a flood */
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(lfd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(lfd, SOMAXCONN) < 0) {
        snprintf(err, errlen, "metrics.listen: %s: %s", listen_addr, strerror(errno));
        freeaddrinfo(ai);
        if (lfd >= 0)
            close(lfd);
        return NULL;
    }
    freeaddrinfo(ai);
    struct ru_http *h = ru_xcalloc(1, sizeof(*h));
    h->fn = fn;
    h->ud = ud;
    const struct ru_listener_ops ops = {
        .max_conns = MAX_CLIENTS,
        .max_request = REQ_MAX,
        .request_ms = REQUEST_MS,
        .write_ms = WRITE_MS,
        .whole = whole_request,
        .handle = on_request,
        .ud = h,
        .full_text = "HTTP/1.0 503 Service Unavailable\r\nConnection: close\r\n\r\n",
    };
    h->l = ru_listener_new(lfd, &ops);
    return h;
}

void ru_http_free(struct ru_http *h)
{
    if (h == NULL)
        return;
    ru_listener_free(h->l);
    free(h);
}

struct ru_listener *ru_http_listener(struct ru_http *h)
{
    return h->l;
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
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

static void on_request(void *ud, struct ru_lconn *c, bool too_long)
{
    struct ru_http *h = ud;
    int status = 400;
    const char *ctype = "text/plain; charset=utf-8";
    struct ru_buf body = RU_BUF_INIT, out = RU_BUF_INIT;
    char method[8] = "", path[256] = "";
    if (too_long) {
        status = 431;
        ru_buf_printf(&body, "request line and headers longer than %d bytes\n", REQ_MAX);
    } else if (sscanf(c->in, "%7s %255s", method, path) == 2) {
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
    ru_buf_printf(&out,
                  "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                  "Connection: close\r\n\r\n",
                  status, reason(status), ctype, body.len);
    if (strcmp(method, "HEAD") != 0)
        ru_buf_append(&out, body.p ? body.p : "", body.len);
    ru_listener_reply(c, out.p, out.len);
    ru_buf_free(&body);
    ru_buf_free(&out);
}
