//! Session token minting (§2): the entity's backend mints a token for one of its users.

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
    let routes = Router::new().route("/api/entities/{entity_id}/users/{user_id}/token", post(mint_token));
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
    let ttl = request.ttl_seconds.unwrap_or(token::DEFAULT_TTL_SECONDS);
    if !(token::MIN_TTL_SECONDS..=token::MAX_TTL_SECONDS).contains(&ttl) {
        return Err(Error::validation(format!(
            "ttlSeconds must be from {} to {}",
            token::MIN_TTL_SECONDS,
            token::MAX_TTL_SECONDS
        )));
    }
    let minted = token::mint(&state.config.token_signing_key, &entity_id, &user_id, ttl, state.clock.now_millis())?;
    let data = json!({
        "token": minted.token,
        "expiresAt": rfc3339(minted.expires_at_millis),
        "entityId": entity_id,
        "userId": user_id,
    });
    ok(StatusCode::CREATED, data)
}
