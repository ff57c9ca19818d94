//! `PaymentGateway` over Stripe's API with the `async-stripe` client (or a local stand-in
//! that speaks the same wire format, via `STRIPE_API_BASE`).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use stripe::{IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_billing::subscription::{CreateSubscription, CreateSubscriptionItems, UpdateSubscription};
use stripe_core::customer::{CreateCustomer, CreateCustomerInvoiceSettings};
use stripe_core::dispute::ListDispute;
use stripe_core::payment_intent::{
    ConfirmPaymentIntent, CreatePaymentIntent, CreatePaymentIntentAutomaticPaymentMethods,
    CreatePaymentIntentAutomaticPaymentMethodsAllowRedirects, RetrievePaymentIntent,
};
use stripe_core::refund::ListRefund;
use stripe_product::price::{CreatePrice, CreatePriceProductData, CreatePriceRecurring, CreatePriceRecurringInterval};

use crate::domain::payment::{DisputeState, Intent, MoneyMoves, RefundState};
use crate::payments::gateway::{GatewayError, NewIntent, NewSubscription, PaymentGateway, StartedSubscription};

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

fn subscription(sub: stripe_shared::Subscription) -> StartedSubscription {
    StartedSubscription {
        id: sub.id.to_string(),
        status: sub.status.as_str().to_owned(),
        current_period_end: sub.items.data.first().map(|item| item.current_period_end * 1000),
        latest_invoice: sub.latest_invoice.and_then(|invoice| invoice.id().as_ref().map(ToString::to_string)),
    }
}

fn idempotent(key: &str) -> Result<RequestStrategy, GatewayError> {
    IdempotencyKey::new(key).map(RequestStrategy::Idempotent).map_err(|e| GatewayError::Rejected(e.to_string()))
}

fn currency(code: &str) -> Result<stripe_types::Currency, GatewayError> {
    stripe_types::Currency::from_str(code).map_err(|_| GatewayError::Unchargeable(format!("unknown currency {code}")))
}

fn classify(err: StripeError) -> GatewayError {
    match err {
        StripeError::Stripe(api, status) if status == 402 || api.decline_code.is_some() => GatewayError::Declined {
            message: api.message.clone().unwrap_or_else(|| "card declined".into()),
            decline_code: api.decline_code.clone().or_else(|| api.code.as_ref().map(|c| c.as_str().to_owned())),
        },
        StripeError::Stripe(api, status) if is_unknown_payment_method(&api, status) => {
            GatewayError::UnknownPaymentMethod(api.message.clone().unwrap_or_default())
        }
        StripeError::Stripe(api, status)
            if status < 500 && matches!(api.param.as_deref(), Some("amount" | "currency")) =>
        {
            GatewayError::Unchargeable(api.message.clone().unwrap_or_default())
        }
        StripeError::Stripe(api, status) if status < 500 && status != 429 => {
            GatewayError::Rejected(format!("{status}: {}", api.message.clone().unwrap_or_default()))
        }
        other => GatewayError::Unavailable(other.to_string()),
    }
}

/// Stripe's answer to a payment method id it does not know: `resource_missing` on the
/// `payment_method` parameter.
fn is_unknown_payment_method(api: &stripe::ApiErrors, status: u16) -> bool {
    status < 500
        && api.code.as_ref().is_some_and(|code| code.as_str() == "resource_missing")
        && api.param.as_deref() == Some("payment_method")
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
        let currency = currency(&new.currency)?;
        let strategy = idempotent(idempotency_key)?;
        // Cards only, never a redirect: a server-side confirmation has nowhere to return to.
        let mut methods = CreatePaymentIntentAutomaticPaymentMethods::new(true);
        methods.allow_redirects = Some(CreatePaymentIntentAutomaticPaymentMethodsAllowRedirects::Never);
        let mut request = CreatePaymentIntent::new(new.amount as i64, currency)
            .metadata(new.metadata.clone())
            .automatic_payment_methods(methods)
            .description(new.description.clone());
        if let Some(method) = &new.payment_method {
            request = request.payment_method(method.clone());
        }
        if let Some(email) = &new.receipt_email {
            request = request.receipt_email(email.clone());
        }
        let created =
            with_retries(|| request.customize().request_strategy(strategy.clone()).send(&self.client)).await?;
        Ok(intent(created))
    }

    async fn confirm_intent(&self, id: &str, idempotency_key: &str) -> Result<Intent, GatewayError> {
        let strategy = idempotent(idempotency_key)?;
        let request = ConfirmPaymentIntent::new(id);
        let confirmed =
            with_retries(|| request.customize().request_strategy(strategy.clone()).send(&self.client)).await?;
        Ok(intent(confirmed))
    }

    async fn create_subscription(
        &self,
        new: &NewSubscription,
        idempotency_key: &str,
    ) -> Result<StartedSubscription, GatewayError> {
        // Attaching a payment method to a customer may attach a copy of it (Stripe clones its
        // test cards): the customer's default names the one attached, which the
        // subscription then uses.
        let mut settings = CreateCustomerInvoiceSettings::new();
        settings.default_payment_method = Some(new.payment_method.clone());
        let mut customer = CreateCustomer::new().payment_method(new.payment_method.clone()).invoice_settings(settings);
        if let Some(email) = &new.email {
            customer = customer.email(email.clone());
        }
        let strategy = idempotent(&format!("{idempotency_key}:customer"))?;
        let customer = with_retries(|| customer.customize().request_strategy(strategy.clone()).send(&self.client))
            .await
            .map_err(|e| e.during("creating the customer"))?;
        let attached = customer
            .invoice_settings
            .as_ref()
            .and_then(|settings| settings.default_payment_method.as_ref())
            .map(|method| method.id().to_string())
            .ok_or_else(|| GatewayError::Rejected("the customer has no default payment method".into()))?;

        let interval = match new.interval.as_str() {
            "day" => CreatePriceRecurringInterval::Day,
            "week" => CreatePriceRecurringInterval::Week,
            "year" => CreatePriceRecurringInterval::Year,
            _ => CreatePriceRecurringInterval::Month,
        };
        let price = CreatePrice::new(currency(&new.currency)?)
            .unit_amount(new.amount as i64)
            .recurring(CreatePriceRecurring::new(interval))
            .product_data(CreatePriceProductData::new(new.product_name.clone()));
        let strategy = idempotent(&format!("{idempotency_key}:price"))?;
        let price = with_retries(|| price.customize().request_strategy(strategy.clone()).send(&self.client))
            .await
            .map_err(|e| e.during("creating the price"))?;

        let mut item = CreateSubscriptionItems::new();
        item.price = Some(price.id.to_string());
        let request = CreateSubscription::new()
            .customer(customer.id.to_string())
            .items(vec![item])
            .default_payment_method(attached)
            .metadata(new.metadata.clone());
        let strategy = idempotent(&format!("{idempotency_key}:subscription"))?;
        let created = with_retries(|| request.customize().request_strategy(strategy.clone()).send(&self.client))
            .await
            .map_err(|e| e.during("creating the subscription"))?;
        Ok(subscription(created))
    }

    async fn cancel_at_period_end(&self, subscription_id: &str) -> Result<StartedSubscription, GatewayError> {
        let request = UpdateSubscription::new(subscription_id).cancel_at_period_end(true);
        let strategy = idempotent(&format!("cancel:{subscription_id}"))?;
        let updated =
            with_retries(|| request.customize().request_strategy(strategy.clone()).send(&self.client)).await?;
        Ok(subscription(updated))
    }

    async fn money_moves(&self, payment_intent_id: &str) -> Result<MoneyMoves, GatewayError> {
        // A payment has a handful of refunds and disputes at most; 100 is Stripe's page size.
        let refunds = ListRefund::new().payment_intent(payment_intent_id).limit(100);
        let refunds = with_retries(|| refunds.send(&self.client)).await.map_err(|e| e.during("listing refunds"))?;
        let disputes = ListDispute::new().payment_intent(payment_intent_id).limit(100);
        let disputes = with_retries(|| disputes.send(&self.client)).await.map_err(|e| e.during("listing disputes"))?;
        Ok(MoneyMoves {
            refunds: refunds
                .data
                .into_iter()
                .map(|r| RefundState {
                    id: r.id.to_string(),
                    amount: u64::try_from(r.amount).unwrap_or_default(),
                    status: r.status.unwrap_or_default(),
                })
                .collect(),
            disputes: disputes
                .data
                .into_iter()
                .map(|d| DisputeState { id: d.id.to_string(), status: d.status.as_str().to_owned() })
                .collect(),
        })
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
