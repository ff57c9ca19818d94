//! Holds: open, read, capture, release.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use shared::auth::Caller;
use shared::clock::rfc3339;
use shared::http::body::Mutation;
use shared::http::{answer, ok};
use shared::usecases::holds::{self, HoldState, NewHold, Opened, Settled, Settlement};
use shared::{AppState, Fallible};

use crate::requests::Target;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OpenBody {
    credits: u64,
    ttl_seconds: Option<u64>,
    reason: Option<String>,
    #[allow(dead_code)] // read by the idempotency layer from the raw body
    idempotency_key: Option<String>,
}

fn opened(opened: Opened) -> Value {
    json!({
        "holdId": opened.hold_id,
        "credits": opened.credits,
        "expiresAt": rfc3339(opened.expires_at),
        "entryId": opened.entry_id,
        "account": opened.account,
    })
}

/// Opens a hold: 201 `{holdId, credits, expiresAt, account}`.
pub async fn open(
    caller: Caller,
    State(state): State<AppState>,
    target: Target,
    request: Mutation,
) -> Fallible<Response> {
    let account = target.to_spend(&caller)?;
    let body: OpenBody = request.parse()?;
    let hold = NewHold::new(body.credits, body.ttl_seconds, body.reason)?;
    let key = request.key(target.entity_id())?;
    answer(StatusCode::CREATED, holds::open(state.context(), account, hold, &key).await?, opened)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SettleBody {
    credits: Option<u64>,
    reason: Option<String>,
    #[allow(dead_code)] // read by the idempotency layer from the raw body
    idempotency_key: Option<String>,
}

fn settled(settled: Settled) -> Value {
    json!({
        "entryId": settled.entry_id,
        "account": settled.account,
        "holdId": settled.hold_id,
        "status": settled.status,
        "captured": settled.captured,
        "released": settled.released,
    })
}

type Settle = fn(Option<u64>, Option<String>) -> Fallible<Settlement>;

async fn settle(
    caller: Caller,
    state: AppState,
    target: Target,
    request: Mutation,
    settlement: Settle,
) -> Fallible<Response> {
    let account = target.to_spend(&caller)?;
    let hold_id = target.hold_id()?;
    holds::check_hold_id(hold_id)?;
    let body: SettleBody = request.parse()?;
    let settlement = settlement(body.credits, body.reason)?;
    let key = request.key(target.entity_id())?;
    answer(StatusCode::OK, holds::settle(state.context(), account, hold_id, settlement, &key).await?, settled)
}

pub async fn capture(
    caller: Caller,
    State(state): State<AppState>,
    target: Target,
    request: Mutation,
) -> Fallible<Response> {
    settle(caller, state, target, request, Settlement::capture).await
}

pub async fn release(
    caller: Caller,
    State(state): State<AppState>,
    target: Target,
    request: Mutation,
) -> Fallible<Response> {
    settle(caller, state, target, request, Settlement::release).await
}

fn hold_view(HoldState { hold, status }: HoldState) -> Value {
    json!({
        "holdId": hold.hold_id,
        "credits": hold.credits,
        "status": status,
        "capturedCredits": hold.captured_credits,
        "reason": hold.reason,
        "expiresAt": rfc3339(hold.expires_at),
        "createdAt": rfc3339(hold.created_at),
        "settledAt": hold.settled_at.map(rfc3339),
    })
}

/// A hold with its status as of now.
pub async fn read(caller: Caller, State(state): State<AppState>, target: Target) -> Fallible<Response> {
    let account = target.to_read(&caller)?;
    ok(StatusCode::OK, hold_view(holds::read(state.context(), account, target.hold_id()?).await?))
}
