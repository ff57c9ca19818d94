//! Every table key of the single-table design is built here, and only here.
//!
//! | item            | pk                          | sk                 |
//! |-----------------|-----------------------------|--------------------|
//! | entity          | `ENTITY#{entityId}`         | `ENTITY`           |
//! | credit tier     | `ENTITY#{entityId}`         | `TIER#{tierId}`    |
//! | API key         | `APIKEY#{apikey}`           | `APIKEY`           |
//! | idempotency     | `IDEM#{entityId}#{key}`     | `IDEM`             |
//! | credit account  | `ACCOUNT#{entityId}#{userId}` | `ACCOUNT`        |
//! | ledger entry    | `ACCOUNT#{entityId}#{userId}` | `ENTRY#{version:020}#{index:03}` |
//! | hold            | `ACCOUNT#{entityId}#{userId}` | `HOLD#{holdId}`  |
//! | purchase count  | `ACCOUNT#{entityId}#{userId}` | `PURCHASES#{tierId}` |
//! | payment         | `PAYMENT#{paymentIntentId}`  | `PAYMENT`         |
//! | Stripe event    | `STRIPE_EVENT#{eventId}`     | `EVENT`           |
//! | webhook endpoint | `ENTITY#{entityId}`         | `WEBHOOK#{endpointId}` |
//! | user settings   | `ENTITY#{entityId}`         | `USER_SETTINGS#{userId}` |
//! | outbound event  | `EVENT#{entityId}#{eventId}` | `EVENT`           |
//! | low-balance alert state | `LOWBALANCE#{entityId}#{userId}` | `STATE` |
//! | pending delivery | `OUTBOX#{endpointId}`      | `{lane}#{order}`  |
//! | endpoint due for delivery | `OUTBOX_DUE`      | `{endpointId}`    |
//! | delivery attempt | `DELIVERIES#{endpointId}`  | `{attemptId}` (time-ordered) |
//!
//! An account's items share its partition, so its history is one Query, newest first.
//!
//! The entity's credit pool is an account like a user's, with the holder id
//! `accounts::POOL` (`#pool`) in place of `{userId}`: `ACCOUNT#{entityId}##pool`. A `#` is
//! never in a user id (`ids::validate_user_id`), so no user's account can be the pool's.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
/// Epoch seconds after which DynamoDB's TTL may delete an item.
pub const TTL: &str = "expiresAtEpoch";

pub const TIER_PREFIX: &str = "TIER#";
pub const ENTRY_PREFIX: &str = "ENTRY#";
pub const PURCHASES_PREFIX: &str = "PURCHASES#";
pub const WEBHOOK_PREFIX: &str = "WEBHOOK#";
const ACCOUNT_PREFIX: &str = "ACCOUNT#";
const PAYMENT_PREFIX: &str = "PAYMENT#";
/// The one partition listing endpoints with deliveries due: written only when a delivery
/// waits (a retry, or a drain that ran out of time), so it stays small.
const OUTBOX_DUE: &str = "OUTBOX_DUE";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    fn new(pk: String, sk: impl Into<String>) -> Self {
        Self { pk, sk: sk.into() }
    }

    pub fn to_item(&self) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (PK.to_owned(), AttributeValue::S(self.pk.clone())),
            (SK.to_owned(), AttributeValue::S(self.sk.clone())),
        ])
    }
}

pub fn entity(entity_id: &str) -> Key {
    Key::new(entity_partition(entity_id), "ENTITY")
}

pub fn entity_partition(entity_id: &str) -> String {
    format!("ENTITY#{entity_id}")
}

pub fn tier(entity_id: &str, tier_id: &str) -> Key {
    Key::new(entity_partition(entity_id), format!("{TIER_PREFIX}{tier_id}"))
}

pub fn api_key(apikey: &str) -> Key {
    Key::new(format!("APIKEY#{apikey}"), "APIKEY")
}

pub fn idempotency(entity_id: &str, key: &str) -> Key {
    Key::new(format!("IDEM#{entity_id}#{key}"), "IDEM")
}

pub fn account_partition(entity_id: &str, user_id: &str) -> String {
    format!("ACCOUNT#{entity_id}#{user_id}")
}

const ACCOUNT_SORT_KEY: &str = "ACCOUNT";

pub fn account(entity_id: &str, user_id: &str) -> Key {
    Key::new(account_partition(entity_id, user_id), ACCOUNT_SORT_KEY)
}

/// Entries sort by the account version that wrote them, then their index in that write.
pub fn entry(entity_id: &str, user_id: &str, position: (u64, u32)) -> Key {
    Key::new(account_partition(entity_id, user_id), format!("{ENTRY_PREFIX}{:020}#{:03}", position.0, position.1))
}

/// The position an entry's sort key names (`entry`).
pub fn entry_position(sk: &str) -> Option<(u64, u32)> {
    let rest = sk.strip_prefix(ENTRY_PREFIX)?;
    let (version, index) = rest.split_once('#')?;
    Some((version.parse().ok()?, index.parse().ok()?))
}

pub fn is_entry_sort_key(sk: &str) -> bool {
    sk.strip_prefix(ENTRY_PREFIX).is_some_and(|rest| {
        rest.len() == 24
            && rest.as_bytes()[20] == b'#'
            && rest.bytes().enumerate().all(|(i, b)| i == 20 || b.is_ascii_digit())
    })
}

pub fn hold(entity_id: &str, user_id: &str, hold_id: &str) -> Key {
    Key::new(account_partition(entity_id, user_id), format!("HOLD#{hold_id}"))
}

pub fn purchases(entity_id: &str, user_id: &str, tier_id: &str) -> Key {
    Key::new(account_partition(entity_id, user_id), format!("{PURCHASES_PREFIX}{tier_id}"))
}

pub fn payment(payment_intent_id: &str) -> Key {
    Key::new(format!("PAYMENT#{payment_intent_id}"), "PAYMENT")
}

/// The snapshot of what each paid period of a subscription buys.
pub fn subscription(subscription_id: &str) -> Key {
    Key::new(format!("SUBSCRIPTION#{subscription_id}"), "SUBSCRIPTION")
}

pub fn stripe_event(event_id: &str) -> Key {
    Key::new(format!("STRIPE_EVENT#{event_id}"), "EVENT")
}

pub fn webhook_endpoint(entity_id: &str, endpoint_id: &str) -> Key {
    Key::new(entity_partition(entity_id), format!("{WEBHOOK_PREFIX}{endpoint_id}"))
}

pub fn user_settings(entity_id: &str, user_id: &str) -> Key {
    Key::new(entity_partition(entity_id), format!("USER_SETTINGS#{user_id}"))
}

pub fn outbound_event(entity_id: &str, event_id: &str) -> Key {
    Key::new(format!("EVENT#{entity_id}#{event_id}"), "EVENT")
}

pub fn alert_state(entity_id: &str, user_id: &str) -> Key {
    Key::new(format!("LOWBALANCE#{entity_id}#{user_id}"), "STATE")
}

pub fn outbox_partition(endpoint_id: &str) -> String {
    format!("OUTBOX#{endpoint_id}")
}

/// A pending delivery; an endpoint's sort in lane order, then in the lane's event order.
pub fn outbox(endpoint_id: &str, lane: &str, order: &str) -> Key {
    Key::new(outbox_partition(endpoint_id), format!("{lane}#{order}"))
}

pub fn outbox_due_partition() -> String {
    OUTBOX_DUE.to_owned()
}

pub fn outbox_due(endpoint_id: &str) -> Key {
    Key::new(outbox_due_partition(), endpoint_id)
}

pub fn deliveries_partition(endpoint_id: &str) -> String {
    format!("DELIVERIES#{endpoint_id}")
}

pub fn delivery_attempt(endpoint_id: &str, attempt_id: &str) -> Key {
    Key::new(deliveries_partition(endpoint_id), attempt_id)
}

/// The entity and holder of an account partition key (`ACCOUNT#{entityId}#{userId}`; the
/// entity id never holds a `#`, the pool's holder id starts with one).
pub fn parse_account_partition(pk: &str) -> Option<(&str, &str)> {
    pk.strip_prefix(ACCOUNT_PREFIX)?.split_once('#')
}

/// The sort key of an account item (its partition names entity and holder).
pub fn is_account_sort_key(sk: &str) -> bool {
    sk == ACCOUNT_SORT_KEY
}

pub fn is_payment(pk: &str, sk: &str) -> bool {
    pk.starts_with(PAYMENT_PREFIX) && sk == "PAYMENT"
}

pub fn is_purchases_sort_key(sk: &str) -> bool {
    sk.starts_with(PURCHASES_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_one_entity_share_a_partition_and_never_collide() {
        assert_eq!(entity("e-1").pk, tier("e-1", "ct-1").pk);
        assert_ne!(entity("e-1").sk, tier("e-1", "ENTITY").sk);
        assert_ne!(idempotency("e-1", "k").pk, idempotency("e-2", "k").pk);
    }

    #[test]
    fn the_pool_is_no_user_account() {
        assert_eq!(account("e-1", crate::accounts::POOL).pk, "ACCOUNT#e-1##pool");
        assert!(crate::ids::validate_user_id("userId", crate::accounts::POOL).is_err());
    }

    #[test]
    fn account_partitions_name_their_entity_and_holder() {
        let pool = account("e-1", crate::accounts::POOL).pk;
        assert_eq!(parse_account_partition(&pool), Some(("e-1", crate::accounts::POOL)));
        assert_eq!(parse_account_partition(&account("e-1", "u:1").pk), Some(("e-1", "u:1")));
        assert_eq!(parse_account_partition("PAYMENT#pi"), None);
    }

    #[test]
    fn entries_sort_in_write_order() {
        let a = entry("e", "u", (9, 1)).sk;
        let b = entry("e", "u", (10, 0)).sk;
        assert!(a < b);
        assert!(is_entry_sort_key(&a) && is_entry_sort_key(&b));
        assert!(!is_entry_sort_key("ENTRY#1") && !is_entry_sort_key("HOLD#x"));
    }
}
