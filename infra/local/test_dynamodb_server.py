"""Checks for infra/local/dynamodb_server.py (run by `make test` via pytest).

Spawns the emulator the way the Rust test harness does
(`--port 0 --exit-on-stdin-eof`, READY line on stdout) and talks to it with boto3.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

SERVER = Path(__file__).with_name("dynamodb_server.py")
TABLE = "credits-test"


def spawn(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "--port", "0", "--exit-on-stdin-eof", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    assert line.startswith("READY http://127.0.0.1:"), line
    return proc, line.split(" ", 1)[1].strip()


def stop(proc: subprocess.Popen[bytes]) -> int:
    assert proc.stdin is not None
    proc.stdin.close()
    return proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server():
    proc, url = spawn()
    try:
        yield proc, url
    finally:
        if stop(proc) != 0:
            proc.kill()


@pytest.fixture(scope="module")
def endpoint(server):
    return server[1]


def boto_client(service: str, endpoint: str):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 1}, max_pool_connections=32),
    )


@pytest.fixture(scope="module")
def ddb(endpoint):
    client = boto_client("dynamodb", endpoint)
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return client


def test_exits_when_stdin_closes():
    proc, _ = spawn()
    started = time.monotonic()
    assert stop(proc) == 0
    assert time.monotonic() - started < 5


def test_transaction_condition_failure_returns_old_item(ddb):
    ddb.put_item(TableName=TABLE, Item={"pk": {"S": "E#1"}, "sk": {"S": "BAL"}, "balance": {"N": "5"}})
    with pytest.raises(ClientError) as err:
        ddb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": {"pk": {"S": "E#1"}, "sk": {"S": "BAL"}},
                        "UpdateExpression": "ADD balance :neg",
                        "ConditionExpression": "balance >= :amt",
                        "ExpressionAttributeValues": {":neg": {"N": "-10"}, ":amt": {"N": "10"}},
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
                {
                    "Put": {
                        "TableName": TABLE,
                        "Item": {"pk": {"S": "E#1"}, "sk": {"S": "LEDGER#1"}, "amount": {"N": "-10"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
    resp = err.value.response
    assert resp["Error"]["Code"] == "TransactionCanceledException"
    reasons = resp["CancellationReasons"]
    assert reasons[0]["Code"] == "ConditionalCheckFailed"
    assert reasons[0]["Item"]["balance"] == {"N": "5"}
    assert reasons[1]["Code"] == "None"
    # Nothing from the cancelled transaction was written.
    assert "Item" not in ddb.get_item(TableName=TABLE, Key={"pk": {"S": "E#1"}, "sk": {"S": "LEDGER#1"}})


def test_concurrent_conditional_decrements_never_overdraw(ddb):
    key = {"pk": {"S": "E#2"}, "sk": {"S": "BAL"}}
    ddb.put_item(TableName=TABLE, Item={**key, "balance": {"N": "20"}})

    def debit(_: int) -> bool:
        try:
            ddb.update_item(
                TableName=TABLE,
                Key=key,
                UpdateExpression="ADD balance :neg",
                ConditionExpression="balance >= :one",
                ExpressionAttributeValues={":neg": {"N": "-1"}, ":one": {"N": "1"}},
            )
            return True
        except ClientError as e:
            assert e.response["Error"]["Code"] == "ConditionalCheckFailedException"
            return False

    with ThreadPoolExecutor(max_workers=16) as pool:
        ok = sum(pool.map(debit, range(60)))
    assert ok == 20
    assert ddb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"]["balance"] == {"N": "0"}


def test_signed_request_with_any_host_header(ddb):
    def rewrite_host(request, **_):
        request.headers["Host"] = "some-other-name.example:4566"

    ddb.meta.events.register("before-send.dynamodb.ListTables", rewrite_host)
    try:
        assert TABLE in ddb.list_tables()["TableNames"]
    finally:
        ddb.meta.events.unregister("before-send.dynamodb.ListTables", rewrite_host)


def test_unsigned_request_is_routed_by_target(endpoint, ddb):
    host, port = endpoint.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request(
        "POST",
        "/",
        body="{}",
        headers={
            "Host": f"127.0.0.1:{port}",
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "DynamoDB_20120810.ListTables",
        },
    )
    resp = conn.getresponse()
    assert resp.status == 200
    assert TABLE in json.loads(resp.read())["TableNames"]


# --------------------------------------------------------------------------- transactions
# The wrapper replaces moto's whole-table backup with per-item undo (see the module
# docstring of dynamodb_server.py); these pin down that nothing else changed.


def new_table(ddb, range_key: bool, **extra) -> str:
    name = f"tx-{uuid.uuid4().hex[:10]}"
    keys = ["pk", "sk"] if range_key else ["pk"]
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in zip(keys, ["HASH", "RANGE"])],
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in keys],
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )
    return name


def item_key(range_key: bool, name: str) -> dict:
    # Range tables: all items in one partition (one hash-key bucket inside moto).
    return {"pk": {"S": "ACC"}, "sk": {"S": name}} if range_key else {"pk": {"S": name}}


def seed(ddb, table: str, range_key: bool) -> None:
    for name, balance in [("a1", "10"), ("a2", "20"), ("a3", "30"), ("a4", "40"), ("a5", "50")]:
        ddb.put_item(TableName=table, Item={**item_key(range_key, name), "balance": {"N": balance}})


def mixed_actions(table: str, range_key: bool, last_check_holds: bool) -> list[dict]:
    """Puts (new and overwriting), updates (existing and creating), a delete from the middle
    of the table, and a condition check last that fails unless `last_check_holds`."""
    k = lambda name: item_key(range_key, name)  # noqa: E731
    return [
        {"Put": {"TableName": table, "Item": {**k("n1"), "balance": {"N": "1"}},
                 "ConditionExpression": "attribute_not_exists(pk)"}},
        {"Put": {"TableName": table, "Item": {**k("a3"), "note": {"S": "replaced"}}}},
        {"Update": {"TableName": table, "Key": k("a1"), "UpdateExpression": "ADD balance :d",
                    "ConditionExpression": "balance >= :min",
                    "ExpressionAttributeValues": {":d": {"N": "-5"}, ":min": {"N": "5"}}}},
        {"Update": {"TableName": table, "Key": k("n2"), "UpdateExpression": "SET balance = :v",
                    "ExpressionAttributeValues": {":v": {"N": "7"}}}},
        {"Delete": {"TableName": table, "Key": k("a2"), "ConditionExpression": "attribute_exists(pk)"}},
        {"ConditionCheck": {"TableName": table, "Key": k("a4"), "ConditionExpression": "balance = :b",
                            "ExpressionAttributeValues": {":b": {"N": "40" if last_check_holds else "41"}},
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
    ]


def scan(ddb, table: str) -> list[dict]:
    return ddb.scan(TableName=table, ConsistentRead=True)["Items"]


@pytest.mark.parametrize("range_key", [True, False], ids=["hash+range", "hash-only"])
def test_cancelled_transaction_changes_nothing(ddb, range_key):
    table = new_table(ddb, range_key)
    seed(ddb, table, range_key)
    before = scan(ddb, table)

    with pytest.raises(ClientError) as err:
        ddb.transact_write_items(TransactItems=mixed_actions(table, range_key, last_check_holds=False))

    resp = err.value.response
    assert resp["Error"]["Code"] == "TransactionCanceledException"
    reasons = resp["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None"] * 5 + ["ConditionalCheckFailed"]
    assert reasons[5]["Item"] == {**item_key(range_key, "a4"), "balance": {"N": "40"}}
    assert scan(ddb, table) == before


@pytest.mark.parametrize("range_key", [True, False], ids=["hash+range", "hash-only"])
def test_cancelled_transaction_reports_every_failing_condition(ddb, range_key):
    """As DynamoDB does (API_CancellationReason: one reason per action, in request order,
    code None where nothing failed), and as moving the journal relies on (every entry that
    already landed is named, not only the first): five Puts conditioned on the item not
    existing, where the 2nd and 5th (0-based 1 and 4) exist."""
    table = new_table(ddb, range_key)
    names = ["m0", "m1", "m2", "m3", "m4"]
    for name in ("m1", "m4"):
        ddb.put_item(TableName=table, Item={**item_key(range_key, name), "moved": {"S": "before"}})
    before = scan(ddb, table)

    with pytest.raises(ClientError) as err:
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": table, "Item": {**item_key(range_key, name), "moved": {"S": "now"}},
                     "ConditionExpression": "attribute_not_exists(pk)",
                     "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}
            for name in names
        ])

    resp = err.value.response
    assert resp["Error"]["Code"] == "TransactionCanceledException"
    reasons = resp["CancellationReasons"]
    assert [r["Code"] for r in reasons] == [
        "None", "ConditionalCheckFailed", "None", "None", "ConditionalCheckFailed",
    ]
    assert "[None, ConditionalCheckFailed, None, None, ConditionalCheckFailed]" in resp["Error"]["Message"]
    for i in (1, 4):
        assert reasons[i]["Item"] == {**item_key(range_key, names[i]), "moved": {"S": "before"}}
    assert all("Item" not in reasons[i] and "Message" not in reasons[i] for i in (0, 2, 3))
    assert scan(ddb, table) == before


@pytest.mark.parametrize("range_key", [True, False], ids=["hash+range", "hash-only"])
def test_successful_transaction_applies_every_action(ddb, range_key):
    table = new_table(ddb, range_key)
    seed(ddb, table, range_key)

    ddb.transact_write_items(TransactItems=mixed_actions(table, range_key, last_check_holds=True))

    got = {(i.get("sk") or i["pk"])["S"]: i for i in scan(ddb, table)}
    assert sorted(got) == ["a1", "a3", "a4", "a5", "n1", "n2"]
    assert got["a1"]["balance"] == {"N": "5"}
    assert got["a3"] == {**item_key(range_key, "a3"), "note": {"S": "replaced"}}
    assert got["n1"]["balance"] == {"N": "1"}
    assert got["n2"]["balance"] == {"N": "7"}
    assert got["a4"]["balance"] == {"N": "40"}


def test_validation_error_midway_changes_nothing(ddb):
    """moto raises a ValidationException (not a cancellation) from the middle of the
    transaction, after it has already applied the earlier actions."""
    table = new_table(ddb, range_key=True)
    seed(ddb, table, range_key=True)
    before = scan(ddb, table)
    k = lambda name: item_key(True, name)  # noqa: E731
    with pytest.raises(ClientError) as err:
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": table, "Item": {**k("n1"), "balance": {"N": "1"}}}},
            {"Update": {"TableName": table, "Key": k("a1"), "UpdateExpression": "SET balance = :v",
                        "ExpressionAttributeValues": {":v": {"N": "99"}}}},
            {"Delete": {"TableName": table, "Key": k("a2")}},
            # A number attribute incremented by a string: fails while executing the update.
            {"Update": {"TableName": table, "Key": k("a3"), "UpdateExpression": "ADD balance :s",
                        "ExpressionAttributeValues": {":s": {"S": "x"}}}},
            {"Put": {"TableName": table, "Item": k("n2")}},
        ])
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert scan(ddb, table) == before


def stream_records(endpoint: str, stream_arn: str) -> list[dict]:
    streams = boto_client("dynamodbstreams", endpoint)
    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    return streams.get_records(ShardIterator=iterator)["Records"]


def test_cancelled_transaction_adds_no_stream_records(ddb, endpoint):
    table = new_table(ddb, range_key=False,
                      StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    seed(ddb, table, range_key=False)
    with pytest.raises(ClientError):
        ddb.transact_write_items(TransactItems=mixed_actions(table, False, last_check_holds=False))
    ddb.put_item(TableName=table, Item={"pk": {"S": "after"}})

    records = stream_records(endpoint, arn)
    assert [(r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]) for r in records] == [
        ("INSERT", "a1"), ("INSERT", "a2"), ("INSERT", "a3"), ("INSERT", "a4"), ("INSERT", "a5"),
        ("INSERT", "after"),
    ]


def test_stream_records_arrive_whole_in_the_wire_form(ddb, endpoint):
    """GetRecords answers through the emulator's own serializer (not moto's generic one):
    images with every attribute type, the keys, and the record's instant as a timestamp."""
    table = new_table(ddb, range_key=False,
                      StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    item = {"pk": {"S": "a"}, "n": {"N": "1"}, "b": {"B": b"\x00\xff"}, "l": {"L": [{"S": "x"}]},
            "m": {"M": {"k": {"BOOL": True}}}, "ss": {"SS": ["p", "q"]}, "z": {"NULL": True}}
    ddb.put_item(TableName=table, Item=item)
    ddb.update_item(TableName=table, Key={"pk": {"S": "a"}}, UpdateExpression="SET n = :two",
                    ExpressionAttributeValues={":two": {"N": "2"}})

    inserted, modified = stream_records(endpoint, arn)
    assert (inserted["eventName"], modified["eventName"]) == ("INSERT", "MODIFY")
    assert inserted["dynamodb"]["NewImage"] == {**item, "b": {"B": b"\x00\xff"}}
    assert modified["dynamodb"]["OldImage"]["n"] == {"N": "1"}
    assert modified["dynamodb"]["NewImage"]["n"] == {"N": "2"}
    assert modified["dynamodb"]["Keys"] == {"pk": {"S": "a"}}
    written_at = modified["dynamodb"]["ApproximateCreationDateTime"]
    assert abs(written_at.timestamp() - time.time()) < 60, written_at


# --------------------------------------------------------------------------- memory


def rss_mb(proc: subprocess.Popen[bytes]) -> float:
    with open(f"/proc/{proc.pid}/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


def test_memory_does_not_grow_with_transactions(ddb, server):
    """moto backed up every table a transaction touched with a deep copy, and kept every
    copy: a few hundred transactions on a 2,000-item table grew the process by ~1 GB."""
    proc, _ = server
    table = new_table(ddb, range_key=True)
    for start in range(0, 2000, 25):
        ddb.batch_write_item(RequestItems={table: [
            {"PutRequest": {"Item": {"pk": {"S": f"P{i % 40}"}, "sk": {"S": f"L{i}"}, "pad": {"S": "x" * 200}}}}
            for i in range(start, start + 25)
        ]})
    account = {"pk": {"S": "ACC"}, "sk": {"S": "BAL"}}
    ddb.put_item(TableName=table, Item={**account, "balance": {"N": "1000"}})
    before = rss_mb(proc)

    for i in range(300):
        amount = "1" if i % 2 else "100000"  # every other transaction is cancelled
        try:
            ddb.transact_write_items(TransactItems=[
                {"Update": {"TableName": table, "Key": account, "UpdateExpression": "ADD balance :d",
                            "ConditionExpression": "balance >= :a",
                            "ExpressionAttributeValues": {":d": {"N": f"-{amount}"}, ":a": {"N": amount}}}},
                {"Put": {"TableName": table, "Item": {"pk": {"S": "ACC"}, "sk": {"S": f"TX{i % 3}"}}}},
            ])
        except ClientError as e:
            assert e.response["Error"]["Code"] == "TransactionCanceledException"

    assert ddb.get_item(TableName=table, Key=account)["Item"]["balance"] == {"N": "850"}
    assert rss_mb(proc) - before < 20


def test_memory_does_not_grow_with_item_writes(ddb, server):
    """moto kept every model instance it created (each item, each copy of one): 500 updates
    of a 500-element item grew the process by ~60 MB. Now it does not grow with requests."""
    proc, _ = server
    table = new_table(ddb, range_key=True)
    key = {"pk": {"S": "ACC"}, "sk": {"S": "BIG"}}
    ddb.put_item(TableName=table, Item={**key, "n": {"N": "0"}, "l": {"L": [{"N": str(i)} for i in range(500)]}})
    before = rss_mb(proc)

    for _ in range(500):
        ddb.update_item(TableName=table, Key=key, UpdateExpression="ADD n :one",
                        ExpressionAttributeValues={":one": {"N": "1"}})

    assert ddb.get_item(TableName=table, Key=key)["Item"]["n"] == {"N": "500"}
    assert rss_mb(proc) - before < 20


def test_item_results_are_sent_as_moto_would_serialize_them():
    """The emulator sends item operations' results as JSON directly (`serialize_result`); every
    body must equal what moto's own serializer writes. The same requests run in two regions
    (one backend each): one with the direct path, one with moto's serializer."""
    from werkzeug.test import Client

    sys.path.insert(0, str(SERVER.parent))
    import dynamodb_server as emulator

    emulator.patch_moto()
    client = Client(emulator.DynamoDBDispatcher(emulator.create_backend_app))
    direct = emulator.BaseJSONSerializer._serialize_result
    moto_own = direct.__closure__[0].cell_contents  # the method `serialize_result` wraps

    def call(region: str, op: str, body: dict) -> tuple[int, dict]:
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": f"DynamoDB_20120810.{op}",
            "Authorization": f"AWS4-HMAC-SHA256 Credential=k/20240101/{region}/dynamodb/aws4_request, "
            "SignedHeaders=host, Signature=0",
        }
        response = client.post("/", data=json.dumps(body), headers=headers)
        return response.status_code, json.loads(response.data)

    item = {
        "pk": {"S": "a"}, "sk": {"S": "1"}, "n": {"N": "12.5"}, "b": {"B": "AAEC"}, "t": {"BOOL": True},
        "z": {"NULL": True}, "ss": {"SS": ["x", "y"]}, "ns": {"NS": ["1", "2"]}, "bs": {"BS": ["AQ=="]},
        "m": {"M": {"l": {"L": [{"S": "q"}, {"N": "3"}, {"M": {}}]}}},
    }
    key = {"pk": {"S": "a"}, "sk": {"S": "1"}}
    requests = [
        ("PutItem", {"TableName": TABLE, "Item": item, "ReturnConsumedCapacity": "TOTAL"}),
        ("PutItem", {"TableName": TABLE, "Item": {**item, "sk": {"S": "2"}}, "ReturnValues": "ALL_OLD"}),
        ("UpdateItem", {"TableName": TABLE, "Key": key, "UpdateExpression": "ADD n :d SET m.l[0] = :s",
                        "ExpressionAttributeValues": {":d": {"N": "1"}, ":s": {"S": "r"}}, "ReturnValues": "ALL_NEW"}),
        ("UpdateItem", {"TableName": TABLE, "Key": key, "UpdateExpression": "SET t = :f",
                        "ConditionExpression": "n > :big", "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        "ExpressionAttributeValues": {":f": {"BOOL": False}, ":big": {"N": "100"}}}),
        ("GetItem", {"TableName": TABLE, "Key": key, "ConsistentRead": True}),
        ("GetItem", {"TableName": TABLE, "Key": {"pk": {"S": "none"}, "sk": {"S": "1"}}}),
        ("Query", {"TableName": TABLE, "KeyConditionExpression": "pk = :p", "Limit": 1,
                   "ExpressionAttributeValues": {":p": {"S": "a"}}}),
        ("Scan", {"TableName": TABLE, "Select": "COUNT"}),
        ("BatchGetItem", {"RequestItems": {TABLE: {"Keys": [key]}}}),
        ("TransactGetItems", {"TransactItems": [{"Get": {"TableName": TABLE, "Key": key}}]}),
        ("TransactWriteItems", {"TransactItems": [{"Delete": {"TableName": TABLE, "Key": key}}]}),
        ("BatchWriteItem", {"RequestItems": {TABLE: [{"DeleteRequest": {"Key": {**key, "sk": {"S": "2"}}}}]}}),
        ("DeleteItem", {"TableName": TABLE, "Key": key, "ReturnValues": "ALL_OLD"}),
    ]
    answers = {}
    try:
        for region, serializer in (("eu-west-1", direct), ("eu-west-2", moto_own)):
            emulator.BaseJSONSerializer._serialize_result = serializer
            call(region, "CreateTable", {
                "TableName": TABLE, "BillingMode": "PAY_PER_REQUEST",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                         {"AttributeName": "sk", "AttributeType": "S"}],
            })
            answers[region] = [call(region, op, body) for op, body in requests]
    finally:
        emulator.BaseJSONSerializer._serialize_result = direct
    assert answers["eu-west-1"] == answers["eu-west-2"]
    assert answers["eu-west-1"][2][1]["Attributes"]["n"] == {"N": "13.5"}
    assert answers["eu-west-1"][3][0] == 400


# --------------------------------------------------------------------------- capacity
# What requests consume, by the developer guide's rules and worked examples ("DynamoDB item
# sizes and formats"; "DynamoDB read and write operations"), and the per-partition-key budget.
# Most run the emulator in this process (its WSGI app), with a clock the test moves by hand.

KB = 1024
REGION = "ap-southeast-2"  # tables of these tests live in a region of their own


@pytest.fixture(scope="module")
def emulator():
    """dynamodb_server imported into this process, its moto patches installed (once)."""
    sys.path.insert(0, str(SERVER.parent))
    import dynamodb_server

    dynamodb_server.patch_moto()
    return dynamodb_server


class Clock:
    """Seconds that pass only when a test moves `now`."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Local:
    """The emulator in this process with a capacity (and clock) of its own, and a fresh table
    keyed pk (hash) + sk (range)."""

    def __init__(self, emulator, throttle: bool = False, **table: object) -> None:
        from werkzeug.test import Client

        self.clock = Clock()
        self.capacity = emulator.Capacity(throttle=throttle, clock=self.clock)
        self.client = Client(emulator.DynamoDBDispatcher(emulator.create_backend_app, self.capacity))
        self.table = f"cap-{uuid.uuid4().hex[:10]}"
        self.ok("CreateTable", {
            "TableName": self.table, "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                     {"AttributeName": "sk", "AttributeType": "S"}],
            **table,
        })
        self.arn = self.ok("DescribeTable", {"TableName": self.table})["Table"]["TableArn"]

    def call(self, op: str, body: dict) -> tuple[int, dict]:
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": f"DynamoDB_20120810.{op}",
            "Authorization": f"AWS4-HMAC-SHA256 Credential=k/20240101/{REGION}/dynamodb/aws4_request, "
            "SignedHeaders=host, Signature=0",
        }
        response = self.client.post("/", data=json.dumps(body), headers=headers)
        return response.status_code, json.loads(response.data)

    def ok(self, op: str, body: dict) -> dict:
        status, answer = self.call(op, body)
        assert status == 200, answer
        return answer

    def control(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        response = self.client.open(path, method=method, data=json.dumps(body) if body is not None else None)
        return response.status_code, json.loads(response.data)

    def put(self, item: dict, **extra: object) -> tuple[int, dict]:
        return self.call("PutItem", {"TableName": self.table, "Item": item, **extra})

    def meter(self, pk: str) -> dict:
        status, snapshot = self.control("GET", "/_emulator/capacity")
        assert status == 200
        return next(k for k in snapshot["keys"] if k["key"] == {"S": pk} and k["table"] == self.table)


def at(pk: str, sk: str) -> dict:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def sized(pk: str, sk: str, size: int, **attrs: dict) -> dict:
    """An item of exactly `size` bytes: names and ASCII values are a byte a character, so
    pk (2 + len) + sk (2 + len) + attrs + pad (3 + the padding)."""
    base = 2 + len(pk) + 2 + len(sk) + 3 + sum(len(n) + len(next(iter(v.values()))) for n, v in attrs.items())
    return {**at(pk, sk), **attrs, "pad": {"S": "x" * (size - base)}}


def test_item_size_follows_the_documented_rules(emulator):
    from dynamodb_capacity import item_size, number_size

    # Strings: UTF-8 bytes of name and value ("é" is two).
    assert item_size({"name": {"S": "héllo"}}) == 4 + 6
    # Numbers: 1 byte per two significant digits (leading and trailing zeros trimmed) + 1.
    assert [number_size(n) for n in ["0", "7", "123", "-1.50", "0.001", "1000000", "12345.6789", "1E+5"]] == [
        1, 2, 3, 2, 2, 2, 6, 2]
    assert number_size("9" * 38) == 20
    # Binary: raw bytes, whether moto holds them decoded or as their base64 text.
    assert item_size({"b": {"B": b"\x00\x01\x02"}}) == item_size({"b": {"B": "AAEC"}}) == 1 + 3
    # Booleans and null: 1 byte.
    assert item_size({"t": {"BOOL": True}, "z": {"NULL": True}}) == 1 + 1 + 1 + 1
    # Lists and maps: 3 bytes + 1 per element + the elements (a map's keys count as names).
    assert item_size({"l": {"L": [{"S": "ab"}, {"N": "1"}]}}) == 1 + 3 + (1 + 2) + (1 + 2)
    assert item_size({"m": {"M": {"a": {"S": "xy"}, "n": {"M": {}}}}}) == 1 + 3 + (1 + 1 + 2) + (1 + 1 + 3)
    assert item_size({"l": {"L": []}}) == 1 + 3
    # Sets: their elements.
    assert item_size({"ss": {"SS": ["ab", "c"]}, "ns": {"NS": ["1", "22"]}, "bs": {"BS": [b"\x01"]}}) == (
        2 + 3) + (2 + 2 + 2) + (2 + 1)
    # The helper these tests size items with is exact.
    assert item_size(sized("K", "s", 3500)) == 3500
    assert item_size(sized("K", "s", KB, owner={"S": "o1"})) == KB


def test_read_capacity_as_the_developer_guide_computes_it(emulator):
    """A read rounds each item up to 4 KB: 3,500 bytes reads as 4 KB (1 unit, half
    eventually consistent); 8 KB is 2 units strongly consistent, 1 eventually, 4
    transactionally; 10 KB rounds to 12 KB (3). BatchGetItem rounds each item: 1.5 KB and
    6.5 KB read as 12 KB, not 8 (3 units). An absent item costs the minimum."""
    db = Local(emulator)
    for sk, size in [("3500", 3500), ("8k", 8 * KB), ("10k", 10 * KB), ("1.5k", 1536), ("6.5k", 6656)]:
        db.ok("PutItem", {"TableName": db.table, "Item": sized("R", sk, size)})

    def get(sk: str, consistent: bool) -> dict:
        return db.ok("GetItem", {"TableName": db.table, "Key": at("R", sk), "ConsistentRead": consistent,
                                 "ReturnConsumedCapacity": "TOTAL"})["ConsumedCapacity"]

    assert get("3500", True) == {"TableName": db.table, "CapacityUnits": 1.0, "ReadCapacityUnits": 1.0}
    assert get("3500", False)["CapacityUnits"] == 0.5
    assert (get("8k", True)["CapacityUnits"], get("8k", False)["CapacityUnits"]) == (2, 1)
    assert get("10k", True)["CapacityUnits"] == 3
    assert (get("absent", True)["CapacityUnits"], get("absent", False)["CapacityUnits"]) == (1, 0.5)
    transaction = db.ok("TransactGetItems", {"TransactItems": [{"Get": {"TableName": db.table, "Key": at("R", "8k")}}],
                                             "ReturnConsumedCapacity": "TOTAL"})
    assert transaction["ConsumedCapacity"] == [{"TableName": db.table, "CapacityUnits": 4.0, "ReadCapacityUnits": 4.0}]
    batch = db.ok("BatchGetItem", {
        "RequestItems": {db.table: {"Keys": [at("R", "1.5k"), at("R", "6.5k")], "ConsistentRead": True}},
        "ReturnConsumedCapacity": "INDEXES",
    })
    assert batch["ConsumedCapacity"] == [{"TableName": db.table, "CapacityUnits": 3.0, "ReadCapacityUnits": 3.0,
                                          "Table": {"CapacityUnits": 3.0, "ReadCapacityUnits": 3.0}}]
    assert len(batch["Responses"][db.table]) == 2 and batch["UnprocessedKeys"] == {}
    assert "ConsumedCapacity" not in db.ok("GetItem", {"TableName": db.table, "Key": at("R", "8k")})


def test_query_and_scan_charge_what_they_read_summed_then_rounded(emulator):
    """Query and Scan add up the sizes of every item they read, before any filter and
    whatever the projection, and round the page up to 4 KB once: ten 1,000-byte items are
    10,000 bytes, 3 units strongly consistent (not 10), even when the filter keeps none."""
    db = Local(emulator)
    for i in range(10):
        db.ok("PutItem", {"TableName": db.table, "Item": sized("Q", f"{i:02}", 1000)})
    query = {"TableName": db.table, "KeyConditionExpression": "pk = :p",
             "ExpressionAttributeValues": {":p": {"S": "Q"}}}

    none_kept = db.ok("Query", {**query, "FilterExpression": "attribute_exists(nope)", "ConsistentRead": True,
                                "ReturnConsumedCapacity": "INDEXES"})
    assert (none_kept["Count"], none_kept["ScannedCount"]) == (0, 10)
    assert none_kept["ConsumedCapacity"] == {"TableName": db.table, "CapacityUnits": 3.0, "ReadCapacityUnits": 3.0,
                                             "Table": {"CapacityUnits": 3.0, "ReadCapacityUnits": 3.0}}
    # The filter and projection still apply to what comes back; eventually consistent: half.
    kept = db.ok("Query", {**query, "FilterExpression": "attribute_exists(#pad)",
                           "ExpressionAttributeNames": {"#pad": "pad"}, "ProjectionExpression": "sk",
                           "ReturnConsumedCapacity": "TOTAL"})
    assert kept["Items"] == [{"sk": {"S": f"{i:02}"}} for i in range(10)]
    assert kept["ConsumedCapacity"]["CapacityUnits"] == 1.5
    assert db.ok("Query", {**query, "Limit": 2, "ReturnConsumedCapacity": "TOTAL"})["ConsumedCapacity"][
        "CapacityUnits"] == 0.5
    nothing = {**query, "ExpressionAttributeValues": {":p": {"S": "none"}}, "ReturnConsumedCapacity": "TOTAL"}
    assert db.ok("Query", nothing)["ConsumedCapacity"]["CapacityUnits"] == 0.5
    scan = db.ok("Scan", {"TableName": db.table, "Select": "COUNT", "ConsistentRead": True,
                          "ReturnConsumedCapacity": "TOTAL"})
    assert (scan["Count"], scan["ConsumedCapacity"]["CapacityUnits"]) == (10, 3)


def test_query_of_a_global_index_is_charged_to_the_index(emulator):
    db = Local(emulator, GlobalSecondaryIndexes=[{
        "IndexName": "by_owner", "KeySchema": [{"AttributeName": "owner", "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "ALL"},
    }], AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "owner")])
    for sk in ("a", "b"):
        db.ok("PutItem", {"TableName": db.table, "Item": sized("G", sk, KB, owner={"S": "o1"})})
    page = db.ok("Query", {"TableName": db.table, "IndexName": "by_owner", "KeyConditionExpression": "#o = :o",
                           "ExpressionAttributeNames": {"#o": "owner"},
                           "ExpressionAttributeValues": {":o": {"S": "o1"}}, "ReturnConsumedCapacity": "INDEXES"})
    assert page["Count"] == 2
    assert page["ConsumedCapacity"] == {"TableName": db.table, "CapacityUnits": 0.5, "ReadCapacityUnits": 0.5,
                                        "GlobalSecondaryIndexes": {"by_owner": {"CapacityUnits": 0.5,
                                                                                "ReadCapacityUnits": 0.5}}}
    owner = db.meter("o1")
    assert (owner["index"], owner["read_units"], owner["write_units"]) == ("by_owner", 0.5, 0)


def test_write_capacity_as_the_developer_guide_computes_it(emulator):
    """A write costs 1 unit per KB, rounded up, of the larger of the item before and after:
    an update of one small attribute pays for the whole item, a delete for the item deleted.
    BatchWriteItem rounds each item (500 bytes and 3.5 KB are 1 + 4 = 5, not 4); a
    transaction pays 2 per KB per item."""
    db = Local(emulator)

    def units(op: str, **body: object) -> float:
        answer = db.ok(op, {"TableName": db.table, "ReturnConsumedCapacity": "TOTAL", **body})
        assert answer["ConsumedCapacity"] == {"TableName": db.table, "CapacityUnits": answer["ConsumedCapacity"][
            "CapacityUnits"], "WriteCapacityUnits": answer["ConsumedCapacity"]["CapacityUnits"]}
        return answer["ConsumedCapacity"]["CapacityUnits"]

    assert units("PutItem", Item=sized("W", "a", 1536)) == 2
    units("PutItem", Item=sized("W", "b", 3584))
    one = {":v": {"N": "1"}}
    assert units("UpdateItem", Key=at("W", "b"), UpdateExpression="SET n = :v", ExpressionAttributeValues=one) == 4
    assert units("UpdateItem", Key=at("W", "b"), UpdateExpression="REMOVE #pad",
                 ExpressionAttributeNames={"#pad": "pad"}) == 4  # the larger: before
    assert units("UpdateItem", Key=at("W", "b"), UpdateExpression="SET n = :v", ExpressionAttributeValues=one) == 1
    units("PutItem", Item=sized("W", "c", 3584))
    assert units("PutItem", Item=sized("W", "c", 100)) == 4  # overwritten: the larger, before
    units("PutItem", Item=sized("W", "d", 3584))
    assert units("DeleteItem", Key=at("W", "d")) == 4
    assert units("DeleteItem", Key=at("W", "d")) == 1  # nothing to delete: the minimum

    batch = db.ok("BatchWriteItem", {"RequestItems": {db.table: [
        {"PutRequest": {"Item": sized("W", "e", 500)}}, {"PutRequest": {"Item": sized("W", "f", 3584)}},
    ]}, "ReturnConsumedCapacity": "TOTAL"})
    assert batch["ConsumedCapacity"] == [{"TableName": db.table, "CapacityUnits": 5.0, "WriteCapacityUnits": 5.0}]
    assert batch["UnprocessedItems"] == {}

    # A 1.5 KB put (2 x 2), an update of the 500-byte item (2 x 1), a condition check on the
    # 3.5 KB item (2 x 4, as a write of the item as it stands).
    transaction = db.ok("TransactWriteItems", {"TransactItems": [
        {"Put": {"TableName": db.table, "Item": sized("W", "g", 1536)}},
        {"Update": {"TableName": db.table, "Key": at("W", "e"), "UpdateExpression": "SET n = :v",
                    "ExpressionAttributeValues": one}},
        {"ConditionCheck": {"TableName": db.table, "Key": at("W", "f"), "ConditionExpression": "attribute_exists(pk)"}},
    ], "ReturnConsumedCapacity": "INDEXES"})
    fourteen = {"CapacityUnits": 14.0, "WriteCapacityUnits": 14.0}
    assert transaction["ConsumedCapacity"] == [{"TableName": db.table, **fourteen, "Table": fourteen}]
    # Not asked, not answered (moto answered every UpdateItem with a constant).
    assert "ConsumedCapacity" not in db.ok("UpdateItem", {
        "TableName": db.table, "Key": at("W", "e"), "UpdateExpression": "SET n = :v", "ExpressionAttributeValues": one})
    assert "ConsumedCapacity" not in db.ok("TransactWriteItems", {"TransactItems": [
        {"Put": {"TableName": db.table, "Item": at("W", "h")}}]})


def test_failed_conditions_are_charged_as_the_item_stands(emulator):
    """A write whose condition fails costs a write of the item as it stands (at least 1); a
    cancelled transaction costs its items as they stand, at 2 per KB."""
    db = Local(emulator)
    db.ok("PutItem", {"TableName": db.table, "Item": sized("F", "a", 2500)})  # 3 units
    status, answer = db.put(sized("F", "a", 100), ConditionExpression="attribute_not_exists(pk)")  # 3
    assert status == 400 and answer["__type"].endswith("#ConditionalCheckFailedException")
    status, _ = db.call("UpdateItem", {"TableName": db.table, "Key": at("F", "absent"),
                                       "UpdateExpression": "SET n = :v", "ConditionExpression": "attribute_exists(pk)",
                                       "ExpressionAttributeValues": {":v": {"N": "1"}}})  # 1
    assert status == 400
    status, answer = db.call("TransactWriteItems", {"TransactItems": [
        {"Put": {"TableName": db.table, "Item": at("F", "new")}},  # 2 x 1
        {"ConditionCheck": {"TableName": db.table, "Key": at("F", "a"),
                            "ConditionExpression": "attribute_not_exists(pk)"}},
    ]})  # 2 x 3
    assert status == 400 and [r["Code"] for r in answer["CancellationReasons"]] == ["None", "ConditionalCheckFailed"]
    assert db.meter("F")["write_units"] == 3 + 3 + 1 + 2 + 6


def test_meter_reports_units_per_partition_key(emulator):
    db = Local(emulator)
    for sk in ("0", "1", "2"):
        db.put(sized("A", sk, KB))
    db.clock.now = 1000.5  # the same clock second
    db.put(sized("A", "3", KB))
    db.clock.now = 1001.2
    db.put(sized("A", "4", KB))
    db.put(sized("A", "5", 2 * KB))
    db.ok("GetItem", {"TableName": db.table, "Key": at("A", "0"), "ConsistentRead": True})
    db.put(sized("B", "0", KB))

    status, snapshot = db.control("GET", "/_emulator/capacity")
    assert status == 200
    assert (snapshot["throttle"], snapshot["write_units"], snapshot["read_units"], snapshot["throttled"]) == (
        False, 8, 1, 0)
    assert snapshot["keys"] == [
        {"table": db.table, "index": None, "key": {"S": "A"}, "read_units": 1, "write_units": 7,
         "peak_read_units_per_second": 1, "peak_write_units_per_second": 4, "requests": 7, "throttled": 0,
         "peak_item_bytes": 2 * KB, "peak_item_sort_key": "5"},
        {"table": db.table, "index": None, "key": {"S": "B"}, "read_units": 0, "write_units": 1,
         "peak_read_units_per_second": 0, "peak_write_units_per_second": 1, "requests": 1, "throttled": 0,
         "peak_item_bytes": KB, "peak_item_sort_key": "0"},
    ]
    assert db.control("POST", "/_emulator/capacity/reset") == (200, {"ok": True})
    assert db.control("GET", "/_emulator/capacity")[1]["keys"] == []
    assert db.control("GET", "/_emulator/nope")[0] == 404


def test_meter_keeps_the_largest_size_of_each_item_a_request_touched(emulator):
    """Per partition key: the largest item any request on it read or wrote (a write: the
    larger of before and after, so an item that shrinks still shows its size before), and per
    sort key asked for, that item's largest size; a reset forgets them."""
    db = Local(emulator)

    def peaks(pk: str, *sort_keys: str) -> dict:
        query = urllib.parse.urlencode([("sort_key", k) for k in sort_keys])  # "#" would end the path
        status, snapshot = db.control("GET", "/_emulator/capacity" + (f"?{query}" if query else ""))
        assert status == 200
        meter = next(k for k in snapshot["keys"] if k["key"] == {"S": pk})
        return {k: v for k, v in meter.items() if k.startswith("peak_item")}

    db.put(sized("A", "ACCOUNT", 600))
    db.put(sized("A", "ENTRY#1", 900))
    db.ok("UpdateItem", {  # grows the account to 3,000 bytes, then back to 600
        "TableName": db.table, "Key": at("A", "ACCOUNT"), "UpdateExpression": "SET big = :b",
        "ExpressionAttributeValues": {":b": {"S": "y" * (3000 - 600 - 3)}}})
    db.ok("UpdateItem", {"TableName": db.table, "Key": at("A", "ACCOUNT"), "UpdateExpression": "REMOVE big"})
    assert peaks("A", "ACCOUNT", "ENTRY#1", "ENTRY#2") == {
        "peak_item_bytes": 3000, "peak_item_sort_key": "ACCOUNT",
        "peak_item_bytes_by_sort_key": {"ACCOUNT": 3000, "ENTRY#1": 900}}
    assert peaks("A") == {"peak_item_bytes": 3000, "peak_item_sort_key": "ACCOUNT"}

    db.control("POST", "/_emulator/capacity/reset")
    db.ok("GetItem", {"TableName": db.table, "Key": at("A", "ACCOUNT")})  # a read: its size now
    assert peaks("A", "ACCOUNT")["peak_item_bytes_by_sort_key"] == {"ACCOUNT": 600}
    db.control("POST", "/_emulator/capacity/reset")
    db.ok("Query", {"TableName": db.table, "KeyConditionExpression": "pk = :p",
                    "ExpressionAttributeValues": {":p": {"S": "A"}}})  # every item it read
    assert peaks("A", "ACCOUNT", "ENTRY#1")["peak_item_bytes_by_sort_key"] == {"ACCOUNT": 600, "ENTRY#1": 900}
    db.control("POST", "/_emulator/capacity/reset")
    db.ok("TransactWriteItems", {"TransactItems": [
        {"Put": {"TableName": db.table, "Item": sized("A", "ENTRY#2", 1500)}},
        {"Delete": {"TableName": db.table, "Key": at("A", "ENTRY#1")}}]})  # a delete: the item deleted
    assert peaks("A", "ENTRY#1", "ENTRY#2") == {
        "peak_item_bytes": 1500, "peak_item_sort_key": "ENTRY#2",
        "peak_item_bytes_by_sort_key": {"ENTRY#1": 900, "ENTRY#2": 1500}}
    db.control("POST", "/_emulator/capacity/reset")
    db.ok("BatchWriteItem", {"RequestItems": {db.table: [{"PutRequest": {"Item": sized("A", "ENTRY#3", 700)}}]}})
    assert peaks("A") == {"peak_item_bytes": 700, "peak_item_sort_key": "ENTRY#3"}


def test_throttle_1000_one_kb_writes_a_second_on_a_key_then_refuses(emulator):
    """(a) 1,000 writes of 1 KB within one second on one partition key pass and the next is
    refused with DynamoDB's ThrottlingException, not applied and consuming nothing; (b) the
    next key is unaffected."""
    db = Local(emulator, throttle=True)
    for i in range(1000):
        status, answer = db.put(sized("HOT", f"{i:04}", KB))
        assert status == 200, (i, answer)
    status, answer = db.put(sized("HOT", "late", KB))
    assert status == 400
    assert answer["__type"] == "com.amazonaws.dynamodb.v20120810#ThrottlingException"
    assert "TableWriteKeyRangeThroughputExceeded" in answer["message"]
    assert answer["ThrottlingReasons"] == [{"reason": "TableWriteKeyRangeThroughputExceeded", "resource": db.arn}]
    assert "Item" not in db.ok("GetItem", {"TableName": db.table, "Key": at("HOT", "late")})
    hot = db.meter("HOT")
    assert (hot["write_units"], hot["throttled"], hot["peak_write_units_per_second"]) == (1000, 1, 1000)

    status, _ = db.put(sized("COLD", "0", KB))  # (b)
    assert status == 200


def test_throttle_reads_have_their_own_budget_of_3000_units(emulator):
    """(c) With the key's writes spent, it still serves 3,000 read units a second: 300
    strongly consistent reads of a 40 KB item (10 units each), then refuses reads too."""
    db = Local(emulator, throttle=True)
    for i in range(25):  # 25 x 40 units: the key's whole write budget
        assert db.put(sized("HOT", f"big{i}", 40 * KB))[0] == 200
    assert db.put(sized("HOT", "more", KB))[0] == 400
    get = {"TableName": db.table, "Key": at("HOT", "big0"), "ConsistentRead": True}
    for i in range(300):
        status, answer = db.call("GetItem", get)
        assert status == 200 and "Item" in answer, i
    status, answer = db.call("GetItem", get)
    assert status == 400 and answer["__type"].endswith("#ThrottlingException")
    assert answer["ThrottlingReasons"][0]["reason"] == "TableReadKeyRangeThroughputExceeded"
    assert "TableReadKeyRangeThroughputExceeded" in answer["message"]
    hot = db.meter("HOT")
    assert (hot["read_units"], hot["write_units"], hot["throttled"]) == (3000, 1000, 2)


def test_throttle_budget_refills_with_time_up_to_one_second_of_it(emulator):
    """(d) A spent budget comes back at 1,000 units a second (half a second: 500), and an idle
    key saves up no more than one second's worth."""
    db = Local(emulator, throttle=True)
    sks = iter(range(1000))

    def puts(n: int) -> list[int]:  # n writes of 10 KB: 10 units each
        return [db.put(sized("HOT", str(next(sks)), 10 * KB))[0] for _ in range(n)]

    assert puts(101) == [200] * 100 + [400]
    db.clock.now += 0.5
    assert puts(51) == [200] * 50 + [400]
    db.clock.now += 60
    assert puts(101) == [200] * 100 + [400]


def test_throttled_writes_leave_nothing_behind(emulator):
    """A refused update leaves the item as it was; a transaction past a key's budget is
    cancelled (`ThrottlingError` on that item) with nothing applied; a batch returns the items
    past their keys' budgets unprocessed, and is refused whole only if none fits."""
    db = Local(emulator, throttle=True)
    assert db.control("POST", "/_emulator/config", {"write_units_per_second": 3})[1]["write_units_per_second"] == 3
    db.put({**at("HOT", "a"), "n": {"N": "1"}})
    db.put(at("HOT", "b"))  # 1 unit of HOT's 3 left

    status, answer = db.call("UpdateItem", {"TableName": db.table, "Key": at("HOT", "a"),
                                            "UpdateExpression": "SET #pad = :p",
                                            "ExpressionAttributeNames": {"#pad": "pad"},
                                            "ExpressionAttributeValues": {":p": {"S": "x" * 2000}}})  # 2 units
    assert status == 400 and answer["__type"].endswith("#ThrottlingException")
    unchanged = {**at("HOT", "a"), "n": {"N": "1"}}
    assert db.ok("GetItem", {"TableName": db.table, "Key": at("HOT", "a")})["Item"] == unchanged

    status, answer = db.call("TransactWriteItems", {"TransactItems": [
        {"Update": {"TableName": db.table, "Key": at("HOT", "a"), "UpdateExpression": "SET n = :v",
                    "ExpressionAttributeValues": {":v": {"N": "2"}}}},  # 2 x 1
        {"Put": {"TableName": db.table, "Item": at("COLD", "x")}},
    ]})
    assert status == 400 and answer["__type"].endswith("#TransactionCanceledException")
    assert [r["Code"] for r in answer["CancellationReasons"]] == ["ThrottlingError", "None"]
    assert "[ThrottlingError, None]" in answer["Message"]
    assert db.ok("GetItem", {"TableName": db.table, "Key": at("HOT", "a")})["Item"]["n"] == {"N": "1"}
    assert "Item" not in db.ok("GetItem", {"TableName": db.table, "Key": at("COLD", "x")})

    batch = db.ok("BatchWriteItem", {"RequestItems": {db.table: [
        {"PutRequest": {"Item": at("HOT", "c")}}, {"PutRequest": {"Item": at("HOT", "d")}},
        {"PutRequest": {"Item": at("COLD", "y")}},
    ]}})
    assert batch["UnprocessedItems"] == {db.table: [{"PutRequest": {"Item": at("HOT", "d")}}]}
    status, answer = db.call("BatchWriteItem", {"RequestItems": {db.table: [{"PutRequest": {"Item": at("HOT", "e")}}]}})
    assert status == 400 and answer["__type"].endswith("#ThrottlingException")
    stored = db.ok("Scan", {"TableName": db.table, "ConsistentRead": True})["Items"]
    assert sorted((i["pk"]["S"], i["sk"]["S"]) for i in stored) == [
        ("COLD", "y"), ("HOT", "a"), ("HOT", "b"), ("HOT", "c")]
    hot = db.meter("HOT")
    assert (hot["write_units"], hot["throttled"]) == (3, 4)


def control(url: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_throttle_is_off_by_default_and_switched_at_runtime(endpoint, ddb):
    assert control(endpoint, "GET", "/_emulator/config") == (200, {
        "throttle": False, "write_units_per_second": 1000.0, "read_units_per_second": 3000.0, "burst_seconds": 1.0})
    table = new_table(ddb, range_key=False)
    try:
        # Two write units a key, coming back at one per 1,000 s.
        status, config = control(endpoint, "POST", "/_emulator/config",
                                 {"throttle": True, "write_units_per_second": 0.001, "burst_seconds": 2000})
        assert status == 200 and config["throttle"] is True
        once = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="local",
                            aws_secret_access_key="local", config=Config(retries={"total_max_attempts": 1}))
        once.put_item(TableName=table, Item={"pk": {"S": "k"}})
        once.put_item(TableName=table, Item={"pk": {"S": "k"}})
        with pytest.raises(ClientError) as err:
            once.put_item(TableName=table, Item={"pk": {"S": "k"}})
        assert err.value.response["Error"]["Code"] == "ThrottlingException"
        for bad in ({"throttle": "yes"}, {"burst_seconds": 0}, {"bogus": 1}, []):
            assert control(endpoint, "POST", "/_emulator/config", bad)[0] == 400
        assert control(endpoint, "GET", "/_emulator/config")[1] == config  # refused updates change nothing
    finally:
        control(endpoint, "POST", "/_emulator/config",
                {"throttle": False, "write_units_per_second": 1000, "burst_seconds": 1})
    ddb.put_item(TableName=table, Item={"pk": {"S": "k"}})
    keys = [k for k in control(endpoint, "GET", "/_emulator/capacity")[1]["keys"] if k["table"] == table]
    assert [(k["key"], k["write_units"], k["throttled"]) for k in keys] == [({"S": "k"}, 3, 1)]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_throttle_on_from_the_start(how):
    args, env = (["--throttle"], None) if how == "flag" else ([], {**os.environ, "DYNAMODB_THROTTLE": "1"})
    proc, url = spawn(*args, env=env)
    try:
        assert control(url, "GET", "/_emulator/config")[1]["throttle"] is True
    finally:
        assert stop(proc) == 0
