#!/bin/bash
# test_image.sh: the real image, built from the Dockerfile with podman and run the way ECS
# runs it: --read-only with a tmpfs on /run/rollupd, configuration from ROLLUPD_* variables
# only, its HEALTHCHECK, stopped with SIGTERM. The same scenario as test_ns.sh
# (ct_scenario in common.sh), plus: PID 1 of the container is rollupd, it runs as the
# image's user rollupd (uid 10001), the root file system is read-only, and
# `podman healthcheck run` (the image's HEALTHCHECK) passes.
#
# No container registry is reachable from the test machines, so the base image is made
# here: debootstrap --variant=minbase bookworm from the Debian mirror in apt's sources,
# imported as localhost/rollupd-base:bookworm and passed to the Dockerfile's
# BUILD_IMAGE and RUN_IMAGE (podman build --pull=never: nothing is fetched from a
# registry). The base's tarball is cached in BUILD_DIR/container-image.
#
# usage: tests/container/test_image.sh BUILD_DIR   (RU_TESTENV: scripts/testenv's env file)
# Exit status: 0 passed, 1 failed, 77 skipped (the reason is printed).
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)
# shellcheck source=tests/container/common.sh
source "$here/common.sh"

[[ $# -eq 1 && -x $1/rollupd-loadgen ]] || fail "usage: $0 BUILD_DIR (with rollupd-loadgen)"
build=$(cd "$1" && pwd)

skip() {
    echo "SKIP: $*"
    exit 77
}
[[ $(id -u) == 0 ]] || skip "not root (debootstrap and podman's storage here need root)"
command -v podman >/dev/null || skip "podman not found (apt-get install podman; scripts/deps does)"
command -v debootstrap >/dev/null || skip "debootstrap not found (apt-get install debootstrap)"

# Can podman run a container here at all? (The host's own / as the root file system: no
# image needed.) Where it cannot, say exactly why and skip before the slow part.
if ! probe=$(timeout 120 podman run --rm --network host --rootfs / /bin/true 2>&1); then
    skip "podman cannot run a container on this machine: $(tail -n 1 <<<"$probe")$(
        grep -q '!cap_sys_resource' <(capsh --print 2>/dev/null) &&
            echo " (this machine withholds CAP_SYS_RESOURCE even from root, so the OCI runtime cannot set the container's RLIMIT_NOFILE/RLIMIT_NPROC)")"
fi

BASE=localhost/rollupd-base:bookworm
IMAGE=localhost/rollupd:test
cache=$build/container-image
mkdir -p "$cache"

# ---- the base image, made locally -------------------------------------------------------
mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null |
    head -n 1)
[[ -n $mirror ]] || mirror=$(awk '$1 == "deb" && $2 ~ /^http/ && $2 !~ /security/ { print $2; exit }' \
    /etc/apt/sources.list 2>/dev/null)
[[ -n $mirror ]] || mirror=http://deb.debian.org/debian
if ! podman image exists "$BASE"; then
    if [[ ! -s $cache/bookworm-minbase.tar ]]; then
        echo "debootstrap bookworm from $mirror (cached in $cache)"
        rm -rf "$cache/rootfs"
        debootstrap --variant=minbase bookworm "$cache/rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
            skip "debootstrap from $mirror failed (no mirror reachable?): $(tail -n 3 "$cache/debootstrap.log")"
        tar -C "$cache/rootfs" -cf "$cache/bookworm-minbase.tar.part" . ||
            fail "cannot archive the base"
        mv "$cache/bookworm-minbase.tar.part" "$cache/bookworm-minbase.tar"
        rm -rf "$cache/rootfs"
    fi
    podman import "$cache/bookworm-minbase.tar" "$BASE" >/dev/null ||
        skip "podman cannot import an image on this machine (podman import failed)"
fi
pass "base image $BASE (debootstrap minbase bookworm)"

# ---- the image ---------------------------------------------------------------------------
t0=$SECONDS
if ! podman build --pull=never --network=host --build-arg BUILD_IMAGE="$BASE" \
    --build-arg RUN_IMAGE="$BASE" -t "$IMAGE" "$src" >"$cache/build.log" 2>&1; then
    if grep -qiE 'cannot (re)?mount|overlay.*not supported|operation not permitted|newuidmap' \
        "$cache/build.log"; then
        skip "podman cannot run build containers here: $(grep -iE 'mount|overlay|permitted|uidmap' "$cache/build.log" | tail -n 1)"
    fi
    fail "podman build failed: $(tail -n 20 "$cache/build.log")"
fi
pass "podman build in $((SECONDS - t0)) s"
podman image inspect -f '{{.Config.User}} {{.Config.Entrypoint}}' "$IMAGE"

# ---- running it as ECS would -------------------------------------------------------------
ct_init
RT_ROLLUPCTL=/usr/bin/rollupctl
CID=
names=()
cleanup() {
    local n
    for n in "${names[@]}"; do podman rm -f "$n" >/dev/null 2>&1; done
    ct_sql "DROP DATABASE IF EXISTS $DB" "$RU_PG_DB" >/dev/null 2>&1
    ct_redis DEL "$STREAM" "$STREAM:dead" >/dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 1' INT TERM # so that EXIT's cleanup runs on a timeout too

rt_start() {
    local name=ct-$$-$1 args=() e
    shift
    for e in "$@"; do args+=(-e "$e"); done
    names+=("$name")
    CID=$(podman run -d --name "$name" --network host --read-only \
        --tmpfs /run/rollupd:uid=10001,gid=10001,mode=0750 --stop-timeout "$STOP_TIMEOUT" \
        "${args[@]}" "$IMAGE") || fail "podman run failed"
}

rt_running() {
    [[ $(podman inspect -f '{{.State.Running}}' "$CID" 2>/dev/null) == true ]]
}

rt_exit_status() {
    RT_STATUS=$(podman inspect -f '{{.State.ExitCode}}' "$CID")
}

rt_log() {
    podman logs "$CID" 2>&1
}

rt_exec() {
    podman exec "$CID" "$@"
}

rt_signal() {
    podman kill --signal "$1" "$CID" >/dev/null
}

rt_inspect() {
    [[ $(podman exec "$CID" cat /proc/1/comm) == rollupd ]] || fail "PID 1 is not rollupd"
    [[ $(podman exec "$CID" id -u) == 10001 ]] || fail "not running as uid 10001"
    if podman exec "$CID" touch /etc/probe 2>/dev/null; then
        fail "the root file system is writable"
    fi
    podman healthcheck run "$CID" || fail "podman healthcheck run (the image's HEALTHCHECK) failed"
    pass "rollupd is PID 1, uid 10001, on a read-only root; the image's HEALTHCHECK passes"
}

ct_scenario
echo "PASS: $(basename "$0")"
