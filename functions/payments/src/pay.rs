//! Q5 (pay with a payment method), Q6 (an intent for the client to confirm), Q7 (approve a
//! payment) and cancelling a subscription: parse the wire, call the use case, render.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use shared::auth::Caller;
use shared::clock::rfc3339;
use shared::domain::payment::Beneficiary;
use shared::http::body::{JsonObject, Mutation};
use shared::http::{answer, ok};
use shared::usecases::AccountRef;
use shared::usecases::payments::{self, Billing, Charged, IntentCreated, IntentOrder, Paid, PayOrder};
use shared::usecases::subscriptions::{self, Subscribed};
use shared::{AppState, Error, Fallible, ids};

#[derive(Deserialize)]
#[serde(untagged)]
enum Zip {
    Text(String),
    Number(u64),
}

#[derive(Deserialize, Default)]
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Product {
    credit_tier_id: String,
    price: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Info {
    user_id: String,
    entity_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PayBody {
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

fn paid(paid: Paid) -> Value {
    match paid {
        Paid::Charged(Charged { payment_intent_id, status, credited, account, client_secret }) => {
            let mut data = json!({"paymentIntentId": payment_intent_id, "status": status, "credited": credited, "account": account});
            if let Some(secret) = client_secret {
                data["clientSecret"] = json!(secret);
            }
            data
        }
        Paid::Subscribed(Subscribed { subscription_id, invoice_id, credited, current_period_end, account }) => json!({
            "subscriptionId": subscription_id,
            "invoiceId": invoice_id,
            "status": "succeeded",
            "credited": credited,
            "currentPeriodEnd": current_period_end.map(rfc3339),
            "account": account,
        }),
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IntentBody {
    credit_tier_id: String,
    for_entity_id: Option<String>,
    beneficiary: Option<String>,
    card_data: Option<CardData>,
}

fn intent_created(created: IntentCreated) -> Value {
    json!({
        "paymentIntentId": created.payment_intent_id,
        "clientSecret": created.client_secret,
        "amount": created.amount,
        "currency": created.currency,
        "creditTierId": created.tier.credit_tier_id,
        "credits": created.tier.credits,
        "bonusCredits": created.tier.bonus_credits,
        "status": created.status,
    })
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ApproveBody {
    payment_intent_id: String,
    /// `"pool"` approves a payment into the entity's pool (created with that beneficiary).
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
    ok(
        StatusCode::OK,
        json!({
            "paymentIntentId": body.payment_intent_id,
            "status": "succeeded",
            "credited": credited.credited,
            "alreadyCredited": credited.already_credited,
            "entryId": credited.entry_id,
            "account": credited.account,
        }),
    )
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
    let _: serde_json::Map<String, Value> = body.parse()?;
    let account = AccountRef::user(&entity_id, &user_id).by(&user_id);
    let canceled = subscriptions::cancel(state.context(), account, &tier_id).await?;
    ok(
        StatusCode::OK,
        json!({
            "creditTierId": tier_id,
            "subscriptionId": canceled.subscription_id,
            "status": "canceling",
            "currentPeriodEnd": canceled.current_period_end.map(rfc3339),
            "account": canceled.account,
        }),
    )
}
