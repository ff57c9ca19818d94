//! Time, injectable so tests can move it (token expiry, cache bounds, hold expiry) without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> i64;
}

pub type SharedClock = Arc<dyn Clock>;

#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn starting_now() -> Self {
        Self(AtomicI64::new(SystemClock.now_millis()))
    }

    pub fn advance_seconds(&self, seconds: i64) {
        self.advance_millis(seconds * 1000);
    }

    /// Moves the clock by `millis` (back, when negative: an instance whose clock is behind).
    pub fn advance_millis(&self, millis: i64) {
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// RFC 3339 UTC with millisecond precision, e.g. `2026-11-23T18:41:36.123Z`.
pub fn rfc3339(millis: i64) -> String {
    let at =
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let at = at.replace_nanosecond(at.millisecond() as u32 * 1_000_000).unwrap_or(at);
    at.format(&Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_millis() {
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::starting_now();
        let before = clock.now_millis();
        clock.advance_seconds(61);
        assert_eq!(clock.now_millis() - before, 61_000);
    }
}

/// Parses an RFC 3339 timestamp into epoch milliseconds.
pub fn parse_rfc3339(value: &str) -> Option<i64> {
    let at = OffsetDateTime::parse(value, &Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Epoch milliseconds as RFC 3339 strings, in API responses and stored items alike.
pub mod as_rfc3339 {
    use serde::Deserialize;

    pub fn serialize<S: serde::Serializer>(millis: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::rfc3339(*millis))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        let raw = String::deserialize(deserializer)?;
        super::parse_rfc3339(&raw).ok_or_else(|| serde::de::Error::custom("not an RFC 3339 timestamp"))
    }

    pub mod option {
        pub fn serialize<S: serde::Serializer>(millis: &Option<i64>, serializer: S) -> Result<S::Ok, S::Error> {
            match millis {
                Some(millis) => serializer.serialize_str(&super::super::rfc3339(*millis)),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
            #[derive(serde::Deserialize)]
            struct Timestamp(#[serde(with = "super")] i64);
            let raw: Option<Timestamp> = serde::Deserialize::deserialize(deserializer)?;
            Ok(raw.map(|Timestamp(millis)| millis))
        }
    }
}
