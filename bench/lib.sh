# bench/lib.sh: the set-up bench/pairs, bench/rediscost, bench/owncost and bench/replywalk
# share, sourced (not run) from the repository's top directory after each has read its
# options.
#   bench_prepare NAME   installs what is missing (scripts/deps), builds Release into
#                        build-bench/ (as bench/run does), empties bench/out/NAME ($out),
#                        makes a scratch directory ($run) and starts a private redis-server
#                        and PostgreSQL (scripts/testenv in bench/out/NAME-servers, $srv),
#                        whose addresses it reads ($RU_REDIS_PORT, $RU_PG_PORT, ...). On
#                        exit it calls bench_on_exit when the script defines one, then stops
#                        the servers and removes $run.
#   bench_prefill STREAM N MIX
#                        turns Redis's append-only file off and writes N loadgen events of
#                        --mix MIX into STREAM (seed 42, 3 hours), its log in $out.
# shellcheck shell=bash
# shellcheck disable=SC2034  # used by the scripts that source this file
PY=/usr/bin/python3
# shellcheck disable=SC2034
PSQL=/usr/lib/postgresql/15/bin/psql

bench_prepare() {
    scripts/deps
    cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DRU_TESTS=OFF >/dev/null
    cmake --build build-bench -j "$(nproc)" \
        --target rollupd rollupctl rollupd-loadgen rollupd-bench-ceiling >/dev/null
    out=bench/out/$1
    srv=bench/out/$1-servers
    rm -rf "$out"
    mkdir -p "$out"
    run=$(mktemp -d "/tmp/rollupd-$1.XXXXXX")
    trap 'if declare -F bench_on_exit >/dev/null; then bench_on_exit; fi
          scripts/testenv stop "$srv" >/dev/null 2>&1 || true; rm -rf "$run"' EXIT
    scripts/testenv start "$srv" >/dev/null 2>"$out/testenv.log"
    # shellcheck disable=SC1091
    . "$srv/env"
}

bench_prefill() {
    redis-cli -p "$RU_REDIS_PORT" config set appendonly no >/dev/null
    build-bench/rollupd-loadgen -p "$RU_REDIS_PORT" -s "$1" -n "$2" --seed 42 --hours 3 \
        --mix "$3" --quiet 2>"$out/prefill.log"
}
