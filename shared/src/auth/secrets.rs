//! API secrets: 256 random bits, shown once, stored as a SHA-256 hash (a fast hash is
//! enough for high-entropy secrets), compared in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::Error as ApiError;
use crate::idempotency::hex;

pub fn new_secret() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(ApiError::internal)?;
    Ok(format!("s-{}", URL_SAFE_NO_PAD.encode(bytes)))
}

pub fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Constant-time check of a presented secret against a stored hash.
pub fn matches(presented: &str, stored_hash: &str) -> bool {
    hash(presented).as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

/// Constant-time equality of two secrets of any length (compares their digests).
pub fn equal(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes()).ct_eq(&Sha256::digest(b.as_bytes())).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_verify_only_against_their_hash() {
        let secret = new_secret().unwrap();
        assert_ne!(secret, new_secret().unwrap());
        let stored = hash(&secret);
        assert!(!stored.contains(&secret[2..]));
        assert!(matches(&secret, &stored));
        assert!(!matches("s-wrong", &stored));
        assert!(equal("a", "a") && !equal("a", "ab"));
    }
}
