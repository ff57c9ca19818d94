//! Idempotency records: written inside the guarded transaction, read before business rules.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};

use super::{DynamoStore, Item, n, s};
use crate::store::keys::{self, TTL};
use crate::store::{IdempotencyStore, StoreError, StoreResult};
use crate::store::{RETENTION_MILLIS, StoredOutcome};

/// The record as a transaction action: it must be new (or expired).
pub fn put(record: &StoredOutcome, table: &str) -> StoreResult<TransactWriteItem> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item(record)))
        .condition_expression("attribute_not_exists(pk) OR expiresAt < :now")
        .expression_attribute_values(":now", n(record.expires_at - RETENTION_MILLIS))
        .return_values_on_condition_check_failure(aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .map_err(|e| StoreError::Internal(e.to_string()))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// The record as a transaction action that writes it whatever is there: a journal record
/// moved out again writes the same record.
pub fn overwrite(record: &StoredOutcome, table: &str) -> StoreResult<TransactWriteItem> {
    let put = Put::builder().table_name(table).set_item(Some(item(record))).build();
    Ok(TransactWriteItem::builder().put(put.map_err(|e| StoreError::Internal(e.to_string()))?).build())
}

fn item(record: &StoredOutcome) -> Item {
    let key = keys::idempotency(&record.entity_id, &record.key);
    let mut item = key.to_item();
    item.extend([
        ("kind".to_owned(), s("idempotency")),
        ("entityId".to_owned(), s(&record.entity_id)),
        ("key".to_owned(), s(&record.key)),
        ("fingerprint".to_owned(), s(&record.fingerprint)),
        ("body".to_owned(), s(&record.outcome)),
        // Read only by versions that stored wire responses, so a rollback can still read
        // the records kept forever (a payment credit's outcome has the shape they expect).
        ("status".to_owned(), n(LEGACY_STATUS)),
        ("expiresAt".to_owned(), n(record.expires_at)),
        ("attempt".to_owned(), s(&record.attempt)),
        (TTL.to_owned(), n(record.expires_at / 1000)),
    ]);
    item
}

pub fn from_item(item: Item) -> StoreResult<StoredOutcome> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let number = |name: &str| item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok());
    let corrupt = || StoreError::Internal("corrupt idempotency record".into());
    Ok(StoredOutcome {
        entity_id: text("entityId").ok_or_else(corrupt)?,
        key: text("key").ok_or_else(corrupt)?,
        fingerprint: text("fingerprint").ok_or_else(corrupt)?,
        outcome: text("body").map(legacy_outcome).ok_or_else(corrupt)?,
        expires_at: number("expiresAt").ok_or_else(corrupt)?,
        attempt: text("attempt").unwrap_or_default(),
    })
}

/// What versions that stored wire responses find in `status`.
const LEGACY_STATUS: i64 = 200;

/// The outcome in a record's `body`. One written before outcomes were stored typed holds the
/// native wire response: its envelope's `data` is the outcome as far as the outcome types
/// share the wire's shape (a payment credit's body is its outcome already).
fn legacy_outcome(body: String) -> String {
    match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Object(mut envelope)) if envelope.contains_key("success") => {
            envelope.remove("data").unwrap_or_default().to_string()
        }
        _ => body,
    }
}

#[async_trait]
impl IdempotencyStore for DynamoStore {
    async fn get_response(&self, entity_id: &str, key: &str) -> StoreResult<Option<StoredOutcome>> {
        self.get(keys::idempotency(entity_id, key)).await?.map(from_item).transpose()
    }

    async fn put_response(&self, record: &StoredOutcome) -> StoreResult<()> {
        self.transact(vec![put(record, &self.table)?], Some(0)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_from_before_typed_outcomes_read_as_their_data() {
        let enveloped = r#"{"success":true,"data":{"entryId":"x","account":{}}}"#.to_owned();
        assert_eq!(legacy_outcome(enveloped), r#"{"account":{},"entryId":"x"}"#);
        let payment_credit = r#"{"entryId":"x"}"#.to_owned();
        assert_eq!(legacy_outcome(payment_credit.clone()), payment_credit);
    }
}
