//! Holds: reserve credits, then capture (consume) or release them; expired holds count as
//! released from their expiry on.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use shared::accounts::{self, Outcome};
use shared::auth::Caller;
use shared::clock::rfc3339;
use shared::domain::account::HoldRecord;
use shared::domain::ledger::{Applied, Change, HoldChange, Operation};
use shared::http::body::Mutation;
use shared::http::{envelope, respond};
use shared::{ApiError, ApiResult, AppState, ErrorCode, ids};

use crate::requests::{account_after, check_path, check_reason, entry_answer, positive_credits};

pub const DEFAULT_TTL_SECONDS: u64 = 900;
pub const MIN_TTL_SECONDS: u64 = 60;
pub const MAX_TTL_SECONDS: u64 = 86_400;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OpenBody {
    credits: u64,
    ttl_seconds: Option<u64>,
    reason: Option<String>,
    #[allow(dead_code)] // read by the idempotency layer from the raw body
    idempotency_key: Option<String>,
}

fn check_hold_id(hold_id: &str) -> ApiResult<()> {
    if hold_id.len() == 26 && hold_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(ApiError::validation("holdId is not a hold id"))
    }
}

/// Opens a hold: 201 `{holdId, credits, expiresAt, account}`.
pub async fn open(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, user_id)): Path<(String, String)>,
    request: Mutation,
) -> ApiResult<Response> {
    check_path(&caller, &entity_id, &user_id)?;
    caller.require_actor_for(&user_id)?;
    let body: OpenBody = request.parse()?;
    check_reason(&body.reason)?;
    let credits = positive_credits("credits", body.credits)?;
    let ttl_seconds = body.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
    if !(MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&ttl_seconds) {
        return Err(ApiError::validation(format!("ttlSeconds must be from {MIN_TTL_SECONDS} to {MAX_TTL_SECONDS}")));
    }
    let key = request.key(&entity_id)?;
    let operation = Operation::Hold { hold_id: ids::new_ordered_id(), credits, ttl_seconds };
    let change = Change { operation, reason: body.reason, idempotency_key: key.client_key() };
    accounts::change(&state, &entity_id, &user_id, &change, &key, |applied, now| {
        let Some(HoldChange::Opened { hold_id, credits, expires_at, .. }) =
            applied.holds.iter().find(|h| matches!(h, HoldChange::Opened { .. }))
        else {
            return Err(ApiError::internal("hold change missing"));
        };
        let data = json!({
            "holdId": hold_id,
            "credits": credits,
            "expiresAt": rfc3339(*expires_at),
            "entryId": applied.main_entry().map(|e| e.entry_id.clone()),
            "account": account_after(applied, now),
        });
        Ok((StatusCode::CREATED, envelope(data)?))
    })
    .await?
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SettleBody {
    credits: Option<u64>,
    reason: Option<String>,
    #[allow(dead_code)] // read by the idempotency layer from the raw body
    idempotency_key: Option<String>,
}

fn settled_answer(applied: &Applied, now: i64, hold_id: &str) -> ApiResult<(StatusCode, serde_json::Value)> {
    let (status, captured, released) = applied
        .holds
        .iter()
        .find_map(|h| match h {
            HoldChange::Settled { hold_id: id, status, captured, released } if id == hold_id => {
                Some((*status, *captured, *released))
            }
            _ => None,
        })
        .ok_or_else(|| ApiError::internal("hold settlement missing"))?;
    let extra = json!({"holdId": hold_id, "status": status.as_str(), "captured": captured, "released": released});
    Ok((StatusCode::OK, entry_answer(applied, now, extra)?))
}

async fn settle(
    caller: Caller,
    state: AppState,
    (entity_id, user_id, hold_id): (String, String, String),
    request: Mutation,
    capture: bool,
) -> ApiResult<Response> {
    check_path(&caller, &entity_id, &user_id)?;
    caller.require_actor_for(&user_id)?;
    check_hold_id(&hold_id)?;
    let body: SettleBody = request.parse()?;
    check_reason(&body.reason)?;
    let operation = match (capture, body.credits) {
        (true, credits) => {
            let credits = credits.map(|c| positive_credits("credits", c)).transpose()?;
            Operation::Capture { hold_id: hold_id.clone(), credits }
        }
        (false, None) => Operation::Release { hold_id: hold_id.clone() },
        (false, Some(_)) => return Err(ApiError::validation("credits: a release frees the whole hold; omit credits")),
    };
    let key = request.key(&entity_id)?;
    let change = Change { operation, reason: body.reason, idempotency_key: key.client_key() };
    let outcome = accounts::change(&state, &entity_id, &user_id, &change, &key, |applied, now| {
        settled_answer(applied, now, &hold_id)
    })
    .await;
    match outcome {
        Err(err) if err.code == ErrorCode::HoldNotActive => {
            Err(not_active(&state, &entity_id, &user_id, &hold_id).await)
        }
        other => other.and_then(Outcome::into_response),
    }
}

/// Why a hold could not be settled: unknown (404) or already settled or expired (409).
async fn not_active(state: &AppState, entity_id: &str, user_id: &str, hold_id: &str) -> ApiError {
    match state.store.get_hold(entity_id, user_id, hold_id).await {
        Ok(Some(hold)) => {
            ApiError::new(ErrorCode::HoldNotActive, format!("the hold is {}", hold.status_at(state.clock.now_millis())))
        }
        Ok(None) => ApiError::not_found("hold not found"),
        Err(err) => err.into(),
    }
}

pub async fn capture(
    caller: Caller,
    State(state): State<AppState>,
    Path(path): Path<(String, String, String)>,
    request: Mutation,
) -> ApiResult<Response> {
    settle(caller, state, path, request, true).await
}

pub async fn release(
    caller: Caller,
    State(state): State<AppState>,
    Path(path): Path<(String, String, String)>,
    request: Mutation,
) -> ApiResult<Response> {
    settle(caller, state, path, request, false).await
}

fn hold_view(hold: &HoldRecord, now: i64) -> serde_json::Value {
    json!({
        "holdId": hold.hold_id,
        "credits": hold.credits,
        "status": hold.status_at(now),
        "capturedCredits": hold.captured_credits,
        "reason": hold.reason,
        "expiresAt": rfc3339(hold.expires_at),
        "createdAt": rfc3339(hold.created_at),
        "settledAt": hold.settled_at.map(rfc3339),
    })
}

/// A hold with its status as of now.
pub async fn read(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, user_id, hold_id)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    check_path(&caller, &entity_id, &user_id)?;
    caller.require_reader_of(&user_id)?;
    check_hold_id(&hold_id)?;
    let hold = state
        .store
        .get_hold(&entity_id, &user_id, &hold_id)
        .await?
        .ok_or_else(|| ApiError::not_found("hold not found"))?;
    Ok(respond(StatusCode::OK, envelope(hold_view(&hold, state.clock.now_millis()))?))
}
