//! Who is calling, and what they may do (§2 roles).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::app::AppState;
use crate::auth::{secrets, token};
use crate::domain::entity::{ApiKey, Entity};
use crate::error::Error as ApiError;
use crate::ids::is_api_key;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The entity's backend: `apikey` + `apisecret`.
    Server,
    /// A user session whose user id is one of the entity's owners.
    Owner(String),
    /// Any other user session.
    User(String),
}

#[derive(Debug, Clone)]
pub struct Caller {
    pub entity: Arc<Entity>,
    pub role: Role,
    /// The API key the request was made with.
    pub apikey: String,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        authenticate(&parts.headers, state).await
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn authenticate(headers: &HeaderMap, state: &AppState) -> Result<Caller, ApiError> {
    let apikey = header(headers, "apikey").ok_or_else(|| ApiError::unauthenticated("apikey header is required"))?;
    let key = lookup_key(state, apikey).await?;
    let role = match (header(headers, "apisecret"), header(headers, token::ENTITY_HEADER)) {
        (Some(secret), _) if secrets::matches(secret, &key.secret_hash) => Role::Server,
        (Some(_), _) => return Err(ApiError::unauthenticated("apisecret is wrong")),
        (None, Some(entity_token)) => {
            check_entity_token(state, entity_token, &key)?;
            // Quest's SDK sends its user session beside the entity token: a bad one is
            // refused, never ignored.
            if header(headers, "token").is_some() {
                session_user(headers, state, &key.entity_id)?;
            }
            Role::Server
        }
        (None, None) => Role::User(session_user(headers, state, &key.entity_id)?),
    };
    let entity = lookup_entity(state, &key.entity_id).await?;
    let role = match role {
        Role::User(user) if entity.is_owner(&user) => Role::Owner(user),
        other => other,
    };
    Ok(Caller { entity, role, apikey: key.apikey })
}

/// An entity authentication token grants the server role, beside the very key that minted
/// it only: another entity's token, or one whose key was revoked, never passes.
fn check_entity_token(state: &AppState, entity_token: &str, key: &ApiKey) -> Result<(), ApiError> {
    let claims = token::verify_entity(&state.config.token_signing_key, entity_token, state.clock.now_millis())?;
    if claims.ent != key.entity_id || claims.kid != key.apikey {
        return Err(ApiError::unauthenticated(format!("{} was not issued for this apikey", token::ENTITY_HEADER)));
    }
    Ok(())
}

/// The user of a valid `userid` + `token` pair bound to this entity.
fn session_user(headers: &HeaderMap, state: &AppState, entity_id: &str) -> Result<String, ApiError> {
    let (Some(user_id), Some(token)) = (header(headers, "userid"), header(headers, "token")) else {
        return Err(ApiError::unauthenticated("apisecret, or userid and token headers, are required"));
    };
    let claims = token::verify(&state.config.token_signing_key, token, state.clock.now_millis())?;
    if claims.ent != entity_id {
        return Err(ApiError::unauthenticated("token was not issued for this apikey's entity"));
    }
    if claims.sub != user_id {
        return Err(ApiError::unauthenticated("userid does not match the token"));
    }
    Ok(claims.sub)
}

async fn lookup_key(state: &AppState, apikey: &str) -> Result<ApiKey, ApiError> {
    let unknown = || ApiError::unauthenticated("apikey is unknown");
    if !is_api_key(apikey) {
        return Err(unknown());
    }
    let now = state.clock.now_millis();
    if let Some(key) = state.auth.api_keys.get(apikey, now) {
        return Ok(key);
    }
    let key = state.store.get_api_key(apikey).await?.ok_or_else(unknown)?;
    state.auth.api_keys.put(apikey, key.clone(), now);
    Ok(key)
}

async fn lookup_entity(state: &AppState, entity_id: &str) -> Result<Arc<Entity>, ApiError> {
    let now = state.clock.now_millis();
    if let Some(entity) = state.auth.entities.get(entity_id, now) {
        return Ok(entity);
    }
    let entity = state
        .store
        .get_entity(entity_id)
        .await?
        .map(Arc::new)
        .ok_or_else(|| ApiError::unauthenticated("apikey is unknown"))?;
    state.auth.entities.put(entity_id, entity.clone(), now);
    Ok(entity)
}

impl Caller {
    pub fn entity_id(&self) -> &str {
        &self.entity.entity_id
    }

    /// The path's entity must be the key's entity.
    pub fn check_entity(&self, entity_id: &str) -> Result<(), ApiError> {
        if self.entity.entity_id == entity_id {
            Ok(())
        } else {
            Err(ApiError::forbidden("apikey belongs to another entity"))
        }
    }

    pub fn is_server(&self) -> bool {
        self.role == Role::Server
    }

    /// Tier management: owners and the server.
    pub fn require_manager(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Server | Role::Owner(_) => Ok(()),
            Role::User(_) => Err(ApiError::forbidden("only the entity's owners or its server may do this")),
        }
    }

    pub fn require_server(&self) -> Result<(), ApiError> {
        if self.is_server() {
            Ok(())
        } else {
            Err(ApiError::forbidden("this operation needs the apisecret (server role)"))
        }
    }

    /// Reading a user's data: that user, an owner, or the server.
    pub fn require_reader_of(&self, user_id: &str) -> Result<(), ApiError> {
        match &self.role {
            Role::Server | Role::Owner(_) => Ok(()),
            Role::User(me) if me == user_id => Ok(()),
            Role::User(_) => Err(ApiError::forbidden("a user may only read their own data")),
        }
    }

    /// The session's user; `None` for the server role (an apisecret or an entity token).
    pub fn acting_user(&self) -> Option<&str> {
        match &self.role {
            Role::Server => None,
            Role::Owner(me) | Role::User(me) => Some(me),
        }
    }

    /// Spending from the entity's pool (spends, holds): its server and owners, and any of its
    /// users once the entity opens the pool (`settings.poolOpenToUsers`).
    pub fn require_pool_spender(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Server | Role::Owner(_) => Ok(()),
            Role::User(_) if self.entity.settings.pool_open_to_users => Ok(()),
            Role::User(_) => Err(ApiError::forbidden("only the entity's owners or its server may spend from its pool")),
        }
    }

    /// Reading the entity's pool (balance, history, holds): the same rule as spending. Buying
    /// into the pool (a payment for it) is open to any user of the entity.
    pub fn require_pool_reader(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Server | Role::Owner(_) => Ok(()),
            Role::User(_) if self.entity.settings.pool_open_to_users => Ok(()),
            Role::User(_) => Err(ApiError::forbidden("only the entity's owners or its server may read its pool")),
        }
    }

    /// Acting on a user's credits or payments: that user or the server.
    pub fn require_actor_for(&self, user_id: &str) -> Result<(), ApiError> {
        match &self.role {
            Role::Server => Ok(()),
            Role::Owner(me) | Role::User(me) if me == user_id => Ok(()),
            _ => Err(ApiError::forbidden("a user may only act on their own account")),
        }
    }
}
