#!/usr/bin/env bash
# Interleaved A/B of two kosh binaries on this shared machine: closed loop only (64 in flight,
# 15 s, fresh SQLite database each run), alternating A and B so both see the same background load.
#   scripts/bench-ab.sh BINARY_A BINARY_B [rounds]
# Prints one line per run with lifecycles/s and the 1-minute load average before → after.
set -euo pipefail
A="$1"; B="$2"; ROUNDS="${3:-2}"
run() {
    local kosh="$1" work
    work="$(mktemp -d /tmp/kosh-ab.XXXXXX)"
    export KOSH_MASTER_KEY_FILE="$work/master.key" KOSH_TEST_APPROVAL_DELAY_MS=0 KOSH_LOG_LEVEL=warning
    "$kosh" serve --port 8077 --database "sqlite://$work/kosh.sqlite" >/dev/null 2>&1 & local server=$!
    for _ in $(seq 1 100); do curl -sf http://127.0.0.1:8077/healthz >/dev/null && break; sleep 0.1; done
    local before after result
    before="$(cut -d' ' -f1 /proc/loadavg)"
    result="$("$kosh" bench lifecycles --url http://127.0.0.1:8077 --database "sqlite://$work/kosh.sqlite" --duration 15 --concurrency 64 | grep '^lifecycles:')"
    after="$(cut -d' ' -f1 /proc/loadavg)"
    kill "$server"; wait "$server" 2>/dev/null || true
    echo "$kosh  $result  load $before → $after"
    rm -rf "$work"
}
for _ in $(seq 1 "$ROUNDS"); do run "$A"; run "$B"; done
