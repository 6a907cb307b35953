#include "rollupd/log.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rollupd/utf8.h"

const char *ru_log_level_name(enum ru_log_level level)
{
    switch (level) {
    case RU_LOG_ERR:
        return "error";
    case RU_LOG_WARNING:
        return "warning";
    case RU_LOG_NOTICE:
        return "notice";
    case RU_LOG_INFO:
        return "info";
    case RU_LOG_DEBUG:
        return "debug";
    }
    return "unknown";
}

int ru_log_level_parse(const char *name, enum ru_log_level *out)
{
    static const enum ru_log_level all[] = {RU_LOG_ERR, RU_LOG_WARNING, RU_LOG_NOTICE, RU_LOG_INFO,
                                            RU_LOG_DEBUG};
    for (size_t i = 0; i < RU_ARRAY_LEN(all); i++) {
        if (strcasecmp(name, ru_log_level_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    }
    return -1;
}

static _Atomic int cur_level = RU_LOG_INFO;
static _Atomic int cur_format = RU_LOG_FMT_JOURNAL;

bool ru_log_stderr_is_journal(const char *journal_stream)
{
    unsigned long long dev, ino;
    char tail;
    struct stat st;
    /* systemd sets JOURNAL_STREAM=<st_dev>:<st_ino> of the stream it gave us; a child
     * whose stderr was redirected elsewhere inherits the variable but not the stream */
    if (journal_stream == NULL || sscanf(journal_stream, "%llu:%llu%c", &dev, &ino, &tail) != 2 ||
        fstat(STDERR_FILENO, &st) != 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

int ru_log_format_parse(const char *name, bool stderr_is_journal, enum ru_log_format *out)
{
    if (name == NULL || strcmp(name, "auto") == 0)
        *out = stderr_is_journal ? RU_LOG_FMT_JOURNAL : RU_LOG_FMT_LOGFMT;
    else if (strcmp(name, "journal") == 0)
        *out = RU_LOG_FMT_JOURNAL;
    else if (strcmp(name, "logfmt") == 0)
        *out = RU_LOG_FMT_LOGFMT;
    else if (strcmp(name, "json") == 0)
        *out = RU_LOG_FMT_JSON;
    else
        return -1;
    return 0;
}

void ru_log_set_format(enum ru_log_format format)
{
    atomic_store(&cur_format, (int)format);
}

int ru_log_use_format(const char *name)
{
    enum ru_log_format f;
    if (ru_log_format_parse(name, ru_log_stderr_is_journal(getenv("JOURNAL_STREAM")), &f) < 0)
        return -1;
    ru_log_set_format(f);
    return 0;
}

enum ru_log_format ru_log_get_format(void)
{
    return (enum ru_log_format)atomic_load(&cur_format);
}

static void put_time(struct ru_buf *b, int64_t unix_ms)
{
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;
    char ts[32];
    gmtime_r(&t, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    ru_buf_printf(b, "%s.%03dZ", ts, (int)(unix_ms % 1000));
}

static void json_str(struct ru_buf *b, const char *s, size_t n)
{
    bool utf8 = ru_utf8_valid(s, n);
    ru_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            ru_buf_putc(b, '\\');
            ru_buf_putc(b, (char)c);
        } else if (c < 0x20) {
            ru_buf_printf(b, "\\u%04x", c);
        } else {
            ru_buf_putc(b, c >= 0x80 && !utf8 ? '?' : (char)c);
        }
    }
    ru_buf_putc(b, '"');
}

static bool is_int(const char *s, size_t n)
{
    size_t i = n > 0 && s[0] == '-' ? 1 : 0;
    if (i == n || n - i > 15 || (s[i] == '0' && n - i > 1))
        return false;
    for (; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

/* One token of a key=value message at *p: the key (klen 0 for free text) and the value,
 * unquoted when it was "quoted" (its end is a '"' followed by a space or the end, so a
 * quote inside a value does not end it). Returns the unquoted value in val. */
static const char *next_field(const char *p, const char **key, size_t *klen, struct ru_buf *val)
{
    const char *k = p;
    while (isalnum((unsigned char)*p) || *p == '_' || *p == '.' || *p == '-')
        p++;
    ru_buf_reset(val);
    if (p > k && *p == '=') {
        *key = k;
        *klen = (size_t)(p - k);
        p++;
    } else {
        *key = NULL;
        *klen = 0;
        p = k;
    }
    if (*key != NULL && *p == '"') {
        for (p++; *p != '\0'; p++) {
            if (*p == '\\' && (p[1] == '"' || p[1] == '\\')) {
                ru_buf_putc(val, *++p);
                continue;
            }
            if (*p == '"' && (p[1] == ' ' || p[1] == '\0'))
                break;
            ru_buf_putc(val, *p);
        }
        if (*p == '"')
            p++;
    } else {
        const char *v = p;
        p += strcspn(p, " ");
        ru_buf_append(val, v, (size_t)(p - v));
    }
    return p;
}

static void to_json(struct ru_buf *b, enum ru_log_level level, int64_t unix_ms, const char *msg)
{
    struct ru_buf text = RU_BUF_INIT, rest = RU_BUF_INIT, val = RU_BUF_INIT;
    const char *p = msg;
    while (*p != '\0') {
        if (*p == ' ') {
            p++;
            continue;
        }
        const char *key;
        size_t klen;
        p = next_field(p, &key, &klen, &val);
        const char *v = val.p != NULL ? val.p : "";
        if (key == NULL || (klen == 3 && memcmp(key, "msg", 3) == 0)) {
            if (text.len > 0)
                ru_buf_putc(&text, ' ');
            ru_buf_append(&text, v, val.len);
            continue;
        }
        bool reserved = (klen == 5 && memcmp(key, "level", 5) == 0) ||
                        (klen == 4 && memcmp(key, "time", 4) == 0);
        ru_buf_puts(&rest, ",");
        struct ru_buf kb = RU_BUF_INIT;
        if (reserved)
            ru_buf_puts(&kb, "field_");
        ru_buf_append(&kb, key, klen);
        json_str(&rest, kb.p, kb.len);
        ru_buf_free(&kb);
        ru_buf_putc(&rest, ':');
        if (is_int(v, val.len))
            ru_buf_append(&rest, v, val.len);
        else
            json_str(&rest, v, val.len);
    }
    ru_buf_printf(b, "{\"level\":\"%s\",\"time\":\"", ru_log_level_name(level));
    put_time(b, unix_ms);
    ru_buf_puts(b, "\",\"msg\":");
    json_str(b, text.p != NULL ? text.p : "", text.len);
    if (rest.len > 0)
        ru_buf_append(b, rest.p, rest.len);
    ru_buf_puts(b, "}\n");
    ru_buf_free(&text);
    ru_buf_free(&rest);
    ru_buf_free(&val);
}

size_t ru_log_format_line(enum ru_log_format format, enum ru_log_level level, int64_t unix_ms,
                          const char *msg, char *out, size_t outlen)
{
    struct ru_buf b = RU_BUF_INIT;
    if (outlen == 0)
        return 0;
    switch (format) {
    case RU_LOG_FMT_JOURNAL:
        ru_buf_printf(&b, "<%d>%s %s\n", (int)level, ru_log_level_name(level), msg);
        break;
    case RU_LOG_FMT_LOGFMT:
        ru_buf_puts(&b, "time=");
        put_time(&b, unix_ms);
        ru_buf_printf(&b, " level=%s %s\n", ru_log_level_name(level), msg);
        break;
    case RU_LOG_FMT_JSON:
        to_json(&b, level, unix_ms, msg);
        break;
    }
    size_t n = b.len < outlen ? b.len : outlen - 1;
    memcpy(out, b.p, n);
    if (n < b.len && n > 0) {
        /* truncated: keep the line whole and, in JSON, an object */
        const char *end = format == RU_LOG_FMT_JSON ? "\"}\n" : "\n";
        size_t el = strlen(end) < n ? strlen(end) : n;
        memcpy(out + n - el, end, el);
    }
    out[n] = '\0';
    ru_buf_free(&b);
    return n;
}

void ru_log_set_level(enum ru_log_level level)
{
    atomic_store(&cur_level, (int)level);
}

bool ru_log_enabled(enum ru_log_level level)
{
    return (int)level <= atomic_load(&cur_level);
}

static void vlog(enum ru_log_level level, const char *suffix, const char *fmt, va_list ap)
{
    char msg[2048];
    char line[4096];
    int m = vsnprintf(msg, sizeof(msg) - 32, fmt, ap);
    size_t len = m < 0 ? 0 : (size_t)m;
    if (len > sizeof(msg) - 33)
        len = sizeof(msg) - 33; /* truncated: keep room for the suffix */
    msg[len] = '\0';
    if (suffix != NULL)
        snprintf(msg + len, sizeof(msg) - len, "%.30s", suffix);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    size_t n = ru_log_format_line(ru_log_get_format(), level,
                                  (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, msg, line,
                                  sizeof(line));
    /* One write per line keeps lines whole when the flusher thread logs too. */
    ssize_t w = write(STDERR_FILENO, line, n);
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
