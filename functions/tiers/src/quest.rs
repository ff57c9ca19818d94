//! The Quest face of the tier routes (§8): `GET|POST|PATCH /api/entities/{entityId}/credits-tiers`,
//! the tier named in the PATCH body. Quest's wire → the use case → Quest's wire.

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use shared::http::body::Mutation;
use shared::http::quest::error_envelope;
use shared::http::quest::route::QuestEntity;
use shared::http::quest::wire::{self, QuestNewTier, QuestTierPatch, TIER_FIELDS};
use shared::http::{answer, ok};
use shared::usecases::tiers::{self, Owner};
use shared::{AppState, Fallible};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/entities/{entity_id}/credits-tiers", get(list).post(create).patch(update))
        .route_layer(axum::middleware::from_fn(error_envelope))
}

/// `getCreditTiersForEntity`: the active tiers.
async fn list(entity: QuestEntity) -> Fallible<Response> {
    let tiers = tiers::list(entity.state.context(), &entity.entity_id, false).await?;
    ok(StatusCode::OK, tiers.iter().map(wire::tier).collect::<Vec<_>>())
}

/// `addCreditTierForEntity`.
async fn create(
    QuestEntity { caller, state, entity_id, body: request, .. }: QuestEntity<Mutation>,
) -> Fallible<Response> {
    caller.require_manager()?;
    let key = request.key(&entity_id)?;
    let new: QuestNewTier = request.parse()?;
    let owner = Owner { entity_id: &entity_id, currency: &caller.entity.currency };
    let created = tiers::create(state.context(), owner, new.into(), &key).await;
    answer(StatusCode::CREATED, created.map_err(|e| wire::renamed(e, TIER_FIELDS))?, |t| wire::tier(&t))
}

/// `updateCreditTierForEntity`: the tier named by `creditsTierId` in the body.
async fn update(
    QuestEntity { caller, state, entity_id, body: request, .. }: QuestEntity<Mutation>,
) -> Fallible<Response> {
    caller.require_manager()?;
    let key = request.key(&entity_id)?;
    let patch: QuestTierPatch = request.parse()?;
    let tier_id = patch.credits_tier_id.clone();
    let updated = tiers::update(state.context(), &entity_id, &tier_id, patch.into(), &key).await;
    answer(StatusCode::OK, updated.map_err(|e| wire::renamed(e, TIER_FIELDS))?, |t| wire::tier(&t))
}
