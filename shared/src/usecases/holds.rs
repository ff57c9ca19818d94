//! Holds: reserve credits, then capture (consume) or release them; expired holds count as
//! released from their expiry on.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::accounts::{self, AccountRef};
use crate::clock::as_rfc3339;
use crate::domain::account::{AccountView, HoldRecord};
use crate::domain::ledger::{Applied, Change, HoldChange, HoldStatus, Operation};
use crate::domain::limits::{check_reason, positive_credits};
use crate::error::Error;
use crate::idempotency::{Answer, IdempotencyKey};
use crate::ids;
use crate::usecases::Context;

pub const DEFAULT_TTL_SECONDS: u64 = 900;
pub const MIN_TTL_SECONDS: u64 = 60;
pub const MAX_TTL_SECONDS: u64 = 86_400;

/// A valid hold to open.
#[derive(Debug, Clone)]
pub struct NewHold {
    credits: u64,
    ttl_seconds: u64,
    reason: Option<String>,
}

impl NewHold {
    pub fn new(credits: u64, ttl_seconds: Option<u64>, reason: Option<String>) -> Result<Self, Error> {
        check_reason(&reason)?;
        let credits = positive_credits("credits", credits)?;
        let ttl_seconds = ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
        if !(MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&ttl_seconds) {
            return Err(Error::validation(format!("ttlSeconds must be from {MIN_TTL_SECONDS} to {MAX_TTL_SECONDS}")));
        }
        Ok(Self { credits, ttl_seconds, reason })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Opened {
    pub hold_id: String,
    pub credits: u64,
    /// RFC 3339 when stored, as on the native wire (records written before outcomes were
    /// stored typed still read).
    #[serde(with = "as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: i64,
    pub entry_id: Option<String>,
    pub account: AccountView,
}

pub async fn open(
    ctx: Context<'_>,
    account: AccountRef<'_>,
    hold: NewHold,
    key: &IdempotencyKey,
) -> Result<Answer<Opened>, Error> {
    let operation =
        Operation::Hold { hold_id: ids::new_ordered_id(), credits: hold.credits, ttl_seconds: hold.ttl_seconds };
    let change =
        Change { operation, reason: hold.reason, idempotency_key: key.client_key(), by_user_id: account.actor() };
    accounts::change(ctx.ledger(), account, &change, key, |applied, now| {
        let Some(HoldChange::Opened { hold_id, credits, expires_at, .. }) =
            applied.holds.iter().find(|h| matches!(h, HoldChange::Opened { .. }))
        else {
            return Err(Error::internal("hold change missing"));
        };
        Ok(Opened {
            hold_id: hold_id.clone(),
            credits: *credits,
            expires_at: *expires_at,
            entry_id: applied.main_entry().map(|e| e.entry_id.clone()),
            account: applied.account.view(now),
        })
    })
    .await
}

fn hold_not_found() -> Error {
    Error::not_found("hold not found")
}

/// A hold id as this service makes them.
pub fn check_hold_id(hold_id: &str) -> Result<(), Error> {
    if hold_id.len() == 26 && hold_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(Error::validation("holdId is not a hold id"))
    }
}

/// How to settle a hold.
#[derive(Debug, Clone)]
pub enum Settlement {
    /// Consume `credits` (1…held; all when absent) and release the rest.
    Capture {
        credits: Option<u64>,
        reason: Option<String>,
    },
    Release {
        reason: Option<String>,
    },
}

impl Settlement {
    pub fn capture(credits: Option<u64>, reason: Option<String>) -> Result<Self, Error> {
        check_reason(&reason)?;
        let credits = credits.map(|c| positive_credits("credits", c)).transpose()?;
        Ok(Self::Capture { credits, reason })
    }

    pub fn release(credits: Option<u64>, reason: Option<String>) -> Result<Self, Error> {
        check_reason(&reason)?;
        match credits {
            None => Ok(Self::Release { reason }),
            Some(_) => Err(Error::validation("credits: a release frees the whole hold; omit credits")),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Settled {
    pub hold_id: String,
    pub status: String,
    pub captured: u64,
    pub released: u64,
    pub entry_id: Option<String>,
    pub account: AccountView,
}

impl Settled {
    fn of(applied: &Applied, now: i64, hold_id: &str) -> Result<Self, Error> {
        let (status, captured, released) = applied
            .holds
            .iter()
            .find_map(|h| match h {
                HoldChange::Settled { hold_id: id, status, captured, released } if id == hold_id => {
                    Some((*status, *captured, *released))
                }
                _ => None,
            })
            .ok_or_else(|| Error::internal("hold settlement missing"))?;
        Ok(Self {
            hold_id: hold_id.to_owned(),
            status: HoldStatus::as_str(status).to_owned(),
            captured,
            released,
            entry_id: applied.main_entry().map(|e| e.entry_id.clone()),
            account: applied.account.view(now),
        })
    }
}

pub async fn settle(
    ctx: Context<'_>,
    account: AccountRef<'_>,
    hold_id: &str,
    settlement: Settlement,
    key: &IdempotencyKey,
) -> Result<Answer<Settled>, Error> {
    check_hold_id(hold_id)?;
    let hold_id = hold_id.to_owned();
    let (operation, reason) = match settlement {
        Settlement::Capture { credits, reason } => (Operation::Capture { hold_id: hold_id.clone(), credits }, reason),
        Settlement::Release { reason } => (Operation::Release { hold_id: hold_id.clone() }, reason),
    };
    let change = Change { operation, reason, idempotency_key: key.client_key(), by_user_id: account.actor() };
    let settled =
        accounts::change(ctx.ledger(), account, &change, key, |applied, now| Settled::of(applied, now, &hold_id)).await;
    match settled {
        Err(Error::HoldNotActive(_)) => Err(not_active(ctx, account, &hold_id).await),
        other => other,
    }
}

/// Why a hold could not be settled: unknown (404) or already settled or expired (409).
async fn not_active(ctx: Context<'_>, account: AccountRef<'_>, hold_id: &str) -> Error {
    if let Err(err) = accounts::settle(ctx.ledger(), account).await {
        return err;
    }
    match ctx.store.get_hold(account.entity_id, account.user_id, hold_id).await {
        Ok(Some(hold)) => Error::HoldNotActive(format!("the hold is {}", hold.status_at(ctx.now()))),
        Ok(None) => hold_not_found(),
        Err(err) => err.into(),
    }
}

/// A hold as recorded, with its status as of now.
#[derive(Debug, Clone)]
pub struct HoldState {
    pub hold: HoldRecord,
    pub status: String,
}

pub async fn read(ctx: Context<'_>, account: AccountRef<'_>, hold_id: &str) -> Result<HoldState, Error> {
    check_hold_id(hold_id)?;
    accounts::settle(ctx.ledger(), account).await?;
    let hold = ctx.store.get_hold(account.entity_id, account.user_id, hold_id).await?.ok_or_else(hold_not_found)?;
    let status = hold.status_at(ctx.now()).to_owned();
    Ok(HoldState { hold, status })
}
