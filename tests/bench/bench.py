#!/usr/bin/env python3
"""`make bench`: size, cold start, warm latency, store round trips and peak RSS of every
function binary, each next to a hello-world `lambda_http` baseline built in the same run.

Python 3.11 standard library only; run with the project's venv python (moto is in it) after
the release build (`make bench` does both). See tests/bench/README.md for what each figure
means. The driver:

1. starts the DynamoDB emulator (`infra/local/dynamodb_server.py --port 0`), creates the
   table with `target/release/create-table`, starts the fault proxy
   (`tests/faults/dynamodb_proxy.py`, every fault rate 0, conflicts modeled as DynamoDB raises
   them) in front of it, and in front of the
   proxy a byte relay of its own that times each store exchange and counts connections:
       function --HTTP/1.1--> relay (this process) --> fault proxy --> emulator
2. serves the Lambda Runtime API (the subset a runtime uses) to each function process it
   spawns, one endpoint per process, with the environment Lambda would give it;
3. seeds data through the functions themselves, then measures.

Knobs (environment): BENCH_RUNS cold starts per binary (15), BENCH_WARM warm requests per
route per process (200), BENCH_PROCS warm processes per function (3), BENCH_FIRST fresh
processes per route for "first call after a cold start" (5), BENCH_RESULTS output file
(tests/bench/RESULTS.md), BENCH_ONLY comma-separated function binaries (default: all) and
section words (`concurrency`: "Q11 under concurrency", `hot`: "Hot account, throttling on",
`soak`: "Soak"; section words alone run those sections only and replace only them in the results
file), BENCH_CONC_CLIENTS (1,8,32,64; also the hot-account cells), BENCH_CONC_REQUESTS measured
calls per concurrency cell (320; the raw UpdateItem cells make as many), BENCH_UNITS_CALLS calls
per route for "Capacity per route" (40), BENCH_HOT_REQUESTS spends per hot-account cell (400),
BENCH_SOAK_SECONDS (600), BENCH_SOAK_WINDOW seconds per soak row (60), BENCH_SOAK_CLIENTS (8),
BENCH_SOAK_RATE spends/s (default: measured, see README). Everything it starts is stopped on
exit; every wait is bounded.
"""

from __future__ import annotations

import datetime as dt
import http.client
import collections
import contextlib
import json
import math
import os
import platform
import queue
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

ROOT = Path(__file__).resolve().parents[2]
RELEASE = ROOT / "target" / "release"
WORK = ROOT / "target" / "bench"  # logs and raw results (not committed)
BASELINE = "bench-hello"
TABLE_NAME = "credits-bench"
TOKEN_SIGNING_KEY = "bench-signing-key-0123456789abcdef"
ADMIN_TOKEN = "bench-admin-token"
SIZE_LIMIT_BYTES = 8_000_000  # "no function binary over 8 MB stripped"
INVOKE_TIMEOUT_S = 30.0
AUTH_CACHE_SECONDS = 30  # the service's default, passed explicitly
START_TIMEOUT_S = 30.0


def env_int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        sys.exit(f"bench: {name} must be a whole number, got {raw!r}")
    if value < minimum:
        sys.exit(f"bench: {name} must be at least {minimum}")
    return value


COLD_RUNS = env_int("BENCH_RUNS", 15)
WARM_REQUESTS = env_int("BENCH_WARM", 200)
WARM_PROCS = env_int("BENCH_PROCS", 3)
FIRST_RUNS = env_int("BENCH_FIRST", 5)
RESULTS_PATH = Path(os.environ.get("BENCH_RESULTS") or ROOT / "tests" / "bench" / "RESULTS.md")


T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"bench: [{time.monotonic() - T0:5.0f}s] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- statistics


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else math.nan


def percentile(xs: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not xs:
        return math.nan
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


# --------------------------------------------------------------------------- child processes

CHILDREN: list[subprocess.Popen] = []


def stop_child(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            if proc.stdin:
                proc.stdin.close()  # --exit-on-stdin-eof children leave on their own
        except OSError:
            pass
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=3)
    if proc in CHILDREN:
        CHILDREN.remove(proc)


def start_ready_child(name: str, argv: list[str]) -> tuple[subprocess.Popen, str]:
    """Starts a helper that prints `READY http://host:port` and exits on stdin EOF."""
    logf = open(WORK / f"{name}.log", "ab")
    proc = subprocess.Popen(
        argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=logf, env=dict(os.environ)
    )
    CHILDREN.append(proc)
    logf.close()
    lines: queue.Queue[bytes] = queue.Queue()

    def pump() -> None:  # reads the READY line, then drains stdout so the child never blocks
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(b"")

    threading.Thread(target=pump, name=f"{name}-stdout", daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2).decode(errors="replace").strip()
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        if line.startswith("READY "):
            return proc, line.split(" ", 1)[1]
        if not line and proc.poll() is not None:
            break
    stop_child(proc)
    raise RuntimeError(f"{name} did not start (see {WORK / (name + '.log')})")


# --------------------------------------------------------------------------- store relay


def quickack(sock: socket.socket) -> None:
    """ACK the proxy's segments at once. The fault proxy sends a response's head and body in
    two writes without TCP_NODELAY, so Nagle holds the body until the head is ACKed; a
    receiver in delayed-ACK mode (the usual state after an idle gap) waits ~40 ms to ACK.
    That stall belongs to the local tooling, not to the functions: TCP_QUICKACK (cleared by
    the kernel after each ACK, hence set again after every read) keeps it out of the figures."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
    except (AttributeError, OSError):
        pass


class StoreRelay:
    """Byte relay between the functions and the fault proxy.

    Times every HTTP exchange (first request byte in → last response byte out, framed by the
    response's Content-Length) and counts accepted connections, so the bench can take the
    local store's share out of a latency and can see whether a call opened a new connection.
    Request counts per operation come from the proxy's own stats, not from here."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.lock = threading.Lock()
        self.connections = 0
        self.accepted_at: list[float] = []  # perf_counter of each accepted connection
        self.events: collections.deque[tuple[float, int, str]] = collections.deque(maxlen=20_000)  # diagnostics
        self.exchanges = 0
        self.seconds = 0.0
        self.ops: collections.Counter[str] = collections.Counter()  # requests per X-Amz-Target operation
        self.stopping = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._accept_loop, name="relay", daemon=True)
        self.thread.start()

    def snapshot(self) -> tuple[int, int, float]:
        with self.lock:
            return self.connections, self.exchanges, self.seconds

    def op_counts(self) -> collections.Counter[str]:
        with self.lock:
            return collections.Counter(self.ops)

    def _event(self, conn_id: int, kind: str, at: float | None = None) -> None:
        with self.lock:
            self.events.append((time.perf_counter() if at is None else at, conn_id, kind))

    def connections_between(self, t0: float, t1: float) -> tuple[int, int, bool | None]:
        """For the window [t0, t1]: (connections accepted, of which carried a request, whether
        the window's first store request went on a connection that existed before t0; None
        without requests). hyper's pool races a fresh connect against a pooled connection
        that is about to come back (back-to-back requests) and keeps the loser idle."""
        with self.lock:
            events = list(self.events)
        opened = {c for t, c, k in events if k == "accept" and t0 <= t <= t1}
        requests = [(t, c) for t, c, k in events if k == "request" and t0 <= t <= t1]
        used = {c for _, c in requests if c in opened}
        first_reused = None if not requests else min(requests)[1] not in opened
        return len(opened), len(used), first_reused

    def first_accept_after(self, instant: float) -> float | None:
        with self.lock:
            return next((t for t in self.accepted_at if t >= instant), None)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=2)
        self.server.close()

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
                conn_id = self.connections
                self.accepted_at.append(time.perf_counter())
                self.events.append((time.perf_counter(), conn_id, "accept"))  # under the lock
            threading.Thread(target=self._serve, args=(client, conn_id), name="relay-conn", daemon=True).start()

    def _serve(self, client: socket.socket, conn_id: int) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
        except OSError:
            client.close()
            return
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
        quickack(upstream)
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, upstream)
        sel.register(upstream, selectors.EVENT_READ, client)
        started: float | None = None  # an exchange is in flight since this instant
        head = b""
        body_left: int | None = None  # None: still reading the response head
        try:
            while not self.stopping.is_set():
                for key, _ in sel.select(timeout=0.2):
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    dst: socket.socket = key.data
                    try:
                        data = src.recv(65536)
                    except BlockingIOError:
                        continue
                    if src is upstream:
                        quickack(upstream)
                    if not data:
                        self._event(conn_id, "eof from " + ("function" if src is client else "proxy"))
                        return
                    now = time.perf_counter()
                    dst.setblocking(True)
                    dst.sendall(data)
                    dst.setblocking(False)
                    if src is client:
                        if started is None:
                            started, head, body_left = now, b"", None
                            self._event(conn_id, "request", now)
                            at = data.lower().find(b"x-amz-target:")
                            if at >= 0:
                                line = data[at + 13 : data.find(b"\r\n", at)].decode("latin-1").strip()
                                with self.lock:
                                    self.ops[line.rsplit(".", 1)[-1]] += 1
                        continue
                    # Upstream bytes: find where the response ends.
                    while True:
                        if body_left is None:
                            head, data = head + data, b""
                            end = head.find(b"\r\n\r\n")
                            if end < 0:
                                break
                            data, head_text, head = head[end + 4 :], head[:end].decode("latin-1"), b""
                            status = int(head_text.split(" ", 2)[1])
                            if 100 <= status < 200:
                                continue  # interim response: the real one follows
                            body_left = 0
                            for line in head_text.split("\r\n")[1:]:
                                name, _, value = line.partition(":")
                                if name.strip().lower() == "content-length":
                                    body_left = int(value.strip())
                        take = min(body_left, len(data))
                        body_left -= take
                        data = data[take:]
                        if body_left > 0:
                            break
                        if started is not None:
                            with self.lock:
                                self.exchanges += 1
                                self.seconds += time.perf_counter() - started
                                self.events.append((time.perf_counter(), conn_id, "response"))
                        started, body_left = None, None
                        if not data:
                            break
        except OSError:
            pass
        finally:
            sel.close()
            client.close()
            upstream.close()


# --------------------------------------------------------------------------- Lambda Runtime API

API_PREFIX = "/2018-06-01/runtime"


@dataclass
class Invocation:
    request_id: str
    kind: str  # "response", "error", "init_error"
    body: bytes
    sent: float  # perf_counter when the event was written to the function
    done: float  # perf_counter when its response had been read
    store_before: tuple[int, int, float]  # relay snapshot at `sent`
    store_after: tuple[int, int, float]  # relay snapshot at `done`

    @property
    def latency_ms(self) -> float:
        return (self.done - self.sent) * 1000

    @property
    def store_ms(self) -> float:
        return (self.store_after[2] - self.store_before[2]) * 1000

    def answer(self) -> tuple[int, Any]:
        """(statusCode, parsed JSON body or text) of an API Gateway v2 response."""
        if self.kind != "response":
            return 0, self.body.decode(errors="replace")
        doc = json.loads(self.body)
        body = doc.get("body") or ""
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            parsed = body
        return int(doc.get("statusCode", 0)), parsed


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a killed function resets its connections: routine here


class RuntimeApi:
    """One Runtime API endpoint (the subset a runtime calls) for one function process."""

    def __init__(self, function_name: str, relay: StoreRelay | None) -> None:
        self.function_name = function_name
        self.relay = relay
        self.events: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.results: queue.Queue[Invocation] = queue.Queue()
        self.first_next: float | None = None
        self.saw_next = threading.Event()
        self.closed = threading.Event()
        self.pending: dict[str, tuple[float, tuple[int, int, float]]] = {}
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                lines = [f"HTTP/1.1 {status} {'OK' if status < 300 else 'Error'}"]
                for k, v in (headers or {}).items():
                    lines.append(f"{k}: {v}")
                lines += ["Content-Type: application/json", f"Content-Length: {len(body)}", "", ""]
                self.wfile.write("\r\n".join(lines).encode() + body)  # one write: no Nagle stall

            def read_body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    chunks = []
                    while True:
                        size = int(self.rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline(65537)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self) -> None:
                if self.path != f"{API_PREFIX}/invocation/next":
                    self.reply(404, b'{"errorMessage":"not found"}')
                    return
                now = time.perf_counter()
                with api.lock:
                    if api.first_next is None:
                        api.first_next = now
                api.saw_next.set()
                while True:
                    if api.closed.is_set():
                        self.close_connection = True
                        return
                    try:
                        request_id, event = api.events.get(timeout=0.2)
                        break
                    except queue.Empty:
                        continue
                headers = {
                    "Lambda-Runtime-Aws-Request-Id": request_id,
                    "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 900_000),
                    "Lambda-Runtime-Invoked-Function-Arn":
                        f"arn:aws:lambda:us-east-1:123456789012:function:{api.function_name}",
                    "Lambda-Runtime-Trace-Id":
                        f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0",
                }
                snap = api.relay.snapshot() if api.relay else (0, 0, 0.0)
                with api.lock:
                    api.pending[request_id] = (time.perf_counter(), snap)
                self.reply(200, event, headers)

            def do_POST(self) -> None:
                body = self.read_body()
                done = time.perf_counter()
                snap = api.relay.snapshot() if api.relay else (0, 0, 0.0)
                parts = self.path.removeprefix(API_PREFIX).strip("/").split("/")
                if parts == ["init", "error"]:
                    self.reply(202, b'{"status":"OK"}')
                    api.results.put(Invocation("", "init_error", body, done, done, snap, snap))
                    return
                if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                    with api.lock:
                        sent, before = api.pending.pop(parts[1], (done, snap))
                    self.reply(202, b'{"status":"OK"}')
                    api.results.put(Invocation(parts[1], parts[2], body, sent, done, before, snap))
                    return
                self.reply(404, b'{"errorMessage":"not found"}')

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.closed.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=2)


# --------------------------------------------------------------------------- function processes


class StartFailed(RuntimeError):
    pass


def function_env(name: str, runtime_port: int, store_url: str) -> dict[str, str]:
    """What Lambda gives a function, plus the service's configuration (dummy secrets)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{runtime_port}",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_EC2_METADATA_DISABLED": "true",
        "TABLE_NAME": TABLE_NAME,
        "TOKEN_SIGNING_KEY": TOKEN_SIGNING_KEY,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "AUTH_CACHE_SECONDS": str(AUTH_CACHE_SECONDS),
        "AWS_ENDPOINT_URL_DYNAMODB": store_url,
        # For functions that need Stripe settings at start (payments); never called here.
        "STRIPE_SECRET_KEY": "sk_test_bench",
        "STRIPE_API_BASE": "http://127.0.0.1:9",
        "STRIPE_WEBHOOK_SECRET": "whsec_bench",
    }


class FunctionProcess:
    """A function binary running against its own Runtime API endpoint."""

    def __init__(self, binary: str, relay: StoreRelay) -> None:
        self.binary = binary
        self.relay = relay
        self.api = RuntimeApi(binary, relay)
        self.proc: subprocess.Popen | None = None
        self.spawned = 0.0
        self.store_at_spawn = (0, 0, 0.0)

    def start(self, first_event: bytes | None = None) -> None:
        """Spawns the binary; `first_event` is queued before the spawn (a cold start)."""
        if first_event is not None:
            self.api.events.put((str(uuid.uuid4()), first_event))
        env = function_env(self.binary, self.api.port, f"http://127.0.0.1:{self.relay.port}")
        logf = open(WORK / f"{self.binary}.log", "ab")
        self.store_at_spawn = self.relay.snapshot()
        self.spawned = time.perf_counter()
        self.proc = subprocess.Popen(
            [str(RELEASE / self.binary)], cwd=WORK, env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf
        )
        logf.close()
        CHILDREN.append(self.proc)

    def wait_ready(self) -> float:
        """Waits for the first GET /next; answers the init duration in ms."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.api.saw_next.wait(timeout=0.05):
            self._check_alive()
            if time.monotonic() > deadline:
                raise StartFailed(f"{self.binary}: no GET /next within {START_TIMEOUT_S:.0f}s")
        assert self.api.first_next is not None
        return (self.api.first_next - self.spawned) * 1000

    def _check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise StartFailed(f"{self.binary} exited with {self.proc.returncode}: {self.log_tail()}")
        try:
            inv = self.api.results.get_nowait()
        except queue.Empty:
            return
        if inv.kind == "init_error":
            raise StartFailed(f"{self.binary} reported an init error: {inv.body[:500].decode(errors='replace')}")
        self.api.results.put(inv)

    def log_tail(self) -> str:
        try:
            text = (WORK / f"{self.binary}.log").read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-3:])[-600:]

    def result(self, request_id: str | None = None) -> Invocation:
        """The answer to `request_id` (any answer if None). Answers to other ids (a call
        given up on earlier) are dropped; the caller stops using a process that timed out."""
        deadline = time.monotonic() + INVOKE_TIMEOUT_S
        while True:
            try:
                inv = self.api.results.get(timeout=0.05)
            except queue.Empty:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise StartFailed(f"{self.binary} exited with {self.proc.returncode}: {self.log_tail()}")
                if time.monotonic() > deadline:
                    raise StartFailed(f"{self.binary}: no answer within {INVOKE_TIMEOUT_S:.0f}s")
                continue
            if inv.kind == "init_error":
                raise StartFailed(f"{self.binary} reported an init error: {inv.body[:500].decode(errors='replace')}")
            if request_id is not None and inv.request_id != request_id:
                continue
            return inv

    def invoke(self, event: bytes) -> Invocation:
        request_id = str(uuid.uuid4())
        self.api.events.put((request_id, event))
        return self.result(request_id)

    def peak_rss_kib(self) -> int | None:
        assert self.proc is not None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()  # Lambda freezes then kills; nothing to flush
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            if self.proc in CHILDREN:
                CHILDREN.remove(self.proc)
        self.api.close()

    def __enter__(self) -> FunctionProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# --------------------------------------------------------------------------- events


def api_event(method: str, path: str, headers: dict[str, str], body: Any = None) -> bytes:
    """An API Gateway HTTP API (v2) event, shaped like events/*.json."""
    raw_path, _, query = path.partition("?")
    text = None if body is None else (body if isinstance(body, str) else json.dumps(body))
    all_headers = {
        "accept": "*/*",
        "host": "abcdef1234.execute-api.us-east-1.amazonaws.com",
        "user-agent": "bench",
        "x-forwarded-for": "203.0.113.10",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
        **{k.lower(): v for k, v in headers.items()},
    }
    if text is not None:
        all_headers.setdefault("content-type", "application/json")
        all_headers["content-length"] = str(len(text.encode()))
    now = dt.datetime.now(dt.timezone.utc)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": all_headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdef1234",
            "domainName": "abcdef1234.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abcdef1234",
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": "bench",
            },
            "requestId": uuid.uuid4().hex[:16],
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if text is not None:
        event["body"] = text
    return json.dumps(event).encode()


# Answered by every binary without touching the store: the functions' 404 fallback, the
# baseline's "hello".
TRIVIAL_GET = ("GET", "/bench/ping")


def trivial_event() -> bytes:
    return api_event(*TRIVIAL_GET, headers={})


# --------------------------------------------------------------------------- the proxy's counters


class ProxyControl:
    """The proxy's control endpoints. One short connection per call, read with TCP_QUICKACK:
    on a kept-alive connection every call would stall ~40 ms (the proxy's two-write responses
    against delayed ACKs, see `quickack`), twice per measured invocation."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)

    def _call(self, method: str, path: str) -> Any:
        request = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        with socket.create_connection((self.host, self.port), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            quickack(sock)
            sock.sendall(request.encode())
            chunks = []
            for _ in range(100_000):  # bounded; ends at EOF (Connection: close)
                data = sock.recv(65536)
                quickack(sock)
                if not data:
                    break
                chunks.append(data)
        raw = b"".join(chunks)
        head, _, body = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head else 0
        if status != 200:
            raise RuntimeError(f"proxy {method} {path}: {status} {raw[:200]!r}")
        return json.loads(body)

    def reset(self) -> None:
        self._call("POST", "/_proxy/reset")

    def modeled_conflicts(self) -> int:
        """Requests answered by the conflict model since the last reset."""
        return int(self._call("GET", "/_proxy/stats").get("modeled_conflict", 0))

    def ops(self) -> dict[str, int]:
        """Requests per DynamoDB operation since the last reset (every outcome)."""
        stats = self._call("GET", "/_proxy/stats")
        return {op: v["requests"] for op, v in stats["by_target"].items() if v["requests"]}

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- the emulator's table

TRIM_EVERY = 20  # route iterations between trims
COMPACT_EVERY = 100  # route iterations between emulator restarts


def create_table(emulator_url: str) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "TABLE_NAME": TABLE_NAME,
        "AWS_ENDPOINT_URL_DYNAMODB": emulator_url,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    subprocess.run([str(RELEASE / "create-table")], env=env, check=True, timeout=60, stdout=subprocess.DEVNULL)


class LocalStore:
    """The emulator, kept as small and as fast as it was right after seeding.

    moto rolls a failed transaction back from a copy: every TransactWriteItems deep-copies the
    whole table, once per action, before applying anything. Its cost grows with the number of
    items, and also with the number of partition keys the table has ever seen: moto keeps an
    empty dict for a partition whose items were deleted, and creates one for every GetItem of
    a missing key (idempotency records, hold records and entities each get their own
    partition). Measured: ~0.35 ms per 4-action transaction on a fresh table, ~14 ms with
    800 empty partitions, ~50 ms with 3,000; over a first full run Q11 went from ~8 ms to
    ~330 ms at the store, and some transactions hit the SDK's 3 s attempt time-out, with
    retries that DynamoDB would never cause. So, between measured calls (never during one):
    - trim (every TRIM_EVERY iterations): delete, straight on the emulator, every item
      created since the seed;
    - compact (every COMPACT_EVERY iterations, and before each measured process): restart
      the emulator on the same port (the proxy opens a connection per request, so nothing
      else notices) and put back the items that the trim keeps, as they are now.
    The account item, entity, API key and tier are kept as they are, so warm processes keep
    valid caches and nothing measured changes."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.port = 0
        self.key_names: list[str] = []
        self.keep: set[str] = set()
        self.since_trim = 0
        self.since_compact = 0
        self.deleted = 0
        self.compactions = 0
        self.throttle = False  # per-partition-key throttling, kept across restarts

    def start(self, port: int = 0) -> None:
        argv = [sys.executable, "infra/local/dynamodb_server.py", "--host", "127.0.0.1", "--port", str(port),
                "--throttle" if self.throttle else "--no-throttle"]
        for attempt in range(20):  # the old listener's port may take a moment to free
            try:
                self.proc, self.url = start_ready_child("emulator", argv + ["--exit-on-stdin-eof"])
                break
            except RuntimeError:
                if port == 0 or attempt == 19:
                    raise
                time.sleep(0.1)
        self.port = int(self.url.rsplit(":", 1)[1])
        create_table(self.url)

    def track(self, key_names: list[str]) -> None:
        """Remembers the items there now (the seed) as the ones to keep."""
        self.key_names = key_names
        self.keep = {self._id(k) for k in self._scan(keys_only=True)}

    def _id(self, item: dict[str, Any]) -> str:
        return json.dumps({k: item[k] for k in self.key_names}, sort_keys=True)

    def set_throttle(self, on: bool) -> None:
        """Switches per-partition-key throttling (every budget starts full), for this emulator
        and the ones compactions start."""
        self.throttle = on
        self.control("POST", "/_emulator/config", {"throttle": on})

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The emulator's control routes (`/_emulator/...`), JSON in and out."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=None if body is None else json.dumps(body))
            resp = conn.getresponse()
            data = json.loads(resp.read() or b"{}")
        finally:
            conn.close()
        if resp.status != 200:
            raise RuntimeError(f"emulator {method} {path}: {resp.status} {str(data)[:200]}")
        return data

    def _call(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        """One request of the driver's own (seeding aside: trims, checks), retried while the
        emulator throttles it, as the SDK would."""
        for attempt in range(60):
            status, data = self._send(op, body)
            if status == 400 and "ThrottlingException" in str(data.get("__type", "")):
                time.sleep(min(0.5, 0.01 * 2**attempt))
                continue
            if status != 200:
                raise RuntimeError(f"emulator {op}: {status} {str(data)[:200]}")
            return data
        raise RuntimeError(f"emulator {op}: still throttled after 60 attempts")

    def _send(self, op: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)  # the emulator closes each
        try:
            conn.request(
                "POST",
                "/",
                body=json.dumps(body),
                headers={
                    "X-Amz-Target": f"DynamoDB_20120810.{op}",
                    "Content-Type": "application/x-amz-json-1.0",
                    # moto takes the region from the credential scope; it checks no signature.
                    "Authorization": "AWS4-HMAC-SHA256 Credential=bench/20240101/us-east-1/dynamodb/aws4_request, "
                    "SignedHeaders=host, Signature=0",
                },
            )
            resp = conn.getresponse()
            data = json.loads(resp.read() or b"{}")
        finally:
            conn.close()
        return resp.status, data

    def _scan(self, keys_only: bool) -> list[dict[str, Any]]:
        request: dict[str, Any] = {"TableName": TABLE_NAME}
        if keys_only:
            names = {f"#k{i}": n for i, n in enumerate(self.key_names)}
            request["ProjectionExpression"] = ", ".join(names)
            request["ExpressionAttributeNames"] = names
        items: list[dict[str, Any]] = []
        for _ in range(10_000):  # pages; bounded
            page = self._call("Scan", request)
            items += page.get("Items", [])
            if not page.get("LastEvaluatedKey"):
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        raise RuntimeError("emulator Scan did not finish")

    def _batch(self, requests: list[dict[str, Any]]) -> None:
        for i in range(0, len(requests), 25):
            chunk = requests[i : i + 25]
            for attempt in range(60):  # a throttling emulator leaves what is past a key's budget
                chunk = self._call("BatchWriteItem", {"RequestItems": {TABLE_NAME: chunk}}).get(
                    "UnprocessedItems", {}).get(TABLE_NAME, [])
                if not chunk:
                    break
                time.sleep(min(0.5, 0.01 * 2**attempt))
            else:
                raise RuntimeError("emulator left writes unprocessed")

    def trim(self) -> None:
        self.since_trim = 0
        if not self.keep:
            return
        doomed = [k for k in self._scan(keys_only=True) if self._id(k) not in self.keep]
        self._batch([{"DeleteRequest": {"Key": k}} for k in doomed])
        self.deleted += len(doomed)

    def compact(self) -> None:
        self.since_trim = self.since_compact = 0
        if not self.keep or self.proc is None:
            return
        kept = [item for item in self._scan(keys_only=False) if self._id(item) in self.keep]
        stop_child(self.proc)
        self.start(self.port)
        self._batch([{"PutRequest": {"Item": item}} for item in kept])
        self.compactions += 1

    def tick(self) -> None:
        """Called between measured iterations."""
        self.since_trim += 1
        self.since_compact += 1
        if self.since_compact >= COMPACT_EVERY:
            self.compact()
        elif self.since_trim >= TRIM_EVERY:
            self.trim()


STORE = LocalStore()


# --------------------------------------------------------------------------- scenarios


@dataclass
class Seed:
    entity_id: str
    apikey: str
    apisecret: str
    user_id: str
    user_token: str
    owner_token: str


@dataclass
class Step:
    label: str
    inv: Invocation
    ops: dict[str, int]
    status: int
    units: CallUnits | None = None  # the emulator's meter, when METER is active


@dataclass
class Route:
    label: str  # table row(s)
    function: str
    # Runs one iteration in `fp`, answering one Step per table row.
    run: Callable[[FunctionProcess, Seed, ProxyControl], list[Step]]
    rows: list[str] = field(default_factory=list)


def call(fp: FunctionProcess, proxy: ProxyControl, label: str, event: bytes, expect: tuple[int, ...]) -> Step:
    if METER.active:
        METER.reset()
    proxy.reset()
    inv = fp.invoke(event)
    ops = proxy.ops()
    units = METER.read() if METER.active else None
    status, body = inv.answer()
    if status not in expect:
        raise RuntimeError(f"{label}: expected {expect}, got {status} {str(body)[:300]}")
    return Step(label, inv, ops, status, units)


def user_headers(s: Seed) -> dict[str, str]:
    return {"apikey": s.apikey, "userid": s.user_id, "token": s.user_token}


def server_headers(s: Seed) -> dict[str, str]:
    return {"apikey": s.apikey, "apisecret": s.apisecret}


def admin_create(fp: FunctionProcess, s: Seed, p: ProxyControl) -> list[Step]:
    ev = api_event(
        "POST",
        "/admin/entities",
        {"authorization": f"Bearer {ADMIN_TOKEN}"},
        {"name": "Bench", "ownerUserIds": ["owner-1"], "currency": "usd"},
    )
    return [call(fp, p, "admin: create entity", ev, (201,))]


def auth_mint(fp: FunctionProcess, s: Seed, p: ProxyControl) -> list[Step]:
    ev = api_event(
        "POST", f"/api/entities/{s.entity_id}/users/{s.user_id}/token", server_headers(s), {"ttlSeconds": 3600}
    )
    return [call(fp, p, "auth: mint token", ev, (200, 201))]


def q1_list_tiers(fp: FunctionProcess, s: Seed, p: ProxyControl) -> list[Step]:
    ev = api_event("GET", f"/api/entities/{s.entity_id}/credit-tiers", user_headers(s))
    return [call(fp, p, "Q1 list tiers", ev, (200,))]


def q3_read_credits(fp: FunctionProcess, s: Seed, p: ProxyControl) -> list[Step]:
    ev = api_event("GET", f"/api/entities/{s.entity_id}/users/{s.user_id}/credits", user_headers(s))
    return [call(fp, p, "Q3 read credits", ev, (200,))]


def q11_decrement(fp: FunctionProcess, s: Seed, p: ProxyControl) -> list[Step]:
    ev = api_event(
        "POST", f"/api/entities/{s.entity_id}/users/{s.user_id}/decrement-credits", user_headers(s), {"credits": 1}
    )
    return [call(fp, p, "Q11 decrement", ev, (200, 201))]


def hold_capture(fp: FunctionProcess, s: Seed, p: ProxyControl) -> list[Step]:
    base = f"/api/entities/{s.entity_id}/users/{s.user_id}/holds"
    hold = call(
        fp, p, "hold (open)", api_event("POST", base, server_headers(s), {"credits": 1, "ttlSeconds": 600}), (201,)
    )
    hold_id = hold.inv.answer()[1]["data"]["holdId"]
    capture = call(fp, p, "capture", api_event("POST", f"{base}/{hold_id}/capture", server_headers(s), {}), (200,))
    return [hold, capture]


ROUTES = [
    Route("Q1 list tiers", "tiers", q1_list_tiers, ["Q1 list tiers"]),
    Route("Q3 read credits", "credits", q3_read_credits, ["Q3 read credits"]),
    Route("Q11 decrement", "credits", q11_decrement, ["Q11 decrement"]),
    Route("hold + capture", "credits", hold_capture, ["hold (open)", "capture"]),
    Route("admin: create entity", "admin", admin_create, ["admin: create entity"]),
    Route("auth: mint token", "auth", auth_mint, ["auth: mint token"]),
]
ROUTE_KIND = {  # for the targets: which rows are credit mutations and which are reads
    "Q1 list tiers": "read",
    "Q3 read credits": "read",
    "Q11 decrement": "mutation",
    "hold (open)": "mutation",
    "capture": "mutation",
}


def seed(relay: StoreRelay, proxy: ProxyControl, functions: list[str]) -> Seed:
    for needed in ("admin", "auth", "tiers", "credits"):
        if needed not in functions:
            raise RuntimeError(f"seeding needs the {needed} function, not found under functions/")
    with FunctionProcess("admin", relay) as fp:
        fp.start()
        fp.wait_ready()
        ev = api_event(
            "POST",
            "/admin/entities",
            {"authorization": f"Bearer {ADMIN_TOKEN}", "idempotency-key": f"bench-{uuid.uuid4()}"},
            {"name": "Bench Co", "ownerUserIds": ["owner-1"], "currency": "usd"},
        )
        data = call(fp, proxy, "seed entity", ev, (201,)).inv.answer()[1]["data"]
    s = Seed(data["entityId"], data["apikey"], data["apisecret"], "u-bench", "", "")
    with FunctionProcess("auth", relay) as fp:
        fp.start()
        fp.wait_ready()
        tokens = {}
        for user in ("owner-1", s.user_id):
            ev = api_event("POST", f"/api/entities/{s.entity_id}/users/{user}/token", server_headers(s), {})
            tokens[user] = call(fp, proxy, "seed token", ev, (200, 201)).inv.answer()[1]["data"]["token"]
    s.owner_token, s.user_token = tokens["owner-1"], tokens[s.user_id]
    with FunctionProcess("tiers", relay) as fp:
        fp.start()
        fp.wait_ready()
        owner = {"apikey": s.apikey, "userid": "owner-1", "token": s.owner_token}
        body = {"name": "Starter", "credits": 100, "bonusCredits": 20, "price": 999}
        call(fp, proxy, "seed tier", api_event("POST", f"/api/entities/{s.entity_id}/credit-tiers", owner, body), (201,))
    with FunctionProcess("credits", relay) as fp:
        fp.start()
        fp.wait_ready()
        body = {"credits": 1_000_000, "idempotencyKey": "seed"}
        ev = api_event("POST", f"/api/entities/{s.entity_id}/users/{s.user_id}/buy-credits", server_headers(s), body)
        call(fp, proxy, "seed credits", ev, (200, 201))
    return s


# --------------------------------------------------------------------------- measurements


@dataclass
class BinaryStats:
    name: str
    size: int
    init_ms: list[float] = field(default_factory=list)
    connect_ms: list[float] = field(default_factory=list)  # spawn → first store connection
    cold_ms: list[float] = field(default_factory=list)
    cold_own_ms: list[float] = field(default_factory=list)  # minus local store time
    init_ops: dict[str, int] = field(default_factory=dict)
    trivial_ms: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    error: str | None = None


@dataclass
class RowStats:
    label: str
    function: str
    warm_ms: list[float] = field(default_factory=list)
    warm_own_ms: list[float] = field(default_factory=list)
    warm_requests: list[int] = field(default_factory=list)
    warm_ops: dict[str, int] = field(default_factory=dict)
    first_ms: list[float] = field(default_factory=list)
    first_own_ms: list[float] = field(default_factory=list)
    first_requests: list[int] = field(default_factory=list)
    first_ops: list[dict[str, int]] = field(default_factory=list)
    first_new_connections: list[int] = field(default_factory=list)  # opened during the call and used by it
    first_unused_connections: list[int] = field(default_factory=list)  # opened during the call, not used
    first_request_reused: list[bool] = field(default_factory=list)  # first store request on a pre-call connection
    warm_refreshes: int = 0  # warm calls that re-read the auth cache (AUTH_CACHE_SECONDS)
    warm_steady: list[int] = field(default_factory=list)  # store requests of the other warm calls
    init_connections: list[int] = field(default_factory=list)
    first_init: list[dict[str, Any]] = field(default_factory=list)  # per first-call run
    error: str | None = None


def discover_functions() -> list[str]:
    """Binary names of every HTTP function under functions/ (crates on lambda_http; [[bin]]
    names, else the package name). The events dispatcher takes stream batches, not requests."""
    names = []
    for manifest in sorted((ROOT / "functions").glob("*/Cargo.toml")):
        doc = tomllib.loads(manifest.read_text())
        if "lambda_http" not in doc.get("dependencies", {}):
            continue
        bins = [b["name"] for b in doc.get("bin", []) if "name" in b]
        names += bins or [doc["package"]["name"]]
    return names


def cold_start(binary: str, relay: StoreRelay, proxy: ProxyControl, stats: BinaryStats, record: bool) -> None:
    """Spawn with the trivial GET already queued: spawn → GET /next (init) → answer (cold)."""
    proxy.reset()
    with FunctionProcess(binary, relay) as fp:
        fp.start(first_event=trivial_event())
        inv = fp.result()
        status, body = inv.answer()
        if inv.kind != "response" or status == 0 or status >= 500:
            raise StartFailed(f"{binary}: first answer {inv.kind} {status} {str(body)[:200]}")
        if not record:
            return
        assert fp.api.first_next is not None
        stats.init_ms.append((fp.api.first_next - fp.spawned) * 1000)
        connected = relay.first_accept_after(fp.spawned)
        if connected is not None:
            stats.connect_ms.append((connected - fp.spawned) * 1000)
        stats.cold_ms.append((inv.done - fp.spawned) * 1000)
        store_s = inv.store_after[2] - fp.store_at_spawn[2]
        stats.cold_own_ms.append((inv.done - fp.spawned - store_s) * 1000)
    stats.init_ops = proxy.ops()  # the trivial GET touches no store: this is init's


def warm_runs(
    binary: str, relay: StoreRelay, proxy: ProxyControl, s: Seed | None, bstats: BinaryStats,
    rows: dict[str, RowStats],
) -> None:
    routes = [r for r in ROUTES if r.function == binary] if s is not None else []
    for _ in range(WARM_PROCS):
        if routes:
            STORE.compact()
        with FunctionProcess(binary, relay) as fp:
            fp.start()
            fp.wait_ready()
            fp.invoke(trivial_event())
            for _ in range(WARM_REQUESTS):
                bstats.trivial_ms.append(fp.invoke(trivial_event()).latency_ms)
            healthy = True
            auth_at: float | None = None  # when this process last read API key and entity
            for route in routes:
                assert s is not None
                try:
                    first = route.run(fp, s, proxy)  # the first call: not counted
                    if auth_at is None:
                        auth_at = first[0].inv.sent
                    for _ in range(WARM_REQUESTS):
                        STORE.tick()
                        for step in route.run(fp, s, proxy):
                            row = rows[step.label]
                            if step.ops.get("GetItem", 0) and step.inv.sent - auth_at >= AUTH_CACHE_SECONDS - 0.5:
                                row.warm_refreshes += 1  # the cache entries expired: re-read
                                auth_at = step.inv.sent
                            else:
                                row.warm_steady.append(sum(step.ops.values()))
                            row.warm_ms.append(step.inv.latency_ms)
                            row.warm_own_ms.append(step.inv.latency_ms - step.inv.store_ms)
                            row.warm_requests.append(sum(step.ops.values()))
                            for op, n in step.ops.items():
                                row.warm_ops[op] = row.warm_ops.get(op, 0) + n
                except StartFailed as exc:  # timed out or died: this process is done
                    for label in route.rows:
                        rows[label].error = str(exc)[:300]
                    healthy = False
                    break
                except (RuntimeError, KeyError, ValueError) as exc:  # a wrong answer: next route
                    for label in route.rows:
                        rows[label].error = str(exc)[:300]
            rss = fp.peak_rss_kib() if healthy else None
            if rss is not None:
                bstats.rss_kib.append(rss)


def first_calls(route: Route, relay: StoreRelay, proxy: ProxyControl, s: Seed, rows: dict[str, RowStats]) -> None:
    """The route's first call in a fresh process that has finished init (idle on GET /next)."""
    STORE.compact()
    for _ in range(FIRST_RUNS):
        STORE.trim()
        with FunctionProcess(route.function, relay) as fp:
            fp.start()
            init_ms = fp.wait_ready()
            at_ready = relay.snapshot()
            conns_at_ready = at_ready[0] - fp.store_at_spawn[0]
            init_exchanges = at_ready[1] - fp.store_at_spawn[1]
            try:
                steps = route.run(fp, s, proxy)
            except (RuntimeError, KeyError, ValueError) as exc:
                for label in route.rows:
                    rows[label].error = str(exc)[:300]
                return
            for step in steps:
                row = rows[step.label]
                row.first_ms.append(step.inv.latency_ms)
                row.first_own_ms.append(step.inv.latency_ms - step.inv.store_ms)
                row.first_requests.append(sum(step.ops.values()))
                row.first_ops.append(step.ops)
                opened, used, first_reused = relay.connections_between(step.inv.sent, step.inv.done)
                row.first_new_connections.append(used)
                row.first_unused_connections.append(opened - used)
                if first_reused is not None:
                    row.first_request_reused.append(first_reused)
                row.init_connections.append(conns_at_ready)
                row.first_init.append({"init_ms": round(init_ms, 2), "store_exchanges_in_init": init_exchanges})


# --------------------------------------------------------------------------- Q11 under concurrency

CONC_CLIENTS = [int(x) for x in os.environ.get("BENCH_CONC_CLIENTS", "1,8,32,64").split(",") if x.strip()]
CONC_REQUESTS = env_int("BENCH_CONC_REQUESTS", 320)  # measured calls per cell (split over the clients)
CONC_BATCH = 40  # calls between trims: every client stops at a barrier, the table is trimmed
CONC_COMPACT = 160  # calls between emulator restarts within a cell
CONC_SECTION = "## Q11 under concurrency"


@dataclass
class ConcCell:
    mode: str  # "one" account for all clients, or "own" account per client
    clients: int
    ms: list[float] = field(default_factory=list)
    own_ms: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    ops: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    proxy_requests: int = 0
    modeled_conflicts: int = 0  # answered by the proxy's conflict model (DynamoDB's rules)
    ledger: str = ""  # LedgerCheck's verdict


@dataclass
class RawCell:
    """The store's own limit: conditional UpdateItem calls on one item, N clients at once,
    straight to the proxy (conflicts modeled) and the emulator behind it, no function."""
    clients: int
    ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    wall_s: float = 0.0
    modeled_conflicts: int = 0

    def rate(self) -> float:
        return len(self.ms) / self.wall_s if self.wall_s else math.nan


RAW_KEY_VALUES = ("BENCH#raw-update", "RAW")  # the one item the raw cells update


def raw_update_item(key_names: list[str]) -> dict[str, Any]:
    return {name: {"S": value} for name, value in zip(key_names, RAW_KEY_VALUES)}


def raw_cell(proxy_url: str, proxy: ProxyControl, n: int) -> RawCell:
    """N threads, each with its own kept-alive connection to the proxy, each sending
    CONC_REQUESTS // N conditional UpdateItem calls (`ADD balance :d` if `balance >= :c`) on
    the same item, released together."""
    cell = RawCell(n)
    host, port = proxy_url.removeprefix("http://").split(":")
    body = json.dumps({
        "TableName": TABLE_NAME,
        "Key": raw_update_item(STORE.key_names),
        "UpdateExpression": "ADD balance :d",
        "ConditionExpression": "balance >= :c",
        "ExpressionAttributeValues": {":d": {"N": "-1"}, ":c": {"N": "1"}},
    })
    headers = {
        "X-Amz-Target": "DynamoDB_20120810.UpdateItem",
        "Content-Type": "application/x-amz-json-1.0",
        "Authorization": "AWS4-HMAC-SHA256 Credential=bench/20240101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host, Signature=0",
    }
    per_client = max(1, CONC_REQUESTS // n)
    lock = threading.Lock()
    barrier = threading.Barrier(n + 1)

    def client() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=INVOKE_TIMEOUT_S)
        try:
            barrier.wait(timeout=30)
            for _ in range(per_client):
                t0 = time.perf_counter()
                try:
                    conn.request("POST", "/", body=body, headers=headers)
                    resp = conn.getresponse()
                    resp.read()
                    status = resp.status
                except (OSError, http.client.HTTPException):
                    conn.close()  # reconnects on the next request; counted as status 0
                    status = 0
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    cell.ms.append(ms)
                    cell.statuses[status] = cell.statuses.get(status, 0) + 1
        finally:
            conn.close()

    proxy.reset()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    barrier.wait(timeout=30)
    t0 = time.perf_counter()
    for t in threads:
        t.join(timeout=INVOKE_TIMEOUT_S * per_client + 5)
    cell.wall_s = time.perf_counter() - t0
    cell.modeled_conflicts = proxy.modeled_conflicts()
    proxy.reset()
    return cell


def raw_cells(proxy_url: str, proxy: ProxyControl) -> list[RawCell]:
    item = {**raw_update_item(STORE.key_names), "balance": {"N": str(10**12)}}
    STORE._call("PutItem", {"TableName": TABLE_NAME, "Item": item})
    STORE.keep.add(STORE._id(item))
    cells = []
    for n in CONC_CLIENTS:
        STORE.compact()
        note_other_busy()
        cell = raw_cell(proxy_url, proxy, n)
        log(f"  raw UpdateItem on one item, {n} clients: {len(cell.ms)} calls in {cell.wall_s:.1f}s "
            f"({cell.rate():.0f}/s), p50 {median(cell.ms):.1f} ms, statuses {cell.statuses}, "
            f"modeled conflicts {cell.modeled_conflicts}")
        cells.append(cell)
    return cells


def conc_seed_accounts(relay: StoreRelay, proxy: ProxyControl, s: Seed, n: int) -> list[str]:
    """One account per client (same entity), 1,000,000 credits each; kept by the trims."""
    users = [f"u-conc-{i:02d}" for i in range(n)]
    with FunctionProcess("credits", relay) as fp:
        fp.start()
        fp.wait_ready()
        for u in users:
            body = {"credits": 1_000_000, "idempotencyKey": f"seed-{u}"}
            ev = api_event("POST", f"/api/entities/{s.entity_id}/users/{u}/buy-credits", server_headers(s), body)
            call(fp, proxy, "seed credits", ev, (200, 201))
    wanted = {f"ACCOUNT#{s.entity_id}#{u}" for u in users}
    for item in STORE._scan(keys_only=True):
        if item.get("pk", {}).get("S") in wanted and item.get("sk", {}).get("S") == "ACCOUNT":
            STORE.keep.add(STORE._id(item))
    STORE.trim()
    return users


OTHER_BUSY: set[str] = set()  # build/test processes seen running during the section


def note_other_busy() -> None:
    """Records cargo/rustc/test processes running beside the bench (they disturb the figures)."""
    me = os.getpid()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == me:
            continue
        try:
            comm = (d / "comm").read_text().strip()
        except OSError:
            continue
        if comm in ("cargo", "rustc", "cc", "ld", "rust-lld") or comm.startswith("cargo-"):
            OTHER_BUSY.add(comm)


def conc_note(elapsed_s: float, seed_s: float | None) -> str:
    load = os.getloadavg()
    parts = [
        f"{machine_line()} Section wall time {elapsed_s:.0f} s"
        + (f" (of which {seed_s:.0f} s start-up and seed)" if seed_s is not None else "")
        + f"; load average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min)."
    ]
    if OTHER_BUSY:
        parts.append(
            f"**Disturbed:** other build/test processes ({', '.join(sorted(OTHER_BUSY))}) were running on this "
            "2-core machine during the section; latencies and p99 are inflated, store request counts are not."
        )
    else:
        parts.append("No cargo/rustc process was seen running beside the bench (checked before and after each cell).")
    return " ".join(parts)


@dataclass
class Books:
    """One account as its item shows it: the balance, and the records still in its journal."""
    balance: int
    journal_balance: int  # what the journal's records add to the balance
    journal_entries: collections.Counter[str]  # the entries the journal's records hold, by kind


class LedgerCheck:
    """The ledger invariant over a cell, batch by batch: the trims between batches delete the
    entries written, so each batch is checked at its barrier, before the trim. Per account, the
    balance moved by exactly the credits of the entries the batch moved out plus the change of
    what the journal holds; over all accounts, every spend answered 2xx is one decrement
    entry, moved out or still in a journal, and no other entry was written (records moved out
    of a journal count where the journal held them)."""

    def __init__(self, partitions: list[str]) -> None:
        self.partitions = partitions
        self.books = {pk: self.read(pk) for pk in partitions}
        self.batches = 0
        self.broken: list[str] = []

    def read(self, pk: str) -> Books:
        key = dict(zip(STORE.key_names, ({"S": pk}, {"S": "ACCOUNT"})))
        item = STORE._call("GetItem", {"TableName": TABLE_NAME, "Key": key, "ConsistentRead": True})["Item"]
        records = [json.loads(r["S"]) for r in item.get("journal", {}).get("L", [])]
        # Format 2 names a record's entries `e`, its delta `d` and the balance in it `b`;
        # format 1 spelled them out.
        entries = [e for r in records for e in r.get("e", r.get("entries", []))]
        deltas = [r.get("d", r.get("delta", {})) for r in records]
        kinds = collections.Counter(e["type"] for e in entries)
        return Books(int(item["balance"]["N"]), sum(d.get("b", d.get("balance", 0)) for d in deltas), kinds)

    def batch(self, spends_answered: int) -> None:
        self.batches += 1
        wanted = set(self.partitions)
        entries: dict[str, list[dict[str, Any]]] = {pk: [] for pk in wanted}
        for item in STORE._scan(keys_only=False):
            pk, sk = item.get("pk", {}).get("S"), item.get("sk", {}).get("S", "")
            if pk in wanted and sk.startswith("ENTRY#"):
                entries[pk].append(item)
        written: collections.Counter[str] = collections.Counter()  # entries added, moved out or not
        for pk in self.partitions:
            before, now = self.books[pk], self.read(pk)
            moved = sum(int(e["credits"]["N"]) for e in entries[pk])
            if before.balance + moved + now.journal_balance - before.journal_balance != now.balance:
                self.broken.append(f"{pk}: {before} + entries {moved} -> {now}")
            written.update(e["type"]["S"] for e in entries[pk])
            written.update(now.journal_entries)
            written.subtract(before.journal_entries)
            self.books[pk] = now
        nonzero = {kind: count for kind, count in written.items() if count}
        if nonzero != ({"decrement": spends_answered} if spends_answered else {}):
            self.broken.append(f"batch {self.batches}: {spends_answered} spends answered 2xx, entries {dict(written)}")

    def verdict(self) -> str:
        if self.broken:
            return f"BROKEN: {self.broken[0]}"
        return f"held ({self.batches} batches)"


@contextlib.contextmanager
def credits_processes(relay: StoreRelay, n: int, throttle: bool = False) -> Iterator[list[FunctionProcess]]:
    """`n` warm `credits` processes, each with its own relay in front of `relay`'s upstream (as
    Lambda scales out: one invocation at a time per process), the emulator throttling while
    they run if `throttle`; on exit throttling is off and every process and relay is stopped."""
    relays = [StoreRelay(relay.upstream_port) for _ in range(n)]
    procs = [FunctionProcess("credits", r) for r in relays]
    if throttle:
        STORE.set_throttle(True)
    try:
        for fp in procs:
            fp.start()
        for fp in procs:
            fp.wait_ready()
        yield procs
    finally:
        if throttle:
            STORE.set_throttle(False)
        for fp in procs:
            fp.stop()
        for r in relays:
            r.close()


def client_invoke(fp: FunctionProcess, event: bytes, lock: threading.Lock, errors: list[str]) -> Invocation | None:
    """One call from a client thread; None (the client stops) if the process failed, the
    failure noted in `errors` under `lock`."""
    try:
        return fp.invoke(event)
    except StartFailed as exc:
        with lock:
            errors.append(str(exc)[:200])
        return None


def conc_cell(procs: list[FunctionProcess], relays: list[StoreRelay], proxy: ProxyControl, s: Seed, mode: str,
              n: int, users: list[str]) -> ConcCell:
    note_other_busy()
    cell = ConcCell(mode, n)
    events = [
        api_event(
            "POST",
            f"/api/entities/{s.entity_id}/users/{s.user_id if mode == 'one' else users[i]}/decrement-credits",
            server_headers(s),
            {"credits": 1},
        )
        for i in range(n)
    ]
    STORE.compact()
    for i in range(n):  # one unmeasured call each: auth cache and account cache warm
        procs[i].invoke(events[i])
    STORE.trim()
    accounts = [s.user_id] if mode == "one" else users[:n]
    check = LedgerCheck([f"ACCOUNT#{s.entity_id}#{u}" for u in accounts])
    lock = threading.Lock()
    per_client = max(1, CONC_REQUESTS // n)
    rounds_per_batch = max(1, CONC_BATCH // n)

    def client(i: int, k: int) -> None:
        for _ in range(k):
            before = relays[i].op_counts()
            if (inv := client_invoke(procs[i], events[i], lock, cell.errors)) is None:
                return
            ops = relays[i].op_counts() - before
            status, _ = inv.answer()
            with lock:
                cell.statuses[status] = cell.statuses.get(status, 0) + 1
                cell.ms.append(inv.latency_ms)
                cell.own_ms.append(inv.latency_ms - inv.store_ms)
                cell.requests.append(sum(ops.values()))
                for op, c in ops.items():
                    cell.ops[op] = cell.ops.get(op, 0) + c

    done, since_compact, ok_before = 0, 0, 0
    proxy.reset()
    while done < per_client:
        k = min(rounds_per_batch, per_client - done)
        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i, k), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=INVOKE_TIMEOUT_S * k + 5)
        cell.wall_s += time.perf_counter() - t0
        if any(t.is_alive() for t in threads):
            cell.errors.append("a client did not finish in time; cell stopped")
            break
        done += k
        if done >= per_client:
            note_other_busy()
        ok_now = sum(v for k, v in cell.statuses.items() if 200 <= int(k) < 300)
        check.batch(ok_now - ok_before)
        ok_before = ok_now
        cell.proxy_requests += sum(proxy.ops().values())
        cell.modeled_conflicts += proxy.modeled_conflicts()
        since_compact += k * n
        if since_compact >= CONC_COMPACT:  # between batches only, never during a call
            STORE.compact()
            since_compact = 0
        else:
            STORE.trim()
        proxy.reset()
    cell.ledger = check.verdict()
    return cell


def concurrency(relay: StoreRelay, proxy: ProxyControl, s: Seed, proxy_url: str) -> tuple[list[RawCell], list[ConcCell]]:
    """Q11 decrement with N concurrent clients, each with its own warm `credits` process (as
    Lambda scales out: one invocation at a time per process), on one shared account and on
    one account per client. Every process has its own relay, so store time and store
    requests (with their operations) are per call even while the calls overlap."""
    most = max(CONC_CLIENTS)
    users = conc_seed_accounts(relay, proxy, s, most)
    log(f"Q11 under concurrency: {most} credits processes, clients {CONC_CLIENTS}, {CONC_REQUESTS} calls per cell")
    raws = raw_cells(proxy_url, proxy)
    cells: list[ConcCell] = []
    with credits_processes(relay, most) as procs:
        relays = [fp.relay for fp in procs]
        for mode in ("one", "own"):
            for n in CONC_CLIENTS:
                cell = conc_cell(procs, relays, proxy, s, mode, n, users)
                log(
                    f"  {mode} account(s), {n} clients: {len(cell.ms)} calls in {cell.wall_s:.1f}s, "
                    f"p50 {median(cell.ms):.1f} ms, statuses {cell.statuses}, ops {cell.ops}, "
                    f"proxy saw {cell.proxy_requests}, modeled conflicts {cell.modeled_conflicts}, ledger {cell.ledger}"
                )
                cells.append(cell)
    return raws, cells


def answers_text(statuses: dict[int, int], errors: list[str] | None = None) -> str:
    """A table's "answers" cell: the count of each status, then the errors if any."""
    answers = ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))
    if errors:
        answers += f"; errors: {len(errors)} ({errors[0]})"
    return answers


def conc_report(raws: list[RawCell], cells: list[ConcCell], note: str) -> str:
    out = [CONC_SECTION + "\n"]
    raw_rate = {c.clients: c.rate() for c in raws}
    out.append(
        "The fault proxy models conflicts as DynamoDB raises them (a transaction overlapping another "
        "transaction on an item is cancelled with `TransactionConflict`, a single-item write on an item "
        "a transaction holds fails with `TransactionConflictException`; single-item writes on one item "
        "never conflict), every fault rate 0. **The store's own limit first:** conditional `UpdateItem` "
        "(`ADD balance :d` if `balance >= :c`) on one item, N clients at once, each with its own kept-alive "
        f"connection straight to the proxy (no function), {CONC_REQUESTS} calls per cell.\n"
    )
    out.append("| clients | calls | p50 / p99 ms | answers | modeled conflicts | UpdateItem/s |")
    out.append("|---|---|---|---|---|---|")
    for c in raws:
        out.append(
            f"| {c.clients} | {len(c.ms)} | {fmt(median(c.ms), 2)} / {fmt(percentile(c.ms, 99), 2)} "
            f"| {answers_text(c.statuses)} | {c.modeled_conflicts} | {fmt(c.rate(), 0)} |"
        )
    out.append("")
    out.append(
        "Q11 decrement (`POST …/users/{u}/decrement-credits` `{\"credits\":1}`, server credentials) with N "
        "concurrent clients. As Lambda scales out, each client has its own warm `credits` process (one "
        "invocation at a time each), so on **one account** N processes contend for the same account item "
        "(each spend is one conditional UpdateItem that appends to the account's journal; the write that "
        "brings the journal to 2 records claims it in the same update, unless another mover holds it, and "
        "moves every record there by then: a PutItem of each record's entry (a keyless spend keeps no "
        "idempotency record: its entry keeps its outcome) "
        "(a TransactWriteItems only for records that touch holds or purchase counts) and an UpdateItem "
        "dropping them, which ends the claim; under contention the journal grows while a move waits its turn, so "
        "one move takes more records); "
        "with **own account** every client decrements a "
        f"different account of the same entity. {CONC_REQUESTS} measured calls per cell, split evenly over "
        f"the clients, after one unmeasured call per process; every {CONC_BATCH} calls all clients stop "
        "at a barrier and the table is trimmed (restarted every "
        f"{CONC_COMPACT} calls and before each cell), as in the sections above. Each process has its own "
        "relay, so store time and store requests are per call: \"excl. store\" subtracts the call's own "
        "store exchanges (which include waiting for the single-threaded emulator behind other clients' "
        "requests) but keeps the backoff sleeps. Store requests per call are counted at the relay, by "
        "operation (PutItems are journal moves, one per spend). GetItem calls in "
        f"a cell that lasts over {AUTH_CACHE_SECONDS} s include the processes' re-reads of the API key and "
        "entity (cache expiry, by design). \"answers\" counts status codes, 503 included; the latencies "
        "include the 503s. calls/s = calls over the cell's wall time (barriers included), 503s included; the "
        "last column is the rate of successful calls (2xx) as a share of the raw UpdateItem rate above at "
        "the same N (the issue's target: ≥ 70 % on one account at 32 and 64). \"modeled conflicts\" counts store requests the proxy's conflict "
        "model refused during the cell. \"ledger\" is the invariant checked at every barrier, before the "
        "trim (`LedgerCheck`): per account, the balance moved by exactly the credits of the entries moved "
        "out since the last barrier plus the change of the records still in the journal, and every spend "
        "answered 2xx is exactly one decrement entry, moved out or in a journal, and nothing else was written.\n"
    )
    out.append(
        "| accounts | clients | calls | p50 / p99 ms | p50 / p99 excl. store ms | store requests per call: "
        "mean (max) | per call by operation | answers | modeled conflicts | ledger | calls/s | 2xx/s ÷ raw UpdateItem/s (same N) |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for c in cells:
        n = len(c.ms)
        rate = n / c.wall_s if c.wall_s else math.nan
        ok_rate = sum(v for k, v in c.statuses.items() if 200 <= int(k) < 300) / c.wall_s if c.wall_s else math.nan
        out.append(
            f"| {'one (shared)' if c.mode == 'one' else 'own (one each)'} | {c.clients} | {n} "
            f"| {fmt(median(c.ms), 2)} / {fmt(percentile(c.ms, 99), 2)} "
            f"| {fmt(median(c.own_ms), 2)} / {fmt(percentile(c.own_ms, 99), 2)} "
            f"| {fmt(mean(c.requests), 2)} ({max(c.requests) if c.requests else '–'}) "
            f"| {ops_text(c.ops, n or 1)} | {answers_text(c.statuses, c.errors)} | {c.modeled_conflicts} | {c.ledger} "
            f"| {fmt(rate, 0)} | {fmt(100 * ok_rate / raw_rate[c.clients], 0) + ' %' if raw_rate.get(c.clients) else '–'} |"
        )
    out.append("")
    if note:
        out.append(note + "\n")
    return "\n".join(out)


def splice_section(text: str, heading: str, section: str) -> str:
    """`text` with its section under `heading` replaced by `section` (appended if none)."""
    start = text.find(heading + "\n")
    if start < 0:
        return text.rstrip("\n") + "\n\n" + section
    end = text.find("\n## ", start + len(heading))
    return text[:start] + section.rstrip("\n") + "\n" + ("" if end < 0 else text[end:])


# --------------------------------------------------------------------------- capacity: units, ceilings, cost

# On-demand list prices, us-east-1, checked 2026-12 (sources in PRICE_SOURCES).
PRICE_DATE = "2026-12"
PRICE_API_PER_MILLION = 1.00  # API Gateway HTTP API requests (first 300 million a month)
PRICE_LAMBDA_REQUEST_PER_MILLION = 0.20
PRICE_LAMBDA_GB_SECOND = 0.0000133334  # arm64
PRICE_WRITE_UNIT_PER_MILLION = 0.625  # DynamoDB on-demand write request units
PRICE_READ_UNIT_PER_MILLION = 0.125  # DynamoDB on-demand read request units
PRICE_STREAM_READ_PER_MILLION = 0.0  # stream reads by Lambda's event source mapping are free
PRICE_SOURCES = (
    "API Gateway: aws.amazon.com/api-gateway/pricing (HTTP APIs); Lambda: aws.amazon.com/lambda/pricing "
    "(Arm); DynamoDB: aws.amazon.com/dynamodb/pricing/on-demand (write/read request units; stream reads "
    "by Lambda triggers free, DynamoDB developer guide \"DynamoDB Streams and AWS Lambda triggers\")"
)
WRITE_UNITS_PER_KEY = 1000.0  # per partition key and second (developer guide, "Partitions and data distribution")
READ_UNITS_PER_KEY = 3000.0
ACCOUNT_SK = "ACCOUNT"  # the account item's sort key; entries share its partition key
DISPATCHER = "events-dispatcher"
UNITS_CALLS = env_int("BENCH_UNITS_CALLS", 40)  # measured calls per route for units per call
CAPACITY_SECTION = "## Capacity per route"
HOT_SECTION = "## Hot account, throttling on"
SOAK_SECTION = "## Soak"


def template_number(name: str) -> int:
    """The first `name: <number>` in infra/template.yaml (`MemorySize` is in Globals; `BatchSize` is
    the stream's event source mapping's)."""
    for line in (ROOT / "infra" / "template.yaml").read_text().splitlines():
        key, _, value = line.strip().partition(":")
        if key == name and value.strip().isdigit():
            return int(value.strip())
    raise RuntimeError(f"no {name} in infra/template.yaml")


@dataclass
class Minimum:
    """The physical floor of one call's units (all on the account's key for credit routes)."""
    write: float
    read: float
    why: str


# Writes: an item ≤ 1 KB is 1 unit, outside a transaction. Reads: an item or page ≤ 4 KB read
# strongly consistent is 1 unit; a write's own result comes back with it (`ReturnValues`), and
# API keys, entities and tiers are cached per instance, so a mutation needs no read.
MINIMUMS = {
    "Q1 list tiers": Minimum(0, 1, "one Query page ≤ 4 KB (or 0 with a cached tier list)"),
    "Q3 read credits": Minimum(0, 1, "one GetItem of the account item ≤ 4 KB"),
    "Q11 decrement": Minimum(2, 0, "keyless spend: account item ≤ 1 KB + ledger entry ≤ 1 KB"),
    "hold (open)": Minimum(2, 0, "account item ≤ 1 KB (held amount) + hold record ≤ 1 KB"),
    "capture": Minimum(3, 0, "account item + ledger entry + hold record closed, ≤ 1 KB each"),
    "admin: create entity": Minimum(2, 0, "entity item + API key item, ≤ 1 KB each"),
    "auth: mint token": Minimum(0, 0, "a signed token: nothing stored; API key and entity cached"),
}


@dataclass
class CallUnits:
    """What one call (with the stream work it caused) consumed, from the emulator's meter."""
    write: float
    read: float
    account_write: float  # on the account's partition key
    account_read: float
    hot_key: str  # the partition key with the most units (write units first)
    hot_write: float
    hot_read: float
    account_item_bytes: int | None  # the account item's largest size the call saw (None: untouched)
    throttled: int  # store requests refused for throttling
    stream_records: int = 0  # stream records handed to the dispatcher
    dispatcher_billed_ms: float = 0.0  # the dispatcher's invocations' durations, rounded up to 1 ms each


def key_label(key: Any) -> str:
    """A partition key's value without its ids: `ACCOUNT#…`."""
    text = next(iter(key.values())) if isinstance(key, dict) and key else str(key)
    return str(text).split("#", 1)[0] + ("#…" if "#" in str(text) else "")


def units_of(snapshot: dict[str, Any], account_pk: str) -> CallUnits:
    keys = [k for k in snapshot["keys"] if k["index"] is None]
    account = next((k for k in keys if k["key"] == {"S": account_pk}), None)
    hot = max(keys, key=lambda k: (k["write_units"], k["read_units"]), default=None)
    return CallUnits(
        write=snapshot["write_units"],
        read=snapshot["read_units"],
        account_write=account["write_units"] if account else 0.0,
        account_read=account["read_units"] if account else 0.0,
        hot_key=key_label(hot["key"]) if hot else "–",
        hot_write=hot["write_units"] if hot else 0.0,
        hot_read=hot["read_units"] if hot else 0.0,
        account_item_bytes=(account or {}).get("peak_item_bytes_by_sort_key", {}).get(ACCOUNT_SK),
        throttled=snapshot["throttled"],
    )


class StreamFeeder:
    """Lambda's event source mapping for the bench: reads the emulator's stream of the table and
    invokes a warm events-dispatcher process with each batch (`{"Records": [...]}`), as in AWS
    and `make dev` (infra/local/stream_poller.py, whose stream client this uses). After an
    emulator restart (a compaction) it starts again at the stream's end. `wait_quiet(t)` waits
    for a read round that began after `t` to find nothing: everything written before `t` has been
    handed to the dispatcher and answered."""

    def __init__(self, relay_port: int) -> None:
        sys.path.insert(0, str(ROOT / "infra" / "local"))
        from stream_poller import Stream  # noqa: PLC0415 - the local stack's own stream client

        self.stream_class = Stream
        self.relay = StoreRelay(relay_port)
        self.fp = FunctionProcess(DISPATCHER, self.relay)
        self.lock = threading.Lock()
        self.quiet_since: float | None = None  # start of the last round that found nothing
        self.records = 0
        self.billed_ms = 0.0
        self.failures: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="stream-feeder", daemon=True)

    def start(self) -> None:
        self.fp.start()
        self.fp.wait_ready()
        self.thread.start()

    def counters(self) -> tuple[int, float]:
        """Stream records delivered, and the dispatcher's billed milliseconds, so far."""
        with self.lock:
            return self.records, self.billed_ms

    def wait_quiet(self, after: float, timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            with self.lock:
                if self.quiet_since is not None and self.quiet_since > after:
                    return True
            time.sleep(0.005)
        return False

    def _iterators(self, stream: Any) -> tuple[str, dict[str, str]]:
        arn = stream.arn(TABLE_NAME)
        if arn is None:
            raise RuntimeError("the table has no stream")
        return arn, {shard: stream.iterator(arn, shard, "LATEST") for shard in stream.shards(arn)}

    def _run(self) -> None:
        arn, iterators = "", {}
        while not self.stopping.is_set():
            started = time.perf_counter()
            try:
                stream = self.stream_class(STORE.url)
                if not iterators:
                    arn, iterators = self._iterators(stream)
                found = False
                for shard, iterator in list(iterators.items()):
                    records, following = stream.records(iterator)
                    if records:
                        found = True
                        self._deliver(arn, records)
                    iterators[shard] = following
            except Exception as exc:  # noqa: BLE001 - the emulator restarted (or is restarting): start over
                iterators = {}
                detail = str(exc)
                if isinstance(exc, urllib.error.HTTPError):
                    detail += ": " + exc.read()[:300].decode(errors="replace")
                with self.lock:
                    self.quiet_since = None
                    self.failures.append(detail[:400])
                time.sleep(0.05)
                continue
            if not found:
                with self.lock:
                    self.quiet_since = started
                time.sleep(0.01)

    def _deliver(self, arn: str, records: list[dict[str, Any]]) -> None:
        for record in records:
            record["eventSourceARN"] = arn
        inv = self.fp.invoke(json.dumps({"Records": records}).encode())
        with self.lock:
            self.records += len(records)
            self.billed_ms += math.ceil(inv.latency_ms)
        answer = json.loads(inv.body or b"null") if inv.kind == "response" else None
        if inv.kind != "response" or (answer or {}).get("batchItemFailures"):
            with self.lock:
                self.failures.append(f"batch not fully handled: {inv.body[:200]!r}")

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.fp.stop()
        self.relay.close()


class EmulatorMeter:
    """The emulator's capacity meter around measured calls: when `active`, `call` resets it
    before each call and reads it after (waiting, if a stream feeder runs, for the stream work
    the call caused)."""

    def __init__(self) -> None:
        self.active = False
        self.account_pk = ""
        self.feeder: StreamFeeder | None = None
        self.feeder_at_reset = (0, 0.0)

    def quiet(self, since: float | None = None, timeout: float = 60.0) -> float:
        """Waits until the stream work of everything written before `since` (default: now) is
        done; answers the seconds from `since` (inf if it took over `timeout`; nan without a feeder)."""
        if self.feeder is None:
            return math.nan
        since = time.perf_counter() if since is None else since
        if not self.feeder.wait_quiet(since, timeout):
            log(f"stream feeder not caught up within {timeout:.0f} s")
            return math.inf
        return time.perf_counter() - since

    def reset(self) -> None:
        self.quiet()  # the previous call's stream work is done and metered before this one's
        STORE.control("POST", "/_emulator/capacity/reset")
        if self.feeder is not None:
            self.feeder_at_reset = self.feeder.counters()

    def read(self) -> CallUnits:
        self.quiet()
        units = units_of(STORE.control("GET", f"/_emulator/capacity?sort_key={ACCOUNT_SK}"), self.account_pk)
        if self.feeder is not None:
            records, billed = self.feeder.counters()
            units.stream_records = records - self.feeder_at_reset[0]
            units.dispatcher_billed_ms = billed - self.feeder_at_reset[1]
        return units


METER = EmulatorMeter()


@dataclass
class UnitsRow:
    label: str
    calls: list[CallUnits] = field(default_factory=list)
    billed_ms: list[float] = field(default_factory=list)  # the call's Lambda duration, rounded up to 1 ms
    error: str | None = None


def units_pass(relay: StoreRelay, proxy: ProxyControl, s: Seed, functions: list[str]) -> dict[str, UnitsRow]:
    """Every route's calls, one at a time in a warm process, each with the emulator's meter reset
    before it and read once the stream work it caused is done (throttling off: one call at a
    time never nears a key's budget)."""
    rows: dict[str, UnitsRow] = {}
    STORE.compact()
    METER.quiet()  # the feeder reads the restarted emulator's stream
    for route in ROUTES:
        if route.function not in functions:
            continue
        for label in route.rows:
            rows[label] = UnitsRow(label)
        with FunctionProcess(route.function, relay) as fp:
            fp.start()
            fp.wait_ready()
            try:
                route.run(fp, s, proxy)  # caches warm; not counted
                METER.active = True
                for i in range(UNITS_CALLS):
                    for step in route.run(fp, s, proxy):
                        assert step.units is not None
                        rows[step.label].calls.append(step.units)
                        rows[step.label].billed_ms.append(math.ceil(step.inv.latency_ms))
                    if (i + 1) % TRIM_EVERY == 0:
                        METER.quiet()
                        STORE.trim()
            except (StartFailed, RuntimeError, KeyError, ValueError) as exc:
                for label in route.rows:
                    rows[label].error = str(exc)[:300]
            finally:
                METER.active = False
        log(f"  units of {route.label}: " + "; ".join(
            f"{label} {fmt(mean([c.write for c in rows[label].calls]), 2)} W / "
            f"{fmt(mean([c.read for c in rows[label].calls]), 2)} R per call" for label in route.rows))
    return rows


@dataclass
class Cost:
    api: float
    lambda_requests: float
    lambda_duration: float
    writes: float
    reads: float
    stream_reads: float = 0.0

    @property
    def total(self) -> float:
        return self.api + self.lambda_requests + self.lambda_duration + self.writes + self.reads + self.stream_reads


def cost_per_million(write: float, read: float, billed_ms: float, invocations: float, memory_mb: int) -> Cost:
    """Dollars per million calls at the list prices: `invocations` Lambda invocations per call
    (the route's, plus the dispatcher's) lasting `billed_ms` in all."""
    return Cost(
        api=PRICE_API_PER_MILLION,
        lambda_requests=PRICE_LAMBDA_REQUEST_PER_MILLION * invocations,
        lambda_duration=memory_mb / 1024 * billed_ms / 1000 * PRICE_LAMBDA_GB_SECOND * 1e6,
        writes=PRICE_WRITE_UNIT_PER_MILLION * write,
        reads=PRICE_READ_UNIT_PER_MILLION * read,
    )


def ceiling(units_per_call: float, budget: float) -> float:
    return budget / units_per_call if units_per_call > 0 else math.inf


def fmt_rate(x: float) -> str:
    return "∞" if math.isinf(x) else fmt(x, 0)


def times(x: float, floor: float) -> str:
    """`x` as a multiple of its floor."""
    if math.isnan(x):
        return "–"
    if floor <= 0:
        return "at the floor" if x <= 0 else f"+{x:.2f}"
    return f"{x / floor:.1f}×"


def capacity_report(rows: dict[str, UnitsRow], dispatcher: bool) -> str:
    memory = template_number("MemorySize")
    batch = template_number("BatchSize")
    out = [CAPACITY_SECTION + "\n"]
    out.append(
        f"Each route's calls, one at a time in a warm process ({UNITS_CALLS} measured per route, after one "
        "unmeasured call), with the emulator's capacity meter (`GET /_emulator/capacity`, DynamoDB's sizing "
        "rules, `infra/local/dynamodb_capacity.py`) reset before each call and read after it"
        + (", once the events dispatcher, fed from the table's stream as Lambda's event source mapping "
           "feeds it, has handled what the call wrote: its units count with the call's"
           if dispatcher else "; no events-dispatcher binary was found, so stream-driven work is not counted")
        + ". Throttling off (one call at a time never nears a key's budget). \"account key\" = the seeded "
        f"account's partition key (`ACCOUNT#{{entity}}#{{user}}`: account item and ledger entries); "
        "\"busiest key\" = the partition key with the most units per call (the account key for credit routes). "
        f"\"account item\" = the largest size of the item `{ACCOUNT_SK}` seen by any request of the calls.\n"
    )
    out.append(
        "| route | write units per call mean / p99 (floor, ×) | read units per call mean / p99 (floor, ×) "
        "| account key: write / read units per call | busiest key: write / read per call | peak account item bytes "
        "| store requests throttled |"
    )
    out.append("|---|---|---|---|---|---|---|")
    for row in rows.values():
        if not row.calls:
            out.append(f"| {row.label} | failed: {row.error} | | | | | |")
            continue
        m = MINIMUMS.get(row.label)
        w = [c.write for c in row.calls]
        r = [c.read for c in row.calls]
        item = max((c.account_item_bytes for c in row.calls if c.account_item_bytes is not None), default=None)
        hot = collections.Counter(c.hot_key for c in row.calls).most_common(1)[0][0]

        def per_call(attr: str) -> str:
            return fmt(mean([getattr(c, attr) for c in row.calls]), 2)

        def vs_floor(xs: list[float], floor: float | None) -> str:
            shown = "–" if floor is None else f"{fmt(floor, 0)}, {times(mean(xs), floor)}"
            return f"{fmt(mean(xs), 2)} / {fmt(percentile(xs, 99), 1)} ({shown})"

        out.append(
            f"| {row.label} | {vs_floor(w, m.write if m else None)} | {vs_floor(r, m.read if m else None)} "
            f"| {per_call('account_write')} / {per_call('account_read')} "
            f"| `{hot}` {per_call('hot_write')} / {per_call('hot_read')} "
            f"| {item if item is not None else '–'} | {sum(c.throttled for c in row.calls)} |"
        )
    out.append("")
    out.append(
        f"Ceilings: calls per second one key can take, {WRITE_UNITS_PER_KEY:,.0f} ÷ write units per call on "
        f"it and {READ_UNITS_PER_KEY:,.0f} ÷ read units per call on it (DynamoDB's per-partition limits; a "
        "mix shares them linearly), on the account key and on the busiest key; the floor's ceiling takes "
        "the floor's units on the account key (every unit of the floor lands there for credit routes: "
        "entries share the account's key). Cost per million calls at on-demand list prices "
        f"(us-east-1, checked {PRICE_DATE}): API Gateway HTTP API ${PRICE_API_PER_MILLION:.2f}/M requests; "
        f"Lambda arm64 ${PRICE_LAMBDA_REQUEST_PER_MILLION:.2f}/M requests + ${PRICE_LAMBDA_GB_SECOND}/GB-s at "
        f"the template's `MemorySize: {memory}` (infra/template.yaml), each call's measured local duration "
        "rounded up to 1 ms (an overestimate: the local store is slower than DynamoDB), plus the events "
        "dispatcher's: its duration as measured for the call's stream records, and one invocation per "
        f"{batch} records (the event source mapping's `BatchSize`, full batches as under load; the "
        "bench's feeder invokes it per read, more often); DynamoDB "
        f"${PRICE_WRITE_UNIT_PER_MILLION}/M write request units, ${PRICE_READ_UNIT_PER_MILLION}/M read request "
        "units; stream reads by Lambda's event source mapping $0. Sources: " + PRICE_SOURCES + ". The floor's "
        "cost keeps the same API Gateway and Lambda figures (route's invocation only) with the floor's units.\n"
    )
    out.append(
        "| route | account key ceiling calls/s: writes / reads (floor) | busiest key ceiling: writes / reads "
        "| stream records per call "
        "| $ per million calls: API + Lambda requests + Lambda duration + writes + reads + stream = total "
        "| floor $ per million | × floor |"
    )
    out.append("|---|---|---|---|---|---|---|")
    for row in rows.values():
        if not row.calls:
            continue
        m = MINIMUMS.get(row.label)
        n = len(row.calls)
        w, r = mean([c.write for c in row.calls]), mean([c.read for c in row.calls])
        aw, ar = mean([c.account_write for c in row.calls]), mean([c.account_read for c in row.calls])
        hw, hr = mean([c.hot_write for c in row.calls]), mean([c.hot_read for c in row.calls])
        # The dispatcher's invocations as the event source mapping makes them under load: full
        # batches (BatchSize, infra/template.yaml); its duration as measured (it scales with records).
        invocations = 1 + sum(c.stream_records for c in row.calls) / n / batch
        billed = mean(row.billed_ms) + sum(c.dispatcher_billed_ms for c in row.calls) / n
        cost = cost_per_million(w, r, billed, invocations, memory)
        floor_ceiling = ""
        floor_cost = None
        if m:
            floor_ceiling = (f" ({fmt_rate(ceiling(m.write, WRITE_UNITS_PER_KEY))} / "
                             f"{fmt_rate(ceiling(m.read, READ_UNITS_PER_KEY))})")
            floor_cost = cost_per_million(m.write, m.read, mean(row.billed_ms), 1, memory)
        account_ceiling = f"{fmt_rate(ceiling(aw, WRITE_UNITS_PER_KEY))} / {fmt_rate(ceiling(ar, READ_UNITS_PER_KEY))}"
        hot_ceiling = f"{fmt_rate(ceiling(hw, WRITE_UNITS_PER_KEY))} / {fmt_rate(ceiling(hr, READ_UNITS_PER_KEY))}"
        out.append(
            f"| {row.label} | {account_ceiling}{floor_ceiling} | {hot_ceiling} "
            f"| {fmt(sum(c.stream_records for c in row.calls) / n, 1)} "
            f"| {cost.api:.2f} + {cost.lambda_requests:.3f} + {cost.lambda_duration:.3f} + {cost.writes:.2f} + "
            f"{cost.reads:.3f} + {cost.stream_reads:.2f} = **{cost.total:.2f}** "
            f"| {f'{floor_cost.total:.2f}' if floor_cost else '–'} "
            f"| {times(cost.total, floor_cost.total) if floor_cost else '–'} |"
        )
    out.append("")
    out.append("Floors (physical minimum per call, as defined here): " + "; ".join(
        f"{label} {fmt(m.write, 0)} W + {fmt(m.read, 0)} R ({m.why})" for label, m in MINIMUMS.items()) + ". "
        "An item ≤ 1 KB written outside a transaction is 1 write unit; an item or page ≤ 4 KB read strongly "
        "consistent is 1 read unit; a write's result comes back with it (`ReturnValues`) and API keys, "
        "entities and tiers are cached per instance, so a mutation needs no read. A keyed spend adds its "
        "idempotency record (1 W, on its own key): 3.\n")
    return "\n".join(out)


# --------------------------------------------------------------------------- hot account, throttling on

HOT_REQUESTS = env_int("BENCH_HOT_REQUESTS", 400)  # spends per hot-account cell, one burst
DRAIN_TIMEOUT_S = 60.0


# Read units the driver's own polls of account items consumed (taken out of metered figures).
POLL_READ_UNITS = [0.0]


def journal_length(pk: str) -> int:
    key = dict(zip(STORE.key_names, ({"S": pk}, {"S": ACCOUNT_SK})))
    answer = STORE._call("GetItem", {"TableName": TABLE_NAME, "Key": key, "ConsistentRead": True,
                                     "ReturnConsumedCapacity": "TOTAL"})
    POLL_READ_UNITS[0] += answer.get("ConsumedCapacity", {}).get("CapacityUnits", 0.0)
    return len(answer.get("Item", {}).get("journal", {}).get("L", []))


def seconds_until_journal_empty(pk: str, since: float) -> float:
    """Polls the account item (~20×/s) until its journal is empty or absent; seconds from
    `since` (perf_counter), or inf after DRAIN_TIMEOUT_S."""
    while time.perf_counter() - since < DRAIN_TIMEOUT_S:
        if journal_length(pk) == 0:
            return time.perf_counter() - since
        time.sleep(0.05)
    return math.inf


@dataclass
class HotCell:
    clients: int
    ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    units: CallUnits | None = None  # the whole burst and its stream work
    peak_write_per_s: float = 0.0  # on the account key, in any one clock second
    drain_s: float = math.nan
    stream_s: float = math.nan  # until the dispatcher had handled every stream record of the burst
    ledger: str = ""
    unknown_keys: list[str] = field(default_factory=list)  # named by 503 answers: outcome unknown
    retried: collections.Counter[str] = field(default_factory=collections.Counter)  # how each key's retry went

    def ok(self) -> int:
        return sum(v for k, v in self.statuses.items() if 200 <= int(k) < 300)

    def answers(self) -> str:
        text = answers_text(self.statuses, self.errors)
        if self.unknown_keys:
            text += " (retried by key: " + ", ".join(f"{v} {k}" for k, v in sorted(self.retried.items())) + ")"
        return text


def spend_event(s: Seed, key: str | None = None) -> bytes:
    """A keyless spend of 1 as the entity's server, or one under `key` (`Idempotency-Key`)."""
    headers = {**server_headers(s), **({"idempotency-key": key} if key else {})}
    return api_event("POST", f"/api/entities/{s.entity_id}/users/{s.user_id}/decrement-credits", headers, {"credits": 1})


def retry_by_key(fp: FunctionProcess, s: Seed, key: str) -> str:
    """Sends a spend again under the key its 503 named, as a client learning the outcome
    does: `landed` (replayed), `applied now` (it had not landed), or the status."""
    inv = fp.invoke(spend_event(s, key))
    status, _ = inv.answer()
    if status != 200:
        return f"answered {status}"
    replayed = (json.loads(inv.body).get("headers") or {}).get("idempotent-replayed") == "true"
    return "landed" if replayed else "applied now"


def hot_cell(procs: list[FunctionProcess], s: Seed, n: int) -> HotCell:
    """One burst of HOT_REQUESTS keyless spends on one account from `n` warm processes, no
    pause, throttling on; then how long until the account's journal is empty."""
    note_other_busy()
    cell = HotCell(n)
    pk = f"ACCOUNT#{s.entity_id}#{s.user_id}"
    event = spend_event(s)
    STORE.compact()
    METER.quiet()  # the feeder reads the restarted emulator's stream
    for fp in procs[:n]:  # one unmeasured call each: caches warm
        fp.invoke(event)
    seconds_until_journal_empty(pk, time.perf_counter())
    METER.quiet()
    STORE.trim()
    check = LedgerCheck([pk])
    METER.reset()
    lock = threading.Lock()
    per_client = max(1, HOT_REQUESTS // n)

    def client(fp: FunctionProcess) -> None:
        for _ in range(per_client):
            if (inv := client_invoke(fp, event, lock, cell.errors)) is None:
                return
            status, body = inv.answer()
            key = body.get("error", {}).get("idempotencyKey") if isinstance(body, dict) else None
            with lock:
                cell.statuses[status] = cell.statuses.get(status, 0) + 1
                cell.ms.append(inv.latency_ms)
                if key:
                    cell.unknown_keys.append(key)

    threads = [threading.Thread(target=client, args=(fp,), daemon=True) for fp in procs[:n]]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=INVOKE_TIMEOUT_S * per_client + 5)
    end = time.perf_counter()
    cell.wall_s = end - t0
    polled = POLL_READ_UNITS[0]
    cell.drain_s = seconds_until_journal_empty(pk, end)
    cell.stream_s = METER.quiet(end)
    cell.units = METER.read()
    polled = POLL_READ_UNITS[0] - polled  # the driver's polls: not the service's reads
    cell.units.read -= polled
    cell.units.account_read -= polled
    snapshot = STORE.control("GET", "/_emulator/capacity")
    if not snapshot["throttle"]:
        cell.errors.append("the emulator was not throttling")
    account = next((k for k in snapshot["keys"] if k["key"] == {"S": pk}), {})
    cell.peak_write_per_s = account.get("peak_write_units_per_second", 0.0)
    cell.retried.update(retry_by_key(procs[0], s, key) for key in cell.unknown_keys)
    seconds_until_journal_empty(pk, time.perf_counter())  # the retries' records moved, as after the burst
    # One decrement per spend answered 2xx, and one per key retried to a 200 (landed or not).
    check.batch(cell.ok() + cell.retried["landed"] + cell.retried["applied now"])
    cell.ledger = check.verdict()
    note_other_busy()
    return cell


def hot_account(relay: StoreRelay, s: Seed) -> list[HotCell]:
    """The hot-account cells: one account, 1/8/32/64 warm `credits` processes, throttling on."""
    cells: list[HotCell] = []
    with credits_processes(relay, max(CONC_CLIENTS), throttle=True) as procs:
        for n in CONC_CLIENTS:
            cell = hot_cell(procs, s, n)
            u = cell.units
            log(f"  hot account, {n} instances: {len(cell.ms)} calls in {cell.wall_s:.1f}s, statuses {cell.statuses}, "
                f"p99 {fmt(percentile(cell.ms, 99), 0)} ms, account key W/spend "
                f"{fmt(u.account_write / max(1, cell.ok()), 2) if u else '–'}, peak item "
                f"{u.account_item_bytes if u else '–'} B, journal empty after {fmt(cell.drain_s, 2)} s, ledger {cell.ledger}")
            cells.append(cell)
    return cells


def per_spend_text(u: CallUnits | None, ok: int) -> str:
    """Table cells over `ok` spends: write units per spend on the account key (all keys), read
    units per spend, store requests throttled."""
    if u is None:
        return "– (–) | – | –"
    return f"{fmt(u.account_write / ok, 2)} ({fmt(u.write / ok, 2)}) | {fmt(u.read / ok, 2)} | {u.throttled}"


def hot_report(cells: list[HotCell], note: str) -> str:
    out = [HOT_SECTION + "\n"]
    out.append(
        f"One account, one burst of {HOT_REQUESTS} keyless spends (Q11 decrement `{{\"credits\":1}}`, server "
        "credentials) per cell from N warm `credits` processes (one invocation at a time each, as Lambda scales "
        "out), no pause, with the emulator **throttling per partition key** as DynamoDB does (1,000 write / "
        "3,000 read units a second per key, `POST /_emulator/config {\"throttle\": true}`), and the events "
        "dispatcher fed from the table's stream. Units are the emulator's meter over the burst and the stream "
        "work it caused, per spend answered 2xx. \"peak account item\" = the largest the account item was "
        "before or after any request of the burst (the meter). \"journal empty after\" = seconds from the "
        "burst's last answer until a strongly consistent read of the account item shows no journal record "
        "(polled ~20×/s); \"stream caught up after\" = seconds from it until the dispatcher had handled "
        "every stream record written by then (the bench's feeder reads the stream and invokes one dispatcher "
        "at a time, as the event source mapping does per shard). \"throttled\" = store requests the emulator "
        "refused for throttling (the SDK retries "
        "them). \"peak write units/s\" = the most in any one clock second on the account key (its budget "
        "holds one second's worth and refills as it is spent, so a clock second can see up to twice the "
        "rate). \"ledger\" as in the Q11-under-concurrency section, over the whole burst: a 503 naming a key "
        "(the outcome unknown) is sent again under that key after the burst, as a client learning the outcome "
        "does, and counts as one spend if that retry answers 200 (\"landed\": replayed, it had landed; "
        "\"applied now\": it had not).\n"
    )
    out.append(
        "| instances | calls | spends/s (2xx) | answers | p50 / p99 ms | write units per spend: account key "
        "(all keys) | read units per spend | throttled | peak write units/s on the key | peak account item "
        "bytes | journal empty after s | stream caught up after s | ledger |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for c in cells:
        ok = max(1, c.ok())
        u = c.units
        out.append(
            f"| {c.clients} | {len(c.ms)} | {fmt(c.ok() / c.wall_s if c.wall_s else math.nan, 0)} "
            f"| {c.answers()} | {fmt(median(c.ms), 1)} / {fmt(percentile(c.ms, 99), 1)} "
            f"| {per_spend_text(u, ok)} | {fmt(c.peak_write_per_s, 0)} "
            f"| {u.account_item_bytes if u and u.account_item_bytes is not None else '–'} "
            f"| {'> ' + fmt(DRAIN_TIMEOUT_S, 0) if math.isinf(c.drain_s) else fmt(c.drain_s, 2)} "
            f"| {'> 60' if math.isinf(c.stream_s) else fmt(c.stream_s, 2)} | {c.ledger} |"
        )
    out.append("")
    if note:
        out.append(note + "\n")
    return "\n".join(out)


# --------------------------------------------------------------------------- soak

SOAK_SECONDS = env_int("BENCH_SOAK_SECONDS", 600)
SOAK_WINDOW = env_int("BENCH_SOAK_WINDOW", 60)  # seconds per reported row
SOAK_CLIENTS = env_int("BENCH_SOAK_CLIENTS", 8)  # warm credits processes serving the paced spends
SOAK_SHARE = 0.8  # of one account's ceiling, and of what the local stack sustains
SOAK_CALIBRATE_S = 5.0
FLAT_TOLERANCE = 0.2  # last window within 20 % of the first (plus the slack below)
FLAT_SLACK = {"item": 64.0, "p50": 2.0, "p99": 5.0, "units": 0.1}  # absolute: bytes, ms, ms, units


@dataclass
class SoakWindow:
    start_s: float
    ms: list[float] = field(default_factory=list)
    waits_ms: list[float] = field(default_factory=list)  # scheduled → sent (a free process)
    statuses: dict[int, int] = field(default_factory=dict)
    units: CallUnits | None = None

    def ok(self) -> int:
        return sum(v for k, v in self.statuses.items() if 200 <= int(k) < 300)


@dataclass
class Soak:
    ceiling: float = math.nan  # spends/s one account takes: 1,000 ÷ write units per spend on its key
    units_per_spend: float = math.nan  # on the account key, in the calibration
    sustained: float = math.nan  # spends/s (2xx) the local stack sustained in the calibration
    target: float = math.nan
    windows: list[SoakWindow] = field(default_factory=list)
    seconds: float = 0.0
    drain_s: float = math.nan
    stream_s: float = math.nan
    ledger: str = ""
    errors: list[str] = field(default_factory=list)

    def achieved(self) -> float:
        """Spends sent per second over the paced part."""
        return sum(sum(w.statuses.values()) for w in self.windows) / self.seconds if self.seconds else math.nan


def closed_loop(procs: list[FunctionProcess], event: bytes, seconds: float) -> dict[int, int]:
    """Every process spending back to back for `seconds`: statuses."""
    statuses: collections.Counter[int] = collections.Counter()
    lock = threading.Lock()
    until = time.perf_counter() + seconds

    def client(fp: FunctionProcess) -> None:
        while time.perf_counter() < until:
            status, _ = fp.invoke(event).answer()
            with lock:
                statuses[status] += 1

    threads = [threading.Thread(target=client, args=(fp,), daemon=True) for fp in procs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + INVOKE_TIMEOUT_S + 5)
    return dict(statuses)


def soak_run(relay: StoreRelay, s: Seed) -> Soak:
    """Keyless spends on one account, open loop (paced by the clock, not by the answers), for
    BENCH_SOAK_SECONDS at min(80 % of one account's ceiling, 80 % of what the local stack
    sustains), throttling on, the dispatcher fed from the stream. The meter is read and reset
    at every window's end."""
    soak = Soak()
    pk = f"ACCOUNT#{s.entity_id}#{s.user_id}"
    event = spend_event(s)
    with credits_processes(relay, SOAK_CLIENTS, throttle=True) as procs:
        STORE.compact()
        METER.quiet()
        # Calibration: every process back to back; the units per spend on the account key give
        # the account's ceiling, the answers per second what this machine's stack sustains.
        METER.reset()
        t0 = time.perf_counter()
        statuses = closed_loop(procs, event, SOAK_CALIBRATE_S)
        end = time.perf_counter()
        # Sustained means the dispatcher keeps up too: until it has handled the stream's records.
        lag = METER.quiet(end, timeout=120.0)
        elapsed = end - t0 + (lag if math.isfinite(lag) else 0.0)
        seconds_until_journal_empty(pk, time.perf_counter())
        units = METER.read()
        ok = sum(v for k, v in statuses.items() if 200 <= k < 300)
        soak.units_per_spend = units.account_write / max(1, ok)
        soak.ceiling = ceiling(soak.units_per_spend, WRITE_UNITS_PER_KEY)
        soak.sustained = ok / elapsed
        soak.target = float(os.environ.get("BENCH_SOAK_RATE") or 0) or min(
            SOAK_SHARE * soak.ceiling, SOAK_SHARE * soak.sustained)
        log(f"soak: calibration {statuses} in {end - t0:.1f}s, stream handled {lag:.1f}s later: "
            f"{soak.sustained:.0f} spends/s sustained, "
            f"{soak.units_per_spend:.2f} write units per spend on the account key (ceiling {soak.ceiling:.0f}/s); "
            f"pacing at {soak.target:.1f}/s for {SOAK_SECONDS}s")
        STORE.trim()
        check = LedgerCheck([pk])
        soak_paced(procs, event, soak)
        end = time.perf_counter()
        soak.drain_s = seconds_until_journal_empty(pk, end)
        soak.stream_s = METER.quiet(end, timeout=600.0)
        check.batch(sum(w.ok() for w in soak.windows))
        soak.ledger = check.verdict()
    return soak


def soak_paced(procs: list[FunctionProcess], event: bytes, soak: Soak) -> None:
    """The paced part: a pacer queues each spend at its instant (i / rate), the processes take
    them in turn; a spend waits for a free process if none is (its wait is reported)."""
    due: queue.Queue[float | None] = queue.Queue()
    lock = threading.Lock()
    start = time.perf_counter()
    end = start + SOAK_SECONDS
    windows = [SoakWindow(w) for w in range(0, SOAK_SECONDS, SOAK_WINDOW)]
    soak.windows = windows

    def window_of(at: float) -> SoakWindow:
        return windows[min(len(windows) - 1, int((at - start) // SOAK_WINDOW))]

    def pacer() -> None:
        i = 0
        while True:
            at = start + i / soak.target
            if at >= end:
                break
            time.sleep(max(0.0, at - time.perf_counter()))
            due.put(at)
            i += 1
        for _ in procs:
            due.put(None)

    def worker(fp: FunctionProcess) -> None:
        while (at := due.get()) is not None:
            sent = time.perf_counter()
            if (inv := client_invoke(fp, event, lock, soak.errors)) is None:
                return
            status, _ = inv.answer()
            with lock:
                w = window_of(at)
                w.statuses[status] = w.statuses.get(status, 0) + 1
                w.ms.append(inv.latency_ms)
                w.waits_ms.append((sent - at) * 1000)

    threads = [threading.Thread(target=pacer, daemon=True)]
    threads += [threading.Thread(target=worker, args=(fp,), daemon=True) for fp in procs]
    METER.reset()
    for t in threads:
        t.start()
    for w in windows:  # the meter, per window (stream work straddling a boundary lands in the next)
        time.sleep(max(0.0, start + w.start_s + SOAK_WINDOW - time.perf_counter()))
        w.units = units_of(STORE.control("GET", f"/_emulator/capacity?sort_key={ACCOUNT_SK}"), METER.account_pk)
        STORE.control("POST", "/_emulator/capacity/reset")
        log(f"  soak {w.start_s:4.0f}s: {sum(w.statuses.values())} spends, statuses {w.statuses}, "
            f"p99 {fmt(percentile(w.ms, 99), 0)} ms, account item {w.units.account_item_bytes} B, "
            f"W/spend on the key {fmt(w.units.account_write / max(1, w.ok()), 2)}")
    for t in threads:
        t.join(timeout=INVOKE_TIMEOUT_S + 5)
    soak.seconds = time.perf_counter() - start


def flat(first: float, last: float, slack: float) -> bool:
    return last <= first * (1 + FLAT_TOLERANCE) + slack


def soak_report(soak: Soak, note: str) -> str:
    out = [SOAK_SECTION + "\n"]
    out.append(
        f"Keyless spends (Q11 decrement `{{\"credits\":1}}`) on **one account** for {SOAK_SECONDS} s, open loop "
        f"(each spend sent at its instant, i ÷ rate, by whichever of {SOAK_CLIENTS} warm `credits` processes is "
        "free; \"wait\" is how long a spend waited for one), throttling per partition key on, the events "
        "dispatcher fed from the table's stream. The rate is "
        f"min({SOAK_SHARE:.0%} of one account's ceiling, {SOAK_SHARE:.0%} of what the local stack sustains), "
        f"both measured first: every process spending back to back for {SOAK_CALIBRATE_S:.0f} s gave "
        f"{fmt(soak.units_per_spend, 2)} write units per spend on the account key, so a ceiling of "
        f"{fmt_rate(soak.ceiling)} spends/s (1,000 ÷ that), and {fmt(soak.sustained, 1)} spends/s sustained "
        "here (spends answered ÷ the time until the dispatcher had also handled their stream records). "
        f"**Targeted {fmt(soak.target, 1)} spends/s"
        + (" (BENCH_SOAK_RATE)" if os.environ.get("BENCH_SOAK_RATE") else "")
        + f", achieved {fmt(soak.achieved(), 1)}"
        f"** ({fmt(100 * soak.target / soak.ceiling, 0) if not math.isinf(soak.ceiling) else '0'} % of the "
        "account's ceiling: the single-threaded emulator, not DynamoDB, bounds the rate here; see README). "
        f"Rows are {SOAK_WINDOW} s windows; units are the emulator's meter over the window per spend answered "
        "2xx in it; \"account item\" is its largest size in the window.\n"
    )
    out.append(
        "| window s | spends | answers | p50 / p99 ms | wait p99 ms | write units per spend: account key (all) "
        "| read units per spend | throttled | peak account item bytes |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|")
    for w in soak.windows:
        ok = max(1, w.ok())
        u = w.units
        out.append(
            f"| {w.start_s}–{w.start_s + SOAK_WINDOW} | {sum(w.statuses.values())} | {answers_text(w.statuses)} "
            f"| {fmt(median(w.ms), 1)} / {fmt(percentile(w.ms, 99), 1)} | {fmt(percentile(w.waits_ms, 99), 1)} "
            f"| {per_spend_text(u, ok)} "
            f"| {u.account_item_bytes if u and u.account_item_bytes is not None else '–'} |"
        )
    out.append("")
    out.append(soak_verdict(soak))
    if note:
        out.append("\n" + note + "\n")
    return "\n".join(out)


def soak_verdict(soak: Soak) -> str:
    windows = [w for w in soak.windows if w.units is not None and w.ms]
    errors = sum(v for w in soak.windows for k, v in w.statuses.items() if int(k) >= 500 or int(k) == 0)
    parts = [f"Answers ≥ 500 (or none): {errors} — **{'met' if errors == 0 else 'NOT met'}**."]
    if len(windows) >= 2:
        a, b = windows[0], windows[-1]
        assert a.units is not None and b.units is not None
        checks = [
            ("peak account item bytes", a.units.account_item_bytes or 0, b.units.account_item_bytes or 0, "item"),
            ("p50 ms", median(a.ms), median(b.ms), "p50"),
            ("p99 ms", percentile(a.ms, 99), percentile(b.ms, 99), "p99"),
            ("write units per spend on the account key", a.units.account_write / max(1, a.ok()),
             b.units.account_write / max(1, b.ok()), "units"),
        ]
        verdicts = [(name, x, y, flat(x, y, FLAT_SLACK[k])) for name, x, y, k in checks]
        ok = all(v for *_, v in verdicts)
        parts.append(
            f"Flat, last window vs first (within {FLAT_TOLERANCE:.0%} plus a small absolute slack: "
            f"{FLAT_SLACK['item']:.0f} bytes, {FLAT_SLACK['p50']:.0f} / {FLAT_SLACK['p99']:.0f} ms, "
            f"{FLAT_SLACK['units']} units): **{'yes' if ok else 'NO'}** — "
            + "; ".join(f"{name} {fmt(x, 2)} → {fmt(y, 2)}{'' if v else ' (grew)'}" for name, x, y, v in verdicts) + "."
        )
    else:
        parts.append("Flat: fewer than two windows, no verdict.")
    parts.append(
        f"Journal empty {'after > ' + fmt(DRAIN_TIMEOUT_S, 0) if math.isinf(soak.drain_s) else fmt(soak.drain_s, 2)} s "
        f"after the last spend; the dispatcher had handled every stream record "
        f"{'over 600' if math.isinf(soak.stream_s) else fmt(soak.stream_s, 1)} s after it; ledger {soak.ledger}."
        + (f" Errors: {len(soak.errors)} ({soak.errors[0]})." if soak.errors else "")
    )
    return " ".join(parts) + "\n"


# --------------------------------------------------------------------------- report


def machine_line() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    try:
        rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        rustc = "rustc ?"
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"Machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu}, {mem} RAM, "
        f"Linux {platform.release()}, {rustc}; Python {platform.python_version()}; {now}."
    )


def fmt(x: float, digits: int = 1) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def ratio(x: float, base: float) -> str:
    if x is None or base is None or math.isnan(x) or math.isnan(base) or base <= 0:
        return ""
    return f" ({x / base:.1f}×)"


def ops_text(ops: dict[str, int], per: float) -> str:
    if not ops:
        return "none"
    return ", ".join(f"{op} {n / per:.2f}".replace(".00", "") for op, n in sorted(ops.items()))


def mean(xs: list[int] | list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def report(binaries: dict[str, BinaryStats], rows: dict[str, RowStats], elapsed_s: float, skipped: list[str]) -> str:
    base = binaries[BASELINE]
    b_init, b_cold, b_own = median(base.init_ms), median(base.cold_ms), median(base.cold_own_ms)
    b_triv = median(base.trivial_ms)
    b_rss = median([float(x) for x in base.rss_kib])
    out: list[str] = []
    out.append("# `make bench` results\n")
    out.append(machine_line() + "\n")
    out.append(
        f"Runs: {COLD_RUNS} cold starts per binary, {WARM_REQUESTS} warm requests per route in each of "
        f"{WARM_PROCS} processes, {FIRST_RUNS} fresh processes per route for the first call; "
        f"wall time {elapsed_s:.0f} s. The emulator's table is trimmed back to the seeded items between "
        f"measured calls (every {TRIM_EVERY} iterations; {STORE.deleted} items deleted in all) and the "
        f"emulator restarted with those items ({STORE.compactions} times), as moto's transactions slow down "
        "with table size (see README). Every figure is a median unless it says p99; (N×) is the ratio to "
        f"the `{BASELINE}` baseline. \"excl. store\" subtracts the time spent in the local store "
        "(fault proxy + moto emulator, timed by the bench's relay): the emulator-free figure.\n"
    )
    out.append("## Binaries\n")
    out.append(
        "| binary | size MB (stripped) | init ms | of which spawn → store connection ms | cold start ms "
        "| cold start excl. store ms | trivial GET p50 / p99 ms | peak RSS MB | store requests during init |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|")
    for name, b in binaries.items():
        if b.error:
            out.append(f"| {name} | {b.size / 1e6:.2f} | failed: {b.error} | | | | | | |")
            continue
        rss = median([float(x) for x in b.rss_kib])
        triv = median(b.trivial_ms)
        out.append(
            f"| {name} | {b.size / 1e6:.2f}{ratio(b.size, base.size)} "
            f"| {fmt(median(b.init_ms))}{ratio(median(b.init_ms), b_init)} "
            f"| {fmt(median(b.connect_ms))} "
            f"| {fmt(median(b.cold_ms))}{ratio(median(b.cold_ms), b_cold)} "
            f"| {fmt(median(b.cold_own_ms))}{ratio(median(b.cold_own_ms), b_own)} "
            f"| {fmt(triv, 2)} / {fmt(percentile(b.trivial_ms, 99), 2)}{ratio(triv, b_triv)} "
            f"| {fmt(rss / 1024)}{ratio(rss, b_rss)} "
            f"| {ops_text(b.init_ops, 1) if name != BASELINE else 'none (no store)'} |"
        )
    out.append("")
    out.append(
        "init = spawn → first `GET …/invocation/next` (Lambda's Init Duration). cold start = spawn → "
        "first invocation answered (a trivial `GET /bench/ping`: the functions' 404 fallback, the "
        "baseline's hello; the event is queued before the spawn). trivial GET = the same request on a warm "
        "process. peak RSS = VmHWM after all the warm runs.\n"
    )
    out.append("## Routes\n")
    out.append(
        "| route | function | warm p50 / p99 ms | warm p50 / p99 excl. store ms | store requests per call, warm "
        "| first call after cold start ms (excl. store) | store requests, first call | first store request on "
        "the connection opened in init | connections set up during the first call: used, spare |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|")
    for row in rows.values():
        if row.error and not row.warm_ms:
            out.append(f"| {row.label} | {row.function} | failed: {row.error} | | | | | | |")
            continue
        p50, p99, own = median(row.warm_ms), percentile(row.warm_ms, 99), median(row.warm_own_ms)
        n = len(row.warm_requests)
        steady = row.warm_steady
        req_range = f"{min(steady)}–{max(steady)}" if steady else "–"
        refreshes = (
            f"; {row.warm_refreshes} call(s) re-read the {AUTH_CACHE_SECONDS} s auth cache" if row.warm_refreshes else ""
        )
        unused = sum(row.first_unused_connections)
        first_ops: dict[str, int] = {}
        for ops in row.first_ops:
            for op, k in ops.items():
                first_ops[op] = first_ops.get(op, 0) + k
        out.append(
            f"| {row.label} | {row.function} | {fmt(p50, 2)} / {fmt(p99, 2)}{ratio(p50, b_triv)} "
            f"| {fmt(own, 2)} / {fmt(percentile(row.warm_own_ms, 99), 2)}{ratio(own, b_triv)} "
            f"| {fmt(mean(steady), 2)} (range {req_range}){refreshes}. All {n}: {ops_text(row.warm_ops, n)} "
            f"| {fmt(median(row.first_ms), 2)} ({fmt(median(row.first_own_ms), 2)}) "
            f"| {fmt(mean(row.first_requests), 2)}: {ops_text(first_ops, len(row.first_ops) or 1)} "
            f"| {sum(row.first_request_reused)} of {len(row.first_request_reused)} runs "
            f"| {sum(row.first_new_connections)}, {unused} |"
        )
        if row.error:
            out.append(f"| ↳ {row.label} | | errors: {row.error} | | | | | | |")
    out.append("")
    out.append(
        "Ratios in this table are to the baseline's warm trivial GET p50. Store requests are counted by "
        "the fault proxy (`GET /_proxy/stats`, reset before each call), all operations, per call; "
        "\"warm\" excludes the route's first call in each process, and the mean and range leave out the "
        f"calls that found the {AUTH_CACHE_SECONDS} s API-key/entity cache expired and re-read it (by design; "
        "\"All\" includes them). The first-call columns come from a "
        "fresh process per run that has finished init and waits on `GET /next`; for capture, the call "
        "after its hold in that process. Connections are counted by the relay: \"used\" = opened during the "
        "call and carrying one of its requests, \"spare\" = opened during the call and left idle. Both come "
        "from hyper's pool racing a fresh connect against the pooled connection when store requests follow "
        "each other closely (the 2nd–4th request of a first call); on loopback the connect can win.\n"
    )
    if skipped:
        out.append(f"Functions with no representative route in bench.py (binary figures only): {', '.join(skipped)}.\n")
    out.append("## Targets\n")
    out.extend(targets(binaries, rows))
    return "\n".join(out) + "\n"


def targets(binaries: dict[str, BinaryStats], rows: dict[str, RowStats]) -> list[str]:
    base = binaries[BASELINE]
    funcs = [b for n, b in binaries.items() if n != BASELINE and not b.error]
    lines = []

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**NOT met**"

    def one_trip(kind: str) -> tuple[bool, str]:
        rs = [r for r in rows.values() if ROUTE_KIND.get(r.label) == kind and r.warm_steady]
        detail = "; ".join(
            f"{r.label} {mean(r.warm_steady):.2f} (max {max(r.warm_steady)})"
            + (f", plus {r.warm_refreshes} auth-cache re-read(s)" if r.warm_refreshes else "")
            for r in rs
        )
        ok = bool(rs) and all(max(r.warm_steady) == 1 for r in rs)
        return ok, detail

    ok, detail = one_trip("mutation")
    lines.append(f"- Every credit mutation 1 store round trip, warm: {verdict(ok)} — {detail}.")
    ok, detail = one_trip("read")
    lines.append(f"- Reads 1 store round trip, warm: {verdict(ok)} — {detail}.")
    for label, key in (("init", "init_ms"), ("cold start", "cold_ms"), ("cold start excl. store", "cold_own_ms")):
        b = median(getattr(base, key))
        worst = max(funcs, key=lambda f: median(getattr(f, key)), default=None)
        if worst is None:
            continue
        r = median(getattr(worst, key)) / b
        ok = all(median(getattr(f, key)) <= 2 * b for f in funcs)
        lines.append(
            f"- {label.capitalize()} ≤ 2× baseline: {verdict(ok)} — worst {worst.name} "
            f"{median(getattr(worst, key)):.1f} ms vs {b:.1f} ms ({r:.1f}×)."
        )
    b_rss = median([float(x) for x in base.rss_kib])
    worst = max(funcs, key=lambda f: median([float(x) for x in f.rss_kib]), default=None)
    if worst is not None:
        w = median([float(x) for x in worst.rss_kib])
        ok = all(median([float(x) for x in f.rss_kib]) <= 2 * b_rss for f in funcs)
        lines.append(
            f"- Peak RSS ≤ 2× baseline: {verdict(ok)} — worst {worst.name} {w / 1024:.1f} MB vs "
            f"{b_rss / 1024:.1f} MB ({w / b_rss:.1f}×)."
        )
    all_funcs = [b for n, b in binaries.items() if n != BASELINE]
    big = max(all_funcs, key=lambda f: f.size)
    ok = all(f.size <= SIZE_LIMIT_BYTES for f in all_funcs)
    lines.append(f"- No function binary over 8 MB stripped: {verdict(ok)} — largest {big.name} {big.size / 1e6:.2f} MB.")
    first = [r for r in rows.values() if r.first_request_reused]
    if first:
        runs = sum(len(r.first_request_reused) for r in first)
        reused = sum(sum(r.first_request_reused) for r in first)
        init_conns = min(min(r.init_connections) for r in first)
        used = sum(sum(r.first_new_connections) for r in first)
        spare = sum(sum(r.first_unused_connections) for r in first)
        detail = "; ".join(
            f"{r.label} {median(r.first_own_ms):.2f} vs {median(r.warm_own_ms):.2f} ms"
            for r in first
            if r.warm_own_ms
        )
        lines.append(
            f"- First store call after a cold start pays no connection set-up: {verdict(reused == runs)} — "
            f"init left ≥ {init_conns} store connection(s) open in every run, and the first store request "
            f"went on it in {reused} of {runs} first calls. Later requests of those calls went on "
            f"{used} connection(s) set up during the call, and {spare} more were opened and left idle "
            "(hyper's pool racing a connect against the pooled connection; with TLS on AWS the connect is much slower, so the pooled "
            "connection should win the race, but a spare handshake still costs CPU). First call vs warm p50, "
            f"function's own time (excl. store): {detail}."
        )
    return lines


# --------------------------------------------------------------------------- main


SECTIONS = ("concurrency", "hot", "soak")  # BENCH_ONLY words naming a section, not a function


class Feeding:
    """The stream feeder (and dispatcher) while a section runs, as METER's."""

    def __init__(self, relay: StoreRelay) -> None:
        self.relay = relay
        self.feeder: StreamFeeder | None = None

    def __enter__(self) -> StreamFeeder | None:
        if (RELEASE / DISPATCHER).is_file():
            self.feeder = StreamFeeder(self.relay.upstream_port)
            self.feeder.start()
            METER.feeder = self.feeder
            METER.quiet()
        return self.feeder

    def __exit__(self, *exc: Any) -> None:
        METER.feeder = None
        if self.feeder is not None:
            if self.feeder.failures:
                kinds = collections.Counter(f[:120] for f in self.feeder.failures)
                log(f"stream feeder: {len(self.feeder.failures)} failed read(s) (emulator restarts): {dict(kinds)}")
            self.feeder.stop()


Measured = TypeVar("Measured")


def fed_section(relay: StoreRelay, measure: Callable[[], Measured]) -> tuple[Measured, str]:
    """`measure()` with the stream feeder running (`Feeding`), and the section's note."""
    started = time.monotonic()
    with Feeding(relay):
        measured = measure()
    return measured, conc_note(time.monotonic() - started, None)


def run_sections(wanted: list[str], relay: StoreRelay, proxy: ProxyControl, s: Seed, proxy_url: str,
                 raw: dict[str, Any]) -> dict[str, str]:
    """The sections after the per-binary figures, each as report text by heading."""
    texts: dict[str, str] = {}
    if "concurrency" in wanted:
        started = time.monotonic()
        raws, cells = concurrency(relay, proxy, s, proxy_url)
        texts[CONC_SECTION] = conc_report(raws, cells, conc_note(time.monotonic() - started, None))
        raw["concurrency"] = [c.__dict__ for c in cells]
        raw["raw_update_item"] = [c.__dict__ for c in raws]
    if "hot" in wanted:
        log(f"hot account, throttling on: instances {CONC_CLIENTS}, {HOT_REQUESTS} spends per cell")
        hot, note = fed_section(relay, lambda: hot_account(relay, s))
        texts[HOT_SECTION] = hot_report(hot, note)
        raw["hot_account"] = [c.__dict__ for c in hot]
    if "soak" in wanted:
        log(f"soak: {SOAK_SECONDS}s on one account, throttling on")
        soak, note = fed_section(relay, lambda: soak_run(relay, s))
        texts[SOAK_SECTION] = soak_report(soak, note)
        raw["soak"] = soak.__dict__
    return texts


def main() -> int:
    started = time.monotonic()
    WORK.mkdir(parents=True, exist_ok=True)
    for old in WORK.glob("*.log"):
        old.unlink()
    all_functions = discover_functions()
    only = [n.strip() for n in os.environ.get("BENCH_ONLY", "").split(",") if n.strip()]
    # BENCH_ONLY of section words alone (concurrency, hot, soak): those sections, spliced into the results file.
    sections_only = bool(only) and all(w in SECTIONS for w in only)
    wanted = [w for w in SECTIONS if not only or w in only]
    functions = [f for f in all_functions if f in only] if only else all_functions
    binaries = [] if sections_only else [*functions, BASELINE]
    seeders = ["admin", "auth", "tiers", "credits"]
    missing = [b for b in [*binaries, *seeders, "create-table"] if not (RELEASE / b).is_file()]
    if missing:
        log(f"missing release binaries {missing}: run `make bench` (it builds them first)")
        return 2
    if not (RELEASE / DISPATCHER).is_file():
        log(f"no {DISPATCHER} binary: stream-driven work is not run nor counted")
    py = sys.executable
    STORE.start()
    emulator_url = STORE.url
    log(f"emulator at {emulator_url}")
    proxy_proc, proxy_url = start_ready_child(
        "proxy",
        [py, "tests/faults/dynamodb_proxy.py", "--upstream", emulator_url, "--port", "0", "--exit-on-stdin-eof"]
        + [f"--{k}-rate=0" for k in ("conflict", "throttle", "error", "drop", "drop-before")]
        + ["--latency-ms=0", "--model-conflicts"],
    )
    relay = StoreRelay(int(proxy_url.rsplit(":", 1)[1]))
    proxy = ProxyControl(proxy_url)
    log(f"fault proxy at {proxy_url} (all rates 0, conflicts modeled), relay on :{relay.port}")
    raw: dict[str, Any] = {}
    try:
        s = seed(relay, proxy, all_functions)
        METER.account_pk = f"ACCOUNT#{s.entity_id}#{s.user_id}"
        schema = json.loads(
            subprocess.run(
                [str(RELEASE / "create-table"), "--print-schema"], capture_output=True, check=True, timeout=60
            ).stdout
        )
        STORE.track([k["AttributeName"] for k in schema["keySchema"]])
        log(f"seeded entity {s.entity_id}, user {s.user_id}; {len(STORE.keep)} items kept")
        if sections_only:
            sections = run_sections(wanted, relay, proxy, s, proxy_url, raw)
            (WORK / "sections.json").write_text(json.dumps(raw, indent=1, default=str))
            text = "\n".join(sections.values())
        else:
            bstats = {b: BinaryStats(b, (RELEASE / b).stat().st_size) for b in binaries}
            rows: dict[str, RowStats] = {}
            for route in ROUTES:
                if route.function in functions:
                    for label in route.rows:
                        rows[label] = RowStats(label, route.function)

            # Cold starts, interleaved so drift hits every binary alike; one unrecorded start each
            # first (page cache).
            log(f"cold starts: {COLD_RUNS} per binary")
            for i in range(COLD_RUNS + 1):
                for b in binaries:
                    if bstats[b].error:
                        continue
                    try:
                        cold_start(b, relay, proxy, bstats[b], record=i > 0)
                    except StartFailed as exc:
                        bstats[b].error = str(exc)[:300]
                        log(str(exc))

            log(f"warm runs: {WARM_PROCS} processes × {WARM_REQUESTS} requests per route")
            for b in binaries:
                if bstats[b].error:
                    continue
                try:
                    warm_runs(b, relay, proxy, s if b != BASELINE else None, bstats[b], rows)
                except StartFailed as exc:
                    bstats[b].error = str(exc)[:300]
                    log(str(exc))

            log(f"first calls after a cold start: {FIRST_RUNS} fresh processes per route")
            for route in ROUTES:
                if route.function in functions and not bstats[route.function].error:
                    try:
                        first_calls(route, relay, proxy, s, rows)
                    except StartFailed as exc:
                        for label in route.rows:
                            rows[label].error = str(exc)[:300]

            skipped = [f for f in functions if not any(r.function == f for r in ROUTES)]
            text = report(bstats, rows, time.monotonic() - started, skipped)
            raw["binaries"] = {k: v.__dict__ for k, v in bstats.items()}
            raw["rows"] = {k: v.__dict__ for k, v in rows.items()}
            if any(r.function in functions for r in ROUTES):
                log(f"units per call: {UNITS_CALLS} calls per route, meter reset before each")
                with Feeding(relay) as feeder:
                    units = units_pass(relay, proxy, s, functions)
                text = splice_section(text, CAPACITY_SECTION, capacity_report(units, feeder is not None))
                raw["units"] = {k: v.__dict__ for k, v in units.items()}
            for heading, section in run_sections(wanted, relay, proxy, s, proxy_url, raw).items():
                text = splice_section(text, heading, section)
            (WORK / "results.json").write_text(json.dumps(raw, indent=1, default=str))
    finally:
        proxy.close()
        relay.close()
        for child in list(CHILDREN):
            stop_child(child)
    print(text, end="")
    if sections_only:
        previous = RESULTS_PATH.read_text() if RESULTS_PATH.is_file() else "# `make bench` results\n"
        for heading, section in sections.items():
            previous = splice_section(previous, heading, section)
        text = previous
    RESULTS_PATH.write_text(text)
    log(f"wrote {RESULTS_PATH.relative_to(ROOT) if RESULTS_PATH.is_relative_to(ROOT) else RESULTS_PATH}")
    return 0


def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(main())
