"""Tests for the fault-injecting DynamoDB proxy (`tests/faults/dynamodb_proxy.py`).

Run (needs moto[server,dynamodb], boto3 and pytest in the interpreter):
    python -m pytest tests/faults -q

The emulator (`infra/local/dynamodb_server.py`) and the proxy run as subprocesses
on free ports and exit when their stdin closes. boto3 talks to the proxy; a second
boto3 client talks to the emulator directly to see what really got written.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import botocore.config
import botocore.exceptions
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PROXY = os.path.join(HERE, "dynamodb_proxy.py")
EMULATOR = os.path.join(ROOT, "infra", "local", "dynamodb_server.py")

NS = "com.amazonaws.dynamodb.v20120810#"
ZERO = {
    "conflict_rate": 0,
    "throttle_rate": 0,
    "error_rate": 0,
    "drop_rate": 0,
    "drop_before_rate": 0,
    "latency_ms": 0,
    "op_latency_ms": {},
    "model_conflicts": False,
}
# What a dropped connection looks like to botocore (urllib3 RemoteDisconnected):
# not a ClientError, there is no response at all.
CONNECTION_ERRORS = botocore.exceptions.ConnectionClosedError


# --------------------------------------------------------------------------- processes


def start(args: list[str]) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout=30)
    if not box or not box[0].startswith("READY "):
        proc.kill()
        proc.wait()
        pytest.fail(f"{args[0]} did not print READY (got {box!r})")
    return proc, box[0].split()[1].strip()


def stop(proc: subprocess.Popen) -> int:
    proc.stdin.close()  # --exit-on-stdin-eof
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("process did not exit on stdin EOF")


@pytest.fixture(scope="session")
def emulator_url():
    proc, url = start([EMULATOR, "--port", "0", "--exit-on-stdin-eof"])
    yield url
    assert stop(proc) == 0


@pytest.fixture(scope="session")
def proxy_url(emulator_url):
    proc, url = start([PROXY, "--upstream", emulator_url, "--port", "0", "--seed", "1", "--exit-on-stdin-eof"])
    yield url
    assert stop(proc) == 0


def client(url: str):
    return boto3.client(
        "dynamodb",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        # botocore's `max_attempts` counts *retries* (1 → two attempts);
        # `total_max_attempts: 1` is exactly one attempt, so each call is one request.
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )


@pytest.fixture(scope="session")
def ddb(proxy_url):
    return client(proxy_url)


@pytest.fixture(scope="session")
def direct(emulator_url):
    return client(emulator_url)


def control(url: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def configure(url: str, **rates) -> dict:
    status, cfg = control(url, "POST", "/_proxy/config", {**ZERO, **rates})
    assert status == 200, cfg
    return cfg


def stats(url: str) -> dict:
    status, body = control(url, "GET", "/_proxy/stats")
    assert status == 200
    return body


@pytest.fixture(autouse=True)
def clean_proxy(request):
    if "proxy_url" in request.fixturenames:
        url = request.getfixturevalue("proxy_url")
        configure(url)
        assert control(url, "POST", "/_proxy/reset")[0] == 200
    yield


def create_table(ddb) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


@pytest.fixture
def table(ddb, proxy_url):
    """A fresh table, created through the proxy (control plane: never faulted);
    the counters are zeroed afterwards so tests count only their own requests."""
    name = create_table(ddb)
    assert control(proxy_url, "POST", "/_proxy/reset")[0] == 200
    return name


def key(pk: str) -> dict:
    return {"pk": {"S": pk}}


def raw_call(url: str, target: str, payload: dict) -> tuple[int, str, list[tuple[str, str]], bytes]:
    """One unsigned DynamoDB JSON call (moto does not check signatures)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request(
            "POST",
            "/",
            body=json.dumps(payload),
            headers={"X-Amz-Target": "DynamoDB_20120810." + target, "Content-Type": "application/x-amz-json-1.0"},
        )
        resp = conn.getresponse()
        return resp.status, resp.reason, resp.getheaders(), resp.read()
    finally:
        conn.close()


def error_code(exc: botocore.exceptions.ClientError) -> str:
    return exc.response["Error"]["Code"]


# --------------------------------------------------------------------------- pass-through


def test_pass_through_create_put_get(ddb, direct, proxy_url):
    table = create_table(ddb)
    ddb.put_item(TableName=table, Item={**key("a"), "n": {"N": "5"}})
    got = ddb.get_item(TableName=table, Key=key("a"), ConsistentRead=True)
    assert got["Item"] == {**key("a"), "n": {"N": "5"}}
    # It really is in the emulator.
    assert direct.get_item(TableName=table, Key=key("a"))["Item"]["n"] == {"N": "5"}
    # Conditions failing upstream come back untouched.
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ddb.put_item(TableName=table, Item=key("a"), ConditionExpression="attribute_not_exists(pk)")
    assert error_code(exc.value) == "ConditionalCheckFailedException"

    s = stats(proxy_url)
    assert s["by_target"]["CreateTable"]["forwarded"] == 1
    assert s["by_target"]["PutItem"] == {
        "requests": 2, "forwarded": 2, "conflict": 0, "modeled_conflict": 0, "throttle": 0, "error": 0,
        "drop": 0, "drop_before": 0, "upstream_error": 0,
    }
    assert s["by_target"]["GetItem"]["forwarded"] == 1
    assert s["requests"] == s["forwarded"] == 4
    assert all(s[k] == 0 for k in ("conflict", "throttle", "error", "drop", "drop_before", "upstream_error"))


def test_forwarded_response_is_byte_identical(emulator_url, proxy_url, ddb, table):
    ddb.put_item(TableName=table, Item=key("x"))
    via_proxy = raw_call(proxy_url, "GetItem", {"TableName": table, "Key": key("x")})
    via_direct = raw_call(emulator_url, "GetItem", {"TableName": table, "Key": key("x")})
    assert via_proxy[0] == via_direct[0] == 200
    assert via_proxy[1] == via_direct[1]
    assert via_proxy[3] == via_direct[3]

    def comparable(headers):  # Date and request id differ per call; Connection is per hop
        skip = {"date", "x-amzn-requestid", "connection"}
        return [(k, v) for k, v in headers if k.lower() not in skip]

    assert comparable(via_proxy[2]) == comparable(via_direct[2])
    # Same for an upstream error (ResourceNotFoundException from moto).
    p = raw_call(proxy_url, "GetItem", {"TableName": "no-such-table", "Key": key("x")})
    d = raw_call(emulator_url, "GetItem", {"TableName": "no-such-table", "Key": key("x")})
    assert (p[0], p[3]) == (d[0], d[3]) and p[0] == 400
    assert comparable(p[2]) == comparable(d[2])


def test_control_plane_never_faulted(ddb, proxy_url):
    configure(proxy_url, conflict_rate=1, throttle_rate=1, error_rate=1, drop_rate=1, drop_before_rate=1)
    name = create_table(ddb)
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
    assert ddb.describe_table(TableName=name)["Table"]["TableName"] == name
    assert name in ddb.list_tables()["TableNames"]
    assert ddb.scan(TableName=name)["Count"] == 0
    s = stats(proxy_url)
    assert s["requests"] == s["forwarded"] == 5


# --------------------------------------------------------------------------- injected errors


def test_conflict_on_transact_write(ddb, direct, table, proxy_url):
    configure(proxy_url, conflict_rate=1)
    items = [{"Put": {"TableName": table, "Item": key(f"c{i}")}} for i in range(3)]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ddb.transact_write_items(TransactItems=items)
    resp = exc.value.response
    assert error_code(exc.value) == "TransactionCanceledException"
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert resp["CancellationReasons"] == [
        {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"},
        {"Code": "None"},
        {"Code": "None"},
    ]
    assert resp["Error"]["Message"] == (
        "Transaction cancelled, please refer cancellation reasons for specific reasons "
        "[TransactionConflict, None, None]"
    )
    # Not forwarded: nothing written.
    for i in range(3):
        assert "Item" not in direct.get_item(TableName=table, Key=key(f"c{i}"), ConsistentRead=True)
    # A single-item write meets the conflict as TransactionConflictException; reads never do.
    with pytest.raises(botocore.exceptions.ClientError) as single:
        ddb.put_item(TableName=table, Item=key("p"))
    assert error_code(single.value) == "TransactionConflictException"
    assert "Item" not in direct.get_item(TableName=table, Key=key("p"), ConsistentRead=True)
    ddb.get_item(TableName=table, Key=key("p"))
    ddb.transact_get_items(TransactItems=[{"Get": {"TableName": table, "Key": key("p")}}])
    s = stats(proxy_url)
    assert s["conflict"] == 2
    assert s["by_target"]["TransactWriteItems"]["conflict"] == 1
    assert s["by_target"]["PutItem"]["conflict"] == 1
    assert s["by_target"]["GetItem"]["forwarded"] == 1
    assert s["by_target"]["TransactGetItems"]["forwarded"] == 1


def test_conflict_wire_format(proxy_url, table):
    configure(proxy_url, conflict_rate=1)
    status, reason, headers, body = raw_call(
        proxy_url, "TransactWriteItems", {"TransactItems": [{"Put": {"TableName": table, "Item": key("w")}}]}
    )
    assert (status, reason) == (400, "Bad Request")
    assert json.loads(body) == {
        "__type": NS + "TransactionCanceledException",
        "CancellationReasons": [{"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}],
        "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]",
    }
    check_dynamodb_error_headers(headers, body)


def check_dynamodb_error_headers(headers: list[tuple[str, str]], body: bytes) -> None:
    h = {k.lower(): v for k, v in headers}
    assert h["content-type"] == "application/x-amz-json-1.0"
    assert int(h["content-length"]) == len(body)
    assert len(h["x-amzn-requestid"]) == 52 and h["x-amzn-requestid"].isalnum()
    assert h["x-amz-crc32"] == str(zlib.crc32(body))
    assert "x-amzn-errortype" not in h  # real DynamoDB carries the code in `__type` only


def test_throttle(ddb, direct, table, proxy_url):
    configure(proxy_url, throttle_rate=1)
    for call in (
        lambda: ddb.get_item(TableName=table, Key=key("a")),
        lambda: ddb.put_item(TableName=table, Item=key("a")),
        lambda: ddb.query(TableName=table, KeyConditionExpression="pk = :p",
                          ExpressionAttributeValues={":p": {"S": "a"}}),
        lambda: ddb.transact_write_items(TransactItems=[{"Put": {"TableName": table, "Item": key("a")}}]),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            call()
        assert error_code(exc.value) == "ProvisionedThroughputExceededException"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "Item" not in direct.get_item(TableName=table, Key=key("a"), ConsistentRead=True)
    s = stats(proxy_url)
    assert s["throttle"] == 4 and s["forwarded"] == 0

    status, reason, headers, body = raw_call(proxy_url, "GetItem", {"TableName": table, "Key": key("a")})
    assert (status, reason) == (400, "Bad Request")
    assert json.loads(body) == {
        "__type": NS + "ProvisionedThroughputExceededException",
        "message": "The level of configured provisioned throughput for the table was exceeded. "
        "Consider increasing your provisioning level with the UpdateTable API.",
    }
    check_dynamodb_error_headers(headers, body)


def test_internal_server_error(ddb, direct, table, proxy_url):
    configure(proxy_url, error_rate=1)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ddb.update_item(TableName=table, Key=key("e"), UpdateExpression="SET n = :n",
                        ExpressionAttributeValues={":n": {"N": "1"}})
    assert error_code(exc.value) == "InternalServerError"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert "Item" not in direct.get_item(TableName=table, Key=key("e"), ConsistentRead=True)

    status, reason, headers, body = raw_call(proxy_url, "DeleteItem", {"TableName": table, "Key": key("e")})
    assert (status, reason) == (500, "Internal Server Error")
    assert json.loads(body) == {"__type": NS + "InternalServerError", "message": "Internal server error"}
    check_dynamodb_error_headers(headers, body)
    s = stats(proxy_url)
    assert s["error"] == 2 and s["by_target"]["UpdateItem"]["error"] == 1


# --------------------------------------------------------------------------- dropped connections


def test_drop_after_forwarding_writes_but_client_never_hears(ddb, direct, table, proxy_url):
    configure(proxy_url, drop_rate=1)
    with pytest.raises(CONNECTION_ERRORS):
        ddb.put_item(TableName=table, Item={**key("d"), "v": {"S": "written"}})
    with pytest.raises(CONNECTION_ERRORS):
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": table, "Item": key("t1")}},
            {"Put": {"TableName": table, "Item": key("t2")}},
        ])
    # The proxy closed the connection only after the emulator answered: it is there.
    assert direct.get_item(TableName=table, Key=key("d"), ConsistentRead=True)["Item"]["v"] == {"S": "written"}
    assert "Item" in direct.get_item(TableName=table, Key=key("t1"), ConsistentRead=True)
    assert "Item" in direct.get_item(TableName=table, Key=key("t2"), ConsistentRead=True)
    s = stats(proxy_url)
    assert s["drop"] == 2 and s["forwarded"] == 0
    assert s["by_target"]["PutItem"]["drop"] == 1
    assert s["by_target"]["TransactWriteItems"]["drop"] == 1


def test_drop_next_drops_exactly_the_planned_answers(ddb, direct, table, proxy_url):
    status, pending = control(proxy_url, "POST", "/_proxy/drop-next", {"op": "PutItem", "count": 2})
    assert (status, pending) == (200, {"PutItem": 2})
    ddb.get_item(TableName=table, Key=key("other"))  # another operation: not counted
    for pk in ("n1", "n2"):
        with pytest.raises(CONNECTION_ERRORS):
            ddb.put_item(TableName=table, Item=key(pk))
        assert "Item" in direct.get_item(TableName=table, Key=key(pk), ConsistentRead=True)
    ddb.put_item(TableName=table, Item=key("n3"))  # the third answers again
    s = stats(proxy_url)
    assert (s["by_target"]["PutItem"]["drop"], s["by_target"]["PutItem"]["forwarded"]) == (2, 1)
    for bad in ({"op": "CreateTable"}, {"op": "PutItem", "count": -1}, {"op": "PutItem", "extra": 1}):
        assert control(proxy_url, "POST", "/_proxy/drop-next", bad)[0] == 400


def test_drop_before_forwarding_writes_nothing(ddb, direct, table, proxy_url):
    configure(proxy_url, drop_before_rate=1)
    with pytest.raises(CONNECTION_ERRORS):
        ddb.put_item(TableName=table, Item=key("n"))
    with pytest.raises(CONNECTION_ERRORS):
        ddb.transact_write_items(TransactItems=[{"Put": {"TableName": table, "Item": key("n2")}}])
    assert "Item" not in direct.get_item(TableName=table, Key=key("n"), ConsistentRead=True)
    assert "Item" not in direct.get_item(TableName=table, Key=key("n2"), ConsistentRead=True)
    s = stats(proxy_url)
    assert s["drop_before"] == 2 and s["forwarded"] == 0


def test_dropped_connection_gets_no_bytes(proxy_url, table):
    configure(proxy_url, drop_before_rate=1)
    u = urllib.parse.urlsplit(proxy_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request("POST", "/", body=json.dumps({"TableName": table, "Key": key("z")}),
                 headers={"X-Amz-Target": "DynamoDB_20120810.GetItem"})
    with pytest.raises(http.client.RemoteDisconnected):  # EOF before any status line
        conn.getresponse()
    conn.close()


# --------------------------------------------------------------------------- connections, stats, config


def test_keep_alive_across_forwarded_and_injected(proxy_url, table):
    u = urllib.parse.urlsplit(proxy_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        socks = []
        for rate in (0, 1, 0):
            configure(proxy_url, throttle_rate=rate)
            conn.request("POST", "/", body=json.dumps({"TableName": table, "Key": key("k")}),
                         headers={"X-Amz-Target": "DynamoDB_20120810.GetItem"})
            resp = conn.getresponse()
            assert resp.version == 11
            assert resp.getheader("Content-Length") is not None
            resp.read()
            assert resp.status == (400 if rate else 200)
            assert not resp.will_close
            socks.append(conn.sock)
        assert socks[0] is not None and socks[0] is socks[1] is socks[2]
    finally:
        conn.close()


def test_seeded_sequence_and_counters(ddb, table, proxy_url):
    def run() -> list[str]:
        configure(proxy_url, throttle_rate=0.3, error_rate=0.2)
        assert control(proxy_url, "POST", "/_proxy/config", {"seed": 42})[0] == 200
        out = []
        for _ in range(40):
            try:
                ddb.get_item(TableName=table, Key=key("s"))
                out.append("ok")
            except botocore.exceptions.ClientError as exc:
                out.append(error_code(exc))
        return out

    first = run()
    s = stats(proxy_url)
    assert run() == first  # same seed, same requests: same faults
    assert {"ok", "ProvisionedThroughputExceededException", "InternalServerError"} <= set(first)
    assert s["requests"] == 40
    assert s["forwarded"] == first.count("ok")
    assert s["throttle"] == first.count("ProvisionedThroughputExceededException")
    assert s["error"] == first.count("InternalServerError")
    assert s["by_target"]["GetItem"]["requests"] == 40

    assert control(proxy_url, "POST", "/_proxy/reset")[0] == 200
    zeroed = stats(proxy_url)
    assert zeroed["requests"] == 0 and zeroed["by_target"] == {}
    assert all(zeroed[k] == 0 for k in ("forwarded", "conflict", "throttle", "error", "drop", "drop_before"))


def test_config_endpoint(proxy_url):
    status, cfg = control(proxy_url, "POST", "/_proxy/config", {"throttle_rate": 0.25, "latency-ms": 3})
    assert status == 200 and cfg["throttle_rate"] == 0.25 and cfg["latency_ms"] == 3
    assert control(proxy_url, "GET", "/_proxy/config") == (200, cfg)
    assert control(proxy_url, "POST", "/_proxy/config", {"error_rate": 1.5})[0] == 400
    assert control(proxy_url, "POST", "/_proxy/config", {"bogus": 1})[0] == 400
    assert control(proxy_url, "GET", "/_proxy/config")[1] == cfg  # rejected updates change nothing
    assert control(proxy_url, "GET", "/_proxy/nope")[0] == 404


def test_emulator_routes_and_throttling_pass_through(ddb, direct, table, proxy_url, emulator_url):
    """The emulator's own control routes (`/_emulator/...`) are reached through the proxy, and
    the emulator's per-partition throttling comes back as it answered it (forwarded, not
    counted as an injected throttle)."""
    assert control(proxy_url, "GET", "/_emulator/config") == control(emulator_url, "GET", "/_emulator/config")
    try:
        # Two write units a key, coming back at one per 1,000 s.
        status, cfg = control(proxy_url, "POST", "/_emulator/config",
                              {"throttle": True, "write_units_per_second": 0.001, "burst_seconds": 2000})
        assert status == 200 and cfg["throttle"] is True
        ddb.put_item(TableName=table, Item=key("hot"))
        ddb.put_item(TableName=table, Item=key("hot"))
        status, _, _, body = raw_call(proxy_url, "PutItem", {"TableName": table, "Item": key("hot")})
        assert status == 400 and json.loads(body)["__type"] == NS + "ThrottlingException"
        assert json.loads(body)["ThrottlingReasons"][0]["reason"] == "TableWriteKeyRangeThroughputExceeded"
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            ddb.put_item(TableName=table, Item=key("hot"))
        assert error_code(exc.value) == "ThrottlingException"
    finally:
        control(emulator_url, "POST", "/_emulator/config",
                {"throttle": False, "write_units_per_second": 1000, "burst_seconds": 1})
    s = stats(proxy_url)
    assert s["by_target"]["PutItem"]["forwarded"] == 4 and s["throttle"] == 0
    status, capacity = control(proxy_url, "GET", "/_emulator/capacity")
    assert status == 200
    hot = [k for k in capacity["keys"] if k["table"] == table]
    assert [(k["key"], k["write_units"], k["throttled"]) for k in hot] == [({"S": "hot"}, 2, 2)]


def test_latency_still_answers(ddb, table, proxy_url):
    configure(proxy_url, latency_ms=20)
    ddb.put_item(TableName=table, Item=key("l"))
    assert ddb.get_item(TableName=table, Key=key("l"))["Item"] == key("l")


def test_op_latency_delays_only_the_named_operation(ddb, table, proxy_url):
    status, cfg = control(proxy_url, "POST", "/_proxy/config", {"op_latency_ms": {"UpdateItem": 5}})
    assert status == 200 and cfg["op_latency_ms"] == {"UpdateItem": 5.0}
    assert control(proxy_url, "POST", "/_proxy/config", {"op_latency_ms": {"UpdateItem": -1}})[0] == 400
    assert control(proxy_url, "POST", "/_proxy/config", {"op_latency_ms": 5})[0] == 400
    ddb.put_item(TableName=table, Item=key("o"))
    assert ddb.get_item(TableName=table, Key=key("o"))["Item"] == key("o")
    assert control(proxy_url, "POST", "/_proxy/config", {"op_latency_ms": {}})[1]["op_latency_ms"] == {}


def test_cli_rates_and_validation(emulator_url, table):
    proc, url = start([PROXY, "--upstream", emulator_url, "--port", "0", "--exit-on-stdin-eof",
                       "--throttle-rate", "1", "--latency-ms", "5", "--seed", "7"])
    try:
        assert control(url, "GET", "/_proxy/config")[1] == {
            **ZERO, "throttle_rate": 1.0, "latency_ms": 5.0, "model_conflicts": True}
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            client(url).get_item(TableName=table, Key=key("a"))
        assert error_code(exc.value) == "ProvisionedThroughputExceededException"
    finally:
        assert stop(proc) == 0
    bad = subprocess.run([sys.executable, PROXY, "--upstream", emulator_url, "--conflict-rate", "2"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "--conflict-rate" in bad.stderr


def test_concurrent_clients_counters_add_up(ddb, direct, table, proxy_url):
    """Many clients at once, every fault at once: each request lands in exactly one
    counter, and every UpdateItem that reached the emulator (forwarded or dropped
    after forwarding) incremented the counter item exactly once."""
    configure(proxy_url, conflict_rate=0.1, throttle_rate=0.1, error_rate=0.1, drop_rate=0.1,
              drop_before_rate=0.1, latency_ms=2)
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def worker(i: int) -> None:
        c = client(proxy_url)
        for j in range(20):
            try:
                if j % 2:
                    c.transact_write_items(TransactItems=[
                        {"Put": {"TableName": table, "Item": key(f"{i}-{j}-a")}},
                        {"Put": {"TableName": table, "Item": key(f"{i}-{j}-b")}},
                    ])
                else:
                    c.update_item(TableName=table, Key=key("ctr"), UpdateExpression="ADD n :one",
                                  ExpressionAttributeValues={":one": {"N": "1"}})
                outcome = "ok"
            except botocore.exceptions.ClientError as exc:
                outcome = error_code(exc)
            except CONNECTION_ERRORS:
                outcome = "closed"
            with lock:
                seen[outcome] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()

    s = stats(proxy_url)
    assert s["requests"] == sum(seen.values()) == 160
    assert s["forwarded"] == seen["ok"]
    assert s["conflict"] == seen["TransactionCanceledException"] + seen["TransactionConflictException"]
    assert s["throttle"] == seen["ProvisionedThroughputExceededException"]
    assert s["error"] == seen["InternalServerError"]
    assert s["drop"] + s["drop_before"] == seen["closed"]
    assert s["upstream_error"] == 0
    upd = s["by_target"]["UpdateItem"]
    reached = upd["forwarded"] + upd["drop"]
    item = direct.get_item(TableName=table, Key=key("ctr"), ConsistentRead=True).get("Item")
    assert (int(item["n"]["N"]) if item else 0) == reached


# --------------------------------------------------------------------------- request forwarding, exactly


class _Capture(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    seen: list[tuple[str, str, list[tuple[str, str]], bytes]] = []

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        self.seen.append((self.command, self.path, list(self.headers.items()), body))
        reply = b'{"echo":true}'
        self.send_response_only(418, "I'm a teapot")
        self.send_header("X-Custom", "one")
        self.send_header("X-Custom", "two")
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(reply)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


def test_request_forwarded_exactly_minus_hop_by_hop():
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    proc, url = start([PROXY, "--upstream", f"http://127.0.0.1:{upstream.server_port}", "--port", "0",
                       "--exit-on-stdin-eof"])
    try:
        u = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        body = b'{"TableName":"x"}'
        conn.putrequest("POST", "/some/path?a=1&b=%20", skip_host=True, skip_accept_encoding=True)
        sent = [
            ("Host", "dynamodb.us-east-1.amazonaws.com"),
            ("X-Amz-Target", "DynamoDB_20120810.DescribeTable"),
            ("Authorization", "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/dynamodb/aws4_request"),
            ("X-Dup", "1"),
            ("X-Dup", "2"),
            ("Keep-Alive", "timeout=5"),
            ("Content-Length", str(len(body))),
        ]
        for k, v in sent:
            conn.putheader(k, v)
        conn.endheaders(body)
        resp = conn.getresponse()
        assert (resp.status, resp.reason) == (418, "I'm a teapot")
        assert resp.getheaders()[:3] == [
            ("X-Custom", "one"), ("X-Custom", "two"), ("Content-Type", "application/x-amz-json-1.0"),
        ]
        assert resp.read() == b'{"echo":true}'
        assert not resp.will_close  # the upstream's `Connection: close` is hop-by-hop

        # Chunked request body on the same connection: de-chunked, sent with Content-Length.
        conn.putrequest("POST", "/", skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", "h")
        conn.putheader("X-Amz-Target", "DynamoDB_20120810.ListTables")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        conn.send(b"3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n")
        resp = conn.getresponse()
        assert resp.status == 418
        resp.read()
        conn.close()
    finally:
        assert stop(proc) == 0
        upstream.shutdown()
        upstream.server_close()

    (m1, p1, h1, b1), (m2, p2, h2, b2) = _Capture.seen
    assert (m1, p1, b1) == ("POST", "/some/path?a=1&b=%20", body)
    assert h1 == [kv for kv in sent if kv[0] != "Keep-Alive"]
    assert (m2, p2, b2) == ("POST", "/", b'{"a":1}')
    assert h2 == [("Host", "h"), ("X-Amz-Target", "DynamoDB_20120810.ListTables"), ("Content-Length", "7")]


# --------------------------------------------------------------------------- modeled conflicts
# A gate between the proxy and the emulator holds one chosen request until the test
# releases it: that request stays in flight at the proxy exactly as long as the test needs,
# so overlaps are deterministic (events, no sleeps).


class Gate:
    """Threaded forwarder to the emulator that holds the next request for one operation
    (see `arm`) until `release` is set."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.lock = threading.Lock()
        self.hold_op: str | None = None
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), type("Bound", (_GateHandler,), {"gate": self}))
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def arm(self, op: str) -> None:
        with self.lock:
            self.hold_op = op
        self.arrived.clear()
        self.release.clear()

    def should_hold(self, op: str) -> bool:
        with self.lock:
            if op != self.hold_op:
                return False
            self.hold_op = None
            return True

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class _GateHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    gate: Gate

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        op = (self.headers.get("X-Amz-Target") or "").removeprefix("DynamoDB_20120810.")
        if self.gate.should_hold(op):
            self.gate.arrived.set()
            self.gate.release.wait(timeout=60)
        up = self.gate.upstream
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
        skip = {"host", "content-length", "connection"}
        conn.request("POST", self.path, body=body,
                     headers={k: v for k, v in self.headers.items() if k.lower() not in skip})
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in skip:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def gate(emulator_url):
    g = Gate(emulator_url)
    yield g
    g.close()


@pytest.fixture(scope="session")
def model_proxy_url(gate):
    proc, url = start([PROXY, "--upstream", gate.url, "--port", "0", "--exit-on-stdin-eof", "--model-conflicts"])
    yield url
    assert stop(proc) == 0


@pytest.fixture
def modeled(model_proxy_url, gate, direct):
    """(proxy client, table) with conflicts modeled, counters zeroed, the gate idle; after
    the test, the gate is released and no item may still be held."""
    configure(model_proxy_url, model_conflicts=True)
    table = create_table(direct)
    direct.put_item(TableName=table, Item={**key("acct"), "balance": {"N": "10"}})
    assert control(model_proxy_url, "POST", "/_proxy/reset")[0] == 200
    gate.arm("(nothing)")
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield client(model_proxy_url), table, pool
        gate.release.set()
    assert stats(model_proxy_url)["held_items"] == 0


def debit(table: str, amount: int) -> dict:
    return {"Update": {"TableName": table, "Key": key("acct"), "UpdateExpression": "ADD balance :d",
                       "ExpressionAttributeValues": {":d": {"N": str(-amount)}}}}


def put(table: str, pk: str) -> dict:
    return {"Put": {"TableName": table, "Item": key(pk)}}


def hold_next(gate: Gate, pool: ThreadPoolExecutor, op: str, call):
    """Runs `call` in the background and returns once its `op` request is held at the gate
    (in flight at the proxy)."""
    gate.arm(op)
    pending = pool.submit(call)
    assert gate.arrived.wait(timeout=30), f"{op} never reached the emulator"
    return pending


def exists(direct, table: str, pk: str) -> bool:
    return "Item" in direct.get_item(TableName=table, Key=key(pk), ConsistentRead=True)


def balance(direct, table: str) -> str:
    return direct.get_item(TableName=table, Key=key("acct"), ConsistentRead=True)["Item"]["balance"]["N"]


def test_modeled_two_transactions_on_one_item(modeled, gate, direct, model_proxy_url):
    ddb, table, pool = modeled
    first = hold_next(gate, pool, "TransactWriteItems",
                      lambda: ddb.transact_write_items(TransactItems=[debit(table, 1), put(table, "l1")]))

    status, reason, headers, body = raw_call(
        model_proxy_url, "TransactWriteItems", {"TransactItems": [put(table, "l2"), debit(table, 2)]})

    assert (status, reason) == (400, "Bad Request")
    assert json.loads(body) == {
        "__type": NS + "TransactionCanceledException",
        "CancellationReasons": [{"Code": "None"},
                                {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}],
        "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons "
                   "[None, TransactionConflict]",
    }
    check_dynamodb_error_headers(headers, body)
    gate.release.set()
    first.result(timeout=30)
    assert balance(direct, table) == "9" and exists(direct, table, "l1") and not exists(direct, table, "l2")
    s = stats(model_proxy_url)
    assert s["modeled_conflict"] == 1 and s["by_target"]["TransactWriteItems"]["forwarded"] == 1
    # The holds went with the first transaction: the same write now goes through.
    ddb.transact_write_items(TransactItems=[put(table, "l2"), debit(table, 2)])
    assert balance(direct, table) == "7"


def test_modeled_single_writes_during_transaction_conflict(modeled, gate, direct, model_proxy_url):
    ddb, table, pool = modeled
    tx = hold_next(gate, pool, "TransactWriteItems",
                   lambda: ddb.transact_write_items(TransactItems=[debit(table, 1), put(table, "l1")]))

    writes = [
        lambda: ddb.update_item(TableName=table, Key=key("acct"), UpdateExpression="ADD balance :d",
                                ExpressionAttributeValues={":d": {"N": "-5"}}),
        lambda: ddb.put_item(TableName=table, Item={**key("l1"), "other": {"S": "x"}}),
        lambda: ddb.delete_item(TableName=table, Key=key("acct")),
    ]
    for write in writes:
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            write()
        assert error_code(exc.value) == "TransactionConflictException"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    status, _, headers, body = raw_call(model_proxy_url, "UpdateItem", {
        "TableName": table, "Key": key("acct"), "UpdateExpression": "SET x = :x",
        "ExpressionAttributeValues": {":x": {"N": "1"}}})
    assert status == 400
    assert json.loads(body) == {"__type": NS + "TransactionConflictException",
                                "message": "Transaction is ongoing for the item"}
    check_dynamodb_error_headers(headers, body)
    ddb.put_item(TableName=table, Item=key("unrelated"))  # other items are not held

    gate.release.set()
    tx.result(timeout=30)
    assert balance(direct, table) == "9"
    assert direct.get_item(TableName=table, Key=key("l1"), ConsistentRead=True)["Item"] == key("l1")
    assert stats(model_proxy_url)["by_target"]["UpdateItem"]["modeled_conflict"] == 2


def test_modeled_transaction_during_single_write_is_not_cancelled(modeled, gate, direct, model_proxy_url):
    """A TransactWriteItems conflicts with other transactions only (API reference,
    TransactionCanceledException): a single-item write in flight on one of its items does
    not cancel it; DynamoDB serializes the two, and so does the emulator."""
    ddb, table, pool = modeled
    update = hold_next(gate, pool, "UpdateItem", lambda: ddb.update_item(
        TableName=table, Key=key("acct"), UpdateExpression="ADD balance :d",
        ExpressionAttributeValues={":d": {"N": "-1"}}))

    ddb.transact_write_items(TransactItems=[put(table, "t1"), debit(table, 2), put(table, "t2")])

    gate.release.set()
    update.result(timeout=30)
    assert balance(direct, table) == "7"
    assert exists(direct, table, "t1") and exists(direct, table, "t2")
    s = stats(model_proxy_url)
    assert s["modeled_conflict"] == 0 and s["by_target"]["TransactWriteItems"]["forwarded"] == 1


def test_modeled_single_write_during_transaction_that_followed_a_write(modeled, gate, direct, model_proxy_url):
    """The transaction forwarded past an in-flight single write holds its items in turn:
    a single write arriving while it is in flight conflicts."""
    ddb, table, pool = modeled
    with ThreadPoolExecutor(max_workers=1) as second:
        update = hold_next(gate, pool, "UpdateItem", lambda: ddb.update_item(
            TableName=table, Key=key("acct"), UpdateExpression="ADD balance :d",
            ExpressionAttributeValues={":d": {"N": "-1"}}))
        tx = hold_next(gate, second, "TransactWriteItems",
                       lambda: ddb.transact_write_items(TransactItems=[debit(table, 2)]))
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            ddb.update_item(TableName=table, Key=key("acct"), UpdateExpression="ADD balance :d",
                            ExpressionAttributeValues={":d": {"N": "-4"}})
        assert error_code(exc.value) == "TransactionConflictException"
        gate.release.set()
        update.result(timeout=30)
        tx.result(timeout=30)
    assert balance(direct, table) == "7"


def test_modeled_transact_get_during_any_write_is_cancelled(modeled, gate, direct, model_proxy_url):
    """A TransactGetItems conflicts with an ongoing PutItem/UpdateItem/DeleteItem (and
    TransactWriteItems) on one of its items; it holds nothing itself."""
    ddb, table, pool = modeled
    direct.put_item(TableName=table, Item=key("other"))
    update = hold_next(gate, pool, "UpdateItem", lambda: ddb.update_item(
        TableName=table, Key=key("acct"), UpdateExpression="ADD balance :d",
        ExpressionAttributeValues={":d": {"N": "-1"}}))
    gets = [{"Get": {"TableName": table, "Key": key("other")}}, {"Get": {"TableName": table, "Key": key("acct")}}]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ddb.transact_get_items(TransactItems=gets)
    assert error_code(exc.value) == "TransactionCanceledException"
    assert [r["Code"] for r in exc.value.response["CancellationReasons"]] == ["None", "TransactionConflict"]
    # A get of items no write holds goes through; a single write is not blocked by reads.
    assert ddb.transact_get_items(TransactItems=gets[:1])["Responses"][0]["Item"] == key("other")
    gate.release.set()
    update.result(timeout=30)
    assert ddb.transact_get_items(TransactItems=gets)["Responses"][1]["Item"]["balance"] == {"N": "9"}
    assert stats(model_proxy_url)["by_target"]["TransactGetItems"]["modeled_conflict"] == 1


def test_modeled_batch_write_holds_its_items_for_reads(modeled, gate, direct, model_proxy_url):
    ddb, table, pool = modeled
    batch = hold_next(gate, pool, "BatchWriteItem", lambda: ddb.batch_write_item(RequestItems={
        table: [{"PutRequest": {"Item": key("b1")}}, {"DeleteRequest": {"Key": key("acct")}}]}))
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ddb.transact_get_items(TransactItems=[{"Get": {"TableName": table, "Key": key("b1")}}])
    assert error_code(exc.value) == "TransactionCanceledException"
    ddb.update_item(TableName=table, Key=key("b1"), UpdateExpression="SET x = :x",
                    ExpressionAttributeValues={":x": {"N": "1"}})  # single writes queue
    gate.release.set()
    batch.result(timeout=30)
    assert exists(direct, table, "b1") and not exists(direct, table, "acct")


def test_modeled_single_writes_on_one_item_queue(modeled, gate, direct, model_proxy_url):
    ddb, table, pool = modeled

    def add_one():
        ddb.update_item(TableName=table, Key=key("acct"), UpdateExpression="ADD balance :one",
                        ExpressionAttributeValues={":one": {"N": "1"}})

    first = hold_next(gate, pool, "UpdateItem", add_one)
    for _ in range(3):
        add_one()  # forwarded while the first is in flight
    gate.release.set()
    first.result(timeout=30)
    assert balance(direct, table) == "14"
    s = stats(model_proxy_url)
    assert s["modeled_conflict"] == 0 and s["by_target"]["UpdateItem"]["forwarded"] == 4


def test_modeled_transactions_on_different_items_do_not_conflict(modeled, gate, direct, model_proxy_url):
    ddb, table, pool = modeled
    first = hold_next(gate, pool, "TransactWriteItems",
                      lambda: ddb.transact_write_items(TransactItems=[put(table, "a"), put(table, "b")]))
    ddb.transact_write_items(TransactItems=[put(table, "c"), debit(table, 1)])
    gate.release.set()
    first.result(timeout=30)
    assert all(exists(direct, table, pk) for pk in ("a", "b", "c"))
    assert stats(model_proxy_url)["modeled_conflict"] == 0


def test_model_conflicts_off_forwards_overlapping_writes(modeled, gate, direct, model_proxy_url):
    ddb, table, pool = modeled
    configure(model_proxy_url, model_conflicts=False)
    first = hold_next(gate, pool, "TransactWriteItems",
                      lambda: ddb.transact_write_items(TransactItems=[debit(table, 1)]))
    ddb.transact_write_items(TransactItems=[debit(table, 2)])
    ddb.update_item(TableName=table, Key=key("acct"), UpdateExpression="ADD balance :d",
                    ExpressionAttributeValues={":d": {"N": "-3"}})
    gate.release.set()
    first.result(timeout=30)
    assert balance(direct, table) == "4"
    assert stats(model_proxy_url)["modeled_conflict"] == 0


def test_model_conflicts_flag_and_config(emulator_url):
    proc, url = start([PROXY, "--upstream", emulator_url, "--port", "0", "--exit-on-stdin-eof", "--model-conflicts"])
    try:
        assert control(url, "GET", "/_proxy/config")[1] == {**ZERO, "model_conflicts": True}
        assert control(url, "POST", "/_proxy/config", {"model_conflicts": 1})[0] == 400
        status, cfg = control(url, "POST", "/_proxy/config", {"model-conflicts": False})
        assert status == 200 and cfg["model_conflicts"] is False
    finally:
        assert stop(proc) == 0


@pytest.mark.parametrize("flags, expected", [([], True), (["--no-model-conflicts"], False)])
def test_model_conflicts_on_by_default(emulator_url, flags, expected):
    proc, url = start([PROXY, "--upstream", emulator_url, "--port", "0", "--exit-on-stdin-eof", *flags])
    try:
        assert control(url, "GET", "/_proxy/config")[1]["model_conflicts"] is expected
    finally:
        assert stop(proc) == 0
