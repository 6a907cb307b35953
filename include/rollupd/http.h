/* http: a minimal HTTP/1.0 listener for GET /metrics and GET /health, because Prometheus
 * cannot scrape a Unix socket. One request per connection, answered and closed; at most
 * a handful of clients; non-blocking, polled by the daemon's loop. */
#ifndef ROLLUPD_HTTP_H
#define ROLLUPD_HTTP_H

#include "rollupd/listener.h"
#include "rollupd/util.h"

struct ru_http;

/* Fills *status (200, 404, 503, ...), the content type and the body for one GET path.
 * body is an empty buffer owned by the server. */
typedef void (*ru_http_fn)(void *ud, const char *path, int *status, const char **content_type,
                           struct ru_buf *body);

/* Listens on "host:port" (IPv4, "localhost" or "[v6]"). Returns NULL with a reason in err. */
struct ru_http *ru_http_new(const char *listen, ru_http_fn fn, void *ud, char *err, size_t errlen);
void ru_http_free(struct ru_http *h);
/* Its connections, for the owner's poll loop (ru_listener_pollfds, _on_ready, _tick). */
struct ru_listener *ru_http_listener(struct ru_http *h);

#endif
