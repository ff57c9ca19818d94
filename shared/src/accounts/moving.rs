//! Moving journal records out of the account item to their own items (entries, holds,
//! purchase counts, idempotency records), oldest first. The account item stays small, which
//! is what every write to it pays for (a write costs one unit per KB of the item). One mover
//! at a time claims an account's journal (`moverUntil`); reads that need the records moved
//! move them at once, claim or not (movers that meet recognise records moved twice).

use crate::deadline::ANSWER_MARGIN;
use crate::domain::account::{Account, AccountView};
use crate::domain::journal::{JournalRecord, MAX_JOURNAL, MAX_JOURNAL_BYTES, key_slot, realize_all};
use crate::domain::ledger::Applied;
use crate::error::Error;
use crate::idempotency::is_generated;
use crate::store::{Claim, MovedRecord, StoredOutcome, Trim};

use super::{AccountRef, Facts, Ledger};

/// A writer that knows the journal is about to be this long claims it for moving with its
/// write (`claim_with_write`): few records, as each one waiting in the item is paid again by
/// every write of it.
pub const MOVE_EVERY: usize = 2;
/// Records moved out keep their key in `recentKeys` at least this long.
const KEEP_KEYS_MILLIS: i64 = 1_000;
/// Keys forgotten per trim at most (an update expression is limited to 4 KB).
const FORGET_AT_MOST: usize = 40;
/// How long a mover's claim on a journal lasts unless its last trim ends it sooner: enough for
/// a move whose requests queue behind many writers' (under `make test`'s load, with every
/// call's capacity sized, a move of one hot account took over 5 s and a second mover claimed);
/// a mover that died holds the journal up no longer: the dispatcher takes over then, and
/// reads move it at once.
const MOVER_CLAIM_MILLIS: i64 = 10_000;
/// Times a move reads the account again after another mover got ahead, before giving up.
const MOVE_ROUNDS: usize = 6;
/// Actions in one transaction at most (DynamoDB's limit).
const MAX_ACTIONS: usize = 100;

/// The claim a write makes on its account's journal, when the journal it knows is about to
/// reach `MOVE_EVERY` records: the write that lands with it (the claim held by nobody) moves
/// the journal, with no request to claim it. The instant is made unlikely to equal another
/// writer's claim by a few milliseconds taken from the writer's key slot.
pub(super) fn claim_with_write(snapshot: &Account, slot: &str, now: i64) -> Option<i64> {
    let spread = slot.bytes().take(3).fold(0, |acc, b| acc * 64 + i64::from(b)) % 1_000;
    (snapshot.journal.len() + 1 >= MOVE_EVERY).then_some(now + MOVER_CLAIM_MILLIS + spread)
}

/// Moves the journal out after a write that claimed it (`claim`, if the write's claim is the
/// one the account holds), or that finds a claim outlived by its mover; `true` when every
/// record `after` holds is moved out. The write has landed whatever happens here: a failure,
/// or the request's deadline coming first, only leaves the records for the next mover (the
/// dispatcher takes over a claim that lapsed).
pub(super) async fn after_write(ledger: Ledger<'_>, after: &Account, claim: Option<i64>) -> bool {
    let now = ledger.clock.now_millis();
    let owns = claim.is_some_and(|until| until == after.mover_until);
    let outlived = after.journal.len() >= MOVE_EVERY && (1..now).contains(&after.mover_until);
    if !owns && !outlived {
        return false;
    }
    let moving = async {
        if owns {
            move_held(ledger, after, after.mover_until).await.map(|()| true)
        } else {
            move_claimed(ledger, after, now).await.map(|claimed| matches!(claimed, Claimed::Moved))
        }
    };
    match crate::deadline::within(ANSWER_MARGIN, moving).await {
        Some(Ok(all)) => all,
        Some(Err(err)) => {
            tracing::warn!(error = %err, "journal records left for the next mover");
            false
        }
        None => {
            tracing::warn!("request deadline came first; journal records left for the dispatcher");
            false
        }
    }
}

/// Why a write must wait for the journal to move out first: the records it holds, when that
/// is as many (`MAX_JOURNAL`) or as large (`MAX_JOURNAL_BYTES`) as the item allows.
pub(super) fn room_needed(current: &Account) -> Option<usize> {
    let records = current.journal.len();
    let full = records + 1 >= MAX_JOURNAL
        || (records >= MOVE_EVERY
            && current.journal.iter().map(|r| serde_json::to_string(r).map_or(0, |t| t.len())).sum::<usize>()
                > MAX_JOURNAL_BYTES);
    full.then_some(records)
}

/// Moves a full journal out unless another mover holds it (`false`: it is at it).
pub(super) async fn make_room(ledger: Ledger<'_>, current: &Account) -> bool {
    let now = ledger.clock.now_millis();
    if current.mover_until > now {
        return false;
    }
    if let Err(err) = move_claimed(ledger, current, now).await {
        tracing::warn!(error = %err, "a full journal could not be moved out");
    }
    true
}

/// The account as this process knows it after its write: with the journal moved out when it
/// moved it, so its next write does not claim a journal that is already short.
pub(super) fn as_moved(mut after: Account, moved: bool) -> Account {
    if moved {
        after.moved_records += after.journal.len() as u64;
        after.journal.clear();
        after.mover_until = 0;
    }
    after
}

/// The account as of now with every journal record moved out, so its entries, holds and
/// purchase counts can be read from their own items.
pub async fn settle(ledger: Ledger<'_>, account: AccountRef<'_>) -> Result<Settled, Error> {
    let (view, current) = super::read_state(ledger, account).await?;
    let (view, current) = match current {
        Some(current) => (view, current),
        None => {
            let current = ledger.load(account).await?;
            (current.view(ledger.clock.now_millis()), current)
        }
    };
    move_all(ledger, &current, None).await?;
    Ok(Settled { view, version: current.version })
}

/// An account whose journal is moved out: as it stood then, and the version it had (the
/// entries up to it are all written; later ones may be too).
#[derive(Debug, Clone)]
pub struct Settled {
    pub view: AccountView,
    pub version: u64,
}

/// Moves every record the account's journal holds now out to its own items, unless another
/// mover has the journal: then `Some(until)`, the instant its claim lapses, so the caller can
/// come back and take over if that mover died (its records would otherwise wait for the
/// account's next write or read).
pub async fn move_journal(ledger: Ledger<'_>, account: AccountRef<'_>) -> Result<Option<i64>, Error> {
    let current = ledger.load(account).await?;
    let now = ledger.clock.now_millis();
    if current.journal.is_empty() {
        return Ok(None);
    }
    if current.mover_until > now {
        return Ok(Some(current.mover_until));
    }
    match move_claimed(ledger, &current, now).await? {
        Claimed::Moved | Claimed::Empty => Ok(None),
        Claimed::Held(until) => Ok(Some(until)),
    }
}

/// What a claim of a request of its own came to.
enum Claimed {
    Moved,
    /// Another mover has the journal until then.
    Held(i64),
    Empty,
}

/// Claims the journal with a request of its own and moves it out; nothing to do when another
/// mover holds it. The claim returns the journal as it is by then (writers kept appending
/// meanwhile), and all of it moves.
async fn move_claimed(ledger: Ledger<'_>, seen: &Account, now: i64) -> Result<Claimed, Error> {
    let until = now + MOVER_CLAIM_MILLIS;
    match ledger.store.claim_mover(&seen.entity_id, &seen.user_id, now, until).await? {
        Claim::Taken(current) => move_held(ledger, &current, until).await.map(|()| Claimed::Moved),
        Claim::Held(until) => Ok(Claimed::Held(until)),
        Claim::NoAccount => Ok(Claimed::Empty),
    }
}

/// Moves `current`'s records out under the claim that lasts until `until`, so movers of one
/// account take turns instead of colliding. The last trim ends the claim; a move that ends
/// otherwise ends it on its own.
async fn move_held(ledger: Ledger<'_>, current: &Account, until: i64) -> Result<(), Error> {
    let moved = move_all(ledger, current, Some(until)).await;
    if !matches!(moved, Ok(true)) {
        ledger.store.release_mover(&current.entity_id, &current.user_id, until).await?;
    }
    moved.map(|_| ())
}

/// Moves out every record `current`'s journal holds. Another mover may drop records first;
/// then the account is read again and moving goes on until every record `current` held is
/// moved and dropped (records moved twice are recognised and skipped), so a read that moves
/// first sees all of them. `true` when its last trim ended the mover's claim (`claim`).
async fn move_all(ledger: Ledger<'_>, current: &Account, claim: Option<i64>) -> Result<bool, Error> {
    let target = current.moved_records + current.journal.len() as u64;
    let account = AccountRef::user(&current.entity_id, &current.user_id);
    let mut state = current.clone();
    for _ in 0..MOVE_ROUNDS {
        if let Some(released) = move_batches(ledger, &state, claim).await? {
            return Ok(released);
        }
        state = ledger.load(account).await?;
        if state.moved_records >= target {
            return Ok(false);
        }
    }
    Err(Error::unavailable())
}

/// Moves `current`'s records out batch by batch (the last trim ending the claim, if any);
/// `None` when another mover dropped records first (what this one moved is written, but the
/// journal is no longer as it read it), else whether the claim ended.
async fn move_batches(ledger: Ledger<'_>, current: &Account, claim: Option<i64>) -> Result<Option<bool>, Error> {
    let realized = realize_all(current);
    let records =
        current.journal.iter().zip(realized).map(|(r, a)| moved(current, r, a)).collect::<Result<Vec<_>, _>>()?;
    let (entity_id, user_id) = (current.entity_id.as_str(), current.user_id.as_str());
    let mut keys = KeysSeen {
        moved_before: current.moved_records,
        forgotten_before: current.keys_forgotten_before,
        generated_forgotten_before: current.generated_keys_forgotten_before,
        recent: current.recent_keys.clone(),
    };
    let (mut start, mut released) = (0, false);
    while start < records.len() {
        let count = batch_len(&records[start..]);
        let batch = &records[start..start + count];
        ledger.store.move_out(entity_id, user_id, batch).await?;
        let last = start + count == records.len();
        let trim = keys.trim(ledger.clock.now_millis(), batch, claim.filter(|_| last));
        match ledger.store.trim_journal(entity_id, user_id, &trim).await? {
            Some(ended) => released = ended,
            None => return Ok(None),
        }
        keys.trimmed(&trim);
        start += count;
    }
    Ok(Some(released))
}

/// The account's record count and keys as this mover's trims leave them, so each trim
/// forgets its own share of old keys (not the same ones again) and stamps keys no earlier
/// than any key the account remembers or forgot (whatever this mover's clock says).
struct KeysSeen {
    moved_before: u64,
    forgotten_before: i64,
    generated_forgotten_before: i64,
    recent: std::collections::BTreeMap<String, i64>,
}

impl KeysSeen {
    /// Keys a client may send again are kept `KEEP_KEYS_MILLIS` after they move (a writer
    /// that checked such a key's record before it moved must not be refused for it); a
    /// generated key is forgotten as it moves, as only its own request (or a client told it
    /// in a 503) can ask for it, and such writes check `autoForgotten`.
    fn trim(&self, now: i64, batch: &[MovedRecord], release_mover: Option<i64>) -> Trim {
        let newest = self.recent.values().copied().max().unwrap_or(0);
        let moved_at = now.max(self.forgotten_before).max(self.generated_forgotten_before).max(newest);
        let cutoff = now - KEEP_KEYS_MILLIS;
        let mut old: Vec<_> = self.recent.iter().filter(|(_, at)| **at > 0 && **at < cutoff).collect();
        old.sort_by_key(|(_, at)| **at);
        old.truncate(FORGET_AT_MOST);
        let newest_forgotten = old.last().map_or(self.forgotten_before, |(_, at)| **at + 1);
        let (generated, kept): (Vec<_>, Vec<_>) = batch.iter().partition(|m| is_generated(&m.idem.key));
        // Past every forgotten record's own instant too: its writer, on its own clock, then
        // finds it forgotten after its start, whatever this mover's clock says.
        let newest_generated = generated.iter().filter_map(|m| m.applied.account.updated_at).max();
        Trim {
            moved_before: self.moved_before,
            count: batch.len(),
            moved_slots: kept.into_iter().map(|m| key_slot(&m.idem.key)).collect(),
            moved_at,
            forget: old
                .into_iter()
                .map(|(slot, _)| slot.clone())
                .chain(generated.iter().map(|m| key_slot(&m.idem.key)))
                .collect(),
            forgotten_before: (self.forgotten_before, newest_forgotten.max(self.forgotten_before)),
            generated_forgotten_before: (!generated.is_empty())
                .then(|| moved_at.max(newest_generated.unwrap_or(moved_at)) + 1),
            release_mover,
        }
    }

    fn trimmed(&mut self, trim: &Trim) {
        self.moved_before += trim.count as u64;
        self.forgotten_before = trim.forgotten_before.1;
        if let Some(forgotten) = trim.generated_forgotten_before {
            self.generated_forgotten_before = forgotten;
        }
        for slot in &trim.forget {
            self.recent.remove(slot);
        }
        self.recent.extend(trim.moved_slots.iter().map(|slot| (slot.clone(), trim.moved_at)));
    }
}

fn moved(current: &Account, record: &JournalRecord, mut applied: Applied) -> Result<MovedRecord, Error> {
    applied.account = applied.account.as_answered(record.at);
    let facts = Facts { applied, at: record.at };
    let idem = StoredOutcome {
        entity_id: current.entity_id.clone(),
        key: record.key.clone(),
        fingerprint: record.fingerprint.clone(),
        outcome: facts.to_stored()?,
        expires_at: record.key_expires_at(),
        attempt: record.attempt.clone(),
        pending: false,
    };
    let quiet = record.quiet && facts.applied.holds.is_empty() && facts.applied.purchased_tier.is_none();
    Ok(MovedRecord { applied: facts.applied, idem, quiet })
}

/// How many of `records` fit one transaction (at least one).
fn batch_len(records: &[MovedRecord]) -> usize {
    let mut actions = 0;
    let fitting = records
        .iter()
        .take_while(|record| {
            let applied = &record.applied;
            actions += applied.entries.len() + applied.holds.len() + 2;
            actions <= MAX_ACTIONS
        })
        .count();
    fitting.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::account::{ActiveHold, PaymentReversals};
    use crate::domain::journal::{RecordKey, record};
    use crate::domain::ledger::{Change, Operation, apply};

    /// `account` after a spend of 10 at 7, and that change as the mover writes it out.
    fn moved_spend(account: &Account) -> (Applied, MovedRecord) {
        let change = Change {
            operation: Operation::Decrement { credits: 10 },
            reason: None,
            idempotency_key: None,
            by_user_id: None,
        };
        let applied = apply(account, &change, 7, &mut || "id".to_owned()).unwrap();
        let key =
            RecordKey { key: "k".into(), fingerprint: "f".into(), attempt: "a".into(), expires_at: 9, quiet: false };
        let moved = moved(account, &record(account, &applied, key), applied.clone()).unwrap();
        (applied, moved)
    }

    #[test]
    fn an_idempotency_record_keeps_what_answers_show_not_the_holds_or_reversals() {
        let mut account = Account { balance: 100, version: 3, ..Account::empty("e", "u") };
        for i in 0..40 {
            account.holds.insert(format!("h-{i}"), ActiveHold { credits: 1, expires_at: i64::MAX });
        }
        account.reversals.insert("pi_1".into(), PaymentReversals { reversed: 5 });
        let (applied, moved) = moved_spend(&account);

        let facts: Facts = serde_json::from_str(&moved.idem.outcome).unwrap();
        assert!(facts.applied.account.reversals.is_empty());
        assert_eq!(facts.applied.account.holds.len(), 1, "{:?}", facts.applied.account.holds);
        assert_eq!(facts.applied.account.view(7), applied.account.view(7), "a replay answers as the change did");
        assert!(moved.idem.outcome.len() < 1_000, "{} bytes", moved.idem.outcome.len());
    }

    #[test]
    fn an_idempotency_record_leaves_out_nulls_and_empty_maps_and_reads_back_whole() {
        let (applied, moved) = moved_spend(&Account { balance: 100, version: 3, ..Account::empty("e", "u") });

        for absent in ["null", "{}", "\"journal\"", "recentKeys"] {
            assert!(!moved.idem.outcome.contains(absent), "{absent} in {}", moved.idem.outcome);
        }
        let facts: Facts = serde_json::from_str(&moved.idem.outcome).unwrap();
        let mut expected = Applied { account: applied.account.as_answered(7), ..applied };
        expected.entries.iter_mut().for_each(|entry| entry.position = (0, 0)); // the item's sort key
        assert_eq!(facts.applied, expected, "what a replay builds its answer from");
    }
}
