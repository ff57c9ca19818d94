//! What the credit routes have in common: the path's account, the body of spends and grants.

use serde::Deserialize;

use shared::auth::Caller;
use shared::usecases::AccountRef;
use shared::{Fallible, ids};

/// The path's account: its entity is the caller's and its user id is well formed.
pub fn account<'a>(caller: &Caller, entity_id: &'a str, user_id: &'a str) -> Fallible<AccountRef<'a>> {
    caller.check_entity(entity_id)?;
    ids::validate_user_id("userId", user_id)?;
    Ok(AccountRef { entity_id, user_id })
}

/// `{credits, reason?, idempotencyKey?}`: the body of spends and grants.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreditsBody {
    pub credits: u64,
    pub reason: Option<String>,
    #[allow(dead_code)] // read by the idempotency layer from the raw body
    pub idempotency_key: Option<String>,
}
