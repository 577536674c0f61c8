#!/usr/bin/env bash
# Reproduces BENCHMARKS.md on this machine: release build, server and load tool on the same box.
#   scripts/bench.sh [sqlite|postgres] [duration-seconds]
# For postgres, set BENCH_POSTGRES_URL=postgres://user@127.0.0.1:PORT/db (an empty database;
# pgbench runs against it too).
set -euo pipefail
cd "$(dirname "$0")/.."
DB_KIND="${1:-sqlite}"
DURATION="${2:-20}"
KOSH=.build/release/kosh
[ -x "$KOSH" ] || swift build -c release
WORK="$(mktemp -d /tmp/kosh-bench.XXXXXX)"
export KOSH_MASTER_KEY_FILE="$WORK/master.key"
export KOSH_TEST_APPROVAL_DELAY_MS=0   # the test rail answers at once: measure the gateway, not a payer
export KOSH_LOG_LEVEL=warning
if [ "$DB_KIND" = postgres ]; then
    DB="${BENCH_POSTGRES_URL:?set BENCH_POSTGRES_URL}"
else
    DB="sqlite://$WORK/kosh.sqlite"
fi
echo "commit: $(git rev-parse --short HEAD)  database: $DB_KIND  cores: $(nproc)"

$KOSH bench bare-server --port 8099 & BARE=$!
sleep 1
echo "== bare Hummingbird route (ceiling), same client, 64 concurrent"
$KOSH bench bare --url http://127.0.0.1:8099 --duration 10 --concurrency 64
kill $BARE; wait $BARE 2>/dev/null || true

$KOSH serve --port 8088 --database "$DB" & SERVER=$!
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:8088/healthz >/dev/null && break; sleep 0.1; done
echo "== capacity: closed loop, 64 lifecycles in flight, 20% refunds"
$KOSH bench lifecycles --url http://127.0.0.1:8088 --database "$DB" --duration "$DURATION" --concurrency 64
echo "== latency: open loop at 1,200 lifecycles/s"
$KOSH bench lifecycles --url http://127.0.0.1:8088 --database "$DB" --duration "$DURATION" --rate 1200
echo "== RSS of the server after the runs: $(ps -o rss= -p $SERVER) KiB"
kill -TERM $SERVER; wait $SERVER 2>/dev/null || true
echo "== ledger verify"
$KOSH ledger verify --database "$DB"
echo "== ledger micro-benchmark"
$KOSH bench ledger --database "$DB" --entries 5000 --batch 1 --batch 10 --batch 100
if [ "$DB_KIND" = postgres ]; then
    echo "== pgbench (TPC-B-like), same machine, same run"
    pgbench -i -s 10 "$DB" >/dev/null 2>&1
    pgbench -c 16 -j 2 -T "$DURATION" "$DB" 2>/dev/null | grep -E 'tps|latency'
fi
rm -rf "$WORK"
