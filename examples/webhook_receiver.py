#!/usr/bin/env python3
"""A webhook receiver to watch Kosh's deliveries arrive (README, Webhooks). Standard library only.

    python3 examples/webhook_receiver.py --port 18090 --secret a-long-random-secret [--fail-first EVENT]

Prints one line per delivery: the event, its X-Razorpay-Event-Id, the entity's id and status,
whether X-Razorpay-Signature is the HMAC-SHA256 of the raw body with the secret (compared in
constant time), and the status it answered. It answers 200 "ok", except 500 "oops" to the first
delivery of EVENT (--fail-first), to show a failed attempt and a re-delivery. An event id it has
already answered 200 is acknowledged again and marked "duplicate": receivers dedupe by event id.
"""

import argparse
import hashlib
import hmac
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import threading

LOG_LOCK = threading.Lock()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--fail-first", metavar="EVENT", help="answer 500 to the first delivery of this event")
    args = parser.parse_args()
    delivered: set[str] = set()
    failed: set[str] = set()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            event_id = self.headers.get("X-Razorpay-Event-Id", "-")
            expected = hmac.new(args.secret.encode(), body, hashlib.sha256).hexdigest()
            signed = hmac.compare_digest(expected, self.headers.get("X-Razorpay-Signature", ""))
            try:
                event = json.loads(body)
                name = event["event"]
                # The entity the event is about: payment.captured → payment, order.paid → order.
                entity = event["payload"][name.split(".")[0]]["entity"]
                about = f"{entity['id']} {entity['status']}"
            except (ValueError, KeyError, IndexError, TypeError):
                name, about = "?", "unreadable body"
            if not signed:
                status, answer = 401, b"bad signature"
            elif name == args.fail_first and name not in failed:
                failed.add(name)
                status, answer = 500, b"oops"
            else:
                status, answer = 200, b"ok"
            note = " (duplicate)" if status == 200 and event_id in delivered else ""
            if status == 200:
                delivered.add(event_id)
            line = f"{name} {event_id} {about} signature {'ok' if signed else 'BAD'} -> {status}{note}\n"
            # One write of the whole line under a lock: deliveries arrive on several threads at
            # once, and print() writes the text and its newline separately, so lines interleaved.
            with LOG_LOCK:
                sys.stdout.write(line)
                sys.stdout.flush()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:  # quiet: one line per delivery above
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Receiver)
    print(f"listening on http://127.0.0.1:{args.port}/", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
