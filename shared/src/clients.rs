//! The one place that builds SDK clients; each is built once per process, in `main`.

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use std::time::Duration;

/// Attempts the SDK makes itself on throttling and 5xx (each with backoff).
const SDK_MAX_ATTEMPTS: u32 = 3;

/// A DynamoDB client from the standard chain; `AWS_ENDPOINT_URL_DYNAMODB` points it at an emulator.
pub async fn dynamodb() -> aws_sdk_dynamodb::Client {
    dynamodb_from(&with_service_settings(aws_config::defaults(BehaviorVersion::latest())).load().await)
}

/// The store client over loaded settings: every call reports the capacity it consumed into the
/// running request's meter (`store::dynamo::capacity`).
pub fn dynamodb_from(settings: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    let config =
        aws_sdk_dynamodb::config::Builder::from(settings).interceptor(crate::store::dynamo::capacity::Capacity);
    aws_sdk_dynamodb::Client::from_conf(config.build())
}

/// The retry and time-out settings every store client uses (tests apply them too).
pub fn with_service_settings(loader: aws_config::ConfigLoader) -> aws_config::ConfigLoader {
    loader.retry_config(RetryConfig::standard().with_max_attempts(SDK_MAX_ATTEMPTS)).timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(2))
            .operation_attempt_timeout(Duration::from_secs(3))
            .build(),
    )
}

/// The Stripe gateway (`STRIPE_API_BASE` points it at a local stand-in).
pub fn stripe(config: &crate::config::StripeConfig) -> Result<crate::payments::stripe::StripeGateway, String> {
    crate::payments::stripe::StripeGateway::new(config.secret_key.expose(), config.api_base.as_deref())
}

/// How long a webhook endpoint has to answer one delivery attempt.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP client that posts signed events (`ALLOW_LOCAL_WEBHOOKS` lets it reach loopback).
pub fn webhook_sender(config: &crate::config::WebhookConfig) -> crate::webhooks::HttpSender {
    crate::webhooks::HttpSender::new(WEBHOOK_TIMEOUT, config.allow_local)
}
