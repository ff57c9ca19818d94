//! Outbound webhooks (§9): endpoints, their secrets and delivery logs, redelivery, and each
//! user's low-balance threshold. Every route needs the server role.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use shared::auth::Caller;
use shared::domain::webhook::{Attempt, EndpointView, NewEndpoint, UserSettings};
use shared::http::api::{Access, Api, Route};
use shared::http::body::{JsonObject, Mutation};
use shared::http::query::Query;
use shared::http::{answer, ok};
use shared::usecases::webhooks::{self, Redelivery, WithSecret};
use shared::{AppState, Error, Fallible};

const ENDPOINTS: &str = "/api/entities/{entityId}/webhook-endpoints";
const ENDPOINT: &str = "/api/entities/{entityId}/webhook-endpoints/{endpointId}";
const USER_SETTINGS: &str = "/api/entities/{entityId}/users/{userId}/settings";

pub fn api() -> Api {
    Api::new("webhooks")
        .route(
            Route::post(ENDPOINTS, "createWebhookEndpoint", "Register an endpoint for signed events (server)")
                .access(Access::Server)
                .body::<NewEndpoint>()
                .ok::<EndpointWithSecret>(StatusCode::CREATED),
            create_endpoint,
        )
        .route(
            Route::get(ENDPOINTS, "listWebhookEndpoints", "The entity's webhook endpoints (server)")
                .access(Access::Server)
                .ok_list::<EndpointView>(StatusCode::OK),
            list_endpoints,
        )
        .route(
            Route::get(ENDPOINT, "getWebhookEndpoint", "One webhook endpoint (server)")
                .access(Access::Server)
                .ok::<EndpointView>(StatusCode::OK),
            get_endpoint,
        )
        .route(
            Route::delete(
                ENDPOINT,
                "deleteWebhookEndpoint",
                "Delete an endpoint; its pending deliveries stop (server)",
            )
            .access(Access::Server)
            .ok::<Deleted>(StatusCode::OK),
            delete_endpoint,
        )
        .route(
            Route::post(
                "/api/entities/{entityId}/webhook-endpoints/{endpointId}/rotate-secret",
                "rotateWebhookSecret",
                "A new signing secret; the old one also signs for 24 h (server)",
            )
            .access(Access::Server)
            .body::<NoFields>()
            .ok::<EndpointWithSecret>(StatusCode::OK),
            rotate_secret,
        )
        .route(
            Route::get(
                "/api/entities/{entityId}/webhook-endpoints/{endpointId}/deliveries",
                "listWebhookDeliveries",
                "The endpoint's delivery attempts, newest first (server)",
            )
            .access(Access::Server)
            .query::<DeliveriesQuery>()
            .ok::<Deliveries>(StatusCode::OK),
            deliveries,
        )
        .route(
            Route::post(
                "/api/entities/{entityId}/events/{eventId}/redeliver",
                "redeliverEvent",
                "Send an event again to every endpoint that wants it (server)",
            )
            .access(Access::Server)
            .body::<NoFields>()
            .ok::<Redelivery>(StatusCode::ACCEPTED),
            redeliver,
        )
        .route(
            Route::get(USER_SETTINGS, "getUserSettings", "A user's low-balance threshold (server)")
                .access(Access::Server)
                .ok::<UserSettings>(StatusCode::OK),
            user_settings,
        )
        .route(
            Route::put(USER_SETTINGS, "setUserSettings", "Set a user's own low-balance threshold (server)")
                .access(Access::Server)
                .body::<UserSettingsBody>()
                .ok::<UserSettings>(StatusCode::OK),
            set_user_settings,
        )
}

pub fn router(state: AppState) -> Router {
    api().router(state)
}

/// An endpoint as created or rotated: the only answers that show its secret (`null` in a
/// replay: secrets are not kept with outcomes).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct EndpointWithSecret {
    #[serde(flatten)]
    endpoint: EndpointView,
    secret: Option<String>,
    /// When the previous secret stops signing (rotation only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    previous_secret_retires_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Deleted {
    endpoint_id: String,
    deleted: bool,
}

#[derive(Serialize, ToSchema)]
struct Deliveries {
    deliveries: Vec<Attempt>,
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

fn with_secret(answer: WithSecret) -> EndpointWithSecret {
    EndpointWithSecret {
        endpoint: answer.endpoint,
        secret: answer.secret,
        previous_secret_retires_at: answer.previous_secret_retires_at.map(shared::clock::rfc3339),
    }
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
    ok(StatusCode::OK, Deleted { endpoint_id, deleted: true })
}

/// Bodies of the routes that take none: `{}` or nothing.
#[derive(Deserialize, ToSchema)]
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    /// 1–200, default 50.
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 200)]
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
    ok(StatusCode::OK, Deliveries { deliveries: attempts })
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
#[derive(Deserialize, ToSchema)]
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
