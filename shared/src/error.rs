//! The one error type of the service: what went wrong, in the domain's terms. Each face maps
//! it to its wire (the native HTTP face in `http::error`); the messages here are safe to show
//! and are the only copy of each.

/// Serializable so a batch can store its items' refusals with its outcome.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Error {
    /// A field breaks a rule; the message names the field.
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    Unauthenticated(String),
    /// A user session token past its expiry: the client should log the user in again.
    #[error("token has expired")]
    SessionExpired,
    #[error("{0}")]
    Forbidden(String),
    /// The message names what was not found.
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("credits: {requested} requested but only {available} available")]
    InsufficientCredits { requested: u64, available: u64 },
    /// Why the hold cannot be settled (its status when known).
    #[error("{0}")]
    HoldNotActive(String),
    #[error("creditTierId names an archived tier")]
    TierArchived,
    #[error("{0}")]
    VersionConflict(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// A payment credited through the wrong account (a pool payment through a user's route,
    /// or the other way round); the message names the payment's beneficiary.
    #[error("{0}")]
    WrongBeneficiary(String),
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
    #[error("{message}")]
    PaymentFailed { message: String, decline_code: Option<String> },
    #[error("the payment has not succeeded: its status is {status}")]
    PaymentNotSucceeded { status: String },
    #[error("{0}")]
    PaymentProvider(String),
    /// The store did not answer in time. `unknown_outcome_key`: a write may have landed; a
    /// retry under this key learns whether it did.
    #[error("{}", unavailable_message(.unknown_outcome_key))]
    Unavailable { unknown_outcome_key: Option<String> },
    /// Logged where it arose; shown only as "internal error".
    #[error("internal error")]
    Internal,
}

fn unavailable_message(unknown_outcome_key: &Option<String>) -> &'static str {
    match unknown_outcome_key {
        None => "the service is busy; retry shortly",
        Some(_) => "the outcome is unknown; retry with the Idempotency-Key in error.idempotencyKey to learn it",
    }
}

impl Error {
    pub fn validation(message: impl Into<String>) -> Self {
        Self::Validation(message.into())
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::Unauthenticated(message.into())
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }

    pub fn unavailable() -> Self {
        Self::Unavailable { unknown_outcome_key: None }
    }

    /// Logs the internal cause and answers a generic 500.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::Internal
    }

    /// The message shown to clients.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

pub type Fallible<T> = Result<T, Error>;
