#!/usr/bin/env bash
# Interleaved A/B of two kosh binaries on this shared machine: closed loop only (64 in flight,
# 15 s, a fresh database each run), alternating A and B so both see the same background load.
#   scripts/bench-ab.sh BINARY_A BINARY_B [rounds]
# SQLite by default; with AB_POSTGRES=postgres://user@host:port each run gets a fresh PostgreSQL
# database there (created with psql, dropped afterwards).
# Prints one line per run with lifecycles/s and the 1-minute load average before → after.
set -euo pipefail
A="$1"; B="$2"; ROUNDS="${3:-2}"
run() {
    local kosh="$1" work
    work="$(mktemp -d /tmp/kosh-ab.XXXXXX)"
    export KOSH_MASTER_KEY_FILE="$work/master.key" KOSH_VAULT_DIR="$work/kosh-vault" KOSH_TEST_APPROVAL_DELAY_MS=0 KOSH_LOG_LEVEL=warning
    local database="sqlite://$work/kosh.sqlite" dbname=""
    if [ -n "${AB_POSTGRES:-}" ]; then
        dbname="kosh_ab_$(date +%s%N)"
        psql "$AB_POSTGRES/postgres" -qc "CREATE DATABASE $dbname" >/dev/null
        database="$AB_POSTGRES/$dbname"
    fi
    "$kosh" serve --port 8077 --database "$database" >/dev/null 2>&1 & local server=$!
    for _ in $(seq 1 100); do curl -sf http://127.0.0.1:8077/healthz >/dev/null && break; sleep 0.1; done
    local before after result
    before="$(cut -d' ' -f1 /proc/loadavg)"
    result="$("$kosh" bench lifecycles --url http://127.0.0.1:8077 --database "$database" --duration 15 --concurrency 64 | grep '^lifecycles:')"
    after="$(cut -d' ' -f1 /proc/loadavg)"
    # The server's CPU time (user + system, clock ticks) per lifecycle: steadier than the rate
    # on a shared machine, since it does not depend on how much CPU the server was given.
    local ticks count
    ticks="$(awk '{print $14 + $15}' "/proc/$server/stat")"
    count="$(echo "$result" | awk '{print $2}')"
    kill "$server"; wait "$server" 2>/dev/null || true
    echo "$kosh  $result  server CPU $(awk -v t="$ticks" -v n="$count" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", t / hz * 1e6 / n }') µs/lifecycle  load $before → $after"
    rm -rf "$work"
    if [ -n "$dbname" ]; then psql "$AB_POSTGRES/postgres" -qc "DROP DATABASE $dbname" >/dev/null; fi
}
for _ in $(seq 1 "$ROUNDS"); do run "$A"; run "$B"; done
