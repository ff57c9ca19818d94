//! The Quest face of the tier routes (§8): `GET|POST|PATCH /api/entities/{entityId}/credits-tiers`,
//! the tier named in the PATCH body. Quest's wire → the use case → Quest's wire.

use axum::http::StatusCode;
use axum::response::Response;

use shared::Fallible;
use shared::http::api::{Api, Route};
use shared::http::body::Mutation;
use shared::http::quest::route::QuestEntity;
use shared::http::quest::wire::{self, EntityRouteQuery, QuestNewTier, QuestTier, QuestTierPatch, TIER_FIELDS};
use shared::http::{answer, ok};
use shared::usecases::tiers::{self, Owner};

const TIERS: &str = "/api/entities/{entityId}/credits-tiers";

pub fn api() -> Api {
    Api::new("tiers")
        .route(
            Route::get(TIERS, "questListCreditTiers", "Quest getCreditTiersForEntity: the active tiers")
                .quest()
                .query::<EntityRouteQuery>()
                .ok_list::<QuestTier>(StatusCode::OK),
            list,
        )
        .route(
            Route::post(TIERS, "questAddCreditTier", "Quest addCreditTierForEntity (owner, server)")
                .quest()
                .query::<EntityRouteQuery>()
                .body::<QuestNewTier>()
                .ok::<QuestTier>(StatusCode::CREATED),
            create,
        )
        .route(
            Route::patch(TIERS, "questUpdateCreditTier", "Quest updateCreditTierForEntity: the tier named in the body")
                .quest()
                .query::<EntityRouteQuery>()
                .body::<QuestTierPatch>()
                .ok::<QuestTier>(StatusCode::OK),
            update,
        )
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
