#!/usr/bin/python3
"""bench/harness.py: the measuring side of bench/run (which builds, starts the servers and
calls this). Standard library only.

  harness.py ceiling|rollupd|python ...  run one consumer on a pre-filled stream, write JSON
  harness.py flush ...                   the flush benchmark (rollupd + bare COPY+upsert)
  harness.py fresh ...                   the freshness benchmark (20k events/s)
  harness.py report DIR                  the tables, ratios and goals, as Markdown

What one consumer run measures, from just before the consumer starts until every event
is committed in PostgreSQL (the consumer exited, or for rollupd: status shows
events_flushed + events_invalid == N and pending_events == 0):
  - seconds and events/s;
  - CPU seconds (utime + stime) of the consumer: /proc/<pid>/stat just before rollupd is
    stopped; for programs that exit by themselves, the rusage wait4() returns;
  - CPU of redis-server (/proc/<pid>/stat, all threads) and of PostgreSQL (postmaster with
    its reaped children plus the live children), before/after;
  - the consumer's peak RSS: VmHWM from /proc/<pid>/status (ru_maxrss for the others);
  - "other load": CPU the whole machine spent (from /proc/stat) beyond the consumer,
    redis-server and PostgreSQL, in cores: other processes share this machine.
"""
import argparse
import glob
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time

CLK = os.sysconf("SC_CLK_TCK")


# rollupd's redis.read_bytes default, written into the main table's configuration; the
# ceiling reader sizes its reads by the same rule (--read-bytes)
READ_BYTES = 524288
# BENCH_ROLLUPD_READ_BYTES: rollupd's alone, for an experiment on the size of reads (the
# tables then say so); the ceiling reader keeps READ_BYTES
ROLLUPD_READ_BYTES = int(os.environ.get("BENCH_ROLLUPD_READ_BYTES", READ_BYTES))


# ---------------------------------------------------------------- /proc

def proc_fields(pid, tid=None):
    """Fields of /proc/PID/stat (or of its thread TID) after the command name: [0] = state
    (field 3)."""
    with open(f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat") as f:
        s = f.read()
    return s[s.rindex(")") + 2:].split()


def proc_cpu(pid, children=False):
    f = proc_fields(pid)
    t = int(f[11]) + int(f[12])
    if children:
        t += int(f[13]) + int(f[14])
    return t / CLK


def proc_cpu_split(pid):
    """utime and stime of a live process by thread: the main thread (rollupd's reader:
    the event loop) and the others together (rollupd's writer thread), in seconds."""
    out = {"reader_user_s": 0.0, "reader_sys_s": 0.0, "writer_user_s": 0.0,
           "writer_sys_s": 0.0}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = proc_fields(pid, tid)
        except OSError:
            continue
        who = "reader" if int(tid) == pid else "writer"
        out[f"{who}_user_s"] += int(fields[11]) / CLK
        out[f"{who}_sys_s"] += int(fields[12]) / CLK
    return {k: round(v, 3) for k, v in out.items()}


def vmhwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def pg_cpu(postmaster):
    """The postmaster, its reaped children (cutime/cstime) and its live children."""
    total = proc_cpu(postmaster, children=True)
    for d in glob.glob("/proc/[0-9]*"):
        try:
            f = proc_fields(d[6:])
        except (OSError, ValueError):
            continue
        if f[1] == str(postmaster):
            total += (int(f[11]) + int(f[12])) / CLK
    return total


def run_queue_wait(pid):
    """Seconds the task (a process' main thread) has spent runnable but waiting for a
    core (/proc/PID/schedstat, second field, in ns); None where the kernel does not say
    (built without schedstats)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def machine_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / CLK


def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                env[k] = v
    return env


class Servers:
    def __init__(self, env_path):
        self.env = read_env(env_path)
        self.dir = os.path.dirname(os.path.abspath(env_path))
        with open(self.env["RU_REDIS_PIDFILE"]) as f:
            self.redis_pid = int(f.readline())
        with open(os.path.join(self.env["RU_PG_DATA"], "postmaster.pid")) as f:
            self.pg_pid = int(f.readline())
        self.redis_port = int(self.env["RU_REDIS_PORT"])
        self.pg_port = int(self.env["RU_PG_PORT"])

    def dsn(self, db):
        return f"host=127.0.0.1 port={self.pg_port} user=postgres dbname={db}"

    def psql(self, db, sql):
        """Runs one SQL command through psql as postgres; fails the run if it fails."""
        subprocess.run(["/usr/lib/postgresql/15/bin/psql", "-X", "-q", "-h", "127.0.0.1",
                        "-p", str(self.pg_port), "-U", "postgres", "-d", db, "-c", sql],
                       check=True)

    def snapshot(self):
        return {"t": time.monotonic(), "redis": proc_cpu(self.redis_pid),
                "redis_wait": run_queue_wait(self.redis_pid), "pg": pg_cpu(self.pg_pid),
                "busy": machine_busy(), "cmds": self.commandstats()}

    def commandstats(self):
        """{command: (calls, usec)} from redis-server's INFO commandstats, None if unknown.
        usec is the time spent running the command, not reading it or writing its reply.
        Events over the difference of xreadgroup's calls is the entries per read, the same
        for rollupd and its ceiling when both do the same reads."""
        try:
            with socket.create_connection(("127.0.0.1", self.redis_port), timeout=5) as c:
                c.sendall(b"INFO commandstats\r\n")
                data, need = b"", None  # a bulk string: $<length>\r\n<bytes>\r\n
                while need is None or len(data) < need:
                    b = c.recv(65536)
                    if not b:
                        return None
                    data += b
                    if need is None and b"\r\n" in data:
                        head = data.index(b"\r\n")
                        need = head + 2 + int(data[1:head]) + 2
            return {m.group(1).decode(): (int(m.group(2)), int(m.group(3))) for m in
                    re.finditer(rb"cmdstat_([a-z|]+):calls=(\d+),usec=(\d+)", data)}
        except (OSError, ValueError):
            return None


def command_split(c0, c1):
    """redis-server's time in commands between two commandstats: {"xreadgroup": s,
    "xack": s, "other": s} (INFO's own call counted in other, a few microseconds)."""
    out = {"xreadgroup": 0.0, "xack": 0.0, "other": 0.0}
    for cmd, (_, usec) in c1.items():
        d = (usec - c0.get(cmd, (0, 0))[1]) / 1e6
        out[cmd if cmd in out else "other"] += d
    return {k: round(v, 4) for k, v in out.items()}


def measured(name, kind, events, s0, s1, consumer_cpu, hwm_kb, extra):
    secs = s1["t"] - s0["t"]
    redis = s1["redis"] - s0["redis"]
    pg = s1["pg"] - s0["pg"]
    busy = s1["busy"] - s0["busy"]
    res = {
        "name": name, "kind": kind, "events": events, "seconds": round(secs, 3),
        "events_per_s": round(events / secs, 1) if secs > 0 else 0,
        "consumer_cpu_s": round(consumer_cpu, 3), "redis_cpu_s": round(redis, 3),
        "pg_cpu_s": round(pg, 3),
    }
    if s0["redis_wait"] is not None and s1["redis_wait"] is not None:
        res["redis_runq_s"] = round(s1["redis_wait"] - s0["redis_wait"], 3)
    if s0.get("cmds") is not None and s1.get("cmds") is not None:
        res["xreadgroup_calls"] = s1["cmds"].get("xreadgroup", (0, 0))[0] - \
            s0["cmds"].get("xreadgroup", (0, 0))[0]
        res["redis_cmd_s"] = command_split(s0["cmds"], s1["cmds"])
    res["other_cores"] = round(max(0.0, busy - consumer_cpu - redis - pg) / secs, 2) \
        if secs > 0 else 0
    res["vmhwm_kb"] = hwm_kb
    res.update(extra)
    return res


def with_mix(a, res):
    res["mix"] = a.mix
    return res


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    print(json.dumps(obj), flush=True)


# ---------------------------------------------------------------- status socket

def ask(sock_path, cmd, timeout=5.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        s.sendall(cmd.encode() + b"\n")
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    finally:
        s.close()
    return json.loads(b"".join(chunks))


def status(sock_path):
    try:
        return ask(sock_path, "status")
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- rollupd

def rollupd_conf(path, srv, stream, group, db, sock, interval_ms, backlog_entries, extra_flush="",
                 extra_pg="", extra_redis=""):
    """Every benchmark states the flush triggers it relies on: interval_ms and
    backlog_entries (the "backlog drained" flush; 0 = off) are always written."""
    with open(path, "w") as f:
        f.write(f"""redis: {{ url = "redis://127.0.0.1:{srv.redis_port}/0"; stream = "{stream}";
  group = "{group}"; consumer = "bench";{extra_redis} }};
postgres: {{ conninfo = "{srv.dsn(db)}";{extra_pg} }};
flush: {{ interval_ms = {interval_ms}; backlog_entries = {backlog_entries};{extra_flush} }};
status: {{ socket = "{sock}"; }};
log: {{ level = "info"; }};
""")


class Rollupd:
    """A rollupd child. Its pid file goes where scripts/testenv stop looks (DIR/pids), so
    the servers' shutdown stops it too if this harness dies first."""

    def __init__(self, binary, conf, log, srv):
        self.log = open(log, "w")
        self.p = subprocess.Popen([binary, "-c", conf], stdout=self.log, stderr=self.log,
                                  stdin=subprocess.DEVNULL)
        self.pidfile = os.path.join(srv.dir, "pids", f"bench-{self.p.pid}.pid")
        try:
            with open(self.pidfile, "w") as f:
                f.write(f"{self.p.pid}\n")
        except OSError:
            self.pidfile = None

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.p.poll() is None:
            # a final flush normally takes a second; one stuck retrying a batch would wait
            # for PostgreSQL, so a second SIGTERM (exit at once) follows, then SIGKILL
            for sig, wait in ((signal.SIGTERM, 20), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                self.p.send_signal(sig)
                try:
                    self.p.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.log.close()
        if self.pidfile:
            try:
                os.unlink(self.pidfile)
            except OSError:
                pass


def wait_status(sock, proc, pred, timeout, what, poll=0.05):
    """Polls the status socket until pred(status) holds; returns that status."""
    deadline = time.monotonic() + timeout
    st = None
    while time.monotonic() < deadline:
        if not proc.alive():
            raise SystemExit(f"harness: rollupd exited while waiting for {what}")
        st = status(sock)
        if st is not None and pred(st):
            return st
        time.sleep(poll)
    raise SystemExit(f"harness: timed out waiting for {what}; last status: {st}")


def cmd_rollupd(a):
    srv = Servers(a.env)
    logdir = os.path.dirname(os.path.abspath(a.out))
    conf = os.path.join(logdir, f"{a.name}.conf")
    sock = os.path.join(a.rundir, f"{a.name}.sock")
    # BENCH_ROLLUPD_FLUSH: more flush settings for the main table, e.g. " max_events = 10000;"
    rollupd_conf(conf, srv, a.stream, a.group, a.db, sock, a.interval_ms, a.backlog_entries,
                 os.environ.get("BENCH_ROLLUPD_FLUSH", ""),
                 extra_redis=f" read_bytes = {ROLLUPD_READ_BYTES};" +
                 (" lone_consumer = true;" if a.lone else ""))
    s0 = srv.snapshot()
    d = Rollupd(a.bin, conf, os.path.join(logdir, f"{a.name}.log"), srv)
    # where the time goes: until the first event is read (start-up: PostgreSQL set-up,
    # replay), and from the last event read to its COMMIT (the tail: the last flush)
    marks = {}

    def done(s):
        now = time.monotonic()
        seen = s["events_consumed"] + s["events_invalid"]
        if seen > 0:
            marks.setdefault("first_read", now)
        if seen >= a.events:
            marks.setdefault("all_read", now)
        return s["events_flushed"] + s["events_invalid"] >= a.events and \
            s["pending_events"] == 0
    try:
        st = wait_status(sock, d, done, a.timeout, f"{a.events} events committed", poll=0.02)
        t_end = time.monotonic()
        s1 = srv.snapshot()
        cpu = proc_cpu(d.p.pid)
        split = proc_cpu_split(d.p.pid)
        hwm = vmhwm_kb(d.p.pid)
    finally:
        d.stop()
    write_json(a.out, with_mix(a, measured(a.name, "lone" if a.lone else "rollupd", a.events, s0,
                                           s1, cpu, hwm, {**split,
        "flushes": st["flushes"], "rows_written": st["rows_written"],
        "last_flush_ms": st["last_flush_ms"], "events_flushed": st["events_flushed"],
        "events_invalid": st["events_invalid"],
        "startup_s": round(marks.get("first_read", t_end) - s0["t"], 3),
        "tail_s": round(t_end - marks.get("all_read", t_end), 3)})))


# ---------------------------------------------------------------- programs that exit

def run_exiting(a, kind, argv):
    srv = Servers(a.env)
    logdir = os.path.dirname(os.path.abspath(a.out))
    out_path = os.path.join(logdir, f"{a.name}.out")
    err_path = os.path.join(logdir, f"{a.name}.err")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        s0 = srv.snapshot()
        p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, wstatus, ru = os.wait4(p.pid, 0)
        s1 = srv.snapshot()
        p.returncode = os.waitstatus_to_exitcode(wstatus)
    if p.returncode != 0:
        sys.stderr.write(open(err_path).read())
        raise SystemExit(f"harness: {a.name} failed (exit {p.returncode})")
    res = json.loads(open(out_path).read().strip().splitlines()[-1])
    extra = {k: res[k] for k in ("flushes", "rows_written", "raw_rows", "hourly_rows",
                                 "skipped", "keys", "work", "invalid") if k in res}
    extra.update({"reader_user_s": round(ru.ru_utime, 3), "reader_sys_s": round(ru.ru_stime, 3)})
    write_json(a.out, with_mix(a, measured(a.name, kind, res["events"], s0, s1,
                                           ru.ru_utime + ru.ru_stime, ru.ru_maxrss, extra)))


def cmd_ceiling(a):
    srv = Servers(a.env)
    kind = "ceiling-noack" if a.noack else "ceiling-hold" if a.hold else "ceiling"
    if a.work != "read":
        kind += "-" + a.work
    run_exiting(a, kind + ("-again" if a.again else ""),
                [a.bin, "-p", str(srv.redis_port), "-s", a.stream, "-g", a.group, "-n",
                 str(a.events), "--count", "1000", "--read-bytes", str(READ_BYTES)] +
                (["--noack"] if a.noack else []) + (["--hold", str(a.hold)] if a.hold else []) +
                ["--work", a.work])


def cmd_python(a):
    srv = Servers(a.env)
    run_exiting(a, a.kind, ["/usr/bin/python3", a.script, "--redis-port", str(srv.redis_port),
                            "--stream", a.stream, "--group", a.group, "--dsn", srv.dsn(a.db),
                            "-n", str(a.events)] + (["--hiredis"] if a.hiredis else []))


# ---------------------------------------------------------------- flush benchmark

def run_tool(argv):
    out = subprocess.run(argv, check=True, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


def pow2_at_least(n, start):
    c = start
    while c < n:
        c *= 2
    return c


class FlushFailed(Exception):
    pass


def state_per_key(c):
    """Bytes of cached row state per key added by a "new" flush (None before the cache)."""
    if "cache_delta_bytes" not in c:
        return None
    return c["cache_delta_bytes"] / c["rows"]


def state_excl(c):
    """The same beyond the per-value parts: 16 B per histogram entry (value, count) and per
    user-set slot (a 128-bit id; capacity the next power of two keeping the load <= 3/4)."""
    per = state_per_key(c)
    if per is None:
        return None
    users = c["row_users"] / c["rows"]
    slots = 0
    if users > 0:
        slots = 8
        while slots * 3 < users * 4:
            slots *= 2
    return per - 16 * c["row_durations"] / c["rows"] - 16 * slots


def flush_and_wait(sock, proc, timeout):
    """Sends "flush" and waits for the answer; raises FlushFailed as soon as status shows a
    failed attempt (rollupd would retry the same batch forever) or after timeout."""
    base = (status(sock) or {}).get("flush_failures", 0)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    s.sendall(b"flush\n")
    s.settimeout(0.25)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                b = s.recv(65536)
                if not b:
                    return json.loads(b"".join(chunks))
                chunks.append(b)
                continue
            except socket.timeout:
                pass
            st = status(sock) or {}
            if st.get("flush_failures", 0) > base:
                raise FlushFailed(f"flush attempt failed: {st.get('postgres_last_error')}")
            if time.monotonic() > deadline or not proc.alive():
                raise FlushFailed(f"no answer to flush within {timeout:.0f} s")
    finally:
        s.close()


AUTO_EXPLAIN = ("session_preload_libraries = 'auto_explain'", "auto_explain.log_min_duration = 0",
                "auto_explain.log_analyze = on", "auto_explain.log_timing = off",
                "auto_explain.log_format = json")


def explain_segment(pg_log, offset):
    """(duration ms, statement label, actual rows) of each auto_explain entry after offset."""
    import re
    with open(pg_log, errors="replace") as f:
        f.seek(offset)
        text = f.read()
    out = []
    entries = re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", text)
    for e in entries:
        m = re.search(r"duration: ([0-9.]+) ms  plan:\n(.*)", e, re.S)
        if not m:
            continue
        try:
            doc = json.loads(m.group(2))
            plan = doc["Plan"]
        except (ValueError, KeyError):
            continue
        label = plan["Node Type"]
        text = doc.get("Query Text", "")
        for needle, name in (("FOR UPDATE", "Lock the touched rows (key lookups)"),
                             ("WITH ins AS", "Insert new hourly rows"),
                             ("WITH ORDINALITY", "Read the rows' newest state"),
                             ("c.seq > q.after", "Read back state versions")):
            if needle in text:
                label = name
        if label == "ModifyTable":
            label = f"{plan.get('Operation')} {plan.get('Relation Name')}"
            if plan.get("Relation Name") == "route_analytics_hourly" and \
                    plan.get("Operation") == "Update":
                label += " (rows that existed)"
        elif label == "Aggregate":
            label = "SELECT ... FOR UPDATE (row locks)"
        rows = plan.get("Actual Rows")
        for sub in plan.get("Plans", []):
            rows = sub.get("Actual Rows", rows)
            break
        out.append((float(m.group(1)), label, rows))
    return out


def settle_writes(srv, db):
    """Ends any checkpoint in progress and writes dirty pages out before a timed flush."""
    srv.psql(db, "CHECKPOINT")
    os.sync()


def cmd_flush(a):
    """Each case XADDs ROWS x EVENTS events (keys of its own), waits until rollupd holds
    them all, then asks for one flush (the status command answers after COMMIT). The same
    keys are written again for the "updated" flush. rollupd runs with a one-hour flush
    interval and limits high enough that only these flushes happen; everything else is
    rollupd's default (statement_timeout_ms = 60000). Each case is followed by its bare
    upsert. With --reps K all of it runs K times, each time in a new rollupd and with keys
    of its own (new rows again): rollupd and the yardstick interleaved, as the main
    table's runs are. Each timed flush, and each timed transaction of the bare upsert
    (its --settle), starts after a CHECKPOINT and a sync (not timed), so that neither
    side shares the machine with a checkpoint the earlier cases' WAL started (about one
    every 30 s) or pays to write out the dirty pages earlier work left in shared
    buffers."""
    srv = Servers(a.env)
    bindir = a.bindir
    stream = "bench:flush"
    logdir = os.path.dirname(os.path.abspath(a.out))
    conf = os.path.join(logdir, f"rollupd-{a.name}.conf")
    sock = os.path.join(a.rundir, f"{a.name}.sock")
    extra = " max_events = 100000000; max_keys = 10000000;"
    extra_pg = "" if a.statement_timeout_ms is None else \
        f" statement_timeout_ms = {a.statement_timeout_ms};"
    # only the explicit flush command may flush: no timer, no size limit, and no
    # "backlog drained" flush (keygen writes faster than rollupd reads)
    rollupd_conf(conf, srv, stream, "rollupd", a.db, sock, 3600000, 0, extra, extra_pg)
    hour = (int(time.time()) // 3600 - 1) * 3600
    if a.cases == "profile":
        cases = [("10k x 1", 10000, 1, "real", 200), ("10k x 10", 10000, 10, "real", 200),
                 ("10k x 100", 10000, 100, "real", 200)]
    else:
        # the slowest case last: a flush that fails is retried forever and ends the run
        cases = [("1k x 1", 1000, 1, "real", 200), ("10k x 1", 10000, 1, "real", 200),
                 ("100k x 1", 100000, 1, "real", 200), ("10k x 10", 10000, 10, "real", 200),
                 ("10k x 100", 10000, 100, "real", 200)]
    if a.diag:
        cases.insert(-1, ("10k x 100, one duration, anonymous", 10000, 100, "const", 0))
    pg_log = os.path.join(srv.dir, "pg.log")
    if a.explain:
        for setting in AUTO_EXPLAIN:
            srv.psql(a.db, f"ALTER DATABASE {a.db} SET {setting}")
    # each repetition is the whole benchmark once, in a rollupd of its own: one process
    # for all would carry every earlier repetition's row states in its cache, and that
    # cache would reach the memory bound's flush (limits.max_memory_mb) before the last
    results = []
    failed = False
    for rep in range(1, a.reps + 1):
        if failed:
            break
        suffix = f"-{rep}" if a.reps > 1 else ""
        d = Rollupd(os.path.join(bindir, "rollupd"), conf,
                    os.path.join(logdir, f"rollupd-{a.name}{suffix}.log"), srv)
        consumed = 0
        try:
            wait_status(sock, d, lambda s: s["redis_connected"] and s["postgres_connected"], 60,
                        "rollupd ready")
            for ci, (label, rows, per_row, durations, users) in enumerate(cases):
                tag = f"c{ci}r{rep}"
                for phase in ("new", "updated"):
                    gen = run_tool([os.path.join(bindir, "rollupd-bench-keygen"), "-p",
                                    str(srv.redis_port), "-s", stream, "--rows", str(rows),
                                    "--events", str(per_row), "--tag", tag, "--hour", str(hour),
                                    "--durations", durations, "--users", str(users)])
                    consumed += gen["events"]
                    st = wait_status(sock, d, lambda s: s["events_consumed"] >= consumed
                                     and s["pending_keys"] == rows, 600, f"case {label} read")
                    r = {"case": label, "phase": phase, "rep": rep, "rows": rows,
                         "events_per_row": per_row,
                         "events": gen["events"], "memory_bytes": st["memory_bytes"],
                         "pending_keys": st["pending_keys"], "hist_slots": gen["hist_slots"],
                         "user_slots": gen["user_slots"], "row_durations": gen["row_durations"],
                         "row_users": gen["row_users"], "distinct_users": gen["distinct_users"]}
                    # memory per key beyond the per-value structures: stream ids (16 B each,
                    # capacity doubling from 1024), histogram slots (8 B), user-set slots
                    # (4 B) and the user dictionary (text + index arrays + hash slots)
                    ids = pow2_at_least(gen["events"], 1024) * 16
                    du = gen["distinct_users"]
                    udict = (du * 37 + pow2_at_least(du, 256) * 12 if du else 0) + \
                        pow2_at_least(2 * du + 1, 1024) * 16
                    r["ids_bytes"] = ids
                    # the batch being filled (memory_bytes also counts the writer's cache of
                    # row states, reported on its own below, and the id array kept from the
                    # last flush for the next batch)
                    batch = st["memory_bytes"] - st.get("state_cache_bytes", 0) \
                        - st.get("state_scratch_bytes", 0) - st.get("ids_kept_bytes", 0)
                    r["batch_bytes"] = batch
                    r["per_key_bytes"] = round(batch / rows, 1)
                    r["per_key_bytes_excl"] = round((batch - ids - 8 * gen["hist_slots"]
                                                     - 4 * gen["user_slots"] - udict) / rows, 1)
                    cache0 = st.get("state_cache_bytes", 0)
                    chunk0 = st.get("state_chunk_bytes", 0)
                    settle_writes(srv, a.db)
                    log_off = os.path.getsize(pg_log) if a.explain else 0
                    s0 = srv.snapshot()
                    t0 = time.monotonic()
                    try:
                        fl = flush_and_wait(sock, d, a.flush_timeout)
                    except FlushFailed as e:
                        # the batch stays in rollupd, retried forever: no later case can run
                        r["error"] = str(e)
                        r["failed_after_s"] = round(time.monotonic() - t0, 1)
                        results.append(r)
                        print(json.dumps(r), flush=True)
                        raise
                    s1 = srv.snapshot()
                    # the writer moves the committed states into its cache right after
                    # answering: wait for that before reading the cache's size
                    st1 = wait_status(sock, d, lambda s: s.get("state_cache_flushes", 0)
                                      >= s["flushes"], 60, "states cached")
                    # row states the writer now caches for this case's rows (new phase: all
                    # new), and the histogram/user chunk bytes this flush wrote
                    r["cache_delta_bytes"] = st1.get("state_cache_bytes", 0) - cache0
                    r["cache_rows"] = st1.get("state_cache_rows", 0)
                    r["chunk_bytes"] = st1.get("state_chunk_bytes", 0) - chunk0
                    r["cache_ms"] = st1.get("state_cache_last_ms")
                    r["flush_ms"] = fl["ms"]
                    r["flush_wall_ms"] = round((time.monotonic() - t0) * 1000, 1)
                    r["flushed_rows"] = fl["rows"]
                    r["pg_cpu_ms"] = round((s1["pg"] - s0["pg"]) * 1000, 0)
                    r["other_cores"] = round(max(0.0, (s1["busy"] - s0["busy"]) - (s1["pg"] - s0["pg"])
                                                 - (s1["redis"] - s0["redis"])) / (s1["t"] - s0["t"]),
                                             2)
                    if a.explain:
                        time.sleep(0.2)
                        r["statements"] = explain_segment(pg_log, log_off)
                    results.append(r)
                    print(json.dumps(r), flush=True)
                if not a.no_bare:
                    # the yardstick, measured right after, so both see the same machine load
                    b = run_tool([os.path.join(bindir, "rollupd-bench-upsert"), "-d",
                                  srv.dsn(a.db), "--rows", str(rows), "--reps", "1", "--tag",
                                  f"b{ci}r{rep}", "--hour", str(hour), "--settle"])
                    results[-2]["bare_ms"] = b["new_ms"][0]
                    results[-1]["bare_ms"] = b["updated_ms"][0]
                    print(json.dumps(b), flush=True)
        except FlushFailed:
            failed = True
        finally:
            d.stop()
    if a.explain:
        srv.psql("postgres", f"ALTER DATABASE {a.db} RESET ALL")
    write_json(a.out, {"cases": results})


# ---------------------------------------------------------------- freshness

def stop_load_and_rollupd(lg, d):
    """Stops the loadgen child (when started and still running), then rollupd."""
    if lg is not None and lg.poll() is None:
        lg.terminate()
        lg.wait()
    d.stop()


def cmd_fresh(a):
    srv = Servers(a.env)
    stream = f"bench:{a.name}"
    logdir = os.path.dirname(os.path.abspath(a.out))
    conf = os.path.join(logdir, f"rollupd-{a.name}.conf")
    sock = os.path.join(a.rundir, f"{a.name}.sock")
    rollupd_conf(conf, srv, stream, "rollupd", a.db, sock, a.interval_ms, a.backlog_entries,
                 extra_redis=" lone_consumer = true;" if a.lone else "")
    d = Rollupd(os.path.join(a.bindir, "rollupd"), conf,
                os.path.join(logdir, f"rollupd-{a.name}.log"), srv)
    lg = None
    try:
        wait_status(sock, d, lambda s: s["redis_connected"] and s["postgres_connected"], 60,
                    "rollupd ready")
        total = int(a.rate * (a.warmup + a.seconds + 20))
        lg_log = open(os.path.join(logdir, f"{a.name}-loadgen.log"), "w")
        lg = subprocess.Popen([os.path.join(a.bindir, "rollupd-loadgen"), "-p",
                               str(srv.redis_port), "-s", stream, "-n", str(total), "--rate",
                               str(a.rate), "--now-ts", "--seed", "7"], stdout=lg_log,
                              stderr=lg_log, stdin=subprocess.DEVNULL)
        time.sleep(a.warmup)
        st0 = status(sock)
        s0 = srv.snapshot()
        c0 = proc_cpu(d.p.pid)
        res = run_tool([os.path.join(a.bindir, "rollupd-bench-fresh"), "-p",
                        str(srv.redis_port), "-s", stream, "-d", srv.dsn(a.db), "--seconds",
                        str(a.seconds), "--every-ms", "100", "--poll-ms", "10", "--out",
                        os.path.join(logdir, f"{a.name}-latencies.txt")])
        s1 = srv.snapshot()
        c1 = proc_cpu(d.p.pid)
        st1 = status(sock)
    finally:
        stop_load_and_rollupd(lg, d)
    secs = s1["t"] - s0["t"]
    ev = st1["events_consumed"] - st0["events_consumed"]
    res.update({"name": a.name, "lone": a.lone, "rate_target": a.rate,
                "interval_ms": a.interval_ms,
                "events_per_s_consumed": round(ev / secs, 1),
                "rollupd_cpu_cores": round((c1 - c0) / secs, 3),
                "redis_cpu_cores": round((s1["redis"] - s0["redis"]) / secs, 3),
                "pg_cpu_cores": round((s1["pg"] - s0["pg"]) / secs, 3),
                "flushes": st1["flushes"] - st0["flushes"],
                "last_flush_ms": st1["last_flush_ms"], "group_lag": st1.get("group_lag")})
    write_json(a.out, res)


# ---------------------------------------------------------------- soak

def vmrss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def lsq_slope(xs, ys):
    """Least-squares slope of ys over xs (None with fewer than two points)."""
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx


def beyond_held(warm, xs):
    """RSS less what rollupd holds (status memory_bytes: batches, the row-state cache of
    the hour's rows, which grows as they gather distinct durations and users): the part
    a leak would show in."""
    extra = [r["rss_kib"] / 1024 - r["memory_bytes"] / 1048576 for r in warm]
    sl = lsq_slope(xs, extra)
    span = (xs[-1] - xs[0]) if len(xs) > 1 else 0
    return {"beyond_held_mib_mean": statistics.mean(extra) if extra else None,
            "beyond_held_slope_mib_per_min": sl,
            "beyond_held_fit_change_mib": sl * span if sl is not None else None}


# The soak's flush.state_idle_s, written into its configuration: the past hour's row states
# are given back this long after the hour's last flush of them, within one idle search (30 s).
# With a faster event clock (--hour-seconds) it is scaled with the hour.
SOAK_STATE_IDLE_S = 900


def soak_hours(warm, every, state_idle_s=SOAK_STATE_IDLE_S, hour_s=3600):
    """The samples after warm-up by clock hour (UTC), and each hour against the hour before
    at the same minutes past the hour. What rollupd holds follows the hour: the writer
    keeps the complete state of the current hour's rows, which gather distinct durations
    and users until the hour changes, so a line fitted across a change of hour measures
    that saw-tooth. Matched by the minute past the hour, a leak or a creeping cost shows
    as a difference that the hour's own growth cannot make. Needs the samples' wall-clock
    time (unix_s). Until the past hour's states are given back (state_idle_s and one idle
    search after the hour), an hour also holds the hour before's: an hour that follows the
    run's first, partial hour holds fewer of them than the next does. From own_from_min on,
    each hour holds its own states only, so the pairs are also compared from there.
    With a faster event clock (hour_s wall seconds to the event hour), the samples are
    placed by their event time (event_s) and minutes are the event clock's."""
    fast = 3600 / hour_s
    own_from = (state_idle_s + 60) * fast / 60
    if not warm or "unix_s" not in warm[0]:
        return None

    def clock(r):
        return r.get("event_s", r["unix_s"])

    slot = every * fast  # seconds between samples on the clock the hours follow
    by = {}
    for r in warm:
        by.setdefault(int(clock(r) // 3600), []).append(r)

    def held(r):
        return r["memory_bytes"] / 1048576

    def rss(r):
        return r["rss_kib"] / 1024

    def slack(r):
        return rss(r) - held(r)

    hours = []
    for h in sorted(by):
        rs = by[h]
        mins = [(clock(r) % 3600) / 60 for r in rs]
        ev = statistics.mean(r["events_per_s"] for r in rs)
        cpu = statistics.mean(r["cpu_cores"] for r in rs)
        hours.append({"hour": h, "samples": len(rs), "from_min": min(mins),
                      "to_min": max(mins), "rss_mean": statistics.mean(map(rss, rs)),
                      "rss_max": max(map(rss, rs)), "held_mean": statistics.mean(map(held, rs)),
                      "held_max": max(map(held, rs)),
                      "slack_mean": statistics.mean(map(slack, rs)),
                      "slack_max": max(map(slack, rs)), "cpu_mean": cpu,
                      "redis_mean": statistics.mean(r["redis_cores"] for r in rs),
                      "cpu_us_per_event": cpu / ev * 1e6 if ev else None})
    pairs = []
    for h in sorted(by):
        if h - 1 not in by:
            continue
        prev = {int((clock(r) % 3600) // slot): r for r in by[h - 1]}
        cur = {int((clock(r) % 3600) // slot): r for r in by[h]}
        slots = sorted(set(prev) & set(cur))
        if not slots:
            continue

        def compare(slots):
            if not slots:
                return None
            d = {k: statistics.mean(fn(cur[s]) - fn(prev[s]) for s in slots)
                 for k, fn in (("rss", rss), ("held", held), ("slack", slack),
                               ("cpu", lambda r: r["cpu_cores"]),
                               ("redis", lambda r: r["redis_cores"]))}
            rss_mean = statistics.mean(rss(prev[s]) for s in slots)
            cpu_mean = statistics.mean(prev[s]["cpu_cores"] for s in slots)
            redis_mean = statistics.mean(prev[s]["redis_cores"] for s in slots)
            # the same bounds as the fitted line's: max(1 MiB, 2 %) for RSS, 10 % for CPU
            return {"matched": len(slots), "from_min": slots[0] * slot / 60,
                    "to_min": slots[-1] * slot / 60, "rss_diff": d["rss"],
                    "held_diff": d["held"], "slack_diff": d["slack"], "cpu_diff": d["cpu"],
                    "cpu_rel": d["cpu"] / cpu_mean if cpu_mean else None,
                    "redis_rel": d["redis"] / redis_mean if redis_mean else None,
                    "rss_mean_before": rss_mean, "cpu_mean_before": cpu_mean,
                    "rss_same": abs(d["rss"]) <= max(1.0, 0.02 * rss_mean),
                    "cpu_same": abs(d["cpu"]) <= 0.1 * cpu_mean}

        p = compare(slots)
        p["hour"] = h
        p["own"] = compare([x for x in slots if x * slot / 60 >= own_from])
        pairs.append(p)
    # where the run (the load) started, on the same clock
    start = clock(warm[0]) - warm[0]["t_s"] * fast
    return {"hours": hours, "pairs": pairs, "own_from_min": own_from,
            "state_idle_s": state_idle_s, "hour_s": hour_s,
            "start_hour": int(start // 3600),
            "whole": whole_hours_trend(hours, slot, start)}


def whole_hours_trend(hours, every, start):
    """Over the whole hours, the least-squares line through each hour's mean RSS, held
    memory and slack: what rollupd's memory does from one hour to the next, where a leak
    would add the same every hour and a plateau landing at different heights would not.
    An hour is whole when it is sampled from its first slot to its last (every: seconds
    between samples on the hour's clock) and the hour before it had the load from its
    start too: an hour after a partial one holds fewer of that hour's states in its first
    minutes. None with fewer than three whole hours."""
    # the last hour whose hour before did not have the load from its start
    settled = int(start // 3600) + (1 if start % 3600 > 2 * every else 0)

    def whole_hour(h):
        return (h["hour"] > settled and h["from_min"] * 60 <= every
                and h["to_min"] * 60 >= 3600 - 2 * every)

    whole = [h for h in hours if whole_hour(h)]
    if len(whole) < 3:
        return None
    xs = [h["hour"] for h in whole]
    res = {"n": len(whole), "first": xs[0], "last": xs[-1]}
    for k in ("rss", "held", "slack"):
        ys = [h[k + "_mean"] for h in whole]
        sl = lsq_slope(xs, ys)
        res[k] = {"slope_per_hour": sl, "fit_change": sl * (xs[-1] - xs[0]),
                  "min": min(ys), "max": max(ys), "mean": statistics.mean(ys)}
    r = res["rss"]
    # the soak's flat bound for RSS: max(1 MiB, 2 % of the mean)
    res["rss_flat"] = abs(r["fit_change"]) <= max(1.0, 0.02 * r["mean"])
    return res


def hhmm(h, minute):
    """Hour number since the epoch and a minute past it, as HH:MM (UTC)."""
    return time.strftime("%H:%M", time.gmtime(h * 3600 + round(minute * 60)))


def soak_samples(path):
    rows = []
    with open(path) as f:
        head = f.readline().strip().split(",")
        for line in f:
            v = line.strip().split(",")
            if len(v) == len(head):
                rows.append({k: float(x) for k, x in zip(head, v)})
    return rows


def cmd_soak(a):
    """rollupd at a fixed rate for a.minutes: loadgen --rate --now-ts into a stream capped
    with MAXLEN, flush every second; every a.every seconds rollupd's RSS, CPU (utime +
    stime, as cores over the interval) and status are sampled; after a.warmup_minutes
    the least-squares slopes of RSS and CPU say whether they are flat."""
    # from 120 s an hour, the past hour's states are given back within the hour's first
    # 45 minutes; a multiple of --every keeps the samples at the same minutes every hour
    if not 120 <= a.hour_seconds <= 3600 or (a.hour_seconds / a.every) % 1:
        raise SystemExit(f"harness: --hour-seconds {a.hour_seconds:g}: expected 120 to 3600, "
                         f"a multiple of --every ({a.every:g})")
    srv = Servers(a.env)
    stream = "bench:soak"
    logdir = os.path.dirname(os.path.abspath(a.out))
    conf = os.path.join(logdir, "rollupd-soak.conf")
    sock = os.path.join(a.rundir, "soak.sock")
    state_idle_s = max(1, round(SOAK_STATE_IDLE_S * a.hour_seconds / 3600))
    rollupd_conf(conf, srv, stream, "rollupd", a.db, sock, a.interval_ms, a.backlog_entries,
                 extra_flush=f" state_idle_s = {state_idle_s};",
                 extra_redis=" lone_consumer = true;" if a.lone else "")
    d = Rollupd(os.path.join(a.bindir, "rollupd"), conf,
                os.path.join(logdir, "rollupd-soak.log"), srv)
    lg = None
    samples = []
    csv_path = os.path.join(logdir, "soak-samples.csv")
    try:
        wait_status(sock, d, lambda s: s["redis_connected"] and s["postgres_connected"], 60,
                    "rollupd ready")
        total = int(a.rate * (a.minutes * 60 + 120))
        lg_log = open(os.path.join(logdir, "soak-loadgen.log"), "w")
        # the event clock: with --hour-seconds, an hour of event time every hour_seconds,
        # from the start of the hour at epoch
        epoch = int(time.time())
        fast = []
        if a.hour_seconds != 3600:
            fast = ["--hour-seconds", repr(a.hour_seconds), "--start-ts", str(epoch)]
        lg = subprocess.Popen([os.path.join(a.bindir, "rollupd-loadgen"), "-p",
                               str(srv.redis_port), "-s", stream, "-n", str(total), "--rate",
                               str(a.rate), "--now-ts", "--seed", "11", "--maxlen",
                               str(a.maxlen), "--mix", a.mix, "--quiet"] + fast,
                              stdout=lg_log, stderr=lg_log, stdin=subprocess.DEVNULL)
        t0 = time.monotonic()
        end = t0 + a.minutes * 60
        prev = None
        with open(csv_path, "w") as csv:
            csv.write("t_s,unix_s,event_s,rss_kib,cpu_cores,events_per_s,memory_bytes,"
                      "pending_events,flushes,redis_cores,pg_cores\n")
            nxt = t0
            while True:
                now = time.monotonic()
                if now < nxt:
                    time.sleep(nxt - now)
                if lg.poll() is not None:
                    raise SystemExit("harness: loadgen stopped during the soak "
                                     f"(exit {lg.returncode}; see soak-loadgen.log)")
                if not d.alive():
                    raise SystemExit("harness: rollupd exited during the soak")
                st = status(sock)
                snap = srv.snapshot()
                cur = {"t": time.monotonic(), "cpu": proc_cpu(d.p.pid),
                       "rss": vmrss_kb(d.p.pid), "st": st, "snap": snap}
                if prev is not None and st is not None and prev["st"] is not None:
                    dt = cur["t"] - prev["t"]
                    unix_s = time.time()
                    if fast:
                        event_s = epoch - epoch % 3600 + (unix_s - epoch) * 3600 / a.hour_seconds
                    else:
                        event_s = unix_s
                    row = {"t_s": round(cur["t"] - t0, 1), "unix_s": round(unix_s, 1),
                           "event_s": round(event_s, 1),
                           "rss_kib": cur["rss"],
                           "cpu_cores": (cur["cpu"] - prev["cpu"]) / dt,
                           "events_per_s": (st["events_consumed"] -
                                            prev["st"]["events_consumed"]) / dt,
                           "memory_bytes": st.get("memory_bytes", 0),
                           "pending_events": st["pending_events"],
                           "flushes": st["flushes"],
                           "redis_cores": (snap["redis"] - prev["snap"]["redis"]) / dt,
                           "pg_cores": (snap["pg"] - prev["snap"]["pg"]) / dt}
                    samples.append(row)
                    csv.write(",".join(f"{row[k]:.3f}" if isinstance(row[k], float)
                                       else str(row[k]) for k in row) + "\n")
                    csv.flush()
                prev = cur
                if cur["t"] >= end:
                    break
                nxt += a.every
        st_end = status(sock)
    finally:
        stop_load_and_rollupd(lg, d)
    warm = [r for r in samples if r["t_s"] >= a.warmup_minutes * 60]
    xs = [r["t_s"] / 60 for r in warm]
    res = {"minutes": a.minutes, "rate_target": a.rate, "every_s": a.every,
           "warmup_minutes": a.warmup_minutes, "interval_ms": a.interval_ms,
           "lone": a.lone, "mix": a.mix, "state_idle_s": state_idle_s,
           "hour_seconds": a.hour_seconds,
           "samples": len(samples), "samples_after_warmup":
           len(warm), "flushes": st_end["flushes"] if st_end else None,
           "flushes_failed": st_end.get("flush_failures") if st_end else None,
           "csv": csv_path}
    if warm:
        rss = [r["rss_kib"] / 1024 for r in warm]
        cpu = [r["cpu_cores"] for r in warm]
        ev = [r["events_per_s"] for r in warm]
        mem = [r["memory_bytes"] / 1048576 for r in warm]
        res.update({
            "rss_mib_mean": statistics.mean(rss), "rss_mib_min": min(rss),
            "rss_mib_max": max(rss),
            "rss_slope_mib_per_min": lsq_slope(xs, rss),
            "cpu_cores_mean": statistics.mean(cpu), "cpu_cores_max": max(cpu),
            "cpu_slope_cores_per_min": lsq_slope(xs, cpu),
            "events_per_s_mean": statistics.mean(ev),
            "memory_mib_mean": statistics.mean(mem),
            "memory_slope_mib_per_min": lsq_slope(xs, mem),
            "cpu_us_per_event": statistics.mean(cpu) / statistics.mean(ev) * 1e6
            if statistics.mean(ev) else None,
            "redis_cores_mean": statistics.mean(r["redis_cores"] for r in warm),
            "pg_cores_mean": statistics.mean(r["pg_cores"] for r in warm),
        })
        span = (xs[-1] - xs[0]) if len(xs) > 1 else 0
        rs, cs = res["rss_slope_mib_per_min"], res["cpu_slope_cores_per_min"]
        # flat: what the fitted line adds over the measured window stays below 2 % of the
        # mean (RSS: or 1 MiB) and 10 % of the mean CPU
        res["rss_fit_change_mib"] = rs * span if rs is not None else None
        res["cpu_fit_change_cores"] = cs * span if cs is not None else None
        res["rss_flat"] = rs is not None and abs(rs * span) <= max(1.0,
                                                                    0.02 * res["rss_mib_mean"])
        res.update(beyond_held(warm, xs))
        res["cpu_flat"] = cs is not None and abs(cs * span) <= 0.1 * res["cpu_cores_mean"]
    write_json(a.out, res)


def soak_table(f, w):
    w(f"### Soak: {f['minutes']} minutes at {fmt(f['rate_target'], 0)} events/s "
      f"({f['mix']} mix, {'lone consumer' if f['lone'] else 'shared group'}), flush every "
      f"{f['interval_ms']} ms, rollupd sampled every {f['every_s']:g} s; fits after "
      f"{f['warmup_minutes']:.3g} minutes of warm-up\n")
    if "rss_mib_mean" not in f:
        w("no samples after the warm-up\n")
        return
    w("| samples (after warm-up) | events/s | RSS MiB mean (min-max) | RSS slope MiB/min |"
      " RSS fit change over the window MiB | CPU cores mean (max) | CPU slope cores/min |"
      " CPU fit change cores | CPU µs / event | held memory MiB (slope /min) |"
      " redis cores | postgres cores | flushes (failed) | flat |")
    w("|---:|---:|---|---:|---:|---|---:|---:|---:|---|---:|---:|---|---|")
    flat = "yes" if f["rss_flat"] and f["cpu_flat"] else \
        f"**no** (RSS {'flat' if f['rss_flat'] else 'not flat'}, CPU " \
        f"{'flat' if f['cpu_flat'] else 'not flat'})"
    w(f"| {f['samples']} ({f['samples_after_warmup']}) | {fmt(f['events_per_s_mean'], 0)} | "
      f"{f['rss_mib_mean']:.1f} ({f['rss_mib_min']:.1f}-{f['rss_mib_max']:.1f}) | "
      f"{f['rss_slope_mib_per_min']:+.4f} | {f['rss_fit_change_mib']:+.2f} | "
      f"{f['cpu_cores_mean']:.3f} ({f['cpu_cores_max']:.3f}) | "
      f"{f['cpu_slope_cores_per_min']:+.5f} | {f['cpu_fit_change_cores']:+.4f} | "
      f"{fmt(f['cpu_us_per_event'], 2)} | {f['memory_mib_mean']:.1f} "
      f"({f['memory_slope_mib_per_min']:+.4f}) | {f['redis_cores_mean']:.3f} | "
      f"{f['pg_cores_mean']:.3f} | {fmt(f['flushes'])} ({fmt(f['flushes_failed'])}) | "
      f"{flat} |")
    w("\nflat: the least-squares line's change over the window after warm-up is at most "
      "max(1 MiB, 2 % of the mean) for RSS and 10 % of the mean for CPU.\n")
    if f.get("beyond_held_slope_mib_per_min") is not None:
        w("| RSS less held memory (memory_bytes), MiB mean | its slope MiB/min | its fit change"
          " over the window MiB |")
        w("|---:|---:|---:|")
        w(f"| {f['beyond_held_mib_mean']:.1f} | {f['beyond_held_slope_mib_per_min']:+.4f} | "
          f"{f['beyond_held_fit_change_mib']:+.2f} |\n")
    hs = f.get("by_hour")
    if not hs:
        return
    hour_s = hs.get("hour_s", 3600)
    if hour_s != 3600:
        w(f"The event clock ran {3600 / hour_s:g} times faster than the wall clock (loadgen "
          f"--hour-seconds {hour_s:g}: an hour of event time every {hour_s:g} s, "
          f"flush.state_idle_s scaled with it), so the run crossed an hour every "
          f"{hour_s / 60:g} minutes: {f['minutes'] * 60 / hour_s:.1f} hours of event time in "
          f"{f['minutes']:g} minutes. Hours and minutes below are the event clock's, the "
          "hours numbered from the run's first (hour 0); what rollupd does at each change "
          "of hour (new row states, the past hour's given back, the heap trimmed) happens "
          "as often as in that many real hours, with fewer events in each.\n")

        def label(h, minute=0):
            return f"hour {h - hs['start_hour']}" + (f" :{minute:02.0f}" if minute else "")
    else:
        label = hhmm
    w(f"By {'clock hour (UTC' if hour_s == 3600 else 'event hour ('}samples after warm-up). "
      "Held: what rollupd holds (status memory_bytes), most of it the writer's complete "
      "state of the hour's rows; slack: RSS less held memory.\n")
    w("| hour | samples (minutes past the hour) | RSS MiB mean (max) | held MiB mean (max) |"
      " slack MiB mean (max) | CPU cores mean | CPU µs / event | redis cores |")
    w("|---|---:|---|---|---|---:|---:|---:|")
    for h in hs["hours"]:
        w(f"| {label(h['hour'], 0)} | {h['samples']} ({h['from_min']:.1f}–{h['to_min']:.1f}) | "
          f"{h['rss_mean']:.1f} ({h['rss_max']:.1f}) | {h['held_mean']:.1f} "
          f"({h['held_max']:.1f}) | {h['slack_mean']:.1f} ({h['slack_max']:.1f}) | "
          f"{h['cpu_mean']:.3f} | {fmt(h['cpu_us_per_event'], 2)} | "
          f"{h['redis_mean']:.3f} |")
    t = hs.get("whole")
    if t:
        w(f"\nOver the {t['n']} whole hours ({label(t['first'], 0)} to "
          f"{label(t['last'], 59)}), "
          "the least-squares line through the hours' means (flat: its change over them at "
          "most max(1 MiB, 2 % of the mean), the fitted line's bound):\n")
        w("| hours' mean | lowest – highest MiB | slope MiB / hour | line's change over "
          "the hours MiB |")
        w("|---|---|---:|---:|")
        for k, name in (("rss", "RSS"), ("held", "held"), ("slack", "slack")):
            v = t[k]
            w(f"| {name} | {v['min']:.1f} – {v['max']:.1f} | {v['slope_per_hour']:+.3f} | "
              f"{v['fit_change']:+.2f} |")
        trend = "flat" if t["rss_flat"] else \
            "**not flat: rising**" if t["rss"]["fit_change"] > 0 else "**not flat: falling**"
        w(f"\nRSS from hour to hour: {trend}.")
    if not hs["pairs"]:
        w("\nNo two consecutive hours to compare.\n")
        return
    first = ("The run's first hour gathers its rows from the run's start, not from the "
             "hour's, so only pairs of whole hours compare like with like; and until its "
             "states are given back, the hour after it holds fewer of them than the next hour "
             "holds of its own, so the first pair of whole hours differs in its first minutes."
             if hour_s == 3600 else
             "The event clock starts at the start of an hour, so the run's first hour has "
             "the load from its start, but it holds no earlier hour's states and most of it "
             "may be in the warm-up: the first pair differs in its first minutes.")
    w("\nEach hour against the hour before, at the same minutes past the hour (the mean of "
      "the matched samples' differences; same: within max(1 MiB, 2 % of the earlier hour's "
      f"mean RSS) and 10 % of its mean CPU, the fitted line's bounds). {first} "
      "redis-server does the same work every hour: when its CPU moves as much as rollupd's, "
      "the machine moved.\n")
    head = ("| hour vs the hour before | matched samples (minutes) | RSS MiB | held MiB |"
            " slack MiB | CPU cores | CPU | redis-server CPU | same |")
    w(head)
    w("|---|---:|---:|---:|---:|---:|---:|---:|---|")

    def same(p):
        return "yes" if p["rss_same"] and p["cpu_same"] else \
            f"**no** (RSS {'same' if p['rss_same'] else 'differs'}, CPU " \
            f"{'same' if p['cpu_same'] else 'differs'})"

    def row(h, p):
        w(f"| {label(h, 0)} vs {label(h - 1, 0)} | {p['matched']} "
          f"({p['from_min']:.1f}–{p['to_min']:.1f}) | {p['rss_diff']:+.2f} | "
          f"{p['held_diff']:+.2f} | {p['slack_diff']:+.2f} | {p['cpu_diff']:+.4f} | "
          f"{p['cpu_rel'] * 100:+.1f} % | {p['redis_rel'] * 100:+.1f} % | {same(p)} |")

    for p in hs["pairs"]:
        row(p["hour"], p)
    own = [p for p in hs["pairs"] if p.get("own")]
    if own:
        w(f"\nThe same from {hs['own_from_min']:.0f} minutes past the hour on: by then the "
          f"past hour's row states have been given back (flush.state_idle_s = "
          f"{hs['state_idle_s']} s, and one idle search), so each hour holds its own rows "
          "only, whether the hour before it was whole or not.\n")
        w(head)
        w("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for p in own:
            row(p["hour"], p["own"])
    w("")


# ---------------------------------------------------------------- report

def fmt(v, nd=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def per_m(cpu, events):
    return cpu / events * 1e6 if events else 0.0


MIXES = {
    "heavy": "heavy mix (loadgen's default: every field, long routes and params)",
    "light": "light mix (loadgen --mix light: short routes, half the params empty, like "
             "genonaut's real sample)",
}

# each rollupd mode against its like-for-like ceiling
PAIRS = (("rollupd", "ceiling", "rollupd (shared group) / ceiling (XACK per batch)"),
         ("lone", "ceiling-noack", "rollupd (lone consumer) / ceiling (NOACK)"))
# the control: each ceiling run again right after its rollupd mode, the same work twice;
# its ratios, computed the same way, show what the machine's noise alone does to a ratio
CONTROLS = (("ceiling-again", "ceiling", "control: ceiling (XACK per batch) run again / ceiling"),
            ("ceiling-noack-again", "ceiling-noack", "control: ceiling (NOACK) run again / ceiling"))


# the kinds of run of the ceiling readers and rollupd, then all kinds, in the order the
# report shows them
READERS = ("ceiling", "ceiling-hold", "rollupd", "ceiling-again", "ceiling-noack", "lone",
           "ceiling-noack-again")
KINDS = READERS + ("careful", "today")


def cores_busy(r):
    s = r["seconds"]
    return (r["consumer_cpu_s"] + r["redis_cpu_s"] + r["pg_cpu_s"]) / s if s else 0.0


def main_table(runs, w):
    for mix in sorted({r.get("mix", "heavy") for r in runs}, key=lambda m: (m != "heavy", m)):
        mix_table(mix, [r for r in runs if r.get("mix", "heavy") == mix], w)


def mix_table(mix, runs, w):
    w(f"### End to end, {MIXES.get(mix, mix)}: pre-filled stream -> every event committed\n")
    if ROLLUPD_READ_BYTES != READ_BYTES:
        w(f"Not like for like: rollupd ran with redis.read_bytes = {ROLLUPD_READ_BYTES} "
          f"(BENCH_ROLLUPD_READ_BYTES), the ceiling reader with --read-bytes {READ_BYTES}.\n")
    w("| consumer | events | seconds | events/s | consumer CPU s / M ev | redis CPU s / M ev"
      " | postgres CPU s / M ev | cores busy (consumer + redis + postgres) | peak RSS MiB |"
      " flushes | rows written | entries per XREADGROUP | other load (cores) |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        xr = r.get("xreadgroup_calls")
        w(f"| {r['name']} | {fmt(r['events'])} | {fmt(r['seconds'], 2)} | "
          f"{fmt(r['events_per_s'], 0)} | {fmt(per_m(r['consumer_cpu_s'], r['events']), 2)} | "
          f"{fmt(per_m(r['redis_cpu_s'], r['events']), 2)} | "
          f"{fmt(per_m(r['pg_cpu_s'], r['events']), 2)} | {fmt(cores_busy(r), 2)} | "
          f"{fmt(r['vmhwm_kb'] / 1024, 1)} | "
          f"{fmt(r.get('flushes'))} | {fmt(r.get('rows_written'))} | "
          f"{fmt(r['events'] / xr, 0) if xr else '–'} | {fmt(r['other_cores'], 2)} |")
    parts = [r for r in runs if "startup_s" in r]
    if parts:
        w("\nrollupd's time split (status polled every 20 ms): start-up = until the first "
          "event is read (PostgreSQL set-up, replay of its own pending entries); tail = from "
          "the last event read to its COMMIT (the last flush); the rate between them is the "
          "draining rate. redis-server's cores while draining: its CPU over the whole run "
          "(it has no reads to serve during start-up and the tail) over the draining time.\n")
        w("| run | seconds | start-up s | tail s | draining events/s | redis-server cores "
          "while draining | redis-server waiting for a core (cores) |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for r in parts:
            mid = r["seconds"] - r["startup_s"] - r["tail_s"]
            w(f"| {r['name']} | {fmt(r['seconds'], 2)} | {fmt(r['startup_s'], 2)} | "
              f"{fmt(r['tail_s'], 2)} | {fmt(r['events'] / mid, 0) if mid > 0 else '–'} | "
              f"{fmt(r['redis_cpu_s'] / mid, 2) if mid > 0 else '–'} | "
              f"{fmt(r['redis_runq_s'] / mid, 2) if mid > 0 and 'redis_runq_s' in r else '–'} |")
        ceils = [r for r in runs if r["kind"].startswith("ceiling") and r["seconds"] > 0]
        if ceils:
            busy = statistics.median(r["redis_cpu_s"] / r["seconds"] for r in ceils)
            waits = [r["redis_runq_s"] / r["seconds"] for r in ceils if "redis_runq_s" in r]
            wait = f", waiting for a core {fmt(statistics.median(waits), 2)}" if waits else ""
            w(f"\nredis-server while a ceiling reader ran (median of its {len(ceils)} runs, "
              f"which have no start-up or tail): {fmt(busy, 2)} cores busy{wait}. "
              "redis-server is the busiest process of every run. Waiting for a core: "
              "runnable, but both cores taken (`/proc/PID/schedstat`, its main thread); the "
              "rest of its core is time it had nothing to do (the next read not there yet, "
              "or no room in the socket for its reply).")

    def med(kind, key):
        v = [r[key] for r in runs if r["kind"] == kind]
        return statistics.median(v) if v else None

    def med_per_event(kind, key):
        v = [r[key] / r["events"] for r in runs if r["kind"] == kind and r["events"]]
        return statistics.median(v) if v else None

    def ratio(x, y):
        return x / y if x and y else None

    # the three like-for-like ratios of a run kind against its ceiling, as the goals take
    # them: events/s from the medians of each side, CPU per event likewise
    RATIOS = (("events_per_s", med), ("redis_cpu_s", med_per_event),
              ("consumer_cpu_s", med_per_event))

    def against(kind, ceil):
        return [ratio(f(kind, key), f(ceil, key)) for key, f in RATIOS]

    ca, to = med("careful", "events_per_s"), med("today", "events_per_s")
    w(f"\n### Ratios, {mix} mix (medians over interleaved repetitions)\n")
    w("rollupd-N: a consumer in a shared group (the default: XREADGROUP, XACK after COMMIT), "
      "against ceiling-N (the same minimal reader, XACK per batch). lone-N: "
      "`redis.lone_consumer = true` (XREADGROUP NOACK, the PostgreSQL checkpoint is the "
      "record, no XACK), against noack-N (the same minimal reader with NOACK). CPU per "
      "event: utime + stime of the whole process (rollupd's reader and writer threads "
      "together).\n")
    w("| ratio | value | goal | met |")
    w("|---|---:|---:|:-:|")
    for kind, ceil, who in PAIRS:
        rd = med(kind, "events_per_s")
        if rd is None:
            continue
        e2e, redis, own = against(kind, ceil)
        rows = [(f"{who}, events/s", e2e, ">= 0.90", lambda x: x >= 0.9),
                (f"{who}, redis-server CPU per event", redis, "<= 1.10", lambda x: x <= 1.1),
                (f"{who}, own CPU per event", own, "<= 1.30", lambda x: x <= 1.3)]
        short = who.split(" / ")[0]
        if ca:
            rows.append((f"{short} / careful Python, events/s", ratio(rd, ca), ">= 10",
                         lambda x: x >= 10))
        if to:
            rows.append((f"{short} / today's job, events/s", ratio(rd, to), ">= 40",
                         lambda x: x >= 40))
        for label, v, goal, ok in rows:
            met = "–" if v is None else ("yes" if ok(v) else "**no**")
            w(f"| {label} | {fmt(v, 2) if v is not None else '–'} | {goal} | {met} |")
    controls = [c for c in CONTROLS if any(r["kind"] == c[0] for r in runs)]
    if controls:
        w("\nThe control: each ceiling run again right after its rollupd mode (the same "
          "program, the same entries, the same rules), its ratios taken the same way. Identical "
          "work gives 1.00 on a quiet machine; how far these stray from 1.00 is what the "
          "machine's noise alone does to a ratio in this run. Per repetition: each run "
          "against the ceiling run just before it (min–max over the repetitions).\n")
        w("| ratio | events/s | redis-server CPU per event | own CPU per event |")
        w("|---|---:|---:|---:|")
        for kind, ceil, who in PAIRS + tuple(controls):
            cells = []
            for (key, _), m in zip(RATIOS, against(kind, ceil)):
                pr = paired(runs, kind, ceil, key)
                span = f" ({fmt(min(pr), 2)}–{fmt(max(pr), 2)})" if pr else ""
                cells.append(f"{fmt(m, 2) if m is not None else '–'}{span}")
            w(f"| {who} | " + " | ".join(cells) + " |")
    cpu_split_table(mix, runs, w)
    redis_split_table(mix, runs, w)
    w("")


def paired(runs, kind, ceil, key):
    """Per repetition: the run of kind against the ceiling run of the same mix and
    repetition (the number that ends the name)."""
    by_rep = {r["name"].rsplit("-", 1)[-1]: r for r in runs if r["kind"] == ceil}
    out = []
    for r in runs:
        c = by_rep.get(r["name"].rsplit("-", 1)[-1])
        if r["kind"] != kind or c is None or not c.get(key) or not r.get(key):
            continue
        out.append(r[key] / c[key])  # same events on both sides: per event = per run
    return out


SPLIT = ("reader_user_s", "reader_sys_s", "writer_user_s", "writer_sys_s")


def cpu_split_table(mix, runs, w):
    """Where each consumer's CPU goes: user and kernel time of rollupd's main thread (the
    reader: event loop, parsing, the store) and of its writer thread, against the ceiling
    reader's user and kernel time (rusage), CPU s per million events, medians."""
    kinds = [k for k in ("ceiling", "rollupd", "ceiling-noack", "lone")
             if any(r["kind"] == k and "reader_user_s" in r for r in runs)]
    if not kinds:
        return

    def med(kind, key):
        v = [r.get(key, 0.0) / r["events"] * 1e6 for r in runs
             if r["kind"] == kind and r["events"] and "reader_user_s" in r]
        return statistics.median(v) if v else None
    w(f"\n### Where the consumer's CPU goes, {mix} mix (CPU s per million events, medians)\n")
    w("main thread: the ceiling reader's whole process, rollupd's event loop (reading, "
      "parsing, the store, acknowledgements); writer: rollupd's PostgreSQL thread (COPY "
      "text, libpq, the flush). user / kernel from `/proc/PID/task/TID/stat` (rollupd) or "
      "rusage (the ceiling reader).\n")
    w("| consumer | main user | main kernel | writer user | writer kernel | total |")
    w("|---|---:|---:|---:|---:|---:|")
    for k in kinds:
        v = [med(k, key) for key in SPLIT]
        w(f"| {k} | " + " | ".join(fmt(x, 3) for x in v) +
          f" | {fmt(sum(x or 0.0 for x in v), 3)} |")
    for kind, ceil, who in PAIRS:
        if kind not in kinds or ceil not in kinds:
            continue
        mu, ms = med(kind, "reader_user_s"), med(kind, "reader_sys_s")
        cu, cs = med(ceil, "reader_user_s"), med(ceil, "reader_sys_s")
        w(f"\n{who}: main thread alone {fmt((mu + ms) / (cu + cs), 2) if cu + cs else '–'}x "
          f"(user {fmt(mu / cu, 2) if cu else '–'}x, kernel {fmt(ms / cs, 2) if cs else '–'}x)")


REDIS_PARTS = ("XREADGROUP", "XACK", "other commands", "outside commands", "all")


def redis_parts(r):
    """One run's redis-server CPU in µs per event, in the order of REDIS_PARTS: the time
    INFO commandstats counts in XREADGROUP, in XACK and in other commands, the rest of its
    CPU (reading requests, writing replies, the event loop, its cron), and all of it."""
    c = r["redis_cmd_s"]
    v = (c["xreadgroup"], c["xack"], c["other"], r["redis_cpu_s"] - sum(c.values()),
         r["redis_cpu_s"])
    return [x / r["events"] * 1e6 for x in v]


def redis_split_table(mix, runs, w):
    """Where redis-server's CPU goes for each consumer (redis_parts), medians."""
    by_kind = {}
    for r in runs:
        if r["kind"] in READERS and r["events"] and "redis_cmd_s" in r:
            by_kind.setdefault(r["kind"], []).append(redis_parts(r))
    if not by_kind:
        return
    w(f"\n### Where redis-server's CPU goes, {mix} mix (µs per event, medians)\n")
    w("In commands: the time INFO commandstats counts running each command. Outside "
      "commands: the rest of redis-server's CPU (utime + stime) in the same run: reading "
      "requests, writing replies, the event loop, its timers.\n")
    w("| consumer | " + " | ".join(REDIS_PARTS) + " |")
    w("|---|" + "---:|" * len(REDIS_PARTS))
    for k in (k for k in READERS if k in by_kind):
        w(f"| {k} | " + " | ".join(fmt(statistics.median(v[i] for v in by_kind[k]), 3)
                                   for i in range(len(REDIS_PARTS))) + " |")


def flush_groups(cases):
    """The flush benchmark's results, one list of repetitions per (case, phase), in order."""
    groups = {}
    for c in cases:
        groups.setdefault((c["case"], c["phase"]), []).append(c)
    return list(groups.values())


def flush_medians(g):
    """Medians over one case's repetitions, the ratio of the medians, and the per-repetition
    ratios' range (each flush against the bare upsert run right after it)."""
    def med(key):
        v = [x[key] for x in g if x.get(key) is not None]
        return statistics.median(v) if v else None
    m = {k: med(k) for k in ("flush_ms", "bare_ms", "cache_ms", "pg_cpu_ms", "other_cores")}
    m["ratio"] = m["flush_ms"] / m["bare_ms"] if m["flush_ms"] and m["bare_ms"] else None
    each = [x["flush_ms"] / x["bare_ms"] for x in g if x.get("bare_ms") and "flush_ms" in x]
    m["range"] = f"{min(each):.2f}–{max(each):.2f}" if len(each) > 1 else \
        (f"{each[0]:.2f}" if each else "–")
    return m


def cmd_report(a):
    runs = []
    for p in sorted(glob.glob(os.path.join(a.dir, "main-*.json"))):
        runs.append(json.load(open(p)))
    order = {k: i for i, k in enumerate(KINDS)}
    runs.sort(key=lambda r: (order.get(r["kind"], len(KINDS)), r["name"]))
    out = []
    w = out.append
    if runs:
        main_table(runs, w)
    fl = os.path.join(a.dir, "flush.json")
    if os.path.exists(fl):
        f = json.load(open(fl))
        groups = flush_groups(f["cases"])
        reps = max((len(g) for g in groups), default=1)
        w("\n### Flush: one rollupd flush (BEGIN..COMMIT, as the `flush` command reports it) vs "
          "a bare COPY + INSERT ... ON CONFLICT DO UPDATE of the same number of rows, run "
          f"right after it; medians of {reps} interleaved repetition{'s' if reps > 1 else ''}"
          " (each with rows of its own)\n")
        w("| case (rows x events per row) | phase | events | rollupd flush ms | bare upsert ms"
          " | rollupd / bare | per repetition | distinct (row, duration) |"
          " distinct (row, user) | chunk bytes written | cache update after COMMIT ms |"
          " postgres CPU ms | other load (cores) |")
        w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for g in groups:
            c = g[0]
            bad = [x for x in g if "error" in x]
            if bad:
                x = bad[0]
                w(f"| {c['case']} | {c['phase']} | {fmt(c['events'])} | **failed** (repetition "
                  f"{x.get('rep', 1)}) after {x['failed_after_s']} s: {x['error']} | | | | "
                  f"{fmt(c['row_durations'])} | {fmt(c['row_users'])} | | | | |")
                continue
            m = flush_medians(g)
            w(f"| {c['case']} | {c['phase']} | {fmt(c['events'])} | {fmt(m['flush_ms'], 1)} | "
              f"{fmt(m['bare_ms'], 1)} | {fmt(m['ratio'], 2)} | {m['range']} | "
              f"{fmt(c['row_durations'])} | {fmt(c['row_users'])} | "
              f"{fmt(c.get('chunk_bytes'))} | {fmt(m['cache_ms'], 1)} | "
              f"{fmt(m['pg_cpu_ms'], 0)} | {fmt(m['other_cores'], 2)} |")
        w("\n| goal: flush of 10k touched rows <= 3 x bare (medians) | rollupd / bare |"
          " per repetition | met |")
        w("|---|---:|---:|:-:|")
        for g in groups:
            m = flush_medians(g)
            if g[0]["rows"] != 10000 or m["ratio"] is None:
                continue
            v = m["ratio"]
            w(f"| {g[0]['case']}, {g[0]['phase']} | {fmt(v, 2)} | {m['range']} | "
              f"{'yes' if v <= 3 else '**no**'} |")
        w("\n| memory case | keys | events | batch bytes | bytes / key | bytes / key beyond"
          " ids, histogram slots, user sets and dictionary | goal | cached row state bytes"
          " / key (after the flush) | of which beyond 16 B per histogram entry and per"
          " user-set slot |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        # the first repetition's: the later ones start with more rows cached
        for c in f["cases"]:
            if c["phase"] != "new" or c["rows"] < 10000 or "error" in c or c.get("rep", 1) != 1:
                continue
            w(f"| {c['case']} | {fmt(c['pending_keys'])} | {fmt(c['events'])} | "
              f"{fmt(c.get('batch_bytes', c['memory_bytes']))} | {fmt(c['per_key_bytes'], 0)} | "
              f"{fmt(c['per_key_bytes_excl'], 0)} | < 1024 "
              f"{'(met)' if c['per_key_bytes_excl'] < 1024 else '(**missed**)'} | "
              f"{fmt(state_per_key(c), 0)} | {fmt(state_excl(c), 0)} |")

    pf = os.path.join(a.dir, "prof-flush.json")
    if os.path.exists(pf):
        f = json.load(open(pf))
        cases = [c for c in f["cases"] if "statements" in c]
        w("\n### Flush breakdown: ms per statement of rollupd's merge SQL (auto_explain, "
          "statement_timeout off; actual rows of the statement's input in brackets)\n")
        w("| statement | " + " | ".join(f"{c['case']} {c['phase']}" for c in cases) + " |")
        w("|---|" + "---:|" * len(cases))
        labels = []
        for c in cases:
            for _, label, _ in c["statements"]:
                if label not in labels:
                    labels.append(label)
        for label in labels:
            cells = []
            for c in cases:
                v = [(ms, rows) for ms, lab, rows in c["statements"] if lab == label]
                cells.append(" + ".join(f"{ms:,.0f} ({fmt(rows)})" for ms, rows in v) or "–")
            w(f"| {label} | " + " | ".join(cells) + " |")
        w("| COPYs (keys, new rows, values, row-state versions), BEGIN, COMMIT, rollupd's own"
          " work (next states, derived columns, chunks) | " + " | ".join(
            f"{c['flush_ms'] - sum(ms for ms, _, _ in c['statements']):,.0f}" for c in cases)
          + " |")
        w("| **flush total** | " + " | ".join(f"**{c['flush_ms']:,.0f}**" for c in cases) + " |")
        for c in f["cases"]:
            if "error" in c:
                w(f"\n{c['case']} {c['phase']}: **failed** after {c['failed_after_s']} s: "
                  f"{c['error']}")

    sk = os.path.join(a.dir, "soak.json")
    if os.path.exists(sk):
        f = json.load(open(sk))
        csv = os.path.join(a.dir, "soak-samples.csv")
        if os.path.exists(csv):
            warm = [r for r in soak_samples(csv) if r["t_s"] >= f["warmup_minutes"] * 60]
            if "beyond_held_slope_mib_per_min" not in f:
                f.update(beyond_held(warm, [r["t_s"] / 60 for r in warm]))
            f["by_hour"] = soak_hours(warm, f["every_s"],
                                      f.get("state_idle_s", SOAK_STATE_IDLE_S),
                                      f.get("hour_seconds", 3600))
        soak_table(f, w)
    frs = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(a.dir, "fresh*.json")))]
    if frs:
        f = frs[0]
        w("\n### Freshness: event timestamp -> its hourly row visible "
          f"(loadgen --rate {f['rate_target']} --now-ts, flush.interval_ms = "
          f"{f['interval_ms']})\n")
        w("| mode | markers | found | p50 ms | p90 ms | p99 ms | max ms | consumed events/s |"
          " rollupd cores | redis cores | postgres cores | flushes | goal p99 |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for f in frs:
            goal = f["interval_ms"] + 1000
            mode = "lone consumer" if f.get("lone") else "shared group"
            w(f"| {mode} | {f['markers']} | {f['found']} | {fmt(f['p50_ms'], 0)} | "
              f"{fmt(f['p90_ms'], 0)} | {fmt(f['p99_ms'], 0)} | {fmt(f['max_ms'], 0)} | "
              f"{fmt(f['events_per_s_consumed'], 0)} | {fmt(f['rollupd_cpu_cores'], 2)} | "
              f"{fmt(f['redis_cpu_cores'], 2)} | {fmt(f['pg_cpu_cores'], 2)} | {f['flushes']} | "
              f"< {goal} {'(met)' if f['p99_ms'] < goal else '(**missed**)'} |")
    text = "\n".join(out) + "\n"
    if a.md:
        with open(a.md, "w") as f:
            f.write(text)
    sys.stdout.write(text)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description="bench/run's measuring side")
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("--env", required=True, help="scripts/testenv's env file")
        p.add_argument("--rundir", required=True)
        p.add_argument("--out", required=True)

    def rollupd_opts(p):
        p.add_argument("--interval-ms", type=int, default=1000)
        p.add_argument("--backlog-entries", type=int, default=8000,
                       help="flush.backlog_entries (the default; 0 = off)")
        p.add_argument("--lone", action="store_true", help="redis.lone_consumer = true")

    def consumer(p):
        common(p)
        p.add_argument("--name", required=True)
        p.add_argument("--stream", required=True)
        p.add_argument("--group", required=True)
        p.add_argument("-n", "--events", type=int, required=True)
        p.add_argument("--mix", default="heavy", help="the loadgen --mix of the stream")

    p = sub.add_parser("ceiling")
    consumer(p)
    p.add_argument("--bin", required=True)
    p.add_argument("--noack", action="store_true",
                   help="XREADGROUP ... NOACK, no XACK (the lone consumer's ceiling)")
    p.add_argument("--again", action="store_true",
                   help="the control: the same ceiling run again, right after rollupd")
    p.add_argument("--hold", type=int, default=0,
                   help="acknowledge only once so many entries are held (ceiling-hold)")
    p.add_argument("--work", choices=("read", "parse", "aggregate"), default="read",
                   help="what the reader does with each entry besides reading it (the kind "
                        "gets -parse or -aggregate): bench/owncost")
    p.set_defaults(fn=cmd_ceiling)

    p = sub.add_parser("rollupd")
    consumer(p)
    p.add_argument("--bin", required=True)
    p.add_argument("--db", required=True)
    rollupd_opts(p)
    p.add_argument("--timeout", type=float, default=600)
    p.set_defaults(fn=cmd_rollupd)

    p = sub.add_parser("python")
    consumer(p)
    p.add_argument("--kind", required=True, choices=("careful", "today"))
    p.add_argument("--script", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--hiredis", action="store_true")
    p.set_defaults(fn=cmd_python)

    p = sub.add_parser("flush")
    common(p)
    p.add_argument("--bindir", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--diag", action="store_true", help="add the 1-duration diagnostic case")
    p.add_argument("--flush-timeout", type=float, default=300)
    p.add_argument("--name", default="flush")
    p.add_argument("--cases", choices=("all", "profile"), default="all")
    p.add_argument("--reps", type=int, default=1,
                   help="runs of all the cases, each in a new rollupd")
    p.add_argument("--explain", action="store_true",
                   help="log each flush statement with auto_explain and break flushes down")
    p.add_argument("--no-bare", action="store_true")
    p.add_argument("--statement-timeout-ms", type=int)
    p.set_defaults(fn=cmd_flush)

    def at_rate(p):
        """rollupd fed by loadgen at a fixed rate: fresh and soak"""
        common(p)
        p.add_argument("--bindir", required=True)
        p.add_argument("--db", required=True)
        p.add_argument("--rate", type=float, default=20000)
        rollupd_opts(p)

    p = sub.add_parser("fresh")
    at_rate(p)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--warmup", type=float, default=3)
    p.add_argument("--name", default="fresh")
    p.set_defaults(fn=cmd_fresh)

    p = sub.add_parser("soak")
    at_rate(p)
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--every", type=float, default=10, help="seconds between samples")
    p.add_argument("--warmup-minutes", type=float, default=5)
    p.add_argument("--maxlen", type=int, default=1000000, help="loadgen --maxlen")
    p.add_argument("--mix", default="heavy")
    p.add_argument("--hour-seconds", type=float, default=3600,
                   help="wall seconds to an hour of event time (loadgen --hour-seconds; "
                   "120-3600, a multiple of --every)")
    p.set_defaults(fn=cmd_soak)

    p = sub.add_parser("report")
    p.add_argument("dir")
    p.add_argument("--md")
    p.set_defaults(fn=cmd_report)

    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
