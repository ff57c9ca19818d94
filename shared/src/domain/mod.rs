//! The business model and its rules. No HTTP, no SDK types: pure data and checks.

pub mod account;
pub mod entity;
pub mod events;
pub mod journal;
pub mod ledger;
pub mod limits;
pub mod payment;
pub mod tier;
pub mod webhook;
