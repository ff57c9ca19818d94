//! The payment provider: the gateway trait and its async-stripe implementation. What
//! payments do to credits is `usecases::payments`.

pub mod gateway;
pub mod stripe;
