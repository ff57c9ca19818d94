//! The events dispatcher (§9): turns the store's changes (read from its stream) into queued
//! deliveries, and drains each endpoint's queue in order, signing every attempt per Standard
//! Webhooks and retrying failures with backoff.
//!
//! At least once, never invented: an event's id derives from the change, each step is
//! idempotent (queue entries and the event record are written only if new, the low-balance
//! state only moves forward), and a change is marked done (its event recorded) only after its
//! deliveries are queued, so a crash anywhere repeats work and never skips it.
//!
//! In order per account and endpoint: deliveries of one lane sort in the order their changes
//! happened, and a lane waits while its first delivery waits for a retry. One dispatcher at a
//! time drains an endpoint (a lease on the endpoint item).
//!
//! Within the invocation's time: nothing is started that cannot end before the deadline
//! (`Budget`), so a time-out never makes the stream hand a whole batch back. What is not
//! delivered in time stays due for the tick; a change not looked at in time goes back to the
//! stream on its own.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::accounts::{self, AccountRef, AccountSlots, Ledger};
use crate::clock::SharedClock;
use crate::domain::events::{self, Alert, AlertState, Change, Event};
use crate::domain::webhook::{Attempt, AttemptStatus, Delivery, Endpoint, retry_delay_millis, signature};
use crate::error::Error;
use crate::store::{Lease, Store, StoreError};
use crate::webhooks::{Outgoing, Sent, WebhookSender};

/// How long one drain holds an endpoint by default; renewed before every attempt, so it
/// covers one attempt (10 s at most) and its writes. A crashed drain's lease lapses after it.
pub const LEASE_MILLIS: i64 = 30_000;
/// How long one drain keeps attempting before it leaves the rest to the next tick (so a slow
/// endpoint never holds up the stream or other endpoints for long).
const DRAIN_BUDGET_MILLIS: i64 = 20_000;
/// Kept back from the invocation's deadline by all work: the writes that end a drain
/// (attempt log, queue, due mark, lease) and the answer itself.
const FINISH: Duration = Duration::from_secs(2);
/// What taking over a journal needs at most: a claim, and the moves and trims of a full journal
/// (a mover's own claim lasts 5 s for the same work).
const TAKE_OVER: Duration = Duration::from_secs(5);
/// How often an account whose journal another mover holds is looked at again while waiting
/// for the claim to end: a live mover ends it with its last trim, usually long before.
const HELD_POLL: Duration = Duration::from_millis(200);

/// The real time an invocation has left: Lambda's deadline (tests configure one). On the
/// monotonic clock, not the injected one: it bounds real work.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    until: Instant,
}

impl Budget {
    /// `left` from now (no invocation runs longer than Lambda's 15 minutes).
    pub fn of(left: Duration) -> Self {
        Self { until: Instant::now() + left.min(Duration::from_secs(15 * 60)) }
    }

    /// Whether `work` still ends in time, with `FINISH` kept back.
    fn fits(self, work: Duration) -> bool {
        Instant::now() + work + FINISH <= self.until
    }
}

pub struct Dispatcher {
    pub store: Arc<dyn Store>,
    pub clock: SharedClock,
    pub sender: Arc<dyn WebhookSender>,
    /// `WEBHOOK_RETRY_BASE_SECONDS` in ms: the first retry's wait.
    pub retry_base_millis: u64,
    /// How long a drain holds an endpoint (`LEASE_MILLIS` in production).
    pub lease_millis: i64,
    /// The longest one attempt takes (the sender's time-out): an attempt starts only when it
    /// ends before the invocation's deadline.
    pub attempt_timeout: Duration,
}

/// Accounts whose journal another mover held when the batch looked: by account, the latest
/// change that looked (the one to hand back if the journal cannot be seen moved) and the
/// instant the claim it saw ends.
type Held = BTreeMap<(String, String), (usize, i64)>;

/// What one batch already looked up, per entity.
#[derive(Default)]
struct Lookups {
    endpoints: HashMap<String, Vec<Endpoint>>,
    thresholds: HashMap<String, u64>,
    /// Per account: its user's own threshold (`None`: the entity's applies). A batch brings
    /// many entries of a busy account; each would read the same item again.
    user_thresholds: HashMap<(String, String), Option<u64>>,
    /// Per account: its low-balance state as this batch left it (one dispatcher handles an
    /// account's stream records at a time, in order).
    alert_states: HashMap<(String, String), AlertState>,
}

impl Dispatcher {
    fn now(&self) -> i64 {
        self.clock.now_millis()
    }

    /// Queues the deliveries of `changes` (in stream order), moves out the journals they show
    /// pending, then drains the endpoints they went to, all within `budget`. On failure: the
    /// index of the first change to hand back to the stream (every earlier one is done).
    ///
    /// A journal another mover holds is looked at again until that mover's claim ends (taken
    /// over then if its mover died: no later write may come to move it). When the time left
    /// cannot see the claim end, its change is handed back rather than dropped: the stream
    /// brings it again in a moment, and nothing else would (changes after it come again too,
    /// and find their events recorded).
    pub async fn ingest(&self, changes: &[Change], budget: Budget) -> Result<(), (usize, Error)> {
        let mut lookups = Lookups::default();
        let mut touched = BTreeMap::new();
        let mut held = Held::new();
        let mut failed = None;
        let last_pending = last_pending_per_account(changes);
        for (index, change) in changes.iter().enumerate() {
            if !budget.fits(Duration::ZERO) {
                tracing::warn!(index, "out of time; the rest of the batch goes back to the stream");
                failed = Some((index, Error::unavailable()));
                break;
            }
            if let Change::JournalPending { entity_id, user_id } = change {
                let account = (entity_id.clone(), user_id.clone());
                // A later record of the batch shows the same journal: moving it then moves
                // this one's records too (each would read the account item again).
                if last_pending.get(&account) != Some(&index) {
                    continue;
                }
                match self.move_journal(entity_id, user_id).await {
                    Some(until) => held.insert(account, (index, until)),
                    None => held.remove(&account),
                };
                continue;
            }
            match self.queue_change(change, &mut lookups).await {
                Ok(endpoints) => touched.extend(endpoints),
                Err(err) => {
                    failed = Some((index, err));
                    break;
                }
            }
        }
        // Waiting for a claim to end is idle time: the drains go on meanwhile.
        let (_, unmoved) = tokio::join!(self.drain_touched(touched, budget), self.take_over_all(held, budget));
        match (failed, unmoved) {
            (Some((index, err)), Some(first)) if first < index => Err((first, err)),
            (Some(failed), _) => Err(failed),
            (None, Some(first)) => Err((first, Error::unavailable())),
            (None, None) => Ok(()),
        }
    }

    async fn drain_touched(&self, touched: BTreeMap<String, String>, budget: Budget) {
        for (endpoint_id, entity_id) in touched {
            // Already queued and marked due: a failed drain is retried by the next tick.
            if let Err(err) = self.drain(&entity_id, &endpoint_id, budget).await {
                tracing::warn!(%endpoint_id, error = %err, "drain after ingest failed");
            }
        }
    }

    /// Comes back to the accounts another mover held, all at once (each mostly waits); the
    /// earliest change to hand back.
    async fn take_over_all(&self, held: Held, budget: Budget) -> Option<usize> {
        let accounts = held.iter().map(|((entity_id, user_id), &(index, until))| async move {
            if self.take_over(entity_id, user_id, until, budget).await {
                return None;
            }
            tracing::warn!(%entity_id, %user_id, until, "journal claim outlasts the time left; handed back");
            Some(index)
        });
        futures::future::join_all(accounts).await.into_iter().flatten().min()
    }

    /// Waits for the claim until `until` on the account's journal to end (reckoned by the
    /// injected clock, as the claim was made), then moves the journal unless its mover did;
    /// `false` when the time left is not enough to see that.
    async fn take_over(&self, entity_id: &str, user_id: &str, until: i64, budget: Budget) -> bool {
        // A claim ends once it is older than now: one millisecond past it. Waiting past the
        // deadline is pointless (and a corrupt instant must not overflow).
        let wait = u64::try_from(until.saturating_add(1).saturating_sub(self.now())).unwrap_or(0);
        let ends =
            Instant::now().checked_add(Duration::from_millis(wait)).map_or(budget.until, |at| at.min(budget.until));
        loop {
            if !budget.fits(TAKE_OVER) {
                return false;
            }
            let ended = Instant::now() >= ends;
            match self.move_journal(entity_id, user_id).await {
                // Moved (by its mover, or here once the claim ended), or moving failed (logged;
                // the account's next write or read moves it).
                None => return true,
                // A newer claim was taken by a write or a mover since this batch looked: that
                // change of the account has a stream record of its own, which looks again.
                Some(claim) if claim != until => return true,
                // Still in force by the injected clock when the wait is over (a clock that
                // stands still or jumped): the stream brings the change again.
                Some(_) if ended => return false,
                Some(_) => tokio::time::sleep_until(ends.min(Instant::now() + HELD_POLL)).await,
            }
        }
    }

    /// Drains every endpoint with deliveries due (the scheduled tick), within `budget`.
    pub async fn tick(&self, budget: Budget) -> Result<(), Error> {
        for mark in self.store.due_marks(self.now()).await? {
            if let Err(err) = self.drain(&mark.entity_id, &mark.endpoint_id, budget).await {
                tracing::warn!(endpoint_id = %mark.endpoint_id, error = %err, "drain on tick failed");
            }
        }
        Ok(())
    }

    /// The events of one change, queued for every endpoint that wants them; returns the
    /// endpoints (id → entity) that got any.
    async fn queue_change(&self, change: &Change, lookups: &mut Lookups) -> Result<Vec<(String, String)>, Error> {
        let (entity_id, events, decision) = match change {
            Change::Entry { entity_id, user_id, position, entry } => {
                let decision = self.alert(entity_id, user_id, position, entry, lookups).await?;
                (entity_id, events::of_entry(entity_id, user_id, position, entry, decision.decided), decision)
            }
            Change::PaymentFailed { entity_id, .. } | Change::SubscriptionEnded { entity_id, .. } => {
                (entity_id, events::of_billing(change).into_iter().collect(), AlertDecision::default())
            }
            // Moved by `ingest`, not queued.
            Change::JournalPending { .. } => return Ok(Vec::new()),
        };
        let endpoints = self.endpoints(entity_id, lookups).await?;
        let mut touched = Vec::new();
        for event in &events {
            let wanted_by = endpoints.iter().filter(|e| e.wants(event.kind)).collect::<Vec<_>>();
            // Recorded means queued for every endpoint that wanted it (it is recorded only
            // then), and maybe delivered and gone from the queue since: a change the stream
            // brings again must not queue it again. Nothing to queue: recording it is
            // idempotent on its own, no read needed.
            if !wanted_by.is_empty() && self.store.get_event(&event.entity_id, &event.event_id).await?.is_some() {
                continue;
            }
            // An opt-in event (spends) nobody subscribes to does not exist (§9): not recorded,
            // which spares a write per spend.
            if wanted_by.is_empty() && event.kind.is_opt_in() {
                continue;
            }
            for endpoint in wanted_by {
                self.queue(endpoint, event).await?;
                touched.push((endpoint.endpoint_id.clone(), entity_id.clone()));
            }
            self.store.record_event(event, self.now()).await?;
        }
        if let (Change::Entry { user_id, .. }, Some(next)) = (change, decision.next) {
            let account = (entity_id.clone(), user_id.clone());
            match self.store.advance_alert_state(entity_id, user_id, &next).await {
                Ok(()) => {
                    lookups.alert_states.insert(account, next);
                }
                // Another dispatcher got further: read the state again next time.
                Err(StoreError::ConditionFailed) => {
                    lookups.alert_states.remove(&account);
                }
                Err(err) => return Err(err.into()),
            }
        }
        Ok(touched)
    }

    /// Moves an account's journal out, so every change that landed gets its entries (and so
    /// its events) even when no later write or read of the account comes to move it; the end
    /// of another mover's claim when one holds it. Best effort: a journal that cannot move
    /// (logged) must not hold up the stream for every account behind it, and the account's
    /// next write or read, or its next stream record, moves it.
    async fn move_journal(&self, entity_id: &str, user_id: &str) -> Option<i64> {
        let slots = AccountSlots::default();
        let ledger = Ledger { store: self.store.as_ref(), clock: self.clock.as_ref(), slots: &slots };
        match accounts::move_journal(ledger, AccountRef::user(entity_id, user_id)).await {
            Ok(held) => held,
            Err(err) => {
                tracing::warn!(%entity_id, %user_id, error = %err, "journal not moved; left for the account's next change");
                None
            }
        }
    }

    async fn queue(&self, endpoint: &Endpoint, event: &Event) -> Result<(), Error> {
        let now = self.now();
        let delivery = Delivery {
            endpoint_id: endpoint.endpoint_id.clone(),
            event: event.clone(),
            attempts: 0,
            next_attempt_at: now,
        };
        self.store.enqueue(&delivery).await?;
        self.store.mark_due(&endpoint.entity_id, &endpoint.endpoint_id, now).await?;
        Ok(())
    }

    async fn endpoints(&self, entity_id: &str, lookups: &mut Lookups) -> Result<Vec<Endpoint>, Error> {
        if let Some(known) = lookups.endpoints.get(entity_id) {
            return Ok(known.clone());
        }
        let endpoints = self.store.list_endpoints(entity_id).await?;
        lookups.endpoints.insert(entity_id.to_owned(), endpoints.clone());
        Ok(endpoints)
    }

    /// The user's own threshold, else the entity's; 0: no alerts.
    async fn threshold(&self, entity_id: &str, user_id: &str, lookups: &mut Lookups) -> Result<u64, Error> {
        let account = (entity_id.to_owned(), user_id.to_owned());
        let own = match lookups.user_thresholds.get(&account) {
            Some(known) => *known,
            None => {
                let own = self.store.get_user_settings(entity_id, user_id).await?.map(|s| s.low_balance_threshold);
                lookups.user_thresholds.insert(account, own);
                own
            }
        };
        if let Some(own) = own {
            return Ok(own);
        }
        if let Some(known) = lookups.thresholds.get(entity_id) {
            return Ok(*known);
        }
        let threshold = self.store.get_entity(entity_id).await?.map_or(0, |e| e.settings.low_balance_threshold);
        lookups.thresholds.insert(entity_id.to_owned(), threshold);
        Ok(threshold)
    }

    /// The low-balance alert this entry triggers. Entries of an account are decided in order,
    /// each once: an entry at or before the stored position was decided (and its events
    /// queued) already.
    async fn alert(
        &self,
        entity_id: &str,
        user_id: &str,
        position: &str,
        entry: &crate::domain::account::Entry,
        lookups: &mut Lookups,
    ) -> Result<AlertDecision, Error> {
        let threshold = self.threshold(entity_id, user_id, lookups).await?;
        if threshold == 0 {
            return Ok(AlertDecision::default());
        }
        let account = (entity_id.to_owned(), user_id.to_owned());
        let state = match lookups.alert_states.get(&account) {
            Some(known) => known.clone(),
            None => {
                let state = self.store.get_alert_state(entity_id, user_id).await?.unwrap_or_default();
                lookups.alert_states.insert(account, state.clone());
                state
            }
        };
        if state.position.as_str() >= position {
            return Ok(AlertDecision::default());
        }
        let decided = events::crossing(state.low, events::available_after(entry), threshold);
        let low = match decided {
            Some(alert) => alert == Alert::Low,
            None => state.low,
        };
        Ok(AlertDecision { decided, next: Some(AlertState { low, position: position.to_owned() }) })
    }

    /// Delivers what is due to one endpoint, lane by lane in order, unless another
    /// dispatcher is at it. A deleted endpoint's queue is dropped: no more attempts. Attempts
    /// that cannot end within `budget` are left due, for the tick.
    pub async fn drain(&self, entity_id: &str, endpoint_id: &str, budget: Budget) -> Result<(), Error> {
        if !budget.fits(self.attempt_timeout) {
            // Its due mark stands (set when its deliveries were queued, or what the tick found).
            return Ok(());
        }
        let owner = crate::ids::new_ordered_id();
        let Some(_) = self.renew(entity_id, endpoint_id, &owner).await? else { return Ok(()) };
        let seen = self.store.due_mark(endpoint_id).await?;
        let queue = self.store.queued(endpoint_id).await?;
        let outcome = self.deliver_lanes(entity_id, endpoint_id, &owner, queue, budget).await;
        let next_due = match outcome {
            Ok(Drained::Done(next_due)) => next_due,
            Ok(Drained::Gone) => return self.drop_queue(endpoint_id).await,
            Ok(Drained::Lost) => return Ok(()),
            Err(err) => {
                self.store.release_lease(entity_id, endpoint_id, &owner).await?;
                return Err(err);
            }
        };
        match seen {
            Some(mark) => self.store.settle_mark(&mark, next_due).await?,
            None => {
                if let Some(due_at) = next_due {
                    self.store.mark_due(entity_id, endpoint_id, due_at).await?;
                }
            }
        }
        self.store.release_lease(entity_id, endpoint_id, &owner).await?;
        Ok(())
    }

    /// The endpoint as it stands, if this drain holds (or now took) its lease.
    async fn renew(&self, entity_id: &str, endpoint_id: &str, owner: &str) -> Result<Option<Endpoint>, Error> {
        let now = self.now();
        match self.store.lease(entity_id, endpoint_id, owner, now + self.lease_millis, now).await? {
            Lease::Held(endpoint) => Ok(Some(*endpoint)),
            Lease::Busy => Ok(None),
            Lease::Gone => {
                self.drop_queue(endpoint_id).await?;
                Ok(None)
            }
        }
    }

    async fn drop_queue(&self, endpoint_id: &str) -> Result<(), Error> {
        for delivery in self.store.queued(endpoint_id).await? {
            self.store.dequeue(&delivery).await?;
        }
        if let Some(mark) = self.store.due_mark(endpoint_id).await? {
            self.store.settle_mark(&mark, None).await?;
        }
        Ok(())
    }

    async fn deliver_lanes(
        &self,
        entity_id: &str,
        endpoint_id: &str,
        owner: &str,
        queue: Vec<Delivery>,
        budget: Budget,
    ) -> Result<Drained, Error> {
        let mut next_due: Option<i64> = None;
        let deadline = self.now() + DRAIN_BUDGET_MILLIS;
        let mut lanes: BTreeMap<String, Vec<Delivery>> = BTreeMap::new();
        for delivery in queue {
            lanes.entry(delivery.event.lane.clone()).or_default().push(delivery);
        }
        for lane in lanes.into_values() {
            for delivery in lane {
                if self.now() >= deadline || !budget.fits(self.attempt_timeout) {
                    return Ok(Drained::Done(Some(self.now())));
                }
                if delivery.next_attempt_at > self.now() {
                    next_due = earliest(next_due, delivery.next_attempt_at);
                    break;
                }
                let endpoint = match self
                    .store
                    .lease(entity_id, endpoint_id, owner, self.now() + self.lease_millis, self.now())
                    .await?
                {
                    Lease::Held(endpoint) => *endpoint,
                    Lease::Gone => return Ok(Drained::Gone),
                    Lease::Busy => return Ok(Drained::Lost),
                };
                match self.attempt(&endpoint, delivery).await? {
                    Some(retry_at) => {
                        next_due = earliest(next_due, retry_at);
                        break;
                    }
                    None => continue,
                }
            }
        }
        Ok(Drained::Done(next_due))
    }

    /// One attempt; `Some(retry_at)` when the lane must wait for its retry.
    async fn attempt(&self, endpoint: &Endpoint, mut delivery: Delivery) -> Result<Option<i64>, Error> {
        if !endpoint.wants(delivery.event.kind) {
            self.store.dequeue(&delivery).await?;
            return Ok(None);
        }
        let now = self.now();
        let sent = self.post(endpoint, &delivery.event, now).await?;
        delivery.attempts += 1;
        let retry_at = if sent.is_success() {
            None
        } else {
            retry_delay_millis(delivery.attempts, self.retry_base_millis).map(|wait| now + wait as i64)
        };
        let status = match (sent.is_success(), retry_at) {
            (true, _) => AttemptStatus::Delivered,
            (false, Some(_)) => AttemptStatus::Retrying,
            (false, None) => AttemptStatus::Failed,
        };
        let (response_code, error) = match &sent {
            Sent::Answered(code) => (Some(*code), None),
            Sent::Failed(reason) => (None, Some(reason.clone())),
        };
        let attempt = Attempt {
            attempt_id: crate::ids::new_ordered_id(),
            endpoint_id: endpoint.endpoint_id.clone(),
            event_id: delivery.event.event_id.clone(),
            kind: delivery.event.kind,
            attempt: delivery.attempts,
            status,
            response_code,
            error,
            next_retry_at: retry_at,
            attempted_at: now,
        };
        self.store.log_attempt(&attempt).await?;
        match retry_at {
            Some(at) => {
                delivery.next_attempt_at = at;
                self.store.requeue(&delivery).await?;
            }
            None => self.store.dequeue(&delivery).await?,
        }
        Ok(retry_at)
    }

    async fn post(&self, endpoint: &Endpoint, event: &Event, now: i64) -> Result<Sent, Error> {
        let timestamp = now / 1000;
        let signature = signature(&endpoint.signing_secrets(now), &event.event_id, timestamp, &event.body)?;
        let headers = vec![
            ("webhook-id", event.event_id.clone()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
            ("user-agent", "credits-service-webhooks/1".to_owned()),
        ];
        Ok(self.sender.post(Outgoing { url: &endpoint.url, headers, body: &event.body }).await)
    }
}

/// Per account whose journal the batch shows pending: the index of its last such change.
fn last_pending_per_account(changes: &[Change]) -> HashMap<(String, String), usize> {
    let pending = changes.iter().enumerate().filter_map(|(index, change)| match change {
        Change::JournalPending { entity_id, user_id } => Some(((entity_id.clone(), user_id.clone()), index)),
        _ => None,
    });
    pending.collect()
}

fn earliest(due: Option<i64>, at: i64) -> Option<i64> {
    Some(due.map_or(at, |due| due.min(at)))
}

/// How a drain of the lanes ended.
enum Drained {
    /// Everything due was attempted; the earliest retry still waiting, if any.
    Done(Option<i64>),
    /// The endpoint was deleted meanwhile.
    Gone,
    /// The lease ran out and another dispatcher took the endpoint.
    Lost,
}

#[derive(Default)]
struct AlertDecision {
    decided: Option<Alert>,
    /// The state to record once the entry's events are queued; `None`: nothing to record.
    next: Option<AlertState>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn work_fits_a_budget_only_if_it_ends_before_the_deadline_less_the_finish() {
        let budget = Budget::of(Duration::from_secs(5));
        assert!(budget.fits(Duration::from_secs(3)), "3 s and the 2 s finish end at the deadline");
        assert!(!budget.fits(Duration::from_secs(3) + Duration::from_millis(1)));
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(budget.fits(Duration::ZERO));
        assert!(!budget.fits(Duration::from_millis(1)), "time spent counts");
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(!budget.fits(Duration::ZERO), "past the deadline nothing fits");
    }
}
