#!/bin/bash
# test_systemd.sh: rollupd under a real systemd, booted as PID 1 in namespaces
# (tests/systemd/sdboot.sh), doing what an operator does.
#
# usage: tests/systemd/test_systemd.sh BUILD_DIR [DEB]
#
# Boot 1, installed from the build directory (DESTDIR=<root of PID 1> cmake --install
# BUILD_DIR --prefix /usr, the build configured without a prefix):
#   - the unit runs /usr/sbin/rollupd -c /etc/rollupd/rollupd.conf (it named the
#     configure-time prefix /usr/local: status=203/EXEC);
#   - systemd-sysusers creates the static user; the daemon runs as it;
#   - a configuration error at start is in journalctl -u rollupd -p warning (main printed
#     it without a priority prefix: journald stored it as info);
#   - systemctl start returns after READY=1 (active, health ok at once), STATUS= says
#     "no flush yet" (it said "last flush -1 ms ago");
#   - events fed wait until systemctl kill -s USR1 flushes them; STATUS= then changes
#     with no further flush (it was sent only at READY and after a flush);
#   - systemctl reload with a good file (same pid, "configuration reloaded") and a bad
#     one (refused in the log, same pid, still healthy);
#   - rollupctl status and health on /run/rollupd/rollupd.sock work for a member of group
#     rollupd and are refused for another user;
#   - a drop-in WatchdogSec=2s and a SIGSTOPped daemon: restarted, result 'watchdog';
#   - systemctl stop flushes what was read, leaves nothing pending in Redis, result
#     success;
#   - Redis and PostgreSQL at an address outside IPAddressAllow= (203.0.113.7 on the
#     container's loopback, where a connection from outside the unit is refused at once):
#     the connection times out and rollupd says the packets were dropped and names
#     IPAddressAllow=.
# Boot 2, the Debian package (DEB, default BUILD_DIR/deb/rollupd_*.deb, made by
# scripts/deb): dpkg -i creates the user, reloads systemd and neither enables nor starts
# the service; configured and enabled it runs; dpkg -i again keeps the edited
# configuration and restarts the service; dpkg --purge removes every file.
#
# Redis and PostgreSQL run inside the booted system (transient units) on its own loopback.
# Every wait has a deadline. Exit status: 0 passed, 1 failed, 77 this machine cannot boot
# systemd (the reason is printed).
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/systemd/sdboot.sh
source "$here/sdboot.sh"

if [[ $# -lt 1 || ! -x $1/rollupd ]]; then
    echo "usage: $0 BUILD_DIR [DEB] (BUILD_DIR with rollupd, rollupctl, rollupd-loadgen)" >&2
    exit 1
fi
build=$(cd "$1" && pwd)
deb=${2:-}
if [[ -z $deb ]]; then
    deb=$(find "$build/deb" -maxdepth 1 -name 'rollupd_*.deb' 2>/dev/null | sort | tail -n 1)
fi

if ! sd_check; then
    echo "SKIP: cannot boot systemd as PID 1 on this machine: $sd_why"
    exit 77
fi

t0=$SECONDS
STREAM=sdtest:stream
PGBIN=/usr/lib/postgresql/15/bin
BAD_IP=203.0.113.7 # TEST-NET-3: outside the unit's IPAddressAllow=

trap sd_halt EXIT

ok() { printf 'ok    %s\n' "$*"; }
fail() {
    printf 'FAIL  %s\n' "$*" >&2
    if [[ -n $sd_pid ]]; then
        echo "---- systemctl status rollupd ----" >&2
        sd_in systemctl status --no-pager -n 0 rollupd >&2
        echo "---- journalctl -u rollupd (last 40) ----" >&2
        sd_in journalctl -u rollupd --no-pager -n 40 -o short-precise >&2
    fi
    exit 1
}

# shellcheck source=tests/wait.sh
source "$here/../wait.sh"

prop() { sd_in systemctl show -p "$1" --value rollupd.service; }
# (the journal is read whole before it is searched: grep -q in a pipe would end journalctl
# with SIGPIPE at the first match, and pipefail would turn the match into a failure)
journal_has() {
    local j
    j=$(sd_in journalctl -u rollupd.service -o cat --no-pager "${@:2}")
    grep -qF -- "$1" <<<"$j"
}
# the status object's integer field $1, as root inside the container
status_int() {
    sd_in rollupctl status --json | grep -o "\"$1\":[0-9]*" | cut -d: -f2
}
status_is() { [[ $(status_int "$1") == "$2" ]]; }
psql_in() { sd_net "$PGBIN/psql" -X -q -At -h 127.0.0.1 -U postgres "$@"; }
pg_total() { psql_in -d rollupd -c 'SELECT coalesce(sum(total_requests), 0) FROM route_analytics_hourly'; }
pg_total_is() { [[ $(pg_total) == "$1" ]]; }
feed() {
    sd_net "$build/rollupd-loadgen" -u 127.0.0.1:6379 -s "$STREAM" -n "$1" --seed "$2" \
        --invalid-frac 0 --quiet >/dev/null 2>&1 || fail "rollupd-loadgen -n $1"
}
as_user() {
    local u=$1
    shift
    sd_in runuser -u "$u" -- "$@"
}

# write_conf PATH [EXTRA]: the test's configuration, servers on the container's loopback.
write_conf() {
    cat >"$sd_root$1" <<EOF
# rollupd.conf of tests/systemd/test_systemd.sh
redis: {
  url = "${REDIS_URL:-redis://127.0.0.1:6379/0}";
  stream = "$STREAM";
  consumer = "sd";
  block_ms = 500;
  connect_timeout_ms = 1000;
};
postgres: {
  conninfo = "${PG_CONNINFO:-host=127.0.0.1 port=5432 dbname=rollupd user=postgres}";
  connect_timeout_s = 1;
};
flush: { interval_ms = 3600000; max_events = 1000000; };
${2:-}
EOF
}

start_servers() {
    sd_in systemd-run -q --unit=test-redis -p Type=simple /usr/bin/redis-server --bind 127.0.0.1 \
        --port 6379 --save '' --appendonly no --dir /tmp || fail "systemd-run redis-server"
    sd_in runuser -u postgres -- "$PGBIN/initdb" -D /tmp/pg -U postgres --auth=trust --no-sync \
        >/dev/null || fail "initdb"
    sd_in systemd-run -q --unit=test-postgres -p User=postgres "$PGBIN/postgres" -D /tmp/pg \
        -c listen_addresses=127.0.0.1 -c port=5432 -c unix_socket_directories=/tmp -c fsync=off ||
        fail "systemd-run postgres"
    wait_for 20 "redis-server answers on the container's 127.0.0.1:6379" \
        sd_net redis-cli -h 127.0.0.1 -p 6379 ping
    wait_for 30 "PostgreSQL accepts connections on the container's 127.0.0.1:5432" \
        sd_net "$PGBIN/pg_isready" -q -h 127.0.0.1 -p 5432
    psql_in -d postgres -c 'CREATE DATABASE rollupd' || fail "CREATE DATABASE"
    ok "Redis and PostgreSQL run inside on 127.0.0.1 (transient units test-redis, test-postgres)"
}

# ======================================================================= boot 1
sd_boot rollupd-sd1 || fail "booting systemd"
ok "boot: systemd running as PID 1 after ${sd_boot_ms} ms"

# ---- install with the prefix given at install time ---------------------------------
if [[ $(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt") == /usr ]]; then
    fail "$build was configured with CMAKE_INSTALL_PREFIX=/usr; this step needs the default"
fi
DESTDIR=$sd_root cmake --install "$build" --prefix /usr >/dev/null || fail "cmake --install"
sd_in systemctl daemon-reload
exec_start=$(sd_in systemctl show -p ExecStart --value rollupd.service)
[[ $exec_start == *"path=/usr/sbin/rollupd ; argv[]=/usr/sbin/rollupd -c /etc/rollupd/rollupd.conf ;"* ]] ||
    fail "installed unit: ExecStart is not /usr/sbin/rollupd -c /etc/rollupd/rollupd.conf: $exec_start"
[[ -f $sd_root/etc/rollupd/rollupd.conf ]] || fail "no /etc/rollupd/rollupd.conf installed"
ok "cmake --install --prefix /usr: unit runs /usr/sbin/rollupd -c /etc/rollupd/rollupd.conf"

# ---- the static user -----------------------------------------------------------------
sd_in systemd-sysusers || fail "systemd-sysusers"
sd_in getent passwd rollupd >/dev/null || fail "systemd-sysusers created no user rollupd"
rollupd_uid=$(sd_in id -u rollupd)
sd_in useradd -M -N -G rollupd alice || fail "useradd alice"
sd_in useradd -M -N bob || fail "useradd bob"
ok "systemd-sysusers: static user rollupd (uid $rollupd_uid); alice in group rollupd, bob not"

start_servers

# ---- a configuration error at start --------------------------------------------------
write_conf /etc/rollupd/rollupd.conf 'log: { level = "loud"; };'
if sd_in systemctl start rollupd 2>/dev/null; then
    fail "systemctl start succeeded with an invalid configuration"
fi
wait_for 10 "journalctl -u rollupd -p warning shows the configuration error" \
    journal_has "rollupd: configuration error: " -p warning
ok "start with a bad file fails; journalctl -p warning: $(sd_in journalctl -u rollupd -p warning \
    -o cat --no-pager | grep -F 'configuration error' | head -n 1)"
sd_in systemctl stop rollupd
sd_in systemctl reset-failed rollupd 2>/dev/null

# ---- start: returns after READY=1 ----------------------------------------------------
write_conf /etc/rollupd/rollupd.conf
sd_in chown root:rollupd /etc/rollupd/rollupd.conf
sd_in chmod 0640 /etc/rollupd/rollupd.conf
sd_in systemctl start rollupd || fail "systemctl start rollupd"
[[ $(prop ActiveState)/$(prop SubState) == active/running ]] ||
    fail "systemctl start returned, but the unit is $(prop ActiveState)/$(prop SubState)"
health=$(sd_in rollupctl health) || fail "rollupctl health right after start: $health"
pid=$(prop MainPID)
# shellcheck disable=SC2016 # awk's $2
uid=$(sd_in awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
[[ $uid == "$rollupd_uid" ]] || fail "the daemon runs as uid $uid, not rollupd ($rollupd_uid)"
status_text=$(prop StatusText)
[[ $status_text == *"no flush yet"* && $status_text != *-1* ]] ||
    fail "STATUS= before the first flush: '$status_text'"
ok "systemctl start returned after READY: active/running, health $health, user rollupd"
ok "STATUS= before the first flush: $status_text"

# ---- rollupctl on the socket: group members only -------------------------------------
out=$(as_user alice rollupctl health) || fail "rollupctl health as alice (group rollupd): $out"
out=$(as_user alice rollupctl status) || fail "rollupctl status as alice: $out"
grep -q '^health *ok' <<<"$out" || fail "rollupctl status as alice: no 'health ok':\n$out"
ok "rollupctl status and health as alice (group rollupd): health ok"
if out=$(as_user bob rollupctl health 2>&1); then
    fail "rollupctl health as bob (not in group rollupd) succeeded: $out"
fi
grep -qi 'permission denied' <<<"$out" || fail "rollupctl as bob: not refused for permission: $out"
ok "rollupctl as bob (not in the group) refused: $out"

# ---- events, and SIGUSR1 flushes them ------------------------------------------------
feed 2000 1
wait_for 20 "the daemon consumes the 2000 events" status_is events_consumed 2000
[[ $(pg_total) == 0 ]] || fail "events in PostgreSQL before any flush (interval is 1 h)"
sd_in systemctl kill -s USR1 rollupd || fail "systemctl kill -s USR1"
wait_for 20 "SIGUSR1 flushes the 2000 events to PostgreSQL" pg_total_is 2000
ok "systemctl kill -s USR1 rollupd: 2000 events flushed"

# ---- STATUS= follows time without a flush --------------------------------------------
first=$(prop StatusText)
status_changed() { [[ $(prop StatusText) != "$first" ]]; }
wait_for 12 "STATUS= changes without a flush (was '$first')" status_changed
status_is flushes 1 || fail "a flush happened meanwhile; the STATUS= check proves nothing"
status_text=$(prop StatusText)
[[ $status_text == *"last flush "*" s ago"* ]] || fail "STATUS= after a flush: $status_text"
ok "STATUS= refreshed with no flush: '$first' -> '$status_text'"
out=$(sd_in systemctl status --no-pager -n 0 rollupd | grep 'Status:')
[[ $out == *"$status_text"* ]] || fail "systemctl status shows no current Status: line: $out"
ok "systemctl status: ${out#"${out%%[![:space:]]*}"}"

# ---- reload, good and bad ------------------------------------------------------------
pid=$(prop MainPID)
write_conf /etc/rollupd/rollupd.conf 'log: { level = "notice"; };'
sd_in systemctl reload rollupd || fail "systemctl reload (good file)"
wait_for 10 "the journal says the configuration was reloaded" \
    journal_has 'msg="configuration reloaded"'
[[ $(prop MainPID) == "$pid" && $(prop ActiveState) == active ]] ||
    fail "after a good reload: pid $(prop MainPID) (was $pid), $(prop ActiveState)"
ok "systemctl reload (good file): same pid $pid, configuration reloaded"
write_conf /etc/rollupd/rollupd.conf 'log: { level = "loud"; };'
sd_in systemctl reload rollupd || fail "systemctl reload (bad file)"
wait_for 10 "the journal (-p warning) says the bad reload was rejected" \
    journal_has 'msg="reload rejected; the running configuration stays"' -p warning
[[ $(prop MainPID) == "$pid" && $(prop ActiveState) == active ]] ||
    fail "after a bad reload: pid $(prop MainPID) (was $pid), $(prop ActiveState)"
sd_in rollupctl health >/dev/null || fail "not healthy after a rejected reload"
ok "systemctl reload (bad file): rejected in the log, same pid, still healthy"
write_conf /etc/rollupd/rollupd.conf

# ---- the watchdog restarts a stopped daemon ------------------------------------------
mkdir -p "$sd_root/run/systemd/system/rollupd.service.d"
printf '[Service]\nWatchdogSec=2s\n' >"$sd_root/run/systemd/system/rollupd.service.d/50-watchdog.conf"
sd_in systemctl daemon-reload
sd_in systemctl restart rollupd || fail "systemctl restart with WatchdogSec=2s"
pid=$(prop MainPID)
restarts=$(prop NRestarts)
sd_in kill -STOP "$pid" || fail "kill -STOP $pid"
restarted() {
    local p
    p=$(prop MainPID)
    [[ $p != 0 && $p != "$pid" && $(prop ActiveState) == active ]]
}
wait_for 30 "systemd restarts the SIGSTOPped daemon (pid $pid)" restarted
journal_has "rollupd.service: Failed with result 'watchdog'." ||
    fail "the journal has no \"Failed with result 'watchdog'\""
[[ $(prop NRestarts) -gt $restarts ]] || fail "NRestarts did not grow"
ok "WatchdogSec=2s, SIGSTOP: restarted (pid $pid -> $(prop MainPID)), result 'watchdog'"
rm -r "$sd_root/run/systemd/system/rollupd.service.d"
sd_in systemctl daemon-reload

# ---- stop: final flush, nothing pending ----------------------------------------------
wait_for 20 "the restarted daemon is healthy" sd_in rollupctl health
feed 1000 2
wait_for 20 "the daemon consumes 1000 more events" status_is events_consumed 1000
[[ $(pg_total) == 2000 ]] || fail "the 1000 events were flushed before the stop"
sd_in systemctl stop rollupd || fail "systemctl stop"
[[ $(pg_total) == 3000 ]] || fail "after systemctl stop PostgreSQL has $(pg_total) events, not 3000"
pending=$(sd_net redis-cli -h 127.0.0.1 XPENDING "$STREAM" rollupd | head -n 1)
[[ $pending == 0 ]] || fail "$pending entries pending in Redis after the stop"
[[ $(prop Result) == success && $(prop ExecMainStatus) == 0 ]] ||
    fail "after the stop: Result=$(prop Result) ExecMainStatus=$(prop ExecMainStatus)"
ok "systemctl stop: final flush (3000 events in PostgreSQL), 0 pending in Redis, result success"

# ---- peers outside IPAddressAllow=: dropped, timed out, and said so -------------------
sd_in ip addr add "$BAD_IP/32" dev lo || fail "ip addr add $BAD_IP"
# From outside the unit nothing listens there: refused at once.
if out=$(sd_net timeout 5 bash -c "exec 3<>/dev/tcp/$BAD_IP/5432" 2>&1); then
    fail "something listens on $BAD_IP:5432"
fi
[[ $out == *"refused"* ]] || fail "a connection to $BAD_IP:5432 from outside the unit: $out"
PG_CONNINFO="host=$BAD_IP port=5432 dbname=rollupd user=postgres" write_conf /etc/rollupd/rollupd.conf
sd_in systemctl start --no-block rollupd
wait_for 20 "rollupd says PostgreSQL at $BAD_IP timed out and names IPAddressAllow=" \
    journal_has "connect timed out (no answer: packets dropped, e.g. by the unit's IPAddressAllow="
ok "PostgreSQL at $BAD_IP (refused outside the unit): $(sd_in journalctl -u rollupd -o cat \
    --no-pager | grep -F 'connect timed out' | tail -n 1)"
sd_in systemctl stop rollupd
REDIS_URL="redis://$BAD_IP:6379/0" write_conf /etc/rollupd/rollupd.conf
since=$(sd_in date '+%Y-%m-%d %H:%M:%S')
sd_in systemctl start --no-block rollupd
wait_for 20 "rollupd says Redis at $BAD_IP timed out and names IPAddressAllow=" \
    journal_has "redis connection lost, reconnecting with backoff\" error=\"connect timed out (no answer: packets dropped, e.g. by the unit's IPAddressAllow=" --since "$since"
ok "Redis at $BAD_IP: $(sd_in journalctl -u rollupd -o cat --no-pager --since "$since" |
    grep -F 'connect timed out' | tail -n 1)"
sd_in systemctl stop rollupd
sd_halt
ok "boot 1 done after $((SECONDS - t0)) s"

# ======================================================================= boot 2: .deb
if [[ -z $deb || ! -f $deb ]]; then
    fail "no Debian package (build it with scripts/deb $build/deb, or give its path)"
fi
sd_boot rollupd-sd2 || fail "booting systemd (package)"
cp "$deb" "$sd_root/tmp/rollupd.deb"
sd_in dpkg -i /tmp/rollupd.deb >/dev/null || fail "dpkg -i $(basename "$deb")"
sd_in getent passwd rollupd >/dev/null || fail "the package created no user rollupd"
[[ $(prop LoadState) == loaded && $(prop UnitFileState) == disabled ]] ||
    fail "after dpkg -i: LoadState=$(prop LoadState) UnitFileState=$(prop UnitFileState)"
[[ $(prop ActiveState) == inactive ]] || fail "the package started the unconfigured service"
[[ $(sd_in stat -c '%U:%G %a' /etc/rollupd/rollupd.conf) == 'root:rollupd 640' ]] ||
    fail "/etc/rollupd/rollupd.conf is $(sd_in stat -c '%U:%G %a' /etc/rollupd/rollupd.conf)"
for f in /usr/share/man/man8/rollupd.8.gz /usr/share/man/man5/rollupd.conf.5.gz \
    /usr/share/man/man1/rollupctl.1.gz /usr/lib/sysusers.d/rollupd.conf; do
    [[ -f $sd_root$f ]] || fail "the package installed no $f"
done
ok "dpkg -i $(basename "$deb"): user rollupd, unit loaded, disabled and not started, conffile root:rollupd 0640"

start_servers
write_conf /etc/rollupd/rollupd.conf '# edited by the operator'
sd_in systemctl enable --now rollupd 2>/dev/null || fail "systemctl enable --now rollupd"
[[ $(prop ActiveState) == active ]] || fail "systemctl enable --now: $(prop ActiveState)"
feed 300 3
wait_for 20 "the packaged daemon consumes 300 events" status_is events_consumed 300
sd_in systemctl kill -s USR1 rollupd
wait_for 20 "the packaged daemon flushes on SIGUSR1" pg_total_is 300
ok "configured and enabled: running, 300 events flushed"

pid=$(prop MainPID)
sd_in dpkg -i /tmp/rollupd.deb >/dev/null </dev/null || fail "dpkg -i over itself"
grep -q '^# edited by the operator' "$sd_root/etc/rollupd/rollupd.conf" ||
    fail "the upgrade replaced the edited configuration"
[[ $(prop ActiveState) == active && $(prop MainPID) != "$pid" ]] ||
    fail "after the upgrade: $(prop ActiveState), pid $(prop MainPID) (was $pid)"
ok "dpkg -i over itself: edited configuration kept, service restarted (pid $pid -> $(prop MainPID))"

sd_in dpkg --purge rollupd >/dev/null || fail "dpkg --purge rollupd"
[[ $(prop ActiveState) == inactive && $(prop LoadState) == not-found ]] ||
    fail "after the purge: $(prop ActiveState), LoadState=$(prop LoadState)"
for f in /etc/rollupd /lib/systemd/system/rollupd.service /usr/sbin/rollupd /usr/bin/rollupctl \
    /usr/lib/sysusers.d/rollupd.conf /etc/systemd/system/multi-user.target.wants/rollupd.service \
    /usr/share/doc/rollupd; do
    [[ -e $sd_root$f || -L $sd_root$f ]] && fail "left after the purge: $f"
done
ok "dpkg --purge: stopped, unit gone, configuration and every file removed"
sd_halt
echo "test_systemd: all checks passed in $((SECONDS - t0)) s"
