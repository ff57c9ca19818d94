//! The table's stream, read as the changes events are made of: which items (by their keys)
//! mean a ledger entry, a failed payment or an ended subscription.

use serde_dynamo::{AttributeValue, Item};

use crate::domain::account::Entry;
use crate::domain::events::Change;
use crate::domain::payment::Payment;
use crate::store::keys::{self, ENTRY_PREFIX};
use crate::store::{StoreError, StoreResult};

/// One stream record, as DynamoDB Streams (and Lambda's event source mapping) hand it over.
pub struct StreamRecord<'a> {
    /// `INSERT`, `MODIFY` or `REMOVE`.
    pub event_name: &'a str,
    pub new_image: &'a Item,
    pub old_image: &'a Item,
    /// When the change was made (the record's approximate creation time), in ms.
    pub at: i64,
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value),
        _ => None,
    }
}

fn decoded<T: serde::de::DeserializeOwned>(item: &Item) -> StoreResult<T> {
    serde_dynamo::from_item(item.clone()).map_err(|e| StoreError::Internal(format!("corrupt stream image: {e}")))
}

/// Whether a field turned to `value` in this change (it was something else, or absent).
fn turned(record: &StreamRecord<'_>, field: &str, value: &str) -> bool {
    text(record.new_image, field) == Some(value) && text(record.old_image, field) != Some(value)
}

/// The change a record means for events, if any. Each ledger entry item is written once, so
/// its `INSERT` is the entry's one record (a redelivered record is the same record).
pub fn decode(record: &StreamRecord<'_>) -> StoreResult<Option<Change>> {
    if record.event_name == "REMOVE" {
        return Ok(None);
    }
    let image = record.new_image;
    let (Some(pk), Some(sk)) = (text(image, keys::PK), text(image, keys::SK)) else { return Ok(None) };
    if record.event_name == "INSERT"
        && keys::is_entry_sort_key(sk)
        && let Some((entity_id, user_id)) = keys::parse_account_partition(pk)
    {
        let entry: Entry = decoded(image)?;
        let position = sk.trim_start_matches(ENTRY_PREFIX).to_owned();
        return Ok(Some(Change::Entry { entity_id: entity_id.into(), user_id: user_id.into(), position, entry }));
    }
    if keys::is_payment(pk, sk) && turned(record, "status", "failed") {
        let payment: Payment = decoded(image)?;
        return Ok(Some(Change::PaymentFailed {
            entity_id: payment.entity_id,
            user_id: payment.user_id,
            payment_intent_id: payment.payment_intent_id,
            credit_tier_id: payment.credit_tier_id,
            at: record.at,
        }));
    }
    if keys::is_purchases_sort_key(sk)
        && turned(record, "subscriptionStatus", "ended")
        && let Some((entity_id, user_id)) = keys::parse_account_partition(pk)
    {
        let (Some(subscription_id), Some(credit_tier_id)) =
            (text(image, "subscriptionId"), text(image, "creditTierId"))
        else {
            return Ok(None);
        };
        return Ok(Some(Change::SubscriptionEnded {
            entity_id: entity_id.into(),
            user_id: user_id.into(),
            subscription_id: subscription_id.into(),
            credit_tier_id: credit_tier_id.into(),
            at: record.at,
        }));
    }
    Ok(None)
}
