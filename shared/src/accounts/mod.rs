//! Changing and reading credit accounts: the one path every credit mutation takes (spends,
//! grants, purchases, holds, payments, webhooks), so each lands exactly once.

mod slots;

pub use slots::AccountSlots;

use crate::clock::Clock;
use crate::domain::account::{Account, AccountView};
use crate::domain::ledger::{Applied, Change, Operation, apply};
use crate::error::Error;
use crate::idempotency::{self, Answer, Guard, IdempotencyKey, Outcome, Performed, Shape};
use crate::ids::new_ordered_id;
use crate::store::{AccountStore, StoreError};

/// Writes one change may try before giving up on a contended account (with backoff, at most
/// about 3 s in all, within the functions' time-out).
const MAX_ATTEMPTS: usize = 10;

/// What changing an account runs on: the store, the clock and this process's account slots.
#[derive(Clone, Copy)]
pub struct Ledger<'a> {
    pub store: &'a dyn AccountStore,
    pub clock: &'a dyn Clock,
    pub slots: &'a AccountSlots,
}

/// The holder id of the entity's own account, its credit pool. A `#` is never in a user id
/// (`ids::validate_user_id`), so the pool can never be a user's account.
pub const POOL: &str = "#pool";

/// One account of one entity: a user's, or the entity's pool (holder id `POOL`), plus who is
/// acting on it, recorded as `byUserId` on every entry the change writes.
#[derive(Debug, Clone, Copy)]
pub struct AccountRef<'a> {
    pub entity_id: &'a str,
    pub user_id: &'a str,
    /// The user on whose behalf the change is made; `None` for the server acting as itself.
    pub by_user_id: Option<&'a str>,
}

impl<'a> AccountRef<'a> {
    /// A user's account, nobody named as acting yet.
    pub fn user(entity_id: &'a str, user_id: &'a str) -> Self {
        Self { entity_id, user_id, by_user_id: None }
    }

    /// The entity's credit pool, nobody named as acting yet.
    pub fn pool(entity_id: &'a str) -> Self {
        Self { entity_id, user_id: POOL, by_user_id: None }
    }

    /// The same account, `user_id` acting on it.
    pub fn by(self, user_id: &'a str) -> Self {
        Self { by_user_id: Some(user_id), ..self }
    }

    /// The same account, `user_id` (if any) acting on it.
    pub fn by_maybe(self, user_id: Option<&'a str>) -> Self {
        Self { by_user_id: user_id, ..self }
    }

    pub fn is_pool(&self) -> bool {
        self.user_id == POOL
    }

    /// Who acted, as the entries record it.
    pub fn actor(&self) -> Option<String> {
        self.by_user_id.map(str::to_owned)
    }
}

impl<'a> Ledger<'a> {
    fn guard(self) -> Guard<'a> {
        Guard { store: self.store, clock: self.clock }
    }

    async fn load(self, account: AccountRef<'_>) -> Result<Account, Error> {
        let AccountRef { entity_id, user_id, .. } = account;
        Ok(self.store.get_account(entity_id, user_id).await?.unwrap_or_else(|| Account::empty(entity_id, user_id)))
    }
}

/// Applies `change` to the account exactly once under `key`. `outcome_of` builds the typed
/// outcome from the applied change; it is stored with the change, so a replay answers the same.
pub async fn change<T: Outcome>(
    ledger: Ledger<'_>,
    account: AccountRef<'_>,
    change: &Change,
    key: &IdempotencyKey,
    outcome_of: impl Fn(&Applied, i64) -> Result<T, Error>,
) -> Result<Answer<T>, Error> {
    idempotency::run(ledger.guard(), key, Shape::OneTransaction, || write(ledger, account, change, key, &outcome_of))
        .await
}

/// The effect of `change`, for operations that first need more than the account (a tier):
/// writes the change from this process's last known state, retrying on a stale version.
/// Run it inside `idempotency::run` with `Shape::OneTransaction`.
pub async fn write<T: Outcome>(
    ledger: Ledger<'_>,
    account: AccountRef<'_>,
    change: &Change,
    key: &IdempotencyKey,
    outcome_of: &impl Fn(&Applied, i64) -> Result<T, Error>,
) -> Result<Performed<T>, Error> {
    let slot = ledger.slots.slot(account.entity_id, account.user_id);
    let mut cached = slot.lock().await;
    let (mut snapshot, mut fresh) = match cached.take() {
        Some(account) => (account, false),
        None => (ledger.load(account).await?, true),
    };
    for attempt in 1..=MAX_ATTEMPTS {
        let now = ledger.clock.now_millis();
        let applied = match apply(&snapshot, change, now, &mut new_ordered_id) {
            Ok(applied) => applied,
            // The cached state may be behind (credits granted elsewhere): check the store.
            Err(_) if !fresh => {
                snapshot = ledger.load(account).await?;
                fresh = true;
                continue;
            }
            Err(refusal) => {
                *cached = Some(snapshot);
                return Err(refusal);
            }
        };
        let outcome = outcome_of(&applied, now)?;
        let record = key.record(&outcome, now)?;
        match ledger.store.commit(&applied, &record).await {
            Err(StoreError::Stale(current)) => {
                snapshot = *current;
                fresh = true;
                // Another process is writing this account: let it get ahead before retrying.
                crate::store::dynamo::backoff(attempt as u32).await;
            }
            written => {
                // Landed, or our own earlier attempt did (its answer was lost and the SDK retried).
                let landed = match &written {
                    Ok(()) => true,
                    Err(StoreError::IdempotencyHit(stored)) => key.is_own(stored),
                    Err(_) => false,
                };
                if landed {
                    *cached = Some(applied.account);
                }
                return Ok(Performed::Committed(outcome, written));
            }
        }
    }
    tracing::warn!(account.entity_id, account.user_id, "account too contended; giving up");
    // The last state seen is the freshest there is: keep it for the next change.
    *cached = Some(snapshot);
    Err(Error::unavailable())
}

/// The account as of now. Holds that expired since the last write are recorded first (an
/// `expire` entry each), so the ledger explains every read.
pub async fn read(ledger: Ledger<'_>, account: AccountRef<'_>) -> Result<AccountView, Error> {
    let current = ledger.load(account).await?;
    let now = ledger.clock.now_millis();
    if current.expired_hold_ids(now).is_empty() {
        return Ok(current.view(now));
    }
    let sweep = Change { operation: Operation::Sweep, reason: None, idempotency_key: None, by_user_id: None };
    let key = IdempotencyKey::internal(account.entity_id, &format!("sweep {}", account.user_id));
    match self::change(ledger, account, &sweep, &key, |applied, now| Ok(applied.account.view(now))).await {
        Ok(swept) => Ok(swept.outcome),
        // Someone else recorded the expiry first: read what they wrote.
        Err(_) => Ok(ledger.load(account).await?.view(ledger.clock.now_millis())),
    }
}
