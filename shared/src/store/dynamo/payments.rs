//! Payment records (keyed by PaymentIntent id), subscription records (by subscription id)
//! and processed Stripe events: the service's own records, which alone decide what a Stripe
//! event may credit.

use async_trait::async_trait;

use super::{DynamoStore, condition_held, from_item, n, s, to_item};
use crate::domain::payment::Payment;
use crate::store::keys;
use crate::store::{PaymentStore, StoreResult};

/// Stripe retries a webhook for up to 3 days; remember events for 30.
const EVENT_RETENTION_SECONDS: i64 = 30 * 24 * 3600;

impl DynamoStore {
    /// Writes a snapshot unless one is there already: the first one wins.
    async fn put_snapshot(&self, snapshot: &Payment, key: &keys::Key, kind: &str) -> StoreResult<()> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(snapshot, key, kind)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        condition_held(result).map(|_| ())
    }
}

#[async_trait]
impl PaymentStore for DynamoStore {
    async fn put_payment(&self, payment: &Payment) -> StoreResult<()> {
        self.put_snapshot(payment, &keys::payment(&payment.payment_intent_id), "payment").await
    }

    async fn get_payment(&self, payment_intent_id: &str) -> StoreResult<Option<Payment>> {
        self.get(keys::payment(payment_intent_id)).await?.map(from_item).transpose()
    }

    async fn put_subscription(&self, subscription: &Payment) -> StoreResult<()> {
        self.put_snapshot(subscription, &keys::subscription(&subscription.payment_intent_id), "subscription").await
    }

    async fn get_subscription(&self, subscription_id: &str) -> StoreResult<Option<Payment>> {
        self.get(keys::subscription(subscription_id)).await?.map(from_item).transpose()
    }

    async fn set_payment_status(&self, payment_intent_id: &str, status: &str) -> StoreResult<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::payment(payment_intent_id).to_item()))
            .update_expression("SET #status = :status")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status))
            .send()
            .await;
        // Already recorded (or, for a status, never recorded): nothing to do.
        condition_held(result).map(|_| ())
    }

    async fn event_processed(&self, event_id: &str) -> StoreResult<bool> {
        Ok(self.get(keys::stripe_event(event_id)).await?.is_some())
    }

    async fn mark_event_processed(&self, event_id: &str, event_type: &str, now: i64) -> StoreResult<()> {
        let mut item = keys::stripe_event(event_id).to_item();
        item.extend([
            ("kind".to_owned(), s("stripe-event")),
            ("eventType".to_owned(), s(event_type)),
            ("processedAt".to_owned(), n(now)),
            (keys::TTL.to_owned(), n(now / 1000 + EVENT_RETENTION_SECONDS)),
        ]);
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(super::classify)?;
        Ok(())
    }
}
