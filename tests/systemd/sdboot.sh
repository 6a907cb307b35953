#!/bin/bash
# shellcheck disable=SC2034 # sd_root, sd_why and sd_boot_ms are for the caller
# sdboot.sh: boots systemd as PID 1 in fresh namespaces, for tests/systemd/test_systemd.sh.
#
# Sourced, it defines:
#   sd_check           0 when this machine can boot systemd here, else 1 with the reason in
#                      $sd_why (root, util-linux, systemd, a cgroup2 hierarchy, namespaces)
#   sd_boot NAME       boots; sets $sd_pid (PID 1 of the container, as seen from here) and
#                      $sd_root (/proc/$sd_pid/root); waits until the system is running
#   sd_in CMD...       runs CMD in all of the container's namespaces (systemctl, journalctl)
#   sd_net CMD...      runs CMD from this file system in the container's network namespace
#                      only (clients of the servers on the container's loopback)
#   sd_halt            SIGRTMIN+4 to PID 1 (poweroff), SIGKILL after a deadline, then
#                      removes the cgroup; safe to call twice and from an EXIT trap
#
# How: unshare --pid --fork --kill-child --mount --uts --ipc --net --cgroup, under setpriv
# --pdeathsig KILL so that nothing outlives the caller. The child (this file run with
# --pid1) mounts an overlay with the host's / as the lower layer and a tmpfs as the upper
# (nothing reaches the host), a read-only sysfs, cgroup2 at /sys/fs/cgroup, a minimal /dev
# (console bound to /dev/null), a tmpfs /tmp and /proc with /proc/sys read-only (systemd
# would change the host's sysctls), masks units that fail or only add noise in a container,
# pivots into the overlay and execs /lib/systemd/systemd. The launcher first moves itself
# into a new cgroup2 sub-group, so that the cgroup namespace's root is an empty group that
# systemd may manage (on a hybrid host the cgroup2 hierarchy is /sys/fs/cgroup/unified).

SD_BOOT_DEADLINE=${SD_BOOT_DEADLINE:-30} # seconds from exec to "running"
SD_HALT_DEADLINE=10                      # seconds from SIGRTMIN+4 to SIGKILL

# Units masked in the container: terminals, clock, kernel settings, devices, periodic
# jobs, and the distribution's own Redis and PostgreSQL (the test starts its own).
SD_MASK=(console-getty.service getty@tty1.service getty.target systemd-timesyncd.service
    systemd-sysctl.service systemd-modules-load.service systemd-binfmt.service
    proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount systemd-udevd.service
    systemd-udev-trigger.service systemd-udev-settle.service systemd-udevd-control.socket
    systemd-udevd-kernel.socket e2scrub_all.service e2scrub_reap.service e2scrub_all.timer
    redis-server.service postgresql.service timers.target apt-daily.timer
    apt-daily-upgrade.timer dpkg-db-backup.timer man-db.timer fstrim.timer
    systemd-tmpfiles-clean.timer)

# ---- the child: becomes PID 1 -------------------------------------------------------
if [[ ${1:-} == --pid1 ]]; then
    set -eu
    name=$2
    mount --make-rprivate /
    w=$(mktemp -d /tmp/sdboot.XXXXXX)
    mount -t tmpfs -o mode=0755 sdboot "$w"
    mkdir "$w/upper" "$w/work" "$w/root"
    mount -t overlay overlay -o "lowerdir=/,upperdir=$w/upper,workdir=$w/work" "$w/root"
    r=$w/root
    mount -t proc proc "$r/proc"
    mount --bind "$r/proc/sys" "$r/proc/sys"
    mount -o remount,bind,ro "$r/proc/sys"
    mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$r/sys"
    mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$r/sys/fs/cgroup"
    mount -t tmpfs -o mode=0755,nosuid tmpfs "$r/dev"
    for n in null zero full random urandom tty; do
        touch "$r/dev/$n"
        mount --bind "/dev/$n" "$r/dev/$n"
    done
    touch "$r/dev/console"
    mount --bind /dev/null "$r/dev/console"
    mkdir "$r/dev/pts" "$r/dev/shm"
    mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$r/dev/pts"
    ln -s pts/ptmx "$r/dev/ptmx"
    ln -s /proc/self/fd "$r/dev/fd"
    ln -s /proc/self/fd/0 "$r/dev/stdin"
    ln -s /proc/self/fd/1 "$r/dev/stdout"
    ln -s /proc/self/fd/2 "$r/dev/stderr"
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$r/tmp"
    mkdir -p "$r/etc/systemd/system"
    for u in "${SD_MASK[@]}"; do
        ln -sf /dev/null "$r/etc/systemd/system/$u"
    done
    # a booted system, not an image being built: maintainer scripts may start services
    rm -f "$r/usr/sbin/policy-rc.d"
    # a fresh machine: no machine id, no journal of the host's
    : >"$r/etc/machine-id"
    rm -rf "$r/var/log/journal"
    hostname "$name"
    cd "$r"
    mkdir -p .oldroot
    pivot_root . .oldroot
    exec chroot . /bin/sh -c 'umount -l /.oldroot && rmdir /.oldroot &&
        exec env -i container=rollupd-test TERM=dumb /lib/systemd/systemd \
            systemd.unit=multi-user.target systemd.show_status=false' </dev/null >/dev/null 2>&1
fi

# ---- the library ----------------------------------------------------------------------
sd_pid=
sd_root=
sd_launcher=
sd_cgroup=
sd_why=

# The cgroup2 hierarchy: /sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a
# hybrid one.
sd_cgroup2() {
    awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo
}

sd_check() {
    local t
    if [[ $(id -u) != 0 ]]; then
        sd_why="not root (booting systemd in namespaces needs root)"
        return 1
    fi
    for t in unshare nsenter setpriv pivot_root chroot; do
        if ! command -v "$t" >/dev/null 2>&1; then
            sd_why="$t not found (util-linux)"
            return 1
        fi
    done
    if [[ ! -x /lib/systemd/systemd ]]; then
        sd_why="/lib/systemd/systemd not found (apt-get install systemd)"
        return 1
    fi
    local cg
    cg=$(sd_cgroup2)
    if [[ -z $cg || ! -w $cg/cgroup.procs ]]; then
        sd_why="no writable cgroup2 hierarchy (systemd needs one)"
        return 1
    fi
    if ! unshare --pid --fork --mount --uts --ipc --net --cgroup true 2>/dev/null; then
        sd_why="cannot create pid, mount, uts, ipc, net and cgroup namespaces"
        return 1
    fi
    if ! grep -qw overlay /proc/filesystems; then
        sd_why="no overlay file system in this kernel"
        return 1
    fi
    return 0
}

# Waits until PID 1 answers and the system is running. Prints the boot time.
sd_boot() {
    local name=$1 self start cg
    self=$(readlink -f "${BASH_SOURCE[0]}")
    cg=$(sd_cgroup2)
    sd_cgroup=$cg/rollupd-sdboot-$$
    mkdir "$sd_cgroup"
    start=$(date +%s%N)
    (
        echo "$BASHPID" >"$sd_cgroup/cgroup.procs"
        exec setpriv --pdeathsig KILL unshare --pid --fork --kill-child --mount --uts --ipc \
            --net --cgroup bash "$self" --pid1 "$name"
    ) &
    sd_launcher=$!
    local deadline=$((SECONDS + SD_BOOT_DEADLINE)) state=
    while ((SECONDS < deadline)); do
        if [[ -z $sd_pid ]]; then
            sd_pid=$(cat "/proc/$sd_launcher/task/$sd_launcher/children" 2>/dev/null) || true
            sd_pid=${sd_pid%% *}
        fi
        if [[ -n $sd_pid && $(readlink "/proc/$sd_pid/exe" 2>/dev/null) == */systemd ]]; then
            sd_root=/proc/$sd_pid/root
            state=$(sd_in systemctl is-system-running 2>/dev/null) || true
            case $state in
            running | degraded) break ;;
            esac
        fi
        if ! kill -0 "$sd_launcher" 2>/dev/null; then
            echo "sdboot: the launcher exited before systemd ran" >&2
            return 1
        fi
        sleep 0.1
    done
    case $state in
    running) ;;
    degraded)
        echo "sdboot: system degraded; failed units:" >&2
        sd_in systemctl --failed --no-legend >&2 || true
        ;;
    *)
        echo "sdboot: systemd did not reach running within ${SD_BOOT_DEADLINE}s (state: ${state:-none})" >&2
        [[ -n $sd_pid ]] && sd_in systemctl list-jobs --no-legend >&2
        return 1
        ;;
    esac
    sd_boot_ms=$((($(date +%s%N) - start) / 1000000))
    echo "sdboot: systemd $(sd_in systemctl --version | head -n 1 | cut -d' ' -f2) running as PID 1 of $name after ${sd_boot_ms} ms (host pid $sd_pid)"
}

sd_in() {
    nsenter -t "$sd_pid" -a "$@"
}

sd_net() {
    nsenter -t "$sd_pid" -n "$@"
}

sd_halt() {
    if [[ -n $sd_launcher ]] && kill -0 "$sd_launcher" 2>/dev/null; then
        [[ -n $sd_pid ]] && kill -s SIGRTMIN+4 "$sd_pid" 2>/dev/null
        local deadline=$((SECONDS + SD_HALT_DEADLINE))
        while kill -0 "$sd_launcher" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.1
        done
        if kill -0 "$sd_launcher" 2>/dev/null; then
            echo "sdboot: PID 1 did not power off within ${SD_HALT_DEADLINE}s: SIGKILL" >&2
            [[ -n $sd_pid ]] && kill -KILL "$sd_pid" 2>/dev/null
            kill -KILL "$sd_launcher" 2>/dev/null
        fi
        wait "$sd_launcher" 2>/dev/null
    fi
    if [[ -n $sd_cgroup && -d $sd_cgroup ]]; then
        local deadline=$((SECONDS + SD_HALT_DEADLINE))
        while ! find "$sd_cgroup" -depth -type d -exec rmdir {} + 2>/dev/null &&
            ((SECONDS < deadline)); do
            sleep 0.1
        done
        [[ -d $sd_cgroup ]] && echo "sdboot: could not remove $sd_cgroup" >&2
    fi
    sd_pid='' sd_root='' sd_launcher='' sd_cgroup=''
}
