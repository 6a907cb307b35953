/* reload: the daemon's SIGHUP. Part of the daemon, on the loop's thread; not used outside
 * it (its state is dstate.h). */
#ifndef ROLLUPD_RELOAD_H
#define ROLLUPD_RELOAD_H

struct ru_daemon;

/* Reads the configuration again and applies what a reload may change, wrapped in
 * RELOADING=1 ... READY=1; a file that does not load is warned about and changes nothing. */
void ru_reload(struct ru_daemon *d);

#endif
