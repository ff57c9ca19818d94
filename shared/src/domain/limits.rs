//! Bounds shared by every input (§1): credits and money are whole numbers up to 10^12.

use crate::error::Error;

pub const MAX_AMOUNT: u64 = 1_000_000_000_000;
pub const MAX_REASON_CHARS: usize = 500;

pub fn check_amount(field: &str, value: u64) -> Result<u64, Error> {
    if value <= MAX_AMOUNT {
        Ok(value)
    } else {
        Err(Error::validation(format!("{field} must be an integer from 0 to {MAX_AMOUNT}")))
    }
}

/// A positive amount of credits, at most 10^12 (spends, grants, holds, captures).
pub fn positive_credits(field: &str, credits: u64) -> Result<u64, Error> {
    if (1..=MAX_AMOUNT).contains(&credits) {
        Ok(credits)
    } else {
        Err(Error::validation(format!("{field} must be an integer from 1 to {MAX_AMOUNT}")))
    }
}

/// The `reason` a change carries, when it has one.
pub fn check_reason(reason: &Option<String>) -> Result<(), Error> {
    match reason {
        Some(reason) => check_text("reason", reason, MAX_REASON_CHARS),
        None => Ok(()),
    }
}

/// A lowercase ISO-4217 code such as `usd`.
pub fn check_currency(field: &str, value: &str) -> Result<(), Error> {
    if value.len() == 3 && value.bytes().all(|b| b.is_ascii_lowercase()) {
        Ok(())
    } else {
        Err(Error::validation(format!("{field} must be a lowercase three-letter ISO-4217 code such as \"usd\"")))
    }
}

/// Text of 1..=max characters that is not only white space.
pub fn check_text(field: &str, value: &str, max: usize) -> Result<(), Error> {
    let count = value.chars().count();
    if value.trim().is_empty() || count > max {
        Err(Error::validation(format!("{field} must be 1-{max} characters")))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(check_amount("credits", MAX_AMOUNT).is_ok());
        assert!(check_amount("credits", MAX_AMOUNT + 1).unwrap_err().message().starts_with("credits"));
        assert!(check_currency("currency", "usd").is_ok());
        for bad in ["USD", "us", "usdd", "u1d"] {
            assert!(check_currency("currency", bad).is_err(), "{bad}");
        }
        assert!(check_text("name", " ", 100).is_err());
        assert!(check_text("name", &"é".repeat(100), 100).is_ok());
        assert!(check_text("name", &"a".repeat(101), 100).is_err());
    }
}
