//! The one error type of the service and its single mapping to HTTP (§1 of the contract).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Error codes of the contract's §1 table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    Validation,
    Unauthenticated,
    InsufficientCredits,
    PaymentFailed,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    AlreadyExists,
    IdempotencyKeyReused,
    PaymentNotSucceeded,
    TierArchived,
    VersionConflict,
    HoldNotActive,
    PayloadTooLarge,
    PaymentProvider,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validation => "VALIDATION_ERROR",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::InsufficientCredits => "INSUFFICIENT_CREDITS",
            Self::PaymentFailed => "PAYMENT_FAILED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::AlreadyExists => "ALREADY_EXISTS",
            Self::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Self::PaymentNotSucceeded => "PAYMENT_NOT_SUCCEEDED",
            Self::TierArchived => "TIER_ARCHIVED",
            Self::VersionConflict => "VERSION_CONFLICT",
            Self::HoldNotActive => "HOLD_NOT_ACTIVE",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::PaymentProvider => "PAYMENT_PROVIDER_ERROR",
            Self::Unavailable => "UNAVAILABLE",
            Self::Internal => "INTERNAL",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::Validation => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::InsufficientCredits | Self::PaymentFailed => StatusCode::PAYMENT_REQUIRED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::AlreadyExists
            | Self::IdempotencyKeyReused
            | Self::PaymentNotSucceeded
            | Self::TierArchived
            | Self::VersionConflict
            | Self::HoldNotActive => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::PaymentProvider => StatusCode::BAD_GATEWAY,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error answered to the client. `message` is safe to show: it never carries internals.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Extra fields merged into the `error` object (e.g. `declineCode`).
    pub details: Option<Value>,
}

/// Seconds a client should wait after a 503.
const RETRY_AFTER_SECONDS: &str = "1";

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), details: None }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Validation, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn unavailable() -> Self {
        Self::new(ErrorCode::Unavailable, "the service is busy; retry shortly")
    }

    /// Logs the internal cause and answers a generic 500.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::Internal, "internal error")
    }

    pub fn body(&self) -> Value {
        let mut error = json!({"code": self.code.as_str(), "message": self.message});
        if let (Some(Value::Object(extra)), Some(obj)) = (&self.details, error.as_object_mut()) {
            obj.extend(extra.clone());
        }
        json!({"success": false, "error": error})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.code.status(), axum::Json(self.body())).into_response();
        if self.code == ErrorCode::Unavailable {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
