//! Q7: the client says a payment went through; Stripe is asked, and a succeeded payment is
//! credited once (shared with Q5 and the webhook).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use shared::auth::Caller;
use shared::http::body::JsonObject;
use shared::http::{envelope, respond};
use shared::payments::credit_payment;
use shared::{ApiError, ApiResult, AppState, ErrorCode, ids};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ApproveBody {
    payment_intent_id: String,
    #[allow(dead_code)] // approving is idempotent by PaymentIntent; a key changes nothing
    idempotency_key: Option<String>,
}

pub async fn approve(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, user_id)): Path<(String, String)>,
    body: JsonObject,
) -> ApiResult<Response> {
    caller.check_entity(&entity_id)?;
    ids::validate_user_id("userId", &user_id)?;
    caller.require_actor_for(&user_id)?;
    let body: ApproveBody = body.parse()?;
    let id = body.payment_intent_id;
    if !id.starts_with("pi_") || id.len() > 255 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(ApiError::validation("paymentIntentId must be a PaymentIntent id (pi_…)"));
    }
    let not_found = || ApiError::not_found("no such payment for this user");
    // Only a payment this service recorded for this user can be credited, and only with
    // what the record says it bought.
    let payment = state.store.get_payment(&id).await?.ok_or_else(not_found)?;
    if payment.entity_id != entity_id || payment.user_id != user_id {
        return Err(not_found());
    }
    let intent = state.gateway()?.retrieve_intent(&id).await?.ok_or_else(not_found)?;
    if !intent.succeeded() {
        return Err(ApiError::new(
            ErrorCode::PaymentNotSucceeded,
            format!("the payment has not succeeded: its status is {}", intent.status),
        ));
    }
    if !payment.matches(intent.amount, &intent.currency) {
        tracing::warn!(payment_intent_id = %id, "intent amount or currency differs from the payment record");
        return Err(not_found());
    }
    let credited = credit_payment(&state, &payment).await?;
    let data = json!({
        "paymentIntentId": id,
        "status": "succeeded",
        "credited": credited.credited,
        "alreadyCredited": credited.already_credited,
        "entryId": credited.entry_id,
        "account": credited.account,
    });
    Ok(respond(StatusCode::OK, envelope(data)?))
}
