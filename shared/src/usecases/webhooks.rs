//! Webhook endpoints, their delivery log and redelivery, and users' low-balance settings (§9).

use serde::{Deserialize, Serialize};

use crate::clock::as_rfc3339;
use crate::domain::webhook::{
    Attempt, Delivery, Endpoint, EndpointView, MAX_ENDPOINTS, NewEndpoint, SigningSecret, UserSettings, new_secret,
};
use crate::error::Error;
use crate::idempotency::{self, Answer, IdempotencyKey, Shape};
use crate::ids;
use crate::usecases::Context;

fn endpoint_not_found() -> Error {
    Error::not_found("webhook endpoint not found")
}

/// An endpoint id is `ep-<uuid>`.
pub fn validate_endpoint_id(value: &str) -> Result<(), Error> {
    match value.strip_prefix("ep-").map(uuid::Uuid::try_parse) {
        Some(Ok(_)) => Ok(()),
        _ => Err(Error::validation("endpointId must look like ep-<uuid>")),
    }
}

/// Event ids are `evt_` and the letters, digits and `_` of the change they come from.
pub fn validate_event_id(value: &str) -> Result<(), Error> {
    let valid = value.starts_with("evt_")
        && value.len() <= 200
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid { Ok(()) } else { Err(Error::validation("eventId is not an event id")) }
}

/// The answer to creation and rotation: the only times the secret is shown. A replay under
/// the same idempotency key shows `secret: null` (secrets are not kept in idempotency records).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WithSecret {
    #[serde(flatten)]
    pub endpoint: EndpointView,
    #[serde(skip_serializing, default)]
    pub secret: Option<String>,
    /// When the previous secret stops signing (rotation only).
    #[serde(with = "as_rfc3339::option", default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_retires_at: Option<i64>,
}

pub async fn create_endpoint(
    ctx: Context<'_>,
    entity_id: &str,
    new: NewEndpoint,
    allow_local: bool,
    key: &IdempotencyKey,
) -> Result<Answer<WithSecret>, Error> {
    let events = new.validate(allow_local)?;
    idempotency::run(ctx.guard(), key, Shape::OneTransaction, || async {
        if ctx.store.list_endpoints(entity_id).await?.len() >= MAX_ENDPOINTS {
            return Err(Error::validation(format!("an entity may have at most {MAX_ENDPOINTS} webhook endpoints")));
        }
        let now = ctx.now();
        let secret = new_secret()?;
        let endpoint = Endpoint {
            endpoint_id: format!("ep-{}", uuid::Uuid::new_v4()),
            entity_id: entity_id.to_owned(),
            url: new.url,
            events,
            description: new.description,
            secrets: vec![SigningSecret { secret: secret.clone(), retires_at: None }],
            created_at: now,
        };
        let created = WithSecret { endpoint: endpoint.view(), secret: Some(secret), previous_secret_retires_at: None };
        let written = ctx.store.create_endpoint(&endpoint, &key.record(&created, now)?).await;
        idempotency::committed(created, written, || Error::internal("generated endpoint id collided"))
    })
    .await
}

pub async fn list_endpoints(ctx: Context<'_>, entity_id: &str) -> Result<Vec<EndpointView>, Error> {
    Ok(ctx.store.list_endpoints(entity_id).await?.iter().map(Endpoint::view).collect())
}

async fn endpoint(ctx: Context<'_>, entity_id: &str, endpoint_id: &str) -> Result<Endpoint, Error> {
    validate_endpoint_id(endpoint_id)?;
    ctx.store.get_endpoint(entity_id, endpoint_id).await?.ok_or_else(endpoint_not_found)
}

pub async fn get_endpoint(ctx: Context<'_>, entity_id: &str, endpoint_id: &str) -> Result<EndpointView, Error> {
    Ok(endpoint(ctx, entity_id, endpoint_id).await?.view())
}

/// Deleting an endpoint stops its deliveries: queued ones are dropped by the dispatcher at
/// its next look, before any further attempt.
pub async fn delete_endpoint(ctx: Context<'_>, entity_id: &str, endpoint_id: &str) -> Result<(), Error> {
    validate_endpoint_id(endpoint_id)?;
    if ctx.store.delete_endpoint(entity_id, endpoint_id).await? { Ok(()) } else { Err(endpoint_not_found()) }
}

/// A new secret; the old one keeps signing beside it for 24 h.
pub async fn rotate_secret(
    ctx: Context<'_>,
    entity_id: &str,
    endpoint_id: &str,
    key: &IdempotencyKey,
) -> Result<Answer<WithSecret>, Error> {
    let current = endpoint(ctx, entity_id, endpoint_id).await?;
    idempotency::run(ctx.guard(), key, Shape::OneTransaction, || async {
        let now = ctx.now();
        let secret = new_secret()?;
        let mut rotated = current.clone();
        rotated.rotate(secret.clone(), now);
        let retires_at = rotated.secrets.iter().filter_map(|s| s.retires_at).max();
        let answer =
            WithSecret { endpoint: rotated.view(), secret: Some(secret), previous_secret_retires_at: retires_at };
        let written = ctx.store.set_secrets(&rotated, &key.record(&answer, now)?).await;
        idempotency::committed(answer, written, endpoint_not_found)
    })
    .await
}

/// The endpoint's latest delivery attempts, newest first.
pub async fn deliveries(
    ctx: Context<'_>,
    entity_id: &str,
    endpoint_id: &str,
    limit: usize,
) -> Result<Vec<Attempt>, Error> {
    endpoint(ctx, entity_id, endpoint_id).await?;
    Ok(ctx.store.attempts(endpoint_id, limit).await?)
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Redelivery {
    pub event_id: String,
    /// The endpoints the event is queued for again.
    pub endpoint_ids: Vec<String>,
}

/// Queues an event again for every endpoint of the entity that wants it; the dispatcher
/// sends it with the same `webhook-id`.
pub async fn redeliver(ctx: Context<'_>, entity_id: &str, event_id: &str) -> Result<Redelivery, Error> {
    validate_event_id(event_id)?;
    let event = ctx.store.get_event(entity_id, event_id).await?.ok_or_else(|| Error::not_found("event not found"))?;
    let now = ctx.now();
    let mut endpoint_ids = Vec::new();
    for endpoint in ctx.store.list_endpoints(entity_id).await?.into_iter().filter(|e| e.wants(event.kind)) {
        let delivery = Delivery {
            endpoint_id: endpoint.endpoint_id.clone(),
            event: event.clone(),
            attempts: 0,
            next_attempt_at: now,
        };
        ctx.store.enqueue(&delivery).await?;
        ctx.store.mark_due(entity_id, &endpoint.endpoint_id, now).await?;
        endpoint_ids.push(endpoint.endpoint_id);
    }
    Ok(Redelivery { event_id: event_id.to_owned(), endpoint_ids })
}

/// A user's threshold: their own, else the entity's (`inherited`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSettingsView {
    pub user_id: String,
    pub low_balance_threshold: u64,
    /// Whether the threshold is the entity's (the user has none of their own).
    pub inherited: bool,
}

pub async fn user_settings(ctx: Context<'_>, entity_id: &str, user_id: &str) -> Result<UserSettingsView, Error> {
    ids::validate_user_id("userId", user_id)?;
    if let Some(own) = ctx.store.get_user_settings(entity_id, user_id).await? {
        return Ok(UserSettingsView {
            user_id: user_id.to_owned(),
            low_balance_threshold: own.low_balance_threshold,
            inherited: false,
        });
    }
    let entity = ctx.store.get_entity(entity_id).await?.ok_or_else(|| Error::not_found("entity not found"))?;
    Ok(UserSettingsView {
        user_id: user_id.to_owned(),
        low_balance_threshold: entity.settings.low_balance_threshold,
        inherited: true,
    })
}

pub async fn set_user_settings(
    ctx: Context<'_>,
    entity_id: &str,
    user_id: &str,
    settings: UserSettings,
) -> Result<UserSettingsView, Error> {
    ids::validate_user_id("userId", user_id)?;
    crate::domain::limits::check_amount("lowBalanceThreshold", settings.low_balance_threshold)?;
    ctx.store.put_user_settings(entity_id, user_id, &settings).await?;
    Ok(UserSettingsView {
        user_id: user_id.to_owned(),
        low_balance_threshold: settings.low_balance_threshold,
        inherited: false,
    })
}
