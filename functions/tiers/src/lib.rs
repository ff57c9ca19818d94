//! Credit tier routes: Q1, Q2, Q4, Q8, Q9; and the entity's settings.

mod quest;

use std::convert::identity;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use shared::auth::Caller;
use shared::clock::rfc3339;
use shared::domain::account::TierPurchases;
use shared::domain::entity::SettingsChange;
use shared::domain::tier::{NewTier, TierPatch};
use shared::http::body::JsonObject;
use shared::http::body::Mutation;
use shared::http::query::Query;
use shared::http::{answer, finish, ok};
use shared::usecases::entities;
use shared::usecases::tiers::{self, Owner, TierForUser};
use shared::{AppState, Error, Fallible, ids};

pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/api/entities/{entity_id}/credit-tiers", get(list_tiers).post(create_tier))
        .route("/api/entities/{entity_id}/credit-tiers/{tier_id}", get(get_tier).patch(update_tier))
        .route("/api/entities/{entity_id}/users/{user_id}/credit-tiers", get(tiers_for_user))
        .route("/api/entities/{entity_id}/settings", get(get_settings).put(set_settings))
        .merge(quest::routes());
    finish(routes, state)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    include_archived: Option<String>,
}

/// Q1: active tiers by price then name; archived ones too for owners and the server on request.
async fn list_tiers(
    caller: Caller,
    State(state): State<AppState>,
    Path(entity_id): Path<String>,
    Query(query): Query<ListQuery>,
) -> Fallible<Response> {
    caller.check_entity(&entity_id)?;
    let include_archived = match query.include_archived.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(Error::validation("includeArchived must be true or false")),
    };
    if include_archived {
        caller.require_manager()?;
    }
    ok(StatusCode::OK, tiers::list(state.context(), &entity_id, include_archived).await?)
}

/// Q2.
async fn get_tier(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, tier_id)): Path<(String, String)>,
) -> Fallible<Response> {
    caller.check_entity(&entity_id)?;
    ok(StatusCode::OK, tiers::get(state.context(), &entity_id, &tier_id).await?)
}

/// Q8.
async fn create_tier(
    caller: Caller,
    State(state): State<AppState>,
    Path(entity_id): Path<String>,
    request: Mutation,
) -> Fallible<Response> {
    caller.check_entity(&entity_id)?;
    caller.require_manager()?;
    let key = request.key(&entity_id)?;
    let new: NewTier = request.parse()?;
    let owner = Owner { entity_id: &entity_id, currency: &caller.entity.currency };
    answer(StatusCode::CREATED, tiers::create(state.context(), owner, new, &key).await?, identity)
}

/// Q9: read, apply, write back only if nobody wrote in between.
async fn update_tier(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, tier_id)): Path<(String, String)>,
    request: Mutation,
) -> Fallible<Response> {
    caller.check_entity(&entity_id)?;
    caller.require_manager()?;
    ids::validate_tier_id("creditTierId", &tier_id)?;
    let key = request.key(&entity_id)?;
    let patch: TierPatch = request.parse()?;
    answer(StatusCode::OK, tiers::update(state.context(), &entity_id, &tier_id, patch, &key).await?, identity)
}

/// `{"subscriptionId", "status", "currentPeriodEnd"}` of a user's subscription to a tier.
fn subscription_view(purchases: &TierPurchases) -> Option<Value> {
    let id = purchases.subscription_id.as_ref()?;
    Some(json!({
        "subscriptionId": id,
        "status": purchases.subscription_status,
        "currentPeriodEnd": purchases.current_period_end.map(rfc3339),
    }))
}

/// A tier as one user sees it: the tier's fields, `purchaseCount`, `lastPurchasedAt`,
/// `subscription`.
fn tier_for_user(TierForUser { tier, purchases }: TierForUser) -> Fallible<Value> {
    let mut view = serde_json::to_value(tier).map_err(Error::internal)?;
    let bought = purchases.as_ref();
    view["purchaseCount"] = json!(bought.map_or(0, |p| p.purchase_count));
    view["lastPurchasedAt"] = json!(bought.and_then(|p| p.last_purchased_at).map(rfc3339));
    view["subscription"] = json!(bought.and_then(subscription_view));
    Ok(view)
}

/// Q4: the active tiers with this user's purchase counts and subscriptions.
async fn tiers_for_user(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, user_id)): Path<(String, String)>,
) -> Fallible<Response> {
    caller.check_entity(&entity_id)?;
    ids::validate_user_id("userId", &user_id)?;
    caller.require_reader_of(&user_id)?;
    let tiers = tiers::for_user(state.context(), &entity_id, &user_id).await?;
    ok(StatusCode::OK, tiers.into_iter().map(tier_for_user).collect::<Fallible<Vec<_>>>()?)
}

/// The entity's settings: the server's to read and change.
async fn get_settings(
    caller: Caller,
    State(state): State<AppState>,
    Path(entity_id): Path<String>,
) -> Fallible<Response> {
    caller.check_entity(&entity_id)?;
    caller.require_server()?;
    ok(StatusCode::OK, entities::get_settings(state.context(), &entity_id).await?)
}

/// `PUT {"poolOpenToUsers"?: bool, "lowBalanceThreshold"?: n}`: at least one setting; the
/// ones left out keep their value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SettingsBody {
    pool_open_to_users: Option<bool>,
    low_balance_threshold: Option<u64>,
}

/// Replaces the settings; other processes see them within `AUTH_CACHE_SECONDS`.
async fn set_settings(
    caller: Caller,
    State(state): State<AppState>,
    Path(entity_id): Path<String>,
    body: JsonObject,
) -> Fallible<Response> {
    caller.check_entity(&entity_id)?;
    caller.require_server()?;
    let SettingsBody { pool_open_to_users, low_balance_threshold } = body.parse()?;
    if pool_open_to_users.is_none() && low_balance_threshold.is_none() {
        return Err(Error::validation("name a setting: poolOpenToUsers or lowBalanceThreshold"));
    }
    let change = SettingsChange { pool_open_to_users, low_balance_threshold };
    let settings = entities::set_settings(state.context(), &entity_id, change).await?;
    // This process sees the change at once; others within their cache bound.
    state.auth.entities.forget(&entity_id);
    ok(StatusCode::OK, settings)
}
