/* report: every counter and gauge of the daemon in one table, {status JSON key,
 * Prometheus name, type, help, where the value is}, rendered as the status command's JSON
 * object and as the Prometheus text exposition format 0.0.4 (GET /metrics, "metrics").
 * Pure: the daemon fills a snapshot, report renders it. */
#ifndef ROLLUPD_REPORT_H
#define ROLLUPD_REPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollupd/util.h"

/* Flush-duration histogram buckets (seconds) of rollupd_flush_duration_seconds. */
#define RU_REPORT_NBUCKETS 12

/* The bucket of a flush of secs seconds: 0..RU_REPORT_NBUCKETS (the last is +Inf). */
size_t ru_report_flush_bucket(double secs);

/* One moment of the daemon. Strings are borrowed for the rendering (NULL: JSON null). */
struct ru_report {
    const char *version, *config_file, *consumer, *stream, *group;
    int64_t uptime_ms;
    uint64_t events_consumed, events_flushed, events_invalid, events_dead_lettered;
    uint64_t events_trimmed, events_replay_acked;
    bool lone_consumer;
    uint64_t recoveries, recovery_entries_read, events_recovered, recovery_dead_known;
    uint64_t recovery_gaps, events_parked, key_probes, events_key_refused, key_verdicts_cached;
    uint64_t raw_rows_rejected, raw_rows_written, rows_written, flushes, flush_failures;
    int64_t last_flush_unix_ms, last_flush_us;
    bool flush_in_progress;
    uint64_t flush_bucket[RU_REPORT_NBUCKETS + 1]; /* per bucket, not cumulative; +Inf last */
    double flush_seconds_sum;
    uint64_t pending_events, pending_keys, memory_bytes;
    uint64_t ids_kept_bytes; /* of memory_bytes: the id array kept for the next batch */
    uint64_t state_cache_rows, state_cache_bytes, state_reloads, state_evictions;
    uint64_t state_budget_evictions;
    uint64_t state_scratch_bytes, state_cache_flushes;
    int64_t state_cache_last_us;
    uint64_t state_chunk_bytes, memory_limit_bytes, rss_bytes, rss_base_bytes, rss_limit_bytes;
    bool reading_paused, consumer_lock_held, reading_suspended;
    double events_per_s;
    const char *last_seen_id;
    int64_t group_lag, group_pending; /* -1 unknown */
    uint64_t group_recreated, adoptions;
    const char *adoption_in_progress; /* the consumer being adopted, or NULL */
    bool redis_connected;
    const char *redis_url; /* redacted */
    uint64_t redis_reconnects;
    const char *shard;
    bool redis_cluster;
    const char *redis_node;
    uint64_t redis_lost_tail;
    const char *redis_last_error;
    bool postgres_connected;
    const char *postgres_conninfo; /* redacted */
    const char *postgres_last_error;
    int health; /* 0 ok, 1 degraded, 2 down */
    const char *health_reason;
};

/* The status command's object: one member per JSON key of the table. */
json_t *ru_report_json(const struct ru_report *r);
/* Appends the Prometheus text (format 0.0.4) of every metric of the table to out. */
void ru_report_prometheus(const struct ru_report *r, struct ru_buf *out);

/* The table's names, for clients and tests: the JSON key and Prometheus name of row i
 * (either may be NULL), false past the end. */
bool ru_report_names(size_t i, const char **json_key, const char **prom_name);

#endif
