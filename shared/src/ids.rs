//! Identifier formats (§1): generation and validation of path and body ids.

use crate::error::Error;

pub fn new_entity_id() -> String {
    format!("e-{}", uuid::Uuid::new_v4())
}

pub fn new_api_key() -> String {
    format!("k-{}", uuid::Uuid::new_v4())
}

pub fn new_tier_id() -> String {
    format!("ct-{}", uuid::Uuid::new_v4())
}

/// Time-ordered, opaque ids for ledger entries and holds.
pub fn new_ordered_id() -> String {
    ulid::Ulid::new().to_string()
}

fn is_prefixed_uuid(value: &str, prefix: &str) -> bool {
    value.strip_prefix(prefix).is_some_and(|rest| uuid::Uuid::try_parse(rest).is_ok())
}

pub fn validate_entity_id(value: &str) -> Result<(), Error> {
    if is_prefixed_uuid(value, "e-") { Ok(()) } else { Err(Error::validation("entityId must look like e-<uuid>")) }
}

pub fn is_api_key(value: &str) -> bool {
    is_prefixed_uuid(value, "k-")
}

/// A `userId` is the entity's own id for its user: 1–128 chars of `[A-Za-z0-9._:@-]`.
pub fn validate_user_id(field: &str, value: &str) -> Result<(), Error> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._:@-".contains(c);
    if (1..=128).contains(&value.len()) && value.chars().all(allowed) {
        Ok(())
    } else {
        Err(Error::validation(format!("{field} must be 1-128 characters of [A-Za-z0-9._:@-]")))
    }
}

/// Generated `ct-<uuid>` ids and client-chosen ones both match `[A-Za-z0-9_-]{1,64}`.
pub fn validate_tier_id(field: &str, value: &str) -> Result<(), Error> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if (1..=64).contains(&value.len()) && value.chars().all(allowed) {
        Ok(())
    } else {
        Err(Error::validation(format!("{field} must be 1-64 characters of [A-Za-z0-9_-]")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_validate() {
        assert!(validate_entity_id(&new_entity_id()).is_ok());
        assert!(is_api_key(&new_api_key()));
        assert!(validate_tier_id("creditTierId", &new_tier_id()).is_ok());
    }

    #[test]
    fn rejects_bad_ids_naming_the_field() {
        assert!(validate_entity_id("e-123").is_err());
        assert!(!is_api_key("e-00000000-0000-0000-0000-000000000000"));
        let err = validate_user_id("userId", "has space").unwrap_err();
        assert!(err.message().starts_with("userId"));
        assert!(validate_user_id("userId", &"a".repeat(129)).is_err());
        assert!(validate_user_id("userId", "u-1@x.io:7").is_ok());
        assert!(validate_tier_id("creditTierId", "ct/1").is_err());
        assert!(validate_tier_id("creditTierId", &"a".repeat(65)).is_err());
    }

    #[test]
    fn ordered_ids_sort_by_creation() {
        let first = new_ordered_id();
        let second = new_ordered_id();
        assert_eq!(first.len(), 26);
        assert!(first != second);
    }
}
