//! Idempotency records: written inside the guarded transaction, read before business rules.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem};

use super::{DynamoStore, Item, n, s};
use crate::store::keys::{self, TTL};
use crate::store::{IdempotencyStore, Reserved, StoreError, StoreResult};
use crate::store::{RETENTION_MILLIS, StoredOutcome};

/// The record as a transaction action: it must be new (or expired).
pub fn put(record: &StoredOutcome, table: &str) -> StoreResult<TransactWriteItem> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item(record)))
        .condition_expression("attribute_not_exists(pk) OR expiresAt < :now")
        .expression_attribute_values(":now", n(record.expires_at - RETENTION_MILLIS))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .map_err(|e| StoreError::Internal(e.to_string()))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// A moved journal record's idempotency record: it replaces only the change's own claim on
/// the key (or the same record, moved again), never another request's.
pub fn moved(record: &StoredOutcome, table: &str) -> StoreResult<Put> {
    Put::builder()
        .table_name(table)
        .set_item(Some(item(record)))
        .condition_expression(
            "attribute_not_exists(pk) OR attempt = :attempt OR (fingerprint = :fingerprint AND pending = :pending)",
        )
        .expression_attribute_values(":attempt", s(&record.attempt))
        .expression_attribute_values(":fingerprint", s(&record.fingerprint))
        .expression_attribute_values(":pending", AttributeValue::Bool(true))
        .build()
        .map_err(|e| StoreError::Internal(e.to_string()))
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
    if record.pending {
        item.insert("pending".to_owned(), AttributeValue::Bool(true));
    }
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
        pending: item.get("pending").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
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

    async fn reserve(&self, record: &StoredOutcome) -> StoreResult<Reserved> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(record)))
            .condition_expression("attribute_not_exists(pk) OR expiresAt < :now")
            .expression_attribute_values(":now", n(record.expires_at - RETENTION_MILLIS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Reserved::New),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => match failed.item() {
                    Some(old) => Ok(Reserved::Existing(Box::new(from_item(old.clone())?))),
                    None => Err(StoreError::Internal("key's record failed its condition but was not returned".into())),
                },
                _ => Err(super::classify(err)),
            },
        }
    }

    /// The claim expires at once (an update, not a delete: the functions that change
    /// credits need no DeleteItem), so the key is free and the TTL removes the item.
    async fn release(&self, entity_id: &str, key: &str, attempt: &str) -> StoreResult<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::idempotency(entity_id, key).to_item()))
            .update_expression("SET expiresAt = :gone, #ttl = :gone")
            .condition_expression("attempt = :attempt AND pending = :pending")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":gone", n(0))
            .expression_attribute_values(":attempt", s(attempt))
            .expression_attribute_values(":pending", AttributeValue::Bool(true))
            .send()
            .await;
        super::condition_held(result).map(|_| ())
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
