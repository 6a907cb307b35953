/* observe: the daemon's health and the values of its metric table (report.h), for the
 * status socket and HTTP. Part of the daemon, on the loop's thread; not used outside it
 * (its state is dstate.h). */
#ifndef ROLLUPD_OBSERVE_H
#define ROLLUPD_OBSERVE_H

#include "rollupd/status.h"
#include "rollupd/util.h"

struct ru_daemon;

/* down: no progress is possible; degraded: working, but something needs an operator. */
enum ru_observe_health { RU_OBSERVE_OK = 0, RU_OBSERVE_DEGRADED = 1, RU_OBSERVE_DOWN = 2 };

/* "ok\n", or "degraded: <reason>\n" or "down: <reason>\n", appended to out; the health in h. */
void ru_observe_health_line(struct ru_daemon *d, struct ru_buf *out, enum ru_observe_health *h);
/* The Prometheus text, appended to b. */
void ru_observe_metrics(struct ru_daemon *d, struct ru_buf *b);

/* The status commands (struct ru_status_cmd handlers, ud the daemon). */
void ru_observe_cmd_status(void *ud, struct ru_status_req *req, const char *args);
void ru_observe_cmd_health(void *ud, struct ru_status_req *req, const char *args);
void ru_observe_cmd_metrics(void *ud, struct ru_status_req *req, const char *args);
void ru_observe_cmd_config(void *ud, struct ru_status_req *req, const char *args);

#endif
