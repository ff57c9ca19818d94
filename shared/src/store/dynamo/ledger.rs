//! Accounts, ledger entries, holds and purchase counts: reads here, writes through the
//! journal (`journal.rs`).

use async_trait::async_trait;

use super::{DynamoStore, Item, from_item, journal, n, s};
use crate::domain::account::{Account, Entry, HoldRecord, SubscriptionUpdate, TierPurchases};
use crate::domain::journal::Append;
use crate::store::keys::{self, ENTRY_PREFIX, PURCHASES_PREFIX};
use crate::store::{Claim, EntryPage, KeyedEntry, LedgerStore, MovedRecord, StoreResult, Trim, Written};

/// A ledger entry's item as the entry, its position read from its sort key.
pub(super) fn entry_from_item(item: Item) -> StoreResult<Entry> {
    let position = item.get(keys::SK).and_then(|v| v.as_s().ok()).and_then(|sk| keys::entry_position(sk));
    let mut entry: Entry = from_item(item)?;
    entry.position = position.unwrap_or_default();
    Ok(entry)
}

impl DynamoStore {
    async fn query_partition(
        &self,
        pk: String,
        prefix: &str,
        page: Option<(&EntryPage, Option<Item>)>,
    ) -> StoreResult<(Vec<Item>, Option<Item>)> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(prefix))
            .consistent_read(true);
        if let Some((page, start)) = page {
            query = query.scan_index_forward(false).set_exclusive_start_key(start).limit(page.limit as i32);
            if let Some(kind) = page.kind {
                query = query
                    .filter_expression("#type = :type")
                    .expression_attribute_names("#type", "type")
                    .expression_attribute_values(":type", s(kind.as_str()));
            }
        }
        let output = query.send().await.map_err(super::classify)?;
        Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
    }
}

#[async_trait]
impl LedgerStore for DynamoStore {
    async fn get_account(&self, entity_id: &str, user_id: &str) -> StoreResult<Option<Account>> {
        self.get(keys::account(entity_id, user_id)).await?.map(super::journal::account_from_item).transpose()
    }

    async fn create_account(&self, account: &Account) -> StoreResult<Written> {
        self.create_account_item(account).await
    }

    async fn append(&self, entity_id: &str, user_id: &str, append: &Append) -> StoreResult<Written> {
        self.append_item(entity_id, user_id, append).await
    }

    async fn move_out(&self, entity_id: &str, user_id: &str, records: &[MovedRecord]) -> StoreResult<()> {
        self.move_records(entity_id, user_id, records).await
    }

    async fn claim_mover(&self, entity_id: &str, user_id: &str, now: i64, until: i64) -> StoreResult<Claim> {
        self.claim_mover_item(entity_id, user_id, now, until).await
    }

    async fn release_mover(&self, entity_id: &str, user_id: &str, until: i64) -> StoreResult<()> {
        self.release_mover_item(entity_id, user_id, until).await
    }

    async fn trim_journal(&self, entity_id: &str, user_id: &str, trim: &Trim) -> StoreResult<Option<bool>> {
        self.trim(entity_id, user_id, trim).await
    }

    async fn upgrade_account(&self, account: &Account) -> StoreResult<bool> {
        self.upgrade_account_item(account).await
    }

    /// Oldest first: few, as only the change's own request, or a client it named the key to
    /// in a 503, asks (`accounts`).
    async fn keyed_entry(
        &self,
        entity_id: &str,
        user_id: &str,
        key: &str,
        after_version: u64,
    ) -> StoreResult<Option<KeyedEntry>> {
        let from = keys::entry(entity_id, user_id, (after_version + 1, 0));
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .filter_expression(format!("{} = :key", journal::OUTCOME_KEY))
                .expression_attribute_values(":pk", s(&from.pk))
                .expression_attribute_values(":from", s(&from.sk))
                .expression_attribute_values(":to", s(format!("{}~", keys::ENTRY_PREFIX)))
                .expression_attribute_values(":key", s(key))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(super::classify)?;
            if let Some(item) = output.items.unwrap_or_default().into_iter().next() {
                return journal::keyed_entry(item).map(Some);
            }
            match output.last_evaluated_key {
                Some(next) => start = Some(next),
                None => return Ok(None),
            }
        }
    }

    async fn entries(
        &self,
        entity_id: &str,
        user_id: &str,
        page: &EntryPage,
    ) -> StoreResult<(Vec<Entry>, Option<String>)> {
        let pk = keys::account_partition(entity_id, user_id);
        let mut start = page.after.as_ref().map(|sk| keys::Key { pk: pk.clone(), sk: sk.clone() }.to_item());
        let mut entries = Vec::new();
        let mut last_sk = None;
        loop {
            let (items, next) = self.query_partition(pk.clone(), ENTRY_PREFIX, Some((page, start))).await?;
            for item in items {
                if entries.len() == page.limit {
                    return Ok((entries, last_sk));
                }
                last_sk = item.get(keys::SK).and_then(|v| v.as_s().ok()).cloned();
                entries.push(entry_from_item(item)?);
            }
            match next {
                Some(next) if entries.len() < page.limit => start = Some(next),
                Some(_) => return Ok((entries, last_sk)),
                None => return Ok((entries, None)),
            }
        }
    }

    async fn get_hold(&self, entity_id: &str, user_id: &str, hold_id: &str) -> StoreResult<Option<HoldRecord>> {
        self.get(keys::hold(entity_id, user_id, hold_id)).await?.map(from_item).transpose()
    }

    async fn tier_purchases(&self, entity_id: &str, user_id: &str) -> StoreResult<Vec<TierPurchases>> {
        let (items, _) =
            self.query_partition(keys::account_partition(entity_id, user_id), PURCHASES_PREFIX, None).await?;
        items.into_iter().map(from_item).collect()
    }

    async fn update_subscription(
        &self,
        entity_id: &str,
        user_id: &str,
        tier_id: &str,
        update: &SubscriptionUpdate,
    ) -> StoreResult<()> {
        let mut set = vec!["subscriptionId = :id", "creditTierId = :tier", "kind = :kind"];
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::purchases(entity_id, user_id, tier_id).to_item()))
            .expression_attribute_values(":id", s(&update.subscription_id))
            .expression_attribute_values(":tier", s(tier_id))
            .expression_attribute_values(":kind", s("purchases"));
        if let Some(status) = &update.status {
            set.push("subscriptionStatus = :status");
            request = request.expression_attribute_values(":status", s(status));
        }
        if let Some(end) = update.current_period_end {
            set.push("currentPeriodEnd = :end");
            request = request
                .condition_expression("attribute_not_exists(currentPeriodEnd) OR currentPeriodEnd < :end")
                .expression_attribute_values(":end", n(end));
        }
        let result = request.update_expression(format!("SET {}", set.join(", "))).send().await;
        // A failed condition means a later period is already recorded.
        super::condition_held(result).map(|_| ())
    }
}
