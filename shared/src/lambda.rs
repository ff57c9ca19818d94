//! What every function's `main` does: logs, config, clients, then serve its router.

use std::sync::Arc;

use axum::Router;

use crate::app::AppState;
use crate::config::{Config, Needs};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Fails at start with a message naming a missing variable.
pub async fn run(needs: Needs, router: fn(AppState) -> Router) -> Result<(), BoxError> {
    let state = start(needs).await?;
    lambda_http::run(router(state)).await
}

/// `run` for the functions that talk to Stripe. Only they link the Stripe client, which
/// keeps the other binaries small.
pub async fn run_with_payments(needs: Needs, router: fn(AppState) -> Router) -> Result<(), BoxError> {
    let state = start(needs).await?;
    let stripe = state.config.stripe.as_ref().ok_or("functions that take payments need the Stripe settings")?;
    let gateway = crate::clients::stripe(stripe)?;
    lambda_http::run(router(state.with_payments(Arc::new(gateway)))).await
}

async fn start(needs: Needs) -> Result<AppState, BoxError> {
    crate::telemetry::init();
    let config = Config::from_env(needs)?;
    Ok(AppState::from_config(config).await?)
}
