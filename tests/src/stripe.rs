//! Talking to the Stripe stand-in as a client would, and delivering its events to the
//! webhook signed the way Stripe signs them.

use axum::http::Method;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::emulator::call;
use crate::{STRIPE_WEBHOOK_SECRET, TestApp, TestResponse};

/// `Stripe-Signature` for `payload` at `timestamp` (seconds).
pub fn sign(payload: &str, secret: &str, timestamp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key size");
    mac.update(format!("{timestamp}.{payload}").as_bytes());
    let digest: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={digest}")
}

impl TestApp {
    /// A Stripe API call to the stand-in (form-encoded, as Stripe's clients send).
    pub fn stripe_api(&self, method: &str, path: &str, form: &str) -> Value {
        let (status, body) = call(
            &self.stripe,
            method,
            path,
            &[("Authorization", "Bearer sk_test_tests"), ("Content-Type", "application/x-www-form-urlencoded")],
            form,
        );
        let body: Value = serde_json::from_str(&body).expect("stripe json");
        assert!(status < 500, "{status} {body}");
        body
    }

    /// The stand-in's events of `kind`, newest first, as raw JSON.
    pub fn stripe_events(&self, kind: &str) -> Vec<Value> {
        let events = self.stripe_api("GET", &format!("/v1/events?type={kind}&limit=100"), "");
        events["data"].as_array().cloned().unwrap_or_default()
    }

    /// Posts `payload` to the webhook, signed now with the service's webhook secret.
    pub fn deliver(&self, payload: &str) -> impl std::future::Future<Output = TestResponse> + Send + 'static {
        let signature = sign(payload, STRIPE_WEBHOOK_SECRET, self.clock_millis() / 1000);
        self.request(Method::POST, "/api/stripe/webhook")
            .header("stripe-signature", &signature)
            .raw(payload.to_owned())
            .send()
    }
}

impl TestApp {
    /// Every event of the stand-in about `payment_intent` (the intent, its charge, refunds
    /// and disputes), oldest first, as raw JSON.
    pub fn events_about(&self, payment_intent: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut page = "/v1/events?limit=100".to_owned();
        loop {
            let listing = self.stripe_api("GET", &page, "");
            let events = listing["data"].as_array().cloned().unwrap_or_default();
            let about = |event: &&Value| {
                let object = &event["data"]["object"];
                object["id"] == payment_intent || object["payment_intent"] == payment_intent
            };
            found.extend(events.iter().filter(about).map(Value::to_string));
            match (listing["has_more"].as_bool(), events.last().and_then(|e| e["id"].as_str())) {
                (Some(true), Some(last)) => page = format!("/v1/events?limit=100&starting_after={last}"),
                _ => break,
            }
        }
        found.reverse();
        found
    }
}
