/* log: levelled key=value lines on stderr, in one of three formats: "journal" (sd-daemon
 * "<N>" priority prefixes, so journald records the level), "logfmt" (time=... level=...
 * msg=..., for a terminal or a container's log driver) or "json" (one object per line).
 * Thread-safe (one write(2) per line). */
#ifndef ROLLUPD_LOG_H
#define ROLLUPD_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "rollupd/util.h"

/* syslog(3) priorities, so journald's "<N>" prefix is the number itself. */
enum ru_log_level {
    RU_LOG_ERR = 3,
    RU_LOG_WARNING = 4,
    RU_LOG_NOTICE = 5,
    RU_LOG_INFO = 6,
    RU_LOG_DEBUG = 7,
};

/* "error", "warning", "notice", "info", "debug" ("unknown" for another value). */
const char *ru_log_level_name(enum ru_log_level level);
/* The level named by name (case-insensitive, as ru_log_level_name writes it); -1 for
 * another name, out untouched. */
int ru_log_level_parse(const char *name, enum ru_log_level *out) RU_MUSTCHECK;

enum ru_log_format {
    RU_LOG_FMT_JOURNAL,
    RU_LOG_FMT_LOGFMT,
    RU_LOG_FMT_JSON,
};

/* True when journal_stream (the value of $JOURNAL_STREAM, "DEV:INODE"; may be NULL) names
 * the file open on fd 2, i.e. systemd connected our stderr to journald. */
bool ru_log_stderr_is_journal(const char *journal_stream);

/* The format named by name ("journal", "logfmt", "json"; "auto" or NULL: journal when
 * stderr_is_journal, else logfmt). -1 for another name. */
int ru_log_format_parse(const char *name, bool stderr_is_journal,
                        enum ru_log_format *out) RU_MUSTCHECK;

/* The format of the lines written from now on (default: journal). */
void ru_log_set_format(enum ru_log_format format);
/* ru_log_format_parse of name with this process's $JOURNAL_STREAM, then
 * ru_log_set_format; an unknown name changes nothing (-1). */
int ru_log_use_format(const char *name);
enum ru_log_format ru_log_get_format(void);

/* Pure: one line for msg (key=value text, e.g. msg="x" rows=3) at level and unix_ms, with
 * its newline, into out (truncated to outlen - 1 bytes; a truncated JSON line is still
 * closed). Returns the length. In JSON every key=value becomes a member: "level",
 * "time" (RFC 3339, UTC, ms) and "msg" come first; integers stay numbers; text that is
 * not key=value is added to "msg". */
size_t ru_log_format_line(enum ru_log_format format, enum ru_log_level level, int64_t unix_ms,
                          const char *msg, char *out, size_t outlen);

void ru_log_set_level(enum ru_log_level level);
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
