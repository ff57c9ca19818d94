//! The API as declared: every function's `api()`, and the OpenAPI document they make.

use serde_json::Value;
use shared::http::api::Api;

/// Where the document is kept (and what the `auth` function serves).
pub const DOCUMENT_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");

/// Every function's declarations.
pub fn apis() -> Vec<Api> {
    vec![admin::api(), auth::api(), tiers::api(), credits::api(), payments::api(), webhook::api(), webhooks::api()]
}

pub fn document() -> Result<Value, String> {
    shared::http::openapi::document(&apis())
}

/// The document as `docs/openapi.json` holds it: pretty JSON, keys sorted, a final newline.
pub fn document_text() -> Result<String, String> {
    let text = serde_json::to_string_pretty(&document()?).map_err(|e| e.to_string())?;
    Ok(text + "\n")
}
