//! Payment records, keyed by PaymentIntent id.

use async_trait::async_trait;

use super::{DynamoStore, from_item, to_item};
use crate::domain::payment::Payment;
use crate::store::keys;
use crate::store::{PaymentStore, StoreResult};

#[async_trait]
impl PaymentStore for DynamoStore {
    async fn put_payment(&self, payment: &Payment) -> StoreResult<()> {
        let item = to_item(payment, &keys::payment(&payment.payment_intent_id), "payment")?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(()),
            Err(err) => Err(super::classify(err)),
        }
    }

    async fn get_payment(&self, payment_intent_id: &str) -> StoreResult<Option<Payment>> {
        self.get(keys::payment(payment_intent_id)).await?.map(from_item).transpose()
    }
}
