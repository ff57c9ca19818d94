//! `PaymentGateway` over Stripe's API with the `async-stripe` client (or a local stand-in
//! that speaks the same wire format, via `STRIPE_API_BASE`).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use stripe::{IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_core::payment_intent::{
    CreatePaymentIntent, CreatePaymentIntentAutomaticPaymentMethods,
    CreatePaymentIntentAutomaticPaymentMethodsAllowRedirects, RetrievePaymentIntent,
};

use crate::domain::payment::Intent;
use crate::payments::gateway::{GatewayError, NewIntent, PaymentGateway};

/// Attempts per Stripe call on connection failures and 5xx (same idempotency key each time).
const ATTEMPTS: u32 = 3;
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct StripeGateway {
    client: stripe::Client,
}

impl StripeGateway {
    pub fn new(secret_key: &str, api_base: Option<&str>) -> Result<Self, String> {
        let mut builder = stripe::ClientBuilder::new(secret_key).timeout(ATTEMPT_TIMEOUT);
        if let Some(base) = api_base {
            builder = builder.url(base);
        }
        builder.build().map(|client| Self { client }).map_err(|e| e.to_string())
    }
}

fn intent(pi: stripe_shared::PaymentIntent) -> Intent {
    Intent {
        id: pi.id.to_string(),
        status: pi.status.as_str().to_owned(),
        amount: u64::try_from(pi.amount).unwrap_or_default(),
        currency: pi.currency.to_string(),
        client_secret: pi.client_secret,
        metadata: pi.metadata,
    }
}

fn classify(err: StripeError) -> GatewayError {
    match err {
        StripeError::Stripe(api, status) if status == 402 || api.decline_code.is_some() => GatewayError::Declined {
            message: api.message.clone().unwrap_or_else(|| "card declined".into()),
            decline_code: api.decline_code.clone().or_else(|| api.code.as_ref().map(|c| c.as_str().to_owned())),
        },
        StripeError::Stripe(api, status) if status < 500 && status != 429 => {
            GatewayError::Rejected(format!("{status}: {}", api.message.clone().unwrap_or_default()))
        }
        other => GatewayError::Unavailable(other.to_string()),
    }
}

/// Runs `call` until it succeeds, fails for good, or the attempts run out.
async fn with_retries<T, F, Fut>(mut call: F) -> Result<T, GatewayError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StripeError>>,
{
    let mut attempt = 1;
    loop {
        match call().await.map_err(classify) {
            Err(GatewayError::Unavailable(cause)) if attempt < ATTEMPTS => {
                tracing::debug!(%cause, attempt, "retrying stripe call");
                crate::store::dynamo::backoff(attempt + 2).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[async_trait]
impl PaymentGateway for StripeGateway {
    async fn create_intent(&self, new: &NewIntent, idempotency_key: &str) -> Result<Intent, GatewayError> {
        let currency = stripe_types::Currency::from_str(&new.currency)
            .map_err(|_| GatewayError::Rejected(format!("unknown currency {}", new.currency)))?;
        let key = IdempotencyKey::new(idempotency_key).map_err(|e| GatewayError::Rejected(e.to_string()))?;
        // Cards only, never a redirect: a server-side confirmation has nowhere to return to.
        let mut methods = CreatePaymentIntentAutomaticPaymentMethods::new(true);
        methods.allow_redirects = Some(CreatePaymentIntentAutomaticPaymentMethodsAllowRedirects::Never);
        let mut request = CreatePaymentIntent::new(new.amount as i64, currency)
            .metadata(new.metadata.clone())
            .automatic_payment_methods(methods)
            .description(new.description.clone());
        if let Some(method) = &new.payment_method {
            request = request.payment_method(method.clone()).confirm(true);
        }
        if let Some(email) = &new.receipt_email {
            request = request.receipt_email(email.clone());
        }
        let created = with_retries(|| {
            request.customize().request_strategy(RequestStrategy::Idempotent(key.clone())).send(&self.client)
        })
        .await?;
        Ok(intent(created))
    }

    async fn retrieve_intent(&self, id: &str) -> Result<Option<Intent>, GatewayError> {
        let request = RetrievePaymentIntent::new(id);
        match with_retries(|| request.send(&self.client)).await {
            Ok(found) => Ok(Some(intent(found))),
            Err(GatewayError::Rejected(cause)) if cause.starts_with("404") => Ok(None),
            Err(err) => Err(err),
        }
    }
}
