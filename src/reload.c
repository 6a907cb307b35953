/* reload: SIGHUP. The file is read again into a new configuration; the keys that only
 * change on restart keep their running values (a warning names them), the rest is swapped
 * in, and what the new values touch is told: the log, the flush timer, the read budget, and
 * the Redis or PostgreSQL connection when one of its keys changed (config's key table
 * says which). A file that does not load leaves the running configuration as it is. Part
 * of the daemon, on the loop's thread (its state is dstate.h). */
#include "rollupd/reload.h"

#include <sys/timerfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "rollupd/backpressure.h"
#include "rollupd/config.h"
#include "rollupd/dstate.h"
#include "rollupd/envcfg.h"
#include "rollupd/log.h"
#include "rollupd/pgw.h"
#include "rollupd/stream.h"

void ru_reload(struct ru_daemon *d)
{
    sd_notify(0, "RELOADING=1");
    struct ru_config nc;
    char err[512];
    if (ru_envcfg_load(&nc, d->cfg.path, environ, err, sizeof(err)) < 0) {
        ru_warn("msg=\"reload rejected; the running configuration stays\" error=\"%s\"", err);
        sd_notify(0, "READY=1");
        return;
    }
    char keys[512];
    ru_config_restart_keys(&d->cfg, &nc, keys, sizeof(keys));
    if (keys[0])
        ru_warn("msg=\"reload: these keys only change on restart and keep their running "
                "values\" keys=\"%s\"",
                keys);
    bool redis_changed = ru_config_changed(&nc, &d->cfg, RU_CONFIG_REDIS);
    bool pg_changed = ru_config_changed(&nc, &d->cfg, RU_CONFIG_PG);
    /* keep the restart-only values (the stream and the writer were built for one mode,
     * one stream, group and tables; the sockets are bound) */
    ru_config_keep_restart_keys(&nc, &d->cfg);
    if (nc.redis.lone_consumer && nc.redis.claim_idle_ms > 0) {
        ru_warn("msg=\"reload: claim_idle_ms ignored while this process runs as a lone "
                "consumer\"");
        nc.redis.claim_idle_ms = 0;
    }
    ru_config_deinit(&d->cfg);
    d->cfg = nc;
    ru_log_set_level(d->cfg.log.level);
    (void)ru_log_use_format(d->cfg.log.format); /* checked by the configuration */
    struct itimerspec its = {
        {d->cfg.flush.interval_ms / 1000, (long)(d->cfg.flush.interval_ms % 1000) * 1000000L},
        {d->cfg.flush.interval_ms / 1000, (long)(d->cfg.flush.interval_ms % 1000) * 1000000L}};
    timerfd_settime(d->tfd, 0, &its, NULL);
    ru_backpressure_set_read_budget(d); /* limits.max_memory_mb changes live */
    ru_pgw_apply_live(d->pgw, &d->cfg); /* and the writer's cache budget, with others */
    if (redis_changed)
        ru_stream_reconfigure(d->stream, &d->cfg);
    if (pg_changed)
        ru_pgw_reconfigure(d->pgw, &d->cfg);
    ru_notice("msg=\"configuration reloaded\" file=%s flush_interval_ms=%d log_level=%s "
              "redis_reconnect=%d postgres_reconnect=%d",
              d->cfg.path ? d->cfg.path : "(none)", d->cfg.flush.interval_ms,
              ru_log_level_name(d->cfg.log.level), (int)redis_changed, (int)pg_changed);
    sd_notify(0, "READY=1");
}
