//! Credit tiers (§3): what an entity sells, and the rules for creating and editing them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::as_rfc3339;
use crate::domain::limits::{check_amount, check_currency, check_text};
use crate::error::Error;
use crate::ids::validate_tier_id;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Recurring {
    None,
    Day,
    Week,
    Month,
    Year,
}

impl Recurring {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::Year => "year",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Self::None, Self::Day, Self::Week, Self::Month, Self::Year].into_iter().find(|r| r.as_str() == value)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TierStatus {
    Active,
    Archived,
}

impl TierStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Archived => "archived",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Self::Active, Self::Archived].into_iter().find(|s| s.as_str() == value)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tier {
    pub credit_tier_id: String,
    pub entity_id: String,
    pub name: String,
    pub credits: u64,
    pub bonus_credits: u64,
    pub price: u64,
    pub currency: String,
    pub recurring: Recurring,
    pub status: TierStatus,
    pub version: u64,
    #[serde(with = "as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(with = "as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

impl Tier {
    /// What one purchase of this tier credits.
    pub fn total_credits(&self) -> u64 {
        self.credits + self.bonus_credits
    }

    fn validate(&self) -> Result<(), Error> {
        check_text("name", &self.name, 100)?;
        check_amount("credits", self.credits)?;
        check_amount("bonusCredits", self.bonus_credits)?;
        check_amount("price", self.price)?;
        check_currency("currency", &self.currency)?;
        if self.total_credits() == 0 {
            return Err(Error::validation("credits + bonusCredits must be at least 1"));
        }
        Ok(())
    }
}

/// Q1 order: by price, then name.
pub fn sort_for_listing(tiers: &mut [Tier]) {
    tiers.sort_by(|a, b| a.price.cmp(&b.price).then_with(|| a.name.cmp(&b.name)));
}

/// Q8 body.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"creditTierId": "starter", "name": "Starter", "credits": 100, "bonusCredits": 20, "price": 999}))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewTier {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub credit_tier_id: Option<String>,
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: String,
    #[schema(maximum = 1_000_000_000_000_u64)]
    pub credits: u64,
    #[serde(default)]
    #[schema(maximum = 1_000_000_000_000_u64)]
    pub bonus_credits: u64,
    #[schema(maximum = 1_000_000_000_000_u64)]
    pub price: u64,
    #[schema(pattern = "^[a-z]{3}$")]
    pub currency: Option<String>,
    pub recurring: Option<Recurring>,
}

impl NewTier {
    /// Builds a valid tier; `generated_id` is used when the client chose none.
    pub fn into_tier(
        self,
        entity_id: &str,
        default_currency: &str,
        generated_id: String,
        now: i64,
    ) -> Result<Tier, Error> {
        if let Some(id) = &self.credit_tier_id {
            validate_tier_id("creditTierId", id)?;
        }
        let tier = Tier {
            credit_tier_id: self.credit_tier_id.unwrap_or(generated_id),
            entity_id: entity_id.to_owned(),
            name: self.name,
            credits: self.credits,
            bonus_credits: self.bonus_credits,
            price: self.price,
            currency: self.currency.unwrap_or_else(|| default_currency.to_owned()),
            recurring: self.recurring.unwrap_or(Recurring::None),
            status: TierStatus::Active,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        tier.validate()?;
        Ok(tier)
    }
}

/// Q9 body: any subset of the editable fields.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"price": 1299, "version": 1}))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TierPatch {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub credit_tier_id: Option<String>,
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: Option<String>,
    #[schema(maximum = 1_000_000_000_000_u64)]
    pub credits: Option<u64>,
    #[schema(maximum = 1_000_000_000_000_u64)]
    pub bonus_credits: Option<u64>,
    #[schema(maximum = 1_000_000_000_000_u64)]
    pub price: Option<u64>,
    #[schema(pattern = "^[a-z]{3}$")]
    pub currency: Option<String>,
    pub recurring: Option<Recurring>,
    pub status: Option<TierStatus>,
    pub version: Option<u64>,
}

impl TierPatch {
    /// Checks what can be checked without the stored tier.
    pub fn validate_shape(&self, path_tier_id: &str) -> Result<(), Error> {
        if self.credit_tier_id.as_deref().is_some_and(|id| id != path_tier_id) {
            return Err(Error::validation("creditTierId must equal the tier id in the path"));
        }
        let changes_something = self.name.is_some()
            || self.credits.is_some()
            || self.bonus_credits.is_some()
            || self.price.is_some()
            || self.currency.is_some()
            || self.recurring.is_some()
            || self.status.is_some();
        if !changes_something {
            return Err(Error::validation(
                "body must set at least one of name, credits, bonusCredits, price, currency, recurring, status",
            ));
        }
        Ok(())
    }

    /// The edited tier, one version on; fails on a stale `version` or an invalid result.
    pub fn apply(self, current: &Tier, now: i64) -> Result<Tier, Error> {
        if self.version.is_some_and(|v| v != current.version) {
            return Err(Error::VersionConflict(format!(
                "version {} is stale; the tier is at version {}",
                self.version.unwrap_or(0),
                current.version
            )));
        }
        let mut next = current.clone();
        if let Some(name) = self.name {
            next.name = name;
        }
        next.credits = self.credits.unwrap_or(next.credits);
        next.bonus_credits = self.bonus_credits.unwrap_or(next.bonus_credits);
        next.price = self.price.unwrap_or(next.price);
        if let Some(currency) = self.currency {
            next.currency = currency;
        }
        next.recurring = self.recurring.unwrap_or(next.recurring);
        next.status = self.status.unwrap_or(next.status);
        next.version = current.version + 1;
        next.updated_at = now;
        next.validate()?;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_tier(credits: u64, bonus: u64) -> NewTier {
        NewTier {
            credit_tier_id: None,
            name: "Starter".into(),
            credits,
            bonus_credits: bonus,
            price: 999,
            currency: None,
            recurring: None,
        }
    }

    #[test]
    fn creation_fills_defaults() {
        let tier = new_tier(100, 20).into_tier("e-1", "usd", "ct-x".into(), 5).unwrap();
        assert_eq!(tier.credit_tier_id, "ct-x");
        assert_eq!(tier.currency, "usd");
        assert_eq!(tier.recurring, Recurring::None);
        assert_eq!(tier.status, TierStatus::Active);
        assert_eq!((tier.version, tier.total_credits()), (1, 120));
    }

    #[test]
    fn creation_rejects_an_empty_pack_and_huge_numbers() {
        let err = new_tier(0, 0).into_tier("e-1", "usd", "ct-x".into(), 5).unwrap_err();
        assert!(err.message().contains("credits + bonusCredits"));
        let err = new_tier(1_000_000_000_001, 0).into_tier("e-1", "usd", "x".into(), 5).unwrap_err();
        assert!(err.message().starts_with("credits"));
    }

    #[test]
    fn patch_bumps_version_and_detects_stale_writes() {
        let tier = new_tier(100, 0).into_tier("e-1", "usd", "ct-x".into(), 5).unwrap();
        let patch = TierPatch { price: Some(1), version: Some(1), ..Default::default() };
        let next = patch.apply(&tier, 9).unwrap();
        assert_eq!((next.price, next.version, next.updated_at), (1, 2, 9));
        let stale = TierPatch { price: Some(2), version: Some(1), ..Default::default() };
        assert!(matches!(stale.apply(&next, 10).unwrap_err(), Error::VersionConflict { .. }));
    }

    #[test]
    fn patch_must_change_something_and_match_the_path() {
        assert!(TierPatch::default().validate_shape("ct-x").is_err());
        let wrong_id = TierPatch { credit_tier_id: Some("ct-y".into()), price: Some(1), ..Default::default() };
        assert!(wrong_id.validate_shape("ct-x").unwrap_err().message().starts_with("creditTierId"));
    }

    #[test]
    fn listing_sorts_by_price_then_name() {
        let make = |name: &str, price| {
            let mut t = new_tier(1, 0).into_tier("e", "usd", name.into(), 0).unwrap();
            t.name = name.into();
            t.price = price;
            t
        };
        let mut tiers = vec![make("b", 5), make("a", 5), make("z", 1)];
        sort_for_listing(&mut tiers);
        let names: Vec<_> = tiers.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["z", "a", "b"]);
    }
}
