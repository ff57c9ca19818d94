//! Entities and API keys.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};

use super::{DynamoStore, condition_held, from_item, idempotency, s, to_item};
use crate::clock::rfc3339;
use crate::domain::entity::{ApiKey, Entity};
use crate::store::StoredOutcome;
use crate::store::keys;
use crate::store::{EntityStore, StoreError, StoreResult};

fn built<T, E: std::fmt::Display>(result: Result<T, E>) -> StoreResult<T> {
    result.map_err(|e| StoreError::Internal(e.to_string()))
}

impl DynamoStore {
    fn put_new(&self, item: super::Item) -> StoreResult<TransactWriteItem> {
        let put = built(
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build(),
        )?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn key_item(&self, key: &ApiKey) -> super::Item {
        let mut item = keys::api_key(&key.apikey).to_item();
        item.extend([
            ("kind".to_owned(), s("apikey")),
            ("entityId".to_owned(), s(&key.entity_id)),
            ("secretHash".to_owned(), s(&key.secret_hash)),
        ]);
        item
    }

    /// Adds or removes one key in the entity's `apikeys` list (entity must exist).
    fn touch_entity_keys(
        &self,
        entity_id: &str,
        expression: &str,
        apikey: &str,
        now: i64,
    ) -> StoreResult<TransactWriteItem> {
        let update = built(
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(keys::entity(entity_id).to_item()))
                .update_expression(expression)
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":key", aws_sdk_dynamodb::types::AttributeValue::L(vec![s(apikey)]))
                .expression_attribute_values(":now", s(rfc3339(now)))
                .build(),
        )?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

#[async_trait]
impl EntityStore for DynamoStore {
    async fn create_entity(&self, entity: &Entity, key: &ApiKey, idem: &StoredOutcome) -> StoreResult<()> {
        let entity_item = to_item(entity, &keys::entity(&entity.entity_id), "entity")?;
        let items =
            vec![self.put_new(entity_item)?, self.put_new(self.key_item(key))?, idempotency::put(idem, &self.table)?];
        self.transact(items, Some(2)).await
    }

    async fn get_entity(&self, entity_id: &str) -> StoreResult<Option<Entity>> {
        self.get(keys::entity(entity_id)).await?.map(from_item).transpose()
    }

    async fn set_owners(&self, entity_id: &str, owners: &[String], now: i64) -> StoreResult<Option<Entity>> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::entity(entity_id).to_item()))
            .update_expression("SET ownerUserIds = :owners, updatedAt = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(
                ":owners",
                aws_sdk_dynamodb::types::AttributeValue::L(owners.iter().map(s).collect()),
            )
            .expression_attribute_values(":now", s(rfc3339(now)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match condition_held(result)? {
            Some(output) => output.attributes.map(from_item).transpose(),
            None => Ok(None),
        }
    }

    async fn replace_entity(&self, next: &Entity, expected_updated_at: i64) -> StoreResult<bool> {
        let item = to_item(next, &keys::entity(&next.entity_id), "entity")?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("updatedAt = :expected")
            .expression_attribute_values(":expected", s(rfc3339(expected_updated_at)))
            .send()
            .await;
        Ok(condition_held(result)?.is_some())
    }

    async fn add_api_key(&self, key: &ApiKey, now: i64, idem: &StoredOutcome) -> StoreResult<()> {
        let items = vec![
            self.touch_entity_keys(
                &key.entity_id,
                "SET apikeys = list_append(apikeys, :key), updatedAt = :now",
                &key.apikey,
                now,
            )?,
            self.put_new(self.key_item(key))?,
            idempotency::put(idem, &self.table)?,
        ];
        self.transact(items, Some(2)).await
    }

    async fn revoke_api_key(&self, entity_id: &str, apikey: &str, now: i64) -> StoreResult<()> {
        let Some(entity) = self.get_entity(entity_id).await? else {
            return Err(StoreError::ConditionFailed);
        };
        let Some(index) = entity.api_keys.iter().position(|k| k == apikey) else {
            return Err(StoreError::ConditionFailed);
        };
        // Remove by position, guarded by the value still being there.
        let update = built(
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(keys::entity(entity_id).to_item()))
                .update_expression(format!("REMOVE apikeys[{index}] SET updatedAt = :now"))
                .condition_expression(format!("apikeys[{index}] = :key"))
                .expression_attribute_values(":key", s(apikey))
                .expression_attribute_values(":now", s(rfc3339(now)))
                .build(),
        )?;
        let delete = built(
            Delete::builder()
                .table_name(&self.table)
                .set_key(Some(keys::api_key(apikey).to_item()))
                .condition_expression("entityId = :entity")
                .expression_attribute_values(":entity", s(entity_id))
                .build(),
        )?;
        let items = vec![
            TransactWriteItem::builder().update(update).build(),
            TransactWriteItem::builder().delete(delete).build(),
        ];
        self.transact(items, None).await
    }

    async fn get_api_key(&self, apikey: &str) -> StoreResult<Option<ApiKey>> {
        let Some(item) = self.get(keys::api_key(apikey)).await? else { return Ok(None) };
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        match (text("entityId"), text("secretHash")) {
            (Some(entity_id), Some(secret_hash)) => {
                Ok(Some(ApiKey { apikey: apikey.to_owned(), entity_id, secret_hash }))
            }
            _ => Err(StoreError::Internal("corrupt api key item".into())),
        }
    }
}
