//! The Quest face of the payment routes (§8): create-payment-intent in Quest's form (the one
//! path both faces share: the body decides), approve-payment with the user in the session,
//! and buy-credits for a PaymentIntent. Quest's wire → the use case → Quest's wire.

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use shared::auth::Caller;
use shared::domain::account::AccountView;
use shared::domain::payment::Beneficiary;
use shared::http::api::{Api, Route};
use shared::http::body::{JsonObject, Mutation};
use shared::http::quest::in_quest_envelope;
use shared::http::quest::route::{QuestEntity, QuestUser};
use shared::http::quest::wire::{self, EntityRouteQuery, PAYMENT_FIELDS, QuestTier, UserRouteQuery};
use shared::http::{answer, ok};
use shared::usecases::payments::{self, Billing, Credited, IntentCreated, IntentOrder};
use shared::usecases::{AccountRef, Context, tiers};
use shared::{AppState, Error, Fallible, ids};

use crate::pay;

pub fn api() -> Api {
    Api::new("payments")
        .route(
            Route::post(
                "/api/entities/{entityId}/approve-payment",
                "questApprovePayment",
                "Quest approvePaymentForEntity: credit the session user's succeeded payment, once",
            )
            .quest()
            .query::<EntityRouteQuery>()
            .body::<ApproveBody>()
            .ok::<QuestCredited>(StatusCode::OK),
            approve,
        )
        .route(
            Route::post(
                "/api/users/{userId}/buy-credits",
                "questUserBuyCredits",
                "Quest buyCreditsForUser: credit what a succeeded PaymentIntent paid for, once",
            )
            .quest()
            .query::<UserRouteQuery>()
            .body::<BuyBody>()
            .ok::<QuestCredited>(StatusCode::OK),
            buy_user,
        )
        .route(
            Route::post(
                "/api/entities/{entityId}/buy-credits",
                "questPoolBuyCredits",
                "Quest buyCreditsForEntity: credit the pool with what a succeeded PaymentIntent paid for, once",
            )
            .quest()
            .query::<EntityRouteQuery>()
            .body::<BuyBody>()
            .ok::<QuestCredited>(StatusCode::OK),
            buy_pool,
        )
}

/// `POST /api/entities/{entityId}/users/{userId}/create-payment-intent`: a body with
/// `intentData` is Quest's (answered in Quest's envelope), any other is native Q6.
pub async fn create_intent(
    caller: Result<Caller, Error>,
    state: State<AppState>,
    path: Path<(String, String)>,
    uri: Uri,
    request: Mutation,
) -> Response {
    let body = &request.body.0;
    if body.get("intentData").is_none() {
        return match caller {
            // Neither face's tier field: say so rather than the first field serde trips on.
            Ok(_) if body.get("creditTierId").is_none() => Error::validation(
                "body must name the tier: creditTierId (this API's form) or intentData (Quest's form)",
            )
            .into_response(),
            Ok(caller) => pay::create_intent(caller, state, path, request).await.into_response(),
            Err(refused) => refused.into_response(),
        };
    }
    let answered = match caller {
        Ok(caller) => quest_intent(caller, state.0, path.0, &uri, request).await,
        Err(refused) => Err(refused),
    };
    in_quest_envelope(answered.into_response()).await
}

#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
enum PostalCode {
    Text(String),
    Number(u64),
}

/// `cardData.address`: Quest's clients send all of it; the country and postal code are kept.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Address {
    country: Option<String>,
    postal_code: Option<PostalCode>,
    #[allow(dead_code)] // accepted: billing details belong to the payment method
    city: Option<String>,
    #[allow(dead_code)]
    state: Option<String>,
    #[allow(dead_code)]
    line1: Option<String>,
    #[allow(dead_code)]
    line2: Option<String>,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = QuestCardData)]
struct CardData {
    email: Option<String>,
    name: Option<String>,
    address: Option<Address>,
}

impl From<CardData> for Billing {
    fn from(card: CardData) -> Self {
        let (country, zip) = card.address.map_or((None, None), |a| {
            let zip = a.postal_code.map(|z| match z {
                PostalCode::Text(text) => text,
                PostalCode::Number(number) => number.to_string(),
            });
            (a.country, zip)
        });
        // React's form sends empty strings for what the buyer left blank.
        let given = |v: Option<String>| v.filter(|v| !v.is_empty());
        Billing { email: given(card.email), name: given(card.name), country: given(country), zip: given(zip) }
    }
}

/// `intentData`: the tier by `name` (its creditsTierName) or `creditsTierId`; `amount` and
/// `currency` are read and never used (the tier's price and currency are charged).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IntentData {
    payment_method_id: Option<String>,
    name: Option<String>,
    credits_tier_id: Option<String>,
    #[allow(dead_code)]
    #[schema(value_type = Option<Object>)]
    amount: Option<Value>,
    #[allow(dead_code)]
    currency: Option<String>,
}

/// Quest's form of create-payment-intent (it has `intentData`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QuestIntentBody {
    card_data: Option<CardData>,
    intent_data: IntentData,
    for_entity_id: Option<String>,
}

/// The tier `intentData` names: by id, else by name among the active tiers (unique).
async fn named_tier(ctx: Context<'_>, entity_id: &str, intent: &IntentData) -> Fallible<String> {
    if let Some(id) = &intent.credits_tier_id {
        return Ok(id.clone());
    }
    let name = intent.name.as_deref().ok_or_else(|| {
        Error::validation("intentData.name (the tier's creditsTierName) or intentData.creditsTierId is required")
    })?;
    let mut named = tiers::list(ctx, entity_id, false).await?.into_iter().filter(|t| t.name == name);
    match (named.next(), named.next()) {
        (Some(tier), None) => Ok(tier.credit_tier_id),
        (None, _) => Err(Error::not_found(format!("intentData.name: no active tier is named {name:?}"))),
        (Some(_), Some(_)) => Err(Error::AlreadyExists(format!(
            "intentData.name: more than one active tier is named {name:?}; name it by intentData.creditsTierId"
        ))),
    }
}

/// Quest's create-payment-intent answer (`{clientSecret, intentId}` and ours beside them).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuestIntentView {
    intent_id: String,
    client_secret: Option<String>,
    amount: u64,
    currency: String,
    status: String,
    credits_tier_id: String,
    tier: QuestTier,
}

fn intent_created(created: IntentCreated) -> QuestIntentView {
    QuestIntentView {
        intent_id: created.payment_intent_id,
        client_secret: created.client_secret,
        amount: created.amount,
        currency: created.currency,
        status: created.status,
        credits_tier_id: created.tier.credit_tier_id.clone(),
        tier: wire::tier(&created.tier),
    }
}

/// `createPaymentIntentForEntity` / React's call 1: an intent with the payment method
/// attached, for the browser to confirm.
async fn quest_intent(
    caller: Caller,
    state: AppState,
    (entity_id, user_id): (String, String),
    uri: &Uri,
    request: Mutation,
) -> Fallible<Response> {
    // Read here, not by the shared route: native Q6 reads no query.
    let query: EntityRouteQuery = shared::http::query::parse(uri)?;
    query.check(&caller, &request.headers, &entity_id)?;
    ids::validate_user_id("userId", &user_id)?;
    caller.require_actor_for(&user_id)?;
    let body: QuestIntentBody = request.parse()?;
    // Who the payment credits is fixed here: forEntityId (the path's entity) buys into its pool.
    let beneficiary = match body.for_entity_id.as_deref() {
        None => Beneficiary::User(user_id.clone()),
        Some(id) if id == entity_id => Beneficiary::Pool { by_user_id: user_id.clone() },
        Some(_) => return Err(Error::forbidden("forEntityId must be the entity in the path")),
    };
    let tier_id = named_tier(state.context(), &entity_id, &body.intent_data).await?;
    let key = request.key(&entity_id)?;
    let order = IntentOrder {
        entity_id,
        user_id,
        tier_id,
        beneficiary,
        billing: body.card_data.unwrap_or_default().into(),
        payment_method: body.intent_data.payment_method_id,
    };
    let created = payments::create_intent(state.context(), order, &key).await;
    let created = created.map_err(|e| renamed_intent_error(wire::renamed(e, PAYMENT_FIELDS)))?;
    answer(StatusCode::CREATED, created, intent_created)
}

/// The use case names the payment method `id`; Quest's clients send `intentData.paymentMethodId`.
fn renamed_intent_error(error: Error) -> Error {
    match error {
        Error::Validation(message) if message.starts_with("id must") => {
            Error::Validation(format!("intentData.paymentMethodId{}", &message[2..]))
        }
        other => other,
    }
}

/// What approve-payment and buy-credits answer: Quest reads `success`; ours beside it.
fn credited(intent_id: &str, credited: Credited) -> Fallible<Response> {
    let view = QuestCredited {
        intent_id: intent_id.to_owned(),
        credited: credited.credited,
        already_credited: credited.already_credited,
        entry_id: credited.entry_id,
        account: credited.account,
    };
    ok(StatusCode::OK, view)
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuestCredited {
    intent_id: String,
    credited: u64,
    already_credited: bool,
    entry_id: Option<String>,
    account: AccountView,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = QuestApproveBody)]
struct ApproveBody {
    #[schema(pattern = "^pi_[A-Za-z0-9_]{0,252}$")]
    intent_id: String,
}

/// `approvePaymentForEntity` / React's call 3: the session user's succeeded payment is
/// credited once (shared with Q5, Q7 and the webhook).
/// Idempotent by PaymentIntent: no idempotency key is read.
async fn approve(entity: QuestEntity<JsonObject>) -> Fallible<Response> {
    let user_id = entity
        .acting_user()?
        .ok_or_else(|| Error::validation("userId header is required: it names the user who paid"))?;
    let body: ApproveBody = entity.body.parse()?;
    let done = payments::approve_bought_by(entity.state.context(), &entity.entity_id, user_id, &body.intent_id).await;
    credited(&body.intent_id, done.map_err(|e| wire::renamed(e, PAYMENT_FIELDS))?)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BuyBody {
    credits_tier_id: String,
    #[schema(pattern = "^pi_[A-Za-z0-9_]{0,252}$")]
    intent_id: String,
}

/// `buyCreditsForUser`: credits what the user's succeeded PaymentIntent paid for, once.
async fn buy_user(user: QuestUser<Mutation>) -> Fallible<Response> {
    user.caller.require_actor_for(&user.user_id)?;
    let body: BuyBody = user.body.parse()?;
    buy(&user.state, user.account(), body).await
}

/// `buyCreditsForEntity`: credits the pool with what the acting user's succeeded
/// PaymentIntent for the pool paid for, once. Buying into the pool is open to any user.
async fn buy_pool(entity: QuestEntity<Mutation>) -> Fallible<Response> {
    let by = entity.acting_user()?;
    let body: BuyBody = entity.body.parse()?;
    buy(&entity.state, AccountRef::pool(&entity.entity_id).by_maybe(by), body).await
}

async fn buy(state: &AppState, account: AccountRef<'_>, body: BuyBody) -> Fallible<Response> {
    let done = payments::approve_tier(state.context(), account, &body.intent_id, &body.credits_tier_id).await;
    credited(&body.intent_id, done.map_err(|e| wire::renamed(e, PAYMENT_FIELDS))?)
}
