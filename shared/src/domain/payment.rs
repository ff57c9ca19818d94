//! Payments: what a Stripe PaymentIntent buys. The record keeps a snapshot of the tier taken
//! when the intent was created, so later tier edits never change what a payment grants.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::domain::tier::Tier;

/// Metadata keys the service puts on every PaymentIntent and subscription it creates, for
/// people reading Stripe's dashboard. Never trusted: crediting reads the service's own record.
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

    /// What a payment (or each period of a subscription) `id` for `tier` buys, as recorded
    /// when the service creates it at Stripe.
    pub fn of_tier(id: &str, entity_id: &str, user_id: &str, tier: &Tier, status: &str, now: i64) -> Self {
        Self {
            payment_intent_id: id.to_owned(),
            entity_id: entity_id.to_owned(),
            user_id: user_id.to_owned(),
            credit_tier_id: tier.credit_tier_id.clone(),
            credits: tier.credits,
            bonus_credits: tier.bonus_credits,
            amount: tier.price,
            currency: tier.currency.clone(),
            status: status.to_owned(),
            created_at: now,
        }
    }

    /// Whether what Stripe reports (an intent, a charge, an invoice) is what this record
    /// says was sold: same amount, same currency. Anything else is not ours to credit.
    pub fn matches(&self, amount: u64, currency: &str) -> bool {
        self.amount == amount && self.currency.eq_ignore_ascii_case(currency)
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
    fn a_record_matches_only_what_it_sold() {
        let payment = Payment::of_tier("pi_1", "e-1", "u-1", &tier(), "requires_payment_method", 5);
        assert_eq!((payment.total_credits(), payment.amount, payment.currency.as_str()), (120, 999, "usd"));
        assert!(payment.matches(999, "usd") && payment.matches(999, "USD"));
        assert!(!payment.matches(1, "usd"));
        assert!(!payment.matches(999, "eur"));
    }
}
