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
    /// `user` or `pool`: whose account the payment credits.
    pub const BENEFICIARY: &str = "beneficiary";
}

/// Whose account a payment credits, fixed when the intent is created: the buyer's own, or
/// the entity's pool (its entries record the buyer as `byUserId`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Beneficiary {
    User(String),
    #[serde(rename_all = "camelCase")]
    Pool {
        by_user_id: String,
    },
}

impl Beneficiary {
    pub fn is_pool(&self) -> bool {
        matches!(self, Self::Pool { .. })
    }

    /// As the intent's metadata and error messages name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::User(_) => "user",
            Self::Pool { .. } => "pool",
        }
    }
}

/// A payment record as stored: records written before beneficiaries were recorded have none,
/// and credit their user.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredPayment {
    payment_intent_id: String,
    entity_id: String,
    user_id: String,
    credit_tier_id: String,
    credits: u64,
    bonus_credits: u64,
    amount: u64,
    currency: String,
    status: String,
    created_at: i64,
    beneficiary: Option<Beneficiary>,
}

impl From<StoredPayment> for Payment {
    fn from(stored: StoredPayment) -> Self {
        let beneficiary = stored.beneficiary.unwrap_or_else(|| Beneficiary::User(stored.user_id.clone()));
        Self {
            payment_intent_id: stored.payment_intent_id,
            entity_id: stored.entity_id,
            user_id: stored.user_id,
            credit_tier_id: stored.credit_tier_id,
            credits: stored.credits,
            bonus_credits: stored.bonus_credits,
            amount: stored.amount,
            currency: stored.currency,
            status: stored.status,
            created_at: stored.created_at,
            beneficiary,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "StoredPayment")]
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
    /// Whose account it credits; `user_id` is always the buyer.
    pub beneficiary: Beneficiary,
}

impl Payment {
    pub fn total_credits(&self) -> u64 {
        self.credits + self.bonus_credits
    }

    /// The metadata that makes an intent ours.
    pub fn intent_metadata(
        entity_id: &str,
        user_id: &str,
        tier: &Tier,
        beneficiary: &Beneficiary,
    ) -> HashMap<String, String> {
        HashMap::from([
            (metadata::BENEFICIARY.to_owned(), beneficiary.kind().to_owned()),
            (metadata::ENTITY.to_owned(), entity_id.to_owned()),
            (metadata::USER.to_owned(), user_id.to_owned()),
            (metadata::TIER.to_owned(), tier.credit_tier_id.clone()),
            (metadata::CREDITS.to_owned(), tier.credits.to_string()),
            (metadata::BONUS.to_owned(), tier.bonus_credits.to_string()),
        ])
    }

    /// What a payment (or each period of a subscription) `id` for `tier` buys, as recorded
    /// when the service creates it at Stripe; it credits the buyer.
    pub fn of_tier(id: &str, entity_id: &str, user_id: &str, tier: &Tier, status: &str, now: i64) -> Self {
        Self {
            beneficiary: Beneficiary::User(user_id.to_owned()),
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

/// What has happened to a payment's money since it was paid, as Stripe reports it now: its
/// refunds and disputes. Credits follow this state, not the order events arrive in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MoneyMoves {
    pub refunds: Vec<RefundState>,
    pub disputes: Vec<DisputeState>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RefundState {
    pub id: String,
    pub amount: u64,
    /// `pending | requires_action | succeeded | failed | canceled`.
    pub status: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DisputeState {
    pub id: String,
    /// Inquiries: `warning_needs_response | warning_under_review | warning_closed`;
    /// chargebacks: `needs_response | under_review | won | lost`.
    pub status: String,
}

impl RefundState {
    /// A refund takes money back unless it failed or was canceled (a pending one is on its way).
    fn counts(&self) -> bool {
        !matches!(self.status.as_str(), "failed" | "canceled")
    }
}

impl DisputeState {
    /// A chargeback withdraws the money until it is won; an inquiry moves none.
    fn withdraws_funds(&self) -> bool {
        matches!(self.status.as_str(), "needs_response" | "under_review" | "lost")
    }
}

impl MoneyMoves {
    /// How many of `payment`'s credits the money gone takes back, and why (for the ledger).
    /// A chargeback in force takes all of them; refunds take their share, rounded down.
    pub fn credits_to_reverse(&self, payment: &Payment) -> (u64, String) {
        let credited = payment.total_credits();
        if let Some(dispute) = self.disputes.iter().find(|d| d.withdraws_funds()) {
            return (credited, format!("dispute {} ({})", dispute.id, dispute.status));
        }
        let counted: Vec<&RefundState> = self.refunds.iter().filter(|r| r.counts()).collect();
        let refunded = counted.iter().map(|r| r.amount).sum::<u64>().min(payment.amount);
        // u128: credits (≤ 10^12) × amounts (≤ 10^12) overflows u64.
        let share = match payment.amount {
            0 => 0,
            amount => (u128::from(credited) * u128::from(refunded) / u128::from(amount)) as u64,
        };
        let mut why = format!("refunded {refunded} of {}", payment.amount);
        for refund in &self.refunds {
            why.push_str(&format!("; refund {} {}", refund.id, refund.status));
        }
        for dispute in &self.disputes {
            why.push_str(&format!("; dispute {} {}", dispute.id, dispute.status));
        }
        (share, why)
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

    #[test]
    fn records_without_a_beneficiary_credit_their_user() {
        let payment = Payment::of_tier("pi_1", "e-1", "u-1", &tier(), "succeeded", 5);
        let mut stored = serde_json::to_value(&payment).unwrap();
        assert_eq!(stored["beneficiary"], serde_json::json!({"user": "u-1"}));
        stored.as_object_mut().unwrap().remove("beneficiary");
        assert_eq!(serde_json::from_value::<Payment>(stored).unwrap(), payment);
        let pool = Payment { beneficiary: Beneficiary::Pool { by_user_id: "u-1".into() }, ..payment };
        let stored = serde_json::to_value(&pool).unwrap();
        assert_eq!(stored["beneficiary"], serde_json::json!({"pool": {"byUserId": "u-1"}}));
        assert_eq!(serde_json::from_value::<Payment>(stored).unwrap(), pool);
    }

    fn refund(id: &str, amount: u64, status: &str) -> RefundState {
        RefundState { id: id.into(), amount, status: status.into() }
    }

    fn dispute(status: &str) -> Vec<DisputeState> {
        vec![DisputeState { id: "dp_1".into(), status: status.into() }]
    }

    #[test]
    fn credits_follow_the_money_stripe_reports() {
        let payment = Payment::of_tier("pi_1", "e-1", "u-1", &tier(), "succeeded", 5);
        let reverse = |moves: MoneyMoves| moves.credits_to_reverse(&payment).0;
        assert_eq!(reverse(MoneyMoves::default()), 0);
        let partial = vec![refund("re_1", 300, "succeeded"), refund("re_2", 200, "pending")];
        assert_eq!(reverse(MoneyMoves { refunds: partial.clone(), disputes: vec![] }), 60, "500 of 999 → 60 of 120");
        let failed = vec![refund("re_1", 300, "succeeded"), refund("re_2", 200, "failed")];
        assert_eq!(reverse(MoneyMoves { refunds: failed, disputes: vec![] }), 36);
        let full = vec![refund("re_1", 999, "succeeded")];
        assert_eq!(reverse(MoneyMoves { refunds: full, disputes: vec![] }), 120);
        for (status, reversed) in
            [("warning_needs_response", 0), ("warning_closed", 0), ("needs_response", 120), ("lost", 120), ("won", 0)]
        {
            assert_eq!(reverse(MoneyMoves { refunds: vec![], disputes: dispute(status) }), reversed, "{status}");
        }
        let won_after_refund = MoneyMoves { refunds: partial, disputes: dispute("won") };
        let (credits, why) = won_after_refund.credits_to_reverse(&payment);
        assert_eq!(credits, 60);
        assert!(why.contains("refund re_1 succeeded") && why.contains("dispute dp_1 won"), "{why}");
    }
}
