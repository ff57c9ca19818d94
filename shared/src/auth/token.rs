//! Tokens, HS256 JWTs signed with the token key: end-user sessions name one entity (`ent`)
//! and one user (`sub`); entity authentication tokens name one entity and the API key that
//! minted them (`kid`), so revoking that key revokes them. Each kind has its own audience,
//! so neither passes for the other.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::Secret;
use crate::error::Error as ApiError;

pub const MIN_TTL_SECONDS: u64 = 60;
pub const MAX_TTL_SECONDS: u64 = 86_400;
pub const DEFAULT_TTL_SECONDS: u64 = 3_600;
/// Marks our tokens so a JWT minted for another purpose with the same key is refused.
const AUDIENCE: &str = "credits-user-session";
const ENTITY_AUDIENCE: &str = "credits-entity-backend";
/// Entity tokens are a backend's credential: they may live longer than a user's session.
pub const ENTITY_MAX_TTL_SECONDS: u64 = 30 * 86_400;
pub const ENTITY_DEFAULT_TTL_SECONDS: u64 = 86_400;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub sub: String,
    pub ent: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

/// An entity authentication token's claims.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct EntityClaims {
    pub ent: String,
    /// The API key that minted the token; the token works only beside that key.
    pub kid: String,
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
    sign(key, &claims, claims.exp)
}

/// An entity authentication token for the entity's backend, bound to the key `apikey`.
pub fn mint_entity(
    key: &Secret,
    entity_id: &str,
    apikey: &str,
    ttl_seconds: u64,
    now_millis: i64,
) -> Result<Minted, ApiError> {
    let iat = now_millis / 1000;
    let claims = EntityClaims {
        ent: entity_id.to_owned(),
        kid: apikey.to_owned(),
        aud: ENTITY_AUDIENCE.to_owned(),
        iat,
        exp: iat + ttl_seconds as i64,
    };
    sign(key, &claims, claims.exp)
}

fn sign(key: &Secret, claims: &impl Serialize, exp: i64) -> Result<Minted, ApiError> {
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(key.expose().as_bytes()),
    )
    .map_err(ApiError::internal)?;
    Ok(Minted { token, expires_at_millis: exp * 1000 })
}

/// Checks a session token's signature, audience and expiry (against our clock, so tests can
/// move time).
pub fn verify(key: &Secret, token: &str, now_millis: i64) -> Result<Claims, ApiError> {
    let claims: Claims = decode(key, token, AUDIENCE, "token")?;
    check_expiry(claims.exp, now_millis, "token").map_err(|_| ApiError::SessionExpired)?;
    Ok(claims)
}

/// Checks an entity authentication token like `verify`.
pub fn verify_entity(key: &Secret, token: &str, now_millis: i64) -> Result<EntityClaims, ApiError> {
    let claims: EntityClaims = decode(key, token, ENTITY_AUDIENCE, ENTITY_HEADER)?;
    check_expiry(claims.exp, now_millis, ENTITY_HEADER)?;
    Ok(claims)
}

/// The header that carries an entity authentication token (as Quest's SDK names it).
pub const ENTITY_HEADER: &str = "entity-authentication-token";

fn decode<C: serde::de::DeserializeOwned>(
    key: &Secret,
    token: &str,
    audience: &str,
    name: &str,
) -> Result<C, ApiError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["aud", "exp"]);
    jsonwebtoken::decode::<C>(token, &DecodingKey::from_secret(key.expose().as_bytes()), &validation)
        .map(|data| data.claims)
        .map_err(|_| ApiError::unauthenticated(format!("{name} is invalid")))
}

fn check_expiry(exp: i64, now_millis: i64, name: &str) -> Result<(), ApiError> {
    if exp * 1000 <= now_millis {
        return Err(ApiError::unauthenticated(format!("{name} has expired")));
    }
    Ok(())
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

    #[test]
    fn entity_and_session_tokens_never_pass_for_each_other() {
        let key = Secret::new("k");
        let entity = mint_entity(&key, "e-1", "k-1", 60, 1_000_000).unwrap();
        let claims = verify_entity(&key, &entity.token, 1_000_000).unwrap();
        assert_eq!((claims.ent.as_str(), claims.kid.as_str()), ("e-1", "k-1"));
        assert!(verify_entity(&key, &entity.token, 1_060_000).unwrap_err().message().contains("expired"));
        let session = mint(&key, "e-1", "u-1", 60, 1_000_000).unwrap();
        assert!(verify(&key, &entity.token, 1_000_000).is_err());
        assert!(verify_entity(&key, &session.token, 1_000_000).is_err());
    }
}
