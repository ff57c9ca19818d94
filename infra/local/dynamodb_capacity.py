"""DynamoDB's capacity rules for the local emulator (`dynamodb_server.py` feeds it; no moto here).

What an item weighs (developer guide, "DynamoDB item sizes and formats"): the sum over its
attributes of the name's UTF-8 bytes plus the value's size. Strings: UTF-8 bytes. Numbers: 1 byte
per two significant digits (leading and trailing zeros trimmed, rounded up) + 1, the documented
approximation. Binary: raw bytes. Booleans and null: 1. Lists and maps: 3 bytes + per element
1 byte + the element (a map key counts as a name). Sets: their elements.

What a request costs (developer guide, "DynamoDB read and write operations"):
- a write: 1 write unit per KB, rounded up, of the larger of the item before and after (an
  update too, however small the change; a delete by the item deleted; a write whose condition
  failed, or a delete of nothing, by the item as it stands: at least 1); a transactional write
  2 per KB per item (a ConditionCheck, and every item of a cancelled transaction, as a write of
  the item as it stands: our choice, the guide is silent); BatchWriteItem rounds each item;
- a read: 1 read unit per 4 KB, rounded up, strongly consistent; half that eventually
  consistent; 2 per 4 KB per item in TransactGetItems; an absent item costs the minimum;
  BatchGetItem rounds each item; Query and Scan round the summed size of every item they read
  (before any filter, whatever the projection) once for the page.

The budget (`Capacity`, off unless `throttle`): one token bucket per partition key value (per
table, and per global secondary index) and kind, holding `burst_seconds` (default 1) of its
rate (1,000 write units/s, 3,000 read units/s) and refilled continuously. DynamoDB's documented
300 s of burst capacity is for a provisioned table's own throughput; a partition's limit is a
ceiling, so one second's worth is all a key may spend at once. A request whose units on some key
exceed what that key's bucket holds is refused whole and consumes nothing.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

KB = 1024
READ_BLOCK = 4 * KB
# Per partition key, DynamoDB's documented ceiling (developer guide, "Partitions and data distribution").
WRITE_UNITS_PER_SECOND = 1000.0
READ_UNITS_PER_SECOND = 3000.0
BURST_SECONDS = 1.0
EPSILON = 1e-9  # units are sums of halves and shares of a page: compare with slack

# --------------------------------------------------------------------------- sizes


def number_size(text: Any) -> int:
    digits = str(text).lstrip("+-").partition("e")[0].partition("E")[0].replace(".", "").strip("0")
    return (len(digits) + 1) // 2 + 1


def binary_size(value: Any) -> int:
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    try:  # moto keeps some binary values as the base64 text they arrived in
        return len(base64.b64decode(value))
    except (ValueError, TypeError):
        return len(str(value))


def value_size(value: Any) -> int:
    """One attribute value's size, given in wire form ({"S": "x"}) or as moto's DynamoType."""
    if type(value) is dict:  # not isinstance(Mapping): this runs per value of every item touched
        ((kind, inner),) = value.items()
    else:
        kind, inner = value.type, value.value
    if kind == "S":
        return len(inner.encode())
    if kind == "M":
        size = 3
        for name, v in inner.items():
            size += 1 + len(name.encode()) + value_size(v)
        return size
    if kind == "N":
        return number_size(inner)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in inner)
    if kind == "B":
        return binary_size(inner)
    if kind == "SS":
        return sum(len(s.encode()) for s in inner)
    if kind == "NS":
        return sum(number_size(n) for n in inner)
    if kind == "BS":
        return sum(binary_size(b) for b in inner)
    return 1  # BOOL, NULL


def item_size(attrs: Mapping[str, Any] | None) -> int:
    """An item's size in bytes (0 for no item)."""
    if not attrs:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in attrs.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / KB))


def read_units(size: int, consistent: bool) -> float:
    return max(1, math.ceil(size / READ_BLOCK)) * (1.0 if consistent else 0.5)


# --------------------------------------------------------------------------- charges


@dataclass(slots=True)
class Charge:
    """Units one request consumes on one partition key (or on none: an empty page)."""

    table: str
    kind: str  # "read" or "write"
    units: float
    partition: str | None = None  # the key's value as canonical JSON
    key: Any = None  # the same value, to show
    index: str | None = None  # a Query's or Scan's index
    global_index: bool = False  # a global index has partitions (and budgets) of its own
    resource: str = ""  # the ARN a throttling answer names
    position: int = 0  # which item of a batch or transaction
    # The items it touched on that key: (sort key as text, or None without one; bytes, the
    # larger of before and after for a write).
    sizes: tuple[tuple[str | None, int], ...] = ()

    @property
    def meter_key(self) -> tuple[str, str | None, str | None]:
        return self.table, self.index if self.global_index else None, self.partition

    @property
    def bucket(self) -> tuple[str, str | None, str | None, str]:
        return (*self.meter_key, self.kind)

    @property
    def reason(self) -> str:
        """DynamoDB's throttling reason for this charge's budget."""
        return ("Index" if self.global_index else "Table") + self.kind.capitalize() + "KeyRangeThroughputExceeded"


def key_value(kind: str, value: Any) -> dict[str, Any]:
    """A key attribute's value in wire form (binary as base64, as DynamoDB sends it)."""
    if isinstance(value, (bytes, bytearray)):
        value = base64.b64encode(value).decode()
    return {kind: value}


def partition_id(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True)


def capacity_entry(table: str, parts: dict[tuple[str | None, bool], list[float]], indexes: bool) -> dict[str, Any]:
    read = sum(r for r, _ in parts.values())
    write = sum(w for _, w in parts.values())
    entry: dict[str, Any] = {"TableName": table, **units_of(read, write)}
    if indexes:
        for (index, is_global), (r, w) in parts.items():
            if index is None:
                entry["Table"] = units_of(r, w)
            else:
                group = "GlobalSecondaryIndexes" if is_global else "LocalSecondaryIndexes"
                entry.setdefault(group, {})[index] = units_of(r, w)
    return entry


def units_of(read: float, write: float) -> dict[str, float]:
    out = {"CapacityUnits": float(read + write)}
    if read:
        out["ReadCapacityUnits"] = float(read)
    if write:
        out["WriteCapacityUnits"] = float(write)
    return out


def consumed_capacity(charges: Iterable[Charge], mode: Any, many: bool) -> Any:
    """`ConsumedCapacity` as DynamoDB answers it for `ReturnConsumedCapacity` `mode`: one entry
    (`many` false) or a list of one per table (batches, transactions); None for `NONE`."""
    if mode not in ("TOTAL", "INDEXES"):
        return None
    tables: dict[str, dict[tuple[str | None, bool], list[float]]] = {}
    for c in charges:
        slot = tables.setdefault(c.table, {}).setdefault((c.index, c.global_index), [0.0, 0.0])
        slot[0 if c.kind == "read" else 1] += c.units
    entries = [capacity_entry(table, parts, mode == "INDEXES") for table, parts in tables.items()]
    if many:
        return entries
    return entries[0] if entries else None


# --------------------------------------------------------------------------- meter and budget


class KeyMeter:
    """Units consumed on one partition key: in all, and the most in any one clock second; and
    the largest item a request on it touched (read, or written: before or after), in all and
    per sort key (one number per item touched since the last reset: far less than the items
    themselves, which the emulator keeps in memory anyway)."""

    __slots__ = ("table", "index", "key", "units", "requests", "throttled", "second", "this_second", "peak",
                 "item_peaks")

    def __init__(self, table: str, index: str | None, key: Any) -> None:
        self.table, self.index, self.key = table, index, key
        self.units = {"read": 0.0, "write": 0.0}
        self.requests = 0
        self.throttled = 0
        self.second: int | None = None
        self.this_second = {"read": 0.0, "write": 0.0}
        self.peak = {"read": 0.0, "write": 0.0}
        self.item_peaks: dict[str | None, int] = {}  # sort key (None: the table has none) -> bytes

    def add_sizes(self, sizes: Iterable[tuple[str | None, int]]) -> None:
        peaks = self.item_peaks
        for sort_key, size in sizes:
            if size > peaks.get(sort_key, -1):
                peaks[sort_key] = size

    def add(self, kind: str, units: float, now: float) -> None:
        second = math.floor(now)
        if second != self.second:
            self.second = second
            self.this_second = {"read": 0.0, "write": 0.0}
        self.units[kind] += units
        self.this_second[kind] += units
        self.peak[kind] = max(self.peak[kind], self.this_second[kind])

    def as_dict(self, sort_keys: Iterable[str] = ()) -> dict[str, Any]:
        largest = max(self.item_peaks.items(), key=lambda kv: kv[1], default=(None, 0))
        out = {
            "table": self.table,
            "index": self.index,
            "key": self.key,
            "read_units": round(self.units["read"], 6),
            "write_units": round(self.units["write"], 6),
            "peak_read_units_per_second": round(self.peak["read"], 6),
            "peak_write_units_per_second": round(self.peak["write"], 6),
            "requests": self.requests,
            "throttled": self.throttled,
            "peak_item_bytes": largest[1],
            "peak_item_sort_key": largest[0],
        }
        wanted = {k: self.item_peaks[k] for k in sort_keys if k in self.item_peaks}
        if wanted:
            out["peak_item_bytes_by_sort_key"] = wanted
        return out


CONFIG_KEYS = ("throttle", "write_units_per_second", "read_units_per_second", "burst_seconds")


class Capacity:
    """The meter of units per partition key, and (with `throttle`) the per-key budget.

    `clock` is any monotonic seconds function: tests pass one they move by hand."""

    def __init__(
        self,
        throttle: bool = False,
        clock: Callable[[], float] = time.monotonic,
        write_units_per_second: float = WRITE_UNITS_PER_SECOND,
        read_units_per_second: float = READ_UNITS_PER_SECOND,
        burst_seconds: float = BURST_SECONDS,
    ) -> None:
        self.clock = clock
        self.throttle = throttle
        self.rates = {"read": float(read_units_per_second), "write": float(write_units_per_second)}
        self.burst_seconds = float(burst_seconds)
        self.buckets: dict[tuple, list[float]] = {}  # bucket -> [tokens, when last refilled]
        self.reset_meter()

    # ---- budget

    def tokens(self, bucket: tuple, now: float) -> float:
        rate = self.rates[bucket[-1]]
        full = rate * self.burst_seconds
        held = self.buckets.get(bucket)
        if held is None:
            held = self.buckets[bucket] = [full, now]
        else:
            held[0] = min(full, held[0] + (now - held[1]) * rate)
            held[1] = now
        return held[0]

    def settle(self, charges: list[Charge], check: bool = True) -> set[tuple]:
        """Takes `charges` from their keys' budgets and meters them; or, when throttling and
        some key's budget cannot cover its share, takes nothing and returns those buckets."""
        now = self.clock()
        demand: dict[tuple, float] = {}
        for c in charges:
            if c.partition is not None:
                demand[c.bucket] = demand.get(c.bucket, 0.0) + c.units
        if self.throttle:
            if check:
                over = {b for b, units in demand.items() if units > self.tokens(b, now) + EPSILON}
                if over:
                    self.count_throttled([c for c in charges if c.bucket in over])
                    return over
            for bucket, units in demand.items():
                self.buckets[bucket][0] = self.tokens(bucket, now) - units
        self.record(charges, now)
        return set()

    def admit_each(self, charges: list[Charge]) -> list[bool]:
        """For a batch: which of its items, in order, fit their keys' budgets (taking nothing)."""
        if not self.throttle:
            return [True] * len(charges)
        now = self.clock()
        pending: dict[tuple, float] = {}
        admitted = []
        for c in charges:
            if c.partition is None:
                admitted.append(True)
                continue
            want = pending.get(c.bucket, 0.0) + c.units
            fits = want <= self.tokens(c.bucket, now) + EPSILON
            if fits:
                pending[c.bucket] = want
            admitted.append(fits)
        self.count_throttled([c for c, ok in zip(charges, admitted) if not ok])
        return admitted

    # ---- meter

    def meter(self, c: Charge) -> KeyMeter:
        meter = self.keys.get(c.meter_key)
        if meter is None:
            meter = self.keys[c.meter_key] = KeyMeter(c.table, c.index if c.global_index else None, c.key)
        return meter

    def record(self, charges: list[Charge], now: float) -> None:
        seen: set[int] = set()
        for c in charges:
            meter = self.meter(c)
            meter.add(c.kind, c.units, now)
            meter.add_sizes(c.sizes)
            if id(meter) not in seen:
                seen.add(id(meter))
                meter.requests += 1
            self.totals[c.kind] += c.units

    def count_throttled(self, refused: list[Charge]) -> None:
        """Counts one refusal per key (a refused request, or a batch's refused items)."""
        if not refused:
            return
        self.throttled += 1
        for meter in {id(m): m for m in map(self.meter, refused)}.values():
            meter.throttled += 1

    def reset_meter(self) -> None:
        self.keys: dict[tuple, KeyMeter] = {}
        self.totals = {"read": 0.0, "write": 0.0}
        self.throttled = 0

    def snapshot(self, sort_keys: Iterable[str] = ()) -> dict[str, Any]:
        """What `GET /_emulator/capacity` answers: the config, totals, and every partition key
        that consumed anything (most units first), each with its largest item's size
        (`peak_item_bytes`, `peak_item_sort_key`) and, for each of `sort_keys` it has, that
        item's largest size (`peak_item_bytes_by_sort_key`)."""
        sort_keys = list(sort_keys)
        keys = sorted(self.keys.values(), key=lambda m: -(m.units["read"] + m.units["write"]))
        return {
            **self.config(),
            "read_units": round(self.totals["read"], 6),
            "write_units": round(self.totals["write"], 6),
            "throttled": self.throttled,
            "keys": [m.as_dict(sort_keys) for m in keys],
        }

    # ---- config

    def config(self) -> dict[str, Any]:
        return {
            "throttle": self.throttle,
            "write_units_per_second": self.rates["write"],
            "read_units_per_second": self.rates["read"],
            "burst_seconds": self.burst_seconds,
        }

    def configure(self, update: Any) -> dict[str, Any]:
        """Applies a `POST /_emulator/config` body (any subset of `CONFIG_KEYS`); every bucket
        starts full again. Raises ValueError, changing nothing, on a bad body."""
        if not isinstance(update, dict):
            raise ValueError("body must be a JSON object")
        for name, value in update.items():
            if name not in CONFIG_KEYS:
                raise ValueError(f"unknown key {name!r} (known: {', '.join(CONFIG_KEYS)})")
            if name == "throttle":
                if not isinstance(value, bool):
                    raise ValueError("throttle must be true or false")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a number > 0")
        if "throttle" in update:
            self.throttle = update["throttle"]
        if "write_units_per_second" in update:
            self.rates["write"] = float(update["write_units_per_second"])
        if "read_units_per_second" in update:
            self.rates["read"] = float(update["read_units_per_second"])
        if "burst_seconds" in update:
            self.burst_seconds = float(update["burst_seconds"])
        self.buckets.clear()
        return self.config()
