#!/bin/bash
# nsrun.sh: runs a command the way a container runtime runs an image's entrypoint.
#
# usage: unshare --pid --fork --kill-child --mount --propagation private \
#            tests/container/nsrun.sh ROOT UID CMD [ARG...]
#
# Run as PID 1 of new PID and mount namespaces (the unshare line above), it makes ROOT a
# read-only bind of the host's / (so the build tree is there, read-only), with a fresh
# /proc, the host's /dev, and a tmpfs /run holding only /run/rollupd (owned by UID, mode
# 0750: the one writable place, like `--read-only --tmpfs /run/rollupd`); nothing else is
# writable, not even /tmp. Then it execs CMD chrooted into ROOT as UID:UID with no
# supplementary groups and no new privileges, with an environment of only the ROLLUPD_*
# and PG* variables it was given: CMD is PID 1, as rollupd is in its image.
set -euo pipefail

root=$1
uid=$2
shift 2

mount --bind / "$root"
mount -o remount,bind,ro,nosuid,nodev "$root"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=0755,nosuid,nodev,size=16m tmpfs "$root/run"
install -d -o "$uid" -g "$uid" -m 0750 "$root/run/rollupd"

env=()
while IFS= read -r name; do
    case $name in
    ROLLUPD_* | PG*) env+=("$name=${!name}") ;;
    esac
done < <(compgen -e)

exec chroot "$root" setpriv --reuid="$uid" --regid="$uid" --clear-groups --no-new-privs \
    -- /usr/bin/env -i "${env[@]}" "$@"
