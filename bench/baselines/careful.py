#!/usr/bin/python3
"""careful.py: what a careful Python developer would write instead of genonaut's jobs,
for bench/run: XREADGROUP (COUNT 1000) in a consumer group, exact hourly aggregation in
Python dicts, and once a second a COPY of the touched hourly rows into a temp table
merged with INSERT ... ON CONFLICT DO UPDATE, then XACK after the COMMIT.

It keeps each key's whole state (counts, sums, a duration -> count histogram, the set
of users) in memory for the life of the process, so every upsert writes the key's exact
current row with genonaut's arithmetic: AVG::INTEGER rounds half away from zero,
PERCENTILE_CONT interpolates in double precision and ::INTEGER rounds half to even.
Keys are (hour, route, method, query_params_normalized as canonical JSON), so JSON texts
that jsonb considers equal (key order, white space, 1 vs 1.0, escapes, duplicate keys)
are one key, as in the table's unique constraint. User ids are compared as UUIDs.

Prints one JSON object: events, flushes, rows_written, keys, seconds.
"""
import argparse
import datetime
import io
import json
import math
import time
import uuid

import psycopg2
import redis

COLUMNS = ("timestamp", "route", "method", "query_params_normalized", "total_requests",
           "successful_requests", "client_errors", "server_errors", "avg_duration_ms",
           "p50_duration_ms", "p95_duration_ms", "p99_duration_ms", "unique_users",
           "avg_request_size_bytes", "avg_response_size_bytes", "avg_db_query_count",
           "cache_hits", "cache_misses")
KEY = COLUMNS[:4]

STAGE = ("CREATE TEMP TABLE stage (timestamp timestamp, route text, method text,"
         " query_params_normalized jsonb, total_requests int, successful_requests int,"
         " client_errors int, server_errors int, avg_duration_ms int, p50_duration_ms int,"
         " p95_duration_ms int, p99_duration_ms int, unique_users int,"
         " avg_request_size_bytes int, avg_response_size_bytes int,"
         " avg_db_query_count float8, cache_hits int, cache_misses int) ON COMMIT DELETE ROWS")
MERGE = ("INSERT INTO route_analytics_hourly ({cols}, created_at)"
         " SELECT {cols}, now() AT TIME ZONE 'UTC' FROM stage"
         " ON CONFLICT (timestamp, route, method, query_params_normalized) DO UPDATE SET {set}"
         ).format(cols=", ".join(COLUMNS),
                  set=", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS[4:]))


def canon_json(value):
    """Makes numbers that jsonb compares equal spell the same (1, 1.0, 10e-1)."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {k: canon_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [canon_json(v) for v in value]
    return value


class Agg:
    __slots__ = ("total", "ok", "c4xx", "c5xx", "hits", "misses", "dur_sum", "hist",
                 "users", "req_sum", "req_n", "resp_sum", "resp_n", "db_sum", "db_n")

    def __init__(self):
        self.total = self.ok = self.c4xx = self.c5xx = self.hits = self.misses = 0
        self.dur_sum = self.req_sum = self.req_n = self.resp_sum = self.resp_n = 0
        self.db_sum = self.db_n = 0
        self.hist = {}
        self.users = set()


def avg_int(total, n):
    """numeric AVG cast to integer: rounds half away from zero."""
    q, r = divmod(abs(total), n)
    if 2 * r >= n:
        q += 1
    return q if total >= 0 else -q


def percentiles(hist, n, qs):
    """PERCENTILE_CONT over a value -> count histogram, cast to integer (half to even)."""
    values = sorted(hist)
    out = []
    for q in qs:
        x = q * (n - 1)
        lo_rank, hi_rank = math.floor(x), math.ceil(x)
        lo = hi = None
        seen = 0
        for v in values:
            seen += hist[v]
            if lo is None and seen > lo_rank:
                lo = v
            if seen > hi_rank:
                hi = v
                break
        out.append(int(round(float(lo) + (float(hi) - float(lo)) * (x - lo_rank))))
    return out


def copy_text(value):
    if value is None:
        return "\\N"
    s = str(value)
    if "\\" in s or "\t" in s or "\n" in s or "\r" in s:
        s = (s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
             .replace("\r", "\\r"))
    return s


def row_of(key, a):
    p50, p95, p99 = percentiles(a.hist, a.total, (0.5, 0.95, 0.99))
    hour, route, method, params = key
    return (datetime.datetime.utcfromtimestamp(hour).strftime("%Y-%m-%d %H:%M:%S"),
            route, method, params, a.total, a.ok, a.c4xx, a.c5xx,
            avg_int(a.dur_sum, a.total), p50, p95, p99, len(a.users),
            avg_int(a.req_sum, a.req_n) if a.req_n else None,
            avg_int(a.resp_sum, a.resp_n) if a.resp_n else None,
            a.db_sum / a.db_n if a.db_n else None, a.hits, a.misses)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--redis-host", default="127.0.0.1")
    ap.add_argument("--redis-port", type=int, default=6379)
    ap.add_argument("--stream", required=True)
    ap.add_argument("--group", default="careful")
    ap.add_argument("--consumer", default="careful")
    ap.add_argument("--dsn", required=True)
    ap.add_argument("-n", "--events", type=int, required=True, help="stop after N entries")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--hiredis", action="store_true",
                    help="parse replies with hiredis-py (python3-hiredis) instead of redis-py's")
    ap.add_argument("--flush-ms", type=int, default=1000)
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
    cur.execute(STAGE)
    db.commit()

    state = {}
    touched = set()
    pending = []
    canon_cache = {}
    user_cache = {}
    events = invalid = flushes = rows = 0

    def flush():
        nonlocal flushes, rows
        if not pending:
            return
        buf = io.StringIO()
        for key in touched:
            buf.write("\t".join(copy_text(v) for v in row_of(key, state[key])))
            buf.write("\n")
        buf.seek(0)
        cur.copy_expert("COPY stage (" + ", ".join(COLUMNS) + ") FROM STDIN", buf)
        cur.execute(MERGE)
        db.commit()
        for i in range(0, len(pending), 1000):
            r.xack(a.stream, a.group, *pending[i:i + 1000])
        flushes += 1
        rows += len(touched)
        touched.clear()
        pending.clear()

    last_flush = time.monotonic()
    while events < a.events:
        resp = r.xreadgroup(a.group, a.consumer, {a.stream: ">"},
                            count=min(a.count, a.events - events), block=1000)
        if not resp:
            break
        for entry_id, f in resp[0][1]:
            pending.append(entry_id)
            events += 1
            try:
                ts = float(f["timestamp"])
                duration = int(f["duration_ms"])
                status = int(f["status_code"])
                route = f["route"]
                qpn = f.get("query_params_normalized", "{}")
                params = canon_cache.get(qpn)
                if params is None:
                    params = json.dumps(canon_json(json.loads(qpn)), sort_keys=True,
                                        ensure_ascii=False, separators=(", ", ": "))
                    canon_cache[qpn] = params
            except (KeyError, ValueError):
                invalid += 1
                continue
            key = (int(ts // 3600) * 3600, route, f.get("method") or "GET", params)
            agg = state.get(key)
            if agg is None:
                agg = state[key] = Agg()
            touched.add(key)
            agg.total += 1
            if 200 <= status <= 299:
                agg.ok += 1
            elif 400 <= status <= 499:
                agg.c4xx += 1
            elif status >= 500:
                agg.c5xx += 1
            cache = f.get("cache_status")
            if cache == "hit":
                agg.hits += 1
            elif cache == "miss":
                agg.misses += 1
            agg.dur_sum += duration
            agg.hist[duration] = agg.hist.get(duration, 0) + 1
            user = f.get("user_id")
            if user:
                u = user_cache.get(user)
                if u is None:
                    try:
                        u = str(uuid.UUID(user))
                    except ValueError:
                        u = user
                    user_cache[user] = u
                agg.users.add(u)
            size = int(f.get("request_size_bytes") or 0)
            if size:
                agg.req_sum += size
                agg.req_n += 1
            size = int(f.get("response_size_bytes") or 0)
            if size:
                agg.resp_sum += size
                agg.resp_n += 1
            dbq = f.get("db_query_count")
            if dbq:
                agg.db_sum += int(dbq)
                agg.db_n += 1
        if time.monotonic() - last_flush >= a.flush_ms / 1000:
            flush()
            last_flush = time.monotonic()
    flush()
    db.close()
    print(json.dumps({"events": events, "invalid": invalid, "flushes": flushes,
                      "rows_written": rows, "keys": len(state),
                      "seconds": round(time.monotonic() - t0, 3)}))


if __name__ == "__main__":
    main()
