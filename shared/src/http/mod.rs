//! The native face's HTTP plumbing shared by every function: body parsing, envelopes,
//! the error mapping, request ids, the common layers and fallbacks.

pub mod api;
pub mod body;
pub mod error;
pub mod openapi;
pub mod query;
pub mod quest;
pub mod request_id;

use axum::Router;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::error::Error;
use crate::idempotency::Answer;

pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Set on an answer replayed from an idempotency record.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// `{"success": true, "data": …}`.
pub fn envelope(data: impl Serialize) -> Result<Value, Error> {
    let data = serde_json::to_value(data).map_err(Error::internal)?;
    Ok(json!({"success": true, "data": data}))
}

/// `status` with `data` in the success envelope.
pub fn ok(status: StatusCode, data: impl Serialize) -> Result<Response, Error> {
    Ok((status, axum::Json(envelope(data)?)).into_response())
}

/// An idempotent operation's answer: `data` rendered from its outcome, marked when replayed.
pub fn answer<T, D: Serialize>(
    status: StatusCode,
    answer: Answer<T>,
    render: impl FnOnce(T) -> D,
) -> Result<Response, Error> {
    let mut response = ok(status, render(answer.outcome))?;
    if answer.replayed {
        response.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Finishes a function's router: 404/405 in the error envelope, request ids, the request's
/// deadline, state.
pub fn finish(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .fallback(|| async { Error::not_found("no such route") })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(state.clone(), within_budget))
        .layer(axum::middleware::from_fn(request_id::request_id))
        .with_state(state)
}

/// Gives the request its deadline (`deadline`). Work that watches it answers in time on its
/// own (a change whose outcome is unknown with its key); anything else still running at the
/// deadline is cut off with a 503, so no answer waits for the function's timeout.
async fn within_budget(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let budget = std::time::Duration::from_millis(state.config.request_budget_millis);
    let answered =
        crate::deadline::scope(budget, crate::deadline::within(std::time::Duration::ZERO, next.run(request)));
    match answered.await {
        Some(response) => response,
        None => {
            tracing::warn!(budget_ms = state.config.request_budget_millis, "request cut off at its deadline");
            Error::unavailable().into_response()
        }
    }
}
