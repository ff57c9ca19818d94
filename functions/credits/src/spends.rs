//! Spends and grants: decrement (Q11), grant (Q12), purchase of a tier paid elsewhere (Q10),
//! and decrements for many users (Q13).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use shared::accounts::{self, Outcome};
use shared::auth::Caller;
use shared::domain::ledger::{Change, Operation};
use shared::domain::tier::TierStatus;
use shared::http::body::Mutation;
use shared::http::idempotent;
use shared::idempotency::IdempotencyKey;
use shared::{ApiError, ApiResult, AppState, ErrorCode, ids};

use crate::requests::{CreditsBody, check_path, check_reason, entry_answer, positive_credits};

/// The most users one Q13 request may debit.
pub const MAX_BATCH: usize = 25;

async fn apply_credits(
    state: &AppState,
    entity_id: &str,
    user_id: &str,
    operation: Operation,
    reason: Option<String>,
    key: &IdempotencyKey,
) -> ApiResult<Outcome> {
    let change = Change { operation, reason, idempotency_key: key.client_key() };
    accounts::change(state, entity_id, user_id, &change, key, |applied, now| {
        Ok((StatusCode::OK, entry_answer(applied, now, json!({}))?))
    })
    .await
}

/// Q11: that user or the server.
pub async fn decrement(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, user_id)): Path<(String, String)>,
    request: Mutation,
) -> ApiResult<Response> {
    check_path(&caller, &entity_id, &user_id)?;
    caller.require_actor_for(&user_id)?;
    let body: CreditsBody = request.parse()?;
    let credits = body.validate()?;
    let key = request.key(&entity_id)?;
    apply_credits(&state, &entity_id, &user_id, Operation::Decrement { credits }, body.reason, &key)
        .await?
        .into_response()
}

/// Q12: the server grants credits; an idempotency key is required.
pub async fn grant(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, user_id)): Path<(String, String)>,
    request: Mutation,
) -> ApiResult<Response> {
    check_path(&caller, &entity_id, &user_id)?;
    caller.require_server()?;
    let body: CreditsBody = request.parse()?;
    let credits = body.validate()?;
    let key = request.required_key(&entity_id)?;
    apply_credits(&state, &entity_id, &user_id, Operation::Grant { credits }, body.reason, &key).await?.into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PurchaseBody {
    credit_tier_id: String,
    reason: Option<String>,
    #[allow(dead_code)] // read by the idempotency layer from the raw body
    idempotency_key: Option<String>,
}

/// Q10: the server records a purchase paid elsewhere; credits the tier's pack.
pub async fn purchase(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, user_id)): Path<(String, String)>,
    request: Mutation,
) -> ApiResult<Response> {
    check_path(&caller, &entity_id, &user_id)?;
    caller.require_server()?;
    let body: PurchaseBody = request.parse()?;
    check_reason(&body.reason)?;
    ids::validate_tier_id("creditTierId", &body.credit_tier_id)?;
    let key = request.required_key(&entity_id)?;
    if let Some(replay) = idempotent::prior(&state, &key).await? {
        return Ok(replay);
    }
    let tier = state
        .store
        .get_tier(&entity_id, &body.credit_tier_id)
        .await?
        .ok_or_else(|| ApiError::not_found("credit tier not found"))?;
    if tier.status == TierStatus::Archived {
        return Err(ApiError::new(ErrorCode::TierArchived, "creditTierId names an archived tier"));
    }
    let credited = tier.total_credits();
    let operation =
        Operation::Purchase { credit_tier_id: tier.credit_tier_id, credits: credited, payment_intent_id: None };
    let change = Change { operation, reason: body.reason, idempotency_key: key.client_key() };
    accounts::change(&state, &entity_id, &user_id, &change, &key, |applied, now| {
        Ok((StatusCode::OK, entry_answer(applied, now, json!({"credited": credited}))?))
    })
    .await?
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    decrements: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BatchItem {
    user_id: String,
    credits: u64,
    reason: Option<String>,
    idempotency_key: Option<String>,
}

/// Q13: each item is its own spend (own idempotency record, own outcome), in request
/// order. Under an `Idempotency-Key` the whole answer is recorded too: the same batch again
/// replays it, another batch under the key is refused, and an item without its own key gets
/// one derived from the batch's (`{key}#{index}`), so a retry after a lost answer finds every
/// item's earlier effect instead of spending twice.
pub async fn decrement_many(
    caller: Caller,
    State(state): State<AppState>,
    Path(entity_id): Path<String>,
    request: Mutation,
) -> ApiResult<Response> {
    caller.check_entity(&entity_id)?;
    caller.require_server()?;
    let body: BatchBody = request.parse()?;
    if !(1..=MAX_BATCH).contains(&body.decrements.len()) {
        return Err(ApiError::validation(format!("decrements must hold 1 to {MAX_BATCH} items")));
    }
    let key = request.key(&entity_id)?;
    idempotent::guarded(&state, &key, async {
        let items = body.decrements.iter().enumerate().map(|(i, item)| decrement_item(&state, &key, i, item));
        let results = futures::future::join_all(items).await;
        Ok((StatusCode::OK, shared::http::envelope(json!({"results": results}))?))
    })
    .await
}

async fn decrement_item(state: &AppState, batch: &IdempotencyKey, index: usize, raw: &Value) -> Value {
    let entity_id = batch.entity_id.as_str();
    let outcome = async {
        let item: BatchItem = shared::http::body::JsonObject(raw.clone())
            .parse()
            .map_err(|e| ApiError::validation(format!("decrements[{index}].{}", e.message)))?;
        ids::validate_user_id("userId", &item.user_id)?;
        check_reason(&item.reason)?;
        let credits = positive_credits("credits", item.credits)?;
        let line = format!("POST /api/entities/{entity_id}/users/{}/decrement-credits", item.user_id);
        let body = json!({"credits": credits, "reason": item.reason});
        let key = IdempotencyKey::for_item(batch, index, item.idempotency_key.as_deref(), &line, &body)?;
        apply_credits(state, entity_id, &item.user_id, Operation::Decrement { credits }, item.reason, &key)
            .await?
            .into_body()
    }
    .await;
    // Echo the item's user id only when it is one (a malformed item has none).
    let user_id = raw.get("userId").filter(|id| id.is_string()).cloned().unwrap_or(Value::Null);
    match outcome {
        Ok(body) => {
            let mut result = json!({"userId": user_id, "ok": true});
            if let (Some(result), Some(Value::Object(data))) = (result.as_object_mut(), body.get("data")) {
                result.extend(data.clone());
            }
            result
        }
        Err(error) => {
            json!({"userId": user_id, "ok": false, "error": {"code": error.code.as_str(), "message": error.message}})
        }
    }
}
