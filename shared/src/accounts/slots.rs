//! One slot per account in this process: a lock that serializes this process's changes to
//! the account (racing itself gains a process nothing), holding the last state it wrote or
//! read. Changes start from that state, so a warm function changes an account in one store
//! round trip; when another process changed the account in a way that matters, the write's
//! condition fails and the store hands back the current state (no extra read).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::domain::account::Account;

/// Slots kept before idle ones are dropped.
const MAX_SLOTS: usize = 10_000;

pub type Slot = Arc<tokio::sync::Mutex<Option<Account>>>;

#[derive(Default)]
pub struct AccountSlots {
    slots: Mutex<HashMap<(String, String), Slot>>,
}

impl AccountSlots {
    pub fn slot(&self, entity_id: &str, user_id: &str) -> Slot {
        let Ok(mut slots) = self.slots.lock() else {
            // A poisoned map only loses the cache: hand out a fresh, uncached slot.
            return Slot::default();
        };
        if slots.len() >= MAX_SLOTS {
            slots.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        slots.entry((entity_id.to_owned(), user_id.to_owned())).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_slot_per_account() {
        let slots = AccountSlots::default();
        let a = slots.slot("e", "u");
        *a.lock().await = Some(Account::empty("e", "u"));
        assert!(slots.slot("e", "u").lock().await.is_some());
        assert!(slots.slot("e", "v").lock().await.is_none());
    }
}
