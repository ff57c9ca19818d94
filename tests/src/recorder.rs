//! Records what each function asks of DynamoDB, in IAM action names, and counts round trips
//! (HTTP requests actually sent, retries included). The harness fails a request whose
//! function performs an action missing from its `dynamodb-actions` list (which the infra
//! template grants), so the list cannot drift below what the code does.

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::{
    batch_get_item::BatchGetItemInput, delete_item::DeleteItemInput, get_item::GetItemInput, put_item::PutItemInput,
    query::QueryInput, scan::ScanInput, transact_get_items::TransactGetItemsInput,
    transact_write_items::TransactWriteItemsInput, update_item::UpdateItemInput,
};
use aws_smithy_runtime_api::client::interceptors::context::Input;

#[derive(Debug, Clone, Default)]
pub struct Recorder {
    actions: Arc<Mutex<Vec<&'static str>>>,
    round_trips: Arc<Mutex<u64>>,
}

impl Recorder {
    pub fn actions(&self) -> Vec<&'static str> {
        self.actions.lock().map(|a| a.clone()).unwrap_or_default()
    }

    pub fn round_trips(&self) -> u64 {
        self.round_trips.lock().map(|n| *n).unwrap_or_default()
    }
}

/// IAM action names of one operation (a transaction needs its items' actions).
fn iam_actions(input: &Input) -> Vec<&'static str> {
    if let Some(tx) = input.downcast_ref::<TransactWriteItemsInput>() {
        return tx
            .transact_items()
            .iter()
            .map(|item| match () {
                _ if item.put().is_some() => "PutItem",
                _ if item.update().is_some() => "UpdateItem",
                _ if item.delete().is_some() => "DeleteItem",
                _ => "ConditionCheckItem",
            })
            .collect();
    }
    let single = match () {
        _ if input.downcast_ref::<GetItemInput>().is_some() => "GetItem",
        _ if input.downcast_ref::<TransactGetItemsInput>().is_some() => "GetItem",
        _ if input.downcast_ref::<BatchGetItemInput>().is_some() => "BatchGetItem",
        _ if input.downcast_ref::<QueryInput>().is_some() => "Query",
        _ if input.downcast_ref::<PutItemInput>().is_some() => "PutItem",
        _ if input.downcast_ref::<UpdateItemInput>().is_some() => "UpdateItem",
        _ if input.downcast_ref::<DeleteItemInput>().is_some() => "DeleteItem",
        _ if input.downcast_ref::<ScanInput>().is_some() => "Scan",
        _ => "Unknown",
    };
    vec![single]
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "Recorder"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Ok(mut actions) = self.actions.lock() {
            actions.extend(iam_actions(context.input()));
        }
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Ok(mut count) = self.round_trips.lock() {
            *count += 1;
        }
        Ok(())
    }
}

/// Notes `actions` as performed by `function` in `target/dynamodb-actions/<function>` (one
/// per line, appended), so the infra test can check, after the whole suite, that every
/// action a function's IAM policy grants was used by that function.
pub fn note_used(function: &str, actions: &[&'static str]) {
    use std::io::Write;
    let dir = format!("{}/target/dynamodb-actions", crate::WORKSPACE);
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let lines: String = actions.iter().map(|a| format!("{a}\n")).collect();
    if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(format!("{dir}/{function}")) {
        let _ = file.write_all(lines.as_bytes());
    }
}

/// The `dynamodb-actions` list of a function crate's Cargo.toml.
pub fn declared_actions(function: &str) -> Vec<String> {
    let path = format!("{}/functions/{function}/Cargo.toml", crate::WORKSPACE);
    let manifest: toml::Table = std::fs::read_to_string(&path).expect("function manifest").parse().expect("toml");
    manifest["package"]["metadata"]["credits"]["dynamodb-actions"]
        .as_array()
        .expect("dynamodb-actions list")
        .iter()
        .map(|a| a.as_str().expect("action name").to_owned())
        .collect()
}
