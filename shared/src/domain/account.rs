//! A user's credit account (§3) and its ledger entries. An account's state is only ever
//! changed by `ledger::apply`, which also yields the entries that explain the change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::as_rfc3339;
use crate::domain::journal::JournalRecord;

/// How many holds one account may have open at once (bounds the item and the transaction).
pub const MAX_ACTIVE_HOLDS: usize = 40;

/// The format of account items and journal records this version writes. Items without one
/// were written before formats (with or without a journal: `Account::needs_upgrade`); a reader
/// meeting a newer format refuses (503) and writes nothing.
pub const ACCOUNT_FORMAT: u32 = 3;
/// What a journal record in a format newer than `ACCOUNT_FORMAT` fails to read with.
pub const NEWER_RECORD: &str = "journal record in a newer format";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveHold {
    pub credits: u64,
    pub expires_at: i64,
}

/// What refunds and disputes have taken back from one payment's credits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentReversals {
    /// Credits reversed and not re-granted (refunds and chargebacks in force).
    pub reversed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub entity_id: String,
    pub user_id: String,
    /// Negative only after a refund or dispute reversal.
    pub balance: i64,
    /// Bumped by every change; writes are conditional on it.
    pub version: u64,
    #[serde(default)]
    pub holds: BTreeMap<String, ActiveHold>,
    pub lifetime_purchased: u64,
    pub lifetime_granted: u64,
    pub lifetime_consumed: u64,
    pub lifetime_reversed: u64,
    pub updated_at: Option<i64>,
    /// Per PaymentIntent with a refund or dispute: what was taken back, so no event, however
    /// late or repeated, reverses more than the payment credited.
    #[serde(default)]
    pub reversals: BTreeMap<String, PaymentReversals>,
    /// Changes written but not yet moved out to their own items, oldest first (`journal`).
    /// Stored one JSON string per record: the item's size is the same, and the local
    /// emulator's cost per write grows with the number of attributes, not of bytes.
    #[serde(default, with = "records_as_json")]
    pub journal: Vec<JournalRecord>,
    /// How many records were ever moved out of the journal and dropped from it: a drop
    /// requires the count it started from, so two movers never drop the same records.
    #[serde(default)]
    pub moved_records: u64,
    /// The idempotency keys of the journal's records (0) and of records moved out recently
    /// (when they were moved), by `journal::key_slot`: a retried write finds its key here.
    #[serde(default)]
    pub recent_keys: BTreeMap<String, i64>,
    /// Keys moved out before this instant may be forgotten from `recent_keys`.
    #[serde(default)]
    pub keys_forgotten_before: i64,
    /// The same for generated keys (`idempotency::is_generated`), which are forgotten as soon
    /// as their records move out (format 3): only their own request, or a client it named
    /// the key to in a 503, can ask for them again. Stored as `autoForgotten` (short: every
    /// write of the item pays for its bytes).
    #[serde(default, rename = "autoForgotten", skip_serializing_if = "is_zero")]
    pub generated_keys_forgotten_before: i64,
    /// Until when one mover has the journal to itself (0: nobody): writers that find it
    /// claimed leave the moving to it instead of colliding with it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mover_until: i64,
    /// The item's format (`ACCOUNT_FORMAT`; 0: written before formats).
    #[serde(default)]
    pub format: u32,
    /// `spendable` as the item stores it (conditions compare it); absent on items written
    /// before journals. Written by the store itself, never from here.
    #[serde(default, rename = "spendable", skip_serializing)]
    pub stored_spendable: Option<i64>,
}

pub(crate) fn is_zero(value: &i64) -> bool {
    *value == 0
}

/// Journal records as the item keeps them: one JSON string each.
mod records_as_json {
    use serde::de::Error as _;
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::domain::journal::JournalRecord;

    pub fn serialize<S: Serializer>(records: &[JournalRecord], serializer: S) -> Result<S::Ok, S::Error> {
        let texts: Result<Vec<String>, _> = records.iter().map(serde_json::to_string).collect();
        texts.map_err(S::Error::custom)?.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<JournalRecord>, D::Error> {
        let texts = Vec::<String>::deserialize(deserializer)?;
        texts.iter().map(|text| record(text).map_err(D::Error::custom)).collect()
    }

    /// A record this version knows; one in a newer format is refused before it is read (its
    /// fields may mean what this version cannot tell).
    fn record(text: &str) -> Result<JournalRecord, String> {
        #[derive(serde::Deserialize)]
        struct Format {
            #[serde(default)]
            v: u32,
        }
        let format = serde_json::from_str::<Format>(text).map_err(|e| e.to_string())?;
        if format.v > super::ACCOUNT_FORMAT {
            return Err(format!("{} ({})", super::NEWER_RECORD, format.v));
        }
        serde_json::from_str(text).map_err(|e| e.to_string())
    }
}

/// The account as the API shows it, at one instant: expired holds count as released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    pub entity_id: String,
    pub user_id: String,
    pub balance: i64,
    pub held: u64,
    pub available: i64,
    pub lifetime_purchased: u64,
    pub lifetime_granted: u64,
    pub lifetime_consumed: u64,
    pub lifetime_reversed: u64,
    #[serde(with = "as_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<i64>,
}

impl Account {
    /// A user never seen before: all zeros.
    pub fn empty(entity_id: &str, user_id: &str) -> Self {
        Self {
            entity_id: entity_id.to_owned(),
            user_id: user_id.to_owned(),
            balance: 0,
            version: 0,
            holds: BTreeMap::new(),
            lifetime_purchased: 0,
            lifetime_granted: 0,
            lifetime_consumed: 0,
            lifetime_reversed: 0,
            updated_at: None,
            reversals: BTreeMap::new(),
            journal: Vec::new(),
            moved_records: 0,
            recent_keys: BTreeMap::new(),
            keys_forgotten_before: 0,
            generated_keys_forgotten_before: 0,
            mover_until: 0,
            format: ACCOUNT_FORMAT,
            stored_spendable: None,
        }
    }

    /// An item written before journals: it lacks what journal writes add to and compare
    /// (`spendable`, `recentKeys`, …), so it is brought to the journal's form first.
    pub fn needs_upgrade(&self) -> bool {
        self.version > 0 && self.stored_spendable.is_none()
    }

    /// The account as answers show it at `at`, without what only writes need: the holds
    /// summed into one (what they reserve at `at`), no payment reversals, no journal. What an
    /// idempotency record keeps of it, so a replay answers as the change did.
    pub fn as_answered(&self, at: i64) -> Self {
        let held = self.held(at);
        let holds = (held > 0).then(|| ("#held".to_owned(), ActiveHold { credits: held, expires_at: i64::MAX }));
        Self {
            holds: holds.into_iter().collect(),
            reversals: BTreeMap::new(),
            journal: Vec::new(),
            recent_keys: BTreeMap::new(),
            ..self.clone()
        }
    }

    /// Credits reserved by every hold on the account, expired or not.
    pub fn held_total(&self) -> u64 {
        self.holds.values().map(|h| h.credits).sum()
    }

    /// The balance minus every hold, expired or not (`journal::Delta::spendable`).
    pub fn spendable(&self) -> i64 {
        self.balance - self.held_total() as i64
    }

    /// Credits reserved by holds still in force at `now`.
    pub fn held(&self, now: i64) -> u64 {
        self.holds.values().filter(|h| h.expires_at > now).map(|h| h.credits).sum()
    }

    pub fn available(&self, now: i64) -> i64 {
        self.balance - self.held(now) as i64
    }

    pub fn expired_hold_ids(&self, now: i64) -> Vec<String> {
        self.holds.iter().filter(|(_, h)| h.expires_at <= now).map(|(id, _)| id.clone()).collect()
    }

    pub fn view(&self, now: i64) -> AccountView {
        AccountView {
            entity_id: self.entity_id.clone(),
            user_id: self.user_id.clone(),
            balance: self.balance,
            held: self.held(now),
            available: self.available(now),
            lifetime_purchased: self.lifetime_purchased,
            lifetime_granted: self.lifetime_granted,
            lifetime_consumed: self.lifetime_consumed,
            lifetime_reversed: self.lifetime_reversed,
            updated_at: self.updated_at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EntryType {
    Purchase,
    Grant,
    Decrement,
    Hold,
    Capture,
    Release,
    Expire,
    Reversal,
    Regrant,
}

impl EntryType {
    pub const ALL: [Self; 9] = [
        Self::Purchase,
        Self::Grant,
        Self::Decrement,
        Self::Hold,
        Self::Capture,
        Self::Release,
        Self::Expire,
        Self::Reversal,
        Self::Regrant,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Purchase => "purchase",
            Self::Grant => "grant",
            Self::Decrement => "decrement",
            Self::Hold => "hold",
            Self::Capture => "capture",
            Self::Release => "release",
            Self::Expire => "expire",
            Self::Reversal => "reversal",
            Self::Regrant => "regrant",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == value)
    }
}

/// One line of the ledger: why the balance (or the held amount) changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub entry_id: String,
    #[serde(rename = "type")]
    pub kind: EntryType,
    /// The signed change to `balance`.
    pub credits: i64,
    pub balance_after: i64,
    pub held_after: u64,
    pub reason: Option<String>,
    pub credit_tier_id: Option<String>,
    pub payment_intent_id: Option<String>,
    pub hold_id: Option<String>,
    pub idempotency_key: Option<String>,
    /// Who acted: the session's user, or the user the server named; null when the server
    /// acted as itself (and on entries written before it was recorded).
    #[serde(default)]
    pub by_user_id: Option<String>,
    #[serde(with = "as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// Position in the account's history: the account version that wrote it, then the
    /// entry's index within that write. Internal: it orders the history (the table's sort key).
    #[serde(skip)]
    pub position: (u64, u32),
}

/// A hold as recorded, whatever became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HoldRecord {
    pub hold_id: String,
    pub credits: u64,
    /// `active | captured | released | expired` as stored; see `status_at`.
    pub status: String,
    pub captured_credits: u64,
    pub reason: Option<String>,
    pub expires_at: i64,
    pub created_at: i64,
    pub settled_at: Option<i64>,
}

impl HoldRecord {
    /// An active hold past its expiry reads as expired, whether or not a write recorded it yet.
    pub fn status_at(&self, now: i64) -> &str {
        if self.status == "active" && self.expires_at <= now { "expired" } else { &self.status }
    }
}

/// How one user stands with one tier: how often they bought it, and their subscription to
/// it when the tier is recurring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TierPurchases {
    pub credit_tier_id: String,
    #[serde(default)]
    pub purchase_count: u64,
    pub last_purchased_at: Option<i64>,
    pub subscription_id: Option<String>,
    /// `active | canceling | ended` (and Stripe's own, e.g. `incomplete`, `past_due`).
    pub subscription_status: Option<String>,
    pub current_period_end: Option<i64>,
}

/// A change to a user's subscription record; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscriptionUpdate {
    pub subscription_id: String,
    pub status: Option<String>,
    /// Only ever moves forward (late events never roll it back).
    pub current_period_end: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_holds_count_as_released_from_their_expiry_on() {
        let mut account = Account::empty("e", "u");
        account.balance = 100;
        account.holds.insert("h".into(), ActiveHold { credits: 30, expires_at: 1_000 });
        assert_eq!((account.held(999), account.available(999)), (30, 70));
        assert_eq!((account.held(1_000), account.available(1_000)), (0, 100));
        assert_eq!(account.expired_hold_ids(1_000), ["h"]);
    }

    #[test]
    fn a_new_account_reads_as_zeros() {
        let view = Account::empty("e", "u").view(0);
        assert_eq!((view.balance, view.held, view.available, view.updated_at), (0, 0, 0, None));
    }
}
