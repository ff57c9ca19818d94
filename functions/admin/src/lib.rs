//! Admin routes (§2): entities, owners and API keys, behind the admin bearer.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use serde::Deserialize;
use serde_json::json;

use shared::auth::{Admin, secrets};
use shared::domain::entity::{ApiKey, Entity, NewEntity, OwnersUpdate, validate_owners};
use shared::http::body::{JsonObject, Mutation};
use shared::http::{envelope, finish, idempotent, respond};
use shared::{ApiError, ApiResult, AppState, ids};

/// Idempotency keys of entity creation are scoped to the admin, as no entity exists yet.
const ADMIN_SCOPE: &str = "admin";

pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/admin/entities", post(create_entity))
        .route("/admin/entities/{entity_id}", get(get_entity))
        .route("/admin/entities/{entity_id}/owners", put(set_owners))
        .route("/admin/entities/{entity_id}/api-keys", post(add_api_key))
        .route("/admin/entities/{entity_id}/api-keys/{apikey}", delete(revoke_api_key));
    finish(routes, state)
}

fn entity_not_found() -> ApiError {
    ApiError::not_found("entity not found")
}

fn new_key(entity_id: &str) -> ApiResult<(ApiKey, String)> {
    let secret = secrets::new_secret()?;
    let key =
        ApiKey { apikey: ids::new_api_key(), entity_id: entity_id.to_owned(), secret_hash: secrets::hash(&secret) };
    Ok((key, secret))
}

async fn create_entity(_: Admin, State(state): State<AppState>, request: Mutation) -> ApiResult<Response> {
    let key = request.key(ADMIN_SCOPE)?;
    if let Some(replay) = idempotent::prior(&state, &key).await? {
        return Ok(replay);
    }
    let new: NewEntity = request.parse()?;
    new.validate()?;
    let now = state.clock.now_millis();
    let entity_id = ids::new_entity_id();
    let (api_key, secret) = new_key(&entity_id)?;
    let entity = Entity {
        entity_id,
        name: new.name,
        owner_user_ids: new.owner_user_ids,
        currency: new.currency,
        api_keys: vec![api_key.apikey.clone()],
        created_at: now,
        updated_at: now,
    };
    let mut data = serde_json::to_value(&entity).map_err(ApiError::internal)?;
    data["apikey"] = json!(api_key.apikey);
    data["apisecret"] = json!(secret);
    let body = envelope(data)?;
    let record = key.record(StatusCode::CREATED, &body, now);
    let written = state.store.create_entity(&entity, &api_key, &record).await;
    idempotent::settle(&key, written, (StatusCode::CREATED, body), || ApiError::internal("generated id collided"))
}

async fn get_entity(_: Admin, State(state): State<AppState>, Path(entity_id): Path<String>) -> ApiResult<Response> {
    ids::validate_entity_id(&entity_id)?;
    let entity = state.store.get_entity(&entity_id).await?.ok_or_else(entity_not_found)?;
    Ok(respond(StatusCode::OK, envelope(entity)?))
}

async fn set_owners(
    _: Admin,
    State(state): State<AppState>,
    Path(entity_id): Path<String>,
    body: JsonObject,
) -> ApiResult<Response> {
    ids::validate_entity_id(&entity_id)?;
    let update: OwnersUpdate = body.parse()?;
    validate_owners(&update.owner_user_ids)?;
    let now = state.clock.now_millis();
    let entity = state.store.set_owners(&entity_id, &update.owner_user_ids, now).await?.ok_or_else(entity_not_found)?;
    state.auth.entities.forget(&entity_id);
    Ok(respond(StatusCode::OK, envelope(entity)?))
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
) -> ApiResult<Response> {
    ids::validate_entity_id(&entity_id)?;
    let key = request.key(&entity_id)?;
    if let Some(replay) = idempotent::prior(&state, &key).await? {
        return Ok(replay);
    }
    let NoFields {} = request.parse()?;
    let now = state.clock.now_millis();
    let (api_key, secret) = new_key(&entity_id)?;
    let body = envelope(json!({"entityId": entity_id, "apikey": api_key.apikey, "apisecret": secret}))?;
    let record = key.record(StatusCode::CREATED, &body, now);
    let written = state.store.add_api_key(&api_key, now, &record).await;
    state.auth.entities.forget(&entity_id);
    idempotent::settle(&key, written, (StatusCode::CREATED, body), entity_not_found)
}

async fn revoke_api_key(
    _: Admin,
    State(state): State<AppState>,
    Path((entity_id, apikey)): Path<(String, String)>,
) -> ApiResult<Response> {
    ids::validate_entity_id(&entity_id)?;
    let now = state.clock.now_millis();
    match state.store.revoke_api_key(&entity_id, &apikey, now).await {
        Ok(()) => {
            state.auth.api_keys.forget(&apikey);
            state.auth.entities.forget(&entity_id);
            Ok(respond(StatusCode::OK, envelope(json!({"entityId": entity_id, "apikey": apikey, "revoked": true}))?))
        }
        Err(shared::store::StoreError::ConditionFailed) => Err(ApiError::not_found("no such API key for this entity")),
        Err(err) => Err(err.into()),
    }
}
