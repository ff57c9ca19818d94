//! Credit tier routes: Q1, Q2, Q4, Q8, Q9.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::http::query::Query;

use shared::auth::Caller;
use shared::clock::rfc3339;
use shared::domain::account::TierPurchases;
use shared::domain::tier::{NewTier, Tier, TierPatch, TierStatus, sort_for_listing};
use shared::http::body::Mutation;
use shared::http::{envelope, finish, idempotent, respond};
use shared::{ApiError, ApiResult, AppState, ErrorCode, ids};

pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/api/entities/{entity_id}/credit-tiers", get(list_tiers).post(create_tier))
        .route("/api/entities/{entity_id}/credit-tiers/{tier_id}", get(get_tier).patch(update_tier))
        .route("/api/entities/{entity_id}/users/{user_id}/credit-tiers", get(tiers_for_user));
    finish(routes, state)
}

fn tier_not_found() -> ApiError {
    ApiError::not_found("credit tier not found")
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
) -> ApiResult<Response> {
    caller.check_entity(&entity_id)?;
    let include_archived = match query.include_archived.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::validation("includeArchived must be true or false")),
    };
    if include_archived {
        caller.require_manager()?;
    }
    let tiers = visible_tiers(&state, &entity_id, include_archived).await?;
    Ok(respond(StatusCode::OK, envelope(tiers)?))
}

async fn visible_tiers(state: &AppState, entity_id: &str, include_archived: bool) -> ApiResult<Vec<Tier>> {
    let mut tiers = state.store.list_tiers(entity_id).await?;
    tiers.retain(|t| include_archived || t.status == TierStatus::Active);
    sort_for_listing(&mut tiers);
    Ok(tiers)
}

/// Q2.
async fn get_tier(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, tier_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    caller.check_entity(&entity_id)?;
    ids::validate_tier_id("creditTierId", &tier_id)?;
    let tier = state.store.get_tier(&entity_id, &tier_id).await?.ok_or_else(tier_not_found)?;
    Ok(respond(StatusCode::OK, envelope(tier)?))
}

/// Q8.
async fn create_tier(
    caller: Caller,
    State(state): State<AppState>,
    Path(entity_id): Path<String>,
    request: Mutation,
) -> ApiResult<Response> {
    caller.check_entity(&entity_id)?;
    caller.require_manager()?;
    let key = request.key(&entity_id)?;
    if let Some(replay) = idempotent::prior(&state, &key).await? {
        return Ok(replay);
    }
    let now = state.clock.now_millis();
    let new: NewTier = request.parse()?;
    let tier = new.into_tier(&entity_id, &caller.entity.currency, ids::new_tier_id(), now)?;
    let body = envelope(&tier)?;
    let record = key.record(StatusCode::CREATED, &body, now);
    let written = state.store.create_tier(&tier, &record).await;
    idempotent::settle(&key, written, (StatusCode::CREATED, body), || {
        ApiError::new(ErrorCode::AlreadyExists, format!("creditTierId {} already exists", tier.credit_tier_id))
    })
}

/// Q9: read, apply, write back only if nobody wrote in between.
async fn update_tier(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, tier_id)): Path<(String, String)>,
    request: Mutation,
) -> ApiResult<Response> {
    caller.check_entity(&entity_id)?;
    caller.require_manager()?;
    ids::validate_tier_id("creditTierId", &tier_id)?;
    let key = request.key(&entity_id)?;
    if let Some(replay) = idempotent::prior(&state, &key).await? {
        return Ok(replay);
    }
    let patch: TierPatch = request.parse()?;
    patch.validate_shape(&tier_id)?;
    let current = state.store.get_tier(&entity_id, &tier_id).await?.ok_or_else(tier_not_found)?;
    let now = state.clock.now_millis();
    let next = patch.apply(&current, now)?;
    let body = envelope(&next)?;
    let record = key.record(StatusCode::OK, &body, now);
    let written = state.store.update_tier(&next, current.version, &record).await;
    idempotent::settle(&key, written, (StatusCode::OK, body), || {
        ApiError::new(ErrorCode::VersionConflict, "the tier changed concurrently; read it and retry")
    })
}

/// `{"subscriptionId", "status", "currentPeriodEnd"}` of a user's subscription to a tier.
fn subscription_view(purchases: &TierPurchases) -> Option<Value> {
    let id = purchases.subscription_id.as_ref()?;
    Some(serde_json::json!({
        "subscriptionId": id,
        "status": purchases.subscription_status,
        "currentPeriodEnd": purchases.current_period_end.map(rfc3339),
    }))
}

/// A tier as one user sees it (Q4).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TierForUser {
    #[serde(flatten)]
    tier: Tier,
    purchase_count: u64,
    last_purchased_at: Option<String>,
    subscription: Option<Value>,
}

/// Q4: the active tiers with this user's purchase counts and subscriptions.
async fn tiers_for_user(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, user_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    caller.check_entity(&entity_id)?;
    ids::validate_user_id("userId", &user_id)?;
    caller.require_reader_of(&user_id)?;
    let tiers = visible_tiers(&state, &entity_id, false).await?;
    let purchases = state.store.tier_purchases(&entity_id, &user_id).await?;
    let views: Vec<TierForUser> = tiers
        .into_iter()
        .map(|tier| {
            let bought = purchases.iter().find(|p| p.credit_tier_id == tier.credit_tier_id);
            TierForUser {
                purchase_count: bought.map_or(0, |p| p.purchase_count),
                last_purchased_at: bought.and_then(|p| p.last_purchased_at).map(rfc3339),
                subscription: bought.and_then(subscription_view),
                tier,
            }
        })
        .collect();
    Ok(respond(StatusCode::OK, envelope(views)?))
}
