//! Accounts, ledger entries, holds and purchase counts: one transaction per change.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};

use super::errors::TxFailure;
use super::{DynamoStore, Item, from_item, idempotency, n, s, to_item};
use crate::domain::account::{Account, Entry, HoldRecord, SubscriptionUpdate, TierPurchases};
use crate::domain::ledger::{Applied, HoldChange};
use crate::store::StoredOutcome;
use crate::store::keys::{self, ENTRY_PREFIX, PURCHASES_PREFIX};
use crate::store::{EntryPage, LedgerStore, StoreError, StoreResult};

fn built<T, E: std::fmt::Display>(result: Result<T, E>) -> StoreResult<T> {
    result.map_err(|e| StoreError::Internal(e.to_string()))
}

impl DynamoStore {
    /// The account, only if nobody wrote it since `previous_version` (0: it must be new).
    fn put_account(&self, applied: &Applied) -> StoreResult<TransactWriteItem> {
        let account = &applied.account;
        let item = to_item(account, &keys::account(&account.entity_id, &account.user_id), "account")?;
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        put = if applied.previous_version == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :expected")
                .expression_attribute_values(":expected", n(applied.previous_version))
        };
        Ok(TransactWriteItem::builder().put(built(put.build())?).build())
    }

    fn put_entry(&self, account: &Account, entry: &Entry) -> StoreResult<TransactWriteItem> {
        let item = to_item(entry, &keys::entry(&account.entity_id, &account.user_id, entry.position), "entry")?;
        let put = built(Put::builder().table_name(&self.table).set_item(Some(item)).build())?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn hold_change(&self, account: &Account, change: &HoldChange, now: i64) -> StoreResult<TransactWriteItem> {
        match change {
            HoldChange::Opened { hold_id, credits, expires_at, reason } => {
                let record = HoldRecord {
                    hold_id: hold_id.clone(),
                    credits: *credits,
                    status: "active".into(),
                    captured_credits: 0,
                    reason: reason.clone(),
                    expires_at: *expires_at,
                    created_at: now,
                    settled_at: None,
                };
                let item = to_item(&record, &keys::hold(&account.entity_id, &account.user_id, hold_id), "hold")?;
                let put = built(Put::builder().table_name(&self.table).set_item(Some(item)).build())?;
                Ok(TransactWriteItem::builder().put(put).build())
            }
            HoldChange::Settled { hold_id, status, captured, .. } => {
                let update = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(keys::hold(&account.entity_id, &account.user_id, hold_id).to_item()))
                    .update_expression("SET #status = :status, capturedCredits = :captured, settledAt = :now")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":status", s(status.as_str()))
                    .expression_attribute_values(":captured", n(captured))
                    .expression_attribute_values(":now", n(now));
                Ok(TransactWriteItem::builder().update(built(update.build())?).build())
            }
        }
    }

    fn count_purchase(&self, account: &Account, tier_id: &str, now: i64) -> StoreResult<TransactWriteItem> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::purchases(&account.entity_id, &account.user_id, tier_id).to_item()))
            .update_expression("ADD purchaseCount :one SET lastPurchasedAt = :now, creditTierId = :tier, kind = :kind")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":tier", s(tier_id))
            .expression_attribute_values(":kind", s("purchases"));
        Ok(TransactWriteItem::builder().update(built(update.build())?).build())
    }

    /// The payment record notes which entry credited it.
    fn mark_payment_credited(&self, entry: &Entry, now: i64) -> StoreResult<TransactWriteItem> {
        let payment_intent_id = entry.payment_intent_id.as_deref().unwrap_or_default();
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::payment(payment_intent_id).to_item()))
            .update_expression("SET creditedEntryId = :entry, creditedAt = :now")
            .expression_attribute_values(":entry", s(&entry.entry_id))
            .expression_attribute_values(":now", n(now));
        Ok(TransactWriteItem::builder().update(built(update.build())?).build())
    }

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
        self.get(keys::account(entity_id, user_id)).await?.map(from_item).transpose()
    }

    async fn commit(&self, applied: &Applied, idem: &StoredOutcome) -> StoreResult<()> {
        let account = &applied.account;
        let now = account.updated_at.unwrap_or_default();
        let mut items = vec![self.put_account(applied)?];
        for entry in &applied.entries {
            items.push(self.put_entry(account, entry)?);
        }
        for change in &applied.holds {
            items.push(self.hold_change(account, change, now)?);
        }
        if let Some(tier_id) = &applied.purchased_tier {
            items.push(self.count_purchase(account, tier_id, now)?);
        }
        for entry in applied.entries.iter().filter(|e| e.payment_intent_id.is_some()) {
            items.push(self.mark_payment_credited(entry, now)?);
        }
        items.push(idempotency::put(idem, &self.table)?);
        let idem_index = items.len() - 1;
        match self.transact_raw(items, Some(idem_index)).await {
            Ok(()) => Ok(()),
            Err(TxFailure::Condition { index: 0, item }) => {
                let current = match item {
                    Some(item) => from_item(item)?,
                    None => Account::empty(&account.entity_id, &account.user_id),
                };
                Err(StoreError::Stale(Box::new(current)))
            }
            Err(failure) => Err(failure.into_store_error(Some(idem_index))),
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
                entries.push(from_item(item)?);
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
