//! Idempotency (§1): every mutation runs through `run`, once per key. Same key + same request
//! answers the first outcome (`replayed`); same key + another request is refused; a refusal
//! stores nothing, so the key stays free for a corrected request.
//!
//! Two shapes, one entry point: an effect that is one store transaction writes its record in
//! that transaction (`Performed::Committed`); an effect outside one transaction (a Stripe
//! call, a batch) is checked against the key first and recorded after (`Performed::Done`),
//! every step of it being idempotent on its own. Outcomes are stored typed, so each face
//! renders its own wire shape from them.
//!
//! Credit changes keep their keys in the account item instead, in the same single-item write
//! as the change (`accounts`), after claiming the key with a pending record; the claim is
//! replaced by the outcome when the change moves out of the account's journal. They use this
//! module's keys and records, not `run`.

mod key;

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use key::{IdempotencyKey, hex, is_generated, named_with_version};

use crate::clock::Clock;
use crate::error::Error;
use crate::store::{IdempotencyStore, StoreError, StoreResult, StoredOutcome};

/// An outcome worth keeping: stored as JSON, read back on replay. Secret fields are
/// `#[serde(skip_serializing, default)]`, so a replay shows them empty.
pub trait Outcome: Serialize + DeserializeOwned + Send {}
impl<T: Serialize + DeserializeOwned + Send> Outcome for T {}

/// An operation's answer: fresh, or the first answer under the key replayed.
#[derive(Debug, Clone)]
pub struct Answer<T> {
    pub outcome: T,
    pub replayed: bool,
}

impl<T> Answer<T> {
    fn fresh(outcome: T) -> Self {
        Self { outcome, replayed: false }
    }
}

/// What an effect did.
pub enum Performed<T> {
    /// Wrote `outcome` with its record (`IdempotencyKey::record`) in one store transaction;
    /// the result is how that write went. A failed condition of the effect's own is already
    /// the effect's error (see `committed`).
    Committed(T, StoreResult<()>),
    /// Done outside one transaction: `run` records it.
    Done(T),
    /// Done outside one transaction, but part of it may still turn out otherwise (a batch
    /// item's outcome unknown): answered, never recorded, so a retry under the key does that
    /// part again instead of replaying a passing failure.
    Unsettled(T),
}

/// `Committed`, with the effect's own failed condition turned into its refusal.
pub fn committed<T>(
    outcome: T,
    written: StoreResult<()>,
    refusal: impl FnOnce() -> Error,
) -> Result<Performed<T>, Error> {
    match written {
        Err(StoreError::ConditionFailed) => Err(refusal()),
        written => Ok(Performed::Committed(outcome, written)),
    }
}

/// The ports `run` needs.
#[derive(Clone, Copy)]
pub struct Guard<'a> {
    pub store: &'a dyn IdempotencyStore,
    pub clock: &'a dyn Clock,
}

/// Runs `effect` once under `key`. An effect that writes its record itself (`Committed`)
/// runs first, as the write finds an earlier record anyway; a refusal then checks the key,
/// so a replay answers as the first request did even if the rules would now refuse it. Any
/// other effect runs only if the key has no outcome yet.
pub async fn run<T, F, Fut>(guard: Guard<'_>, key: &IdempotencyKey, shape: Shape, effect: F) -> Result<Answer<T>, Error>
where
    T: Outcome,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Performed<T>, Error>>,
{
    if shape == Shape::Outside
        && let Some(stored) = prior(guard, key).await?
    {
        return replayed(key, &stored);
    }
    let performed = match effect().await {
        Ok(performed) => performed,
        Err(refusal @ (Error::Unavailable { .. } | Error::Internal)) => return Err(refusal),
        Err(refusal) if shape == Shape::Outside => return Err(refusal),
        Err(refusal) => {
            return match prior(guard, key).await? {
                Some(stored) => replayed(key, &stored),
                None => Err(refusal),
            };
        }
    };
    match performed {
        Performed::Committed(outcome, written) => settle(guard, key, outcome, written).await,
        // Its key was not checked before it ran: a bug to see in tests, never to record.
        Performed::Done(_) | Performed::Unsettled(_) if shape == Shape::OneTransaction => {
            Err(Error::internal("an effect outside one transaction ran without Shape::Outside"))
        }
        Performed::Unsettled(outcome) => Ok(Answer::fresh(outcome)),
        Performed::Done(outcome) if !key.client_supplied => Ok(Answer::fresh(outcome)),
        Performed::Done(outcome) => {
            let record = key.record(&outcome, guard.clock.now_millis())?;
            let written = guard.store.put_response(&record).await;
            settle(guard, key, outcome, written).await
        }
    }
}

/// Whether the effect writes its record in its own transaction (it returns `Committed`), or
/// acts outside one and must have its key checked first (it returns `Done`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    OneTransaction,
    Outside,
}

fn replayed<T: Outcome>(key: &IdempotencyKey, stored: &StoredOutcome) -> Result<Answer<T>, Error> {
    Ok(Answer { outcome: key.replay(stored)?, replayed: true })
}

/// The unexpired record under a client's key, if any.
async fn prior(guard: Guard<'_>, key: &IdempotencyKey) -> Result<Option<StoredOutcome>, Error> {
    if !key.client_supplied {
        return Ok(None);
    }
    let stored = guard.store.get_response(&key.entity_id, &key.key).await?;
    Ok(stored.filter(|stored| stored.expires_at > guard.clock.now_millis()))
}

/// The write landing, or failing on the record its own earlier attempt wrote (the store's
/// answer was lost and the SDK retried), answers fresh, secrets included. A record of another
/// request (the key used concurrently) is replayed.
async fn settle<T: Outcome>(
    guard: Guard<'_>,
    key: &IdempotencyKey,
    outcome: T,
    written: StoreResult<()>,
) -> Result<Answer<T>, Error> {
    match written {
        Ok(()) => Ok(Answer::fresh(outcome)),
        Err(StoreError::IdempotencyHit(stored)) if key.is_own(&stored) => Ok(Answer::fresh(outcome)),
        Err(StoreError::IdempotencyHit(stored)) => replayed(key, &stored),
        Err(StoreError::Unavailable(cause)) => resolve_unavailable(guard, key, cause).await,
        Err(err) => Err(err.into()),
    }
}

/// After the store stopped answering, the write may or may not have landed. Its own record
/// says which: found, the effect happened and its outcome is replayed; absent, it did not.
async fn resolve_unavailable<T: Outcome>(
    guard: Guard<'_>,
    key: &IdempotencyKey,
    cause: String,
) -> Result<Answer<T>, Error> {
    tracing::warn!(%cause, "store unavailable; checking whether the write landed");
    let stored = crate::store::dynamo::retry_read(|| guard.store.get_response(&key.entity_id, &key.key)).await;
    match stored {
        Ok(Some(stored)) => replayed(key, &stored),
        Ok(None) => Err(Error::unavailable()),
        // Not even the record could be read: say so, and how to learn the outcome later.
        Err(_) => Err(Error::Unavailable { unknown_outcome_key: Some(key.key.clone()) }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use serde_json::json;

    use super::*;
    use crate::clock::ManualClock;

    /// Records in memory, written only when the key is free (as the table's condition does).
    #[derive(Default)]
    struct Records(Mutex<HashMap<String, StoredOutcome>>);

    #[async_trait]
    impl IdempotencyStore for Records {
        async fn get_response(&self, _: &str, key: &str) -> StoreResult<Option<StoredOutcome>> {
            Ok(self.0.lock().map_err(|e| StoreError::Internal(e.to_string()))?.get(key).cloned())
        }

        async fn put_response(&self, record: &StoredOutcome) -> StoreResult<()> {
            let mut records = self.0.lock().map_err(|e| StoreError::Internal(e.to_string()))?;
            match records.get(&record.key) {
                Some(earlier) => Err(StoreError::IdempotencyHit(Box::new(earlier.clone()))),
                None => {
                    records.insert(record.key.clone(), record.clone());
                    Ok(())
                }
            }
        }

        async fn reserve(&self, record: &StoredOutcome) -> StoreResult<crate::store::Reserved> {
            match self.put_response(record).await {
                Ok(()) => Ok(crate::store::Reserved::New),
                Err(StoreError::IdempotencyHit(earlier)) => Ok(crate::store::Reserved::Existing(earlier)),
                Err(err) => Err(err),
            }
        }

        async fn release(&self, _: &str, key: &str, _: &str) -> StoreResult<()> {
            self.0.lock().map_err(|e| StoreError::Internal(e.to_string()))?.remove(key);
            Ok(())
        }
    }

    fn key(body: serde_json::Value) -> IdempotencyKey {
        IdempotencyKey::from_request(Some(b"k"), "e-1", "POST /x", &body).unwrap()
    }

    #[tokio::test]
    async fn an_effect_outside_one_transaction_runs_once_and_is_replayed() {
        let (records, clock, runs) = (Records::default(), ManualClock::starting_now(), AtomicUsize::new(0));
        let guard = Guard { store: &records, clock: &clock };
        let effect = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(Performed::Done(7u64))
        };
        let first = run(guard, &key(json!({"a": 1})), Shape::Outside, effect).await.unwrap();
        let again = run(guard, &key(json!({"a": 1})), Shape::Outside, effect).await.unwrap();
        assert_eq!((first.outcome, first.replayed, again.outcome, again.replayed), (7, false, 7, true));
        assert_eq!(runs.load(Ordering::SeqCst), 1, "a replay does not run the effect");
        let other = run(guard, &key(json!({"a": 2})), Shape::Outside, effect).await;
        assert!(matches!(other, Err(Error::IdempotencyKeyReused)));
    }

    #[tokio::test]
    async fn a_refusal_stores_nothing() {
        let (records, clock) = (Records::default(), ManualClock::starting_now());
        let guard = Guard { store: &records, clock: &clock };
        let refused: Result<Answer<u64>, _> =
            run(guard, &key(json!({})), Shape::Outside, || async { Err(Error::TierArchived) }).await;
        assert!(matches!(refused, Err(Error::TierArchived)));
        let corrected = run(guard, &key(json!({})), Shape::Outside, || async { Ok(Performed::Done(1u64)) }).await;
        assert!(!corrected.unwrap().replayed, "the key stayed free");
    }

    #[tokio::test]
    async fn a_write_meeting_its_own_record_answers_in_full_and_a_second_request_is_replayed() {
        let (records, clock) = (Records::default(), ManualClock::starting_now());
        let guard = Guard { store: &records, clock: &clock };
        let first = key(json!({}));
        let own = first.record(&1u64, clock.now_millis()).unwrap();
        let hit = |stored: &StoredOutcome| Err(StoreError::IdempotencyHit(Box::new(stored.clone())));
        let answer = run(guard, &first, Shape::OneTransaction, || async { Ok(Performed::Committed(2u64, hit(&own))) });
        let answer = answer.await.unwrap();
        assert_eq!((answer.outcome, answer.replayed), (2, false), "its own earlier attempt: answered in full");
        let retry = key(json!({}));
        let answer = run(guard, &retry, Shape::OneTransaction, || async { Ok(Performed::Committed(3u64, hit(&own))) });
        let answer = answer.await.unwrap();
        assert_eq!((answer.outcome, answer.replayed), (1, true), "a second request gets the first outcome");
    }

    #[tokio::test]
    async fn a_refused_transaction_replays_the_first_outcome() {
        let (records, clock) = (Records::default(), ManualClock::starting_now());
        let guard = Guard { store: &records, clock: &clock };
        records.put_response(&key(json!({})).record(&5u64, clock.now_millis()).unwrap()).await.unwrap();
        let refused = || async { Err(Error::InsufficientCredits { requested: 1, available: 0 }) };
        let answer: Answer<u64> = run(guard, &key(json!({})), Shape::OneTransaction, refused).await.unwrap();
        assert_eq!((answer.outcome, answer.replayed), (5, true));
    }
}
