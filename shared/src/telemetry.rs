//! Logs: JSON lines (what CloudWatch wants), filtered by `RUST_LOG` (default `info`).
//! `RUST_LOG` takes `level` and `target=level` directives, comma-separated.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// async-stripe's webhook verifier logs an error for every event object it has no type for;
/// the webhook function reads those objects itself, so that log is noise.
const DEFAULT_FILTER: &str = "info,stripe_webhook::webhook=off";

pub fn init() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| DEFAULT_FILTER.parse().unwrap_or_default());
    let format = tracing_subscriber::fmt::layer().json().with_current_span(true).with_span_list(false).without_time();
    // A second init (tests) is harmless; ignore its error.
    let _ = tracing_subscriber::registry().with(format).with(filter).try_init();
}
