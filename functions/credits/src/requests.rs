//! What the credit routes have in common: the path's account (a user's, or the entity's
//! pool) with who may act on it, and the body of spends and grants.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde::Deserialize;
use utoipa::ToSchema;

use shared::auth::Caller;
use shared::usecases::AccountRef;
use shared::{Error, Fallible, ids};

/// The account a credit route names: `…/users/{user_id}/…` or `…/pool/…` (no `user_id`),
/// and the hold its path names, if any. Every handler serves both, so each rule is written
/// once: only who may act differs, and `Target`'s methods decide that.
pub struct Target {
    entity_id: String,
    /// `None` on the pool's routes.
    user_id: Option<String>,
    hold_id: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Target {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(mut params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::validation("the path's ids are malformed"))?;
        let entity_id = params.remove("entityId").ok_or_else(|| Error::internal("route without entityId"))?;
        Ok(Self { entity_id, user_id: params.remove("userId"), hold_id: params.remove("holdId") })
    }
}

impl Target {
    pub fn entity_id(&self) -> &str {
        &self.entity_id
    }

    pub fn hold_id(&self) -> Fallible<&str> {
        self.hold_id.as_deref().ok_or_else(|| Error::internal("hold route without holdId"))
    }

    /// The path's account: its entity is the caller's and its user id is well formed.
    fn account(&self, caller: &Caller) -> Fallible<AccountRef<'_>> {
        caller.check_entity(&self.entity_id)?;
        match &self.user_id {
            Some(user_id) => {
                ids::validate_user_id("userId", user_id)?;
                Ok(AccountRef::user(&self.entity_id, user_id))
            }
            None => Ok(AccountRef::pool(&self.entity_id)),
        }
    }

    /// Reading: a user's own data (or an owner, or the server); the pool per
    /// `Caller::require_pool_reader`.
    pub fn to_read<'a>(&'a self, caller: &Caller) -> Fallible<AccountRef<'a>> {
        let account = self.account(caller)?;
        match &self.user_id {
            Some(user_id) => caller.require_reader_of(user_id)?,
            None => caller.require_pool_reader()?,
        }
        Ok(account)
    }

    /// Spending (spends, holds): the user or the server; the pool per
    /// `Caller::require_pool_spender`. The entries record the session's user as `byUserId`,
    /// and nobody when the server acts as itself (see `named`).
    pub fn to_spend<'a>(&'a self, caller: &'a Caller) -> Fallible<AccountRef<'a>> {
        let account = self.account(caller)?;
        match &self.user_id {
            Some(user_id) => caller.require_actor_for(user_id)?,
            None => caller.require_pool_spender()?,
        }
        Ok(account.by_maybe(caller.acting_user()))
    }

    /// Granting and recording purchases paid elsewhere: the server, acting as itself.
    pub fn to_grant<'a>(&'a self, caller: &Caller) -> Fallible<AccountRef<'a>> {
        let account = self.account(caller)?;
        caller.require_server()?;
        Ok(account)
    }
}

/// The server may name the user it spends for (`byUserId` in the body); a session always
/// acts as its own user, so it may not name one.
pub fn named<'a>(account: AccountRef<'a>, caller: &Caller, named: Option<&'a str>) -> Fallible<AccountRef<'a>> {
    let Some(by) = named else { return Ok(account) };
    caller.require_server().map_err(|_| Error::forbidden("only the server role may set byUserId"))?;
    ids::validate_user_id("byUserId", by)?;
    Ok(account.by(by))
}

/// `{credits, reason?, idempotencyKey?, byUserId?}`: the body of spends and grants.
/// `byUserId` (server only) names the user a spend is made for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({"credits": 5, "reason": "one render"}))]
pub struct CreditsBody {
    #[schema(minimum = 1, maximum = 1_000_000_000_000_u64)]
    pub credits: u64,
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    pub reason: Option<String>,
    #[allow(dead_code)] // read by the idempotency layer from the raw body
    #[schema(pattern = "^[\\x20-\\x7E]{1,255}$")]
    pub idempotency_key: Option<String>,
    #[schema(pattern = "^[A-Za-z0-9._:@-]{1,128}$")]
    pub by_user_id: Option<String>,
}
