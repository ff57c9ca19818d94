//! Payments: the provider gateway and the one exactly-once path that turns a succeeded
//! PaymentIntent into credits. Q5, Q7 and the Stripe webhook all call `credit_payment`;
//! whichever arrives first credits, the others learn it was already done.

pub mod gateway;
pub mod stripe;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::accounts::{self, Outcome};
use crate::app::AppState;
use crate::domain::account::AccountView;
use crate::domain::ledger::{Change, Operation};
use crate::domain::payment::Payment;
use crate::error::ApiError;
use crate::idempotency::IdempotencyKey;

#[derive(Debug, Clone)]
pub struct Credited {
    pub entry_id: Option<String>,
    pub credited: u64,
    pub already_credited: bool,
    pub account: AccountView,
}

/// Credits the payment's snapshot once, keyed by its PaymentIntent id, forever.
pub async fn credit_payment(state: &AppState, payment: &Payment) -> Result<Credited, ApiError> {
    let key = format!("#payment#{}", payment.payment_intent_id);
    credit_once(state, payment, &key, Some(payment.payment_intent_id.clone()), "payment".into()).await
}

/// Credits one paid period of a subscription (whose snapshot is `subscription`), once per
/// invoice, forever.
pub async fn credit_invoice(state: &AppState, subscription: &Payment, invoice_id: &str) -> Result<Credited, ApiError> {
    let key = format!("#invoice#{invoice_id}");
    credit_once(state, subscription, &key, None, format!("subscription invoice {invoice_id}")).await
}

async fn credit_once(
    state: &AppState,
    payment: &Payment,
    key: &str,
    payment_intent_id: Option<String>,
    reason: String,
) -> Result<Credited, ApiError> {
    let key = IdempotencyKey::permanent(&payment.entity_id, key, key);
    let operation = Operation::Purchase {
        credit_tier_id: payment.credit_tier_id.clone(),
        credits: payment.total_credits(),
        payment_intent_id,
    };
    let change = Change { operation, reason: Some(reason), idempotency_key: None };
    let outcome = accounts::change(state, &payment.entity_id, &payment.user_id, &change, &key, |applied, _| {
        Ok((StatusCode::OK, json!({"entryId": applied.main_entry().map(|e| e.entry_id.clone())})))
    })
    .await?;
    let now = state.clock.now_millis();
    match outcome {
        Outcome::Done { applied, body, .. } => Ok(Credited {
            entry_id: entry_id(&body),
            credited: payment.total_credits(),
            already_credited: false,
            account: applied.account.view(now),
        }),
        Outcome::Replayed { stored, .. } => {
            let body: Value = serde_json::from_str(&stored.body).map_err(ApiError::internal)?;
            let account = accounts::read(state, &payment.entity_id, &payment.user_id).await?;
            Ok(Credited {
                entry_id: entry_id(&body),
                credited: payment.total_credits(),
                already_credited: true,
                account: account.view(now),
            })
        }
    }
}

fn entry_id(body: &Value) -> Option<String> {
    body.get("entryId").and_then(Value::as_str).map(str::to_owned)
}
