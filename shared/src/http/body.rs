//! JSON bodies: at most 64 KiB, an object, unknown fields refused, errors naming the field.
//! Duplicate keys and `null` values are refused at every level: a proxy or audit log that
//! reads the first of two values must never see another request than the one we execute,
//! and an optional field is either sent with a value or left out.

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::Error;
use crate::idempotency::IdempotencyKey;

pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A request body parsed as a JSON object; an empty body reads as `{}`.
#[derive(Debug, Clone)]
pub struct JsonObject(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = Error;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_limited(req.into_body()).await?;
        parse_object(&bytes).map(Self)
    }
}

impl JsonObject {
    /// Deserializes into `T`, naming the offending field on failure.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_path_to_error::deserialize(&self.0).map_err(|err| {
            let path = err.path().to_string();
            let inner = err.into_inner().to_string();
            if path == "." { Error::validation(inner) } else { Error::validation(format!("{path}: {inner}")) }
        })
    }
}

async fn read_limited(body: Body) -> Result<axum::body::Bytes, Error> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| Error::PayloadTooLarge(format!("body must be at most {MAX_BODY_BYTES} bytes")))
}

fn parse_object(bytes: &[u8]) -> Result<Value, Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    // API Gateway base64-encodes a body that is not UTF-8 and lambda_http decodes it: say what
    // is wrong, not serde_json's "invalid unicode code point" or "expected value".
    let text = std::str::from_utf8(bytes).map_err(|err| {
        Error::validation(format!("body must be UTF-8 JSON (invalid UTF-8 at byte {})", err.valid_up_to()))
    })?;
    let value = strict::parse(text)?;
    if value.is_object() { Ok(value) } else { Err(Error::validation("body must be a JSON object")) }
}

/// A JSON parser that names the path of a duplicate key or a `null`.
mod strict {
    use std::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Value};

    use crate::error::Error;

    pub fn parse(text: &str) -> Result<Value, Error> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let value = Strict { path: String::new() }
            .deserialize(&mut deserializer)
            .and_then(|value| deserializer.end().map(|()| value))
            .map_err(|err| match err.classify() {
                serde_json::error::Category::Data => Error::validation(data_error(&err)),
                _ => Error::validation(format!("body is not valid JSON: {err}")),
            })?;
        Ok(value)
    }

    /// Our own messages, without serde_json's position suffix.
    fn data_error(err: &serde_json::Error) -> String {
        let text = err.to_string();
        match text.rfind(" at line ") {
            Some(at) => text[..at].to_owned(),
            None => text,
        }
    }

    struct Strict {
        path: String,
    }

    impl Strict {
        fn child(&self, name: &str) -> Self {
            let path = if self.path.is_empty() { name.to_owned() } else { format!("{}.{name}", self.path) };
            Self { path }
        }

        fn element(&self, index: usize) -> Self {
            Self { path: format!("{}[{index}]", self.path) }
        }
    }

    impl<'de> DeserializeSeed<'de> for Strict {
        type Value = Value;

        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
            deserializer.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Strict {
        type Value = Value;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON value")
        }

        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }

        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }

        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }

        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
        }

        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }

        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }

        fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
            Err(E::custom(format!("{} must not be null: leave the field out instead", self.path)))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element_seed(self.element(items.len()))? {
                items.push(item);
            }
            Ok(Value::Array(items))
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut object = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                let child = self.child(&key);
                if object.contains_key(&key) {
                    return Err(de::Error::custom(format!("duplicate key {}", child.path)));
                }
                let value = map.next_value_seed(child)?;
                object.insert(key, value);
            }
            Ok(Value::Object(object))
        }
    }
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

    fn parse(raw: &str) -> Result<Sample, Error> {
        JsonObject(parse_object(raw.as_bytes())?).parse()
    }

    #[test]
    fn errors_name_the_field() {
        assert!(parse(r#"{"credits": 1.5}"#).unwrap_err().message().starts_with("credits:"));
        assert!(parse(r#"{"credits": -1}"#).unwrap_err().message().starts_with("credits:"));
        assert!(parse(r#"{"credits": "1"}"#).unwrap_err().message().starts_with("credits:"));
        assert!(parse(r#"{}"#).unwrap_err().message().contains("`credits`"));
        assert!(parse(r#"{"credits": 1, "extra": 1}"#).unwrap_err().message().contains("`extra`"));
        assert!(parse(r#"{"credits": "#).unwrap_err().message().starts_with("body is not valid JSON"));
        assert!(parse("[1]").unwrap_err().message().contains("JSON object"));
        assert_eq!(parse(r#"{"credits": 7}"#).unwrap().credits, 7);
    }

    #[test]
    fn duplicate_keys_and_nulls_are_refused_naming_their_path() {
        let message = |raw: &str| parse_object(raw.as_bytes()).unwrap_err().message();
        assert_eq!(message(r#"{"credits":1,"credits":1000}"#), "duplicate key credits");
        assert_eq!(message(r#"{"info":{"entityId":"a","entityId":"b"}}"#), "duplicate key info.entityId");
        assert_eq!(message(r#"{"a":[{"b":1,"b":2}]}"#), "duplicate key a[0].b");
        assert!(message(r#"{"reason":null}"#).starts_with("reason must not be null"));
        assert!(message(r#"{"cardData":{"email":null}}"#).starts_with("cardData.email must not be null"));
        assert!(message(r#"{"a":1} x"#).starts_with("body is not valid JSON"));
        assert!(parse_object(br#"{"a":{"b":[1,2.5,"x",true]}}"#).is_ok());
    }

    #[test]
    fn a_body_that_is_not_utf8_is_refused_saying_so() {
        let message = |raw: &[u8]| parse_object(raw).unwrap_err().message();
        assert_eq!(message(b"{\"reason\":\"\xff\"}"), "body must be UTF-8 JSON (invalid UTF-8 at byte 11)");
        assert_eq!(message(b"\xfe\xff{}"), "body must be UTF-8 JSON (invalid UTF-8 at byte 0)");
        assert_eq!(parse_object("{\"reason\":\"é\"}".as_bytes()).unwrap()["reason"], "é");
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
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let request_line = format!("{} {}", req.method(), req.uri().path());
        let headers = req.headers().clone();
        let body = JsonObject::from_request(req, state).await?;
        Ok(Self { headers, request_line, body })
    }
}

impl Mutation {
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Error> {
        self.body.parse()
    }

    fn key_header(&self) -> Option<&[u8]> {
        self.headers.get(super::IDEMPOTENCY_HEADER).map(|value| value.as_bytes())
    }

    /// The request's idempotency key (generated when the client sent none), bound to this
    /// face's method, path and body.
    pub fn key(&self, scope: &str) -> Result<IdempotencyKey, Error> {
        IdempotencyKey::from_request(self.key_header(), scope, &self.request_line, &self.body.0)
    }

    /// The client's idempotency key, which this operation requires.
    pub fn required_key(&self, scope: &str) -> Result<IdempotencyKey, Error> {
        IdempotencyKey::required(self.key_header(), scope, &self.request_line, &self.body.0)
    }
}
