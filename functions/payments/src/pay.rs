//! Q5 (pay with a payment method), Q6 (an intent for the client to confirm), Q7 (approve a
//! payment) and cancelling a subscription: parse the wire, call the use case, render.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use shared::auth::Caller;
use shared::clock::rfc3339;
use shared::domain::account::AccountView;
use shared::domain::payment::Beneficiary;
use shared::http::body::{JsonObject, Mutation};
use shared::http::{answer, ok};
use shared::usecases::AccountRef;
use shared::usecases::payments::{self, Billing, Charged, IntentCreated, IntentOrder, Paid, PayOrder};
use shared::usecases::subscriptions::{self, Subscribed};
use shared::{AppState, Error, Fallible, ids};

/// A string, or a number as in Quest's example.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
enum Zip {
    Text(String),
    Number(u64),
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
struct CardData {
    email: Option<String>,
    name: Option<String>,
    country: Option<String>,
    zip: Option<Zip>,
}

impl From<CardData> for Billing {
    fn from(card: CardData) -> Self {
        let zip = card.zip.map(|z| match z {
            Zip::Text(text) => text,
            Zip::Number(number) => number.to_string(),
        });
        Billing { email: card.email, name: card.name, country: card.country, zip }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Product {
    credit_tier_id: String,
    /// If sent, must equal the tier's price.
    price: Option<u64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Info {
    #[schema(pattern = "^[A-Za-z0-9._:@-]{1,128}$")]
    user_id: String,
    entity_id: String,
}

/// Q5's body.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"id": "pm_card_visa", "product": {"creditTierId": "starter", "price": 999}, "info": {"userId": "u-42", "entityId": "e-6f1c2a4e-8a3b-4f7d-9c1e-2b5d7a9e0f13"}}))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PayBody {
    /// A Stripe payment method (`pm_…`).
    #[schema(pattern = "^pm_", max_length = 255)]
    id: String,
    product: Product,
    card_data: Option<CardData>,
    info: Info,
}

/// The path's account, checked against the caller.
fn account<'a>(caller: &Caller, entity_id: &'a str, user_id: &'a str, user_field: &str) -> Fallible<AccountRef<'a>> {
    caller.check_entity(entity_id)?;
    ids::validate_user_id(user_field, user_id)?;
    caller.require_actor_for(user_id)?;
    Ok(AccountRef::user(entity_id, user_id).by(user_id))
}

/// The native body's `beneficiary`: `"user"` (the default: the path's user) or `"pool"` (the
/// entity's pool, bought into by the path's user). Quest's face has its own rule (`forEntityId`
/// in Quest's form); the native `forEntityId` stays a checked no-op, as it always was.
fn for_pool(beneficiary: Option<&str>) -> Fallible<bool> {
    match beneficiary {
        None | Some("user") => Ok(false),
        Some("pool") => Ok(true),
        Some(_) => Err(Error::validation("beneficiary must be user or pool")),
    }
}

/// Q5's answer: a one-off charge, or the first period of a subscription to a recurring tier.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum PaidView {
    Charged(ChargedView),
    Subscribed(SubscribedView),
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChargedView {
    payment_intent_id: String,
    /// `succeeded` (credited), or `requires_action` (with `clientSecret`; credits come later).
    status: String,
    credited: u64,
    account: AccountView,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscribedView {
    subscription_id: String,
    invoice_id: String,
    status: String,
    credited: u64,
    #[schema(format = DateTime)]
    current_period_end: Option<String>,
    account: AccountView,
}

fn paid(paid: Paid) -> PaidView {
    match paid {
        Paid::Charged(Charged { payment_intent_id, status, credited, account, client_secret }) => {
            PaidView::Charged(ChargedView { payment_intent_id, status, credited, account, client_secret })
        }
        Paid::Subscribed(Subscribed { subscription_id, invoice_id, credited, current_period_end, account }) => {
            PaidView::Subscribed(SubscribedView {
                subscription_id,
                invoice_id,
                status: "succeeded".into(),
                credited,
                current_period_end: current_period_end.map(rfc3339),
                account,
            })
        }
    }
}

/// Q5: charges the payment method for the tier's price; credits at once when it succeeds.
pub async fn pay(caller: Caller, State(state): State<AppState>, request: Mutation) -> Fallible<Response> {
    let body: PayBody = request.parse()?;
    let (entity_id, user_id) = (body.info.entity_id, body.info.user_id);
    account(&caller, &entity_id, &user_id, "info.userId")?;
    payments::check_payment_method(&body.id)?;
    let key = request.key(&entity_id)?;
    let order = PayOrder {
        tier_id: body.product.credit_tier_id,
        price: body.product.price,
        payment_method: body.id,
        billing: body.card_data.unwrap_or_default().into(),
        entity_id,
        user_id,
    };
    answer(StatusCode::OK, payments::pay(state.context(), order, &key).await?, paid)
}

/// Q6's body (this API's form: it names `creditTierId`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IntentBody {
    credit_tier_id: String,
    /// A checked no-op: if sent, the path's entity.
    for_entity_id: Option<String>,
    /// `user` (default) or `pool`.
    #[schema(value_type = Option<BeneficiaryName>)]
    beneficiary: Option<String>,
    card_data: Option<CardData>,
}

/// Whose account a payment credits.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // the schema of `beneficiary`, read as a string
enum BeneficiaryName {
    User,
    Pool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntentView {
    payment_intent_id: String,
    client_secret: Option<String>,
    amount: u64,
    currency: String,
    credit_tier_id: String,
    credits: u64,
    bonus_credits: u64,
    status: String,
}

fn intent_created(created: IntentCreated) -> IntentView {
    IntentView {
        payment_intent_id: created.payment_intent_id,
        client_secret: created.client_secret,
        amount: created.amount,
        currency: created.currency,
        credit_tier_id: created.tier.credit_tier_id,
        credits: created.tier.credits,
        bonus_credits: created.tier.bonus_credits,
        status: created.status,
    }
}

/// Q6: an intent for the client to confirm.
pub async fn create_intent(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, user_id)): Path<(String, String)>,
    request: Mutation,
) -> Fallible<Response> {
    account(&caller, &entity_id, &user_id, "userId")?;
    let body: IntentBody = request.parse()?;
    if body.for_entity_id.as_deref().is_some_and(|id| id != entity_id) {
        return Err(Error::validation("forEntityId must equal the entity in the path"));
    }
    // Buying into the pool is open to any user of the entity: only spending from it is guarded.
    let beneficiary = if for_pool(body.beneficiary.as_deref())? {
        Beneficiary::Pool { by_user_id: user_id.clone() }
    } else {
        Beneficiary::User(user_id.clone())
    };
    let key = request.key(&entity_id)?;
    let order = IntentOrder {
        entity_id,
        user_id,
        beneficiary,
        tier_id: body.credit_tier_id,
        billing: body.card_data.unwrap_or_default().into(),
        payment_method: None,
    };
    answer(StatusCode::CREATED, payments::create_intent(state.context(), order, &key).await?, intent_created)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApproveBody {
    #[schema(pattern = "^pi_[A-Za-z0-9_]{0,252}$")]
    payment_intent_id: String,
    /// `"pool"` approves a payment into the entity's pool (created with that beneficiary).
    #[schema(value_type = Option<BeneficiaryName>)]
    beneficiary: Option<String>,
    #[allow(dead_code)] // approving is idempotent by PaymentIntent; a key changes nothing
    idempotency_key: Option<String>,
}

/// Q7: a succeeded payment is credited once (shared with Q5 and the webhook), to the
/// account its intent was created for: with `"beneficiary": "pool"`, the pool the path's
/// user bought into.
pub async fn approve(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, user_id)): Path<(String, String)>,
    body: JsonObject,
) -> Fallible<Response> {
    let buyer = account(&caller, &entity_id, &user_id, "userId")?;
    let body: ApproveBody = body.parse()?;
    let account =
        if for_pool(body.beneficiary.as_deref())? { AccountRef::pool(&entity_id).by(&user_id) } else { buyer };
    let credited = payments::approve(state.context(), account, &body.payment_intent_id).await?;
    let approved = Approved {
        payment_intent_id: body.payment_intent_id,
        status: "succeeded".into(),
        credited: credited.credited,
        already_credited: credited.already_credited,
        entry_id: credited.entry_id,
        account: credited.account,
    };
    ok(StatusCode::OK, approved)
}

/// Q7's answer.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Approved {
    payment_intent_id: String,
    status: String,
    credited: u64,
    already_credited: bool,
    entry_id: Option<String>,
    account: AccountView,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CancelView {
    credit_tier_id: String,
    subscription_id: String,
    /// `canceling`: no renewal after this period.
    status: String,
    #[schema(format = DateTime)]
    current_period_end: Option<String>,
    account: AccountView,
}

/// `POST …/users/{userId}/credit-tiers/{creditTierId}/cancel`: no renewal after this period.
pub async fn cancel(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, user_id, tier_id)): Path<(String, String, String)>,
    body: JsonObject,
) -> Fallible<Response> {
    caller.check_entity(&entity_id)?;
    ids::validate_user_id("userId", &user_id)?;
    ids::validate_tier_id("creditTierId", &tier_id)?;
    caller.require_actor_for(&user_id)?;
    let _: serde_json::Map<String, serde_json::Value> = body.parse()?;
    let account = AccountRef::user(&entity_id, &user_id).by(&user_id);
    let canceled = subscriptions::cancel(state.context(), account, &tier_id).await?;
    let view = CancelView {
        credit_tier_id: tier_id,
        subscription_id: canceled.subscription_id,
        status: "canceling".into(),
        current_period_end: canceled.current_period_end.map(rfc3339),
        account: canceled.account,
    };
    ok(StatusCode::OK, view)
}
