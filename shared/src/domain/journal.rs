//! The account's journal: how a change becomes one conditional update of the account item.
//!
//! A change is computed by `ledger::apply` from the last state this process knows. Instead of
//! writing that whole state back (which any other writer's change invalidates), the write adds
//! the change's *differences* to the account (balance, lifetime counters, the holds and
//! payment reversals it touches) under conditions that keep the ledger's rules true whatever
//! others wrote meanwhile (enough spendable credits, the hold still as it was), and appends a
//! record of the change to the account's journal. So concurrent writers of one account never
//! invalidate each other; only a rule that really fails refuses the write.
//!
//! A record holds the change's differences, so the account as it stood after any record is
//! the current account with the later records undone (`realize_all`). Records are moved out
//! to their own items (entries, holds, purchase counts, idempotency records) later, in order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::account::{ACCOUNT_FORMAT, Account, ActiveHold, Entry, PaymentReversals, is_zero};
use crate::domain::ledger::{Applied, HoldChange};

/// Records a journal may hold: a write finding it this long moves it out first, and the
/// store refuses a write past it, so the item stays far below DynamoDB's 400 KB (at ~2.3 KB
/// for the largest usual record, 64 take ~150 KB) whatever happens to moving. Not tighter:
/// at 12 records (and 3 KB) a hot account's writers met a full journal so often that their
/// waiting reads slowed its mover and one account at 32–64 instances answered mostly 503
/// (`make bench`, 2026-12-07).
pub const MAX_JOURNAL: usize = 64;
/// Bytes of records a writer lets its journal reach before it moves them out first (records
/// that expire many holds are large).
pub const MAX_JOURNAL_BYTES: usize = 160 * 1024;

/// How long an idempotency key's outcome is kept, unless forever (§1: 24 h).
pub const KEY_RETENTION_MILLIS: i64 = 24 * 60 * 60 * 1000;

/// One change as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalRecord {
    /// The record's format (`account::ACCOUNT_FORMAT`; 0: written before formats).
    #[serde(default)]
    pub v: u32,
    /// The idempotency key the change was made under.
    pub key: String,
    #[serde(rename = "f", alias = "fingerprint", with = "compact_hex")]
    pub fingerprint: String,
    /// Which request attempt wrote it (`StoredOutcome::attempt`).
    #[serde(rename = "a", alias = "attempt", with = "compact_hex")]
    pub attempt: String,
    /// When the key's record expires, if not `KEY_RETENTION_MILLIS` after `at` (format 3
    /// leaves that out: every write of the item pays for its bytes); see `key_expires_at()`.
    #[serde(default, rename = "x", alias = "keyExpiresAt", skip_serializing_if = "Option::is_none")]
    pub key_expires: Option<i64>,
    pub at: i64,
    #[serde(rename = "d", alias = "delta")]
    pub delta: Delta,
    /// The entries, with `balanceAfter`/`heldAfter` left at 0: they depend on what other
    /// writers did first and are computed from `offsets` when the record is realized; and
    /// `createdAt` at 0 when it is the record's `at` (realizing sets it).
    #[serde(rename = "e", alias = "entries", with = "compact_entries")]
    pub entries: Vec<Entry>,
    /// Per entry: its balance and held amount after it, relative to the account before the
    /// change.
    #[serde(rename = "o", alias = "offsets")]
    pub offsets: Vec<(i64, i64)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<HoldChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchased_tier: Option<String>,
    /// Made under a key its request generated (`RecordKey::quiet`; format 3).
    #[serde(default, rename = "q", skip_serializing_if = "std::ops::Not::not")]
    pub quiet: bool,
}

impl JournalRecord {
    /// When the key's record expires.
    pub fn key_expires_at(&self) -> i64 {
        self.key_expires.unwrap_or(self.at + KEY_RETENTION_MILLIS)
    }
}

/// What a change adds to the account. Stored under one- or two-letter names (format 2; the
/// long names of format 1 still read).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    #[serde(default, rename = "b", alias = "balance", skip_serializing_if = "is_zero")]
    pub balance: i64,
    /// Balance minus every hold on the account, expired or not: the number a write's
    /// condition compares, as DynamoDB conditions cannot add or subtract.
    #[serde(default, rename = "s", alias = "spendable", skip_serializing_if = "is_zero")]
    pub spendable: i64,
    #[serde(default, rename = "p", alias = "purchased", skip_serializing_if = "is_zero")]
    pub purchased: i64,
    #[serde(default, rename = "g", alias = "granted", skip_serializing_if = "is_zero")]
    pub granted: i64,
    #[serde(default, rename = "c", alias = "consumed", skip_serializing_if = "is_zero")]
    pub consumed: i64,
    #[serde(default, rename = "r", alias = "reversed", skip_serializing_if = "is_zero")]
    pub reversed: i64,
    #[serde(default, rename = "ha", alias = "holdsAdded", skip_serializing_if = "BTreeMap::is_empty")]
    pub holds_added: BTreeMap<String, ActiveHold>,
    /// Holds removed, as they were: the write requires them unchanged.
    #[serde(default, rename = "hr", alias = "holdsRemoved", skip_serializing_if = "BTreeMap::is_empty")]
    pub holds_removed: BTreeMap<String, ActiveHold>,
    #[serde(default, rename = "rv", alias = "reversals", skip_serializing_if = "BTreeMap::is_empty")]
    pub reversals: BTreeMap<String, ReversalChange>,
}

/// Hex digests and ids (fingerprints, attempts) as a record keeps them: `~` and their bytes
/// in URL-safe base64, a third shorter; anything else (never starting with `~`) as it is.
/// Reads both forms.
mod compact_hex {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde::{Deserialize, Deserializer, Serializer};

    const MARK: char = '~';

    fn bytes_of_hex(text: &str) -> Option<Vec<u8>> {
        let lower_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
        if text.len() < 32 || !text.len().is_multiple_of(2) || !text.as_bytes().iter().all(lower_hex) {
            return None;
        }
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
    }

    pub fn serialize<S: Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
        match bytes_of_hex(text) {
            Some(bytes) => serializer.serialize_str(&format!("{MARK}{}", URL_SAFE_NO_PAD.encode(bytes))),
            None => serializer.serialize_str(text),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
        let text = String::deserialize(deserializer)?;
        let Some(encoded) = text.strip_prefix(MARK) else {
            return Ok(text);
        };
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(serde::de::Error::custom)?;
        Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// Entries as a record keeps them: without the fields that are empty (nulls) or computed when
/// the record is realized (`balanceAfter`, `heldAfter`). Every write to the account pays
/// for the journal's size.
mod compact_entries {
    use serde::de::Error as _;
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::{Map, Value};

    use crate::domain::account::Entry;

    const COMPUTED: [&str; 2] = ["balanceAfter", "heldAfter"];
    /// Left out when 0 (the record's `at`), read back as 0.
    const CREATED_AT: &str = "createdAt";

    fn unset_created_at() -> Value {
        Value::from(crate::clock::rfc3339(0))
    }

    pub fn serialize<S: Serializer>(entries: &[Entry], serializer: S) -> Result<S::Ok, S::Error> {
        let mut compact = Vec::with_capacity(entries.len());
        for entry in entries {
            let Value::Object(fields) = serde_json::to_value(entry).map_err(S::Error::custom)? else {
                return Err(S::Error::custom("an entry is an object"));
            };
            let kept: Map<String, Value> = fields
                .into_iter()
                .filter(|(name, value)| !value.is_null() && !COMPUTED.contains(&name.as_str()))
                .filter(|(name, value)| name != CREATED_AT || *value != unset_created_at())
                .collect();
            compact.push(kept);
        }
        compact.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Entry>, D::Error> {
        let compact = Vec::<Map<String, Value>>::deserialize(deserializer)?;
        compact
            .into_iter()
            .map(|mut fields| {
                for name in COMPUTED {
                    fields.entry(name).or_insert(Value::from(0));
                }
                fields.entry(CREATED_AT).or_insert_with(unset_created_at);
                serde_json::from_value(Value::Object(fields)).map_err(D::Error::custom)
            })
            .collect()
    }
}

/// A payment's reversed credits before (`None`: none reversed) and after the change (0: the
/// payment's entry goes, as if never reversed, so the item keeps only reversals in force).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReversalChange {
    pub before: Option<u64>,
    pub after: u64,
}

/// One write of a change: the record plus the conditions it is written under.
#[derive(Debug, Clone, PartialEq)]
pub struct Append {
    pub record: JournalRecord,
    /// The record's key as the account's `recentKeys` names it (`key_slot`).
    pub slot: String,
    /// `spendable` must be at least this (spends and holds only).
    pub min_spendable: Option<i64>,
    /// The account may have at most this many holds before the write (when it opens one).
    pub max_holds_before: Option<usize>,
    /// What the write requires of the account's forgotten keys (`None`: nothing).
    pub keys_forgotten: Option<KeysForgotten>,
    /// Claims the journal for moving until this instant, unless a mover has it already.
    pub claim_mover: Option<i64>,
    /// The key's slot as an expired earlier use of the key left it (`None`: the slot must be
    /// free): the write takes it over only if it is still so.
    pub slot_seen: Option<i64>,
}

/// Keys of one kind (generated or not: `Account::generated_keys_forgotten_before`) may have
/// been forgotten only before `by` (see `accounts`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeysForgotten {
    pub generated: bool,
    pub by: i64,
}

/// The differences between the state a change started from and the state it computed.
pub fn delta(before: &Account, after: &Account) -> Delta {
    let diff = |a: u64, b: u64| a as i64 - b as i64;
    let changed = |id: &String, hold: &ActiveHold, other: &BTreeMap<String, ActiveHold>| other.get(id) != Some(hold);
    let payments = after.reversals.keys().chain(before.reversals.keys()).collect::<std::collections::BTreeSet<_>>();
    let reversals = payments
        .into_iter()
        .filter(|pi| before.reversals.get(*pi) != after.reversals.get(*pi))
        .map(|pi| {
            let reversed = |account: &Account| account.reversals.get(pi).map(|r| r.reversed);
            let change = ReversalChange { before: reversed(before), after: reversed(after).unwrap_or(0) };
            (pi.clone(), change)
        })
        .collect();
    Delta {
        balance: after.balance - before.balance,
        spendable: after.spendable() - before.spendable(),
        purchased: diff(after.lifetime_purchased, before.lifetime_purchased),
        granted: diff(after.lifetime_granted, before.lifetime_granted),
        consumed: diff(after.lifetime_consumed, before.lifetime_consumed),
        reversed: diff(after.lifetime_reversed, before.lifetime_reversed),
        holds_added: after.holds.iter().filter(|(id, h)| changed(id, h, &before.holds)).map(cloned).collect(),
        holds_removed: before.holds.iter().filter(|(id, h)| changed(id, h, &after.holds)).map(cloned).collect(),
        reversals,
    }
}

fn cloned((id, hold): (&String, &ActiveHold)) -> (String, ActiveHold) {
    (id.clone(), hold.clone())
}

/// The record of `applied`, computed from `before`; entries keep their numbers as offsets.
pub fn record(before: &Account, applied: &Applied, key: RecordKey) -> JournalRecord {
    let held_before = before.held_total() as i64;
    let offsets =
        applied.entries.iter().map(|e| (e.balance_after - before.balance, e.held_after as i64 - held_before)).collect();
    let at = applied.account.updated_at.unwrap_or_default();
    let entries = applied
        .entries
        .iter()
        .map(|e| Entry {
            balance_after: 0,
            held_after: 0,
            created_at: if e.created_at == at { 0 } else { e.created_at },
            ..e.clone()
        })
        .collect();
    JournalRecord {
        v: ACCOUNT_FORMAT,
        key: key.key,
        fingerprint: key.fingerprint,
        attempt: key.attempt,
        key_expires: (key.expires_at != at + KEY_RETENTION_MILLIS).then_some(key.expires_at),
        at,
        delta: delta(before, &applied.account),
        entries,
        offsets,
        holds: applied.holds.clone(),
        purchased_tier: applied.purchased_tier.clone(),
        quiet: key.quiet,
    }
}

/// The idempotency facts a record carries.
pub struct RecordKey {
    pub key: String,
    pub fingerprint: String,
    pub attempt: String,
    pub expires_at: i64,
    /// Generated by the change's own request, which answered without it or named it in a
    /// 503 after claiming it (`accounts`): nobody else can ask for its outcome, which its
    /// main entry keeps instead of an idempotency record of its own.
    pub quiet: bool,
}

/// Every journal record of `current` as the change it was, with the account as it stood right
/// after it and its entries' real numbers and positions; oldest first.
pub fn realize_all(current: &Account) -> Vec<Applied> {
    let mut after = current.clone();
    let mut realized = Vec::with_capacity(current.journal.len());
    for record in current.journal.iter().rev() {
        let mut before = after.clone();
        undo(&mut before, record);
        realized.push(realize(&before, &after, record));
        after = before;
    }
    realized.reverse();
    realized
}

/// The change of the journal's record at `index`.
pub fn realize_at(current: &Account, index: usize) -> Option<Applied> {
    let mut after = current.clone();
    for (at, record) in current.journal.iter().enumerate().rev() {
        let mut before = after.clone();
        undo(&mut before, record);
        if at == index {
            return Some(realize(&before, &after, record));
        }
        after = before;
    }
    None
}

/// The name of an idempotency key in the account's `recentKeys`: short, as every write to the
/// account pays for the item's size (96 bits of SHA-256: no two keys of one account meet).
pub fn key_slot(key: &str) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&Sha256::digest(key.as_bytes())[..12])
}

fn realize(before: &Account, after: &Account, record: &JournalRecord) -> Applied {
    let held_before = before.held_total() as i64;
    let entries = record
        .entries
        .iter()
        .zip(&record.offsets)
        .enumerate()
        .map(|(index, (entry, (balance, held)))| Entry {
            balance_after: before.balance + balance,
            held_after: (held_before + held).max(0) as u64,
            position: (after.version, index as u32),
            created_at: if entry.created_at == 0 { record.at } else { entry.created_at },
            ..entry.clone()
        })
        .collect();
    let mut account = after.clone();
    account.journal.clear();
    account.recent_keys.clear();
    account.updated_at = Some(record.at);
    Applied {
        previous_version: before.version,
        account,
        entries,
        holds: record.holds.clone(),
        purchased_tier: record.purchased_tier.clone(),
    }
}

/// The account as it was before `record` (its last journal record).
fn undo(account: &mut Account, record: &JournalRecord) {
    let back = |value: u64, delta: i64| (value as i64 - delta).max(0) as u64;
    let delta = &record.delta;
    account.balance -= delta.balance;
    account.lifetime_purchased = back(account.lifetime_purchased, delta.purchased);
    account.lifetime_granted = back(account.lifetime_granted, delta.granted);
    account.lifetime_consumed = back(account.lifetime_consumed, delta.consumed);
    account.lifetime_reversed = back(account.lifetime_reversed, delta.reversed);
    account.version = account.version.saturating_sub(1);
    for id in delta.holds_added.keys() {
        account.holds.remove(id);
    }
    account.holds.extend(delta.holds_removed.iter().map(|(id, hold)| (id.clone(), hold.clone())));
    for (pi, change) in &delta.reversals {
        match change.before {
            Some(reversed) => account.reversals.insert(pi.clone(), PaymentReversals { reversed }),
            None => account.reversals.remove(pi),
        };
    }
    account.journal.pop();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ledger::{Change, Operation, apply};

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("id-{n}")
        }
    }

    fn key(name: &str) -> RecordKey {
        RecordKey { key: name.into(), fingerprint: "f".into(), attempt: "a".into(), expires_at: 9, quiet: false }
    }

    /// Applies `operation` to `snapshot` and appends it to `current` as the store would.
    fn append(current: &Account, snapshot: &Account, operation: Operation, name: &str, now: i64) -> Account {
        let change = Change { operation, reason: None, idempotency_key: None, by_user_id: None };
        let applied = apply(snapshot, &change, now, &mut ids()).unwrap();
        let record = record(snapshot, &applied, key(name));
        let mut next = current.clone();
        let d = &record.delta;
        next.balance += d.balance;
        next.lifetime_granted = (next.lifetime_granted as i64 + d.granted) as u64;
        next.lifetime_consumed = (next.lifetime_consumed as i64 + d.consumed) as u64;
        next.version += 1;
        for id in d.holds_removed.keys() {
            next.holds.remove(id);
        }
        next.holds.extend(d.holds_added.clone());
        next.updated_at = Some(now);
        next.journal.push(record);
        next
    }

    #[test]
    fn records_written_from_stale_states_realize_with_the_real_numbers() {
        let mut start = Account::empty("e", "u");
        start.balance = 100;
        start.version = 4;
        // Two writers start from the same state; the second lands after the first.
        let first = append(&start, &start, Operation::Decrement { credits: 10 }, "k1", 1);
        let both =
            append(&first, &start, Operation::Hold { hold_id: "h".into(), credits: 30, ttl_seconds: 60 }, "k2", 2);
        assert_eq!((both.balance, both.available(3), both.version), (90, 60, 6));

        let realized = realize_all(&both);
        assert_eq!(realized.len(), 2);
        assert_eq!((realized[0].account.balance, realized[0].account.version), (90, 5));
        assert_eq!((realized[0].entries[0].balance_after, realized[0].entries[0].position), (90, (5, 0)));
        assert_eq!((realized[1].entries[0].balance_after, realized[1].entries[0].held_after), (90, 30));
        assert_eq!(realized[1].previous_version, 5);
        assert!(realized[1].account.journal.is_empty());
        assert_eq!(realize_at(&both, 0), Some(realized[0].clone()));
    }

    #[test]
    fn a_delta_names_the_holds_it_needs_unchanged() {
        let mut start = Account::empty("e", "u");
        start.balance = 50;
        start.holds.insert("h".into(), ActiveHold { credits: 20, expires_at: 10 });
        let change = Change {
            operation: Operation::Capture { hold_id: "h".into(), credits: Some(5) },
            reason: None,
            idempotency_key: None,
            by_user_id: None,
        };
        let applied = apply(&start, &change, 1, &mut ids()).unwrap();
        let delta = delta(&start, &applied.account);
        assert_eq!((delta.balance, delta.spendable, delta.consumed), (-5, 15, 5));
        assert_eq!(delta.holds_removed.keys().collect::<Vec<_>>(), ["h"]);
        assert!(delta.holds_added.is_empty());
    }

    #[test]
    fn a_record_keeps_only_what_realizing_it_needs_and_reads_back_whole() {
        let start = Account { balance: 100, version: 1, ..Account::empty("e", "u") };
        let change = Change {
            operation: Operation::Decrement { credits: 10 },
            reason: None,
            idempotency_key: None,
            by_user_id: None,
        };
        let applied = apply(&start, &change, 7, &mut ids()).unwrap();
        let mut written = record(&start, &applied, key("k"));
        written.entries[0].position = (0, 0); // never stored: realizing the record sets it
        let text = serde_json::to_string(&written).unwrap();
        for absent in ["null", "balanceAfter", "heldAfter", "granted", "holds", "purchasedTier"] {
            assert!(!text.contains(absent), "{absent} in {text}");
        }
        assert_eq!(serde_json::from_str::<JournalRecord>(&text).unwrap(), written);
    }

    /// A record as format 1 wrote it (taken from a stored account item): long names, hex
    /// digests, each entry's `createdAt`.
    const FORMAT_1_RECORD: &str = r##"{"v":1,"key":"#auto#01M99G1VQ5KZYFPFSZZ364JS83","fingerprint":"73fd19bd441cc0129d88fc466a3ebe42b83b3852663154ccfbea66facf96f2f1","attempt":"98e0205ccc58423685b7abd9faa6a1a3","keyExpiresAt":1796775299814,"at":1796688899814,"delta":{"balance":-1,"spendable":-1,"consumed":1},"entries":[{"createdAt":"2026-12-08T00:14:59.814Z","credits":-1,"entryId":"01M99G1VQ6RN3E5CYW5YEZC8CM","type":"decrement"}],"offsets":[[-1,0]]}"##;

    #[test]
    fn a_format_1_record_reads_and_realizes_as_it_was_written() {
        let old: JournalRecord = serde_json::from_str(FORMAT_1_RECORD).unwrap();
        assert_eq!(old.fingerprint, "73fd19bd441cc0129d88fc466a3ebe42b83b3852663154ccfbea66facf96f2f1");
        assert_eq!((old.attempt.as_str(), old.key_expires_at()), ("98e0205ccc58423685b7abd9faa6a1a3", 1796775299814));
        assert_eq!((old.delta.balance, old.delta.consumed, old.offsets.clone()), (-1, 1, vec![(-1, 0)]));

        let mut account = Account { balance: 99, version: 8, ..Account::empty("e", "u") };
        account.journal.push(old.clone());
        let realized = realize_at(&account, 0).unwrap();
        let entry = &realized.entries[0];
        assert_eq!((entry.created_at, entry.balance_after, entry.credits), (1796688899814, 99, -1));
        assert_eq!(entry.entry_id, "01M99G1VQ6RN3E5CYW5YEZC8CM");
    }

    #[test]
    fn a_record_is_a_quarter_smaller_than_format_1_wrote_it_and_realizes_the_same() {
        let old: JournalRecord = serde_json::from_str(FORMAT_1_RECORD).unwrap();
        let mut compact = JournalRecord { v: ACCOUNT_FORMAT, ..old.clone() };
        compact.entries[0].created_at = 0; // as `record` leaves it: the record's own instant
        let text = serde_json::to_string(&compact).unwrap();
        for absent in ["fingerprint", "attempt", "createdAt", "balance", "73fd19bd"] {
            assert!(!text.contains(absent), "{absent} in {text}");
        }
        assert!(text.len() * 4 <= FORMAT_1_RECORD.len() * 3, "{} bytes: {text}", text.len());
        let read: JournalRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(read, compact);
        let realize = |record: JournalRecord| {
            let mut account = Account { balance: 99, version: 8, ..Account::empty("e", "u") };
            account.journal.push(record);
            realize_at(&account, 0).unwrap()
        };
        assert_eq!(realize(read), realize(old));
    }

    #[test]
    fn only_hex_is_compacted_and_everything_reads_back() {
        #[derive(Serialize, Deserialize)]
        struct Field(#[serde(with = "compact_hex")] String);
        for text in ["f", "a", "ABCDEF0123456789ABCDEF0123456789", "0123456789abcdef0123456789abcde"] {
            let stored = serde_json::to_string(&Field(text.into())).unwrap();
            assert_eq!(stored, format!("\"{text}\""), "left as it is");
        }
        let hex = "98e0205ccc58423685b7abd9faa6a1a3";
        let stored = serde_json::to_string(&Field(hex.into())).unwrap();
        assert!(stored.starts_with("\"~") && stored.len() < hex.len(), "{stored}");
        assert_eq!(serde_json::from_str::<Field>(&stored).unwrap().0, hex);
    }
}
