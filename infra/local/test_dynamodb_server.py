"""Checks for infra/local/dynamodb_server.py (run by `make test` via pytest).

Spawns the emulator the way the Rust test harness does
(`--port 0 --exit-on-stdin-eof`, READY line on stdout) and talks to it with boto3.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

SERVER = Path(__file__).with_name("dynamodb_server.py")
TABLE = "credits-test"


def spawn() -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "--port", "0", "--exit-on-stdin-eof"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
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
