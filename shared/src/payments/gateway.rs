//! The payment provider as the service sees it: a narrow trait with no SDK types, so the
//! payment flows can be unit-tested with a fake and run against Stripe (or its stand-in).

use std::collections::HashMap;

use async_trait::async_trait;

use crate::domain::payment::{Intent, MoneyMoves};
use crate::error::Error;

/// A PaymentIntent to create (with a payment method, ready to be confirmed by
/// `confirm_intent`: the service records the payment before any money moves).
#[derive(Debug, Clone, PartialEq)]
pub struct NewIntent {
    pub amount: u64,
    pub currency: String,
    pub metadata: HashMap<String, String>,
    pub payment_method: Option<String>,
    pub receipt_email: Option<String>,
    pub description: String,
}

/// A subscription to start: a customer paying `amount` every `interval` with a card.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSubscription {
    pub amount: u64,
    pub currency: String,
    /// `day | week | month | year`.
    pub interval: String,
    pub product_name: String,
    pub payment_method: String,
    pub email: Option<String>,
    pub metadata: HashMap<String, String>,
}

/// A subscription as the service needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct StartedSubscription {
    pub id: String,
    pub status: String,
    pub current_period_end: Option<i64>,
    /// The invoice that paid the first period.
    pub latest_invoice: Option<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GatewayError {
    /// The card was declined.
    #[error("declined: {message}")]
    Declined { message: String, decline_code: Option<String> },
    /// The payment method the client named does not exist: the client's mistake, not ours.
    #[error("no such payment method: {0}")]
    UnknownPaymentMethod(String),
    /// The provider cannot charge the tier's price (below its minimum, above its maximum, a
    /// currency it does not support): the tier's matter, not a provider failure.
    #[error("cannot charge: {0}")]
    Unchargeable(String),
    /// The provider refused the request itself (bad parameters, unknown object).
    #[error("rejected: {0}")]
    Rejected(String),
    /// Unreachable, timing out or failing (5xx) after the retries.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl GatewayError {
    /// The same error, saying which step of a multi-call operation failed (for the logs).
    pub fn during(self, step: &str) -> Self {
        match self {
            Self::Rejected(cause) => Self::Rejected(format!("{step}: {cause}")),
            Self::Unavailable(cause) => Self::Unavailable(format!("{step}: {cause}")),
            declined => declined,
        }
    }
}

impl From<GatewayError> for Error {
    fn from(err: GatewayError) -> Self {
        match err {
            GatewayError::Declined { message, decline_code } => {
                Error::PaymentFailed { message: format!("the payment was declined: {message}"), decline_code }
            }
            GatewayError::UnknownPaymentMethod(cause) => {
                tracing::info!(%cause, "unknown payment method");
                Error::validation("id must be a payment method the payment provider knows (no such payment method)")
            }
            GatewayError::Unchargeable(cause) => Error::validation(format!(
                "creditTierId: the payment provider cannot charge this tier's price ({cause})"
            )),
            GatewayError::Rejected(cause) => {
                tracing::warn!(%cause, "payment provider rejected a request");
                Error::PaymentProvider("the payment provider refused the request".into())
            }
            GatewayError::Unavailable(cause) => {
                tracing::warn!(%cause, "payment provider unavailable");
                Error::PaymentProvider("the payment provider is unavailable; retry shortly".into())
            }
        }
    }
}

#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// Creates an intent; the same `idempotency_key` always yields the same intent.
    async fn create_intent(&self, intent: &NewIntent, idempotency_key: &str) -> Result<Intent, GatewayError>;
    /// Confirms an intent created with a payment method.
    async fn confirm_intent(&self, id: &str, idempotency_key: &str) -> Result<Intent, GatewayError>;
    /// `Ok(None)` when no such intent exists.
    async fn retrieve_intent(&self, id: &str) -> Result<Option<Intent>, GatewayError>;
    /// Creates the customer, the recurring price and the subscription (each idempotent
    /// under keys derived from `idempotency_key`); the first period is charged at once.
    async fn create_subscription(
        &self,
        subscription: &NewSubscription,
        idempotency_key: &str,
    ) -> Result<StartedSubscription, GatewayError>;
    /// The refunds and disputes of a PaymentIntent as they stand now.
    async fn money_moves(&self, payment_intent_id: &str) -> Result<MoneyMoves, GatewayError>;
    /// Stops renewal at the end of the current period.
    async fn cancel_at_period_end(&self, subscription_id: &str) -> Result<StartedSubscription, GatewayError>;
}
