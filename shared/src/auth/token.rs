//! End-user session tokens: HS256 JWTs naming one entity (`ent`) and one user (`sub`).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::Secret;
use crate::error::Error as ApiError;

pub const MIN_TTL_SECONDS: u64 = 60;
pub const MAX_TTL_SECONDS: u64 = 86_400;
pub const DEFAULT_TTL_SECONDS: u64 = 3_600;
/// Marks our tokens so a JWT minted for another purpose with the same key is refused.
const AUDIENCE: &str = "credits-user-session";

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub sub: String,
    pub ent: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

pub struct Minted {
    pub token: String,
    pub expires_at_millis: i64,
}

pub fn mint(
    key: &Secret,
    entity_id: &str,
    user_id: &str,
    ttl_seconds: u64,
    now_millis: i64,
) -> Result<Minted, ApiError> {
    let iat = now_millis / 1000;
    let claims = Claims {
        sub: user_id.to_owned(),
        ent: entity_id.to_owned(),
        aud: AUDIENCE.to_owned(),
        iat,
        exp: iat + ttl_seconds as i64,
    };
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key.expose().as_bytes()),
    )
    .map_err(ApiError::internal)?;
    Ok(Minted { token, expires_at_millis: claims.exp * 1000 })
}

/// Checks signature, audience and expiry (against our clock, so tests can move time).
pub fn verify(key: &Secret, token: &str, now_millis: i64) -> Result<Claims, ApiError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["sub", "aud", "exp"]);
    let claims = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(key.expose().as_bytes()), &validation)
        .map_err(|_| ApiError::unauthenticated("token is invalid"))?
        .claims;
    if claims.exp * 1000 <= now_millis {
        return Err(ApiError::unauthenticated("token has expired"));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_expires() {
        let key = Secret::new("k");
        let minted = mint(&key, "e-1", "u-1", 60, 1_000_000).unwrap();
        let claims = verify(&key, &minted.token, 1_000_000).unwrap();
        assert_eq!((claims.sub.as_str(), claims.ent.as_str()), ("u-1", "e-1"));
        assert_eq!(minted.expires_at_millis, 1_060_000);
        assert!(verify(&key, &minted.token, 1_060_000).unwrap_err().message().contains("expired"));
        assert!(verify(&Secret::new("other"), &minted.token, 1_000_000).is_err());
        assert!(verify(&key, "garbage", 1_000_000).is_err());
    }
}
