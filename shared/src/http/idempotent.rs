//! The request-side flow around idempotency keys, shared by every mutating route.
//!
//! Two shapes, one rule set: a mutation that is one store transaction writes its record in
//! that transaction and reads the outcome with `settle`; a mutation whose effect lies
//! outside one transaction (a Stripe call, a batch of spends) runs inside `guarded`, which
//! records its answer after the effect, every step of which is itself idempotent.

use std::future::Future;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use crate::app::AppState;
use crate::error::ApiError;
use crate::http::respond;
use crate::idempotency::{IdempotencyKey, StoredResponse};
use crate::store::StoreError;

/// The earlier answer under a client's key, if any: checked before any business rule, so
/// a replay answers as the first request did even if the rules would now refuse it.
pub async fn prior(state: &AppState, key: &IdempotencyKey) -> Result<Option<Response>, ApiError> {
    match prior_stored(state, key).await? {
        Some(stored) => key.replay(&stored).map(Some),
        None => Ok(None),
    }
}

/// The unexpired record under a client's key, if any.
pub async fn prior_stored(state: &AppState, key: &IdempotencyKey) -> Result<Option<StoredResponse>, ApiError> {
    if !key.client_supplied {
        return Ok(None);
    }
    let stored = state.store.get_response(&key.entity_id, &key.key).await?;
    Ok(stored.filter(|stored| stored.expires_at > state.clock.now_millis()))
}

/// Reads the outcome of a guarded write whose fresh answer is `fresh`. The write landing,
/// or failing on the record its own earlier attempt wrote (the store's answer was lost and
/// the SDK retried), answers `fresh` in full, secrets included. A record of another request
/// (the key used concurrently) is replayed; a failed condition is the caller's business
/// error.
pub fn settle(
    key: &IdempotencyKey,
    written: Result<(), StoreError>,
    fresh: (StatusCode, Value),
    on_condition: impl FnOnce() -> ApiError,
) -> Result<Response, ApiError> {
    match written {
        Ok(()) => Ok(respond(fresh.0, fresh.1)),
        Err(StoreError::IdempotencyHit(stored)) if key.is_own(&stored) => Ok(respond(fresh.0, fresh.1)),
        Err(StoreError::IdempotencyHit(stored)) => key.replay(&stored),
        Err(StoreError::ConditionFailed) => Err(on_condition()),
        Err(err) => Err(err.into()),
    }
}

/// Runs a mutation whose effect is not one store transaction: replays the answer stored
/// under the client's key, else runs `effect` and records its answer. Only answers are
/// recorded, never refusals, so a refused request leaves the key free for a corrected one.
pub async fn guarded<F>(state: &AppState, key: &IdempotencyKey, effect: F) -> Result<Response, ApiError>
where
    F: Future<Output = Result<(StatusCode, Value), ApiError>>,
{
    if let Some(replay) = prior(state, key).await? {
        return Ok(replay);
    }
    let (status, body) = effect.await?;
    if !key.client_supplied {
        return Ok(respond(status, body));
    }
    let record = key.record(status, &body, state.clock.now_millis());
    let written = state.store.put_response(&record).await;
    settle(key, written, (status, body), || ApiError::internal("idempotency record refused"))
}
