#!/bin/bash
# common.sh: what the container tests share (sourced): the private servers of the test kit,
# a fresh database and stream, feeding events, deadlines, and the final-flush check.
#
#   ct_env               reads $RU_TESTENV (scripts/testenv's env file); sets STREAM, GROUP,
#                        DB, CONNINFO (for the host's loopback)
#   ct_init              ct_env, and creates the database DB
#   wait_for S DESC CMD  (tests/wait.sh) runs CMD every 100 ms until it succeeds, or fails
#                        the test naming DESC after S seconds
#   feed N               writes N events with rollupd-loadgen; adds the valid ones to VALID
#   check_flushed        the hourly rows count VALID events and nothing is pending in Redis
#   ct_scenario          what a container runtime does with rollupd (see below)
#   fail MSG / pass MSG  print and exit 1 / print
#
# Expects $build (the build directory, with rollupd-loadgen) to be set.

# shellcheck source=tests/wait.sh
source "$(dirname "${BASH_SOURCE[0]}")/../wait.sh"

# ct_args "$@": the script's one argument, the build directory (with rollupd), as $build
ct_args() {
    [[ $# -eq 1 && -x $1/rollupd ]] || fail "usage: $0 BUILD_DIR (with rollupd, rollupctl, rollupd-loadgen)"
    build=$(cd "$1" && pwd)
}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

pass() {
    echo "ok: $*"
}

ct_sql() {
    psql -X -q -t -A -h "$RU_PG_HOST" -p "$RU_PG_PORT" -U "$RU_PG_USER" -d "${2:-$DB}" -c "$1"
}

ct_redis() {
    redis-cli -h "$RU_REDIS_HOST" -p "$RU_REDIS_PORT" "$@"
}

ct_env() {
    [[ -n ${RU_TESTENV:-} && -r $RU_TESTENV ]] ||
        fail "RU_TESTENV does not name scripts/testenv's env file (run under ctest)"
    # shellcheck disable=SC1090
    source "$RU_TESTENV"
    local tag
    tag=$(basename "$0" .sh)_$$
    STREAM="ct:$tag:stream"
    GROUP="ct:$tag:group"
    DB="ct_${tag}"
    # shellcheck disable=SC2034 # for the sourcing test
    CONNINFO="host=$RU_PG_HOST port=$RU_PG_PORT dbname=$DB user=$RU_PG_USER"
}

ct_init() {
    ct_env
    ct_sql "CREATE DATABASE $DB" "$RU_PG_DB" || fail "cannot create database $DB"
}

feed() {
    local out
    out=$("${build:?}/rollupd-loadgen" -h "$RU_REDIS_HOST" -p "$RU_REDIS_PORT" -s "$STREAM" \
        -n "$1" --seed 7 --quiet 2>&1 | tail -n 1)
    local v
    v=$(sed -n 's/.* valid=\([0-9]*\).*/\1/p' <<<"$out")
    [[ -n $v ]] || fail "loadgen: $out"
    VALID=$((${VALID:-0} + v))
}

check_flushed() {
    local sum pending
    sum=$(ct_sql "SELECT coalesce(sum(total_requests), 0) FROM route_analytics_hourly")
    [[ $sum == "$VALID" ]] || fail "hourly rows count $sum events, want $VALID"
    pending=$(ct_redis XPENDING "$STREAM" "$GROUP" | head -n 1)
    [[ $pending == 0 ]] || fail "$pending entries still pending in Redis"
}

# ---- the scenario both container tests run ---------------------------------------------
# A runner defines:
#   rt_start NAME VAR=VALUE...  starts rollupd as its container, configured by these
#                               variables only (returns at once; it may exit at once)
#   rt_running                  0 while that container runs
#   rt_exit_status              sets RT_STATUS to its exit status, once it has exited
#   rt_log                      prints its log so far
#   rt_exec CMD...              runs CMD in the container (namespaces, root, user)
#   rt_signal SIG               sends SIG to its PID 1, as the runtime's stop does
#   rt_inspect                  checks PID 1, user and read-only root (fails the test)
# and RT_ROLLUPCTL, the path of rollupctl inside the container.
STOP_TIMEOUT=30 # ECS' default stopTimeout

ct_health_is() {
    local st
    rt_exec "$RT_ROLLUPCTL" -t 4000 health >/dev/null 2>&1
    st=$?
    [[ $st == "$1" ]]
}

# ct_health_says PREFIX: the health check's answer starts with PREFIX
ct_health_says() {
    [[ $(rt_exec "$RT_ROLLUPCTL" -t 4000 health 2>&1) == "$1"* ]]
}

# ct_status_is KEY N: rollupctl status --json has "KEY": N
ct_status_is() {
    local st
    st=$(rt_exec "$RT_ROLLUPCTL" -t 4000 status --json)
    grep -q "\"$1\": *$2[,}]" <<<"$st"
}

ct_exited() {
    ! rt_running
}

ct_wait_exit() {
    local deadline=$((SECONDS + $1))
    while rt_running && ((SECONDS < deadline)); do sleep 0.05; done
    ! rt_running || fail "still running $1 s after SIGTERM"
}

ct_scenario() {
    local env=(ROLLUPD_REDIS_URL="redis://$RU_REDIS_HOST:$RU_REDIS_PORT/0"
        ROLLUPD_PG_CONNINFO="$CONNINFO" ROLLUPD_STREAM="$STREAM" ROLLUPD_GROUP="$GROUP"
        ROLLUPD_CONSUMER=ct-1 ROLLUPD_FLUSH_INTERVAL_MS=600000 ROLLUPD_REDIS_BLOCK_MS=200
        ROLLUPD_LOG_FORMAT=json)
    local st ms t0 out line

    rt_start bad "${env[@]}" ROLLUPD_MAX_MEMORY_MB=lots
    wait_for 20 "rollupd refuses a bad ROLLUPD_MAX_MEMORY_MB" ct_exited
    rt_exit_status
    st=$RT_STATUS
    [[ $st == 1 ]] || fail "a bad ROLLUPD_MAX_MEMORY_MB: exit $st, want 1 ($(rt_log))"
    grep -q '"msg":"configuration error: ROLLUPD_MAX_MEMORY_MB: expected an integer"' <<<"$(rt_log)" ||
        fail "the refusal does not name the variable: $(rt_log)"
    pass "a bad value in the environment is refused naming the variable, exit 1"

    rt_start run "${env[@]}"
    wait_for 30 "health ok -> exit 0 ($(rt_log | tail -n 5))" ct_health_is 0
    rt_inspect
    pass "health ok -> exit 0"

    feed 3000
    wait_for 20 "rollupd read the $VALID events" ct_status_is events_consumed "$VALID"
    rt_signal USR1
    wait_for 20 "the flush asked by SIGUSR1" ct_status_is flushes 1
    # degraded: the consumer group destroyed under it is recreated after the checkpoint
    ct_redis XGROUP DESTROY "$STREAM" "$GROUP" >/dev/null
    wait_for 20 "health degraded after the group was destroyed" ct_health_is 1
    pass "health degraded -> exit 1 ($(rt_exec "$RT_ROLLUPCTL" health 2>&1))"

    feed 2000 # only the final flush writes these
    wait_for 20 "rollupd read all $VALID events" ct_status_is events_consumed "$VALID"
    t0=$(date +%s%N)
    rt_signal TERM
    ct_wait_exit "$STOP_TIMEOUT"
    ms=$((($(date +%s%N) - t0) / 1000000))
    rt_exit_status
    st=$RT_STATUS
    [[ $st == 0 ]] || fail "exit status $st after SIGTERM ($(rt_log | tail -n 5))"
    grep -q '"msg":"stopping: final flush"' <<<"$(rt_log)" || fail "no final flush in the log"
    check_flushed
    pass "SIGTERM -> final flush -> exit 0 in $ms ms; $VALID events in PostgreSQL, none pending"
    while IFS= read -r line; do
        [[ $line == '{"level":'*'"time":'*'"msg":'*'}' ]] || fail "not a JSON log line: $line"
    done < <(rt_log)
    pass "every log line is JSON"

    # down: started with Redis refusing connections (port 1: nothing listens there)
    rt_start down "${env[@]}" ROLLUPD_REDIS_URL="redis://127.0.0.1:1/0"
    wait_for 30 "health says down: redis unreachable (log: $(rt_log | tail -n 3))" \
        ct_health_says "down: redis unreachable"
    out=$(rt_exec "$RT_ROLLUPCTL" health 2>&1)
    st=$?
    [[ $st == 2 ]] || fail "health says '$out' with exit $st, want 2"
    pass "health down -> exit 2 ($out)"
    rt_exec "$RT_ROLLUPCTL" -s /run/rollupd/absent.sock -t 1000 health >/dev/null 2>&1
    st=$?
    [[ $st == 2 ]] || fail "rollupctl health with no answer: exit $st, want 2"
    pass "no answer -> exit 2"
    rt_signal TERM
    ct_wait_exit "$STOP_TIMEOUT"
}
