//! Narrow store traits the handlers depend on, and their DynamoDB implementation.

pub mod dynamo;
pub mod keys;
pub mod schema;
pub mod stream;

use async_trait::async_trait;

use crate::domain::account::{Account, Entry, EntryType, HoldRecord, SubscriptionUpdate, TierPurchases};
use crate::domain::entity::{ApiKey, Entity};
use crate::domain::events::{AlertState, Event};
use crate::domain::journal::Append;
use crate::domain::ledger::Applied;
use crate::domain::payment::Payment;
use crate::domain::tier::Tier;
use crate::domain::webhook::{Attempt, Delivery, Endpoint, UserSettings};
use crate::error::Error;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A condition of the write did not hold (duplicate id, stale version, missing item).
    #[error("condition failed")]
    ConditionFailed,
    /// The request's idempotency key was already used; this is what it answered.
    #[error("idempotency key already used")]
    IdempotencyHit(Box<StoredOutcome>),
    /// Throttled, conflicting or unreachable after the retry budget.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store failure: {0}")]
    Internal(String),
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "store unavailable");
                Error::unavailable()
            }
            other => Error::internal(other),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// How long an idempotency record is kept (unless kept forever).
pub const RETENTION_MILLIS: i64 = crate::domain::journal::KEY_RETENTION_MILLIS;

/// An operation's outcome kept under an idempotency key (serialized; secrets never are).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredOutcome {
    pub entity_id: String,
    pub key: String,
    pub fingerprint: String,
    /// The typed outcome as JSON; each face renders its own wire shape from it.
    pub outcome: String,
    pub expires_at: i64,
    /// Which attempt wrote it: a request that meets its own earlier attempt (a store write
    /// retried after its answer was lost) is not a replay and still answers in full.
    pub attempt: String,
    /// A credit change's claim on the key, written before the change (no outcome yet): the
    /// key is the entity's, whichever account the change went to (`IdempotencyStore::reserve`).
    pub pending: bool,
}

/// How claiming a key for a credit change went.
#[derive(Debug)]
pub enum Reserved {
    /// The key was free (or its record expired): it is this change's now.
    New,
    /// The key's record as it stands: another request's, or this request's earlier attempt's.
    Existing(Box<StoredOutcome>),
}

#[async_trait]
pub trait EntityStore: Send + Sync {
    /// Writes the entity and its first API key together.
    async fn create_entity(&self, entity: &Entity, key: &ApiKey, idem: &StoredOutcome) -> StoreResult<()>;
    async fn get_entity(&self, entity_id: &str) -> StoreResult<Option<Entity>>;
    /// Replaces the owners; `None` when the entity does not exist.
    async fn set_owners(&self, entity_id: &str, owners: &[String], now: i64) -> StoreResult<Option<Entity>>;
    /// Writes `next` over the stored entity if that one was last updated at `expected_updated_at`
    /// (a whole-item write, so its function needs only PutItem); `false` when it was not.
    async fn replace_entity(&self, next: &Entity, expected_updated_at: i64) -> StoreResult<bool>;
    /// Adds a key to an existing entity; `ConditionFailed` when the entity does not exist.
    async fn add_api_key(&self, key: &ApiKey, now: i64, idem: &StoredOutcome) -> StoreResult<()>;
    /// Deletes a key of this entity; `ConditionFailed` when it is not one.
    async fn revoke_api_key(&self, entity_id: &str, apikey: &str, now: i64) -> StoreResult<()>;
    async fn get_api_key(&self, apikey: &str) -> StoreResult<Option<ApiKey>>;
}

#[async_trait]
pub trait TierStore: Send + Sync {
    /// `ConditionFailed` when the id is taken.
    async fn create_tier(&self, tier: &Tier, idem: &StoredOutcome) -> StoreResult<()>;
    async fn get_tier(&self, entity_id: &str, tier_id: &str) -> StoreResult<Option<Tier>>;
    async fn list_tiers(&self, entity_id: &str) -> StoreResult<Vec<Tier>>;
    /// Writes `next` only if the stored version is still `expected_version`.
    async fn update_tier(&self, next: &Tier, expected_version: u64, idem: &StoredOutcome) -> StoreResult<()>;
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    async fn get_response(&self, entity_id: &str, key: &str) -> StoreResult<Option<StoredOutcome>>;
    /// Records an answer on its own (for effects outside one store transaction); the key's
    /// earlier answer comes back as `IdempotencyHit`.
    async fn put_response(&self, record: &StoredOutcome) -> StoreResult<()>;
    /// Claims the key for a credit change (`pending`) unless an unexpired record holds it.
    async fn reserve(&self, record: &StoredOutcome) -> StoreResult<Reserved>;
    /// Gives up a claim of `attempt`'s that no change used (the change was refused).
    async fn release(&self, entity_id: &str, key: &str, attempt: &str) -> StoreResult<()>;
}

/// One page of an account's history, newest first.
#[derive(Debug, Clone)]
pub struct EntryPage {
    /// Continue after this sort key (an opaque cursor to clients).
    pub after: Option<String>,
    pub limit: usize,
    pub kind: Option<EntryType>,
}

/// How a conditional write of an account went.
#[derive(Debug)]
pub enum Written {
    /// Landed; the account as the write left it.
    Landed(Box<Account>),
    /// A condition did not hold; the account as it was (`None`: there is none).
    Refused(Option<Box<Account>>),
}

/// A journal record on its way out: the change as it was, and its idempotency record.
#[derive(Debug, Clone)]
pub struct MovedRecord {
    pub applied: Applied,
    pub idem: StoredOutcome,
    /// Its outcome is kept on its main entry (`idem` without its body), not in an
    /// idempotency record (`domain::journal::RecordKey::quiet`).
    pub quiet: bool,
}

/// A change's main entry with the key it was made under, for a change whose outcome its entry
/// keeps (`MovedRecord::quiet`).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedEntry {
    pub entry: Entry,
    pub fingerprint: String,
    pub attempt: String,
}

/// How a claim on an account's journal went.
#[derive(Debug)]
pub enum Claim {
    /// This mover has the journal; the account as the claim left it.
    Taken(Box<Account>),
    /// Another mover has it until this instant.
    Held(i64),
    /// No such account.
    NoAccount,
}

/// Drops the first `count` records of an account's journal once they are moved out.
#[derive(Debug, Clone)]
pub struct Trim {
    /// The account's `movedRecords` as it was read: nobody else dropped records since.
    pub moved_before: u64,
    pub count: usize,
    /// The moved records' key slots, kept in `recentKeys` with `moved_at`.
    pub moved_slots: Vec<String>,
    pub moved_at: i64,
    /// Key slots to forget, and the account's `keysForgottenBefore` before and after.
    pub forget: Vec<String>,
    pub forgotten_before: (i64, i64),
    /// The account's `autoForgotten` after, when generated keys are forgotten.
    pub generated_forgotten_before: Option<i64>,
    /// The mover's claim on the journal (until this instant) ends with this trim, if it is
    /// still the account's.
    pub release_mover: Option<i64>,
}

#[async_trait]
pub trait LedgerStore: Send + Sync {
    async fn get_account(&self, entity_id: &str, user_id: &str) -> StoreResult<Option<Account>>;
    /// Writes a new account (with its first journal record) unless one exists.
    async fn create_account(&self, account: &Account) -> StoreResult<Written>;
    /// Adds a change to an existing account and appends its record, in one conditional
    /// single-item update (see `domain::journal`).
    async fn append(&self, entity_id: &str, user_id: &str, append: &Append) -> StoreResult<Written>;
    /// Writes the items of journal records (entries, holds, purchase counts, idempotency
    /// records), oldest first; records found already moved are skipped.
    async fn move_out(&self, entity_id: &str, user_id: &str, records: &[MovedRecord]) -> StoreResult<()>;
    /// Claims the account's journal for one mover until `until`, unless another mover's claim
    /// is still in force at `now` (a claim until `until` is this mover's own: a retried claim
    /// whose first answer was lost takes it).
    async fn claim_mover(&self, entity_id: &str, user_id: &str, now: i64, until: i64) -> StoreResult<Claim>;
    /// Ends the claim that lasts until `until`, if it is still the account's.
    async fn release_mover(&self, entity_id: &str, user_id: &str, until: i64) -> StoreResult<()>;
    /// `None` when the journal no longer starts as `trim` expects; else whether the trim
    /// ended the mover's claim.
    async fn trim_journal(&self, entity_id: &str, user_id: &str, trim: &Trim) -> StoreResult<Option<bool>>;
    /// Brings an account item written before journals to the journal's form (`Account::needs_upgrade`);
    /// `false` when it changed since it was read as `account`.
    async fn upgrade_account(&self, account: &Account) -> StoreResult<bool>;
    /// The entry keeping the outcome of a change made under `key` (a quiet record's), among
    /// the entries written at versions after `after_version`.
    async fn keyed_entry(
        &self,
        entity_id: &str,
        user_id: &str,
        key: &str,
        after_version: u64,
    ) -> StoreResult<Option<KeyedEntry>>;
    /// Entries newest first, and the cursor of the next page.
    async fn entries(
        &self,
        entity_id: &str,
        user_id: &str,
        page: &EntryPage,
    ) -> StoreResult<(Vec<Entry>, Option<String>)>;
    async fn get_hold(&self, entity_id: &str, user_id: &str, hold_id: &str) -> StoreResult<Option<HoldRecord>>;
    /// Per tier the user bought or subscribed to: counts and subscription.
    async fn tier_purchases(&self, entity_id: &str, user_id: &str) -> StoreResult<Vec<TierPurchases>>;
    async fn update_subscription(
        &self,
        entity_id: &str,
        user_id: &str,
        tier_id: &str,
        update: &SubscriptionUpdate,
    ) -> StoreResult<()>;
}

#[async_trait]
pub trait PaymentStore: Send + Sync {
    /// Records a payment unless it is already recorded (the first snapshot wins).
    async fn put_payment(&self, payment: &Payment) -> StoreResult<()>;
    async fn get_payment(&self, payment_intent_id: &str) -> StoreResult<Option<Payment>>;
    /// Records what each period of a subscription buys (its id in `payment_intent_id`),
    /// unless already recorded.
    async fn put_subscription(&self, subscription: &Payment) -> StoreResult<()>;
    async fn get_subscription(&self, subscription_id: &str) -> StoreResult<Option<Payment>>;
    /// Notes Stripe's latest status of a recorded payment (no-op for unknown ones).
    async fn set_payment_status(&self, payment_intent_id: &str, status: &str) -> StoreResult<()>;
    async fn event_processed(&self, event_id: &str) -> StoreResult<bool>;
    /// Remembers a processed Stripe event (kept 30 days: Stripe retries for 3).
    async fn mark_event_processed(&self, event_id: &str, event_type: &str, now: i64) -> StoreResult<()>;
}

/// What a dispatcher found when it asked to drain an endpoint's deliveries.
#[derive(Debug, Clone, PartialEq)]
pub enum Lease {
    /// It alone drains the endpoint until the lease ends; the endpoint as it stands now.
    Held(Box<Endpoint>),
    /// Another dispatcher drains it.
    Busy,
    /// The endpoint was deleted.
    Gone,
}

/// An endpoint with deliveries due from `due_at`; `token` changes on every mark, so a drain
/// clears only the mark it saw.
#[derive(Debug, Clone, PartialEq)]
pub struct DueMark {
    pub entity_id: String,
    pub endpoint_id: String,
    pub due_at: i64,
    pub token: String,
}

/// Endpoints, settings, events and their deliveries (§9).
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Writes a new endpoint with its creation's idempotency record.
    async fn create_endpoint(&self, endpoint: &Endpoint, idem: &StoredOutcome) -> StoreResult<()>;
    async fn list_endpoints(&self, entity_id: &str) -> StoreResult<Vec<Endpoint>>;
    async fn get_endpoint(&self, entity_id: &str, endpoint_id: &str) -> StoreResult<Option<Endpoint>>;
    /// `false` when there was no such endpoint.
    async fn delete_endpoint(&self, entity_id: &str, endpoint_id: &str) -> StoreResult<bool>;
    /// Writes the endpoint's secrets (it must exist) with the rotation's idempotency record;
    /// `ConditionFailed` when it is gone.
    async fn set_secrets(&self, endpoint: &Endpoint, idem: &StoredOutcome) -> StoreResult<()>;
    async fn get_user_settings(&self, entity_id: &str, user_id: &str) -> StoreResult<Option<UserSettings>>;
    async fn put_user_settings(&self, entity_id: &str, user_id: &str, settings: &UserSettings) -> StoreResult<()>;

    async fn get_alert_state(&self, entity_id: &str, user_id: &str) -> StoreResult<Option<AlertState>>;
    /// Records the decision for a later entry than the stored one; `ConditionFailed` if the
    /// stored one is this entry or a later one.
    async fn advance_alert_state(&self, entity_id: &str, user_id: &str, state: &AlertState) -> StoreResult<()>;
    async fn get_event(&self, entity_id: &str, event_id: &str) -> StoreResult<Option<Event>>;
    /// Records an event unless it is recorded already (the first one wins); `true` if new.
    async fn record_event(&self, event: &Event, now: i64) -> StoreResult<bool>;
    /// Queues a delivery unless one of the same event to the same endpoint is queued.
    async fn enqueue(&self, delivery: &Delivery) -> StoreResult<()>;
    /// Marks an endpoint as having deliveries due now.
    async fn mark_due(&self, entity_id: &str, endpoint_id: &str, due_at: i64) -> StoreResult<()>;
    async fn due_marks(&self, now: i64) -> StoreResult<Vec<DueMark>>;
    async fn due_mark(&self, endpoint_id: &str) -> StoreResult<Option<DueMark>>;
    /// Moves the mark to `due_at`, or removes it (`None`), unless it changed since `seen`.
    async fn settle_mark(&self, seen: &DueMark, due_at: Option<i64>) -> StoreResult<()>;
    /// Takes or renews the lease on draining an endpoint's deliveries.
    async fn lease(&self, entity_id: &str, endpoint_id: &str, owner: &str, until: i64, now: i64) -> StoreResult<Lease>;
    async fn release_lease(&self, entity_id: &str, endpoint_id: &str, owner: &str) -> StoreResult<()>;
    /// The endpoint's queued deliveries, lane by lane, each lane in event order.
    async fn queued(&self, endpoint_id: &str) -> StoreResult<Vec<Delivery>>;
    /// Removes a delivery from the queue (delivered, given up, or its endpoint gone).
    async fn dequeue(&self, delivery: &Delivery) -> StoreResult<()>;
    /// Writes a delivery's retry state.
    async fn requeue(&self, delivery: &Delivery) -> StoreResult<()>;
    async fn log_attempt(&self, attempt: &Attempt) -> StoreResult<()>;
    /// The endpoint's latest attempts, newest first.
    async fn attempts(&self, endpoint_id: &str, limit: usize) -> StoreResult<Vec<Attempt>>;
}

/// What changing accounts needs: the ledger and its idempotency records.
pub trait AccountStore: LedgerStore + IdempotencyStore {}
impl<T: LedgerStore + IdempotencyStore + ?Sized> AccountStore for T {}

/// Everything the functions use; one DynamoDB implementation, fakes in unit tests.
pub trait Store: EntityStore + TierStore + AccountStore + PaymentStore + WebhookStore {}
impl<T: EntityStore + TierStore + AccountStore + PaymentStore + WebhookStore> Store for T {}
