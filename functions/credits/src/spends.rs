//! Spends and grants: decrement (Q11), grant (Q12), purchase of a tier paid elsewhere (Q10),
//! and decrements for many users (Q13).

use std::convert::identity;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use shared::auth::Caller;
use shared::domain::account::AccountView;
use shared::http::answer;
use shared::http::body::{JsonObject, Mutation};
use shared::http::error::error_object;
use shared::idempotency::IdempotencyKey;
use shared::usecases::credits::{self, BatchItem, BatchOutcome, Changed, Credits, ItemResult, ItemSpend};
use shared::{AppState, Error, Fallible, ids};

use crate::requests::{self, CreditsBody, Target};

/// Q11 (and the pool's spend): who may spend is `Target::to_spend`'s rule.
pub async fn decrement(
    caller: Caller,
    State(state): State<AppState>,
    target: Target,
    request: Mutation,
) -> Fallible<Response> {
    let account = target.to_spend(&caller)?;
    let body: CreditsBody = request.parse()?;
    let account = requests::named(account, &caller, body.by_user_id.as_deref())?;
    let spend = Credits::spend(body.credits, body.reason)?;
    let key = request.key(target.entity_id())?;
    answer(StatusCode::OK, credits::apply(state.context(), account, spend, &key).await?, identity)
}

/// Q12 (and the pool's grant): the server grants credits, acting as itself; an idempotency
/// key is required.
pub async fn grant(
    caller: Caller,
    State(state): State<AppState>,
    target: Target,
    request: Mutation,
) -> Fallible<Response> {
    let account = target.to_grant(&caller)?;
    let body: CreditsBody = request.parse()?;
    if body.by_user_id.is_some() {
        return Err(Error::validation("byUserId is only accepted on spends"));
    }
    let grant = Credits::grant(body.credits, body.reason)?;
    let key = request.required_key(target.entity_id())?;
    answer(StatusCode::OK, credits::apply(state.context(), account, grant, &key).await?, identity)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PurchaseBody {
    credit_tier_id: String,
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    reason: Option<String>,
    #[allow(dead_code)] // read by the idempotency layer from the raw body
    #[schema(pattern = "^[\\x20-\\x7E]{1,255}$")]
    idempotency_key: Option<String>,
}

/// Q10: the server records a purchase paid elsewhere; credits the tier's pack.
pub async fn purchase(
    caller: Caller,
    State(state): State<AppState>,
    target: Target,
    request: Mutation,
) -> Fallible<Response> {
    let account = target.to_grant(&caller)?;
    let body: PurchaseBody = request.parse()?;
    let key = request.required_key(target.entity_id())?;
    let purchased = credits::purchase(state.context(), account, &body.credit_tier_id, body.reason, &key).await?;
    answer(StatusCode::OK, purchased, identity)
}

/// Items are read one by one: a malformed item is refused in its own result, not the batch.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    #[schema(value_type = Vec<BatchItemBody>, min_items = 1, max_items = 25)]
    decrements: Vec<Value>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BatchItemBody {
    #[schema(pattern = "^[A-Za-z0-9._:@-]{1,128}$")]
    user_id: String,
    #[schema(minimum = 1, maximum = 1_000_000_000_000_u64)]
    credits: u64,
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    reason: Option<String>,
    #[schema(pattern = "^[\\x20-\\x7E]{1,255}$")]
    idempotency_key: Option<String>,
}

/// One item's answer: spent, or refused with its error.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum ItemAnswer {
    Spent(ItemSpent),
    Refused(ItemRefused),
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemSpent {
    /// `null` when the item names no user.
    user_id: Option<String>,
    /// `true`.
    ok: bool,
    entry_id: Option<String>,
    account: AccountView,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemRefused {
    user_id: Option<String>,
    /// `false`.
    ok: bool,
    /// `{code, message}`, as a refused Q11 would answer.
    #[schema(value_type = Object)]
    error: Value,
}

#[derive(Serialize, ToSchema)]
pub struct BatchAnswer {
    results: Vec<ItemAnswer>,
}

/// Q13: each item is its own spend with its own key: the item's `idempotencyKey`, else under
/// an `Idempotency-Key` one derived from it (`{key}#{index}`), so a retry after a lost answer
/// finds every item's earlier effect; an item replayed answers as a Q11 with its key would.
pub async fn decrement_many(
    caller: Caller,
    State(state): State<AppState>,
    Path(entity_id): Path<String>,
    request: Mutation,
) -> Fallible<Response> {
    caller.check_entity(&entity_id)?;
    caller.require_server()?;
    let body: BatchBody = request.parse()?;
    credits::check_batch_size(body.decrements.len())?;
    let key = request.key(&entity_id)?;
    let items = body.decrements.iter().enumerate().map(|(index, raw)| batch_item(&key, index, raw)).collect();
    let outcome = credits::spend_many(state.context(), &entity_id, items, &key).await?;
    answer(StatusCode::OK, outcome, |outcome: BatchOutcome| BatchAnswer {
        results: outcome.results.into_iter().map(item_result).collect(),
    })
}

fn batch_item(batch: &IdempotencyKey, index: usize, raw: &Value) -> BatchItem {
    // Echo the item's user id only when it is one (a malformed item has none).
    let user_id = raw.get("userId").and_then(Value::as_str).map(str::to_owned);
    BatchItem { user_id, spend: item_spend(batch, index, raw) }
}

/// One item read as the Q11 it stands for (its key's fingerprint is that Q11's).
fn item_spend(batch: &IdempotencyKey, index: usize, raw: &Value) -> Fallible<ItemSpend> {
    let item: BatchItemBody = JsonObject(raw.clone())
        .parse()
        .map_err(|e| Error::validation(format!("decrements[{index}].{}", e.message())))?;
    ids::validate_user_id("userId", &item.user_id)?;
    let spend = Credits::spend(item.credits, item.reason.clone())?;
    let line = format!("POST /api/entities/{}/users/{}/decrement-credits", batch.entity_id, item.user_id);
    let body = json!({"credits": item.credits, "reason": item.reason});
    let key = IdempotencyKey::for_item(batch, index, item.idempotency_key.as_deref(), &line, &body)?;
    Ok(ItemSpend { user_id: item.user_id, spend, key })
}

fn item_result(item: ItemResult) -> ItemAnswer {
    let user_id = item.user_id;
    match item.result {
        Ok(Changed { entry_id, account }) => ItemAnswer::Spent(ItemSpent { user_id, ok: true, entry_id, account }),
        Err(error) => ItemAnswer::Refused(ItemRefused { user_id, ok: false, error: error_object(&error) }),
    }
}
