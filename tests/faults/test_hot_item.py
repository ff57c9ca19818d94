"""A hot item under DynamoDB's conflict rules (the fault proxy's modeled conflicts, its
default): the optimistic pattern degrades, one conditional UpdateItem per write does not.

32 clients (threads, each its own boto3 client and connection, so the proxy sees real
overlap) write one account item at once through the proxy (conflicts modeled, no other
fault) into the emulator:

- OLD: read the item, then TransactWriteItems [Put account conditioned on the version read,
  Put entry]: every overlapping transaction on the account is cancelled
  (TransactionConflict), and every stale version fails its condition, so most attempts are
  wasted and some writes give up after their attempts.
- NEW: one UpdateItem `ADD balance :d, available :d` with `available >= :c`, the entry
  appended to a journal in the item: single-item writes on one item never conflict, so every
  write lands on its first attempt.

Counts only, no timing: conflicts, condition failures, writes applied, the final item.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections import Counter

import boto3
import botocore.config
import botocore.exceptions
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PROXY = os.path.join(HERE, "dynamodb_proxy.py")
EMULATOR = os.path.join(ROOT, "infra", "local", "dynamodb_server.py")

CLIENTS = 32
WRITES = 8  # per client
ATTEMPTS = 10  # per write, old pattern
START = 100_000


def start(args: list[str]) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, *args, "--port", "0", "--exit-on-stdin-eof"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout=30)
    if not box or not box[0].startswith("READY "):
        proc.kill()
        proc.wait()
        pytest.fail(f"{args[0]} did not print READY (got {box!r})")
    return proc, box[0].split()[1].strip()


def stop(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def proxy_url():
    emulator, emulator_url = start([EMULATOR])
    proxy, url = start([PROXY, "--upstream", emulator_url])  # conflicts modeled: the default
    yield url
    stop(proxy)
    stop(emulator)


def client(url: str):
    # One attempt per call: every request the test counts is one request on the wire.
    return boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test",
                        config=botocore.config.Config(retries={"total_max_attempts": 1},
                                                      max_pool_connections=2))


def stats(url: str) -> dict:
    with urllib.request.urlopen(url + "/_proxy/stats", timeout=10) as resp:
        return json.loads(resp.read())


def reset(url: str) -> None:
    req = urllib.request.Request(url + "/_proxy/reset", data=b"{}", method="POST")
    with urllib.request.urlopen(req, timeout=10):
        pass


@pytest.fixture
def account(proxy_url):
    """(table, key) of a fresh account item holding START, counters zeroed."""
    ddb = client(proxy_url)
    table = f"hot-{uuid.uuid4().hex[:10]}"
    ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                {"AttributeName": "sk", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "S"}])
    key = {"pk": {"S": "ACCOUNT#e#u"}, "sk": {"S": "ACCOUNT"}}
    ddb.put_item(TableName=table, Item={**key, "balance": {"N": str(START)}, "available": {"N": str(START)},
                                        "version": {"N": "0"}, "journal": {"L": []}})
    reset(proxy_url)
    return table, key


def run_clients(url: str, write) -> Counter:
    """CLIENTS threads released at once, each doing WRITES writes with `write(ddb, tag)`,
    which returns the outcomes of its attempts; all outcomes counted."""
    clients = [client(url) for _ in range(CLIENTS)]  # built here: client creation is not thread-safe
    barrier = threading.Barrier(CLIENTS)
    counts: Counter = Counter()
    lock = threading.Lock()

    def worker(i: int) -> None:
        barrier.wait()
        for j in range(WRITES):
            outcomes = write(clients[i], f"{i}-{j}")
            with lock:
                counts.update(outcomes)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "clients did not finish"
    return counts


def old_pattern(table: str, key: dict):
    """Read the account, then one transaction: Put the account at version+1 (conditioned on
    the version read) and Put the entry. Retried up to ATTEMPTS times on cancellation."""

    def write(ddb, tag: str) -> list[str]:
        outcomes = []
        for _ in range(ATTEMPTS):
            item = ddb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
            version = int(item["version"]["N"])
            balance = int(item["balance"]["N"])
            account = {**key, "balance": {"N": str(balance - 1)}, "available": {"N": str(balance - 1)},
                       "version": {"N": str(version + 1)}, "journal": {"L": []}}
            entry = {"pk": key["pk"], "sk": {"S": f"ENTRY#{tag}"}, "credits": {"N": "-1"}}
            try:
                ddb.transact_write_items(TransactItems=[
                    {"Put": {"TableName": table, "Item": account, "ConditionExpression": "version = :v",
                             "ExpressionAttributeValues": {":v": {"N": str(version)}}}},
                    {"Put": {"TableName": table, "Item": entry, "ConditionExpression": "attribute_not_exists(pk)"}},
                ])
                outcomes.append("applied")
                return outcomes
            except botocore.exceptions.ClientError as exc:
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                outcomes.append("TransactionConflict" if "TransactionConflict" in reasons
                                else "ConditionalCheckFailed" if "ConditionalCheckFailed" in reasons
                                else exc.response["Error"]["Code"])
        outcomes.append("gave_up")
        return outcomes

    return write


def new_pattern(table: str, key: dict):
    """One conditional UpdateItem: the balance moves and the entry is journalled in the item."""

    def write(ddb, tag: str) -> list[str]:
        try:
            ddb.update_item(
                TableName=table, Key=key,
                UpdateExpression="ADD balance :d, available :d SET journal = list_append(journal, :entry)",
                ConditionExpression="available >= :c",
                ExpressionAttributeValues={":d": {"N": "-1"}, ":c": {"N": "1"},
                                           ":entry": {"L": [{"M": {"id": {"S": tag}, "credits": {"N": "-1"}}}]}})
            return ["applied"]
        except botocore.exceptions.ClientError as exc:
            return [exc.response["Error"]["Code"]]

    return write


def final(url: str, table: str, key: dict) -> dict:
    return client(url).get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]


def test_old_optimistic_pattern_degrades_under_modeled_conflicts(proxy_url, account):
    table, key = account
    counts = run_clients(proxy_url, old_pattern(table, key))
    s = stats(proxy_url)
    print(f"\nOLD read + TransactWriteItems, {CLIENTS} clients x {WRITES} writes: {dict(counts)}; "
          f"proxy modeled_conflict={s['modeled_conflict']}")
    applied = counts["applied"]
    wasted = counts["TransactionConflict"] + counts["ConditionalCheckFailed"]
    # DynamoDB's rules cancel overlapping transactions on the account: the model raised them,
    # and the clients saw them as TransactionConflict.
    assert s["modeled_conflict"] >= 1 and counts["TransactionConflict"] >= 1, counts
    assert s["by_target"]["TransactWriteItems"]["modeled_conflict"] == counts["TransactionConflict"]
    # Poor progress: more wasted attempts than writes applied, and the rest is still exact.
    assert wasted > applied, counts
    assert applied + counts["gave_up"] == CLIENTS * WRITES
    item = final(proxy_url, table, key)
    assert int(item["balance"]["N"]) == START - applied
    assert int(item["version"]["N"]) == applied


def test_new_single_update_pattern_never_conflicts(proxy_url, account):
    table, key = account
    counts = run_clients(proxy_url, new_pattern(table, key))
    s = stats(proxy_url)
    print(f"\nNEW one conditional UpdateItem, {CLIENTS} clients x {WRITES} writes: {dict(counts)}; "
          f"proxy modeled_conflict={s['modeled_conflict']}")
    assert counts == Counter({"applied": CLIENTS * WRITES}), counts
    assert s["modeled_conflict"] == 0
    assert s["by_target"]["UpdateItem"]["forwarded"] == CLIENTS * WRITES
    item = final(proxy_url, table, key)
    assert int(item["balance"]["N"]) == int(item["available"]["N"]) == START - CLIENTS * WRITES
    journal = [e["M"]["id"]["S"] for e in item["journal"]["L"]]
    assert sorted(journal) == sorted(f"{i}-{j}" for i in range(CLIENTS) for j in range(WRITES))


def test_new_pattern_refuses_exactly_what_the_balance_cannot_cover(proxy_url, account):
    """The condition holds under contention too: from 40 available, 32 x 8 writes of one
    apply exactly 40 and refuse the rest with ConditionalCheckFailedException."""
    table, key = account
    ddb = client(proxy_url)
    ddb.update_item(TableName=table, Key=key, UpdateExpression="SET balance = :b, available = :b",
                    ExpressionAttributeValues={":b": {"N": "40"}})
    reset(proxy_url)
    counts = run_clients(proxy_url, new_pattern(table, key))
    assert counts == Counter({"applied": 40, "ConditionalCheckFailedException": CLIENTS * WRITES - 40}), counts
    assert stats(proxy_url)["modeled_conflict"] == 0
    item = final(proxy_url, table, key)
    assert (item["balance"]["N"], item["available"]["N"], len(item["journal"]["L"])) == ("0", "0", 40)
