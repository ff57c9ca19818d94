//! Events (§9) under test: the dispatcher's own Lambda handler fed from the emulator's real
//! DynamoDB Stream, the way the event source mapping feeds it in AWS (batches of records,
//! retried from the first record it reports failed), plus the scheduled tick; and a
//! receiver that verifies every delivery with the Standard Webhooks reference library.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinHandle;

use shared::clock::{SharedClock, SystemClock};
use shared::store::dynamo::DynamoStore;
use shared::usecases::events::{Budget, Dispatcher};
use shared::webhooks::HttpSender;

use crate::emulator::{self, Server};
use crate::recorder::Recorder;
use crate::{TestApp, recorder};

/// How long an endpoint has to answer in tests (the receiver's slow answers take longer);
/// generous, so a loaded machine does not turn a normal answer into a time-out.
pub const TEST_DELIVERY_TIMEOUT: Duration = Duration::from_secs(2);
/// `WEBHOOK_RETRY_BASE_SECONDS` in tests: retries after 30 ms, 120 ms, 480 ms, 1.9 s, …
pub const TEST_RETRY_BASE_MILLIS: u64 = 30;
/// A crashed drain's lease lapses after this (one attempt's time-out and its writes).
pub const TEST_LEASE_MILLIS: i64 = 4_000;
/// An invocation's time unless a test gives it less: the function's timeout.
pub const TEST_INVOCATION_BUDGET: Duration = events_dispatcher::FUNCTION_TIMEOUT;

/// The DynamoDB Streams API of the emulator, spoken as JSON over HTTP (as the SDK would).
struct StreamsApi {
    endpoint: String,
}

impl StreamsApi {
    async fn call(&self, action: &str, body: Value) -> Value {
        let endpoint = self.endpoint.clone();
        let target = format!("DynamoDBStreams_20120810.{action}");
        let (status, text) = tokio::task::spawn_blocking(move || {
            emulator::call(
                &endpoint,
                "POST",
                "/",
                &[("Content-Type", "application/x-amz-json-1.0"), ("X-Amz-Target", &target)],
                &body.to_string(),
            )
        })
        .await
        .expect("streams call");
        assert_eq!(status, 200, "{action}: {text}");
        serde_json::from_str(&text).expect("streams JSON")
    }

    async fn shard_iterator(&self, arn: &str, shard: &str, kind: &str, sequence: Option<&str>) -> String {
        let mut body = json!({"StreamArn": arn, "ShardId": shard, "ShardIteratorType": kind});
        if let Some(sequence) = sequence {
            body["SequenceNumber"] = json!(sequence);
        }
        self.call("GetShardIterator", body).await["ShardIterator"].as_str().expect("iterator").to_owned()
    }
}

/// One shard's reader, like the event source mapping's: where it stands in the shard.
struct ShardReader {
    arn: String,
    shard: String,
    iterator: String,
}

/// The dispatcher of one `TestApp`, and what feeds it.
pub struct Events {
    pub dispatcher: Arc<Dispatcher>,
    pub recorder: Recorder,
    api: Arc<StreamsApi>,
    arn: String,
}

impl Events {
    /// A dispatcher over the app's table, with the test time-out and retry base, reaching
    /// loopback receivers (`ALLOW_LOCAL_WEBHOOKS=true`), on the system clock (retries come due
    /// as time passes).
    pub async fn new(app: &TestApp) -> Self {
        Self::with_clock(app, Arc::new(SystemClock)).await
    }

    /// The same on `clock` (e.g. the app's own, to see claims and retries as its writers do).
    pub async fn with_clock(app: &TestApp, clock: SharedClock) -> Self {
        let recorder = Recorder::default();
        let client = aws_sdk_dynamodb::Client::from_conf(
            app.dynamodb.config().to_builder().interceptor(recorder.clone()).build(),
        );
        let dispatcher = Dispatcher {
            store: Arc::new(DynamoStore::new(client, app.table.clone())),
            clock,
            sender: Arc::new(HttpSender::new(TEST_DELIVERY_TIMEOUT, true)),
            retry_base_millis: TEST_RETRY_BASE_MILLIS,
            lease_millis: TEST_LEASE_MILLIS,
            attempt_timeout: TEST_DELIVERY_TIMEOUT,
        };
        let table = app.dynamodb.describe_table().table_name(&app.table).send().await.expect("describe table");
        let arn = table.table().and_then(|t| t.latest_stream_arn()).expect("the table has a stream").to_owned();
        let api = Arc::new(StreamsApi { endpoint: emulator::endpoint().to_owned() });
        Self { dispatcher: Arc::new(dispatcher), recorder, api, arn }
    }

    async fn readers(&self) -> Vec<ShardReader> {
        let described = self.api.call("DescribeStream", json!({"StreamArn": self.arn})).await;
        let shards = described["StreamDescription"]["Shards"].as_array().cloned().unwrap_or_default();
        let mut readers = Vec::new();
        for shard in shards {
            let id = shard["ShardId"].as_str().expect("shard id").to_owned();
            let iterator = self.api.shard_iterator(&self.arn, &id, "TRIM_HORIZON", None).await;
            readers.push(ShardReader { arn: self.arn.clone(), shard: id, iterator });
        }
        readers
    }

    /// Every record the stream holds now, as one batch (for tests that drive batches).
    pub async fn records(&self) -> Vec<Value> {
        let mut all = Vec::new();
        for mut reader in self.readers().await {
            loop {
                let (records, next) = read(&self.api, &reader).await;
                if records.is_empty() {
                    break;
                }
                all.extend(records);
                reader.iterator = next;
            }
        }
        all
    }

    /// Invokes the dispatcher's handler with a stream batch, as Lambda does.
    pub async fn invoke(&self, records: Vec<Value>) -> Value {
        self.invoke_within(records, TEST_INVOCATION_BUDGET).await
    }

    /// The same with `budget` left to the invocation (Lambda's deadline).
    pub async fn invoke_within(&self, records: Vec<Value>, budget: Duration) -> Value {
        let payload = json!({"Records": records});
        events_dispatcher::handle(&self.dispatcher, payload, Budget::of(budget))
            .await
            .expect("dispatcher handled the batch")
    }

    /// Invokes the dispatcher as the scheduled rule does.
    pub async fn tick(&self) {
        let scheduled = json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        events_dispatcher::handle(&self.dispatcher, scheduled, Budget::of(TEST_INVOCATION_BUDGET)).await.expect("tick");
    }

    /// The stream from its start, read as the event source mapping reads it (`pump`).
    pub async fn feed(&self) -> Feed {
        Feed { readers: self.readers().await }
    }

    /// Hands the dispatcher, batch by batch, every record of `feed` it has not taken yet (each
    /// invocation with `budget` left), until none is left or an invocation reports one failed:
    /// the next pump starts again at that record, as Lambda retries. The answers, in order.
    pub async fn pump(&self, feed: &mut Feed, budget: Duration) -> Vec<Value> {
        let mut answers = Vec::new();
        for reader in &mut feed.readers {
            while let Some(answer) = self.poll(reader, budget).await {
                let failed = answer["batchItemFailures"].as_array().is_some_and(|f| !f.is_empty());
                answers.push(answer);
                if failed {
                    break;
                }
            }
        }
        answers
    }

    /// Polls the stream and ticks in the background until dropped, like the event source
    /// mapping plus the scheduled rule.
    pub async fn run(self: &Arc<Self>) -> Running {
        let events = Arc::clone(self);
        let mut readers = self.readers().await;
        let task = tokio::spawn(async move {
            loop {
                for reader in &mut readers {
                    events.poll(reader, TEST_INVOCATION_BUDGET).await;
                }
                events.tick().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Running { task }
    }

    /// One GetRecords on a shard and, if it brought records, one invocation (its answer); a
    /// reported failure makes the next read start again at that record (what Lambda does).
    async fn poll(&self, reader: &mut ShardReader, budget: Duration) -> Option<Value> {
        let (records, next) = read(&self.api, reader).await;
        if records.is_empty() {
            reader.iterator = next;
            return None;
        }
        let response = self.invoke_within(records, budget).await;
        match response["batchItemFailures"].as_array().and_then(|f| f.first()) {
            Some(failed) => {
                let sequence = failed["itemIdentifier"].as_str().expect("sequence number");
                reader.iterator =
                    self.api.shard_iterator(&reader.arn, &reader.shard, "AT_SEQUENCE_NUMBER", Some(sequence)).await;
            }
            None => reader.iterator = next,
        }
        Some(response)
    }

    /// The DynamoDB actions the dispatcher performed must be the ones its crate declares.
    pub fn assert_declared_actions(&self) {
        let declared = recorder::declared_actions("events-dispatcher");
        let mut used = self.recorder.actions();
        used.sort_unstable();
        used.dedup();
        recorder::note_used("events-dispatcher", &used);
        let undeclared: Vec<_> = used.into_iter().filter(|a| !declared.iter().any(|d| d == a)).collect();
        assert!(undeclared.is_empty(), "dispatcher performed undeclared DynamoDB actions: {undeclared:?}");
    }
}

async fn read(api: &StreamsApi, reader: &ShardReader) -> (Vec<Value>, String) {
    let output = api.call("GetRecords", json!({"ShardIterator": reader.iterator, "Limit": 100})).await;
    let mut records = output["Records"].as_array().cloned().unwrap_or_default();
    for record in &mut records {
        record["eventSourceARN"] = json!(reader.arn);
    }
    let next = output["NextShardIterator"].as_str().unwrap_or(&reader.iterator).to_owned();
    (records, next)
}

/// Where the dispatcher stands in each shard of the stream (`Events::pump`).
pub struct Feed {
    readers: Vec<ShardReader>,
}

/// The background feed; stops when dropped.
pub struct Running {
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The receiver (`tests/events/receiver.py`), one per test.
pub struct Receiver {
    server: Server,
}

/// One attempt as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    /// `verified`, `refused`, `slow` or `bad-signature`.
    pub outcome: String,
    pub body: Value,
}

impl Receiver {
    pub fn start() -> Self {
        Self { server: emulator::spawn("tests/events/receiver.py", &[]) }
    }

    pub fn url(&self, hook: &str) -> String {
        format!("{}/hooks/{hook}", self.server.endpoint)
    }

    /// Which secrets verify `hook`'s deliveries, and how many attempts it refuses or answers
    /// too late first.
    pub fn configure(&self, hook: &str, config: Value) {
        emulator::control(&self.server.endpoint, "PUT", &format!("/_control/hooks/{hook}"), &config.to_string());
    }

    pub fn attempts(&self, hook: &str) -> Vec<Received> {
        let text = emulator::control(&self.server.endpoint, "GET", &format!("/_control/hooks/{hook}/attempts"), "");
        let attempts: Vec<Value> = serde_json::from_str(&text).expect("attempts JSON");
        attempts
            .into_iter()
            .map(|a| Received {
                id: a["id"].as_str().unwrap_or_default().to_owned(),
                outcome: a["outcome"].as_str().unwrap_or_default().to_owned(),
                body: serde_json::from_str(a["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null),
            })
            .collect()
    }

    /// Verified deliveries, first arrival of each id only, in arrival order.
    pub fn verified(&self, hook: &str) -> Vec<Received> {
        let mut seen = std::collections::HashSet::new();
        self.attempts(hook).into_iter().filter(|a| a.outcome == "verified" && seen.insert(a.id.clone())).collect()
    }

    /// Waits (polling, with a deadline) until `done` holds for the verified deliveries.
    pub async fn wait_for(&self, hook: &str, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let verified = self.verified(hook);
            if done(&verified) {
                return verified;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; received: {:?}",
                self.attempts(hook).iter().map(|a| (&a.id, &a.outcome)).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// The event types of deliveries, in order.
pub fn types(received: &[Received]) -> Vec<String> {
    received.iter().map(|r| r.body["type"].as_str().unwrap_or_default().to_owned()).collect()
}
