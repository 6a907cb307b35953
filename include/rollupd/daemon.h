/* daemon: the one event loop. Owns the configuration, the stream, the writer, the
 * status socket, signals (signalfd) and the flush timer (timerfd), and talks to
 * systemd (READY/RELOADING/STOPPING/STATUS/WATCHDOG). This is its whole interface; the
 * files it is made of (reading, entries, schedule, backpressure, takeover, reload, observe)
 * share their state through dstate.h, which nothing outside the daemon includes. */
#ifndef ROLLUPD_DAEMON_H
#define ROLLUPD_DAEMON_H

#include "rollupd/config.h"
#include "rollupd/util.h"

struct ru_daemon;

/* Takes ownership of cfg (moved: the caller's struct is zeroed). Blocks SIGHUP, SIGINT,
 * SIGTERM, SIGUSR1 (handled through a signalfd) and ignores SIGPIPE. Returns NULL with
 * a reason in err when the status socket or the signalfd cannot be set up. */
struct ru_daemon *ru_daemon_new(struct ru_config *cfg, char *err, size_t errlen);
/* Runs until a stop signal; returns the process exit code. */
int ru_daemon_run(struct ru_daemon *d);
void ru_daemon_free(struct ru_daemon *d);

#endif
