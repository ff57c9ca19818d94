//! Every table key of the single-table design is built here, and only here.
//!
//! | item            | pk                          | sk                 |
//! |-----------------|-----------------------------|--------------------|
//! | entity          | `ENTITY#{entityId}`         | `ENTITY`           |
//! | credit tier     | `ENTITY#{entityId}`         | `TIER#{tierId}`    |
//! | API key         | `APIKEY#{apikey}`           | `APIKEY`           |
//! | idempotency     | `IDEM#{entityId}#{key}`     | `IDEM`             |
//!
//! Later items (accounts, ledger entries, holds, payments, Stripe events) add rows here.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
/// Epoch seconds after which DynamoDB's TTL may delete an item.
pub const TTL: &str = "expiresAtEpoch";

pub const TIER_PREFIX: &str = "TIER#";

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_one_entity_share_a_partition_and_never_collide() {
        assert_eq!(entity("e-1").pk, tier("e-1", "ct-1").pk);
        assert_ne!(entity("e-1").sk, tier("e-1", "ENTITY").sk);
        assert_ne!(idempotency("e-1", "k").pk, idempotency("e-2", "k").pk);
    }
}
