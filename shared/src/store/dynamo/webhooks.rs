//! Webhook endpoints, user settings, outbound events and their delivery queue (§9).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};

use super::{DynamoStore, Item, condition_held, from_item, idempotency, n, s, to_item};
use crate::domain::events::{AlertState, Event};
use crate::domain::webhook::{Attempt, Delivery, Endpoint, UserSettings};
use crate::store::keys::{self, TTL, WEBHOOK_PREFIX};
use crate::store::{DueMark, Lease, StoreError, StoreResult, StoredOutcome, WebhookStore};

/// Events and attempts are kept 30 days (the delivery log and redelivery read them).
const RETENTION_SECONDS: i64 = 30 * 24 * 3600;

fn built<T, E: std::fmt::Display>(result: Result<T, E>) -> StoreResult<T> {
    result.map_err(|e| StoreError::Internal(e.to_string()))
}

fn expiring(mut item: Item, now: i64) -> Item {
    item.insert(TTL.to_owned(), n(now / 1000 + RETENTION_SECONDS));
    item
}

fn text(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

fn due_mark(item: &Item) -> Option<DueMark> {
    Some(DueMark {
        entity_id: text(item, "entityId")?,
        endpoint_id: text(item, keys::SK)?,
        due_at: number(item, "dueAt")?,
        token: text(item, "token")?,
    })
}

impl DynamoStore {
    /// Every item of a partition (optionally under a sort-key prefix), in key order.
    async fn query_all(&self, pk: String, prefix: Option<&str>) -> StoreResult<Vec<Item>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", s(&pk))
                .consistent_read(true)
                .set_exclusive_start_key(start);
            query = match prefix {
                Some(prefix) => query
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s(prefix)),
                None => query.key_condition_expression("pk = :pk"),
            };
            let output = query.send().await.map_err(super::classify)?;
            items.extend(output.items.unwrap_or_default());
            match output.last_evaluated_key {
                Some(next) => start = Some(next),
                None => return Ok(items),
            }
        }
    }

    async fn put_if_new(&self, item: Item) -> StoreResult<bool> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        Ok(condition_held(result)?.is_some())
    }

    async fn put_plain(&self, item: Item) -> StoreResult<()> {
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(super::classify)?;
        Ok(())
    }
}

#[async_trait]
impl WebhookStore for DynamoStore {
    async fn create_endpoint(&self, endpoint: &Endpoint, idem: &StoredOutcome) -> StoreResult<()> {
        let key = keys::webhook_endpoint(&endpoint.entity_id, &endpoint.endpoint_id);
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(to_item(endpoint, &key, "webhook-endpoint")?))
            .condition_expression("attribute_not_exists(pk)");
        let items =
            vec![TransactWriteItem::builder().put(built(put.build())?).build(), idempotency::put(idem, &self.table)?];
        self.transact(items, Some(1)).await
    }

    async fn list_endpoints(&self, entity_id: &str) -> StoreResult<Vec<Endpoint>> {
        let items = self.query_all(keys::entity_partition(entity_id), Some(WEBHOOK_PREFIX)).await?;
        items.into_iter().map(from_item).collect()
    }

    async fn get_endpoint(&self, entity_id: &str, endpoint_id: &str) -> StoreResult<Option<Endpoint>> {
        self.get(keys::webhook_endpoint(entity_id, endpoint_id)).await?.map(from_item).transpose()
    }

    async fn delete_endpoint(&self, entity_id: &str, endpoint_id: &str) -> StoreResult<bool> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(keys::webhook_endpoint(entity_id, endpoint_id).to_item()))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        Ok(condition_held(result)?.is_some())
    }

    async fn set_secrets(&self, endpoint: &Endpoint, idem: &StoredOutcome) -> StoreResult<()> {
        let secrets =
            serde_dynamo::to_attribute_value(&endpoint.secrets).map_err(|e| StoreError::Internal(e.to_string()))?;
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::webhook_endpoint(&endpoint.entity_id, &endpoint.endpoint_id).to_item()))
            .update_expression("SET secrets = :secrets")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":secrets", secrets);
        let items = vec![
            TransactWriteItem::builder().update(built(update.build())?).build(),
            idempotency::put(idem, &self.table)?,
        ];
        self.transact(items, Some(1)).await
    }

    async fn get_user_settings(&self, entity_id: &str, user_id: &str) -> StoreResult<Option<UserSettings>> {
        self.get(keys::user_settings(entity_id, user_id)).await?.map(from_item).transpose()
    }

    async fn put_user_settings(&self, entity_id: &str, user_id: &str, settings: &UserSettings) -> StoreResult<()> {
        self.put_plain(to_item(settings, &keys::user_settings(entity_id, user_id), "user-settings")?).await
    }

    async fn get_alert_state(&self, entity_id: &str, user_id: &str) -> StoreResult<Option<AlertState>> {
        self.get(keys::alert_state(entity_id, user_id)).await?.map(from_item).transpose()
    }

    async fn advance_alert_state(&self, entity_id: &str, user_id: &str, state: &AlertState) -> StoreResult<()> {
        let item = to_item(state, &keys::alert_state(entity_id, user_id), "alert-state")?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #position < :position")
            .expression_attribute_names("#position", "position")
            .expression_attribute_values(":position", s(&state.position))
            .send()
            .await;
        condition_held(result)?.map(|_| ()).ok_or(StoreError::ConditionFailed)
    }

    async fn get_event(&self, entity_id: &str, event_id: &str) -> StoreResult<Option<Event>> {
        self.get(keys::outbound_event(entity_id, event_id)).await?.map(from_item).transpose()
    }

    async fn record_event(&self, event: &Event, now: i64) -> StoreResult<bool> {
        let item = to_item(event, &keys::outbound_event(&event.entity_id, &event.event_id), "event")?;
        self.put_if_new(expiring(item, now)).await
    }

    async fn enqueue(&self, delivery: &Delivery) -> StoreResult<()> {
        let key = keys::outbox(&delivery.endpoint_id, &delivery.event.lane, &delivery.event.order);
        self.put_if_new(to_item(delivery, &key, "delivery")?).await.map(|_| ())
    }

    async fn mark_due(&self, entity_id: &str, endpoint_id: &str, due_at: i64) -> StoreResult<()> {
        let mut item = keys::outbox_due(endpoint_id).to_item();
        item.extend([
            ("kind".to_owned(), s("outbox-due")),
            ("entityId".to_owned(), s(entity_id)),
            ("dueAt".to_owned(), n(due_at)),
            ("token".to_owned(), s(crate::ids::new_ordered_id())),
        ]);
        self.put_plain(item).await
    }

    async fn due_marks(&self, now: i64) -> StoreResult<Vec<DueMark>> {
        let items = self.query_all(keys::outbox_due_partition(), None).await?;
        Ok(items.iter().filter_map(due_mark).filter(|mark| mark.due_at <= now).collect())
    }

    async fn due_mark(&self, endpoint_id: &str) -> StoreResult<Option<DueMark>> {
        Ok(self.get(keys::outbox_due(endpoint_id)).await?.as_ref().and_then(due_mark))
    }

    async fn settle_mark(&self, seen: &DueMark, due_at: Option<i64>) -> StoreResult<()> {
        let key = Some(keys::outbox_due(&seen.endpoint_id).to_item());
        // A changed mark was set by a newer enqueue: it stays for the next drain.
        match due_at {
            Some(due_at) => {
                let result = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(key)
                    .update_expression("SET dueAt = :due, #token = :next")
                    .condition_expression("#token = :seen")
                    .expression_attribute_names("#token", "token")
                    .expression_attribute_values(":due", n(due_at))
                    .expression_attribute_values(":next", s(crate::ids::new_ordered_id()))
                    .expression_attribute_values(":seen", s(&seen.token))
                    .send()
                    .await;
                condition_held(result).map(|_| ())
            }
            None => {
                let result = self
                    .client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(key)
                    .condition_expression("#token = :seen")
                    .expression_attribute_names("#token", "token")
                    .expression_attribute_values(":seen", s(&seen.token))
                    .send()
                    .await;
                condition_held(result).map(|_| ())
            }
        }
    }

    async fn lease(&self, entity_id: &str, endpoint_id: &str, owner: &str, until: i64, now: i64) -> StoreResult<Lease> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::webhook_endpoint(entity_id, endpoint_id).to_item()))
            .update_expression("SET leaseUntil = :until, leaseOwner = :owner")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(leaseUntil) OR leaseUntil < :now OR leaseOwner = :owner)",
            )
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => match output.attributes {
                Some(item) => Ok(Lease::Held(Box::new(from_item(item)?))),
                None => Ok(Lease::Gone),
            },
            Err(err) => match err.as_service_error() {
                Some(e) if e.is_conditional_check_failed_exception() => {
                    let held_by_another = matches!(e, aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c) if c.item().is_some());
                    Ok(if held_by_another { Lease::Busy } else { Lease::Gone })
                }
                _ => Err(super::classify(err)),
            },
        }
    }

    async fn release_lease(&self, entity_id: &str, endpoint_id: &str, owner: &str) -> StoreResult<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::webhook_endpoint(entity_id, endpoint_id).to_item()))
            .update_expression("REMOVE leaseUntil, leaseOwner")
            .condition_expression("leaseOwner = :owner")
            .expression_attribute_values(":owner", s(owner))
            .send()
            .await;
        condition_held(result).map(|_| ())
    }

    async fn queued(&self, endpoint_id: &str) -> StoreResult<Vec<Delivery>> {
        let items = self.query_all(keys::outbox_partition(endpoint_id), None).await?;
        items.into_iter().map(from_item).collect()
    }

    async fn dequeue(&self, delivery: &Delivery) -> StoreResult<()> {
        let key = keys::outbox(&delivery.endpoint_id, &delivery.event.lane, &delivery.event.order);
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key.to_item()))
            .send()
            .await
            .map_err(super::classify)?;
        Ok(())
    }

    async fn requeue(&self, delivery: &Delivery) -> StoreResult<()> {
        let key = keys::outbox(&delivery.endpoint_id, &delivery.event.lane, &delivery.event.order);
        self.put_plain(to_item(delivery, &key, "delivery")?).await
    }

    async fn log_attempt(&self, attempt: &Attempt) -> StoreResult<()> {
        let key = keys::delivery_attempt(&attempt.endpoint_id, &attempt.attempt_id);
        self.put_plain(expiring(to_item(attempt, &key, "delivery-attempt")?, attempt.attempted_at)).await
    }

    async fn attempts(&self, endpoint_id: &str, limit: usize) -> StoreResult<Vec<Attempt>> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(keys::deliveries_partition(endpoint_id)))
            .scan_index_forward(false)
            .limit(limit as i32)
            .consistent_read(true)
            .send()
            .await
            .map_err(super::classify)?;
        output.items.unwrap_or_default().into_iter().map(from_item).collect()
    }
}
