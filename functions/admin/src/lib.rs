//! Admin routes (§2): entities, owners and API keys, behind the admin bearer.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use shared::auth::Admin;
use shared::domain::entity::{Entity, NewEntity, OwnersUpdate};
use shared::http::body::{JsonObject, Mutation};
use shared::http::{answer, finish, ok};
use shared::usecases::admin::{self, ADMIN_SCOPE, Created, Issued};
use shared::{AppState, Fallible};

pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/admin/entities", post(create_entity))
        .route("/admin/entities/{entity_id}", get(get_entity))
        .route("/admin/entities/{entity_id}/owners", put(set_owners))
        .route("/admin/entities/{entity_id}/api-keys", post(add_api_key))
        .route("/admin/entities/{entity_id}/api-keys/{apikey}", delete(revoke_api_key));
    finish(routes, state)
}

/// `{entityId, apikey, apisecret}`; `apisecret` is `null` in a replay.
fn issued(issued: Issued) -> Value {
    json!({"entityId": issued.entity_id, "apikey": issued.apikey, "apisecret": issued.apisecret})
}

/// The entity's fields plus its first key.
#[derive(Serialize)]
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
#[derive(Deserialize)]
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
    ok(StatusCode::OK, json!({"entityId": entity_id, "apikey": apikey, "revoked": true}))
}
