#!/usr/bin/env python3
"""The local stand-in for Lambda's DynamoDB Streams event source mapping and the retry
schedule, for `make dev`: reads the emulator's stream of the table (DescribeTable,
DescribeStream, GetShardIterator, GetRecords) and invokes the events-dispatcher function
through `cargo lambda watch`'s Lambda Invoke API with the batch, exactly as Lambda would
(`{"Records": [...]}`); when the function reports a failed record (`batchItemFailures`), the
next read starts again at that record. Every `--tick-seconds` it invokes the function with a
scheduled event (the one-minute rule in AWS), which delivers retries that came due.

Usage:
    python infra/local/stream_poller.py --dynamodb http://127.0.0.1:8000 --table credits-local \
        --invoke http://127.0.0.1:9000 [--function events-dispatcher] [--tick-seconds 1]

Prints `READY <stream arn>` once it reads the stream, then a line per invocation that failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request

# The first invocation compiles the function (cargo lambda watch builds on demand).
INVOKE_TIMEOUT_SECONDS = 900


def post(url: str, body: dict, headers: dict[str, str], timeout: float) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read().decode() or "null"
    return json.loads(text)


class Stream:
    """The emulator's DynamoDB and DynamoDB Streams APIs, as JSON over HTTP."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def call(self, target: str, body: dict) -> dict:
        headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target}
        return post(self.endpoint, body, headers, timeout=30)

    def arn(self, table: str) -> str | None:
        described = self.call("DynamoDB_20120810.DescribeTable", {"TableName": table})
        return described.get("Table", {}).get("LatestStreamArn")

    def shards(self, arn: str) -> list[str]:
        described = self.call("DynamoDBStreams_20120810.DescribeStream", {"StreamArn": arn})
        return [shard["ShardId"] for shard in described["StreamDescription"]["Shards"]]

    def iterator(self, arn: str, shard: str, kind: str = "TRIM_HORIZON", sequence: str | None = None) -> str:
        body = {"StreamArn": arn, "ShardId": shard, "ShardIteratorType": kind}
        if sequence:
            body["SequenceNumber"] = sequence
        return self.call("DynamoDBStreams_20120810.GetShardIterator", body)["ShardIterator"]

    def records(self, iterator: str) -> tuple[list[dict], str]:
        output = self.call("DynamoDBStreams_20120810.GetRecords", {"ShardIterator": iterator, "Limit": 100})
        return output.get("Records", []), output.get("NextShardIterator") or iterator


def invoke(url: str, payload: dict) -> dict | None:
    try:
        return post(url, payload, {"Content-Type": "application/json"}, timeout=INVOKE_TIMEOUT_SECONDS)
    except (urllib.error.URLError, TimeoutError, ValueError) as err:
        print(f"stream-poller: invocation failed: {err}", flush=True)
        return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dynamodb", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--invoke", required=True, help="cargo lambda watch's address, e.g. http://127.0.0.1:9000")
    parser.add_argument("--function", default="events-dispatcher")
    parser.add_argument("--tick-seconds", type=float, default=1.0)
    parser.add_argument("--poll-seconds", type=float, default=0.2)
    args = parser.parse_args()
    url = f"{args.invoke}/2015-03-31/functions/{args.function}/invocations"
    stream = Stream(args.dynamodb)

    arn = None
    while arn is None:
        arn = stream.arn(args.table)
        if arn is None:
            time.sleep(args.poll_seconds)
    iterators = {shard: stream.iterator(arn, shard) for shard in stream.shards(arn)}
    print(f"READY {arn}", flush=True)

    next_tick = time.monotonic()
    while True:
        for shard, iterator in list(iterators.items()):
            records, following = stream.records(iterator)
            if not records:
                iterators[shard] = following
                continue
            for record in records:
                record["eventSourceARN"] = arn
            answer = invoke(url, {"Records": records})
            if answer is None:
                continue  # the same records again next time, as Lambda retries a failed batch
            failures = (answer or {}).get("batchItemFailures") or []
            if failures:
                sequence = failures[0]["itemIdentifier"]
                iterators[shard] = stream.iterator(arn, shard, "AT_SEQUENCE_NUMBER", sequence)
            else:
                iterators[shard] = following
        for shard in stream.shards(arn):
            iterators.setdefault(shard, stream.iterator(arn, shard))
        if time.monotonic() >= next_tick:
            invoke(url, {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})
            next_tick = time.monotonic() + args.tick_seconds
        time.sleep(args.poll_seconds)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
