//! What the credit routes have in common: path checks, field rules, the response shapes.

use serde::Deserialize;
use serde_json::{Value, json};

use shared::auth::Caller;
use shared::domain::account::AccountView;
use shared::domain::ledger::Applied;
use shared::domain::limits::{MAX_AMOUNT, check_text};
use shared::{ApiError, ApiResult, ids};

pub const MAX_REASON_CHARS: usize = 500;

/// The path's entity is the caller's and its user id is well formed.
pub fn check_path(caller: &Caller, entity_id: &str, user_id: &str) -> ApiResult<()> {
    caller.check_entity(entity_id)?;
    ids::validate_user_id("userId", user_id)
}

/// A positive amount of credits, at most 10^12.
pub fn positive_credits(field: &str, credits: u64) -> ApiResult<u64> {
    if (1..=MAX_AMOUNT).contains(&credits) {
        Ok(credits)
    } else {
        Err(ApiError::validation(format!("{field} must be an integer from 1 to {MAX_AMOUNT}")))
    }
}

pub fn check_reason(reason: &Option<String>) -> ApiResult<()> {
    match reason {
        Some(reason) => check_text("reason", reason, MAX_REASON_CHARS),
        None => Ok(()),
    }
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

impl CreditsBody {
    pub fn validate(&self) -> ApiResult<u64> {
        check_reason(&self.reason)?;
        positive_credits("credits", self.credits)
    }
}

/// The account after the change, as the response shows it.
pub fn account_after(applied: &Applied, now: i64) -> AccountView {
    applied.account.view(now)
}

/// `{entryId, account}` plus any extra fields.
pub fn entry_answer(applied: &Applied, now: i64, extra: Value) -> ApiResult<Value> {
    let entry_id = applied.main_entry().map(|e| e.entry_id.clone());
    let mut data = json!({"entryId": entry_id, "account": account_after(applied, now)});
    if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
        data.extend(extra);
    }
    shared::http::envelope(data)
}
