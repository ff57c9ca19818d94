//! The admin bearer: `authorization: Bearer <ADMIN_TOKEN>`, or `x-admin-token: <ADMIN_TOKEN>`
//! where IAM authorization at the gateway already uses `authorization` for its signature.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::app::AppState;
use crate::auth::secrets;
use crate::error::Error as ApiError;

pub const ADMIN_TOKEN_HEADER: &str = "x-admin-token";

/// Proof that the request carried the admin bearer.
#[derive(Debug)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let expected = state
            .config
            .admin_token
            .as_ref()
            .ok_or_else(|| ApiError::internal("admin route served without ADMIN_TOKEN"))?;
        let header = |name| parts.headers.get(name).and_then(|v: &axum::http::HeaderValue| v.to_str().ok());
        let presented = header(AUTHORIZATION.as_str())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or_else(|| header(ADMIN_TOKEN_HEADER))
            .ok_or_else(|| ApiError::unauthenticated("authorization: Bearer <admin token> is required"))?;
        if secrets::equal(presented, expected.expose()) {
            Ok(Admin)
        } else {
            Err(ApiError::unauthenticated("admin token is invalid"))
        }
    }
}
