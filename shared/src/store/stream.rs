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
    if keys::is_account_sort_key(sk)
        && let Some((entity_id, user_id)) = keys::parse_account_partition(pk)
    {
        let pending = matches!(image.get("journal"), Some(AttributeValue::L(records)) if !records.is_empty());
        return Ok(pending.then(|| Change::JournalPending { entity_id: entity_id.into(), user_id: user_id.into() }));
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(value: serde_json::Value) -> Item {
        serde_dynamo::to_item(value).unwrap()
    }

    fn record<'a>(event_name: &'a str, new_image: &'a Item, old_image: &'a Item) -> StreamRecord<'a> {
        StreamRecord { event_name, new_image, old_image, at: 7 }
    }

    #[test]
    fn an_account_with_changes_in_its_journal_asks_for_them_to_move_out() {
        let pending = item(json!({"pk": "ACCOUNT#e-1#u", "sk": "ACCOUNT", "journal": [{"key": "k"}]}));
        let moved = item(json!({"pk": "ACCOUNT#e-1#u", "sk": "ACCOUNT", "journal": []}));
        let empty = item(json!({}));
        assert_eq!(
            decode(&record("MODIFY", &pending, &moved)).unwrap(),
            Some(Change::JournalPending { entity_id: "e-1".into(), user_id: "u".into() })
        );
        assert_eq!(decode(&record("MODIFY", &moved, &pending)).unwrap(), None);
        assert!(decode(&record("INSERT", &pending, &empty)).unwrap().is_some());
    }

    #[test]
    fn an_inserted_entry_is_its_account_s_entry() {
        let entry = item(json!({
            "pk": "ACCOUNT#e-1##pool", "sk": "ENTRY#00000000000000000003#001", "kind": "entry",
            "entryId": "01J", "type": "grant", "credits": 5, "balanceAfter": 5, "heldAfter": 0,
            "reason": null, "creditTierId": null, "paymentIntentId": null, "holdId": null,
            "idempotencyKey": null, "createdAt": "2026-12-02T07:00:00.000Z"
        }));
        let empty = item(json!({}));
        let Some(Change::Entry { entity_id, user_id, position, entry }) =
            decode(&record("INSERT", &entry, &empty)).unwrap()
        else {
            panic!("an entry")
        };
        assert_eq!(
            (entity_id.as_str(), user_id.as_str(), position.as_str()),
            ("e-1", "#pool", "00000000000000000003#001")
        );
        assert_eq!(entry.entry_id, "01J");
        assert_eq!(
            decode(&record("MODIFY", &item(json!({"pk": "ACCOUNT#e-1#u", "sk": "ACCOUNT"})), &empty)).unwrap(),
            None
        );
    }

    #[test]
    fn a_payment_or_subscription_counts_only_when_it_turns_failed_or_ended() {
        let payment = |status: &str| {
            item(json!({
                "pk": "PAYMENT#pi_1", "sk": "PAYMENT", "paymentIntentId": "pi_1", "entityId": "e-1",
                "userId": "u-1", "creditTierId": "ct-1", "credits": 10, "bonusCredits": 0, "amount": 100,
                "currency": "usd", "status": status, "createdAt": 1
            }))
        };
        let (failed, pending) = (payment("failed"), payment("requires_action"));
        let change = decode(&record("MODIFY", &failed, &pending)).unwrap();
        assert!(
            matches!(change, Some(Change::PaymentFailed { ref payment_intent_id, at: 7, .. }) if payment_intent_id == "pi_1")
        );
        assert_eq!(decode(&record("MODIFY", &failed, &failed)).unwrap(), None, "already failed");

        let purchases = |status: &str| {
            item(json!({"pk": "ACCOUNT#e-1#u-1", "sk": "PURCHASES#ct-1", "subscriptionId": "sub_1",
                        "creditTierId": "ct-1", "subscriptionStatus": status}))
        };
        let (ended, canceling) = (purchases("ended"), purchases("canceling"));
        let change = decode(&record("MODIFY", &ended, &canceling)).unwrap();
        assert!(
            matches!(change, Some(Change::SubscriptionEnded { ref user_id, ref subscription_id, .. }) if user_id == "u-1" && subscription_id == "sub_1")
        );
        assert_eq!(decode(&record("MODIFY", &canceling, &ended)).unwrap(), None);
    }
}
