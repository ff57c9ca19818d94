//! Quest's wire shapes (§8) over ours: field names, the tier and credits objects, history
//! types, and the entity Quest's clients name in headers and queries. The rules stay in the
//! use cases: this module only renames and renders.

use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::accounts::AccountRef;
use crate::auth::{Caller, Role};
use crate::clock::rfc3339;
use crate::domain::account::{AccountView, Entry, EntryType};
use crate::domain::tier::{NewTier, Recurring, Tier, TierPatch};
use crate::error::Error;
use crate::ids::validate_user_id;

/// Our field names as Quest's clients name them: (ours, Quest's).
pub const TIER_FIELDS: &[(&str, &str)] = &[
    ("creditTierId", "creditsTierId"),
    ("name", "creditsTierName"),
    ("credits", "creditsAmount"),
    ("bonusCredits", "extraCreditsAmount"),
    ("recurring", "recurringTimePeriod"),
];
pub const CREDITS_FIELDS: &[(&str, &str)] = &[("credits", "creditsAmount")];
pub const PAYMENT_FIELDS: &[(&str, &str)] = &[("paymentIntentId", "intentId"), ("creditTierId", "creditsTierId")];

/// A refusal whose message names our fields, renamed to Quest's (whole words only).
pub fn renamed(error: Error, fields: &[(&str, &str)]) -> Error {
    match error {
        Error::Validation(message) => Error::Validation(rename_words(&message, fields)),
        Error::NotFound(message) => Error::NotFound(rename_words(&message, fields)),
        Error::AlreadyExists(message) => Error::AlreadyExists(rename_words(&message, fields)),
        Error::VersionConflict(message) => Error::VersionConflict(rename_words(&message, fields)),
        other => other,
    }
}

fn rename_words(message: &str, fields: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(message.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let quest = fields.iter().find(|(ours, _)| ours == word).map_or(word.as_str(), |(_, quest)| quest);
        out.push_str(quest);
        word.clear();
    };
    for c in message.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// `recurringTimePeriod`: Quest's three values, and ours Quest lacks as `DAILY` / `WEEKLY`.
#[derive(Debug, Clone, Copy, Deserialize)]
pub enum Period {
    #[serde(rename = "ONETIME")]
    OneTime,
    #[serde(rename = "DAILY")]
    Daily,
    #[serde(rename = "WEEKLY")]
    Weekly,
    #[serde(rename = "MONTHLY")]
    Monthly,
    #[serde(rename = "YEARLY")]
    Yearly,
}

impl From<Period> for Recurring {
    fn from(period: Period) -> Self {
        match period {
            Period::OneTime => Recurring::None,
            Period::Daily => Recurring::Day,
            Period::Weekly => Recurring::Week,
            Period::Monthly => Recurring::Month,
            Period::Yearly => Recurring::Year,
        }
    }
}

pub fn period_name(recurring: Recurring) -> &'static str {
    match recurring {
        Recurring::None => "ONETIME",
        Recurring::Day => "DAILY",
        Recurring::Week => "WEEKLY",
        Recurring::Month => "MONTHLY",
        Recurring::Year => "YEARLY",
    }
}

/// `addCreditTierForEntity`'s body (plus our `currency`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QuestNewTier {
    /// Quest's clients always choose the tier's id.
    credits_tier_id: String,
    credits_tier_name: String,
    credits_amount: u64,
    #[serde(default)]
    extra_credits_amount: u64,
    price: u64,
    currency: Option<String>,
    recurring_time_period: Option<Period>,
}

impl From<QuestNewTier> for NewTier {
    fn from(q: QuestNewTier) -> Self {
        NewTier {
            credit_tier_id: Some(q.credits_tier_id),
            name: q.credits_tier_name,
            credits: q.credits_amount,
            bonus_credits: q.extra_credits_amount,
            price: q.price,
            currency: q.currency,
            recurring: q.recurring_time_period.map(Recurring::from),
        }
    }
}

/// `updateCreditTierForEntity`'s body: the tier named by `creditsTierId`, any other field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QuestTierPatch {
    pub credits_tier_id: String,
    credits_tier_name: Option<String>,
    credits_amount: Option<u64>,
    extra_credits_amount: Option<u64>,
    price: Option<u64>,
    currency: Option<String>,
    recurring_time_period: Option<Period>,
}

impl From<QuestTierPatch> for TierPatch {
    fn from(q: QuestTierPatch) -> Self {
        TierPatch {
            name: q.credits_tier_name,
            credits: q.credits_amount,
            bonus_credits: q.extra_credits_amount,
            price: q.price,
            currency: q.currency,
            recurring: q.recurring_time_period.map(Recurring::from),
            ..TierPatch::default()
        }
    }
}

/// Quest's tier object; our own fields stay beside Quest's.
pub fn tier(tier: &Tier) -> Value {
    // A tier always serializes (plain fields); the fallback keeps Quest's fields regardless.
    let mut view = serde_json::to_value(tier).unwrap_or_else(|_| json!({}));
    view["creditsTierId"] = json!(tier.credit_tier_id);
    view["creditsTierName"] = json!(tier.name);
    view["creditsAmount"] = json!(tier.credits);
    view["extraCreditsAmount"] = json!(tier.bonus_credits);
    view["recurringTimePeriod"] = json!(period_name(tier.recurring));
    view
}

/// Quest's history type of each of our entry types.
pub fn history_type(kind: EntryType) -> &'static str {
    match kind {
        EntryType::Purchase => "BOUGHT",
        EntryType::Grant => "GIFTED",
        EntryType::Decrement => "SPENT",
        EntryType::Hold => "HELD",
        EntryType::Capture => "CAPTURED",
        EntryType::Release => "RELEASED",
        EntryType::Expire => "EXPIRED",
        EntryType::Reversal => "REVERSED",
        EntryType::Regrant => "REGRANTED",
    }
}

fn history_item(entry: &Entry) -> Value {
    json!({
        "creditsAmount": entry.credits,
        "createdAt": rfc3339(entry.created_at),
        "type": history_type(entry.kind),
        "reason": entry.reason,
        "entryId": entry.entry_id,
        "creditsTierId": entry.credit_tier_id,
        "intentId": entry.payment_intent_id,
        "byUserId": entry.by_user_id,
    })
}

/// Quest's credits object: the account (ours beside Quest's fields) with its history,
/// newest first; `currentCreditsTierId` is the tier of the latest purchase.
pub fn credits(account: &AccountView, entries: &[Entry]) -> Value {
    // An account always serializes (plain fields); the fallback keeps Quest's fields regardless.
    let mut view = serde_json::to_value(account).unwrap_or_else(|_| json!({}));
    view["creditsAmount"] = json!(account.balance);
    view["totalCreditsBought"] = json!(account.lifetime_purchased);
    let current = entries.iter().find(|e| e.kind == EntryType::Purchase).and_then(|e| e.credit_tier_id.clone());
    view["currentCreditsTierId"] = json!(current);
    view["history"] = Value::Array(entries.iter().map(history_item).collect());
    view
}

/// The entity a Quest request acts on: the caller's key's, and the `entityId` header's if sent.
pub fn check_entity(caller: &Caller, headers: &HeaderMap, entity_id: &str) -> Result<(), Error> {
    caller.check_entity(entity_id)?;
    check_entity_header(headers, entity_id)
}

/// Quest's credits object of the entity's pool: as a user's, without `userId` (the pool is
/// nobody's); each history item names who acted (`byUserId`).
pub fn pool_credits(account: &AccountView, entries: &[Entry]) -> Value {
    let mut view = credits(account, entries);
    if let Some(object) = view.as_object_mut() {
        object.remove("userId");
    }
    view
}

/// Quest's clients send the SDK's configured entity as an `entityId` header: it must be the
/// entity the request acts on.
pub fn check_entity_header(headers: &HeaderMap, entity_id: &str) -> Result<(), Error> {
    match headers.get("entityid").map(|v| v.to_str()) {
        None => Ok(()),
        Some(Ok(named)) if named == entity_id => Ok(()),
        Some(_) => Err(Error::forbidden("the entityId header names another entity than the request")),
    }
}

/// The user a Quest request acts as: a session's own (a `userId` query or header naming
/// another → 403); for the server role, the user it names (`?userId=`, else the `userId`
/// header), if any.
pub fn acting_user<'a>(
    caller: &'a Caller,
    headers: &'a HeaderMap,
    query: Option<&'a str>,
) -> Result<Option<&'a str>, Error> {
    let header = headers.get("userid").and_then(|v| v.to_str().ok());
    match &caller.role {
        Role::User(me) | Role::Owner(me) => {
            if [query, header].into_iter().flatten().any(|named| named != me) {
                return Err(Error::forbidden("userId names another user than the session's"));
            }
            Ok(Some(me))
        }
        Role::Server => {
            let named = query.or(header);
            if let Some(user_id) = named {
                validate_user_id("userId", user_id)?;
            }
            Ok(named)
        }
    }
}

/// The query of Quest's user routes (`/api/users/{userId}/…?entityId=`): the entity is
/// required; other parameters (the SDK's `_queryParams`, `_body` leaked by buy-credits) are
/// read, not refused.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRouteQuery {
    entity_id: Option<String>,
}

impl UserRouteQuery {
    /// The account a user route acts on: the query's entity, which the key and any
    /// `entityId` header must name, and the path's well-formed user id.
    pub fn account<'a>(
        &'a self,
        caller: &Caller,
        headers: &HeaderMap,
        user_id: &'a str,
    ) -> Result<AccountRef<'a>, Error> {
        let entity_id =
            self.entity_id.as_deref().ok_or_else(|| Error::validation("entityId query parameter is required"))?;
        check_entity(caller, headers, entity_id)?;
        validate_user_id("userId", user_id)?;
        Ok(AccountRef::user(entity_id, user_id))
    }
}

/// The query of Quest's entity routes (`/api/entities/{entityId}/…`): `?userId=` names the
/// acting user (see `acting_user`); `?entityId=`, when sent, must be the path's entity; other
/// parameters (React's, the SDK's `_queryParams` and leaked `_body`) are read, not refused.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityRouteQuery {
    user_id: Option<String>,
    entity_id: Option<String>,
}

impl EntityRouteQuery {
    /// The path's entity is the one the key, any `entityId` header and any `?entityId=` name.
    pub fn check(&self, caller: &Caller, headers: &HeaderMap, entity_id: &str) -> Result<(), Error> {
        check_entity(caller, headers, entity_id)?;
        match self.entity_id.as_deref() {
            Some(named) if named != entity_id => {
                Err(Error::forbidden("the entityId query parameter names another entity than the path"))
            }
            _ => Ok(()),
        }
    }

    /// The user the request acts as (`acting_user`, with this query's `userId`).
    pub fn acting_user<'a>(&'a self, caller: &'a Caller, headers: &'a HeaderMap) -> Result<Option<&'a str>, Error> {
        acting_user(caller, headers, self.user_id.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_words_are_renamed() {
        let e = renamed(Error::validation("credits + bonusCredits must be positive; credits_x"), TIER_FIELDS);
        assert_eq!(e.message(), "creditsAmount + extraCreditsAmount must be positive; credits_x");
        let e = renamed(Error::validation("unknown field `foo`, expected `creditTierId`"), PAYMENT_FIELDS);
        assert_eq!(e.message(), "unknown field `foo`, expected `creditsTierId`");
    }
}
