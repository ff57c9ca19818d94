//! JSON bodies: at most 64 KiB, an object, unknown fields refused, errors naming the field.

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, ErrorCode};

pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A request body parsed as a JSON object; an empty body reads as `{}`.
#[derive(Debug, Clone)]
pub struct JsonObject(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_limited(req.into_body()).await?;
        parse_object(&bytes).map(Self)
    }
}

impl JsonObject {
    /// Deserializes into `T`, naming the offending field on failure.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_path_to_error::deserialize(&self.0).map_err(|err| {
            let path = err.path().to_string();
            let inner = err.into_inner().to_string();
            if path == "." { ApiError::validation(inner) } else { ApiError::validation(format!("{path}: {inner}")) }
        })
    }
}

async fn read_limited(body: Body) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::new(ErrorCode::PayloadTooLarge, format!("body must be at most {MAX_BODY_BYTES} bytes")))
}

fn parse_object(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|err| ApiError::validation(format!("body is not valid JSON: {err}")))?;
    if value.is_object() { Ok(value) } else { Err(ApiError::validation("body must be a JSON object")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        credits: u64,
    }

    fn parse(raw: &str) -> Result<Sample, ApiError> {
        JsonObject(parse_object(raw.as_bytes())?).parse()
    }

    #[test]
    fn errors_name_the_field() {
        assert!(parse(r#"{"credits": 1.5}"#).unwrap_err().message.starts_with("credits:"));
        assert!(parse(r#"{"credits": -1}"#).unwrap_err().message.starts_with("credits:"));
        assert!(parse(r#"{"credits": "1"}"#).unwrap_err().message.starts_with("credits:"));
        assert!(parse(r#"{}"#).unwrap_err().message.contains("`credits`"));
        assert!(parse(r#"{"credits": 1, "extra": 1}"#).unwrap_err().message.contains("`extra`"));
        assert!(parse(r#"{"credits": "#).unwrap_err().message.starts_with("body is not valid JSON"));
        assert!(parse("[1]").unwrap_err().message.contains("JSON object"));
        assert_eq!(parse(r#"{"credits": 7}"#).unwrap().credits, 7);
    }
}

/// A mutating request: its JSON body plus what idempotency needs (headers, method and path).
#[derive(Debug)]
pub struct Mutation {
    pub headers: axum::http::HeaderMap,
    request_line: String,
    pub body: JsonObject,
}

impl<S: Send + Sync> FromRequest<S> for Mutation {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let request_line = format!("{} {}", req.method(), req.uri().path());
        let headers = req.headers().clone();
        let body = JsonObject::from_request(req, state).await?;
        Ok(Self { headers, request_line, body })
    }
}

impl Mutation {
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        self.body.parse()
    }

    /// The request's idempotency key (generated when the client sent none).
    pub fn key(&self, scope: &str) -> Result<crate::idempotency::IdempotencyKey, ApiError> {
        crate::idempotency::IdempotencyKey::from_request(&self.headers, scope, &self.request_line, &self.body.0)
    }

    /// The client's idempotency key, which this operation requires.
    pub fn required_key(&self, scope: &str) -> Result<crate::idempotency::IdempotencyKey, ApiError> {
        crate::idempotency::IdempotencyKey::required(&self.headers, scope, &self.request_line, &self.body.0)
    }
}
