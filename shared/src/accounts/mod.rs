//! Changing and reading credit accounts: the one path every credit mutation takes (spends,
//! grants, purchases, holds, payments, webhooks), so each lands exactly once, however many
//! instances change one account at once.
//!
//! A change is one conditional update of the account item that also appends the change's
//! record to the account's journal (`domain::journal`); concurrent writers of one account never
//! invalidate each other. The records are moved out to their own items (`moving`) by one
//! mover at a time — the writer whose update claimed the journal as it reached `MOVE_EVERY`
//! records — and before any read of those items.
//!
//! Exactly once: every change is made under an idempotency key, and the account remembers the
//! keys of its journal's records and of records moved out recently (`recentKeys`); the update
//! requires its key to be absent. A key that may have been used already (a client's, a
//! payment's) is first claimed for the entity (`IdempotencyStore::reserve`: a conditional put
//! of a pending record, which also returns an earlier use's record), so one key never serves
//! two accounts or routes; the mover later replaces that claim with the outcome. An update also
//! requires that no key was forgotten after the claim was read (`keysForgottenBefore`), so a
//! key moved out and forgotten in between cannot slip through.
//!
//! Every store call of a change runs within the request's deadline (`deadline`): when it
//! passes, the answer is 503 naming the key, under which the client learns the outcome.

mod moving;
mod slots;

use std::future::Future;

pub use moving::{MOVE_EVERY, move_journal, settle};
pub use slots::AccountSlots;

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::deadline::ANSWER_MARGIN;
use crate::domain::account::{Account, AccountView, MAX_ACTIVE_HOLDS};
use crate::domain::journal::{self, Append, KeysForgotten, key_slot, realize_at};
use crate::domain::ledger::{Applied, Change, Operation, apply};
use crate::error::Error;
use crate::idempotency::{Answer, IdempotencyKey, Outcome, named_with_version};
use crate::ids::new_ordered_id;
use crate::store::{AccountStore, Reserved, StoreError, StoredOutcome, Written};

/// Writes one change may try before giving up (a rule keeps failing against fresh states, or
/// the store keeps failing).
const MAX_ATTEMPTS: u32 = 30;
/// How far apart two instances' clocks may be (a key's record read by one instance, its
/// forgetting decided by another).
const CLOCK_MARGIN_MILLIS: i64 = 500;

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

impl Ledger<'_> {
    async fn load(self, account: AccountRef<'_>) -> Result<Account, Error> {
        let AccountRef { entity_id, user_id, .. } = account;
        let current = self.store.get_account(entity_id, user_id).await?;
        Ok(current.unwrap_or_else(|| Account::empty(entity_id, user_id)))
    }
}

/// What an idempotency record of a journal record keeps: the change as it was, from which
/// each operation builds its own outcome again. The account in it keeps only what answers
/// show (`Account::as_answered`): not the holds one by one, nor the payments' reversals.
#[derive(Debug, Serialize, Deserialize)]
struct Facts {
    applied: Applied,
    at: i64,
}

impl Facts {
    /// As stored: without nulls (absent options read back as none) nor the account's empty
    /// maps and lists (they read back as their defaults), so a usual record stays within 1 KB:
    /// one write unit instead of two. Versions before this one read it the same way.
    fn to_stored(&self) -> Result<String, Error> {
        use serde_json::Value;
        let mut value = without_nulls(serde_json::to_value(self).map_err(Error::internal)?);
        if let Some(Value::Object(account)) = value.pointer_mut("/applied/account") {
            account.retain(|_, field| match field {
                Value::Object(map) => !map.is_empty(),
                Value::Array(items) => !items.is_empty(),
                _ => true,
            });
        }
        serde_json::to_string(&value).map_err(Error::internal)
    }
}

/// `value` without the object fields that are null, at any depth.
fn without_nulls(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter().filter(|(_, field)| !field.is_null()).map(|(k, field)| (k, without_nulls(field))).collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// Applies `change` to the account exactly once under `key`. `outcome_of` builds the typed
/// outcome from the applied change and its time; a replay builds it from the same facts.
pub async fn change<T: Outcome>(
    ledger: Ledger<'_>,
    account: AccountRef<'_>,
    change: &Change,
    key: &IdempotencyKey,
    outcome_of: impl Fn(&Applied, i64) -> Result<T, Error>,
) -> Result<Answer<T>, Error> {
    change_with(ledger, account, key, || async { Ok(change.clone()) }, outcome_of).await
}

/// Like `change`, for operations that first need more than the account (a tier): `prepare`
/// runs only when the key has no outcome yet, and its refusal yields to an earlier outcome.
pub async fn change_with<T, P, Fut>(
    ledger: Ledger<'_>,
    account: AccountRef<'_>,
    key: &IdempotencyKey,
    prepare: P,
    outcome_of: impl Fn(&Applied, i64) -> Result<T, Error>,
) -> Result<Answer<T>, Error>
where
    T: Outcome,
    P: FnOnce() -> Fut,
    Fut: Future<Output = Result<Change, Error>>,
{
    let started = ledger.clock.now_millis() - CLOCK_MARGIN_MILLIS;
    let mut writer = Writer {
        ledger,
        account,
        key,
        outcome_of: &outcome_of,
        forgotten_by: started,
        unsure: false,
        reserved: false,
        stale_slot: None,
        sent_after: None,
    };
    let answer = writer.run(prepare).await.map_err(|err| writer.named_with_version(err));
    writer.release_if_refused(answer).await
}

/// One change's way into the store.
struct Writer<'a, F> {
    ledger: Ledger<'a>,
    account: AccountRef<'a>,
    key: &'a IdempotencyKey,
    outcome_of: &'a F,
    /// The write requires that the account forgot no key after this instant: until then, the
    /// key's idempotency record was read (or the key is new) and found absent.
    forgotten_by: i64,
    /// A write of this change may have landed without its answer reaching us (the store
    /// failed or timed out): from then on a fresh key may have been used, by that write.
    unsure: bool,
    /// This request claimed the key (`IdempotencyStore::reserve`).
    reserved: bool,
    /// The key's slot in `recentKeys` as an earlier use left it, whose record has expired
    /// since: the write may take the slot over (it requires it unchanged).
    stale_slot: Option<i64>,
    /// The oldest account version a write this request sent was computed from: its change,
    /// if made, was made after it.
    sent_after: Option<u64>,
}

impl<T: Outcome, F: Fn(&Applied, i64) -> Result<T, Error>> Writer<'_, F> {
    async fn run<P, Fut>(&mut self, prepare: P) -> Result<Answer<T>, Error>
    where
        P: FnOnce() -> Fut,
        Fut: Future<Output = Result<Change, Error>>,
    {
        if self.key.may_be_used()
            && let Some(answer) = self.reserve().await?
        {
            return Ok(answer);
        }
        match prepare().await {
            Ok(change) => self.write(&change).await,
            Err(refusal @ (Error::Unavailable { .. } | Error::Internal)) => Err(refusal),
            Err(refusal) => {
                let current = self.load().await?;
                self.written(&current).await?.ok_or(refusal)
            }
        }
    }

    async fn write(&mut self, change: &Change) -> Result<Answer<T>, Error> {
        let AccountRef { entity_id, user_id, .. } = self.account;
        let slot = self.ledger.slots.slot(entity_id, user_id);
        let mut cached = self.timed(slot.lock()).await?;
        let (mut snapshot, mut fresh) = match cached.take() {
            Some(account) => (account, false),
            None => (self.load().await?, true),
        };
        // The journal claim this request's last write carried.
        let mut claimed = None;
        for attempt in 1..=MAX_ATTEMPTS {
            if let Some(answer) = self.written(&snapshot).await? {
                // An earlier attempt of this request landed and its answer was lost: a claim
                // it made is this request's to act on (nobody else moves a claimed journal).
                if !answer.replayed && claimed.is_some() {
                    let moved = moving::after_write(self.ledger, &snapshot, claimed).await;
                    *cached = Some(moving::as_moved(snapshot, moved));
                }
                return Ok(answer);
            }
            if snapshot.needs_upgrade() {
                self.timed(self.ledger.store.upgrade_account(&snapshot)).await??;
                (snapshot, fresh) = (self.load().await?, true);
                continue;
            }
            if let Some(records) = moving::room_needed(&snapshot) {
                tracing::info!(entity_id, user_id, records, "account item full; moving its journal before writing");
                if self.timed(moving::make_room(self.ledger, &snapshot)).await? {
                    (snapshot, fresh) = (self.load().await?, true);
                    continue;
                }
                // Its mover is at it: give it a moment, then write; the store refuses a write
                // past the bound and hands back the account as it is then.
                self.timed(crate::store::dynamo::backoff(attempt)).await?;
            }
            let now = self.ledger.clock.now_millis();
            let applied = match apply(&snapshot, change, now, &mut new_ordered_id) {
                Ok(applied) => applied,
                // The state this process knew may be behind (credits granted elsewhere).
                Err(_) if !fresh => {
                    (snapshot, fresh) = (self.load().await?, true);
                    continue;
                }
                Err(refusal) => {
                    *cached = Some(snapshot);
                    return Err(refusal);
                }
            };
            let append = self.append_of(&snapshot, &applied, change, now);
            claimed = append.claim_mover;
            self.sent_after = Some(self.sent_after.map_or(snapshot.version, |v| v.min(snapshot.version)));
            let written = if snapshot.version == 0 {
                self.timed(self.ledger.store.create_account(&first_state(applied.account, append))).await?
            } else {
                self.timed(self.ledger.store.append(entity_id, user_id, &append)).await?
            };
            match written {
                Ok(Written::Landed(after)) => {
                    let answer = self.landed(&after, now);
                    let moved = moving::after_write(self.ledger, &after, claimed).await;
                    *cached = Some(moving::as_moved(*after, moved));
                    return answer;
                }
                Ok(Written::Refused(current)) => {
                    snapshot = current.map_or_else(|| Account::empty(entity_id, user_id), |c| *c);
                    fresh = true;
                    if let Some(answer) = self.recheck_if_forgotten(&snapshot).await? {
                        return Ok(answer);
                    }
                }
                // The write may have landed: the next attempt finds its key if it did.
                Err(StoreError::Unavailable(cause)) => {
                    tracing::debug!(%cause, attempt, "store unavailable; retrying the change");
                    self.unsure = true;
                    self.timed(crate::store::dynamo::backoff(attempt)).await?;
                }
                Err(err) => return Err(err.into()),
            }
        }
        tracing::warn!(entity_id, user_id, "change not written within its attempts");
        // The last state seen is the freshest there is: keep it for the next change.
        *cached = Some(snapshot);
        self.resolve().await
    }

    /// A key the service generated for this request, none of whose writes may have landed
    /// unheard: no key forgotten so far can be its use.
    fn key_is_fresh(&self) -> bool {
        !self.key.may_be_used() && !self.unsure
    }

    fn append_of(&self, snapshot: &Account, applied: &Applied, change: &Change, now: i64) -> Append {
        let record = journal::record(snapshot, applied, self.key.journal_key(now));
        let needs_credits = matches!(change.operation, Operation::Decrement { .. } | Operation::Hold { .. });
        let delta = &record.delta;
        let slot = key_slot(&self.key.key);
        let max_holds_before = (!delta.holds_added.is_empty())
            .then(|| (MAX_ACTIVE_HOLDS + delta.holds_removed.len()).saturating_sub(delta.holds_added.len()));
        // A fresh key cannot have been used, so no forgotten key can be its use.
        let keys_forgotten = (!self.key_is_fresh())
            .then_some(KeysForgotten { generated: self.key.is_generated(), by: self.forgotten_by });
        Append {
            min_spendable: needs_credits.then_some(-delta.spendable),
            max_holds_before,
            keys_forgotten,
            claim_mover: moving::claim_with_write(snapshot, &slot, now),
            slot_seen: self.stale_slot,
            slot,
            record,
        }
    }

    fn landed(&self, after: &Account, now: i64) -> Result<Answer<T>, Error> {
        let last = after.journal.len().saturating_sub(1);
        let applied = realize_at(after, last).ok_or_else(|| Error::internal("written record missing"))?;
        let outcome = (self.outcome_of)(&applied, now)?;
        Ok(Answer { outcome, replayed: false })
    }

    /// The answer under this key if `current` shows the change was made: by this request's
    /// own earlier attempt (a fresh answer) or by another request (a replay).
    async fn written(&mut self, current: &Account) -> Result<Option<Answer<T>>, Error> {
        let Some(stamp) = current.recent_keys.get(&key_slot(&self.key.key)).copied() else {
            return Ok(None);
        };
        let now = self.ledger.clock.now_millis();
        match current.journal.iter().position(|record| record.key == self.key.key) {
            // A use of the key that expired (a state cached long ago): the key is free again.
            Some(index) if current.journal[index].key_expires_at() <= now => {
                self.stale_slot = Some(stamp);
                Ok(None)
            }
            Some(index) => {
                let record = &current.journal[index];
                let applied = realize_at(current, index).ok_or_else(|| Error::internal("journal record missing"))?;
                self.answer(&record.fingerprint, &record.attempt, &applied, record.at).map(Some)
            }
            // Moved out: its idempotency record is written before the key is marked moved, so
            // a key without one is an earlier use whose record expired.
            None => {
                let answer = self.recorded().await?;
                self.stale_slot = answer.is_none().then_some(stamp);
                Ok(answer)
            }
        }
    }

    /// Claims the key for this change, or answers as the key's earlier use did. A claim of
    /// another request's on the key (the same key on another account or route) refuses this
    /// one; this request's own earlier attempt's lets it go on (the account says whether
    /// that attempt's change was made).
    async fn reserve(&mut self) -> Result<Option<Answer<T>>, Error> {
        let checked_at = self.ledger.clock.now_millis();
        let reserved = self.timed(self.ledger.store.reserve(&self.key.reservation(checked_at))).await??;
        self.forgotten_by = self.forgotten_by.max(checked_at - CLOCK_MARGIN_MILLIS);
        match reserved {
            Reserved::New => {
                self.reserved = true;
                self.kept_in_entry().await
            }
            Reserved::Existing(stored) if stored.pending => {
                self.pending(&stored)?;
                self.kept_in_entry().await
            }
            Reserved::Existing(stored) => self.replay(&stored).map(Some),
        }
    }

    /// A 503 naming a generated key after a write that may have landed names it with the
    /// account version that change came after (`idempotency::named_with_version`): the change
    /// would be quiet, its outcome kept on its entry, and a client sending the key back is
    /// answered from there. Writing nothing, it holds however slow the store is.
    fn named_with_version(&self, err: Error) -> Error {
        match (err, self.after()) {
            (Error::Unavailable { unknown_outcome_key: Some(key) }, Some(after)) if self.key.is_generated() => {
                Error::Unavailable { unknown_outcome_key: Some(named_with_version(&key, after)) }
            }
            (err, _) => err,
        }
    }

    /// The oldest account version this key's change may have come after: of this request's
    /// writes, or named with the key by the 503 of the request that generated it.
    fn after(&self) -> Option<u64> {
        match (self.sent_after, self.key.named_after()) {
            (Some(sent), Some(named)) => Some(sent.min(named)),
            (sent, named) => sent.or(named),
        }
    }

    /// The answer a quiet change's main entry keeps under this key, if this key's change may
    /// be a quiet one (generated, and the version it would come after is known) and it moved
    /// out: only such a change keeps no idempotency record.
    async fn kept_in_entry(&self) -> Result<Option<Answer<T>>, Error> {
        let Some(after) = self.after().filter(|_| self.key.is_generated()) else {
            return Ok(None);
        };
        let AccountRef { entity_id, user_id, .. } = self.account;
        let found = self.timed(self.ledger.store.keyed_entry(entity_id, user_id, &self.key.key, after)).await??;
        let Some(kept) = found else {
            return Ok(None);
        };
        let applied = applied_from_entry(&self.load().await?, kept.entry);
        let at = applied.account.updated_at.unwrap_or_default();
        self.answer(&kept.fingerprint, &kept.attempt, &applied, at).map(Some)
    }

    fn pending(&self, claim: &StoredOutcome) -> Result<Option<Answer<T>>, Error> {
        if self.key.is_same_request(&claim.fingerprint) { Ok(None) } else { Err(Error::IdempotencyKeyReused) }
    }

    /// A refusal leaves the key free for a corrected request: the claim this request made
    /// on it goes (a change that was made keeps its claim, which its record replaces).
    async fn release_if_refused(&self, answer: Result<Answer<T>, Error>) -> Result<Answer<T>, Error> {
        let refused = matches!(&answer, Err(err) if !matches!(err, Error::Unavailable { .. } | Error::Internal | Error::IdempotencyKeyReused));
        if refused && self.reserved {
            let key = self.key;
            let released = self.ledger.store.release(&key.entity_id, &key.key, key.attempt());
            if let Some(Err(err)) = crate::deadline::within(ANSWER_MARGIN, released).await {
                tracing::warn!(error = %err, "a refused change's claim on its key stays until it expires");
            }
        }
        answer
    }

    /// The answer under this key from its idempotency record, if it has one.
    async fn recorded(&mut self) -> Result<Option<Answer<T>>, Error> {
        let checked_at = self.ledger.clock.now_millis();
        let stored = self.timed(self.ledger.store.get_response(&self.key.entity_id, &self.key.key)).await??;
        self.forgotten_by = self.forgotten_by.max(checked_at - CLOCK_MARGIN_MILLIS);
        match stored.filter(|stored| stored.expires_at > checked_at) {
            Some(stored) if stored.pending => {
                self.pending(&stored)?;
                self.kept_in_entry().await
            }
            Some(stored) => self.replay(&stored).map(Some),
            None => self.kept_in_entry().await,
        }
    }

    /// A refused write whose account forgot keys since this key was checked: check again. A
    /// key forgotten by then was recorded before it was forgotten, so before this read began:
    /// once the read finds nothing, the write may require no more than what it saw (whatever
    /// the clocks of the instances that forgot them say).
    async fn recheck_if_forgotten(&mut self, current: &Account) -> Result<Option<Answer<T>>, Error> {
        let forgotten_before = if self.key.is_generated() {
            current.generated_keys_forgotten_before
        } else {
            current.keys_forgotten_before
        };
        if forgotten_before <= self.forgotten_by || self.key_is_fresh() {
            // A fresh key's write requires nothing of forgotten keys: it has no record to read.
            return Ok(None);
        }
        let answer = self.recorded().await?;
        self.forgotten_by = self.forgotten_by.max(forgotten_before);
        Ok(answer)
    }

    fn replay(&self, stored: &StoredOutcome) -> Result<Answer<T>, Error> {
        if !self.key.is_same_request(&stored.fingerprint) {
            return Err(Error::IdempotencyKeyReused);
        }
        let Ok(facts) = serde_json::from_str::<Facts>(&stored.outcome) else {
            // Written before journals: the record holds the typed outcome itself.
            let outcome = serde_json::from_str(&stored.outcome).map_err(Error::internal)?;
            return Ok(Answer { outcome, replayed: !self.key.is_own_attempt(&stored.attempt) });
        };
        self.answer(&stored.fingerprint, &stored.attempt, &facts.applied, facts.at)
    }

    fn answer(&self, fingerprint: &str, attempt: &str, applied: &Applied, at: i64) -> Result<Answer<T>, Error> {
        if !self.key.is_same_request(fingerprint) {
            return Err(Error::IdempotencyKeyReused);
        }
        let outcome = (self.outcome_of)(applied, at)?;
        Ok(Answer { outcome, replayed: !self.key.is_own_attempt(attempt) })
    }

    /// After the attempts ran out: whether the change landed after all, if the store says —
    /// its key remembered, or (a generated key is forgotten as its record moves) its entry
    /// keeping its outcome. A write whose answer was lost may still land: then the outcome
    /// is unknown, and the answer names the key.
    async fn resolve(&mut self) -> Result<Answer<T>, Error> {
        let Ok(current) = self.load().await else {
            return Err(self.unknown_outcome());
        };
        if let Some(answer) = self.written(&current).await? {
            return Ok(answer);
        }
        if let Some(answer) = self.kept_in_entry().await? {
            return Ok(answer);
        }
        Err(if self.unsure { self.unknown_outcome() } else { Error::unavailable() })
    }

    async fn load(&self) -> Result<Account, Error> {
        self.timed(self.ledger.load(self.account)).await?
    }

    /// `work`, unless the request's deadline comes first: then the change's outcome is
    /// unknown, and the answer says under which key to learn it.
    async fn timed<R>(&self, work: impl Future<Output = R>) -> Result<R, Error> {
        crate::deadline::within(ANSWER_MARGIN, work).await.ok_or_else(|| self.unknown_outcome())
    }

    fn unknown_outcome(&self) -> Error {
        Error::Unavailable { unknown_outcome_key: Some(self.key.key.clone()) }
    }
}

/// The change a quiet change's main entry keeps (`RecordKey::quiet`: a plain change, its
/// entry last), as an answer shows it: the account's balance and held credits as the entry
/// left them; its lifetime counters as they stand in `current` (later changes included).
fn applied_from_entry(current: &Account, entry: crate::domain::account::Entry) -> Applied {
    let version = entry.position.0;
    let held = (entry.held_after > 0).then(|| {
        ("#held".to_owned(), crate::domain::account::ActiveHold { credits: entry.held_after, expires_at: i64::MAX })
    });
    let account = Account {
        balance: entry.balance_after,
        holds: held.into_iter().collect(),
        updated_at: Some(entry.created_at),
        version,
        ..current.as_answered(entry.created_at)
    };
    Applied {
        previous_version: version.saturating_sub(1),
        account,
        entries: vec![entry],
        holds: vec![],
        purchased_tier: None,
    }
}

/// A new account as its first change leaves it, with that change's record.
fn first_state(mut account: Account, append: Append) -> Account {
    account.stored_spendable = Some(account.spendable());
    account.recent_keys.insert(append.slot, 0);
    account.journal.push(append.record);
    account
}

/// The account as of now. Holds that expired since the last write are recorded first (an
/// `expire` entry each), so the ledger explains every read.
pub async fn read(ledger: Ledger<'_>, account: AccountRef<'_>) -> Result<AccountView, Error> {
    Ok(read_state(ledger, account).await?.0)
}

/// `read`, plus the account item as read when no expiry had to be recorded (`None` after
/// one: the item changed since).
async fn read_state(ledger: Ledger<'_>, account: AccountRef<'_>) -> Result<(AccountView, Option<Account>), Error> {
    let current = ledger.load(account).await?;
    let now = ledger.clock.now_millis();
    if current.expired_hold_ids(now).is_empty() {
        return Ok((current.view(now), Some(current)));
    }
    let sweep = Change { operation: Operation::Sweep, reason: None, idempotency_key: None, by_user_id: None };
    let key = IdempotencyKey::internal(account.entity_id, &format!("sweep {}", account.user_id));
    match self::change(ledger, account, &sweep, &key, |applied, now| Ok(applied.account.view(now))).await {
        Ok(swept) => Ok((swept.outcome, None)),
        // Someone else recorded the expiry first: read what they wrote.
        Err(_) => Ok((ledger.load(account).await?.view(ledger.clock.now_millis()), None)),
    }
}
