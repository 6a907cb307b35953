#!/usr/bin/python3
"""todays_job.py: genonaut's two Celery jobs as users run them today, re-created for
bench/run with psycopg2 (genonaut itself goes through SQLAlchemy, which is slower).

Transfer job, in its "cursor fixed" variant: genonaut reads with plain XREAD from 0-0
and keeps no cursor; here the entries are read with XREADGROUP (COUNT 1000) so that each
run picks up where the last one stopped, and acknowledged after the COMMIT. Everything
else is as genonaut does it: one INSERT per raw row into route_analytics (the same
columns and conversions: '' -> NULL, sizes 0 -> NULL, created_at = the event time), a
row that fails is logged and skipped, one COMMIT per batch.

Aggregation job: genonaut's INSERT ... SELECT ... GROUP BY date_trunc('hour', timestamp)
with PERCENTILE_CONT and ON CONFLICT DO UPDATE, run once for each hour the transfer
touched (genonaut runs it once an hour for the previous hour).

Time is UTC (genonaut converts with the worker's local zone; this machine's is UTC).
Prints one JSON object: events, raw_rows, hourly_rows, flushes (commits), seconds.
"""
import argparse
import datetime
import json
import sys
import time

import psycopg2
import redis

INSERT_RAW = """
    INSERT INTO route_analytics (
        route, method, user_id, timestamp, duration_ms, status_code,
        query_params, query_params_normalized,
        request_size_bytes, response_size_bytes,
        error_type, cache_status, created_at
    ) VALUES (
        %(route)s, %(method)s, %(user_id)s, %(timestamp)s, %(duration_ms)s, %(status_code)s,
        %(query_params)s, %(query_params_normalized)s,
        %(request_size_bytes)s, %(response_size_bytes)s,
        %(error_type)s, %(cache_status)s, %(created_at)s
    )
"""

# genonaut's aggregation statement; the hour bounds are parameters instead of NOW().
AGGREGATE_HOUR = """
    INSERT INTO route_analytics_hourly (
        timestamp, route, method, query_params_normalized,
        total_requests, successful_requests, client_errors, server_errors,
        avg_duration_ms, p50_duration_ms, p95_duration_ms, p99_duration_ms,
        unique_users, avg_request_size_bytes, avg_response_size_bytes,
        cache_hits, cache_misses, created_at
    )
    SELECT
        DATE_TRUNC('hour', timestamp) as hour,
        route,
        method,
        query_params_normalized,
        COUNT(*) as total_requests,
        SUM(CASE WHEN status_code >= 200 AND status_code < 300 THEN 1 ELSE 0 END),
        SUM(CASE WHEN status_code >= 400 AND status_code < 500 THEN 1 ELSE 0 END),
        SUM(CASE WHEN status_code >= 500 THEN 1 ELSE 0 END),
        AVG(duration_ms)::INTEGER,
        PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY duration_ms)::INTEGER,
        PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY duration_ms)::INTEGER,
        PERCENTILE_CONT(0.99) WITHIN GROUP (ORDER BY duration_ms)::INTEGER,
        COUNT(DISTINCT user_id),
        AVG(request_size_bytes)::INTEGER,
        AVG(response_size_bytes)::INTEGER,
        COALESCE(SUM(CASE WHEN cache_status = 'hit' THEN 1 ELSE 0 END), 0),
        COALESCE(SUM(CASE WHEN cache_status = 'miss' THEN 1 ELSE 0 END), 0),
        CURRENT_TIMESTAMP
    FROM route_analytics
    WHERE timestamp >= %(start)s AND timestamp < %(end)s
    GROUP BY hour, route, method, query_params_normalized
    ON CONFLICT (timestamp, route, method, query_params_normalized) DO UPDATE SET
        total_requests = EXCLUDED.total_requests,
        successful_requests = EXCLUDED.successful_requests,
        client_errors = EXCLUDED.client_errors,
        server_errors = EXCLUDED.server_errors,
        avg_duration_ms = EXCLUDED.avg_duration_ms,
        p50_duration_ms = EXCLUDED.p50_duration_ms,
        p95_duration_ms = EXCLUDED.p95_duration_ms,
        p99_duration_ms = EXCLUDED.p99_duration_ms,
        unique_users = EXCLUDED.unique_users,
        avg_request_size_bytes = EXCLUDED.avg_request_size_bytes,
        avg_response_size_bytes = EXCLUDED.avg_response_size_bytes,
        cache_hits = EXCLUDED.cache_hits,
        cache_misses = EXCLUDED.cache_misses
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--redis-host", default="127.0.0.1")
    ap.add_argument("--redis-port", type=int, default=6379)
    ap.add_argument("--stream", required=True)
    ap.add_argument("--group", default="todays_job")
    ap.add_argument("--consumer", default="celery")
    ap.add_argument("--dsn", required=True)
    ap.add_argument("-n", "--events", type=int, required=True, help="stop after N entries")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--hiredis", action="store_true",
                    help="parse replies with hiredis-py (python3-hiredis) instead of redis-py's")
    a = ap.parse_args()

    t0 = time.monotonic()
    # redis-py uses hiredis-py when it is importable; the reply parser decides much of
    # the speed, so it is chosen explicitly (bench/run: BENCH_PY_HIREDIS=1)
    parser = redis.connection.HiredisParser if a.hiredis else redis.connection.PythonParser
    r = redis.Redis(connection_pool=redis.ConnectionPool(
        host=a.redis_host, port=a.redis_port, decode_responses=True, parser_class=parser))
    try:
        r.xgroup_create(a.stream, a.group, id="0", mkstream=True)
    except redis.ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise
    db = psycopg2.connect(a.dsn)
    cur = db.cursor()
    cur.execute("SET TimeZone = 'UTC'")
    db.commit()

    events = inserted = failed = commits = 0
    hours = set()
    while events < a.events:
        resp = r.xreadgroup(a.group, a.consumer, {a.stream: ">"},
                            count=min(a.count, a.events - events), block=1000)
        if not resp:
            break
        _, event_list = resp[0]
        ids = []
        for event_id, event_data in event_list:
            ids.append(event_id)
            try:
                ts = datetime.datetime.utcfromtimestamp(float(event_data.get("timestamp", 0)))
                params = {
                    "route": event_data.get("route", ""),
                    "method": event_data.get("method", "GET"),
                    "user_id": event_data.get("user_id") or None,
                    "timestamp": ts,
                    "duration_ms": int(event_data.get("duration_ms", 0)),
                    "status_code": int(event_data.get("status_code", 500)),
                    "query_params": event_data.get("query_params", "{}"),
                    "query_params_normalized": event_data.get("query_params_normalized", "{}"),
                    "request_size_bytes": int(event_data.get("request_size_bytes", 0)) or None,
                    "response_size_bytes": int(event_data.get("response_size_bytes", 0)) or None,
                    "error_type": event_data.get("error_type") or None,
                    "cache_status": event_data.get("cache_status") or None,
                    "created_at": ts,
                }
                cur.execute(INSERT_RAW, params)
                inserted += 1
                hours.add(ts.replace(minute=0, second=0, microsecond=0))
            except (ValueError, psycopg2.Error) as e:
                # genonaut logs and goes on with the next event (after a database error
                # the rest of the batch fails too, as it does there)
                failed += 1
                if failed <= 3:
                    print(f"todays_job: failed to insert event {event_id}: {e}", file=sys.stderr)
        db.commit()
        commits += 1
        r.xack(a.stream, a.group, *ids)
        events += len(event_list)

    hourly = 0
    for h in sorted(hours):
        cur.execute(AGGREGATE_HOUR, {"start": h, "end": h + datetime.timedelta(hours=1)})
        hourly += cur.rowcount
        db.commit()
        commits += 1
    db.close()
    if failed > 3:
        print(f"todays_job: ... {failed} events failed and were skipped", file=sys.stderr)
    print(json.dumps({"events": events, "raw_rows": inserted, "skipped": failed, "hourly_rows": hourly,
                      "rows_written": inserted + hourly, "flushes": commits,
                      "hours": len(hours), "seconds": round(time.monotonic() - t0, 3)}))


if __name__ == "__main__":
    main()
