//! The state every handler sees, built once per process.

use std::sync::Arc;

use crate::accounts::AccountSlots;
use crate::auth::cache::AuthCache;
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::store::Store;
use crate::store::dynamo::DynamoStore;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub clock: SharedClock,
    pub auth: Arc<AuthCache>,
    pub accounts: Arc<AccountSlots>,
}

impl AppState {
    pub fn new(config: Config, store: Arc<dyn Store>, clock: SharedClock) -> Self {
        let auth = Arc::new(AuthCache::new(config.auth_cache_seconds));
        Self { config: Arc::new(config), store, clock, auth, accounts: Arc::default() }
    }

    /// Production wiring: the DynamoDB store on the real clock.
    pub async fn from_config(config: Config) -> Self {
        let client = crate::clients::dynamodb().await;
        let store = DynamoStore::new(client, config.table_name.clone());
        store.warm_up().await;
        Self::new(config, Arc::new(store), Arc::new(SystemClock))
    }
}
