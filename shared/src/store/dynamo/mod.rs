//! The DynamoDB implementation of the store traits.

pub mod capacity;
mod entities;
mod errors;
mod expression;
mod idempotency;
mod journal;
mod ledger;
mod payments;
mod tiers;
mod webhooks;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::keys::Key;
use crate::store::{StoreError, StoreResult};

use errors::TxFailure;
pub(crate) use errors::condition_held;

pub use errors::{backoff, classify, retry_read};

type Item = HashMap<String, AttributeValue>;

pub struct DynamoStore {
    client: Client,
    table: String,
}

/// How long start-up may spend opening the first connection.
const WARM_UP_BUDGET: Duration = Duration::from_secs(1);

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    /// Opens the connection (TCP + TLS) during init, so the first request does not pay for it.
    pub async fn warm_up(&self) {
        let probe = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Key { pk: "WARMUP".into(), sk: "WARMUP".into() }.to_item()));
        let _ = tokio::time::timeout(WARM_UP_BUDGET, probe.send()).await;
    }

    async fn get(&self, key: Key) -> StoreResult<Option<Item>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key.to_item()))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(output.item)
    }

    /// Runs a transaction; `idem_index` is the position of the idempotency record, if any.
    async fn transact(&self, items: Vec<TransactWriteItem>, idem_index: Option<usize>) -> StoreResult<()> {
        self.transact_raw(items, idem_index).await.map_err(|f| f.into_store_error(idem_index))
    }

    /// Runs a transaction, retrying conflicts and unavailability within the budget.
    async fn transact_raw(&self, items: Vec<TransactWriteItem>, idem_index: Option<usize>) -> Result<(), TxFailure> {
        errors::retry_unavailable(|| async {
            self.client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await
                .map(|_| ())
                .map_err(|err| errors::classify_transaction(err, idem_index))
        })
        .await
    }
}

/// A domain value as an item at `key`, tagged with its kind.
fn to_item(value: &impl Serialize, key: &Key, kind: &str) -> StoreResult<Item> {
    let mut item: Item = serde_dynamo::to_item(value).map_err(|e| StoreError::Internal(e.to_string()))?;
    item.extend(key.to_item());
    item.insert("kind".into(), AttributeValue::S(kind.into()));
    Ok(item)
}

fn from_item<T: DeserializeOwned>(item: Item) -> StoreResult<T> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Internal(format!("corrupt item: {e}")))
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}
