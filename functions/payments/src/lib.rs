//! Payments through Stripe: pay (Q5), create a payment intent (Q6), approve it (Q7), and
//! cancel a subscription to a recurring tier. What they do is `shared::usecases::payments`
//! and `::subscriptions`; this is their native wire.

mod pay;
mod quest;

use axum::Router;
use axum::routing::post;

use shared::AppState;

pub fn router(state: AppState) -> Router {
    let user = "/api/entities/{entity_id}/users/{user_id}";
    let routes = Router::new()
        .route("/api/payment/pay", post(pay::pay))
        .route(&format!("{user}/create-payment-intent"), post(quest::create_intent))
        .route(&format!("{user}/approve-payment"), post(pay::approve))
        .route(&format!("{user}/credit-tiers/{{credit_tier_id}}/cancel"), post(pay::cancel))
        .merge(quest::routes());
    shared::http::finish(routes, state)
}
