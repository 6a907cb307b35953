/* config: the key table and the walks over it (defaults, freeing, setting a key, the
 * restart-key diff, the reload's reconnect decisions, the config status command's lines).
 * What a valid value is lives in cfgcheck.c, reading the file in cfgfile.c. Pure. */
#include "rollupd/config.h"

#include <errno.h>
#include <libconfig.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rollupd/cfgcheck.h"
#include "rollupd/libcfg.h"
#include "rollupd/redact.h"
#include "rollupd/redisurl.h"

/* ---- small helpers ------------------------------------------------------------------ */

static void set_str(char **dst, const char *src)
{
    char *copy = ru_xstrdup(src);
    free(*dst);
    *dst = copy;
}

static bool str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static void host_name(char *buf, size_t len)
{
    if (gethostname(buf, len) != 0)
        buf[0] = '\0';
    buf[len - 1] = '\0';
    if (buf[0] == '\0')
        ru_strlcpy(buf, "rollupd", len);
}

static char *dead_letter_for(const char *stream)
{
    struct ru_buf b = RU_BUF_INIT;
    ru_buf_puts(&b, stream);
    ru_buf_puts(&b, RU_CONFIG_DEAD_SUFFIX);
    return b.p;
}

/* ---- the key table ------------------------------------------------------------------ */

#define K_STR   RU_CONFIG_STR
#define K_INT   RU_CONFIG_INT
#define K_I64   RU_CONFIG_I64
#define K_LEVEL RU_CONFIG_LEVEL
#define K_BOOL  RU_CONFIG_BOOL

/* Short names for the flags in the table below. */
#define RESTART RU_CONFIG_RESTART
#define REDIS   RU_CONFIG_REDIS
#define PG      RU_CONFIG_PG
#define SECRET  RU_CONFIG_SECRET

/* One key: where it lives in struct ru_config, its type, range or check, its default (a
 * string key's def_s, any other's def_i) and what a reload does with it (flags). The
 * defaults, freeing, the restart-key diff, the reload's reconnect decisions and the
 * config status command are walks over this table. */
struct key {
    const char *section;
    const char *name;
    enum ru_config_kind kind;
    size_t off;
    int64_t min, max;
    ru_cfgcheck_fn check;
    const char *def_s; /* "" for the two keys derived from others (consumer, dead letters) */
    int64_t def_i;
    unsigned flags;
};

/* Initialisers for struct key, without the braces (kept outside for clang-format). */
#define KSTR(sec, nm, fn, def, fl)                                                                 \
#sec, #nm, K_STR, offsetof(struct ru_config, sec.nm), 0, 0, fn, def, 0, fl
#define KINT(sec, nm, lo, hi, def, fl)                                                             \
#sec, #nm, K_INT, offsetof(struct ru_config, sec.nm), lo, hi, NULL, NULL, def, fl
#define KI64(sec, nm, lo, hi, def, fl)                                                             \
#sec, #nm, K_I64, offsetof(struct ru_config, sec.nm), lo, hi, NULL, NULL, def, fl
#define KLEVEL(sec, nm, def, fl)                                                                   \
#sec, #nm, K_LEVEL, offsetof(struct ru_config, sec.nm), 0, 0, NULL, NULL, def, fl
#define KBOOL(sec, nm, def, fl)                                                                    \
#sec, #nm, K_BOOL, offsetof(struct ru_config, sec.nm), 0, 0, NULL, NULL, def, fl

static const struct key keys[] = {
    {KSTR(redis, url, ru_cfgcheck_url, "redis://127.0.0.1:6379/0", REDIS | SECRET)},
    {KSTR(redis, stream, ru_cfgcheck_nonempty, "genonaut:route_analytics:stream", RESTART)},
    {KSTR(redis, group, ru_cfgcheck_nonempty, "rollupd", RESTART)},
    {KSTR(redis, consumer, NULL, "", RESTART)},
    {KINT(redis, count, 1, 100000, 1000, REDIS)},
    {KINT(redis, read_bytes, 0, 1073741824, 524288, REDIS)},
    {KINT(redis, block_ms, 0, 60000, 1000, REDIS)},
    {KSTR(redis, start, ru_cfgcheck_start, "0", 0)},
    {KSTR(redis, dead_letter_stream, NULL, "", RESTART)},
    {KI64(redis, claim_idle_ms, 0, INT64_MAX, 0, 0)},
    {KBOOL(redis, lone_consumer, false, RESTART)},
    {KINT(redis, connect_timeout_ms, 100, 600000, 5000, REDIS)},
    {KSTR(redis, cluster, ru_cfgcheck_cluster, "auto", REDIS)},
    {KSTR(redis, cluster_seeds, ru_cfgcheck_seeds, "", REDIS)},
    {KSTR(postgres, conninfo, NULL, "dbname=genonaut", PG | SECRET)},
    {KSTR(postgres, hourly_table, ru_cfgcheck_table, "route_analytics_hourly", RESTART)},
    {KSTR(postgres, raw_table, ru_cfgcheck_table_opt, "", RESTART)},
    {KINT(postgres, statement_timeout_ms, 0, 3600000, 60000, PG)},
    {KINT(postgres, connect_timeout_s, 1, 600, 10, PG)},
    {KBOOL(postgres, create_schema, true, 0)},
    {KINT(flush, interval_ms, 100, 3600000, 5000, 0)},
    {KINT(flush, max_events, 1000, 100000000, RU_CONFIG_MAX_EVENTS_SHARED, 0)},
    {KINT(flush, max_keys, 100, 10000000, 100000, 0)},
    {KINT(flush, backlog_entries, 0, 100000000, 8000, 0)},
    {KINT(flush, state_idle_s, 0, 604800, 900, 0)},
    {KINT(limits, max_memory_mb, 64, 1048576, 1024, 0)},
    {KSTR(status, socket, ru_cfgcheck_socket, "/run/rollupd/rollupd.sock", RESTART)},
    {KSTR(metrics, listen, ru_cfgcheck_listen, "", RESTART)},
    {KLEVEL(log, level, RU_LOG_INFO, 0)},
    {KSTR(log, format, ru_cfgcheck_log_format, "auto", 0)},
};

#define NKEYS RU_ARRAY_LEN(keys)
_Static_assert(RU_ARRAY_LEN(keys) <= RU_CONFIG_MAX_KEYS, "raise RU_CONFIG_MAX_KEYS");

int ru_config_key_find(const char *section, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
            return (int)i;
    return -1;
}

bool ru_config_section_known(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, name) == 0)
            return true;
    return false;
}

/* ---- defaults / deinit -------------------------------------------------------------- */

/* Values derived from other keys when left empty or unset: the consumer (the host name),
 * the dead-letter stream ("<stream>:dead") and flush.max_events. */
void ru_config_derive(struct ru_config *c)
{
    /* flush.max_events left unset follows the mode: in a shared group every event waiting
     * for a flush is an entry in the group's pending list, and a long list makes Redis
     * slower per entry read (bench/RESULTS.md, "Redis and the pending list"), so the
     * default there is half the lone consumer's */
    if (c->origin[ru_config_key_find("flush", "max_events")] == NULL)
        c->flush.max_events = ru_config_max_events_default(c->redis.lone_consumer);
    if (c->redis.dead_letter_stream[0] == '\0') {
        free(c->redis.dead_letter_stream);
        c->redis.dead_letter_stream = dead_letter_for(c->redis.stream);
    }
    if (c->redis.consumer[0] == '\0') {
        char host[256];
        host_name(host, sizeof(host));
        set_str(&c->redis.consumer, host);
    }
}

void ru_config_defaults(struct ru_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        void *field = (char *)cfg + k->off;
        switch (k->kind) {
        case K_STR:
            *(char **)field = ru_xstrdup(k->def_s);
            break;
        case K_INT:
            *(int *)field = (int)k->def_i;
            break;
        case K_I64:
            *(int64_t *)field = k->def_i;
            break;
        case K_BOOL:
            *(bool *)field = k->def_i != 0;
            break;
        case K_LEVEL:
            *(enum ru_log_level *)field = (enum ru_log_level)k->def_i;
            break;
        }
    }
    ru_config_derive(cfg);
    if (ru_redisurl_parse(cfg->redis.url, &cfg->redis.addr, NULL, 0) < 0)
        memset(&cfg->redis.addr, 0, sizeof(cfg->redis.addr)); /* cannot happen */
}

void ru_config_deinit(struct ru_config *cfg)
{
    free(cfg->path);
    ru_redisurl_addr_deinit(&cfg->redis.addr);
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].kind == K_STR)
            free(*(char **)((char *)cfg + keys[i].off));
    for (size_t i = 0; i < RU_CONFIG_MAX_KEYS; i++)
        free(cfg->origin[i]);
    memset(cfg, 0, sizeof(*cfg));
}

/* ---- secrets at rest ---------------------------------------------------------------- */

bool ru_config_secret_exposed(const struct ru_config *cfg, char *out, size_t outlen)
{
    struct stat st;
    bool redis = cfg->redis.addr.password != NULL && cfg->redis.addr.password[0] != '\0';
    bool pg =
        cfg->postgres.conninfo != NULL && ru_redact_conninfo_has_secret(cfg->postgres.conninfo);
    if (cfg->path == NULL || (!redis && !pg) || stat(cfg->path, &st) != 0 ||
        (st.st_mode & (S_IROTH | S_IWOTH)) == 0)
        return false;
    snprintf(out, outlen,
             "%s holds a password (%s) and is readable by every user (mode %04o): chmod o-rwx "
             "%s (e.g. 0640, owned by root and rollupd's group), or move the password out of "
             "it (a pgpass file for PostgreSQL)",
             cfg->path,
             redis && pg ? "redis.url and postgres.conninfo"
             : redis     ? "redis.url"
                         : "postgres.conninfo",
             (unsigned)(st.st_mode & 07777), cfg->path);
    return true;
}

/* ---- reload ------------------------------------------------------------------------- */

/* Whether key i's value differs between a and b. */
static bool differs(const struct ru_config *a, const struct ru_config *b, size_t i)
{
    const struct key *k = &keys[i];
    const void *fa = (const char *)a + k->off, *fb = (const char *)b + k->off;
    switch (k->kind) {
    case K_STR:
        return !str_eq(*(char *const *)fa, *(char *const *)fb);
    case K_INT:
        return *(const int *)fa != *(const int *)fb;
    case K_I64:
        return *(const int64_t *)fa != *(const int64_t *)fb;
    case K_BOOL:
        return *(const bool *)fa != *(const bool *)fb;
    case K_LEVEL:
        return *(const enum ru_log_level *)fa != *(const enum ru_log_level *)fb;
    }
    return false;
}

void ru_config_restart_keys(const struct ru_config *a, const struct ru_config *b, char *out,
                            size_t outlen)
{
    struct ru_buf buf = RU_BUF_INIT;
    char name[64];

    if (out == NULL || outlen == 0)
        return;
    for (size_t i = 0; i < NKEYS; i++) {
        if (!(keys[i].flags & RU_CONFIG_RESTART) || !differs(a, b, i))
            continue;
        if (buf.len > 0)
            ru_buf_puts(&buf, ", ");
        ru_buf_puts(&buf, ru_config_key_name(i, name, sizeof(name)));
    }
    ru_strlcpy(out, buf.p != NULL ? buf.p : "", outlen);
    ru_buf_free(&buf);
}

bool ru_config_changed(const struct ru_config *a, const struct ru_config *b, unsigned flags)
{
    for (size_t i = 0; i < NKEYS; i++)
        if ((keys[i].flags & flags) != 0 && differs(a, b, i))
            return true;
    return false;
}

void ru_config_keep_restart_keys(struct ru_config *next, struct ru_config *running)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        if (!(k->flags & RU_CONFIG_RESTART))
            continue;
        char *fn = (char *)next + k->off, *fr = (char *)running + k->off;
        if (k->kind == K_STR) {
            char *t = *(char **)fn; /* swapped: running frees the new value */
            *(char **)fn = *(char **)fr;
            *(char **)fr = t;
        } else {
            size_t n = k->kind == K_INT    ? sizeof(int)
                       : k->kind == K_I64  ? sizeof(int64_t)
                       : k->kind == K_BOOL ? sizeof(bool)
                                           : sizeof(enum ru_log_level);
            memcpy(fn, fr, n);
        }
    }
    ru_config_derive(next); /* what follows a kept key (the mode) follows its running value */
}

/* ---- key access by index (envcfg, reports) ------------------------------------------ */

size_t ru_config_key_count(void)
{
    return NKEYS;
}

const char *ru_config_key_name(size_t i, char *buf, size_t len)
{
    if (i >= NKEYS)
        return NULL;
    snprintf(buf, len, "%s.%s", keys[i].section, keys[i].name);
    return buf;
}

int ru_config_key_index(const char *dotted)
{
    const char *dot = strchr(dotted, '.');
    char sec[32];
    if (dot == NULL || (size_t)(dot - dotted) >= sizeof(sec))
        return -1;
    snprintf(sec, sizeof(sec), "%.*s", (int)(dot - dotted), dotted);
    return ru_config_key_find(sec, dot + 1);
}

unsigned ru_config_key_flags(size_t i)
{
    return i < NKEYS ? keys[i].flags : 0;
}

void ru_config_key_value(const struct ru_config *c, size_t i, char *out, size_t len)
{
    if (i >= NKEYS || len == 0) {
        if (len > 0)
            out[0] = '\0';
        return;
    }
    const struct key *k = &keys[i];
    const void *field = (const char *)c + k->off;
    switch (k->kind) {
    case K_INT:
        snprintf(out, len, "%d", *(const int *)field);
        return;
    case K_I64:
        snprintf(out, len, "%lld", (long long)*(const int64_t *)field);
        return;
    case K_BOOL:
        ru_strlcpy(out, *(const bool *)field ? "true" : "false", len);
        return;
    case K_LEVEL:
        snprintf(out, len, "\"%s\"", ru_log_level_name(*(const enum ru_log_level *)field));
        return;
    case K_STR:
        break;
    }
    const char *v = *(char *const *)field;
    char red[1024];
    if (k->flags & RU_CONFIG_SECRET) {
        ru_redact(v != NULL ? v : "", red, sizeof(red));
        v = red;
    }
    struct ru_buf b = RU_BUF_INIT;
    ru_buf_putc(&b, '"');
    for (const char *p = v != NULL ? v : ""; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            ru_buf_putc(&b, '\\');
        ru_buf_putc(&b, *p);
    }
    ru_buf_putc(&b, '"');
    ru_strlcpy(out, b.p, len);
    ru_buf_free(&b);
}

void ru_config_describe(const struct ru_config *c, struct ru_buf *out)
{
    struct ru_config def;
    char name[64], value[1024], dvalue[1024];

    ru_config_defaults(&def);
    def.redis.lone_consumer = c->redis.lone_consumer; /* the defaults of this mode */
    ru_config_derive(&def);
    for (size_t i = 0; i < NKEYS; i++) {
        unsigned f = keys[i].flags;
        ru_config_key_value(c, i, value, sizeof(value));
        ru_config_key_value(&def, i, dvalue, sizeof(dvalue));
        ru_buf_printf(out, "%s = %s;  # default %s; %s\n",
                      ru_config_key_name(i, name, sizeof(name)), value, dvalue,
                      (f & RU_CONFIG_RESTART)
                          ? "a reload keeps the running value (restart to change)"
                      : (f & RU_CONFIG_REDIS) ? "a reload applies it and reconnects to Redis"
                      : (f & RU_CONFIG_PG)    ? "a reload applies it and reconnects to PostgreSQL"
                                              : "a reload applies it");
    }
    ru_config_deinit(&def);
}

static void set_origin(struct ru_config *c, size_t i, const char *origin)
{
    free(c->origin[i]);
    c->origin[i] = origin != NULL ? ru_xstrdup(origin) : NULL;
}

enum ru_config_kind ru_config_key_kind(size_t i)
{
    return i < NKEYS ? keys[i].kind : RU_CONFIG_STR;
}

int ru_config_set_int(struct ru_config *c, size_t i, int64_t v, const char *origin, char *why,
                      size_t whylen)
{
    const struct key *k = &keys[i];
    void *field = (char *)c + k->off;
    if (v < k->min || v > k->max) {
        if (k->max == INT64_MAX)
            snprintf(why, whylen, "must be %lld or more (got %lld)", (long long)k->min,
                     (long long)v);
        else
            snprintf(why, whylen, "must be from %lld to %lld (got %lld)", (long long)k->min,
                     (long long)k->max, (long long)v);
        return -1;
    }
    if (k->kind == K_INT)
        *(int *)field = (int)v;
    else
        *(int64_t *)field = v;
    set_origin(c, i, origin);
    return 0;
}

void ru_config_set_bool(struct ru_config *c, size_t i, bool v, const char *origin)
{
    *(bool *)((char *)c + keys[i].off) = v;
    set_origin(c, i, origin);
}

static int parse_bool_text(const char *v, bool *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < RU_ARRAY_LEN(yes); i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

int ru_config_set(struct ru_config *c, size_t i, const char *value, const char *origin, char *why,
                  size_t whylen)
{
    if (i >= NKEYS) {
        ru_strlcpy(why, "no such key", whylen);
        return -1;
    }
    const struct key *k = &keys[i];
    void *field = (char *)c + k->off;

    if (k->kind == K_INT || k->kind == K_I64) {
        int64_t v;
        const char *d = value[0] == '-' ? value + 1 : value;
        if (d[0] == '\0' || strspn(d, "0123456789") != strlen(d) ||
            ru_parse_i64(value, strlen(value), &v) < 0) {
            ru_strlcpy(why, "expected an integer", whylen);
            return -1;
        }
        return ru_config_set_int(c, i, v, origin, why, whylen);
    } else if (k->kind == K_BOOL) {
        bool v;
        if (parse_bool_text(value, &v) < 0) {
            ru_strlcpy(why, "expected true or false (or 1/0, yes/no, on/off)", whylen);
            return -1;
        }
        ru_config_set_bool(c, i, v, origin);
        return 0;
    } else if (k->kind == K_LEVEL) {
        if (ru_log_level_parse(value, (enum ru_log_level *)field) < 0) {
            ru_strlcpy(why,
                       "must be one of \"debug\", \"info\", \"notice\", \"warning\", \"error\"",
                       whylen);
            return -1;
        }
    } else {
        if (k->check != NULL && k->check(value, why, whylen) < 0)
            return -1;
        if (k->off == offsetof(struct ru_config, redis.url)) {
            struct ru_redis_addr a;
            if (ru_redisurl_parse(value, &a, why, whylen) < 0)
                return -1;
            ru_redisurl_addr_deinit(&c->redis.addr);
            c->redis.addr = a;
        }
        set_str((char **)field, value);
    }
    set_origin(c, i, origin);
    return 0;
}

int ru_config_check(struct ru_config *c, char *err, size_t errlen)
{
    char why[512];
    int bad;
    int dead = ru_config_key_find("redis", "dead_letter_stream");

    if (c->origin[dead] == NULL)
        set_str(&c->redis.dead_letter_stream, ""); /* follows redis.stream */
    ru_config_derive(c);
    if (ru_cfgcheck_across(c, &bad, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s: %s", c->origin[bad] != NULL ? c->origin[bad] : "default", why);
        return -1;
    }
    return 0;
}
