/* config: the immutable configuration, loaded from a libconfig file. Pure (reads one file).
 * Every string is owned by the struct (copied out of libconfig). */
#ifndef ROLLUPD_CONFIG_H
#define ROLLUPD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollupd/log.h"
#include "rollupd/redisurl.h"
#include "rollupd/util.h"

#define RU_CONFIG_MAX_KEYS    48      /* room for the key table; config.c checks it */
#define RU_CONFIG_DEAD_SUFFIX ":dead" /* redis.dead_letter_stream's default: stream + this */
/* flush.max_events' default in a shared group and for a lone consumer (redis.lone_consumer) */
#define RU_CONFIG_MAX_EVENTS_SHARED 25000
#define RU_CONFIG_MAX_EVENTS_LONE   50000

struct ru_config {
    char *path; /* the file it was loaded from (NULL for defaults only) */

    struct {
        char *url;
        struct ru_redis_addr addr;
        char *stream;
        char *group;
        char *consumer;           /* never empty after load: defaults to the host name */
        int count;                /* XREADGROUP COUNT, 1..100000, default 1000 */
        int read_bytes;           /* a reply in memory, at most: sets COUNT; 0 = no bound */
        int block_ms;             /* XREADGROUP BLOCK, 0..60000, default 1000 */
        char *start;              /* "0" or "$" */
        char *dead_letter_stream; /* never empty after load: "<stream>:dead" */
        int64_t claim_idle_ms;    /* 0 = off: take over consumers idle this long */
        bool lone_consumer;       /* read with NOACK; the PostgreSQL checkpoint is the record */
        int connect_timeout_ms;   /* default 5000 */
        char *cluster;            /* "auto" (default: ask the server), "on", "off" */
        char *cluster_seeds;      /* more nodes to ask: "host:port,..." ("" = none) */
    } redis;

    struct {
        char *conninfo;
        char *hourly_table;       /* may be schema-qualified: "schema.table" */
        char *raw_table;          /* "" = off */
        int statement_timeout_ms; /* bound on each flush statement; default 60000 */
        int connect_timeout_s;    /* default 10 */
        bool create_schema;       /* create missing tables, indexes, columns; default true */
    } postgres;

    struct {
        int interval_ms;     /* default 5000, 100..3600000 */
        int max_events;      /* flush early when this many events wait; default 25000 in
                              * a shared group, 50000 for a lone consumer */
        int max_keys;        /* flush early when this many keys wait; default 100000 */
        int backlog_entries; /* flush when a backlog of this many entries drains; 0 = off */
        int state_idle_s;    /* give back a cached row state no flush has needed for this
                              * long; default 900, 0 = only to keep the memory bound */
    } flush;

    struct {
        int max_memory_mb; /* stop reading (backpressure) above this; default 1024 */
    } limits;

    struct {
        char *socket; /* default "/run/rollupd/rollupd.sock" */
    } status;

    struct {
        char *listen; /* "" = off, else "host:port" for GET /metrics and /health */
    } metrics;

    struct {
        enum ru_log_level level; /* default info */
        char *format;            /* "auto" (default), "journal", "logfmt" or "json" */
    } log;

    /* Where each key's value came from, by key index (ru_config_key_name): "FILE:LINE",
     * "environment ROLLUPD_...", or NULL for the default. Owned. */
    char *origin[RU_CONFIG_MAX_KEYS];
};

/* Fills cfg with the documented defaults (consumer and dead_letter_stream resolved). */
void ru_config_defaults(struct ru_config *cfg);

/* Frees every string; cfg may then be loaded again. Safe on a zeroed struct. */
void ru_config_deinit(struct ru_config *cfg);

/* Secrets at rest: when cfg's file is readable (or writable) by others and holds a
 * password (in redis.url, or any secret option of postgres.conninfo), writes a warning
 * naming the file, its mode and the fix into out and returns true. */
bool ru_config_secret_exposed(const struct ru_config *cfg, char *out, size_t outlen);

/* What a reload does with a key (ru_config_key_flags). */
enum {
    RU_CONFIG_RESTART = 1u << 0, /* restart-only: a reload keeps the running value */
    RU_CONFIG_REDIS = 1u << 1,   /* a changed value reconnects to Redis */
    RU_CONFIG_PG = 1u << 2,      /* a changed value reconnects the writer to PostgreSQL */
    RU_CONFIG_SECRET = 1u << 3,  /* the value may hold a password: shown redacted */
};

/* Names of the restart-only keys (stream, group, consumer, status.socket, ...) that differ
 * between a and b, comma-separated in key order, into out (empty when none). */
void ru_config_restart_keys(const struct ru_config *a, const struct ru_config *b, char *out,
                            size_t outlen);
/* Whether any key carrying one of flags differs between a and b. */
bool ru_config_changed(const struct ru_config *a, const struct ru_config *b, unsigned flags);
/* For a reload: every restart-only key of next takes running's value. Strings are
 * swapped, so running (about to be deinitialised) owns next's old ones. */
void ru_config_keep_restart_keys(struct ru_config *next, struct ru_config *running);

/* ---- key access by index, for overrides from elsewhere (envcfg) and reports ---- */

/* Number of keys, and the dotted name of key i ("redis.url"), or NULL past the end. */
size_t ru_config_key_count(void);
const char *ru_config_key_name(size_t i, char *buf, size_t len);
/* Index of a dotted key name, or -1. */
int ru_config_key_index(const char *dotted);
/* The RU_CONFIG_* flags of key i (0 past the end). */
unsigned ru_config_key_flags(size_t i);
/* The value of key i as libconfig text ("\"...\"", 1000, true), secrets in
 * redis.url and postgres.conninfo redacted. */
void ru_config_key_value(const struct ru_config *c, size_t i, char *out, size_t len);
/* Appends one line per key to out, for the status socket's "config" command:
 * "KEY = VALUE;  # default DEFAULT; WHAT A RELOAD DOES", values as ru_config_key_value
 * writes them (secrets redacted), the defaults those of ru_config_defaults. */
void ru_config_describe(const struct ru_config *c, struct ru_buf *out);
/* Sets key i from text (integers in decimal, booleans true/false/1/0/yes/no/on/off),
 * with the checks a file's value gets, and records origin (copied; NULL = default).
 * On failure returns -1 with the reason (without the key name) in why and leaves c as
 * it was. Setting redis.url re-parses redis.addr. */
int ru_config_set(struct ru_config *c, size_t i, const char *value, const char *origin, char *why,
                  size_t whylen) RU_MUSTCHECK;
/* ---- for the file loader (cfgfile): a key's kind and its typed setters, which make the
 * checks ru_config_set makes and record origin (copied) ---- */

enum ru_config_kind {
    RU_CONFIG_STR,
    RU_CONFIG_INT,
    RU_CONFIG_I64,
    RU_CONFIG_LEVEL,
    RU_CONFIG_BOOL
};

enum ru_config_kind ru_config_key_kind(size_t i);
/* Index of section.name, or -1; whether any key lives in section. */
int ru_config_key_find(const char *section, const char *name);
bool ru_config_section_known(const char *section);
/* An integer key: -1 with the reason (range) in why and c unchanged, or 0. */
int ru_config_set_int(struct ru_config *c, size_t i, int64_t v, const char *origin, char *why,
                      size_t whylen) RU_MUSTCHECK;
void ru_config_set_bool(struct ru_config *c, size_t i, bool v, const char *origin);
/* Values derived from others when left empty or unset: the consumer (the host name), the
 * dead-letter stream ("<stream>:dead") and flush.max_events (by redis.lone_consumer). */
void ru_config_derive(struct ru_config *c);

/* flush.max_events when it is not set, for the mode (redis.lone_consumer). */
static inline int ru_config_max_events_default(bool lone_consumer)
{
    return lone_consumer ? RU_CONFIG_MAX_EVENTS_LONE : RU_CONFIG_MAX_EVENTS_SHARED;
}

/* The checks across keys and the values derived from others, after ru_config_set: a
 * dead-letter stream still at its default follows redis.stream. On failure -1 and
 * "ORIGIN: key: reason" in err. */
int ru_config_check(struct ru_config *c, char *err, size_t errlen) RU_MUSTCHECK;

#endif
