#!/usr/bin/env bash
# A bounded fuzz run of the merchant API against openapi.json with schemathesis.
#
#   scripts/fuzz-api.sh [KOSH_BINARY]          (default .build/debug/kosh)
#
# Starts `kosh serve` on a free loopback port in a temporary directory (SQLite, in-process
# sandbox), creates a merchant, and runs schemathesis with every check, Basic auth as that
# merchant, a per-request timeout (a hang is a failure) and a time budget. Prints operations,
# requests sent and failures by class, and exits non-zero on a 5xx, a hang, a network error
# (crash) or a dead server. With FUZZ_STRICT=1 any failure at all fails the run.
#
# Knobs (environment): FUZZ_MAX_TIME (s, default 120), FUZZ_MAX_EXAMPLES (per operation and
# round, default 50), FUZZ_REQUEST_TIMEOUT (s, default 10), FUZZ_SEED (reproduce a run),
# FUZZ_WORKERS (default 2), FUZZ_PHASES (default examples,coverage,fuzzing,stateful),
# FUZZ_REPORT_DIR (keep the reports there), FUZZ_STRICT.
# schemathesis is installed with pip into .build/fuzz-venv when missing.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
KOSH="${1:-$ROOT/.build/debug/kosh}"
case "$KOSH" in /*) ;; *) KOSH="$PWD/$KOSH" ;; esac
[ -x "$KOSH" ] || { echo "fuzz-api: no kosh binary at $KOSH (swift build --product kosh)" >&2; exit 2; }

SCHEMATHESIS_VERSION="4.32.5"
VENV="$ROOT/.build/fuzz-venv"
MAX_TIME="${FUZZ_MAX_TIME:-120}"
MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-50}"
REQUEST_TIMEOUT="${FUZZ_REQUEST_TIMEOUT:-10}"
WORKERS="${FUZZ_WORKERS:-2}"
# Stateful testing (links inferred from the responses: create an order, then read it) shares the
# same time budget, so it costs no extra time.
PHASES="${FUZZ_PHASES:-examples,coverage,fuzzing,stateful}"

# --- schemathesis in a venv under the build folder
if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    echo "fuzz-api: installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    mkdir -p "$ROOT/.build"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        # Debian's python3 needs python3-venv for `-m venv`.
        if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        fi
        rm -rf "$VENV"
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
"$VENV/bin/st" --version

# --- a server of our own, cleaned up whatever happens
WORK="$(mktemp -d /tmp/kosh-fuzz.XXXXXX)"
SERVER=""
cleanup() {
    if [ -n "$SERVER" ] && kill -0 "$SERVER" 2>/dev/null; then
        kill "$SERVER" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
    fi
    if [ -n "${FUZZ_REPORT_DIR:-}" ] && [ -d "$WORK/report" ]; then
        mkdir -p "$FUZZ_REPORT_DIR" && cp -r "$WORK/report/." "$WORK/server.log" "$FUZZ_REPORT_DIR/" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
cd "$WORK"
export KOSH_LOG_LEVEL="${KOSH_LOG_LEVEL:-warning}"
"$KOSH" migrate >/dev/null 2>&1  # only serve and migrate create the database
MERCHANT="$("$KOSH" merchant create --name Fuzz 2>/dev/null)"
CREDENTIALS="$("$VENV/bin/python" -c 'import json, sys; m = json.loads(sys.argv[1]); print(m["key_id"] + ":" + m["key_secret"])' "$MERCHANT")"
export FUZZ_KEY_ID="$("$VENV/bin/python" -c 'import json, sys; print(json.loads(sys.argv[1])["key_id"])' "$MERCHANT")"
# Webhooks the run creates point at a closed loopback port (the hooks replace every
# well-formed URL the fuzzer makes up), so no delivery leaves this machine; private
# destinations are allowed for that reason only. The SSRF guard itself is tested in
# Tests/KoshAPITests/WebhookDestinationTests.swift.
SINK_PORT="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export FUZZ_WEBHOOK_SINK="http://127.0.0.1:$SINK_PORT/fuzz-hook"
KOSH_WEBHOOK_ALLOW_PRIVATE=1 "$KOSH" serve --host 127.0.0.1 --port "$PORT" >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 200); do
    "$VENV/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/readyz", timeout=1)' "$BASE" 2>/dev/null && break
    kill -0 "$SERVER" 2>/dev/null || { echo "fuzz-api: kosh serve exited at start" >&2; cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.1
done
echo "fuzz-api: kosh serve (pid $SERVER) at $BASE; schemathesis ($PHASES) for ${MAX_TIME}s, ≤$MAX_EXAMPLES examples per operation and round, ${REQUEST_TIMEOUT}s per request"

# --- the run
SEED_ARGS=()
[ -n "${FUZZ_SEED:-}" ] && SEED_ARGS=(--seed "$FUZZ_SEED")
set +e
PYTHONPATH="$ROOT/scripts/fuzz" SCHEMATHESIS_HOOKS=kosh_hooks \
timeout --kill-after=10 "$((MAX_TIME + 120))" \
"$VENV/bin/st" --config-file "$ROOT/scripts/fuzz/schemathesis.toml" run "$ROOT/openapi.json" \
    --url "$BASE" --auth "$CREDENTIALS" \
    --checks all --phases "$PHASES" \
    --max-examples "$MAX_EXAMPLES" --max-time "$MAX_TIME" --workers "$WORKERS" \
    --request-timeout "$REQUEST_TIMEOUT" --max-response-time 5 --request-retries 0 \
    --generation-database none --no-color --output-truncate true \
    --report json,ndjson --report-dir "$WORK/report" "${SEED_ARGS[@]}" >"$WORK/schemathesis.log" 2>&1
ST_EXIT=$?
set -e
# schemathesis's own report of each failure, for the log.
sed -n '/= FAILURES =/,$p' "$WORK/schemathesis.log" | head -400
if [ "$ST_EXIT" -ne 0 ] && [ "$ST_EXIT" -ne 1 ]; then
    echo "fuzz-api: schemathesis exited with $ST_EXIT" >&2
    tail -50 "$WORK/schemathesis.log" >&2
fi

ALIVE=1
kill -0 "$SERVER" 2>/dev/null || ALIVE=0
if [ "$ALIVE" = 1 ] && ! "$VENV/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/healthz", timeout=5)' "$BASE" 2>/dev/null; then
    ALIVE=0
fi
[ "$ALIVE" = 1 ] || { echo "fuzz-api: the server died or stopped answering; its log:" >&2; tail -50 "$WORK/server.log" >&2; }

NDJSON="$(ls "$WORK"/report/ndjson-*.ndjson 2>/dev/null | head -1)"
JSON="$(ls "$WORK"/report/json-*.json 2>/dev/null | head -1)"
if [ -z "$NDJSON" ] || [ -z "$JSON" ]; then
    echo "fuzz-api: schemathesis wrote no report" >&2
    tail -50 "$WORK/schemathesis.log" >&2
    exit 1
fi
set +e
"$VENV/bin/python" "$ROOT/scripts/fuzz/summarize.py" "$NDJSON" "$JSON" "$ALIVE"
SUMMARY_EXIT=$?
set -e
if [ "$SUMMARY_EXIT" -ne 0 ]; then exit 1; fi
if [ "$ST_EXIT" -gt 1 ]; then exit 1; fi
if [ "${FUZZ_STRICT:-0}" = 1 ] && [ "$ST_EXIT" -ne 0 ]; then echo "fuzz-api: FUZZ_STRICT=1 and schemathesis found failures"; exit 1; fi
exit 0
