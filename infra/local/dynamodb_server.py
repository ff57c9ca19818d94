#!/usr/bin/env python3
"""Local DynamoDB emulator: moto's WSGI app served single-threaded.

Why not stock `moto_server`: it serves requests on many threads, and moto's
backends are not thread-safe (concurrent conditional decrements double-spend,
concurrent transactions leak partial state). One thread, one request at a time,
makes every DynamoDB call atomic, which is what the real service guarantees per
item/transaction. (It can never produce `TransactionConflict`, though.)

Usage:
    python infra/local/dynamodb_server.py [--host 127.0.0.1] [--port 8000|0]
                                          [--exit-on-stdin-eof] [--verbose]

When listening it prints exactly one line to stdout and flushes:
    READY http://127.0.0.1:<port>
`--port 0` picks a free port; read it from that line.
`--exit-on-stdin-eof` exits as soon as stdin reaches EOF, so a parent that
spawned it with a piped stdin stops it just by exiting (or closing the pipe).

State is in memory only: a restart starts empty.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Any

from moto.moto_server.werkzeug_app import MotoRequestHandler
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

DEFAULT_HOST = "127.0.0.1"


class DynamoDBDispatcher(DomainDispatcherApplication):
    """Routes anything carrying a DynamoDB `X-Amz-Target` to the DynamoDB backend.

    moto picks a backend from the SigV4 credential scope (service `dynamodb`),
    never from the Host header, so signed SDK requests already work with
    `Host: 127.0.0.1:<port>`. Unsigned requests (or odd signing names) would fall
    through to moto's default (S3); this pins them to DynamoDB.
    """

    def infer_service_region_host(self, environ: dict[str, Any], path: str) -> str | None:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("DynamoDBStreams_"):
            return "dynamodbstreams"
        if target.startswith("DynamoDB_"):
            return "dynamodb"
        return super().infer_service_region_host(environ, path)


def make_handler(verbose: bool) -> type[MotoRequestHandler]:
    class Handler(MotoRequestHandler):
        # HTTP/1.0: the connection closes after each response. With one thread,
        # a keep-alive connection left idle by one client would block every other
        # client until it timed out.
        protocol_version = "HTTP/1.0"
        # A client that connects and stalls must not wedge the only thread forever.
        timeout = 30

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            if verbose:
                super().log_request(code, size)

    return Handler


def exit_on_stdin_eof() -> None:
    """Block reading stdin; when it closes (parent exited), exit immediately."""
    try:
        while sys.stdin.buffer.read(65536):
            pass
    except Exception:  # noqa: BLE001 - any read failure means the parent is gone
        pass
    os._exit(0)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default %(default)s)")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("DYNAMODB_PORT") or 8000),
        help="port to bind; 0 picks a free one (default: $DYNAMODB_PORT or 8000)",
    )
    parser.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="exit when stdin reaches EOF (for test harnesses that pipe stdin)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if not args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

    # Ctrl-C and SIGTERM both stop the server cleanly, even when started in the
    # background by a non-interactive shell (which leaves SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    if args.exit_on_stdin_eof:
        threading.Thread(target=exit_on_stdin_eof, name="stdin-eof", daemon=True).start()

    app = DynamoDBDispatcher(create_backend_app)
    # threaded=False, processes=1: one request at a time (see module docstring).
    try:
        server = make_server(
            args.host,
            args.port,
            app,
            threaded=False,
            processes=1,
            request_handler=make_handler(args.verbose),
        )
    except OSError as e:
        print(f"dynamodb_server: cannot listen on {args.host}:{args.port}: {e.strerror}", file=sys.stderr)
        return 1
    port = server.server_port
    os.environ["MOTO_PORT"] = str(port)  # moto's own self-calls, if any, use it

    shown_host = args.host if args.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    if ":" in shown_host:
        shown_host = f"[{shown_host}]"
    sys.stdout.write(f"READY http://{shown_host}:{port}\n")
    sys.stdout.flush()
    # Harnesses may close their end of stdout after the READY line: send anything
    # printed later (moto prints some warnings) to stderr instead of a broken pipe.
    sys.stdout = sys.stderr

    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
