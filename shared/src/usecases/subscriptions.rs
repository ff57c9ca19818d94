//! Recurring tiers: buying one starts a subscription (its first period credited at once,
//! each renewal by the `invoice.paid` webhook, once per invoice); cancelling stops renewal at
//! the end of the period.

use serde::{Deserialize, Serialize};

use crate::accounts;
use crate::domain::account::{AccountView, SubscriptionUpdate, TierPurchases};
use crate::domain::payment::{Beneficiary, Payment};
use crate::domain::tier::Tier;
use crate::error::Error;
use crate::ids;
use crate::payments::gateway::NewSubscription;
use crate::usecases::payments::credit_invoice;
use crate::usecases::{AccountRef, Context};

/// Statuses in which a subscription still renews or may still be paid.
const LIVE: [&str; 5] = ["active", "canceling", "incomplete", "past_due", "trialing"];

async fn live_subscription(
    ctx: Context<'_>,
    account: AccountRef<'_>,
    tier_id: &str,
) -> Result<Option<TierPurchases>, Error> {
    let purchases = ctx.store.tier_purchases(account.entity_id, account.user_id).await?;
    Ok(purchases
        .into_iter()
        .find(|p| p.credit_tier_id == tier_id && p.subscription_status.as_deref().is_some_and(|s| LIVE.contains(&s))))
}

pub struct Subscribe<'a> {
    pub user_id: &'a str,
    pub tier: &'a Tier,
    pub payment_method: String,
    pub email: Option<String>,
    pub stripe_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subscribed {
    pub subscription_id: String,
    /// The invoice that paid the first period.
    pub invoice_id: String,
    pub credited: u64,
    pub current_period_end: Option<i64>,
    pub account: AccountView,
}

/// Q5 for a recurring tier.
pub async fn subscribe(ctx: Context<'_>, order: Subscribe<'_>) -> Result<Subscribed, Error> {
    let Subscribe { user_id, tier, .. } = order;
    let entity_id = tier.entity_id.as_str();
    let account = AccountRef::user(entity_id, user_id).by(user_id);
    if live_subscription(ctx, account, &tier.credit_tier_id).await?.is_some() {
        return Err(Error::AlreadyExists("the user already subscribes to this tier".into()));
    }
    let new = NewSubscription {
        amount: tier.price,
        currency: tier.currency.clone(),
        interval: tier.recurring.as_str().to_owned(),
        product_name: tier.name.clone(),
        payment_method: order.payment_method,
        email: order.email,
        metadata: Payment::intent_metadata(entity_id, user_id, tier, &Beneficiary::User(user_id.to_owned())),
    };
    let started = ctx.gateway()?.create_subscription(&new, &order.stripe_key).await?;
    // The record that alone lets invoices of this subscription credit anything.
    let snapshot = Payment::of_tier(&started.id, entity_id, user_id, tier, &started.status, ctx.now());
    ctx.store.put_subscription(&snapshot).await?;
    let update = SubscriptionUpdate {
        subscription_id: started.id.clone(),
        status: Some(started.status.clone()),
        current_period_end: started.current_period_end,
    };
    ctx.store.update_subscription(entity_id, user_id, &tier.credit_tier_id, &update).await?;
    let (Some(invoice), "active") = (started.latest_invoice.as_deref(), started.status.as_str()) else {
        return Err(Error::PaymentFailed {
            message: format!("the subscription's first payment did not go through (status {})", started.status),
            decline_code: None,
        });
    };
    let credited = credit_invoice(ctx, &snapshot, invoice).await?;
    Ok(Subscribed {
        subscription_id: started.id,
        invoice_id: invoice.to_owned(),
        credited: credited.credited,
        current_period_end: started.current_period_end,
        account: credited.account,
    })
}

#[derive(Debug, Clone)]
pub struct Canceled {
    pub subscription_id: String,
    pub current_period_end: Option<i64>,
    pub account: AccountView,
}

/// No renewal after this period.
pub async fn cancel(ctx: Context<'_>, account: AccountRef<'_>, tier_id: &str) -> Result<Canceled, Error> {
    ids::validate_tier_id("creditTierId", tier_id)?;
    let subscription = live_subscription(ctx, account, tier_id)
        .await?
        .and_then(|p| p.subscription_id)
        .ok_or_else(|| Error::not_found("no live subscription of this user to this tier"))?;
    let updated = ctx.gateway()?.cancel_at_period_end(&subscription).await?;
    let update = SubscriptionUpdate {
        subscription_id: updated.id.clone(),
        status: Some("canceling".into()),
        current_period_end: None,
    };
    ctx.store.update_subscription(account.entity_id, account.user_id, tier_id, &update).await?;
    let view = accounts::read(ctx.ledger(), account).await?;
    Ok(Canceled { subscription_id: updated.id, current_period_end: updated.current_period_end, account: view })
}
