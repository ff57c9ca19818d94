//! Per-process caches of API keys and entities, so a warm function authenticates without a
//! store round trip. Staleness is bounded by `AUTH_CACHE_SECONDS` (default 30 s): a key
//! revoked or owners changed in another process take effect here within that bound; in the
//! process that made the change, at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::domain::entity::{ApiKey, Entity};

/// Entries kept before the cache starts over (a Lambda instance serves few entities).
const MAX_ENTRIES: usize = 10_000;

pub struct TtlCache<V> {
    ttl_millis: i64,
    entries: Mutex<HashMap<String, (V, i64)>>,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl_seconds: u64) -> Self {
        Self { ttl_millis: ttl_seconds as i64 * 1000, entries: Mutex::new(HashMap::new()) }
    }

    pub fn get(&self, key: &str, now: i64) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        entries.get(key).filter(|(_, fetched_at)| now - fetched_at < self.ttl_millis).map(|(value, _)| value.clone())
    }

    pub fn put(&self, key: &str, value: V, now: i64) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(key.to_owned(), (value, now));
        }
    }

    pub fn forget(&self, key: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }
}

/// The two caches authentication reads through.
pub struct AuthCache {
    pub api_keys: TtlCache<ApiKey>,
    pub entities: TtlCache<Arc<Entity>>,
}

impl AuthCache {
    pub fn new(ttl_seconds: u64) -> Self {
        Self { api_keys: TtlCache::new(ttl_seconds), entities: TtlCache::new(ttl_seconds) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_the_bound() {
        let cache = TtlCache::new(30);
        cache.put("a", 1, 0);
        assert_eq!(cache.get("a", 29_999), Some(1));
        assert_eq!(cache.get("a", 30_000), None);
        cache.put("b", 2, 0);
        cache.forget("b");
        assert_eq!(cache.get("b", 1), None);
    }

    #[test]
    fn zero_seconds_disables_caching() {
        let cache = TtlCache::new(0);
        cache.put("a", 1, 5);
        assert_eq!(cache.get("a", 5), None);
    }
}
