#!/bin/bash
# test_redis_tls.sh: rollupd to a Redis that speaks only TLS (as ElastiCache with in-transit
# encryption), through a TLS sidecar: hiredis 0.14.1 (Debian 12's) has no TLS, so stunnel
# in client mode beside rollupd accepts plain connections on loopback and opens verified
# TLS connections to Redis (docs: README "Redis over TLS").
#   - redis-server --port 0 --tls-port P with a certificate of the test's CA (openssl);
#   - stunnel4 client, configured by examples/stunnel-redis.conf with this test's ports, CA
#     and host: accept 127.0.0.1:L, connect 127.0.0.1:P, verifyChain, checkHost localhost;
#   - rollupd with ROLLUPD_REDIS_URL=redis://127.0.0.1:L/0 reads events the producer wrote
#     over TLS and flushes them to PostgreSQL; health ok;
#   - a sidecar that trusts another CA: the TLS handshake fails, rollupd's health is
#     down (redis unreachable) and stunnel's log names the verification failure.
#
# usage: tests/tls/test_redis_tls.sh BUILD_DIR   (RU_TESTENV: scripts/testenv's env file,
# for PostgreSQL). Exit status: 0 passed, 1 failed.
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/tls/certs.sh
source "$here/certs.sh"
ct_args "$@"
command -v stunnel4 >/dev/null || fail "stunnel4 not found (scripts/deps installs it)"

ct_init
work=$(mktemp -d /tmp/rollupd-redistls.XXXXXX)
declare -a pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    wait 2>/dev/null
    ct_sql "DROP DATABASE IF EXISTS $DB" "$RU_PG_DB" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM # so that EXIT's cleanup runs on a timeout too

if ! { make_ca "$work" ca && make_cert "$work" ca redis && make_ca "$work" other; }; then
    fail "openssl could not make the certificates"
fi
tport=$(pick_port) || fail "no free port"
redis-server --port 0 --tls-port "$tport" --bind 127.0.0.1 --tls-cert-file "$work/redis.crt" \
    --tls-key-file "$work/redis.key" --tls-ca-cert-file "$work/ca.crt" --tls-auth-clients no \
    --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
rtls() {
    redis-cli --tls --cacert "$work/ca.crt" -h localhost -p "$tport" "$@"
}
wait_for 10 "redis-server answers over TLS ($(tail -n 3 "$work/redis.log"))" rtls PING
pass "redis-server with TLS only on 127.0.0.1:$tport"

# sidecar NAME CAFILE: the documented sidecar (examples/stunnel-redis.conf) with this test's
# ports, CA and host name, on a fresh loopback port (LPORT)
sidecar() {
    LPORT=$(pick_port) || fail "no free port"
    sed -e "s|^accept = .*|accept = 127.0.0.1:$LPORT|" \
        -e "s|^connect = .*|connect = 127.0.0.1:$tport|" -e "s|^CAfile = .*|CAfile = $2|" \
        -e "s|^checkHost = .*|checkHost = localhost|" -e "s|^pid =|output = $work/$1.log\\npid =|" \
        "$here/../../examples/stunnel-redis.conf" >"$work/$1.conf"
    grep -q "^accept = 127.0.0.1:$LPORT" "$work/$1.conf" || fail "the example changed shape"
    stunnel4 "$work/$1.conf" >/dev/null 2>&1 &
    pids+=($!)
    wait_for 10 "stunnel listens on $LPORT" bash -c "exec 3<>/dev/tcp/127.0.0.1/$LPORT"
}

run_rollupd() {
    sock=$work/$1.sock
    log=$work/$1.log.rollupd
    env ROLLUPD_REDIS_URL="redis://127.0.0.1:$LPORT/0" ROLLUPD_PG_CONNINFO="$CONNINFO" \
        ROLLUPD_STREAM="$STREAM" ROLLUPD_GROUP="$GROUP" ROLLUPD_CONSUMER="$1" \
        ROLLUPD_STATUS_SOCKET="$sock" ROLLUPD_LOG_FORMAT=logfmt \
        "$build/rollupd" -c /dev/null >"$log" 2>&1 &
    rpid=$!
    pids+=("$rpid")
}
health_says() {
    [[ $("$build/rollupctl" -s "$sock" health 2>&1) == "$1"* ]]
}

# ---- through a sidecar that trusts the CA ----------------------------------------------
sidecar good "$work/ca.crt"
run_rollupd good
wait_for 30 "health ok through stunnel ($(tail -n 3 "$log"))" health_says ok
# the producer writes over TLS (loadgen has no TLS either: it goes through the sidecar)
RU_REDIS_HOST=127.0.0.1 RU_REDIS_PORT=$LPORT feed 1000
[[ $(rtls XLEN "$STREAM") == 1000 ]] || fail "the stream on the TLS server is not there"
wait_for 30 "rollupd read the $VALID events" consumed_is "$VALID"
"$build/rollupctl" -s "$sock" flush >/dev/null || fail "rollupctl flush"
sum=$(ct_sql "SELECT coalesce(sum(total_requests), 0) FROM route_analytics_hourly")
[[ $sum == "$VALID" ]] || fail "rows count $sum events, want $VALID"
none_pending() {
    [[ $(rtls XPENDING "$STREAM" "$GROUP" | head -n 1) == 0 ]]
}
wait_for 10 "the entries acknowledged on the TLS server (XACK follows the COMMIT)" none_pending
kill -TERM "$rpid"
wait "$rpid" || fail "rollupd exited with status $? on SIGTERM"
pass "through stunnel: $VALID events read from the TLS-only Redis and flushed"

# ---- a sidecar that trusts another CA ---------------------------------------------------
sidecar wrong "$work/other.crt"
run_rollupd wrong
wait_for 30 "health down behind a sidecar with the wrong CA ($(tail -n 3 "$log"))" \
    health_says "down: redis unreachable"
wait_for 10 "stunnel logs the certificate failure" \
    grep -qi 'certificate verify failed' "$work/wrong.log"
grep -m 1 -i 'certificate verify failed' "$work/wrong.log"
pass "another CA: the handshake fails (stunnel's log), health down: $("$build/rollupctl" -s "$sock" health)"
echo "PASS: $(basename "$0")"
