//! What each request consumed of DynamoDB's capacity, in the units it is billed and throttled
//! by: every call asks for `ReturnConsumedCapacity: TOTAL` (an interceptor on the one client,
//! so no call site can forget), and the units that come back are added to the request's meter,
//! which the request's log line reports (`read_units`, `write_units`).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::{
    batch_get_item::{BatchGetItemInput, BatchGetItemOutput},
    batch_write_item::{BatchWriteItemInput, BatchWriteItemOutput},
    delete_item::{DeleteItemInput, DeleteItemOutput},
    get_item::{GetItemInput, GetItemOutput},
    put_item::{PutItemInput, PutItemOutput},
    query::{QueryInput, QueryOutput},
    scan::{ScanInput, ScanOutput},
    transact_get_items::{TransactGetItemsInput, TransactGetItemsOutput},
    transact_write_items::{TransactWriteItemsInput, TransactWriteItemsOutput},
    update_item::{UpdateItemInput, UpdateItemOutput},
};
use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity};

/// Units are counted in thousandths (DynamoDB reports halves for eventually consistent reads).
const MILLI: f64 = 1000.0;

tokio::task_local! {
    static METER: Arc<Meter>;
}

/// Units consumed so far by one request.
#[derive(Debug, Default)]
pub struct Meter {
    read_milli: AtomicU64,
    write_milli: AtomicU64,
}

/// Read and write units, as DynamoDB reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Units {
    pub read: f64,
    pub write: f64,
}

/// What an operation consumes when DynamoDB reports only its total (`CapacityUnits`).
#[derive(Debug, Clone, Copy)]
enum Kind {
    Read,
    Write,
}

impl Meter {
    fn add(&self, consumed: &ConsumedCapacity, kind: Kind) {
        let total = consumed.capacity_units().unwrap_or(0.0);
        let (read, write) = match (consumed.read_capacity_units(), consumed.write_capacity_units(), kind) {
            (None, None, Kind::Read) => (total, 0.0),
            (None, None, Kind::Write) => (0.0, total),
            (read, write, _) => (read.unwrap_or(0.0), write.unwrap_or(0.0)),
        };
        self.read_milli.fetch_add((read * MILLI).round() as u64, Ordering::Relaxed);
        self.write_milli.fetch_add((write * MILLI).round() as u64, Ordering::Relaxed);
    }

    fn units(&self) -> Units {
        let milli = |counter: &AtomicU64| counter.load(Ordering::Relaxed) as f64 / MILLI;
        Units { read: milli(&self.read_milli), write: milli(&self.write_milli) }
    }
}

/// Runs `work` with a meter of its own; what its store calls consumed comes back with it.
pub async fn metered<F: Future>(work: F) -> (F::Output, Units) {
    let meter = Arc::new(Meter::default());
    let output = METER.scope(meter.clone(), work).await;
    (output, meter.units())
}

/// Asks every call for its consumed capacity and adds it to the running request's meter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Capacity;

/// Sets `return_consumed_capacity` on whichever operation input this is.
macro_rules! ask {
    ($input:expr, $($ty:ty),+) => {
        $(if let Some(input) = $input.downcast_mut::<$ty>() {
            input.return_consumed_capacity = Some(ReturnConsumedCapacity::Total);
        })+
    };
}

/// Adds what whichever operation output this is reports: one capacity (`single`) or one per
/// table (`many`), of reads or writes.
macro_rules! read {
    ($output:expr, $meter:expr, $kind:expr, single: [$($one:ty),+], many: [$($many:ty),+]) => {
        $(if let Some(output) = $output.downcast_ref::<$one>() {
            output.consumed_capacity().into_iter().for_each(|c| $meter.add(c, $kind));
        })+
        $(if let Some(output) = $output.downcast_ref::<$many>() {
            output.consumed_capacity().iter().for_each(|c| $meter.add(c, $kind));
        })+
    };
}

impl Intercept for Capacity {
    fn name(&self) -> &'static str {
        "Capacity"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input_mut();
        ask!(
            input,
            GetItemInput,
            PutItemInput,
            UpdateItemInput,
            DeleteItemInput,
            QueryInput,
            ScanInput,
            BatchGetItemInput,
            BatchWriteItemInput,
            TransactGetItemsInput,
            TransactWriteItemsInput
        );
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (Ok(meter), Ok(output)) = (METER.try_with(Arc::clone), context.output_or_error()) else {
            return Ok(());
        };
        read!(output, meter, Kind::Read, single: [GetItemOutput, QueryOutput, ScanOutput],
            many: [BatchGetItemOutput, TransactGetItemsOutput]);
        read!(output, meter, Kind::Write, single: [PutItemOutput, UpdateItemOutput, DeleteItemOutput],
            many: [BatchWriteItemOutput, TransactWriteItemsOutput]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_meter_sums_what_each_call_reports_in_its_own_request_only() {
        let write = ConsumedCapacity::builder().table_name("t").capacity_units(3.0).build();
        let read = ConsumedCapacity::builder().capacity_units(0.5).build();
        let ((), units) = metered(async {
            METER.with(|meter| {
                meter.add(&write, Kind::Write);
                meter.add(&read, Kind::Read);
            })
        })
        .await;
        assert_eq!(units, Units { read: 0.5, write: 3.0 });
        let ((), other) = metered(async {}).await;
        assert_eq!(other, Units::default());
    }
}
