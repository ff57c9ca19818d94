//! The native face's one mapping of domain errors to HTTP: status, §1 code, envelope.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::Error;

/// Seconds a client should wait after a 503.
const RETRY_AFTER_SECONDS: &str = "1";

/// The status and §1 code of an error.
pub fn status_and_code(error: &Error) -> (StatusCode, &'static str) {
    match error {
        Error::Validation(_) => (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"),
        Error::Unauthenticated(_) | Error::SessionExpired => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
        Error::InsufficientCredits { .. } => (StatusCode::PAYMENT_REQUIRED, "INSUFFICIENT_CREDITS"),
        Error::PaymentFailed { .. } => (StatusCode::PAYMENT_REQUIRED, "PAYMENT_FAILED"),
        Error::Forbidden(_) => (StatusCode::FORBIDDEN, "FORBIDDEN"),
        Error::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
        Error::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"),
        Error::AlreadyExists(_) => (StatusCode::CONFLICT, "ALREADY_EXISTS"),
        Error::WrongBeneficiary(_) => (StatusCode::CONFLICT, "WRONG_BENEFICIARY"),
        Error::IdempotencyKeyReused => (StatusCode::CONFLICT, "IDEMPOTENCY_KEY_REUSED"),
        Error::PaymentNotSucceeded { .. } => (StatusCode::CONFLICT, "PAYMENT_NOT_SUCCEEDED"),
        Error::TierArchived => (StatusCode::CONFLICT, "TIER_ARCHIVED"),
        Error::VersionConflict(_) => (StatusCode::CONFLICT, "VERSION_CONFLICT"),
        Error::HoldNotActive(_) => (StatusCode::CONFLICT, "HOLD_NOT_ACTIVE"),
        Error::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
        Error::PaymentProvider(_) => (StatusCode::BAD_GATEWAY, "PAYMENT_PROVIDER_ERROR"),
        Error::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
        Error::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
    }
}

/// The §1 `error` object: `{code, message}` plus what the error carries (`declineCode`,
/// `idempotencyKey`).
pub fn error_object(error: &Error) -> Value {
    let mut object = json!({"code": status_and_code(error).1, "message": error.message()});
    match error {
        Error::PaymentFailed { decline_code: Some(code), .. } => object["declineCode"] = json!(code),
        Error::Unavailable { unknown_outcome_key: Some(key) } => object["idempotencyKey"] = json!(key),
        // Quest's clients look for this flag to send their user to log in again.
        Error::SessionExpired => object["userTokenExpired"] = json!(true),
        _ => {}
    }
    object
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let body = json!({"success": false, "error": error_object(&self)});
        let mut response = (status_and_code(&self).0, axum::Json(body)).into_response();
        if matches!(self, Error::Unavailable { .. }) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        response
    }
}
