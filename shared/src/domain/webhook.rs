//! Outbound webhook endpoints (§9): where an entity's events go, which URLs may receive
//! them, how a delivery is signed (Standard Webhooks) and when a failed one is retried.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

use crate::clock::as_rfc3339;
use crate::domain::events::{Event, EventType};
use crate::domain::limits::check_text;
use crate::error::Error;

/// How long a rotated-out secret keeps signing beside the new one.
pub const ROTATION_OVERLAP_MILLIS: i64 = 24 * 60 * 60 * 1000;
/// Endpoints one entity may register.
pub const MAX_ENDPOINTS: usize = 20;
const MAX_URL_LEN: usize = 2048;
/// Retries after the first attempt; with the default base (5 s) they span 30.3 h.
pub const MAX_RETRIES: u32 = 8;

/// One signing secret; a rotated-out one carries the instant it stops signing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningSecret {
    pub secret: String,
    pub retires_at: Option<i64>,
}

/// An endpoint as stored. `secrets` never leave the service except in the answers to
/// creation and rotation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub endpoint_id: String,
    pub entity_id: String,
    pub url: String,
    /// Empty: every type except the opt-in ones.
    pub events: Vec<EventType>,
    pub description: Option<String>,
    pub secrets: Vec<SigningSecret>,
    pub created_at: i64,
}

impl Endpoint {
    /// Whether an event of `kind` goes to this endpoint.
    pub fn wants(&self, kind: EventType) -> bool {
        if self.events.is_empty() { !kind.is_opt_in() } else { self.events.contains(&kind) }
    }

    /// The secrets that sign at `now`: the current one, and a rotated-out one for 24 h.
    pub fn signing_secrets(&self, now: i64) -> Vec<&str> {
        self.secrets.iter().filter(|s| s.retires_at.is_none_or(|at| at > now)).map(|s| s.secret.as_str()).collect()
    }

    /// A new secret first; the others retire within the overlap (never later than before).
    pub fn rotate(&mut self, secret: String, now: i64) {
        let retire = now + ROTATION_OVERLAP_MILLIS;
        self.secrets.retain(|s| s.retires_at.is_none_or(|at| at > now));
        for old in &mut self.secrets {
            old.retires_at = Some(old.retires_at.map_or(retire, |at| at.min(retire)));
        }
        self.secrets.insert(0, SigningSecret { secret, retires_at: None });
    }

    pub fn view(&self) -> EndpointView {
        EndpointView {
            endpoint_id: self.endpoint_id.clone(),
            url: self.url.clone(),
            events: self.events.clone(),
            description: self.description.clone(),
            created_at: self.created_at,
        }
    }
}

/// An endpoint as the API shows it after creation: no secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointView {
    pub endpoint_id: String,
    pub url: String,
    pub events: Vec<EventType>,
    pub description: Option<String>,
    #[serde(with = "as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// An event waiting for delivery to one endpoint (its retry state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub endpoint_id: String,
    pub event: Event,
    /// Attempts made so far.
    pub attempts: u32,
    pub next_attempt_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AttemptStatus {
    Delivered,
    /// Failed; another attempt is scheduled (`nextRetryAt`).
    Retrying,
    /// Failed, and no retry is left: the delivery is given up.
    Failed,
}

/// One delivery attempt, as the delivery log lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub attempt_id: String,
    pub endpoint_id: String,
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub status: AttemptStatus,
    pub response_code: Option<u16>,
    /// Why it failed, when no response said (time-out, refused connection, refused address).
    pub error: Option<String>,
    #[serde(with = "as_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_retry_at: Option<i64>,
    #[serde(with = "as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub attempted_at: i64,
}

/// A user's own settings (`PUT …/users/{userId}/settings`): override the entity's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserSettings {
    /// Credits; 0 turns alerts off for this user.
    pub low_balance_threshold: u64,
}

/// `POST …/webhook-endpoints`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({"url": "https://example.com/hooks/credits", "events": ["credits.low"]}))]
pub struct NewEndpoint {
    #[schema(min_length = 1, max_length = 2048)]
    pub url: String,
    /// Event types by name; none: every type but the opt-in ones.
    #[serde(default)]
    #[schema(value_type = Vec<EventType>)]
    pub events: Vec<String>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

impl NewEndpoint {
    /// The URL, the event types and the description, checked.
    pub fn validate(&self, allow_local: bool) -> Result<Vec<EventType>, Error> {
        check_url(&self.url, allow_local)?;
        if let Some(description) = &self.description {
            check_text("description", description, 500)?;
        }
        let mut events = Vec::new();
        for name in &self.events {
            let kind = EventType::parse(name)
                .ok_or_else(|| Error::validation(format!("events: unknown event type {name:?}")))?;
            if !events.contains(&kind) {
                events.push(kind);
            }
        }
        Ok(events)
    }
}

fn refused(reason: &str) -> Error {
    Error::validation(format!("url {reason}"))
}

/// §9's URL rules, before any DNS: https (http only to loopback when local webhooks are
/// allowed), no credentials, and no private, link-local, loopback or metadata host.
pub fn check_url(raw: &str, allow_local: bool) -> Result<(), Error> {
    if raw.len() > MAX_URL_LEN {
        return Err(refused(&format!("must be at most {MAX_URL_LEN} characters")));
    }
    let url = url::Url::parse(raw).map_err(|_| refused("is not a valid absolute URL"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refused("must not carry credentials"));
    }
    let host = url.host().ok_or_else(|| refused("must name a host"))?;
    let loopback = match &host {
        url::Host::Domain(name) => {
            check_host_name(name)?;
            match (is_loopback_name(name), allow_local) {
                (true, false) => return Err(refused("must not point to a loopback address")),
                (loopback, _) => loopback,
            }
        }
        url::Host::Ipv4(ip) => check_address(IpAddr::V4(*ip), allow_local).map(|_| ip.is_loopback())?,
        url::Host::Ipv6(ip) => check_address(IpAddr::V6(*ip), allow_local).map(|_| ip.is_loopback())?,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" if allow_local => Err(refused("must use https (plain http only to a loopback address)")),
        _ => Err(refused("must use https")),
    }
}

fn is_loopback_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// Names that resolve to metadata services or the local machine, refused before any DNS.
fn check_host_name(name: &str) -> Result<(), Error> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let metadata = ["metadata", "metadata.google.internal", "metadata.goog", "instance-data"];
    if metadata.contains(&name.as_str()) || name.ends_with(".internal") {
        return Err(refused("must not point to a cloud metadata or internal address"));
    }
    Ok(())
}

/// Whether a delivery may connect to `ip` (checked again after DNS, at delivery time).
pub fn check_address(ip: IpAddr, allow_local: bool) -> Result<(), Error> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    if ip.is_loopback() {
        return if allow_local { Ok(()) } else { Err(refused("must not point to a loopback address")) };
    }
    let forbidden = match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    };
    if forbidden {
        Err(refused("must not point to a private, link-local, metadata or reserved address"))
    } else {
        Ok(())
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || a >= 240
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local, fd00:ec2::254 among them
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
        || ip.to_ipv4().is_some_and(forbidden_v4) // IPv4-compatible ::a.b.c.d
        || first == 0x2001 && ip.segments()[1] == 0xdb8 // documentation
}

/// `webhook-signature` per Standard Webhooks: one `v1,<base64 HMAC-SHA256>` per signing
/// secret over `{id}.{timestamp}.{body}`, space-separated.
pub fn signature(secrets: &[&str], id: &str, timestamp_secs: i64, body: &str) -> Result<String, Error> {
    let signed = format!("{id}.{timestamp_secs}.{body}");
    let mut parts = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
        let key = STANDARD.decode(encoded).map_err(Error::internal)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(Error::internal)?;
        mac.update(signed.as_bytes());
        parts.push(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())));
    }
    Ok(parts.join(" "))
}

/// A fresh `whsec_<base64 of 32 random bytes>`.
pub fn new_secret() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(Error::internal)?;
    Ok(format!("whsec_{}", STANDARD.encode(bytes)))
}

/// The wait before retry `n` (1-based) of a failed delivery: `base × 4^(n-1)`, so the
/// default base of 5 s gives 5 s, 20 s, 80 s, 5 min, 21 min, 85 min, 5.7 h, 22.8 h (30.3 h in
/// all). `None`: no retry left, the delivery has failed.
pub fn retry_delay_millis(retry: u32, base_millis: u64) -> Option<u64> {
    (1..=MAX_RETRIES).contains(&retry).then(|| base_millis.saturating_mul(4u64.pow(retry - 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(url: &str, allow_local: bool) -> String {
        check_url(url, allow_local).unwrap_err().message()
    }

    #[test]
    fn only_public_https_urls_pass_unless_local_webhooks_are_allowed() {
        assert!(check_url("https://hooks.example.com/in", false).is_ok());
        assert!(check_url("http://127.0.0.1:8080/in", true).is_ok());
        assert!(check_url("http://localhost:8080/in", true).is_ok());
        for url in [
            "http://hooks.example.com/in",
            "http://127.0.0.1/in",
            "https://127.0.0.1/in",
            "https://localhost/in",
            "https://10.1.2.3/",
            "https://172.16.0.1/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://[fd00:ec2::254]/",
            "https://[fe80::1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://[::1]/",
            "https://0.0.0.0/",
            "https://2130706433/",
            "https://0x7f.1/",
            "https://metadata.google.internal/computeMetadata/v1/",
            "https://user:pw@hooks.example.com/",
            "ftp://hooks.example.com/",
            "not a url",
            "",
        ] {
            assert!(check_url(url, false).is_err_and(|e| e.message().starts_with("url ")), "{url} should be refused");
        }
        for url in ["http://hooks.example.com/in", "https://10.0.0.1/", "http://169.254.169.254/"] {
            assert!(refusal(url, true).starts_with("url "), "{url} should be refused even locally");
        }
    }

    #[test]
    fn retries_span_more_than_a_day_at_the_default_base() {
        let total: u64 = (1..=MAX_RETRIES).filter_map(|n| retry_delay_millis(n, 5_000)).sum();
        assert!(total >= 24 * 3600 * 1000, "{total}");
        assert_eq!(retry_delay_millis(1, 5_000), Some(5_000));
        assert_eq!(retry_delay_millis(2, 5_000), Some(20_000));
        assert_eq!(retry_delay_millis(MAX_RETRIES + 1, 5_000), None);
    }

    #[test]
    fn signs_with_every_live_secret() {
        // The example of the Standard Webhooks specification's reference tests.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        let expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(signature(&[secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap(), expected);
        let mut endpoint = Endpoint {
            endpoint_id: "ep".into(),
            entity_id: "e".into(),
            url: "https://x".into(),
            events: vec![],
            description: None,
            secrets: vec![SigningSecret { secret: "old".into(), retires_at: None }],
            created_at: 0,
        };
        endpoint.rotate("new".into(), 1_000);
        assert_eq!(endpoint.signing_secrets(1_000), ["new", "old"]);
        assert_eq!(endpoint.signing_secrets(1_000 + ROTATION_OVERLAP_MILLIS), ["new"]);
    }

    #[test]
    fn spends_go_only_to_endpoints_that_name_them() {
        let mut endpoint = Endpoint {
            endpoint_id: "ep".into(),
            entity_id: "e".into(),
            url: "https://x".into(),
            events: vec![],
            description: None,
            secrets: vec![],
            created_at: 0,
        };
        assert!(endpoint.wants(EventType::CreditsGranted) && !endpoint.wants(EventType::CreditsSpent));
        endpoint.events = vec![EventType::CreditsSpent];
        assert!(endpoint.wants(EventType::CreditsSpent) && !endpoint.wants(EventType::CreditsGranted));
    }
}
