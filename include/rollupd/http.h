/* http: a minimal HTTP/1.0 listener for GET /metrics and GET /health, because Prometheus
 * cannot scrape a Unix socket. One request per connection, answered and closed; at most
 * a handful of clients; non-blocking, polled by the daemon's loop. */
#ifndef ROLLUPD_HTTP_H
#define ROLLUPD_HTTP_H

#include <poll.h>

#include "rollupd/util.h"

struct ru_http;

/* Fills *status (200, 404, 503, ...), the content type and the body for one GET path.
 * body is an empty buffer owned by the server. */
typedef void (*ru_http_fn)(void *ud, const char *path, int *status, const char **content_type,
                           struct ru_buf *body);

/* Listens on "host:port" (IPv4, "localhost" or "[v6]"). Returns NULL with a reason in err. */
struct ru_http *ru_http_new(const char *listen, ru_http_fn fn, void *ud, char *err, size_t errlen);
void ru_http_free(struct ru_http *h);
int ru_http_pollfds(struct ru_http *h, struct pollfd *fds, int max);
void ru_http_on_ready(struct ru_http *h, int fd, short revents);
void ru_http_tick(struct ru_http *h);

#endif
