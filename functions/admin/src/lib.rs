//! Admin routes (§2): entities, owners and API keys, behind the admin bearer.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use shared::auth::Admin;
use shared::domain::entity::{Entity, NewEntity, OwnersUpdate};
use shared::http::answer;
use shared::http::api::{Access, Api, Route};
use shared::http::body::{JsonObject, Mutation};
use shared::http::ok;
use shared::usecases::admin::{self, ADMIN_SCOPE, Created, Issued};
use shared::{AppState, Fallible};

pub fn api() -> Api {
    let admin = |route: Route| route.access(Access::Admin);
    Api::new("admin")
        .route(
            admin(Route::post("/admin/entities", "createEntity", "Create an entity with its first API key"))
                .body::<NewEntity>()
                .ok::<EntityWithKey>(StatusCode::CREATED),
            create_entity,
        )
        .route(
            admin(Route::get("/admin/entities/{entityId}", "getEntity", "An entity, without secrets"))
                .ok::<Entity>(StatusCode::OK),
            get_entity,
        )
        .route(
            admin(Route::put("/admin/entities/{entityId}/owners", "setOwners", "Replace an entity's owners"))
                .body::<OwnersUpdate>()
                .ok::<Entity>(StatusCode::OK),
            set_owners,
        )
        .route(
            admin(Route::post("/admin/entities/{entityId}/api-keys", "addApiKey", "Issue another API key (rotation)"))
                .body::<NoFields>()
                .ok::<IssuedKey>(StatusCode::CREATED),
            add_api_key,
        )
        .route(
            admin(Route::delete("/admin/entities/{entityId}/api-keys/{apikey}", "revokeApiKey", "Revoke an API key"))
                .ok::<Revoked>(StatusCode::OK),
            revoke_api_key,
        )
}

pub fn router(state: AppState) -> Router {
    api().router(state)
}

/// `{entityId, apikey, apisecret}`; `apisecret` is `null` in a replay.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct IssuedKey {
    entity_id: String,
    apikey: String,
    apisecret: Option<String>,
}

fn issued(issued: Issued) -> IssuedKey {
    IssuedKey { entity_id: issued.entity_id, apikey: issued.apikey, apisecret: issued.apisecret }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Revoked {
    entity_id: String,
    apikey: String,
    revoked: bool,
}

/// The entity's fields plus its first key; `apisecret` is `null` in a replay.
#[derive(Serialize, ToSchema)]
struct EntityWithKey {
    #[serde(flatten)]
    entity: Entity,
    apikey: String,
    apisecret: Option<String>,
}

fn created(Created { entity, key }: Created) -> EntityWithKey {
    EntityWithKey { entity, apikey: key.apikey, apisecret: key.apisecret }
}

async fn create_entity(_: Admin, State(state): State<AppState>, request: Mutation) -> Fallible<Response> {
    let key = request.key(ADMIN_SCOPE)?;
    let new: NewEntity = request.parse()?;
    answer(StatusCode::CREATED, admin::create_entity(state.context(), new, &key).await?, created)
}

async fn get_entity(_: Admin, State(state): State<AppState>, Path(entity_id): Path<String>) -> Fallible<Response> {
    ok(StatusCode::OK, admin::get_entity(state.context(), &entity_id).await?)
}

async fn set_owners(
    _: Admin,
    State(state): State<AppState>,
    Path(entity_id): Path<String>,
    body: JsonObject,
) -> Fallible<Response> {
    shared::ids::validate_entity_id(&entity_id)?;
    let update: OwnersUpdate = body.parse()?;
    let entity = admin::set_owners(state.context(), &entity_id, &update.owner_user_ids).await?;
    state.auth.entities.forget(&entity_id);
    ok(StatusCode::OK, entity)
}

/// Key rotation takes no options.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NoFields {}

async fn add_api_key(
    _: Admin,
    State(state): State<AppState>,
    Path(entity_id): Path<String>,
    request: Mutation,
) -> Fallible<Response> {
    shared::ids::validate_entity_id(&entity_id)?;
    let key = request.key(&entity_id)?;
    let NoFields {} = request.parse()?;
    let issued_key = admin::add_api_key(state.context(), &entity_id, &key).await;
    state.auth.entities.forget(&entity_id);
    answer(StatusCode::CREATED, issued_key?, issued)
}

async fn revoke_api_key(
    _: Admin,
    State(state): State<AppState>,
    Path((entity_id, apikey)): Path<(String, String)>,
) -> Fallible<Response> {
    admin::revoke_api_key(state.context(), &entity_id, &apikey).await?;
    state.auth.api_keys.forget(&apikey);
    state.auth.entities.forget(&entity_id);
    ok(StatusCode::OK, Revoked { entity_id, apikey, revoked: true })
}
