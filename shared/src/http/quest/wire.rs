//! Quest's wire shapes (§8) over ours: field names, the tier and credits objects, history
//! types, and the entity Quest's clients name in headers and queries. The rules stay in the
//! use cases: this module only renames and renders.

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
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

impl From<Recurring> for Period {
    fn from(recurring: Recurring) -> Self {
        match recurring {
            Recurring::None => Period::OneTime,
            Recurring::Day => Period::Daily,
            Recurring::Week => Period::Weekly,
            Recurring::Month => Period::Monthly,
            Recurring::Year => Period::Yearly,
        }
    }
}

/// `addCreditTierForEntity`'s body (plus our `currency`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QuestNewTier {
    /// Quest's clients always choose the tier's id.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    credits_tier_id: String,
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    credits_tier_name: String,
    #[schema(maximum = 1_000_000_000_000_u64)]
    credits_amount: u64,
    #[serde(default)]
    #[schema(maximum = 1_000_000_000_000_u64)]
    extra_credits_amount: u64,
    #[schema(maximum = 1_000_000_000_000_u64)]
    price: u64,
    #[schema(pattern = "^[a-z]{3}$")]
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QuestTierPatch {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub credits_tier_id: String,
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    credits_tier_name: Option<String>,
    #[schema(maximum = 1_000_000_000_000_u64)]
    credits_amount: Option<u64>,
    #[schema(maximum = 1_000_000_000_000_u64)]
    extra_credits_amount: Option<u64>,
    #[schema(maximum = 1_000_000_000_000_u64)]
    price: Option<u64>,
    #[schema(pattern = "^[a-z]{3}$")]
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
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuestTier {
    #[serde(flatten)]
    tier: Tier,
    credits_tier_id: String,
    credits_tier_name: String,
    credits_amount: u64,
    extra_credits_amount: u64,
    recurring_time_period: Period,
}

pub fn tier(tier: &Tier) -> QuestTier {
    QuestTier {
        credits_tier_id: tier.credit_tier_id.clone(),
        credits_tier_name: tier.name.clone(),
        credits_amount: tier.credits,
        extra_credits_amount: tier.bonus_credits,
        recurring_time_period: tier.recurring.into(),
        tier: tier.clone(),
    }
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

/// One line of Quest's `history`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuestHistoryItem {
    credits_amount: i64,
    #[schema(format = DateTime)]
    created_at: String,
    /// `BOUGHT`, `GIFTED`, `SPENT`, `HELD`, `CAPTURED`, `RELEASED`, `EXPIRED`, `REVERSED`, `REGRANTED`.
    #[serde(rename = "type")]
    kind: &'static str,
    reason: Option<String>,
    entry_id: String,
    credits_tier_id: Option<String>,
    intent_id: Option<String>,
    by_user_id: Option<String>,
}

fn history_item(entry: &Entry) -> QuestHistoryItem {
    QuestHistoryItem {
        credits_amount: entry.credits,
        created_at: rfc3339(entry.created_at),
        kind: history_type(entry.kind),
        reason: entry.reason.clone(),
        entry_id: entry.entry_id.clone(),
        credits_tier_id: entry.credit_tier_id.clone(),
        intent_id: entry.payment_intent_id.clone(),
        by_user_id: entry.by_user_id.clone(),
    }
}

/// Quest's credits object: the account (ours beside Quest's fields) with its history,
/// newest first; `currentCreditsTierId` is the tier of the latest purchase.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuestCredits {
    #[serde(flatten)]
    account: AccountView,
    credits_amount: i64,
    total_credits_bought: u64,
    current_credits_tier_id: Option<String>,
    history: Vec<QuestHistoryItem>,
}

pub fn credits(account: &AccountView, entries: &[Entry]) -> QuestCredits {
    let current = entries.iter().find(|e| e.kind == EntryType::Purchase).and_then(|e| e.credit_tier_id.clone());
    QuestCredits {
        credits_amount: account.balance,
        total_credits_bought: account.lifetime_purchased,
        current_credits_tier_id: current,
        history: entries.iter().map(history_item).collect(),
        account: account.clone(),
    }
}

/// The entity a Quest request acts on: the caller's key's, and the `entityId` header's if sent.
pub fn check_entity(caller: &Caller, headers: &HeaderMap, entity_id: &str) -> Result<(), Error> {
    caller.check_entity(entity_id)?;
    check_entity_header(headers, entity_id)
}

/// Quest's credits object of the entity's pool: as a user's, without `userId` (the pool is
/// nobody's); each history item names who acted (`byUserId`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuestPoolCredits {
    entity_id: String,
    balance: i64,
    held: u64,
    available: i64,
    lifetime_purchased: u64,
    lifetime_granted: u64,
    lifetime_consumed: u64,
    lifetime_reversed: u64,
    #[schema(format = DateTime)]
    updated_at: Option<String>,
    credits_amount: i64,
    total_credits_bought: u64,
    current_credits_tier_id: Option<String>,
    history: Vec<QuestHistoryItem>,
}

pub fn pool_credits(account: &AccountView, entries: &[Entry]) -> QuestPoolCredits {
    let QuestCredits { credits_amount, total_credits_bought, current_credits_tier_id, history, .. } =
        credits(account, entries);
    QuestPoolCredits {
        entity_id: account.entity_id.clone(),
        balance: account.balance,
        held: account.held,
        available: account.available,
        lifetime_purchased: account.lifetime_purchased,
        lifetime_granted: account.lifetime_granted,
        lifetime_consumed: account.lifetime_consumed,
        lifetime_reversed: account.lifetime_reversed,
        updated_at: account.updated_at.map(rfc3339),
        credits_amount,
        total_credits_bought,
        current_credits_tier_id,
        history,
    }
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserRouteQuery {
    /// Required (refused naming it when missing).
    #[schema(required = true)]
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
#[derive(Debug, Deserialize, ToSchema)]
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
