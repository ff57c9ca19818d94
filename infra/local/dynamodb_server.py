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

Two fixes to moto 5.2.5, installed at start-up by `patch_moto` (site-packages untouched):
- Memory: moto's `BaseModel.__new__` appends every model instance it ever creates (every
  item, every copy of one) to a class-level list for its dashboard, so nothing is ever
  freed: a long `make dev` session grew to many GB. Instances are no longer tracked
  (`/moto-api/data.json` lists none).
- Transactions: moto backs up every table a `TransactWriteItems` touches with a deep
  copy before running it (cost grows with the table, and each copy leaked, see above).
  Instead, each item is copied the first time the transaction reads it (moto reads every
  item before writing it), and a cancelled or failed transaction puts those copies back.
  Everything else is moto's own code (it ignores `ClientRequestToken`; so does this).
- Responses of item operations: moto runs every result through a generic serializer that
  walks botocore's output shapes value by value, so a write that returns its item
  (`ReturnValues`, `ALL_OLD` on a failed condition) cost several times the write itself,
  in proportion to the item's attributes. DynamoDB charges a write by the item's size, not
  by what it returns. moto's DynamoDB responses already hold those results in wire form
  (attribute values as `{"S": ...}`), so they are sent as JSON directly; the test suite
  checks that both ways give the same body.
- Expressions: moto parses each update expression twice per request (once to validate the
  request, once to apply it) and each condition expression twice, so a request's cost grew
  with its expressions' clauses far beyond DynamoDB's (which charges by item size only).
  An update expression's syntax tree is kept per expression text (moto's validator works on
  a copy of it), and a condition parsed for one request is not parsed again for the same
  request.
Rates and memory: `infra/local/bench_transactions.py`.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import logging
import os
import signal
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

import moto.dynamodb.models as moto_dynamodb_models
from moto.core.common_models import BaseModel
from moto.core.serialize import BaseJSONSerializer
from moto.dynamodb import comparisons
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.dynamodb.parsing.expressions import UpdateExpressionParser
from moto.moto_server.werkzeug_app import MotoRequestHandler
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

DEFAULT_HOST = "127.0.0.1"


# --------------------------------------------------------------------------- moto patches


class ItemUndoLog:
    """What one TransactWriteItems changed, to undo it: a copy of each item it read (None
    if absent) and the length of each stream it could have added records to. (A restored
    item may sit elsewhere in moto's dicts than before: unobservable, moto sorts every
    Scan and Query by key.)"""

    def __init__(self) -> None:
        # (id(table), hash key, range key) -> (table, hash key, range key, copy or None)
        self.items: dict[tuple[int, Any, Any], tuple[Table, Any, Any, Any]] = {}
        self.streams: dict[int, tuple[Any, list, int]] = {}  # id(table) -> (shard, records, length)

    def record_read(self, table: Table, hash_key: Any, range_key: Any, read: Callable[..., Any]) -> None:
        slot = (id(table), hash_key, range_key)
        if slot in self.items:
            return
        self.items[slot] = (table, hash_key, range_key, copy.deepcopy(read(table, hash_key, range_key)))
        shard = table.stream_shard
        if shard is not None and id(table) not in self.streams:
            self.streams[id(table)] = (shard, shard.items, len(shard.items))

    def restore(self) -> None:
        for table, hash_key, range_key, item in self.items.values():
            restore_item(table, hash_key, range_key, item)
        for shard, records, length in self.streams.values():
            del records[length:]
            shard.items = records


def restore_item(table: Table, hash_key: Any, range_key: Any, item: Any) -> None:
    """Put one item back as it was (`item` None: it did not exist), in moto's layout."""
    if not range_key:
        if item is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = item
    elif item is not None:
        table.items[hash_key][range_key] = item
    elif hash_key in table.items:
        table.items[hash_key].pop(range_key, None)


# The undo log of the TransactWriteItems being served (one request at a time), else None.
active_undo: ItemUndoLog | None = None


def transact_write_items(original):
    def run(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        global active_undo
        active_undo = ItemUndoLog()
        try:
            original(self, transact_items)
        except BaseException:
            active_undo.restore()
            raise
        finally:
            active_undo = None

    return run


def table_get_item(original):
    def get_item(self: Table, hash_key: Any, range_key: Any = None, projection_expression: Any = None) -> Any:
        if active_undo is not None:
            active_undo.record_read(self, hash_key, range_key, original)
        return original(self, hash_key, range_key, projection_expression)

    return get_item


def deepcopy_except_table_backups(obj: Any, memo: dict | None = None) -> Any:
    # moto's TransactWriteItems deep-copies whole tables as its backup (and "restores" by
    # assigning that copy back): hand it the table itself; the undo log does the backup.
    if active_undo is not None and isinstance(obj, Table):
        return obj
    return copy.deepcopy(obj, memo)


def untracked_new(cls: type, *args: Any, **kwargs: Any) -> Any:
    """moto's `BaseModel.__new__` minus the registry that kept every instance alive."""
    return object.__new__(cls)


# Operations whose results moto's DynamoDB responses build in wire form already (no
# timestamps to encode; binary values are the one type JSON lacks): items, keys, counts,
# consumed capacity.
WIRE_FORM_OPERATIONS = frozenset({
    "GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan",
    "BatchGetItem", "BatchWriteItem", "TransactGetItems", "TransactWriteItems",
})


def base64_of_bytes(value: Any) -> str:
    if isinstance(value, bytes):  # binary attribute values, which moto keeps decoded
        return base64.b64encode(value).decode()
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def serialize_result(original):
    def serialize(self: BaseJSONSerializer, resp: dict[str, Any], result: Any) -> dict[str, Any]:
        if self.operation_name not in WIRE_FORM_OPERATIONS or not isinstance(result, dict):
            return original(self, resp, result)
        members = self.operation_model.output_shape.members  # moto adds a few legacy fields
        wire = {name: value for name, value in result.items() if name in members}
        resp["body"] = json.dumps(wire, default=base64_of_bytes)
        resp["headers"]["Content-Type"] = self._get_protocol_specific_content_type()
        return resp

    return serialize


# Update expressions' syntax trees by text, and the condition parsed last (with its request).
UPDATE_TREES: dict[str, Any] = {}
UPDATE_TREES_AT_MOST = 1024
requests_served = 0
last_condition: tuple[Any, Any, list[str], list[str]] | None = None


def cached_update_tree(original):
    def make(cls: type, expression: str) -> Any:
        tree = UPDATE_TREES.get(expression)
        if tree is None:
            if len(UPDATE_TREES) >= UPDATE_TREES_AT_MOST:
                UPDATE_TREES.clear()
            tree = UPDATE_TREES[expression] = original(cls, expression)
        return tree

    return classmethod(make)


def condition_parsed_once(original):
    def parse(self: comparisons.ConditionExpressionParser) -> Any:
        global last_condition
        key = (
            requests_served,
            self.condition_expression,
            json.dumps(self.expression_attribute_names, sort_keys=True),
            json.dumps(self.expression_attribute_values, sort_keys=True, default=repr),
        )
        if last_condition is not None and last_condition[0] == key:
            _, tree, names, values = last_condition
            self.expr_attr_names_found, self.expr_attr_values_found = list(names), list(values)
            return tree
        tree = original(self)
        last_condition = (key, tree, list(self.expr_attr_names_found), list(self.expr_attr_values_found))
        return tree

    return parse


def patch_moto() -> None:
    """These replace moto internals: moto is pinned (requirements.txt), and
    test_dynamodb_server.py fails if a moto upgrade breaks them."""
    BaseModel.__new__ = untracked_new
    DynamoDBBackend.transact_write_items = transact_write_items(DynamoDBBackend.transact_write_items)
    Table.get_item = table_get_item(Table.get_item)
    moto_dynamodb_models.copy = types.SimpleNamespace(**{**vars(copy), "deepcopy": deepcopy_except_table_backups})
    BaseJSONSerializer._serialize_result = serialize_result(BaseJSONSerializer._serialize_result)
    UpdateExpressionParser.make = cached_update_tree(UpdateExpressionParser.make.__func__)
    comparisons.ConditionExpressionParser.parse = condition_parsed_once(comparisons.ConditionExpressionParser.parse)


# --------------------------------------------------------------------------- server


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

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        global requests_served
        requests_served += 1  # a condition parsed for one request is never reused by another
        return super().__call__(environ, start_response)


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

    patch_moto()
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
