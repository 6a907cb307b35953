/* log: levelled key=value lines on stderr with sd-daemon "<N>" priority prefixes, so
 * journald records the level. Thread-safe (one write(2) per line). */
#ifndef ROLLUPD_LOG_H
#define ROLLUPD_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "rollupd/config.h"
#include "rollupd/util.h"

void ru_log_set_level(enum ru_log_level level);
enum ru_log_level ru_log_get_level(void);
bool ru_log_enabled(enum ru_log_level level);

/* Writes "<N>level msg\n" to stderr when level is enabled. */
void ru_log(enum ru_log_level level, const char *fmt, ...) RU_PRINTF(2, 3);

/* Rate-limited logging: at most one line per interval_ms for each distinct *limiter;
 * lines dropped in between are counted and reported ("(N similar suppressed)") with
 * the next line that passes. */
struct ru_ratelimit {
    int64_t interval_ms;
    int64_t last_ms;
    uint64_t suppressed;
};
#define RU_RATELIMIT_INIT(ms)                                                                      \
    {                                                                                              \
        (ms), INT64_MIN / 2, 0                                                                     \
    }
void ru_log_limited(struct ru_ratelimit *rl, enum ru_log_level level, const char *fmt, ...)
    RU_PRINTF(3, 4);

#define ru_err(...)    ru_log(RU_LOG_ERR, __VA_ARGS__)
#define ru_warn(...)   ru_log(RU_LOG_WARNING, __VA_ARGS__)
#define ru_notice(...) ru_log(RU_LOG_NOTICE, __VA_ARGS__)
#define ru_info(...)   ru_log(RU_LOG_INFO, __VA_ARGS__)
#define ru_debug(...)                                                                              \
    do {                                                                                           \
        if (ru_log_enabled(RU_LOG_DEBUG))                                                          \
            ru_log(RU_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)

#endif
