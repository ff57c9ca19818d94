//! The request-side flow around idempotency keys, shared by every mutating route.

use axum::response::Response;

use crate::app::AppState;
use crate::error::ApiError;
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

/// Interprets a failed guarded write: a key used concurrently (or our own earlier attempt,
/// after an ambiguous outcome) replays its answer; a failed condition becomes the
/// caller's business error.
pub fn failed(
    key: &IdempotencyKey,
    err: StoreError,
    on_condition: impl FnOnce() -> ApiError,
) -> Result<Response, ApiError> {
    match err {
        StoreError::IdempotencyHit(stored) => key.replay(&stored),
        StoreError::ConditionFailed => Err(on_condition()),
        err => Err(err.into()),
    }
}
