//! Outbound webhooks (§9): endpoints, their secrets and delivery logs, redelivery, and each
//! user's low-balance threshold. Every route needs the server role.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use shared::auth::Caller;
use shared::domain::webhook::{NewEndpoint, UserSettings};
use shared::http::body::{JsonObject, Mutation};
use shared::http::query::Query;
use shared::http::{answer, finish, ok};
use shared::usecases::webhooks::{self, WithSecret};
use shared::{AppState, Error, Fallible};

pub fn router(state: AppState) -> Router {
    let endpoints = "/api/entities/{entity_id}/webhook-endpoints";
    let routes = Router::new()
        .route(endpoints, get(list_endpoints).post(create_endpoint))
        .route(&format!("{endpoints}/{{endpoint_id}}"), get(get_endpoint).delete(delete_endpoint))
        .route(&format!("{endpoints}/{{endpoint_id}}/rotate-secret"), post(rotate_secret))
        .route(&format!("{endpoints}/{{endpoint_id}}/deliveries"), get(deliveries))
        .route("/api/entities/{entity_id}/events/{event_id}/redeliver", post(redeliver))
        .route("/api/entities/{entity_id}/users/{user_id}/settings", get(user_settings).put(set_user_settings));
    finish(routes, state)
}

/// The path's entity must be the caller's, and the caller its server.
fn server_of(caller: &Caller, entity_id: &str) -> Fallible<()> {
    caller.check_entity(entity_id)?;
    caller.require_server()
}

async fn create_endpoint(
    caller: Caller,
    State(state): State<AppState>,
    Path(entity_id): Path<String>,
    request: Mutation,
) -> Fallible<Response> {
    server_of(&caller, &entity_id)?;
    let key = request.key(&entity_id)?;
    let new: NewEndpoint = request.parse()?;
    let allow_local = state.config.webhooks.allow_local;
    let created = webhooks::create_endpoint(state.context(), &entity_id, new, allow_local, &key).await?;
    answer(StatusCode::CREATED, created, with_secret)
}

/// The endpoint with its secret (`null` in a replay: secrets are not kept with outcomes).
fn with_secret(answer: WithSecret) -> Value {
    let mut view = serde_json::to_value(&answer).unwrap_or_default();
    view["secret"] = json!(answer.secret);
    view
}

async fn list_endpoints(
    caller: Caller,
    State(state): State<AppState>,
    Path(entity_id): Path<String>,
) -> Fallible<Response> {
    server_of(&caller, &entity_id)?;
    ok(StatusCode::OK, webhooks::list_endpoints(state.context(), &entity_id).await?)
}

async fn get_endpoint(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, endpoint_id)): Path<(String, String)>,
) -> Fallible<Response> {
    server_of(&caller, &entity_id)?;
    ok(StatusCode::OK, webhooks::get_endpoint(state.context(), &entity_id, &endpoint_id).await?)
}

async fn delete_endpoint(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, endpoint_id)): Path<(String, String)>,
) -> Fallible<Response> {
    server_of(&caller, &entity_id)?;
    webhooks::delete_endpoint(state.context(), &entity_id, &endpoint_id).await?;
    ok(StatusCode::OK, json!({"endpointId": endpoint_id, "deleted": true}))
}

/// Bodies of the routes that take none: `{}` or nothing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoFields {}

async fn rotate_secret(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, endpoint_id)): Path<(String, String)>,
    request: Mutation,
) -> Fallible<Response> {
    server_of(&caller, &entity_id)?;
    let key = request.key(&entity_id)?;
    let NoFields {} = request.parse()?;
    answer(StatusCode::OK, webhooks::rotate_secret(state.context(), &entity_id, &endpoint_id, &key).await?, with_secret)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    limit: Option<String>,
}

async fn deliveries(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, endpoint_id)): Path<(String, String)>,
    Query(query): Query<DeliveriesQuery>,
) -> Fallible<Response> {
    server_of(&caller, &entity_id)?;
    let limit = match query.limit.as_deref() {
        None => 50,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=200).contains(n))
            .ok_or_else(|| Error::validation("limit must be an integer from 1 to 200"))?,
    };
    let attempts = webhooks::deliveries(state.context(), &entity_id, &endpoint_id, limit).await?;
    ok(StatusCode::OK, json!({"deliveries": attempts}))
}

async fn redeliver(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, event_id)): Path<(String, String)>,
    body: JsonObject,
) -> Fallible<Response> {
    server_of(&caller, &entity_id)?;
    let NoFields {} = body.parse()?;
    ok(StatusCode::ACCEPTED, webhooks::redeliver(state.context(), &entity_id, &event_id).await?)
}

async fn user_settings(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, user_id)): Path<(String, String)>,
) -> Fallible<Response> {
    server_of(&caller, &entity_id)?;
    ok(StatusCode::OK, webhooks::user_settings(state.context(), &entity_id, &user_id).await?)
}

/// `PUT {"lowBalanceThreshold": n}`: the user's own threshold (0: no alerts for them).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UserSettingsBody {
    low_balance_threshold: u64,
}

async fn set_user_settings(
    caller: Caller,
    State(state): State<AppState>,
    Path((entity_id, user_id)): Path<(String, String)>,
    body: JsonObject,
) -> Fallible<Response> {
    server_of(&caller, &entity_id)?;
    let UserSettingsBody { low_balance_threshold } = body.parse()?;
    let settings = UserSettings { low_balance_threshold };
    ok(StatusCode::OK, webhooks::set_user_settings(state.context(), &entity_id, &user_id, settings).await?)
}
