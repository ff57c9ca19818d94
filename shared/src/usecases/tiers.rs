//! Credit tiers: list (Q1), read (Q2), list for one user (Q4), create (Q8), update (Q9).

use serde::{Deserialize, Serialize};

use crate::domain::account::TierPurchases;
use crate::domain::tier::{NewTier, Tier, TierPatch, TierStatus, sort_for_listing};
use crate::error::Error;
use crate::idempotency::{self, Answer, IdempotencyKey, Shape};
use crate::ids;
use crate::usecases::Context;

fn not_found() -> Error {
    Error::not_found("credit tier not found")
}

/// Active tiers by price then name; archived ones too when asked.
pub async fn list(ctx: Context<'_>, entity_id: &str, include_archived: bool) -> Result<Vec<Tier>, Error> {
    let mut tiers = ctx.store.list_tiers(entity_id).await?;
    tiers.retain(|t| include_archived || t.status == TierStatus::Active);
    sort_for_listing(&mut tiers);
    Ok(tiers)
}

pub async fn get(ctx: Context<'_>, entity_id: &str, tier_id: &str) -> Result<Tier, Error> {
    ids::validate_tier_id("creditTierId", tier_id)?;
    ctx.store.get_tier(entity_id, tier_id).await?.ok_or_else(not_found)
}

/// The tier a purchase buys: it must exist and be on sale.
pub async fn for_sale(ctx: Context<'_>, entity_id: &str, tier_id: &str) -> Result<Tier, Error> {
    let tier = get(ctx, entity_id, tier_id).await?;
    if tier.status == TierStatus::Archived {
        return Err(Error::TierArchived);
    }
    Ok(tier)
}

/// Where the tier is created.
pub struct Owner<'a> {
    pub entity_id: &'a str,
    /// The currency of a tier that names none.
    pub currency: &'a str,
}

pub async fn create(
    ctx: Context<'_>,
    owner: Owner<'_>,
    new: NewTier,
    key: &IdempotencyKey,
) -> Result<Answer<Tier>, Error> {
    idempotency::run(ctx.guard(), key, Shape::OneTransaction, || async {
        let now = ctx.now();
        let tier = new.into_tier(owner.entity_id, owner.currency, ids::new_tier_id(), now)?;
        let written = ctx.store.create_tier(&tier, &key.record(&tier, now)?).await;
        let id = tier.credit_tier_id.clone();
        idempotency::committed(tier, written, || Error::AlreadyExists(format!("creditTierId {id} already exists")))
    })
    .await
}

/// Reads, applies, writes back only if nobody wrote in between.
pub async fn update(
    ctx: Context<'_>,
    entity_id: &str,
    tier_id: &str,
    patch: TierPatch,
    key: &IdempotencyKey,
) -> Result<Answer<Tier>, Error> {
    ids::validate_tier_id("creditTierId", tier_id)?;
    patch.validate_shape(tier_id)?;
    idempotency::run(ctx.guard(), key, Shape::OneTransaction, || async {
        let current = ctx.store.get_tier(entity_id, tier_id).await?.ok_or_else(not_found)?;
        let now = ctx.now();
        let next = patch.apply(&current, now)?;
        let written = ctx.store.update_tier(&next, current.version, &key.record(&next, now)?).await;
        idempotency::committed(next, written, || {
            Error::VersionConflict("the tier changed concurrently; read it and retry".into())
        })
    })
    .await
}

/// A tier as one user sees it (Q4): how often they bought it, their subscription to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TierForUser {
    pub tier: Tier,
    pub purchases: Option<TierPurchases>,
}

/// The active tiers with this user's purchases and subscriptions.
pub async fn for_user(ctx: Context<'_>, entity_id: &str, user_id: &str) -> Result<Vec<TierForUser>, Error> {
    // Purchases still in the account's journal are counted once moved out.
    let settled = crate::accounts::settle(ctx.ledger(), crate::accounts::AccountRef::user(entity_id, user_id));
    let (tiers, settled) = futures::join!(list(ctx, entity_id, false), settled);
    let (tiers, _) = (tiers?, settled?);
    let purchases = ctx.store.tier_purchases(entity_id, user_id).await?;
    Ok(tiers
        .into_iter()
        .map(|tier| {
            let purchases = purchases.iter().find(|p| p.credit_tier_id == tier.credit_tier_id).cloned();
            TierForUser { tier, purchases }
        })
        .collect())
}
