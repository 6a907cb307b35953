#!/bin/bash
# test_pg_tls.sh: rollupd to a PostgreSQL that requires TLS, as RDS does (rds.force_ssl).
# The test makes a CA and a server certificate (openssl), starts its own PostgreSQL 15 with
# ssl = on and a pg_hba.conf that accepts only TLS (hostssl; hostnossl rejected), and runs
# rollupd configured from the environment with
#   ROLLUPD_PG_CONNINFO="host=127.0.0.1 ... sslmode=verify-full sslrootcert=CA"
#   - with the right CA: health ok, events flushed, and its session is encrypted
#     (pg_stat_ssl);
#   - with another CA: the connection is refused, health is down and the log says why
#     (certificate verify failed), and nothing is written;
#   - with sslmode=disable: refused by the server (no unencrypted connections).
#
# usage: tests/tls/test_pg_tls.sh BUILD_DIR   (RU_TESTENV: scripts/testenv's env file, for
# Redis). Exit status: 0 passed, 1 failed, 77 skipped (not root: the cluster runs as the
# postgres user).
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/tls/certs.sh
source "$here/certs.sh"
ct_args "$@"
[[ $(id -u) == 0 ]] || { echo "SKIP: not root (the cluster runs as user postgres)"; exit 77; }
PGBIN=/usr/lib/postgresql/15/bin
[[ -x $PGBIN/postgres ]] || fail "$PGBIN/postgres missing (scripts/deps installs postgresql-15)"

ct_env
work=$(mktemp -d /tmp/rollupd-pgtls.XXXXXX)
chmod 755 "$work"
pgpid=
rpid=
# fast shutdown of the postmaster (runuser, its parent, does not pass SIGINT on)
stop_pg() {
    local pm i
    [[ -n $pgpid ]] || return 0
    pm=$(head -n 1 "$work/data/postmaster.pid" 2>/dev/null)
    [[ -n $pm ]] && kill -INT "$pm" 2>/dev/null
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pgpid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pgpid" 2>/dev/null
    wait "$pgpid" 2>/dev/null
    pgpid=
}
cleanup() {
    [[ -n $rpid ]] && kill -KILL "$rpid" 2>/dev/null
    stop_pg
    ct_redis DEL "$STREAM" "$STREAM:dead" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM # so that EXIT's cleanup runs on a timeout too

if ! { make_ca "$work" ca && make_cert "$work" ca server && make_ca "$work" other; }; then
    fail "openssl could not make the certificates"
fi
install -o postgres -m 0600 "$work/server.key" "$work/pg-server.key"
mkdir -p "$work/data" && chown postgres: "$work/data"
runuser -u postgres -- "$PGBIN/initdb" -D "$work/data" -A trust -U postgres --no-sync \
    >"$work/initdb.log" 2>&1 || fail "initdb: $(tail -n 5 "$work/initdb.log")"
cat >"$work/data/pg_hba.conf" <<HBA
hostssl all all 127.0.0.1/32 trust
hostnossl all all 127.0.0.1/32 reject
HBA
port=$(pick_port) || fail "no free port"
runuser -u postgres -- "$PGBIN/postgres" -D "$work/data" -p "$port" -k "" \
    -c listen_addresses=127.0.0.1 -c fsync=off -c ssl=on \
    -c ssl_cert_file="$work/server.crt" -c ssl_key_file="$work/pg-server.key" \
    >"$work/pg.log" 2>&1 &
pgpid=$!
wait_for 30 "PostgreSQL with ssl = on accepts connections ($(tail -n 3 "$work/pg.log"))" \
    "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$port"
tls="host=127.0.0.1 port=$port user=postgres dbname=genonaut sslmode=verify-full"
psql -X -q "host=127.0.0.1 port=$port user=postgres dbname=postgres sslmode=require" \
    -c "CREATE DATABASE genonaut" || fail "cannot create the database over TLS"
pass "PostgreSQL 15 on 127.0.0.1:$port with ssl = on, TLS only"

# run_rollupd NAME CONNINFO: rollupd from the environment, its socket and log in $work
run_rollupd() {
    sock=$work/$1.sock
    log=$work/$1.log
    env -u PGSSLMODE ROLLUPD_REDIS_URL="redis://$RU_REDIS_HOST:$RU_REDIS_PORT/0" \
        ROLLUPD_PG_CONNINFO="$2" ROLLUPD_STREAM="$STREAM" ROLLUPD_GROUP="$GROUP" \
        ROLLUPD_CONSUMER="$1" ROLLUPD_STATUS_SOCKET="$sock" ROLLUPD_LOG_FORMAT=logfmt \
        ROLLUPD_PG_CONNECT_TIMEOUT_S=5 "$build/rollupd" -c /dev/null >"$log" 2>&1 &
    rpid=$!
}
stop_rollupd() {
    kill -TERM "$rpid"
    wait "$rpid" || fail "rollupd exited with status $? on SIGTERM ($(tail -n 3 "$log"))"
    rpid=
}
health_says() {
    [[ $("$build/rollupctl" -s "$sock" health 2>&1) == "$1"* ]]
}

# ---- verify-full with the right CA -----------------------------------------------------
run_rollupd good "$tls sslrootcert=$work/ca.crt"
wait_for 30 "health ok over verify-full ($(tail -n 3 "$log"))" health_says ok
feed 1000
wait_for 30 "rollupd read the $VALID events" consumed_is "$VALID"
"$build/rollupctl" -s "$sock" flush >/dev/null || fail "rollupctl flush"
sum=$(psql -X -t -A "$tls sslrootcert=$work/ca.crt" \
    -c "SELECT coalesce(sum(total_requests), 0) FROM route_analytics_hourly")
[[ $sum == "$VALID" ]] || fail "rows count $sum events, want $VALID"
enc=$(psql -X -t -A "$tls sslrootcert=$work/ca.crt" -c "SELECT count(*) FROM pg_stat_ssl s \
    JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'rollupd' AND s.ssl")
((enc >= 1)) || fail "rollupd's session is not encrypted (pg_stat_ssl)"
stop_rollupd
pass "sslmode=verify-full with the test's CA: $VALID events flushed over TLS"

# ---- another CA: refused, and said so ---------------------------------------------------
run_rollupd wrong "$tls sslrootcert=$work/other.crt"
wait_for 30 "health down with the wrong CA ($(tail -n 3 "$log"))" health_says "down:"
wait_for 30 "the log names the certificate failure" grep -q 'certificate verify failed' "$log"
grep -m 1 'certificate verify failed' "$log"
stop_rollupd
pass "another CA: refused, health down, 'certificate verify failed' in the log"

# ---- without TLS: the server refuses ---------------------------------------------------
run_rollupd plain "host=127.0.0.1 port=$port user=postgres dbname=genonaut sslmode=disable"
wait_for 30 "the refusal of an unencrypted connection is logged" \
    grep -q 'no encryption' "$log"
stop_rollupd
pass "sslmode=disable: refused by the server (hostnossl reject)"
echo "PASS: $(basename "$0")"
