//! Idempotency keys (§1): same key + same request replays the first answer; same key +
//! another request is refused. Records live 24 h and are written in the same store
//! transaction as the effect they guard, so concurrent retries see one effect.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ErrorCode};

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
pub const RETENTION_MILLIS: i64 = 24 * 60 * 60 * 1000;
/// The expiry of records kept forever (year 9999).
pub const NEVER: i64 = 253_402_300_799_000;
/// Secret fields are never stored; a replay shows them as `null`.
const SECRET_FIELDS: [&str; 1] = ["apisecret"];

/// A response kept under an idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub entity_id: String,
    pub key: String,
    pub fingerprint: String,
    pub status: u16,
    pub body: String,
    pub expires_at: i64,
    /// Which attempt wrote it: a request that meets its own earlier attempt (a store write
    /// retried after its answer was lost) is not a replay and still answers in full.
    pub attempt: String,
}

/// The key guarding one mutation, bound to what the request asks for. A request without a
/// client key gets a generated one: every mutation writes its own record, so a retry after
/// an ambiguous store outcome finds it and answers as the first attempt did.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub entity_id: String,
    pub key: String,
    pub client_supplied: bool,
    fingerprint: String,
    /// Kept forever instead of 24 h.
    permanent: bool,
    /// Fresh for every request handled (see `StoredResponse::attempt`).
    attempt: String,
}

impl IdempotencyKey {
    /// Reads the key from the header or the body's `idempotencyKey` (equal if both are sent).
    pub fn from_request(
        headers: &HeaderMap,
        entity_id: &str,
        request_line: &str,
        body: &Value,
    ) -> Result<Self, ApiError> {
        let client_key = client_key(headers, body)?;
        Ok(Self {
            entity_id: entity_id.to_owned(),
            client_supplied: client_key.is_some(),
            key: client_key.unwrap_or_else(|| format!("#auto#{}", crate::ids::new_ordered_id())),
            fingerprint: fingerprint(request_line, body),
            permanent: false,
            attempt: new_attempt(),
        })
    }

    /// Like `from_request`, for operations where the contract requires a client key.
    pub fn required(headers: &HeaderMap, entity_id: &str, request_line: &str, body: &Value) -> Result<Self, ApiError> {
        let key = Self::from_request(headers, entity_id, request_line, body)?;
        if key.client_supplied {
            Ok(key)
        } else {
            Err(ApiError::validation("idempotencyKey (or the Idempotency-Key header) is required"))
        }
    }

    /// The key of one item of a batch: the item's own key if it has one; else, in a batch
    /// sent under a client's key, one derived from it (`{key}#{index}`), so a retried batch
    /// finds every item's earlier effect; else a fresh one.
    pub fn for_item(
        batch: &IdempotencyKey,
        index: usize,
        own: Option<&str>,
        request_line: &str,
        body: &Value,
    ) -> Result<Self, ApiError> {
        if let Some(key) = own {
            check_key("idempotencyKey", key)?;
        }
        let key = own.map(str::to_owned).or_else(|| batch.client_supplied.then(|| format!("{}#{index}", batch.key)));
        Ok(Self {
            entity_id: batch.entity_id.clone(),
            client_supplied: key.is_some(),
            key: key.unwrap_or_else(|| format!("#auto#{}", crate::ids::new_ordered_id())),
            fingerprint: fingerprint(request_line, body),
            permanent: false,
            attempt: new_attempt(),
        })
    }

    /// A key for a write the service makes on its own behalf (fresh each time).
    pub fn internal(entity_id: &str, purpose: &str) -> Self {
        Self {
            entity_id: entity_id.to_owned(),
            client_supplied: false,
            key: format!("#auto#{}", crate::ids::new_ordered_id()),
            fingerprint: fingerprint(purpose, &Value::Null),
            permanent: false,
            attempt: new_attempt(),
        }
    }

    /// A key that guards an effect forever (a payment is credited once, however late a
    /// duplicate notification arrives).
    pub fn permanent(entity_id: &str, key: &str, purpose: &str) -> Self {
        Self {
            entity_id: entity_id.to_owned(),
            client_supplied: false,
            key: key.to_owned(),
            fingerprint: fingerprint(purpose, &Value::Null),
            permanent: true,
            attempt: new_attempt(),
        }
    }

    /// The client's key, if the client sent one (recorded on ledger entries).
    pub fn client_key(&self) -> Option<String> {
        self.client_supplied.then(|| self.key.clone())
    }

    /// A key for a downstream provider (Stripe) derived from this request: the same request
    /// under the same key maps to the same provider request, and any other request (another
    /// card after a refusal) to a new one. `None` without a client key.
    pub fn provider_key(&self, purpose: &str) -> Option<String> {
        if !self.client_supplied {
            return None;
        }
        let mut hasher = Sha256::new();
        for part in [purpose, &self.entity_id, &self.key, &self.fingerprint] {
            hasher.update(part.as_bytes());
            hasher.update(b"\n");
        }
        Some(format!("{purpose}:{}", hex(&hasher.finalize())))
    }

    /// Whether `stored` was written by this very request (an earlier attempt of its write).
    pub fn is_own(&self, stored: &StoredResponse) -> bool {
        stored.attempt == self.attempt
    }

    /// The record to write with the effect.
    pub fn record(&self, status: StatusCode, body: &Value, now: i64) -> StoredResponse {
        StoredResponse {
            entity_id: self.entity_id.clone(),
            key: self.key.clone(),
            fingerprint: self.fingerprint.clone(),
            status: status.as_u16(),
            body: redact_secrets(body).to_string(),
            expires_at: if self.permanent { NEVER } else { now + RETENTION_MILLIS },
            attempt: self.attempt.clone(),
        }
    }

    /// Answers a request whose key was already used.
    pub fn replay(&self, stored: &StoredResponse) -> Result<Response, ApiError> {
        if stored.fingerprint != self.fingerprint {
            return Err(ApiError::new(
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was already used for a different request",
            ));
        }
        let status = StatusCode::from_u16(stored.status).map_err(ApiError::internal)?;
        let mut response = (status, stored.body.clone()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
        Ok(response)
    }
}

fn client_key(headers: &HeaderMap, body: &Value) -> Result<Option<String>, ApiError> {
    let from_header = match headers.get(HEADER) {
        Some(value) => Some(value.to_str().map_err(|_| invalid_key("Idempotency-Key"))?.to_owned()),
        None => None,
    };
    let from_body = match body.get("idempotencyKey") {
        None | Some(Value::Null) => None,
        Some(Value::String(key)) => Some(key.clone()),
        Some(_) => return Err(invalid_key("idempotencyKey")),
    };
    let key = match (from_header, from_body) {
        (Some(h), Some(b)) if h != b => {
            return Err(ApiError::validation(
                "idempotencyKey must equal the Idempotency-Key header when both are sent",
            ));
        }
        (Some(key), _) => {
            check_key("Idempotency-Key", &key)?;
            key
        }
        (None, Some(key)) => {
            check_key("idempotencyKey", &key)?;
            key
        }
        (None, None) => return Ok(None),
    };
    Ok(Some(key))
}

fn new_attempt() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn invalid_key(field: &str) -> ApiError {
    ApiError::validation(format!("{field} must be 1-255 printable ASCII characters"))
}

fn check_key(field: &str, key: &str) -> Result<(), ApiError> {
    let printable = key.bytes().all(|b| (0x20..=0x7e).contains(&b));
    if (1..=255).contains(&key.len()) && printable { Ok(()) } else { Err(invalid_key(field)) }
}

/// Method, path and the body with sorted keys (minus the key itself), hashed.
fn fingerprint(request_line: &str, body: &Value) -> String {
    let mut body = body.clone();
    if let Value::Object(map) = &mut body {
        map.remove("idempotencyKey");
    }
    let mut hasher = Sha256::new();
    hasher.update(request_line.as_bytes());
    hasher.update(b"\n");
    write_canonical(&body, &mut hasher);
    hex(&hasher.finalize())
}

fn write_canonical(value: &Value, hasher: &mut Sha256) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<_> = map.keys().collect();
            keys.sort();
            hasher.update(b"{");
            for key in keys {
                hasher.update(Value::String(key.clone()).to_string().as_bytes());
                hasher.update(b":");
                write_canonical(&map[key], hasher);
                hasher.update(b",");
            }
            hasher.update(b"}");
        }
        Value::Array(items) => {
            hasher.update(b"[");
            for item in items {
                write_canonical(item, hasher);
                hasher.update(b",");
            }
            hasher.update(b"]");
        }
        scalar => hasher.update(scalar.to_string().as_bytes()),
    }
}

fn redact_secrets(body: &Value) -> Value {
    let mut body = body.clone();
    if let Some(Value::Object(data)) = body.get_mut("data") {
        for field in SECRET_FIELDS {
            if let Some(secret) = data.get_mut(field) {
                *secret = Value::Null;
            }
        }
    }
    body
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key_for(body: &Value, header: Option<&str>) -> Result<Option<IdempotencyKey>, ApiError> {
        let key = build(body, header)?;
        Ok(key.client_supplied.then_some(key))
    }

    fn build(body: &Value, header: Option<&str>) -> Result<IdempotencyKey, ApiError> {
        let mut headers = HeaderMap::new();
        if let Some(h) = header {
            headers.insert(HEADER, HeaderValue::from_str(h).unwrap());
        }
        IdempotencyKey::from_request(&headers, "e-1", "POST /x", body)
    }

    #[test]
    fn body_order_and_the_key_field_do_not_change_the_fingerprint() {
        let a = key_for(&json!({"a": 1, "b": [1, {"y": 2, "x": 1}]}), Some("k")).unwrap().unwrap();
        let b = key_for(&json!({"b": [1, {"x": 1, "y": 2}], "a": 1, "idempotencyKey": "k"}), None).unwrap().unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        let c = key_for(&json!({"a": 2}), Some("k")).unwrap().unwrap();
        assert_ne!(a.fingerprint, c.fingerprint);
    }

    #[test]
    fn header_and_body_keys_must_agree_and_be_printable() {
        assert!(key_for(&json!({"idempotencyKey": "a"}), Some("b")).is_err());
        assert!(key_for(&json!({}), Some("")).is_err());
        assert!(key_for(&json!({"idempotencyKey": "x".repeat(256)}), None).is_err());
        assert!(key_for(&json!({"idempotencyKey": 5}), None).unwrap_err().message.starts_with("idempotencyKey"));
        assert!(key_for(&json!({}), None).unwrap().is_none());
    }

    #[test]
    fn replays_the_same_request_and_refuses_another() {
        let key = key_for(&json!({"a": 1}), Some("k")).unwrap().unwrap();
        let stored = key.record(StatusCode::CREATED, &json!({"data": {"apisecret": "s", "id": 1}}), 0);
        assert!(!stored.body.contains("\"s\""), "secrets are never stored");
        let replay = key.replay(&stored).unwrap();
        assert_eq!(replay.status(), StatusCode::CREATED);
        assert_eq!(replay.headers()[REPLAYED_HEADER], "true");
        let other = key_for(&json!({"a": 2}), Some("k")).unwrap().unwrap();
        assert_eq!(other.replay(&stored).unwrap_err().code, ErrorCode::IdempotencyKeyReused);
        assert!(key.is_own(&stored), "the attempt that wrote a record recognises it");
        let retry = key_for(&json!({"a": 1}), Some("k")).unwrap().unwrap();
        assert!(!retry.is_own(&stored), "a second request under the key is a replay");
    }

    #[test]
    fn provider_keys_follow_the_request_and_item_keys_the_batch() {
        let first = key_for(&json!({"card": "a"}), Some("k")).unwrap().unwrap();
        let again = key_for(&json!({"card": "a"}), Some("k")).unwrap().unwrap();
        let other_card = key_for(&json!({"card": "b"}), Some("k")).unwrap().unwrap();
        assert_eq!(first.provider_key("pay"), again.provider_key("pay"));
        assert_ne!(first.provider_key("pay"), other_card.provider_key("pay"));
        assert!(build(&json!({}), None).unwrap().provider_key("pay").is_none());
        let item =
            |batch: &IdempotencyKey, own| IdempotencyKey::for_item(batch, 2, own, "POST /i", &json!({})).unwrap();
        assert_eq!(item(&first, None).key, "k#2");
        assert_eq!(item(&first, Some("own")).key, "own");
        assert!(!item(&build(&json!({}), None).unwrap(), None).client_supplied);
    }
}
