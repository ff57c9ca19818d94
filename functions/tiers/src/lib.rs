//! Credit tier routes: Q1, Q2, Q4, Q8, Q9; and the entity's settings.

mod quest;

use std::convert::identity;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use shared::auth::Caller;
use shared::clock::rfc3339;
use shared::domain::account::TierPurchases;
use shared::domain::entity::{EntitySettings, SettingsChange};
use shared::domain::tier::{NewTier, Tier, TierPatch};
use shared::http::api::{Access, Api, Route};
use shared::http::body::JsonObject;
use shared::http::body::Mutation;
use shared::http::query::Query;
use shared::http::{answer, ok};
use shared::usecases::entities;
use shared::usecases::tiers::{self, Owner, TierForUser};
use shared::{AppState, Error, Fallible, ids};

const TIERS: &str = "/api/entities/{entityId}/credit-tiers";
const TIER: &str = "/api/entities/{entityId}/credit-tiers/{creditTierId}";
const SETTINGS: &str = "/api/entities/{entityId}/settings";

pub fn api() -> Api {
    Api::new("tiers")
        .route(
            Route::get(TIERS, "listCreditTiers", "Q1: the entity's tiers, by price then name")
                .query::<ListQuery>()
                .ok_list::<Tier>(StatusCode::OK),
            list_tiers,
        )
        .route(
            Route::post(TIERS, "createCreditTier", "Q8: add a credit tier (owner, server)")
                .body::<NewTier>()
                .ok::<Tier>(StatusCode::CREATED),
            create_tier,
        )
        .route(Route::get(TIER, "getCreditTier", "Q2: one credit tier").ok::<Tier>(StatusCode::OK), get_tier)
        .route(
            Route::patch(TIER, "updateCreditTier", "Q9: update a credit tier (owner, server)")
                .body::<TierPatch>()
                .ok::<Tier>(StatusCode::OK),
            update_tier,
        )
        .route(
            Route::get(
                "/api/entities/{entityId}/users/{userId}/credit-tiers",
                "listCreditTiersForUser",
                "Q4: the active tiers with this user's purchases and subscriptions",
            )
            .ok_list::<TierView>(StatusCode::OK),
            tiers_for_user,
        )
        .route(
            Route::get(SETTINGS, "getEntitySettings", "The entity's settings (server)")
                .access(Access::Server)
                .ok::<EntitySettings>(StatusCode::OK),
            get_settings,
        )
        .route(
            Route::put(SETTINGS, "setEntitySettings", "Replace the entity's settings (server)")
                .access(Access::Server)
                .body::<SettingsBody>()
                .ok::<EntitySettings>(StatusCode::OK),
            set_settings,
        )
        .merge(quest::api())
}

pub fn router(state: AppState) -> Router {
    api().router(state)
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    /// `true` (owner, server) lists archived tiers too.
    #[schema(value_type = Option<bool>)]
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

/// A user's subscription to a tier.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SubscriptionView {
    subscription_id: String,
    status: Option<String>,
    #[schema(format = DateTime)]
    current_period_end: Option<String>,
}

fn subscription_view(purchases: &TierPurchases) -> Option<SubscriptionView> {
    let id = purchases.subscription_id.as_ref()?;
    Some(SubscriptionView {
        subscription_id: id.clone(),
        status: purchases.subscription_status.clone(),
        current_period_end: purchases.current_period_end.map(rfc3339),
    })
}

/// A tier as one user sees it: the tier's fields, `purchaseCount`, `lastPurchasedAt`,
/// `subscription`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TierView {
    #[serde(flatten)]
    tier: Tier,
    purchase_count: u64,
    #[schema(format = DateTime)]
    last_purchased_at: Option<String>,
    subscription: Option<SubscriptionView>,
}

fn tier_for_user(TierForUser { tier, purchases }: TierForUser) -> TierView {
    let bought = purchases.as_ref();
    TierView {
        purchase_count: bought.map_or(0, |p| p.purchase_count),
        last_purchased_at: bought.and_then(|p| p.last_purchased_at).map(rfc3339),
        subscription: bought.and_then(subscription_view),
        tier,
    }
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
    ok(StatusCode::OK, tiers.into_iter().map(tier_for_user).collect::<Vec<_>>())
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
#[derive(Deserialize, ToSchema)]
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
