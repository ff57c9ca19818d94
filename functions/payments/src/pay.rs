//! Q5 (create and confirm a payment with a payment method) and Q6 (create an intent for the
//! client to confirm).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use shared::auth::Caller;
use shared::domain::payment::Payment;
use shared::domain::tier::{Recurring, Tier};
use shared::http::body::Mutation;
use shared::http::{envelope, idempotent};
use shared::payments::credit_payment;
use shared::payments::gateway::NewIntent;
use shared::{ApiError, ApiResult, AppState, accounts, ids};

use crate::subscriptions::{Subscribe, subscribe};
use crate::{stripe_key, tier_for_sale};

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

impl CardData {
    /// The receipt email, and the billing details as intent metadata.
    fn apply(self, intent: &mut NewIntent) -> ApiResult<()> {
        if let Some(email) = self.email {
            if !(3..=254).contains(&email.len()) || !email.contains('@') {
                return Err(ApiError::validation("cardData.email must be an email address"));
            }
            intent.receipt_email = Some(email);
        }
        let zip = self.zip.map(|z| match z {
            Zip::Text(text) => text,
            Zip::Number(number) => number.to_string(),
        });
        for (key, value) in [("billing_name", self.name), ("billing_country", self.country), ("billing_zip", zip)] {
            if let Some(value) = value {
                if value.chars().count() > 200 {
                    return Err(ApiError::validation(format!("cardData.{} must be at most 200 characters", &key[8..])));
                }
                intent.metadata.insert(key.to_owned(), value);
            }
        }
        Ok(())
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

fn new_intent(tier: &Tier, entity_id: &str, user_id: &str) -> NewIntent {
    NewIntent {
        amount: tier.price,
        currency: tier.currency.clone(),
        metadata: Payment::intent_metadata(entity_id, user_id, tier),
        payment_method: None,
        receipt_email: None,
        description: format!("{} credits: {}", tier.total_credits(), tier.name),
    }
}

/// Q5: charges the payment method for the tier's price; credits at once when it succeeds.
/// The payment is recorded before it is confirmed, so no money moves for a payment this
/// service has no record of.
pub async fn pay(caller: Caller, State(state): State<AppState>, request: Mutation) -> ApiResult<Response> {
    let body: PayBody = request.parse()?;
    let (entity_id, user_id) = (body.info.entity_id, body.info.user_id);
    caller.check_entity(&entity_id)?;
    ids::validate_user_id("info.userId", &user_id)?;
    caller.require_actor_for(&user_id)?;
    if !body.id.starts_with("pm_") || body.id.len() > 255 {
        return Err(ApiError::validation("id must be a payment method id (pm_…)"));
    }
    let key = request.key(&entity_id)?;
    idempotent::guarded(&state, &key, async {
        let tier = tier_for_sale(&state, &entity_id, &body.product.credit_tier_id).await?;
        if body.product.price.is_some_and(|price| price != tier.price) {
            return Err(ApiError::validation(format!("product.price must equal the tier's price ({})", tier.price)));
        }
        let mut new = new_intent(&tier, &entity_id, &user_id);
        body.card_data.unwrap_or_default().apply(&mut new)?;
        if tier.recurring != Recurring::None {
            let order = Subscribe {
                entity_id: &entity_id,
                user_id: &user_id,
                tier: &tier,
                payment_method: body.id,
                email: new.receipt_email,
                stripe_key: stripe_key("subscribe", &key),
            };
            return Ok((StatusCode::OK, envelope(subscribe(&state, order).await?)?));
        }
        new.payment_method = Some(body.id);
        let data = charge(&state, &new, &tier, &user_id, &stripe_key("pay", &key)).await?;
        Ok((StatusCode::OK, envelope(data)?))
    })
    .await
}

/// Creates the intent, records it, then confirms it; credits it if it succeeded.
async fn charge(state: &AppState, new: &NewIntent, tier: &Tier, user_id: &str, stripe_key: &str) -> ApiResult<Value> {
    let gateway = state.gateway()?;
    let created = gateway.create_intent(new, stripe_key).await?;
    let now = state.clock.now_millis();
    let payment = Payment::of_tier(&created.id, &tier.entity_id, user_id, tier, &created.status, now);
    state.store.put_payment(&payment).await?;
    let intent = gateway.confirm_intent(&created.id, &format!("{stripe_key}:confirm")).await?;
    let mut data = json!({"paymentIntentId": intent.id, "status": intent.status});
    if intent.succeeded() {
        let credited = credit_payment(state, &payment).await?;
        data["credited"] = json!(credited.credited);
        data["account"] = serde_json::to_value(credited.account).map_err(ApiError::internal)?;
    } else {
        let account = accounts::read(state, &tier.entity_id, user_id).await?;
        data["credited"] = json!(0);
        data["account"] = serde_json::to_value(account.view(now)).map_err(ApiError::internal)?;
        if intent.status == "requires_action" {
            data["clientSecret"] = json!(intent.client_secret);
        }
    }
    Ok(data)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IntentBody {
    credit_tier_id: String,
    for_entity_id: Option<String>,
    card_data: Option<CardData>,
}

/// Q6: an intent for the client to confirm; the payment record keeps the tier's snapshot.
pub async fn create_intent(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, user_id)): Path<(String, String)>,
    request: Mutation,
) -> ApiResult<Response> {
    caller.check_entity(&entity_id)?;
    ids::validate_user_id("userId", &user_id)?;
    caller.require_actor_for(&user_id)?;
    let body: IntentBody = request.parse()?;
    if body.for_entity_id.as_deref().is_some_and(|id| id != entity_id) {
        return Err(ApiError::validation("forEntityId must equal the entity in the path"));
    }
    let key = request.key(&entity_id)?;
    idempotent::guarded(&state, &key, async {
        let tier = tier_for_sale(&state, &entity_id, &body.credit_tier_id).await?;
        if tier.recurring != Recurring::None {
            return Err(ApiError::validation(
                "creditTierId names a recurring tier: subscribe with POST /api/payment/pay and a payment method",
            ));
        }
        let mut new = new_intent(&tier, &entity_id, &user_id);
        body.card_data.unwrap_or_default().apply(&mut new)?;
        let intent = state.gateway()?.create_intent(&new, &stripe_key("intent", &key)).await?;
        let now = state.clock.now_millis();
        state
            .store
            .put_payment(&Payment::of_tier(&intent.id, &entity_id, &user_id, &tier, &intent.status, now))
            .await?;
        let data: Value = json!({
            "paymentIntentId": intent.id,
            "clientSecret": intent.client_secret,
            "amount": intent.amount,
            "currency": intent.currency,
            "creditTierId": tier.credit_tier_id,
            "credits": tier.credits,
            "bonusCredits": tier.bonus_credits,
            "status": intent.status,
        });
        Ok((StatusCode::CREATED, envelope(data)?))
    })
    .await
}
