//! Spends and grants: spend (Q11), grant (Q12), purchase of a tier paid elsewhere (Q10), and
//! spends for many users (Q13).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::accounts::{self, AccountRef};
use crate::domain::account::AccountView;
use crate::domain::ledger::{Applied, Change, Operation};
use crate::domain::limits::{check_reason, positive_credits};
use crate::error::Error;
use crate::idempotency::{self, Answer, IdempotencyKey, Performed, Shape};
use crate::usecases::{Context, tiers};

/// The most users one Q13 request may debit.
pub const MAX_BATCH: usize = 25;

/// A valid spend or grant: an amount of credits with an optional reason.
#[derive(Debug, Clone)]
pub struct Credits {
    operation: Operation,
    reason: Option<String>,
}

impl Credits {
    /// Takes credits from the account's available balance.
    pub fn spend(credits: u64, reason: Option<String>) -> Result<Self, Error> {
        Self::valid(credits, reason, |credits| Operation::Decrement { credits })
    }

    /// Gives the account credits.
    pub fn grant(credits: u64, reason: Option<String>) -> Result<Self, Error> {
        Self::valid(credits, reason, |credits| Operation::Grant { credits })
    }

    fn valid(credits: u64, reason: Option<String>, operation: fn(u64) -> Operation) -> Result<Self, Error> {
        check_reason(&reason)?;
        Ok(Self { operation: operation(positive_credits("credits", credits)?), reason })
    }
}

/// The account after a change, and the entry that records it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Changed {
    pub entry_id: Option<String>,
    pub account: AccountView,
}

impl Changed {
    pub fn of(applied: &Applied, now: i64) -> Self {
        Self { entry_id: applied.main_entry().map(|e| e.entry_id.clone()), account: applied.account.view(now) }
    }
}

/// Applies a spend or a grant.
pub async fn apply(
    ctx: Context<'_>,
    account: AccountRef<'_>,
    credits: Credits,
    key: &IdempotencyKey,
) -> Result<Answer<Changed>, Error> {
    let change = Change {
        operation: credits.operation,
        reason: credits.reason,
        idempotency_key: key.client_key(),
        by_user_id: account.actor(),
    };
    accounts::change(ctx.ledger(), account, &change, key, |applied, now| Ok(Changed::of(applied, now))).await
}

/// A tier's pack credited for a purchase paid elsewhere.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Purchased {
    pub credited: u64,
    #[serde(flatten)]
    pub changed: Changed,
}

/// Credits the tier's pack. The key is checked before the tier, so a replay answers as the
/// first purchase did even if the tier was archived since.
pub async fn purchase(
    ctx: Context<'_>,
    account: AccountRef<'_>,
    tier_id: &str,
    reason: Option<String>,
    key: &IdempotencyKey,
) -> Result<Answer<Purchased>, Error> {
    check_reason(&reason)?;
    let prepare = || async {
        let tier = tiers::for_sale(ctx, account.entity_id, tier_id).await?;
        let credits = tier.total_credits();
        let operation = Operation::Purchase { credit_tier_id: tier.credit_tier_id, credits, payment_intent_id: None };
        Ok(Change { operation, reason, idempotency_key: key.client_key(), by_user_id: account.actor() })
    };
    accounts::change_with(ctx.ledger(), account, key, prepare, |applied, now| {
        let credited = applied.main_entry().map_or(0, |entry| entry.credits.unsigned_abs());
        Ok(Purchased { credited, changed: Changed::of(applied, now) })
    })
    .await
}

/// One spend of a batch, as the face parsed it: for one user, under its own key.
pub struct ItemSpend {
    pub user_id: String,
    pub spend: Credits,
    pub key: IdempotencyKey,
}

/// One item of a batch: the user it names (if it names one) and its spend, or why the face
/// could not read one.
pub struct BatchItem {
    pub user_id: Option<String>,
    pub spend: Result<ItemSpend, Error>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemResult {
    pub user_id: Option<String>,
    pub result: Result<Changed, Error>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchOutcome {
    pub results: Vec<ItemResult>,
}

pub fn check_batch_size(items: usize) -> Result<(), Error> {
    if (1..=MAX_BATCH).contains(&items) {
        Ok(())
    } else {
        Err(Error::validation(format!("decrements must hold 1 to {MAX_BATCH} items")))
    }
}

/// Each item is its own spend (own idempotency record, own outcome), run concurrently and
/// answered in request order. Under a client's key the whole outcome is recorded too: the
/// same batch again replays it, another batch under the key is refused.
pub async fn spend_many(
    ctx: Context<'_>,
    entity_id: &str,
    items: Vec<BatchItem>,
    key: &IdempotencyKey,
) -> Result<Answer<BatchOutcome>, Error> {
    check_batch_size(items.len())?;
    idempotency::run(ctx.guard(), key, Shape::Outside, || async {
        let spends = items.into_iter().map(|item| async move {
            let result = match item.spend {
                Ok(ItemSpend { user_id, spend, key }) => {
                    spend_item(ctx, AccountRef::user(entity_id, &user_id), spend, key).await
                }
                Err(refusal) => Err(refusal),
            };
            ItemResult { user_id: item.user_id, result }
        });
        let results = futures::future::join_all(spends).await;
        let passing = |r: &ItemResult| matches!(r.result, Err(Error::Unavailable { .. } | Error::Internal));
        if results.iter().any(passing) {
            return Ok(Performed::Unsettled(BatchOutcome { results }));
        }
        Ok(Performed::Done(BatchOutcome { results }))
    })
    .await
}

async fn spend_item(
    ctx: Context<'_>,
    account: AccountRef<'_>,
    spend: Credits,
    key: IdempotencyKey,
) -> Result<Changed, Error> {
    Ok(apply(ctx, account, spend, &key).await?.outcome)
}
