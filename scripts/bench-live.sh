#!/usr/bin/env bash
# Live mode: what the gateway adds on top of the rail. The sandbox (a separate process, real HTTP)
# answers every rail call after exactly RAIL_MS; payers approve at once; Kosh routes, calls the
# rail, records attempts, takes the callback. payment.create's latency minus RAIL_MS is the
# gateway's own overhead on that request.
#   scripts/bench-live.sh [rail-latency-ms] [lifecycles-per-second] [duration-seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
RAIL_MS="${1:-20}"
RATE="${2:-200}"
DURATION="${3:-20}"
KOSH="${KOSH:-.build/release/kosh}"
[ -x "$KOSH" ] || swift build -c release
WORK="$(mktemp -d /tmp/kosh-bench-live.XXXXXX)"
export KOSH_MASTER_KEY_FILE="$WORK/master.key" KOSH_LOG_LEVEL=warning
export KOSH_RAILS_URL=http://127.0.0.1:8199 KOSH_RAILS_SECRET="bench-live-$RANDOM$RANDOM"
# The sandbox is also the SMS / push provider, so customers' notifications go out as they would.
export KOSH_NOTIFY_PROVIDER_URL=http://127.0.0.1:8199
DB="sqlite://$WORK/kosh.sqlite"
echo "commit: $(git rev-parse --short HEAD)  rail latency: ${RAIL_MS} ms  rate: ${RATE}/s  cores: $(nproc)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
$KOSH sandbox --port 8199 --seed 7 & SANDBOX=$!
trap 'kill $SANDBOX $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
SERVER=
for _ in $(seq 1 100); do $KOSH sandbox stats >/dev/null 2>&1 && break; sleep 0.1; done
for rail in upi_switch alphapay betapay; do
    $KOSH sandbox fault $rail "{\"latency_ms\": {\"min\": $RAIL_MS, \"max\": $RAIL_MS}}" >/dev/null
done
$KOSH sandbox config '{"payer_delay_ms": 0}' >/dev/null
# No exploration: every payment takes the best route, so the figures are of one rail.
KOSH_ROUTING_EXPLORATION_PERCENT=0 $KOSH serve --port 8188 --database "$DB" & SERVER=$!
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:8188/healthz >/dev/null && break; sleep 0.1; done
echo "== open loop, ${RATE} live lifecycles/s (collect on the switch, callback, capture, 20% refunds sent to the rail)"
$KOSH bench lifecycles --live --url http://127.0.0.1:8188 --database "$DB" --duration "$DURATION" --rate "$RATE" | tee "$WORK/report.txt"
echo "== the rail's side"
$KOSH sandbox stats
echo "== RSS of the server: $(ps -o rss= -p $SERVER) KiB"
kill -TERM $SERVER; wait $SERVER 2>/dev/null || true
$KOSH ledger verify --database "$DB"
