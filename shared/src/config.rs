//! Configuration, read once from the environment at start-up (§7 of the contract).

use std::fmt;

/// A secret value: never printed, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("missing required environment variable {0}")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Which optional parts of the configuration a function needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    pub admin: bool,
    pub stripe: bool,
    /// Verifies Stripe webhook signatures (implies `stripe`).
    pub webhook: bool,
}

#[derive(Debug, Clone)]
pub struct StripeConfig {
    pub secret_key: Secret,
    /// A local stand-in's origin; Stripe itself when unset.
    pub api_base: Option<String>,
    /// Signs webhook events (`whsec_…`); only the webhook function loads it.
    pub webhook_secret: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    /// Signs and verifies end-user session tokens (HS256).
    pub token_signing_key: Secret,
    /// Bearer for `/admin`; only functions that serve admin routes load it.
    pub admin_token: Option<Secret>,
    /// How long API keys and entities are cached per process; bounds how late a revocation
    /// takes effect.
    pub auth_cache_seconds: u64,
    /// Only functions that talk to Stripe load it.
    pub stripe: Option<StripeConfig>,
    pub webhooks: WebhookConfig,
    /// How long a request has to answer (`REQUEST_BUDGET_MS`; `deadline`).
    pub request_budget_millis: u64,
}

/// Outbound webhooks (§9): `ALLOW_LOCAL_WEBHOOKS`, `WEBHOOK_RETRY_BASE_SECONDS`.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// Plain http to loopback endpoints (local runs only).
    pub allow_local: bool,
    /// The wait before the first retry; each later one waits 4× longer.
    pub retry_base_millis: u64,
}

pub const DEFAULT_WEBHOOK_RETRY_BASE_SECONDS: f64 = 5.0;

impl WebhookConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let allow_local = match lookup("ALLOW_LOCAL_WEBHOOKS").as_deref().map(str::trim) {
            None | Some("") | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return Err(ConfigError::Invalid {
                    name: "ALLOW_LOCAL_WEBHOOKS",
                    reason: "must be true or false".into(),
                });
            }
        };
        let base = match lookup("WEBHOOK_RETRY_BASE_SECONDS").filter(|v| !v.trim().is_empty()) {
            None => DEFAULT_WEBHOOK_RETRY_BASE_SECONDS,
            Some(raw) => raw.trim().parse::<f64>().ok().filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0).ok_or(
                ConfigError::Invalid {
                    name: "WEBHOOK_RETRY_BASE_SECONDS",
                    reason: "must be a number of seconds above 0, at most 3600".into(),
                },
            )?,
        };
        Ok(Self { allow_local, retry_base_millis: ((base * 1000.0).round() as u64).max(1) })
    }
}

/// Default bound on how long a revoked key keeps working in another warm process.
pub const DEFAULT_AUTH_CACHE_SECONDS: u64 = 30;

impl Config {
    pub fn from_env(needs: Needs) -> Result<Self, ConfigError> {
        Self::from_lookup(needs, |name| std::env::var(name).ok())
    }

    /// Reads from any lookup, so tests need not touch the process environment.
    pub fn from_lookup(needs: Needs, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required =
            |name: &'static str| lookup(name).filter(|v| !v.trim().is_empty()).ok_or(ConfigError::Missing(name));
        let auth_cache_seconds = match lookup("AUTH_CACHE_SECONDS") {
            None => DEFAULT_AUTH_CACHE_SECONDS,
            Some(raw) => parse_cache_seconds(&raw)?,
        };
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            token_signing_key: Secret::new(required("TOKEN_SIGNING_KEY")?),
            admin_token: if needs.admin { Some(Secret::new(required("ADMIN_TOKEN")?)) } else { None },
            auth_cache_seconds,
            stripe: if needs.stripe || needs.webhook {
                Some(StripeConfig {
                    secret_key: Secret::new(required("STRIPE_SECRET_KEY")?),
                    api_base: lookup("STRIPE_API_BASE").filter(|v| !v.trim().is_empty()),
                    webhook_secret: if needs.webhook {
                        Some(Secret::new(required("STRIPE_WEBHOOK_SECRET")?))
                    } else {
                        None
                    },
                })
            } else {
                None
            },
            webhooks: WebhookConfig::from_lookup(&lookup)?,
            request_budget_millis: match lookup("REQUEST_BUDGET_MS") {
                None => crate::deadline::REQUEST_BUDGET_MILLIS,
                Some(raw) => parse_budget(&raw)?,
            },
        })
    }
}

fn parse_cache_seconds(raw: &str) -> Result<u64, ConfigError> {
    match raw.parse::<u64>() {
        Ok(seconds) if seconds <= 60 => Ok(seconds),
        _ => Err(ConfigError::Invalid {
            name: "AUTH_CACHE_SECONDS",
            reason: "must be a whole number of seconds from 0 to 60".into(),
        }),
    }
}

/// A budget of its own may only be shorter than the default: the functions' timeout is set
/// from the default (`deadline::FUNCTION_TIMEOUT_SECONDS`).
fn parse_budget(raw: &str) -> Result<u64, ConfigError> {
    match raw.parse::<u64>() {
        Ok(millis) if (100..=crate::deadline::REQUEST_BUDGET_MILLIS).contains(&millis) => Ok(millis),
        _ => Err(ConfigError::Invalid {
            name: "REQUEST_BUDGET_MS",
            reason: format!(
                "must be a whole number of milliseconds from 100 to {}",
                crate::deadline::REQUEST_BUDGET_MILLIS
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn names_the_missing_variable() {
        let err = Config::from_lookup(Needs::default(), lookup(&[("TABLE_NAME", "t")])).unwrap_err();
        assert_eq!(err.to_string(), "missing required environment variable TOKEN_SIGNING_KEY");
        let err = Config::from_lookup(
            Needs { admin: true, ..Needs::default() },
            lookup(&[("TABLE_NAME", "t"), ("TOKEN_SIGNING_KEY", "k")]),
        )
        .unwrap_err();
        assert_eq!(err, ConfigError::Missing("ADMIN_TOKEN"));
    }

    #[test]
    fn admin_token_only_when_needed_and_never_printed() {
        let vars = [("TABLE_NAME", "t"), ("TOKEN_SIGNING_KEY", "k"), ("ADMIN_TOKEN", "hush")];
        let config = Config::from_lookup(Needs::default(), lookup(&vars)).unwrap();
        assert!(config.admin_token.is_none());
        let config = Config::from_lookup(Needs { admin: true, ..Needs::default() }, lookup(&vars)).unwrap();
        assert!(!format!("{config:?}").contains("hush"));
        assert_eq!(config.auth_cache_seconds, DEFAULT_AUTH_CACHE_SECONDS);
    }

    #[test]
    fn stripe_settings_only_when_needed() {
        let vars = [("TABLE_NAME", "t"), ("TOKEN_SIGNING_KEY", "k")];
        let err = Config::from_lookup(Needs { stripe: true, ..Needs::default() }, lookup(&vars)).unwrap_err();
        assert_eq!(err, ConfigError::Missing("STRIPE_SECRET_KEY"));
        let vars = [("TABLE_NAME", "t"), ("TOKEN_SIGNING_KEY", "k"), ("STRIPE_SECRET_KEY", "sk_test_x")];
        let config = Config::from_lookup(Needs { stripe: true, ..Needs::default() }, lookup(&vars)).unwrap();
        assert!(config.stripe.is_some_and(|s| s.api_base.is_none()));
    }

    #[test]
    fn webhook_settings_default_to_https_only_and_a_5_second_base() {
        let config = WebhookConfig::from_lookup(lookup(&[])).unwrap();
        assert_eq!(config, WebhookConfig { allow_local: false, retry_base_millis: 5_000 });
        let vars = [("ALLOW_LOCAL_WEBHOOKS", "true"), ("WEBHOOK_RETRY_BASE_SECONDS", "0.05")];
        assert_eq!(
            WebhookConfig::from_lookup(lookup(&vars)).unwrap(),
            WebhookConfig { allow_local: true, retry_base_millis: 50 }
        );
        assert!(WebhookConfig::from_lookup(lookup(&[("WEBHOOK_RETRY_BASE_SECONDS", "-1")])).is_err());
        assert!(WebhookConfig::from_lookup(lookup(&[("ALLOW_LOCAL_WEBHOOKS", "yes")])).is_err());
    }

    #[test]
    fn rejects_a_cache_bound_over_a_minute() {
        let vars = [("TABLE_NAME", "t"), ("TOKEN_SIGNING_KEY", "k"), ("AUTH_CACHE_SECONDS", "61")];
        assert!(Config::from_lookup(Needs::default(), lookup(&vars)).is_err());
    }
}
