//! Credit tiers, stored in their entity's partition.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};

use super::{DynamoStore, from_item, idempotency, n, s, to_item};
use crate::domain::tier::Tier;
use crate::store::StoredOutcome;
use crate::store::keys::{self, TIER_PREFIX};
use crate::store::{StoreError, StoreResult, TierStore};

impl DynamoStore {
    fn put_tier(&self, tier: &Tier, condition: &str, expected_version: Option<u64>) -> StoreResult<TransactWriteItem> {
        let item = to_item(tier, &keys::tier(&tier.entity_id, &tier.credit_tier_id), "tier")?;
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item)).condition_expression(condition);
        if let Some(version) = expected_version {
            put = put.expression_attribute_values(":version", n(version));
        }
        let put = put.build().map_err(|e| StoreError::Internal(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

#[async_trait]
impl TierStore for DynamoStore {
    async fn create_tier(&self, tier: &Tier, idem: &StoredOutcome) -> StoreResult<()> {
        let items = vec![self.put_tier(tier, "attribute_not_exists(pk)", None)?, idempotency::put(idem, &self.table)?];
        self.transact(items, Some(1)).await
    }

    async fn get_tier(&self, entity_id: &str, tier_id: &str) -> StoreResult<Option<Tier>> {
        self.get(keys::tier(entity_id, tier_id)).await?.map(from_item).transpose()
    }

    async fn list_tiers(&self, entity_id: &str) -> StoreResult<Vec<Tier>> {
        let pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(keys::entity_partition(entity_id)))
            .expression_attribute_values(":prefix", s(TIER_PREFIX))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(super::classify)?;
        pages.into_iter().map(from_item).collect()
    }

    async fn update_tier(&self, next: &Tier, expected_version: u64, idem: &StoredOutcome) -> StoreResult<()> {
        let items = vec![
            self.put_tier(next, "attribute_exists(pk) AND version = :version", Some(expected_version))?,
            idempotency::put(idem, &self.table)?,
        ];
        self.transact(items, Some(1)).await
    }
}
