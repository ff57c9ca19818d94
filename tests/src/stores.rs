//! Fault injection at the store port, over the real DynamoDB store: moves that always fail
//! (a journal that cannot move out), and a write held at a gate until the test lets it go,
//! before it is sent or after it landed and before its answer is lost (an interleaving of
//! instances, staged with real concurrency instead of sleeps).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use tokio::sync::Notify;

use shared::domain::account::{Account, Entry, HoldRecord, SubscriptionUpdate, TierPurchases};
use shared::domain::journal::Append;
use shared::store::dynamo::DynamoStore;
use shared::store::{
    Claim, EntryPage, IdempotencyStore, KeyedEntry, LedgerStore, MovedRecord, Reserved, StoreError, StoreResult,
    StoredOutcome, Trim, Written,
};

/// The real store, with the faults a test switches on.
pub struct FaultyStore {
    pub inner: DynamoStore,
    /// Every `move_out` fails (`Unavailable`).
    pub moves_fail: AtomicBool,
    /// The next `append` waits here: `reached` is notified, then it waits for `go`.
    pub gate: Option<Gate>,
    /// The first `append` that lands waits here after landing, then fails as if its answer
    /// were lost (`Unavailable`).
    pub answer_lost: Option<Gate>,
}

#[derive(Clone, Default)]
pub struct Gate {
    pub reached: Arc<Notify>,
    pub go: Arc<Notify>,
    passed: Arc<AtomicBool>,
}

impl FaultyStore {
    pub fn new(inner: DynamoStore) -> Self {
        Self { inner, moves_fail: AtomicBool::new(false), gate: None, answer_lost: None }
    }

    pub fn gated(inner: DynamoStore, gate: Gate) -> Self {
        Self { gate: Some(gate), ..Self::new(inner) }
    }

    pub fn losing_an_answer(inner: DynamoStore, gate: Gate) -> Self {
        Self { answer_lost: Some(gate), ..Self::new(inner) }
    }
}

impl Gate {
    /// The first caller (only) waits: `reached` is notified, then it waits for `go`.
    async fn hold_first(&self) -> bool {
        if self.passed.swap(true, Ordering::SeqCst) {
            return false;
        }
        self.reached.notify_one();
        self.go.notified().await;
        true
    }
}

#[async_trait]
impl LedgerStore for FaultyStore {
    async fn get_account(&self, entity_id: &str, user_id: &str) -> StoreResult<Option<Account>> {
        self.inner.get_account(entity_id, user_id).await
    }
    async fn create_account(&self, account: &Account) -> StoreResult<Written> {
        self.inner.create_account(account).await
    }
    async fn append(&self, entity_id: &str, user_id: &str, append: &Append) -> StoreResult<Written> {
        if let Some(gate) = &self.gate {
            gate.hold_first().await;
        }
        let written = self.inner.append(entity_id, user_id, append).await;
        if let Some(gate) = &self.answer_lost
            && matches!(written, Ok(Written::Landed(_)))
            && gate.hold_first().await
        {
            return Err(StoreError::Unavailable("the answer was lost in this test".into()));
        }
        written
    }
    async fn move_out(&self, entity_id: &str, user_id: &str, records: &[MovedRecord]) -> StoreResult<()> {
        if self.moves_fail.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("moves fail in this test".into()));
        }
        self.inner.move_out(entity_id, user_id, records).await
    }
    async fn claim_mover(&self, entity_id: &str, user_id: &str, now: i64, until: i64) -> StoreResult<Claim> {
        self.inner.claim_mover(entity_id, user_id, now, until).await
    }
    async fn release_mover(&self, entity_id: &str, user_id: &str, until: i64) -> StoreResult<()> {
        self.inner.release_mover(entity_id, user_id, until).await
    }
    async fn trim_journal(&self, entity_id: &str, user_id: &str, trim: &Trim) -> StoreResult<Option<bool>> {
        self.inner.trim_journal(entity_id, user_id, trim).await
    }
    async fn upgrade_account(&self, account: &Account) -> StoreResult<bool> {
        self.inner.upgrade_account(account).await
    }
    async fn keyed_entry(&self, e: &str, u: &str, key: &str, after: u64) -> StoreResult<Option<KeyedEntry>> {
        self.inner.keyed_entry(e, u, key, after).await
    }
    async fn entries(&self, e: &str, u: &str, page: &EntryPage) -> StoreResult<(Vec<Entry>, Option<String>)> {
        self.inner.entries(e, u, page).await
    }
    async fn get_hold(&self, entity_id: &str, user_id: &str, hold_id: &str) -> StoreResult<Option<HoldRecord>> {
        self.inner.get_hold(entity_id, user_id, hold_id).await
    }
    async fn tier_purchases(&self, entity_id: &str, user_id: &str) -> StoreResult<Vec<TierPurchases>> {
        self.inner.tier_purchases(entity_id, user_id).await
    }
    async fn update_subscription(&self, e: &str, u: &str, tier: &str, update: &SubscriptionUpdate) -> StoreResult<()> {
        self.inner.update_subscription(e, u, tier, update).await
    }
}

#[async_trait]
impl IdempotencyStore for FaultyStore {
    async fn get_response(&self, entity_id: &str, key: &str) -> StoreResult<Option<StoredOutcome>> {
        self.inner.get_response(entity_id, key).await
    }
    async fn put_response(&self, record: &StoredOutcome) -> StoreResult<()> {
        self.inner.put_response(record).await
    }
    async fn reserve(&self, record: &StoredOutcome) -> StoreResult<Reserved> {
        self.inner.reserve(record).await
    }
    async fn release(&self, entity_id: &str, key: &str, attempt: &str) -> StoreResult<()> {
        self.inner.release(entity_id, key, attempt).await
    }
}
