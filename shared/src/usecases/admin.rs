//! Entities, their owners and API keys (§2). Secrets are shown once: the outcomes keep them
//! out of the store (`skip_serializing`), so a replay shows none.

use serde::{Deserialize, Serialize};

use crate::auth::secrets;
use crate::domain::entity::{ApiKey, Entity, NewEntity, validate_owners};
use crate::error::Error;
use crate::idempotency::{self, Answer, IdempotencyKey, Shape};
use crate::ids;
use crate::store::StoreError;
use crate::usecases::Context;

/// Idempotency keys of entity creation are scoped to the admin, as no entity exists yet.
pub const ADMIN_SCOPE: &str = "admin";

fn entity_not_found() -> Error {
    Error::not_found("entity not found")
}

fn new_key(entity_id: &str) -> Result<(ApiKey, String), Error> {
    let secret = secrets::new_secret()?;
    let key =
        ApiKey { apikey: ids::new_api_key(), entity_id: entity_id.to_owned(), secret_hash: secrets::hash(&secret) };
    Ok((key, secret))
}

/// An API key just issued.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Issued {
    pub entity_id: String,
    pub apikey: String,
    /// Only in the answer that issued it.
    #[serde(skip_serializing, default)]
    pub apisecret: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Created {
    pub entity: Entity,
    pub key: Issued,
}

pub async fn create_entity(ctx: Context<'_>, new: NewEntity, key: &IdempotencyKey) -> Result<Answer<Created>, Error> {
    new.validate()?;
    idempotency::run(ctx.guard(), key, Shape::OneTransaction, || async {
        let now = ctx.now();
        let entity_id = ids::new_entity_id();
        let (api_key, secret) = new_key(&entity_id)?;
        let entity = Entity {
            entity_id,
            name: new.name,
            owner_user_ids: new.owner_user_ids,
            currency: new.currency,
            api_keys: vec![api_key.apikey.clone()],
            created_at: now,
            updated_at: now,
            settings: Default::default(),
        };
        let issued =
            Issued { entity_id: entity.entity_id.clone(), apikey: api_key.apikey.clone(), apisecret: Some(secret) };
        let created = Created { entity, key: issued };
        let written = ctx.store.create_entity(&created.entity, &api_key, &key.record(&created, now)?).await;
        idempotency::committed(created, written, || Error::internal("generated id collided"))
    })
    .await
}

pub async fn get_entity(ctx: Context<'_>, entity_id: &str) -> Result<Entity, Error> {
    ids::validate_entity_id(entity_id)?;
    ctx.store.get_entity(entity_id).await?.ok_or_else(entity_not_found)
}

pub async fn set_owners(ctx: Context<'_>, entity_id: &str, owners: &[String]) -> Result<Entity, Error> {
    ids::validate_entity_id(entity_id)?;
    validate_owners(owners)?;
    ctx.store.set_owners(entity_id, owners, ctx.now()).await?.ok_or_else(entity_not_found)
}

/// Rotation: a new key beside the existing ones.
pub async fn add_api_key(ctx: Context<'_>, entity_id: &str, key: &IdempotencyKey) -> Result<Answer<Issued>, Error> {
    ids::validate_entity_id(entity_id)?;
    idempotency::run(ctx.guard(), key, Shape::OneTransaction, || async {
        let now = ctx.now();
        let (api_key, secret) = new_key(entity_id)?;
        let issued =
            Issued { entity_id: entity_id.to_owned(), apikey: api_key.apikey.clone(), apisecret: Some(secret) };
        let written = ctx.store.add_api_key(&api_key, now, &key.record(&issued, now)?).await;
        idempotency::committed(issued, written, entity_not_found)
    })
    .await
}

pub async fn revoke_api_key(ctx: Context<'_>, entity_id: &str, apikey: &str) -> Result<(), Error> {
    ids::validate_entity_id(entity_id)?;
    match ctx.store.revoke_api_key(entity_id, apikey, ctx.now()).await {
        Err(StoreError::ConditionFailed) => Err(Error::not_found("no such API key for this entity")),
        written => Ok(written?),
    }
}
