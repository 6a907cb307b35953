#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets: tests/fuzz/corpus/event and corpus/config.

Event seeds use fuzz_event's framing: field name and value segments separated by the byte
0xff (name 0xff value 0xff name 0xff value ...). Valid seeds are genonaut entries built from
rows of route_analytics.tsv, as the middleware XADDs them (timestamp = the epoch as Python's
str(time.time()) prints it, sizes as integer text, '' for empty strings). Invalid seeds cover
each way an entry can be refused.

Usage: tests/fuzz/gen_corpus.py [path/to/route_analytics.tsv]
(default: /work/shared/genonaut/sample/route_analytics.tsv). Rewrites both directories.
"""
import csv
import datetime
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
EVENT_DIR = os.path.join(HERE, "corpus", "event")
CONFIG_DIR = os.path.join(HERE, "corpus", "config")
INC_DIR = "/tmp/rollupd-fuzz-inc"  # fuzz_config.c's INC_DIR
SEP = b"\xff"


def b(s):
    return s if isinstance(s, bytes) else s.encode("utf-8")


def frame(fields):
    """[(name, value)] -> name 0xff value 0xff ...; value None -> odd trailing name."""
    segs = []
    for name, value in fields:
        segs.append(b(name))
        if value is not None:
            segs.append(b(value))
    return SEP.join(segs)


def epoch_text(iso):
    """'2025-10-23T16:00:23.315774' (UTC) -> str(time.time()) spelling."""
    dt = datetime.datetime.fromisoformat(iso).replace(tzinfo=datetime.timezone.utc)
    delta = dt - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    micros = (delta.days * 86400 + delta.seconds) * 1000000 + delta.microseconds
    return repr(micros / 1e6)


def entry_from_row(row):
    status = int(row["status_code"])
    error_type = "server_error" if status >= 500 else "client_error" if status >= 400 else ""
    fields = [
        ("route", row["route"]),
        ("method", row["method"]),
        ("user_id", row["user_id"]),
        ("timestamp", epoch_text(row["timestamp"])),
        ("duration_ms", row["duration_ms"]),
        ("status_code", row["status_code"]),
        ("query_params", row["query_params"]),
        ("query_params_normalized", row["query_params_normalized"]),
        ("request_size_bytes", row["request_size_bytes"] or "0"),
        ("response_size_bytes", row["response_size_bytes"] or "0"),
        ("error_type", row["error_type"] or error_type),
        ("cache_status", row["cache_status"]),
    ]
    if row["db_query_count"]:
        fields.append(("db_query_count", row["db_query_count"]))
    return fields


def replace(fields, name, value):
    """Sets (or with value None removes) every field called name; appends if missing."""
    out, seen = [], False
    for n, v in fields:
        if n == name:
            seen = True
            if value is not None:
                out.append((n, value))
        else:
            out.append((n, v))
    if not seen and value is not None:
        out.append((name, value))
    return out


def pick_rows(tsv):
    """A varied handful: one row per (route shape, method, status, params) kind."""
    with open(tsv, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    picked, kinds = [], set()
    for row in rows:
        shape = "/".join("N" if p.isdigit() else p for p in row["route"].split("/"))
        kind = (shape, row["method"], row["status_code"], row["query_params"][:12])
        if kind not in kinds:
            kinds.add(kind)
            picked.append(row)
    return picked[:12]


def write(d, name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def event_corpus(tsv):
    rows = pick_rows(tsv)
    for i, row in enumerate(rows):
        write(EVENT_DIR, "valid-%02d-row%s" % (i, row["id"]), frame(entry_from_row(row)))
    base = entry_from_row(rows[0])
    uuid = "121e194b-4caa-4b81-ad4f-86ca3919d5b9"
    seeds = {
        # valid variants
        "valid-user-uuid": replace(base, "user_id", uuid),
        "valid-user-uuid-braced-upper": replace(base, "user_id", "{" + uuid.upper() + "}"),
        "valid-user-uuid-no-hyphens": replace(base, "user_id", uuid.replace("-", "")),
        "valid-user-not-uuid": replace(base, "user_id", "alice"),
        "valid-db-cache": replace(replace(base, "db_query_count", "3"), "cache_status", "hit"),
        "valid-minimal": [("route", "/api/v1/tags"), ("timestamp", "1761235223"),
                          ("duration_ms", "5"), ("status_code", "200")],
        "valid-ts-exponent": replace(base, "timestamp", "1.761235223315774e9"),
        "valid-ts-round-half-even": replace(base, "timestamp", "1761235223.3157745"),
        "valid-ts-hour-edge": replace(base, "timestamp", "1761235199.9999995"),
        "valid-ts-max": replace(base, "timestamp", "253402300799.999999"),
        "valid-extra-field": base + [("app_version", "0.4.2")],
        "valid-trailing-null-value": replace(base, "cache_status", None) + [("cache_status", None)],
        "valid-params-unordered": replace(
            replace(base, "query_params_normalized", '{"b": [1, 1.0, 1e0, -0.0], "a": "\\u00e9", "a": 2}'),
            "query_params", '{"page": "2", "b": 10E-1}'),
        "valid-method-unicode": replace(base, "method", "PÖST"),
        "valid-sizes-empty": replace(replace(base, "request_size_bytes", ""),
                                     "response_size_bytes", "+18"),
        "valid-query-params-not-json": replace(base, "query_params", "page=1&sort=name"),
        # long keys are valid: PostgreSQL, asked by the daemon, decides whether its index
        # holds them. A route or params over RU_EVENT_MAX_KEY_FIELD (1 MiB) is refused, but
        # a seed that size would set libFuzzer's max_len; tests/test_event.c covers it.
        "valid-route-long": replace(base, "route", "/api/v1/content" + "".join(
            "/related/%08x-0000-4000-a000-%012x" % (i * 2654435761 % 2**32, i) for i in range(53))),
        "valid-params-long": replace(base, "query_params_normalized",
                                     '{"sort": "name-asc", "tags": [' +
                                     ", ".join('"tag-%04d"' % i for i in range(1, 151)) + "]}"),
        # refused
        "invalid-no-route": replace(base, "route", None),
        "invalid-empty-route": replace(base, "route", ""),
        "invalid-route-null-value": replace(base, "route", None) + [("route", None)],
        "invalid-ts-now": replace(base, "timestamp", "now"),
        "invalid-ts-empty": replace(base, "timestamp", ""),
        "invalid-ts-junk": replace(base, "timestamp", "1761235223.31x"),
        "invalid-ts-exp-missing": replace(base, "timestamp", "17612352e"),
        "invalid-ts-negative": replace(base, "timestamp", "-1"),
        "invalid-ts-too-big": replace(base, "timestamp", "1e300"),
        "invalid-ts-missing": replace(base, "timestamp", None),
        "invalid-duration-ms": replace(base, "duration_ms", "12ms"),
        "invalid-duration-overflow": replace(base, "duration_ms", "99999999999999999999"),
        "invalid-status-letters": replace(base, "status_code", "2OO"),
        "invalid-status-range": replace(base, "status_code", "40000"),
        "invalid-size-junk": replace(base, "request_size_bytes", "1 2"),
        "invalid-db-count-range": replace(base, "db_query_count", "3000000000"),
        "invalid-params-array": replace(base, "query_params_normalized", '["sort", "name-asc"]'),
        "invalid-params-syntax": replace(base, "query_params_normalized", '{"sort": }'),
        "invalid-params-unterminated": replace(base, "query_params_normalized", '{"a": 1'),
        "invalid-params-nul-escape": replace(base, "query_params_normalized", '{"a": "\\u0000"}'),
        "invalid-params-lone-surrogate": replace(base, "query_params_normalized",
                                                 '{"a": "\\ud800"}'),
        "invalid-params-deep": replace(base, "query_params_normalized",
                                       '{"a":' * 65 + "1" + "}" * 65),
        "invalid-params-big-number": replace(base, "query_params_normalized", '{"a": 1e100000}'),
        "invalid-utf8-route": replace(base, "route", b"/api/v1/\xc3\x28"),
        "invalid-utf8-method": replace(base, "method", b"GE\xed\xa0\x80"),
        "invalid-utf8-cache": replace(base, "cache_status", b"hi\xe2\x82"),
        "invalid-utf8-params": replace(base, "query_params_normalized", b'{"a": "\xfe"}'),
        "invalid-nul-route": replace(base, "route", b"/api/v1/\x00tags"),
        "invalid-nul-user": replace(base, "user_id", b"alice\x00bob"),
        "invalid-method-too-long": replace(base, "method", "GETGETGETGET"),
        "invalid-repeated-route": base + [("route", "/api/v1/tags")],
        "invalid-repeated-status": base + [("status_code", "500")],
        "invalid-repeated-timestamp": base + [("timestamp", "1761235223.315774")],
        "invalid-huge-value": replace(base, "error_type", "e" * 65537),
    }
    for name, fields in seeds.items():
        write(EVENT_DIR, name, frame(fields))
    # Pure JSON texts (one segment): for ru_json_canon on the raw input.
    json_seeds = {
        "json-object": b'{"tag": ["dfbb88fc", "5381f5b4"], "page": "1", "sort": "name-asc", '
                       b'"page": "2", "n": [0, -0, 1.50, 25e-4, 1E+2, -1.5e-3], "x": null, '
                       b'"t": true, "f": false, "e": {}}',
        "json-escapes": b'["\\"\\\\\\/\\b\\f\\n\\r\\t", "\\u00e9\\u0001\\uD83D\\uDE00", '
                        b'"\\u005c\\u0022\\u002F\\u0008\\u001F\\u007f", '
                        b'"\xc3\xa9\xf0\x9f\x98\x80"]',
        "json-many-keys": b"{" + b",".join(b'"k%d": %d' % (i % 40, i) for i in range(60)) + b"}",
        "json-scalar": b" 1e-7 ",
    }
    for name, data in json_seeds.items():
        write(EVENT_DIR, name, data)


CONFIG_SEEDS = {
    "minimal": b"redis: { url = \"redis://localhost\"; };\n",
    "empty": b"",
    "comments-only": b"# nothing\n// here\n/* at all */\n",
    "all-sections": b"""redis: { url = "redis://user:pa%40ss@[::1]:6380/2"; stream = "s"; group = "g";
  consumer = "c1"; count = 100000; block_ms = 0; start = "$"; dead_letter_stream = "s:dl";
  claim_idle_ms = 5000000000; connect_timeout_ms = 100; };
postgres: { conninfo = "host=db user=u password='se cret' dbname=x"; hourly_table = "a.b_1$";
  raw_table = "raw_events"; statement_timeout_ms = 0; connect_timeout_s = 600;
  create_schema = false; };
flush: { interval_ms = 100; max_events = 1000; max_keys = 100; };
limits: { max_memory_mb = 16; };
status: { socket = "/tmp/r.sock"; };
metrics: { listen = "[::1]:9187"; };
log: { level = "DEBUG"; };
""",
    "unix-url": b'redis: { url = "unix:///run/redis/redis.sock?db=3&user=me&password=hunter22"; };\n',
    "int64-suffix": b"redis: { claim_idle_ms = 5000000000L; count = 0x10; };\n",
    "err-syntax": b"redis: { count = ; };\n",
    "err-unterminated": b'redis: { url = "redis://x;\n',
    "err-unknown-section": b'redsi: { url = "redis://x"; };\n',
    "err-unknown-key": b'redis: { colour = "blue"; };\n',
    "err-not-a-group": b"redis = 5;\n",
    "err-type-string": b'redis: { count = "10"; };\n',
    "err-type-float": b"redis: { count = 1.5; };\n",
    "err-type-bool": b"redis: { url = true; };\n",
    "err-type-list": b"redis: { stream = (\"a\", \"b\"); };\n",
    "err-type-create-schema": b"postgres: { create_schema = 1; };\n",
    "err-range-low": b"redis: { count = 0; };\n",
    "err-range-high": b"flush: { interval_ms = 3600001; };\n",
    "err-wide-literal": b"redis: {\n  count =\n    5000000000;\n};\n",
    "err-overflow-literal": b"redis: { claim_idle_ms = 99999999999999999999; };\n",
    "err-negative-wide": b"redis: { claim_idle_ms = -5000000000; };\n",
    "err-url-scheme": b'redis: { url = "http://localhost"; };\n',
    "err-url-port": b'redis: { url = "redis://localhost:99999"; };\n',
    "err-url-ipv6": b'redis: { url = "redis://::1:6379"; };\n',
    "err-url-pct": b'redis: { url = "redis://u:%zz@h"; };\n',
    "err-url-db": b'redis: { url = "redis://h/x"; };\n',
    "err-url-query": b'redis: { url = "redis://h?db=1"; };\n',
    "err-url-unix-relative": b'redis: { url = "unix:redis.sock"; };\n',
    "err-url-unix-param": b'redis: { url = "unix:/r.sock?timeout=5"; };\n',
    "err-empty-stream": b'redis: { stream = ""; };\n',
    "err-start": b'redis: { start = "1-0"; };\n',
    "err-dead-is-stream": b'redis: { stream = "s"; dead_letter_stream = "s"; };\n',
    "err-table": b'postgres: { hourly_table = "1bad-name"; };\n',
    "err-table-long": b'postgres: { hourly_table = "' + b"t" * 64 + b'"; };\n',
    "err-raw-is-hourly": b'postgres: { hourly_table = "h"; raw_table = "h"; };\n',
    "err-socket-long": b'status: { socket = "/' + b"s" * 110 + b'"; };\n',
    "err-socket-empty": b'status: { socket = ""; };\n',
    "err-listen": b'metrics: { listen = "example.com:80"; };\n',
    "err-listen-port": b'metrics: { listen = "127.0.0.1:0"; };\n',
    "err-level": b'log: { level = "verbose"; };\n',
    "include-ok": b'@include "' + INC_DIR.encode() + b'/redis.conf"\n'
                  b'@include "' + INC_DIR.encode() + b'/postgres.conf"\n'
                  b'log: { level = "warning"; };\n',
    "include-nested": b'@include "' + INC_DIR.encode() + b'/nested.conf"\n',
    "include-wide": b'@include "' + INC_DIR.encode() + b'/wide.conf"\n',
    "include-syntax": b'@include "' + INC_DIR.encode() + b'/syntax.conf"\n',
    "include-unknown": b'@include "' + INC_DIR.encode() + b'/unknown.conf"\n',
    "include-missing": b'@include "' + INC_DIR.encode() + b'/missing.conf"\n',
    "include-self": b'@include "' + INC_DIR.encode() + b'/self.conf"\n',
    # Raw strings for the URL parser and ru_redact
    "url-tcp": b"redis://user:hunter22@cache.example.com:6380/2",
    "url-bare-password": b"redis://hunter22@localhost",
    "url-ipv6": b"REDIS://:p%40ssw0rd@[fe80::1%25eth0]:6379/0",
    "url-unix": b"unix:/run/redis.sock?db=1&user=me&password=hunter22",
    "url-unix-authority": b"unix:///run/redis.sock?password=abc&&db=2",
    "conninfo-kv": b"host=db port=5432 user=rollupd password='s3 cr\\'et' dbname=genonaut",
    "conninfo-uri": b"postgresql://rollupd:s3cret@db:5432/genonaut?sslmode=require&sslpassword=k3y",
    "url-unix-user-at": b"unix:///run/redis.sock?user=ops@corp&password=hunter22",
    "conninfo-uri-user-at": b"postgresql://pg.example.com/genonaut?user=rollupd@pg&password=S3cret",
    # found by a 9-minute run: libpq's user "h?sslcret", then sslpassword in the query
    "conninfo-uri-userinfo-query": b"postgresql://h?sslcret@h?sslpassword=k3y",
}


def config_corpus():
    shutil.copy(os.path.join(HERE, "..", "..", "etc", "rollupd.conf"),
                os.path.join(CONFIG_DIR, "rollupd.conf"))
    for name, data in CONFIG_SEEDS.items():
        write(CONFIG_DIR, name, data)


def main():
    tsv = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/genonaut/sample/route_analytics.tsv"
    for d in (EVENT_DIR, CONFIG_DIR):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    event_corpus(tsv)
    config_corpus()
    for d in (EVENT_DIR, CONFIG_DIR):
        files = os.listdir(d)
        total = sum(os.path.getsize(os.path.join(d, f)) for f in files)
        print("%s: %d files, %d bytes" % (os.path.relpath(d, HERE), len(files), total))


if __name__ == "__main__":
    main()
