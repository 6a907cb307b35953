/* report: the daemon's counters and gauges, one table, two renderings (see report.h). */
#include "rollupd/report.h"

#include <inttypes.h>
#include <stdio.h>

static const double flush_buckets[RU_REPORT_NBUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                         0.5,   1,    2.5,   5,    10,  30};

size_t ru_report_flush_bucket(double secs)
{
    size_t bi = 0;
    while (bi < RU_REPORT_NBUCKETS && secs > flush_buckets[bi])
        bi++;
    return bi;
}

/* How a row's value is stored in struct ru_report and shown. */
enum kind {
    V_U64,         /* uint64_t: JSON integer */
    V_I64_NULL,    /* int64_t, -1 unknown: JSON integer or null */
    V_BOOL,        /* bool: JSON true/false, Prometheus 1/0 */
    V_REAL,        /* double */
    V_STR,         /* const char *: JSON string or null; no Prometheus form */
    V_MS_AS_S,     /* int64_t milliseconds: seconds with a fraction */
    V_MS_AS_S_INT, /* int64_t milliseconds: whole seconds (JSON integer) */
    V_US_AS_MS,    /* int64_t microseconds: milliseconds with a fraction */
    V_HEALTH,      /* int health: JSON "ok"/"degraded"/"down", Prometheus 0/1/2 */
    V_UP,          /* int health: Prometheus 1 when ok */
    V_BUILD_INFO,  /* const char *version: rollupd_build_info{version="..."} 1 */
    V_SHARD_INFO,  /* const char *shard: rollupd_shard_info{shard="...",cluster="0|1"} 1 */
    V_HISTOGRAM,   /* flush_bucket[], flush_seconds_sum */
};

struct row {
    const char *json; /* status JSON key, or NULL */
    const char *prom; /* Prometheus name, or NULL */
    const char *type; /* "counter", "gauge" or "histogram" */
    const char *help;
    enum kind kind;
    size_t off; /* of the value in struct ru_report */
};

#define AT(f) offsetof(struct ru_report, f)

/* Initialisers, without the braces (kept outside for clang-format). */
#define J(key, kind)                    #key, NULL, NULL, NULL, kind, AT(key)
#define JP(key, prom, type, help, kind) #key, prom, type, help, kind, AT(key)
#define P(prom, type, help, kind, f)    NULL, prom, type, help, kind, AT(f)

/* In the status object's order; Prometheus families follow the same order. */
static const struct row rows[] = {
    {P("rollupd_build_info", "gauge", "Version of the running rollupd.", V_BUILD_INFO, version)},
    {P("rollupd_shard_info", "gauge", "The shard (stream key) this instance reads.", V_SHARD_INFO,
       shard)},
    {J(version, V_STR)},
    {J(config_file, V_STR)},
    {"uptime_s", NULL, NULL, NULL, V_MS_AS_S_INT, AT(uptime_ms)},
    {P("rollupd_uptime_seconds", "gauge", "Seconds since start.", V_MS_AS_S, uptime_ms)},
    {J(consumer, V_STR)},
    {J(stream, V_STR)},
    {J(group, V_STR)},
    {JP(events_consumed, "rollupd_events_consumed_total", "counter",
        "Valid events read into memory.", V_U64)},
    {JP(events_flushed, "rollupd_events_flushed_total", "counter",
        "Events committed to PostgreSQL.", V_U64)},
    {JP(events_invalid, "rollupd_events_invalid_total", "counter",
        "Malformed entries sent to the dead-letter stream.", V_U64)},
    {JP(events_dead_lettered, "rollupd_events_dead_lettered_total", "counter",
        "Dead-letter transactions Redis confirmed.", V_U64)},
    {JP(events_trimmed, "rollupd_events_trimmed_total", "counter",
        "Pending entries the producer trimmed before they were read (lost upstream).", V_U64)},
    {JP(events_replay_acked, "rollupd_events_replay_acked_total", "counter",
        "Replayed entries already committed, acknowledged without re-applying.", V_U64)},
    {J(lone_consumer, V_BOOL)},
    {JP(recoveries, "rollupd_recoveries_total", "counter",
        "Lone consumer: connections that read again what was delivered after the checkpoint.",
        V_U64)},
    {J(recovery_entries_read, V_U64)},
    {JP(events_recovered, "rollupd_events_recovered_total", "counter",
        "Valid events counted after a recovery read them again.", V_U64)},
    {J(recovery_dead_known, V_U64)},
    {JP(recovery_gaps, "rollupd_recovery_gaps_total", "counter",
        "Recoveries that found entries deleted from the stream before they were read.", V_U64)},
    {JP(events_parked, "rollupd_events_parked", "gauge",
        "Entries whose long key waits for PostgreSQL's verdict (not applied yet).", V_U64)},
    {JP(key_probes, "rollupd_key_probes_total", "counter",
        "Long keys PostgreSQL was asked about (can its unique index hold them?).", V_U64)},
    {JP(events_key_refused, "rollupd_events_key_refused_total", "counter",
        "Entries dead-lettered because PostgreSQL cannot store their key (also invalid).", V_U64)},
    {JP(key_verdicts_cached, "rollupd_key_verdicts_cached", "gauge",
        "PostgreSQL's verdicts on long keys kept in memory.", V_U64)},
    {JP(raw_rows_rejected, "rollupd_raw_rows_rejected_total", "counter",
        "Events whose raw row PostgreSQL would refuse (still counted hourly).", V_U64)},
    {JP(raw_rows_written, "rollupd_raw_rows_written_total", "counter", "Raw rows copied.", V_U64)},
    {JP(rows_written, "rollupd_rows_written_total", "counter", "Hourly rows inserted or updated.",
        V_U64)},
    {JP(flushes, "rollupd_flushes_total", "counter", "Committed flushes.", V_U64)},
    {JP(flush_failures, "rollupd_flush_failures_total", "counter",
        "Flush attempts that failed (retried).", V_U64)},
    {"last_flush_unix", "rollupd_last_flush_timestamp_seconds", "gauge",
     "Unix time of the last commit.", V_MS_AS_S, AT(last_flush_unix_ms)},
    {P("rollupd_flush_duration_seconds", "histogram", "Duration of committed flushes.", V_HISTOGRAM,
       flush_bucket)},
    {"last_flush_ms", NULL, NULL, NULL, V_US_AS_MS, AT(last_flush_us)},
    {J(flush_in_progress, V_BOOL)},
    {JP(pending_events, "rollupd_pending_events", "gauge", "Events in memory not yet committed.",
        V_U64)},
    {JP(pending_keys, "rollupd_pending_keys", "gauge", "Hourly keys in the batch being filled.",
        V_U64)},
    {JP(memory_bytes, "rollupd_memory_bytes", "gauge",
        "Bytes held by batches and row states in memory.", V_U64)},
    {J(ids_kept_bytes, V_U64)},
    {JP(state_cache_rows, "rollupd_state_cache_rows", "gauge",
        "Hourly rows whose full state the writer keeps in memory.", V_U64)},
    {JP(state_cache_bytes, "rollupd_state_cache_bytes", "gauge", "Bytes of those states.", V_U64)},
    {JP(state_reloads, "rollupd_state_reloads_total", "counter",
        "Row states read back from PostgreSQL (not cached, or written by another process).",
        V_U64)},
    {JP(state_evictions, "rollupd_state_evictions_total", "counter",
        "Row states dropped from memory: idle for flush.state_idle_s, or to keep to a quarter "
        "of limits.max_memory_mb.",
        V_U64)},
    {JP(state_budget_evictions, "rollupd_state_budget_evictions_total", "counter",
        "Row states dropped only to keep to a quarter of limits.max_memory_mb, not idle; "
        "growing with rollupd_state_reloads_total on a steady stream, the cache is too small.",
        V_U64)},
    {J(state_scratch_bytes, V_U64)},
    {J(state_cache_flushes, V_U64)},
    {"state_cache_last_ms", NULL, NULL, NULL, V_US_AS_MS, AT(state_cache_last_us)},
    {JP(state_chunk_bytes, "rollupd_state_chunk_bytes_total", "counter",
        "Bytes of histogram and user-set chunks written.", V_U64)},
    {JP(memory_limit_bytes, "rollupd_memory_limit_bytes", "gauge",
        "What rollupd may hold: limits.max_memory_mb less its fixed footprint and slack.", V_U64)},
    {JP(rss_bytes, "rollupd_rss_bytes", "gauge", "Resident set size of the process.", V_U64)},
    {J(rss_base_bytes, V_U64)},
    {J(rss_limit_bytes, V_U64)},
    {JP(reading_paused, "rollupd_reading_paused", "gauge", "1 while backpressure pauses reading.",
        V_BOOL)},
    {JP(consumer_lock_held, "rollupd_consumer_lock_held", "gauge",
        "1 while the PostgreSQL session holds this consumer's locks (reading needs it).", V_BOOL)},
    {J(reading_suspended, V_BOOL)},
    {J(events_per_s, V_REAL)},
    {J(last_seen_id, V_STR)},
    {JP(group_lag, "rollupd_group_lag", "gauge",
        "Entries not yet delivered to the group (-1 unknown).", V_I64_NULL)},
    {JP(group_pending, "rollupd_group_pending", "gauge",
        "Entries delivered but not acknowledged in the group (-1 unknown).", V_I64_NULL)},
    {J(group_recreated, V_U64)},
    {JP(adoptions, "rollupd_adoptions_total", "counter",
        "Dead consumers whose entries were adopted.", V_U64)},
    {J(adoption_in_progress, V_STR)},
    {JP(redis_connected, "rollupd_redis_connected", "gauge", "1 while connected to Redis.",
        V_BOOL)},
    {J(redis_url, V_STR)},
    {JP(redis_reconnects, "rollupd_redis_reconnects_total", "counter", "Redis reconnections.",
        V_U64)},
    {J(shard, V_STR)},
    {J(redis_cluster, V_BOOL)},
    {J(redis_node, V_STR)},
    {JP(redis_lost_tail, "rollupd_redis_lost_tail_total", "counter",
        "Connections that found the stream ending below entries already read (writes lost "
        "by Redis in a failover).",
        V_U64)},
    {J(redis_last_error, V_STR)},
    {JP(postgres_connected, "rollupd_postgres_connected", "gauge",
        "1 while connected to PostgreSQL.", V_BOOL)},
    {J(postgres_conninfo, V_STR)},
    {J(postgres_last_error, V_STR)},
    {P("rollupd_up", "gauge", "1 when healthy, 0 when degraded or down.", V_UP, health)},
    {JP(health, "rollupd_health", "gauge", "0 ok, 1 degraded, 2 down.", V_HEALTH)},
    {J(health_reason, V_STR)},
};

/* The field at row->off of r, of the given type; const is added here (pass char *). */
#define FIELD(r, row, type) (*(const type *)((const char *)(r) + (row)->off))

static const char *health_name(int h)
{
    return h == 0 ? "ok" : h == 1 ? "degraded" : "down";
}

static json_t *json_value(const struct ru_report *r, const struct row *w)
{
    switch (w->kind) {
    case V_U64:
        return json_integer((json_int_t)FIELD(r, w, uint64_t));
    case V_I64_NULL: {
        int64_t v = FIELD(r, w, int64_t);
        return v >= 0 ? json_integer(v) : json_null();
    }
    case V_BOOL:
        return json_boolean(FIELD(r, w, bool));
    case V_REAL:
        return json_real(FIELD(r, w, double));
    case V_STR: {
        const char *s = FIELD(r, w, char *);
        return s != NULL ? json_string(s) : json_null();
    }
    case V_MS_AS_S:
        return json_real((double)FIELD(r, w, int64_t) / 1000.0);
    case V_MS_AS_S_INT:
        return json_integer(FIELD(r, w, int64_t) / 1000);
    case V_US_AS_MS:
        return json_real((double)FIELD(r, w, int64_t) / 1000.0);
    case V_HEALTH:
        return json_string(health_name(FIELD(r, w, int)));
    case V_UP:
    case V_BUILD_INFO:
    case V_SHARD_INFO:
    case V_HISTOGRAM:
        break;
    }
    return json_null();
}

json_t *ru_report_json(const struct ru_report *r)
{
    json_t *o = json_object();
    for (size_t i = 0; i < RU_ARRAY_LEN(rows); i++)
        if (rows[i].json != NULL)
            json_object_set_new(o, rows[i].json, json_value(r, &rows[i]));
    return o;
}

/* A label value: '"' and '\' escaped, a newline as \n. */
static void label_value(struct ru_buf *b, const char *s)
{
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\')
            ru_buf_putc(b, '\\');
        if (*p == '\n')
            ru_buf_puts(b, "\\n");
        else
            ru_buf_putc(b, *p);
    }
}

static void histogram(const struct ru_report *r, const char *name, struct ru_buf *b)
{
    uint64_t cum = 0;
    for (size_t i = 0; i < RU_REPORT_NBUCKETS; i++) {
        cum += r->flush_bucket[i];
        ru_buf_printf(b, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, flush_buckets[i], cum);
    }
    cum += r->flush_bucket[RU_REPORT_NBUCKETS];
    ru_buf_printf(b,
                  "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n"
                  "%s_sum %.6f\n"
                  "%s_count %" PRIu64 "\n",
                  name, cum, name, r->flush_seconds_sum, name, cum);
}

/* The sample line(s) of row w, after its HELP and TYPE lines. */
static void prom_samples(const struct ru_report *r, const struct row *w, struct ru_buf *b)
{
    double v = 0;
    switch (w->kind) {
    case V_BUILD_INFO:
        ru_buf_printf(b, "%s{version=\"%s\"} 1\n", w->prom, FIELD(r, w, char *));
        return;
    case V_SHARD_INFO:
        ru_buf_printf(b, "%s{shard=\"", w->prom);
        label_value(b, FIELD(r, w, char *));
        ru_buf_printf(b, "\",cluster=\"%d\"} 1\n", r->redis_cluster ? 1 : 0);
        return;
    case V_HISTOGRAM:
        histogram(r, w->prom, b);
        return;
    case V_U64:
        v = (double)FIELD(r, w, uint64_t);
        break;
    case V_I64_NULL:
        v = (double)FIELD(r, w, int64_t);
        break;
    case V_BOOL:
        v = FIELD(r, w, bool);
        break;
    case V_REAL:
        v = FIELD(r, w, double);
        break;
    case V_MS_AS_S:
    case V_MS_AS_S_INT:
        v = (double)FIELD(r, w, int64_t) / 1000.0;
        break;
    case V_US_AS_MS:
        v = (double)FIELD(r, w, int64_t) / 1000.0;
        break;
    case V_HEALTH:
        v = FIELD(r, w, int);
        break;
    case V_UP:
        v = FIELD(r, w, int) == 0;
        break;
    case V_STR:
        return;
    }
    ru_buf_printf(b, "%s %.17g\n", w->prom, v);
}

void ru_report_prometheus(const struct ru_report *r, struct ru_buf *out)
{
    for (size_t i = 0; i < RU_ARRAY_LEN(rows); i++) {
        const struct row *w = &rows[i];
        if (w->prom == NULL)
            continue;
        ru_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", w->prom, w->help, w->prom, w->type);
        prom_samples(r, w, out);
    }
}

bool ru_report_names(size_t i, const char **json_key, const char **prom_name)
{
    if (i >= RU_ARRAY_LEN(rows))
        return false;
    *json_key = rows[i].json;
    *prom_name = rows[i].prom;
    return true;
}
