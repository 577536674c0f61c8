#!/usr/bin/env bash
# Runs README.md's walkthroughs as printed and checks that they print what README shows.
#
#   scripts/readme-check.sh [KOSH_BINARY] [--show]      (default .build/debug/kosh)
#
# In a fresh temporary directory (which becomes the reader's working directory: `examples/` is
# linked into it) it starts, as README's walkthrough tells a reader to,
#   KOSH_WEBHOOK_ALLOW_PRIVATE=1 kosh serve --sandbox-port 9090
# but on free loopback ports of its own (embedded SQLite, the in-process sandbox), puts `kosh` on
# PATH, and hands over to scripts/readme/readme_check.py, which runs every block marked
# `<!-- check: NAME -->` in order in one shell and compares the shape of each command's output
# with the output printed under it (rules in that file). The ports README uses (8080 for Kosh,
# 9090 for the sandbox, 18090 for the webhook receiver) are rewritten to the check's own.
#
# Exits 1 naming the block, the README line and the difference when an output does not match,
# 2 when it cannot start. --show prints every command's output too. Needs bash, curl, jq and
# python3 (README's prerequisites); a block marked skip-if-first-fails (the Python SDK's, whose
# first command is `pip install`) is skipped with a message when that command fails, e.g. offline.
# README_CHECK_TIMEOUT (s, default 600) bounds the whole run; README_CHECK_KEEP=1 keeps the
# directory (server log, each command's output); README_CHECK_README checks another copy of
# README (the examples/ it runs are still this repository's).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
KOSH="${1:-$ROOT/.build/debug/kosh}"
shift || true
case "$KOSH" in /*) ;; *) KOSH="$PWD/$KOSH" ;; esac
[ -x "$KOSH" ] || { echo "readme-check: no kosh binary at $KOSH (swift build --product kosh)" >&2; exit 2; }
for tool in curl jq python3; do
    command -v "$tool" >/dev/null || { echo "readme-check: $tool is missing (README, Prerequisites)" >&2; exit 2; }
done

WORK="$(mktemp -d /tmp/kosh-readme.XXXXXX)"
SERVER=""
cleanup() {
    if [ -n "$SERVER" ] && kill -0 "$SERVER" 2>/dev/null; then
        kill "$SERVER" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
    fi
    if [ "${README_CHECK_KEEP:-0}" = 1 ]; then echo "readme-check: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT="$(free_port)"
SANDBOX_PORT="$(free_port)"
HOOK_PORT="$(free_port)"
while [ "$SANDBOX_PORT" = "$PORT" ]; do SANDBOX_PORT="$(free_port)"; done
while [ "$HOOK_PORT" = "$PORT" ] || [ "$HOOK_PORT" = "$SANDBOX_PORT" ]; do HOOK_PORT="$(free_port)"; done

mkdir -p "$WORK/bin"
ln -s "$KOSH" "$WORK/bin/kosh"
ln -s "$ROOT/examples" "$WORK/examples"
export PATH="$WORK/bin:$PATH"
cd "$WORK"
# What `kosh sandbox fault|pay|…` call by default is the sandbox on 9090; here it is ours.
export KOSH_RAILS_URL="http://127.0.0.1:$SANDBOX_PORT"
env -u KOSH_RAILS_URL KOSH_LOG_LEVEL="${KOSH_LOG_LEVEL:-info}" KOSH_WEBHOOK_ALLOW_PRIVATE=1 \
    kosh serve --port "$PORT" --sandbox-port "$SANDBOX_PORT" >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 200); do
    curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    kill -0 "$SERVER" 2>/dev/null || { echo "readme-check: kosh serve exited at start" >&2; cat "$WORK/server.log" >&2; exit 2; }
    sleep 0.1
done
echo "readme-check: kosh serve (pid $SERVER) at http://127.0.0.1:$PORT, sandbox at :$SANDBOX_PORT, in $WORK"

set +e
README_CHECK_PORTS="8080=$PORT 9090=$SANDBOX_PORT 18090=$HOOK_PORT" \
    python3 "$ROOT/scripts/readme/readme_check.py" "${README_CHECK_README:-$ROOT/README.md}" "$WORK" "$@"
STATUS=$?
set -e
if [ "$STATUS" != 0 ]; then
    echo "readme-check: the server's log ends:" >&2
    tail -20 "$WORK/server.log" >&2
fi
exit "$STATUS"
