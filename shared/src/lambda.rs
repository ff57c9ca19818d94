//! What every function's `main` does: logs, config, clients, then serve its router.

use axum::Router;

use crate::app::AppState;
use crate::config::{Config, Needs};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Fails at start with a message naming a missing variable.
pub async fn run(needs: Needs, router: fn(AppState) -> Router) -> Result<(), BoxError> {
    crate::telemetry::init();
    let config = Config::from_env(needs)?;
    let state = AppState::from_config(config).await?;
    lambda_http::run(router(state)).await
}
