//! Payments through Stripe: pay (Q5), create a payment intent (Q6), approve it (Q7), and
//! subscriptions to recurring tiers. Credits land through `shared::payments`, exactly once
//! per PaymentIntent or invoice.

mod approve;
mod pay;
mod subscriptions;

use axum::Router;
use axum::routing::post;

use shared::domain::tier::{Tier, TierStatus};
use shared::idempotency::IdempotencyKey;
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

/// The Stripe idempotency key for a request: derived from the client's key and the request
/// (a retry after a refusal that changes the request is a new Stripe request), else fresh.
fn stripe_key(purpose: &str, key: &IdempotencyKey) -> String {
    key.provider_key(purpose).unwrap_or_else(|| format!("{purpose}:{}", uuid::Uuid::new_v4()))
}
