//! Query strings: parsed into a typed struct, errors (a repeated or malformed parameter) in
//! the error envelope naming the parameter, never the framework's plain-text rejection.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::Error;

pub struct Query<T>(pub T);

/// The query of `uri` read into `T`, refused as the `Query` extractor refuses it.
pub fn parse<T: DeserializeOwned>(uri: &axum::http::Uri) -> Result<T, Error> {
    axum::extract::Query::<T>::try_from_uri(uri).map(|q| q.0).map_err(refusal)
}

fn refusal(rejection: axum::extract::rejection::QueryRejection) -> Error {
    let text = rejection.body_text();
    let cause = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(&text);
    Error::validation(format!("query: {cause}"))
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(refusal(rejection)),
        }
    }
}
