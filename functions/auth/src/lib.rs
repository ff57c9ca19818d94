//! Token minting (§2): the entity's backend mints a session token for one of its users, or
//! an entity authentication token for itself (Quest's `entity-authentication-token`).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;

use shared::auth::{Caller, token};
use shared::clock::rfc3339;
use shared::http::body::Mutation;
use shared::http::{finish, ok};
use shared::{AppState, Error, Fallible, ids};

pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/api/entities/{entity_id}/users/{user_id}/token", post(mint_token))
        .route("/api/entities/{entity_id}/entity-tokens", post(mint_entity_token));
    finish(routes, state)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MintRequest {
    ttl_seconds: Option<u64>,
}

/// Minting changes nothing stored, so a retry simply mints a fresh token; an
/// `Idempotency-Key` is checked like everywhere else but guards nothing.
async fn mint_token(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, user_id)): Path<(String, String)>,
    request: Mutation,
) -> Fallible<Response> {
    caller.check_entity(&entity_id)?;
    caller.require_server()?;
    ids::validate_user_id("userId", &user_id)?;
    request.key(&entity_id)?;
    let request: MintRequest = request.parse()?;
    let ttl = ttl_seconds(request.ttl_seconds, token::DEFAULT_TTL_SECONDS, token::MAX_TTL_SECONDS)?;
    let minted = token::mint(&state.config.token_signing_key, &entity_id, &user_id, ttl, state.clock.now_millis())?;
    let data = json!({
        "token": minted.token,
        "expiresAt": rfc3339(minted.expires_at_millis),
        "entityId": entity_id,
        "userId": user_id,
    });
    ok(StatusCode::CREATED, data)
}

/// An entity authentication token, bound to the entity and the API key of the request: it
/// grants the server role beside that key until it expires or the key is revoked.
async fn mint_entity_token(
    caller: Caller,
    State(state): State<AppState>,
    Path(entity_id): Path<String>,
    request: Mutation,
) -> Fallible<Response> {
    caller.check_entity(&entity_id)?;
    caller.require_server()?;
    request.key(&entity_id)?;
    let request: MintRequest = request.parse()?;
    let ttl = ttl_seconds(request.ttl_seconds, token::ENTITY_DEFAULT_TTL_SECONDS, token::ENTITY_MAX_TTL_SECONDS)?;
    let now = state.clock.now_millis();
    let minted = token::mint_entity(&state.config.token_signing_key, &entity_id, &caller.apikey, ttl, now)?;
    let data = json!({
        "token": minted.token,
        "expiresAt": rfc3339(minted.expires_at_millis),
        "entityId": entity_id,
        "apikey": caller.apikey,
    });
    ok(StatusCode::CREATED, data)
}

fn ttl_seconds(requested: Option<u64>, default: u64, max: u64) -> Result<u64, Error> {
    let ttl = requested.unwrap_or(default);
    if (token::MIN_TTL_SECONDS..=max).contains(&ttl) {
        Ok(ttl)
    } else {
        Err(Error::validation(format!("ttlSeconds must be from {} to {max}", token::MIN_TTL_SECONDS)))
    }
}
