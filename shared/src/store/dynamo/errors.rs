//! SDK errors → store errors, and the bounded retry of transaction conflicts.

use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;

use crate::store::{StoreError, StoreResult};

/// Answers worth retrying: throttling, and a single-item write that met an ongoing
/// transaction on its item.
const THROTTLING: [&str; 5] = [
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "ThrottlingException",
    "TransactionInProgressException",
    "TransactionConflictException",
];

/// Attempts for a transaction that keeps conflicting with concurrent ones.
const CONFLICT_ATTEMPTS: u32 = 6;
const BACKOFF_BASE_MS: u64 = 10;

/// Throttling, time-outs, connection failures and 5xx are `Unavailable`; the rest `Internal`.
pub fn classify<E>(err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let unavailable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(service) => {
            THROTTLING.contains(&service.err().code().unwrap_or_default())
                || service.raw().status().is_server_error()
                || is_item_too_large(service.err())
        }
        _ => false,
    };
    let context = DisplayErrorContext(&err).to_string();
    if unavailable { StoreError::Unavailable(context) } else { StoreError::Internal(context) }
}

/// DynamoDB's refusal of a write that would make an item pass 400 KB: the account's journal
/// grew faster than it moved out, which moving catches up on (so: try again later).
fn is_item_too_large(err: &impl ProvideErrorMetadata) -> bool {
    err.code() == Some("ValidationException")
        && err.message().is_some_and(|m| m.contains("Item size") || m.contains("item size"))
}

/// A single-item write's outcome: `None` when its condition did not hold.
pub fn condition_held<T, E>(result: Result<T, SdkError<E, HttpResponse>>) -> StoreResult<Option<T>>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err) if err.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException") => {
            Ok(None)
        }
        Err(err) => Err(classify(err)),
    }
}

/// Why a transaction did not commit.
pub enum TxFailure {
    /// A condition failed: the first failing action, with the item as it was (when asked).
    Condition {
        index: usize,
        item: Option<super::Item>,
        /// Every action whose condition failed, in order.
        failed: Vec<usize>,
    },
    Store(StoreError),
}

impl From<StoreError> for TxFailure {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

impl TxFailure {
    /// The common reading: a used idempotency key (at `idem_index`) replays; any other failed
    /// condition is `ConditionFailed`.
    pub fn into_store_error(self, idem_index: Option<usize>) -> StoreError {
        match self {
            Self::Condition { index, item, .. } if Some(index) == idem_index => {
                match item.map(super::idempotency::from_item) {
                    Some(Ok(stored)) => StoreError::IdempotencyHit(Box::new(stored)),
                    _ => StoreError::Internal("idempotency record failed its condition but was not returned".into()),
                }
            }
            Self::Condition { .. } => StoreError::ConditionFailed,
            Self::Store(err) => err,
        }
    }
}

/// Waits before retry number `tries` (1, 2, …): jittered, exponential, capped.
pub async fn backoff(tries: u32) {
    let ceiling = BACKOFF_BASE_MS << tries.min(6);
    tokio::time::sleep(Duration::from_millis(fastrand::u64(ceiling / 2..=ceiling))).await;
}

/// A cancelled transaction's reasons: conditions first (the idempotency record's before
/// others), conflicts as `Unavailable` so they are retried.
pub fn classify_transaction(
    err: SdkError<TransactWriteItemsError, HttpResponse>,
    idem_index: Option<usize>,
) -> TxFailure {
    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = err.as_service_error() else {
        return TxFailure::Store(classify(err));
    };
    let reasons = cancelled.cancellation_reasons();
    let failed_at = |i: &usize| reasons.get(*i).and_then(|r| r.code()) == Some("ConditionalCheckFailed");
    let first_failed = idem_index.filter(failed_at).or_else(|| (0..reasons.len()).find(failed_at));
    if let Some(index) = first_failed {
        let failed = (0..reasons.len()).filter(failed_at).collect();
        return TxFailure::Condition { index, item: reasons[index].item().cloned(), failed };
    }
    let codes: Vec<_> = reasons.iter().map(|r| r.code().unwrap_or("None")).collect();
    TxFailure::Store(StoreError::Unavailable(format!("transaction cancelled: {codes:?}")))
}

/// Retries `Unavailable` outcomes of `attempt` with jittered exponential backoff. Safe for
/// writes whose outcome was ambiguous: every write carries its own idempotency record, so
/// a retry of one that had landed fails on that record instead of landing twice.
pub async fn retry_unavailable<T, F, Fut>(mut attempt: F) -> Result<T, TxFailure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, TxFailure>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(TxFailure::Store(StoreError::Unavailable(cause))) if tries + 1 < CONFLICT_ATTEMPTS => {
                tries += 1;
                tracing::debug!(%cause, tries, "retrying store write");
                backoff(tries).await;
            }
            other => return other,
        }
    }
}

/// Retries a read that found the store unavailable, within the same budget as writes.
pub async fn retry_read<T, F, Fut>(mut attempt: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    retry_unavailable(|| {
        let next = attempt();
        async move { next.await.map_err(TxFailure::Store) }
    })
    .await
    .map_err(|failure| failure.into_store_error(None))
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::error::ErrorMetadata;

    use super::is_item_too_large;

    #[test]
    fn an_item_grown_past_its_limit_is_told_from_other_validation_errors() {
        let refusal = |message: &str| ErrorMetadata::builder().code("ValidationException").message(message).build();
        assert!(is_item_too_large(&refusal("Item size has exceeded the maximum allowed size")));
        assert!(is_item_too_large(&refusal("Item size to update has exceeded the maximum allowed size")));
        assert!(!is_item_too_large(&refusal("Invalid UpdateExpression: Syntax error")));
    }
}
