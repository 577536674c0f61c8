#!/usr/bin/env bash
# Live lifecycles per second by method, in one run: UPI collect (the reference), QR codes (create
# a single-use code → the sandbox payer's app pays it → the switch notifies Kosh, Kosh confirms
# and captures) and netbanking (create/json → the sandbox bank approves → callback → capture).
# The sandbox is its own process; payers approve at once (payer_delay_ms 0), so the figures are
# Kosh's and the sandbox's, not a payer's think time.
#   scripts/bench-methods.sh [duration-seconds] [concurrency]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-20}"
CONCURRENCY="${2:-64}"
KOSH="${KOSH:-.build/release/kosh}"
[ -x "$KOSH" ] || swift build -c release
WORK="$(mktemp -d /tmp/kosh-bench-methods.XXXXXX)"
export KOSH_MASTER_KEY_FILE="$WORK/master.key" KOSH_LOG_LEVEL=warning
export KOSH_RAILS_URL=http://127.0.0.1:8299 KOSH_RAILS_SECRET="bench-methods-$RANDOM$RANDOM"
DB="sqlite://$WORK/kosh.sqlite"
echo "commit: $(git rev-parse --short HEAD)  duration: ${DURATION} s  concurrency: $CONCURRENCY  cores: $(nproc)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
$KOSH sandbox --port 8299 --seed 7 & SANDBOX=$!
SERVER=
trap 'kill $SANDBOX $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do $KOSH sandbox stats >/dev/null 2>&1 && break; sleep 0.1; done
$KOSH sandbox config '{"payer_delay_ms": 0}' >/dev/null
KOSH_ROUTING_EXPLORATION_PERCENT=0 $KOSH serve --port 8288 --database "$DB" & SERVER=$!
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:8288/healthz >/dev/null && break; sleep 0.1; done
for method in upi qr netbanking; do
    echo "== $method: closed loop, $CONCURRENCY concurrent, ${DURATION} s"
    $KOSH bench lifecycles --live --method "$method" --url http://127.0.0.1:8288 --database "$DB" --sandbox-url "$KOSH_RAILS_URL" \
        --duration "$DURATION" --concurrency "$CONCURRENCY" | tee "$WORK/$method.txt"
done
echo "== the rails' side"
$KOSH sandbox stats
kill -TERM $SERVER; wait $SERVER 2>/dev/null || true
$KOSH ledger verify --database "$DB"
