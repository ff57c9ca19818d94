//! Turning money into credits exactly once: a succeeded PaymentIntent (Q5, Q7 and the
//! webhook all call `credit_payment`; whichever arrives first credits, the others learn it
//! was already done), a subscription's paid invoice, and refunds and disputes.

use serde::{Deserialize, Serialize};

use crate::accounts;
use crate::domain::account::AccountView;
use crate::domain::ledger::{Change, Operation, is_nothing_to_change};
use crate::domain::payment::{Beneficiary, Payment};
use crate::domain::tier::{Recurring, Tier};
use crate::error::Error;
use crate::idempotency::{self, Answer, IdempotencyKey, Performed, Shape};
use crate::payments::gateway::NewIntent;
use crate::usecases::subscriptions::{self, Subscribe, Subscribed};
use crate::usecases::{AccountRef, Context, tiers};

#[derive(Debug, Clone)]
pub struct Credited {
    pub entry_id: Option<String>,
    pub credited: u64,
    pub already_credited: bool,
    pub account: AccountView,
}

/// The account a payment credits (and whose credits its refunds take back): its
/// beneficiary's, fixed when the intent was created, with the buyer as the one who acted.
fn account_of(payment: &Payment) -> AccountRef<'_> {
    let account = match &payment.beneficiary {
        Beneficiary::User(user_id) => AccountRef::user(&payment.entity_id, user_id),
        Beneficiary::Pool { .. } => AccountRef::pool(&payment.entity_id),
    };
    account.by(&payment.user_id)
}

/// Credits the payment's snapshot once, keyed by its PaymentIntent id, forever.
pub async fn credit_payment(ctx: Context<'_>, payment: &Payment) -> Result<Credited, Error> {
    let key = format!("#payment#{}", payment.payment_intent_id);
    credit_once(ctx, payment, &key, Some(payment.payment_intent_id.clone()), "payment".into()).await
}

/// Credits one paid period of a subscription (whose snapshot is `subscription`), once per
/// invoice, forever.
pub async fn credit_invoice(ctx: Context<'_>, subscription: &Payment, invoice_id: &str) -> Result<Credited, Error> {
    let key = format!("#invoice#{invoice_id}");
    credit_once(ctx, subscription, &key, None, format!("subscription invoice {invoice_id}")).await
}

/// What a payment's credit record keeps: the entry that credited it (the shape records had
/// before journals, so those still read). The account is the fresh answer's only: a replay
/// reads it as it stands now.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PaymentCredit {
    entry_id: Option<String>,
    #[serde(skip)]
    account: Option<AccountView>,
}

async fn credit_once(
    ctx: Context<'_>,
    payment: &Payment,
    key: &str,
    payment_intent_id: Option<String>,
    reason: String,
) -> Result<Credited, Error> {
    let key = IdempotencyKey::permanent(&payment.entity_id, key, key);
    let credited = payment.total_credits();
    let operation =
        Operation::Purchase { credit_tier_id: payment.credit_tier_id.clone(), credits: credited, payment_intent_id };
    let account = account_of(payment);
    let change = Change { operation, reason: Some(reason), idempotency_key: None, by_user_id: account.actor() };
    let answer = accounts::change(ctx.ledger(), account, &change, &key, |applied, now| {
        let entry_id = applied.main_entry().map(|e| e.entry_id.clone());
        Ok(PaymentCredit { entry_id, account: Some(applied.account.view(now)) })
    })
    .await?;
    let PaymentCredit { entry_id, account: fresh } = answer.outcome;
    let account = match fresh {
        Some(view) if !answer.replayed => view,
        _ => accounts::read(ctx.ledger(), account).await?,
    };
    Ok(Credited { entry_id, credited, already_credited: answer.replayed, account })
}

/// Brings the payment's credits in line with its refunds and disputes as the provider
/// reports them now. The change is computed from the account inside its versioned write, so
/// duplicate, concurrent or late notices move nothing twice.
pub async fn follow_the_money(ctx: Context<'_>, payment: &Payment) -> Result<(), Error> {
    let moves = ctx.gateway()?.money_moves(&payment.payment_intent_id).await?;
    let (target, why) = moves.credits_to_reverse(payment);
    let operation = Operation::Reconcile {
        payment_intent_id: payment.payment_intent_id.clone(),
        credited: payment.total_credits(),
        target,
    };
    let account = account_of(payment);
    let change = Change { operation, reason: Some(why), idempotency_key: None, by_user_id: account.actor() };
    let key = IdempotencyKey::internal(&payment.entity_id, "stripe money moves");
    match accounts::change(ctx.ledger(), account, &change, &key, |_, _| Ok(())).await {
        Ok(_) => Ok(()),
        Err(err) if is_nothing_to_change(&err) => Ok(()),
        Err(err) => Err(err),
    }
}

/// A Stripe idempotency key for this request: derived from the client's key and the request
/// (a corrected request after a refusal is a new Stripe request), else fresh.
fn stripe_key(purpose: &str, key: &IdempotencyKey) -> String {
    key.provider_key(purpose).unwrap_or_else(|| format!("{purpose}:{}", uuid::Uuid::new_v4()))
}

/// Receipt email and billing details (kept as intent metadata: billing details belong to the
/// payment method, which the client made).
#[derive(Debug, Clone, Default)]
pub struct Billing {
    pub email: Option<String>,
    pub name: Option<String>,
    pub country: Option<String>,
    pub zip: Option<String>,
}

impl Billing {
    fn apply(self, intent: &mut NewIntent) -> Result<(), Error> {
        if let Some(email) = self.email {
            if !(3..=254).contains(&email.len()) || !email.contains('@') {
                return Err(Error::validation("cardData.email must be an email address"));
            }
            intent.receipt_email = Some(email);
        }
        for (key, value) in [("billing_name", self.name), ("billing_country", self.country), ("billing_zip", self.zip)]
        {
            if let Some(value) = value {
                if value.chars().count() > 200 {
                    return Err(Error::validation(format!("cardData.{} must be at most 200 characters", &key[8..])));
                }
                intent.metadata.insert(key.to_owned(), value);
            }
        }
        Ok(())
    }
}

fn new_intent(tier: &Tier, user_id: &str, beneficiary: &Beneficiary) -> NewIntent {
    NewIntent {
        amount: tier.price,
        currency: tier.currency.clone(),
        metadata: Payment::intent_metadata(&tier.entity_id, user_id, tier, beneficiary),
        payment_method: None,
        receipt_email: None,
        description: format!("{} credits: {}", tier.total_credits(), tier.name),
    }
}

/// Q5: pay for a tier with a payment method.
pub struct PayOrder {
    pub entity_id: String,
    pub user_id: String,
    pub tier_id: String,
    /// When sent, it must be the tier's price.
    pub price: Option<u64>,
    pub payment_method: String,
    pub billing: Billing,
}

/// What a payment did: a one-off charge, or the start of a subscription (paid by invoices,
/// so no PaymentIntent of ours names it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Paid {
    Charged(Charged),
    Subscribed(Subscribed),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Charged {
    pub payment_intent_id: String,
    pub status: String,
    pub credited: u64,
    pub account: AccountView,
    /// For a payment that needs the customer (3-D Secure).
    pub client_secret: Option<String>,
}

pub fn check_payment_method(id: &str) -> Result<(), Error> {
    if id.starts_with("pm_") && id.len() <= 255 {
        Ok(())
    } else {
        Err(Error::validation("id must be a payment method id (pm_…)"))
    }
}

/// Charges the payment method for the tier's price; credits at once when it succeeds. The
/// payment is recorded before it is confirmed, so no money moves for a payment this service
/// has no record of.
pub async fn pay(ctx: Context<'_>, order: PayOrder, key: &IdempotencyKey) -> Result<Answer<Paid>, Error> {
    check_payment_method(&order.payment_method)?;
    idempotency::run(ctx.guard(), key, Shape::Outside, || async {
        let tier = tiers::for_sale(ctx, &order.entity_id, &order.tier_id).await?;
        if order.price.is_some_and(|price| price != tier.price) {
            return Err(Error::validation(format!("product.price must equal the tier's price ({})", tier.price)));
        }
        let mut new = new_intent(&tier, &order.user_id, &Beneficiary::User(order.user_id.clone()));
        order.billing.apply(&mut new)?;
        if tier.recurring != Recurring::None {
            let subscribe = Subscribe {
                user_id: &order.user_id,
                tier: &tier,
                payment_method: order.payment_method,
                email: new.receipt_email,
                stripe_key: stripe_key("subscribe", key),
            };
            return Ok(Performed::Done(Paid::Subscribed(subscriptions::subscribe(ctx, subscribe).await?)));
        }
        new.payment_method = Some(order.payment_method);
        Ok(Performed::Done(Paid::Charged(charge(ctx, &new, &tier, &order.user_id, &stripe_key("pay", key)).await?)))
    })
    .await
}

/// Creates the intent, records it, then confirms it; credits it if it succeeded.
async fn charge(
    ctx: Context<'_>,
    new: &NewIntent,
    tier: &Tier,
    user_id: &str,
    stripe_key: &str,
) -> Result<Charged, Error> {
    let gateway = ctx.gateway()?;
    let created = gateway.create_intent(new, stripe_key).await?;
    let payment = Payment::of_tier(&created.id, &tier.entity_id, user_id, tier, &created.status, ctx.now());
    ctx.store.put_payment(&payment).await?;
    let intent = gateway.confirm_intent(&created.id, &format!("{stripe_key}:confirm")).await?;
    let (credited, account) = if intent.succeeded() {
        let credited = credit_payment(ctx, &payment).await?;
        (credited.credited, credited.account)
    } else {
        (0, accounts::read(ctx.ledger(), account_of(&payment)).await?)
    };
    let client_secret = if intent.status == "requires_action" { intent.client_secret } else { None };
    Ok(Charged { payment_intent_id: intent.id, status: intent.status, credited, account, client_secret })
}

/// Q6: an intent for the client to confirm. `user_id` is the buyer; `beneficiary` is whose
/// account the payment will credit (the buyer's, or the entity's pool bought into by them).
pub struct IntentOrder {
    pub entity_id: String,
    pub user_id: String,
    pub tier_id: String,
    pub beneficiary: Beneficiary,
    pub billing: Billing,
    /// Attached to the intent, not confirmed: the client confirms it.
    pub payment_method: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntentCreated {
    pub payment_intent_id: String,
    pub client_secret: Option<String>,
    pub amount: u64,
    pub currency: String,
    pub status: String,
    pub tier: Tier,
}

/// Creates an intent for the client to confirm; the payment record keeps the tier's snapshot.
pub async fn create_intent(
    ctx: Context<'_>,
    order: IntentOrder,
    key: &IdempotencyKey,
) -> Result<Answer<IntentCreated>, Error> {
    idempotency::run(ctx.guard(), key, Shape::Outside, || async {
        let tier = tiers::for_sale(ctx, &order.entity_id, &order.tier_id).await?;
        if tier.recurring != Recurring::None {
            return Err(Error::validation(
                "creditTierId names a recurring tier: subscribe with POST /api/payment/pay and a payment method",
            ));
        }
        let mut new = new_intent(&tier, &order.user_id, &order.beneficiary);
        order.billing.apply(&mut new)?;
        if let Some(method) = &order.payment_method {
            check_payment_method(method)?;
        }
        new.payment_method = order.payment_method;
        let intent = ctx.gateway()?.create_intent(&new, &stripe_key("intent", key)).await?;
        let payment = Payment {
            beneficiary: order.beneficiary,
            ..Payment::of_tier(&intent.id, &order.entity_id, &order.user_id, &tier, &intent.status, ctx.now())
        };
        ctx.store.put_payment(&payment).await?;
        Ok(Performed::Done(IntentCreated {
            payment_intent_id: intent.id,
            client_secret: intent.client_secret,
            amount: intent.amount,
            currency: intent.currency,
            status: intent.status,
            tier,
        }))
    })
    .await
}

/// Q7 for a client that also names the tier it paid for (Quest's buy-credits): a payment of
/// this entity for another tier is refused before anything is credited; the rest is Q7's.
pub async fn approve_tier(
    ctx: Context<'_>,
    account: AccountRef<'_>,
    payment_intent_id: &str,
    tier_id: &str,
) -> Result<Credited, Error> {
    check_payment_intent_id(payment_intent_id)?;
    let payment = ctx.store.get_payment(payment_intent_id).await?;
    if let Some(payment) = payment.filter(|p| p.entity_id == account.entity_id && p.credit_tier_id != tier_id) {
        return Err(Error::validation(format!(
            "creditTierId must be the tier this payment bought ({})",
            payment.credit_tier_id
        )));
    }
    approve(ctx, account, payment_intent_id).await
}

/// Quest's approve-payment names no account, only the buyer: the payment's beneficiary,
/// fixed when its intent was created, decides which account Q7 credits.
pub async fn approve_bought_by(
    ctx: Context<'_>,
    entity_id: &str,
    buyer: &str,
    payment_intent_id: &str,
) -> Result<Credited, Error> {
    check_payment_intent_id(payment_intent_id)?;
    let for_pool = ctx.store.get_payment(payment_intent_id).await?.is_some_and(|p| p.beneficiary.is_pool());
    let account = if for_pool { AccountRef::pool(entity_id).by(buyer) } else { AccountRef::user(entity_id, buyer) };
    approve(ctx, account, payment_intent_id).await
}

pub fn check_payment_intent_id(id: &str) -> Result<(), Error> {
    if id.starts_with("pi_") && id.len() <= 255 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(())
    } else {
        Err(Error::validation("paymentIntentId must be a PaymentIntent id (pi_…)"))
    }
}

/// Q7: the client says a payment went through; the provider is asked, and a succeeded
/// payment is credited once. Only a payment this service recorded for `account` can be
/// credited, and only with what the record says it bought. Idempotent by PaymentIntent.
/// On a user's account the payment must be that user's; on the pool, one bought into it by
/// the acting user (any buyer when the server acts as itself). A payment of the other kind
/// of account is refused naming its beneficiary: crediting it here would credit the wrong one.
pub async fn approve(ctx: Context<'_>, account: AccountRef<'_>, payment_intent_id: &str) -> Result<Credited, Error> {
    check_payment_intent_id(payment_intent_id)?;
    let not_found = || Error::not_found("no such payment for this user");
    let payment = ctx.store.get_payment(payment_intent_id).await?.ok_or_else(not_found)?;
    let buyer = if account.is_pool() { account.by_user_id } else { Some(account.user_id) };
    if payment.entity_id != account.entity_id || buyer.is_some_and(|buyer| buyer != payment.user_id) {
        return Err(not_found());
    }
    if payment.beneficiary.is_pool() != account.is_pool() {
        return Err(Error::WrongBeneficiary(format!(
            "paymentIntentId pays for the {}'s account, not this one",
            match payment.beneficiary {
                Beneficiary::User(_) => "user",
                Beneficiary::Pool { .. } => "entity's pool",
            }
        )));
    }
    let intent = ctx.gateway()?.retrieve_intent(payment_intent_id).await?.ok_or_else(not_found)?;
    if !intent.succeeded() {
        return Err(Error::PaymentNotSucceeded { status: intent.status });
    }
    if !payment.matches(intent.amount, &intent.currency) {
        tracing::warn!(payment_intent_id, "intent amount or currency differs from the payment record");
        return Err(not_found());
    }
    credit_payment(ctx, &payment).await
}
