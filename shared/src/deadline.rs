//! The time a request has to answer: set once per request by the router's layer
//! (`http::finish`), below the function's timeout, so a change whose outcome is unknown is
//! answered with its idempotency key (503) instead of a gateway error without one.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// A request's budget unless the configuration says otherwise (`REQUEST_BUDGET_MS`).
pub const REQUEST_BUDGET_MILLIS: u64 = 10_000;
/// The functions' Lambda timeout (`infra/template.yaml`, checked by `infra/test_infra.py`):
/// the budget plus room for a cold start and for the answer itself.
pub const FUNCTION_TIMEOUT_SECONDS: u64 = REQUEST_BUDGET_MILLIS / 1000 + 5;
/// Kept back from the deadline by work inside it, so its own answer still goes out in time.
pub const ANSWER_MARGIN: Duration = Duration::from_millis(300);

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `request` with a deadline `budget` from now.
pub async fn scope<F: Future>(budget: Duration, request: F) -> F::Output {
    DEADLINE.scope(Instant::now() + budget, request).await
}

/// The current request's deadline, if it has one.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|at| *at).ok()
}

/// Runs `work` until `margin` before the request's deadline; `None` when the time ran out
/// first (the work is dropped where it stood).
pub async fn within<F: Future>(margin: Duration, work: F) -> Option<F::Output> {
    match current() {
        Some(at) => tokio::time::timeout_at(at.checked_sub(margin).unwrap_or(at), work).await.ok(),
        None => Some(work.await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn work_past_the_deadline_is_cut_off_and_work_within_it_is_not() {
        let budget = Duration::from_millis(1_000);
        let slow = scope(budget, within(ANSWER_MARGIN, tokio::time::sleep(Duration::from_millis(800))));
        assert_eq!(slow.await, None);
        let quick = scope(budget, within(ANSWER_MARGIN, async { 7 }));
        assert_eq!(quick.await, Some(7));
        assert_eq!(within(ANSWER_MARGIN, async { 8 }).await, Some(8), "no deadline outside a request");
    }
}
