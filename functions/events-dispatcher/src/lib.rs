//! The events dispatcher (§9), one Lambda with two triggers: the table's DynamoDB Stream
//! (event source mapping: batches of records, partial failures reported per record) and a
//! scheduled rule (the retry tick). Locally, `make dev` and the tests feed it the emulator's
//! stream the same way.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::dynamodb::{Event as StreamEvent, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde_json::{Value, json};

use shared::clock::SystemClock;
use shared::config::WebhookConfig;
use shared::domain::events::Change;
use shared::lambda::BoxError;
use shared::store::dynamo::DynamoStore;
use shared::store::stream::{StreamRecord, decode};
use shared::usecases::events::{Budget, Dispatcher};
use shared::{Error, Fallible};

/// The production wiring: `TABLE_NAME`, `WEBHOOK_RETRY_BASE_SECONDS`, `ALLOW_LOCAL_WEBHOOKS`.
pub async fn from_env() -> Result<Dispatcher, BoxError> {
    let lookup = |name: &str| std::env::var(name).ok();
    let table = lookup("TABLE_NAME")
        .filter(|t| !t.trim().is_empty())
        .ok_or("missing required environment variable TABLE_NAME")?;
    let config = WebhookConfig::from_lookup(lookup)?;
    let store = DynamoStore::new(shared::clients::dynamodb().await, table);
    store.warm_up().await;
    Ok(Dispatcher {
        store: Arc::new(store),
        clock: Arc::new(SystemClock),
        sender: Arc::new(shared::clients::webhook_sender(&config)),
        retry_base_millis: config.retry_base_millis,
        lease_millis: shared::usecases::events::LEASE_MILLIS,
        attempt_timeout: shared::clients::WEBHOOK_TIMEOUT,
    })
}

/// The function's `Timeout` (`infra/template.yaml`).
pub const FUNCTION_TIMEOUT: Duration = Duration::from_secs(60);

/// The time an invocation has left, from Lambda's deadline. A deadline already past is no
/// real one (`cargo lambda watch` sends a fixed 600 000 ms since the epoch): the function's
/// timeout stands in for it.
pub fn budget(deadline: SystemTime) -> Budget {
    Budget::of(deadline.duration_since(SystemTime::now()).unwrap_or(FUNCTION_TIMEOUT))
}

/// One invocation within `budget`: a stream batch (answered with the records to hand back),
/// or anything else (the scheduled rule's event) as a retry tick.
pub async fn handle(dispatcher: &Dispatcher, payload: Value, budget: Budget) -> Fallible<Value> {
    if payload.get("Records").is_none() {
        dispatcher.tick(budget).await?;
        return Ok(json!({"ticked": true}));
    }
    let batch: StreamEvent = serde_json::from_value(payload).map_err(Error::internal)?;
    let response = ingest(dispatcher, &batch.records, budget).await;
    serde_json::to_value(response).map_err(Error::internal)
}

/// Queues the batch's events in order. A record that fails (and every later one: an account's
/// events must not overtake) is reported, so the event source mapping retries from it.
async fn ingest(dispatcher: &Dispatcher, records: &[EventRecord], budget: Budget) -> DynamoDbEventResponse {
    let mut changes: Vec<(usize, Change)> = Vec::new();
    let mut first_failed = None;
    for (index, record) in records.iter().enumerate() {
        match decode(&stream_record(record)) {
            Ok(Some(change)) => changes.push((index, change)),
            Ok(None) => {}
            Err(err) => {
                tracing::error!(error = %err, event_id = %record.event_id, "undecodable stream record");
                first_failed = Some(index);
                break;
            }
        }
    }
    let only: Vec<Change> = changes.iter().map(|(_, change)| change.clone()).collect();
    if let Err((failed, err)) = dispatcher.ingest(&only, budget).await {
        tracing::warn!(error = %err, "stream record not queued; handed back");
        first_failed = Some(changes[failed].0);
    }
    let mut response = DynamoDbEventResponse::default();
    if let Some(index) = first_failed {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = records[index].change.sequence_number.clone();
        response.batch_item_failures.push(failure);
    }
    response
}

fn stream_record(record: &EventRecord) -> StreamRecord<'_> {
    StreamRecord {
        event_name: &record.event_name,
        new_image: &record.change.new_image,
        old_image: &record.change.old_image,
        at: record.change.approximate_creation_date_time.timestamp_millis(),
    }
}
