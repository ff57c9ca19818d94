//! The §3 invariant, checked straight against the table after every credit test: the entries'
//! `credits` sum to the balance, the newest entry's `balanceAfter` is the balance, and its
//! `heldAfter` is what the account's holds add up to. The ledger is the entries moved out to
//! their own items plus those still in the account's journal (each entry in one or, moved but
//! not yet trimmed, in both, alike).

use shared::domain::account::{Account, Entry};
use shared::domain::journal::realize_all;
use shared::store::dynamo::DynamoStore;
use shared::store::{EntryPage, LedgerStore};

use crate::TestApp;

pub struct Ledger {
    pub account: Account,
    /// Newest first.
    pub entries: Vec<Entry>,
}

impl TestApp {
    pub async fn ledger(&self, entity_id: &str, user_id: &str) -> Ledger {
        let store = DynamoStore::new(self.dynamodb.clone(), self.table.clone());
        let account = store
            .get_account(entity_id, user_id)
            .await
            .expect("read account")
            .unwrap_or_else(|| Account::empty(entity_id, user_id));
        let mut entries = Vec::new();
        let mut page = EntryPage { after: None, limit: 200, kind: None };
        loop {
            let (mut batch, next) = store.entries(entity_id, user_id, &page).await.expect("read entries");
            entries.append(&mut batch);
            match next {
                Some(next) => page.after = Some(next),
                None => break,
            }
        }
        let mut journal: Vec<Entry> = realize_all(&account).into_iter().flat_map(|a| a.entries).collect();
        journal.reverse();
        for moved in entries.iter().filter(|e| journal.iter().any(|j| j.entry_id == e.entry_id)) {
            // Positions are the items' sort keys, not stored in them.
            let pending = journal
                .iter()
                .find(|j| j.entry_id == moved.entry_id)
                .map(|j| Entry { position: moved.position, ..j.clone() });
            assert_eq!(pending.as_ref(), Some(moved), "an entry moved out must equal its journal record's");
        }
        entries.retain(|e| !journal.iter().any(|j| j.entry_id == e.entry_id));
        journal.append(&mut entries);
        Ledger { account, entries: journal }
    }

    /// Asserts the invariant and returns the ledger for further checks.
    pub async fn assert_invariant(&self, entity_id: &str, user_id: &str) -> Ledger {
        let ledger = self.ledger(entity_id, user_id).await;
        let sum: i64 = ledger.entries.iter().map(|e| e.credits).sum();
        assert_eq!(sum, ledger.account.balance, "entries must sum to the balance");
        match ledger.entries.first() {
            Some(newest) => {
                assert_eq!(newest.balance_after, ledger.account.balance, "newest balanceAfter");
                let held: u64 = ledger.account.holds.values().map(|h| h.credits).sum();
                assert_eq!(newest.held_after, held, "newest heldAfter");
            }
            None => assert_eq!(ledger.account.balance, 0),
        }
        if let Some(spendable) = ledger.account.stored_spendable {
            assert_eq!(spendable, ledger.account.spendable(), "spendable is the balance minus every hold");
        }
        let mut running = 0;
        for entry in ledger.entries.iter().rev() {
            running += entry.credits;
            assert_eq!(entry.balance_after, running, "balanceAfter of {}", entry.entry_id);
        }
        ledger
    }
}
