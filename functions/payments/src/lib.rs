//! Payments through Stripe: pay (Q5), create a payment intent (Q6), approve it (Q7), and
//! subscriptions to recurring tiers. Credits land through `shared::payments`, exactly once
//! per PaymentIntent or invoice.

mod approve;
mod pay;
mod subscriptions;

use axum::Router;
use axum::routing::post;

use shared::domain::payment::Payment;
use shared::domain::tier::{Tier, TierStatus};
use shared::{ApiError, ApiResult, AppState, ErrorCode, ids};

pub fn router(state: AppState) -> Router {
    let user = "/api/entities/{entity_id}/users/{user_id}";
    let routes = Router::new()
        .route("/api/payment/pay", post(pay::pay))
        .route(&format!("{user}/create-payment-intent"), post(pay::create_intent))
        .route(&format!("{user}/approve-payment"), post(approve::approve))
        .route(&format!("{user}/credit-tiers/{{credit_tier_id}}/cancel"), post(subscriptions::cancel));
    shared::http::finish(routes, state)
}

/// The tier a payment buys: it must exist and be on sale.
async fn tier_for_sale(state: &AppState, entity_id: &str, tier_id: &str) -> ApiResult<Tier> {
    ids::validate_tier_id("creditTierId", tier_id)?;
    let tier =
        state.store.get_tier(entity_id, tier_id).await?.ok_or_else(|| ApiError::not_found("credit tier not found"))?;
    if tier.status == TierStatus::Archived {
        return Err(ApiError::new(ErrorCode::TierArchived, "creditTierId names an archived tier"));
    }
    Ok(tier)
}

/// The payment record: a snapshot of the tier at the time the intent was created.
fn snapshot(
    intent: &shared::domain::payment::Intent,
    entity_id: &str,
    user_id: &str,
    tier: &Tier,
    now: i64,
) -> Payment {
    Payment {
        payment_intent_id: intent.id.clone(),
        entity_id: entity_id.to_owned(),
        user_id: user_id.to_owned(),
        credit_tier_id: tier.credit_tier_id.clone(),
        credits: tier.credits,
        bonus_credits: tier.bonus_credits,
        amount: intent.amount,
        currency: intent.currency.clone(),
        status: intent.status.clone(),
        created_at: now,
    }
}

/// The Stripe idempotency key for a client's request: the client's key, scoped; else fresh.
fn stripe_key(operation: &str, entity_id: &str, client_key: Option<String>) -> String {
    match client_key {
        Some(key) => format!("{operation}:{entity_id}:{key}"),
        None => format!("{operation}:{}", uuid::Uuid::new_v4()),
    }
}
