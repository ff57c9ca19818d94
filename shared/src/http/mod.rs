//! HTTP plumbing shared by every function: body parsing, envelopes, request ids, the
//! common layers and fallbacks.

pub mod body;
pub mod idempotent;
pub mod query;
pub mod quest;
pub mod request_id;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::error::{ApiError, ErrorCode};

/// `{"success": true, "data": …}`.
pub fn envelope(data: impl Serialize) -> Result<Value, ApiError> {
    let data = serde_json::to_value(data).map_err(ApiError::internal)?;
    Ok(json!({"success": true, "data": data}))
}

pub fn respond(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Finishes a function's router: 404/405 in the error envelope, request ids, state.
pub fn finish(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(ErrorCode::MethodNotAllowed, "method not allowed on this path")
        })
        .layer(axum::middleware::from_fn(request_id::request_id))
        .with_state(state)
}
