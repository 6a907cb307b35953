/* Unit tests for src/report.c: the status object's keys and the Prometheus families, as
 * rollupd showed them before they came from one table, and how values are shown. */
#include <criterion/criterion.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "rollupd/report.h"

/* The status object's keys, in order. */
static const char *const json_keys[] = {"version",
                                        "config_file",
                                        "uptime_s",
                                        "consumer",
                                        "stream",
                                        "group",
                                        "events_consumed",
                                        "events_flushed",
                                        "events_invalid",
                                        "events_dead_lettered",
                                        "events_trimmed",
                                        "events_replay_acked",
                                        "lone_consumer",
                                        "recoveries",
                                        "recovery_entries_read",
                                        "events_recovered",
                                        "recovery_dead_known",
                                        "recovery_gaps",
                                        "events_parked",
                                        "key_probes",
                                        "events_key_refused",
                                        "key_verdicts_cached",
                                        "raw_rows_rejected",
                                        "raw_rows_written",
                                        "rows_written",
                                        "flushes",
                                        "flush_failures",
                                        "last_flush_unix",
                                        "last_flush_ms",
                                        "flush_in_progress",
                                        "pending_events",
                                        "pending_keys",
                                        "memory_bytes",
                                        "ids_kept_bytes",
                                        "state_cache_rows",
                                        "state_cache_bytes",
                                        "state_reloads",
                                        "state_evictions",
                                        "state_budget_evictions",
                                        "state_scratch_bytes",
                                        "state_cache_flushes",
                                        "state_cache_last_ms",
                                        "state_chunk_bytes",
                                        "memory_limit_bytes",
                                        "rss_bytes",
                                        "rss_base_bytes",
                                        "rss_limit_bytes",
                                        "reading_paused",
                                        "consumer_lock_held",
                                        "reading_suspended",
                                        "events_per_s",
                                        "last_seen_id",
                                        "group_lag",
                                        "group_pending",
                                        "group_recreated",
                                        "adoptions",
                                        "adoption_in_progress",
                                        "redis_connected",
                                        "redis_url",
                                        "redis_reconnects",
                                        "shard",
                                        "redis_cluster",
                                        "redis_node",
                                        "redis_lost_tail",
                                        "redis_last_error",
                                        "postgres_connected",
                                        "postgres_conninfo",
                                        "postgres_last_error",
                                        "health",
                                        "health_reason"};

/* Every Prometheus family (any order). */
static const char *const families[] = {"rollupd_build_info",
                                       "rollupd_shard_info",
                                       "rollupd_redis_lost_tail_total",
                                       "rollupd_up",
                                       "rollupd_health",
                                       "rollupd_uptime_seconds",
                                       "rollupd_events_consumed_total",
                                       "rollupd_events_flushed_total",
                                       "rollupd_events_invalid_total",
                                       "rollupd_events_dead_lettered_total",
                                       "rollupd_events_trimmed_total",
                                       "rollupd_events_replay_acked_total",
                                       "rollupd_recoveries_total",
                                       "rollupd_events_recovered_total",
                                       "rollupd_recovery_gaps_total",
                                       "rollupd_events_parked",
                                       "rollupd_key_probes_total",
                                       "rollupd_events_key_refused_total",
                                       "rollupd_key_verdicts_cached",
                                       "rollupd_raw_rows_rejected_total",
                                       "rollupd_raw_rows_written_total",
                                       "rollupd_rows_written_total",
                                       "rollupd_flushes_total",
                                       "rollupd_flush_failures_total",
                                       "rollupd_last_flush_timestamp_seconds",
                                       "rollupd_flush_duration_seconds",
                                       "rollupd_pending_events",
                                       "rollupd_pending_keys",
                                       "rollupd_state_cache_rows",
                                       "rollupd_state_cache_bytes",
                                       "rollupd_state_reloads_total",
                                       "rollupd_state_evictions_total",
                                       "rollupd_state_budget_evictions_total",
                                       "rollupd_state_chunk_bytes_total",
                                       "rollupd_memory_bytes",
                                       "rollupd_memory_limit_bytes",
                                       "rollupd_rss_bytes",
                                       "rollupd_reading_paused",
                                       "rollupd_consumer_lock_held",
                                       "rollupd_group_lag",
                                       "rollupd_group_pending",
                                       "rollupd_redis_connected",
                                       "rollupd_postgres_connected",
                                       "rollupd_redis_reconnects_total",
                                       "rollupd_adoptions_total"};

static struct ru_report sample(void)
{
    struct ru_report r;
    memset(&r, 0, sizeof(r));
    r.version = "1.2.3";
    r.config_file = NULL;
    r.consumer = "c1";
    r.stream = "s";
    r.group = "g";
    r.uptime_ms = 12500;
    r.events_consumed = 1000;
    r.last_flush_unix_ms = 1796489396500;
    r.last_flush_us = 38500;
    r.flush_bucket[0] = 2;
    r.flush_bucket[3] = 1;
    r.flush_bucket[RU_REPORT_NBUCKETS] = 1;
    r.flush_seconds_sum = 40.5;
    r.reading_paused = true;
    r.last_seen_id = "5-1";
    r.group_lag = -1;
    r.group_pending = 7;
    r.redis_url = "redis://127.0.0.1:6379/0";
    r.shard = "a\"b\\c";
    r.redis_cluster = true;
    r.redis_node = "";
    r.redis_last_error = "";
    r.postgres_conninfo = "dbname=x";
    r.postgres_last_error = "";
    r.health = 1;
    r.health_reason = "reading paused";
    return r;
}

Test(report, json_keys_in_order)
{
    struct ru_report r = sample();
    json_t *o = ru_report_json(&r);
    cr_assert_eq(json_object_size(o), sizeof(json_keys) / sizeof(json_keys[0]));
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        cr_assert_str_eq(k, json_keys[i], "key %zu", i);
        i++;
    }
    char *s = json_dumps(o, JSON_COMPACT);
    cr_assert_not_null(strstr(s, "\"version\":\"1.2.3\",\"config_file\":null,\"uptime_s\":12,"),
                       "%s", s);
    cr_assert_not_null(strstr(s, "\"last_flush_unix\":1796489396.5,\"last_flush_ms\":38.5,"), "%s",
                       s);
    cr_assert_not_null(strstr(s, "\"reading_paused\":true,"), "%s", s);
    cr_assert_not_null(strstr(s, "\"group_lag\":null,\"group_pending\":7,"), "%s", s);
    cr_assert_not_null(strstr(s, "\"adoption_in_progress\":null,"), "%s", s);
    cr_assert_not_null(strstr(s, "\"health\":\"degraded\",\"health_reason\":\"reading paused\"}"),
                       "%s", s);
    free(s);
    json_decref(o);
}

Test(report, prometheus_families)
{
    struct ru_report r = sample();
    struct ru_buf b = RU_BUF_INIT;
    ru_report_prometheus(&r, &b);
    size_t helps = 0;
    for (size_t i = 0; i < b.len; i++)
        helps += strncmp(b.p + i, "# HELP ", 7) == 0 && (i == 0 || b.p[i - 1] == '\n');
    cr_assert_eq(helps, sizeof(families) / sizeof(families[0]), "%s", b.p);
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        char want[128];
        snprintf(want, sizeof(want), "\n# TYPE %s ", families[i]);
        cr_assert(strstr(b.p, want) != NULL || strncmp(b.p, want + 1, strlen(want) - 1) == 0,
                  "no %s", families[i]);
    }
    static const char *const lines[] = {
        "rollupd_build_info{version=\"1.2.3\"} 1\n",
        "rollupd_shard_info{shard=\"a\\\"b\\\\c\",cluster=\"1\"} 1\n",
        "# HELP rollupd_up 1 when healthy, 0 when degraded or down.\n# TYPE rollupd_up gauge\n"
        "rollupd_up 0\n",
        "\nrollupd_health 1\n",
        "\nrollupd_uptime_seconds 12.5\n",
        "\nrollupd_events_consumed_total 1000\n",
        "\nrollupd_last_flush_timestamp_seconds 1796489396.5\n",
        "\nrollupd_reading_paused 1\n",
        "\nrollupd_group_lag -1\n",
        "rollupd_flush_duration_seconds_bucket{le=\"0.005\"} 2\n"
        "rollupd_flush_duration_seconds_bucket{le=\"0.01\"} 2\n"
        "rollupd_flush_duration_seconds_bucket{le=\"0.025\"} 2\n"
        "rollupd_flush_duration_seconds_bucket{le=\"0.05\"} 3\n",
        "rollupd_flush_duration_seconds_bucket{le=\"30\"} 3\n"
        "rollupd_flush_duration_seconds_bucket{le=\"+Inf\"} 4\n"
        "rollupd_flush_duration_seconds_sum 40.500000\n"
        "rollupd_flush_duration_seconds_count 4\n",
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        cr_assert_not_null(strstr(b.p, lines[i]), "lacks '%s':\n%s", lines[i], b.p);
    ru_buf_free(&b);
}

Test(report, names_are_unique)
{
    const char *j1, *p1, *j2, *p2;
    for (size_t i = 0; ru_report_names(i, &j1, &p1); i++) {
        cr_assert(j1 != NULL || p1 != NULL);
        for (size_t k = 0; k < i; k++) {
            cr_assert(ru_report_names(k, &j2, &p2));
            cr_assert(j1 == NULL || j2 == NULL || strcmp(j1, j2) != 0, "%s twice", j1);
            cr_assert(p1 == NULL || p2 == NULL || strcmp(p1, p2) != 0, "%s twice", p1);
        }
    }
}

Test(report, flush_buckets)
{
    cr_assert_eq(ru_report_flush_bucket(0.0), 0);
    cr_assert_eq(ru_report_flush_bucket(0.005), 0, "le is inclusive");
    cr_assert_eq(ru_report_flush_bucket(0.0051), 1);
    cr_assert_eq(ru_report_flush_bucket(30), RU_REPORT_NBUCKETS - 1);
    cr_assert_eq(ru_report_flush_bucket(31), RU_REPORT_NBUCKETS);
}

#ifndef RU_SOURCE_DIR
#define RU_SOURCE_DIR "."
#endif

static bool is_json_key(const char *name)
{
    const char *j, *p;
    for (size_t i = 0; ru_report_names(i, &j, &p); i++)
        if (j != NULL && strcmp(j, name) == 0)
            return true;
    return false;
}

/* rollupctl reads the status object by the table's names: every key it asks for (jstr,
 * jint, jreal, json_object_get on the object) is one of them. */
Test(report, rollupctl_reads_the_tables_names)
{
    FILE *fp = fopen(RU_SOURCE_DIR "/src/rollupctl.c", "r");
    cr_assert_not_null(fp);
    char line[512];
    size_t found = 0;
    while (fgets(line, sizeof(line), fp) != NULL) {
        static const char *const calls[] = {"jstr(o, \"", "jint(o, \"", "jreal(o, \"",
                                            "json_object_get(o, \""};
        for (size_t c = 0; c < sizeof(calls) / sizeof(calls[0]); c++) {
            for (const char *p = strstr(line, calls[c]); p != NULL; p = strstr(p + 1, calls[c])) {
                const char *k = p + strlen(calls[c]);
                const char *e = strchr(k, '"');
                cr_assert_not_null(e);
                char name[64];
                snprintf(name, sizeof(name), "%.*s", (int)(e - k), k);
                cr_assert(is_json_key(name), "rollupctl reads \"%s\", not in report's table", name);
                found++;
            }
        }
    }
    fclose(fp);
    cr_assert_geq(found, 30, "only %zu keys found: has rollupctl's way of reading changed?", found);
}
