//! Reading accounts (Q3) and their history.

use crate::accounts::{self, AccountRef};
use crate::domain::account::{AccountView, Entry, EntryType};
use crate::error::Error;
use crate::store::EntryPage;
use crate::store::keys::is_entry_sort_key;
use crate::usecases::Context;

pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 200;

/// The account as of now; a user never seen reads as zeros.
pub async fn read(ctx: Context<'_>, account: AccountRef<'_>) -> Result<AccountView, Error> {
    accounts::read(ctx.ledger(), account).await
}

/// Which page of history to read: `after` is the sort key the previous page ended on.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    pub limit: Option<usize>,
    pub after: Option<String>,
    pub kind: Option<String>,
}

impl HistoryQuery {
    fn page(self) -> Result<EntryPage, Error> {
        let limit = match self.limit {
            None => DEFAULT_PAGE,
            Some(limit) if (1..=MAX_PAGE).contains(&limit) => limit,
            Some(_) => return Err(limit_error()),
        };
        let kind = match self.kind {
            None => None,
            Some(raw) => Some(EntryType::parse(&raw).ok_or_else(|| {
                let names: Vec<_> = EntryType::ALL.iter().map(|t| t.as_str()).collect();
                Error::validation(format!("type must be one of {}", names.join(", ")))
            })?),
        };
        if self.after.as_deref().is_some_and(|after| !is_entry_sort_key(after)) {
            return Err(Error::validation("cursor is not one this API returned"));
        }
        Ok(EntryPage { after: self.after, limit, kind })
    }
}

/// The refusal of a `limit` out of bounds (or not a number).
pub fn limit_error() -> Error {
    Error::validation(format!("limit must be an integer from 1 to {MAX_PAGE}"))
}

/// A page of entries, newest first, and where the next one starts; with the account as it
/// stood at the newest of them (one view: a change landing meanwhile shows in neither).
#[derive(Debug, Clone)]
pub struct History {
    pub entries: Vec<Entry>,
    pub next_after: Option<String>,
    pub account: AccountView,
}

pub async fn history(ctx: Context<'_>, account: AccountRef<'_>, query: HistoryQuery) -> Result<History, Error> {
    let page = query.page()?;
    // Expired holds are recorded and the journal moved out before the history is shown.
    let settled = accounts::settle(ctx.ledger(), account).await?;
    let (mut entries, next_after) = ctx.store.entries(account.entity_id, account.user_id, &page).await?;
    entries.retain(|entry| entry.position.0 <= settled.version);
    Ok(History { entries, next_after, account: settled.view })
}
