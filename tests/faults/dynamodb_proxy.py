#!/usr/bin/env python3
"""Fault-injecting reverse proxy for the DynamoDB JSON 1.0 protocol.

Sits between a DynamoDB client (the Rust AWS SDK, boto3, ...) and the local
emulator (`infra/local/dynamodb_server.py`, moto served single-threaded). moto
never answers `TransactionConflict`, throttling, 500s or dropped connections;
this proxy injects them, per request and at configurable rates, with exactly
the wire format real DynamoDB uses, so the SDK classifies them as it would in
production (throttling / 5xx / dropped connection: retried by the SDK;
`TransactionCanceledException`: not retried, handed to the application).

Python 3.11 standard library only.

Usage:
    python tests/faults/dynamodb_proxy.py --upstream http://127.0.0.1:PORT
        [--host 127.0.0.1] [--port 0] [--seed 1] [--exit-on-stdin-eof] [--verbose]
        [--conflict-rate F] [--throttle-rate F] [--error-rate F]
        [--drop-rate F] [--drop-before-rate F] [--latency-ms N] [--[no-]model-conflicts]

When listening it prints exactly one line to stdout and flushes:
    READY http://127.0.0.1:<port>

Faults (rates are fractions 0..1, decided per request with one draw from an RNG
seeded by --seed; at most one fault per request, checked in this order):
    conflict      writes only, as if another transaction held an item: a
                  TransactWriteItems is answered 400 TransactionCanceledException
                  (first reason TransactionConflict, the others None); a PutItem,
                  UpdateItem or DeleteItem 400 TransactionConflictException.
                  Not forwarded.
    throttle      400 ProvisionedThroughputExceededException. Not forwarded.
    error         500 InternalServerError. Not forwarded.
    drop_before   the client connection is closed without forwarding and
                  without a response: the operation did NOT happen.
    drop          forwarded; the proxy waits for the emulator's full response,
                  then closes the client connection without answering: the
                  operation DID happen but the client never hears (ambiguous).
    latency       uniform random 0..latency_ms added before the request is
                  handled (forwarded or answered with a fault), plus a fixed
                  op_latency_ms[op] for the operations named there (one slow
                  operation, e.g. a hot partition's writes).
Only data-plane operations are subject to faults and latency: DynamoDB_20120810.
GetItem, PutItem, UpdateItem, DeleteItem, Query, TransactWriteItems,
TransactGetItems, BatchGetItem. Everything else (CreateTable, DescribeTable,
UpdateTimeToLive, Scan, BatchWriteItem, ...) is never faulted nor delayed (BatchWriteItem's
items still count as held for modeled conflicts, below).

Modeled conflicts (ON by default; `--no-model-conflicts`, or POST /_proxy/config
{"model_conflicts": false}, turns them off): conflicts where real DynamoDB raises them,
instead of at random. The rules (developer guide, "Transaction conflict handling in
DynamoDB"; API reference, TransactionCanceledException):
    1. A PutItem/UpdateItem/DeleteItem on an item that an ongoing TransactWriteItems
       includes fails with 400 TransactionConflictException.
    2. A TransactWriteItems with an item that is part of another ongoing
       TransactWriteItems is cancelled: 400 TransactionCanceledException,
       `TransactionConflict` for each conflicting action, `None` for the others.
    3. A TransactGetItems with an item that an ongoing TransactWriteItems, BatchWriteItem,
       PutItem, UpdateItem or DeleteItem writes is cancelled likewise.
    4. Single-item writes on one item never conflict with each other (DynamoDB
       serializes them), and a TransactWriteItems is NOT cancelled by single-item writes
       in flight on its items (the documented conflicts of a TransactWriteItems are with
       other transactions only): both are forwarded and the emulator serializes them.
The proxy tracks the items held by in-flight writes (forwarded upstream, answer not yet
back; the emulator serves one request at a time, so requests queued behind it count as in
flight too). An item is (TableName, its key attributes); the key schema of each table is
read once with DescribeTable upstream and cached. PutItem holds its Item's key, UpdateItem
and DeleteItem their Key, BatchWriteItem each request's Item or Key (as single-item
writes), TransactWriteItems every action's item (ConditionCheck too). TransactGetItems
holds nothing. Conflicting requests are answered at once, not forwarded, and counted as
`modeled_conflict`. Random faults are decided first and take precedence. Not modeled: a
write arriving while a TransactGetItems is in flight (DynamoDB may cancel the read; here
the read succeeds), and BatchWriteItem against in-flight transactions (undocumented).
Point the service at the proxy (AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:PORT): writes
that overlap then fail as they can in production, so the caller must handle
TransactionCanceledException/TransactionConflict and TransactionConflictException.

Control endpoints (requests WITHOUT an X-Amz-Target header):
    GET  /_proxy/stats    counters, see `Stats.snapshot`
    GET  /_proxy/config   current rates
    POST /_proxy/config   JSON, any subset of {"conflict_rate", "throttle_rate",
                          "error_rate", "drop_rate", "drop_before_rate",
                          "latency_ms", "op_latency_ms", "model_conflicts", "seed"} ("seed"
                          re-seeds the RNG); answers the resulting config
    POST /_proxy/reset    zero the counters (config and RNG untouched)
    POST /_proxy/drop-next  JSON {"op": "TransactWriteItems", "count": 1}: the next
                          `count` requests of `op` are forwarded and their answers
                          dropped (the `drop` fault, deterministically: the write
                          happened, the client never hears); answers what is pending

Anything else is forwarded as is (the emulator's own control routes, `/_emulator/...`,
included): method, path, headers (minus hop-by-hop ones), body; the upstream's status, headers (minus hop-by-hop ones) and body
come back unchanged. The client side speaks HTTP/1.1 with persistent
connections; every response carries Content-Length. The upstream is reached
with one connection per request (the emulator speaks HTTP/1.0 and closes).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import sys
import threading
import time
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TARGET_PREFIX = "DynamoDB_20120810."
DATA_PLANE_OPS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "TransactWriteItems",
        "TransactGetItems",
        "BatchGetItem",
    }
)

# Error `__type` values as real DynamoDB (and moto) send them: namespace '#' name.
# The SDKs keep what follows '#' as the error code (smithy-rs `sanitize_error_code`).
ERROR_NS = "com.amazonaws.dynamodb.v20120810#"
JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
THROTTLE_MESSAGE = (
    "The level of configured provisioned throughput for the table was exceeded. "
    "Consider increasing your provisioning level with the UpdateTable API."
)
CONFLICT_CODE = "TransactionConflict"
CONFLICT_MESSAGE = "Transaction is ongoing for the item"
CANCELLED_MESSAGE = "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]"
# Writes whose items are tracked when conflicts are modeled.
MODELED_OPS = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
# Reads cancelled by in-flight writes when conflicts are modeled (they hold nothing).
MODELED_READS = frozenset({"TransactGetItems"})

# Fault kinds, in the order they are checked against the single per-request draw.
FAULTS = ("conflict", "throttle", "error", "drop_before", "drop")
# The writes a random `conflict` may hit (as if a transaction held one of their items).
CONFLICTING_WRITES = ("TransactWriteItems", "PutItem", "UpdateItem", "DeleteItem")
RATE_KEYS = {
    "conflict": "conflict_rate",
    "throttle": "throttle_rate",
    "error": "error_rate",
    "drop_before": "drop_before_rate",
    "drop": "drop_rate",
}
OUTCOMES = ("forwarded", "conflict", "modeled_conflict", "throttle", "error", "drop", "drop_before", "upstream_error")

# RFC 9110 §7.6.1 hop-by-hop headers, plus Expect (answered here, not upstream).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
    }
)


# --------------------------------------------------------------------------- error bodies


def dumps(obj: Any) -> bytes:
    # Real DynamoDB sends compact JSON.
    return json.dumps(obj, separators=(",", ":")).encode()


def throttle_body() -> bytes:
    return dumps({"__type": ERROR_NS + "ProvisionedThroughputExceededException", "message": THROTTLE_MESSAGE})


def internal_error_body() -> bytes:
    return dumps({"__type": ERROR_NS + "InternalServerError", "message": "Internal server error"})


def conflict_body(conflicting: list[bool]) -> bytes:
    """TransactionCanceledException for a TransactWriteItems whose actions conflict where
    `conflicting` says.

    Shape as the service sends it (and as moto does): `CancellationReasons` in request
    order, a reason without error is `{"Code": "None"}` (no Message), and the top-level
    message key is `Message` (capital M, as in the service model)."""
    reasons = [{"Code": CONFLICT_CODE, "Message": CONFLICT_MESSAGE} if c else {"Code": "None"} for c in conflicting]
    codes = ", ".join(r["Code"] for r in reasons)
    return dumps(
        {
            "__type": ERROR_NS + "TransactionCanceledException",
            "CancellationReasons": reasons,
            "Message": CANCELLED_MESSAGE.format(codes),
        }
    )


def single_conflict_body() -> bytes:
    # The service model's TransactionConflictException has a lower-case `message`.
    return dumps({"__type": ERROR_NS + "TransactionConflictException", "message": CONFLICT_MESSAGE})


def transact_item_count(body: bytes) -> int:
    try:
        items = json.loads(body).get("TransactItems")
    except (ValueError, AttributeError):
        return 1
    return len(items) if isinstance(items, list) else 1


# --------------------------------------------------------------------------- modeled conflicts

# (TableName, ((key attribute, its value as canonical JSON), ...))
ItemId = tuple[str, tuple[tuple[str, str], ...]]


def item_id(table: Any, attrs: Any, key_names: list[str] | None) -> ItemId | None:
    """The item an Item/Key names, or None if it cannot tell (the emulator will reject it)."""
    if not isinstance(table, str) or not isinstance(attrs, dict) or not key_names:
        return None
    if any(name not in attrs for name in key_names):
        return None
    return table, tuple((name, json.dumps(attrs[name], sort_keys=True)) for name in key_names)


def write_targets(op: str, payload: Any) -> list[tuple[Any, Any]]:
    """(TableName, Item or Key) of each item a write (or TransactGetItems) touches, in
    request order."""
    if not isinstance(payload, dict):
        return []
    if op in ("TransactWriteItems", "TransactGetItems"):
        actions = payload.get("TransactItems")
        return [action_target(a) for a in actions] if isinstance(actions, list) else []
    if op == "BatchWriteItem":
        return batch_targets(payload.get("RequestItems"))
    return [(payload.get("TableName"), payload.get("Item" if op == "PutItem" else "Key"))]


def batch_targets(request_items: Any) -> list[tuple[Any, Any]]:
    """(TableName, Item or Key) of each PutRequest/DeleteRequest of a BatchWriteItem."""
    if not isinstance(request_items, dict):
        return []
    out: list[tuple[Any, Any]] = []
    for table, requests in request_items.items():
        for request in requests if isinstance(requests, list) else []:
            if isinstance(request, dict) and isinstance(request.get("PutRequest"), dict):
                out.append((table, request["PutRequest"].get("Item")))
            elif isinstance(request, dict) and isinstance(request.get("DeleteRequest"), dict):
                out.append((table, request["DeleteRequest"].get("Key")))
    return out


def action_target(action: Any) -> tuple[Any, Any]:
    """(TableName, Item or Key) of one TransactItems entry, e.g. {"Put": {...}}."""
    if not isinstance(action, dict) or len(action) != 1:
        return None, None
    kind, spec = next(iter(action.items()))
    if not isinstance(spec, dict):
        return None, None
    return spec.get("TableName"), spec.get("Item" if kind == "Put" else "Key")


class ItemHolds:
    """Items held by in-flight writes, with how many transactions and single-item writes
    hold each. Checking and holding happen under one lock, so of two overlapping
    requests the later-arriving one sees the earlier one's holds."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held: dict[ItemId, list[int]] = {}  # item -> [transactions, single writes]

    def hold(self, items: list[ItemId | None], transaction: bool, check: bool = True) -> list[bool] | None:
        """Holds every item and returns None; or, if any conflicts, holds nothing and
        returns which do. A write (transactional or not) conflicts only with in-flight
        transactions on its items (rules 1, 2 and 4 of the module docstring); with
        `check` false (BatchWriteItem) it never conflicts, it only holds."""
        with self.lock:
            conflicting = [check and item is not None and self.in_transaction(item) for item in items]
            if any(conflicting):
                return conflicting
            for item in items:
                if item is not None:
                    self.held.setdefault(item, [0, 0])[0 if transaction else 1] += 1
            return None

    def read_conflicts(self, items: list[ItemId | None]) -> list[bool] | None:
        """For a TransactGetItems: which items an in-flight write of any kind holds (rule
        3), or None if none does. Holds nothing."""
        with self.lock:
            conflicting = [item is not None and item in self.held for item in items]
            return conflicting if any(conflicting) else None

    def in_transaction(self, item: ItemId) -> bool:
        counts = self.held.get(item)
        return counts is not None and counts[0] > 0

    def release(self, items: list[ItemId | None], transaction: bool) -> None:
        with self.lock:
            for item in items:
                if item is None:
                    continue
                counts = self.held[item]
                counts[0 if transaction else 1] -= 1
                if counts == [0, 0]:
                    del self.held[item]

    def count(self) -> int:
        with self.lock:
            return len(self.held)


class KeySchemas:
    """Each table's key attribute names, read once with DescribeTable upstream."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.lock = threading.Lock()
        self.cache: dict[str, list[str]] = {}

    def key_names(self, table: Any, authorization: str | None) -> list[str] | None:
        if not isinstance(table, str):
            return None
        with self.lock:
            cached = self.cache.get(table)
        if cached is None:
            cached = self.describe(table, authorization)
            if cached is not None:  # a missing table is not cached: it may be created later
                with self.lock:
                    self.cache[table] = cached
        return cached

    def describe(self, table: str, authorization: str | None) -> list[str] | None:
        # The client's Authorization header carries the region and account moto files the
        # table under (moto does not check signatures).
        headers = {"X-Amz-Target": TARGET_PREFIX + "DescribeTable", "Content-Type": JSON_CONTENT_TYPE}
        if authorization:
            headers["Authorization"] = authorization
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            conn.request("POST", "/", body=dumps({"TableName": table}), headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                return None
            schema = json.loads(body)["Table"]["KeySchema"]
            return [k["AttributeName"] for k in sorted(schema, key=lambda k: k["KeyType"] != "HASH")]
        except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError):
            return None
        finally:
            conn.close()


# --------------------------------------------------------------------------- state


class Config:
    def __init__(
        self,
        rates: dict[str, float],
        latency_ms: float,
        model_conflicts: bool = False,
        op_latency_ms: dict[str, float] | None = None,
    ) -> None:
        self.rates = {k: 0.0 for k in FAULTS}
        self.rates.update(rates)
        self.latency_ms = latency_ms
        self.model_conflicts = model_conflicts
        self.op_latency_ms = dict(op_latency_ms or {})

    def as_dict(self) -> dict[str, float | bool]:
        out: dict[str, float | bool] = {RATE_KEYS[k]: v for k, v in self.rates.items()}
        out["latency_ms"] = self.latency_ms
        out["op_latency_ms"] = self.op_latency_ms  # type: ignore[assignment]
        out["model_conflicts"] = self.model_conflicts
        return out


class Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.outcomes = {k: 0 for k in OUTCOMES}
        self.by_target: dict[str, dict[str, int]] = {}

    def count(self, target: str, outcome: str) -> None:
        self.requests += 1
        self.outcomes[outcome] += 1
        per = self.by_target.get(target)
        if per is None:
            per = self.by_target[target] = {"requests": 0, **{k: 0 for k in OUTCOMES}}
        per["requests"] += 1
        per[outcome] += 1

    def snapshot(self) -> dict[str, Any]:
        """Each proxied request (control endpoints excluded) lands in exactly one
        outcome: `forwarded` (relayed with the upstream's answer), one of the faults,
        `modeled_conflict`, or `upstream_error` (emulator unreachable: 502). `by_target`
        is keyed by the operation name (X-Amz-Target without the `DynamoDB_20120810.`
        prefix). The stats endpoint adds `held_items`: items held by writes in flight."""
        return {
            "requests": self.requests,
            **self.outcomes,
            "by_target": {k: dict(v) for k, v in sorted(self.by_target.items())},
        }


class ProxyState:
    def __init__(self, upstream: str, config: Config, seed: int, verbose: bool) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"--upstream must be http://host:port, got {upstream!r}")
        self.upstream_host = parsed.hostname
        self.upstream_port = parsed.port or 80
        self.config = config
        self.verbose = verbose
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.ids = random.Random()  # request ids: never perturbs the fault sequence
        self.stats = Stats()
        self.holds = ItemHolds()
        self.schemas = KeySchemas(self.upstream_host, self.upstream_port)
        self.drop_next: dict[str, int] = {}

    def take_planned_drop(self, op: str) -> bool:
        """Whether this request of `op` is one whose answer POST /_proxy/drop-next planned to drop."""
        with self.lock:
            left = self.drop_next.get(op, 0)
            if left:
                self.drop_next[op] = left - 1
            return left > 0

    def model_conflicts(self) -> bool:
        with self.lock:
            return self.config.model_conflicts

    def touched_items(self, op: str, body: bytes, authorization: str | None) -> list[ItemId | None]:
        try:
            payload = json.loads(body)
        except ValueError:
            return []
        return [
            item_id(table, attrs, self.schemas.key_names(table, authorization))
            for table, attrs in write_targets(op, payload)
        ]

    def decide(self, op: str) -> tuple[str | None, float]:
        """One fault (or None) and a latency in seconds, for one data-plane request.
        Always two draws per request, so a given seed gives the same sequence of
        decisions for the same sequence of requests whatever the rates."""
        with self.lock:
            u = self.rng.random()
            v = self.rng.random()
            rates = dict(self.config.rates)
            latency_ms = self.config.latency_ms
            fixed_ms = self.config.op_latency_ms.get(op, 0.0)
        cumulative = 0.0
        fault = None
        for kind in FAULTS:
            if kind == "conflict" and op not in CONFLICTING_WRITES:
                continue
            cumulative += rates[kind]
            if u < cumulative:
                fault = kind
                break
        return fault, (v * latency_ms + fixed_ms) / 1000.0

    def count(self, target: str, outcome: str) -> None:
        with self.lock:
            self.stats.count(target, outcome)

    def request_id(self) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        with self.lock:
            return "".join(self.ids.choice(alphabet) for _ in range(52))


def parse_config_update(update: Any, config: Config) -> tuple[Config, int | None]:
    """Validate a POST /_proxy/config body; returns the new config and seed (if any)."""
    if not isinstance(update, dict):
        raise ValueError("body must be a JSON object")
    known = {v: k for k, v in RATE_KEYS.items()}
    rates = dict(config.rates)
    latency_ms = config.latency_ms
    op_latency_ms = dict(config.op_latency_ms)
    model_conflicts = config.model_conflicts
    seed = None
    for key, value in update.items():
        norm = key.replace("-", "_")
        if norm == "seed":
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError("seed must be an integer")
            seed = value
        elif norm == "latency_ms":
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError("latency_ms must be a number >= 0")
            latency_ms = float(value)
        elif norm == "op_latency_ms":
            valid = isinstance(value, dict) and all(
                isinstance(ms, (int, float)) and not isinstance(ms, bool) and ms >= 0 for ms in value.values()
            )
            if not valid:
                raise ValueError('op_latency_ms must be {"<operation>": <ms >= 0>, ...}')
            op_latency_ms = {str(op): float(ms) for op, ms in value.items()}
        elif norm == "model_conflicts":
            if not isinstance(value, bool):
                raise ValueError("model_conflicts must be true or false")
            model_conflicts = value
        elif norm in known:
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
                raise ValueError(f"{norm} must be a number in 0..1")
            rates[known[norm]] = float(value)
        else:
            raise ValueError(f"unknown key {key!r}")
    return Config(rates, latency_ms, model_conflicts, op_latency_ms), seed


def parse_drop_next(update: Any) -> tuple[str, int]:
    """Validate a POST /_proxy/drop-next body: a data-plane operation and a count >= 0."""
    if not isinstance(update, dict) or set(update) - {"op", "count"}:
        raise ValueError('body must be {"op": "<operation>", "count": <n>}')
    op, count = update.get("op"), update.get("count", 1)
    if op not in DATA_PLANE_OPS:
        raise ValueError(f"op must be one of {sorted(DATA_PLANE_OPS)}")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ValueError("count must be an integer >= 0")
    return op, count


# --------------------------------------------------------------------------- HTTP


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Head and body go out in separate writes: without this, Nagle's algorithm holds the
        # body back ~40 ms on an idle kept-alive connection.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    server_version = "Server"  # what DynamoDB sends in `Server:`
    sys_version = ""
    state: ProxyState  # set on the subclass built in `make_handler`

    # ---- plumbing

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.state.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self.handle_any()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def read_body(self) -> bytes | None:
        """The request body (chunked or Content-Length); None if the client went away."""
        try:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while True:
                    size_line = self.rfile.readline(65537)
                    if not size_line:
                        return None
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                            pass  # trailers: dropped
                        break
                    data = self.rfile.read(size)
                    if len(data) < size:
                        return None
                    chunks.append(data)
                    self.rfile.readline(65537)
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(length) if length > 0 else b""
            return data if len(data) == length else None
        except (OSError, ValueError):
            return None

    def write_response(self, status: int, reason: str | None, headers: list[tuple[str, str]], body: bytes) -> None:
        """Status line, headers in the given order (Content-Length set to the body
        length in place, or appended), connection handling, body."""
        self.send_response_only(status, reason)
        wrote_length = False
        for name, value in headers:
            lname = name.lower()
            if lname in HOP_BY_HOP:
                continue
            if lname == "content-length":
                if wrote_length:
                    continue
                if self.command != "HEAD":
                    value = str(len(body))
                wrote_length = True
            self.send_header(name, value)
        if not wrote_length:
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        elif self.request_version == "HTTP/1.0":
            self.send_header("Connection", "keep-alive")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def write_json(self, status: int, obj: Any) -> None:
        body = json.dumps(obj).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("Date", self.date_time_string()),
        ]
        self.write_response(status, None, headers, body)

    def write_dynamodb_error(self, status: int, body: bytes) -> None:
        """An error response shaped like real DynamoDB's (developer guide, "Error
        handling with DynamoDB": `x-amzn-RequestId`, `Content-Type:
        application/x-amz-json-1.0`, JSON body with `__type` and message), plus the
        `x-amz-crc32` of the body that the service also sends (botocore checks it)."""
        headers = [
            ("Server", "Server"),
            ("Date", self.date_time_string()),
            ("Content-Type", JSON_CONTENT_TYPE),
            ("Content-Length", str(len(body))),
            ("x-amzn-RequestId", self.state.request_id()),
            ("x-amz-crc32", str(zlib.crc32(body))),
        ]
        self.write_response(status, None, headers, body)

    def drop(self) -> None:
        """Close the client connection without a single byte of response."""
        self.close_connection = True

    # ---- dispatch

    def handle_any(self) -> None:
        body = self.read_body()
        if body is None:
            self.close_connection = True
            return
        target = self.headers.get("X-Amz-Target")
        if target is None and self.path.split("?", 1)[0].startswith("/_proxy/"):
            self.handle_control(body)
            return

        op = target[len(TARGET_PREFIX):] if target and target.startswith(TARGET_PREFIX) else None
        key = op if op is not None else (target or "(none)")
        fault = None
        if op in DATA_PLANE_OPS:
            fault, delay = self.state.decide(op)
            if delay > 0:
                time.sleep(delay)  # injected latency, not synchronisation
            if self.state.take_planned_drop(op):
                fault = "drop"

        if fault == "conflict" and op != "TransactWriteItems":
            self.state.count(key, "conflict")
            self.write_dynamodb_error(400, single_conflict_body())
        elif fault == "conflict":
            self.state.count(key, "conflict")
            n = max(1, transact_item_count(body))
            self.write_dynamodb_error(400, conflict_body([True] + [False] * (n - 1)))
        elif fault == "throttle":
            self.state.count(key, "throttle")
            self.write_dynamodb_error(400, throttle_body())
        elif fault == "error":
            self.state.count(key, "error")
            self.write_dynamodb_error(500, internal_error_body())
        elif fault == "drop_before":
            self.state.count(key, "drop_before")
            self.drop()
        else:
            self.forward_unless_conflict(key, op, body, dropped=fault == "drop")

    def forward_unless_conflict(self, key: str, op: str | None, body: bytes, dropped: bool) -> None:
        """Forwards the request and relays the answer. With modeled conflicts, a write
        holds its items while in flight, or, if it conflicts, is answered at once."""
        modeled = op in MODELED_OPS or op in MODELED_READS
        if not modeled or not self.state.model_conflicts():
            self.relay(key, self.forward(body), dropped)
            return
        if op in MODELED_READS:
            items = self.state.touched_items(op, body, self.headers.get("Authorization"))
            conflicting = self.state.holds.read_conflicts(items)
            if conflicting is not None:
                self.state.count(key, "modeled_conflict")
                self.write_dynamodb_error(400, conflict_body(conflicting))
                return
            self.relay(key, self.forward(body), dropped)
            return
        transaction = op == "TransactWriteItems"
        items = self.state.touched_items(op, body, self.headers.get("Authorization"))
        conflicting = self.state.holds.hold(items, transaction, check=op != "BatchWriteItem")
        if conflicting is not None:
            self.state.count(key, "modeled_conflict")
            self.write_dynamodb_error(400, conflict_body(conflicting) if transaction else single_conflict_body())
            return
        try:
            upstream = self.forward(body)
        finally:
            self.state.holds.release(items, transaction)
        self.relay(key, upstream, dropped)

    def relay(self, key: str, upstream: tuple[int, str, list[tuple[str, str]], bytes] | None,
              dropped: bool) -> None:
        """The upstream's answer to the client (502 if there was none; nothing if `dropped`)."""
        if upstream is None:
            self.state.count(key, "upstream_error")
            self.close_connection = True
            self.write_json(502, {"error": "upstream unreachable"})
        elif dropped:
            # The upstream has answered in full (the write happened); the client
            # never hears of it.
            self.state.count(key, "drop")
            self.drop()
        else:
            self.state.count(key, "forwarded")
            status, reason, headers, resp_body = upstream
            self.write_response(status, reason, headers, resp_body)

    def forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes] | None:
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        conn = http.client.HTTPConnection(self.state.upstream_host, self.state.upstream_port, timeout=120)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            sent_length = False
            for name, value in self.headers.items():
                lname = name.lower()
                if lname in HOP_BY_HOP:
                    continue
                if lname == "content-length":
                    if sent_length:
                        continue
                    value = str(len(body))
                    sent_length = True
                conn.putheader(name, value)
            if chunked and not sent_length:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body if body else None)
            resp = conn.getresponse()
            resp_body = resp.read()
            return resp.status, resp.reason, resp.getheaders(), resp_body
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()

    def handle_control(self, body: bytes) -> None:
        path = self.path.split("?", 1)[0]
        state = self.state
        if path == "/_proxy/stats" and self.command == "GET":
            with state.lock:
                snap = state.stats.snapshot()
            snap["held_items"] = state.holds.count()
            self.write_json(200, snap)
        elif path == "/_proxy/reset" and self.command == "POST":
            with state.lock:
                state.stats = Stats()
            self.write_json(200, {"ok": True})
        elif path == "/_proxy/drop-next" and self.command == "POST":
            try:
                op, count = parse_drop_next(json.loads(body or b"{}"))
            except ValueError as exc:
                self.write_json(400, {"error": str(exc)})
                return
            with state.lock:
                state.drop_next[op] = count
                pending = dict(state.drop_next)
            self.write_json(200, pending)
        elif path == "/_proxy/config" and self.command == "GET":
            with state.lock:
                cfg = state.config.as_dict()
            self.write_json(200, cfg)
        elif path == "/_proxy/config" and self.command == "POST":
            try:
                update = json.loads(body or b"{}")
                with state.lock:
                    new_config, seed = parse_config_update(update, state.config)
                    state.config = new_config
                    if seed is not None:
                        state.rng.seed(seed)
                    cfg = new_config.as_dict()
            except ValueError as exc:
                self.write_json(400, {"error": str(exc)})
                return
            self.write_json(200, cfg)
        else:
            self.write_json(404, {"error": f"no control endpoint {self.command} {path}"})


class ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[ProxyHandler], verbose: bool) -> None:
        self.verbose = verbose
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients vanishing mid-request are routine here; stay quiet unless asked.
        if self.verbose:
            super().handle_error(request, client_address)


def make_handler(state: ProxyState) -> type[ProxyHandler]:
    return type("BoundProxyHandler", (ProxyHandler,), {"state": state})


# --------------------------------------------------------------------------- CLI


def exit_on_stdin_eof() -> None:
    """Block reading stdin; when it closes (parent exited), exit immediately."""
    try:
        while sys.stdin.buffer.read(65536):
            pass
    except Exception:  # noqa: BLE001 - any read failure means the parent is gone
        pass
    os._exit(0)


def fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction in 0..1")
    return value


def non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="emulator base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default 0)")
    parser.add_argument("--seed", type=int, default=1, help="RNG seed for fault decisions (default 1)")
    parser.add_argument("--exit-on-stdin-eof", action="store_true", help="exit when stdin reaches EOF")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    parser.add_argument("--conflict-rate", type=fraction, default=0.0,
                        help="TransactWriteItems answered TransactionCanceledException/TransactionConflict")
    parser.add_argument("--throttle-rate", type=fraction, default=0.0,
                        help="answered 400 ProvisionedThroughputExceededException")
    parser.add_argument("--error-rate", type=fraction, default=0.0, help="answered 500 InternalServerError")
    parser.add_argument("--drop-rate", type=fraction, default=0.0,
                        help="forwarded, then the connection closed without a response (ambiguous)")
    parser.add_argument("--drop-before-rate", type=fraction, default=0.0,
                        help="connection closed without forwarding (nothing happened)")
    parser.add_argument("--latency-ms", type=non_negative, default=0.0,
                        help="max latency added to data-plane requests (uniform 0..N ms)")
    parser.add_argument("--model-conflicts", action=argparse.BooleanOptionalAction, default=True,
                        help="answer TransactionConflict where DynamoDB would, from the writes in flight "
                             "(default on; --no-model-conflicts turns it off)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = Config(
        {
            "conflict": args.conflict_rate,
            "throttle": args.throttle_rate,
            "error": args.error_rate,
            "drop": args.drop_rate,
            "drop_before": args.drop_before_rate,
        },
        args.latency_ms,
        args.model_conflicts,
    )
    state = ProxyState(args.upstream, config, args.seed, args.verbose)

    if args.exit_on_stdin_eof:
        threading.Thread(target=exit_on_stdin_eof, name="stdin-eof", daemon=True).start()

    server = ProxyServer((args.host, args.port), make_handler(state), args.verbose)
    shown_host = args.host if args.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    if ":" in shown_host:
        shown_host = f"[{shown_host}]"
    sys.stdout.write(f"READY http://{shown_host}:{server.server_port}\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
