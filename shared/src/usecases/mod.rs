//! The service's operations, one module per area, over the store traits: typed inputs,
//! typed outcomes, `Error` for refusals. No face's wire shape lives here; the native HTTP
//! face (`functions/*`) and later Quest's are adapters over these functions.

pub mod accounts;
pub mod admin;
pub mod credits;
pub mod entities;
pub mod events;
pub mod holds;
pub mod payments;
pub mod subscriptions;
pub mod tiers;
pub mod webhooks;

pub use crate::accounts::AccountRef;
pub use crate::context::Context;
