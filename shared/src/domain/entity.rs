//! Entities (the businesses selling credits) and their API keys.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::as_rfc3339;
use crate::domain::limits::{check_currency, check_text};
use crate::error::Error;
use crate::ids::validate_user_id;

pub const MAX_OWNERS: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Entity {
    pub entity_id: String,
    pub name: String,
    pub owner_user_ids: Vec<String>,
    pub currency: String,
    /// Active API keys (public ids only).
    #[serde(rename = "apikeys")]
    pub api_keys: Vec<String>,
    #[serde(with = "as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(with = "as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
    /// Entities created before settings existed read as the defaults.
    #[serde(default)]
    pub settings: EntitySettings,
}

/// What an entity decides for itself (`GET|PUT /api/entities/{entityId}/settings`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EntitySettings {
    /// Whether every user of the entity may spend from and read its credit pool, not only
    /// its owners and its server (least privilege by default).
    #[serde(default)]
    pub pool_open_to_users: bool,
    /// `credits.low` fires when an account's available credits drop below it (§9); 0: off.
    #[serde(default)]
    pub low_balance_threshold: u64,
}

/// A change to some of an entity's settings; `None` keeps a setting as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingsChange {
    pub pool_open_to_users: Option<bool>,
    pub low_balance_threshold: Option<u64>,
}

impl SettingsChange {
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(threshold) = self.low_balance_threshold {
            crate::domain::limits::check_amount("lowBalanceThreshold", threshold)?;
        }
        Ok(())
    }

    pub fn applied_to(&self, current: &EntitySettings) -> EntitySettings {
        EntitySettings {
            pool_open_to_users: self.pool_open_to_users.unwrap_or(current.pool_open_to_users),
            low_balance_threshold: self.low_balance_threshold.unwrap_or(current.low_balance_threshold),
        }
    }
}

impl Entity {
    pub fn is_owner(&self, user_id: &str) -> bool {
        self.owner_user_ids.iter().any(|owner| owner == user_id)
    }
}

/// An API key as stored: the secret only as a hash.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub apikey: String,
    pub entity_id: String,
    pub secret_hash: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({"name": "Acme", "ownerUserIds": ["owner-1"], "currency": "usd"}))]
pub struct NewEntity {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: String,
    #[serde(default)]
    #[schema(schema_with = owner_ids_schema)]
    pub owner_user_ids: Vec<String>,
    #[schema(pattern = "^[a-z]{3}$")]
    pub currency: String,
}

impl NewEntity {
    pub fn validate(&self) -> Result<(), Error> {
        check_text("name", &self.name, 100)?;
        check_currency("currency", &self.currency)?;
        validate_owners(&self.owner_user_ids)
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OwnersUpdate {
    #[schema(schema_with = owner_ids_schema)]
    pub owner_user_ids: Vec<String>,
}

/// At most `MAX_OWNERS` user ids (1-128 chars of `[A-Za-z0-9._:@-]`).
fn owner_ids_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let user_id = ObjectBuilder::new().schema_type(Type::String).pattern(Some("^[A-Za-z0-9._:@-]{1,128}$"));
    ArrayBuilder::new().items(user_id).max_items(Some(MAX_OWNERS)).build()
}

pub fn validate_owners(owners: &[String]) -> Result<(), Error> {
    if owners.len() > MAX_OWNERS {
        return Err(Error::validation(format!("ownerUserIds may hold at most {MAX_OWNERS} ids")));
    }
    owners.iter().try_for_each(|owner| validate_user_id("ownerUserIds", owner))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_new_entities() {
        let ok = NewEntity { name: "Acme".into(), owner_user_ids: vec!["u-1".into()], currency: "usd".into() };
        assert!(ok.validate().is_ok());
        let bad_owner = NewEntity { owner_user_ids: vec!["bad id".into()], ..ok };
        assert!(bad_owner.validate().unwrap_err().message().starts_with("ownerUserIds"));
    }
}
