#!/bin/bash
# certs.sh: a throw-away certificate authority for the TLS tests (sourced; it sources
# tests/container/common.sh too).
#   make_ca DIR NAME           DIR/NAME.key, DIR/NAME.crt: a self-signed CA
#   make_cert DIR CA NAME      DIR/NAME.key, DIR/NAME.crt signed by DIR/CA.crt, valid for
#                              localhost and 127.0.0.1 (subjectAltName), one day
#   consumed_is N              rollupd on $sock has read N events
# shellcheck source=tests/container/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../container/common.sh"

# consumed_is N: the rollupd answering on $sock has read N events (a flush commits what has
# been read, no more)
consumed_is() {
    grep -q "\"events_consumed\": *$1[,}]" <<<"$("$build/rollupctl" -s "${sock:?}" status --json)"
}

make_ca() {
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=rollupd test $2" \
        -keyout "$1/$2.key" -out "$1/$2.crt" 2>/dev/null
}

make_cert() {
    local dir=$1 ca=$2 name=$3
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$dir/$name.key" \
        -out "$dir/$name.csr" 2>/dev/null &&
        openssl x509 -req -in "$dir/$name.csr" -CA "$dir/$ca.crt" -CAkey "$dir/$ca.key" \
            -CAcreateserial -days 1 -out "$dir/$name.crt" \
            -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n') 2>/dev/null
}

# pick_port: a TCP port nothing listens on, from a high range
pick_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + RANDOM % 20000))
        if ! awk -v p=":$(printf '%04X' "$p")" 'NR > 1 && substr($2, length($2) - 4) == p \
            { f = 1 } END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}
