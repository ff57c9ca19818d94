//! Payments: what a Stripe PaymentIntent buys. The record keeps a snapshot of the tier taken
//! when the intent was created, so later tier edits never change what a payment grants.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::domain::tier::Tier;

/// Metadata keys the service puts on every PaymentIntent it creates; they let a payment be
/// recognised (and its snapshot recovered) from Stripe's side alone.
pub mod metadata {
    pub const ENTITY: &str = "entity_id";
    pub const USER: &str = "user_id";
    pub const TIER: &str = "credit_tier_id";
    pub const CREDITS: &str = "credits";
    pub const BONUS: &str = "bonus_credits";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    pub payment_intent_id: String,
    pub entity_id: String,
    pub user_id: String,
    pub credit_tier_id: String,
    pub credits: u64,
    pub bonus_credits: u64,
    pub amount: u64,
    pub currency: String,
    /// Stripe's status when last seen (`succeeded`, `requires_action`, `canceled`, …).
    pub status: String,
    pub created_at: i64,
}

impl Payment {
    pub fn total_credits(&self) -> u64 {
        self.credits + self.bonus_credits
    }

    /// The metadata that makes an intent ours.
    pub fn intent_metadata(entity_id: &str, user_id: &str, tier: &Tier) -> HashMap<String, String> {
        HashMap::from([
            (metadata::ENTITY.to_owned(), entity_id.to_owned()),
            (metadata::USER.to_owned(), user_id.to_owned()),
            (metadata::TIER.to_owned(), tier.credit_tier_id.clone()),
            (metadata::CREDITS.to_owned(), tier.credits.to_string()),
            (metadata::BONUS.to_owned(), tier.bonus_credits.to_string()),
        ])
    }

    /// The snapshot as Stripe holds it, for an intent whose record is missing.
    pub fn from_intent(intent: &Intent, now: i64) -> Option<Self> {
        let mut payment = Self::from_metadata(&intent.id, &intent.metadata, now)?;
        payment.amount = intent.amount;
        payment.currency = intent.currency.clone();
        payment.status = intent.status.clone();
        Some(payment)
    }

    /// The snapshot in the metadata of an intent or a subscription this service created;
    /// `None` for objects it did not create.
    pub fn from_metadata(id: &str, metadata: &HashMap<String, String>, now: i64) -> Option<Self> {
        let get = |key: &str| metadata.get(key).cloned();
        Some(Self {
            payment_intent_id: id.to_owned(),
            entity_id: get(metadata::ENTITY)?,
            user_id: get(metadata::USER)?,
            credit_tier_id: get(metadata::TIER)?,
            credits: get(metadata::CREDITS)?.parse().ok()?,
            bonus_credits: get(metadata::BONUS)?.parse().ok()?,
            amount: 0,
            currency: String::new(),
            status: String::new(),
            created_at: now,
        })
    }
}

/// A PaymentIntent as the service needs it (no SDK types).
#[derive(Debug, Clone, PartialEq)]
pub struct Intent {
    pub id: String,
    pub status: String,
    pub amount: u64,
    pub currency: String,
    pub client_secret: Option<String>,
    pub metadata: HashMap<String, String>,
}

impl Intent {
    pub fn succeeded(&self) -> bool {
        self.status == "succeeded"
    }

    /// Whether this intent was created for this entity's user.
    pub fn belongs_to(&self, entity_id: &str, user_id: &str) -> bool {
        self.metadata.get(metadata::ENTITY).map(String::as_str) == Some(entity_id)
            && self.metadata.get(metadata::USER).map(String::as_str) == Some(user_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::tier::{Recurring, TierStatus};

    fn tier() -> Tier {
        Tier {
            credit_tier_id: "ct-1".into(),
            entity_id: "e-1".into(),
            name: "Starter".into(),
            credits: 100,
            bonus_credits: 20,
            price: 999,
            currency: "usd".into(),
            recurring: Recurring::None,
            status: TierStatus::Active,
            version: 1,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn the_snapshot_survives_a_round_trip_through_stripe_metadata() {
        let intent = Intent {
            id: "pi_1".into(),
            status: "succeeded".into(),
            amount: 999,
            currency: "usd".into(),
            client_secret: None,
            metadata: Payment::intent_metadata("e-1", "u-1", &tier()),
        };
        let payment = Payment::from_intent(&intent, 5).unwrap();
        assert_eq!((payment.total_credits(), payment.credit_tier_id.as_str()), (120, "ct-1"));
        assert!(intent.belongs_to("e-1", "u-1"));
        assert!(!intent.belongs_to("e-1", "u-2"));
        assert!(!intent.belongs_to("e-2", "u-1"));
    }
}
