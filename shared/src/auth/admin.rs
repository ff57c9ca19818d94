//! The admin bearer (`authorization: Bearer <ADMIN_TOKEN>`).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::app::AppState;
use crate::auth::secrets;
use crate::error::ApiError;

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
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::unauthenticated("authorization: Bearer <admin token> is required"))?;
        if secrets::equal(presented, expected.expose()) {
            Ok(Admin)
        } else {
            Err(ApiError::unauthenticated("admin token is invalid"))
        }
    }
}
