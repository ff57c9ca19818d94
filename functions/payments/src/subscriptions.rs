//! Recurring tiers: buying one starts a Stripe subscription (its first period credited at
//! once, each renewal by the `invoice.paid` webhook, once per invoice); cancelling stops
//! renewal at the end of the period.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use shared::auth::Caller;
use shared::clock::rfc3339;
use shared::domain::account::{SubscriptionUpdate, TierPurchases};
use shared::domain::payment::Payment;
use shared::domain::tier::Tier;
use shared::http::body::JsonObject;
use shared::http::{envelope, respond};
use shared::payments::credit_invoice;
use shared::payments::gateway::NewSubscription;
use shared::{ApiError, ApiResult, AppState, ErrorCode, accounts, ids};

/// Statuses in which a subscription still renews or may still be paid.
const LIVE: [&str; 5] = ["active", "canceling", "incomplete", "past_due", "trialing"];

async fn live_subscription(
    state: &AppState,
    entity_id: &str,
    user_id: &str,
    tier_id: &str,
) -> ApiResult<Option<TierPurchases>> {
    let purchases = state.store.tier_purchases(entity_id, user_id).await?;
    Ok(purchases
        .into_iter()
        .find(|p| p.credit_tier_id == tier_id && p.subscription_status.as_deref().is_some_and(|s| LIVE.contains(&s))))
}

pub struct Subscribe<'a> {
    pub entity_id: &'a str,
    pub user_id: &'a str,
    pub tier: &'a Tier,
    pub payment_method: String,
    pub email: Option<String>,
    pub stripe_key: String,
}

/// Q5 for a recurring tier.
pub async fn subscribe(state: &AppState, order: Subscribe<'_>) -> ApiResult<Value> {
    let Subscribe { entity_id, user_id, tier, .. } = order;
    if live_subscription(state, entity_id, user_id, &tier.credit_tier_id).await?.is_some() {
        return Err(ApiError::new(ErrorCode::AlreadyExists, "the user already subscribes to this tier"));
    }
    let new = NewSubscription {
        amount: tier.price,
        currency: tier.currency.clone(),
        interval: tier.recurring.as_str().to_owned(),
        product_name: tier.name.clone(),
        payment_method: order.payment_method,
        email: order.email,
        metadata: Payment::intent_metadata(entity_id, user_id, tier),
    };
    let started = state.gateway()?.create_subscription(&new, &order.stripe_key).await?;
    let now = state.clock.now_millis();
    // The record that alone lets invoices of this subscription credit anything.
    let snapshot = Payment::of_tier(&started.id, entity_id, user_id, tier, &started.status, now);
    state.store.put_subscription(&snapshot).await?;
    let update = SubscriptionUpdate {
        subscription_id: started.id.clone(),
        status: Some(started.status.clone()),
        current_period_end: started.current_period_end,
    };
    state.store.update_subscription(entity_id, user_id, &tier.credit_tier_id, &update).await?;
    let (Some(invoice), "active") = (started.latest_invoice.as_deref(), started.status.as_str()) else {
        return Err(ApiError::new(
            ErrorCode::PaymentFailed,
            format!("the subscription's first payment did not go through (status {})", started.status),
        ));
    };
    let credited = credit_invoice(state, &snapshot, invoice).await?;
    // A subscription is paid by invoices: no PaymentIntent of ours names it.
    Ok(json!({
        "subscriptionId": started.id,
        "invoiceId": invoice,
        "status": "succeeded",
        "credited": credited.credited,
        "currentPeriodEnd": started.current_period_end.map(rfc3339),
        "account": credited.account,
    }))
}

/// `POST …/users/{userId}/credit-tiers/{creditTierId}/cancel`: no renewal after this period.
pub async fn cancel(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, user_id, tier_id)): Path<(String, String, String)>,
    body: JsonObject,
) -> ApiResult<Response> {
    caller.check_entity(&entity_id)?;
    ids::validate_user_id("userId", &user_id)?;
    ids::validate_tier_id("creditTierId", &tier_id)?;
    caller.require_actor_for(&user_id)?;
    let _: serde_json::Map<String, Value> = body.parse()?;
    let subscription = live_subscription(&state, &entity_id, &user_id, &tier_id)
        .await?
        .and_then(|p| p.subscription_id)
        .ok_or_else(|| ApiError::not_found("no live subscription of this user to this tier"))?;
    let updated = state.gateway()?.cancel_at_period_end(&subscription).await?;
    let update = SubscriptionUpdate {
        subscription_id: updated.id.clone(),
        status: Some("canceling".into()),
        current_period_end: None,
    };
    state.store.update_subscription(&entity_id, &user_id, &tier_id, &update).await?;
    let account = accounts::read(&state, &entity_id, &user_id).await?;
    let data = json!({
        "creditTierId": tier_id,
        "subscriptionId": updated.id,
        "status": "canceling",
        "currentPeriodEnd": updated.current_period_end.map(rfc3339),
        "account": account.view(state.clock.now_millis()),
    });
    Ok(respond(StatusCode::OK, envelope(data)?))
}
