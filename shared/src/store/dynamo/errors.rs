//! SDK errors → store errors, and the bounded retry of transaction conflicts.

use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;

use crate::store::{StoreError, StoreResult};

const THROTTLING: [&str; 4] = [
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "ThrottlingException",
    "TransactionInProgressException",
];

/// Attempts for a transaction that keeps conflicting with concurrent ones.
const CONFLICT_ATTEMPTS: u32 = 6;
const BACKOFF_BASE_MS: u64 = 10;

/// Throttling, time-outs, connection failures and 5xx are `Unavailable`; the rest `Internal`.
pub fn classify<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let unavailable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(service) => {
            THROTTLING.contains(&service.err().code().unwrap_or_default())
                || format!("{:?}", service.raw()).contains("status: 5")
        }
        _ => false,
    };
    let context = DisplayErrorContext(&err).to_string();
    if unavailable { StoreError::Unavailable(context) } else { StoreError::Internal(context) }
}

/// A transaction's failure: a used idempotency key, a failed condition, or a conflict.
pub fn classify_transaction<R: std::fmt::Debug>(
    err: SdkError<TransactWriteItemsError, R>,
    idem_index: Option<usize>,
) -> StoreError {
    let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = err.as_service_error() else {
        return classify(err);
    };
    let reasons = cancelled.cancellation_reasons();
    let failed_at = |i: usize| reasons.get(i).and_then(|r| r.code()) == Some("ConditionalCheckFailed");
    if let Some(i) = idem_index.filter(|&i| failed_at(i)) {
        let stored = reasons[i].item().cloned().map(super::idempotency::from_item);
        return match stored {
            Some(Ok(stored)) => StoreError::IdempotencyHit(Box::new(stored)),
            _ => StoreError::Internal("idempotency record failed its condition but was not returned".into()),
        };
    }
    if (0..reasons.len()).any(failed_at) {
        return StoreError::ConditionFailed;
    }
    StoreError::Unavailable(format!("transaction cancelled: {:?}", reasons.iter().map(|r| r.code()).collect::<Vec<_>>()))
}

/// Retries `Unavailable` outcomes of `attempt` with jittered exponential backoff.
pub async fn retry_conflicts<T, F, Fut>(mut attempt: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(StoreError::Unavailable(cause)) if tries + 1 < CONFLICT_ATTEMPTS => {
                tries += 1;
                tracing::debug!(%cause, tries, "retrying store write");
                let ceiling = BACKOFF_BASE_MS << tries;
                tokio::time::sleep(Duration::from_millis(fastrand::u64(ceiling / 2..=ceiling))).await;
            }
            other => return other,
        }
    }
}
