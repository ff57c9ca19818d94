//! The service's operations, one module per area, over the store traits: typed inputs,
//! typed outcomes, `Error` for refusals. No face's wire shape lives here; the native HTTP
//! face (`functions/*`) and later Quest's are adapters over these functions.

pub mod accounts;
pub mod admin;
pub mod credits;
pub mod holds;
pub mod payments;
pub mod subscriptions;
pub mod tiers;

use crate::accounts::{AccountSlots, Ledger};
use crate::clock::Clock;
use crate::error::Error;
use crate::idempotency::Guard;
use crate::payments::gateway::PaymentGateway;
use crate::store::Store;

pub use crate::accounts::AccountRef;
pub use crate::idempotency::{Answer, IdempotencyKey};

/// What the operations run on, borrowed from the process's state.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub store: &'a dyn Store,
    pub clock: &'a dyn Clock,
    pub slots: &'a AccountSlots,
    /// Present in the functions that take payments.
    pub gateway: Option<&'a dyn PaymentGateway>,
}

impl<'a> Context<'a> {
    pub fn now(&self) -> i64 {
        self.clock.now_millis()
    }

    pub fn ledger(&self) -> Ledger<'a> {
        Ledger { store: self.store, clock: self.clock, slots: self.slots }
    }

    pub fn guard(&self) -> Guard<'a> {
        Guard { store: self.store, clock: self.clock }
    }

    /// The payment gateway, for functions built with one.
    pub fn gateway(&self) -> Result<&'a dyn PaymentGateway, Error> {
        self.gateway.ok_or_else(|| Error::internal("payment operation run without a gateway"))
    }
}
