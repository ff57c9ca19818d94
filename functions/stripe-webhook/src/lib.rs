//! `POST /api/stripe/webhook`: Stripe's events, verified by signature over the raw body,
//! each acted on at most once.

mod events;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use serde_json::{Value, json};
use stripe_webhook::{Webhook, WebhookError};
use utoipa::ToSchema;

use shared::http::api::{Access, Api, Route};
use shared::http::body::MAX_BODY_BYTES;
use shared::http::ok;
use shared::{AppState, Error, Fallible};

pub fn api() -> Api {
    Api::new("stripe-webhook").route(
        Route::post("/api/stripe/webhook", "receiveStripeEvent", "Stripe's events, signed (Stripe-Signature)")
            .access(Access::StripeSignature)
            .body_schema(|_| json!({"type": "object", "description": "A Stripe event"}))
            .ok::<Received>(StatusCode::OK),
        receive,
    )
}

pub fn router(state: AppState) -> Router {
    api().router(state)
}

/// `handled` says whether the event's type is one this service acts on; `duplicate`, that
/// the event was processed before.
#[derive(Serialize, ToSchema)]
struct Received {
    received: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    handled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicate: Option<bool>,
}

/// Checks the `Stripe-Signature` header against the raw body (any `v1` may match; the
/// timestamp within 300 s of our clock) and returns the event as JSON.
fn verify(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Fallible<Value> {
    let secret = state
        .config
        .stripe
        .as_ref()
        .and_then(|stripe| stripe.webhook_secret.as_ref())
        .ok_or_else(|| Error::internal("webhook served without STRIPE_WEBHOOK_SECRET"))?;
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::validation("Stripe-Signature header is required"))?;
    let payload = std::str::from_utf8(body).map_err(|_| Error::validation("body must be UTF-8 JSON"))?;
    let now = state.clock.now_millis() / 1000;
    match Webhook::construct_event_with_timestamp(payload, signature, secret.expose(), now) {
        // A verified event whose object the typed parser does not know is still ours to read.
        Ok(_) | Err(WebhookError::BadParse(_)) => {}
        Err(WebhookError::BadTimestamp(_)) => {
            return Err(Error::validation("Stripe-Signature timestamp is outside the 300 s tolerance"));
        }
        Err(_) => return Err(Error::validation("Stripe-Signature does not match the body")),
    }
    serde_json::from_str(payload).map_err(|_| Error::validation("body is not a Stripe event"))
}

async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Fallible<Response> {
    if body.len() > MAX_BODY_BYTES * 4 {
        return Err(Error::PayloadTooLarge("event too large".into()));
    }
    let event = verify(&state, &headers, &body)?;
    let (Some(id), Some(kind)) = (event["id"].as_str(), event["type"].as_str()) else {
        return Err(Error::validation("event must have an id and a type"));
    };
    if state.store.event_processed(id).await? {
        return ok(StatusCode::OK, Received { received: true, handled: None, duplicate: Some(true) });
    }
    let handled = events::handle(&state, kind, &event["data"]["object"]).await?;
    state.store.mark_event_processed(id, kind, state.clock.now_millis()).await?;
    tracing::info!(event_id = id, event_type = kind, handled, "stripe event");
    ok(StatusCode::OK, Received { received: true, handled: Some(handled), duplicate: None })
}
