//! Authentication and roles (§2): API keys and secrets, user session tokens, admin bearer.

pub mod admin;
pub mod cache;
pub mod caller;
pub mod secrets;
pub mod token;

pub use admin::Admin;
pub use caller::{Caller, Role};
