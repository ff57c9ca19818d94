//! Token minting (§2): the entity's backend mints a session token for one of its users, or
//! an entity authentication token for itself (Quest's `entity-authentication-token`). And the
//! API's own description (§10), the smallest function serving it.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use shared::auth::{Caller, token};
use shared::clock::rfc3339;
use shared::http::api::{Access, Api, Route};
use shared::http::body::Mutation;
use shared::http::ok;
use shared::{AppState, Error, Fallible, ids};

/// The OpenAPI document, generated from every function's declarations (`make openapi`;
/// `make test` fails when it is not what the declarations give).
pub const OPENAPI_JSON: &str = include_str!("../../../docs/openapi.json");

pub fn api() -> Api {
    Api::new("auth")
        .route(
            Route::post("/api/entities/{entityId}/users/{userId}/token", "mintUserToken", "Mint a user session token")
                .access(Access::Server)
                .body::<MintRequest>()
                .ok::<UserToken>(StatusCode::CREATED),
            mint_token,
        )
        .route(
            Route::post(
                "/api/entities/{entityId}/entity-tokens",
                "mintEntityToken",
                "Mint an entity authentication token (Quest's entity-authentication-token)",
            )
            .access(Access::Server)
            .body::<EntityMintRequest>()
            .ok::<EntityToken>(StatusCode::CREATED),
            mint_entity_token,
        )
        .route(
            Route::get("/api/openapi.json", "getOpenApi", "This document (OpenAPI 3.1)").access(Access::Public).bare(),
            openapi,
        )
}

pub fn router(state: AppState) -> Router {
    api().router(state)
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

/// A user session's lifetime: 60-86400 s, default 3600.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MintRequest {
    #[schema(minimum = 60, maximum = 86_400)]
    ttl_seconds: Option<u64>,
}

/// An entity token's lifetime: 60 s to 30 days, default 1 day.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EntityMintRequest {
    #[schema(minimum = 60, maximum = 2_592_000)]
    ttl_seconds: Option<u64>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct UserToken {
    token: String,
    #[schema(format = DateTime)]
    expires_at: String,
    entity_id: String,
    user_id: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct EntityToken {
    token: String,
    #[schema(format = DateTime)]
    expires_at: String,
    entity_id: String,
    apikey: String,
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
    let data = UserToken { token: minted.token, expires_at: rfc3339(minted.expires_at_millis), entity_id, user_id };
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
    let request: EntityMintRequest = request.parse()?;
    let ttl = ttl_seconds(request.ttl_seconds, token::ENTITY_DEFAULT_TTL_SECONDS, token::ENTITY_MAX_TTL_SECONDS)?;
    let now = state.clock.now_millis();
    let minted = token::mint_entity(&state.config.token_signing_key, &entity_id, &caller.apikey, ttl, now)?;
    let data = EntityToken {
        token: minted.token,
        expires_at: rfc3339(minted.expires_at_millis),
        entity_id,
        apikey: caller.apikey,
    };
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
