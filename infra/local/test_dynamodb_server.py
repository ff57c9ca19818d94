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
def endpoint():
    proc, url = spawn()
    try:
        yield url
    finally:
        if stop(proc) != 0:
            proc.kill()


@pytest.fixture(scope="module")
def ddb(endpoint):
    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 1}, max_pool_connections=32),
    )
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
