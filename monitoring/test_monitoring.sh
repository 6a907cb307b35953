#!/bin/bash
# test_monitoring.sh: the monitoring kit against promtool and a live rollupd.
#   - promtool check rules and promtool test rules (rollupd.rules.test.yml) pass;
#   - every rollupd_* metric named by the alert rules and by the Grafana dashboard (its
#     queries and template variables) is one a running rollupd exports: the names are
#     compared with `rollupctl metrics` of a rollupd started on the test kit's servers
#     (a histogram counts with its _bucket, _sum and _count series);
#   - promtool check metrics accepts that exposition.
#
# usage: monitoring/test_monitoring.sh BUILD_DIR   (RU_TESTENV: scripts/testenv's env file)
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/container/common.sh
source "$here/../tests/container/common.sh"

[[ $# -eq 1 && -x $1/rollupd ]] || fail "usage: $0 BUILD_DIR"
build=$(cd "$1" && pwd)
command -v promtool >/dev/null || fail "promtool not found (apt-get install prometheus; scripts/deps does)"

promtool check rules "$here/rollupd.rules.yml" || fail "promtool check rules"
(cd "$here" && promtool test rules rollupd.rules.test.yml) || fail "promtool test rules"
pass "promtool check rules, promtool test rules"

ct_init
work=$(mktemp -d)
pid=
cleanup() {
    [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null
    wait 2>/dev/null
    ct_sql "DROP DATABASE IF EXISTS $DB" "$RU_PG_DB" >/dev/null 2>&1
    ct_redis DEL "$STREAM" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM # so that EXIT's cleanup runs on a timeout too

sock=$work/rollupd.sock
env ROLLUPD_REDIS_URL="redis://$RU_REDIS_HOST:$RU_REDIS_PORT/0" ROLLUPD_PG_CONNINFO="$CONNINFO" \
    ROLLUPD_STREAM="$STREAM" ROLLUPD_GROUP="$GROUP" ROLLUPD_CONSUMER=mon-1 \
    ROLLUPD_STATUS_SOCKET="$sock" ROLLUPD_LOG_FORMAT=logfmt \
    "$build/rollupd" -c /dev/null >"$work/rollupd.log" 2>&1 &
pid=$!
wait_for 20 "rollupd healthy ($(cat "$work/rollupd.log" 2>/dev/null))" \
    "$build/rollupctl" -s "$sock" health
"$build/rollupctl" -s "$sock" metrics >"$work/metrics" || fail "rollupctl metrics"
kill -TERM "$pid"
wait "$pid" || fail "rollupd exited with status $? on SIGTERM"
pid=

# exported: every "# TYPE name kind", with a histogram's series
declare -A have=()
while read -r _ _ name kind; do
    have[$name]=1
    if [[ $kind == histogram ]]; then
        have[${name}_bucket]=1 have[${name}_sum]=1 have[${name}_count]=1
    fi
done < <(grep '^# TYPE ' "$work/metrics")
((${#have[@]} > 20)) || fail "only ${#have[@]} metrics in rollupctl metrics"

missing=()
for f in "$here/rollupd.rules.yml" "$here/rollupd.dashboard.json"; do
    n=0
    while read -r m; do
        n=$((n + 1))
        [[ -n ${have[$m]:-} ]] || missing+=("$(basename "$f"): $m")
    done < <(grep -o 'rollupd_[a-z0-9_]*[a-z0-9]' "$f" | sort -u)
    ((n > 0)) || fail "$f names no rollupd metric"
    pass "$(basename "$f"): $n distinct metrics named"
done
((${#missing[@]} == 0)) || fail "not exported by rollupd: ${missing[*]}"
pass "every metric the rules and the dashboard name is exported (${#have[@]} series names)"

promtool check metrics <"$work/metrics" || fail "promtool check metrics"
pass "promtool check metrics"
echo "PASS: $(basename "$0")"
