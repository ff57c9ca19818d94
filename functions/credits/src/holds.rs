//! Holds: open, read, capture, release.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use shared::auth::Caller;
use shared::clock::rfc3339;
use shared::http::body::Mutation;
use shared::http::{answer, ok};
use shared::usecases::holds::{self, HoldState, NewHold, Opened, Settled, Settlement};
use shared::{AppState, Fallible};

use crate::requests::Target;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({"credits": 10, "ttlSeconds": 600, "reason": "a long render"}))]
pub struct OpenBody {
    #[schema(minimum = 1, maximum = 1_000_000_000_000_u64)]
    credits: u64,
    /// 60-86400, default 900.
    #[schema(minimum = 60, maximum = 86_400)]
    ttl_seconds: Option<u64>,
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    reason: Option<String>,
    #[allow(dead_code)] // read by the idempotency layer from the raw body
    #[schema(pattern = "^[\\x20-\\x7E]{1,255}$")]
    idempotency_key: Option<String>,
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
    answer(StatusCode::CREATED, holds::open(state.context(), account, hold, &key).await?, |o: Opened| o)
}

/// Capture takes `credits` 1…held (default all); release takes none.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SettleBody {
    #[schema(minimum = 1, maximum = 1_000_000_000_000_u64)]
    credits: Option<u64>,
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    reason: Option<String>,
    #[allow(dead_code)] // read by the idempotency layer from the raw body
    #[schema(pattern = "^[\\x20-\\x7E]{1,255}$")]
    idempotency_key: Option<String>,
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
    answer(StatusCode::OK, holds::settle(state.context(), account, hold_id, settlement, &key).await?, |s: Settled| s)
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

/// A hold and what became of it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HoldView {
    hold_id: String,
    credits: u64,
    /// `active | captured | released | expired`, as of now.
    status: String,
    captured_credits: u64,
    reason: Option<String>,
    #[schema(format = DateTime)]
    expires_at: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    settled_at: Option<String>,
}

fn hold_view(HoldState { hold, status }: HoldState) -> HoldView {
    HoldView {
        hold_id: hold.hold_id,
        credits: hold.credits,
        status,
        captured_credits: hold.captured_credits,
        reason: hold.reason,
        expires_at: rfc3339(hold.expires_at),
        created_at: rfc3339(hold.created_at),
        settled_at: hold.settled_at.map(rfc3339),
    }
}

/// A hold with its status as of now.
pub async fn read(caller: Caller, State(state): State<AppState>, target: Target) -> Fallible<Response> {
    let account = target.to_read(&caller)?;
    ok(StatusCode::OK, hold_view(holds::read(state.context(), account, target.hold_id()?).await?))
}
