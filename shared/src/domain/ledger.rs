//! The ledger's rules: how each operation changes an account, and the entries it writes.
//! Pure: the caller supplies the current state, the time and fresh ids.

use serde::{Deserialize, Serialize};

use crate::domain::account::{Account, ActiveHold, Entry, EntryType, MAX_ACTIVE_HOLDS, PaymentReversals};
use crate::error::Error;

#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    Decrement {
        credits: u64,
    },
    Grant {
        credits: u64,
    },
    Purchase {
        credit_tier_id: String,
        credits: u64,
        payment_intent_id: Option<String>,
    },
    Hold {
        hold_id: String,
        credits: u64,
        ttl_seconds: u64,
    },
    Capture {
        hold_id: String,
        credits: Option<u64>,
    },
    Release {
        hold_id: String,
    },
    /// Brings what a payment's credits have lost to refunds and disputes to `target` (never
    /// more than `credited`): a `reversal` entry when more money is gone, a `regrant` when
    /// money came back (a refund failed, a dispute was won).
    Reconcile {
        payment_intent_id: String,
        credited: u64,
        target: u64,
    },
    /// Only records holds that have expired.
    Sweep,
}

/// An operation plus what every entry it writes carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub operation: Operation,
    pub reason: Option<String>,
    /// The client's idempotency key, recorded on the entries.
    pub idempotency_key: Option<String>,
    /// Who acted (`AccountRef::by_user_id`), recorded on the entries as `byUserId`.
    pub by_user_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HoldStatus {
    Active,
    Captured,
    Released,
    Expired,
}

impl HoldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Captured => "captured",
            Self::Released => "released",
            Self::Expired => "expired",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Self::Active, Self::Captured, Self::Released, Self::Expired].into_iter().find(|s| s.as_str() == value)
    }
}

/// What happens to hold records alongside the account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum HoldChange {
    Opened { hold_id: String, credits: u64, expires_at: i64, reason: Option<String> },
    Settled { hold_id: String, status: HoldStatus, captured: u64, released: u64 },
}

/// The outcome of applying a change: the next state and everything to write with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    pub previous_version: u64,
    pub account: Account,
    pub entries: Vec<Entry>,
    pub holds: Vec<HoldChange>,
    /// The tier whose purchase count grows.
    pub purchased_tier: Option<String>,
}

impl Applied {
    /// The entry that answers for the operation (the last one written).
    pub fn main_entry(&self) -> Option<&Entry> {
        self.entries.last()
    }
}

struct Builder<'a> {
    change: &'a Change,
    now: i64,
    next_id: &'a mut dyn FnMut() -> String,
    account: Account,
    entries: Vec<Entry>,
    holds: Vec<HoldChange>,
}

impl Builder<'_> {
    fn held_total(&self) -> u64 {
        self.account.held_total()
    }

    fn record(&mut self, kind: EntryType, credits: i64, hold_id: Option<&str>) {
        let (credit_tier_id, payment_intent_id) = match &self.change.operation {
            Operation::Purchase { credit_tier_id, payment_intent_id, .. } if kind == EntryType::Purchase => {
                (Some(credit_tier_id.clone()), payment_intent_id.clone())
            }
            _ => (None, None),
        };
        let position = (self.account.version + 1, self.entries.len() as u32);
        self.entries.push(Entry {
            entry_id: (self.next_id)(),
            kind,
            credits,
            balance_after: self.account.balance,
            held_after: self.held_total(),
            reason: if kind == EntryType::Expire { Some("hold expired".into()) } else { self.change.reason.clone() },
            credit_tier_id,
            payment_intent_id,
            hold_id: hold_id.map(str::to_owned),
            idempotency_key: self.change.idempotency_key.clone(),
            by_user_id: self.change.by_user_id.clone(),
            created_at: self.now,
            position,
        });
    }

    /// Takes `credits` of a payment back.
    fn reverse(&mut self, payment_intent_id: &str, credits: u64) {
        self.account.reversals.entry(payment_intent_id.to_owned()).or_default().reversed += credits;
        self.account.balance -= credits as i64;
        self.account.lifetime_reversed += credits;
        self.record_for_payment(EntryType::Reversal, -(credits as i64), payment_intent_id);
    }

    /// Gives back `credits` of a payment that an earlier reversal took.
    fn regrant(&mut self, payment_intent_id: &str, credits: u64) {
        let reversals = &mut self.account.reversals;
        let left = reversals.get(payment_intent_id).map_or(0, |r| r.reversed.saturating_sub(credits));
        // A payment with nothing reversed any more keeps no entry: the item stays small.
        match left {
            0 => reversals.remove(payment_intent_id),
            reversed => reversals.insert(payment_intent_id.to_owned(), PaymentReversals { reversed }),
        };
        self.account.balance += credits as i64;
        self.account.lifetime_reversed = self.account.lifetime_reversed.saturating_sub(credits);
        self.record_for_payment(EntryType::Regrant, credits as i64, payment_intent_id);
    }

    fn record_for_payment(&mut self, kind: EntryType, credits: i64, payment_intent_id: &str) {
        self.record(kind, credits, None);
        if let Some(entry) = self.entries.last_mut() {
            entry.payment_intent_id = Some(payment_intent_id.to_owned());
        }
    }

    /// Holds past their expiry are released, each with an `expire` entry.
    fn expire_holds(&mut self) {
        for hold_id in self.account.expired_hold_ids(self.now) {
            let released = self.account.holds.remove(&hold_id).map_or(0, |h| h.credits);
            self.record(EntryType::Expire, 0, Some(&hold_id));
            self.holds.push(HoldChange::Settled { hold_id, status: HoldStatus::Expired, captured: 0, released });
        }
    }

    fn require_available(&self, credits: u64) -> Result<(), Error> {
        let available = self.account.balance - self.held_total() as i64;
        if available >= credits as i64 {
            Ok(())
        } else {
            Err(Error::InsufficientCredits { requested: credits, available: available.max(0) as u64 })
        }
    }

    fn take_hold(&mut self, hold_id: &str) -> Result<ActiveHold, Error> {
        self.account.holds.remove(hold_id).ok_or_else(|| Error::HoldNotActive("the hold is no longer active".into()))
    }

    fn apply(&mut self) -> Result<Option<String>, Error> {
        let operation = self.change.operation.clone();
        let mut purchased_tier = None;
        match operation {
            Operation::Decrement { credits } => {
                self.require_available(credits)?;
                self.account.balance -= credits as i64;
                self.account.lifetime_consumed += credits;
                self.record(EntryType::Decrement, -(credits as i64), None);
            }
            Operation::Grant { credits } => {
                self.account.balance += credits as i64;
                self.account.lifetime_granted += credits;
                self.record(EntryType::Grant, credits as i64, None);
            }
            Operation::Purchase { credit_tier_id, credits, .. } => {
                self.account.balance += credits as i64;
                self.account.lifetime_purchased += credits;
                self.record(EntryType::Purchase, credits as i64, None);
                purchased_tier = Some(credit_tier_id);
            }
            Operation::Hold { hold_id, credits, ttl_seconds } => {
                if self.account.holds.len() >= MAX_ACTIVE_HOLDS {
                    return Err(Error::validation(format!(
                        "an account may have at most {MAX_ACTIVE_HOLDS} active holds"
                    )));
                }
                self.require_available(credits)?;
                let expires_at = self.now + ttl_seconds as i64 * 1000;
                self.account.holds.insert(hold_id.clone(), ActiveHold { credits, expires_at });
                self.record(EntryType::Hold, 0, Some(&hold_id));
                let reason = self.change.reason.clone();
                self.holds.push(HoldChange::Opened { hold_id, credits, expires_at, reason });
            }
            Operation::Capture { hold_id, credits } => {
                let hold = self.take_hold(&hold_id)?;
                let captured = credits.unwrap_or(hold.credits);
                if captured > hold.credits {
                    return Err(Error::validation(format!(
                        "credits must be at most the held amount ({})",
                        hold.credits
                    )));
                }
                // The capture entry shows the hold's remainder still held; the release frees it.
                self.account.holds.insert(hold_id.clone(), ActiveHold { credits: hold.credits - captured, ..hold });
                self.account.balance -= captured as i64;
                self.account.lifetime_consumed += captured;
                self.record(EntryType::Capture, -(captured as i64), Some(&hold_id));
                self.account.holds.remove(&hold_id);
                if captured < hold.credits {
                    self.record(EntryType::Release, 0, Some(&hold_id));
                }
                let released = hold.credits - captured;
                self.holds.push(HoldChange::Settled { hold_id, status: HoldStatus::Captured, captured, released });
            }
            Operation::Release { hold_id } => {
                let released = self.take_hold(&hold_id)?.credits;
                self.record(EntryType::Release, 0, Some(&hold_id));
                self.holds.push(HoldChange::Settled { hold_id, status: HoldStatus::Released, captured: 0, released });
            }
            Operation::Reconcile { payment_intent_id, credited, target } => {
                let reversed = self.account.reversals.get(&payment_intent_id).map_or(0, |r| r.reversed);
                let target = target.min(credited);
                if target > reversed {
                    self.reverse(&payment_intent_id, target - reversed);
                } else if target < reversed {
                    self.regrant(&payment_intent_id, reversed - target);
                }
            }
            Operation::Sweep => {}
        }
        Ok(purchased_tier)
    }
}

/// The refusal of a change that would write nothing (a repeated refund amount, a sweep with
/// nothing expired): callers that replay notifications treat it as done.
pub const NOTHING_TO_CHANGE: &str = "nothing to change";

pub fn is_nothing_to_change(err: &Error) -> bool {
    matches!(err, Error::Validation(message) if message == NOTHING_TO_CHANGE)
}

/// Applies `change` to `account` at `now`. Expired holds are released first, in the same
/// write, so no later read or write ever counts them.
pub fn apply(
    account: &Account,
    change: &Change,
    now: i64,
    next_id: &mut dyn FnMut() -> String,
) -> Result<Applied, Error> {
    let mut builder =
        Builder { change, now, next_id, account: account.clone(), entries: Vec::new(), holds: Vec::new() };
    builder.expire_holds();
    let purchased_tier = builder.apply()?;
    if builder.entries.is_empty() {
        return Err(Error::validation(NOTHING_TO_CHANGE));
    }
    let mut next = builder.account;
    next.version = account.version + 1;
    next.updated_at = Some(now);
    Ok(Applied {
        previous_version: account.version,
        account: next,
        entries: builder.entries,
        holds: builder.holds,
        purchased_tier,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("id-{n}")
        }
    }

    fn change(operation: Operation) -> Change {
        Change { operation, reason: Some("r".into()), idempotency_key: None, by_user_id: None }
    }

    fn funded(balance: i64) -> Account {
        let mut account = Account::empty("e", "u");
        account.balance = balance;
        account
    }

    fn sum(entries: &[Entry]) -> i64 {
        entries.iter().map(|e| e.credits).sum()
    }

    #[test]
    fn decrement_needs_available_credits_and_writes_one_entry() {
        let applied = apply(&funded(10), &change(Operation::Decrement { credits: 4 }), 5, &mut ids()).unwrap();
        assert_eq!((applied.account.balance, applied.account.version), (6, 1));
        assert_eq!(applied.entries.len(), 1);
        let entry = &applied.entries[0];
        assert_eq!((entry.kind, entry.credits, entry.balance_after), (EntryType::Decrement, -4, 6));
        assert_eq!(applied.account.lifetime_consumed, 4);
        let err = apply(&funded(3), &change(Operation::Decrement { credits: 4 }), 5, &mut ids()).unwrap_err();
        assert!(matches!(err, Error::InsufficientCredits { .. }));
        assert!(err.message().starts_with("credits"));
    }

    #[test]
    fn a_negative_balance_blocks_spends_and_holds() {
        let account = funded(-5);
        for op in
            [Operation::Decrement { credits: 1 }, Operation::Hold { hold_id: "h".into(), credits: 1, ttl_seconds: 60 }]
        {
            assert!(matches!(
                apply(&account, &change(op), 0, &mut ids()).unwrap_err(),
                Error::InsufficientCredits { .. }
            ));
        }
    }

    #[test]
    fn holds_reserve_then_capture_part_and_release_the_rest() {
        let held = apply(
            &funded(100),
            &change(Operation::Hold { hold_id: "h".into(), credits: 30, ttl_seconds: 60 }),
            0,
            &mut ids(),
        )
        .unwrap();
        assert_eq!(held.account.available(0), 70);
        assert_eq!(held.entries[0].held_after, 30);
        let spend = apply(&held.account, &change(Operation::Decrement { credits: 71 }), 1, &mut ids());
        assert!(matches!(spend.unwrap_err(), Error::InsufficientCredits { .. }));

        let captured =
            apply(&held.account, &change(Operation::Capture { hold_id: "h".into(), credits: Some(10) }), 2, &mut ids())
                .unwrap();
        let kinds: Vec<_> = captured.entries.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EntryType::Capture, EntryType::Release]);
        assert_eq!((captured.entries[0].credits, captured.entries[0].held_after), (-10, 20));
        assert_eq!((captured.entries[1].balance_after, captured.entries[1].held_after), (90, 0));
        assert_eq!((captured.account.balance, captured.account.available(2)), (90, 90));
        assert_eq!(
            captured.holds,
            [HoldChange::Settled { hold_id: "h".into(), status: HoldStatus::Captured, captured: 10, released: 20 }]
        );

        let again = apply(&captured.account, &change(Operation::Release { hold_id: "h".into() }), 3, &mut ids());
        assert!(matches!(again.unwrap_err(), Error::HoldNotActive { .. }));
        let too_much =
            apply(&held.account, &change(Operation::Capture { hold_id: "h".into(), credits: Some(31) }), 2, &mut ids());
        assert!(too_much.unwrap_err().message().starts_with("credits"));
    }

    #[test]
    fn expired_holds_are_released_by_the_next_write_with_an_expire_entry() {
        let held = apply(
            &funded(50),
            &change(Operation::Hold { hold_id: "h".into(), credits: 50, ttl_seconds: 60 }),
            0,
            &mut ids(),
        )
        .unwrap();
        let at_expiry = 60_000;
        let spent = apply(&held.account, &change(Operation::Decrement { credits: 50 }), at_expiry, &mut ids()).unwrap();
        let kinds: Vec<_> = spent.entries.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EntryType::Expire, EntryType::Decrement]);
        assert_eq!(spent.entries[0].held_after, 0);
        assert_eq!(spent.entries[0].position, (2, 0));
        assert_eq!(spent.entries[1].position, (2, 1));
        assert_eq!(spent.account.balance, 0);
        let capture = apply(
            &held.account,
            &change(Operation::Capture { hold_id: "h".into(), credits: None }),
            at_expiry,
            &mut ids(),
        );
        assert!(matches!(capture.unwrap_err(), Error::HoldNotActive { .. }));
        let swept = apply(&held.account, &change(Operation::Sweep), at_expiry, &mut ids()).unwrap();
        assert_eq!(swept.entries.len(), 1);
        assert!(
            apply(&held.account, &change(Operation::Sweep), at_expiry - 1, &mut ids()).is_err(),
            "nothing to sweep yet"
        );
    }

    fn reconcile(target: u64) -> Operation {
        Operation::Reconcile { payment_intent_id: "pi".into(), credited: 120, target }
    }

    #[test]
    fn reconciling_moves_only_the_difference_and_never_past_what_was_credited() {
        let mut account = funded(120);
        let mut moved = Vec::new();
        for target in [36, 36, 120, 500, 36, 0] {
            match apply(&account, &change(reconcile(target)), 0, &mut ids()) {
                Ok(applied) => {
                    moved.push((applied.entries[0].kind, applied.entries[0].credits));
                    account = applied.account;
                }
                Err(_) => moved.push((EntryType::Reversal, 0)),
            }
        }
        let nothing = (EntryType::Reversal, 0);
        let expected = [
            (EntryType::Reversal, -36),
            nothing,
            (EntryType::Reversal, -84),
            nothing,
            (EntryType::Regrant, 84),
            (EntryType::Regrant, 36),
        ];
        assert_eq!(moved, expected);
        assert_eq!((account.balance, account.lifetime_reversed), (120, 0));
    }

    #[test]
    fn a_reversal_after_spending_goes_negative_and_blocks_spends() {
        let spent = apply(&funded(120), &change(Operation::Decrement { credits: 120 }), 0, &mut ids()).unwrap();
        let reversed = apply(&spent.account, &change(reconcile(120)), 1, &mut ids()).unwrap();
        assert_eq!(reversed.account.balance, -120);
        assert_eq!(reversed.entries[0].payment_intent_id.as_deref(), Some("pi"));
        let spend = apply(&reversed.account, &change(Operation::Decrement { credits: 1 }), 2, &mut ids());
        assert!(matches!(spend.unwrap_err(), Error::InsufficientCredits { .. }));
    }

    #[test]
    fn entries_always_sum_to_the_balance() {
        let mut account = Account::empty("e", "u");
        let mut all = Vec::new();
        let ops = [
            Operation::Grant { credits: 10 },
            Operation::Purchase { credit_tier_id: "t".into(), credits: 120, payment_intent_id: Some("pi_1".into()) },
            Operation::Hold { hold_id: "h".into(), credits: 30, ttl_seconds: 60 },
            Operation::Decrement { credits: 5 },
            Operation::Capture { hold_id: "h".into(), credits: Some(7) },
        ];
        for (i, op) in ops.into_iter().enumerate() {
            let applied = apply(&account, &change(op), i as i64, &mut ids()).unwrap();
            all.extend(applied.entries.clone());
            account = applied.account;
            assert_eq!(sum(&all), account.balance);
            assert_eq!(all.last().unwrap().balance_after, account.balance);
        }
        assert_eq!(account.balance, 118);
        assert_eq!((account.lifetime_purchased, account.lifetime_granted, account.lifetime_consumed), (120, 10, 12));
        let purchase = all.iter().find(|e| e.kind == EntryType::Purchase).unwrap();
        assert_eq!(
            (purchase.credit_tier_id.as_deref(), purchase.payment_intent_id.as_deref()),
            (Some("t"), Some("pi_1"))
        );
    }
}
