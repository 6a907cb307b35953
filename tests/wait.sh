#!/bin/bash
# wait.sh: the deadline loop the shell tests share (sourced; the caller defines fail).
#
# wait_for SECONDS DESCRIPTION CMD...: runs CMD every 0.1 s until it succeeds; when
# SECONDS pass first, fails the test with "DESCRIPTION: not within SECONDSs".
wait_for() {
    local secs=$1 what=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || fail "$what: not within ${secs}s"
        sleep 0.1
    done
}
