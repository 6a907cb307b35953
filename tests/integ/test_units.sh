#!/bin/bash
# test_units.sh: checks the systemd unit(s) in systemd/ and the manual pages in man/.
#
# usage: tests/integ/test_units.sh [BUILD_DIR]
#
# 1. The unit has the settings the daemon relies on (Type=notify, NotifyAccess=main,
#    WatchdogSec=, ExecReload= with kill -HUP, Restart=on-failure, ...).
# 2. `systemd-analyze security --offline=true` rates it at an overall exposure of 1.0 or
#    less.
# 3. `systemd-analyze verify` accepts it without a single message. verify insists that
#    the ExecStart=/ExecStartPre= binary exists, and the unit names the installed path
#    /usr/sbin/rollupd, so a copy is verified in which that path is replaced by
#    BUILD_DIR/rollupd (or by /bin/true when no build directory is given) and
#    /etc/rollupd/rollupd.conf by the shipped etc/rollupd.conf. verify also runs
#    `man` for each Documentation= page: MANPATH points at the pages of man/.
# 4. With a build directory, the ExecStartPre= command of that copy (rollupd -t on the
#    shipped configuration) succeeds.
# 5. The sysusers.d entry parses (systemd-sysusers --dry-run into an empty root).
# 6. The manual pages render without warnings (MANWIDTH=80 man --warnings -l).
# 7. With a build directory, `cmake --install BUILD_DIR --prefix /usr` (into a DESTDIR)
#    installs a unit that runs /usr/sbin/rollupd -c /etc/rollupd/rollupd.conf and the
#    configuration in /etc/rollupd, whatever prefix the build was configured with.
#
# Exit status: 0 all passed, 1 a check failed, 77 systemd-analyze is missing (skipped).
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${1:-}
max_exposure=1.0

failures=0
ok() { printf 'ok    %s\n' "$*"; }
fail() {
    printf 'FAIL  %s\n' "$*" >&2
    failures=$((failures + 1))
}
indent() { sed 's/^/      /' >&2; }

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "SKIP: systemd-analyze not found (apt-get install systemd)" >&2
    exit 77
fi
echo "systemd-analyze: $(systemd-analyze --version | head -n 1)"

work=$(mktemp -d "${TMPDIR:-/tmp}/test_units.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

if [ -n "$build" ]; then
    bin="$(cd "$build" 2>/dev/null && pwd)/rollupd"
    if [ ! -x "$bin" ]; then
        echo "FAIL  $bin: no rollupd binary in the build directory '$build'" >&2
        exit 1
    fi
else
    bin=/bin/true
    echo "note: no build directory given; verifying with ExecStart=/bin/true"
fi

# Man pages in a MANPATH layout, for verify's Documentation= check.
mkdir -p "$work/man/man1" "$work/man/man5" "$work/man/man8" "$work/units"
for page in "$top"/man/*.[158]; do
    [ -e "$page" ] || continue
    sec=${page##*.}
    cp "$page" "$work/man/man$sec/"
done

units=()
for u in "$top"/systemd/*.service "$top"/systemd/*.socket; do
    [ -e "$u" ] && units+=("$u")
done
if [ ${#units[@]} -eq 0 ]; then
    echo "FAIL  no unit files in $top/systemd" >&2
    exit 1
fi

svc="$top/systemd/rollupd.service"

# ---- 1. required settings ------------------------------------------------------------
# has KEY REGEX DESCRIPTION: an uncommented line KEY=... matching REGEX.
has() {
    if grep -Eq "^[[:space:]]*$1=$2" "$svc"; then
        ok "rollupd.service: $3"
    else
        fail "rollupd.service: $3 (expected a line matching '$1=$2')"
    fi
}
if [ ! -f "$svc" ]; then
    fail "$svc is missing"
else
    has Type 'notify[[:space:]]*$' 'Type=notify'
    has NotifyAccess 'main[[:space:]]*$' 'NotifyAccess=main'
    has WatchdogSec '[1-9]' 'WatchdogSec= is set'
    # shellcheck disable=SC2016 # $MAINPID is literal text in the unit
    has ExecReload '(/usr)?/bin/kill[[:space:]]+-HUP[[:space:]]+\$MAINPID' \
        'ExecReload= sends SIGHUP to $MAINPID'
    has Restart 'on-failure[[:space:]]*$' 'Restart=on-failure'
    has ExecStart '/usr/sbin/rollupd[[:space:]]+-c[[:space:]]+/etc/rollupd/rollupd\.conf' \
        'ExecStart= runs /usr/sbin/rollupd -c /etc/rollupd/rollupd.conf'
    has ExecStartPre '/usr/sbin/rollupd[[:space:]].*-t([[:space:]]|$)' \
        'ExecStartPre= checks the configuration (-t)'
    has TimeoutStopSec '[1-9]' 'TimeoutStopSec= leaves time for the final flush'
    has RuntimeDirectory 'rollupd[[:space:]]*$' 'RuntimeDirectory=rollupd (status socket)'
    has RestrictAddressFamilies '.*AF_UNIX' 'AF_UNIX allowed (status socket, sd_notify)'
    has RestrictAddressFamilies '.*AF_INET6?[[:space:]].*AF_INET6?' \
        'AF_INET and AF_INET6 allowed (Redis, PostgreSQL)'
fi

# ---- 2. exposure -----------------------------------------------------------------------
for u in "${units[@]}"; do
    case $u in *.service) ;; *) continue ;; esac
    name=$(basename "$u")
    out=$(systemd-analyze security --offline=true --no-pager "$u" 2>&1)
    rc=$?
    score=$(printf '%s\n' "$out" | sed -n 's/.*[Oo]verall exposure level for [^:]*: *\([0-9][0-9]*\.[0-9]\).*/\1/p' | tail -n 1)
    if [ -z "$score" ]; then
        fail "$name: no overall exposure in the output of systemd-analyze security (exit $rc)"
        printf '%s\n' "$out" | tail -n 20 | indent
        continue
    fi
    if awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s + 0 <= m + 0) }'; then
        ok "$name: systemd-analyze security: overall exposure $score (at most $max_exposure)"
    else
        fail "$name: systemd-analyze security: overall exposure $score, above $max_exposure"
        printf '%s\n' "$out" | grep -F '✗' | indent
    fi
done

# ---- 3. verify -------------------------------------------------------------------------
for u in "${units[@]}"; do
    name=$(basename "$u")
    sed -e "s#/usr/sbin/rollupd#$bin#g" \
        -e "s#/etc/rollupd/rollupd\.conf#$top/etc/rollupd.conf#g" "$u" >"$work/units/$name"
done
man_opt=()
if ! command -v man >/dev/null 2>&1; then
    man_opt=(--man=no)
    echo "note: man not found; verify skips the Documentation= pages"
fi
for u in "${units[@]}"; do
    name=$(basename "$u")
    out=$(MANPATH="$work/man" systemd-analyze verify "${man_opt[@]}" "$work/units/$name" 2>&1)
    rc=$?
    if [ $rc -eq 0 ] && [ -z "$out" ]; then
        ok "$name: systemd-analyze verify is clean (ExecStart binary: $bin)"
    else
        fail "$name: systemd-analyze verify (exit $rc):"
        printf '%s\n' "$out" | indent
    fi
done

# ---- 4. ExecStartPre ---------------------------------------------------------------------
if [ -n "$build" ]; then
    pre=$(sed -n 's/^[[:space:]]*ExecStartPre=//p' "$work/units/rollupd.service" | head -n 1)
    if [ -z "$pre" ]; then
        fail "rollupd.service: no ExecStartPre= to run"
    else
        # shellcheck disable=SC2086 # the command line is split as systemd splits it here
        if out=$($pre 2>&1); then
            ok "ExecStartPre ($pre) accepts the shipped etc/rollupd.conf"
        else
            fail "ExecStartPre ($pre) failed:"
            printf '%s\n' "$out" | indent
        fi
    fi
fi

# ---- 5. sysusers.d -----------------------------------------------------------------------
if [ -f "$top/systemd/rollupd.sysusers" ]; then
    if command -v systemd-sysusers >/dev/null 2>&1; then
        mkdir -p "$work/root/etc"
        if out=$(systemd-sysusers --dry-run --root="$work/root" - \
            <"$top/systemd/rollupd.sysusers" 2>&1) &&
            printf '%s\n' "$out" | grep -q "user 'rollupd'"; then
            ok "rollupd.sysusers: declares user and group rollupd"
        else
            fail "rollupd.sysusers: systemd-sysusers --dry-run:"
            printf '%s\n' "$out" | indent
        fi
    else
        echo "note: systemd-sysusers not found; rollupd.sysusers not checked"
    fi
fi

# ---- 6. manual pages ---------------------------------------------------------------------
if command -v man >/dev/null 2>&1; then
    for page in "$top"/man/*.[158]; do
        [ -e "$page" ] || continue
        out=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
        rc=$?
        if [ $rc -eq 0 ] && [ -z "$out" ]; then
            ok "man/$(basename "$page"): renders without warnings"
        else
            fail "man/$(basename "$page"): man --warnings (exit $rc):"
            printf '%s\n' "$out" | indent
        fi
    done
else
    echo "note: man not found; manual pages not checked"
fi

# ---- 7. install-time prefix ------------------------------------------------------------
if [ -n "$build" ]; then
    if out=$(DESTDIR="$work/inst" cmake --install "$build" --prefix /usr 2>&1); then
        unit=$work/inst/usr/lib/systemd/system/rollupd.service
        if grep -q '^ExecStart=/usr/sbin/rollupd -c /etc/rollupd/rollupd\.conf$' "$unit" 2>/dev/null &&
            [ -f "$work/inst/etc/rollupd/rollupd.conf" ] && [ -x "$work/inst/usr/sbin/rollupd" ]; then
            ok "cmake --install --prefix /usr: unit runs /usr/sbin/rollupd -c /etc/rollupd/rollupd.conf"
        else
            fail "cmake --install --prefix /usr: unit or configuration not at the /usr paths:"
            grep '^Exec' "$unit" 2>&1 | indent
            printf '%s\n' "$out" | indent
        fi
    else
        fail "cmake --install --prefix /usr failed:"
        printf '%s\n' "$out" | indent
    fi
fi

if [ $failures -ne 0 ]; then
    echo "test_units: $failures check(s) failed" >&2
    exit 1
fi
echo "test_units: all checks passed"
