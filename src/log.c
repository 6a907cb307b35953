#include "rollupd/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static _Atomic int cur_level = RU_LOG_INFO;

void ru_log_set_level(enum ru_log_level level)
{
    atomic_store(&cur_level, (int)level);
}

enum ru_log_level ru_log_get_level(void)
{
    return (enum ru_log_level)atomic_load(&cur_level);
}

bool ru_log_enabled(enum ru_log_level level)
{
    return (int)level <= atomic_load(&cur_level);
}

static void vlog(enum ru_log_level level, const char *suffix, const char *fmt, va_list ap)
{
    char line[2048];
    int n = snprintf(line, sizeof(line), "<%d>%s ", (int)level, ru_config_level_name(level));
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 32)
        len = sizeof(line) - 32; /* truncated: keep room for the suffix and newline */
    if (suffix != NULL) {
        size_t sl = strlen(suffix);
        if (sl > 30)
            sl = 30;
        memcpy(line + len, suffix, sl);
        len += sl;
    }
    line[len++] = '\n';
    /* One write per line keeps lines whole when the flusher thread logs too. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void ru_log(enum ru_log_level level, const char *fmt, ...)
{
    if (!ru_log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, NULL, fmt, ap);
    va_end(ap);
}

void ru_log_limited(struct ru_ratelimit *rl, enum ru_log_level level, const char *fmt, ...)
{
    if (!ru_log_enabled(level))
        return;
    int64_t now = ru_mono_ms();
    if (now - rl->last_ms < rl->interval_ms) {
        rl->suppressed++;
        return;
    }
    char suffix[40] = "";
    if (rl->suppressed)
        snprintf(suffix, sizeof(suffix), " suppressed=%llu", (unsigned long long)rl->suppressed);
    rl->last_ms = now;
    rl->suppressed = 0;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, suffix[0] ? suffix : NULL, fmt, ap);
    va_end(ap);
}
