//! Changing and reading credit accounts: the one path every credit mutation takes (spends,
//! grants, purchases, holds; later payments and webhooks), so each lands exactly once.

mod slots;

pub use slots::AccountSlots;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use crate::app::AppState;
use crate::domain::account::Account;
use crate::domain::ledger::{Applied, Change, Operation, apply};
use crate::error::ApiError;
use crate::http::{idempotent, respond};
use crate::idempotency::{IdempotencyKey, StoredResponse};
use crate::ids::new_ordered_id;
use crate::store::StoreError;

/// Writes one change may try before giving up on a contended account (with backoff, at most
/// about 3 s in all, within the functions' time-out).
const MAX_ATTEMPTS: usize = 10;

/// What a change answered: freshly, or by replaying the answer stored under its key.
pub enum Outcome {
    Done { status: StatusCode, body: Value, applied: Box<Applied> },
    Replayed { key: IdempotencyKey, stored: Box<StoredResponse> },
}

impl Outcome {
    pub fn into_response(self) -> Result<Response, ApiError> {
        match self {
            Self::Done { status, body, .. } => Ok(respond(status, body)),
            Self::Replayed { key, stored } => key.replay(&stored),
        }
    }

    /// The answer's body (for batches, which answer per item).
    pub fn into_body(self) -> Result<Value, ApiError> {
        match self {
            Self::Done { body, .. } => Ok(body),
            Self::Replayed { key, stored } => {
                key.replay(&stored)?;
                serde_json::from_str(&stored.body).map_err(ApiError::internal)
            }
        }
    }
}

/// Applies `change` to the account exactly once under `key`. `answer` builds the response
/// from the applied change; it is stored with the change, so a replay answers the same.
pub async fn change(
    state: &AppState,
    entity_id: &str,
    user_id: &str,
    change: &Change,
    key: &IdempotencyKey,
    answer: impl Fn(&Applied, i64) -> Result<(StatusCode, Value), ApiError>,
) -> Result<Outcome, ApiError> {
    let slot = state.accounts.slot(entity_id, user_id);
    let mut cached = slot.lock().await;
    let (mut snapshot, mut fresh) = match cached.take() {
        Some(account) => (account, false),
        None => (load(state, entity_id, user_id).await?, true),
    };
    for attempt in 1..=MAX_ATTEMPTS {
        let now = state.clock.now_millis();
        let applied = match apply(&snapshot, change, now, &mut new_ordered_id) {
            Ok(applied) => applied,
            // The cached state may be behind (credits granted elsewhere): check the store.
            Err(_) if !fresh => {
                snapshot = load(state, entity_id, user_id).await?;
                fresh = true;
                continue;
            }
            Err(err) => {
                *cached = Some(snapshot);
                return match idempotent::prior_stored(state, key).await? {
                    Some(stored) => Ok(Outcome::Replayed { key: key.clone(), stored: Box::new(stored) }),
                    None => Err(err),
                };
            }
        };
        let (status, body) = answer(&applied, now)?;
        let record = key.record(status, &body, now);
        match state.store.commit(&applied, &record).await {
            Ok(()) => {
                *cached = Some(applied.account.clone());
                return Ok(Outcome::Done { status, body, applied: Box::new(applied) });
            }
            Err(StoreError::Stale(current)) => {
                snapshot = *current;
                fresh = true;
                // Another process is writing this account: let it get ahead before retrying.
                crate::store::dynamo::backoff(attempt as u32).await;
            }
            // Our own earlier attempt landed (its answer was lost and the SDK retried).
            Err(StoreError::IdempotencyHit(stored)) if key.is_own(&stored) => {
                *cached = Some(applied.account.clone());
                return Ok(Outcome::Done { status, body, applied: Box::new(applied) });
            }
            Err(StoreError::IdempotencyHit(stored)) => return Ok(Outcome::Replayed { key: key.clone(), stored }),
            Err(StoreError::Unavailable(cause)) => return resolve_unavailable(state, key, cause).await,
            Err(err) => return Err(err.into()),
        }
    }
    tracing::warn!(entity_id, user_id, "account too contended; giving up");
    // The last state seen is the freshest there is: keep it for the next change.
    *cached = Some(snapshot);
    Err(ApiError::unavailable())
}

/// After the store stopped answering, the write may or may not have landed. Its own
/// idempotency record says which: found, the change happened and its answer is replayed;
/// absent, it did not happen.
async fn resolve_unavailable(state: &AppState, key: &IdempotencyKey, cause: String) -> Result<Outcome, ApiError> {
    tracing::warn!(%cause, "store unavailable; checking whether the write landed");
    let stored = crate::store::dynamo::retry_read(|| state.store.get_response(&key.entity_id, &key.key)).await;
    match stored {
        Ok(Some(stored)) => Ok(Outcome::Replayed { key: key.clone(), stored: Box::new(stored) }),
        Ok(None) => Err(ApiError::unavailable()),
        // Not even the record could be read: say so, and how to learn the outcome later.
        Err(_) => Err(ApiError::new(
            crate::error::ErrorCode::Unavailable,
            "the outcome is unknown; retry with the Idempotency-Key in error.idempotencyKey to learn it",
        )
        .with_details(serde_json::json!({"idempotencyKey": key.key}))),
    }
}

async fn load(state: &AppState, entity_id: &str, user_id: &str) -> Result<Account, ApiError> {
    Ok(state.store.get_account(entity_id, user_id).await?.unwrap_or_else(|| Account::empty(entity_id, user_id)))
}

/// The account as of now. Holds that expired since the last write are recorded first (an
/// `expire` entry each), so the ledger explains every read.
pub async fn read(state: &AppState, entity_id: &str, user_id: &str) -> Result<Account, ApiError> {
    let account = load(state, entity_id, user_id).await?;
    if account.expired_hold_ids(state.clock.now_millis()).is_empty() {
        return Ok(account);
    }
    let sweep = Change { operation: Operation::Sweep, reason: None, idempotency_key: None };
    let key = IdempotencyKey::internal(entity_id, &format!("sweep {user_id}"));
    let outcome = change(state, entity_id, user_id, &sweep, &key, |_, _| Ok((StatusCode::OK, Value::Null))).await;
    match outcome {
        Ok(Outcome::Done { applied, .. }) => Ok(applied.account),
        // Someone else recorded the expiry first: read what they wrote.
        _ => load(state, entity_id, user_id).await,
    }
}
