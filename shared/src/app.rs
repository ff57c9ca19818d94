//! The state every handler sees, built once per process.

use std::sync::Arc;

use crate::accounts::AccountSlots;
use crate::auth::cache::AuthCache;
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::context::Context;
use crate::payments::gateway::PaymentGateway;
use crate::store::Store;
use crate::store::dynamo::DynamoStore;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub clock: SharedClock,
    pub auth: Arc<AuthCache>,
    pub accounts: Arc<AccountSlots>,
    /// Present in the functions that take payments.
    pub payments: Option<Arc<dyn PaymentGateway>>,
}

impl AppState {
    pub fn new(config: Config, store: Arc<dyn Store>, clock: SharedClock) -> Self {
        let auth = Arc::new(AuthCache::new(config.auth_cache_seconds));
        Self { config: Arc::new(config), store, clock, auth, accounts: Arc::default(), payments: None }
    }

    pub fn with_payments(mut self, gateway: Arc<dyn PaymentGateway>) -> Self {
        self.payments = Some(gateway);
        self
    }

    /// What the use cases run on.
    pub fn context(&self) -> Context<'_> {
        Context {
            store: self.store.as_ref(),
            clock: self.clock.as_ref(),
            slots: &self.accounts,
            gateway: self.payments.as_deref(),
        }
    }

    /// Production wiring: the DynamoDB store on the real clock.
    pub async fn from_config(config: Config) -> Result<Self, String> {
        let client = crate::clients::dynamodb().await;
        let store = DynamoStore::new(client, config.table_name.clone());
        store.warm_up().await;
        Ok(Self::new(config, Arc::new(store), Arc::new(SystemClock)))
    }
}
