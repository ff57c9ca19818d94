//! What the use cases run on: the store, the clock, this process's account slots and, in
//! the functions that take payments, the gateway. Its own module so the process state
//! (`app`) can hand it out without depending on the use cases.

use crate::accounts::{AccountSlots, Ledger};
use crate::clock::Clock;
use crate::error::Error;
use crate::idempotency::Guard;
use crate::payments::gateway::PaymentGateway;
use crate::store::Store;

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
