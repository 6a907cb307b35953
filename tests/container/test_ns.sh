#!/bin/bash
# test_ns.sh: rollupd run the way a container runtime runs the image's entrypoint, with no
# image: PID 1 of new PID and mount namespaces (unshare), a read-only root with only
# /run/rollupd writable (nsrun.sh), an unprivileged user, configuration from ROLLUPD_*
# variables only (no -c; /etc/rollupd/rollupd.conf does not exist there unless the host
# has one), JSON logs. ct_scenario (common.sh) checks:
#   - a bad value in the environment is refused naming the variable (exit 1);
#   - rollupd is PID 1 in its namespace, runs as the unprivileged user, its root is
#     mounted read-only;
#   - the health check command (rollupctl health, as the image's HEALTHCHECK runs it, in
#     the container's namespaces and root) exits 0 when healthy, 1 when degraded (the
#     consumer group destroyed and recreated), 2 when down (Redis refusing connections)
#     and 2 when nothing answers;
#   - SIGTERM from outside (the runtime's stop) gives the final flush: every event read is
#     in PostgreSQL, nothing is pending in Redis, exit status 0 within ECS' 30 s.
#
# usage: tests/container/test_ns.sh BUILD_DIR   (RU_TESTENV: scripts/testenv's env file)
# Exit status: 0 passed, 1 failed, 77 skipped (the reason is printed).
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/container/common.sh
source "$here/common.sh"

[[ $# -eq 1 && -x $1/rollupd ]] || fail "usage: $0 BUILD_DIR (with rollupd, rollupctl, rollupd-loadgen)"
build=$(cd "$1" && pwd)

if [[ $(id -u) != 0 ]]; then
    echo "SKIP: not root (new PID and mount namespaces and bind mounts need root)"
    exit 77
fi
for t in unshare nsenter setpriv chroot; do
    command -v "$t" >/dev/null || { echo "SKIP: $t not found (util-linux)"; exit 77; }
done
if ! unshare --pid --fork --mount true 2>/dev/null; then
    echo "SKIP: this machine refuses new PID and mount namespaces (unshare --pid --mount failed)"
    exit 77
fi
if [[ -e /etc/rollupd/rollupd.conf ]]; then
    echo "SKIP: /etc/rollupd/rollupd.conf exists: rollupd without -c would read it"
    exit 77
fi

ct_init
work=$build/container-ns/$$
mkdir -p "$work/root"
UID_RUN=65534 # nobody
RT_ROLLUPCTL=$build/rollupctl
LAUNCHER=
PID1=

declare -a started_pids=()
cleanup() {
    local p
    # PID 1 first: unshare --kill-child's parent-death signal does not survive setpriv's
    # change of user, so killing the launcher alone would leave rollupd running
    for p in "${started_pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    [[ -n $LAUNCHER ]] && kill -KILL "$LAUNCHER" 2>/dev/null
    wait 2>/dev/null
    ct_sql "DROP DATABASE IF EXISTS $DB" "$RU_PG_DB" >/dev/null 2>&1
    ct_redis DEL "$STREAM" "$STREAM:dead" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM # so that EXIT's cleanup runs on a timeout too

child_of() {
    local c
    c=$(cat "/proc/$1/task/$1/children" 2>/dev/null) || return 1
    [[ -n $c ]] && echo "${c%% *}"
}

# PID 1 exists, or the launcher has exited already (a refused configuration)
started() {
    child_of "$LAUNCHER" || ! kill -0 "$LAUNCHER" 2>/dev/null
}

rt_start() {
    local name=$1
    shift
    LOG=$work/$name.log
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@" \
        unshare --pid --fork --kill-child --mount --propagation private \
        "$here/nsrun.sh" "$work/root" "$UID_RUN" "$build/rollupd" >"$LOG" 2>&1 &
    LAUNCHER=$!
    wait_for 10 "the namespace's PID 1 exists" started
    PID1=$(child_of "$LAUNCHER") || PID1=
    [[ -n $PID1 ]] && started_pids+=("$PID1")
}

rt_running() {
    kill -0 "$LAUNCHER" 2>/dev/null && [[ -z $(awk '$1 == "State:" && $2 == "Z"' \
        "/proc/$LAUNCHER/status" 2>/dev/null) ]]
}

# unshare exits with its child's status
rt_exit_status() {
    wait "$LAUNCHER"
    RT_STATUS=$?
}

rt_log() {
    cat "$LOG"
}

rt_exec() {
    nsenter -t "$PID1" --mount --pid --root --wd \
        setpriv --reuid="$UID_RUN" --regid="$UID_RUN" --clear-groups -- "$@"
}

rt_signal() {
    kill -"$1" "$PID1"
}

rt_inspect() {
    grep -Eq '^NSpid:[[:space:]]+[0-9]+[[:space:]]+1$' "/proc/$PID1/status" ||
        fail "rollupd is not PID 1 in its namespace: $(grep NSpid "/proc/$PID1/status")"
    [[ $(cat "/proc/$PID1/comm") == rollupd ]] || fail "PID 1 is $(cat "/proc/$PID1/comm")"
    [[ $(stat -c %u "/proc/$PID1") == "$UID_RUN" ]] || fail "rollupd does not run as $UID_RUN"
    awk '$5 == "/" { print $6 }' "/proc/$PID1/mountinfo" | grep -q '^ro' ||
        fail "the root is not read-only: $(awk '$5 == "/"' "/proc/$PID1/mountinfo")"
    pass "rollupd is PID 1, uid $UID_RUN, on a read-only root"
}

ct_scenario
echo "PASS: $(basename "$0")"
