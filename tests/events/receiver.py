#!/usr/bin/env python3
"""A webhook receiver for tests and `make dev`: verifies every delivery with the Standard
Webhooks reference library (PyPI `standardwebhooks`, a client none of us wrote) and keeps a
log of every attempt.

Usage:
    python tests/events/receiver.py [--host 127.0.0.1] [--port 0] [--exit-on-stdin-eof]

Prints one line when listening, `READY http://127.0.0.1:<port>`, then serves:
- `POST /hooks/<name>`: a delivery. Verified with the secret configured for <name> (every
  configured secret is tried; a rotation signs with two); answers 204 when verified, 400
  when not. Faults per hook: refuse the first N attempts (503), or answer them too late
  (sleeps `slow_seconds` first; the sender's time-out should fire).
- `PUT /_control/hooks/<name>` `{"secrets": ["whsec_…"], "refuse_first": 0, "slow_first": 0,
  "slow_seconds": 2}`: configures a hook (attempt counters restart).
- `GET /_control/hooks/<name>/attempts`: every attempt, in arrival order: `{"id", "outcome":
  "verified"|"refused"|"slow"|"bad-signature", "body", "error"}`.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

LOCK = threading.Lock()
HOOKS: dict[str, dict] = {}


def hook(name: str) -> dict:
    return HOOKS.setdefault(
        name, {"secrets": [], "refuse_first": 0, "slow_first": 0, "slow_seconds": 2.0, "seen": 0, "attempts": []}
    )


def verify(secrets: list[str], body: bytes, headers: dict[str, str]) -> str | None:
    """None when one of the secrets verifies the delivery, else why none did."""
    errors = []
    for secret in secrets:
        try:
            Webhook(secret).verify(body, headers)
            return None
        except WebhookVerificationError as err:
            errors.append(str(err))
    return "; ".join(errors) or "no secret configured"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def answer(self, status: int, payload: object | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_PUT(self) -> None:
        body = self.read_body()
        if not self.path.startswith("/_control/hooks/"):
            return self.answer(404, {"error": "no such route"})
        name = self.path.removeprefix("/_control/hooks/")
        config = json.loads(body or b"{}")
        with LOCK:
            entry = hook(name)
            entry.update({k: v for k, v in config.items() if k in ("secrets", "refuse_first", "slow_first", "slow_seconds")})
            entry["seen"] = 0
        self.answer(200, {"ok": True})

    def do_GET(self) -> None:
        if self.path.startswith("/_control/hooks/") and self.path.endswith("/attempts"):
            name = self.path.removeprefix("/_control/hooks/").removesuffix("/attempts")
            with LOCK:
                attempts = list(hook(name)["attempts"])
            return self.answer(200, attempts)
        self.answer(404, {"error": "no such route"})

    def do_POST(self) -> None:
        body = self.read_body()
        if not self.path.startswith("/hooks/"):
            return self.answer(404, {"error": "no such route"})
        name = self.path.removeprefix("/hooks/")
        headers = {k: v for k, v in self.headers.items()}
        with LOCK:
            entry = hook(name)
            entry["seen"] += 1
            seen = entry["seen"]
            secrets = list(entry["secrets"])
            refuse = seen <= entry["refuse_first"]
            slow = not refuse and seen <= entry["refuse_first"] + entry["slow_first"]
            slow_seconds = float(entry["slow_seconds"])
        record = {"id": headers.get("webhook-id"), "body": body.decode(errors="replace"), "error": None}
        if refuse:
            record["outcome"] = "refused"
            self.log(name, record)
            return self.answer(503, {"error": "refused on purpose"})
        if slow:
            record["outcome"] = "slow"
            self.log(name, record)
            time.sleep(slow_seconds)
            try:
                return self.answer(204)
            except OSError:
                return None
        error = verify(secrets, body, headers)
        record["outcome"] = "verified" if error is None else "bad-signature"
        record["error"] = error
        self.log(name, record)
        self.answer(204 if error is None else 400, None if error is None else {"error": error})

    @staticmethod
    def log(name: str, record: dict) -> None:
        with LOCK:
            hook(name)["attempts"].append(record)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"READY http://{args.host}:{server.server_address[1]}", flush=True)
    if args.exit_on_stdin_eof:
        def watch() -> None:
            sys.stdin.read()
            server.shutdown()

        threading.Thread(target=watch, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
