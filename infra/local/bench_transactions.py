#!/usr/bin/env python3
"""Benchmark: TransactWriteItems throughput and memory of the local DynamoDB emulator.

Prints numbers, asserts nothing (not part of `make test`). For each table size it starts
a fresh emulator (`dynamodb_server.py --port 0`), loads that many items, then runs
3-action transactions shaped like a credit mutation: a conditional update of an account
balance, a ledger entry and an idempotency record. Each size also checks that a cancelled
transaction applies nothing, so a fast-but-wrong emulator cannot pass unnoticed, and
reports the emulator's RSS after loading (and, for the largest size, after many more
transactions with new items each).

Usage:
    .venv/bin/python infra/local/bench_transactions.py [--sizes 10 10000] [--transactions 300]
        [--rss-transactions 5000] [--server PATH]

The rate runs reuse four ledger/idempotency keys, so the table keeps its size while the
rate is measured.

Requests are raw unsigned JSON over one short connection each (the emulator speaks
HTTP/1.0), so client overhead stays small next to the emulator's own work.
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import time
from pathlib import Path

SERVER = Path(__file__).with_name("dynamodb_server.py")
TABLE = "bench"
ACCOUNT = {"pk": {"S": "ACCOUNT#1"}, "sk": {"S": "BALANCE"}}
PAD = "x" * 200  # ledger entries carry a few hundred bytes, like the service's


class Emulator:
    def __init__(self, server: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(server), "--port", "0", "--exit-on-stdin-eof"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if not line.startswith("READY "):
            raise SystemExit(f"emulator did not start: {line!r}")
        self.host, port = line.split()[1].removeprefix("http://").rsplit(":", 1)
        self.port = int(port)

    def call(self, op: str, body: dict) -> tuple[int, dict]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
        try:
            conn.request(
                "POST",
                "/",
                json.dumps(body),
                {"X-Amz-Target": f"DynamoDB_20120810.{op}", "Content-Type": "application/x-amz-json-1.0"},
            )
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"{}")
        finally:
            conn.close()

    def ok(self, op: str, body: dict) -> dict:
        status, out = self.call(op, body)
        if status != 200:
            raise SystemExit(f"{op} failed: {status} {out}")
        return out

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise SystemExit("no VmRSS")

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def create_table(emu: Emulator) -> None:
    emu.ok(
        "CreateTable",
        {
            "TableName": TABLE,
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            "AttributeDefinitions": [
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            "BillingMode": "PAY_PER_REQUEST",
        },
    )


def load_items(emu: Emulator, count: int) -> None:
    """`count` items in all: the account item plus ledger entries over 100 other accounts."""
    emu.ok("PutItem", {"TableName": TABLE, "Item": {**ACCOUNT, "balance": {"N": "1000000000"}}})
    for start in range(0, count - 1, 25):
        puts = [
            {"PutRequest": {"Item": {"pk": {"S": f"ACCOUNT#{2 + i % 100}"}, "sk": {"S": f"LEDGER#{i:08d}"},
                                     "amount": {"N": "1"}, "note": {"S": PAD}}}}
            for i in range(start, min(count - 1, start + 25))
        ]
        emu.ok("BatchWriteItem", {"RequestItems": {TABLE: puts}})


def transaction(tag: str, amount: int) -> dict:
    """Debit `amount` if the balance covers it, with a ledger entry and an idempotency record
    keyed by `tag` (unconditional puts, so the rate runs can reuse a few tags)."""
    return {
        "TransactItems": [
            {"Update": {
                "TableName": TABLE, "Key": ACCOUNT,
                "UpdateExpression": "ADD balance :neg", "ConditionExpression": "balance >= :amt",
                "ExpressionAttributeValues": {":neg": {"N": str(-amount)}, ":amt": {"N": str(amount)}},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }},
            {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "ACCOUNT#1"}, "sk": {"S": f"TX#{tag}"},
                                                  "amount": {"N": str(amount)}, "note": {"S": PAD}}}},
            {"Put": {"TableName": TABLE, "Item": {"pk": {"S": f"IDEM#{tag}"}, "sk": {"S": "IDEM"}}}},
        ]
    }


def run_transactions(emu: Emulator, tags: range | list[str]) -> float:
    """One transaction per tag; returns transactions/s."""
    started = time.perf_counter()
    for tag in tags:
        emu.ok("TransactWriteItems", transaction(str(tag), 1))
    return len(tags) / (time.perf_counter() - started)


def measure_rate(emu: Emulator, transactions: int, rounds: int = 3) -> float:
    """Median rate over `rounds`, each of `transactions` transactions on 4 reused tags, so the
    table keeps its size (at most 8 extra items)."""
    run_transactions(emu, [f"r{i % 4}" for i in range(10)])  # warm-up
    rates = sorted(run_transactions(emu, [f"r{i % 4}" for i in range(transactions)]) for _ in range(rounds))
    return rates[len(rates) // 2]


def check_cancelled_applies_nothing(emu: Emulator) -> None:
    account = {"TableName": TABLE, "Key": ACCOUNT, "ConsistentRead": True}
    before = emu.ok("GetItem", account)["Item"]
    status, out = emu.call("TransactWriteItems", transaction("cancelled", 10**12))
    ledger = emu.ok("GetItem", {"TableName": TABLE, "Key": {"pk": {"S": "ACCOUNT#1"}, "sk": {"S": "TX#cancelled"}}})
    if status != 400 or out["CancellationReasons"][0]["Code"] != "ConditionalCheckFailed":
        raise SystemExit(f"expected a cancelled transaction, got {status} {out}")
    if emu.ok("GetItem", account)["Item"] != before or "Item" in ledger:
        raise SystemExit("a cancelled transaction changed data")


def bench_size(server: Path, size: int, transactions: int, rss_transactions: int) -> float:
    emu = Emulator(server)
    try:
        create_table(emu)
        load_items(emu, size)
        print(f"{size:>6} items: emulator RSS after loading {emu.rss_mb():7.1f} MB", flush=True)
        rate = measure_rate(emu, transactions)
        print(f"{size:>6} items: {rate:7.1f} TransactWriteItems/s (3 actions each; median of 3 x {transactions})",
              flush=True)
        check_cancelled_applies_nothing(emu)
        if rss_transactions:
            # Unique tags: each transaction adds two items, as a day of real debits would.
            run_transactions(emu, range(rss_transactions))
            print(f"{size:>6} items: emulator RSS after {rss_transactions} more transactions "
                  f"(~{size + 2 * rss_transactions} items) {emu.rss_mb():7.1f} MB", flush=True)
        return rate
    finally:
        emu.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 10_000], help="table sizes (items)")
    parser.add_argument("--transactions", type=int, default=300, help="transactions measured per size")
    parser.add_argument("--rss-transactions", type=int, default=5000,
                        help="transactions run on the largest table before reporting RSS again (0: skip)")
    parser.add_argument("--server", type=Path, default=SERVER, help="emulator script (default: %(default)s)")
    args = parser.parse_args()

    sizes = sorted(args.sizes)
    rates = {
        size: bench_size(args.server, size, args.transactions, args.rss_transactions if size == sizes[-1] else 0)
        for size in sizes
    }
    print(f"ratio rate({sizes[-1]}) / rate({sizes[0]}): {rates[sizes[-1]] / rates[sizes[0]]:.3g} (target >= 0.67)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
