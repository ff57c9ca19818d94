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

pub fn account(entity_id: &str, user_id: &str) -> Key {
    Key::new(account_partition(entity_id, user_id), "ACCOUNT")
}

/// Entries sort by the account version that wrote them, then their index in that write.
pub fn entry(entity_id: &str, user_id: &str, position: (u64, u32)) -> Key {
    Key::new(account_partition(entity_id, user_id), format!("{ENTRY_PREFIX}{:020}#{:03}", position.0, position.1))
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
    fn entries_sort_in_write_order() {
        let a = entry("e", "u", (9, 1)).sk;
        let b = entry("e", "u", (10, 0)).sk;
        assert!(a < b);
        assert!(is_entry_sort_key(&a) && is_entry_sort_key(&b));
        assert!(!is_entry_sort_key("ENTRY#1") && !is_entry_sort_key("HOLD#x"));
    }
}
