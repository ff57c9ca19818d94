//! Everything the functions share: auth, the domain, HTTP plumbing, the DynamoDB store.

pub mod accounts;
pub mod app;
pub mod auth;
pub mod clients;
pub mod clock;
pub mod config;
pub mod context;
pub mod deadline;
pub mod domain;
pub mod error;
pub mod http;
pub mod idempotency;
pub mod ids;
pub mod lambda;
pub mod payments;
pub mod store;
pub mod telemetry;
pub mod usecases;
pub mod webhooks;

pub use app::AppState;
pub use error::{Error, Fallible};
