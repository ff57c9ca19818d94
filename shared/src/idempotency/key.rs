//! Idempotency keys (§1): which key guards a request, bound to what the request asks for.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::domain::journal::RecordKey;
use crate::error::Error;
use crate::store::{RETENTION_MILLIS, StoredOutcome};

/// What starts every generated key (a request without a client key).
const GENERATED_PREFIX: &str = "#auto#";

/// Whether `key` is one the service generated (`IdempotencyKey::is_generated`).
pub fn is_generated(key: &str) -> bool {
    key.starts_with(GENERATED_PREFIX)
}

/// A new generated key.
fn generated() -> String {
    format!("{GENERATED_PREFIX}{}", crate::ids::new_ordered_id())
}

/// Between a generated key and a version in the key a 503 names (`named_with_version`).
const VERSION_MARK: char = '@';

/// A generated key as a 503 names it when its change may have landed: with the account version
/// that change came after. Such a change keeps its outcome on its entry (no idempotency record:
/// `RecordKey::quiet`), found among the entries written after that version; a client sending
/// the key back sends the version with it.
pub fn named_with_version(key: &str, after: u64) -> String {
    format!("{key}{VERSION_MARK}{after}")
}

/// A client's key, and the version it names if it is a generated key a 503 named
/// (`named_with_version`).
fn split_named(key: String) -> (String, Option<u64>) {
    if is_generated(&key)
        && let Some((base, version)) = key.rsplit_once(VERSION_MARK)
        && let Ok(version) = version.parse()
    {
        return (base.to_owned(), Some(version));
    }
    (key, None)
}

/// The expiry of records kept forever (year 9999).
const NEVER: i64 = 253_402_300_799_000;

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
    /// Fresh for every request handled (see `StoredOutcome::attempt`).
    attempt: String,
    /// For a generated key a 503 named, sent back: the version its change came after.
    named_after: Option<u64>,
}

impl IdempotencyKey {
    /// Reads the key from the header or the body's `idempotencyKey` (equal if both are sent).
    /// `request_line` names the face and route, so a key reused on another route is refused.
    pub fn from_request(
        header: Option<&[u8]>,
        entity_id: &str,
        request_line: &str,
        body: &Value,
    ) -> Result<Self, Error> {
        let client_key = client_key(header, body)?;
        let client_supplied = client_key.is_some();
        let (key, named_after) = client_key.map_or_else(|| (generated(), None), split_named);
        Ok(Self {
            entity_id: entity_id.to_owned(),
            client_supplied,
            key,
            fingerprint: fingerprint(request_line, body),
            permanent: false,
            attempt: new_attempt(),
            named_after,
        })
    }

    /// Like `from_request`, for operations where the contract requires a client key.
    pub fn required(header: Option<&[u8]>, entity_id: &str, request_line: &str, body: &Value) -> Result<Self, Error> {
        let key = Self::from_request(header, entity_id, request_line, body)?;
        if key.client_supplied {
            Ok(key)
        } else {
            Err(Error::validation("idempotencyKey (or the Idempotency-Key header) is required"))
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
    ) -> Result<Self, Error> {
        if let Some(key) = own {
            check_key("idempotencyKey", key)?;
        }
        let key = own.map(str::to_owned).or_else(|| batch.client_supplied.then(|| format!("{}#{index}", batch.key)));
        let client_supplied = key.is_some();
        let (key, named_after) = key.map_or_else(|| (generated(), None), split_named);
        Ok(Self {
            entity_id: batch.entity_id.clone(),
            client_supplied,
            key,
            fingerprint: fingerprint(request_line, body),
            permanent: false,
            attempt: new_attempt(),
            named_after,
        })
    }

    /// A key for a write the service makes on its own behalf (fresh each time).
    pub fn internal(entity_id: &str, purpose: &str) -> Self {
        Self {
            entity_id: entity_id.to_owned(),
            client_supplied: false,
            key: generated(),
            fingerprint: fingerprint(purpose, &Value::Null),
            permanent: false,
            attempt: new_attempt(),
            named_after: None,
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
            named_after: None,
        }
    }

    /// Whether the key is one the service generated, this request's or an earlier one's that a
    /// client sends again (learning the outcome of a 503): its change's outcome may be kept on
    /// its ledger entry instead of an idempotency record, and its key forgotten as soon as it
    /// moves out (`accounts`).
    pub fn is_generated(&self) -> bool {
        is_generated(&self.key)
    }

    /// The version a 503 named with this (generated) key, sent back by the client.
    pub fn named_after(&self) -> Option<u64> {
        self.named_after
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
    pub fn is_own(&self, stored: &StoredOutcome) -> bool {
        self.is_own_attempt(&stored.attempt)
    }

    /// The record to write with the effect. Secrets are left out by the outcome's own
    /// `Serialize` (`#[serde(skip_serializing)]`), so they never reach the store.
    pub fn record(&self, outcome: &impl Serialize, now: i64) -> Result<StoredOutcome, Error> {
        Ok(StoredOutcome {
            entity_id: self.entity_id.clone(),
            key: self.key.clone(),
            fingerprint: self.fingerprint.clone(),
            outcome: serde_json::to_string(outcome).map_err(Error::internal)?,
            expires_at: self.expires_at(now),
            attempt: self.attempt.clone(),
            pending: false,
        })
    }

    /// The claim a credit change writes on its key before it is made (`store::Reserved`).
    pub fn reservation(&self, now: i64) -> StoredOutcome {
        StoredOutcome {
            entity_id: self.entity_id.clone(),
            key: self.key.clone(),
            fingerprint: self.fingerprint.clone(),
            outcome: String::new(),
            expires_at: self.expires_at(now),
            attempt: self.attempt.clone(),
            pending: true,
        }
    }

    /// Whether the key may have been used before this request: the client's, or a permanent one.
    /// A generated key is new.
    pub fn may_be_used(&self) -> bool {
        self.client_supplied || self.permanent
    }

    /// What a journal record keeps of this key (`domain::journal`).
    pub fn journal_key(&self, now: i64) -> RecordKey {
        RecordKey {
            key: self.key.clone(),
            fingerprint: self.fingerprint.clone(),
            attempt: self.attempt.clone(),
            expires_at: self.expires_at(now),
            quiet: !self.may_be_used(),
        }
    }

    /// Whether a record with `fingerprint` was made by the same request as this one.
    pub fn is_same_request(&self, fingerprint: &str) -> bool {
        fingerprint == self.fingerprint
    }

    /// This request's attempt id (`StoredOutcome::attempt`).
    pub fn attempt(&self) -> &str {
        &self.attempt
    }

    /// Whether `attempt` is this very request's (an earlier try of its own write).
    pub fn is_own_attempt(&self, attempt: &str) -> bool {
        attempt == self.attempt
    }

    fn expires_at(&self, now: i64) -> i64 {
        if self.permanent { NEVER } else { now + RETENTION_MILLIS }
    }

    /// The outcome stored under this key, if it was stored for this same request.
    pub fn replay<T: serde::de::DeserializeOwned>(&self, stored: &StoredOutcome) -> Result<T, Error> {
        if stored.fingerprint != self.fingerprint {
            return Err(Error::IdempotencyKeyReused);
        }
        serde_json::from_str(&stored.outcome).map_err(Error::internal)
    }
}

fn client_key(header: Option<&[u8]>, body: &Value) -> Result<Option<String>, Error> {
    let from_header = match header {
        Some(value) => Some(String::from_utf8(value.to_vec()).map_err(|_| invalid_key("Idempotency-Key"))?),
        None => None,
    };
    let from_body = match body.get("idempotencyKey") {
        None | Some(Value::Null) => None,
        Some(Value::String(key)) => Some(key.clone()),
        Some(_) => return Err(invalid_key("idempotencyKey")),
    };
    let key = match (from_header, from_body) {
        (Some(h), Some(b)) if h != b => {
            return Err(Error::validation("idempotencyKey must equal the Idempotency-Key header when both are sent"));
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

fn invalid_key(field: &str) -> Error {
    Error::validation(format!("{field} must be 1-255 printable ASCII characters"))
}

fn check_key(field: &str, key: &str) -> Result<(), Error> {
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

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key_for(body: &Value, header: Option<&str>) -> Result<Option<IdempotencyKey>, Error> {
        let key = build(body, header)?;
        Ok(key.client_supplied.then_some(key))
    }

    fn build(body: &Value, header: Option<&str>) -> Result<IdempotencyKey, Error> {
        IdempotencyKey::from_request(header.map(str::as_bytes), "e-1", "POST /x", body)
    }

    #[test]
    fn a_generated_key_a_503_named_with_a_version_reads_back_as_the_key_and_the_version() {
        let generated = build(&json!({}), None).unwrap();
        assert!(generated.is_generated() && !generated.may_be_used());
        let named = named_with_version(&generated.key, 41);
        let sent_back = build(&json!({}), Some(&named)).unwrap();
        assert_eq!((sent_back.key.as_str(), sent_back.named_after()), (generated.key.as_str(), Some(41)));
        assert!(sent_back.may_be_used() && sent_back.is_same_request(&generated.fingerprint));
        for (client, key) in [("order@41", "order@41"), ("#auto#x@y", "#auto#x@y"), ("#auto#x", "#auto#x")] {
            let own = build(&json!({}), Some(client)).unwrap();
            assert_eq!((own.key.as_str(), own.named_after()), (key, None), "{client}");
        }
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
        assert!(key_for(&json!({"idempotencyKey": 5}), None).unwrap_err().message().starts_with("idempotencyKey"));
        assert!(key_for(&json!({}), None).unwrap().is_none());
    }

    #[test]
    fn replays_the_same_request_and_refuses_another() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Created {
            id: u64,
            #[serde(skip_serializing, default)]
            secret: Option<String>,
        }
        let key = key_for(&json!({"a": 1}), Some("k")).unwrap().unwrap();
        let stored = key.record(&Created { id: 1, secret: Some("s".into()) }, 0).unwrap();
        assert!(!stored.outcome.contains("\"s\""), "secrets are never stored");
        let replay: Created = key.replay(&stored).unwrap();
        assert_eq!((replay.id, replay.secret), (1, None));
        let other = key_for(&json!({"a": 2}), Some("k")).unwrap().unwrap();
        assert!(matches!(other.replay::<Created>(&stored), Err(Error::IdempotencyKeyReused)));
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
