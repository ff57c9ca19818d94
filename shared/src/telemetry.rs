//! Logs: JSON lines (what CloudWatch wants), filtered by `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

/// async-stripe's webhook verifier logs an error for every event object it has no type for;
/// the webhook function reads those objects itself, so that log is noise.
const DEFAULT_FILTER: &str = "info,stripe_webhook::webhook=off";

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // A second init (tests) is harmless; ignore its error.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .without_time()
        .try_init();
}
