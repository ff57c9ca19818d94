#!/usr/bin/env python3
"""Local DynamoDB emulator: moto's WSGI app served single-threaded.

Why not stock `moto_server`: it serves requests on many threads, and moto's
backends are not thread-safe (concurrent conditional decrements double-spend,
concurrent transactions leak partial state). One thread, one request at a time,
makes every DynamoDB call atomic, which is what the real service guarantees per
item/transaction. (It can never produce `TransactionConflict`, though.)

Usage:
    python infra/local/dynamodb_server.py [--host 127.0.0.1] [--port 8000|0]
                                          [--exit-on-stdin-eof] [--verbose] [--[no-]throttle]

When listening it prints exactly one line to stdout and flushes:
    READY http://127.0.0.1:<port>
`--port 0` picks a free port; read it from that line.
`--exit-on-stdin-eof` exits as soon as stdin reaches EOF, so a parent that
spawned it with a piped stdin stops it just by exiting (or closing the pipe).

State is in memory only: a restart starts empty.

Capacity, as DynamoDB charges it (rules and choices: `dynamodb_capacity.py`): every item
operation (GetItem, PutItem, UpdateItem, DeleteItem, Query, Scan, BatchGetItem,
BatchWriteItem, TransactGetItems, TransactWriteItems) is charged read or write units by the
sizes of the items it touched (before and after a write), answered in `ConsumedCapacity` when
`ReturnConsumedCapacity` is `TOTAL` or `INDEXES` (moto's own answers were constants), and
metered per partition key value.
Throttling, as DynamoDB does it per partition key: OFF unless `--throttle` or
`DYNAMODB_THROTTLE=1` (or switched at runtime, below). Each partition key value may spend
1,000 write units/s and 3,000 read units/s from a token bucket holding one second's worth,
refilled continuously. A request that does not fit is not applied and consumes nothing: 400
`ThrottlingException` (reason `TableWriteKeyRangeThroughputExceeded` or
`TableReadKeyRangeThroughputExceeded` in its message and `ThrottlingReasons`); a transaction
is cancelled instead (`TransactionCanceledException`, `ThrottlingError` on the items past
their budget, as DynamoDB answers transactions); a batch returns the items past their budget
unprocessed (`UnprocessedItems`/`UnprocessedKeys`), and is refused whole only if none fits.
Control routes (requests without `X-Amz-Target`; reachable through the fault proxy too):
    GET  /_emulator/capacity        units per partition key (`read_units`, `write_units`,
                                    `peak_*_units_per_second` in any one clock second,
                                    `requests`, `throttled`, and the largest item a request
                                    on it read or wrote: `peak_item_bytes`,
                                    `peak_item_sort_key`), totals and the config;
                                    `?sort_key=ACCOUNT` (repeatable) adds each such item's
                                    largest size: `peak_item_bytes_by_sort_key`
    POST /_emulator/capacity/reset  zero the meter
    GET  /_emulator/config          {"throttle", "write_units_per_second",
                                     "read_units_per_second", "burst_seconds"}
    POST /_emulator/config          any subset of those, e.g. {"throttle": true}; every
                                    budget starts full again

Fixes to moto 5.2.5, installed at start-up by `patch_moto` (site-packages untouched):
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
import datetime
import functools
import inspect
import json
import logging
import os
import signal
import sys
import threading
import types
from collections.abc import Callable
from typing import Any, NamedTuple

import moto.dynamodb.models as moto_dynamodb_models
from moto.core.common_models import BaseModel
from moto.core.serialize import BaseJSONSerializer
from moto.dynamodb import comparisons
from moto.dynamodb.exceptions import (
    ERROR_TYPE_PREFIX,
    ConditionalCheckFailed,
    DynamodbException,
    TransactionCanceledException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.dynamodb.parsing.expressions import UpdateExpressionParser
from moto.dynamodb.responses import DynamoHandler
from moto.moto_server.werkzeug_app import MotoRequestHandler
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

# A sibling module: run as a script (or imported by its tests), this file's directory is on sys.path.
from dynamodb_capacity import (
    Capacity,
    Charge,
    consumed_capacity,
    item_size,
    key_value,
    partition_id,
    read_units,
    write_units,
)

DEFAULT_HOST = "127.0.0.1"
CONTROL_PREFIX = "/_emulator/"


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
        owner = active_undo is None  # else a throttled request's log, which outlives this
        undo = active_undo = active_undo or ItemUndoLog()
        try:
            original(self, transact_items)
        except BaseException:
            undo.restore()
            raise
        finally:
            if owner:
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
    # Stream records carry whole item images: moto's generic serializer spent ~30 % of the
    # emulator's time on them in the soak (py-spy), and more as the account item grew.
    "GetRecords",
})


def as_wire_json(value: Any) -> Any:
    if isinstance(value, bytes):  # binary attribute values, which moto keeps decoded
        return base64.b64encode(value).decode()
    if isinstance(value, datetime.datetime):  # epoch seconds on the JSON protocol; moto's are UTC
        return (value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)).timestamp()
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def serialize_result(original):
    def serialize(self: BaseJSONSerializer, resp: dict[str, Any], result: Any) -> dict[str, Any]:
        if self.operation_name not in WIRE_FORM_OPERATIONS or not isinstance(result, dict):
            return original(self, resp, result)
        members = self.operation_model.output_shape.members  # moto adds a few legacy fields
        wire = {name: value for name, value in result.items() if name in members}
        resp["body"] = json.dumps(wire, default=as_wire_json)
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


# --------------------------------------------------------------------------- capacity
# moto answers `ConsumedCapacity` with constants and never throttles. Each item operation's
# handler is wrapped: it charges what DynamoDB would (`dynamodb_capacity`), answers
# `ConsumedCapacity` from that, meters it per partition key, and, when throttling is on,
# refuses what a partition key's budget cannot cover, leaving nothing behind.

# The Capacity of the dispatcher serving the current request (one at a time), else None.
active_capacity: Capacity | None = None
# While a Query or Scan is charged: every item it read, before its filter.
active_reads: list[Any] | None = None

THROTTLED_MESSAGE = (
    "Throughput exceeds the current capacity of your table or index for this partition key ({reason}). "
    "If exceptions persist, check if you have a hot key: "
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html."
)
THROTTLING_ERROR_MESSAGE = (
    "Throughput exceeds the current capacity of your table or index. DynamoDB is automatically "
    "scaling your table or index so please try again shortly. If exceptions persist, check if you "
    "have a hot key: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html."
)


class ThrottlingException(DynamodbException):
    """DynamoDB's answer (400) to a request past a partition key's budget, in on-demand mode."""

    error_type = ERROR_TYPE_PREFIX + "ThrottlingException"

    def __init__(self, reason: str, resource: str) -> None:
        message = THROTTLED_MESSAGE.format(reason=reason)
        super().__init__(self.error_type, message)
        self.description = json.dumps({
            "__type": self.error_type,
            "message": message,
            "ThrottlingReasons": [{"reason": reason, "resource": resource}],
        })


def refuse_request(charges: list[Charge], over: set[tuple]) -> Exception:
    first = next(c for c in charges if c.bucket in over)
    return ThrottlingException(first.reason, first.resource)


def refuse_transaction(charges: list[Charge], over: set[tuple]) -> Exception:
    # A transaction past a budget is cancelled, `ThrottlingError` naming the items that were
    # (API reference, TransactWriteItems and TransactGetItems errors).
    throttled = {c.position for c in charges if c.bucket in over}
    return TransactionCanceledException([
        ("ThrottlingError", THROTTLING_ERROR_MESSAGE, None) if i in throttled else (None, None, None)
        for i in range(len(charges))
    ])


class Place(NamedTuple):
    """Where one item of a request is (it may not exist)."""

    name: str  # the table as the request names it
    table: Table
    hash_key: Any
    range_key: Any


def locate(backend: DynamoDBBackend, name: Any, attrs: Any) -> Place | None:
    """The item `attrs` (an Item or Key) names; None if the request is malformed (moto answers it)."""
    try:
        table = backend.get_table(name)
        hash_key = DynamoType(attrs[table.hash_key_attr])
        range_key = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr else None
    except Exception:  # noqa: BLE001 - the request is moto's to refuse
        return None
    return Place(name, table, hash_key, range_key)


def stored_size(place: Place) -> int:
    # Straight from moto's dicts: Table.get_item would enter the item in an undo log.
    if place.range_key is None:
        item = place.table.items.get(place.hash_key)
    else:
        item = place.table.items.get(place.hash_key, {}).get(place.range_key)
    return item_size(item.attrs) if item is not None else 0


def sort_key_text(range_key: Any) -> str | None:
    """A sort key's value as the meter names it (binary as base64); None without one."""
    if range_key is None:
        return None
    return key_value(range_key.type, range_key.value)[range_key.type]


def place_charge(place: Place, kind: str, units: float, size: int, position: int = 0) -> Charge:
    """`units` on the place's partition key, for an item of `size` bytes there."""
    key = key_value(place.hash_key.type, place.hash_key.value)
    return Charge(place.name, kind, units, partition_id(key), key, resource=place.table.table_arn, position=position,
                  sizes=((sort_key_text(place.range_key), size),))


def write_charge(place: Place, before: int, position: int = 0, factor: int = 1) -> Charge:
    """A write of the item at `place`, `before` bytes before it: by the larger of before and now."""
    size = max(before, stored_size(place))
    return place_charge(place, "write", factor * write_units(size), size, position)


def answer(result: Any, body: dict[str, Any], charges: list[Charge], many: bool) -> Any:
    """`result` with DynamoDB's `ConsumedCapacity` for `charges` (or none, if not asked)."""
    out = getattr(result, "result", None)
    if isinstance(out, dict):
        out.pop("ConsumedCapacity", None)
        consumed = consumed_capacity(charges, body.get("ReturnConsumedCapacity"), many)
        if consumed is not None:
            out["ConsumedCapacity"] = consumed
    return result


def run_write(capacity: Capacity, handler: DynamoHandler, original: Callable[..., Any],
              charges_of: Callable[[], list[Charge]], refuse: Callable[..., Exception], many: bool) -> Any:
    """Runs a write, then charges it by the items as they are after it; a write refused for
    throttling is undone (its items and stream records put back) first."""
    global active_undo
    undo = None
    if capacity.throttle and active_undo is None:
        undo = active_undo = ItemUndoLog()
    try:
        try:
            result, failure = original(handler), None
        except (ConditionalCheckFailed, TransactionCanceledException) as e:
            result, failure = None, e  # charged too, as a write of the items as they stand
        charges = charges_of()
        over = capacity.settle(charges)
        if over:
            if undo is not None:
                undo.restore()
            raise refuse(charges, over)
    finally:
        if undo is not None:
            active_undo = None
    if failure is not None:
        raise failure
    return answer(result, handler.body, charges, many)


def charge_item_write(capacity: Capacity, handler: DynamoHandler, original: Callable[..., Any], op: str) -> Any:
    body = handler.body
    attrs = body.get("Item") if op == "put_item" else body.get("Key")
    place = locate(handler.dynamodb_backend, body.get("TableName"), attrs)
    if place is None:
        return original(handler)
    before = stored_size(place)
    return run_write(
        capacity, handler, original,
        lambda: [write_charge(place, before)],
        refuse_request, many=False,
    )


def transaction_places(handler: DynamoHandler) -> list[Place] | None:
    places = []
    for action in handler.body.get("TransactItems") or []:
        if not isinstance(action, dict) or len(action) != 1:
            return None
        kind, spec = next(iter(action.items()))
        if not isinstance(spec, dict):
            return None
        place = locate(handler.dynamodb_backend, spec.get("TableName"), spec.get("Item" if kind == "Put" else "Key"))
        if place is None:
            return None
        places.append(place)
    return places


def charge_transact_write(capacity: Capacity, handler: DynamoHandler, original: Callable[..., Any], op: str) -> Any:
    places = transaction_places(handler)
    if places is None:
        return original(handler)
    before = [stored_size(p) for p in places]
    return run_write(
        capacity, handler, original,
        lambda: [write_charge(p, b, i, factor=2) for i, (p, b) in enumerate(zip(places, before))],
        refuse_transaction, many=True,
    )


def charge_get_item(capacity: Capacity, handler: DynamoHandler, original: Callable[..., Any], op: str) -> Any:
    result = original(handler)  # a read changes nothing: run it, then charge it (or refuse it)
    body = handler.body
    place = locate(handler.dynamodb_backend, body.get("TableName"), body.get("Key"))
    if place is None:
        return result
    size = stored_size(place)
    charges = [place_charge(place, "read", read_units(size, bool(body.get("ConsistentRead"))), size)]
    if over := capacity.settle(charges):
        raise refuse_request(charges, over)
    return answer(result, body, charges, many=False)


def charge_transact_get(capacity: Capacity, handler: DynamoHandler, original: Callable[..., Any], op: str) -> Any:
    result = original(handler)
    places = transaction_places(handler)
    if places is None:
        return result
    sizes = [stored_size(p) for p in places]
    charges = [place_charge(p, "read", 2 * read_units(size, True), size, i)
               for i, (p, size) in enumerate(zip(places, sizes))]
    if over := capacity.settle(charges):
        raise refuse_transaction(charges, over)
    return answer(result, handler.body, charges, many=True)


def batch_plan(handler: DynamoHandler, writes: bool) -> list[tuple[str, Any, Charge]] | None:
    """(table, request or key, its charge) for each item of a BatchWriteItem or BatchGetItem."""
    backend = handler.dynamodb_backend
    plan: list[tuple[str, Any, Charge]] = []
    try:
        for name, spec in handler.body["RequestItems"].items():
            for entry in spec if writes else spec["Keys"]:
                if not writes:
                    place, size = locate(backend, name, entry), 0
                elif "PutRequest" in entry:
                    item = entry["PutRequest"]["Item"]
                    place, size = locate(backend, name, item), item_size(item)
                else:
                    place, size = locate(backend, name, entry["DeleteRequest"]["Key"]), 0
                if place is None:
                    return None
                size = max(size, stored_size(place))
                units = write_units(size) if writes else read_units(size, bool(spec.get("ConsistentRead")))
                plan.append((name, entry, place_charge(place, "write" if writes else "read", units, size, len(plan))))
    except (KeyError, TypeError, AttributeError, ValueError):
        return None
    return plan


def charge_batch(capacity: Capacity, handler: DynamoHandler, original: Callable[..., Any], op: str) -> Any:
    """A batch's items are charged one by one; those past their key's budget come back
    unprocessed, and only if none fits is the whole batch refused (as DynamoDB does)."""
    writes = op == "batch_write_item"
    plan = batch_plan(handler, writes)
    if plan is None:
        return original(handler)
    admitted = capacity.admit_each([c for _, _, c in plan])
    if plan and not any(admitted):
        raise refuse_request([plan[0][2]], {plan[0][2].bucket})
    unprocessed: dict[str, Any] = {}
    if not all(admitted):
        specs = handler.body["RequestItems"]
        kept: dict[str, Any] = {}
        for (name, entry, _), ok in zip(plan, admitted):
            if writes:
                (kept if ok else unprocessed).setdefault(name, []).append(entry)
            else:
                side = kept if ok else unprocessed
                side.setdefault(name, {**{k: v for k, v in specs[name].items() if k != "Keys"}, "Keys": []})
                side[name]["Keys"].append(entry)
        handler.body["RequestItems"] = kept
    result = original(handler)
    charges = [c for (_, _, c), ok in zip(plan, admitted) if ok]
    capacity.settle(charges, check=False)
    if isinstance(getattr(result, "result", None), dict):
        result.result["UnprocessedItems" if writes else "UnprocessedKeys"] = unprocessed
    return answer(result, handler.body, charges, many=True)


def charge_page(capacity: Capacity, handler: DynamoHandler, original: Callable[..., Any], op: str) -> Any:
    """A Query or Scan page: the summed size of the items it read, rounded up once, shared
    among their partition keys by bytes."""
    global active_reads
    reads = active_reads = []
    try:
        result = original(handler)
    finally:
        active_reads = None
    body = handler.body
    index = body.get("IndexName")
    try:
        table = handler.dynamodb_backend.get_table(body.get("TableName"))
    except Exception:  # noqa: BLE001 - answered already; nothing to charge it to
        return result
    is_global = index is not None and any(i.name == index for i in table.global_indexes)
    hash_attr = next((k["AttributeName"] for k in table.get_index(index).schema if k["KeyType"] == "HASH"),
                     None) if is_global else None
    by_key: dict[str, tuple[Any, int]] = {}
    sizes: dict[str | None, list[tuple[str | None, int]]] = {}  # per partition: the items read
    for item in reads:
        value = item.attrs.get(hash_attr) if hash_attr else item.hash_key
        key = key_value(value.type, value.value) if value is not None else None
        pid = partition_id(key) if key is not None else None
        size = item_size(item.attrs)
        by_key[pid] = (key, by_key.get(pid, (key, 0))[1] + size)
        sizes.setdefault(pid, []).append((None if hash_attr else sort_key_text(item.range_key), size))
    total = sum(size for _, size in by_key.values())
    units = read_units(total, bool(body.get("ConsistentRead")))
    resource = table.table_arn + (f"/index/{index}" if is_global else "")
    shares = [(pid, key, size / total) for pid, (key, size) in by_key.items()] if total else [(None, None, 1.0)]
    charges = [Charge(body["TableName"], "read", units * share, pid, key, index, is_global, resource,
                      sizes=tuple(sizes.get(pid, ())))
               for pid, key, share in shares]
    if over := capacity.settle(charges):
        raise refuse_request(charges, over)
    return answer(result, body, charges, many=False)


def reads_before_filter(original: Callable[..., Any], projection_arg: str) -> Callable[..., Any]:
    """Table.query/Table.scan, run without their filter and projection while a page is charged
    (DynamoDB charges the items read, not those returned), which are then applied as moto does."""
    signature = inspect.signature(original)

    def run(self: Table, *args: Any, **kwargs: Any) -> Any:
        if active_reads is None:
            return original(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        condition, projection = bound.arguments["filter_expression"], bound.arguments[projection_arg]
        bound.arguments["filter_expression"] = bound.arguments[projection_arg] = None
        items, scanned, last_key = original(*bound.args, **bound.kwargs)
        active_reads.extend(items)
        if condition is not None:
            items = [item for item in items if condition.expr(item)]
        if projection:
            items = [item.project(projection) for item in items]
        return items, scanned, last_key

    return run


CHARGED_OPERATIONS = {
    "put_item": charge_item_write,
    "update_item": charge_item_write,
    "delete_item": charge_item_write,
    "transact_write_items": charge_transact_write,
    "batch_write_item": charge_batch,
    "get_item": charge_get_item,
    "batch_get_item": charge_batch,
    "transact_get_items": charge_transact_get,
    "query": charge_page,
    "scan": charge_page,
}


def charged(op: str, charge: Callable[..., Any], original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def run(handler: DynamoHandler) -> Any:
        if active_capacity is None:  # moto used without our dispatcher
            return original(handler)
        return charge(active_capacity, handler, original, op)

    return run


patched = False


def patch_moto() -> None:
    """These replace moto internals: moto is pinned (requirements.txt), and
    test_dynamodb_server.py fails if a moto upgrade breaks them. Once per process (a second
    call would wrap the wrappers)."""
    global patched
    if patched:
        return
    patched = True
    BaseModel.__new__ = untracked_new
    DynamoDBBackend.transact_write_items = transact_write_items(DynamoDBBackend.transact_write_items)
    Table.get_item = table_get_item(Table.get_item)
    moto_dynamodb_models.copy = types.SimpleNamespace(**{**vars(copy), "deepcopy": deepcopy_except_table_backups})
    BaseJSONSerializer._serialize_result = serialize_result(BaseJSONSerializer._serialize_result)
    UpdateExpressionParser.make = cached_update_tree(UpdateExpressionParser.make.__func__)
    comparisons.ConditionExpressionParser.parse = condition_parsed_once(comparisons.ConditionExpressionParser.parse)
    for op, charge in CHARGED_OPERATIONS.items():
        setattr(DynamoHandler, op, charged(op, charge, getattr(DynamoHandler, op)))
    Table.query = reads_before_filter(Table.query, "projection_expressions")
    Table.scan = reads_before_filter(Table.scan, "projection_expression")


# --------------------------------------------------------------------------- server


class DynamoDBDispatcher(DomainDispatcherApplication):
    """Routes anything carrying a DynamoDB `X-Amz-Target` to the DynamoDB backend, and
    answers the control routes (`/_emulator/...`, no `X-Amz-Target`) itself.

    moto picks a backend from the SigV4 credential scope (service `dynamodb`),
    never from the Host header, so signed SDK requests already work with
    `Host: 127.0.0.1:<port>`. Unsigned requests (or odd signing names) would fall
    through to moto's default (S3); this pins them to DynamoDB.
    """

    def __init__(self, create_app: Callable[..., Any], capacity: Capacity | None = None) -> None:
        super().__init__(create_app)
        self.capacity = capacity if capacity is not None else Capacity()

    def infer_service_region_host(self, environ: dict[str, Any], path: str) -> str | None:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("DynamoDBStreams_"):
            return "dynamodbstreams"
        if target.startswith("DynamoDB_"):
            return "dynamodb"
        return super().infer_service_region_host(environ, path)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        global requests_served, active_capacity
        if "HTTP_X_AMZ_TARGET" not in environ and environ.get("PATH_INFO", "").startswith(CONTROL_PREFIX):
            return self.control(Request(environ))(environ, start_response)
        requests_served += 1  # a condition parsed for one request is never reused by another
        active_capacity = self.capacity
        try:
            return super().__call__(environ, start_response)
        finally:
            active_capacity = None

    def control(self, request: Request) -> Response:
        capacity = self.capacity
        route = (request.method, request.path)
        status = 200
        if route == ("GET", "/_emulator/capacity"):
            answer: Any = capacity.snapshot(request.args.getlist("sort_key"))
        elif route == ("POST", "/_emulator/capacity/reset"):
            capacity.reset_meter()
            answer = {"ok": True}
        elif route == ("GET", "/_emulator/config"):
            answer = capacity.config()
        elif route == ("POST", "/_emulator/config"):
            try:
                answer = capacity.configure(json.loads(request.get_data() or b"{}"))
            except ValueError as e:
                status, answer = 400, {"error": str(e)}
        else:
            status, answer = 404, {"error": f"no control route {request.method} {request.path}"}
        return Response(json.dumps(answer), status=status, content_type="application/json")


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
    parser.add_argument(
        "--throttle",
        action=argparse.BooleanOptionalAction,
        default=os.environ.get("DYNAMODB_THROTTLE", "").lower() in ("1", "true", "yes", "on"),
        help="refuse what passes a partition key's budget, as DynamoDB does "
        "(default: $DYNAMODB_THROTTLE, else off; POST /_emulator/config switches it)",
    )
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
    app = DynamoDBDispatcher(create_backend_app, Capacity(throttle=args.throttle))
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
